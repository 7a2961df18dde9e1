"""Charts of a what-if: both runs, their difference over time, the rate tables, the spread.

A scenario often moves balances by cents on thousands: two lines drawn on
one axis then lie on each other. :func:`difference_view` draws what changed
(B − A) on its own axis, per account and as the running total over all
accounts; :func:`rate_steps` shows the two rate tables in % with the shifted
window shaded; :func:`what_if_summary` says the totals in one sentence.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, cast

import altair as alt
import polars as pl

from eventkit._typing import Instant
from eventkit.exceptions import ParameterError
from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import to_instant
from eventkit.workbench.charts._common import (
    HOVER,
    KEY,
    RUN_COLOURS,
    SIZE,
    TIME,
    TimeWindow,
    series_hover,
    shade,
    x_time,
    y_money,
    zero_rule,
)
from eventkit.workbench.charts.balances import _line_chart, with_events
from eventkit.workbench.format import Currency, Sentence, percent_text, plural, span_words

if TYPE_CHECKING:
    from eventkit.questions.whatif import Comparison
    from eventkit.rules.rates import RateTable

__all__ = ["delta_distribution", "difference_view", "rate_steps", "what_if", "what_if_summary"]


def what_if(
    baseline: pl.LazyFrame | pl.DataFrame,
    scenario: pl.LazyFrame | pl.DataFrame,
    *,
    account: object,
    start: Instant | None = None,
    end: Instant | None = None,
    labels: tuple[str, str] = ("baseline", "scenario"),
    max_points: int = 2000,
    currency: Currency | str | None = None,
    zone: str | None = None,
    window: tuple[Instant, Instant] | None = None,
) -> alt.LayerChart:
    """Overlay one account's balance under two rule sets: as replayed, and a what-if.

    Parameters
    ----------
    baseline, scenario
        ``eventkit.replay(...).history`` under the actual rules and under the
        scenario's (e.g. ``rules.with_params(rate_table=...)``); other accounts
        are left out.
    account
        The account to draw.
    start, end, max_points, currency, zone
        As in :func:`~eventkit.workbench.charts.balances.balance_history`.
    labels
        Legend names of the two lines.
    window
        The scenario's window (e.g. the rate changes it shifted), shaded.

    Returns
    -------
    alt.LayerChart
        Two step lines, coloured and dashed by run, with the nearest-instant
        tooltip listing both balances.

    Examples
    --------
    >>> import eventkit
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)]
    >>> events = pl.DataFrame({"event_id": ["a", "b"], "seq": [0, 1], "account_id": [1, 1],
    ...     "event_type": ["Deposit", "Deposit"], "event_time": t, "recorded_at": t,
    ...     "amount": [100_000, 0]})
    >>> banking = eventkit.rules.get("banking").with_params(require_open=0)
    >>> at = lambda rate: banking.with_params(rate_table={"2023-01-01": rate})
    >>> chart = what_if(eventkit.replay(events, at(0.02)).history,
    ...                 eventkit.replay(events, at(0.05)).history, account=1)
    >>> chart.layer[0].data.filter(pl.col("time") == t[1]).select("series", "balance").rows()
    [('baseline', 1009.97), ('scenario', 1024.93)]

    """
    wanted = with_events(baseline.lazy(), [account]).implode()
    runs = [frame.lazy().filter(pl.col(KEY).is_in(wanted))
            .select(pl.lit(label).alias("run"), TIME, "seq", "balance")
            for frame, label in zip((baseline, scenario), labels, strict=True)]
    frame = TimeWindow.of(pl.concat(runs), start, end, by="run")
    return _line_chart(frame, max_points, Currency.of(currency), zone,
                       title=f"Account {account}: {labels[0]} and {labels[1]}",
                       labels=list(labels), colours=RUN_COLOURS, dashed=True,
                       extra=_shaded(window, frame))


def difference_view(
    history: pl.LazyFrame | pl.DataFrame,
    *,
    accounts: Collection[int] | None = None,
    field: str = "balance",
    start: Instant | None = None,
    end: Instant | None = None,
    max_points: int = 2000,
    currency: Currency | str | None = None,
    zone: str | None = None,
    window: tuple[Instant, Instant] | None = None,
) -> alt.LayerChart:
    """What the scenario changed over time: B − A per account, or the running total.

    Parameters
    ----------
    history
        :attr:`eventkit.questions.whatif.Comparison.history`: every event with
        ``<field>_delta`` (B − A after it).
    accounts
        One line per account: its difference after each event. ``None``: one
        line, the total difference over all accounts at each instant (each
        account counting with its latest difference).
    field
        The money field compared.
    start, end, max_points, currency, zone, window
        As in :func:`what_if`.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = [datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3)]
    >>> history = pl.DataFrame({"account_id": [1, 2, 1], "event_time": t, "seq": [0, 1, 2],
    ...                         "balance_delta": [5, -2, 7]})
    >>> total = difference_view(history)
    >>> total.layer[1].data.select("time", "balance").rows()[:3]  # doctest: +NORMALIZE_WHITESPACE
    [(datetime.datetime(2024, 1, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 0.05),
     (datetime.datetime(2024, 2, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 0.03),
     (datetime.datetime(2024, 3, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 0.05)]
    >>> total.to_dict()["title"]["text"]
    'Total difference of balance over all accounts (B − A)'

    """
    delta = f"{field}_delta"
    frame = history.lazy()
    if delta not in frame.collect_schema().names():
        msg = f"no column {delta!r}: pass Comparison.history of a money field"
        raise ParameterError(msg, param="field")
    frame = frame.select(KEY, TIME, "seq", delta).sort(TIME, "seq")
    money = Currency.of(currency)
    if accounts is None:
        # each event moves the total by how much it moved its own account's difference
        step = pl.col(delta) - pl.col(delta).shift(1).over(KEY).fill_null(0)
        lines = frame.select(pl.lit("total").alias("run"), TIME, "seq",
                             step.cum_sum().alias("balance"))
        title = f"Total difference of {field} over all accounts (B − A)"
        by = "run"
    else:
        wanted = with_events(frame, accounts)
        lines = frame.filter(pl.col(KEY).is_in(wanted.implode())).select(
            KEY, TIME, "seq", pl.col(delta).alias("balance"))
        ids = sorted(wanted.to_list())
        title = (f"Difference of {field} (B − A), account{'s' * (len(ids) > 1)} "
                 f"{', '.join(map(str, ids[:10]))}" + (" …" if len(ids) > 10 else ""))
        by = KEY
    shown = TimeWindow.of(lines, start, end, by=by)
    return _line_chart(shown, max_points, money, zone, title=title,
                       labels=["total"] if accounts is None else None,
                       y_title=f"{field} B − A", signed=True,
                       extra=(*_shaded(window, shown), zero_rule()))


def rate_steps(
    baseline: RateTable,
    scenario: RateTable,
    *,
    labels: tuple[str, str] = ("actual rates", "scenario"),
    window: tuple[Instant, Instant] | None = None,
    end: Instant | None = None,
    zone: str | None = None,
) -> alt.LayerChart:
    """Two rate tables as step lines in %, the scenario's window shaded.

    Each table holds ``{effective instant: annual rate}``; a line runs from the
    first entry to ``end`` (default: the last entry of either, plus a tenth of
    the span).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> a = {datetime(2024, 1, 1, tzinfo=UTC): 0.02, datetime(2024, 6, 1, tzinfo=UTC): 0.03}
    >>> b = {datetime(2024, 1, 1, tzinfo=UTC): 0.02, datetime(2024, 3, 1, tzinfo=UTC): 0.03}
    >>> chart = rate_steps(a, b, window=("2024-01-01", "2024-12-31"))
    >>> chart.layer[2].data.select("series", "rate").rows()[:3]
    [('actual rates', 2.0), ('actual rates', 3.0), ('actual rates', 3.0)]
    >>> chart.layer[-1].data.select("when", "t0", "t1").row(1)
    ('2024-03-01 00:00 UTC', '2.00 %', '3.00 %')

    """
    tables = [(label, table) for label, table in zip(labels, (baseline, scenario), strict=True)]
    if not any(table for _, table in tables):
        msg = "both rate tables are empty: nothing to draw"
        raise ParameterError(msg, param="baseline")
    times = [t for _, table in tables for t in table]
    first, last = min(times), max(times)
    right = to_instant(end, param="end") if end is not None else last + (last - first) / 10
    long = pl.concat([
        pl.DataFrame({"run": label, "time": [*table, right],
                      "rate": [*(100 * r for r in table.values()),
                               100 * table[max(table)] if table else None]},
                     schema={"run": pl.String, "time": TIME_DTYPE, "rate": pl.Float64})
        .sort("time") for label, table in tables if table])
    long = long.filter(pl.col("time") <= right)
    colours = dict(zip(labels, RUN_COLOURS, strict=True))
    shown = [label for label, table in tables if table]
    lines = alt.Chart(long.rename({"run": "series"})).mark_line(interpolate="step-after").encode(
        x=x_time(first, right),
        y=alt.Y("rate:Q", title="annual rate (%)", axis=alt.Axis(labelExpr="datum.value + ' %'"),
                scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title="rates", sort=shown,
                        scale=alt.Scale(domain=shown, range=[colours[s] for s in shown]),
                        legend=alt.Legend(orient="top")),
        strokeDash=alt.StrokeDash("series:N", sort=shown, legend=None))
    hover = series_hover(long, by="run", order=shown, labels=shown,
                         colours=[colours[s] for s in shown],
                         text=percent_text,
                         scale=lambda e: e, zone=zone, value="rate")
    area = _shaded(window, None, right=right)
    subtitle = f"{span_words(first, right, zone=zone)}; each rate holds until the next change"
    return cast("alt.LayerChart", alt.layer(*area, lines, *hover, title=alt.Title(
        "Bank rate table: actual and scenario", subtitle=subtitle), params=HOVER, **SIZE))


def what_if_summary(comparison: Comparison, field: str = "interest", *,
                    currency: Currency | str | None = None, who: str = "customers") -> Sentence:
    """The totals of a comparison in one sentence, money formatted.

    "Under the scenario customers gain $12.34 of interest in total; 5 accounts
    affected; largest gain +$2.00 (account 3), largest loss −$0.50 (account 9)."
    """
    money = Currency.of(currency)
    totals = comparison.totals().filter(pl.col("field") == field)
    if totals.height == 0:
        msg = f"{field!r} is not an int field of the comparison"
        raise ParameterError(msg, param="field")
    row = totals.row(0, named=True)
    if row["keys_affected"] == 0:
        return Sentence(f"The scenario changes no account's {field}.")
    delta = int(row["delta"])
    verb = "gain" if delta > 0 else "lose" if delta < 0 else "neither gain nor lose"
    amount = f" {money.words(abs(delta))} of {field} in total" if delta else f" {field} in total"
    state = comparison.state().select(KEY, f"{field}_delta").collect()
    extremes = []
    for label, pick in (("largest gain", state.sort(f"{field}_delta", descending=True)),
                        ("largest loss", state.sort(f"{field}_delta"))):
        account, value = pick.row(0)
        if (value > 0) == (label == "largest gain") and value != 0:
            extremes.append(f"{label} {money.signed(value)} (account {account})")
    return Sentence(f"Under the scenario {who} {verb}{amount}; "
                    f"{plural(row['keys_affected'], 'account')} affected"
                    + ("; " + ", ".join(extremes) if extremes else "") + ".")


def delta_distribution(
    state: pl.LazyFrame | pl.DataFrame,
    field: str = "interest",
    *,
    bins: int = 40,
    money: bool = True,
    currency: Currency | str | None = None,
) -> alt.Chart | Sentence:
    """Histogram of per-key deltas of ``field`` between two runs (keys that changed only).

    ``state`` is :meth:`eventkit.questions.whatif.Comparison.state` (or ``as_of``): its
    ``<field>_delta`` column is binned in Polars, so the chart holds ``bins``
    rows however many keys there are. ``money`` shows minor units as currency.
    No key changed: a :class:`~eventkit.workbench.format.Sentence` says so.

    Examples
    --------
    >>> state = pl.DataFrame({"account_id": [1, 2, 3, 4], "interest_delta": [0, 150, 250, 990]})
    >>> chart = delta_distribution(state, bins=2)
    >>> chart.data.select("keys").to_series().to_list()
    [2, 1]
    >>> delta_distribution(state.with_columns(interest_delta=0))
    No account's interest changed.

    """
    column = f"{field}_delta"
    unit = Currency.of(currency)
    deltas = state.lazy().filter(pl.col(column) != 0).select(
        (pl.col(column) / (10**unit.minor if money else 1)).alias("delta")).collect()["delta"]
    if deltas.len() == 0:
        return Sentence(f"No account's {field} changed.")
    title = f"Change of {field} per account ({plural(deltas.len(), 'account')} changed)"
    # deltas: a quotient (Float64), not empty, no nulls (!= 0 drops them): bounds are floats
    lo, hi = float(cast("float", deltas.min())), float(cast("float", deltas.max()))
    width = (hi - lo) / bins or 1.0
    index = ((deltas - lo) / width).floor().clip(0, bins - 1).cast(pl.Int64)
    data = (pl.DataFrame({"bin": index}).group_by("bin").len("keys").sort("bin")
            .select((lo + pl.col("bin") * width).alias("low"),
                    (lo + (pl.col("bin") + 1) * width).alias("high"), "keys"))
    fmt = unit.d3() if money else ","
    x_axis = y_money(f"{field} under B − under A ({unit.code})", unit) if money \
        else alt.Axis(title=f"{field} under B − under A")
    return alt.Chart(data, title=alt.Title(
        title, subtitle="bars: how many accounts changed by an amount in that range")
    ).mark_bar().encode(
        x=alt.X("low:Q", bin="binned", axis=x_axis),
        x2="high:Q",
        y=alt.Y("keys:Q", title="accounts", axis=alt.Axis(tickMinStep=1, format=",d")),
        tooltip=[alt.Tooltip("low:Q", format=fmt, title="from"),
                 alt.Tooltip("high:Q", format=fmt, title="to"),
                 alt.Tooltip("keys:Q", title="accounts")],
    ).properties(**SIZE)


def _shaded(window: tuple[Instant, Instant] | None, frame: TimeWindow | None, *,
            right: datetime | None = None) -> tuple[alt.Chart, ...]:
    """The scenario window, clipped to what the chart shows; nothing when there is none."""
    if window is None:
        return ()
    lo = to_instant(window[0], param="window", day="start")
    hi = to_instant(window[1], param="window")
    if frame is not None:
        lo, hi = max(lo, frame.left), min(hi, frame.right)
    elif right is not None:
        hi = min(hi, right)
    if lo >= hi:
        return ()
    return shade(lo, hi, "scenario window")
