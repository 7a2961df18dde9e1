"""SIGKILL during every operation, at random moments inside it.

Each operation of :mod:`reliability.faults` first runs to its end in a child
process (forked from a server that imported eventkit once), which times it;
then in :data:`TRIALS` fresh copies of the same state a child runs it and is
killed after a random fraction of that time (of the fastest run so far), so
most kills land inside the operation. Afterwards :func:`reliability.faults.check`
must hold: the archive opens and verifies, batches are whole and there once, derived state equals a
full replay (or what it was), ``forget`` did all or nothing, and running the
operation again succeeds and leaves nothing half-written.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from multiprocessing.context import ForkServerContext
from pathlib import Path

import pytest

import reliability
from reliability import faults

pytestmark = pytest.mark.slow

TRIALS = 8
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def forkserver() -> Iterator[ForkServerContext]:
    ctx = reliability.forkserver()
    yield ctx
    print(f"\nSIGKILL trials: {dict(sorted(OUTCOMES.items()))}")


def run_child(ctx: ForkServerContext, root: Path, operation: str,
              kill_after: float | None) -> tuple[int | None, float]:
    """Run ``operation`` in a child; SIGKILL it after ``kill_after`` s. Exit code, seconds."""
    proc = ctx.Process(target=faults.run, args=(str(root), operation))
    began = time.monotonic()
    proc.start()
    if kill_after is not None:
        proc.join(timeout=kill_after)
        proc.kill()
    proc.join(timeout=300)
    assert proc.exitcode is not None, f"{operation} hung"
    return proc.exitcode, time.monotonic() - began


@pytest.mark.parametrize("operation", faults.OPERATIONS)
def test_sigkill_at_random_moments(forkserver: ForkServerContext, tmp_path: Path,
                                   operation: str) -> None:
    rng = random.Random(f"kill-{operation}")
    first = tmp_path / "whole"
    first.mkdir()
    faults.prepare(first, operation)
    code, seconds = run_child(forkserver, first, operation, None)
    assert code == 0, f"{operation} failed without a kill"
    faults.check(first, operation, done=True)
    inside = 0
    for trial in range(TRIALS):
        root = tmp_path / f"trial-{trial}"
        root.mkdir()
        faults.prepare(root, operation)
        code, took = run_child(forkserver, root, operation, rng.uniform(0.05, 0.95) * seconds)
        killed = code == -9
        if not killed:  # it ran faster than the first run: aim within this run's time
            seconds = min(seconds, took)
        inside += killed
        OUTCOMES[f"{operation}: {'killed inside' if killed else 'finished first'}"] += 1
        faults.check(root, operation, done=None if killed else True)
        shutil.rmtree(root)
    assert inside >= TRIALS // 2, f"only {inside} of {TRIALS} kills landed inside {operation}"
