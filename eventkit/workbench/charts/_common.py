"""What every chart shares: offline/static rendering, export, time windows and units."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, cast

import altair as alt
import polars as pl
import vl_convert as vlc
from altair.utils._importers import vl_version_for_vl_convert

from eventkit._typing import Instant
from eventkit.exceptions import ParameterError, WorkbenchError
from eventkit.replay.progress import show_progress
from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import to_instant
from eventkit.workbench.format import (
    Currency,
    axis_time_format,
    axis_time_ticks,
    span_words,
    time_text,
)

__all__ = ["EMBED_OPTIONS", "TimeWindow", "enable", "enable_offline", "enable_static", "export"]

KEY: Final = "account_id"
TIME: Final = "event_time"
DAY: Final = timedelta(days=1)
MINUTE: Final = timedelta(minutes=1)
UNITS: Final = (("day", DAY), ("hour", timedelta(hours=1)), ("minute", MINUTE))
#: Charts fill the notebook's width; static renderings (reports, export) use STATIC_WIDTH.
SIZE: Final = {"width": "container", "height": 300}
STATIC_WIDTH: Final = 760
MARKER_COLOUR: Final = "#d62728"
RUN_COLOURS: Final = ["#1f77b4", "#ff7f0e"]  # baseline, scenario
SHADE_COLOUR: Final = "#fdd49e"  # a window the chart is about (scenario shift, alert)
GAIN_COLOUR, LOSS_COLOUR = "#2ca02c", "#d62728"


def x_time(left: datetime | None = None, right: datetime | None = None, *,
           title: str = "time (UTC)") -> alt.X:
    """The time axis of every chart: UTC scale, each label with its date context.

    With a window, the axis spans exactly ``[left, right]`` and its labels
    carry the day, month and year as the span needs (see
    :func:`~eventkit.workbench.format.axis_time_format`).
    """
    if left is None or right is None:
        return alt.X("time:T", title=title, scale=alt.Scale(type="utc"),
                     axis=alt.Axis(labelExpr="utcFormat(datum.value, '%b %Y')",
                                   labelOverlap=True, labelFlush=True))
    fmt = axis_time_format(right - left)
    ticks = axis_time_ticks(right - left)  # no finer than the labels: none repeats
    every = alt.Undefined if ticks is None else alt.TimeIntervalStep(interval=ticks[0],
                                                                     step=ticks[1])
    return alt.X("time:T", title=title,
                 scale=alt.Scale(type="utc", domain=[left.isoformat(), right.isoformat()]),
                 axis=alt.Axis(labelExpr=f"utcFormat(datum.value, '{fmt}')", labelOverlap=True,
                               labelFlush=True, tickCount=every))


def shade(left: datetime, right: datetime, label: str) -> tuple[alt.Chart, alt.Chart]:
    """A shaded time window with its label at the top: what the chart's claim is about."""
    data = pl.DataFrame({"time": [left], "until": [right], "label": [label]},
                        schema={"time": TIME_DTYPE, "until": TIME_DTYPE, "label": pl.String})
    base = alt.Chart(data)
    area = base.mark_rect(color=SHADE_COLOUR, opacity=0.45).encode(x=alt.X("time:T"),
                                                                   x2=alt.X2("until:T"))
    text = base.mark_text(align="left", baseline="top", dx=3, dy=3, color="#8c510a").encode(
        x=alt.X("time:T"), y=alt.YValue(0), text=alt.Text("label:N"))
    return area, text


def need_columns(frame: pl.LazyFrame, what: str, **wanted: str | Sequence[str]) -> pl.Schema:
    """``frame``'s schema, or a :class:`ParameterError` naming the parameter whose column it lacks.

    >>> need_columns(pl.LazyFrame({"order_id": ["a"]}), "the history", key="order")
    Traceback (most recent call last):
    ...
    eventkit.ParameterError: key: no column 'order' in the history (columns: order_id)
    """
    schema = frame.collect_schema()
    for param, names in wanted.items():
        for name in [names] if isinstance(names, str) else names:
            if name not in schema:
                msg = f"no column {name!r} in {what} (columns: {', '.join(schema.names())})"
                raise ParameterError(msg, param=param)
    return schema


