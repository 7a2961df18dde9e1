from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from eventkit.archive.table import EventArchive
from eventkit.banking.generate import GenerateSummary, generate, generate_chunks
from eventkit.exceptions import ArchiveError
from eventkit.schema import BANK_ACCOUNT, CANONICAL_SCHEMA, EVENT_TYPES, MONEY_EVENT_TYPES

ARGS: dict[str, Any] = {"events": 20_000, "accounts": 300, "seed": 11, "chunk_events": 6_000}
START, END = datetime(2023, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def chunks() -> list[pl.DataFrame]:
    return list(generate_chunks(**ARGS))


@pytest.fixture(scope="module")
def log(chunks: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(chunks)


def test_chunks_have_the_canonical_schema(chunks: list[pl.DataFrame]) -> None:
    assert len(chunks) == 4
    for chunk in chunks:
        assert chunk.schema == pl.Schema(CANONICAL_SCHEMA)
        assert chunk.height > 0


def test_row_count_seq_and_ids(chunks: list[pl.DataFrame], log: pl.DataFrame) -> None:
    assert log.height == ARGS["events"]
    assert log["seq"].to_list() == list(range(ARGS["events"]))
    assert chunks[1]["seq"][0] == chunks[0].height
    assert log["event_id"].n_unique() == log.height
    assert log["event_id"][:2].to_list() == ["e000000000000", "e000000000001"]
    assert log["event_id"].is_sorted()


def test_log_order_and_time_bounds(log: pl.DataFrame) -> None:
    assert log["recorded_at"].is_sorted()
    for column in ("event_time", "recorded_at"):
        assert log[column].min() >= START
        assert log[column].max() < END


def test_same_arguments_same_data_other_seed_other_data(chunks: list[pl.DataFrame]) -> None:
    for again, first in zip(generate_chunks(**ARGS), chunks, strict=True):
        assert_frame_equal(again, first)
    other = pl.concat(generate_chunks(**{**ARGS, "seed": 12}))
    assert other.height == ARGS["events"]
    assert not other.equals(pl.concat(chunks))


def test_event_mix(log: pl.DataFrame) -> None:
    counts = dict(log["event_type"].value_counts().iter_rows())
    # every type but the stored overdraft limits, which only commands write
    assert set(counts) == set(EVENT_TYPES) - {"OverdraftLimitSet"}
    assert counts["AccountOpened"] == ARGS["accounts"]
    assert 0 < counts["AccountClosed"] < ARGS["accounts"] // 10
    assert counts["Deposit"] > counts["Withdrawal"] > counts["Fee"]
    assert counts["TransferOut"] == counts["TransferIn"]
    assert 0 < counts["Correction"] < ARGS["events"] // 200


def test_no_event_outside_an_accounts_life(log: pl.DataFrame) -> None:
    life = log.group_by("account_id").agg(
        opened=pl.col("event_time").filter(pl.col("event_type") == "AccountOpened").first(),
        opened_seq=pl.col("seq").filter(pl.col("event_type") == "AccountOpened").first(),
        closed=pl.col("event_time").filter(pl.col("event_type") == "AccountClosed").first(),
        closed_seq=pl.col("seq").filter(pl.col("event_type") == "AccountClosed").first(),
    ).filter(pl.col("account_id") != BANK_ACCOUNT)
    assert sorted(life["account_id"]) == list(range(1, ARGS["accounts"] + 1))
    assert life["opened"].null_count() == 0
    assert life["opened"].max() < START + (END - START) * 0.7
    activity = log.join(life, on="account_id").filter(
        ~pl.col("event_type").is_in(["AccountOpened", "AccountClosed"]))
    assert activity.filter(pl.col("event_time") <= pl.col("opened")).height == 0
    assert activity.filter(pl.col("seq") < pl.col("opened_seq")).height == 0
    assert activity.filter(pl.col("event_time") >= pl.col("closed")).height == 0
    assert activity.filter(pl.col("seq") > pl.col("closed_seq")).height == 0


def test_transfer_legs_match_and_are_adjacent(log: pl.DataFrame) -> None:
    pairs = log.with_columns(pl.all().shift(-1).name.suffix("_next")).filter(
        pl.col("event_type") == "TransferOut")
    assert pairs.height > 0
    assert (pairs["event_type_next"] == "TransferIn").all()
    assert (pairs["account_id_next"] == pairs["counterparty_id"]).all()
    assert (pairs["counterparty_id_next"] == pairs["account_id"]).all()
    assert (pairs["account_id"] != pairs["counterparty_id"]).all()
    for column in ("amount", "event_time", "recorded_at"):
        assert (pairs[f"{column}_next"] == pairs[column]).all()
    transfers = pl.col("event_type").is_in(["TransferOut", "TransferIn"])
    assert log.filter(transfers)["counterparty_id"].null_count() == 0
    assert log.filter(~transfers)["counterparty_id"].null_count() == log.filter(~transfers).height


def test_latency_and_late_corrections(log: pl.DataFrame) -> None:
    lag = pl.col("recorded_at") - pl.col("event_time")
    corrections = log.filter(pl.col("event_type") == "Correction")
    assert corrections.height > 0
    assert corrections.select((lag > timedelta(0)).all()).item()
    assert corrections.select((lag >= timedelta(days=1)).mean()).item() > 0.9
    assert (corrections["amount"] != 0).all()
    assert (corrections["amount"] < 0).any()
    others = log.filter(pl.col("event_type") != "Correction")
    assert others.select(lag.min()).item() >= timedelta(0)
    assert others.select(lag.max()).item() <= timedelta(seconds=5)


def test_rate_changes_on_the_bank_account(log: pl.DataFrame) -> None:
    bank = log.filter(pl.col("account_id") == BANK_ACCOUNT)
    assert 6 <= bank.height <= 40
    assert (bank["event_type"] == "InterestRateChanged").all()
    assert bank["rate"].null_count() == 0
    assert bank["rate"].is_between(0.0, 0.1).all()
    assert bank["event_time"][0] == START
    assert (bank["amount"] == 0).all()
    assert log.filter(pl.col("account_id") != BANK_ACCOUNT)["rate"].null_count() \
        == log.height - bank.height


def test_amounts(log: pl.DataFrame) -> None:
    money = pl.col("event_type").is_in(MONEY_EVENT_TYPES)
    assert (log.filter(money)["amount"] > 0).all()
    assert (log.filter(~money & (pl.col("event_type") != "Correction"))["amount"] == 0).all()
    deposits = log.filter(pl.col("event_type") == "Deposit")["amount"].mean()
    withdrawals = log.filter(pl.col("event_type") == "Withdrawal")["amount"].mean()
    assert deposits > withdrawals  # type: ignore[operator]


@pytest.mark.parametrize(
    ("accounts", "days", "chunk_events"),
    [(2, 1, 7), (5, 40, 100), (300, 2, 50_000), (40, 1_000, 333)],
)
def test_edge_shapes_keep_the_invariants(accounts: int, days: int, chunk_events: int) -> None:
    end = START + timedelta(days=days)
    events = 2 * accounts + 40 + 1_500
    chunks = list(generate_chunks(events=events, accounts=accounts, start=START, end=end,
                                  chunk_events=chunk_events))
    log = pl.concat(chunks)
    assert all(c.schema == pl.Schema(CANONICAL_SCHEMA) for c in chunks)
    assert log["seq"].to_list() == list(range(events))
    assert log["recorded_at"].is_sorted()
    assert log["event_time"].min() >= START
    assert log["recorded_at"].max() < end
    opened = log.filter(pl.col("event_type") == "AccountOpened").select(
        "account_id", opened_seq="seq")
    assert opened.height == accounts
    assert log.join(opened, on="account_id").filter(pl.col("seq") < pl.col("opened_seq")).is_empty()
    out = log.filter(pl.col("event_type") == "TransferOut")["seq"]
    assert (log["event_type"].gather(out + 1) == "TransferIn").all()


def test_single_account_and_custom_period() -> None:
    start, end = datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 9, 1, tzinfo=UTC)
    log = pl.concat(generate_chunks(events=500, accounts=1, start=start, end=end))
    assert log.height == 500
    assert set(log["account_id"]) == {BANK_ACCOUNT, 1}
    assert "TransferOut" not in set(log["event_type"])
    assert log["event_time"].min() >= start
    assert log["recorded_at"].max() < end


def test_parquet_parts_read_back_as_the_chunks(tmp_path: Path, chunks: list[pl.DataFrame]) -> None:
    summary = generate(tmp_path / "bank", format="parquet", **ARGS)
    parts = sorted((tmp_path / "bank").iterdir())
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(len(chunks))]
    for part, chunk in zip(parts, chunks, strict=True):
        assert_frame_equal(pl.read_parquet(part), chunk)
    assert isinstance(summary, GenerateSummary)
    assert (summary.path, summary.events, summary.accounts, summary.files) \
        == (tmp_path / "bank", ARGS["events"], ARGS["accounts"], len(chunks))
    assert summary.bytes == sum(p.stat().st_size for p in parts)
    assert summary.seconds > 0


