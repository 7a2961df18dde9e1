"""Charts of replayed balances: lines per account, the spread of all accounts, an as-of marker."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast, overload

import altair as alt
import polars as pl

from eventkit._typing import Instant
from eventkit.exceptions import ParameterError
from eventkit.replay.result import ReplayResult
from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import micros, to_instant
from eventkit.workbench.charts._common import (
    DAY,
    HOVER,
    KEY,
    MARKER_COLOUR,
    MINUTE,
    SIZE,
    TimeWindow,
    describe,
    hover_layers,
    need_columns,
    period_of,
    series_hover,
    tip_time,
    with_until,
    with_when,
    x_time,
    y_money,
)
from eventkit.workbench.format import Currency, Sentence, plural, time_text

__all__ = ["as_of_marker", "balance_history", "marker_layers", "pick_accounts",
           "with_events", "with_marker"]

#: Largest accounts x periods grid the percentile chart builds; more accounts mean longer periods.
GRID_CELLS: Final = 10_000_000

#: Percentiles of the all-accounts chart: column name -> quantile.
PERCENTILES: Final = {"p10": 0.1, "median": 0.5, "p90": 0.9}
#: Lines up to which the hover tooltip lists every line (more would not be read).
MAX_TIP_LINES: Final = 12
PERCENTILE_WORDS: Final = {"p10": "10th percentile", "median": "median", "p90": "90th percentile"}


def balance_history(
    history: pl.LazyFrame | pl.DataFrame | ReplayResult,
    *,
    accounts: Collection[object] | None = None,
    start: Instant | None = None,
    end: Instant | None = None,
    max_points: int = 2000,
    currency: Currency | str | None = None,
    zone: str | None = None,
) -> alt.LayerChart:
    """Chart balances over time: a step line per account, or the spread of all accounts.

    Parameters
    ----------
    history
        ``eventkit.replay(events).history``: canonical events with ``balance``
        (cents) after each; or the replay itself, which is what to give for an
        archive whose old events were expired: the window then begins at the
        cut-off, and a ``start`` or ``end`` before it raises
        :class:`~eventkit.exceptions.ExpiredError` (the history's rows before the
        cut-off do not hold the balances of then).
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
    currency
        How money reads on the axis and in tooltips (a :class:`Currency` or an
        ISO code; default USD with 2 minor digits).
    zone
        The time zone of tooltips and subtitles (default UTC).

    Returns
    -------
    alt.LayerChart
        The lines, then points and a rule at the instant nearest the pointer
        whose tooltip lists every line's balance then; or the band and the
        median with the same kind of tooltip (percentiles and accounts).

    Raises
    ------
    eventkit.InstantError
        ``start`` or ``end`` is naive or malformed.
    eventkit.ExpiredError
        ``history`` is a replay of an expired archive and the window begins or
        ends before the cut-off.
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
    >>> lines = chart.layer[0].data
    >>> [(f"{t:%m-%d %H:%M}", units) for t, units in lines.select("time", "balance").rows()]
    [('01-01 00:00', 100.0), ('01-02 00:00', 97.5), ('01-04 23:59', 97.5)]
    >>> chart.to_dict()["title"]["text"]
    'Balance history of account 1'
    >>> chart.layer[3].data.select("when", "t0").row(1)  # the hover tooltip
    ('2024-01-02 00:00 UTC', '$97.50')
    >>> band = balance_history(history, start="2024-01-02")  # all accounts: percentiles
    >>> band.data.select(pl.col("time").dt.day(), "median", "accounts").rows()
    [(2, 97.5, 1), (3, 51.25, 2)]

    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        msg = f"must be a positive whole number, not {max_points!r}"
        raise ParameterError(msg, param="max_points")
    if isinstance(history, ReplayResult):
        start = _after_expiry(history, start, end)
        history = history.history
    events = history.lazy()
    schema = events.collect_schema()
    if KEY not in schema or "balance" not in schema:
        msg = (f"balance_history draws a history with {KEY} and balance (columns: "
               f"{', '.join(schema.names())}); for another key or field: "
               "field_history(history, field, key=..., keys=[...])")
        raise ParameterError(msg, param="history")
    if accounts is not None:
        wanted = with_events(events, accounts)
        events = events.filter(pl.col(KEY).is_in(wanted.implode()))
    window = TimeWindow.of(events, start, end, what="events" if accounts is None else
                           "accounts chosen" if wanted.is_empty() else "events of accounts chosen")
    money = Currency.of(currency)
    if accounts is None:
        return _band_chart(window, max_points, money, zone)
    return _line_chart(window, max_points, money, zone)


