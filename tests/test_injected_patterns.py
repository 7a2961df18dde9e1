"""The generator's labelled pattern instances: each found by its detector, nothing else raised."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import eventkit
from eventkit.banking.generate import generate, generate_chunks, read_labels
from eventkit.exceptions import ArchiveError
from eventkit.questions.patterns import BUILTINS, Thresholds, builtin_alerts

ARGS = {"events": 30_000, "accounts": 300, "seed": 3, "chunk_events": 8_000}


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("injected") / "bank"
    summary = generate(path, patterns=True, **ARGS)
    assert summary.labels == path / "_eventkit" / "labels.parquet"
    return path


@pytest.fixture(scope="module")
def history(bank: Path) -> pl.DataFrame:
    return eventkit.replay(eventkit.open_archive(bank), "banking").history.collect()


def matched(labels: pl.DataFrame, alerts: pl.DataFrame) -> pl.DataFrame:
    """Labels joined to the alert that starts at their first event and ends at their last."""
    return labels.with_columns(start_event_id=pl.col("event_ids").list.first(),
                               end_event_id=pl.col("event_ids").list.last()).join(
        alerts, on=["pattern", "start_event_id", "end_event_id"], how="left")


def test_every_labelled_instance_is_found_by_its_detector(bank: Path,
                                                          history: pl.DataFrame) -> None:
    labels = read_labels(bank)
    assert labels.group_by("pattern").len().sort("pattern").rows() == sorted(
        (name, 6) for name in BUILTINS)  # max(2, 30_000 // 5_000) of each
    found = matched(labels, builtin_alerts(history))
    assert found["account_id"].null_count() == 0, found.filter(pl.col("account_id").is_null())
    assert (found["account_id"] == found["accounts"].list.first()).all()
    pairs = found.filter(pl.col("pattern") == "ping_pong")
    assert (pairs["counterparty_id"] == pairs["accounts"].list.last()).all()


def test_injected_accounts_raise_no_alert_but_their_labels(bank: Path,
                                                           history: pl.DataFrame) -> None:
    # every injected account also carries a near miss of its pattern: none may alert
    alerts = builtin_alerts(history).filter(pl.col("account_id") > ARGS["accounts"])
    labels = read_labels(bank)
    assert alerts.height == labels.height
    assert matched(labels, alerts)["account_id"].null_count() == 0
    assert history.filter(pl.col("violation").is_not_null()).is_empty()  # opened before use


def test_the_banks_own_activity_raises_no_false_alert(history: pl.DataFrame) -> None:
    # the background bank never shows the three event patterns at the default thresholds;
    # its balances are a random walk, so it really does overdraw: those alerts are true ones
    own = builtin_alerts(history).filter(pl.col("account_id") <= ARGS["accounts"])
    assert set(own["pattern"]) == {"negative_balance"}
    negative = own.join(history.select(pl.col("seq").alias("start_seq"), "balance"),
                        on="start_seq")
    assert (negative["balance"] < 0).all()


def test_the_banks_own_events_are_unchanged(bank: Path) -> None:
    stored = eventkit.open_archive(bank).collect()
    plain = pl.concat(generate_chunks(**ARGS))
    own = stored.filter(pl.col("event_id").str.starts_with("e"))
    assert_frame_equal(own.drop("seq", "recorded_at"), plain.drop("seq", "recorded_at"))
    assert stored["seq"].to_list() == list(range(stored.height))
    assert stored["recorded_at"].is_sorted()
    out = stored.filter(pl.col("event_type") == "TransferOut")["seq"]
    legs = stored.filter(pl.col("seq").is_in((out + 1).implode()))
    assert (legs["event_type"] == "TransferIn").all()


def test_parquet_output_and_chunks_hold_the_instances(tmp_path: Path, bank: Path) -> None:
    summary = generate(tmp_path / "plain", format="parquet", patterns=True, **ARGS)
    files = pl.read_parquet(tmp_path / "plain" / "*.parquet")
    assert files.height == summary.events == ARGS["events"] + files["event_id"].str.starts_with(
        "p").sum()
    assert_frame_equal(read_labels(tmp_path / "plain"), read_labels(bank))
    chunks = pl.concat(generate_chunks(patterns=True, **ARGS))
    assert_frame_equal(chunks, files)


def test_cli_injects_and_the_archive_still_verifies(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eventkit", *args], capture_output=True,
                              text=True, timeout=120, check=False)

    gen = run("generate", str(tmp_path / "b"), "--events", "3000", "--accounts", "30",
              "--no-progress", "--inject-patterns")
    assert gen.returncode == 0, gen.stderr
    assert f"pattern labels: {tmp_path / 'b' / '_eventkit' / 'labels.parquet'}" in gen.stdout
    assert read_labels(tmp_path / "b").height == 8
    verify = run("verify", str(tmp_path / "b"), "--no-progress")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_without_patterns_there_are_no_labels(tmp_path: Path) -> None:
    generate(tmp_path / "b", events=2_000, accounts=20, format="parquet")
    with pytest.raises(ArchiveError, match="patterns=True"):
        read_labels(tmp_path / "b")


def test_a_period_too_short_for_the_thresholds_is_named() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="^patterns: the period must be longer than"):
        generate_chunks(events=2_000, accounts=20, start=start, end=start + timedelta(days=20),
                        patterns=True)


durations = st.integers(1, 48 * 60).map(lambda m: timedelta(minutes=m))


@settings(max_examples=12, deadline=None)
@given(t=st.builds(Thresholds, rapid_count=st.integers(2, 8), rapid_within=durations,
                   structuring_within=durations, structuring_share=st.floats(0.5, 0.99),
                   structuring_min_deposit=st.integers(0, 10_000_000),
                   ping_pong_within=durations, negative_longer_than=durations),
       seed=st.integers(0, 50))
def test_instances_cross_any_thresholds_and_their_near_misses_do_not(t: Thresholds,
                                                                     seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "b", events=3_000, accounts=40, seed=seed, patterns=t,
                 format="parquet")
        log, labels = pl.read_parquet(Path(tmp) / "b" / "*.parquet"), read_labels(Path(tmp) / "b")
    injected = log.filter(pl.col("account_id") > 40)  # the instances' accounts only
    alerts = builtin_alerts(eventkit.replay(injected, "banking").history.collect(), t)
    assert alerts.height == labels.height == 8
    assert matched(labels, alerts)["account_id"].null_count() == 0
