"""One account seen at one instant: the explorer's whole computation, without widgets.

:func:`account_view` is the one place the explorer (and the app) reads events:
the account's replay under the chosen rules (and under a scenario's), its
state at the as-of instant with the interest accrued up to it, the chart, a
sentence with the what-if difference, and a formatted table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import altair as alt
import polars as pl

from eventkit._typing import Instant
from eventkit.archive.open import Events, as_lazy
from eventkit.exceptions import EventDataError, ParameterError
from eventkit.replay.api import replay
from eventkit.replay.result import ReplayResult
from eventkit.rules import registry
from eventkit.rules.model import RuleSet
from eventkit.rules.rates import RateTable, bump_rates, rates_of
from eventkit.timeutil import EPOCH, to_instant
from eventkit.workbench.charts.balances import as_of_marker, balance_history
from eventkit.workbench.charts.whatif import what_if
from eventkit.workbench.format import Currency, Sentence, time_text
from eventkit.workbench.tables import table as format_table
from eventkit.workbench.tables import table_html

if TYPE_CHECKING:
    from great_tables import GT

__all__ = ["AccountView", "account_view", "rate_scenario"]


@dataclass(frozen=True)
class AccountView:
    """One account seen at one instant: what the explorer shows.

    ``baseline`` is the account's replay under the rules, ``scenario`` under
    the what-if rules (or ``None``); both hold the account's events only (and
    the bank's, which every account reads).
    """

    account: object
    as_of: datetime
    baseline: ReplayResult
    scenario: ReplayResult | None = None
    labels: tuple[str, str] = ("baseline", "scenario")

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

        With interest, balance and interest include what accrued from the last
        posting up to ``as_of`` (column ``accrued``: see ``ReplayResult.as_of``).
        No rows before the account's first event.
        """
        runs = [(self.labels[0], self.baseline)]
        if self.scenario is not None:
            runs.append((self.labels[1], self.scenario))
        accrued = self.baseline.rules.interest is not None
        return pl.concat([result.as_of(self.as_of, accrued=accrued).collect()
                          .select(pl.lit(label).alias("run"), pl.all()) for label, result in runs])

    def chart(self, *, max_points: int = 2000, currency: Currency | str | None = None,
              zone: str | None = None) -> alt.LayerChart:
        """Balance history with ``as_of`` marked; two lines when there is a scenario."""
        return as_of_marker(self.lines(max_points=max_points, currency=currency, zone=zone),
                            self.as_of, zone=zone)

    def lines(self, *, max_points: int = 2000, currency: Currency | str | None = None,
              zone: str | None = None) -> alt.LayerChart:
        """:meth:`chart` without the as-of marker: the same at every instant."""
        if self.scenario is None:
            return balance_history(self.baseline, accounts=[self.account],  # bounds: any expiry
                                   max_points=max_points, currency=currency, zone=zone)
        return what_if(self.baseline.history, self.scenario.history, account=self.account,
                       labels=self.labels, max_points=max_points, currency=currency, zone=zone)

    def summary(self, *, currency: Currency | str | None = None,
                zone: str | None = None) -> Sentence:
        """The balance at ``as_of`` in words, and the scenario's difference as a number."""
        money = Currency.of(currency)
        when = pl.select(time_text(pl.lit(self.as_of), zone=zone)).item()
        if self.state.height == 0:
            return Sentence(f"Account {self.account} has no events by {when}.")
        rows = {r["run"]: r for r in self.state.iter_rows(named=True)}
        base = rows[self.labels[0]]
        text = f"Account {self.account} as of {when}: balance {money.words(base['balance'])}"
        if base.get("accrued"):
            text += (f" (incl. {money.words(base['accrued'])} interest accrued since the "
                     "last posting)")
        other = rows.get(self.labels[1])
        if other is not None:
            delta = int(other["balance"]) - int(base["balance"])
            text += (f"; under {self.labels[1]}: {money.words(other['balance'])}, "
                     f"{money.signed(delta) if delta else 'no difference'}")
        return Sentence(text + ".")

    def difference(self) -> int | None:
        """Scenario balance minus baseline balance at ``as_of`` (minor units), or None."""
        if self.scenario is None or self.state.height < 2:
            return None
        balances = dict(self.state.select("run", "balance").iter_rows())
        return int(balances[self.labels[1]]) - int(balances[self.labels[0]])

    def table_html(self, *, currency: Currency | str | None = None,
                   zone: str | None = None) -> str:
        """:meth:`table` as HTML, for a widget (a layout kept per shape: fast)."""
        frame, options = self._table(currency=currency, zone=zone)
        return table_html(frame, **options)

    def table(self, *, currency: Currency | str | None = None, zone: str | None = None
              ) -> GT | Sentence:
        """:attr:`state` for people (see :func:`eventkit.table`): money in currency."""
        frame, options = self._table(currency=currency, zone=zone)
        return format_table(frame, **options)

    def _table(self, *, currency: Currency | str | None, zone: str | None
               ) -> tuple[pl.DataFrame, dict[str, Any]]:
        when = pl.select(time_text(pl.lit(self.as_of), zone=zone)).item()
        money = [f.name for f in self.baseline.rules.fields if f.money]
        shown = self.state.drop(self.baseline.rules.key_columns)
        return shown, {
            "title": f"State as of {when}", "currency": currency, "zone": zone,
            "money": [*money, *(["accrued"] if "accrued" in shown.columns else [])],
            "empty": f"Account {self.account} has no events by {when}."}


def account_view(
    source: Events,
    account: object,
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
    ['line', 'rule', 'point', 'rect', 'rule', 'text']
    >>> t0 = datetime(2023, 1, 1, tzinfo=UTC)
    >>> rates = pl.DataFrame({"event_id": ["r"], "seq": [3], "account_id": [0],
    ...     "event_type": ["InterestRateChanged"], "event_time": [t0], "recorded_at": [t0],
    ...     "amount": [0], "rate": [0.05]})
    >>> banking = registry.get("banking").with_params(require_open=0)
    >>> what_if = account_view(pl.concat([events, rates], how="diagonal"), 1, "2024-01-03",
    ...                        rules=banking, rate_shift_points=1.0)
    >>> what_if.state.select("run", "balance", "interest", "accrued").rows()
    [('baseline', 9754, 4, 3), ('rate +1.00 pp', 9755, 5, 3)]
    >>> what_if.summary()  # doctest: +NORMALIZE_WHITESPACE
    Account 1 as of 2024-01-03 23:59 UTC: balance $97.54 (incl. $0.03 interest accrued
    since the last posting); under rate +1.00 pp: $97.55, +$0.01.

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
        raise EventDataError(msg, column=", ".join(baseline.rules.key_columns))
    other = None
    if scenario is not None:
        other = replay(source, scenario, keys=[account])
        other.history.select(pl.len()).collect()  # replay now: the view is ready to show
    return AccountView(account, when, baseline, other, ("baseline", scenario_label or "scenario"))


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
