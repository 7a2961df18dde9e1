"""Compaction, expiry and the storage report on real Delta archives.

Compaction must change no answer (every as_of / known_at / version read), be
accepted by ``verify`` as an audited operation, and leave foreign rewrites as
detectable as before.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventkit
from eventkit import EventArchive
from eventkit.archive import compaction, datafiles, ledger
from eventkit.archive.compaction import compact
from eventkit.archive.storage import info
from eventkit.banking.generate import generate
from eventkit.rules.model import Field, Handler, RuleSet
from eventkit.workbench.cli import main

START = datetime(2024, 1, 1, tzinfo=UTC)
INSTANTS = [START + timedelta(days=d) for d in (20, 75, 140, 260, 400)]


@pytest.fixture
def small_files(tmp_path: Path) -> EventArchive:
    """A generated bank archive of 4,000 events in 20 appends (late corrections included)."""
    generate(tmp_path / "bank", events=4_000, accounts=40, seed=3, chunk_events=200,
             start=START, end=START + timedelta(days=450))
    return EventArchive(tmp_path / "bank")


def answers(archive: EventArchive) -> dict[str, pl.DataFrame]:
    """Every question we ask of an archive: events, state, as_of and known_at grids."""
    out = {"events": archive.scan().collect()}
    for rules in ("balance", "banking"):
        result = eventkit.replay(archive, rules)
        out[f"{rules} state"] = result.state().collect()
        out[f"{rules} history"] = result.history.collect()
        for t in INSTANTS:
            out[f"{rules} as_of {t:%F}"] = result.as_of(t).collect()
            known = eventkit.replay(archive, rules, known_at=t)
            out[f"{rules} known_at {t:%F}"] = known.state().collect()
            out[f"{rules} known_at as_of {t:%F}"] = known.as_of(t - timedelta(days=15)).collect()
    return out


def assert_same(before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]) -> None:
    assert before.keys() == after.keys()
    for name, frame in before.items():
        assert frame.equals(after[name]), f"{name} changed"


def test_compaction_changes_no_answer_and_verifies(small_files: EventArchive,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compaction, "RETAIN_S", 0.0)  # replaced files deleted at once
    archive = small_files
    before = answers(archive)
    versions = {v: archive.scan(version=v).collect() for v in (1, 7, archive.version)}
    files_before = info(archive.path).files.height

    report = compact(archive, target_rows=1_500)

    assert (report.files_before, report.files_after) == (files_before, 3)
    assert info(archive.path).files.height == 3
    verified = archive.verify()
    assert verified.ok, verified.problems
    assert any("replaced by audited compactions" in n for n in verified.notes)
    assert_same(before, answers(archive))
    for v, frame in versions.items():  # old versions read from the merged files
        assert archive.scan(version=v).collect().equals(frame)
    # the Delta table is still a plain Delta table to other readers
    assert pl.scan_delta(str(archive.path)).select(pl.len()).collect().item() == 4_000
    # appends continue the log after a compaction
    receipt = archive.append(pl.DataFrame({"event_id": ["new"], "account_id": [1],
                                           "event_type": ["Deposit"], "amount": [1],
                                           "event_time": [INSTANTS[-1]]}))
    assert receipt.seq_start == 4_000 and archive.verify().ok
    assert compact(archive, target_rows=1_500).version is None or archive.verify().ok


def test_compaction_of_a_bucketed_archive_keeps_the_log_order(tmp_path: Path) -> None:
    # each append wrote one file per bucket: merged, their rows go back in seq order
    generate(tmp_path / "bank", events=1_200, accounts=30, seed=5, chunk_events=200,
             start=START, end=START + timedelta(days=300), buckets=4)
    archive = EventArchive(tmp_path / "bank")
    events = archive.scan().collect()
    history = eventkit.replay(archive, "banking").history.collect()
    assert events["seq"].to_list() == list(range(1_200))

    report = compact(archive, target_rows=600, keep_old=True)

    assert report.files_after < report.files_before
    assert archive.verify().ok  # the replaced files, still there, hold the same rows
    assert archive.scan().collect().equals(events)
    assert eventkit.replay(archive, "banking").history.collect().equals(history)


def test_compaction_keeping_old_files_checks_both_sides(small_files: EventArchive) -> None:
    archive = small_files
    compact(archive, target_rows=100_000, keep_old=True)

    assert archive.verify().ok
    [entry] = ledger.live_files(archive.path)
    record = ledger.read_commit(archive.path, archive.version).record
    assert record is not None and record["kind"] == "compact"
    old = archive.path / record["groups"][0]["removed"][3]
    old.write_bytes(old.read_bytes())  # untouched bytes: still fine
    assert archive.verify().ok
    # a replaced file that is edited is still caught (it is still listed by its append)
    data = bytearray(old.read_bytes())
    data[len(data) // 2] ^= 0xFF
    old.write_bytes(bytes(data))
    problems = archive.verify().problems
    assert problems and old.name in problems[0]
    assert entry["path"] not in problems[0]


def test_foreign_optimize_after_compaction_is_still_detected(small_files: EventArchive) -> None:
    compact(small_files, target_rows=1_000)
    small_files.append(pl.DataFrame({"event_id": ["x"], "account_id": [1],
                                     "event_type": ["Deposit"], "amount": [1],
                                     "event_time": [INSTANTS[-1]]}))
    DeltaTable(str(small_files.path)).optimize.compact()

    problems = small_files.verify().problems
    assert problems and "not written by eventkit" in problems[0]
    with pytest.raises(eventkit.CorruptionError, match="not written by eventkit"):
        small_files.scan()


def _edit(path: Path, edit: object) -> None:
    actions = [json.loads(line) for line in path.read_text().splitlines()]
    edit(actions)  # type: ignore[operator]
    path.write_text("".join(json.dumps(a) + "\n" for a in actions))


def test_a_compaction_that_removes_more_than_it_says_is_tampering(
    small_files: EventArchive,
) -> None:
    compact(small_files, target_rows=1_000)
    commit = ledger.log_path(small_files.path, small_files.version)

    def drop_one_add(actions: list[dict]) -> None:
        i = next(i for i, a in enumerate(actions) if "add" in a)
        del actions[i]

    _edit(commit, drop_one_add)
    problems = small_files.verify().problems
    assert problems[0].startswith(f"commit {small_files.version}:")
    with pytest.raises(eventkit.CorruptionError):
        small_files.scan()


def test_a_compaction_record_with_other_rows_is_named(tmp_path: Path) -> None:
    # forge: the same compaction, but its new file holds other rows and the record is
    # recomputed to match the file's hash (only the content digest tells)
    generate(tmp_path / "bank", events=600, accounts=10, seed=1, chunk_events=200,
             start=START, end=START + timedelta(days=60))
    archive = EventArchive(tmp_path / "bank")
    compact(archive, keep_old=True)
    commit = ledger.log_path(archive.path, archive.version)
    record = ledger.read_commit(archive.path, archive.version).record
    assert record is not None
    new = archive.path / record["files"][0]["path"]
    frame = pl.read_parquet(new).with_columns(amount=pl.col("amount") + 1)
    frame.write_parquet(new, compression="zstd")
    record["files"][0]["sha256"] = datafiles.sha256_file(new)
    record["files"][0]["bytes"] = new.stat().st_size
    record["digest"] = ledger.chain_digest(record["prev"], record)

    def forge(actions: list[dict]) -> None:
        for a in actions:
            if "commitInfo" in a:
                a["commitInfo"]["eventkit"] = json.dumps(record)
            if "add" in a:
                a["add"]["size"] = new.stat().st_size

    _edit(commit, forge)
    problems = archive.verify().problems
    assert any("differ from the compact record's content digest" in p for p in problems)


def test_info_reports_sizes_and_the_cli_prints_them(small_files: EventArchive,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    report = info(small_files.path)
    assert (report.events, report.files.height, report.versions) == (4_000, 20, 20)
    assert report.bytes == sum(p.stat().st_size for p in small_files.path.glob("*.parquet"))
    assert report.compression_ratio > 1
    assert report.partitions.rows() == [(".", 20, 4_000, report.bytes,
                                         report.uncompressed_bytes)]
    snaps = small_files.path / "_eventkit" / "snapshots"
    snaps.mkdir()
    (snaps / "s.parquet").write_bytes(b"x" * 100)
    assert info(small_files.path).snapshot_bytes == 100

    assert main(["compact", str(small_files.path), "--target-rows", "2000"]) == 0
    assert main(["info", str(small_files.path)]) == 0
    out = capsys.readouterr().out
    assert "20 -> 2 data files" in out
    assert "events       4,000" in out and "1 compact" in out


def test_info_of_a_hive_folder_has_one_row_per_partition(tmp_path: Path) -> None:
    for day in ("2024-01-01", "2024-01-02"):
        folder = tmp_path / f"day={day}"
        folder.mkdir()
        pl.DataFrame({"account_id": [1, 2, 3], "amount": [1, 2, 3]}).write_parquet(
            folder / "part.parquet")
    report = info(tmp_path)
    assert report.kind == "Parquet folder"
    assert report.partitions["partition"].to_list() == ["day=2024-01-01", "day=2024-01-02"]
    assert report.partitions["events"].to_list() == [3, 3]


CUTOFF = START + timedelta(days=150)
LATER = [START + timedelta(days=d) for d in (150, 151, 200, 300, 449)]


def later_answers(archive: EventArchive, rules: str) -> dict[str, pl.DataFrame]:
    result = eventkit.replay(archive, rules)
    fields = [f.name for f in result.rules.fields]
    out = {"state": result.state().drop("events").collect(),
           "grid": result.at_times(LATER).drop("events").collect(),
           "history": result.history.filter(pl.col("event_time") >= CUTOFF)
           .select("event_id", *fields).collect()}
    for t in LATER:
        out[f"as_of {t:%F}"] = result.as_of(t).drop("events").collect()
    return out


def test_expire_keeps_every_later_answer(small_files: EventArchive) -> None:
    archive = small_files
    before = later_answers(archive, "balance")
    files = {p.name for p in archive.path.glob("*.parquet")}
    with pytest.raises(eventkit.ImmutabilityError, match="confirm=True"):
        eventkit.expire(archive, before=CUTOFF, by="ops", reason="7-year rule")
    deposits = RuleSet(name="deposits", fields=(Field("balance"),),  # no Correction rule
                       handlers=(Handler("Deposit", {"balance": "balance + amount"}),),
                       ignore=tuple(t for t in eventkit.EVENT_TYPES if t != "Deposit"))
    with pytest.raises(eventkit.ArchiveError, match="cannot reproduce 'deposits'"):
        eventkit.expire(archive, before=CUTOFF, by="ops", reason="7-year rule",
                                  confirm=True, rules=deposits)
    assert {p.name for p in archive.path.glob("*.parquet")} == files
    assert archive.verify().ok

    report = eventkit.expire(archive, before=CUTOFF, by="ops@bank",
                                       reason="retention: 150 days", confirm=True)

    assert report.replaced_rows > 300 and 0 < report.opening_rows <= 40
    assert len(archive) == 4_000  # appends' rows; the archive now holds fewer
    assert archive.scan().select(pl.len()).collect().item() == \
        4_000 - report.replaced_rows + report.opening_rows
    assert {p.name for p in archive.path.glob("*.parquet")} & files == files - set(
        ledger.read_commit(archive.path, report.version).record["groups"][0]["removed"])
    verified = archive.verify()
    assert verified.ok, verified.problems
    assert_same(before, later_answers(archive, "balance"))
    record = ledger.read_commit(archive.path, report.version).record
    assert (record["kind"], record["by"], record["reason"]) == (
        "expire", "ops@bank", "retention: 150 days")
    assert record["cutoff"] == CUTOFF.isoformat()
    # questions the expiry cut off raise, they never answer a wrong number
    result = eventkit.replay(archive)
    for ask in (lambda: result.as_of(CUTOFF - timedelta(microseconds=1)),
                lambda: result.at_times([START + timedelta(days=10), CUTOFF]),
                lambda: result.between(START, CUTOFF),
                lambda: eventkit.replay(archive.path, known_at=START + timedelta(days=1)),
                lambda: eventkit.replay(archive, "banking"),
                lambda: archive.scan(version=3)):
        with pytest.raises(eventkit.ExpiredError, match="expired") as err:
            ask()
        assert err.value.cutoff == CUTOFF.isoformat()
    assert main(["info", str(archive.path)]) == 0
    assert main(["expire", str(archive.path), "--before", "2024-06-01", "--by", "ops",
                 "--reason", "r"]) == 2  # no --confirm: refused
    # the events as a frame hold no opening states: a replay of it is not the archive's
    with pytest.warns(eventkit.EventkitWarning, match="replay the archive itself"):
        frame = eventkit.open_archive(archive.path)
    assert frame.select(pl.len()).collect().item() == archive.scan().select(
        pl.len()).collect().item()


def every_answer_after(archive: EventArchive, rules: RuleSet, cutoff: datetime
                       ) -> dict[str, pl.DataFrame]:
    """Every state from the cut-off on: each event's, per key now, at instants, a window."""
    result = eventkit.replay(archive, rules, snapshots=False)
    fields = [f.name for f in result.rules.fields]
    span = [cutoff + timedelta(days=d) for d in (0, 1, 33, 120, 400)]
    window = result.between(cutoff, span[3])
    out = {"history": result.history.filter(pl.col("event_time") >= cutoff)
           .select("event_id", *fields).sort("event_id").collect(),
           "state": result.state().collect(),
           "grid": result.at_times(span).collect(),
           "opening": window.opening.collect(), "changes": window.changes.collect()}
    for t in span:
        out[f"as_of {t:%F}"] = result.as_of(t).collect()
    out["one key"] = eventkit.replay(archive, rules, keys=[3], snapshots=False).state().collect()
    return out


