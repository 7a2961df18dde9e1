"""Temporal questions: state on a time grid, and what late events restated.

Two clocks: ``event_time`` says when something happened (valid time) and
``recorded_at`` when the archive learnt of it (transaction time). State
"as of" an instant folds the events that happened by then;
``replay(..., known_at=r)`` first forgets every event recorded after ``r``.
:func:`restatements` compares two such points of knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from numba import njit

from eventkit.rules import RuleSet
from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import to_instant

__all__ = ["Window", "grid_positions", "micros", "restatements"]

Instant = datetime | date | str


@dataclass(frozen=True)
class Window:
    """State changes in a window: the state at its start, then every event in it.

    ``opening`` is the state per key at the start (as :meth:`ReplayResult.as_of`);
    ``changes`` the events with ``start < event_time <= end`` with the state
    after each, in (key, event time, seq) order.
    """

    opening: pl.LazyFrame
    changes: pl.LazyFrame


def micros(instant: Instant, *, param: str, day: Literal["end", "start"] = "end") -> int:
    """An instant (see :func:`eventkit.timeutil.to_instant`) in microseconds since 1970."""
    t = to_instant(instant, param=param, day=day)
    return int(pl.Series([t], dtype=TIME_DTYPE).dt.epoch("us")[0])


@njit(cache=True, nogil=True)
def grid_positions(keys: np.ndarray, times: np.ndarray, seqs: np.ndarray, n_keys: int,
                   grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (grid instant, key): the row of the key's last event at or before it.

    One pass over the events: each event can only be the answer from the
    first grid instant at or after its time on, so it competes in that cell
    only; a running maximum along the grid then fills the later cells.
    ``grid`` is sorted. Returns rows (-1: no event yet) and event counts, both
    of shape (len(grid), n_keys).
    """
    g_n = grid.shape[0]
    best = np.full((g_n, n_keys), -1, np.int64)
    count = np.zeros((g_n, n_keys), np.int64)
    for e in range(keys.shape[0]):
        g = np.searchsorted(grid, times[e], side="left")
        if g == g_n:
            continue
        k = keys[e]
        count[g, k] += 1
        p = best[g, k]
        if p < 0 or times[e] > times[p] or (times[e] == times[p] and seqs[e] > seqs[p]):
            best[g, k] = e
    for g in range(1, g_n):
        for k in range(n_keys):
            count[g, k] += count[g - 1, k]
            if best[g, k] < 0:
                best[g, k] = best[g - 1, k]
    return best, count


def restatements(
    events: pl.LazyFrame | pl.DataFrame | str | Path,
    rules: RuleSet | str | Path = "balance",
    *,
    known_at: Instant,
    now_known_at: Instant,
) -> pl.LazyFrame:
    """What the events recorded between two points of knowledge changed in the past.

    Every event recorded after ``known_at`` (and at or before ``now_known_at``)
    but dated at or before ``known_at`` is a late event: it restates history
    that was already reported. For each one the result gives the key, the
    instant (its ``event_time``), the event, and per state field the value
    as of that instant as known then (``<field>_then``), as known now
    (``<field>_now``) and, for numbers, the difference (``<field>_delta``).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> d = lambda day: datetime(2024, 1, day, tzinfo=UTC)
    >>> events = pl.DataFrame({"event_id": ["a", "b", "late"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 1], "event_type": ["Deposit", "Deposit", "Correction"],
    ...     "event_time": [d(1), d(3), d(2)], "recorded_at": [d(1), d(3), d(10)],
    ...     "amount": [100, 50, -30]})
    >>> restatements(events, known_at="2024-01-05", now_known_at="2024-01-31").select(
    ...     "account_id", "event_id", "balance_then", "balance_now", "balance_delta"
    ... ).collect().rows()
    [(1, 'late', 100, 70, -30)]

    """
    from eventkit.replay import replay  # noqa: PLC0415 (replay imports this module)

    r1, r2 = micros(known_at, param="known_at"), micros(now_known_at, param="now_known_at")
    then = replay(events, rules, known_at=known_at)
    now = replay(events, rules, known_at=now_known_at)
    key = now.rules.key
    fields = list(now.checked.fields)
    recorded = pl.col("recorded_at").dt.epoch("us")
    late = (
        now.history.filter((recorded > r1) & (recorded <= r2)
                           & (pl.col("event_time").dt.epoch("us") <= r1))
        .select(key, pl.col("event_time").alias("instant"), "event_id", "event_type",
                "amount", "recorded_at")
        .sort("instant")
    )

    def states(result: pl.LazyFrame, suffix: str) -> pl.LazyFrame:
        return result.sort("event_time", "seq").select(
            key, pl.col("event_time").alias("instant"),
            *[pl.col(f).alias(f"{f}_{suffix}") for f in fields])

    out = late.join_asof(states(then.history, "then"), on="instant", by=key,
                         strategy="backward", check_sortedness=False)
    out = out.join_asof(states(now.history, "now"), on="instant", by=key,
                        strategy="backward", check_sortedness=False)
    deltas = [(pl.col(f"{f}_now") - pl.col(f"{f}_then").fill_null(now.checked.fields[f].start)
               ).alias(f"{f}_delta")
              for f in fields if now.checked.fields[f].type != "enum"]
    return out.with_columns(deltas).sort(key, "instant", "event_id")
