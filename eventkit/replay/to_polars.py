"""Rule expressions as Polars expressions: the linear (column-wise) path of the engine.

Values follow the language exactly (:mod:`eventkit.rules.expr`): integer
operations are done in Int128 and a result beyond Int64 — or a rounding of NaN,
±∞ or a value beyond Int64 — becomes **null**, which every later operation
keeps; nulls read from the event columns are replaced first (0, NaN), so a
null in a result means "cannot be computed exactly here" and the engine raises
:class:`~eventkit.exceptions.ReplayError` for it. A choice and ``and``/``or``
carry a null only from what they compute; float comparisons follow IEEE 754.
"""

from __future__ import annotations

import ast
from typing import Literal, cast

import numpy as np
import polars as pl

from eventkit.exceptions import RuleError
from eventkit.rules.expr import (
    BINOPS,
    CMPOPS,
    INT64_MAX,
    INT64_MIN,
    TIME_PARTS,
    derived_name,
    static_type,
)
from eventkit.rules.model import CheckedRules, Field

__all__ = ["polars_expr"]

_NULL_INT = pl.lit(None, dtype=pl.Int64)


# --------------------------------------------------------------------------- Polars target
def polars_expr(node: ast.expr, checked: CheckedRules, enum: Field | None = None, *,
                text: Literal["codes"] | None = "codes") -> pl.Expr:
    """A vectorized Polars expression for an event-only syntax tree (null: not exact).

    Integer columns read nulls as 0 and float columns as NaN, like the other
    engines. String literals become the integer codes of ``enum``'s values
    when ``enum`` is given. Text: with ``text="codes"`` text columns hold
    their codes in the engine's dictionary (whose first entries are
    :attr:`CheckedRules.strings`), and time parts are columns of their own
    (``day(event_time)``); with ``text=None`` both are read from the events
    as they are (a selection filter).
    """
    return _PolarsBuilder(checked, enum, text).visit(node)


def _int64(wide: pl.Expr) -> pl.Expr:
    """An Int128 result as Int64, null where it is beyond Int64."""
    return pl.when(wide.is_between(INT64_MIN, INT64_MAX)).then(wide).cast(pl.Int64)


def _divide(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """``a / b`` of Float64s as IEEE 754 divides (numpy, column-wise; nulls stay null).

    Polars' division kernel multiplies by the reciprocal, which is an ulp off
    for about a third of values (5 / -1.5 gives -3.333333333333333, not
    -3.3333333333333335): every engine must agree with the reference fold exactly.
    """
    def exact(pair: pl.Series) -> pl.Series:
        x, y = (pair.struct.field(n).to_numpy() for n in ("a", "b"))
        with np.errstate(all="ignore"):  # IEEE 754: inf and nan, as Python and numba give
            return pl.Series(x / y, dtype=pl.Float64)

    either_null = a.is_null() | b.is_null()
    return pl.when(either_null).then(pl.lit(None, dtype=pl.Float64)).otherwise(
        pl.struct(a.alias("a"), b.alias("b")).map_batches(exact, return_dtype=pl.Float64))


def _compare(op: str, a: pl.Expr, b: pl.Expr, *, floats: bool) -> pl.Expr:
    """``a op b`` as a boolean; for floats as IEEE 754 has it (NaN: false but for ``!=``)."""
    result = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b,
              "!=": a != b}[op]
    if not floats:
        return result
    return pl.when(a.is_null() | b.is_null()).then(pl.lit(None, dtype=pl.Boolean)).when(
        a.is_nan() | b.is_nan()).then(pl.lit(op == "!=")).otherwise(result)