BANKING = eventkit.rules.get("banking")


def test_expire_banking_keeps_interest_fees_and_status(small_files: EventArchive) -> None:
    archive = small_files
    rules = BANKING.with_params(overdraft_fee=1_500)
    before = every_answer_after(archive, rules, CUTOFF)
    assert before["state"]["fees"].sum() > 0 and before["state"]["interest"].sum() != 0

    report = eventkit.expire(archive, before=CUTOFF, by="ops", reason="retention",
                                       confirm=True, rules=rules)

    # every event of an account before the cut-off is gone; its whole state is stored
    left = archive.scan().collect()
    assert left.filter((pl.col("event_time") < CUTOFF) & (pl.col("account_id") != 0)).height == 0
    assert left.height == 4_000 - report.replaced_rows
    record = ledger.read_commit(archive.path, report.version).record
    states = archive.path / ledger.PRIVATE_DIR / record["states"]["path"]
    assert pl.read_parquet(states).height == report.opening_rows > 0
    verified = archive.verify()
    assert verified.ok, verified.problems
    assert_same(before, every_answer_after(archive, rules, CUTOFF))  # `events` counts too
    eventkit.snapshot(archive, rules, every="1mo")  # never answers in place of the states
    t = CUTOFF + timedelta(days=33)
    assert eventkit.replay(archive, rules).as_of(t).collect().equals(before[f"as_of {t:%F}"])
    for other in ("banking", "balance"):  # the states reproduce these rules only
        with pytest.raises(eventkit.ExpiredError, match="rule set"):
            eventkit.replay(archive, other)
    with pytest.raises(eventkit.ExpiredError, match="expired"):
        eventkit.replay(archive, rules).as_of(CUTOFF - timedelta(microseconds=1))
    # a second, later expiry continues from the first one's states
    later = CUTOFF + timedelta(days=100)
    again = every_answer_after(archive, rules, later)
    with pytest.raises(eventkit.ArchiveError, match="expired already"):
        eventkit.expire(archive, before=CUTOFF, by="ops", reason="r", confirm=True,
                                  rules=rules)
    eventkit.expire(archive, before=later, by="ops", reason="r", confirm=True,
                              rules=rules)
    assert archive.verify().ok
    assert_same(again, every_answer_after(archive, rules, later))


