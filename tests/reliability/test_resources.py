"""Bounded resources: inputs and arguments that would exhaust memory, stack or patience.

Bombs run in a child process under an address-space limit (``RLIMIT_AS``), so a
failure kills the child, never pytest; each has a self-test showing the same
child dies (or would run away) without eventkit's guard. A 200 KB Parquet file
declaring 19 GiB is refused before decoding; at_times over thousands of
instants streams in chunks; snapshot checkpoints are capped; commit files too
large or nested too deeply are damage; periods beyond 1,000 years, YAML dates
and anchors, and command-line values out of range are one-line errors.
"""

from __future__ import annotations

import io
import json
import resource
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import polars as pl
import pyarrow.parquet as pq
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from test_verify import commit_json, three_appends

import eventkit
from eventkit import (
    CorruptionError,
    EventArchive,
    EventDataError,
    InstantError,
    ReportError,
    SnapshotError,
    ValidationError,
)
from eventkit.archive import ledger
from eventkit.rules.rates import shift_rates
from eventkit.workbench.cli import main
from eventkit.workbench.reports import load_runs
from reliability.test_names import rechain

ROOT = Path(__file__).resolve().parents[2]
GiB = 1 << 30


def run_limited(code: str, limit: int, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh Python whose address space is limited to ``limit`` bytes."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          preexec_fn=cap, capture_output=True, text=True, timeout=timeout,
                          check=False)


# ---------------------------------------------------------------------- Parquet bombs


def parquet_bomb(path: Path, *, rows: int = 1_000_000, groups: int = 833) -> Path:
    """A small file whose footer declares ``rows * groups`` rows of three Int64 columns:
    every row group points at the same few kilobytes of run-length encoded zeros."""
    buf = io.BytesIO()
    pl.DataFrame({"account_id": pl.repeat(0, rows, eager=True, dtype=pl.Int64),
                  "event_time": pl.repeat(1_700_000_000, rows, eager=True, dtype=pl.Int64),
                  "amount": pl.repeat(0, rows, eager=True, dtype=pl.Int64)},
                 ).write_parquet(buf, row_group_size=rows)
    data = buf.getvalue()
    footer = int.from_bytes(data[-8:-4], "little")
    meta, one = pq.read_metadata(io.BytesIO(data)), pq.read_metadata(io.BytesIO(data))
    for _ in range(groups - 1):
        meta.append_row_groups(one)
    out = io.BytesIO()
    meta.write_metadata_file(out)
    path.write_bytes(data[:len(data) - 8 - footer] + out.getvalue()[4:])
    return path


OPEN_BOMB = """
    import sys
    import eventkit, polars as pl
    try:
        events = eventkit.open_archive({path!r}, mapping={{"time_unit": "s"}}, {extra})
        print("sum", events.select(pl.col("amount").sum()).collect().item())
    except eventkit.EventDataError as exc:
        print("refused:", exc)
"""


@pytest.mark.slow
def test_a_parquet_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = parquet_bomb(tmp_path / "bomb.parquet")
    assert bomb.stat().st_size < 300_000 and pq.read_metadata(bomb).num_rows == 833_000_000

    done = run_limited(OPEN_BOMB.format(path=str(bomb), extra=""), 2 * GiB)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("refused:"), done.stdout
    assert "833,000,000 rows" in done.stdout and "18.6 GiB" in done.stdout
    assert str(bomb) in done.stdout and "max_decoded_bytes" in done.stdout
    # self-test: the same child, told to allow it, is killed from Rust (no exception)
    died = run_limited(OPEN_BOMB.format(path=str(bomb), extra="max_decoded_bytes=1 << 50"),
                       2 * GiB)
    assert died.returncode == -signal.SIGABRT, (died.returncode, died.stdout)
    assert "memory allocation" in died.stderr


