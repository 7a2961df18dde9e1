"""Concurrent writers: processes (``spawn``) appending at once, with and without the lock.

With the archive's file lock the writers take turns; without it they race for
each Delta commit, and a loser must get a retryable ``AppendConflictError``
having written nothing. Either way: every batch stored exactly once, whole,
``seq`` gapless and strictly increasing, the hash chain valid.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from test_archive import assert_unchanged, snapshot

from eventkit import AppendConflictError, EventArchive
from eventkit.archive import _append as archive_module
from eventkit.archive import ledger, lock
from reliability import workers

WRITERS = 4
APPENDS = 25


def run_writers(path: Path, *, use_lock: bool, appends: int = APPENDS
                ) -> list[tuple[list[dict[str, Any]], int]]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(WRITERS, mp_context=ctx) as pool:
        start_at = time.time() + 4.0  # after every interpreter has started
        futures = [pool.submit(workers.concurrent_writer, str(path), w, appends, start_at,
                               use_lock=use_lock) for w in range(WRITERS)]
        return [f.result(timeout=300) for f in futures]


def check_archive(path: Path, results: list[tuple[list[dict[str, Any]], int]],
                  appends: int) -> None:
    archive = EventArchive(path)
    report = archive.verify()
    assert report.ok, report
    ranges = workers.check_whole_batches(archive.scan().collect())
    sent = {f"w{w}-{k}" for w in range(WRITERS) for k in range(appends)}
    assert set(ranges) == sent  # no loss, nothing extra
    assert archive.version == len(sent)  # one commit per batch: no duplicate commit
    for receipts, _ in results:
        assert len(receipts) == appends
        for r in receipts:
            assert not r["duplicate"]
            assert ranges[r["batch_id"]] == tuple(r["seq"])
        # each writer's own batches got increasing seq and versions
        assert [r["seq"][0] for r in receipts] == sorted(r["seq"][0] for r in receipts)
        assert [r["version"] for r in receipts] == sorted(r["version"] for r in receipts)
    versions = sorted(r["version"] for receipts, _ in results for r in receipts)
    assert versions == list(range(1, len(sent) + 1))


@pytest.mark.slow
def test_concurrent_writers_with_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "bank"
    EventArchive.create(path)

    results = run_writers(path, use_lock=True)

    check_archive(path, results, APPENDS)
    assert sum(conflicts for _, conflicts in results) == 0  # the lock serializes them


@pytest.mark.slow
def test_writers_racing_without_the_lock_retry_and_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bank"
    EventArchive.create(path)

    results = run_writers(path, use_lock=False, appends=15)

    check_archive(path, results, 15)
    # losers of a race cleaned up: no stray or pending data file outlives the run
    live = {e["path"] for e in ledger.live_files(path)}
    leftovers = {p.name for p in path.glob("*.parquet")} - live
    assert len(leftovers) <= WRITERS  # at most one pending file per writer's last lost race
    assert leftovers <= ledger.pending_files(path)
    print(f"\nconflicts met and retried: {[c for _, c in results]}")


@contextlib.contextmanager
def without_lock() -> Iterator[None]:
    real = EventArchive.writing

    @contextlib.contextmanager
    def no_lock(_self: EventArchive) -> Iterator[None]:
        yield

    EventArchive.writing = no_lock  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        EventArchive.writing = real  # type: ignore[method-assign]


def test_losing_a_commit_race_writes_nothing_and_the_retry_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deterministic race: another writer commits while this one writes its data file."""
    path = tmp_path / "bank"
    EventArchive.create(path).append(workers.make_batch("first"), batch_id="first")
    real_write = archive_module.write_data_file
    raced = []

    def write_then_let_another_writer_commit(file: Path, part: Any, *rest: Any,
                                             **options: Any) -> Any:
        out = real_write(file, part, *rest, **options)
        if not raced:
            raced.append(True)
            EventArchive(path).append(workers.make_batch("rival"), batch_id="rival")
        return out

    monkeypatch.setattr(archive_module, "write_data_file", write_then_let_another_writer_commit)
    with without_lock():
        with pytest.raises(AppendConflictError) as info:
            EventArchive(path).append(workers.make_batch("loser"), batch_id="loser")
    assert "retry" in str(info.value) and info.value.path == str(path)
    # only the rival's commit happened; the loser's data file is gone
    ranges = workers.check_whole_batches(EventArchive(path).scan().collect())
    assert set(ranges) == {"first", "rival"}
    assert EventArchive(path).verify().ok
    assert {p.name for p in path.glob("*.parquet")} == {e["path"] for e in
                                                         ledger.live_files(path)}

    receipt = EventArchive(path).append(workers.make_batch("loser"), batch_id="loser")

    assert not receipt.duplicate and receipt.version == 3
    assert set(workers.check_whole_batches(EventArchive(path).scan().collect())) == {
        "first", "rival", "loser"}


def test_a_held_lock_times_out_with_a_retryable_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "bank"
    EventArchive.create(path).append(workers.make_batch("first"), batch_id="first")
    ctx = multiprocessing.get_context("spawn")
    ready = tmp_path / "ready"
    holder = ctx.Process(target=workers.lock_holder, args=(str(path), str(ready), 60.0))
    holder.start()
    try:
        while not ready.exists():
            assert holder.is_alive()
            time.sleep(0.01)
        monkeypatch.setattr(lock, "TIMEOUT_S", 0.3)
        before = snapshot(path)

        with pytest.raises(AppendConflictError) as info:
            EventArchive(path).append(workers.make_batch("waiting"), batch_id="waiting")

        assert "locked" in str(info.value)
        assert_unchanged(path, before)
    finally:
        holder.kill()  # a dead holder's lock is released by the kernel
        holder.join(timeout=30)
    receipt = EventArchive(path).append(workers.make_batch("waiting"), batch_id="waiting")
    assert not receipt.duplicate and receipt.version == 2
