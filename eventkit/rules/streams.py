"""Which events belong to which stream under a rule set: global events, wanted keys.

A rule set's key (one column or several) says which stream an event changes;
its :class:`~eventkit.rules.model.GlobalEvents` say which events belong to no
stream but apply to all (a shared rate table). These are the Polars
expressions every engine and question filters with, in one place.

>>> import polars as pl
>>> from eventkit import rules
>>> events = pl.DataFrame({"account_id": [0, 7, 8], "event_type": ["InterestRateChanged"] * 3})
>>> banking = rules.get("banking")
>>> events.filter(global_expr(banking, events.schema))["account_id"].to_list()
[0]
>>> events.filter(key_filter(banking, [8], events.schema))["account_id"].to_list()
[0, 8]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import polars as pl

from eventkit.exceptions import ParameterError
from eventkit.rules.model import RuleSet

__all__ = ["global_expr", "key_filter", "key_frame"]


def global_expr(rules: RuleSet, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """True for the rule set's global events (see ``GlobalEvents``); ``schema``: the events'.

    A declared key value of another type than its column (the banking rules'
    account 0 against text ids) matches no event.
    """
    shared = rules.global_events
    if shared is None:
        return pl.lit(value=False)
    values = shared.key if isinstance(shared.key, tuple) else (shared.key,)
    parts = []
    for column, value in zip(rules.key_columns, values, strict=True):
        dtype = schema.get(column)
        if dtype is None or not _comparable(value, dtype):
            return pl.lit(value=False)
        parts.append(pl.col(column) == pl.lit(value))
    if shared.event_types is not None:
        parts.append(pl.col("event_type").is_in(list(shared.event_types)))
    return pl.all_horizontal(parts).fill_null(value=False)


def key_filter(rules: RuleSet, keys: Sequence[Any], schema: Mapping[str, pl.DataType]
               ) -> pl.Expr:
    """True for the events of ``keys`` (values, or tuples for a composite key) and the globals."""
    columns = rules.key_columns
    if len(columns) == 1:
        wanted = pl.col(columns[0]).is_in(key_frame(rules, keys, schema).to_series().implode())
    else:
        frame = key_frame(rules, keys, schema)
        wanted = pl.struct(columns).is_in(frame.select(pl.struct(columns)).to_series().implode())
    return wanted | global_expr(rules, schema)


def key_frame(rules: RuleSet, keys: Sequence[Any], schema: Mapping[str, pl.DataType]
              ) -> pl.DataFrame:
    """``keys`` as a frame of the key columns, in the events' types."""
    columns = rules.key_columns
    if len(columns) == 1:
        return _typed({columns[0]: _single(keys, columns[0])}, columns, schema, "col")
    rows = []
    for key in keys:
        if not isinstance(key, tuple | list) or len(key) != len(columns):
            msg = (f"the key is composite ({list(columns)}): give each key as a tuple of "
                   f"{len(columns)} values, not {key!r}")
            raise ParameterError(msg, param="keys")
        rows.append(tuple(key))
    return _typed(rows, columns, schema, "row")


def _typed(data: Any, columns: Sequence[str], schema: Mapping[str, pl.DataType],
           orient: Literal["col", "row"]) -> pl.DataFrame:
    """The keys in the events' types; a key that is not of its column's type is named."""
    try:
        return pl.DataFrame(data, schema={c: schema.get(c) for c in columns}, orient=orient)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
        types = ", ".join(f"{c} {schema.get(c)}" for c in columns)
        msg = f"keys must be values of the key column(s) ({types}): {_first_line(exc)}"
        raise ParameterError(msg, param="keys") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _single(keys: Sequence[Any], column: str) -> list[Any]:
    if isinstance(keys, str | bytes) or not isinstance(keys, Sequence | pl.Series):
        msg = f"keys must be a list of {column} values, not {keys!r}"
        raise ParameterError(msg, param="keys")
    return list(keys)


def _comparable(value: object, dtype: pl.DataType) -> bool:
    if isinstance(value, bool):
        return dtype == pl.Boolean
    if isinstance(value, int):
        return dtype.is_integer()
    if isinstance(value, str):
        return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)
    return False
