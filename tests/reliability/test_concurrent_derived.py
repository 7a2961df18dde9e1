"""Concurrency of derived state: appends racing compaction, snapshots, catch-ups and refreshes.

Processes (forked from a server that imported eventkit) share one archive for a
few seconds: two append batches, one compacts, one writes snapshot sets, two
catch a shared live checkpoint up, two refresh one DuckDB view, one answers
``as_of`` with whatever snapshot set is there. Nobody may meet an error (no raw
DuckDB lock error, no torn checkpoint, no vanished snapshot file); every state
a catch-up saved equals a full replay of the version it names; afterwards the
archive verifies, every batch is there once, and the checkpoint, the view and
the snapshots equal a full replay.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

import eventkit
import reliability
from eventkit import EventArchive, LiveReplay
from reliability import faults, racers, workers

pytestmark = pytest.mark.slow

ROLES = ("append", "append", "compact", "snapshot", "catch-up", "catch-up", "refresh",
         "refresh", "read")
SECONDS = 12.0


def test_appends_race_compaction_snapshots_catch_ups_and_refreshes(tmp_path: Path) -> None:
    faults.prepare(tmp_path, "refresh")  # an archive and a view of it
    p = faults.paths(tmp_path)
    LiveReplay(p["bank"], faults.RULES, folder=p["live"]).catch_up()
    ctx = reliability.forkserver()
    sent = {i: [f"r{i}-{k}" for k in range(40)] for i, role in enumerate(ROLES)
            if role == "append"}
    with ctx.Pool(len(ROLES)) as pool:
        until = time.time() + SECONDS  # from when the workers are up (loading takes a while)
        results = pool.starmap(racers.race, [(str(tmp_path), role, until, sent.get(i, []))
                                             for i, role in enumerate(ROLES)])
    errors = [e for r in results for e in r["errors"]]
    assert errors == [], "\n".join(errors)
    done = {role: sum(r["done"] for r in results if r["role"] == role) for role in ROLES}
    assert all(done.values()), done  # every role did its work, more than once
    print(f"\nconcurrent operations done: {done}, states checked: "
          f"{sum(r['checked'] for r in results)}")

    archive = EventArchive(p["bank"])
    assert archive.verify().ok
    ranges = workers.check_whole_batches(archive.scan().collect())
    stored = set(faults.BATCHES) | set(faults.LATER) | {b for ids in sent.values() for b in ids}
    assert set(ranges) == stored
    full = eventkit.replay(archive, faults.RULES, snapshots=False)
    live = LiveReplay(archive, faults.RULES, folder=p["live"])
    live.catch_up()
    assert live.discarded is None
    assert_frame_equal(live.state, full.state().collect())
    eventkit.refresh(faults.url(tmp_path))
    scratch = tmp_path / "scratch.duckdb"
    eventkit.materialize(full, f"duckdb:///{scratch}")
    assert faults._view(p["view"]) == faults._view(scratch)
    eventkit.snapshot(archive, faults.RULES, every="1d")
    at = workers.T0 + (full.history.collect()["event_time"].max() - workers.T0) / 2
    assert_frame_equal(eventkit.replay(archive, faults.RULES).as_of(at).collect(),
                       full.as_of(at).collect())
    assert faults.leftovers(tmp_path) == []
