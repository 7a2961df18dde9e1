"""Labelled instances of the built-in patterns, for the generator to mix into its bank.

:func:`plan` draws, for each pattern of :data:`eventkit.questions.patterns.BUILTINS`,
a number of instances, each on accounts of its own (ids after the generated
bank's): the account opens, receives a funding deposit, then shows a *near
miss* (activity just short of the pattern: one withdrawal too few within the
window, a deposit followed by a partial withdrawal, a transfer returned too
late, a negative balance shorter than the limit) and later the instance
itself, which crosses the thresholds. With the thresholds it was planned for,
each instance raises exactly one alert of its pattern, from its first to its
last labelled event, and the near misses raise none.

Instances are laid out from a small template per pattern, a vector over the
instances per template row: no Python loop per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl

from eventkit.exceptions import ParameterError
from eventkit.questions.patterns import BUILTINS, Thresholds
from eventkit.schema import CANONICAL_SCHEMA, TIME_DTYPE

__all__ = ["Injection", "LABELS_SCHEMA", "plan"]

#: One row per injected instance: which pattern, its accounts and its events in time order.
LABELS_SCHEMA = {
    "pattern": pl.String(),
    "instance": pl.Int64(),
    "accounts": pl.List(pl.Int64()),
    "event_ids": pl.List(pl.String()),
    "start_time": TIME_DTYPE,
    "end_time": TIME_DTYPE,
}

_US = 1_000_000
_STEP = 10 * _US  # between an instance's setup events
_MAX_LATENCY = 5 * _US
_FUNDING = 1_000_000  # cents, before the instance's random scale
_PER_INSTANCES = 5_000  # one instance of each pattern per this many generated events


@dataclass(frozen=True)
class Injection:
    """The events to mix into the log (canonical columns but ``seq``) and their labels."""

    events: pl.DataFrame
    labels: pl.DataFrame
    accounts: int


def _us(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def _span(thresholds: Thresholds) -> int:
    """Microseconds from an instance's first event to its last (at most)."""
    return 2 * _gap(thresholds) + 2 * _us(thresholds.longest) + _STEP


def _gap(thresholds: Thresholds) -> int:
    """Time between the setup, the near miss and the instance: far beyond every window."""
    return 3 * _us(thresholds.longest) + 86_400 * _US


@dataclass
class _Rows:
    """Template rows of one pattern, each a vector over its instances."""

    t0: np.ndarray  # µs, the instances' first event
    latency: np.ndarray  # µs, recorded_at - event_time (one per instance: keeps their order)
    cols: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, at: np.ndarray | int, account: np.ndarray, kind: str,
            amount: np.ndarray | int = 0, *, matched: bool,
            counterparty: np.ndarray | None = None) -> None:
        n = len(self.t0)
        row = {
            "event_time": self.t0 + at,
            "account_id": account,
            "event_type": np.full(n, kind),
            "amount": np.broadcast_to(np.asarray(amount, np.int64), n),
            "counterparty_id": (np.zeros(n, np.int64) if counterparty is None
                                else counterparty),
            "matched": np.full(n, matched),
            "instance": np.arange(n),
            "slot": np.full(n, len(self.cols.get("slot", []))),
        }
        for name, column in row.items():
            self.cols.setdefault(name, []).append(np.asarray(column))

    def transfer(self, at: np.ndarray | int, payer: np.ndarray, payee: np.ndarray,
                 amount: np.ndarray, *, matched: bool) -> None:
        self.add(at, payer, "TransferOut", amount, matched=matched, counterparty=payee)
        self.add(at, payee, "TransferIn", amount, matched=matched, counterparty=payer)

    def frame(self, pattern: str) -> pl.DataFrame:
        data = {name: np.concatenate(parts) for name, parts in self.cols.items()}
        rows = len(data["slot"]) // len(self.t0)
        return pl.DataFrame(data).with_columns(
            pattern=pl.lit(pattern),
            recorded_at=pl.col("event_time") + pl.Series(np.tile(self.latency, rows)),
        )


