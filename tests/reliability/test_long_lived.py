"""Long-lived archives: thousands of small appends, checkpoints in the chain, verify --since.

An append or a read must not need the whole log: the work per append is counted
(commit files read, files hashed) and must not grow with the archive. Checkpoints
are covered by the hash chain: a changed one is refused by readers and named by
``verify``; a forged one (with the chain rewritten to match) is caught by ``verify``
(its content differs from what the commits give) and by ``--expect``.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import eventkit
from eventkit import CorruptionError, EventArchive
from eventkit.archive import datafiles, head, ledger
from eventkit.workbench.cli import main

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def small(n: int, rows: int = 1) -> pl.DataFrame:
    return pl.DataFrame({
        "event_id": [f"e{n:07d}-{i}" for i in range(rows)],
        "account_id": [1 + (n + i) % 50 for i in range(rows)],
        "event_type": ["Deposit"] * rows, "amount": [100 + i for i in range(rows)],
        "event_time": [T0 + timedelta(minutes=n, seconds=i) for i in range(rows)]})


@pytest.fixture
def often(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A checkpoint every 10 commits (instead of 100), so short tests cross several."""
    monkeypatch.setattr(head, "MIN_INTERVAL", 10)
    yield
    head.forget()


class _Listing:
    """What os.scandir returns, from a list: an iterator and a context manager."""

    def __init__(self, entries: list[os.DirEntry[str]]) -> None:
        self.entries = entries
        self._it = iter(entries)

    def __iter__(self) -> _Listing:
        return self

    def __next__(self) -> os.DirEntry[str]:
        return next(self._it)

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many commit files are read, data files hashed and folder entries listed."""
    seen: Counter[str] = Counter()
    read, sha = ledger.read_commit, datafiles.sha256_of
    scandir, listdir = os.scandir, os.listdir

    def counted_scandir(path: object = ".") -> _Listing:
        with scandir(path) as found:  # type: ignore[call-overload]
            entries = list(found)
        seen["listed"] += len(entries)
        return _Listing(entries)

    def counted_listdir(path: object = ".") -> list[str]:
        names = listdir(path)  # type: ignore[call-overload]
        seen["listed"] += len(names)
        return names

    monkeypatch.setattr(os, "scandir", counted_scandir)
    monkeypatch.setattr(os, "listdir", counted_listdir)

    def read_commit(root: object, version: int) -> ledger.Commit:
        seen["commits"] += 1
        return read(root, version)  # type: ignore[arg-type]

    def sha256_of(*args: object, **kwargs: object) -> str:
        seen["hashed"] += 1
        return sha(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "read_commit", read_commit)
    monkeypatch.setattr(datafiles, "sha256_of", sha256_of)
    return seen


def fill(archive: EventArchive, commits: int, start: int = 0) -> None:
    for n in range(start, start + commits):
        archive.append(small(n, 1 + n % 3), batch_id=f"b{n}")


def test_work_per_append_does_not_grow_with_the_log(
    tmp_path: Path, often: None, counted: Counter[str],
) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    fill(archive, 25)
    early = Counter(counted)
    fill(archive, 5, start=25)
    per_early = {k: (counted[k] - early[k]) / 5 for k in ("commits", "hashed", "listed")}
    fill(archive, 170, start=30)
    late = Counter(counted)
    fill(archive, 5, start=200)
    per_late = {k: (counted[k] - late[k]) / 5 for k in ("commits", "hashed", "listed")}
    # the same work at 200 commits as at 25 (folders listed: never the log, nor the data)
    assert per_late == per_early
    assert per_late["commits"] <= 2 and per_late["hashed"] <= 1
    # a fresh process reads the newest checkpoint and the commits after it, not the log
    head.forget()
    counted.clear()
    assert EventArchive(archive.path).version == 205
    assert counted["commits"] <= 2 * head.MIN_INTERVAL + 2
    checkpoints = sorted(archive.store.list_files(head.CHECKPOINT_DIR))
    assert len(checkpoints) == 20 and checkpoints[-1].endswith(f"{200:020d}.json")


def test_reads_recheck_a_bounded_number_of_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checkpoints come further apart as files pile up; the commits re-checked do not grow.

    (With one checkpoint per live file, the commits since the newest one reach 100
    here: re-checking them all made each append's cost grow with the archive.)
    """
    monkeypatch.setattr(head, "MIN_INTERVAL", 10)
    monkeypatch.setattr(head, "FILES_PER_INTERVAL", 1)  # interval = live files
    monkeypatch.setattr(head, "RECHECKED", 6)
    archive = EventArchive.create(tmp_path / "bank")
    stats: list[str] = []
    stat = type(archive.store).stat

    def counted(store: object, rel: str) -> object:
        stats.append(rel)
        return stat(store, rel)  # type: ignore[arg-type]

    monkeypatch.setattr(type(archive.store), "stat", counted)
    per_append = []
    for n in range(190):
        before = len(stats)
        archive.append(small(n), batch_id=f"b{n}")
        per_append.append(len(stats) - before)
    assert max(per_append[100:]) <= max(per_append[:40]) <= 3 * (head.RECHECKED + 4)
    state = head.log_state(archive.store)  # 40 commits and more since its checkpoint:
    assert state.version == 190 and state.checkpoint < 150  # more than it re-checks


