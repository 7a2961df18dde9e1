"""Loaders: ``eventkit.open_archive`` on every layout, and every way input can be wrong.

``tests/data/seed_transactions.parquet`` is the seed's layout (int ``accountId``,
float ``amount`` in currency units, int epoch-second ``timestamp``). Rebuild it
from the repository root with::

    import polars as pl

    t0 = 1702468800  # 2023-12-13 12:00:00 UTC
    rows = [  # (accountId, amount in currency units, seconds after t0)
        (1, 100.0, 0), (2, 250.5, 3600), (1, -20.0, 7200), (3, 1000.0, 7200),
        (2, -0.01, 10800), (1, 0.1, 14400), (1, 0.2, 14400), (3, -999.99, 18000),
        (2, -250.49, 21600), (1, 19.99, 86400), (3, 0.07, 90000), (1, -140.29, 93600),
        (2, -5.0, 97200), (3, 12345.67, 100800), (1, 40.0, -3600),
    ]
    pl.DataFrame(
        {"accountId": [r[0] for r in rows], "amount": [r[1] for r in rows],
         "timestamp": [t0 + r[2] for r in rows]},
        schema={"accountId": pl.Int64, "amount": pl.Float64, "timestamp": pl.Int64},
    ).write_parquet("tests/data/seed_transactions.parquet")

The last row lies *before* all others in time (replay must sort by time, not by
file order), two rows of account 1 share a timestamp, and 0.1/0.2/0.07/19.99 are
the classic float traps. Final balances: account 1 0.00, account 2 -5.00,
account 3 12345.75.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import make_events
from deltalake import write_deltalake
from polars.testing import assert_frame_equal

import eventkit
from eventkit import EventDataError, SchemaError, ValidationError
from eventkit.schema import CANONICAL_SCHEMA, EventSchema

SEED = Path(__file__).resolve().parent / "data" / "seed_transactions.parquet"
SEED_MAPPING = {"account_id": "accountId", "event_time": "timestamp",
                "amount_unit": "major", "time_unit": "s"}
T0 = datetime(2023, 12, 13, 12, tzinfo=UTC)  # 1702468800
JAN1 = datetime(2024, 1, 1, tzinfo=UTC)

#: (accountId, amount in cents, seconds after T0), exactly as written in the seed file.
SEED_ROWS = [
    (1, 10_000, 0), (2, 25_050, 3600), (1, -2_000, 7200), (3, 100_000, 7200),
    (2, -1, 10800), (1, 10, 14400), (1, 20, 14400), (3, -99_999, 18000),
    (2, -25_049, 21600), (1, 1_999, 86400), (3, 7, 90000), (1, -14_029, 93600),
    (2, -500, 97200), (3, 1_234_567, 100800), (1, 4_000, -3600),
]


def simple(n: int = 2, *, first_id: int = 0, **extra: list[Any]) -> pl.DataFrame:
    """A foreign frame with the three required columns (plus ``extra`` ones)."""
    return pl.DataFrame({
        "account_id": [1 + i % 2 for i in range(n)],
        "amount": [100 * (i + 1) for i in range(n)],
        "event_time": [JAN1 + timedelta(hours=first_id + i) for i in range(n)],
        **extra,
    })


def raises_at(exc_type: type[EventDataError], path: str | Path, *, column: str | None,
              row: int | None, **kwargs: Any) -> EventDataError:
    """Open (and collect) ``path``; assert the error type and where it points."""
    with pytest.raises(exc_type) as info:
        eventkit.open_archive(path, **kwargs).collect()
    err = info.value
    assert err.source == str(path), err
    assert err.column == column, err
    assert err.row == row, err
    return err


# ---------------------------------------------------------------------- the seed file


def test_seed_file_maps_to_exact_cents_types_and_utc_times() -> None:
    events = eventkit.open_archive(SEED, mapping=SEED_MAPPING).collect()

    assert events.schema == pl.Schema(CANONICAL_SCHEMA)
    assert events["amount"].to_list() == [abs(c) for _, c, _ in SEED_ROWS]
    assert events["event_type"].to_list() == [
        "Withdrawal" if c < 0 else "Deposit" for _, c, _ in SEED_ROWS]
    assert events["account_id"].to_list() == [a for a, _, _ in SEED_ROWS]
    assert events["event_time"].to_list() == [T0 + timedelta(seconds=s) for *_, s in SEED_ROWS]
    assert events["event_time"].dtype == pl.Datetime("us", "UTC")
    assert events["recorded_at"].to_list() == events["event_time"].to_list()
    # derived: ids name the file and row, seq is the scan position
    assert events["event_id"].to_list() == [
        f"seed_transactions.parquet:{i}" for i in range(len(SEED_ROWS))]
    assert events["seq"].to_list() == list(range(len(SEED_ROWS)))
    assert events["counterparty_id"].null_count() == len(SEED_ROWS)
    assert events["rate"].null_count() == len(SEED_ROWS)


def test_seed_file_replays_to_hand_computed_balances() -> None:
    result = eventkit.replay(eventkit.open_archive(SEED, mapping=SEED_MAPPING))

    state = result.state().collect()
    assert state.select("account_id", "balance", "events").rows() == [
        (1, 0, 7), (2, -500, 4), (3, 1_234_575, 4)]
    # account 1 in time order: the out-of-order last row (+40.00) comes first, the
    # tie at T0+4h is broken by seq (+0.10 then +0.20)
    history = result.history.filter(pl.col("account_id") == 1).sort("event_time", "seq").collect()
    assert history["balance"].to_list() == [4_000, 14_000, 12_000, 12_010, 12_030, 14_029, 0]
    # as of 14:00 UTC on the first day (inclusive)
    as_of = result.as_of("2023-12-13T14:00:00Z").collect()
    assert as_of.select("account_id", "balance").rows() == [
        (1, 12_000), (2, 25_050), (3, 100_000)]
    assert result.as_of("2023-12-13T10:59:59Z").collect().height == 0


def test_seed_mapping_as_a_column_mapping_object_gives_the_same_events() -> None:
    mapping = eventkit.ColumnMapping(columns={"account_id": "accountId",
                                              "event_time": "timestamp"},
                                     amount_unit="major", time_unit="s")
    assert_frame_equal(eventkit.open_archive(SEED, mapping=mapping).collect(),
                       eventkit.open_archive(SEED, mapping=SEED_MAPPING).collect())


# ---------------------------------------------------------------------- layouts


def test_single_canonical_parquet_file_round_trips(tmp_path: Path) -> None:
    events = make_events([(1, "Deposit", 500, 0), (2, "Fee", 25, 1), (1, "Correction", -7, 2)])
    events.write_parquet(tmp_path / "events.parquet")

    assert_frame_equal(eventkit.open_archive(tmp_path / "events.parquet").collect(), events)


def test_folder_of_files_in_name_order_with_derived_ids_and_seq(tmp_path: Path) -> None:
    simple(2).write_parquet(tmp_path / "b.parquet")
    simple(3, first_id=10).write_parquet(tmp_path / "a.parquet")
    # hidden and underscore files (writers' temp files) are not events
    simple(1).write_parquet(tmp_path / "_tmp.parquet")
    (tmp_path / ".staging").mkdir()
    simple(1).write_parquet(tmp_path / ".staging" / "c.parquet")
    (tmp_path / "notes.txt").write_text("not parquet")

    events = eventkit.open_archive(tmp_path).collect()

    assert events["event_id"].to_list() == ["a.parquet:0", "a.parquet:1", "a.parquet:2",
                                            "b.parquet:0", "b.parquet:1"]
    assert events["seq"].to_list() == [0, 1, 2, 3, 4]
    assert events["amount"].to_list() == [100, 200, 300, 100, 200]


def test_nested_folders_are_read_recursively(tmp_path: Path) -> None:
    (tmp_path / "2024" / "01").mkdir(parents=True)
    simple(2).write_parquet(tmp_path / "2024" / "01" / "x.parquet")
    simple(1, first_id=5).write_parquet(tmp_path / "top.parquet")

    assert eventkit.open_archive(tmp_path).collect().height == 3


def test_hive_partitions_become_an_extra_column(tmp_path: Path) -> None:
    for i, day in enumerate(("2024-01-01", "2024-01-02")):
        folder = tmp_path / f"day={day}"
        folder.mkdir()
        simple(2, event_id=[f"{day}/0", f"{day}/1"]).with_columns(
            event_time=pl.lit(JAN1 + timedelta(days=i))).write_parquet(folder / "part.parquet")

    events = eventkit.open_archive(tmp_path).collect()

    assert events.columns == [*CANONICAL_SCHEMA, "day"]
    assert [str(d) for d in events["day"]] == ["2024-01-01"] * 2 + ["2024-01-02"] * 2
    assert events["event_id"].to_list() == ["2024-01-01/0", "2024-01-01/1",
                                            "2024-01-02/0", "2024-01-02/1"]
    assert events["seq"].to_list() == [0, 1, 2, 3]


def test_hive_partitions_with_same_file_names_get_distinct_derived_ids(tmp_path: Path) -> None:
    for day in ("2024-01-01", "2024-01-02"):
        (tmp_path / f"day={day}").mkdir()
        simple(2).write_parquet(tmp_path / f"day={day}" / "part.parquet")

    events = eventkit.open_archive(tmp_path).collect()

    assert events["event_id"].n_unique() == 4


def test_glob_selects_only_matching_files(tmp_path: Path) -> None:
    simple(2).write_parquet(tmp_path / "export-1.parquet")
    simple(3, first_id=2).write_parquet(tmp_path / "export-2.parquet")
    simple(4).write_parquet(tmp_path / "other.parquet")

    events = eventkit.open_archive(str(tmp_path / "export-*.parquet")).collect()

    assert events.height == 5
    assert events["event_id"].to_list()[-1] == "export-2.parquet:2"


def test_third_party_delta_table_with_mapping(tmp_path: Path) -> None:
    table = tmp_path / "delta"
    foreign = pl.DataFrame({
        "txn": ["x1", "x2", "x3"], "acct": [4, 4, 9], "kind": ["Deposit", "Fee", "Deposit"],
        "value": [1_000, 250, 5], "ts": [JAN1, JAN1 + timedelta(days=1), JAN1],
    })
    write_deltalake(str(table), foreign.to_arrow())
    write_deltalake(str(table), foreign.with_columns(txn=pl.col("txn") + "b").to_arrow(),
                    mode="append")
    mapping = {"event_id": "txn", "account_id": "acct", "event_type": "kind",
               "amount": "value", "event_time": "ts"}

    events = eventkit.open_archive(table, mapping=mapping).collect()

    assert events.schema == pl.Schema(CANONICAL_SCHEMA)
    assert sorted(events["event_id"]) == ["x1", "x1b", "x2", "x2b", "x3", "x3b"]
    assert sorted(events["seq"]) == list(range(6))
    balances = eventkit.replay(events).state().collect()
    assert balances.select("account_id", "balance").rows() == [(4, 1_500), (9, 10)]


def test_third_party_delta_table_errors_name_the_table(tmp_path: Path) -> None:
    table = tmp_path / "delta"
    write_deltalake(str(table), simple(3, amount=[1.0, math.nan, 3.0]).to_arrow())

    raises_at(ValidationError, table, column="amount", row=1)


def test_eventkit_archive_opens_as_stored(tmp_path: Path) -> None:
    archive = eventkit.EventArchive.create(tmp_path / "bank")
    archive.append(make_events([(1, "Deposit", 500, 0), (2, "Fee", 25, 1)]).drop("seq"),
                   recorded_at="keep")

    assert_frame_equal(eventkit.open_archive(tmp_path / "bank").collect(),
                       archive.scan().collect())
    with pytest.raises(SchemaError):
        eventkit.open_archive(tmp_path / "bank", mapping={"amount_unit": "major"})


# ---------------------------------------------------------------------- bad input


def test_missing_column_lists_the_available_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.read_parquet(SEED).write_parquet(path)

    err = raises_at(SchemaError, path, column="account_id", row=None,
                    mapping={"event_time": "timestamp", "time_unit": "s"})

    assert "accountId" in str(err) and "timestamp" in str(err) and "amount" in str(err)


def test_missing_mapped_column_names_the_users_name(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.read_parquet(SEED).write_parquet(path)

    err = raises_at(SchemaError, path, column="account_id", row=None,
                    mapping={**SEED_MAPPING, "account_id": "acctId"})

    assert "acctId" in str(err) and "accountId" in str(err)


def test_mapping_naming_an_absent_optional_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(2, kind=["Fee", "Fee"]).write_parquet(path)

    # a typo: the column is "kind"; the Fees must not silently turn into Deposits
    raises_at(SchemaError, path, column="event_type", row=None,
              mapping={"event_type": "knd"})


def test_column_missing_from_one_file_of_a_folder_names_that_file(tmp_path: Path) -> None:
    simple(2).write_parquet(tmp_path / "a.parquet")
    simple(2).drop("amount").write_parquet(tmp_path / "b.parquet")

    with pytest.raises(EventDataError) as info:
        eventkit.open_archive(tmp_path).collect()

    assert info.value.source == str(tmp_path / "b.parquet")
    assert info.value.column == "amount"
    assert info.value.row == 0


def test_column_present_in_only_some_files_is_not_silently_dropped(tmp_path: Path) -> None:
    simple(1).write_parquet(tmp_path / "a.parquet")
    simple(1, first_id=1, event_type=["Fee"]).write_parquet(tmp_path / "b.parquet")

    # The column exists, so it is read from every file: the file without it is named.
    with pytest.raises(ValidationError) as info:
        eventkit.open_archive(tmp_path).collect()
    assert info.value.source == str(tmp_path / "a.parquet")
    assert (info.value.column, info.value.row) == ("event_type", 0)


def test_unconvertible_amount_names_file_column_and_row(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(4, first_id=0).with_columns(amount=pl.Series(["1.50", "2", "abc", "4"])
                                       ).write_parquet(path)

    err = raises_at(ValidationError, path, column="amount", row=2,
                    mapping={"amount_unit": "major"})

    assert "abc" in str(err)


def test_text_account_ids_stay_text_unless_the_schema_says_integers(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(3).with_columns(account_id=pl.Series(["C1231006815", "8", "eight"])
                           ).write_parquet(path)
    # text ids are keys as good as integers (a mobile-money log, UUIDs)
    events = eventkit.open_archive(path).collect()
    assert events.schema["account_id"] == pl.String
    assert events["account_id"].to_list() == ["C1231006815", "8", "eight"]
    assert eventkit.replay(events).state().collect()["account_id"].to_list() == [
        "8", "C1231006815", "eight"]
    # a schema that declares integer ids refuses the one that is not, naming the row
    ints = EventSchema.declare(key="account_id", columns={"account_id": "int",
                                                          "amount": "money"})
    path.unlink()
    simple(3).with_columns(account_id=pl.Series(["7", "8", "eight"])).write_parquet(path)
    err = raises_at(ValidationError, path, column="account_id", row=2, schema=ints)
    assert "an integer (a key)" in str(err) and "eight" in str(err)


def test_fractional_account_id_is_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(3).with_columns(account_id=pl.Series([7.0, 7.5, 8.0])).write_parquet(path)

    raises_at(ValidationError, path, column="account_id", row=1)


def test_null_key_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(3).with_columns(account_id=pl.Series([1, 2, None])).write_parquet(path)

    err = raises_at(ValidationError, path, column="account_id", row=2)

    assert "null" in str(err)


def test_null_event_time_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(3).with_columns(event_time=pl.Series([JAN1, None, JAN1])).write_parquet(path)

    raises_at(ValidationError, path, column="event_time", row=1)


def test_duplicate_event_id_across_files_gives_the_row_within_the_file(
    tmp_path: Path,
) -> None:
    simple(2, event_id=["e1", "e2"]).write_parquet(tmp_path / "a.parquet")
    simple(3, event_id=["e3", "e4", "e2"]).write_parquet(tmp_path / "b.parquet")

    with pytest.raises(ValidationError) as info:
        eventkit.open_archive(tmp_path).collect()

    err = info.value
    assert err.column == "event_id"
    assert "'e2'" in str(err)
    # either occurrence may be named, but always with its row inside its own file
    assert (err.source, err.row) in {(str(tmp_path / "a.parquet"), 1),
                                     (str(tmp_path / "b.parquet"), 2)}


def test_duplicate_event_id_within_a_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(4, event_id=["a", "b", "c", "b"]).write_parquet(path)

    with pytest.raises(ValidationError) as info:
        eventkit.open_archive(path).collect()

    assert (info.value.source, info.value.column) == (str(path), "event_id")
    assert info.value.row in (1, 3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("unit", ["major", "minor"])
def test_nan_and_infinite_amounts_are_rejected(tmp_path: Path, bad: float, unit: str) -> None:
    path = tmp_path / "x.parquet"
    simple(3).with_columns(amount=pl.Series([1.0, 2.0, bad])).write_parquet(path)

    err = raises_at(ValidationError, path, column="amount", row=2,
                    mapping={"amount_unit": unit})

    assert "NaN or infinite" in str(err)


def test_amount_with_three_decimals_in_major_units_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(3).with_columns(amount=pl.Series([1.25, 12.345, 3.0])).write_parquet(path)

    err = raises_at(ValidationError, path, column="amount", row=1,
                    mapping={"amount_unit": "major"})

    assert "more than 2 decimals" in str(err)


@pytest.mark.parametrize("bad", [10_000.005, 1_000_000.125, 12_345_678_901.234])
def test_large_amount_with_three_decimals_is_rejected(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "x.parquet"
    simple(1).with_columns(amount=pl.Series([bad])).write_parquet(path)

    raises_at(ValidationError, path, column="amount", row=0, mapping={"amount_unit": "major"})


def test_large_exact_major_amounts_convert_exactly(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    values = [10_000.01, 1_000_000.99, 12_345_678_901.23, -0.07, 0.29, 1.15]
    simple(len(values)).with_columns(amount=pl.Series(values)).write_parquet(path)

    events = eventkit.open_archive(path, mapping={"amount_unit": "major"}).collect()

    assert events["amount"].to_list() == [1_000_001, 100_000_099, 1_234_567_890_123, 7, 29, 115]
    assert events["event_type"].to_list() == ["Deposit"] * 3 + ["Withdrawal"] + ["Deposit"] * 2


def test_fractional_minor_units_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(2).with_columns(amount=pl.Series([100.0, 100.5])).write_parquet(path)

    err = raises_at(ValidationError, path, column="amount", row=1)

    assert "whole number" in str(err)


def test_naive_datetimes_are_rejected_without_assume_timezone(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(2).with_columns(pl.col("event_time").dt.replace_time_zone(None)).write_parquet(path)

    err = raises_at(SchemaError, path, column="event_time", row=None)
    assert "assume_timezone" in str(err)

    events = eventkit.open_archive(path, mapping={"assume_timezone": "Europe/Paris"}).collect()
    # midnight in Paris in January is 23:00 UTC the day before
    assert events["event_time"].to_list() == [JAN1 - timedelta(hours=1), JAN1]


def test_string_timestamps_with_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(2).with_columns(event_time=pl.Series(["2024-01-01T10:00:00+02:00",
                                                 "2024-01-01T10:00:00Z"])).write_parquet(path)

    events = eventkit.open_archive(path).collect()

    assert events["event_time"].to_list() == [JAN1 + timedelta(hours=8),
                                              JAN1 + timedelta(hours=10)]


def test_naive_string_timestamps_are_rejected_without_assume_timezone(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(1).with_columns(event_time=pl.Series(["2024-01-01 10:00:00"])).write_parquet(path)

    with pytest.raises(EventDataError) as info:
        eventkit.open_archive(path).collect()

    assert info.value.source == str(path)
    assert info.value.column == "event_time"


def test_naive_string_timestamps_honour_assume_timezone(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(1).with_columns(event_time=pl.Series(["2024-01-01 10:00:00"])).write_parquet(path)

    events = eventkit.open_archive(path, mapping={"assume_timezone": "Europe/Paris"}).collect()

    assert events["event_time"].to_list() == [JAN1 + timedelta(hours=9)]


def test_unparseable_string_timestamp_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(2).with_columns(event_time=pl.Series(["2024-01-01T10:00:00Z", "yesterday"])
                           ).write_parquet(path)

    raises_at(ValidationError, path, column="event_time", row=1)


def test_integer_timestamps_need_a_time_unit(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.read_parquet(SEED).write_parquet(path)

    err = raises_at(SchemaError, path, column="event_time", row=None,
                    mapping={"account_id": "accountId", "event_time": "timestamp"})

    assert "time_unit" in str(err)


@pytest.mark.parametrize(("unit", "scale"), [("ms", 1_000), ("us", 1_000_000),
                                             ("ns", 1_000_000_000)])
def test_integer_timestamp_units(tmp_path: Path, unit: str, scale: int) -> None:
    path = tmp_path / "x.parquet"
    simple(1).with_columns(event_time=pl.Series([1_702_468_800 * scale])).write_parquet(path)

    events = eventkit.open_archive(path, mapping={"time_unit": unit}).collect()

    assert events["event_time"].to_list() == [T0]


NS = 1_702_468_800 * 10**9 + 1_000  # T0 and a microsecond, in nanoseconds


@pytest.mark.parametrize(("form", "mapping"), [
    ("datetime", {}), ("epoch", {"time_unit": "ns"}), ("text", {})])
def test_nanoseconds_are_never_cut_off_without_a_word(tmp_path: Path, form: str,
                                                      mapping: dict[str, str]) -> None:
    """A whole number of microseconds is kept exactly; a time with nanoseconds is refused."""
    def written(nanos: list[int]) -> Path:
        values = pl.Series(nanos)
        column = {"datetime": values.cast(pl.Datetime("ns", "UTC")), "epoch": values,
                  "text": values.cast(pl.Datetime("ns", "UTC")).dt.to_string(
                      "%Y-%m-%dT%H:%M:%S.%9fZ")}[form]
        path = tmp_path / f"{len(nanos)}-{nanos[-1]}.parquet"
        simple(len(nanos)).with_columns(event_time=column).write_parquet(path)
        return path

    kept = eventkit.open_archive(written([NS, NS]), mapping=mapping).collect()
    assert kept["event_time"].to_list() == [T0 + timedelta(microseconds=1)] * 2
    err = raises_at(ValidationError, written([NS, NS + 999]), column="event_time", row=1,
                    mapping=mapping)
    assert "keeps microseconds" in str(err)


def test_out_of_range_integer_timestamps_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(2).with_columns(event_time=pl.Series([1_702_468_800, 2**62])).write_parquet(path)

    raises_at(ValidationError, path, column="event_time", row=1, mapping={"time_unit": "s"})


def test_unknown_mapping_key_is_a_schema_error_listing_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(1).write_parquet(path)

    with pytest.raises(SchemaError) as info:
        eventkit.open_archive(path, mapping={"acount_id": "accountId"})

    assert info.value.column == "acount_id"
    assert "account_id" in str(info.value)


@pytest.mark.parametrize(("mapping", "column"), [({"amount_unit": "cents"}, "amount"),
                                                 ({"time_unit": "h"}, "event_time")])
def test_bad_mapping_options_are_schema_errors(tmp_path: Path, mapping: dict[str, str],
                                               column: str) -> None:
    path = tmp_path / "x.parquet"
    simple(1).write_parquet(path)

    with pytest.raises(SchemaError) as info:
        eventkit.open_archive(path, mapping=mapping)

    assert info.value.column == column


def test_non_existent_path(tmp_path: Path) -> None:
    raises_at(EventDataError, tmp_path / "nope.parquet", column=None, row=None)


def test_glob_without_matches(tmp_path: Path) -> None:
    raises_at(EventDataError, str(tmp_path / "*.parquet"), column=None, row=None)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no events here")

    err = raises_at(EventDataError, tmp_path / "empty", column=None, row=None)

    assert "no Parquet files" in str(err)


def test_truncated_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(50).write_parquet(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    raises_at(EventDataError, path, column=None, row=None)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_text("account_id,amount\n1,2\n")

    raises_at(EventDataError, path, column=None, row=None)


@pytest.mark.parametrize("damaged", ["a.parquet", "b.parquet"])
def test_truncated_parquet_file_in_a_folder_is_named(tmp_path: Path, damaged: str) -> None:
    simple(50).write_parquet(tmp_path / "a.parquet")
    simple(50, first_id=50).write_parquet(tmp_path / "b.parquet")
    path = tmp_path / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with pytest.raises(EventDataError) as info:
        eventkit.open_archive(tmp_path).collect()

    assert info.value.source == str(path)


def test_validate_false_skips_the_scan_but_keeps_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    simple(2, event_id=["same", "same"]).write_parquet(path)

    events = eventkit.open_archive(path, validate=False).collect()

    assert events.height == 2
    assert events.schema == pl.Schema(CANONICAL_SCHEMA)
