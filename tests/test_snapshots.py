"""Snapshots: snapshot + tail == full replay, and a stale snapshot is never used."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from conftest import make_events
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import CUTS, FAST, T0, event_streams
from polars.testing import assert_frame_equal

import eventkit
from eventkit import CorruptionError, EventArchive, SnapshotError, replay, snapshot
from eventkit.replay.snapshots import by_key
from eventkit.rules.registry import get

RULES = st.sampled_from(["balance", "banking", "banking-rate-table"])
EVERY = st.sampled_from(["1d", "7d", "1mo", "1q"])


def ruleset(name: str) -> eventkit.rules.RuleSet:
    if name == "banking-rate-table":  # interest from the rule set's own table, no bank events
        return get("banking").with_params(rate_table={"2023-12-01": 0.02, "2024-01-02": 0.07})
    return get(name)


def at(offset_us: int) -> datetime:
    return T0 + timedelta(microseconds=offset_us)


def archive_of(events: pl.DataFrame, folder: str) -> EventArchive:
    """An archive holding ``events`` in their seq order (the archive numbers them again)."""
    archive = EventArchive.create(Path(folder) / "bank")
    if events.height:
        archive.append(events.sort("seq").drop("seq"), recorded_at="keep")
    return archive


@pytest.mark.slow
@settings(FAST, max_examples=40)
@given(events=event_streams(max_events=30), rules=RULES, every=EVERY,
       cuts=st.lists(st.sampled_from(CUTS), min_size=1, max_size=4),
       keys=st.sampled_from([None, [1], [1, 2, 2**40]]))
def test_snapshot_plus_tail_equals_full_replay(events: pl.DataFrame, rules: str, every: str,
                                               cuts: list[int], keys: list[int] | None) -> None:
    rs = ruleset(rules)
    with tempfile.TemporaryDirectory() as folder:
        archive = archive_of(events, folder)
        snapshot(archive, rs, every=every)
        full = replay(archive, rs, keys=keys, snapshots=False)
        instants = [at(c) for c in cuts]
        for t in instants:
            fast = replay(archive, rs, keys=keys)
            assert fast.snapshots is not None
            assert_frame_equal(fast.as_of(t).collect(), full.as_of(t).collect())
        grid = replay(archive, rs, keys=keys).at_times(instants).collect()
        assert_frame_equal(grid, full.at_times(instants).collect())
        lo, hi = sorted([instants[0], instants[-1]])
        window, want = replay(archive, rs, keys=keys).between(lo, hi), full.between(lo, hi)
        assert_frame_equal(window.opening.collect(), want.opening.collect())
        assert_frame_equal(window.changes.collect(), want.changes.collect())


def deposits(rows: list[tuple[int, int, int]], prefix: str) -> pl.DataFrame:
    """A batch to append: (account, amount, day of 2024) per event."""
    return make_events([(a, "Deposit", amount, day * 1440) for a, amount, day in rows]).drop(
        "seq", "recorded_at").with_columns(event_id=pl.lit(prefix) + pl.col("event_id"))


@pytest.fixture
def archive(tmp_path: Path) -> EventArchive:
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(deposits([(1 + d // 3 % 3, 1_000 + d, d) for d in range(0, 120, 3)], "a"))
    return archive


def uses_snapshot(result: eventkit.ReplayResult, instant: str) -> bool:
    """Answer ``as_of`` and tell whether it came from a snapshot (no full fold made)."""
    result.as_of(instant).collect()
    return result.snapshots is not None and "_fold" not in result.__dict__


def test_snapshot_is_used_only_for_its_rules_and_archive_state(archive: EventArchive) -> None:
    rules = get("banking")
    snaps = snapshot(archive, rules, every="1mo")
    assert [t.date().isoformat() for t in snaps.instants] == [
        "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]
    assert uses_snapshot(replay(archive, rules), "2024-03-15")
    assert uses_snapshot(replay(archive.path, rules), "2024-03-15")  # by path, too
    assert not uses_snapshot(replay(archive, rules, snapshots=False), "2024-03-15")
    assert not uses_snapshot(replay(archive, rules, known_at="2030-01-01"), "2024-03-15")
    # one rule parameter changed: another fingerprint, the snapshot is not found
    changed = rules.with_params(overdraft_fee=1)
    assert replay(archive, changed).snapshots is None
    # one event appended (even a late one): another archive version, not used
    archive.append(deposits([(1, 5, 31)], "late"))
    result = replay(archive, rules)
    assert result.snapshots is None
    state = result.as_of("2024-03-15").collect()
    assert state.filter(pl.col("account_id") == 1)["events"].item() == 9 + 1  # days 0..72, late
    # built again: used again, the stale set is gone, and the late event counts
    snapshot(archive, rules, every="1mo")
    assert uses_snapshot(replay(archive, rules), "2024-03-15")
    stored = list((archive.path / "_eventkit" / "snapshots" / rules.fingerprint[:32]).iterdir())
    assert [p.name for p in stored] == [f"v{archive.version}"]
    assert_frame_equal(replay(archive, rules).as_of("2024-03-15").collect(),
                       replay(archive, rules, snapshots=False).as_of("2024-03-15").collect())


def test_a_replaced_set_loses_its_manifest_before_any_file(archive: EventArchive) -> None:
    """A reader that finds a file of its set missing sees the set replaced, never damaged.

    (Removed file by file, an old set once kept its manifest while its checkpoints went:
    a reader of it raised CorruptionError instead of replaying in full; found by the
    concurrency family's race of snapshots and reads.)
    """
    import threading

    seen: list[str] = []
    for round_ in range(4):
        old = snapshot(archive, "balance", every="1d")
        paths = [old.folder.path(f["path"]) for f in old.files]
        manifest = old.folder.path("manifest.json")
        stop = threading.Event()

        def watch(paths: list[Path] = paths, manifest: Path = manifest,
                  stop: threading.Event = stop) -> None:
            while not stop.is_set():
                gone = [p for p in paths if not p.exists()]
                if gone and manifest.exists():
                    seen.append(f"{gone[0].name} gone, manifest still there")
                    return
                if gone:
                    return

        watcher = threading.Thread(target=watch)
        watcher.start()
        archive.append(deposits([(1, 7, 100 + round_)], f"more-{round_}"))
        snapshot(archive, "balance", every="1d")  # replaces the old set
        stop.set()
        watcher.join()
        assert old.replaced
    assert seen == []


def test_a_changed_snapshot_file_is_refused(archive: EventArchive) -> None:
    snaps = snapshot(archive, "balance", every="1mo")
    path = snaps.folder.path(snaps.files[1]["path"])  # the set's store, here a local folder
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match=snaps.files[1]["path"]):
        replay(archive).as_of("2024-03-15").collect()


def test_snapshot_errors_name_the_parameter(archive: EventArchive, tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="every") as info:
        snapshot(archive, "balance", every="monthly")
    assert info.value.param == "every"
    plain = tmp_path / "events.parquet"
    archive.scan().collect().write_parquet(plain)
    with pytest.raises(eventkit.ArchiveError, match="events.parquet"):
        snapshot(plain, "balance")


def test_verify_ignores_snapshots(archive: EventArchive) -> None:
    snapshot(archive, "banking", every="7d")
    assert archive.verify().ok


def test_key_copy_serves_one_account_exactly_and_only_while_current(
        archive: EventArchive) -> None:
    snapshot(archive, "banking")
    for rules in ("balance", "banking"):  # one copy, for every rule set
        fast, slow = replay(archive, rules, keys=[2]), replay(archive, rules, keys=[2],
                                                               snapshots=False)
        assert_frame_equal(fast.history.collect(), slow.history.collect())
        assert by_key(archive, get(rules), [2], version=archive.version) is not None
    archive.append(deposits([(2, 7, 200)], "new"))
    assert by_key(archive, get(rules), [2], version=archive.version) is None
    assert replay(archive, keys=[2]).state().collect()["events"].item() == 14
    snapshot(archive, "balance")
    assert replay(archive, keys=[2]).state().collect()["events"].item() == 14


def test_a_changed_key_copy_is_refused(archive: EventArchive) -> None:
    snapshot(archive, "balance")
    copy = next((archive.path / "_eventkit" / "snapshots" / "by-key").glob("v*/events.parquet"))
    copy.write_bytes(copy.read_bytes()[:-100] + bytes(100))
    with pytest.raises(CorruptionError, match="events.parquet"):
        replay(archive, keys=[1]).history.collect()


def test_a_snapshot_of_an_expired_archive_starts_at_the_cut_off(tmp_path: Path) -> None:
    """The opening events are dated before the cut-off (at the last event they replace):
    snapshot asked for the state there and raised ExpiredError, on every try."""
    from datetime import UTC

    archive = EventArchive.create(tmp_path / "bank", key="account_id",
                                  columns={"account_id": "string", "amount": "money"})
    days = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 3, 25, 28)]
    archive.append(pl.DataFrame({"event_id": ["a1", "a2", "b1", "a3"],
                                 "account_id": ["A", "A", "B", "A"],
                                 "event_type": ["Deposit"] * 4, "event_time": days,
                                 "amount": [100, 50, 7, 1]}))
    eventkit.expire(archive, before=datetime(2024, 1, 20, tzinfo=UTC), by="ops",
                    reason="retention", confirm=True)

    snaps = snapshot(archive, every="1d")

    assert snaps.instants[0].date().isoformat() == "2024-01-20"
    result = replay(archive)
    assert result.snapshots is not None
    for day in (21, 26, 30):
        instant = datetime(2024, 1, day, tzinfo=UTC)
        assert_frame_equal(result.as_of(instant).collect(),
                           replay(archive, snapshots=False).as_of(instant).collect())
