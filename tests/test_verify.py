"""``verify``: every way to change an archive behind its back must be named.

Each tampering runs on a fresh archive of three appends (versions 1..3, one data
file each) and must make ``ok`` false with the first problem naming the commit
version and the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
import pytest
from conftest import make_events
from delta_tables import dv, z85

from eventkit import CorruptionError, EventArchive
from eventkit.archive import ledger
from eventkit.archive.datafiles import sha256_file
from eventkit.archive.ledger import chain_digest
from eventkit.archive.verify import verify_log
from eventkit.workbench.cli import main

Action = dict[str, Any]


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def three_appends(path: Path) -> EventArchive:
    """A new archive at ``path`` with three appends of three events each."""
    archive = EventArchive.create(path)
    for k in range(3):
        events = make_events([(1, "Deposit", 1_000 * (k + 1), k), (2, "Withdrawal", 100, k),
                              (3, "Fee", 5, k)])
        archive.append(events.drop("seq", "recorded_at").with_columns(
            event_id=pl.col("event_id") + f"-{k}"))
    return archive


@pytest.fixture
def archive(tmp_path: Path) -> EventArchive:
    return three_appends(tmp_path / "bank")


def commit_json(archive: EventArchive, version: int) -> Path:
    return ledger.log_path(archive.path, version)


def data_file(archive: EventArchive, version: int) -> Path:
    record = ledger.read_commit(archive.path, version).record
    assert record is not None
    [entry] = record["files"]
    return archive.path / entry["path"]


def edit_commit(archive: EventArchive, version: int, edit: Callable[[Action], None]) -> None:
    """Rewrite commit ``version`` with ``edit`` applied to each of its actions."""
    path = commit_json(archive, version)
    actions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for action in actions:
        edit(action)
    path.write_text("".join(json.dumps(a, separators=(",", ":")) + "\n" for a in actions))


def record_of(action: Action) -> dict[str, Any] | None:
    info = action.get("commitInfo")
    return json.loads(info["eventkit"]) if info and "eventkit" in info else None


def set_record(action: Action, record: dict[str, Any]) -> None:
    action["commitInfo"]["eventkit"] = json.dumps(record)


def first_problem(archive: EventArchive, **kwargs: Any) -> str:
    report = archive.verify(**kwargs)
    assert not report.ok
    return report.problems[0]


def verify_cli(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> Run:
    """``eventkit verify PATH ARGS`` in process (tests/test_cli.py runs real subprocesses)."""
    capsys.readouterr()
    code = main(["verify", str(path), "--no-progress", *args])
    out, err = capsys.readouterr()
    return Run(code, out, err)


# ---------------------------------------------------------------------- intact


def test_intact_archive_verifies(archive: EventArchive) -> None:
    seen: list[int] = []

    report = archive.verify(on_bytes=seen.append)

    assert report.ok, report
    assert report.problems == []
    assert report.head == archive.head
    assert report.version == 3
    assert report.files_checked == 3
    files = [data_file(archive, v) for v in (1, 2, 3)]
    assert report.bytes_checked == sum(seen) == sum(f.stat().st_size for f in files)
    assert archive.verify(expect=archive.head).ok
    assert "OK" in str(report)


def test_empty_archive_verifies(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")

    report = archive.verify()

    assert report.ok, report
    assert report.head == archive.head != ledger.GENESIS


def test_head_changes_with_every_append(archive: EventArchive) -> None:
    old = archive.head
    archive.append(make_events([(9, "Deposit", 1, 0)]).drop("seq", "recorded_at")
                   .with_columns(event_id=pl.lit("new")))

    assert archive.head != old
    assert archive.verify().ok
    # the saved head of an older state no longer matches: an append is visible
    assert not archive.verify(expect=old).ok


# ---------------------------------------------------------------------- data files


def test_flipped_byte_in_a_data_file(archive: EventArchive) -> None:
    path = data_file(archive, 2)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    problem = first_problem(archive)

    assert problem.startswith("commit 2:") and path.name in problem and "changed" in problem


def test_deleted_data_file(archive: EventArchive) -> None:
    path = data_file(archive, 2)
    path.unlink()

    problem = first_problem(archive)

    assert problem.startswith("commit 2:") and path.name in problem and "missing" in problem


def test_truncated_data_file(archive: EventArchive) -> None:
    path = data_file(archive, 3)
    path.write_bytes(path.read_bytes()[:-10])

    problem = first_problem(archive)

    assert problem.startswith("commit 3:") and path.name in problem


def test_data_file_replaced_by_a_valid_parquet_file(archive: EventArchive) -> None:
    path = data_file(archive, 1)
    pl.read_parquet(path).with_columns(amount=pl.col("amount") * 100).write_parquet(path)

    problem = first_problem(archive)

    assert problem.startswith("commit 1:") and path.name in problem


def test_swapped_data_files(archive: EventArchive) -> None:
    one, two = data_file(archive, 1), data_file(archive, 2)
    tmp = one.with_name("swap.tmp")
    one.rename(tmp)
    two.rename(one)
    tmp.rename(two)

    report = archive.verify()

    assert not report.ok
    assert report.problems[0].startswith("commit 1:") and one.name in report.problems[0]
    assert any(p.startswith("commit 2:") and two.name in p for p in report.problems)


@pytest.mark.parametrize("where", [".", "day=2024-01-01", "_delta_log"])
def test_extra_file_dropped_in(archive: EventArchive, where: str) -> None:
    folder = archive.path / where
    folder.mkdir(exist_ok=True)
    make_events([(1, "Deposit", 10**9, 0)]).write_parquet(folder / "extra.parquet")

    problem = first_problem(archive)

    assert str(Path(where) / "extra.parquet").removeprefix("./") in problem
    assert "not part of any commit" in problem


# ---------------------------------------------------------------------- commit files


def test_edited_record_rows(archive: EventArchive) -> None:
    def edit(action: Action) -> None:
        if (record := record_of(action)) is not None:
            record["rows"] = 2
            set_record(action, record)

    edit_commit(archive, 2, edit)

    problem = first_problem(archive)

    assert problem.startswith("commit 2:") and "digest does not recompute" in problem


def test_edited_record_file_hash_is_caught(archive: EventArchive) -> None:
    target = data_file(archive, 2)

    def edit(action: Action) -> None:
        if (record := record_of(action)) is not None:
            record["files"][0]["sha256"] = "0" * 64
            set_record(action, record)

    edit_commit(archive, 2, edit)

    report = archive.verify()

    assert report.problems[0].startswith("commit 2:")
    assert any(target.name in p for p in report.problems)


def test_add_action_pointing_to_another_file(archive: EventArchive) -> None:
    other = data_file(archive, 1).name

    def edit(action: Action) -> None:
        if "add" in action:
            action["add"]["path"] = other

    edit_commit(archive, 2, edit)

    problem = first_problem(archive)

    assert problem.startswith("commit 2:") and other in problem


def test_add_action_without_a_path_is_tampering_not_a_crash(archive: EventArchive) -> None:
    def edit(action: Action) -> None:
        if "add" in action:
            del action["add"]["path"]

    edit_commit(archive, 2, edit)

    assert first_problem(archive).startswith("commit 2:")
    with pytest.raises(CorruptionError, match="malformed action"):
        archive.scan()


def test_remove_action_slipped_into_a_commit(archive: EventArchive) -> None:
    victim = data_file(archive, 1).name
    path = commit_json(archive, 3)
    remove = {"remove": {"path": victim, "deletionTimestamp": 0, "dataChange": True}}
    path.write_text(path.read_text().rstrip("\n") + "\n" + json.dumps(remove) + "\n")

    problem = first_problem(archive)

    assert problem.startswith("commit 3:") and victim in problem


def test_edited_add_size(archive: EventArchive) -> None:
    def edit(action: Action) -> None:
        if "add" in action:
            action["add"]["size"] += 7

    edit_commit(archive, 2, edit)

    problem = first_problem(archive)

    assert problem.startswith("commit 2:") and data_file(archive, 2).name in problem


def test_edited_add_stats_that_hide_events_from_delta_readers(archive: EventArchive) -> None:
    def edit(action: Action) -> None:
        if "add" in action:
            stats = json.loads(action["add"]["stats"])
            stats["minValues"]["account_id"] = stats["maxValues"]["account_id"] = 0
            action["add"]["stats"] = json.dumps(stats)

    edit_commit(archive, 2, edit)
    seen = pl.scan_delta(str(archive.path)).filter(pl.col("account_id") == 1).collect().height
    assert seen == 2  # the tampering worked: Delta readers now miss one of three events

    assert not archive.verify().ok


def test_a_deletion_vector_slipped_into_a_commit_hides_rows_from_delta_readers(
    archive: EventArchive,
) -> None:
    # The record is untouched (the chain verifies): the Delta actions beside it changed.
    raw = dv([0])
    vector = {"storageType": "i", "pathOrInlineDv": z85(raw), "sizeInBytes": len(raw),
              "cardinality": 1}
    protocol = {"minReaderVersion": 3, "minWriterVersion": 7,
                "readerFeatures": ["deletionVectors"], "writerFeatures": ["deletionVectors"]}
    edit_commit(archive, 2, lambda a: a["add"].update(deletionVector=vector) if "add" in a
                else None)
    path = commit_json(archive, 2)
    path.write_text(path.read_text() + json.dumps({"protocol": protocol}) + "\n")
    assert pl.scan_delta(str(archive.path)).collect().height == 8  # one of nine events hidden

    problems = archive.verify().problems

    assert problems == [f"commit 2: sets the table's protocol to {json.dumps(protocol)} "
                        "(eventkit's needs no reader feature, set once in commit 0)"]


@pytest.mark.parametrize(("version", "edit", "named"), [
    (2, lambda a: a["add"].update(deletionVector={"cardinality": 1}) if "add" in a else None,
     "carries deletionVector"),
    (2, lambda a: a["add"].update(dataChange=False) if "add" in a else None,
     "has dataChange false, not true"),  # streaming Delta readers skip such a file
    (2, lambda a: a.update(txn={"appId": "x", "version": 1}) if "commitInfo" in a else None,
     "has Delta action(s) eventkit never writes: ['txn']"),
    (0, lambda a: a["protocol"].update(minReaderVersion=2) if "protocol" in a else None,
     "sets the table's protocol"),
])
def test_delta_actions_beside_the_record_are_checked(archive: EventArchive, version: int,
                                                    edit: Callable[[Action], None],
                                                    named: str) -> None:
    edit_commit(archive, version, edit)

    problem = first_problem(archive)

    assert problem.startswith(f"commit {version}:") and named in problem


def test_edited_table_properties_in_the_genesis_commit(archive: EventArchive) -> None:
    def edit(action: Action) -> None:
        if "metaData" in action:
            action["metaData"]["configuration"]["delta.appendOnly"] = "false"

    edit_commit(archive, 0, edit)

    problem = first_problem(archive)

    assert problem.startswith("commit 0:")


def test_deleted_commit_file(archive: EventArchive) -> None:
    path = commit_json(archive, 2)
    path.unlink()

    problem = first_problem(archive)

    assert problem.startswith("commit 2:") and path.name in problem


def test_deleted_last_commit_file_is_a_rollback(archive: EventArchive) -> None:
    head = archive.head
    orphan = data_file(archive, 3)
    commit_json(archive, 3).unlink()

    report = archive.verify()

    assert not report.ok  # its data file is now a stray
    assert orphan.name in report.problems[0]
    assert any("differs from the expected" in p for p in archive.verify(expect=head).problems)


def test_rollback_of_the_last_commit_with_its_data_is_caught_only_by_expect(
    archive: EventArchive,
) -> None:
    head = archive.head
    data_file(archive, 3).unlink()
    commit_json(archive, 3).unlink()

    assert archive.verify().ok  # a consistent older state
    assert not archive.verify(expect=head).ok


def test_truncated_commit_file(archive: EventArchive) -> None:
    path = commit_json(archive, 2)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    problem = first_problem(archive)

    assert problem.startswith("commit 2:") and "unreadable" in problem


def test_commit_file_cut_at_a_line_boundary(archive: EventArchive) -> None:
    path = commit_json(archive, 2)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if '"add"' not in line))

    problem = first_problem(archive)

    assert problem.startswith("commit 2:") and data_file(archive, 2).name in problem


def test_commit_without_an_eventkit_record(archive: EventArchive) -> None:
    def edit(action: Action) -> None:
        if "commitInfo" in action:
            del action["commitInfo"]["eventkit"]

    edit_commit(archive, 3, edit)

    problem = first_problem(archive)

    assert problem.startswith("commit 3:") and "eventkit" in problem


def test_damaged_genesis_commit_is_reported_by_the_ledger(archive: EventArchive) -> None:
    path = commit_json(archive, 0)
    path.write_bytes(path.read_bytes()[:100])

    report = verify_log(archive.path)

    assert not report.ok
    assert report.problems[0].startswith("commit 0:")


def test_commit_appended_by_another_delta_writer(archive: EventArchive) -> None:
    from deltalake import write_deltalake

    events = make_events([(1, "Deposit", 1, 0)]).with_columns(event_id=pl.lit("rogue"))
    write_deltalake(str(archive.path), events.to_arrow(), mode="append")

    problem = first_problem(archive)

    assert problem.startswith("commit 4:") and "eventkit" in problem


def test_consistently_rewritten_chain_is_caught_only_with_expect(
    archive: EventArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    old_head = archive.head
    # change an amount in commit 2's data file, then make every hash agree again
    path = data_file(archive, 2)
    pl.read_parquet(path).with_columns(amount=pl.col("amount") * 1000).write_parquet(path)
    digest = sha256_file(path)
    size = path.stat().st_size
    prev = ledger.read_commit(archive.path, 1).record["digest"]  # type: ignore[index]
    for version in (2, 3):
        def edit(action: Action, version: int = version) -> None:
            nonlocal prev
            if "add" in action and version == 2:
                action["add"]["size"] = size
            if (record := record_of(action)) is not None:
                if version == 2:
                    record["files"][0].update(sha256=digest, bytes=size)
                record["prev"] = prev
                record["digest"] = prev = chain_digest(prev, record)
                set_record(action, record)

        edit_commit(archive, version, edit)

    report = archive.verify()
    assert report.ok, report  # the chain is consistent again: only a saved head catches it
    assert report.head == archive.head != old_head
    assert archive.scan().collect()["amount"].sum() != 3 * 105 + 6_000  # really rewritten

    caught = archive.verify(expect=old_head)
    assert not caught.ok
    assert old_head in caught.problems[0] and "rewritten" in caught.problems[0]
    assert verify_cli(capsys, archive.path).returncode == 0
    cli = verify_cli(capsys, archive.path, "--expect", old_head)
    assert cli.returncode == 1 and old_head in cli.stdout


# ---------------------------------------------------------------------- interrupted appends


def test_leftover_of_an_interrupted_append_is_not_tampering(archive: EventArchive) -> None:
    name = "part-00000004-000-0123456789ab.parquet"
    make_events([(1, "Deposit", 5, 0)]).write_parquet(archive.path / name)
    pending = archive.path / ledger.PRIVATE_DIR / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    (pending / f"{name}.intent").write_text("batch-that-died")

    assert archive.verify().ok
    assert len(archive) == 9

    archive.append(make_events([(4, "Deposit", 7, 0)]).drop("seq", "recorded_at")
                   .with_columns(event_id=pl.lit("after")))

    assert not (archive.path / name).exists()
    assert list(pending.iterdir()) == []
    report = archive.verify()
    assert report.ok, report
    events = archive.scan().collect()
    assert events.height == 10 and events["seq"].to_list() == list(range(10))


def test_stray_file_without_an_intent_is_still_tampering(archive: EventArchive) -> None:
    (archive.path / ledger.PRIVATE_DIR / "pending").mkdir(parents=True, exist_ok=True)
    name = "part-00000004-000-0123456789ab.parquet"
    make_events([(1, "Deposit", 5, 0)]).write_parquet(archive.path / name)

    assert name in first_problem(archive)


# ---------------------------------------------------------------------- CLI exit codes


def test_cli_verify_exit_codes(archive: EventArchive,
                               capsys: pytest.CaptureFixture[str]) -> None:
    ok = verify_cli(capsys, archive.path)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and archive.head in ok.stdout
    assert verify_cli(capsys, archive.path, "--expect", archive.head).returncode == 0

    path = data_file(archive, 2)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    bad = verify_cli(capsys, archive.path)
    assert bad.returncode == 1
    assert "FAILED" in bad.stdout and "commit 2" in bad.stdout and path.name in bad.stdout


def test_cli_verify_of_a_non_archive_is_an_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    result = verify_cli(capsys, tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("eventkit: error:")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_cli_verify_of_a_damaged_genesis_commit_fails_verification(
    archive: EventArchive, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = commit_json(archive, 0)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.unlink()

    result = verify_cli(capsys, archive.path)

    assert result.returncode == 1
    assert "commit 0" in result.stdout


def test_leftover_intent_of_an_append_that_did_commit_keeps_the_data(
    archive: EventArchive,
) -> None:
    # the writer died after its commit but before removing its intent
    committed = data_file(archive, 3)
    pending = archive.path / ledger.PRIVATE_DIR / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    (pending / f"{committed.name}.intent").write_text("batch-that-committed")

    assert archive.verify().ok

    archive.append(make_events([(4, "Deposit", 7, 0)]).drop("seq", "recorded_at")
                   .with_columns(event_id=pl.lit("after")))

    assert committed.exists()
    assert list(pending.iterdir()) == []
    assert archive.verify().ok
    assert archive.scan().collect().height == 10
