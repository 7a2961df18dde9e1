"""The bad-input corpus: every kind of bad batch or file, in one table.

Each case is appended to an archive holding three events; it must raise a
clear eventkit error (the exact class, the column it names, words of the
problem) and leave every byte of the archive as it was. Decisions recorded
here: an archive stores facts, so an event before its account was opened is
stored and the ``banking`` rules report it in ``violation``; ``event_id`` is at
most 256 bytes and ``event_type`` 64 (``eventkit.archive.MAX_ID_BYTES``,
``MAX_TYPE_BYTES``); valid times lie in 1900..2200.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_archive import THREE, assert_unchanged, batch, snapshot
from test_sources import simple

import eventkit
from eventkit import EventArchive, EventDataError, SchemaError, ValidationError

ANY = object()  # the row is not checked (either of two rows may be named)


@dataclass(frozen=True)
class Case:
    """``make(tmp_path)`` returns what is appended; the error expected, and where."""

    make: Callable[[Path], Any]
    error: type[EventDataError]
    column: str | None
    words: str
    row: object = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    any_types: bool = False  # append to an archive that accepts any event type


def new(change: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Path], pl.DataFrame]:
    """A case that changes the good three-event batch with ids n0..n2."""
    return lambda _: change(batch(THREE, "n"))


def col(name: str, values: list[Any], dtype: Any = None) -> Callable[[Path], pl.DataFrame]:
    return new(lambda b: b.with_columns(pl.Series(name, values, dtype=dtype)))


def _file(write: Callable[[Path], None], mapping: dict[str, Any] | None = None
          ) -> Callable[[Path], pl.LazyFrame]:
    """A case that loads a bad file (or folder) with open_archive and appends it."""
    def make(tmp: Path) -> pl.LazyFrame:
        target = tmp / "in"
        target.mkdir()
        write(target)
        files = sorted(target.iterdir())
        path = files[0] if len(files) == 1 and files[0].suffix == ".parquet" else target
        return eventkit.open_archive(path, mapping=mapping)
    return make


def _truncated(folder: Path) -> None:
    path = folder / "x.parquet"
    simple(50).write_parquet(path)
    path.write_bytes(path.read_bytes()[:-200])


def _types_differ(folder: Path) -> None:
    simple(2).write_parquet(folder / "a.parquet")
    simple(2).with_columns(pl.col("amount").cast(pl.String)).write_parquet(folder / "b.parquet")


T = batch(THREE, "n")["event_time"]
UTC_NOON = datetime(2024, 1, 1, 12, tzinfo=UTC)

CORPUS: dict[str, Case] = {
    # ---- columns missing, extra or of the wrong type
    "missing-event-time": Case(new(lambda b: b.drop("event_time")), SchemaError, "event_time",
                               "missing column"),
    "missing-amount": Case(new(lambda b: b.drop("amount")), SchemaError, "amount",
                           "missing column"),
    "extra-column": Case(new(lambda b: b.with_columns(note=pl.lit("hi"))), SchemaError, "note",
                         "unknown column"),
    "seq-given": Case(col("seq", [7, 8, 9]), SchemaError, "seq", "assigned by the archive"),
    "recorded-at-without-keep": Case(new(lambda b: b.with_columns(recorded_at=pl.col(
        "event_time"))), SchemaError, "recorded_at", "stamped by the archive"),
    "keep-without-recorded-at": Case(new(lambda b: b), SchemaError, "recorded_at",
                                     "needs a recorded_at column",
                                     kwargs={"recorded_at": "keep"}),
    "boolean-amount": Case(col("amount", [True, False, True]), SchemaError, "amount",
                           "Boolean"),
    "list-amount": Case(col("amount", [[1], [2], [3]]), SchemaError, "amount", "List"),
    "struct-account": Case(col("account_id", [{"a": 1}, {"a": 2}, {"a": 3}]), SchemaError,
                           "account_id", "Struct"),
    "text-account": Case(col("account_id", ["1", "one", "2"]), ValidationError, "account_id",
                         "cannot convert", row=1),
    "epoch-without-unit": Case(col("event_time", [1, 2, 3]), SchemaError, "event_time",
                               "time_unit"),
    # ---- nulls in keys and required values
    "null-account": Case(col("account_id", [1, None, 2]), ValidationError, "account_id",
                         "null", row=1),
    "null-event-id": Case(col("event_id", ["p", None, "q"]), ValidationError, "event_id",
                          "null", row=1),
    "null-event-type": Case(col("event_type", ["Deposit", "Fee", None]), ValidationError,
                            "event_type", "null", row=2),
    "null-amount": Case(col("amount", [1, None, 3]), ValidationError, "amount", "null", row=1),
    "null-event-time": Case(col("event_time", [T[0], None, T[2]]), ValidationError,
                            "event_time", "null", row=1),
    # ---- amounts
    "nan-amount": Case(col("amount", [1.0, math.nan, 3.0]), ValidationError, "amount",
                       "NaN or infinite", row=1),
    "infinite-amount": Case(col("amount", [1.0, 2.0, -math.inf]), ValidationError, "amount",
                            "NaN or infinite", row=2),
    "overflowing-amount": Case(col("amount", [1, 2**63 - 1, 3]), ValidationError, "amount",
                               "too large", row=1),
    "overflowing-unsigned-amount": Case(col("amount", [1, 2**64 - 1, 3], pl.UInt64),
                                        ValidationError, "amount", "too large", row=1),
    "float-amount-beyond-exact": Case(col("amount", [1.0, 1e30, 3.0]), ValidationError,
                                      "amount", "too large to be exact", row=1),
    "fractional-cents": Case(col("amount", [100.0, 100.5, 1.0]), ValidationError, "amount",
                             "whole number", row=1),
    "three-decimals": Case(col("amount", [1.25, 12.345, 3.0]), ValidationError, "amount",
                           "more than 2 decimals", row=1,
                           kwargs={"mapping": {"amount_unit": "major"}}),
    "negative-deposit": Case(col("amount", [1, 2, -3]), ValidationError, "amount",
                             "negative amount", row=2),
    # ---- types and ids
    "unknown-event-type": Case(col("event_type", ["Deposit", "Bogus", "Fee"]), ValidationError,
                               "event_type", "unknown event type", row=1),
    "duplicate-ids-in-batch": Case(col("event_id", ["x", "y", "x"]), ValidationError,
                                   "event_id", "duplicate event_id", row=ANY),
    "duplicate-id-in-archive": Case(col("event_id", ["n0", "a1", "n2"]), ValidationError,
                                    "event_id", "already in the archive", row=1),
    "empty-event-id": Case(col("event_id", ["p", "", "q"]), ValidationError, "event_id",
                           "empty event_id", row=1),
    "gigantic-event-id": Case(col("event_id", ["p", "q", "x" * 10_000_000]), ValidationError,
                              "event_id", "longer than 256 bytes", row=2),
    "gigantic-event-type": Case(col("event_type", ["Deposit", "T" * 1_000_000, "Fee"]),
                                ValidationError, "event_type", "longer than 64 bytes", row=1,
                                any_types=True),
    "non-utf8-event-id": Case(col("event_id", [b"ok", b"\xff\xfe", b"q"], pl.Binary),
                              ValidationError, "event_id", "not UTF-8", row=1),
    "nan-rate": Case(col("rate", [None, math.nan, None], pl.Float64), ValidationError, "rate",
                     "NaN or infinite", row=1),
    # ---- times
    "naive-timestamps": Case(new(lambda b: b.with_columns(pl.col("event_time").dt
                                                          .replace_time_zone(None))),
                             SchemaError, "event_time", "assume_timezone"),
    "naive-text-timestamps": Case(col("event_time", ["2024-01-01 10:00:00"] * 3),
                                  ValidationError, "event_time", "zone", row=0),
    "unparseable-timestamp": Case(col("event_time", ["2024-01-01T10:00:00Z", "yesterday",
                                                     "2024-01-02T10:00:00Z"]),
                                  ValidationError, "event_time", "cannot convert", row=1),
    "placeholder-date-9999": Case(col("event_time", [UTC_NOON, datetime(9999, 12, 31,
                                                                        tzinfo=UTC), UTC_NOON]),
                                  ValidationError, "event_time", "outside 1900-2200", row=1),
    "epoch-in-the-wrong-unit": Case(col("event_time", [1_704_067_200, 1_704_067_200_000,
                                                       1_704_067_201]),
                                    ValidationError, "event_time", "cannot convert", row=1,
                                    kwargs={"mapping": {"time_unit": "s"}}),
    "future-recorded-at": Case(new(lambda b: b.with_columns(recorded_at=pl.Series(
        [UTC_NOON, datetime.now(UTC) + timedelta(days=2), UTC_NOON]))), ValidationError,
        "recorded_at", "future", row=1, kwargs={"recorded_at": "keep"}),
    # ---- the batch as a whole
    "empty-batch": Case(new(lambda b: b.clear()), ValidationError, None, "empty batch"),
    "not-a-data-frame": Case(lambda _: {"event_id": ["x"]}, SchemaError, None,
                             "expected a Polars DataFrame"),
    "bad-batch-id": Case(new(lambda b: b), ValidationError, None, "batch_id must be",
                         kwargs={"batch_id": ""}),
    # ---- wrong mappings
    "mapping-names-an-absent-column": Case(new(lambda b: b), SchemaError, "event_type",
                                           "missing column",
                                           kwargs={"mapping": {"event_type": "kind"}}),
    "mapping-unknown-canonical-name": Case(new(lambda b: b), SchemaError, "acount_id",
                                           "unknown column(s) ['acount_id']",
                                           kwargs={"mapping": {"acount_id": "account_id"}}),
    "mapping-unknown-amount-unit": Case(new(lambda b: b), SchemaError, "amount",
                                        "amount_unit", kwargs={"mapping": {
                                            "amount_unit": "cents"}}),
    # ---- bad files, loaded with open_archive
    "truncated-parquet-file": Case(_file(_truncated), EventDataError, None,
                                   "not a readable Parquet file"),
    "csv-named-parquet": Case(_file(lambda d: (d / "x.parquet").write_text("a,b\n1,2\n")),
                              EventDataError, None, "not a readable Parquet file"),
    "column-type-differs-between-files": Case(_file(_types_differ), SchemaError, "amount",
                                              "column type differs"),
    "folder-without-parquet-files": Case(_file(lambda d: (d / "notes.txt").write_text("x")),
                                         EventDataError, None, "no Parquet files"),
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, EventArchive]:
    """Two archives of three events (ids a0..a2): typed (banking types) and open."""
    root = tmp_path_factory.mktemp("corpus")
    out = {}
    for any_types in (False, True):
        archive = EventArchive.create(root / f"bank-{any_types}",
                                      event_types=None if any_types else eventkit.EVENT_TYPES)
        archive.append(batch(THREE, "a"))
        out[any_types] = archive
    return out


def test_the_corpus_has_at_least_twenty_kinds() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("name", CORPUS)
def test_bad_input_is_refused_clearly_and_changes_nothing(
    archives: dict[bool, EventArchive], tmp_path: Path, name: str,
) -> None:
    case = CORPUS[name]
    archive = archives[case.any_types]
    before = snapshot(archive.path)

    with pytest.raises(EventDataError) as info:
        archive.append(case.make(tmp_path), **case.kwargs)

    err = info.value
    assert type(err) is case.error, repr(err)
    assert err.column == case.column, repr(err)
    if case.row is not ANY:
        assert err.row == case.row, repr(err)
    assert case.words in str(err), str(err)
    assert len(str(err)) < 1_000  # a gigantic value is described, never echoed
    assert_unchanged(archive.path, before)
    assert archive.verify().ok


def test_events_before_the_account_opened_are_stored_and_reported_by_banking(
    tmp_path: Path,
) -> None:
    """The archive stores facts; the banking rules refuse to fold what breaks them."""
    archive = EventArchive.create(tmp_path / "bank")
    events = batch([(5, "Deposit", 1_000, 0), (5, "AccountOpened", 0, 10),
                    (5, "Deposit", 2_500, 20), (5, "AccountClosed", 0, 30),
                    (5, "Fee", 100, 40)], "e")

    archive.append(events)

    assert archive.scan().collect().height == 5  # every fact is kept
    result = eventkit.replay(archive, "banking")
    refused = result.violations().collect()
    assert refused["event_id"].to_list() == ["e0", "e4"]  # before opening, after closing
    assert refused["violation"].null_count() == 0
    assert result.state().collect()["balance"].to_list() == [2_500]
    # the balance rules have no status machine: they fold everything
    assert eventkit.replay(archive).state().collect()["balance"].to_list() == [1_000 + 2_500
                                                                             - 100]