def test_the_decoded_size_limit_is_per_file_configurable_and_names_the_file(
        tmp_path: Path) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    frame = pl.DataFrame({"account_id": [1] * 1000, "amount": [5] * 1000,
                          "event_time": [datetime(2024, 1, 1, tzinfo=UTC)] * 1000,
                          "notes": ["x" * 1000] * 1000})  # not read: does not count
    frame.write_parquet(folder / "a.parquet")
    frame.head(10).write_parquet(folder / "b.parquet")
    assert eventkit.open_archive(folder, max_decoded_bytes=100_000).collect().height == 1010
    with pytest.raises(EventDataError, match="declares 1,000 rows") as info:
        eventkit.open_archive(folder, max_decoded_bytes=10_000)
    assert info.value.source == str(folder / "a.parquet")
    with pytest.raises(eventkit.ParameterError, match="max_decoded_bytes"):
        eventkit.open_archive(folder, max_decoded_bytes=0)


def test_the_default_limit_follows_the_memory_the_process_may_use() -> None:
    done = run_limited("""
        from eventkit.sources.budget import default_limit
        print(default_limit())
    """, 3 * GiB)
    assert int(done.stdout) == 3 * GiB // 2, done.stderr


# ---------------------------------------------------------------------- at_times

AT_TIMES = """
    import numpy as np, polars as pl
    from datetime import datetime, UTC, timedelta
    import eventkit
    accounts, n = 20_000, 60_000
    rng = np.random.default_rng(1)
    times = np.sort(rng.integers(1_704_067_200 * 10**6, 1_735_689_600 * 10**6, n))
    events = pl.DataFrame({{"event_id": pl.int_range(n, eager=True).cast(pl.String),
        "seq": np.arange(n), "account_id": np.tile(np.arange(accounts), 3),
        "event_type": ["Deposit"] * n, "amount": rng.integers(1, 1000, n),
        "event_time": pl.Series(times).cast(pl.Datetime("us", "UTC"))}},
        ).with_columns(recorded_at=pl.col("event_time"))
    grid = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=4 * i) for i in range(2_000)]
    lf = eventkit.replay(events).at_times(grid)
    {query}
    print("rows", out.height, "sum", out["balance"].sum())
"""


@pytest.mark.slow
def test_at_times_over_thousands_of_instants_streams_in_chunks() -> None:
    # 2,000 instants x 20,000 accounts: 40 million (instant, account) rows
    done = run_limited(AT_TIMES.format(query="out = lf.group_by('instant').agg("
                                       "pl.col('balance').sum()).collect(engine='streaming')"),
                       2 * GiB, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("rows 1999 sum ")  # the first instant precedes every event
    # self-test: holding every row does not fit the same child
    died = run_limited(AT_TIMES.format(query="out = lf.collect()"), 2 * GiB, timeout=600)
    assert died.returncode != 0


def test_at_times_in_chunks_equals_one_instant_at_a_time(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from eventkit.replay import result as result_module

    t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    events = pl.DataFrame({"event_id": list("abcd"), "seq": [0, 1, 2, 3],
                           "account_id": [1, 2, 1, 3], "event_type": ["Deposit"] * 4,
                           "event_time": t, "recorded_at": t, "amount": [1, 2, 3, 4]})
    grid = [datetime(2024, 1, d, 12, tzinfo=UTC) for d in (3, 1, 2, 4, 2)]
    whole = eventkit.replay(events).at_times(grid).collect()
    monkeypatch.setattr(result_module, "GRID_CELLS", 1)  # one instant per chunk
    chunked = eventkit.replay(events).at_times(grid)
    assert chunked.collect().equals(whole)
    assert whole["instant"].is_sorted() and whole.height == 1 + 2 + 2 + 2 + 3
    assert chunked.filter(pl.col("account_id") == 1).select("balance").collect()[
        "balance"].to_list() == [1, 1, 1, 4, 4]
    assert chunked.head(2).collect().height == 2


# ---------------------------------------------------------------------- snapshots, periods


def small_archive(path: Path) -> EventArchive:
    archive = EventArchive.create(path)
    t = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 12, 31, tzinfo=UTC)]
    archive.append(pl.DataFrame({"event_id": ["a", "b"], "account_id": [1, 1],
                                 "event_type": ["Deposit"] * 2, "event_time": t,
                                 "amount": [1, 2]}))
    return archive


