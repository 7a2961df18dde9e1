"""Replay events into state: balance histories and current balances.

The hot path is one vectorized Polars query: sort by (account, event time,
seq), then a running sum of the signed amounts per account. The per-event
Python fold in :mod:`eventkit.reference` is the test oracle, never used here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final

import polars as pl

from eventkit.archive import EventArchive
from eventkit.schema import BANK_ACCOUNT, TIME_DTYPE
from eventkit.timeutil import to_instant

__all__ = ["BALANCE_SIGNS", "ReplayResult", "replay"]

#: How each event type moves the balance: +1 credits, -1 debits the magnitude in
#: ``amount``; ``Correction`` amounts are signed already. Other types move nothing.
BALANCE_SIGNS: Final = {
    "Deposit": 1,
    "TransferIn": 1,
    "Correction": 1,
    "Withdrawal": -1,
    "Fee": -1,
    "TransferOut": -1,
}
KEY: Final = "account_id"
ORDER: Final = (KEY, "event_time", "seq")

Events = pl.LazyFrame | pl.DataFrame | EventArchive | str | Path


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of :func:`replay`: lazy, so callers filter before collecting.

    ``history`` holds every event of every account, in (account, event time,
    seq) order, with ``balance`` (minor units) after the event.
    """

    history: pl.LazyFrame

    def state(self) -> pl.LazyFrame:
        """Final state per account: balance, number of events, time of the last one."""
        return _last_per_key(self.history)

    def as_of(self, instant: datetime | date | str) -> pl.LazyFrame:
        """State per account at ``instant`` (events with ``event_time <= instant``).

        A date means the end of that UTC day.
        """
        t = to_instant(instant, param="as_of")
        return _last_per_key(self.history.filter(pl.col("event_time") <= pl.lit(t, TIME_DTYPE)))


def replay(events: Events) -> ReplayResult:
    """Replay events into per-account balances, exactly, in integer minor units.

    ``events`` is a LazyFrame or DataFrame in the canonical schema, an
    :class:`EventArchive`, or a path that :func:`eventkit.open_archive` reads.
    Bank-wide events (account 0) carry no balance and are left out.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 2], "event_type": ["Deposit", "Fee", "Deposit"],
    ...     "event_time": t, "recorded_at": t, "amount": [10_000, 250, 500]})
    >>> replay(events).state().select("account_id", "balance").collect().rows()
    [(1, 9750), (2, 500)]
    """
    lf = _as_lazy(events)
    signed = pl.col("amount") * pl.col("event_type").replace_strict(
        BALANCE_SIGNS, default=0, return_dtype=pl.Int64)
    history = (
        lf.filter(pl.col(KEY) != BANK_ACCOUNT)
        .sort(ORDER)
        .with_columns(balance=signed.cum_sum().over(KEY))
    )
    return ReplayResult(history)


def _last_per_key(history: pl.LazyFrame) -> pl.LazyFrame:
    return (
        history.group_by(KEY)
        .agg(
            pl.col("balance").last(),
            pl.len().alias("events"),
            pl.col("event_time").last().alias("last_event_time"),
        )
        .sort(KEY)
    )


def _as_lazy(events: Events) -> pl.LazyFrame:
    if isinstance(events, pl.LazyFrame):
        return events
    if isinstance(events, pl.DataFrame):
        return events.lazy()
    if isinstance(events, EventArchive):
        return events.scan()
    from eventkit.sources import open_archive  # noqa: PLC0415 (sources imports archive)

    return open_archive(events)
