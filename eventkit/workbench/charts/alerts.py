"""Charts of pattern alerts: one alert's events on a time line."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

import altair as alt
import polars as pl

from eventkit.exceptions import ParameterError
from eventkit.questions.patterns import BUILTINS
from eventkit.schema import TIME_DTYPE
from eventkit.workbench.charts._common import (
    KEY,
    SIZE,
    TIME,
    UNITS,
    shade,
    tip_time,
    with_when,
    x_time,
)
from eventkit.workbench.format import Currency, plural, span_words

__all__ = ["alert_timeline", "pattern_alerts"]


def alert_timeline(
    history: pl.LazyFrame | pl.DataFrame,
    alert: Mapping[str, Any] | pl.DataFrame,
    *,
    margin: timedelta | None = None,
    max_points: int = 2000,
    currency: Currency | str | None = None,
    zone: str | None = None,
) -> alt.LayerChart:
    """Chart one alert's events on a time axis: a lane per account, colour by event type.

    Parameters
    ----------
    history
        A replay's history (or canonical events); ``balance`` shows in the tooltip
        when present.
    alert
        One row of :func:`eventkit.questions.patterns.builtin_alerts` or of a pattern's
        ``detect`` (a mapping or a one-row frame): ``account_id``, optionally
        ``counterparty_id`` and ``pattern``, ``start_seq``, ``end_seq``,
        ``start_time``, ``end_time`` (a null end: still open, drawn up to the margin).
        With a ``counterparty_id``, the alert's events are both accounts' legs of
        the transfers between the two.
    margin
        Context drawn before the start and after the end (default: the alert's
        duration, at least one hour).
    max_points
        Upper bound on the chart's rows: the alert's own events are always
        kept, context events nearest the alert first.
    currency, zone
        How amounts and instants read (default: USD, UTC).

    Returns
    -------
    alt.LayerChart
        The alert's window shaded; points per event, the alert's events (its
        key's events from its start to its end event) large, opaque and
        labelled with their amounts, the context small and faint; for a pair
        of accounts, a line linking the two legs of each transfer in the alert.

    Raises
    ------
    ValueError
        ``alert`` is not one row, or ``max_points`` is smaller than the alert's events.

    Examples
    --------
    >>> import eventkit
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, 1, 1, h, tzinfo=UTC) for h in range(4)]
    >>> events = pl.DataFrame({"event_id": list("abcd"), "seq": [0, 1, 2, 3],
    ...     "account_id": [1] * 4, "event_type": ["Deposit", "Withdrawal", "Withdrawal", "Fee"],
    ...     "event_time": t, "recorded_at": t, "amount": [9_000, 100, 100, 50]})
    >>> alert = {"account_id": 1, "start_seq": 1, "end_seq": 2, "start_time": t[1],
    ...          "end_time": t[2], "pattern": "rapid_withdrawals"}
    >>> chart = alert_timeline(eventkit.replay(events).history, alert)
    >>> chart.layer[2].data.select("seq", "event_type", "in_alert", "amount_text").rows()
    ... # doctest: +NORMALIZE_WHITESPACE
    [(0, 'Deposit', False, '$90.00'), (1, 'Withdrawal', True, '$1.00'),
     (2, 'Withdrawal', True, '$1.00'), (3, 'Fee', False, '$0.50')]
    >>> chart.to_dict()["title"]["text"]
    'rapid_withdrawals alert on account 1'

    """
    row = _one_alert(alert)
    account, other = row["account_id"], row.get("counterparty_id")
    start, end = row["start_time"], row["end_time"]
    span = (end - start) if end is not None else timedelta(0)
    pad = margin if margin is not None else max(span, timedelta(hours=1))
    left, right = start - pad, (end if end is not None else start) + pad
    lanes = [account] if other is None else [account, other]
    key = pl.col(KEY) == account
    if other is not None:  # a pair: both legs of each transfer between the two
        key = (key & (pl.col("counterparty_id") == other)) | (
            (pl.col(KEY) == other) & (pl.col("counterparty_id") == account))
    first = (pl.col(TIME) > start) | (
        (pl.col(TIME) == start) & (pl.col("seq") >= row["start_seq"]))
    last = pl.lit(value=True) if end is None else (pl.col(TIME) < end) | (
        (pl.col(TIME) == end) & (pl.col("seq") <= row["end_seq"]))
    frame = history.lazy()
    extra = [c for c in ("amount", "balance", "event_id") if c in frame.collect_schema().names()]
    events = (frame.filter(pl.col(KEY).is_in(lanes),
                           pl.col(TIME).is_between(pl.lit(left, TIME_DTYPE),
                                                    pl.lit(right, TIME_DTYPE)))
              .select(KEY, TIME, "seq", "event_type", *extra,
                      *(["counterparty_id"] if other is not None else []))
              .with_columns((key & first & last).alias("in_alert"))
              .collect())
    inside = int(events["in_alert"].sum())
    if inside > max_points:
        msg = f"{max_points} is smaller than the alert's {inside} events"
        raise ParameterError(msg, param="max_points")
    distance = (pl.when(pl.col(TIME) < start).then(pl.lit(start, TIME_DTYPE) - pl.col(TIME))
                .otherwise(pl.col(TIME) - pl.lit(end or start, TIME_DTYPE)))
    money = Currency.of(currency)
    data = (events.sort(~pl.col("in_alert"), distance).head(max_points)
            .with_columns(*(money.text(pl.col(c)).alias(f"{c}_text")
                            for c in ("amount", "balance") if c in extra),
                          *(money.major(pl.col(c)) for c in ("amount", "balance") if c in extra))
            .with_columns(pl.col(TIME).alias("time"), pl.col(KEY).cast(pl.String),
                          with_when(TIME, zone=zone))
            .sort(TIME, "seq"))
    pattern = row.get("pattern") or "pattern"
    who = f"account {account}" if other is None else f"accounts {account} and {other}"
    window = (span_words(start, end, zone=zone) if end is not None
              else f"from {span_words(start, start, zone=zone).split(' to ')[0]}, still open")
    total = (money.words(int(events.filter("in_alert")["amount"].sum()))
             if "amount" in extra else None)
    title = alt.Title(f"{pattern} alert on {who}", subtitle=[
        f"{window}; {inside} event{'s' * (inside != 1)} in the alert (shaded)"
        + (f", {total} moved" if total else ""),
        f"context {_describe_span(pad)} either side, faint"
        + ("; a line links the two legs of each transfer" if other is not None else "")])
    tooltip = [tip_time(), alt.Tooltip(f"{KEY}:N", title="account"),
               alt.Tooltip("event_type:N", title="event"),
               *(alt.Tooltip(f"{c}_text:N", title=c) for c in ("amount", "balance")
                 if c in extra),
               alt.Tooltip("seq:Q"), alt.Tooltip("in_alert:N", title="in the alert")]
    x = x_time(left, right)
    y = alt.Y(f"{KEY}:N", title="account", sort=[str(v) for v in lanes])
    points = alt.Chart(data).mark_point(filled=True).encode(
        x=x, y=y,
        color=alt.Color("event_type:N", title="event type", legend=alt.Legend(orient="top")),
        size=alt.Size("in_alert:N", scale=alt.Scale(domain=[True, False], range=[200, 40]),
                      title="in the alert", legend=None),
        opacity=alt.Opacity("in_alert:N", scale=alt.Scale(domain=[True, False],
                                                          range=[1.0, 0.35]), legend=None),
        tooltip=tooltip,
    )
    layers: list[alt.Chart] = []
    if end is not None and end > start:
        layers.extend(shade(start, end, "alert window"))
    else:
        layers.extend(shade(start, start + pad / 50, "alert start"))
    if other is not None and "amount" in extra:  # link the legs of each transfer in the alert
        legs = data.filter("in_alert").group_by("time", "amount", maintain_order=True).agg(
            pl.col(KEY).min().alias("from"), pl.col(KEY).max().alias("to"), pl.len().alias("n"))
        layers.append(alt.Chart(legs.filter(pl.col("n") >= 2)).mark_rule(
            color="#555555", strokeDash=[3, 2]).encode(
            x="time:T", y=alt.Y("from:N", sort=[str(v) for v in lanes]), y2="to:N"))
    labels = alt.Chart(data.filter("in_alert")).mark_text(dy=-14, fontSize=11).encode(
        x="time:T", y=y, text="amount_text:N") if "amount" in extra else None
    layers.insert(2, points)
    return cast("alt.LayerChart", alt.layer(
        *layers, *([labels] if labels is not None else []), title=title
    ).properties(width=SIZE["width"], height=70 * len(lanes) + 50))


def pattern_alerts(alerts: pl.DataFrame, pattern: str, *, alert: int = 0) -> pl.DataFrame:
    """The alerts of one pattern, after checking the pattern's name and the alert's row.

    ``alerts`` is :func:`eventkit.questions.patterns.builtin_alerts`' table (or any
    with a ``pattern`` column); ``pattern`` must be a built-in pattern or one of
    its patterns, and ``alert`` a row of that pattern's alerts when it has any
    (no alerts at all is an empty frame: a result, not a mistake).

    Raises
    ------
    eventkit.ParameterError
        ``pattern`` is no known pattern (naming the known ones), or ``alert`` is
        not a row of its alerts (saying how many there are).

    Examples
    --------
    >>> found = pl.DataFrame({"pattern": ["structuring", "ping_pong"], "account_id": [4, 7]})
    >>> pattern_alerts(found, "ping_pong")["account_id"].to_list()
    [7]
    >>> pattern_alerts(found, "rapid_withdrawals").height
    0
    >>> pattern_alerts(found, "pingpong")
    Traceback (most recent call last):
    ...
    eventkit.ParameterError: pattern: no pattern 'pingpong'; known: negative_balance, ping_pong, \
