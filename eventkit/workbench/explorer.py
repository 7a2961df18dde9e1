"""The replay explorer: one account's history, its state as of an instant, and a what-if.

:class:`Explorer` wraps :func:`~eventkit.workbench.view.account_view` in widgets,
built once: an interaction only changes their data. Only a committed account
(Enter, or a pick from the suggestions) replays; typing only updates the
suggestions. Changes are debounced and computed off the kernel's event loop;
a computation overtaken by a newer request is dropped, never drawn. The chart,
the state table, the what-if difference and the status line always come from
the same view, so they cannot disagree; an unknown account greys the view out
and says so. The instant is set by a slider or a date picker (kept in step).

``eventkit.explorer(archive)`` in a notebook cell shows it; running the cell
again closes the previous explorer's widgets, so nothing piles up in the kernel.
"""

from __future__ import annotations

import asyncio
import html
import time
from concurrent.futures import Future
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

import altair as alt
import ipywidgets as widgets
import polars as pl
from altair.utils.schemapi import debug_mode

from eventkit.archive.open import Events, archive_of, as_lazy, minor_digits_of
from eventkit.archive.table import EventArchive
from eventkit.exceptions import EventDataError, ParameterError, WorkbenchError
from eventkit.replay.progress import show_progress
from eventkit.rules import registry
from eventkit.rules.rates import rates_of
from eventkit.rules.streams import global_expr
from eventkit.timeutil import to_instant
from eventkit.workbench.charts._common import EMBED_OPTIONS
from eventkit.workbench.charts.balances import with_marker
from eventkit.workbench.combobox import AccountBox
from eventkit.workbench.format import Currency
from eventkit.workbench.view import AccountView, account_view, rate_scenario

__all__ = ["AccountView", "Explorer", "account_view", "explorer", "rate_scenario"]

#: Account ids offered while typing in the account box.
MAX_OPTIONS: Final = 20

#: Width of the explorer's chart in pixels (the lab and the app alike).
CHART_WIDTH: Final = 820

#: Seconds without a new change before the explorer recomputes.
DEBOUNCE_S: Final = 0.2

_LIVE: dict[str, Explorer] = {}  # explorers shown by explorer(), by name

#: How the explorer looks: an unknown account greys the view out.
STYLE: Final = """<style>
.eventkit-view { transition: opacity 0.15s; width: 100%; }
.eventkit-view.eventkit-unknown { opacity: 0.25; filter: grayscale(1); pointer-events: none; }
.eventkit-status { font-size: 13px; }
.eventkit-difference { font-size: 15px; padding: 8px 14px; }
.eventkit-difference b { font-size: 22px; }
.eventkit-explorer .vega-embed { width: 100%; }
</style>"""


class Wanted(NamedTuple):
    """What the widgets ask for: account (None: unknown), day, rules, rate shift."""

    account: object | None
    day: date
    rules: str
    points: float


class Shown(NamedTuple):
    """Everything one view puts on screen, made together (off the event loop)."""

    view: AccountView
    lines: dict[str, Any]  # the chart's spec without the as-of marker (kept per replay)
    spec: dict[str, Any]  # the chart's spec
    table: str
    difference: str
    status: str


