"""Charts of time travel: what late events restated."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import altair as alt
import polars as pl

from eventkit.exceptions import ParameterError
from eventkit.workbench.charts._common import (
    GAIN_COLOUR,
    KEY,
    LOSS_COLOUR,
    MINUTE,
    SIZE,
    describe,
    period_of,
    tip_time,
    with_when,
    x_time,
    y_money,
    zero_rule,
)
from eventkit.workbench.format import Currency, Sentence, time_text

__all__ = ["restatement_view", "totals_over_time"]


def restatement_view(
    table: pl.LazyFrame | pl.DataFrame,
    *,
    field: str = "balance",
    money: bool = True,
    max_points: int = 2000,
    currency: Currency | str | None = None,
    zone: str | None = None,
) -> alt.LayerChart | Sentence:
    """Chart what late events restated: per event, the change of ``field`` at its time.

    Parameters
    ----------
    table
        :func:`eventkit.questions.temporal.restatements` output.
    field
        The state field whose ``<field>_delta`` (as known now minus as known then)
        is drawn.
    money
        ``field`` is in minor units: show currency units.
    max_points
        When there are more late events than this, each point is the sum of
        the changes of a period (whole days, hours or minutes) instead.

    currency, zone
        How money and instants read (default: USD, UTC).

    Returns
    -------
    alt.LayerChart or Sentence
        A zero line and one point per late event (or per period), gains green
        and losses red; a sentence when no late event changed anything.

    Raises
    ------
    ValueError
        ``table`` has no ``<field>_delta`` column.

    Examples
    --------
    >>> import eventkit
    >>> from datetime import UTC, datetime
    >>> d = lambda day: datetime(2024, 1, day, tzinfo=UTC)
    >>> events = pl.DataFrame({"event_id": ["a", "late"], "seq": [0, 1],
    ...     "account_id": [1, 1], "event_type": ["Deposit", "Correction"],
    ...     "event_time": [d(1), d(2)], "recorded_at": [d(1), d(10)], "amount": [100, -30]})
    >>> table = eventkit.questions.temporal.restatements(events, known_at="2024-01-05",
    ...                                        now_known_at="2024-01-31")
    >>> chart = restatement_view(table)
    >>> chart.to_dict()["title"]["text"]
    'Restatements: 1 late event changed balance'
    >>> chart.layer[1].data.select("event_id", "delta", "delta_text").rows()
    [('late', -0.3, '−$0.30')]
    >>> restatement_view(table.head(0))
    No late event changed balance: nothing was restated.

    """
    delta = f"{field}_delta"
    frame = table.lazy().collect()
    if delta not in frame.columns:
        msg = (f"no column {delta!r} in the restatements table (columns: {frame.columns}); "
               "is field the name of a numeric state field?")
        raise ParameterError(msg, param="field")
    if frame.height == 0:
        return Sentence(f"No late event changed {field}: nothing was restated.")
    unit = Currency.of(currency) if money else None
    scale = 10**unit.minor if unit is not None else 1
    words = (unit.signed_text if unit is not None
             else lambda e: e.cast(pl.String))
    n = frame.height
    if n <= max_points:
        data = frame.select(KEY, pl.col("instant").alias("time"), "event_id", "event_type",
                            "recorded_at", pl.col(delta).alias("#minor")).with_columns(
            with_when(zone=zone), time_text(pl.col("recorded_at"), zone=zone).alias("recorded"))
        tooltip = [alt.Tooltip(f"{KEY}:N", title="account"), alt.Tooltip("event_id:N",
                   title="event"), alt.Tooltip("event_type:N", title="type"),
                   tip_time("dated"), alt.Tooltip("recorded:N", title="recorded"),
                   alt.Tooltip("delta_text:N", title=f"change of {field}")]
        subtitle = f"change of {field} at each late event's time (as known now minus then)"
    else:
        # instant is a Datetime column without nulls: the bounds of its rows are datetimes
        span = cast("datetime", frame["instant"].max()) - cast("datetime", frame["instant"].min())
        every = period_of(span, max_points, finest=MINUTE)
        data = (frame.group_by(pl.col("instant").dt.truncate(every).alias("time"))
                .agg(pl.col(delta).sum().alias("#minor"), pl.len().alias("events"),
                     pl.col(KEY).n_unique().alias("accounts"))
                .sort("time").with_columns(with_when(zone=zone)))
        tooltip = [tip_time(f"{describe(every)} from"),
                   alt.Tooltip("delta_text:N", title=f"change of {field}"),
                   alt.Tooltip("events:Q", title="late events"), alt.Tooltip("accounts:Q")]
        subtitle = f"total change of {field} per {describe(every)} (as known now minus then)"
    data = data.with_columns((pl.col("#minor") / scale).alias("delta"),
                             words(pl.col("#minor")).alias("delta_text")).drop("#minor")
    # time: a Datetime column without nulls, not empty: its bounds are datetimes
    left, right = cast("datetime", data["time"].min()), cast("datetime", data["time"].max())
    pad = max((right - left) / 8, MINUTE)
    y_axis = (y_money(f"change of {field} ({unit.code})", unit) if unit is not None
              else alt.Axis(title=f"change of {field}"))
    points = alt.Chart(data).mark_circle(size=80).encode(
        x=x_time(left - pad, right + pad),
        y=alt.Y("delta:Q", axis=y_axis),
        color=alt.condition(alt.datum.delta < 0, alt.value(LOSS_COLOUR),
                            alt.value(GAIN_COLOUR)),
        tooltip=tooltip)
    layers: list[alt.Chart] = [zero_rule(), points]
    if data.height <= 20 and KEY in data.columns:  # few points: say what each is on the chart
        layers.append(alt.Chart(data.with_columns(label=pl.format(
            "account {}: {}", pl.col(KEY), pl.col("delta_text")))).mark_text(
            align="left", dx=9, fontSize=11).encode(x="time:T", y="delta:Q", text="label:N"))
    title = alt.Title(f"Restatements: {n:,} late event{'s' * (n != 1)} changed {field}",
                      subtitle=[subtitle, "green: the value is higher than reported; "
                                          "red: lower"])
    # no layer has a row, column or facet encoding, so alt.layer makes no FacetChart
    return cast("alt.LayerChart", alt.layer(*layers, title=title)).properties(**SIZE)


def totals_over_time(
    grid: pl.LazyFrame | pl.DataFrame,
    field: str = "balance",
    *,
    currency: Currency | str | None = None,
    zone: str | None = None,
    title: str | None = None,
) -> alt.LayerChart | Sentence:
    """The total of a money field over all keys at each instant of a grid (e.g. month ends).

    ``grid`` is :meth:`eventkit.ReplayResult.at_times`'s frame (``instant``, the
    key, the fields). One point per instant, joined by a line; the tooltip
    gives the total and how many accounts it sums.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> ends = [datetime(2024, 1, 31, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)]
    >>> grid = pl.DataFrame({"instant": [ends[0], ends[1], ends[1]], "account_id": [1, 1, 2],
    ...                      "balance": [10_000, 12_000, -500]})
    >>> chart = totals_over_time(grid)
    >>> chart.data.select("total_text", "accounts").rows()
    [('$100.00', 1), ('$115.00', 2)]

    """
    frame = grid.lazy().collect()
    if frame.height == 0:
        return Sentence(f"No account has a {field} at these instants yet.")
    money = Currency.of(currency)
    data = (frame.group_by(pl.col("instant").alias("time"))
            .agg(pl.col(field).sum().alias("#minor"), pl.len().alias("accounts"))
            .sort("time")
            .with_columns(with_when(zone=zone), money.text(pl.col("#minor")).alias("total_text"),
                          money.major(pl.col("#minor")).alias("total"))
            .drop("#minor"))
    first, last = cast("datetime", data["time"].min()), cast("datetime", data["time"].max())
    pad = max((last - first) / 40, MINUTE)
    base = alt.Chart(data).encode(x=x_time(first - pad, last + pad))
    line = base.mark_line(color="#1f77b4").encode(
        y=alt.Y("total:Q", axis=y_money(f"total {field} ({money.code})", money),
                scale=alt.Scale(zero=False)))
    points = base.mark_point(filled=True, size=70, color="#1f77b4").encode(
        y="total:Q", tooltip=[tip_time(), alt.Tooltip("total_text:N", title=f"total {field}"),
                              alt.Tooltip("accounts:Q", format=",", title="accounts")])
    return cast("alt.LayerChart", alt.layer(line, points, title=alt.Title(
        title or f"Total {field} of all accounts", subtitle=(
            f"at {len(data):,} instants from {data['when'][0]} to {data['when'][-1]}; "
            "each account counted from its first event")))).properties(**SIZE)
