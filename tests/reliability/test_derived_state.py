"""Derived state is never trusted blindly: checkpoints, views, snapshots, expiry.

A live checkpoint records the version it reflects and is checked against it
when read: a torn or edited file, or a state that folded events twice (the
failure mode of concurrent catch-ups before), is detected and rebuilt.
``expire`` keeps every state column, ``events`` included. Views and replays
meet their failure modes with eventkit errors.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import eventkit
import reliability
from eventkit import EventArchive, LiveReplay, SchemaError, ViewError
from eventkit.archive import datafiles
from reliability import faults, workers

LATER_ROWS = sum(workers.batch_rows(b) for b in faults.LATER)


@pytest.fixture
def archive(tmp_path: Path) -> EventArchive:
    faults.prepare(tmp_path, "checkpoint")
    return EventArchive(faults.paths(tmp_path)["bank"])


def full_state(archive: EventArchive) -> pl.DataFrame:
    return eventkit.replay(archive, faults.RULES, snapshots=False).state().collect()


def test_a_checkpoint_that_folded_events_twice_is_rebuilt(archive: EventArchive,
                                                          tmp_path: Path) -> None:
    folder = tmp_path / "live"
    live = LiveReplay(archive, faults.RULES, folder=folder)
    live.catch_up()
    meta = json.loads((folder / "meta.json").read_text())
    # what a catch-up racing appends used to save: some events folded twice, hash intact
    doubled = live.state.with_columns(pl.col("balance") * 2, pl.col("events") * 2)
    doubled.write_parquet(folder / meta["state"])
    meta["sha256"] = datafiles.sha256_file(folder / meta["state"])
    (folder / "meta.json").write_text(json.dumps(meta))

    again = LiveReplay(archive, faults.RULES, folder=folder)

    assert again.discarded is not None and "events folded" in again.discarded
    report = again.catch_up()
    assert report.rebuilt
    assert_frame_equal(again.state, full_state(archive))
    assert LiveReplay(archive, faults.RULES, folder=folder).discarded is None


@pytest.mark.parametrize("damage", ["truncate", "edit", "delete", "garbage-record"])
def test_a_torn_or_edited_checkpoint_is_rebuilt(archive: EventArchive, tmp_path: Path,
                                                damage: str) -> None:
    folder = tmp_path / "live"
    LiveReplay(archive, faults.RULES, folder=folder).catch_up()
    meta = json.loads((folder / "meta.json").read_text())
    state = folder / meta["state"]
    if damage == "truncate":
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "edit":
        data = bytearray(state.read_bytes())
        data[len(data) // 2] ^= 0xFF
        state.write_bytes(bytes(data))
    elif damage == "delete":
        state.unlink()
    else:
        (folder / "meta.json").write_text("{not json")

    again = LiveReplay(archive, faults.RULES, folder=folder)

    assert again.discarded is not None
    assert again.catch_up().rebuilt
    assert_frame_equal(again.state, full_state(archive))


@pytest.mark.parametrize("rules", ["balance", "banking"])
def test_expire_keeps_every_state_column_events_included(tmp_path: Path, rules: str) -> None:
    faults.prepare(tmp_path, "expire")
    bank = faults.paths(tmp_path)["bank"]
    before = eventkit.replay(bank, rules, snapshots=False).state().collect()

    eventkit.expire(bank, before=faults.CUTOFF, by="ops", reason="retention", confirm=True,
                    rules=rules)

    after = eventkit.replay(bank, rules, snapshots=False).state().collect()
    assert_frame_equal(after, before)  # balance, events, last_event_time: all of them


def test_replay_of_a_frame_without_seq_completes_it_and_names_a_missing_column() -> None:
    events = workers.make_batch("x")  # no seq, no recorded_at: completed (seq in row order)
    state = eventkit.replay(events).state().collect()
    given = events.with_columns(seq=pl.int_range(pl.len(), dtype=pl.Int64),
                                recorded_at=pl.col("event_time"))
    assert state.equals(eventkit.replay(given).state().collect())
    assert state["events"].sum() == events.height
    # a column the rules read and nothing can derive is named, never a raw Polars error
    with pytest.raises(SchemaError, match=r"lack column\(s\) \['amount'\]") as caught:
        eventkit.replay(events.drop("amount")).state().collect()
    assert caught.value.column == "amount"


def _hold(path: str, ready: str, seconds: float) -> None:
    con = duckdb.connect(path)  # a write connection: DuckDB locks the file
    Path(ready).touch()
    time.sleep(seconds)
    con.close()


def test_a_view_database_held_by_another_program_is_a_view_error(tmp_path: Path) -> None:
    faults.prepare(tmp_path, "refresh")
    ctx = multiprocessing.get_context("spawn")
    ready = tmp_path / "ready"
    holder = ctx.Process(target=_hold, args=(str(faults.paths(tmp_path)["view"]), str(ready),
                                             60.0))
    holder.start()
    try:
        while not ready.exists():
            assert holder.is_alive()
            time.sleep(0.05)
        with pytest.raises(ViewError, match="refresh 'accounts'") as caught:
            eventkit.refresh(faults.url(tmp_path))
        assert isinstance(caught.value.__cause__, duckdb.Error)  # the original, kept
    finally:
        holder.kill()
        holder.join(timeout=30)
    assert eventkit.refresh(faults.url(tmp_path)).new_events == LATER_ROWS  # free again


def test_two_refreshes_at_once_take_turns(tmp_path: Path) -> None:
    """The second waits for the first (a lock beside the database), then finds it current."""
    faults.prepare(tmp_path, "refresh")
    ctx = reliability.forkserver()
    with ctx.Pool(2) as pool:
        reports = pool.starmap(faults.run, [(str(tmp_path), "refresh")] * 2)
    assert sorted(r.new_events for r in reports) == [0, LATER_ROWS]
    view = faults._view(faults.paths(tmp_path)["view"])
    scratch = tmp_path / "scratch.duckdb"
    eventkit.materialize(eventkit.replay(faults.paths(tmp_path)["bank"], faults.RULES),
                         f"duckdb:///{scratch}")
    assert view == faults._view(scratch)
