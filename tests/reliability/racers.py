"""The processes of the concurrency family: appenders racing compaction, snapshots,
live catch-ups and view refreshes on one archive (see test_concurrent_derived.py)."""

from __future__ import annotations

import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

import eventkit
from eventkit import EventArchive, LiveReplay
from reliability import faults, workers


def _state(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    return frame.sort("account_id").rows()


def race(root: str, role: str, until: float, batches: list[str]) -> dict[str, Any]:
    """Do ``role``'s work in a loop until ``until`` (an appender: append ``batches``).

    Returns what it did and every error it met (none is expected).
    """
    p = faults.paths(Path(root))
    done, errors, checked, tries = 0, [], 0, 0
    while tries == 0 or time.time() < until or (role == "append" and done < len(batches)):
        tries += 1  # (at least once, however late this worker started)
        try:
            if role == "append":
                if done == len(batches):
                    break
                EventArchive(p["bank"]).append(workers.make_batch(batches[done]),
                                               batch_id=batches[done])
            elif role == "compact":
                eventkit.compact(p["bank"], target_rows=10_000)
            elif role == "snapshot":
                eventkit.snapshot(p["bank"], faults.RULES, every="1d")
            elif role == "catch-up":
                live = LiveReplay(p["bank"], faults.RULES, folder=p["live"])
                live.catch_up()
                # the state saved is exactly the one of the version it names
                want = eventkit.replay(p["bank"], faults.RULES, snapshots=False,
                                       version=live.version).state().collect()
                assert _state(live.state) == _state(want), f"mixed state at {live.version}"
                checked += 1
            elif role == "refresh":
                eventkit.refresh(faults.url(Path(root)))
            elif role == "read":  # with whatever snapshot set is there meanwhile
                version = EventArchive(p["bank"]).version
                at = workers.T0 + timedelta(days=1 + done % 5)
                got = eventkit.replay(p["bank"], faults.RULES, version=version).as_of(at)
                want = eventkit.replay(p["bank"], faults.RULES, snapshots=False,
                                       version=version).as_of(at)
                assert _state(got.collect()) == _state(want.collect()), f"as_of({at})"
                checked += 1
            done += 1
        except Exception:  # reported to the test, which fails on any
            errors.append(f"{role}: {traceback.format_exc()}")
            time.sleep(0.05)
    return {"role": role, "done": done, "errors": errors, "checked": checked}