class _PolarsBuilder:
    def __init__(self, checked: CheckedRules, enum: Field | None,
                 text: Literal["codes"] | None) -> None:
        self.checked = checked
        self.enum = enum
        self.codes = text == "codes"

    def typ(self, node: ast.expr) -> str:
        return static_type(node, self.checked.scope)

    def number(self, node: ast.expr, typ: str) -> pl.Expr:
        """The node's value as ``typ`` (an int met by a float is a float)."""
        value = self.visit(node)
        return value.cast(pl.Float64) if typ == "float" and self.typ(node) == "int" else value

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
        if isinstance(node, ast.Name):  # parameters are constants by now (simplified)
            if self.checked.scope.columns[node.id] == "float":
                return pl.col(node.id).cast(pl.Float64).fill_null(float("nan"))
            if self.checked.scope.columns[node.id] == "string" and not self.codes:
                return pl.col(node.id).cast(pl.String).fill_null("")
            return pl.col(node.id).cast(pl.Int64).fill_null(0)
        if isinstance(node, ast.BinOp):
            return self.binop(BINOPS[type(node.op)], node)
        if isinstance(node, ast.UnaryOp):
            value = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return (value == 0).cast(pl.Int64)
            if self.typ(node.operand) == "float":
                return -value
            return _int64(pl.lit(0, dtype=pl.Int128) - value.cast(pl.Int128))
        if isinstance(node, ast.BoolOp):  # stops at the operand that decides
            decides = 0 if isinstance(node.op, ast.And) else 1
            out = (self.visit(node.values[-1]) != 0).cast(pl.Int64)
            for operand in reversed(node.values[:-1]):
                v = self.visit(operand)
                out = pl.when(v.is_null()).then(_NULL_INT).when((v != 0) == bool(decides)) \
                    .then(pl.lit(decides, pl.Int64)).otherwise(out)
            return out
        if isinstance(node, ast.Compare):
            left, right = node.left, node.comparators[0]
            floats = "float" in (self.typ(left), self.typ(right))
            kind = "float" if floats else "int"
            a, b = self.number(left, kind), self.number(right, kind)
            return _compare(CMPOPS[type(node.ops[0])], a, b, floats=floats).cast(pl.Int64)
        if isinstance(node, ast.IfExp):  # only the branch taken counts
            test, typ = self.visit(node.test), self.typ(node)
            return pl.when(test.is_null()).then(pl.lit(None, dtype=pl.Float64 if typ == "float"
                                                       else pl.Int64)) \
                .when(test != 0).then(self.number(node.body, typ)) \
                .otherwise(self.number(node.orelse, typ))
        if isinstance(node, ast.Call):
            return self.call(node)
        msg = f"cannot compile {ast.unparse(node)}"
        raise RuleError(msg)

    def binop(self, op: str, node: ast.BinOp) -> pl.Expr:
        typ = "float" if op == "/" else self.typ(node)
        a, b = self.number(node.left, typ), self.number(node.right, typ)
        if typ == "float":
            return _divide(a, b) if op == "/" else {"+": a + b, "-": a - b, "*": a * b}[op]
        wide_a, wide_b = a.cast(pl.Int128), b.cast(pl.Int128)
        if op in ("//", "%"):
            wide = wide_a // wide_b if op == "//" else wide_a % wide_b
            # by zero: 0, once the dividend could be computed (else it stays null)
            return pl.when((b == 0) & a.is_not_null()).then(pl.lit(0, dtype=pl.Int64)) \
                .otherwise(_int64(wide))
        return _int64({"+": wide_a + wide_b, "-": wide_a - wide_b, "*": wide_a * wide_b}[op])

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
        if name in ("min", "max"):
            floats = "float" in {self.typ(a) for a in node.args}
            kind = "float" if floats else "int"
            a, b = (self.number(x, kind) for x in node.args)
            keep_a = _compare("<=" if name == "min" else ">=", a, b, floats=floats)
            return pl.when(a.is_null() | b.is_null()).then(
                pl.lit(None, dtype=pl.Float64 if floats else pl.Int64)
            ).when(keep_a).then(a).otherwise(b)
        value = self.visit(node.args[0])
        if name == "abs":
            if self.typ(node.args[0]) == "float":
                return value.abs()
            return _int64(value.cast(pl.Int128).abs())
        x = value.cast(pl.Float64)
        if name == "float":
            return x
        rounded = {
            "round_half_even": x.round(0, mode="half_to_even"),
            "round_half_up": x.round(0, mode="half_away_from_zero"),
            "floor": x.floor(),
            "ceil": x.ceil(),
            "trunc": x.sign() * x.abs().floor(),
        }[name]
        # NaN, ±inf and values beyond Int64 (2**63 is the first float beyond it): null
        exact = rounded.is_finite() & (rounded >= -(2.0**63)) & (rounded < 2.0**63)
        return pl.when(exact).then(rounded).cast(pl.Int64)