def test_a_changed_opening_state_file_is_named(small_files: EventArchive) -> None:
    archive = small_files
    report = eventkit.expire(archive, before=CUTOFF, by="ops", reason="r",
                                       confirm=True, rules="banking")
    record = ledger.read_commit(archive.path, report.version).record
    states = archive.path / ledger.PRIVATE_DIR / record["states"]["path"]
    frame = pl.read_parquet(states)
    frame.with_columns(pl.col("balance") + 1).write_parquet(states)  # one cent each
    assert any(record["states"]["path"] in p for p in archive.verify().problems)
    with pytest.raises(eventkit.CorruptionError, match="opening-v"):
        eventkit.replay(archive, "banking").state().collect()


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), days=st.integers(90, 440), fee=st.sampled_from([0, 900]),
       chunk=st.sampled_from([150, 400, 3_000]))
def test_expire_banking_property(tmp_path_factory: pytest.TempPathFactory, seed: int,
                                 days: int, fee: int, chunk: int) -> None:
    """Any generated archive, any cut-off: every state after it stays identical."""
    path = tmp_path_factory.mktemp("bank") / "bank"
    generate(path, events=1_500, accounts=25, seed=seed, chunk_events=chunk, start=START,
             end=START + timedelta(days=450))
    archive = EventArchive(path)
    rules = BANKING.with_params(overdraft_fee=fee)
    cutoff = START + timedelta(days=days)
    before = every_answer_after(archive, rules, cutoff)
    eventkit.expire(archive, before=cutoff, by="ops", reason="r", confirm=True,
                              rules=rules)
    assert archive.verify().ok
    assert_same(before, every_answer_after(archive, rules, cutoff))


