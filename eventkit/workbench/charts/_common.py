"""What every chart shares: offline/static rendering, export, time windows and units."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

import altair as alt
import polars as pl

from eventkit._typing import Instant
from eventkit.exceptions import ParameterError, WorkbenchError
from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import to_instant

__all__ = ["EMBED_OPTIONS", "TimeWindow", "enable_offline", "enable_static", "export"]

KEY: Final = "account_id"
TIME: Final = "event_time"
DAY: Final = timedelta(days=1)
MINUTE: Final = timedelta(minutes=1)
UNITS: Final = (("day", DAY), ("hour", timedelta(hours=1)), ("minute", MINUTE))
SIZE: Final = {"width": 640, "height": 320}
MARKER_COLOUR: Final = "#d62728"
RUN_COLOURS: Final = ["#1f77b4", "#ff7f0e"]  # baseline, scenario
X_TIME: Final = alt.X("time:T", title="time (UTC)", scale=alt.Scale(type="utc"))
Y_TITLE: Final = "balance (currency units)"
TIME_TIP: Final = alt.Tooltip("time:T", title="time (UTC)", format="%Y-%m-%d %H:%M",
                               formatType="utc")


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


#: What :func:`export` writes, by file suffix (as ``alt.Chart.save`` names the formats).
_EXPORT_FORMATS: Final[dict[str, Literal["svg", "png"]]] = {"svg": "svg", "png": "png"}


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
    fmt = _EXPORT_FORMATS.get(target.suffix.lower().lstrip("."))
    if fmt is None:
        msg = f"{target} must end in .svg or .png"
        raise ParameterError(msg, param="path")
    partial = target.with_name(f".{target.name}.partial")
    try:
        chart.save(str(partial), format=fmt, scale_factor=scale)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


#: vega-embed options of every chart: SVG (crisp, searchable), no "..." actions menu.
EMBED_OPTIONS: Final = {"renderer": "svg", "actions": False}


@dataclass(frozen=True)
class TimeWindow:
    """The events up to ``right`` and the time span ``[left, right]`` to draw.

    ``by`` is the column with one line (or band member) per value: the account.
    """

    events: pl.LazyFrame
    left: datetime
    right: datetime
    accounts: int
    inside: int  # events in [left, right]
    by: str = KEY

    @classmethod
    def of(cls, events: pl.LazyFrame, start: Instant | None, end: Instant | None,
           by: str = KEY) -> TimeWindow:
        lo = None if start is None else to_instant(start, param="start", day="start")
        hi = None if end is None else to_instant(end, param="end")
        if lo is not None and hi is not None and lo > hi:
            msg = f"start ({lo}) is after end ({hi})"
            raise ParameterError(msg, param="end")
        if hi is not None:
            events = events.filter(pl.col(TIME) <= pl.lit(hi, TIME_DTYPE))
        # Collect once: a lazy history would replay the whole log again for every query.
        events = events.select(by, TIME, "seq", "balance").collect().lazy()
        inside = pl.len() if lo is None else (pl.col(TIME) >= pl.lit(lo, TIME_DTYPE)).sum()
        stats = events.select(
            pl.col(by).n_unique().alias("accounts"), inside.alias("inside"),
            pl.col(TIME).min().alias("first"), pl.col(TIME).max().alias("last"),
        ).collect().row(0, named=True)
        if not stats["accounts"]:
            msg = "no events to draw" + (f" up to {hi}" if hi is not None else "")
            raise WorkbenchError(msg)
        left = stats["first"] if lo is None else lo
        right = max(stats["last"], left) if hi is None else hi
        return cls(events, left, right, stats["accounts"], stats["inside"], by)

    def subtitle(self) -> str:
        return f"{self.left:%Y-%m-%d %H:%M} to {self.right:%Y-%m-%d %H:%M} UTC"

    def last_balances(self, every: timedelta | None, floor: datetime) -> pl.LazyFrame:
        """Each account's last balance per period (per instant if ``every`` is None).

        Periods before ``floor`` merge into it, so it carries the opening balance.
        """
        t = pl.col(TIME) if every is None else pl.col(TIME).dt.truncate(every)
        return self.events.group_by(
            self.by, pl.max_horizontal(t, pl.lit(floor, TIME_DTYPE)).alias("time")
        ).agg(pl.col("balance").sort_by(TIME, "seq").last())


def period_of(span: timedelta, periods: int, *, finest: timedelta) -> timedelta:
    """Cut ``span`` into at most ``periods`` pieces of whole days, hours or minutes.

    The period is the shortest such, and at least ``finest``.

    >>> period_of(timedelta(days=30), 10, finest=MINUTE)
    datetime.timedelta(days=3)
    >>> period_of(timedelta(days=1), 10, finest=MINUTE)
    datetime.timedelta(seconds=10800)
    >>> period_of(timedelta(days=1), 10, finest=DAY)
    datetime.timedelta(days=1)
    """
    raw = span / periods
    unit = max(finest, next((unit for _, unit in UNITS if raw >= unit), finest))
    return unit * max(1, math.ceil(raw / unit))


def describe(period: timedelta) -> str:
    """Name a period made by :func:`period_of` in words.

    >>> describe(timedelta(days=1)), describe(timedelta(hours=36))
    ('day', '36 hours')
    """
    name, unit = next((name, unit) for name, unit in UNITS if period % unit == timedelta(0))
    count = period // unit
    return name if count == 1 else f"{count} {name}s"


def to_units(*columns: str) -> list[pl.Expr]:
    """Cents to currency units: floats for display, rounded to the cent."""
    return [(pl.col(c) / 100).round(2).alias(c) for c in columns]