rapid_withdrawals, structuring
    >>> pattern_alerts(found, "structuring", alert=3)
    Traceback (most recent call last):
    ...
    eventkit.ParameterError: alert: structuring has 1 alert (row 0), not a row 3

    """
    known = sorted({*BUILTINS, *alerts["pattern"].unique().drop_nulls().to_list()})
    if pattern not in known:
        msg = f"no pattern {pattern!r}; known: {', '.join(known)}"
        raise ParameterError(msg, param="pattern")
    rows = alerts.filter(pl.col("pattern") == pattern)
    if rows.height and (isinstance(alert, bool) or not isinstance(alert, int)
                        or not 0 <= alert < rows.height):
        rows_text = "row 0" if rows.height == 1 else f"rows 0 to {rows.height - 1}"
        msg = (f"{pattern} has {plural(rows.height, 'alert')} ({rows_text}), "
               f"not a row {alert!r}")
        raise ParameterError(msg, param="alert")
    return rows


def _one_alert(alert: Mapping[str, Any] | pl.DataFrame) -> dict[str, Any]:
    if isinstance(alert, pl.DataFrame):
        if alert.height != 1:
            msg = f"must be one row, got {alert.height}"
            raise ParameterError(msg, param="alert")
        return alert.row(0, named=True)
    return dict(alert)


def _describe_span(span: timedelta) -> str:
    """A duration in its largest whole unit, rounded down, for a subtitle.

    >>> _describe_span(timedelta(hours=36)), _describe_span(timedelta(minutes=90))
    ('1 day', '1 hour')
    """
    name, unit = next(((n, u) for n, u in UNITS if span >= u), UNITS[-1])
    count = max(1, span // unit)
    return f"{count} {name}" + "s" * (count != 1)