def _after_expiry(result: ReplayResult, start: Instant | None, end: Instant | None
                  ) -> Instant | None:
    """``start`` of a chart of ``result``; after an expiry, its cut-off or refused before it."""
    if result.expiry is None:
        return start
    if end is not None:
        result.expiry.check(at_us=micros(end, param="end"))
    if start is None:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=result.expiry.cutoff_us)
    result.expiry.check(at_us=micros(start, param="start", day="start"))
    return start


@overload
def as_of_marker(chart: Sentence, instant: Instant, *, zone: str | None = None) -> Sentence: ...
@overload
def as_of_marker(chart: alt.Chart | alt.LayerChart, instant: Instant, *,
                 zone: str | None = None) -> alt.LayerChart: ...
def as_of_marker(chart: alt.Chart | alt.LayerChart | Sentence, instant: Instant, *,
                 zone: str | None = None) -> alt.LayerChart | Sentence:
    """Mark an instant on a time chart: a vertical rule labelled with the instant.

    Parameters
    ----------
    chart
        A chart whose x axis is ``time`` (UTC), e.g. from :func:`balance_history`;
        a :class:`Sentence` (nothing to draw) is given back as it is.
    instant
        Anything :func:`eventkit.timeutil.to_instant` reads; a date means the
        end of that UTC day, as in ``ReplayResult.as_of``.
    zone
        The time zone of the label (default UTC).

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
    (['line', 'rule', 'point', 'rect', 'rule', 'text'], 'Balance history of account 1')
    >>> spec["layer"][-1]["encoding"]["text"]
    {'value': 'as of 2024-01-01 23:59 UTC'}

    """
    rule, text = marker_layers(instant, zone=zone)
    if isinstance(chart, Sentence):
        return chart
    layers = list(chart.layer) if isinstance(chart, alt.LayerChart) else [chart]
    title = chart["title"]
    plain = []
    for layer in layers:
        layer = layer.copy(deep=False)
        layer["title"] = alt.Undefined  # one title, on the layer chart
        plain.append(layer)
    # alt.layer facets only when every layer has the same row/column/facet encoding; the
    # rule and the text have none, so this is a LayerChart
    marked = cast("alt.LayerChart", alt.layer(*plain, rule, text, title=title))
    for name in ("params", "width", "height"):  # alt.layer hoisted them out of the layers
        if isinstance(chart, alt.LayerChart) and chart[name] is not alt.Undefined:
            marked[name] = chart[name]
    return marked


def with_events(history: pl.LazyFrame, accounts: Collection[object] | object) -> pl.Series:
    """``accounts`` (one id, or several) in the key's type, each with events in ``history``.

    An id without any event (a typo, another archive's) is refused by name,
    never left out of a chart in silence.

    >>> history = pl.LazyFrame({"account_id": [1, 2]})
    >>> with_events(history, 2).to_list(), with_events(history, [2, 1]).to_list()
    ([2], [2, 1])
    >>> with_events(history, [1, 99])
    Traceback (most recent call last):
    ...
    eventkit.ParameterError: accounts: no events of account 99 to draw
    """
    wanted = _as_keys(accounts, history.collect_schema()[KEY])
    seen = set(history.filter(pl.col(KEY).is_in(wanted.implode())).select(pl.col(KEY).unique())
               .collect().to_series().to_list())
    missing = [a for a in wanted.to_list() if a not in seen]
    if missing:
        ids = ", ".join(map(str, missing[:5])) + " …" * (len(missing) > 5)
        msg = f"no events of account{'s' * (len(missing) > 1)} {ids} to draw"
        raise ParameterError(msg, param="accounts")
    return wanted


