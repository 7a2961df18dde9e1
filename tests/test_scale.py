"""Scale: the bucketed archive layout, the bucket engine, and Dask (a real LocalCluster)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import cloudpickle
import polars as pl
import pytest
from conftest import make_events
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import FAST, event_streams
from polars.testing import assert_frame_equal

import eventkit
from eventkit import CorruptionError, EventArchive, ScaleError, replay
from eventkit.archive import ledger
from eventkit.archive.buckets import BANK_BUCKET, bucket_expr, bucket_of
from eventkit.banking.generate import generate
from eventkit.replay import buckets as buckets_engine
from eventkit.workbench.cli import main

RULES = ["balance", "banking"]


def archive_of(events: pl.DataFrame, folder: Path, buckets: int | None) -> EventArchive:
    """An archive of ``events`` (in seq order), appended in two batches.

    Their ``recorded_at`` is kept, made non-decreasing along ``seq`` first: an archive
    never learns of an event before the ones appended ahead of it (issue 20).
    """
    archive = EventArchive.create(folder, buckets=buckets)
    ordered = events.sort("seq").drop("seq").with_columns(pl.col("recorded_at").cum_max())
    half = ordered.height // 2
    for batch in (ordered[:half], ordered[half:]):
        if batch.height:
            archive.append(batch, recorded_at="keep")
    return archive


def assert_same_answers(memory: eventkit.ReplayResult, other: object, when: str) -> None:
    assert_frame_equal(other.state().collect(), memory.state().collect())
    assert_frame_equal(other.history.collect(), memory.history.collect())
    assert_frame_equal(other.as_of(when).collect(), memory.as_of(when).collect())
    if memory.rules.interest is not None:  # (the bucket engine had no accrued=)
        for at in (when, "2023-01-01"):
            assert_frame_equal(other.as_of(at, accrued=True).collect(),
                               memory.as_of(at, accrued=True).collect())
    assert_frame_equal(other.violations().collect(), memory.violations().collect())
    # the temporal questions: unsorted instants, one asked twice, dates and instants
    just_after = datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    for grid in ([when, "2024-01-01", just_after, when, "2025-03-01"], [when], []):
        assert_frame_equal(other.at_times(grid).collect(), memory.at_times(grid).collect())
    for start, end in (("2024-01-01", when), (just_after, datetime(2024, 1, 4, tzinfo=UTC)),
                       ("2023-01-01", "2030-01-01")):
        got, expected = other.between(start, end), memory.between(start, end)
        assert_frame_equal(got.opening.collect(), expected.opening.collect())
        assert_frame_equal(got.changes.collect(), expected.changes.collect())


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same synthetic bank as a bucketed archive, a plain archive and plain Parquet."""
    root = tmp_path_factory.mktemp("bank")
    args = {"events": 30_000, "accounts": 400, "seed": 11, "chunk_events": 10_000}
    generate(root / "bucketed", buckets=5, **args)
    generate(root / "plain", **args)
    generate(root / "parquet", format="parquet", **args)
    return {"bucketed": root / "bucketed", "plain": root / "plain", "parquet": root / "parquet"}