def _layout(pattern: str, rows: _Rows, first: int, scale: np.ndarray,
            t: Thresholds) -> int:
    """Add the template rows of ``pattern``; return how many accounts it used."""
    n = len(scale)
    a = first + np.arange(n)
    gap = _gap(t)
    funding = np.rint(scale * max(_FUNDING, 2 * t.structuring_min_deposit)).astype(np.int64)
    rows.add(0, a, "AccountOpened", matched=False)
    if pattern == "ping_pong":
        b = a + n
        rows.add(_STEP, b, "AccountOpened", matched=False)
        rows.add(2 * _STEP, a, "Deposit", funding, matched=False)
        rows.add(3 * _STEP, b, "Deposit", funding, matched=False)
        within = _us(t.ping_pong_within)
        back = funding // 10
        rows.transfer(gap, a, b, back, matched=False)  # returned too late
        rows.transfer(gap + 3 * within // 2, b, a, back, matched=False)
        rows.transfer(2 * gap, a, b, back, matched=True)
        rows.transfer(2 * gap + within // 2, b, a, back, matched=True)
        return 2 * n
    rows.add(_STEP, a, "Deposit", funding, matched=False)
    if pattern == "rapid_withdrawals":
        count, step = t.rapid_count, _us(t.rapid_within) // (2 * t.rapid_count)
        small = funding // 100
        for i in range(count - 1):  # one withdrawal too few
            rows.add(gap + i * step, a, "Withdrawal", small, matched=False)
        for i in range(count):
            rows.add(2 * gap + i * step, a, "Withdrawal", small, matched=True)
    elif pattern == "structuring":
        share, half = t.structuring_share, _us(t.structuring_within) // 2
        deposit = np.rint(scale * max(t.structuring_min_deposit, 200_000)).astype(np.int64)
        partial = np.floor(share / 3 * (funding + deposit)).astype(np.int64)
        rows.add(gap, a, "Deposit", deposit, matched=False)
        rows.add(gap + half, a, "Withdrawal", partial, matched=False)
        # all but half the margin the share leaves: interest cannot push it under the share
        balance = funding + 2 * deposit - partial
        rows.add(2 * gap, a, "Deposit", deposit, matched=True)
        rows.add(2 * gap + half, a, "Withdrawal",
                 np.ceil((1 + share) / 2 * balance).astype(np.int64), matched=True)
    else:  # negative_balance: the deposit before each overdraft is long past any structuring
        limit, half = _us(t.negative_longer_than), funding // 2
        rows.add(gap, a, "Withdrawal", funding + half, matched=False)
        rows.add(gap + limit // 2, a, "Deposit", 2 * half, matched=False)  # too short a dip
        rows.add(2 * gap, a, "Withdrawal", 2 * half, matched=True)
        rows.add(2 * gap + 2 * limit, a, "Deposit", 2 * half, matched=True)
    return n


def plan(rng: np.random.Generator, *, events: int, first_account: int, start: int, end: int,
         thresholds: Thresholds) -> Injection:
    """Lay out the instances between ``start`` and ``end`` (µs), accounts from ``first_account``.

    Parameters
    ----------
    rng
        The random generator (the instances' times, amounts and latencies).
    events
        Size of the generated bank: ``max(2, events // 5000)`` instances of each pattern.
    first_account
        The first account id to use; each instance has accounts of its own.
    start, end
        Every injected ``event_time`` and ``recorded_at`` lies in ``[start, end)``.
    thresholds
        The thresholds the instances cross and their near misses do not.

    Raises
    ------
    ValueError
        The period is too short for the thresholds' instances; the message says how long
        it must be.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
    >>> inj = plan(np.random.default_rng(0), events=10_000, first_account=101, start=t0,
    ...            end=t0 + 365 * 86_400 * 1_000_000, thresholds=Thresholds())
    >>> inj.labels.group_by("pattern").len().sort("pattern").rows()
    [('negative_balance', 2), ('ping_pong', 2), ('rapid_withdrawals', 2), ('structuring', 2)]
    >>> inj.accounts, inj.events["event_id"][0]
    (10, 'p000000000000')

    """
    length = _span(thresholds) + _MAX_LATENCY + 1
    if end - start <= length:
        msg = (f"the period must be longer than {timedelta(microseconds=length)} "
               f"for these thresholds, got {timedelta(microseconds=end - start)}")
        raise ParameterError(msg, param="patterns")
    count = max(2, events // _PER_INSTANCES)
    frames, account = [], first_account
    for number, pattern in enumerate(BUILTINS):
        t0 = np.sort(rng.integers(start, end - length, count))
        rows = _Rows(t0, rng.integers(0, _MAX_LATENCY + 1, count))
        account += _layout(pattern, rows, account, 1 + rng.exponential(1.0, count), thresholds)
        frames.append(rows.frame(pattern).with_columns(instance=pl.col("instance")
                                                       + number * count))
    injected = pl.concat(frames).sort("recorded_at", "instance", "slot").with_columns(
        event_id=pl.format("p{}", pl.int_range(pl.len()).cast(pl.String).str.pad_start(12, "0")),
        event_time=pl.from_epoch("event_time", "us").cast(TIME_DTYPE),
        recorded_at=pl.from_epoch("recorded_at", "us").cast(TIME_DTYPE),
        counterparty_id=pl.when(pl.col("counterparty_id") > 0).then("counterparty_id"),
        rate=pl.lit(None, pl.Float64),
    )
    labels = (injected.filter("matched")
              .group_by("pattern", "instance")
              .agg(pl.col("account_id").unique(maintain_order=True).alias("accounts"),
                   pl.col("event_id"), pl.col("event_time").min().alias("start_time"),
                   pl.col("event_time").max().alias("end_time"))
              .rename({"event_id": "event_ids"})
              .sort("instance")
              .select([pl.col(c).cast(d) for c, d in LABELS_SCHEMA.items()]))
    columns = [c for c in CANONICAL_SCHEMA if c != "seq"]
    return Injection(injected.select([pl.col(c).cast(CANONICAL_SCHEMA[c]) for c in columns]),
                     labels, account - first_account)

