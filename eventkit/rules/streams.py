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
from typing import Any

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
        wanted = pl.col(columns[0]).is_in(_typed(_single(keys, columns[0]), columns[0],
                                                 schema.get(columns[0])).implode())
    else:
        frame = key_frame(rules, keys, schema)
        wanted = pl.struct(columns).is_in(frame.select(pl.struct(columns)).to_series().implode())
    return wanted | global_expr(rules, schema)


def key_frame(rules: RuleSet, keys: Sequence[Any], schema: Mapping[str, pl.DataType]
              ) -> pl.DataFrame:
    """``keys`` as a frame of the key columns, in the events' types."""
    columns = rules.key_columns
    if len(columns) == 1:
        return pl.DataFrame(_typed(_single(keys, columns[0]), columns[0], schema.get(columns[0])))
    rows = []
    for key in _single(keys, str(list(columns))):
        if not isinstance(key, tuple | list) or len(key) != len(columns):
            msg = (f"the key is composite ({list(columns)}): give each key as a tuple of "
                   f"{len(columns)} values, not {key!r}")
            raise ParameterError(msg, param="keys")
        rows.append(tuple(key))
    return pl.DataFrame([_typed([r[i] for r in rows], c, schema.get(c))
                         for i, c in enumerate(columns)])


def _single(keys: Sequence[Any], column: str) -> list[Any]:
    if isinstance(keys, str | bytes) or not isinstance(keys, Sequence | pl.Series):
        msg = f"keys must be a list of {column} values, not {keys!r}"
        raise ParameterError(msg, param="keys")
    return list(keys)


def _typed(values: list[Any], column: str, dtype: pl.DataType | None) -> pl.Series:
    """``values`` as a ``column`` of the events' ``dtype``; a value of another type is refused.

    Nothing is converted: ``"7"`` is no integer id, ``7`` no text id, and
    ``"2024-03-01"`` no date.
    """
    try:
        return pl.Series(column, values, dtype=dtype, strict=True)
    except (TypeError, OverflowError, pl.exceptions.PolarsError):
        for value in values:
            try:
                pl.Series([value], dtype=dtype, strict=True)
            except (TypeError, OverflowError, pl.exceptions.PolarsError):
                msg = (f"the key column {column} holds {dtype} values; {value!r} "
                       f"({type(value).__name__}) is not one")
                raise ParameterError(msg, param="keys") from None
        raise


def _comparable(value: object, dtype: pl.DataType) -> bool:
    if isinstance(value, bool):
        return dtype == pl.Boolean
    if isinstance(value, int):
        return dtype.is_integer()
    if isinstance(value, str):
        return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)
    return False
