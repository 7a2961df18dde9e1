"""Rule expressions as Polars expressions: the linear (column-wise) path of the engine."""

from __future__ import annotations

import ast
from typing import Literal, cast

import polars as pl

from eventkit.exceptions import RuleError
from eventkit.rules.expr import BINOPS, CMPOPS, TIME_PARTS, derived_name
from eventkit.rules.model import CheckedRules, Field, static_type

__all__ = ["polars_expr"]


# --------------------------------------------------------------------------- Polars target
def polars_expr(node: ast.expr, checked: CheckedRules, enum: Field | None = None, *,
                text: Literal["codes"] | None = "codes") -> pl.Expr:
    """A vectorized Polars expression for an event-only syntax tree.

    Integer columns read nulls as 0 and float columns as NaN, like the other
    engines. String literals become the integer codes of ``enum``'s values
    when ``enum`` is given. Text: with ``text="codes"`` text columns hold
    their codes in the engine's dictionary (whose first entries are
    :attr:`CheckedRules.strings`), and time parts are columns of their own
    (``day(event_time)``); with ``text=None`` both are read from the events
    as they are (a selection filter).
    """
    return _PolarsBuilder(checked, enum, text).visit(node)


class _PolarsBuilder:
    def __init__(self, checked: CheckedRules, enum: Field | None,
                 text: Literal["codes"] | None) -> None:
        self.checked = checked
        self.enum = enum
        self.codes = text == "codes"

    def typ(self, node: ast.expr) -> str:
        return static_type(node, self.checked)

    def visit(self, node: ast.expr) -> pl.Expr:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                if self.enum is not None:
                    return pl.lit(self.enum.values.index(node.value), dtype=pl.Int64)
                if self.codes:
                    return pl.lit(self.checked.strings.index(node.value), dtype=pl.Int64)
                return pl.lit(node.value, dtype=pl.String)
            if isinstance(node.value, float):
                return pl.lit(node.value, dtype=pl.Float64)
            # a checked rule's other literals are ints and bools (parse refuses the rest)
            return pl.lit(int(cast("int", node.value)), dtype=pl.Int64)
        if isinstance(node, ast.Name):
            scope = self.checked.scope
            if node.id in scope.params:
                param = scope.params[node.id]
                return pl.lit(param, dtype=pl.Float64 if isinstance(param, float) else pl.Int64)
            if scope.columns[node.id] == "float":
                return pl.col(node.id).cast(pl.Float64).fill_null(float("nan"))
            if scope.columns[node.id] == "string" and not self.codes:
                return pl.col(node.id).cast(pl.String).fill_null("")
            return pl.col(node.id).cast(pl.Int64).fill_null(0)
        if isinstance(node, ast.BinOp):
            op = BINOPS[type(node.op)]
            a, b = self.visit(node.left), self.visit(node.right)
            if op == "/":
                return a.cast(pl.Float64) / b.cast(pl.Float64)
            if op in ("//", "%"):
                result = a // b if op == "//" else a % b
                return pl.when(b == 0).then(pl.lit(0, dtype=pl.Int64)).otherwise(result)
            return {"+": a + b, "-": a - b, "*": a * b}[op]
        if isinstance(node, ast.UnaryOp):
            value = self.visit(node.operand)
            if isinstance(node.op, ast.USub):
                return -value
            return (value == 0).cast(pl.Int64)
        if isinstance(node, ast.BoolOp):
            parts = [self.visit(v) != 0 for v in node.values]
            out = parts[0]
            for p in parts[1:]:
                out = (out & p) if isinstance(node.op, ast.And) else (out | p)
            return out.cast(pl.Int64)
        if isinstance(node, ast.Compare):
            a, b = self.visit(node.left), self.visit(node.comparators[0])
            op = CMPOPS[type(node.ops[0])]
            result = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b,
                      "!=": a != b}[op]
            return result.cast(pl.Int64)
        if isinstance(node, ast.IfExp):
            return pl.when(self.visit(node.test) != 0).then(self.visit(node.body)).otherwise(
                self.visit(node.orelse))
        if isinstance(node, ast.Call):
            return self.call(node)
        msg = f"cannot compile {ast.unparse(node)}"
        raise RuleError(msg)

    def call(self, node: ast.Call) -> pl.Expr:
        name = node.func.id  # type: ignore[attr-defined]
        if name in TIME_PARTS:
            column = node.args[0].id  # type: ignore[attr-defined]
            if self.codes:
                return pl.col(derived_name(name, column)).cast(pl.Int64)
            utc = pl.col(column).dt.convert_time_zone("UTC")
            return {"year": utc.dt.year(), "month": utc.dt.month(), "day": utc.dt.day(),
                    "hour": utc.dt.hour(), "minute": utc.dt.minute(),
                    "weekday": utc.dt.weekday()}[name].cast(pl.Int64)
        args = [self.visit(a) for a in node.args]
        if name in ("min", "max"):
            a, b = args
            keep_a = (a <= b) if name == "min" else (a >= b)
            return pl.when(keep_a).then(a).otherwise(b)
        if name == "abs":
            return args[0].abs()
        if name == "float":
            return args[0].cast(pl.Float64)
        x = args[0].cast(pl.Float64)
        rounded = {
            "round_half_even": x.round(0, mode="half_to_even"),
            "round_half_up": x.round(0, mode="half_away_from_zero"),
            "floor": x.floor(),
            "ceil": x.ceil(),
            "trunc": x.sign() * x.abs().floor(),
        }[name]
        return pl.when(x.is_finite()).then(rounded.cast(pl.Int64, strict=False)).otherwise(
            pl.lit(0, dtype=pl.Int64))