def test_checkpoints_answer_as_the_whole_log_does(tmp_path: Path, often: None) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    fill(archive, 47)
    expect = ledger.live_files(archive.path)  # the whole log, checked from commit 0
    head.forget()
    state = head.log_state(archive.store)
    assert state.live == expect and state.checkpoint == 40
    assert state.rows == len(archive.scan().collect()) == sum(1 + n % 3 for n in range(47))
    assert archive.append(small(3, 2), batch_id="b3").duplicate  # ids of old batches known
    with pytest.raises(eventkit.ValidationError, match="already in the archive"):
        archive.append(small(3, 1))  # an old event id, found through the index
    for v in (5, 31, 40, 41, 46):  # earlier versions, from the checkpoint before them
        head.forget()
        assert head.log_state(archive.store, version=v).live == ledger.live_files(
            archive.path, version=v)
    assert archive.verify().ok


def test_a_changed_checkpoint_is_refused_and_named(tmp_path: Path, often: None) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    fill(archive, 25)
    rel = f"{head.CHECKPOINT_DIR}/{20:020d}.json"
    path = archive.store.path(rel)
    body = json.loads(path.read_text())
    body["live"] = body["live"][1:]  # hide a data file from readers
    path.write_text(json.dumps(body))
    head.forget()
    with pytest.raises(CorruptionError, match="checkpoint") as info:
        EventArchive(archive.path).scan()
    assert info.value.file == str(path)
    assert "commit 21: checkpoint _eventkit/checkpoints/" in str(archive.verify().problems)


def test_a_forged_checkpoint_with_a_rewritten_chain_is_caught_by_verify(
    tmp_path: Path, often: None,
) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    fill(archive, 25)
    saved = archive.head
    store = archive.store
    rel = f"{head.CHECKPOINT_DIR}/{20:020d}.json"
    body = json.loads(store.read(rel))
    body["live"] = body["live"][1:]
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    store.write(rel, data)
    prev = ledger.read_commit(store, 20).record["digest"]  # type: ignore[index]
    for v in range(21, 26):  # the attacker recomputes every later link
        lines = store.read(ledger.log_rel(v)).decode().splitlines()
        actions = [json.loads(line) for line in lines]
        record = json.loads(actions[0]["commitInfo"]["eventkit"])
        if "checkpoint" in record:
            record["checkpoint"].update(sha256=hashlib.sha256(data).hexdigest(),
                                        bytes=len(data))
        record["prev"] = prev
        record["digest"] = ledger.chain_digest(prev, record)
        prev = record["digest"]
        actions[0]["commitInfo"]["eventkit"] = json.dumps(record)
        store.write(ledger.log_rel(v), "".join(json.dumps(a) + "\n" for a in actions).encode())
    head.forget()
    # readers trust a checkpoint the chain covers: the first file (one event) is hidden
    assert EventArchive(archive.path).scan().collect().height == \
        sum(1 + n % 3 for n in range(25)) - 1
    problems = archive.verify().problems
    assert problems == [f"commit 21: checkpoint {rel} differs from the log state the commits "
                        "before it give"]
    assert any("differs from the expected" in p for p in archive.verify(expect=saved).problems)


def test_verify_since_checks_what_came_after(tmp_path: Path, often: None) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    fill(archive, 30)
    since = archive.head
    fill(archive, 4, start=30)
    report = archive.verify(since=since)
    assert report.ok and report.files_checked == 4 and report.version == 34, report
    assert report.head == archive.head
    # damage before the verified head: only the full verify reads it
    old = ledger.live_files(archive.path)[3]["path"]
    archive.store.path(old).write_bytes(b"x" * archive.store.path(old).stat().st_size)
    assert archive.verify(since=since).ok
    assert not archive.verify().ok
    # damage after it, and files added behind the archive's back since: named
    new = ledger.live_files(archive.path)[-1]["path"]
    archive.store.path(new).write_bytes(b"y" * archive.store.path(new).stat().st_size)
    (archive.store.path("") / "part-99999999-000-stray.parquet").write_bytes(b"z")
    problems = archive.verify(since=since).problems
    assert problems == [f"commit 34: data file {new} was changed (SHA-256 differs)",
                        "file part-99999999-000-stray.parquet is not part of any commit "
                        "(added behind the archive's back)"]
    assert archive.verify(since="f" * 64).problems[0].startswith("no commit has the head")
    assert main(["verify", str(archive.path), "--since", since, "--no-progress"]) == 1


@pytest.mark.slow
def test_thousands_of_small_appends(tmp_path: Path) -> None:
    """The soak in small: 3,000 commits in one process, with the real checkpoint interval."""
    archive = EventArchive.create(tmp_path / "bank")
    times = []
    for n in range(3_000):
        began = time.perf_counter()
        archive.append(small(n, 1 + n % 3), batch_id=f"b{n}")
        times.append(time.perf_counter() - began)
    events = archive.scan().collect()
    assert events["seq"].to_list() == list(range(events.height))
    assert events.height == sum(1 + n % 3 for n in range(3_000))
    assert len(archive.store.list_files(head.CHECKPOINT_DIR)) == 29
    assert archive.verify().ok
    # another process opens it from its newest checkpoint
    code = "import sys, eventkit; print(eventkit.EventArchive(sys.argv[1]).version)"
    done = subprocess.run([sys.executable, "-c", code, str(archive.path)], check=True,
                          capture_output=True, text=True)
    assert done.stdout.strip() == "3000"
    first, last = statistics.median(times[:200]), statistics.median(times[-200:])
    print(f"\nmedian append: {first * 1e3:.1f} ms (first 200), {last * 1e3:.1f} ms (last 200)")
