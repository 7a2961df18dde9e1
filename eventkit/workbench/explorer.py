"""The replay explorer: one account's history, its state as of an instant, and a what-if.

:func:`account_view` is the whole per-interaction computation and the one
place that reads events for it: the account's history under the chosen rules
(and under a scenario's), its state at the as-of instant, and the chart.
:class:`Explorer` wraps it in ipywidgets, built once: an interaction only
changes the widgets' data. Changes are debounced, and a change of the as-of
instant alone reuses the account's replay instead of reading again.

``eventkit.explorer(archive)`` in a notebook cell shows it; running the cell
again closes the previous explorer's widgets, so nothing piles up in the kernel.
"""

from __future__ import annotations

import asyncio
import html
import time
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import altair as alt
import ipywidgets as widgets
import polars as pl

from eventkit._typing import Instant
from eventkit.archive.open import Events, as_lazy, minor_digits_of
from eventkit.archive.table import EventArchive
from eventkit.exceptions import EventDataError, ParameterError, WorkbenchError
from eventkit.replay.api import replay
from eventkit.replay.protocol import Replayed
from eventkit.rules import registry
from eventkit.rules.model import RuleSet
from eventkit.rules.rates import RateTable, bump_rates, rates_of
from eventkit.schema import BANK_ACCOUNT
from eventkit.timeutil import EPOCH, to_instant
from eventkit.workbench.charts._common import EMBED_OPTIONS
from eventkit.workbench.charts.balances import as_of_marker, balance_history
from eventkit.workbench.charts.whatif import what_if

__all__ = ["AccountView", "Explorer", "account_view", "explorer", "rate_scenario"]

#: Account ids offered while typing in the account box.
MAX_OPTIONS: Final = 20

#: Seconds without a new change before the explorer recomputes.
DEBOUNCE_S: Final = 0.2

_LIVE: dict[str, Explorer] = {}  # explorers shown by explorer(), by name


@dataclass(frozen=True)
class AccountView:
    """One account seen at one instant: what the explorer shows.

    ``baseline`` is the account's replay under the rules, ``scenario`` under
    the what-if rules (or ``None``); both hold the account's events only (and
    the bank's, which every account reads).
    """

    account: int
    as_of: datetime
    baseline: Replayed
    scenario: Replayed | None = None
    labels: tuple[str, str] = ("baseline", "scenario")
    minor_digits: int = 2  # of the source's money: displays divide by 10**minor_digits

    def at(self, as_of: datetime | date | str) -> AccountView:
        """The same account at another instant, without reading or replaying again."""
        return replace(self, as_of=to_instant(as_of, param="as_of"))

    @cached_property
    def history(self) -> pl.DataFrame:
        """The account's events in time order with the state after each (baseline)."""
        return self.baseline.history.sort("event_time", "seq").collect()

    @cached_property
    def state(self) -> pl.DataFrame:
        """State at ``as_of``: one row per run (``baseline``, ``scenario``).

        No rows before the account's first event.
        """
        runs = [(self.labels[0], self.baseline)]
        if self.scenario is not None:
            runs.append((self.labels[1], self.scenario))
        return pl.concat([result.as_of(self.as_of).collect()
                          .select(pl.lit(label).alias("run"), pl.all()) for label, result in runs])

    def chart(self, *, max_points: int = 2000) -> alt.LayerChart:
        """Balance history with ``as_of`` marked; two lines when there is a scenario."""
        if self.scenario is None:
            lines = balance_history(self.baseline.history, accounts=[self.account],
                                    max_points=max_points)
        else:
            lines = what_if(self.baseline.history, self.scenario.history,
                            account=self.account, labels=self.labels, max_points=max_points)
        return as_of_marker(lines, self.as_of)

    def table(self) -> pl.DataFrame:
        """:attr:`state` for people: money fields in currency units (display only)."""
        money = [f.name for f in self.baseline.rules.fields if f.money]
        digits = self.minor_digits
        return self.state.with_columns((pl.col(m) / 10**digits).round(digits) for m in money)