def zero_rule() -> alt.Chart:
    """A grey line at zero: the baseline of a difference."""
    return alt.Chart(pl.DataFrame({"zero": [0.0]})).mark_rule(color="gray").encode(
        y=alt.Y("zero:Q"))


def y_money(title: str, currency: Currency) -> alt.Axis:
    """A money axis: values in major units, labelled with the currency's symbol."""
    return alt.Axis(title=title, labelExpr=currency.axis_label())


def tip_time(title: str = "time") -> alt.Tooltip:
    """The tooltip of a ``when`` column made by :func:`with_when` (text: never NaN)."""
    return alt.Tooltip("when:N", title=title)


def with_when(column: str = "time", *, zone: str | None = None) -> pl.Expr:
    """``column`` as readable text with its zone, for tooltips (``when``)."""
    return time_text(pl.col(column), zone=zone).alias("when")


def series_hover(long: pl.DataFrame, *, by: str, order: list[Any], labels: list[str],
                 colours: list[str] | None, text: Callable[[pl.Expr], pl.Expr],
                 scale: Callable[[pl.Expr], pl.Expr], zone: str | None = None,
                 value: str = "minor") -> list[alt.Chart]:
    """The hovered instant's rule and points on step lines, every series in the tooltip.

    ``long`` has one row per (``by``, ``time``) with the exact ``value`` (e.g.
    minor units); ``text`` writes it for the tooltip, ``scale`` puts it on the
    chart's y scale (e.g. :meth:`Currency.text` and :meth:`Currency.major`).
    At each instant any series has a point, every series' value then (its
    last one at or before: step lines) is computed here, in Polars, so the
    chart holds one row per instant however many series (Altair's "multi-line
    tooltip" pattern, with the instant found by :func:`hover_layers` instead of
    a Voronoi "nearest", whose tooltips Vega-Lite leaves undefined). Returns
    three layers: a rule and points at the hovered instant, and the bands.
    """
    names = [f"s{i}" for i in range(len(order))]
    rename = dict(zip(order, names, strict=True))
    wide = (long.select(pl.col(by).replace_strict(rename, return_dtype=pl.String).alias("#s"),
                        "time", value)
            .pivot(on="#s", index="time", values=value, aggregate_function="last")
            .sort("time"))
    dtype = long.schema[value]
    wide = wide.with_columns(pl.col(n).forward_fill() if n in wide.columns
                             else pl.lit(None, dtype).alias(n) for n in names)
    wide = wide.select(
        "time", with_when(zone=zone),
        *(text(pl.col(n)).alias(f"t{i}") for i, n in enumerate(names)),
        *(scale(pl.col(n)).alias(f"v{i}") for i, n in enumerate(names)))
    rule, points, rects = hover_layers(wide, tooltip=[
        tip_time(), *(alt.Tooltip(f"t{i}:N", title=label) for i, label in enumerate(labels))])
    lookup = "{" + ", ".join(f"v{i}: {json.dumps(label)}" for i, label in enumerate(labels)) + "}"
    colour = alt.Color("series:N", legend=None, sort=labels,
                       scale=alt.Scale(domain=labels, range=colours) if colours else alt.Undefined)
    points = points.transform_fold(
        [f"v{i}" for i in range(len(labels))], as_=["#v", "value"]
    ).transform_calculate(series=f"{lookup}[datum['#v']]").mark_point(
        filled=True, size=50).encode(x=alt.X("time:T"), y=alt.Y("value:Q"), color=colour)
    return [rule, points, rects]