def test_delta_archive_holds_the_log(tmp_path: Path, log: pl.DataFrame) -> None:
    summary = generate(tmp_path / "bank", progress=True, **ARGS)
    stored = EventArchive(tmp_path / "bank").scan().collect()
    assert_frame_equal(stored, log)
    assert summary.files >= 1
    assert summary.bytes > 0


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_refuses_a_non_empty_folder(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "something").write_text("keep me")
    with pytest.raises(ArchiveError) as err:
        generate(tmp_path, events=1_000, accounts=10, format=fmt)  # type: ignore[arg-type]
    assert err.value.path == str(tmp_path)
    assert (tmp_path / "something").read_text() == "keep me"


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"events": 100}, "events"),
        ({"accounts": 0}, "accounts"),
        ({"seed": -1}, "seed"),
        ({"chunk_events": 0}, "chunk_events"),
        ({"start": datetime(2023, 1, 1)}, "start"),
        ({"end": START + timedelta(hours=1)}, "end"),
    ],
)
def test_bad_parameters_are_named(change: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: "):
        generate_chunks(**{"events": 1_000, "accounts": 100, **change})


def test_bad_format_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^format: "):
        generate(tmp_path / "x", events=1_000, accounts=10, format="csv")  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_archive_refuses_a_future_end(tmp_path: Path) -> None:
    future = datetime.now(UTC) + timedelta(days=30)
    with pytest.raises(ValueError, match="^end: "):
        generate(tmp_path / "x", events=1_000, accounts=10, end=future)
    assert not (tmp_path / "x").exists()
    generate(tmp_path / "x", events=1_000, accounts=10, end=future, format="parquet")