def account_view(
    source: Events,
    account: int,
    as_of: Instant,
    *,
    rules: RuleSet | str = "balance",
    scenario: RuleSet | None = None,
    rate_shift_points: float = 0.0,
    scenario_label: str | None = None,
) -> AccountView:
    """Replay one account for the explorer: its history, state at ``as_of``, and a what-if.

    The single place where the explorer reads events: today a replay of the
    account's events (the key filter reaches the Parquet reader), once under
    ``rules`` and once under ``scenario`` when given.

    Parameters
    ----------
    source
        Events: a LazyFrame, DataFrame, :class:`~eventkit.EventArchive` or path.
    account
        The account id.
    as_of
        The instant whose state is shown; a date means the end of that UTC day.
    rules
        A rule set or a registered name.
    scenario
        What-if rules to compare with (e.g. from :func:`rate_scenario`), or ``None``.
    rate_shift_points
        Instead of ``scenario``: the rules with the bank's rates moved by this
        many percentage points (see :func:`rate_scenario`; ignored by rules
        without interest). Reads the bank's rate table from ``source``.
    scenario_label
        The scenario's name in the chart and table (default ``"scenario"``,
        or ``"rate +1.00 pp"`` for a rate shift).

    Returns
    -------
    AccountView

    Raises
    ------
    eventkit.EventDataError
        The account has no events.
    eventkit.InstantError
        ``as_of`` is naive or malformed.
    ValueError
        Both ``scenario`` and ``rate_shift_points`` are given.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 2], "event_type": ["Deposit", "Fee", "Deposit"],
    ...     "event_time": t, "recorded_at": t, "amount": [10_000, 250, 500]})
    >>> view = account_view(events, 1, "2024-01-01")
    >>> view.state.select("run", "account_id", "balance").rows()
    [('baseline', 1, 10000)]
    >>> view.at("2024-01-02").state["balance"].to_list()
    [9750]
    >>> [layer["mark"]["type"] for layer in view.chart().to_dict()["layer"]]
    ['line', 'rule', 'text']
    >>> t0 = datetime(2023, 1, 1, tzinfo=UTC)
    >>> rates = pl.DataFrame({"event_id": ["r"], "seq": [3], "account_id": [0],
    ...     "event_type": ["InterestRateChanged"], "event_time": [t0], "recorded_at": [t0],
    ...     "amount": [0], "rate": [0.05]})
    >>> banking = registry.get("banking").with_params(require_open=0)
    >>> what_if = account_view(pl.concat([events, rates], how="diagonal"), 1, "2024-01-03",
    ...                        rules=banking, rate_shift_points=1.0)
    >>> what_if.state.select("run", "balance", "interest").rows()
    [('baseline', 9751, 1), ('rate +1.00 pp', 9752, 2)]

    """
    when = to_instant(as_of, param="as_of")
    ruleset = registry.resolve(rules)
    if rate_shift_points and ruleset.interest is not None:
        if scenario is not None:
            msg = "give scenario or rate_shift_points, not both"
            raise ParameterError(msg, param="scenario")
        scenario = rate_scenario(ruleset, rates_of(as_lazy(source)), rate_shift_points)
        scenario_label = scenario_label or f"rate {rate_shift_points:+.2f} pp"
    baseline = replay(source, ruleset, keys=[account])
    if baseline.history.select(pl.len()).collect().item() == 0:
        msg = f"account {account} has no events"
        raise EventDataError(msg, column=baseline.rules.key)
    other = None
    if scenario is not None:
        other = replay(source, scenario, keys=[account])
        other.history.select(pl.len()).collect()  # replay now: the view is ready to show
    return AccountView(account, when, baseline, other, ("baseline", scenario_label or "scenario"),
                       minor_digits_of(source))


