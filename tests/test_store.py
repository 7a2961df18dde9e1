"""Archives in an object store: a real S3-protocol server (moto, tests/s3.py) on 127.0.0.1.

Every operation on an archive at ``s3://…`` must give exactly what it gives on a
local disk: the same rows, the same replay, the same verify; damage names the object.
"""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from reliability import workers
from s3 import S3Server

import eventkit
from eventkit import (
    AppendConflictError,
    CorruptionError,
    EventArchive,
    LiveReplay,
    StorageError,
)
from eventkit.archive import compaction, head, ledger
from eventkit.archive.store import ObjectStore, Stat, open_store
from eventkit.workbench.cli import main

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def batch(n: int, first: int, accounts: int = 5) -> pl.DataFrame:
    return pl.DataFrame({
        "event_id": [f"e{first + i:06d}" for i in range(n)],
        "account_id": [1 + (first + i) % accounts for i in range(n)],
        "event_type": ["Deposit" if (first + i) % 3 else "Withdrawal" for i in range(n)],
        "event_time": [T0 + timedelta(hours=first + i) for i in range(n)],
        "amount": [100 + (first + i) % 17 for i in range(n)],
    })


def fill(archive: EventArchive, batches: int = 3) -> None:
    for k in range(batches):
        archive.append(batch(10, 10 * k), batch_id=f"b{k}")


