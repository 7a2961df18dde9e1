"""Crash during append: writers are killed with SIGKILL, at random moments and at each stage.

After every kill the archive must open, ``verify`` must pass, every acknowledged
batch (its receipt line was written after ``append`` returned) must be stored
exactly once and whole, no other batch but the one in flight may be there, and
re-sending the batch in flight under its batch id must store it exactly once:
``duplicate=True`` exactly when the killed writer's commit had landed.

Writers are forked from a fork server that has imported eventkit once, so a
trial costs milliseconds, not an interpreter start-up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from multiprocessing.context import ForkServerContext
from pathlib import Path

import pytest

import reliability
from eventkit import EventArchive
from eventkit.archive import ledger
from reliability import workers

TRIALS = 60
TRIALS_PER_ARCHIVE = 6  # a fresh archive now and then keeps the log, and each trial, short
MAX_DELAY_S = 0.45


@pytest.fixture(scope="module")
def forkserver() -> Iterator[ForkServerContext]:
    ctx = reliability.forkserver()
    yield ctx


def run_writer(ctx: ForkServerContext, path: Path, receipts: Path, batch_ids: list[str],
               stage: str | None, kill_after: float | None = None) -> int | None:
    """Run a crash writer; kill it after ``kill_after`` seconds (scanning meanwhile).

    Returns the writer's exit code (``-9`` when it was killed).
    """
    proc = ctx.Process(target=workers.crash_writer,
                       args=(str(path), str(receipts), batch_ids, stage))
    proc.start()
    if kill_after is not None:
        ready = time.monotonic() + 60  # the writer opens its receipts once its archive is open
        while not receipts.exists() and proc.is_alive() and time.monotonic() < ready:
            time.sleep(0.01)
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:  # read while the writer writes
            workers.check_whole_batches(EventArchive(path).scan().collect())
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        proc.kill()
    proc.join(timeout=60)
    assert proc.exitcode is not None, "writer hung"
    return proc.exitcode


def check_after_crash(path: Path, sent: list[str], acked: list[dict[str, object]],
                      earlier: set[str]) -> dict[str, tuple[int, int]]:
    """The archive after a kill: opens, verifies, holds each acknowledged batch once.

    ``earlier``: batches stored before this writer started.
    """
    archive = EventArchive(path)
    report = archive.verify()
    assert report.ok, report
    ranges = workers.check_whole_batches(archive.scan().collect())
    for receipt in acked:
        assert ranges.get(str(receipt["batch_id"])) == tuple(receipt["seq"]), receipt  # type: ignore[arg-type]
    # only the batch in flight, beyond the acknowledged ones, may be there
    in_flight = set(sent[len(acked):len(acked) + 1])
    assert earlier <= set(ranges), "a stored batch vanished"
    assert set(ranges) <= {str(r["batch_id"]) for r in acked} | in_flight | earlier, \
        "a batch that was never sent is in the archive"
    return ranges


def retry_in_flight(path: Path, batch_id: str, *, stored: bool) -> None:
    """Re-send the batch whose acknowledgement was lost: stored once, whatever happened."""
    receipt = EventArchive(path).append(workers.make_batch(batch_id), batch_id=batch_id)
    assert receipt.duplicate == stored, (batch_id, receipt)
    again = EventArchive(path).append(workers.make_batch(batch_id), batch_id=batch_id)
    assert again.duplicate and again.seq_start == receipt.seq_start
    ranges = workers.check_whole_batches(EventArchive(path).scan().collect())
    assert batch_id in ranges


@pytest.mark.slow
def test_sigkill_at_random_moments(forkserver: ForkServerContext, tmp_path: Path) -> None:
    rng = random.Random(8)
    outcomes = {"acknowledged": 0, "landed-unacknowledged": 0, "not-landed": 0}
    archive_path = tmp_path / "none"
    earlier: set[str] = set()
    for trial in range(TRIALS):
        if trial % TRIALS_PER_ARCHIVE == 0:
            archive_path = tmp_path / f"archive-{trial // TRIALS_PER_ARCHIVE}"
            EventArchive.create(archive_path)
            earlier = set()
        sent = [f"t{trial}b{k}" for k in range(200)]
        receipts = tmp_path / f"receipts-{trial}"
        code = run_writer(forkserver, archive_path, receipts, sent, None,
                          kill_after=rng.uniform(0.0, MAX_DELAY_S))
        assert code == -9, f"trial {trial}: the writer ended before the kill ({code})"
        acked = workers.read_receipts(receipts)
        assert [r["batch_id"] for r in acked] == sent[:len(acked)]
        ranges = check_after_crash(archive_path, sent, acked, earlier)
        outcomes["acknowledged"] += len(acked)
        in_flight = sent[len(acked)]
        landed = in_flight in ranges
        outcomes["landed-unacknowledged" if landed else "not-landed"] += 1
        retry_in_flight(archive_path, in_flight, stored=landed)
        earlier |= set(ranges) | {in_flight}
    # the kills hit appends in flight, and appends were acknowledged before them
    assert outcomes["acknowledged"] > 0 and outcomes["not-landed"] > 0, outcomes
    print(f"\n{TRIALS} SIGKILL trials: {outcomes}")


@pytest.mark.parametrize("stage", workers.STAGES)
def test_sigkill_at_each_stage_of_an_append(forkserver: ForkServerContext, tmp_path: Path,
                                            stage: str) -> None:
    path = tmp_path / "bank"
    archive = EventArchive.create(path)
    archive.append(workers.make_batch("before"), batch_id="before")
    receipts = tmp_path / "receipts"

    code = run_writer(forkserver, path, receipts, ["victim"], stage)

    assert code == -9
    assert workers.read_receipts(receipts) == []  # never acknowledged
    landed = stage in ("after-commit", "before-receipt")
    ranges = check_after_crash(path, ["victim"], [], {"before"})
    assert set(ranges) == ({"before", "victim"} if landed else {"before"})
    retry_in_flight(path, "victim", stored=landed)
    # the retry cleaned up whatever the dead writer left behind
    pending = path / ledger.PRIVATE_DIR / "pending"
    assert not pending.exists() or list(pending.iterdir()) == []
    assert EventArchive(path).verify().ok
    live = {e["path"] for e in ledger.live_files(path)}
    assert {p.name for p in path.glob("*.parquet")} == live


def test_killed_after_commit_before_receipt_then_retry_is_a_duplicate(
    forkserver: ForkServerContext, tmp_path: Path,
) -> None:
    """The lost acknowledgement: stored, not acknowledged; the retry must not store it twice."""
    path = tmp_path / "bank"
    EventArchive.create(path)

    code = run_writer(forkserver, path, tmp_path / "receipts", ["lost-ack"], "before-receipt")

    assert code == -9
    archive = EventArchive(path)
    assert len(archive) == workers.batch_rows("lost-ack")
    receipt = archive.append(workers.make_batch("lost-ack"), batch_id="lost-ack")
    assert receipt.duplicate
    assert (receipt.version, receipt.seq_start) == (1, 0)
    assert len(archive) == workers.batch_rows("lost-ack")
    assert archive.verify().ok