def pick_accounts(frame: pl.LazyFrame | pl.DataFrame, accounts: Collection[object] | object
                  ) -> pl.LazyFrame | pl.DataFrame:
    """The rows of ``frame`` (``account_id`` and more) of ``accounts``: one id, or several.

    The ids are read in the key's type (a text ``"7"`` for an integer key is
    refused naming ``accounts``, not a Polars error).

    >>> state = pl.DataFrame({"account_id": [1, 2, 3], "balance": [10, 20, 30]})
    >>> pick_accounts(state, 2)["balance"].to_list(), pick_accounts(state, [3, 1]).height
    ([20], 2)
    """
    schema = need_columns(frame.lazy(), "the frame", accounts=KEY)
    return frame.filter(pl.col(KEY).is_in(_as_keys(accounts, schema[KEY]).implode()))


def _as_keys(accounts: Collection[object] | object, dtype: pl.DataType) -> pl.Series:
    """``accounts`` (one id, or several) as a Series of the key's type, or a ParameterError."""
    if isinstance(accounts, str | int) or not isinstance(accounts, Collection):
        chosen: list[object] = [accounts]  # one id (a UUID object too)
    else:
        chosen = list(accounts)
    if dtype == pl.String:
        chosen = [str(a) for a in chosen]  # UUID objects, numbers: ids as text
    try:
        return pl.Series(chosen).cast(dtype)
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        msg = f"{chosen[:5]!r} are not ids of {KEY}, a {dtype} column"
        raise ParameterError(msg, param="accounts") from None


def with_marker(spec: dict[str, Any], instant: Instant, *, zone: str | None = None
                ) -> dict[str, Any]:
    """:func:`as_of_marker` on a chart's spec (a dict): a new spec, ``spec`` unchanged.

    What the explorer redraws when only the instant moves: the chart's own
    spec is made once, the marker's two layers at each instant.

    Examples
    --------
    >>> import eventkit
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2)]
    >>> events = pl.DataFrame({"event_id": ["a", "b"], "seq": [0, 1], "account_id": [1, 1],
    ...     "event_type": ["Deposit", "Fee"], "event_time": t, "recorded_at": t,
    ...     "amount": [10_000, 250]})
    >>> lines = balance_history(eventkit.replay(events).history, accounts=[1])
    >>> with_marker(lines.to_dict(), "2024-01-01") == as_of_marker(lines, "2024-01-01").to_dict()
    True

    """
    layers, datasets = [], dict(spec.get("datasets", {}))
    for chart in marker_layers(instant, zone=zone):  # no data of their own: cheap to make
        layer = chart.to_dict(validate=False)
        datasets.update(layer.pop("datasets", {}))
        layers.append({k: v for k, v in layer.items() if k not in ("$schema", "config")})
    return {**spec, "layer": [*spec["layer"], *layers], "datasets": datasets}


