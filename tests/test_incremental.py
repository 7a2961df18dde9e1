"""Incremental replay: appends + catch-ups give exactly one full replay's state."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import FAST, event_streams
from polars.testing import assert_frame_equal

from eventkit import ArchiveError, EventArchive, expire, replay
from eventkit.replay.live import LiveReplay
from eventkit.rules.model import RuleSet
from eventkit.rules.registry import get

RULES = st.sampled_from(["balance", "banking", "banking-rate-table"])


def ruleset(name: str) -> RuleSet:
    if name == "banking-rate-table":
        return get("banking").with_params(rate_table={"2023-12-01": 0.02, "2024-01-02": 0.07})
    return get(name)


@settings(FAST, max_examples=40)
@given(events=event_streams(max_events=30), rules=RULES,
       cuts=st.lists(st.integers(0, 30), max_size=4), catch_up_every=st.sampled_from([1, 2]))
def test_appends_and_catch_ups_equal_one_full_replay(events: pl.DataFrame, rules: str,
                                                     cuts: list[int],
                                                     catch_up_every: int) -> None:
    rs = ruleset(rules)
    ordered = events.sort("seq").drop("seq")
    bounds = sorted({0, *[min(c, ordered.height) for c in cuts], ordered.height})
    with tempfile.TemporaryDirectory() as folder:
        archive = EventArchive.create(Path(folder) / "bank")
        live = LiveReplay(archive, rs)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if b > a:
                archive.append(ordered.slice(a, b - a), recorded_at="keep",
                               before_latest="clamp")  # streams are not in recorded order
            if i % catch_up_every == 0:
                live.catch_up()
        live.catch_up()
        want = replay(archive, rs, snapshots=False).state().collect()
        assert_frame_equal(live.state, want)
        # a new process resumes from the checkpoint, and has nothing left to fold
        again = LiveReplay(archive, rs)
        assert again.version == archive.version
        assert again.catch_up().new_events == 0
        assert_frame_equal(again.state, want)


def batch(ids: list[str], account: int, days: list[int], kind: str = "Deposit",
          amount: int = 100) -> pl.DataFrame:
    return pl.DataFrame({"event_id": ids, "account_id": [account] * len(ids),
                         "event_type": [kind] * len(ids), "amount": [amount] * len(ids),
                         "event_time": [datetime(2024, 1, d, tzinfo=UTC) for d in days]})


def test_late_events_are_reported_and_folded_in_order(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(pl.concat([batch(["o1"], 1, [1], "AccountOpened", 0),
                              batch(["d1", "d2"], 1, [2, 9], amount=10_000),
                              batch(["o2", "d3"], 2, [1, 3])]))
    live = LiveReplay(archive, "banking")
    live.catch_up()
    archive.append(pl.concat([batch(["late"], 1, [5], "Withdrawal", 15_000),
                              batch(["d4"], 2, [20])]))
    report = live.catch_up()
    assert report.late == [1]
    assert report.keys_updated == 2
    assert_frame_equal(live.state, replay(archive, "banking", snapshots=False).state().collect())
    # a late change of the bank's own rate table: every balance is replayed again
    archive.append(batch(["r"], 0, [4], "InterestRateChanged", 0).with_columns(
        rate=pl.lit(0.5)))
    assert live.catch_up().rebuilt
    assert_frame_equal(live.state, replay(archive, "banking", snapshots=False).state().collect())


def test_a_rewritten_archive_is_refused(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(batch(["a"], 1, [1]))
    live = LiveReplay(archive, "balance", folder=tmp_path / "live")  # kept elsewhere
    live.catch_up()
    other = EventArchive.create(tmp_path / "other")  # another history, one commit longer
    other.append(batch(["b"], 1, [2]))
    other.append(batch(["c"], 1, [3]))
    shutil.rmtree(archive.path)
    shutil.copytree(other.path, archive.path)
    with pytest.raises(ArchiveError, match="rewritten"):
        LiveReplay(archive, "balance", folder=tmp_path / "live").catch_up()


@pytest.mark.parametrize("rules", ["balance", "banking"])  # opening events; opening states
@pytest.mark.parametrize("checkpoint", ["before", "none"])
def test_an_expiry_is_caught_up_from_its_opening_states(tmp_path: Path, rules: str,
                                                        checkpoint: str) -> None:
    """A checkpoint older than an expiry is folded again; a new one starts from the opening
    states (it started every key from zero, or folded the expired events twice)."""
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(pl.concat([batch(["o1"], 1, [1], "AccountOpened", 0),
                              batch(["d1"], 1, [2], amount=10_000)]))
    live = LiveReplay(archive, rules)
    if checkpoint == "before":
        live.catch_up()
    archive.append(batch(["d2"], 1, [10], amount=5_000))  # folded only by the expiry
    expire(archive, before=datetime(2024, 1, 20, tzinfo=UTC), by="ops", reason="retention",
           confirm=True, rules=rules)
    archive.append(batch(["d3"], 1, [25]))
    want = replay(archive, rules, snapshots=False).state().collect()
    assert live.catch_up().rebuilt == (checkpoint == "before")
    assert_frame_equal(live.state, want)
    again = LiveReplay(archive, rules)  # the checkpoint saved is trusted
    assert again.discarded is None
    assert_frame_equal(again.state, want)