def with_until(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (one row per ``time``, sorted) with ``until``: the next row's time."""
    return frame.with_columns(pl.col("time").shift(-1).fill_null(pl.col("time").max())
                              .alias("until"))


def hover_layers(wide: pl.DataFrame, *, tooltip: list[alt.Tooltip]
                 ) -> tuple[alt.Chart, alt.Chart, alt.Chart]:
    """Hover over a time chart: the instant in force under the pointer, and its tooltip.

    ``wide`` has one row per instant (``time``, sorted). Each row gets an
    invisible band from its instant to the next one (step lines: its values
    hold there); the band under the pointer is selected and shows ``tooltip``,
    a rule marks its instant. Returns the rule, a base for points drawn at the
    selected instant (give it a mark and encodings), and the bands (on top).
    The layer chart that holds them declares the selection: ``params=HOVER``.
    """
    data = wide if "until" in wide.columns else with_until(wide)
    hovered = alt.ParameterPredicate(param="hover", empty=False)
    rule = alt.Chart(data).mark_rule(color="gray", strokeDash=[2, 2]).encode(
        x=alt.X("time:T")).transform_filter(hovered)
    points = alt.Chart(data).transform_filter(hovered)
    rects = alt.Chart(data, name=HOVER_VIEW).mark_rect(opacity=0).encode(
        x=alt.X("time:T"), x2=alt.X2("until:T"), tooltip=tooltip)
    return rule, points, rects


#: The layer of :func:`hover_layers`' bands, where the pointer is followed.
HOVER_VIEW: Final = "hover_bands"
#: The hover selection, declared by the layer chart for the bands' layer (given to a
#: layer, Altair lifts it out by copying and checking every layer: tens of ms a chart).
#: Named: a chart built twice has the same spec.
HOVER: Final = [alt.TopLevelSelectionParameter(
    name="hover", views=[HOVER_VIEW], select=alt.PointSelectionConfig(
        type="point", on="pointerover", fields=["time"], clear="pointerout"))]


def enable(*, interactive: bool) -> None:
    """What every notebook's first cell calls: widgets offline, or static SVG for reports.

    ``interactive`` (the notebooks' parameter): :func:`enable_offline` and
    progress bars for long steps (see :mod:`eventkit.replay.progress`); else
    :func:`enable_static` and no progress bars (papermill runs and HTML reports:
    pictures, no JavaScript, nobody watching, the same output every run).
    """
    show_progress(None if interactive else False)
    if interactive:
        enable_offline()
    else:
        enable_static()


def enable_offline() -> None:
    """Make Altair charts render in JupyterLab without internet access.

    Charts become Altair's ``JupyterChart`` widget, whose JavaScript (Vega,
    Vega-Lite, vega-embed) is bundled locally by vl-convert instead of loaded
    from a CDN; they are drawn as SVG without the actions menu. Calling it
    again changes nothing. The renderer is Altair's ``jupyter`` one without its
    two extra validations of every data row (:func:`widget_of`).

    Examples
    --------
    >>> enable_offline()
    >>> alt.renderers.active, alt.renderers.options["offline"]
    ('eventkit-widget', True)

    """
    # embed_options must go in this same call: a later set_embed_options() drops offline=True.
    alt.renderers.enable("eventkit-widget", offline=True, embed_options=dict(EMBED_OPTIONS))
    if FILL_CSS not in alt.JupyterChart._css:  # read by each new chart widget
        alt.JupyterChart._css += FILL_CSS


def _static(spec: dict[str, Any], **options: Any) -> dict[str, str]:
    """Altair renderer: the spec as SVG made by vl-convert, ``container`` widths made fixed."""
    return {"image/svg+xml": vlc.vegalite_to_svg(fixed_width(spec),
                                                 vl_version=vl_version_for_vl_convert())}


def fixed_width(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` where ``width: container`` (nowhere to fill offline) is fixed."""
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (STATIC_WIDTH if k == "width" and v == "container" else walk(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return cast("dict[str, Any]", walk(spec))


alt.renderers.register("eventkit-svg", _static)

#: The chart class of a top-level spec, by the key only that kind of chart has.
_TOP_LEVEL: Final = (("layer", alt.LayerChart), ("vconcat", alt.VConcatChart),
                     ("hconcat", alt.HConcatChart), ("concat", alt.ConcatChart),
                     ("facet", alt.FacetChart), ("repeat", alt.RepeatChart))


def widget_of(spec: dict[str, Any], **options: Any) -> alt.JupyterChart:
    """The ``JupyterChart`` widget of ``spec``, as Altair's ``jupyter`` renderer makes it.

    Altair validated the chart when it made ``spec``; its ``jupyter`` renderer
    builds the chart again from ``spec``, validating every data row against the
    schema with jsonschema, and the widget validates them once more: seconds
    for a chart of a few thousand points. Here the chart is rebuilt without
    its data rows and unvalidated (it was just checked; the widget reads its
    parameters and selections), and gives the widget ``spec`` itself. (Setting
    the data on the widget after it is made does not do: its first state
    reaches JupyterLab without them, and the update can arrive before the
    widget's model exists there: JupyterLab draws the chart 0 px wide.)

    Examples
    --------
    >>> spec = alt.Chart(pl.DataFrame({"x": [1, 2]})).mark_point().encode(x="x:Q").to_dict()
    >>> widget_of(spec).spec == alt.JupyterChart(alt.Chart.from_dict(spec)).spec
    True

    """
    alt.JupyterChart.enable_offline(offline=options.get("offline", False))
    rest = {k: v for k, v in spec.items() if k != "datasets"}
    kind = next((cls for key, cls in _TOP_LEVEL if key in rest), alt.Chart)
    chart = kind.from_dict(rest, validate=False)
    # the instance's own to_dict (SchemaBase keeps other attributes as spec properties)
    object.__setattr__(chart, "to_dict", lambda *_, **__: spec)
    return alt.JupyterChart(chart=chart, embed_options=options.get("embed_options"))


def _widget(spec: dict[str, Any], **options: Any) -> dict[str, Any]:
    """Altair renderer: the chart as its widget (:func:`widget_of`)."""
    return cast("dict[str, Any]", widget_of(spec, **options)._repr_mimebundle_())


alt.renderers.register("eventkit-widget", _widget)


def enable_static() -> None:
    """Show charts as static SVG images, rendered in the kernel by vl-convert.

    For headless runs and HTML reports (``interactive = False`` in the
    notebooks): the saved notebook holds the picture itself, so it needs no
    JavaScript, no widget state and no network to be read.

    Examples
    --------
    >>> enable_static()
    >>> alt.renderers.active
    'eventkit-svg'
    >>> enable_offline()

    """
    alt.renderers.enable("eventkit-svg")


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
    spec = fixed_width(chart.to_dict())
    try:
        if fmt == "svg":
            partial.write_text(vlc.vegalite_to_svg(spec, vl_version=vl_version_for_vl_convert()))
        else:
            partial.write_bytes(vlc.vegalite_to_png(spec, scale=scale,
                                                    vl_version=vl_version_for_vl_convert()))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


#: A chart with ``width: "container"`` fills its output's width (Altair's widget leaves
#: vega-embed's element as wide as its content, which is nothing before the chart is drawn).
FILL_CSS: Final = "\n.vega-embed.fit-x { width: 100%; display: block; }\n"

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
           by: str = KEY, *, what: str = "events") -> TimeWindow:
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
            msg = f"no {what} to draw" + (f" up to {hi}" if hi is not None else "")
            raise WorkbenchError(msg)
        left = stats["first"] if lo is None else lo
        right = max(stats["last"], left) if hi is None else hi
        return cls(events, left, right, stats["accounts"], stats["inside"], by)

    def subtitle(self, zone: str | None = None) -> str:
        return span_words(self.left, self.right, zone=zone)

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
