"""Reliability tests: crashes, concurrent writers, damage, tampering and bad input.

They try hard to break the archive (issue 8). Worker functions that run in
other processes live in :mod:`reliability.workers`.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import ForkServerContext

#: What the fork server imports for every worker (see :func:`forkserver`).
PRELOAD = ["polars", "pyarrow", "deltalake", "duckdb", "eventkit", "eventkit.archive.table",
           "eventkit.archive.compaction", "eventkit.replay.api", "eventkit.replay.live",
           "eventkit.replay.snapshots", "eventkit.questions.views", "reliability.workers",
           "reliability.faults", "reliability.racers"]


def forkserver() -> ForkServerContext:
    """The fork server every reliability test's worker processes come from.

    One server per test session (multiprocessing starts it once: a later preload list
    would be ignored), so one list: the modules the workers use, imported once by
    the server — ``import eventkit`` alone loads nothing heavy (its names resolve on
    first use), and a child importing them itself under load can take seconds.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