def test_snapshot_checkpoints_are_capped_before_any_is_made(tmp_path: Path) -> None:
    archive = small_archive(tmp_path / "bank")
    began = time.monotonic()
    with pytest.raises(SnapshotError, match=r"every='1s' makes 3[0-9,]+ checkpoints") as info:
        eventkit.snapshot(archive, every="1s")  # a year: 31 million
    assert info.value.param == "every" and "max_checkpoints=10,000" in str(info.value)
    assert time.monotonic() - began < 30
    with pytest.raises(SnapshotError, match="366 checkpoints"):
        eventkit.snapshot(archive, every="1d", max_checkpoints=365)
    assert len(eventkit.snapshot(archive, every="1d", max_checkpoints=366).checkpoints) == 366


@pytest.mark.parametrize("every", ["10000y", "1001y", "0d", "-1mo", "1x", "mo", "1mo2"])
def test_periods_out_of_range_are_clear_errors(tmp_path: Path, every: str) -> None:
    archive = small_archive(tmp_path / "bank")
    with pytest.raises(SnapshotError, match="every") as info:
        eventkit.snapshot(archive, every=every)
    assert "\n" not in str(info.value)
    if every in ("10000y", "1001y"):
        with pytest.raises(InstantError, match="longer than 1,000 years"):
            shift_rates({datetime(2024, 1, 1, tzinfo=UTC): 0.01}, every)


# ---------------------------------------------------------------------- commit files


def test_a_deeply_nested_commit_is_corruption_not_recursion(tmp_path: Path) -> None:
    archive = three_appends(tmp_path / "bank")
    commit_json(archive, 3).write_text("[" * 200_000 + "]" * 200_000 + "\n")
    with pytest.raises(CorruptionError, match="commit 3") as info:
        EventArchive(archive.path).scan().collect()
    assert "RecursionError" in str(info.value) or "nest" in str(info.value)
    report = archive.verify()
    assert report.problems[0].startswith("commit 3: unreadable commit file")


def test_a_record_nested_beyond_the_limit_is_corruption_even_rechained(tmp_path: Path) -> None:
    archive = three_appends(tmp_path / "bank")
    deep: object = 1
    for _ in range(ledger.MAX_JSON_DEPTH + 5):
        deep = [deep]

    def nest(obj: dict[str, object]) -> None:
        if "kind" in obj:  # the record
            obj["meta"] = {"x": deep}

    rechain(archive, 2, nest)
    with pytest.raises(CorruptionError, match="nests deeper than 32 levels"):
        EventArchive(archive.path).scan().collect()
    assert "nests deeper" in archive.verify().problems[0]


def test_an_oversized_commit_is_never_read(tmp_path: Path) -> None:
    archive = three_appends(tmp_path / "bank")
    with commit_json(archive, 3).open("r+b") as f:  # sparse: no disk, a huge size
        f.truncate(ledger.MAX_COMMIT_BYTES + 1)
    began = time.monotonic()
    with pytest.raises(CorruptionError, match="over the 134,217,728 a commit may have"):
        EventArchive(archive.path).scan().collect()
    assert time.monotonic() - began < 5
    assert "over the" in archive.verify().problems[0]


def test_meta_nested_too_deeply_is_refused_on_append(tmp_path: Path) -> None:
    archive = three_appends(tmp_path / "bank")
    deep: object = 0
    for _ in range(20):
        deep = {"x": deep}
    batch = pl.DataFrame({"event_id": ["m"], "account_id": [1], "event_type": ["Deposit"],
                          "event_time": [datetime(2024, 1, 1, tzinfo=UTC)], "amount": [1]})
    with pytest.raises(ValidationError, match="nested at most 16 deep"):
        archive.append(batch, meta={"deep": deep})
    with pytest.raises(ValidationError, match="meta must be"):
        archive.append(batch, meta={"deep": "[" * 10**6})  # text: fine, but too long
    assert archive.version == 3


