"""Charts of any stream's state: a numeric field per key over time, and how keys stand.

For archives of one's own (orders keyed by UUID, subscriptions, devices):
the key is whatever the rule set names, the field any numeric state field.
Money fields (``Field(money=True)``) are shown in currency units.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import cast

import altair as alt
import polars as pl

from eventkit.exceptions import ParameterError, WorkbenchError
from eventkit.workbench.charts._common import (
    SIZE,
    need_columns,
    tip_time,
    with_when,
    x_time,
    y_money,
)
from eventkit.workbench.format import Currency, Sentence, number_text

__all__ = ["field_history", "state_counts"]


def field_history(history: pl.LazyFrame | pl.DataFrame, field: str, *,
                  key: str | Sequence[str], keys: Collection[object], money: bool = False,
                  currency: Currency | str | None = None, title: str | None = None,
                  max_points: int = 2000) -> alt.Chart | Sentence:
    """Step lines of ``field`` after each event, one line per key in ``keys``.

    ``history`` is a replay's history; ``key`` the rule set's key column(s)
    (a composite key is labelled ``a / b``, and each of ``keys`` is a tuple);
    ``field`` a numeric state field; ``money`` shows its minor units in
    ``currency`` (default: the workbench's), on the axis and exactly in the
    tooltips. At most ``max_points`` events are drawn: the latest (the earlier
    ones are left out, with a note in the subtitle). No keys is a
    :class:`Sentence`; a column that is not in the history, a field that is
    not a number, or a key without events is refused, naming it.

    Examples
    --------
    >>> import eventkit
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
    ...     "order": ["o-1", "o-1", "o-2"], "event_type": ["Deposit", "Fee", "Deposit"],
    ...     "event_time": t, "recorded_at": t, "amount": [10_000, 250, 500]})
    >>> rules = eventkit.rules.get("balance").with_params()
    >>> import dataclasses
    >>> history = eventkit.replay(events, dataclasses.replace(rules, key="order",
    ...                                                       global_events=None)).history
    >>> chart = field_history(history, "balance", key="order", keys=["o-1"], money=True)
    >>> chart.data.select("key", "value", "text").rows()
    [('o-1', 100.0, '$100.00'), ('o-1', 97.5, '$97.50')]
    >>> field_history(history, "balance", key="order", keys=[])
    No keys chosen: no balance to draw.

    """
    frame = history.lazy()
    columns = [key] if isinstance(key, str) else list(key)
    dtype = need_columns(frame, "the history", key=columns, field=field)[field]
    if not dtype.is_numeric():
        msg = (f"{field!r} is {dtype}: field_history draws a number after each event "
               "(state_counts counts the keys per value of a status)")
        raise ParameterError(msg, param="field")
    if money and not dtype.is_integer():
        msg = f"{field!r} is {dtype}: money is whole minor units (an integer field)"
        raise ParameterError(msg, param="money")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        msg = f"must be a positive whole number, not {max_points!r}"
        raise ParameterError(msg, param="max_points")
    units = Currency.of(currency)
    chosen = [keys] if isinstance(keys, str) else list(keys)
    wanted = pl.Series([" / ".join(map(str, k)) if isinstance(k, tuple | list) else str(k)
                        for k in chosen], dtype=pl.String)
    if wanted.len() == 0:
        return Sentence(f"No keys chosen: no {field} to draw.")
    label = (pl.col(columns[0]).cast(pl.String) if len(columns) == 1
             else pl.concat_str([pl.col(c).cast(pl.String) for c in columns], separator=" / "))
    data = (frame
            .select(label.alias("key"), pl.col("event_time").alias("time"), "seq",
                    "event_type", pl.col(field).alias("value"))
            .filter(pl.col("key").is_in(wanted.implode()))
            .collect())
    missing = wanted.filter(~wanted.is_in(data["key"].implode())).unique(maintain_order=True)
    if missing.len():
        msg = (f"no events of {' / '.join(columns)} {', '.join(missing.head(5))}"
               f"{' …' * (missing.len() > 5)} in the history")
        raise WorkbenchError(msg)
    dropped = max(0, data.height - max_points)
    data = data.sort("time", "seq").tail(max_points).sort("key", "time", "seq")
    text = (units.text(pl.col("value")) if money else number_text(pl.col("value"))
            if dtype.is_integer() else pl.col("value").cast(pl.String))
    data = data.with_columns(with_when(), text.alias("text"),
                             (units.major(pl.col("value")) if money
                              else pl.col("value").cast(pl.Float64)).alias("value"))
    subtitle = (f"{field} after each event" + (f" ({units.symbol.strip()})" if money else "")
                + (f"; the first {dropped:,} events left out" if dropped else ""))
    if title is None:
        title = (f"{field} of {', '.join(wanted)}" if len(wanted) <= 2
                 else f"{field} of {len(wanted)} keys ({' / '.join(columns)})")
    return alt.Chart(data, title=alt.Title(title, subtitle=subtitle)).mark_line(
        interpolate="step-after", point=True,
    ).encode(
        x=x_time(),
        y=alt.Y("value:Q", axis=y_money(field, units) if money else alt.Axis(title=field)),
        color=alt.Color("key:N", title=" / ".join(columns)),
        tooltip=[alt.Tooltip("key:N", title=" / ".join(columns)), tip_time(),
                 alt.Tooltip("event_type:N", title="event"),
                 alt.Tooltip("text:N", title=field)],
    ).properties(**SIZE)


def state_counts(state: pl.LazyFrame | pl.DataFrame, field: str, *, title: str = "",
                 noun: str = "keys") -> alt.Chart | Sentence:
    """A bar per value of ``field`` (a status): how many keys (``noun``: orders...) stand there.

    A key without a value counts under "(none)"; no keys at all is a :class:`Sentence`.

    Examples
    --------
    >>> chart = state_counts(pl.DataFrame({"status": ["paid", "paid", None]}), "status")
    >>> chart.data.rows()
    [('paid', 2), ('(none)', 1)]
    >>> state_counts(pl.DataFrame({"status": []}), "status", noun="orders")
    No orders to count by status.

    """
    frame = state.lazy()
    dtype = need_columns(frame, "the state", field=field)[field]
    if dtype.is_nested():
        msg = f"{field!r} is {dtype}: state_counts counts the keys per value of a plain field"
        raise ParameterError(msg, param="field")
    data = (frame.group_by(pl.col(field).cast(pl.String).fill_null("(none)").alias("value"))
            .len("keys").sort("keys", "value", descending=[True, False]).collect())
    if data.height == 0:
        return Sentence(f"No {noun} to count by {field}.")
    return cast("alt.Chart", alt.Chart(data, title=title or f"{noun} by {field}").mark_bar(
    ).encode(
        x=alt.X("keys:Q", title=noun), y=alt.Y("value:N", sort="-x", title=field),
        tooltip=[alt.Tooltip("value:N", title=field),
                 alt.Tooltip("keys:Q", title=noun, format=",")],
    ).properties(width=SIZE["width"], height=min(300, 28 * data.height)))
