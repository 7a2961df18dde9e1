"""Altair charts of replayed balances, small enough to live in a notebook.

Every chart is aggregated in Polars before Altair sees it, so its data has at
most ``max_points`` rows however long the event log: the default stays well
under Altair's 5,000-row limit (``MaxRowsError``) without VegaFusion, and a
saved notebook stays small. Balances are exact integer cents in eventkit;
charts show them as currency units (``cents / 100``) for display only.

In JupyterLab call :func:`enable_offline` once: Altair 6 otherwise loads Vega
from a CDN, and JupyterLab cannot draw Vega-Lite 6 specs on its own.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import altair as alt
import polars as pl

from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import to_instant

__all__ = [
    "EMBED_OPTIONS",
    "alert_timeline",
    "as_of_marker",
    "balance_history",
    "delta_distribution",
    "enable_offline",
    "enable_static",
    "export",
    "restatement_view",
    "schema_version_chart",
    "snapshot_chart",
    "storage_chart",
    "what_if",
]

#: vega-embed options of every chart: SVG (crisp, searchable), no "..." actions menu.
EMBED_OPTIONS: Final = {"renderer": "svg", "actions": False}

#: Largest accounts x periods grid the percentile chart builds; more accounts mean longer periods.
GRID_CELLS: Final = 10_000_000

#: Percentiles of the all-accounts chart: column name -> quantile.
PERCENTILES: Final = {"p10": 0.1, "median": 0.5, "p90": 0.9}

_KEY: Final = "account_id"
_TIME: Final = "event_time"
_DAY: Final = timedelta(days=1)
_MINUTE: Final = timedelta(minutes=1)
_UNITS: Final = (("day", _DAY), ("hour", timedelta(hours=1)), ("minute", _MINUTE))
_SIZE: Final = {"width": 640, "height": 320}
_MARKER_COLOUR: Final = "#d62728"
_RUN_COLOURS: Final = ["#1f77b4", "#ff7f0e"]  # baseline, scenario
_X: Final = alt.X("time:T", title="time (UTC)", scale=alt.Scale(type="utc"))
_Y_TITLE: Final = "balance (currency units)"
_TIME_TIP: Final = alt.Tooltip("time:T", title="time (UTC)", format="%Y-%m-%d %H:%M",
                               formatType="utc")

Instant = datetime | date | str


def enable_offline() -> None:
    """Make Altair charts render in JupyterLab without internet access.

    Charts become Altair's ``JupyterChart`` widget, whose JavaScript (Vega,
    Vega-Lite, vega-embed) is bundled locally by vl-convert instead of loaded
    from a CDN; they are drawn as SVG without the actions menu. Calling it
    again changes nothing.

    Examples
    --------
    >>> enable_offline()
    >>> alt.renderers.active, alt.renderers.options["offline"]
    ('jupyter', True)

    """
    # embed_options must go in this same call: a later set_embed_options() drops offline=True.
    alt.renderers.enable("jupyter", offline=True, embed_options=dict(EMBED_OPTIONS))


def enable_static() -> None:
    """Show charts as static SVG images, rendered in the kernel by vl-convert.

    For headless runs and HTML reports (``interactive = False`` in the
    notebooks): the saved notebook holds the picture itself, so it needs no
    JavaScript, no widget state and no network to be read.

    Examples
    --------
    >>> enable_static()
    >>> alt.renderers.active
    'svg'
    >>> enable_offline()

    """
    alt.renderers.enable("svg")


def balance_history(
    history: pl.LazyFrame | pl.DataFrame,
    *,
    accounts: Collection[int] | None = None,
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
        msg = f"max_points must be positive, not {max_points}"
        raise ValueError(msg)
    events = history.lazy()
    if accounts is not None:
        events = events.filter(pl.col(_KEY).is_in(list(accounts)))
    window = _Window.of(events, start, end)
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
    base = alt.Chart(marker).encode(x=_X)
    rule = base.mark_rule(color=_MARKER_COLOUR, strokeDash=[4, 3], strokeWidth=2)
    text = base.mark_text(align="left", dx=4, dy=-4, baseline="bottom", color=_MARKER_COLOUR
                          ).encode(text="label:N", y=alt.value(0))
    layers = list(chart.layer) if isinstance(chart, alt.LayerChart) else [chart]
    title = chart["title"]
    plain = []
    for layer in layers:
        layer = layer.copy()
        layer["title"] = alt.Undefined  # one title, on the layer chart
        plain.append(layer)
    return alt.layer(*plain, rule, text, title=title)


def what_if(
    baseline: pl.LazyFrame | pl.DataFrame,
    scenario: pl.LazyFrame | pl.DataFrame,
    *,
    account: int,
    start: Instant | None = None,
    end: Instant | None = None,
    labels: tuple[str, str] = ("baseline", "scenario"),
    max_points: int = 2000,
) -> alt.Chart:
    """Overlay one account's balance under two rule sets: as replayed, and a what-if.

    Parameters
    ----------
    baseline, scenario
        ``eventkit.replay(...).history`` under the actual rules and under the
        scenario's (e.g. ``rules.with_params(rate_table=...)``); other accounts
        are left out.
    account
        The account to draw.
    start, end, max_points
        As in :func:`balance_history`.
    labels
        Legend names of the two lines.

    Returns
    -------
    alt.Chart
        Two step lines, coloured and dashed by run.

    Examples
    --------
    >>> import eventkit
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)]
    >>> events = pl.DataFrame({"event_id": ["a", "b"], "seq": [0, 1], "account_id": [1, 1],
    ...     "event_type": ["Deposit", "Deposit"], "event_time": t, "recorded_at": t,
    ...     "amount": [100_000, 0]})
    >>> banking = eventkit.rulesets.get("banking").with_params(require_open=0)
    >>> at = lambda rate: banking.with_params(rate_table={"2023-01-01": rate})
    >>> chart = what_if(eventkit.replay(events, at(0.02)).history,
    ...                 eventkit.replay(events, at(0.05)).history, account=1)
    >>> chart.data.filter(pl.col("time") == t[1]).select("run", "balance").rows()
    [('baseline', 1009.97), ('scenario', 1024.93)]

    """
    runs = [frame.lazy().filter(pl.col(_KEY) == account)
            .select(pl.lit(label).alias("run"), _TIME, "seq", "balance")
            for frame, label in zip((baseline, scenario), labels, strict=True)]
    window = _Window.of(pl.concat(runs), start, end, by="run")
    colour = alt.Color("run:N", title="run", sort=list(labels),
                       scale=alt.Scale(domain=list(labels), range=_RUN_COLOURS))
    chart = _line_chart(window, max_points, color=colour,
                        title=f"Account {account}: {labels[0]} and {labels[1]}")
    return chart.encode(strokeDash=alt.StrokeDash("run:N", sort=list(labels), legend=None))


def delta_distribution(
    state: pl.LazyFrame | pl.DataFrame,
    field: str = "interest",
    *,
    bins: int = 40,
    money: bool = True,
) -> alt.Chart:
    """Histogram of per-key deltas of ``field`` between two runs (keys that changed only).

    ``state`` is :meth:`eventkit.whatif.Comparison.state` (or ``as_of``): its
    ``<field>_delta`` column is binned in Polars, so the chart holds ``bins``
    rows however many keys there are. ``money`` shows cents as currency units.

    Examples
    --------
    >>> state = pl.DataFrame({"account_id": [1, 2, 3, 4], "interest_delta": [0, 150, 250, 990]})
    >>> chart = delta_distribution(state, bins=2)
    >>> chart.data.select("keys").to_series().to_list()
    [2, 1]

    """
    column = f"{field}_delta"
    deltas = state.lazy().filter(pl.col(column) != 0).select(
        (pl.col(column) / (100 if money else 1)).alias("delta")).collect()["delta"]
    title = f"Change of {field} per account ({deltas.len():,} accounts changed)"
    if deltas.len() == 0:
        data = pl.DataFrame(schema={"low": pl.Float64, "high": pl.Float64, "keys": pl.Int64})
    else:
        lo, hi = float(deltas.min()), float(deltas.max())
        width = (hi - lo) / bins or 1.0
        index = ((deltas - lo) / width).floor().clip(0, bins - 1).cast(pl.Int64)
        data = (pl.DataFrame({"bin": index}).group_by("bin").len("keys").sort("bin")
                .select((lo + pl.col("bin") * width).alias("low"),
                        (lo + (pl.col("bin") + 1) * width).alias("high"), "keys"))
    unit = " (currency units)" if money else ""
    return alt.Chart(data, title=title).mark_bar().encode(
        x=alt.X("low:Q", bin="binned", title=f"{field} under B − under A{unit}"),
        x2="high:Q",
        y=alt.Y("keys:Q", title="accounts"),
        tooltip=[alt.Tooltip("low:Q", format=",.2f"), alt.Tooltip("high:Q", format=",.2f"),
                 "keys:Q"],
    ).properties(**_SIZE)


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
        :func:`eventkit.temporal.restatements` output.
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
    >>> table = eventkit.temporal.restatements(events, known_at="2024-01-05",
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
        raise ValueError(msg)
    scale = 100 if money else 1
    n = frame.height
    if n <= max_points:
        data = frame.select(_KEY, pl.col("instant").alias("time"), "event_id", "event_type",
                            "recorded_at", (pl.col(delta) / scale).alias("delta"))
        tooltip = [alt.Tooltip(f"{_KEY}:N", title="account"), "event_id:N", "event_type:N",
                   _TIME_TIP, alt.Tooltip("recorded_at:T", format="%Y-%m-%d %H:%M",
                                          formatType="utc"), alt.Tooltip("delta:Q", format=",")]
        subtitle = f"change of {field} at each late event's time (as known now minus then)"
    else:
        span = frame["instant"].max() - frame["instant"].min()  # type: ignore[operator]
        every = _period(span, max_points, finest=_MINUTE)
        data = (frame.group_by(pl.col("instant").dt.truncate(every).alias("time"))
                .agg((pl.col(delta).sum() / scale).alias("delta"), pl.len().alias("events"),
                     pl.col(_KEY).n_unique().alias("accounts"))
                .sort("time"))
        tooltip = [_TIME_TIP, alt.Tooltip("delta:Q", format=","), "events:Q", "accounts:Q"]
        subtitle = f"total change of {field} per {_describe(every)} (as known now minus then)"
    points = alt.Chart(data).mark_circle(size=60).encode(
        x=_X, y=alt.Y("delta:Q", title=f"change of {field}" + " (currency units)" * money),
        color=alt.condition(alt.datum.delta < 0, alt.value(_MARKER_COLOUR),
                            alt.value(_RUN_COLOURS[0])),
        tooltip=tooltip)
    zero = alt.Chart(pl.DataFrame({"delta": [0.0]})).mark_rule(color="gray").encode(y="delta:Q")
    title = alt.Title(f"Restatements: {n:,} late event{'s' * (n != 1)} changed {field}",
                      subtitle=subtitle)
    return alt.layer(zero, points, title=title).properties(**_SIZE)


def export(chart: alt.TopLevelMixin, path: str | Path, *, scale: float = 2.0) -> Path:
    """Write a chart as a static ``.svg`` or ``.png`` image, for reports.

    Rendered by vl-convert in this process: no browser, no JavaScript, no
    network. The file appears complete or not at all (written beside, then
    renamed).

    Parameters
    ----------
    chart
        Any Altair chart.
    path
        Where to write; the suffix (``.svg`` or ``.png``) chooses the format.
    scale
        Pixel density of a PNG (2 = twice the chart's size in pixels).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        Another suffix.

    Examples
    --------
    >>> import tempfile
    >>> chart = alt.Chart(pl.DataFrame({"x": [1, 2]})).mark_point().encode(x="x:Q")
    >>> svg = export(chart, Path(tempfile.mkdtemp()) / "chart.svg")
    >>> svg.read_text().startswith("<svg")
    True

    """
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        msg = f"export: {target} must end in .svg or .png"
        raise ValueError(msg)
    partial = target.with_name(f".{target.name}.partial")
    try:
        chart.save(str(partial), format=fmt, scale_factor=scale)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class _Window:
    """The events up to ``right`` and the time span ``[left, right]`` to draw.

    ``by`` is the column with one line (or band member) per value: the account.
    """

    events: pl.LazyFrame
    left: datetime
    right: datetime
    accounts: int
    inside: int  # events in [left, right]
    by: str = _KEY

    @classmethod
    def of(cls, events: pl.LazyFrame, start: Instant | None, end: Instant | None,
           by: str = _KEY) -> _Window:
        lo = None if start is None else to_instant(start, param="start", day="start")
        hi = None if end is None else to_instant(end, param="end")
        if lo is not None and hi is not None and lo > hi:
            msg = f"start ({lo}) is after end ({hi})"
            raise ValueError(msg)
        if hi is not None:
            events = events.filter(pl.col(_TIME) <= pl.lit(hi, TIME_DTYPE))
        # Collect once: a lazy history would replay the whole log again for every query.
        events = events.select(by, _TIME, "seq", "balance").collect().lazy()
        inside = pl.len() if lo is None else (pl.col(_TIME) >= pl.lit(lo, TIME_DTYPE)).sum()
        stats = events.select(
            pl.col(by).n_unique().alias("accounts"), inside.alias("inside"),
            pl.col(_TIME).min().alias("first"), pl.col(_TIME).max().alias("last"),
        ).collect().row(0, named=True)
        if not stats["accounts"]:
            msg = "no events to draw" + (f" up to {hi}" if hi is not None else "")
            raise ValueError(msg)
        left = stats["first"] if lo is None else lo
        right = max(stats["last"], left) if hi is None else hi
        return cls(events, left, right, stats["accounts"], stats["inside"], by)

    def subtitle(self) -> str:
        return f"{self.left:%Y-%m-%d %H:%M} to {self.right:%Y-%m-%d %H:%M} UTC"

    def last_balances(self, every: timedelta | None, floor: datetime) -> pl.LazyFrame:
        """Each account's last balance per period (per instant if ``every`` is None).

        Periods before ``floor`` merge into it, so it carries the opening balance.
        """
        t = pl.col(_TIME) if every is None else pl.col(_TIME).dt.truncate(every)
        return self.events.group_by(
            self.by, pl.max_horizontal(t, pl.lit(floor, TIME_DTYPE)).alias("time")
        ).agg(pl.col("balance").sort_by(_TIME, "seq").last())


def _line_chart(window: _Window, max_points: int, *, title: str | None = None,
                color: alt.Color | None = None) -> alt.Chart:
    """Step lines, one per ``window.by`` value; by default one per account, titled by ids."""
    by = window.by
    n = window.accounts
    periods = max_points // n - 3  # a period can split in two, plus the opening and closing points
    if periods < 1:
        msg = (f"max_points={max_points} is too small for {n} lines (at least {4 * n}); "
               "raise it, or pass accounts=None for the percentile chart")
        raise ValueError(msg)
    exact = window.inside + 2 * n <= max_points
    every = None if exact else _period(window.right - window.left, periods, finest=_MINUTE)
    points = window.last_balances(every, window.left)
    closing = (points.group_by(by).agg(pl.col("balance").sort_by("time").last())
               .select(by, pl.lit(window.right, TIME_DTYPE).alias("time"), "balance"))
    data = (pl.concat([points, closing])
            .unique([by, "time"])  # a closing point may repeat the last one
            .sort(by, "time")
            .with_columns(_units("balance"))
            .collect())
    if title is None:
        ids = data[by].unique().sort().to_list()
        title = (f"Balance history of account{'s' * (len(ids) > 1)} {', '.join(map(str, ids))}"
                 if len(ids) <= 10 else f"Balance history of {len(ids)} accounts")
    color = color if color is not None else alt.Color(f"{_KEY}:N", title="account")
    subtitle = window.subtitle() + ("" if every is None else
                                    f"; last balance of every {_describe(every)}")
    return alt.Chart(data, title=alt.Title(title, subtitle=subtitle)).mark_line(
        interpolate="step-after"
    ).encode(
        x=_X,
        y=alt.Y("balance:Q", title=_Y_TITLE),
        color=color,
        tooltip=[alt.Tooltip(f"{by}:N", title=color["title"]), _TIME_TIP,
                 alt.Tooltip("balance:Q", format=",.2f")],
    ).properties(**_SIZE)


def _band_chart(window: _Window, max_points: int) -> alt.LayerChart:
    periods = max(1, min(max_points, GRID_CELLS // window.accounts) - 1)
    every = _period(window.right - window.left, periods, finest=_DAY)
    floor, ceiling = pl.Series([window.left, window.right], dtype=TIME_DTYPE).dt.truncate(every)
    # Each balance holds from its period until the account's next change (or the last period).
    until = pl.col("time").shift(-1).over(_KEY).fill_null(pl.lit(ceiling + every, TIME_DTYPE))
    data = (window.last_balances(every, floor)
            .sort(_KEY, "time")
            .select("balance", pl.datetime_ranges("time", until, every, closed="left"))
            .explode("time")
            .group_by("time")
            .agg(*(pl.col("balance").quantile(q, "linear").alias(name)
                   for name, q in PERCENTILES.items()),
                 pl.len().alias("accounts"))
            .with_columns(_units(*PERCENTILES))
            .sort("time")
            .collect())
    base = alt.Chart(data).encode(x=_X).properties(**_SIZE)
    band = base.mark_area(interpolate="step-after", opacity=0.3).encode(
        y=alt.Y("p10:Q", title=_Y_TITLE),
        y2="p90:Q",
        tooltip=[_TIME_TIP, *(alt.Tooltip(f"{name}:Q", format=",.2f") for name in PERCENTILES),
                 alt.Tooltip("accounts:Q", format=",")],
    )
    median = base.mark_line(interpolate="step-after").encode(y="median:Q")
    title = alt.Title(
        f"Balances of {window.accounts:,} accounts: median and 10th-90th percentile",
        subtitle=f"{window.subtitle()}; balance at the end of every {_describe(every)}",
    )
    return alt.layer(band, median, title=title)


def _period(span: timedelta, periods: int, *, finest: timedelta) -> timedelta:
    """Cut ``span`` into at most ``periods`` pieces of whole days, hours or minutes.

    The period is the shortest such, and at least ``finest``.

    >>> _period(timedelta(days=30), 10, finest=_MINUTE)
    datetime.timedelta(days=3)
    >>> _period(timedelta(days=1), 10, finest=_MINUTE)
    datetime.timedelta(seconds=10800)
    >>> _period(timedelta(days=1), 10, finest=_DAY)
    datetime.timedelta(days=1)
    """
    raw = span / periods
    unit = max(finest, next((unit for _, unit in _UNITS if raw >= unit), finest))
    return unit * max(1, math.ceil(raw / unit))


def _describe(period: timedelta) -> str:
    """Name a period made by :func:`_period` in words.

    >>> _describe(timedelta(days=1)), _describe(timedelta(hours=36))
    ('day', '36 hours')
    """
    name, unit = next((name, unit) for name, unit in _UNITS if period % unit == timedelta(0))
    count = period // unit
    return name if count == 1 else f"{count} {name}s"


def _units(*columns: str) -> list[pl.Expr]:
    """Cents to currency units: floats for display, rounded to the cent."""
    return [(pl.col(c) / 100).round(2).alias(c) for c in columns]


# ---------------------------------------------------------------------- archive health
def storage_chart(files: pl.DataFrame, *, max_bars: int = 500) -> alt.Chart:
    """Bars of the data files' sizes in log order (MiB), from ``eventkit.info(...).files``.

    More than ``max_bars`` files are summed in runs of consecutive files, so
    the chart stays small; the tooltip gives events and compression per bar.

    Examples
    --------
    >>> files = pl.DataFrame({"file": ["a", "b"], "partition": [".", "."],
    ...     "events": [10, 5], "bytes": [2_000_000, 1_000_000],
    ...     "uncompressed_bytes": [6_000_000, 2_500_000]})
    >>> spec = storage_chart(files).to_dict()
    >>> [round(r["mib"], 2) for r in next(iter(spec["datasets"].values()))]
    [1.91, 0.95]

    """
    per = max(1, math.ceil(files.height / max_bars))
    data = (files.with_row_index("n")
            .group_by((pl.col("n") // per).alias("run"), maintain_order=True)
            .agg(pl.col("file").first(), pl.len().alias("files"), pl.col("events").sum(),
                 pl.col("bytes").sum(), pl.col("uncompressed_bytes").sum())
            .with_columns(mib=pl.col("bytes") / 2**20,
                          ratio=pl.col("uncompressed_bytes") / pl.col("bytes")))
    title = f"Data files in log order ({files.height:,} files" + (
        f", {per} per bar)" if per > 1 else ")")
    return alt.Chart(data, title=title).mark_bar().encode(
        x=alt.X("run:O", title="data file (log order)", axis=alt.Axis(labels=False)),
        y=alt.Y("mib:Q", title="size (MiB)"),
        tooltip=["file:N", "files:Q", alt.Tooltip("events:Q", format=","),
                 alt.Tooltip("mib:Q", format=",.2f", title="MiB"),
                 alt.Tooltip("ratio:Q", format=".2f", title="compression")],
    ).properties(**_SIZE)


def snapshot_chart(coverage: pl.DataFrame) -> alt.Chart:
    """Checkpoints of every snapshot set over time, one row of ticks per rule set and version.

    ``coverage`` is :func:`eventkit.health.snapshot_coverage`'s frame; sets built
    from an older archive state (``current`` false) are drawn grey.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> cov = pl.DataFrame({"rules": ["banking"], "fingerprint": ["ab" * 32], "version": [3],
    ...     "current": [True], "checkpoints": [[datetime(2024, 1, 31, tzinfo=UTC)]]})
    >>> snapshot_chart(cov).to_dict()["title"]
    'Snapshot checkpoints (1 set)'

    """
    data = (coverage.with_columns(
        set=pl.format("{} @ v{}", pl.col("rules").fill_null(pl.col("fingerprint").str.head(12)),
                      pl.col("version")))
        .explode("checkpoints").rename({"checkpoints": "time"})
        .select("set", "time", "current"))
    title = f"Snapshot checkpoints ({coverage.height} set{'s' * (coverage.height != 1)})"
    return alt.Chart(data, title=title).mark_tick(thickness=2).encode(
        x=_X, y=alt.Y("set:N", title="rules @ archive version"),
        color=alt.Color("current:N", title="current",
                        scale=alt.Scale(domain=[True, False], range=["#4c78a8", "#bbbbbb"])),
        tooltip=["set:N", _TIME_TIP],
    ).properties(width=_SIZE["width"], height=max(40, 30 * coverage.height))


def schema_version_chart(versions: pl.DataFrame) -> alt.Chart:
    """Events per schema version, from :func:`eventkit.health.schema_versions`.

    Examples
    --------
    >>> v = pl.DataFrame({"schema_version": [1, 3], "files": [2, 5], "events": [10, 90]})
    >>> schema_version_chart(v).to_dict()["title"]
    'Events per schema version'

    """
    data = versions.with_columns(
        version=pl.col("schema_version").cast(pl.String).fill_null("per row"))
    return alt.Chart(data, title="Events per schema version").mark_bar().encode(
        x=alt.X("events:Q", title="events"), y=alt.Y("version:N", title="schema version"),
        tooltip=["version:N", "files:Q", alt.Tooltip("events:Q", format=",")],
    ).properties(width=_SIZE["width"], height=max(40, 30 * versions.height))

def alert_timeline(
    history: pl.LazyFrame | pl.DataFrame,
    alert: Mapping[str, Any] | pl.DataFrame,
    *,
    margin: timedelta | None = None,
    max_points: int = 2000,
) -> alt.Chart:
    """Chart one alert's events on a time axis: a lane per account, colour by event type.

    Parameters
    ----------
    history
        A replay's history (or canonical events); ``balance`` shows in the tooltip
        when present.
    alert
        One row of :func:`eventkit.patterns.builtin_alerts` or of a pattern's
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

    Returns
    -------
    alt.Chart
        Points per event; the alert's events (its key's events from its start
        to its end event) are large and opaque, the context small and faint.

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
    >>> chart.data.select("seq", "event_type", "in_alert").rows()
    [(0, 'Deposit', False), (1, 'Withdrawal', True), (2, 'Withdrawal', True), (3, 'Fee', False)]
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
    key = pl.col(_KEY) == account
    if other is not None:  # a pair: both legs of each transfer between the two
        key = (key & (pl.col("counterparty_id") == other)) | (
            (pl.col(_KEY) == other) & (pl.col("counterparty_id") == account))
    first = (pl.col(_TIME) > start) | (
        (pl.col(_TIME) == start) & (pl.col("seq") >= row["start_seq"]))
    last = pl.lit(value=True) if end is None else (pl.col(_TIME) < end) | (
        (pl.col(_TIME) == end) & (pl.col("seq") <= row["end_seq"]))
    frame = history.lazy()
    extra = [c for c in ("amount", "balance", "event_id") if c in frame.collect_schema().names()]
    events = (frame.filter(pl.col(_KEY).is_in(lanes),
                           pl.col(_TIME).is_between(pl.lit(left, TIME_DTYPE),
                                                    pl.lit(right, TIME_DTYPE)))
              .select(_KEY, _TIME, "seq", "event_type", *extra,
                      *(["counterparty_id"] if other is not None else []))
              .with_columns((key & first & last).alias("in_alert"))
              .collect())
    inside = int(events["in_alert"].sum())
    if inside > max_points:
        msg = f"max_points={max_points} is smaller than the alert's {inside} events"
        raise ValueError(msg)
    distance = (pl.when(pl.col(_TIME) < start).then(pl.lit(start, TIME_DTYPE) - pl.col(_TIME))
                .otherwise(pl.col(_TIME) - pl.lit(end or start, TIME_DTYPE)))
    data = (events.sort(~pl.col("in_alert"), distance).head(max_points)
            .with_columns(_units(*[c for c in ("amount", "balance") if c in extra]))
            .with_columns(pl.col(_TIME).alias("time"), pl.col(_KEY).cast(pl.String))
            .sort(_TIME, "seq"))
    pattern = row.get("pattern") or "pattern"
    who = f"account {account}" if other is None else f"accounts {account} and {other}"
    until = f"{end:%Y-%m-%d %H:%M}" if end is not None else "still open"
    title = alt.Title(f"{pattern} alert on {who}",
                      subtitle=f"{start:%Y-%m-%d %H:%M} to {until} UTC; "
                               f"{inside} event{'s' * (inside != 1)} in the alert, "
                               f"context {_describe_span(pad)} either side")
    tooltip = [_TIME_TIP, alt.Tooltip("event_type:N", title="event"),
               *(alt.Tooltip(f"{c}:Q", format=",.2f") for c in ("amount", "balance")
                 if c in extra),
               alt.Tooltip("seq:Q"), alt.Tooltip("in_alert:N", title="in the alert")]
    return alt.Chart(data, title=title).mark_point(filled=True).encode(
        x=alt.X("time:T", title="time (UTC)", scale=alt.Scale(type="utc",
                                                              domain=[left.isoformat(),
                                                                      right.isoformat()])),
        y=alt.Y(f"{_KEY}:N", title="account"),
        color=alt.Color("event_type:N", title="event type"),
        size=alt.Size("in_alert:N", scale=alt.Scale(domain=[True, False], range=[160, 40]),
                      title="in the alert"),
        opacity=alt.Opacity("in_alert:N", scale=alt.Scale(domain=[True, False],
                                                          range=[1.0, 0.35]), legend=None),
        tooltip=tooltip,
    ).properties(width=_SIZE["width"], height=60 * len(lanes) + 40)


def _one_alert(alert: Mapping[str, Any] | pl.DataFrame) -> dict[str, Any]:
    if isinstance(alert, pl.DataFrame):
        if alert.height != 1:
            msg = f"alert must be one row, got {alert.height}"
            raise ValueError(msg)
        return alert.row(0, named=True)
    return dict(alert)


def _describe_span(span: timedelta) -> str:
    """A duration in its largest whole unit, rounded down, for a subtitle.

    >>> _describe_span(timedelta(hours=36)), _describe_span(timedelta(minutes=90))
    ('1 day', '1 hour')
    """
    name, unit = next(((n, u) for n, u in _UNITS if span >= u), _UNITS[-1])
    count = max(1, span // unit)
    return f"{count} {name}" + "s" * (count != 1)
