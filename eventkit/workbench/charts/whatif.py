"""Charts of a what-if: two runs' balances, and the distribution of the differences."""

from __future__ import annotations

from typing import cast

import altair as alt
import polars as pl

from eventkit._typing import Instant
from eventkit.workbench.charts._common import KEY, RUN_COLOURS, SIZE, TIME, TimeWindow
from eventkit.workbench.charts.balances import _line_chart

__all__ = ["delta_distribution", "what_if"]


def what_if(
    baseline: pl.LazyFrame | pl.DataFrame,
    scenario: pl.LazyFrame | pl.DataFrame,
    *,
    account: object,
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
    >>> banking = eventkit.rules.get("banking").with_params(require_open=0)
    >>> at = lambda rate: banking.with_params(rate_table={"2023-01-01": rate})
    >>> chart = what_if(eventkit.replay(events, at(0.02)).history,
    ...                 eventkit.replay(events, at(0.05)).history, account=1)
    >>> chart.data.filter(pl.col("time") == t[1]).select("run", "balance").rows()
    [('baseline', 1009.97), ('scenario', 1024.93)]

    """
    runs = [frame.lazy().filter(pl.col(KEY) == account)
            .select(pl.lit(label).alias("run"), TIME, "seq", "balance")
            for frame, label in zip((baseline, scenario), labels, strict=True)]
    window = TimeWindow.of(pl.concat(runs), start, end, by="run")
    colour = alt.Color("run:N", title="run", sort=list(labels),
                       scale=alt.Scale(domain=list(labels), range=RUN_COLOURS))
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

    ``state`` is :meth:`eventkit.questions.whatif.Comparison.state` (or ``as_of``): its
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
        # deltas: a quotient (Float64), not empty, no nulls (!= 0 drops them): bounds are floats
        lo, hi = float(cast("float", deltas.min())), float(cast("float", deltas.max()))
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
    ).properties(**SIZE)