def rate_scenario(rules: RuleSet, table: RateTable, points: float, *,
                  since: datetime | None = None) -> RuleSet:
    """``rules`` with every bank-wide rate moved by ``points`` percentage points.

    The rate table is ``rules.rate_table`` when it has one, else ``table`` (the
    archive's, from :func:`~eventkit.rules.rates.rates_of`); an empty one means
    0 % from ``since``. Accounts with a rate of their own keep it. The shift
    itself is :func:`~eventkit.rules.rates.bump_rates`.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from eventkit import rules
    >>> shifted = rate_scenario(rules.get("banking"), {datetime(2024, 1, 1, tzinfo=UTC): 0.02},
    ...                         0.5)
    >>> [(f"{t:%Y-%m-%d}", round(r, 4)) for t, r in shifted.rate_table]
    [('2024-01-01', 0.025)]

    """
    base = dict(rules.rate_table) if rules.rate_table is not None else dict(table)
    if not base:
        base = {since or EPOCH: 0.0}
    return rules.with_params(rate_table=bump_rates(base, points))


class Explorer:
    """Widgets around :func:`account_view`: pick an account, an instant, rules, a scenario.

    Built once; every change only replaces the data of the chart, the state
    table and the status line. ``debounce`` seconds must pass without another
    change before it recomputes (0: at once, and also when no event loop runs,
    as in a plain script). Show it by leaving it last in a cell, or
    ``display(explorer.widget)``; :meth:`close` releases its widgets.
    """

    def __init__(
        self,
        source: Events,
        *,
        account: int | None = None,
        as_of: date | str | None = None,
        rules: str = "balance",
        rate_shift_points: float = 0.0,
        debounce: float = DEBOUNCE_S,
    ) -> None:
        self._events = as_lazy(source)
        # an archive (or its path) is passed on as it is: replays of one account then use
        # its by-account copy when eventkit.snapshot made one (a few row groups, not a scan)
        self._source = source if isinstance(source, str | Path | EventArchive) else self._events
        self.debounce = debounce
        self.refreshes = 0  # recomputations so far
        self._pending: asyncio.TimerHandle | None = None
        self._view: AccountView | None = None
        self._view_key: tuple[Any, ...] | None = None
        ids, first, last = pl.collect_all([
            self._events.select(pl.col("account_id").unique().sort())
                .filter(pl.col("account_id") != BANK_ACCOUNT),
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
        start = account if account is not None else int(self._ids[0])
        day = to_instant(as_of, param="as_of").date() if as_of is not None else days[-1]

        alt.JupyterChart.enable_offline()  # bundled JavaScript: no CDN
        self.account = widgets.Combobox(
            value=str(start), options=self._matching(str(start)), description="account",
            placeholder="type an account id", ensure_option=False)
        self.as_of = widgets.SelectionSlider(
            options=[(f"{d:%Y-%m-%d}", d) for d in days],
            value=min(max(day, days[0]), days[-1]), description="as of",
            continuous_update=False, layout=widgets.Layout(width="460px"))
        self.rules = widgets.Dropdown(options=registry.names(), value=rules, description="rules")
        self.rate = widgets.FloatSlider(
            value=rate_shift_points, min=-3.0, max=3.0, step=0.25, description="rate ± pp",
            readout_format="+.2f", continuous_update=False)
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self._compute(self._wanted())
        if self._view is None:  # the first account failed: show why instead of a chart
            raise EventDataError(self.status.value, column="account_id")
        self.chart: alt.JupyterChart = alt.JupyterChart(self._view.chart(),
                                                        embed_options=dict(EMBED_OPTIONS))
        self.widget: widgets.VBox = widgets.VBox([
            widgets.HBox([self.account, self.rules]),
            widgets.HBox([self.as_of, self.rate]),
            self.chart, self.table, self.status,
        ])
        self.widget.add_class("eventkit-explorer")
        for w, name in ((self.account, "account"), (self.as_of, "as-of"), (self.rules, "rules"),
                        (self.rate, "rate"), (self.status, "status")):
            w.add_class(f"eventkit-{name}")  # stable handles for pages and tests
        self.account.observe(self._on_account_text, "value")
        for control in (self.as_of, self.rules, self.rate):
            control.observe(self._on_change, "value")

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
        self.account.unobserve(self._on_account_text, "value")
        for control in (self.as_of, self.rules, self.rate):
            control.unobserve(self._on_change, "value")
        for w in (self.widget, *self.widget.children, self.account, self.rules, self.as_of,
                  self.rate):
            for part in (getattr(w, "layout", None), getattr(w, "style", None), w):
                if part is not None:  # a widget's layout and style are widgets of their own
                    part.close()
        self._view = None

    # ------------------------------------------------------------------ reacting
    def _matching(self, text: str) -> list[str]:
        """The first account ids that start with ``text`` (all ids are searched)."""
        found = self._id_text.filter(self._id_text.str.starts_with(text.strip()))
        return found.head(MAX_OPTIONS).to_list()

    def _on_account_text(self, change: dict[str, Any]) -> None:
        self.account.options = self._matching(change["new"])
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

    def _wanted(self) -> tuple[int | None, date, str, float]:
        text = self.account.value.strip()
        account = int(text) if text.isdigit() else None
        if account is not None and not self._ids.is_in([account]).any():
            account = None
        rate = self.rate.value if registry.get(self.rules.value).interest is not None else 0.0
        return account, self.as_of.value, self.rules.value, rate

    def refresh(self) -> None:
        """Recompute from the widgets' values now and update the chart, table and status."""
        self._pending = None
        self.rate.disabled = registry.get(self.rules.value).interest is None
        wanted = self._wanted()
        if self._compute(wanted) and self._view is not None:  # _compute made the view
            self.chart.chart = self._view.chart()

    def _compute(self, wanted: tuple[int | None, date, str, float]) -> bool:
        """Make the view for ``wanted``; show it in the table and status. False on failure."""
        account, day, rules_name, points = wanted
        if account is None:
            self.status.value = (f"<b>no account {html.escape(self.account.value)!s}</b>: "
                                 "type an id from the list")
            return False
        began = time.perf_counter()
        self.refreshes += 1
        key = (account, rules_name, points)
        try:
            if self._view is not None and self._view_key == key:
                view = self._view.at(day)  # same replay, another instant
            else:
                rules = registry.get(rules_name)
                scenario = (rate_scenario(rules, self._bank_rates, points, since=self._first)
                            if points else None)
                view = account_view(self._source, account, day, rules=rules, scenario=scenario,
                                    scenario_label=f"rate {points:+.2f} pp")
            table = view.table()
        except (EventDataError, ValueError) as exc:
            self.status.value = f"<b>{html.escape(str(exc))}</b>"
            return False
        self._view, self._view_key = view, key
        ms = (time.perf_counter() - began) * 1000
        self.table.value = _html_table(table, view.as_of)
        self.status.value = (f"account {account}: {view.history.height:,} events, "
                             f"computed in {ms:,.0f} ms")
        return True


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
    >>> ex.account.value = "2"
    >>> ex.as_of.value = ex.as_of.options[-1][1]
    >>> ex.table.value.count("<tr>"), "right'>5.00</td>" in ex.table.value
    (2, True)
    >>> ex.close()

    """
    previous = _LIVE.pop(name, None)
    if previous is not None:
        previous.close()
    _LIVE[name] = made = Explorer(source, **options)
    return made


def _html_table(table: pl.DataFrame, as_of: datetime) -> str:
    caption = f"state as of {as_of:%Y-%m-%d %H:%M} UTC"
    if table.height == 0:
        return f"<p>{caption}: no events yet</p>"
    pad = "padding:2px 10px"
    head = "".join(f"<th style='{pad}'>{html.escape(c)}</th>" for c in table.columns)
    numeric = [dtype.is_numeric() for dtype in table.dtypes]
    rows = "".join("<tr>" + "".join(
        f"<td style='{pad};text-align:{'right' if num else 'left'}'>{html.escape(_cell(v))}</td>"
        for v, num in zip(row, numeric, strict=True)) + "</tr>" for row in table.rows())
    return (f"<table class='eventkit-state'><caption>{caption}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:,.2f}" if value == value else ""  # NaN: not set
    return "" if value is None else str(value)

