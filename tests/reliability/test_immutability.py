"""Immutability: every way to rewrite history is refused, or detected; old answers never move.

For each operation, the answers of every version (``scan(version=v)`` and the
replayed state) are taken before and compared after: each is unchanged, or its
read raises ``CorruptionError``. An operation that went through must make
``verify`` fail; a refused one must leave every byte as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from conftest import make_events
from deltalake import DeltaTable, write_deltalake
from test_archive import THREE, assert_unchanged, batch, snapshot

import eventkit
from eventkit import CorruptionError, EventArchive, ImmutabilityError

Op = Callable[[EventArchive], object]


def _table(archive: EventArchive) -> DeltaTable:
    return DeltaTable(str(archive.path))


def _vacuum(archive: EventArchive) -> object:
    return _table(archive).vacuum(retention_hours=0, enforce_retention_duration=False,
                                  dry_run=False)


def _switch_off_then_delete(archive: EventArchive) -> None:
    _table(archive).alter.set_table_properties({"delta.appendOnly": "false"})
    _table(archive).delete("account_id = 1")


def _then_vacuum(op: Op) -> Op:
    def both(archive: EventArchive) -> None:
        op(archive)
        _vacuum(archive)
    return both


REFUSED: dict[str, Op] = {
    "eventkit-delete": lambda a: a.delete(pl.col("account_id") == 1),
    "eventkit-overwrite": lambda a: a.overwrite(batch(THREE, "x")),
    "eventkit-update": lambda a: a.update(amount=0),
    "delta-delete": lambda a: _table(a).delete("account_id = 1"),
    "delta-update": lambda a: _table(a).update({"amount": "0"}),
    "delta-overwrite": lambda a: write_deltalake(
        str(a.path), pl.scan_delta(str(a.path)).collect().to_arrow(), mode="overwrite"),
    "delta-merge-update": lambda a: _table(a).merge(
        pl.DataFrame({"event_id": ["a0"], "amount": [0]}).to_arrow(),
        predicate="t.event_id = s.event_id", source_alias="s", target_alias="t",
    ).when_matched_update({"amount": "s.amount"}).execute(),
}

DETECTED: dict[str, Op] = {
    "switch-off-append-only": lambda a: _table(a).alter.set_table_properties(
        {"delta.appendOnly": "false"}),
    "switch-off-then-delete": _switch_off_then_delete,
    "switch-off-delete-vacuum": _then_vacuum(_switch_off_then_delete),
    "restore-to-version-1": lambda a: _table(a).restore(1),
    "restore-then-vacuum": _then_vacuum(lambda a: _table(a).restore(1)),
    "optimize-compact": lambda a: _table(a).optimize.compact(),
    "compact-then-vacuum": _then_vacuum(lambda a: _table(a).optimize.compact()),
    "optimize-z-order": lambda a: _table(a).optimize.z_order(["account_id"]),
    "checkpoint": lambda a: _table(a).create_checkpoint(),
    "foreign-delta-append": lambda a: write_deltalake(
        str(a.path), make_events([(1, "Deposit", 10**9, 0)]).with_columns(
            event_id=pl.lit("rogue")).to_arrow(), mode="append"),
}

HARMLESS: dict[str, Op] = {
    "vacuum-of-an-intact-archive": _vacuum,  # nothing to remove: a no-op
}


@pytest.fixture
def archive(tmp_path: Path) -> EventArchive:
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(batch(THREE, "a"))
    archive.append(batch([(1, "Withdrawal", 300, 5), (3, "Deposit", 70, 6)], "b"))
    archive.append(batch([(2, "Fee", 25, 9)], "c"))
    return archive


def answers(path: Path) -> dict[int, tuple[pl.DataFrame, pl.DataFrame] | None]:
    """Per version: (events, replayed state), or None where the read raises CorruptionError."""
    out: dict[int, tuple[pl.DataFrame, pl.DataFrame] | None] = {}
    for v in range(4):
        try:
            events = EventArchive(path).scan(version=v)
            out[v] = (events.collect(), eventkit.replay(events).state().collect())
        except CorruptionError:
            out[v] = None
    return out


def assert_old_answers_hold(path: Path, before: dict[int, tuple[pl.DataFrame, pl.DataFrame]]
                            ) -> int:
    """Every version reads as before or raises CorruptionError; return how many raise."""
    after = answers(path)
    for v, old in before.items():
        new = after[v]
        if new is not None:
            assert new[0].equals(old[0]), f"version {v} now reads other events"
            assert new[1].equals(old[1]), f"version {v} now replays to another state"
    try:
        latest = EventArchive(path).scan().collect()
    except CorruptionError:
        pass
    else:
        assert latest.equals(before[3][0]), "the latest version reads other events"
    return sum(a is None for a in after.values())


@pytest.mark.parametrize("name", REFUSED)
def test_rewrites_are_refused(archive: EventArchive, name: str) -> None:
    before, files = answers(archive.path), snapshot(archive.path)

    with pytest.raises(Exception, match="append-only") as info:
        REFUSED[name](archive)

    if name.startswith("eventkit"):
        assert isinstance(info.value, ImmutabilityError)
    litter = sorted(set(snapshot(archive.path)) - set(files))
    if name == "delta-merge-update":  # Delta wrote its new file before refusing the commit
        assert [Path(f).suffix for f in litter] == [".parquet"]
        problems = archive.verify().problems
        assert problems == [f"file {litter[0]} is not part of any commit (added behind the "
                            "archive's back)"]
        Path(archive.path, litter[0]).unlink()
    assert_unchanged(archive.path, files)
    assert archive.verify().ok
    assert assert_old_answers_hold(archive.path, before) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("name", DETECTED)
def test_rewrites_delta_allows_are_detected_and_change_no_answer(
    archive: EventArchive, name: str,
) -> None:
    before = answers(archive.path)

    DETECTED[name](archive)

    report = archive.verify()
    assert not report.ok, f"{name} went unnoticed"
    broken = assert_old_answers_hold(archive.path, before)  # type: ignore[arg-type]
    if "vacuum" in name:
        assert broken > 0  # files of old versions are gone: those reads must raise
    else:
        assert broken == 0  # nothing was physically removed: every old answer stands


@pytest.mark.parametrize("name", HARMLESS)
def test_harmless_maintenance_changes_nothing(archive: EventArchive, name: str) -> None:
    before, files = answers(archive.path), snapshot(archive.path)

    HARMLESS[name](archive)

    assert_unchanged(archive.path, files)
    assert archive.verify().ok
    assert assert_old_answers_hold(archive.path, before) == 0  # type: ignore[arg-type]
