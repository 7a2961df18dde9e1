"""The append-only archive: round trips, seq and recorded_at, and every refused write."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import make_events
from deltalake import DeltaTable, write_deltalake
from polars.testing import assert_frame_equal

import eventkit
from eventkit import (
    ArchiveError,
    CorruptionError,
    EventArchive,
    EventDataError,
    ImmutabilityError,
    SchemaError,
    ValidationError,
)
from eventkit.schema import CANONICAL_SCHEMA

JAN1 = datetime(2024, 1, 1, tzinfo=UTC)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes (and every folder, as None) under ``root``, by relative path."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def assert_unchanged(root: Path, before: dict[str, bytes | None]) -> None:
    after = snapshot(root)
    assert sorted(after) == sorted(before), "files appeared or vanished"
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"files changed: {changed}"


def batch(rows: list[tuple[int, str, int, int]], prefix: str) -> pl.DataFrame:
    """An appendable batch (no seq, no recorded_at) with ids ``<prefix>0``, ..."""
    return make_events(rows).drop("seq", "recorded_at").with_columns(
        event_id=pl.lit(prefix) + pl.int_range(pl.len()).cast(pl.String))


THREE = [(1, "Deposit", 10_000, 0), (2, "Deposit", 500, 1), (1, "Fee", 250, 2)]


@pytest.fixture
def archive(tmp_path: Path) -> EventArchive:
    """An archive holding one batch of three events (ids a0..a2)."""
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(batch(THREE, "a"))
    return archive


# ---------------------------------------------------------------------- round trips


def test_create_append_scan_round_trip_is_exact(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    assert archive.version == 0
    assert len(archive) == 0
    assert archive.scan().collect().schema == pl.Schema(CANONICAL_SCHEMA)

    first = make_events(THREE, start=JAN1)
    second = make_events([(3, "Correction", -42, 5), (0, "InterestRateChanged", 0, 6),
                          (3, "TransferIn", 2**40, 7)], start=JAN1).with_columns(
        event_id=pl.lit("b") + pl.col("event_id"), counterparty_id=pl.Series([None, None, 1]),
        rate=pl.Series([None, 0.035, None]))
    r1 = archive.append(first.drop("seq"), recorded_at="keep")
    r2 = archive.append(second.drop("seq"), recorded_at="keep")

    expected = pl.concat([first, second.with_columns(seq=pl.Series([3, 4, 5]))])
    assert_frame_equal(archive.scan().collect(), expected)
    assert (r1.version, r1.rows, r1.seq_start, r1.seq_end, r1.duplicate) == (1, 3, 0, 2, False)
    assert (r2.version, r2.rows, r2.seq_start, r2.seq_end) == (2, 3, 3, 5)
    assert r2.digest == archive.head
    assert len(archive) == 6
    # an older version is still readable as it was
    assert_frame_equal(archive.scan(version=1).collect(), first)
    # a fresh handle sees the same archive
    assert_frame_equal(EventArchive(tmp_path / "bank").scan().collect(), expected)


def test_seq_continues_across_appends_in_row_order(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    receipts = [archive.append(batch(THREE[: n], f"b{n}-")) for n in (3, 1, 2)]

    assert [(r.seq_start, r.seq_end) for r in receipts] == [(0, 2), (3, 3), (4, 5)]
    events = archive.scan().collect()
    assert events["seq"].to_list() == list(range(6))
    assert events["event_id"].to_list() == ["b3-0", "b3-1", "b3-2", "b1-0", "b2-0", "b2-1"]
    assert archive.version == 3


def test_lazyframe_batches_and_mappings_are_accepted(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    foreign = pl.LazyFrame({"id": ["x"], "acct": [9], "value": [-12.34], "ts": [1_704_067_200]})

    archive.append(foreign, mapping={"event_id": "id", "account_id": "acct", "amount": "value",
                                     "event_time": "ts", "amount_unit": "major",
                                     "time_unit": "s"})

    row = archive.scan().collect().row(0, named=True)
    assert (row["event_id"], row["account_id"], row["event_type"], row["amount"],
            row["event_time"]) == ("x", 9, "Withdrawal", 1234, JAN1)


def test_recorded_at_is_stamped_now_and_never_runs_backwards(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    before = datetime.now(UTC)
    archive.append(batch(THREE, "a"))
    after = datetime.now(UTC)

    stamped = archive.scan().collect()["recorded_at"]
    assert stamped.n_unique() == 1  # one commit, one transaction time
    assert before <= stamped[0] <= after

    # history imported with a recorded_at slightly ahead (within the clock skew allowed):
    # the clock is now behind the archive's latest transaction time, so a plain append is
    # refused naming both instants, and stamps the latest only when asked to clamp
    ahead = datetime.now(UTC) + timedelta(minutes=3)
    archive.append(batch(THREE[:1], "k").with_columns(recorded_at=pl.lit(ahead)),
                   recorded_at="keep")
    with pytest.raises(eventkit.ClockError, match="before the latest recorded_at") as info:
        archive.append(batch(THREE[:1], "n"))
    assert info.value.latest == ahead and info.value.clock < ahead
    assert ahead.isoformat() in str(info.value)
    archive.append(batch(THREE[:1], "n"), before_latest="clamp")

    times = archive.scan().collect()["recorded_at"].to_list()
    assert times == sorted(times)
    assert times[-1] == ahead


def test_recorded_at_keep_keeps_the_given_times(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    old = make_events(THREE).with_columns(recorded_at=pl.col("event_time") + timedelta(days=1))

    archive.append(old.drop("seq"), recorded_at="keep")

    assert_frame_equal(archive.scan().collect(), old)


def test_future_recorded_at_is_rejected_naming_the_row(archive: EventArchive) -> None:
    before = snapshot(archive.path)
    future = datetime.now(UTC) + timedelta(days=1)
    events = batch(THREE, "f").with_columns(
        recorded_at=pl.Series([JAN1, future, JAN1], dtype=pl.Datetime("us", "UTC")))

    with pytest.raises(ValidationError) as info:
        archive.append(events, recorded_at="keep")

    assert (info.value.column, info.value.row) == ("recorded_at", 1)
    assert_unchanged(archive.path, before)


# ---------------------------------------------------------------------- refused batches


def test_duplicate_ids_within_a_batch_are_rejected(archive: EventArchive) -> None:
    before = snapshot(archive.path)
    events = batch(THREE, "n").with_columns(event_id=pl.Series(["x", "y", "x"]))

    with pytest.raises(ValidationError) as info:
        archive.append(events)

    assert info.value.column == "event_id"
    assert info.value.row in (0, 2)
    assert "'x'" in str(info.value)
    assert_unchanged(archive.path, before)


def test_duplicate_ids_against_the_archive_are_rejected(archive: EventArchive) -> None:
    before = snapshot(archive.path)
    events = batch(THREE, "n").with_columns(event_id=pl.Series(["n0", "n1", "a1"]))

    with pytest.raises(ValidationError) as info:
        archive.append(events)

    assert (info.value.column, info.value.row) == ("event_id", 2)
    assert "'a1'" in str(info.value)
    assert_unchanged(archive.path, before)


def test_batch_id_makes_a_retry_idempotent(archive: EventArchive) -> None:
    first = archive.append(batch(THREE, "r"), batch_id="upload-7")
    before = snapshot(archive.path)

    again = archive.append(batch(THREE, "r"), batch_id="upload-7")

    assert again.duplicate and not first.duplicate
    assert (again.version, again.batch_id, again.rows, again.seq_start, again.seq_end,
            again.digest) == (first.version, "upload-7", 3, 3, 5, first.digest)
    assert_unchanged(archive.path, before)
    assert len(archive) == 6


@pytest.mark.parametrize(
    ("make_bad", "error", "column", "row"),
    [
        pytest.param(lambda b: b.with_columns(event_type=pl.Series(["Deposit", "Bogus",
                                                                    "Fee"])),
                     ValidationError, "event_type", 1, id="unknown-event-type"),
        pytest.param(lambda b: b.with_columns(amount=pl.Series([1, 2, -3])),
                     ValidationError, "amount", 2, id="negative-money-amount"),
        pytest.param(lambda b: b.with_columns(account_id=pl.Series([1, None, 2])),
                     ValidationError, "account_id", 1, id="null-account"),
        pytest.param(lambda b: b.with_columns(event_id=pl.Series(["p", None, "q"])),
                     ValidationError, "event_id", 1, id="null-event-id"),
        pytest.param(lambda b: b.with_columns(note=pl.lit("hi")),
                     SchemaError, "note", None, id="extra-column"),
        pytest.param(lambda b: b.with_columns(seq=pl.lit(99, dtype=pl.Int64)),
                     SchemaError, "seq", None, id="seq-column"),
        pytest.param(lambda b: b.with_columns(recorded_at=pl.col("event_time")),
                     SchemaError, "recorded_at", None, id="recorded-at-without-keep"),
        pytest.param(lambda b: b.drop("event_time"),
                     SchemaError, "event_time", None, id="missing-event-time"),
        pytest.param(lambda b: b.with_columns(pl.col("event_time").dt.replace_time_zone(None)),
                     SchemaError, "event_time", None, id="naive-event-time"),
        pytest.param(lambda b: b.clear(), ValidationError, None, None, id="empty-batch"),
    ],
)
def test_bad_batches_are_rejected_and_change_nothing(
    archive: EventArchive,
    make_bad: Callable[[pl.DataFrame], pl.DataFrame],
    error: type[EventDataError],
    column: str | None,
    row: int | None,
) -> None:
    before = snapshot(archive.path)

    with pytest.raises(error) as info:
        archive.append(make_bad(batch(THREE, "n")))

    assert type(info.value) is error
    assert (info.value.column, info.value.row) == (column, row)
    assert info.value.source == "appended batch"
    assert_unchanged(archive.path, before)
    assert archive.verify().ok


def test_errors_name_the_batch_id(archive: EventArchive) -> None:
    with pytest.raises(ValidationError) as info:
        archive.append(batch(THREE, "n").with_columns(amount=pl.Series([1, -2, 3])),
                       batch_id="upload-9")

    assert info.value.source == "batch upload-9"


def test_keep_without_a_recorded_at_column_is_rejected(archive: EventArchive) -> None:
    before = snapshot(archive.path)

    with pytest.raises(SchemaError) as info:
        archive.append(batch(THREE, "n"), recorded_at="keep")

    assert info.value.column == "recorded_at"
    assert_unchanged(archive.path, before)


def test_unknown_recorded_at_mode_is_rejected(archive: EventArchive) -> None:
    with pytest.raises(SchemaError):
        archive.append(batch(THREE, "n"), recorded_at="later")  # type: ignore[arg-type]


def test_corrections_may_be_negative_and_any_type_when_unrestricted(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank", event_types=None)

    archive.append(batch([(1, "Correction", -5, 0), (1, "LoyaltyPoints", 7, 1)], "c"))

    assert archive.scan().collect()["amount"].to_list() == [-5, 7]


def test_failed_first_append_leaves_a_fresh_archive_unchanged(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    before = snapshot(archive.path)
    future = datetime.now(UTC) + timedelta(days=1)

    with pytest.raises(ValidationError):
        archive.append(batch(THREE, "f").with_columns(recorded_at=pl.lit(future)),
                       recorded_at="keep")

    assert_unchanged(archive.path, before)


# ---------------------------------------------------------------------- immutability


@pytest.mark.parametrize("method", ["delete", "overwrite", "update"])
def test_delete_overwrite_update_are_refused(archive: EventArchive, method: str) -> None:
    before = snapshot(archive.path)

    with pytest.raises(ImmutabilityError) as info:
        getattr(archive, method)(pl.col("account_id") == 1)

    assert info.value.path == str(archive.path)
    assert_unchanged(archive.path, before)


@pytest.mark.parametrize(
    "rewrite",
    [
        pytest.param(lambda p: DeltaTable(p).delete("account_id = 1"), id="delta-delete"),
        pytest.param(lambda p: DeltaTable(p).update({"amount": "0"}), id="delta-update"),
        pytest.param(lambda p: write_deltalake(p, pl.scan_delta(p).collect().to_arrow(),
                                               mode="overwrite"), id="delta-overwrite"),
    ],
)
def test_delta_itself_refuses_to_rewrite_the_table(archive: EventArchive,
                                                   rewrite: Callable[[str], object]) -> None:
    assert DeltaTable(str(archive.path)).metadata().configuration["delta.appendOnly"] == "true"
    before = snapshot(archive.path)

    with pytest.raises(Exception, match="append-only"):
        rewrite(str(archive.path))

    assert_unchanged(archive.path, before)
    assert archive.verify().ok


def test_create_over_an_existing_archive_fails(archive: EventArchive) -> None:
    before = snapshot(archive.path)

    with pytest.raises(ArchiveError):
        EventArchive.create(archive.path)

    assert_unchanged(archive.path, before)


def test_create_in_a_non_empty_folder_fails(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("precious")

    with pytest.raises(ArchiveError):
        EventArchive.create(tmp_path)

    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]


def test_create_over_a_file_fails_with_an_archive_error(tmp_path: Path) -> None:
    (tmp_path / "bank").write_text("x")

    with pytest.raises(ArchiveError):
        EventArchive.create(tmp_path / "bank")


def test_create_in_an_empty_folder_works(tmp_path: Path) -> None:
    (tmp_path / "bank").mkdir()

    assert EventArchive.create(tmp_path / "bank").version == 0


@pytest.mark.parametrize("kind", ["empty-folder", "missing", "parquet-folder", "delta-table",
                                  "empty-log"])
def test_opening_something_that_is_not_an_archive_fails(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x"
    if kind == "empty-folder":
        path.mkdir()
    elif kind == "parquet-folder":
        path.mkdir()
        make_events(THREE).write_parquet(path / "events.parquet")
    elif kind == "delta-table":
        write_deltalake(str(path), make_events(THREE).to_arrow())
    elif kind == "empty-log":
        (path / "_delta_log").mkdir(parents=True)

    with pytest.raises(ArchiveError) as info:
        EventArchive(path)

    assert info.value.path == str(path)


# ---------------------------------------------------------------------- other readers


def test_archive_is_a_delta_table_polars_reads(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(batch(THREE, "a"))
    archive.append(batch(THREE[:2], "b"))

    via_delta = pl.scan_delta(str(archive.path)).sort("seq").collect()

    assert_frame_equal(via_delta, archive.scan().collect())
    assert DeltaTable(str(archive.path)).version() == 2


def test_archive_data_files_are_plain_parquet_duckdb_reads(tmp_path: Path) -> None:
    # DuckDB's delta extension is downloaded on first use (needs the internet), so read the
    # table's live data files, as the Delta log lists them, with DuckDB's own read_parquet.
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(batch(THREE, "a"))
    archive.append(batch(THREE[:2], "b"))
    files = DeltaTable(str(archive.path)).file_uris()

    con = duckdb.connect()
    rows = con.execute(
        "SELECT account_id, sum(amount), count(*), min(seq), max(seq) "
        "FROM read_parquet($files) GROUP BY account_id ORDER BY account_id",
        {"files": files}).fetchall()
    ids = con.execute("SELECT event_id FROM read_parquet($files) ORDER BY seq",
                      {"files": files}).fetchall()

    assert rows == [(1, 20_250, 3, 0, 3), (2, 1_000, 2, 1, 4)]
    assert [i for (i,) in ids] == ["a0", "a1", "a2", "b0", "b1"]


def test_open_archive_of_an_archive_equals_scan(archive: EventArchive) -> None:
    assert_frame_equal(eventkit.open_archive(archive.path).collect(), archive.scan().collect())


def test_commit_records_chain_and_list_the_files(archive: EventArchive) -> None:
    log = sorted((archive.path / "_delta_log").glob("*.json"))
    records = [json.loads(json.loads(line)["commitInfo"]["eventkit"])
               for p in log for line in p.read_text().splitlines() if "commitInfo" in line]

    assert [r["kind"] for r in records] == ["create", "append"]
    assert records[1]["prev"] == records[0]["digest"]
    assert records[1]["digest"] == archive.head
    assert records[1]["rows"] == 3
    live = [uri.rsplit("/", 1)[-1] for uri in DeltaTable(str(archive.path)).file_uris()]
    assert [f["path"] for f in records[1]["files"]] == live


def test_concurrent_appends_get_distinct_seq_ranges(tmp_path: Path) -> None:
    EventArchive.create(tmp_path / "bank")
    errors: list[BaseException] = []

    def writer(account: int) -> None:
        handle = EventArchive(tmp_path / "bank")  # each writer its own handle
        for k in range(3):
            try:
                handle.append(batch(THREE, f"w{account}-{k}-"))
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    archive = EventArchive(tmp_path / "bank")
    events = archive.scan().collect()
    assert archive.version == 12
    assert events["seq"].to_list() == list(range(36))
    assert events["event_id"].n_unique() == 36
    # each batch is contiguous in seq
    for prefix, group in events.group_by(pl.col("event_id").str.extract(r"^(w\d+-\d+)-")):
        assert group["seq"].max() - group["seq"].min() == 2, prefix
    assert archive.verify().ok


# ---------------------------------------------------------------------- meta (source positions)


def test_meta_commits_with_the_events_and_is_chained(archive: EventArchive) -> None:
    assert archive.latest_meta("kafka/tx") is None
    archive.append(batch(THREE, "b"), meta={"kafka/tx": {"0": 3, "1": 7}})
    archive.append(batch(THREE, "c"), meta={"other": 1})
    archive.append(batch(THREE, "d"))

    assert archive.latest_meta("kafka/tx") == {"0": 3, "1": 7}
    assert archive.latest_meta("other") == 1
    assert archive.verify().ok
    # the meta is part of the chained record: editing it is caught
    log = archive.path / "_delta_log" / f"{2:020d}.json"
    log.write_text(log.read_text().replace('\\"1\\": 7', '\\"1\\": 8'))
    with pytest.raises(CorruptionError, match="commit 2"):  # read from the checked log
        archive.latest_meta("kafka/tx")
    report = archive.verify()
    assert not report.ok
    assert "commit 2: record altered" in str(report)


@pytest.mark.parametrize("meta", [[1, 2], {"x": float("nan")}, {"x": object()},
                                  {"x": "y" * 70_000}])
def test_bad_meta_is_refused_and_changes_nothing(archive: EventArchive, meta: object) -> None:
    before = snapshot(archive.path)
    with pytest.raises(ValidationError, match="meta must be a JSON object") as info:
        archive.append(batch(THREE, "b"), meta=meta)  # type: ignore[arg-type]
    assert info.value.column == "meta"
    assert_unchanged(archive.path, before)


def test_an_archived_id_is_refused_once_the_id_index_has_grown(tmp_path: Path) -> None:
    """Past 65,536 ids the per-process index sorts them: a lookup must still find each
    (it once compared every id with the largest hash only, and indexed past the end)."""
    archive = EventArchive.create(tmp_path / "bank")

    def ids(lo: int, hi: int) -> pl.DataFrame:
        return pl.DataFrame({"event_id": [f"e{i}" for i in range(lo, hi)],
                             "account_id": [1] * (hi - lo), "event_type": ["Deposit"] * (hi - lo),
                             "event_time": [JAN1] * (hi - lo), "amount": [1] * (hi - lo)})

    for k in range(8):
        archive.append(ids(k * 10_000, (k + 1) * 10_000))
    for old in (5, 45_678, 79_999):
        with pytest.raises(ValidationError, match=f"'e{old}' is already in the archive"):
            archive.append(ids(old, old + 1))
    archive.append(ids(80_000, 80_001))
    assert len(archive) == 80_001


@pytest.mark.parametrize(("call", "param"), [
    (lambda a: a.scan(version="1"), "version"),
    (lambda a: a.scan(version=1.0), "version"),
    (lambda a: a.append(batch(THREE, "b"), expected_version="1"), "expected_version"),
    (lambda a: a.append(batch(THREE, "b"), expected_version=True), "expected_version"),
    (lambda a: a.append(batch(THREE, "b"), schema_version=True), "schema_version"),  # not 1
    (lambda a: a.append(batch(THREE, "b"), expected_version=1, conflicts="streams"),
     "conflicts"),
])
def test_versions_and_conflict_modes_of_another_type_are_named(
    archive: EventArchive, call: Callable[[EventArchive], object], param: str,
) -> None:
    # They escaped as TypeError, or were taken as something else: "1" as a stale version,
    # True as schema version 1 (amounts read as currency units), "streams" as "archive".
    before = snapshot(archive.path)
    with pytest.raises(eventkit.ParameterError, match=f"^{param}: must be"):
        call(archive)
    assert_unchanged(archive.path, before)


def test_a_mapping_that_is_not_a_dict_is_named(archive: EventArchive) -> None:
    with pytest.raises(SchemaError, match="a mapping is a dict"):
        archive.append(batch(THREE, "b"), mapping=5)  # type: ignore[arg-type]
