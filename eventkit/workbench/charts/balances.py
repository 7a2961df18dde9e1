"""Charts of replayed balances: lines per account, the spread of all accounts, an as-of marker."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, cast

import altair as alt
import polars as pl

from eventkit._typing import Instant
from eventkit.exceptions import ParameterError
from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import to_instant
from eventkit.workbench.charts._common import (
    DAY,
    KEY,
    MARKER_COLOUR,
    MINUTE,
    SIZE,
    TIME_TIP,
    X_TIME,
    Y_TITLE,
    TimeWindow,
    describe,
    period_of,
    to_units,
)

__all__ = ["as_of_marker", "balance_history"]

#: Largest accounts x periods grid the percentile chart builds; more accounts mean longer periods.
GRID_CELLS: Final = 10_000_000

#: Percentiles of the all-accounts chart: column name -> quantile.
PERCENTILES: Final = {"p10": 0.1, "median": 0.5, "p90": 0.9}




def balance_history(
    history: pl.LazyFrame | pl.DataFrame,
    *,
    accounts: Collection[object] | None = None,
    start: Instant | None = None,
    end: Instant | None = None,
    max_points: int = 2000,
) -> alt.Chart | alt.LayerChart:
    """Chart balances over time: a step line per account, or the spread of all accounts.

    Parameters
    ----------
    history
        ``eventkit.replay(events).history``: canonical events with ``balance``
        (cents) after each.
    accounts
        Account ids to draw, one coloured line each. ``None`` draws all accounts
        as a band from the 10th to the 90th percentile and a median line of the
        balances at the end of every day (of every few days when accounts x days
        would exceed :data:`GRID_CELLS`), counting each account from its first event.
    start, end
        The window to draw (default: from the first to the last event). Anything
        :func:`eventkit.timeutil.to_instant` reads: an aware datetime, an ISO
        string with an offset, or a date, which means the start of that UTC day
        for ``start`` and its end for ``end``. Lines begin with the balance
        carried into the window and run to its end.
    max_points
        Upper bound on the chart's data rows. Lines with more points keep the
        last balance of equal periods (whole minutes, hours or days); the band
        uses at most this many periods.

    Returns
    -------
    alt.Chart or alt.LayerChart
        The line chart, or the band and median layered.

    Raises
    ------
    eventkit.InstantError
        ``start`` or ``end`` is naive or malformed.
    ValueError
        Nothing to draw, ``start`` after ``end``, or ``max_points`` too small
        for the number of lines.

    Examples
    --------
    >>> import eventkit
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 2], "event_type": ["Deposit", "Fee", "Deposit"],
    ...     "event_time": t, "recorded_at": t, "amount": [10_000, 250, 500]})
    >>> history = eventkit.replay(events).history
    >>> chart = balance_history(history, accounts=[1], end="2024-01-04")
    >>> [(f"{t:%m-%d %H:%M}", units) for t, units in chart.data.select("time", "balance").rows()]
    [('01-01 00:00', 100.0), ('01-02 00:00', 97.5), ('01-04 23:59', 97.5)]
    >>> chart.to_dict()["title"]["text"]
    'Balance history of account 1'
    >>> band = balance_history(history, start="2024-01-02")  # all accounts: percentiles
    >>> band.data.select(pl.col("time").dt.day(), "median", "accounts").rows()
    [(2, 97.5, 1), (3, 51.25, 2)]

    """
    if max_points < 1:
        msg = f"must be positive, not {max_points}"
        raise ParameterError(msg, param="max_points")
    events = history.lazy()
    if accounts is not None:
        events = events.filter(pl.col(KEY).is_in(list(accounts)))
    window = TimeWindow.of(events, start, end)
    if accounts is None:
        return _band_chart(window, max_points)
    return _line_chart(window, max_points)


def as_of_marker(chart: alt.Chart | alt.LayerChart, instant: Instant) -> alt.LayerChart:
    """Mark an instant on a time chart: a vertical rule labelled with the instant.

    Parameters
    ----------
    chart
        A chart whose x axis is ``time`` (UTC), e.g. from :func:`balance_history`.
    instant
        Anything :func:`eventkit.timeutil.to_instant` reads; a date means the
        end of that UTC day, as in ``ReplayResult.as_of``.

    Returns
    -------
    alt.LayerChart
        ``chart``'s layers, then the rule and its label; the title stays on top.

    Examples
    --------
    >>> import eventkit
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2)]
    >>> events = pl.DataFrame({"event_id": ["a", "b"], "seq": [0, 1], "account_id": [1, 1],
    ...     "event_type": ["Deposit", "Fee"], "event_time": t, "recorded_at": t,
    ...     "amount": [10_000, 250]})
    >>> lines = balance_history(eventkit.replay(events).history, accounts=[1])
    >>> spec = as_of_marker(lines, "2024-01-01").to_dict()
    >>> [layer["mark"]["type"] for layer in spec["layer"]], spec["title"]["text"]
    (['line', 'rule', 'text'], 'Balance history of account 1')
    >>> [r["label"] for d in spec["datasets"].values() for r in d if "label" in r]
    ['as of 2024-01-01 23:59 UTC']

    """
    t = to_instant(instant, param="as_of")
    marker = pl.DataFrame({"time": [t], "label": [f"as of {t:%Y-%m-%d %H:%M} UTC"]},
                          schema={"time": TIME_DTYPE, "label": pl.String})
    base = alt.Chart(marker).encode(x=X_TIME)
    rule = base.mark_rule(color=MARKER_COLOUR, strokeDash=[4, 3], strokeWidth=2)
    text = base.mark_text(align="left", dx=4, dy=-4, baseline="bottom", color=MARKER_COLOUR
                          ).encode(text="label:N", y=alt.value(0))
    layers = list(chart.layer) if isinstance(chart, alt.LayerChart) else [chart]
    title = chart["title"]
    plain = []
    for layer in layers:
        layer = layer.copy()
        layer["title"] = alt.Undefined  # one title, on the layer chart
        plain.append(layer)
    # alt.layer facets only when every layer has the same row/column/facet encoding; the
    # rule and the text have none, so this is a LayerChart
    return cast("alt.LayerChart", alt.layer(*plain, rule, text, title=title))


def _line_chart(window: TimeWindow, max_points: int, *, title: str | None = None,
                color: alt.Color | None = None) -> alt.Chart:
    """Step lines, one per ``window.by`` value; by default one per account, titled by ids."""
    by = window.by
    n = window.accounts
    periods = max_points // n - 3  # a period can split in two, plus the opening and closing points
    if periods < 1:
        msg = (f"{max_points} is too small for {n} lines (at least {4 * n}); "
               "raise it, or pass accounts=None for the percentile chart")
        raise ParameterError(msg, param="max_points")
    exact = window.inside + 2 * n <= max_points
    every = None if exact else period_of(window.right - window.left, periods, finest=MINUTE)
    points = window.last_balances(every, window.left)
    closing = (points.group_by(by).agg(pl.col("balance").sort_by("time").last())
               .select(by, pl.lit(window.right, TIME_DTYPE).alias("time"), "balance"))
    data = (pl.concat([points, closing])
            .unique([by, "time"])  # a closing point may repeat the last one
            .sort(by, "time")
            .with_columns(to_units("balance"))
            .collect())
    if title is None:
        ids = data[by].unique().sort().to_list()
        title = (f"Balance history of account{'s' * (len(ids) > 1)} {', '.join(map(str, ids))}"
                 if len(ids) <= 10 else f"Balance history of {len(ids)} accounts")
    color = color if color is not None else alt.Color(f"{KEY}:N", title="account")
    subtitle = window.subtitle() + ("" if every is None else
                                    f"; last balance of every {describe(every)}")
    return alt.Chart(data, title=alt.Title(title, subtitle=subtitle)).mark_line(
        interpolate="step-after"
    ).encode(
        x=X_TIME,
        y=alt.Y("balance:Q", title=Y_TITLE),
        color=color,
        tooltip=[alt.Tooltip(f"{by}:N", title=color["title"]), TIME_TIP,
                 alt.Tooltip("balance:Q", format=",.2f")],
    ).properties(**SIZE)


def _band_chart(window: TimeWindow, max_points: int) -> alt.LayerChart:
    periods = max(1, min(max_points, GRID_CELLS // window.accounts) - 1)
    every = period_of(window.right - window.left, periods, finest=DAY)
    floor, ceiling = pl.Series([window.left, window.right], dtype=TIME_DTYPE).dt.truncate(every)
    # Each balance holds from its period until the account's next change (or the last period).
    until = pl.col("time").shift(-1).over(KEY).fill_null(pl.lit(ceiling + every, TIME_DTYPE))
    data = (window.last_balances(every, floor)
            .sort(KEY, "time")
            .select("balance", pl.datetime_ranges("time", until, every, closed="left"))
            .explode("time")
            .group_by("time")
            .agg(*(pl.col("balance").quantile(q, "linear").alias(name)
                   for name, q in PERCENTILES.items()),
                 pl.len().alias("accounts"))
            .with_columns(to_units(*PERCENTILES))
            .sort("time")
            .collect())
    base = alt.Chart(data).encode(x=X_TIME).properties(**SIZE)
    band = base.mark_area(interpolate="step-after", opacity=0.3).encode(
        y=alt.Y("p10:Q", title=Y_TITLE),
        y2="p90:Q",
        tooltip=[TIME_TIP, *(alt.Tooltip(f"{name}:Q", format=",.2f") for name in PERCENTILES),
                 alt.Tooltip("accounts:Q", format=",")],
    )
    median = base.mark_line(interpolate="step-after").encode(y="median:Q")
    title = alt.Title(
        f"Balances of {window.accounts:,} accounts: median and 10th-90th percentile",
        subtitle=f"{window.subtitle()}; balance at the end of every {describe(every)}",
    )
    # no layer has a row, column or facet encoding, so alt.layer makes no FacetChart
    return cast("alt.LayerChart", alt.layer(band, median, title=title))



