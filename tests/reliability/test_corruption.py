"""Damaged files: every read names the file with eventkit's own CorruptionError.

The archive's second commit holds 2000 ``Correction`` events with random
amounts (incompressible, so a byte changed in that page changes one amount and
nothing else: Parquet readers return the wrong number without complaint). Each
kind of damage is read through every entry point; none may answer, raise a
reader error, or let a ``PanicException`` (a ``BaseException``) escape.
"""

from __future__ import annotations

import os
import random
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import make_events

import eventkit
from eventkit import CorruptionError, EventArchive
from eventkit.archive import datafiles, ledger
from eventkit.workbench.cli import main

Damage = Callable[[EventArchive], Path]


@pytest.fixture
def archive(tmp_path: Path) -> EventArchive:
    archive = EventArchive.create(tmp_path / "bank")
    rng = random.Random(4)
    batches = [
        make_events([(1, "AccountOpened", 0, 0), (1, "Deposit", 10_000, 1)]),
        make_events([(2, "Correction", rng.randrange(-2**61, 2**61), i) for i in range(2000)]),
        make_events([(1, "Withdrawal", 2_500, 3)]),
    ]
    for k, events in enumerate(batches):
        archive.append(events.drop("seq").with_columns(
            event_id=pl.lit(f"b{k}-") + pl.col("event_id"),
            recorded_at=pl.lit(datetime(2024, 3, 1, tzinfo=UTC) + timedelta(days=k))),
            recorded_at="keep")  # imported history: transaction time rises from batch to batch
    return archive


def data_file(archive: EventArchive, version: int = 2) -> Path:
    record = ledger.read_commit(archive.path, version).record
    assert record is not None
    return archive.path / record["files"][0]["path"]


def amount_chunk(path: Path) -> tuple[int, int]:
    """(first byte, size) of the amount column's pages in a data file."""
    row_group = pq.ParquetFile(path).metadata.row_group(0)
    [chunk] = [row_group.column(j) for j in range(row_group.num_columns)
               if row_group.column(j).path_in_schema == "amount"]
    return chunk.dictionary_page_offset or chunk.data_page_offset, chunk.total_compressed_size


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def truncate(archive: EventArchive) -> Path:
    path = data_file(archive)
    path.write_bytes(path.read_bytes()[:-100])
    return path


def empty(archive: EventArchive) -> Path:
    path = data_file(archive)
    path.write_bytes(b"")
    return path


def bad_magic(archive: EventArchive) -> Path:
    path = data_file(archive)
    path.write_bytes(path.read_bytes()[:-4] + b"XXXX")
    return path


def bad_footer_length(archive: EventArchive) -> Path:
    path = data_file(archive)
    data = path.read_bytes()
    path.write_bytes(data[:-8] + struct.pack("<I", 2**31 - 1) + data[-4:])
    return path


