"""Schema evolution on real files: archives and Parquet folders mixing schema versions.

Version 1 wrote amounts as float currency units, version 2 integer cents but the
withdrawal type as "Withdrawl" or "CashOut", version 3 is the canonical shape.
The same history written in any mix of versions must replay exactly as written
in version 3; an unknown version is a clear error naming the file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventkit
from eventkit import EventArchive
from eventkit.archive.storage import versions
from eventkit.sources.upcast import (
    UPCASTERS,
    VERSION_COLUMN,
    VERSION_KEY,
    Upcaster,
    Upcasters,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
OLD_NAMES = {1: "Withdrawl", 2: "CashOut"}


def history(n: int = 60) -> pl.DataFrame:
    """A current-version batch: deposits, withdrawals and fees over three accounts."""
    types = ["Deposit", "Withdrawal", "Fee", "Deposit", "Withdrawal"]
    return pl.DataFrame({
        "event_id": [f"e{i}" for i in range(n)],
        "account_id": [1 + i % 3 for i in range(n)],
        "event_type": [types[i % 5] for i in range(n)],
        "event_time": [START + timedelta(hours=7 * i) for i in range(n)],
        "amount": [(i * 7_919) % 100_000 + 1 for i in range(n)],
    })


def in_version(batch: pl.DataFrame, version: int) -> pl.DataFrame:
    """``batch`` (current shape) as version ``version`` wrote it."""
    if version <= 2:
        batch = batch.with_columns(pl.col("event_type").replace("Withdrawal",
                                                                 OLD_NAMES[version]))
    if version == 1:
        batch = batch.with_columns(pl.col("amount") / 100)
    return batch


def test_an_archive_mixing_versions_replays_as_written_today(tmp_path: Path) -> None:
    batch = history()
    today = EventArchive.create(tmp_path / "today")
    mixed = EventArchive.create(tmp_path / "mixed")
    for i, part in enumerate(batch.iter_slices(12)):
        today.append(part)
        mixed.append(in_version(part, 1 + i % 3), schema_version=1 + i % 3)

    # stored as written: old shapes, the version in the record and the file's metadata
    first = next(mixed.path.glob("part-00000001-*.parquet"))
    stored = pl.read_parquet(first)
    assert stored["amount"].dtype == pl.Float64 and "Withdrawl" in stored["event_type"]
    assert pl.read_parquet_metadata(first)[VERSION_KEY] == "1"
    assert versions(mixed.path)["schema_version"].to_list() == [1, 2, 3, 1, 2]
    assert mixed.verify().ok

    assert mixed.scan().drop("recorded_at").collect().equals(
        today.scan().drop("recorded_at").collect())
    for rules in ("balance", "banking"):
        a = eventkit.replay(mixed, rules).history.drop("recorded_at").collect()
        b = eventkit.replay(today, rules).history.drop("recorded_at").collect()
        assert a.equals(b)
    # compaction merges only files of one version; answers stay the same
    eventkit.compact(mixed)
    assert mixed.verify().ok
    assert mixed.scan().drop("recorded_at").collect().equals(
        today.scan().drop("recorded_at").collect())


def test_an_old_batch_is_checked_in_its_upcast_shape(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    batch = in_version(history(4), 1)
    with pytest.raises(eventkit.ValidationError, match="not a whole number") as err:
        archive.append(batch.with_columns(pl.col("amount") + 0.001), schema_version=1)
    assert (err.value.column, err.value.row) == ("amount", 0)
    with pytest.raises(eventkit.ValidationError, match="unknown event type"):
        archive.append(batch.with_columns(event_type=pl.lit("Payout")), schema_version=1)
    with pytest.raises(eventkit.SchemaVersionError, match="version 7 is unknown"):
        archive.append(batch, schema_version=7)
    assert archive.version == 0  # nothing was written


def test_a_file_of_an_unknown_version_is_named(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(history(6))
    UPCASTERS.register(Upcaster(0, event_types={"Payout": "Withdrawl"}))
    try:
        archive.append(history(6).with_columns(pl.col("event_id") + "x",
                                               pl.col("amount") / 100), schema_version=0)
    finally:
        UPCASTERS._steps.pop(0)
    # this eventkit no longer knows version 0: reads fail naming the file, never guess
    with pytest.raises(eventkit.SchemaVersionError, match="version 0 is unknown") as err:
        archive.scan()
    assert "part-00000002-" in str(err.value.source)
    with pytest.raises(eventkit.SchemaVersionError):
        eventkit.replay(archive.path).state().collect()


def test_a_parquet_folder_mixing_versions(tmp_path: Path) -> None:
    batch = history()
    (tmp_path / "mixed").mkdir()
    for i, part in enumerate(batch.drop("event_id").iter_slices(20)):
        version = 1 + i
        marker = {VERSION_KEY: str(version)} if version < 3 else None  # v3: no marker
        in_version(part, version).write_parquet(tmp_path / "mixed" / f"{i}.parquet",
                                                metadata=marker)
    batch.drop("event_id").write_parquet(tmp_path / "today.parquet")
    a = eventkit.open_archive(tmp_path / "mixed").collect()
    b = eventkit.open_archive(tmp_path / "today.parquet").collect()
    assert a.drop("event_id").equals(b.drop("event_id"))
    assert a["event_id"][0] == "0.parquet:0"  # ids and seq still from the files as they are
    assert eventkit.replay(tmp_path / "mixed", "banking").state().collect().equals(
        eventkit.replay(tmp_path / "today.parquet", "banking").state().collect())


def test_a_version_column_and_a_mapping(tmp_path: Path) -> None:
    """Foreign rows carry their version; upcasters see canonical names."""
    batch = history(30)
    rows = pl.concat([in_version(part, v).with_columns(pl.lit(v).alias(VERSION_COLUMN),
                                                        pl.col("amount").cast(pl.Float64))
                      for v, part in zip((1, 2, 3), batch.iter_slices(10), strict=True)])
    rows = rows.rename({"account_id": "acct", "amount": "amt"})
    rows.write_parquet(tmp_path / "rows.parquet")
    mapping = {"account_id": "acct", "amount": "amt"}
    got = eventkit.open_archive(tmp_path / "rows.parquet", mapping=mapping).collect()
    want = eventkit.open_archive(tmp_path / "rows.parquet", mapping=mapping, validate=False)
    assert VERSION_COLUMN not in got.columns
    assert got.select("event_type", "amount").equals(batch.select("event_type", "amount"))
    assert want.collect().equals(got)
    assert versions(tmp_path)["schema_version"].to_list() == [None]
    rows.with_columns(pl.lit(9).alias(VERSION_COLUMN)).write_parquet(tmp_path / "rows.parquet")
    with pytest.raises(eventkit.SchemaVersionError, match="version 9") as err:
        eventkit.open_archive(tmp_path / "rows.parquet", mapping=mapping)
    assert err.value.source.endswith("rows.parquet")


def test_an_unknown_file_version_in_a_folder_is_named(tmp_path: Path) -> None:
    history(4).write_parquet(tmp_path / "a.parquet")
    history(4).with_columns(pl.col("event_id") + "b").write_parquet(
        tmp_path / "b.parquet", metadata={VERSION_KEY: "4"})
    with pytest.raises(eventkit.SchemaVersionError, match="version 4 is unknown") as err:
        eventkit.open_archive(tmp_path)
    assert err.value.source.endswith("b.parquet")
    with pytest.raises(eventkit.SchemaVersionError, match="not a version number"):
        history(4).write_parquet(tmp_path / "b.parquet", metadata={VERSION_KEY: "four"})
        eventkit.open_archive(tmp_path)


def test_own_registry_for_foreign_data(tmp_path: Path) -> None:
    mine = Upcasters(current=2, steps=(Upcaster(1, event_types={"Buy": "Deposit"}),))
    pl.DataFrame({"account_id": [1], "event_type": ["Buy"], "amount": [5],
                  "event_time": [START]}).write_parquet(tmp_path / "a.parquet",
                                                        metadata={VERSION_KEY: "1"})
    pl.DataFrame({"account_id": [1], "event_type": ["Deposit"], "amount": [7],
                  "event_time": [START]}).write_parquet(tmp_path / "b.parquet",
                                                        metadata={VERSION_KEY: "2"})
    got = eventkit.open_archive(tmp_path, upcasters=mine).collect()
    assert got["event_type"].to_list() == ["Deposit", "Deposit"]
    with pytest.raises(eventkit.SchemaError, match="cannot lead"):
        mine.register(Upcaster(2))


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=6),
       size=st.integers(1, 25))
def test_any_mix_of_versions_replays_the_same(tmp_path_factory: pytest.TempPathFactory,
                                              plan: list[int], size: int) -> None:
    root = tmp_path_factory.mktemp("mix")
    batch = history(size * len(plan))
    mixed = EventArchive.create(root / "mixed")
    for version, part in zip(plan, batch.iter_slices(size), strict=False):
        mixed.append(in_version(part, version), schema_version=version)
    got = eventkit.replay(mixed, "banking", snapshots=False).history.drop("recorded_at")
    want = eventkit.replay(batch.with_columns(
        seq=pl.int_range(pl.len(), dtype=pl.Int64), recorded_at=pl.col("event_time")),
        "banking").history.drop("recorded_at")
    got, want = got.collect(), want.collect()  # (the batch has no counterparty_id, rate)
    assert got.select(want.columns).equals(want)
    assert got.select(pl.col("counterparty_id", "rate").null_count()).row(0) == (got.height,) * 2