# ---------------------------------------------------------------------- YAML and CLI values


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "nb"
    folder.mkdir()
    cell = new_code_cell("START = '2024-01-01'\nACCOUNTS = [1]")
    cell.metadata["tags"] = ["parameters"]
    nbformat.write(new_notebook(cells=[cell], metadata={"kernelspec": {
        "name": "eventkit", "display_name": "Python (eventkit)", "language": "python"}}),
        folder / "a.ipynb")
    return folder


BILLION_LAUGHS = """runs:
  - name: laughs
    notebook: a.ipynb
    parameters:
      ACCOUNTS: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
      START: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
"""


@pytest.mark.parametrize(("yaml", "words"), [
    ("runs: [{name: r, notebook: a.ipynb, parameters: {START: 2024-01-01}}]",
     ["runs[0].parameters.START: 2024-01-01 is a YAML date", 'quote it: "2024-01-01"']),
    ("runs: [{name: r, notebook: a.ipynb, parameters: {START: 2024-01-01T10:00:00Z}}]",
     ["runs[0].parameters.START", "YAML datetime"]),
    ("runs: [{name: r, notebook: a.ipynb, parameters: {ACCOUNTS: [1, .nan]}}]",
     ["runs[0].parameters.ACCOUNTS[1]: nan is not a finite number"]),
    ("runs: [{name: r, notebook: a.ipynb, parameters: {ACCOUNTS: {1: 2}}}]",
     ["runs[0].parameters.ACCOUNTS: key 1 is not text"]),
    ("runs: [{name: r, notebook: a.ipynb, parameters: [START]}]",
     ["runs[0].parameters: expected a mapping"]),
    ("runs: [{name: r, notebook: a.ipynb, parameters: {START: " + "[" * 40 + "]" * 40 + "}}]",
     ["nested more than 16 deep"]),
    (BILLION_LAUGHS, ["runs[0].parameters.START[1]", "anchor used twice"]),
])
def test_report_parameters_are_checked_with_one_line(tmp_path: Path, notebooks: Path,
                                                     yaml: str, words: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "r.yaml"
    config.write_text(yaml)
    with pytest.raises(ReportError) as info:
        load_runs(config, notebooks)
    assert all(w in str(info.value) for w in words), str(info.value)
    code = main(["report", "--config", str(config), "--notebooks", str(notebooks),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("eventkit: error:"), err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [
    ["generate", "PATH", "--events", "lots"], ["generate", "PATH", "--accounts", "0"],
    ["generate", "PATH", "--chunk-events", "-1"], ["generate", "PATH", "--buckets", "0"],
    ["compact", "PATH", "--target-rows", "0"], ["lab", "--port", "70000"],
    ["ingest", "--bootstrap", "h:1", "--topic", "t", "--archive", "PATH", "--batch-size", "0"],
    ["ingest", "--bootstrap", "h:1", "--topic", "t", "--archive", "PATH", "--max-wait", "inf"],
    ["ingest", "--bootstrap", "h:1", "--topic", "t", "--archive", "PATH", "--idle-timeout", "-1"],
    ["produce", "PATH", "--bootstrap", "h:1", "--topic", "t", "--partitions", "0"],
    ["report", "--timeout", "0"], ["snapshot", "PATH", "--every", "10000y"],
    ["snapshot", "PATH", "--every", "1s"], ["as-of", "PATH", "2024-02-30"],
    ["replay", "PATH", "--accounts", "1,two"], ["nonsense"], ["replay"],
])
def test_command_line_values_are_checked_with_one_line(
        tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    path = small_archive(tmp_path / "bank").path
    argv = [str(path) if a == "PATH" else a for a in args]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse: the option itself is unusable
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.count("\n") == 1 and captured.err.startswith("eventkit: error:"), \
        captured.err
    assert "Traceback" not in captured.err and not captured.out
    assert json.dumps(captured.err)  # text, nothing else