# ---------------------------------------------------------------- the layout
def test_append_writes_one_file_per_bucket_in_one_commit(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank", buckets=4)
    batch = make_events([(a, "Deposit", 100 * a, a) for a in range(0, 12)])
    archive.append(batch.drop("seq", "recorded_at"))
    # Step: one commit, one file per non-empty bucket, each named in the record.
    commits = ledger.read_log(archive.path)
    assert len(commits) == 2
    assert commits[0].record["buckets"] == 4
    files = commits[1].record["files"]
    buckets = [f["bucket"] for f in files]
    # the bank's own account 0 is the archive's shared key: its events go to the shared bucket
    expected = sorted({BANK_BUCKET if a == 0 else bucket_of(a, 4) for a in range(12)})
    assert buckets == expected
    assert BANK_BUCKET in buckets
    # Step: each file holds exactly its bucket's accounts, in log order.
    for f in files:
        part = pl.read_parquet(archive.path / f["path"])
        bank = pl.col("account_id") == 0
        assert part.select(bucket_expr("account_id", 4, shared=bank))["bucket"].unique(
            ).to_list() == [f["bucket"]]
        assert part["seq"].is_sorted()
    # Step: readers see the archive as before: log order, verify, Delta.
    assert archive.scan().collect()["seq"].to_list() == list(range(12))
    assert archive.verify().ok
    assert pl.scan_delta(str(archive.path)).collect().height == 12
    only = archive.scan(buckets=[bucket_of(5, 4)]).collect()["account_id"].to_list()
    assert 5 in only and all(bucket_of(a, 4) == bucket_of(5, 4) for a in only)


@pytest.mark.slow
@settings(FAST, max_examples=25)
@given(events=event_streams(max_events=30), buckets=st.integers(1, 5))
def test_bucketed_archive_reads_and_replays_as_a_plain_one(events: pl.DataFrame,
                                                           buckets: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        plain = archive_of(events, Path(folder) / "plain", None)
        bucketed = archive_of(events, Path(folder) / "bucketed", buckets)
        assert_frame_equal(bucketed.scan().collect(), plain.scan().collect())
        assert_frame_equal(bucketed.scan().head(7).collect(), plain.scan().head(7).collect())
        assert bucketed.verify().ok
        for rules in RULES:
            memory = replay(plain, rules)
            assert_same_answers(memory, replay(bucketed, rules, engine="buckets"),
                                "2024-01-02")
            assert_same_answers(memory, replay(plain, rules, engine="buckets"), "2024-01-02")


def test_a_changed_bucket_file_is_caught(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buckets_engine, "ROWS_PER_STEP", 1)  # two steps, run side by side
    archive = EventArchive.create(tmp_path / "bank", buckets=2)
    archive.append(make_events([(a, "Deposit", 100, a) for a in range(1, 9)]).drop(
        "seq", "recorded_at"))
    entry = ledger.read_log(archive.path)[1].record["files"][0]
    path = archive.path / entry["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = replay(archive, engine="buckets")
    assert len(result.steps) == 2
    with pytest.raises(CorruptionError, match=entry["path"]):
        result.state()
    assert not archive.verify().ok


@pytest.mark.parametrize("buckets", [0, -1, 5000, True, 2.5])
def test_bad_bucket_counts_are_refused(tmp_path: Path, buckets: object) -> None:
    with pytest.raises(ScaleError, match="buckets must be an integer"):
        EventArchive.create(tmp_path / "bank", buckets=buckets)  # type: ignore[arg-type]
    assert not (tmp_path / "bank").exists()


def test_bucket_choice_of_unbucketed_archive_is_refused(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    with pytest.raises(ScaleError, match="not a bucketed archive"):
        archive.scan(buckets=[0])


def test_cli_generates_a_bucketed_archive(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["generate", str(tmp_path / "b"), "--events", "2000", "--accounts", "50",
                 "--buckets", "3", "--no-progress"]) == 0
    assert EventArchive(tmp_path / "b").buckets == 3
    assert main(["generate", str(tmp_path / "p"), "--events", "2000", "--format", "parquet",
                 "--buckets", "3", "--no-progress"]) == 2
    assert "buckets need format='delta'" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


# ---------------------------------------------------------------- the bucket engine
@pytest.mark.parametrize("source", ["bucketed", "plain", "parquet"])
@pytest.mark.parametrize("rules", RULES)
def test_bucket_engine_equals_memory(bank: dict[str, Path], source: str, rules: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buckets_engine, "ROWS_PER_BUCKET", 7_000)  # split into several
    monkeypatch.setattr(buckets_engine, "ROWS_PER_STEP", 7_000)  # a bucket a step
    result = replay(bank[source], rules, engine="buckets")
    assert len(result.buckets) > 1
    assert_same_answers(replay(bank[source], rules), result, "2024-06-30")


def test_bucket_engine_writes_histories_to_out(bank: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buckets_engine, "ROWS_PER_STEP", 13_000)  # about 2 buckets a step
    out = tmp_path / "out"
    result = replay(bank["bucketed"], "banking", engine="buckets", out=out)
    memory = replay(bank["bucketed"], "banking")
    assert sorted(result.buckets) == [BANK_BUCKET, *range(5)]  # (the bank's own key too)
    assert 1 < len(result.steps) < 5
    # Step: the state alone reads what a state needs and writes nothing.
    assert_frame_equal(result.state().collect(), memory.state().collect())
    assert not (out / "history").exists()
    # Step: the history is one file per step, read back in log order.
    assert_frame_equal(result.history.collect(), memory.history.collect())
    files = sorted(p.name for p in (out / "history").iterdir())
    label = lambda b: "shared" if b == BANK_BUCKET else f"{b:05d}"  # noqa: E731
    assert files == sorted(f"buckets-{label(s[0])}-{label(s[-1])}.parquet"
                           for s in result.steps)
    assert_frame_equal(result.state().collect(), memory.state().collect())
    with pytest.raises(ScaleError, match="not an empty folder"):
        replay(bank["bucketed"], engine="buckets", out=out)


def test_bucket_engine_keys_and_known_at(bank: dict[str, Path]) -> None:
    keys = [3, 17, 250]
    result = replay(bank["bucketed"], "banking", engine="buckets", keys=keys,
                    known_at="2024-03-01")
    assert set(result.buckets) == {bucket_of(k, 5) for k in keys}
    memory = replay(bank["bucketed"], "banking", keys=keys, known_at="2024-03-01",
                    snapshots=False)
    assert_same_answers(memory, result, "2024-02-01")


def test_bucket_engine_refusals(bank: dict[str, Path]) -> None:
    with pytest.raises(ScaleError, match="by path"):
        replay(pl.scan_parquet(bank["parquet"] / "*.parquet"), engine="buckets")
    with pytest.raises(ScaleError, match="engine must be"):
        replay(bank["bucketed"], engine="gpu")  # type: ignore[arg-type]
    with pytest.raises(ScaleError, match="need engine='buckets' or 'dask'"):
        replay(bank["bucketed"], engine="memory", out="x")
    with pytest.raises(ScaleError, match="need engine='buckets' or 'dask'"):  # never ignored
        replay(bank["bucketed"], engine="memory", client=object())  # type: ignore[call-overload]
    result = replay(bank["bucketed"], engine="buckets")
    with pytest.raises(eventkit.InstantError, match="before") as caught:
        result.between("2024-02-01", "2024-01-01")
    assert caught.value.param == "end"
    with pytest.raises(eventkit.InstantError) as caught:
        result.at_times(["2024-01-01", "soon"])
    assert caught.value.param == "instants"
    with pytest.raises(eventkit.InstantError, match="list of instants, not one"):
        result.at_times("2024-01-31")  # type: ignore[arg-type]  # (one instant, not a list)
    assert result.at_times(iter(["2020-01-01"])).collect().height == 0  # read once
    # any key column may be the rules' (split by it on the fly), but never a null key
    keyed = dataclasses.replace(eventkit.rules.get("balance"), key="counterparty_id")
    with pytest.raises(eventkit.ValidationError, match="null key") as err:
        replay(bank["bucketed"], keyed, engine="buckets").state().collect()
    assert err.value.column == "counterparty_id"


# ---------------------------------------------------------------- Dask
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.mark.slow
@pytest.mark.cluster
@pytest.mark.parametrize("rules", RULES)
def test_dask_equals_memory(client, bank: dict[str, Path], rules: str,
                            tmp_path: Path) -> None:
    memory = replay(bank["bucketed"], rules)
    result = replay(bank["bucketed"], rules, client=client)
    assert_same_answers(memory, result, "2024-06-30")
    on_disk = replay(bank["parquet"], rules, engine="dask", client=client, out=tmp_path / "o")
    assert_same_answers(replay(bank["parquet"], rules), on_disk, "2024-06-30")


class SlowFirstRun(distributed.WorkerPlugin):
    """Holds the first bucket task that starts anywhere, after writing its worker's pid."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if finish == "executing" and str(key).startswith("eventkit-bucket-"):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return  # not the first attempt: run at full speed
            os.write(fd, json.dumps({"pid": os.getpid(), "key": str(key)}).encode())
            os.close(fd)
            time.sleep(60)  # killed long before this ends


def kill_a_worker_mid_task(client, marker: Path, work) -> dict[str, object]:
    """Run ``work()`` in a thread, SIGKILL the worker of the first bucket task it starts.

    Returns what ``work`` returned (``"result"``) or raised (``"error"``), once it ended.
    """
    import sys

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    client.register_plugin(SlowFirstRun(str(marker)), name="slow-first-run")
    try:
        done: dict[str, object] = {}

        def run() -> None:
            try:
                done["result"] = work()
            except BaseException as exc:
                done["error"] = exc

        pids = set(client.run(os.getpid).values())
        job = threading.Thread(target=run)
        job.start()
        deadline = time.monotonic() + 60
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline, "no bucket task started"
            time.sleep(0.05)
        victim = json.loads(marker.read_text())["pid"]
        assert victim in pids
        assert job.is_alive()
        os.kill(victim, signal.SIGKILL)  # the worker dies while it runs a bucket task
        job.join(120)
        assert not job.is_alive()
        return done
    finally:
        client.unregister_worker_plugin("slow-first-run")
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
@pytest.mark.cluster
def test_dask_survives_a_killed_worker(client, bank: dict[str, Path],
                                       tmp_path: Path) -> None:
    done = kill_a_worker_mid_task(
        client, tmp_path / "first-run.json",
        lambda: replay(bank["bucketed"], "banking", client=client).state().collect())
    assert "error" not in done, done.get("error")
    assert_frame_equal(done["result"], replay(bank["bucketed"], "banking").state().collect())
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_compacted_bucketed_archive_is_split_again_not_skipped(bank: dict[str, Path],
                                                               tmp_path: Path) -> None:
    copy = tmp_path / "bucketed"
    shutil.copytree(bank["bucketed"], copy)
    eventkit.compact(copy)  # merges files across buckets: their tags are gone
    assert_same_answers(replay(copy, "banking"), replay(copy, "banking", engine="buckets"),
                        "2024-06-30")


def test_expired_archive_is_refused_by_the_bucket_engine(bank: dict[str, Path],
                                                         tmp_path: Path) -> None:
    copy = tmp_path / "plain"
    shutil.copytree(bank["plain"], copy)
    eventkit.expire(copy, before="2023-06-01", by="test", reason="retention",
                              rules="banking", confirm=True)
    with pytest.raises(ScaleError, match="engine='memory'"):
        replay(copy, "banking", engine="buckets")


@pytest.mark.cluster
def test_a_cluster_that_is_gone_or_no_client_is_a_scale_error(tmp_path: Path) -> None:
    # a closed client escaped as distributed's ClosedClientError; a text address as an
    # AttributeError of str
    archive = archive_of(make_events([(1, "Deposit", 100, 0), (2, "Deposit", 5, 1)]),
                         tmp_path / "a", buckets=2)
    with pytest.raises(ScaleError, match="must be a dask.distributed Client") as caught:
        replay(archive, "balance", client="tcp://127.0.0.1:8786")  # type: ignore[call-overload]
    assert caught.value.param == "client"
    with distributed.LocalCluster(n_workers=1, processes=False,  # (its HTTP server on a free
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:  # port: the module's cluster holds 8787)
        result = replay(archive, "balance", client=client)
        assert result.state().collect()["balance"].to_list() == [100, 5]
    with pytest.raises(ScaleError, match="did not run the replay's 1 step") as caught:
        result.as_of("2024-01-01").collect()
    assert caught.value.param == "client"
    assert EventArchive(archive.path).verify().ok
