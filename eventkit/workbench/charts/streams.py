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

from eventkit.exceptions import WorkbenchError
from eventkit.workbench.charts._common import SIZE, tip_time, with_when, x_time, y_money
from eventkit.workbench.format import Currency

__all__ = ["field_history", "state_counts"]


def field_history(history: pl.LazyFrame | pl.DataFrame, field: str, *,
                  key: str | Sequence[str], keys: Collection[object], money: bool = False,
                  currency: Currency | str | None = None, title: str | None = None,
                  max_points: int = 2000) -> alt.Chart:
    """Step lines of ``field`` after each event, one line per key in ``keys``.

    ``history`` is a replay's history; ``key`` the rule set's key column(s)
    (a composite key is labelled ``a / b``); ``money`` shows minor units in
    ``currency`` (default: the workbench's). At most ``max_points`` events are
    drawn (the earliest beyond are dropped, with a note in the subtitle).

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
    >>> chart.data.select("key", "value").rows()
    [('o-1', 100.0), ('o-1', 97.5)]

    """
    columns = [key] if isinstance(key, str) else list(key)
    label = (pl.col(columns[0]).cast(pl.String) if len(columns) == 1
             else pl.concat_str([pl.col(c).cast(pl.String) for c in columns], separator=" / "))
    wanted = pl.Series([str(k) if not isinstance(k, tuple) else " / ".join(map(str, k))
                        for k in keys], dtype=pl.String)
    data = (history.lazy()
            .select(label.alias("key"), pl.col("event_time").alias("time"), "seq",
                    "event_type", pl.col(field).alias("value"))
            .filter(pl.col("key").is_in(wanted.implode()))
            .sort("key", "time", "seq")
            .collect())
    if data.height == 0:
        msg = f"no events of {list(wanted)} to draw"
        raise WorkbenchError(msg)
    dropped = max(0, data.height - max_points)
    data = data.tail(max_points)
    units = Currency.of(currency)
    data = data.with_columns(with_when())
    if money:
        data = data.with_columns(units.major(pl.col("value")))
    subtitle = (f"{field} after each event" + (f" ({units.symbol})" if money else "")
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
                 alt.Tooltip("value:Q", title=field, format=",.2f" if money else ",")],
    ).properties(**SIZE)


def state_counts(state: pl.LazyFrame | pl.DataFrame, field: str, *, title: str = "",
                 noun: str = "keys") -> alt.Chart:
    """A bar per value of ``field`` (a status): how many keys (``noun``: orders...) stand there.

    Examples
    --------
    >>> chart = state_counts(pl.DataFrame({"status": ["paid", "paid", "new"]}), "status")
    >>> chart.data.rows()
    [('paid', 2), ('new', 1)]

    """
    data = (state.lazy().group_by(pl.col(field).cast(pl.String)).len("keys")
            .sort("keys", field, descending=[True, False]).collect())
    return cast("alt.Chart", alt.Chart(data, title=title or f"{noun} by {field}").mark_bar(
    ).encode(
        x=alt.X("keys:Q", title=noun), y=alt.Y(f"{field}:N", sort="-x", title=field),
        tooltip=[f"{field}:N", alt.Tooltip("keys:Q", title=noun, format=",")],
    ).properties(width=SIZE["width"], height=min(300, 28 * max(data.height, 1))))