def marker_layers(instant: Instant, *, zone: str | None = None) -> tuple[alt.Chart, alt.Chart]:
    """What :func:`as_of_marker` adds to a chart: the rule at ``instant`` and its label.

    Placed by constants (a date-time datum, a text value): no dataset to make.
    """
    t = to_instant(instant, param="as_of")
    label = "as of " + pl.select(time_text(pl.lit(t), zone=zone)).item()
    at = alt.XDatum(alt.DateTime(year=t.year, month=t.month, date=t.day, hours=t.hour,
                                 minutes=t.minute, seconds=t.second,
                                 milliseconds=t.microsecond // 1000, utc=True), type="temporal")
    base = alt.Chart(alt.InlineData(values=[{}]))  # one mark each
    rule = base.mark_rule(color=MARKER_COLOUR, strokeDash=[4, 3], strokeWidth=2).encode(x=at)
    text = base.mark_text(align="left", dx=4, dy=-4, baseline="bottom", color=MARKER_COLOUR
                          ).encode(x=at, y=alt.YValue(0), text=alt.TextValue(label))
    return rule, text


def _line_chart(window: TimeWindow, max_points: int, currency: Currency, zone: str | None,
                *, title: str | None = None, labels: list[str] | None = None,
                colours: list[str] | None = None, dashed: bool = False,
                y_title: str = "balance", signed: bool = False,
                extra: tuple[alt.Chart, ...] = ()) -> alt.LayerChart:
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
            .with_columns(pl.col("balance").alias("minor"),
                          currency.major(pl.col("balance")).alias("balance"))
            .collect())
    order = data[by].unique(maintain_order=True).to_list() if labels is None else labels
    if title is None:
        title = (f"Balance history of account{'s' * (len(order) > 1)} "
                 f"{', '.join(map(str, order))}" if len(order) <= 10
                 else f"Balance history of {len(order)} accounts")
    names = [f"account {v}" for v in order] if labels is None else labels
    shown = data.with_columns(pl.col(by).replace_strict(dict(zip(order, names, strict=True)),
                                                        return_dtype=pl.String).alias("series"))
    colour = alt.Color("series:N", title="account" if labels is None else "run", sort=names,
                       scale=alt.Scale(domain=names, range=colours) if colours else alt.Undefined,
                       legend=alt.Legend(orient="top") if len(names) > 1 else None)
    subtitle = window.subtitle(zone) + ("" if every is None else
                                        f"; last balance of every {describe(every)}")
    encoding: dict[str, Any] = {"strokeDash": alt.StrokeDash("series:N", sort=names, legend=None)
                                } if dashed else {}
    lines = alt.Chart(shown).mark_line(interpolate="step-after").encode(
        x=x_time(window.left, window.right),
        y=alt.Y("balance:Q", axis=y_money(f"{y_title} ({currency.code})", currency)),
        color=colour, **encoding)
    hover = series_hover(data, by=by, order=order, labels=names, colours=colours,
                         text=currency.signed_text if signed else currency.text,
                         scale=currency.major, zone=zone) if len(order) <= MAX_TIP_LINES else []
    # sizes given to the constructor: .properties() would validate them against the schema
    return cast("alt.LayerChart", alt.layer(*extra, lines, *hover, title=alt.Title(
        title, subtitle=subtitle), params=HOVER if hover else alt.Undefined, **SIZE))


def _band_chart(window: TimeWindow, max_points: int, currency: Currency,
                zone: str | None) -> alt.LayerChart:
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
            .sort("time")
            .with_columns(with_when(zone=zone),
                          *(currency.text(pl.col(name).round().cast(pl.Int64)).alias(f"{name}_text")
                            for name in PERCENTILES))
            .with_columns(currency.major(pl.col(name)).round(currency.minor)
                          for name in PERCENTILES)
            .collect().pipe(with_until))
    base = alt.Chart(data).encode(x=x_time(window.left, window.right))
    band = base.mark_area(interpolate="step-after", opacity=0.3).encode(
        y=alt.Y("p10:Q", axis=y_money(f"balance ({currency.code})", currency)),
        y2=alt.Y2("p90:Q"))
    median = base.mark_line(interpolate="step-after").encode(y=alt.Y("median:Q"))
    rule, _, rects = hover_layers(data, tooltip=[
        tip_time(f"end of {describe(every)}"),
        *(alt.Tooltip(f"{name}_text:N", title=PERCENTILE_WORDS[name])
          for name in reversed(PERCENTILES)),
        alt.Tooltip("accounts:Q", format=",", title="accounts with events")])
    title = alt.Title(
        f"Balances of {plural(window.accounts, 'account')}: median and 10th-90th percentile",
        subtitle=[f"{window.subtitle(zone)}; balance at the end of every {describe(every)}",
                  "line: the median account; shaded: the middle 80 % of accounts "
                  "(between the 10th and 90th percentile), each counted from its first event"],
    )
    # no layer has a row, column or facet encoding, so alt.layer makes no FacetChart
    return cast("alt.LayerChart", alt.layer(band, median, rule, rects, title=title,
                                            params=HOVER, **SIZE))
