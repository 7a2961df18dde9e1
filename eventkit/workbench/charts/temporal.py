"""Charts of time travel: what late events restated."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import altair as alt
import polars as pl

from eventkit.exceptions import ParameterError
from eventkit.workbench.charts._common import (
    KEY,
    MARKER_COLOUR,
    MINUTE,
    RUN_COLOURS,
    SIZE,
    TIME_TIP,
    X_TIME,
    describe,
    period_of,
)

__all__ = ["restatement_view"]


def restatement_view(
    table: pl.LazyFrame | pl.DataFrame,
    *,
    field: str = "balance",
    money: bool = True,
    max_points: int = 2000,
) -> alt.LayerChart:
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

    Returns
    -------
    alt.LayerChart
        A zero line and one point per late event (or per period).

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
    >>> chart.layer[1].data.select("event_id", "delta").rows()
    [('late', -0.3)]

    """
    delta = f"{field}_delta"
    frame = table.lazy().collect()
    if delta not in frame.columns:
        msg = (f"no column {delta!r} in the restatements table (columns: {frame.columns}); "
               "is field the name of a numeric state field?")
        raise ParameterError(msg, param="field")
    scale = 100 if money else 1
    n = frame.height
    if n <= max_points:
        data = frame.select(KEY, pl.col("instant").alias("time"), "event_id", "event_type",
                            "recorded_at", (pl.col(delta) / scale).alias("delta"))
        tooltip = [alt.Tooltip(f"{KEY}:N", title="account"), "event_id:N", "event_type:N",
                   TIME_TIP, alt.Tooltip("recorded_at:T", format="%Y-%m-%d %H:%M",
                                          formatType="utc"), alt.Tooltip("delta:Q", format=",")]
        subtitle = f"change of {field} at each late event's time (as known now minus then)"
    else:
        # instant is a Datetime column without nulls: the bounds of its rows are datetimes
        span = cast("datetime", frame["instant"].max()) - cast("datetime", frame["instant"].min())
        every = period_of(span, max_points, finest=MINUTE)
        data = (frame.group_by(pl.col("instant").dt.truncate(every).alias("time"))
                .agg((pl.col(delta).sum() / scale).alias("delta"), pl.len().alias("events"),
                     pl.col(KEY).n_unique().alias("accounts"))
                .sort("time"))
        tooltip = [TIME_TIP, alt.Tooltip("delta:Q", format=","), "events:Q", "accounts:Q"]
        subtitle = f"total change of {field} per {describe(every)} (as known now minus then)"
    points = alt.Chart(data).mark_circle(size=60).encode(
        x=X_TIME, y=alt.Y("delta:Q", title=f"change of {field}" + " (currency units)" * money),
        color=alt.condition(alt.datum.delta < 0, alt.value(MARKER_COLOUR),
                            alt.value(RUN_COLOURS[0])),
        tooltip=tooltip)
    zero = alt.Chart(pl.DataFrame({"delta": [0.0]})).mark_rule(color="gray").encode(y="delta:Q")
    title = alt.Title(f"Restatements: {n:,} late event{'s' * (n != 1)} changed {field}",
                      subtitle=subtitle)
    # no layer has a row, column or facet encoding, so alt.layer makes no FacetChart
    return cast("alt.LayerChart", alt.layer(zero, points, title=title)).properties(**SIZE)