@pytest.mark.parametrize(("sub", "options"), [
    ("compact", ["--target-rows", "--keep-old"]),
    ("expire", ["--before", "--by", "--reason", "--rules", "--confirm"]),
    ("info", ["--snapshots"]),
])
def test_help(sub: str, options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([sub, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(o in out for o in options)


def test_an_expiry_whose_files_the_store_keeps_is_done_and_the_next_compact_deletes_them(
    small_files: EventArchive,
) -> None:
    # The commit is in: a StorageError would say nothing changed, and the retry is refused
    # ("expired already"), so the expired events' files would stay for good.
    from eventkit.archive.store import LocalStore
    from eventkit.exceptions import StorageError

    class NoDeletes(LocalStore):  # e.g. a store refusing deletes for a while
        def delete(self, rel: str) -> None:
            msg = f"{self.uri(rel)}: delete refused"
            raise StorageError(msg, path=self.root)

    archive = small_files
    with pytest.warns(eventkit.EventkitWarning, match="the next compact deletes them"):
        report = eventkit.expire(EventArchive(NoDeletes(archive.path)), before=CUTOFF,
                                 by="ops", reason="retention", confirm=True)
    removed = ledger.read_commit(archive.path, report.version).record["groups"][0]["removed"]
    assert all((archive.path / name).exists() for name in removed)  # still there
    assert archive.verify().ok and archive.version == report.version
    eventkit.compact(archive)
    assert not any((archive.path / name).exists() for name in removed)
    assert archive.verify().ok


def test_a_read_that_an_expiry_overtakes_is_an_expired_error(small_files: EventArchive) -> None:
    """A scan begun before an expiry finds the files it rewrote deleted: that was reported as
    a damaged archive (CorruptionError, "run eventkit verify"); it is the expiry."""
    archive = small_files
    begun = archive.scan()  # the files of this version are chosen now, read at collect
    eventkit.expire(archive, before=CUTOFF, by="ops", reason="retention", confirm=True)
    with pytest.raises(eventkit.ExpiredError, match=r"removed by the expiry of version \d+"):
        begun.collect()
    assert archive.verify().ok
