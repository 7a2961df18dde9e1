"""What every engine's result answers: one :class:`Replayed` protocol for the type checker.

:class:`~eventkit.replay.result.ReplayResult` (the memory engine) and
:class:`~eventkit.replay.buckets.BucketedReplay` (the bucket and Dask
engines) both satisfy it, with the same answers; code that takes either
(the explorer, the command line) is typed against this protocol. Views,
what-if and explain need the in-memory result (its checked rules and the
archive version it read) and take a :class:`~eventkit.replay.result.ReplayResult`.

>>> from eventkit.replay.result import ReplayResult
>>> from eventkit.replay.buckets import BucketedReplay
>>> all(isinstance(c, type) for c in (ReplayResult, BucketedReplay))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import polars as pl

if TYPE_CHECKING:
    from eventkit._typing import Instant
    from eventkit.rules.model import RuleSet

__all__ = ["Replayed", "Window"]


@dataclass(frozen=True)
class Window:
    """State changes in a window: the state at its start, then every event in it.

    ``opening`` is the state per key at the start (as :meth:`ReplayResult.as_of`);
    ``changes`` the events with ``start < event_time <= end`` with the state
    after each, in (key, event time, seq) order.
    """

    opening: pl.LazyFrame
    changes: pl.LazyFrame


@runtime_checkable
class Replayed(Protocol):
    """A replay's answers, whichever engine folded (see :class:`~eventkit.ReplayResult`)."""

    rules: RuleSet

    @property
    def fingerprint(self) -> str:
        """The rule set's fingerprint (what cached views are keyed by)."""
        ...

    @property
    def history(self) -> pl.LazyFrame:
        """Every event with the state after it."""
        ...

    def state(self) -> pl.LazyFrame:
        """Final state per key."""
        ...

    def as_of(self, instant: Instant, *, accrued: bool = False) -> pl.LazyFrame:
        """State per key at ``instant`` (``accrued``: with the interest accrued up to it)."""
        ...

    def at_times(self, instants: Sequence[Instant] | pl.Series) -> pl.LazyFrame:
        """State per key at each instant, in one pass."""
        ...

    def between(self, start: Instant, end: Instant) -> Window:
        """The state at ``start`` and every change up to ``end``."""
        ...

    def violations(self) -> pl.LazyFrame:
        """Events the rules refused to fold, with the reason."""
        ...