def page_byte_changed(archive: EventArchive) -> Path:
    """One byte deep inside the amount page: readers silently return another amount."""
    path = data_file(archive)
    start, size = amount_chunk(path)
    data = bytearray(path.read_bytes())
    data[start + size * 3 // 4] ^= 0x10
    path.write_bytes(bytes(data))
    return path


def footer_points_past_the_end(archive: EventArchive) -> Path:
    """The footer says the amount pages are 900 kB long: the Parquet reader panics."""
    path = data_file(archive)
    data = bytearray(path.read_bytes())
    _, size = amount_chunk(path)
    footer_start = len(data) - 8 - struct.unpack("<I", data[-8:-4])[0]
    old, new = _varint(size << 1), _varint(900_000 << 1)  # thrift: zigzag varints
    assert len(old) == len(new) and data.count(old, footer_start) == 1
    at = data.index(old, footer_start)
    data[at:at + len(old)] = new
    path.write_bytes(bytes(data))
    return path


def delete_data_file(archive: EventArchive) -> Path:
    path = data_file(archive)
    path.unlink()
    return path


def truncate_commit(archive: EventArchive) -> Path:
    path = ledger.log_path(archive.path, 2)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def garble_commit(archive: EventArchive) -> Path:
    path = ledger.log_path(archive.path, 2)
    path.write_bytes(b"\xff\xfe" + os.urandom(64))
    return path


def delete_commit(archive: EventArchive) -> Path:
    path = ledger.log_path(archive.path, 2)
    path.unlink()
    return path


DAMAGE: dict[str, Damage] = {
    "truncated-data-file": truncate,
    "empty-data-file": empty,
    "bad-footer-magic": bad_magic,
    "bad-footer-length": bad_footer_length,
    "byte-changed-in-a-data-page": page_byte_changed,
    "footer-makes-the-reader-panic": footer_points_past_the_end,
    "deleted-data-file": delete_data_file,
    "truncated-commit-file": truncate_commit,
    "garbled-commit-file": garble_commit,
    "deleted-commit-file": delete_commit,
}
#: Damage the Parquet reader itself notices (the others only a hash or the log can).
READER_NOTICES = ["truncated-data-file", "empty-data-file", "bad-footer-magic",
                  "bad-footer-length", "footer-makes-the-reader-panic", "deleted-data-file"]


def _cli_replay(path: Path) -> None:
    code = main(["replay", str(path)])
    assert code == 2  # the CLI prints the CorruptionError on one line; re-raise for the test
    raise CorruptionError("cli")


READERS: dict[str, Callable[[Path], object]] = {
    "scan": lambda p: EventArchive(p).scan().collect(),
    "scan-version-2": lambda p: EventArchive(p).scan(version=2).collect(),
    "scan-amount-sum": lambda p: EventArchive(p).scan().select(pl.col("amount").sum()).collect(),
    "open_archive": lambda p: eventkit.open_archive(p).collect(),
    "replay-path": lambda p: eventkit.replay(p).state().collect(),
    "replay-archive": lambda p: eventkit.replay(EventArchive(p), "banking").state().collect(),
    "cli-replay": _cli_replay,
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("damage", DAMAGE)
def test_every_read_of_a_damaged_archive_raises_corruption_error_naming_the_file(
    archive: EventArchive, damage: str, reader: str, capsys: pytest.CaptureFixture[str],
) -> None:
    earlier = archive.scan(version=1).collect()
    path = DAMAGE[damage](archive)

    with pytest.raises(CorruptionError) as info:
        READERS[reader](archive.path)

    if reader == "cli-replay":
        err = capsys.readouterr().err
        assert err.startswith("eventkit: error:") and path.name in err
    else:
        assert info.value.file == str(path)
        assert path.name in str(info.value)
        assert info.value.path == str(archive.path)
    # an earlier version does not need the damaged commit: it reads exactly as before
    assert EventArchive(archive.path).scan(version=1).collect().equals(earlier)
    # and verify names the same file first
    report = EventArchive(archive.path).verify()
    assert not report.ok and path.name in report.problems[0]


def test_a_changed_page_byte_is_invisible_to_parquet_readers(archive: EventArchive) -> None:
    """Why every file's SHA-256 is checked before its numbers are used."""
    path = data_file(archive)
    before, stored = pl.read_parquet(path), archive.scan().collect()
    page_byte_changed(archive)

    after = pl.read_parquet(path)  # no error at all

    assert after.drop("amount").equals(before.drop("amount"))
    assert (after["amount"] != before["amount"]).sum() == 1
    # so eventkit's trusted fast path (documented) answers wrongly; the default refuses
    unverified = archive.scan(verify=False).collect()
    assert (unverified["amount"] != stored["amount"]).sum() == 1
    with pytest.raises(CorruptionError):
        archive.scan()


@pytest.mark.parametrize("damage", READER_NOTICES)
def test_unverified_scan_turns_reader_errors_and_panics_into_corruption_error(
    archive: EventArchive, damage: str,
) -> None:
    path = DAMAGE[damage](archive)
    lf = archive.scan(verify=False)  # trusts the files: nothing is read yet

    with pytest.raises(CorruptionError) as info:
        lf.collect()

    assert info.value.file == str(path)
    assert path.name in str(info.value)


def test_footer_damage_really_panics_the_parquet_reader(archive: EventArchive) -> None:
    path = footer_points_past_the_end(archive)

    with pytest.raises(pl.exceptions.PanicException):
        pl.read_parquet(path)

    assert not issubclass(pl.exceptions.PanicException, Exception)


def test_damage_after_a_verified_scan_was_built_is_still_named(archive: EventArchive) -> None:
    lf = archive.scan()  # files checked now
    path = truncate(archive)  # ... and damaged before the frame is collected

    with pytest.raises(CorruptionError) as info:
        lf.collect()

    assert info.value.file == str(path)


def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    hashed: list[Path] = []
    real = datafiles.sha256_file

    def counting(path: Path, **kwargs: object) -> str:
        hashed.append(path)
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(datafiles, "sha256_file", counting)
    datafiles._VERIFIED.clear()
    return hashed


def test_repeated_scans_hash_each_file_once_and_catch_a_later_change(
    archive: EventArchive, monkeypatch: pytest.MonkeyPatch,
) -> None:
    time.sleep(datafiles._RACY_NS / 1e9 + 0.1)  # files older than the timestamp granularity
    hashed = count_hashing(monkeypatch)
    archive.scan()
    assert len(hashed) == 3
    for _ in range(5):
        archive.scan()
    assert len(hashed) == 3  # cached: only stat

    # a same-size change with the old mtime put back: ctime still moves, the cache misses
    path = data_file(archive)
    st = path.stat()
    page_byte_changed(archive)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns

    with pytest.raises(CorruptionError) as info:
        archive.scan()

    assert info.value.file == str(path)


def test_files_changed_within_the_last_second_are_hashed_on_every_scan(
    archive: EventArchive, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change in the same clock tick as the check could keep every stat field."""
    hashed = count_hashing(monkeypatch)
    for _ in range(3):
        archive.scan()
    assert len(hashed) == 9


def test_errors_of_the_query_itself_are_not_reported_as_corruption(
    archive: EventArchive,
) -> None:
    with pytest.raises(pl.exceptions.InvalidOperationError):
        archive.scan().filter(pl.col("event_type").cast(pl.Int64) > 0).collect()


def test_scan_of_a_version_that_does_not_exist(archive: EventArchive) -> None:
    with pytest.raises(eventkit.ArchiveError, match="no version 9"):
        archive.scan(version=9)


def test_damaged_genesis_commit_is_named_when_opening(archive: EventArchive) -> None:
    path = ledger.log_path(archive.path, 0)
    path.write_bytes(path.read_bytes()[:50])

    with pytest.raises(CorruptionError) as info:
        EventArchive(archive.path)

    assert info.value.file == str(path)