def test_conditional_writes_have_one_winner_per_object(s3_server: S3Server) -> None:
    """What commits rely on: of writers racing to create one object, exactly one wins."""
    store = open_store(s3_server.url("race"))
    wins: list[str] = []

    def racer(key: str, i: int) -> None:
        if store.put_if_absent(key, str(i).encode()):
            wins.append(key)

    for k in range(15):
        threads = [threading.Thread(target=racer, args=(f"k{k}", i)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert Counter(wins) == {f"k{k}": 1 for k in range(15)}
    store.check_atomic()  # the probe eventkit runs before its first append


def test_a_store_that_ignores_conditional_writes_is_refused_for_appends(
    s3_server: S3Server, tmp_path: Path,
) -> None:
    url = s3_server.url("unsafe")
    archive = EventArchive.create(url)

    class Unsafe(ObjectStore):  # a server that overwrites despite If-None-Match
        def put_if_absent(self, rel: str, data: bytes) -> bool:
            self.write(rel, data)
            return True

    unsafe = Unsafe(url)
    with pytest.raises(StorageError, match="cannot take appends safely"):
        EventArchive(unsafe).append(batch(3, 0))
    assert len(EventArchive(url).scan().collect()) == 0  # nothing was written
    assert archive.verify().ok


def test_an_archive_in_the_store_reads_as_on_disk(s3_server: S3Server, tmp_path: Path) -> None:
    url = s3_server.url()
    remote, local = EventArchive.create(url), EventArchive.create(tmp_path / "bank")
    for archive in (remote, local):
        fill(archive)
        again = archive.append(batch(10, 10), batch_id="b1")  # a retry: stored once
        assert again.duplicate and again.seq_start == 10
    assert repr(remote) == f"EventArchive({url!r})"
    assert remote.version == local.version == 3 and len(remote) == len(local) == 30
    assert_frame_equal(remote.scan().collect(), local.scan().collect().with_columns(
        remote.scan().collect()["recorded_at"]))
    assert remote.verify().ok and remote.verify().files_checked == 3
    assert remote.scan(version=2).collect().height == 20
    # replay, open_archive, the CLI: all through the URL
    expect = eventkit.replay(local, "banking").state().collect()
    assert_frame_equal(eventkit.replay(url, "banking").state().collect(), expect)
    assert_frame_equal(eventkit.replay(eventkit.open_archive(url), "banking")
                       .state().collect(), expect)
    assert main(["verify", url]) == 0
    assert main(["replay", url, "--rules", "banking"]) == 0


def test_storage_options_instead_of_the_environment(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = s3_server.url()
    for name in s3_server.env:
        monkeypatch.delenv(name)
    with pytest.raises(StorageError, match="object store"):
        EventArchive.create(url)  # no endpoint, no credentials: one clear error
    archive = EventArchive.create(url, storage_options=s3_server.storage_options)
    fill(archive, 1)
    opened = eventkit.open_archive(url, storage_options=s3_server.storage_options)
    assert opened.collect().height == 10


def test_damaged_or_changed_objects_are_named(s3_server: S3Server) -> None:
    url = s3_server.url()
    archive = EventArchive.create(url)
    fill(archive)
    store = archive.store
    entry = head.log_state(store).live[1]
    data = store.read(entry["path"])
    store.write(entry["path"], data[:-20] + bytes(20))  # same size, other bytes
    with pytest.raises(CorruptionError, match="SHA-256") as info:
        EventArchive(url).scan().collect()
    assert info.value.file == store.uri(entry["path"])
    problems = EventArchive(url).verify().problems
    assert problems == [f"commit 2: data file {entry['path']} was changed (SHA-256 differs)"]
    store.write(entry["path"], data)
    assert EventArchive(url).verify().ok

    commit = ledger.log_rel(2)
    original = store.read(commit)
    store.write(commit, original.replace(b'\\"rows\\": 10', b'\\"rows\\": 11'))
    with pytest.raises(CorruptionError, match="commit 2") as info:
        EventArchive(url).scan()
    assert info.value.file == store.uri(commit)
    store.delete(commit)
    with pytest.raises(CorruptionError, match="commit 2 .* is missing"):
        EventArchive(url).scan()
    assert "commit 2: file _delta_log/00000000000000000002.json is missing" in \
        EventArchive(url).verify().problems
    store.write(commit, original)
    store.write("part-stray.parquet", b"x")
    assert EventArchive(url).verify().problems == [
        "file part-stray.parquet is not part of any commit (added behind the archive's back)"]


def test_an_append_whose_clean_up_fails_after_its_commit_is_not_reported_failed(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the commit landed the batch is in: a store failing at the clean-up after it (a
    bucket refusing deletes, the server gone) must not turn the receipt into an error.
    Likewise a compaction."""
    url = s3_server.url()
    fill(EventArchive.create(url), 1)

    class NoDeletes(ObjectStore):  # e.g. a bucket whose policy denies DeleteObject
        def delete(self, rel: str) -> None:
            msg = f"{self.uri(rel)}: the object store failed (AccessDenied)"
            raise StorageError(msg, path=self.root)

    receipt = EventArchive(NoDeletes(url)).append(batch(10, 10), batch_id="b1")
    assert receipt.version == 2 and not receipt.duplicate
    archive = EventArchive(url)
    assert len(archive) == 20 and archive.verify().ok
    assert archive.store.list_files(f"{ledger.PRIVATE_DIR}/pending/")  # its intents are left
    assert archive.append(batch(10, 10), batch_id="b1").duplicate
    archive.append(batch(10, 20), batch_id="b2")  # the next writer removes what was left
    assert not archive.store.list_files(f"{ledger.PRIVATE_DIR}/pending/")
    assert archive.verify().ok and len(archive) == 30
    monkeypatch.setattr(compaction, "RETAIN_S", 0)  # the replaced files are due at once
    report = eventkit.compact(EventArchive(NoDeletes(url)))
    assert report.version == 4 and report.files_after == 1
    assert archive.verify().ok and len(archive) == 30


class GoneAfterCommit(ObjectStore):
    """The server goes away right after it took a commit: every later request fails."""

    gone = False

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        self._up(rel)
        won = super().put_if_absent(rel, data)
        self.gone = won and rel.startswith(f"{ledger.LOG_DIR}/")
        return won

    def _up(self, rel: str) -> None:
        if self.gone:
            msg = f"{self.uri(rel)}: the object store failed (connection refused)"
            raise StorageError(msg, path=self.root)

    def read(self, rel: str) -> bytes:
        self._up(rel)
        return super().read(rel)

    def stat(self, rel: str) -> Stat | None:
        self._up(rel)
        return super().stat(rel)

    def list_files(self, prefix: str = "") -> list[str]:
        self._up(prefix)
        return super().list_files(prefix)

    def delete(self, rel: str) -> None:
        self._up(rel)
        super().delete(rel)


@pytest.mark.parametrize(("operation", "rows"), [
    (lambda archive: archive.append(batch(10, 20), batch_id="b2").version, 30),
    (lambda archive: eventkit.compact(archive, keep_old=False).files_after, 20),
])
def test_an_operation_is_not_reported_failed_when_the_server_goes_after_its_commit(
    s3_server: S3Server, operation: Callable[[EventArchive], int], rows: int,
) -> None:
    """Its commit is in: an error for it would invite a retry of what happened."""
    url = s3_server.url()
    fill(EventArchive.create(url), 2)

    assert operation(EventArchive(GoneAfterCommit(url))) in (3, 1)  # the version, 1 file

    archive = EventArchive(url)
    assert archive.version == 3 and len(archive) == rows and archive.verify().ok


def test_losing_the_race_for_a_version_raises_and_leaves_nothing(s3_server: S3Server) -> None:
    url = s3_server.url()
    archive = EventArchive.create(url)
    fill(archive, 1)
    real = workers.append_module.write_data_file
    raced: list[bool] = []

    def write_then_a_rival_commits(*args: object, **kwargs: object) -> object:
        out = real(*args, **kwargs)
        if not raced:
            raced.append(True)
            EventArchive(url).append(batch(5, 100), batch_id="rival")
        return out

    workers.append_module.write_data_file = write_then_a_rival_commits  # type: ignore[assignment]
    try:
        with pytest.raises(AppendConflictError, match="retry"):
            EventArchive(url).append(batch(5, 200), batch_id="loser")
    finally:
        workers.append_module.write_data_file = real
    store = archive.store
    live = {e["path"] for e in head.log_state(store).live}
    assert {r for r in store.list_files() if r.startswith("part-")} == live  # no leftovers
    receipt = EventArchive(url).append(batch(5, 200), batch_id="loser")
    assert receipt.version == 3 and not receipt.duplicate
    assert EventArchive(url).verify().ok


@pytest.mark.slow
def test_concurrent_writer_processes_lose_nothing_and_duplicate_nothing(
    s3_server: S3Server,
) -> None:
    """4 writer processes × 25 appends race for each commit (no lock in an object store)."""
    url = s3_server.url("concurrent")
    EventArchive.create(url)
    start_at = time.time() + 3
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(functools.partial(workers.concurrent_writer, use_lock=True),
                               [(url, w, 25, start_at) for w in range(4)], chunksize=1)
    conflicts = sum(c for _, c in results)
    archive = EventArchive(url)
    events = archive.scan().collect()
    ranges = workers.check_whole_batches(events)  # every batch whole, once
    assert set(ranges) == {f"w{w}-{k}" for w in range(4) for k in range(25)}
    assert events["seq"].to_list() == list(range(events.height))  # gapless
    for receipts, _ in results:
        for r in receipts:
            assert ranges[r["batch_id"]] == tuple(r["seq"])
    assert archive.version == 100 and archive.verify().ok
    assert conflicts > 0, "the writers never raced"
    print(f"\n4 writers x 25 appends on S3: {conflicts} lost races retried")


def test_snapshots_live_views_compaction_and_expiry_in_the_store(
    s3_server: S3Server, tmp_path: Path,
) -> None:
    url = s3_server.url()
    archive = EventArchive.create(url)
    fill(archive, 4)
    full = eventkit.replay(url, "banking", snapshots=False)
    snaps = eventkit.snapshot(url, "banking", every="1d")
    assert snaps.folder.root.startswith(url)
    at = "2024-01-02T06:00:00Z"
    assert_frame_equal(eventkit.replay(url, "banking").as_of(at).collect(),
                       full.as_of(at).collect())
    assert_frame_equal(eventkit.replay(url, "banking", keys=[2]).state().collect(),
                       full.state().filter(pl.col("account_id") == 2).collect())

    live = LiveReplay(url, "balance")
    live.catch_up()
    archive.append(batch(5, 40), batch_id="more")
    assert LiveReplay(url, "balance").catch_up().new_events == 5  # resumed from the store
    assert_frame_equal(LiveReplay(url, "balance").state,
                       eventkit.replay(url, "balance").state().collect(), check_dtypes=False)

    view = f"duckdb:///{tmp_path / 'views.duckdb'}"
    eventkit.materialize(eventkit.replay(url, "balance"), view)
    archive.append(batch(5, 45), batch_id="later")
    assert eventkit.refresh(view).new_events == 5

    report = eventkit.compact(url)
    assert report.files_after == 1 and EventArchive(url).verify().ok
    assert_frame_equal(eventkit.replay(url, "balance").state().collect(),
                       eventkit.replay(archive.scan(version=6).collect(), "balance")
                       .state().collect())
    eventkit.expire(url, before="2024-01-02", by="ops", reason="test", confirm=True)
    assert EventArchive(url).verify().ok


def test_the_bucket_engine_reads_the_store(s3_server: S3Server) -> None:
    url = s3_server.url()
    archive = EventArchive.create(url, buckets=4)
    fill(archive, 4)
    expect = eventkit.replay(archive.scan().collect(), "banking")
    result = eventkit.replay(url, "banking", engine="buckets")
    assert_frame_equal(result.state().collect(), expect.state().collect())
    assert_frame_equal(result.as_of("2024-01-02").collect(), expect.as_of("2024-01-02")
                       .collect())
    out = s3_server.url("out")
    written = eventkit.replay(url, "banking", engine="buckets", out=out)
    assert_frame_equal(written.history.collect(), expect.history.collect())
    assert open_store(out).list_files("history/")
    with pytest.raises(eventkit.ScaleError, match="not empty"):
        eventkit.replay(url, "banking", engine="buckets", out=out)


@pytest.mark.slow
@pytest.mark.cluster
def test_dask_workers_read_the_store_and_survive_a_killed_worker(
    s3_server: S3Server, tmp_path: Path,
) -> None:
    """No shared folder: the workers read the buckets and write the histories in the store."""
    from distributed import Client, LocalCluster
    from test_scale import kill_a_worker_mid_task

    url = s3_server.url()
    archive = EventArchive.create(url, buckets=4)
    fill(archive, 6)
    expect = eventkit.replay(url, "banking")
    out = s3_server.url("results")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert_frame_equal(eventkit.replay(url, "banking", client=client).state().collect(),
                           expect.state().collect())

        def work() -> tuple[pl.DataFrame, pl.DataFrame]:
            result = eventkit.replay(url, "banking", client=client, out=out)
            return result.history.collect(), result.state().collect()

        done = kill_a_worker_mid_task(client, tmp_path / "first-run.json", work)
    assert "error" not in done, done.get("error")
    history, state = done["result"]  # type: ignore[misc]
    assert_frame_equal(state, expect.state().collect())
    assert_frame_equal(history, expect.history.collect())
    assert open_store(out).list_files("history/")  # the histories are in the store


def upload(folder: Path, url: str) -> None:
    """Copy an archive folder to the store, file by file (as ``aws s3 sync`` would)."""
    store = open_store(url)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith(".lock"):
            store.write(path.relative_to(folder).as_posix(), path.read_bytes())


@pytest.mark.notebooks
@pytest.mark.usefixtures("sample_archive")
def test_notebooks_read_an_archive_from_the_store(s3_server: S3Server, tmp_path: Path,
                                                  kernel: str) -> None:
    from test_notebooks import NOTEBOOK_DIR, chart_specs, execute

    url = s3_server.url("sample")
    upload(Path(__file__).resolve().parent.parent / "data" / "sample", url)
    assert EventArchive(url).verify().ok
    for name, parameters in (("01_balance_history.ipynb", {"ACCOUNTS": [4, 9]}),
                             ("02_time_travel.ipynb", {})):
        local = execute(NOTEBOOK_DIR / name, tmp_path / f"local-{name}", kernel, **parameters)
        remote = execute(NOTEBOOK_DIR / name, tmp_path / f"s3-{name}", kernel, ARCHIVE=url,
                         **parameters)
        assert chart_specs(remote) == chart_specs(local), name  # the same data, from S3


def test_an_archive_of_ones_own_in_the_store(s3_server: S3Server, tmp_path: Path) -> None:
    """Declared columns, a text key, evolve and per-stream appends: as on disk, at a URL."""
    rules = eventkit.RuleSet.from_dict({
        "ruleset": {"name": "orders", "key": "order_id"}, "columns": {"n": "int"},
        "fields": {"status": {"type": "string", "initial": "new"}, "qty": {"type": "int"}},
        "on": {"Placed": {"status": "'placed'", "qty": "qty + n"},
               "Shipped": {"status": "'shipped'"}}})
    declared = {"order_id": "string", "n": "int"}
    orders = [f"{k:08x}-0000-4000-8000-000000000000" for k in range(3)]

    def events(first: int, kinds: list[str]) -> pl.DataFrame:
        return pl.DataFrame({
            "event_id": [f"o{first + i}" for i in range(len(kinds))],
            "order_id": [orders[(first + i) % 3] for i in range(len(kinds))],
            "event_type": kinds, "n": list(range(1, len(kinds) + 1)),
            "event_time": [T0 + timedelta(hours=first + i) for i in range(len(kinds))]})

    archives = [EventArchive.create(where, key="order_id", columns=declared, buckets=2)
                for where in (s3_server.url("shop"), tmp_path / "shop")]
    for archive in archives:
        archive.append(events(0, ["Placed"] * 6))
        evolution = archive.evolve({"carrier": "string"})
        assert evolution.schema_version == 4
        archive.append(events(6, ["Shipped"] * 3).with_columns(carrier=pl.lit("DHL")),
                       expected_version=1, conflicts="stream")  # no stream moved: accepted
        with pytest.raises(eventkit.StaleVersionError, match="changed since"):
            archive.append(events(9, ["Placed"]), expected_version=1, conflicts="stream")
        assert archive.verify().ok
    remote, local = archives
    assert remote.schema == local.schema and remote.declared.key == ("order_id",)
    got = remote.scan().collect()
    assert got["seq"].to_list() == list(range(9)) and got["carrier"].null_count() == 6
    expect = eventkit.replay(local, rules).state().collect()
    assert expect.select("order_id", "status", "qty").sort("order_id").rows() == [
        (orders[0], "shipped", 1 + 4), (orders[1], "shipped", 2 + 5),
        (orders[2], "shipped", 3 + 6)]
    for engine in ("memory", "buckets"):
        assert_frame_equal(eventkit.replay(remote, rules, engine=engine).state().collect()
                           .sort("order_id"), expect.sort("order_id"))