class Explorer:
    """Widgets around :func:`account_view`: pick an account, an instant, rules, a scenario.

    Built once; every change only replaces the data of the chart, the state
    table, the what-if difference and the status line. ``debounce`` seconds
    must pass without another change before it recomputes (0: at once, in the
    caller's thread, as in a plain script). Show it by leaving it last in a
    cell, or ``display(explorer.widget)``; :meth:`close` releases its widgets.
    """

    def __init__(
        self,
        source: Events,
        *,
        account: object | None = None,
        as_of: date | str | None = None,
        rules: str = "balance",
        rate_shift_points: float = 0.0,
        debounce: float = DEBOUNCE_S,
        currency: Currency | str | None = None,
        zone: str | None = None,
    ) -> None:
        self._events = as_lazy(source)
        # an archive (or its path) is passed on as it is: replays of one account then use
        # its by-account copy when eventkit.snapshot made one (a few row groups, not a scan)
        self._source = source if isinstance(source, str | Path | EventArchive) else self._events
        self.debounce = debounce
        self.currency = _currency_of(source, currency)
        self.zone = zone
        self.refreshes = 0  # views computed so far
        self.dropped = 0  # computations overtaken by a newer request: never drawn
        self._pending: asyncio.TimerHandle | None = None
        self._asked = 0  # generation of the latest request
        self._view: AccountView | None = None
        self._view_key: tuple[Any, ...] | None = None
        self._lines: dict[str, Any] = {}  # the chart of the view's replay, without the marker
        schema = self._events.collect_schema()
        if "account_id" not in schema:
            msg = (f"the explorer shows one account at a time: the events have no account_id "
                   f"(columns: {', '.join(schema.names())}); for streams of other keys: "
                   "eventkit.charts.field_history and state_counts")
            raise EventDataError(msg, column="account_id")
        shared = global_expr(registry.get(rules), schema)
        ids, first, last = pl.collect_all([
            self._events.filter(~shared).select(pl.col("account_id").unique().sort()),
            self._events.select(pl.col("event_time").min()),
            self._events.select(pl.col("event_time").max()),
        ])
        if ids.height == 0:
            msg = "no accounts to explore"
            raise EventDataError(msg, column="account_id")
        self._ids = ids["account_id"]
        self._id_text = self._ids.cast(pl.String)
        self._bank_rates = rates_of(self._events)
        self._first: datetime = first.item()
        days = pl.date_range(self._first.date(), last.item().date(), "1d", eager=True)
        self._days = (days[0], days[-1])
        start = account if account is not None else self._ids[0]
        day = to_instant(as_of, param="as_of").date() if as_of is not None else days[-1]
        day = min(max(day, days[0]), days[-1])
        if registry.get(rules).interest is None:
            rate_shift_points = 0.0

        alt.JupyterChart.enable_offline()  # bundled JavaScript: no CDN
        self.account = AccountBox(value=str(start), text=str(start),
                                  options=self._matching(str(start)))
        self.as_of = widgets.SelectionSlider(
            options=[(f"{d:%Y-%m-%d}", d) for d in days], value=day, description="as of",
            continuous_update=False, layout=widgets.Layout(width="420px"))
        self.date = widgets.DatePicker(value=day, description="date",
                                       layout=widgets.Layout(width="240px"))
        self.rules = widgets.Dropdown(options=registry.names(), value=rules, description="rules")
        self.rate = widgets.FloatSlider(
            value=rate_shift_points, min=-3.0, max=3.0, step=0.25, description="rate ± pp",
            readout_format="+.2f", continuous_update=False,
            disabled=registry.get(rules).interest is None)
        self.status = widgets.HTML()
        self.table = widgets.HTML(layout=widgets.Layout(flex="1 1 auto"))
        self.difference = widgets.HTML(layout=widgets.Layout(min_width="240px"))
        wanted = self._wanted()
        if wanted.account is None:
            msg = f"no account {start!r} in the events (ids such as {self._id_text[0]!r})"
            raise EventDataError(msg, column="account_id")
        shown = self._make(wanted)
        if shown is None or isinstance(shown, str):  # the first account failed: say why
            raise EventDataError(shown or "no view", column="account_id")
        # the widget gets specs made off the event loop, never a chart to convert (and
        # no selection synced back: the hover is the page's own business)
        self.chart: alt.JupyterChart = alt.JupyterChart(
            None,  # type: ignore[arg-type]  # its chart trait allows None: no chart, a spec
            embed_options=dict(EMBED_OPTIONS))
        self.chart.spec = shown.spec
        self.view_box = widgets.VBox([self.chart, widgets.HBox([self.table, self.difference])],
                                     layout=widgets.Layout(width="100%"))
        self.widget: widgets.VBox = widgets.VBox([
            widgets.HTML(STYLE),
            widgets.HBox([self.account, self.rules]),
            widgets.HBox([self.as_of, self.date, self.rate]),
            self.status, self.view_box,
        ], layout=widgets.Layout(width="100%"))
        self._show(shown, wanted)
        self.widget.add_class("eventkit-explorer")
        self.view_box.add_class("eventkit-view")
        for w, name in ((self.as_of, "as-of"), (self.date, "date"), (self.rules, "rules"),
                        (self.rate, "rate"), (self.status, "status"),
                        (self.table, "table"), (self.difference, "difference")):
            w.add_class(f"eventkit-{name}")  # stable handles for pages and tests
        self.account.observe(self._on_text, "text")
        self.account.observe(self._on_change, "value")
        self.as_of.observe(self._on_slider, "value")
        self.date.observe(self._on_date, "value")
        self.rules.observe(self._on_rules, "value")
        self.rate.observe(self._on_change, "value")

    # ------------------------------------------------------------------ showing
    @property
    def view(self) -> AccountView:
        """What is shown now (after the last successful recomputation)."""
        if self._view is None:
            msg = "this explorer is closed"
            raise WorkbenchError(msg)
        return self._view

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Cancel a pending recomputation and close every widget (they stop syncing).

        Closing twice does nothing more.
        """
        for name in [name for name, shown in _LIVE.items() if shown is self]:
            del _LIVE[name]
        if self._view is None:
            return
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._asked += 1  # anything still computing is dropped
        self.account.unobserve(self._on_text, "text")
        self.account.unobserve(self._on_change, "value")
        self.as_of.unobserve(self._on_slider, "value")
        self.date.unobserve(self._on_date, "value")
        self.rules.unobserve(self._on_rules, "value")
        self.rate.unobserve(self._on_change, "value")
        boxes = [self.widget, *self.widget.children, self.view_box, *self.view_box.children]
        parts = [*boxes, *(c for b in boxes if isinstance(b, widgets.Box) for c in b.children)]
        for w in parts:
            for part in (getattr(w, "layout", None), getattr(w, "style", None), w):
                if part is not None:  # a widget's layout and style are widgets of their own
                    part.close()
        self._view = None

    # ------------------------------------------------------------------ reacting
    def _matching(self, text: str) -> list[str]:
        """The first account ids that start with ``text`` (all ids are searched)."""
        found = self._id_text.filter(self._id_text.str.starts_with(text.strip()))
        return found.head(MAX_OPTIONS).to_list()

    def _on_text(self, change: dict[str, Any]) -> None:
        self.account.options = self._matching(change["new"])  # suggestions only: no replay

    def _on_slider(self, change: dict[str, Any]) -> None:
        if self.date.value != change["new"]:
            self.date.value = change["new"]
        self._on_change(change)

    def _on_date(self, change: dict[str, Any]) -> None:
        day = change["new"]
        if day is None or day == self.as_of.value:
            return
        first, last = self._days
        if not first <= day <= last:
            self.status.value = (f"<b>{day:%Y-%m-%d} is outside the archive</b>: pick a day "
                                 f"from {first:%Y-%m-%d} to {last:%Y-%m-%d}")
            self.date.value = self.as_of.value
            return
        self.as_of.value = day  # the slider's observer recomputes

    def _on_rules(self, change: dict[str, Any]) -> None:
        interest = registry.get(change["new"]).interest is not None
        if not interest and self.rate.value != 0.0:
            self.rate.unobserve(self._on_change, "value")
            self.rate.value = 0.0  # a scenario these rules cannot have: shown as none, and
            self.rate.observe(self._on_change, "value")  # it does not come back silently
        self.rate.disabled = not interest
        self._on_change(change)

    def _on_change(self, _change: dict[str, Any] | None = None) -> None:
        if self.debounce <= 0:
            self.refresh()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script): nothing to wait for
            self.refresh()
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = loop.call_later(self.debounce, self.refresh)

    def _wanted(self) -> Wanted:
        text = self.account.value.strip()
        found = self._ids.filter(self._id_text == text)  # ids of any type, typed as text
        account = found[0] if found.len() else None
        rate = self.rate.value if registry.get(self.rules.value).interest is not None else 0.0
        return Wanted(account, self.as_of.value, self.rules.value, rate)

    def refresh(self) -> None:
        """Recompute from the widgets' values and show the result.

        With ``debounce`` and a running event loop (a kernel), the work runs in a
        thread and the result is drawn only if no newer request came meanwhile.
        """
        self._pending = None
        self._asked += 1
        asked = self._asked
        wanted = self._wanted()
        if wanted.account is None:
            self._unknown()
            return
        try:
            loop = asyncio.get_running_loop() if self.debounce > 0 else None
        except RuntimeError:
            loop = None
        if loop is None:
            self._finish(self._make(wanted, asked), wanted, asked)
            return
        self.status.value = f"computing account {html.escape(str(wanted.account))} …"
        future = loop.run_in_executor(None, self._make, wanted, asked)
        future.add_done_callback(lambda done: self._finished(done, wanted, asked))

    def _finished(self, done: asyncio.Future[Shown | str | None] | Future[Shown | str | None],
                  wanted: Wanted, asked: int) -> None:
        self._finish(done.result(), wanted, asked)

    def _finish(self, shown: Shown | str | None, wanted: Wanted, asked: int) -> None:
        if asked != self._asked or shown is None:
            self.dropped += 1  # overtaken by a newer request (or closed): never drawn
            return
        if isinstance(shown, str):
            self.status.value = shown
            return
        self._show(shown, wanted)
        self.chart.spec = shown.spec

    def _unknown(self) -> None:
        text = html.escape(self.account.value.strip())
        self.view_box.add_class("eventkit-unknown")
        self.status.value = (f"<b>no account {text!s}</b>: type an id from the suggestions "
                             "and press Enter (the view below is not that account)")

    def _make(self, wanted: Wanted, asked: int | None = None) -> Shown | str | None:
        """Everything to show for ``wanted``; a message on failure; None when overtaken."""
        if asked is not None and asked != self._asked:
            return None  # a newer request came before this one started
        # one account is quick, and drawn here: no progress bar; the spec is built without
        # Altair's schema checks (tests/test_explorer.py checks it against the schema)
        with show_progress(False), debug_mode(False):
            return self._compute(wanted)

    def _compute(self, wanted: Wanted) -> Shown | str:
        account, day, rules_name, points = wanted
        assert account is not None
        began = time.perf_counter()
        key = (account, rules_name, points)
        try:
            lines = None
            if self._view is not None and self._view_key == key:
                view, lines = self._view.at(day), self._lines  # same replay, another instant
            else:
                rules = registry.get(rules_name)
                scenario = (rate_scenario(rules, self._bank_rates, points, since=self._first)
                            if points else None)
                view = account_view(self._source, account, day, rules=rules, scenario=scenario,
                                    scenario_label=f"rate {points:+.2f} pp")
            if lines is None:
                # a fixed width: Voila's widget boxes give vega-embed no container width
                lines = {**view.lines(currency=self.currency, zone=self.zone).to_dict(
                    validate=False), "width": CHART_WIDTH}
            spec = with_marker(lines, view.as_of, zone=self.zone)
            shown_table = view.table_html(currency=self.currency, zone=self.zone)
        except (EventDataError, ParameterError, ValueError) as exc:
            return f"<b>{html.escape(str(exc))}</b>"
        delta = view.difference()
        difference = "" if delta is None else (
            f"<div>{html.escape(view.labels[1])} − baseline<br>"
            f"<b>{html.escape(self.currency.signed(delta) if delta else 'no difference')}</b>"
            f"<br>balance at the instant</div>")
        ms = (time.perf_counter() - began) * 1000
        said = view.summary(currency=self.currency, zone=self.zone).removeprefix(
            f"Account {account} ")
        status = (f"account {html.escape(str(account))} {html.escape(said)} "
                  "<span style='color:#888'>"
                  f"({view.history.height:,} events; {ms:,.0f} ms)</span>")
        return Shown(view, lines, spec, shown_table, difference, status)

    def _show(self, shown: Shown, wanted: Wanted) -> None:
        self.refreshes += 1
        self._view = shown.view
        self._view_key = (wanted.account, wanted.rules, wanted.points)
        self._lines = shown.lines
        self.table.value = shown.table
        self.difference.value = shown.difference
        self.status.value = shown.status
        self.view_box.remove_class("eventkit-unknown")


def _currency_of(source: Events, currency: Currency | str | None) -> Currency:
    """How the explorer shows money: in ``currency``, in the minor unit amounts are kept in.

    An archive keeps amounts in a minor unit of its own (``minor_digits``):
    a code (``"JPY"``) names the symbol, the archive gives the digits, so
    cents are never read as yen. Only a :class:`Currency` with ``digits`` of
    its own overrides them; events that are not an archive use the code's.

    Examples
    --------
    >>> _currency_of(pl.LazyFrame(), "JPY").minor
    0

    """
    chosen = Currency.of(currency)
    if archive_of(source) is None or chosen.digits is not None:
        return chosen
    return Currency(chosen.code, digits=minor_digits_of(source))


def explorer(source: Events, *, name: str = "explorer", **options: Any) -> Explorer:
    """Show the replay explorer (see :class:`Explorer`; ``options`` go to it).

    Calling it again with the same ``name`` (re-running the cell) first closes
    the previous explorer, so widgets and observers never pile up.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 2], "event_type": ["Deposit", "Fee", "Deposit"],
    ...     "event_time": t, "recorded_at": t, "amount": [10_000, 250, 500]})
    >>> ex = explorer(events, rules="balance", as_of="2024-01-01", debounce=0)
    >>> ex.account.text = "2"  # typing: suggestions only
    >>> ex.account.options, ex.view.account
    (['2'], 1)
    >>> ex.account.value = "2"  # Enter, or a pick: replays
    >>> ex.as_of.value = ex.as_of.options[-1][1]
    >>> ex.view.account, "$5.00" in ex.table.value, ex.date.value == ex.as_of.value
    (2, True, True)
    >>> ex.close()

    """
    previous = _LIVE.pop(name, None)
    if previous is not None:
        previous.close()
    _LIVE[name] = made = Explorer(source, **options)
    return made
