"""What a fold reads of the events, and whether it can read it exactly.

:func:`columns_read` names the event columns a rule set reads;
:func:`check_columns` refuses, before anything is decoded, events that lack
one, whose key column holds values no key can have, or whose columns the
rules cannot read exactly as declared (:func:`check_column_types`): every
engine runs it, and :func:`~eventkit.replay.engine.prepare` runs the type check
on every fold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import polars as pl

from eventkit.exceptions import SchemaError
from eventkit.replay.keys import key_type_error
from eventkit.rules.model import CheckedRules

if TYPE_CHECKING:
    from eventkit.rules.expr import Expr

__all__ = ["check_column_types", "check_columns", "columns_read", "rule_exprs"]


def rule_exprs(checked: CheckedRules) -> list[Expr]:
    """The rules' assignments and requirements (the expressions a fold evaluates)."""
    out = [e for pairs in checked.assignments.values() for _, e in pairs]
    return out + [r for r in checked.requirements.values() if r is not None]


def columns_read(checked: CheckedRules) -> set[str]:
    """The event columns the rules read (a time part reads its time column)."""
    exprs = rule_exprs(checked) + ([checked.selection] if checked.selection is not None else [])
    read = {c for e in exprs for c in e.columns}
    return read | {d[:-1].split("(")[1] for e in exprs for d in e.derived}


def check_columns(checked: CheckedRules, schema: Mapping[str, pl.DataType]) -> None:
    """Refuse events (their ``schema``) that lack a column the fold needs, naming it.

    Or whose key column holds values no key can have, or a column the rules
    read that they cannot read exactly (:func:`check_column_types`); checked
    before anything is read, for every engine.
    """
    rules = checked.rules
    read = columns_read(checked)
    needed = [*rules.key_columns, "event_type", "event_time", "seq",
              *sorted(read - {"counterparty_id", "rate"})]
    missing = [c for c in dict.fromkeys(needed) if c not in schema]
    if missing:
        msg = (f"the events lack column(s) {missing} that replaying {rules.name!r} needs; "
               f"they have {list(schema)} (eventkit.open_archive reads any file into the "
               "canonical columns, deriving seq and the rest)")
        raise SchemaError(msg, column=missing[0])
    for name in rules.key_columns:
        error = key_type_error(name, schema[name])
        if error is not None:
            raise error
    check_column_types(checked, schema)


def check_column_types(checked: CheckedRules, schema: Mapping[str, pl.DataType]) -> None:
    """Refuse a column the rules read whose values they cannot read exactly as declared.

    An ``int`` column holds integers (or booleans, or decimals of scale 0): never
    floats or decimals with a fraction, which would be truncated; a ``float``
    column numbers; a ``string`` column text (or integers, booleans); a ``time``
    column instants with a time zone (a naive one is never guessed to be UTC).

    >>> from eventkit.rules.model import RuleSet, Field, Handler
    >>> rules = RuleSet("r", (Field("n", "int"),), (Handler("Buy", {"n": "n + qty"}),),
    ...                 columns={"qty": "int"})
    >>> check_column_types(rules.check(), {"qty": pl.Float64})
    Traceback (most recent call last):
    ...
    eventkit.SchemaError: the rules read qty as int, but the column holds Float64, ...
    """
    for name in sorted(columns_read(checked)):
        dtype = schema.get(name)
        typ = checked.scope.columns[name]
        if dtype is None or dtype == pl.Null or _readable(typ, dtype):
            continue
        hint = {"int": "declare it float and round explicitly" if dtype.is_numeric()
                else "cast it to integers",
                "float": "cast it to a number", "string": "cast it to text",
                "time": "give it a time zone (dt.replace_time_zone) or cast it to a "
                        "datetime with one"}[typ]
        msg = (f"the rules read {name} as {typ}, but the column holds {dtype}, which cannot "
               f"be read as {typ} exactly: {hint} (rule set {checked.rules.name!r}, "
               f"{checked.rules.source})")
        raise SchemaError(msg, column=name)


def _readable(typ: str, dtype: pl.DataType) -> bool:
    """Whether a column of ``dtype`` reads exactly as the rules' type ``typ``."""
    if typ == "int":
        return dtype.is_integer() or dtype == pl.Boolean or (
            isinstance(dtype, pl.Decimal) and dtype.scale == 0)
    if typ == "float":
        return dtype.is_numeric() or dtype == pl.Boolean
    if typ == "string":
        return isinstance(dtype, pl.String | pl.Categorical | pl.Enum) or dtype.is_integer() \
            or dtype == pl.Boolean
    return isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
