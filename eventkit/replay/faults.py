"""Why a fold stopped: the :class:`~eventkit.exceptions.ReplayError` naming key, event, field, rule.

The compiled folds stop at the first value they cannot compute exactly and
report it as numbers (a row, an instruction, the operands); these functions
turn that report into the error a user reads, with the same wording as the
reference fold's (:mod:`eventkit.rules.expr`).
"""

from __future__ import annotations

import ast
import math
from typing import Any

import numpy as np
import polars as pl

from eventkit.exceptions import ReplayError
from eventkit.replay import interpreter as vm
from eventkit.replay.compile import Program
from eventkit.rules.expr import evaluate
from eventkit.rules.model import CheckedRules

__all__ = ["program_fault", "sum_fault", "term_fault"]

_SYMBOL = {vm.ADD_I: "+", vm.ADD_COL_I: "+", vm.ADD_K_I: "+", vm.SUB_I: "-",
           vm.SUB_COL_I: "-", vm.MUL_I: "*", vm.FDIV_I: "//", vm.MOD_I: "%"}


def _where(events: pl.DataFrame, row: int, key: tuple[str, ...]) -> dict[str, Any]:
    """The key (a tuple for a composite key) and event id of ``row`` (or its seq)."""
    has_id = "event_id" in events.columns
    values = tuple(events[c][row] for c in key)
    return {"key": values[0] if len(values) == 1 else values,
            "event_id": events["event_id"][row] if has_id else f"seq {events['seq'][row]}"}


def program_fault(events: pl.DataFrame, checked: CheckedRules, program: Program,
                  err: np.ndarray, errf: np.ndarray) -> ReplayError:
    """The error :func:`~eventkit.replay.interpreter.run_rules` reported in ``err``/``errf``."""
    kind, row, pc, a, b = (int(v) for v in err)
    interest = checked.rules.interest
    if pc >= 0:
        rule, field = program.origins[program.origin[pc]]
        op = int(program.code[pc, 0])
    else:
        assert interest is not None
        rule, op = "interest", vm.ADD_I
        field = interest.balance_field if pc == vm.INTEREST_BALANCE else interest.posted_field
    if kind == vm.OVERFLOW:
        what = {vm.NEG_I: f"-({a})", vm.ABS_I: f"abs({a})"}.get(op, f"{a} {_SYMBOL.get(op)} {b}")
        problem = f"integer overflow: {what} is beyond Int64"
    else:
        mode, value = vm.ROUND_MODES[a], float(errf[0])
        problem = (f"{mode}() of {value} (not a finite number) cannot be an integer"
                   if kind == vm.NOT_FINITE else
                   f"integer overflow: {mode}({value!r}) is beyond Int64")
    return ReplayError(problem, field=field, rule=rule,
                       **_where(events, row, checked.rules.key_columns))


def sum_fault(events: pl.DataFrame, checked: CheckedRules, field: str, row: int,
              before: int, term: int, sign: int) -> ReplayError:
    """A running sum of ``field`` went beyond Int64 at ``row``: ``before ± term``."""
    event_type = events["event_type"][row]
    rule = next(f"on {event_type}: {t} = {e.text}"
                for t, e in checked.assignments[event_type] if t == field)
    problem = f"integer overflow: {before} {'-' if sign < 0 else '+'} {term} is beyond Int64"
    return ReplayError(problem, field=field, rule=rule,
                       **_where(events, row, checked.rules.key_columns))


def term_fault(events: pl.DataFrame, checked: CheckedRules, field: str, row: int,
               node: ast.expr) -> ReplayError:
    """An event-only term of ``field`` could not be computed exactly at ``row``.

    The column-wise path only knows *that* (a null); the term evaluated for
    this one event in plain Python says *why*.
    """
    event_type = events["event_type"][row]
    rule = next(f"on {event_type}: {t} = {e.text}"
                for t, e in checked.assignments[event_type] if t == field)
    env = {}
    for name, typ in checked.scope.columns.items():
        value = events[name][row] if name in events.columns else None
        if typ in ("string", "time"):  # text as it is ('' for null), a time for its parts
            env[name] = ("" if value is None else str(value)) if typ == "string" else value
        else:
            env[name] = (math.nan if value is None else float(value)) if typ == "float" else (
                0 if value is None else int(value))
    try:
        evaluate(node, env, checked.scope)
        problem = "a value cannot be computed exactly (beyond Int64)"
    except ReplayError as exc:
        problem = exc.problem
    return ReplayError(problem, field=field, rule=rule,
                       **_where(events, row, checked.rules.key_columns))
