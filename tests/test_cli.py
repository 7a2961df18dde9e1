"""The ``eventkit`` command line, run as real subprocesses (``python -m eventkit ...``).

Starting Python with eventkit costs about a second, so the commands of this
module are started together once (:func:`runs`) and each test checks its own.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import polars as pl
import pytest

from eventkit import EventArchive

ROOT = Path(__file__).resolve().parent.parent
SEED = Path(__file__).resolve().parent / "data" / "seed_transactions.parquet"
SEED_MAPPING = {"account_id": "accountId", "event_time": "timestamp",
                "amount_unit": "major", "time_unit": "s"}

HELP = {  # subcommand -> words its --help must mention
    None: ["generate", "verify", "replay", "lab"],
    "generate": ["--events", "--accounts", "--seed", "--format", "--chunk-events",
                 "--no-progress", "--inject-patterns"],
    "verify": ["--expect", "--no-progress"],
    "replay": ["--as-of", "--accounts", "--mapping", "--format"],
    "lab": ["--notebooks", "--host", "--port", "JUPYTER_TOKEN"],
    "snapshot": ["--rules", "--every", "--no-key-copy"],
    "ingest": ["--bootstrap", "--topic", "--archive", "--mapping", "--dead-letter",
               "--batch-size", "--max-wait", "--idle-timeout"],
    "produce": ["--bootstrap", "--topic", "--partitions", "--mapping"],
    "report": ["--config", "--notebooks", "--out", "--only", "--kernel", "--timeout"],
}


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run_together(commands: dict[str, list[str]]) -> dict[str, Run]:
    """Run ``python -m eventkit ARGS`` for each command at once; wait for all."""
    procs = {name: subprocess.Popen([sys.executable, "-m", "eventkit", *args], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, args in commands.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = Run(proc.returncode, stdout, stderr)
    return out


def make_archive(path: Path, rows: list[tuple[int, str, int, str]]) -> EventArchive:
    """An archive of (account, event type, amount in cents, ISO event time) rows."""
    archive = EventArchive.create(path)
    archive.append(pl.DataFrame({
        "event_id": [f"e{i}" for i in range(len(rows))],
        "account_id": [r[0] for r in rows],
        "event_type": [r[1] for r in rows],
        "amount": [r[2] for r in rows],
        "event_time": [datetime.fromisoformat(r[3]).astimezone(UTC) for r in rows],
    }))
    return archive


#: Whole currency units only (see the cents tests below for the rest).
WHOLE = [
    (1, "Deposit", 10_000, "2024-01-10T09:00:00+00:00"),
    (1, "Withdrawal", 2_000, "2024-07-01T00:00:00+00:00"),     # after 30 June
    (2, "Deposit", 500, "2024-03-01T12:00:00+00:00"),
    (2, "Fee", 100, "2024-06-30T23:59:00+00:00"),              # still 30 June (UTC)
    (3, "Deposit", 700, "2024-08-01T00:00:00+00:00"),          # not yet there on 30 June
]
#: Cents, negative balances and a big balance.
CENTS = [
    (1, "Deposit", 12_345, "2024-01-10T09:00:00+00:00"),
    (1, "Fee", 99, "2024-02-01T00:00:00+00:00"),               # 122.46
    (2, "Withdrawal", 1, "2024-03-01T00:00:00+00:00"),         # -0.01
    (3, "Correction", -123_456_789, "2024-03-01T00:00:00+00:00"),  # -1234567.89
    (4, "Deposit", 5, "2024-03-01T00:00:00+00:00"),            # 0.05
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    tmp = tmp_path_factory.mktemp("cli")
    whole = make_archive(tmp / "whole", WHOLE).path
    cents = make_archive(tmp / "cents", CENTS).path
    tampered = make_archive(tmp / "tampered", WHOLE).path
    [part] = tampered.glob("*.parquet")
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    mapping_file = tmp / "mapping.json"
    mapping_file.write_text(json.dumps(SEED_MAPPING))

    commands: dict[str, list[str]] = {
        f"help-{sub}": ([sub] if sub else []) + ["--help"] for sub in HELP}
    commands |= {
        "replay": ["replay", str(whole)],
        "replay-as-of": ["replay", str(whole), "--as-of", "2024-06-30"],
        "replay-csv": ["replay", str(whole), "--format", "csv"],
        "replay-naive": ["replay", str(whole), "--as-of", "2024-06-30T12:00:00"],
        "replay-missing": ["replay", str(tmp / "nowhere")],
        "replay-cents": ["replay", str(cents), "--format", "csv"],
        "seed-json": ["replay", str(SEED), "--mapping", json.dumps(SEED_MAPPING),
                      "--accounts", "1,2", "--format", "csv"],
        "seed-file": ["replay", str(SEED), "--mapping", str(mapping_file), "--format", "csv"],
        "seed-no-mapping": ["replay", str(SEED)],
        "bad-accounts": ["replay", str(whole), "--accounts", "1,x"],
        "empty-account": ["replay", str(whole), "--accounts", "1,,2"],
        "bad-mapping": ["replay", str(SEED), "--mapping", "{account_id: accountId"],
        "verify-ok": ["verify", str(whole), "--no-progress"],
        "verify-tampered": ["verify", str(tampered), "--no-progress"],
        "verify-not-archive": ["verify", str(tmp), "--no-progress"],
    }
    return run_together(commands)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def table_rows(text: str) -> list[list[str]]:
    """Cells of a printed Polars table (header first)."""
    return [[cell.strip() for cell in line.strip("│ \n").split("┆")]
            for line in text.splitlines() if line.startswith("│")]


def assert_one_line_error(run: Run, *words: str) -> None:
    assert run.returncode == 2, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("eventkit: error:")
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------------- help


@pytest.mark.parametrize("sub", list(HELP))
def test_help_mentions_every_option(runs: dict[str, Run], sub: str | None) -> None:
    run = runs[f"help-{sub}"]

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: eventkit" + (f" {sub}" if sub else ""))
    for word in HELP[sub]:
        assert word in run.stdout, word


# ---------------------------------------------------------------------- replay


def test_replay_prints_balances_in_currency_units(runs: dict[str, Run]) -> None:
    run = runs["replay"]
    assert run.returncode == 0, run.stderr

    header, *rows = table_rows(run.stdout)

    assert header == ["account_id", "balance", "events", "last_event_time"]
    assert [r[:3] for r in rows] == [["1", "80.00", "2"], ["2", "4.00", "2"], ["3", "7.00", "1"]]


def test_replay_as_of_a_date_includes_that_whole_utc_day(runs: dict[str, Run]) -> None:
    run = runs["replay-as-of"]
    assert run.returncode == 0, run.stderr

    _, *rows = table_rows(run.stdout)

    assert [r[:3] for r in rows] == [["1", "100.00", "1"], ["2", "4.00", "2"]]
    assert rows[1][3].startswith("2024-06-30 23:59:00")


def test_replay_csv(runs: dict[str, Run]) -> None:
    run = runs["replay-csv"]
    assert run.returncode == 0, run.stderr

    rows = csv_rows(run.stdout)

    assert [(r["account_id"], r["balance"], r["events"]) for r in rows] == [
        ("1", "80.00", "2"), ("2", "4.00", "2"), ("3", "7.00", "1")]
    assert list(rows[0]) == ["account_id", "balance", "events", "last_event_time"]


def test_replay_of_foreign_parquet_with_a_json_mapping_and_selected_accounts(
    runs: dict[str, Run],
) -> None:
    run = runs["seed-json"]
    assert run.returncode == 0, run.stderr

    assert [(r["account_id"], r["balance"], r["events"]) for r in csv_rows(run.stdout)] == [
        ("1", "0.00", "7"), ("2", "-5.00", "4")]


def test_replay_prints_exact_cents(runs: dict[str, Run]) -> None:
    run = runs["replay-cents"]
    assert run.returncode == 0, run.stderr

    assert [(r["account_id"], r["balance"]) for r in csv_rows(run.stdout)] == [
        ("1", "122.46"), ("2", "-0.01"), ("3", "-1234567.89"), ("4", "0.05")]


def test_replay_of_the_seed_file_with_a_mapping_file(runs: dict[str, Run]) -> None:
    run = runs["seed-file"]
    assert run.returncode == 0, run.stderr

    assert [(r["account_id"], r["balance"]) for r in csv_rows(run.stdout)] == [
        ("1", "0.00"), ("2", "-5.00"), ("3", "12345.75")]


def test_naive_as_of_is_a_one_line_error_naming_as_of(runs: dict[str, Run]) -> None:
    run = runs["replay-naive"]

    assert_one_line_error(run, "as_of", "time zone")
    assert run.stdout == ""


def test_replay_of_a_missing_path_is_a_one_line_error(runs: dict[str, Run]) -> None:
    assert_one_line_error(runs["replay-missing"], "nowhere")


def test_replay_of_foreign_data_without_mapping_names_the_missing_column(
    runs: dict[str, Run],
) -> None:
    assert_one_line_error(runs["seed-no-mapping"], "account_id", "accountId")


def test_bad_accounts_option_is_a_one_line_error(runs: dict[str, Run]) -> None:
    assert_one_line_error(runs["bad-accounts"], "accounts")
    assert_one_line_error(runs["empty-account"], "empty id")  # never one key fewer


def test_bad_mapping_option_is_a_one_line_error(runs: dict[str, Run]) -> None:
    assert_one_line_error(runs["bad-mapping"], "mapping")


# ---------------------------------------------------------------------- verify


def test_verify_exit_codes(runs: dict[str, Run]) -> None:
    ok, bad = runs["verify-ok"], runs["verify-tampered"]

    assert ok.returncode == 0, ok.stderr
    assert ": OK" in ok.stdout
    assert bad.returncode == 1, bad.stderr
    assert "FAILED" in bad.stdout and "commit 1" in bad.stdout and "changed" in bad.stdout


def test_verify_of_a_folder_that_is_not_an_archive(runs: dict[str, Run]) -> None:
    assert_one_line_error(runs["verify-not-archive"], "not an eventkit archive")


# ---------------------------------------------------------------------- generate


def test_generate_then_verify_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "bank"
    [gen] = run_together({"g": ["generate", str(path), "--events", "2000", "--accounts", "20",
                                "--seed", "1", "--no-progress"]}).values()
    assert gen.returncode == 0, gen.stderr
    assert "2,000 events" in gen.stdout

    done = run_together({"verify": ["verify", str(path), "--no-progress"],
                         "replay": ["replay", str(path), "--format", "csv"]})

    assert done["verify"].returncode == 0, done["verify"].stdout
    assert ": OK" in done["verify"].stdout
    assert done["replay"].returncode == 0, done["replay"].stderr
    rows = csv_rows(done["replay"].stdout)
    assert 0 < len(rows) <= 20
    assert sum(int(r["events"]) for r in rows) <= 2000
    assert len(EventArchive(path)) == 2000


# ---------------------------------------------------------------------- snapshot


def test_snapshot_then_as_of_answers_the_same(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "bank", WHOLE).path

    def run(*args: str) -> Run:
        done = subprocess.run([sys.executable, "-m", "eventkit", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=False)
        return Run(done.returncode, done.stdout, done.stderr)

    before = run("as-of", str(archive), "2024-06-30", "--rules", "banking", "--format", "csv")
    made = run("snapshot", str(archive), "--rules", "banking", "--every", "1mo")
    after = run("as-of", str(archive), "2024-06-30", "--rules", "banking", "--format", "csv")
    bad = run("snapshot", str(archive), "--every", "monthly")

    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("8 checkpoints (2024-01-31 .. 2024-08-31)"), made.stdout
    assert before.returncode == after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    assert_one_line_error(bad, "every", "monthly")


# ---------------------------------------------------------------------- an archive of one's own

CLUB_RULES = """
[ruleset]
name = "club"
key = ["tenant", "member"]
[columns]
amount = "int"
[fields.points]
type = "int"
money = true
[fields.last]
type = "string"
initial = "none"
[on.Spent]
points = "points + amount"
last = "event_id"
"""


def club_archive(path: Path) -> EventArchive:
    """A declared archive: a composite text key, money, one's own event type; 3 appends."""
    archive = EventArchive.create(path, key=["tenant", "member"], columns={
        "tenant": "string", "member": "string", "amount": "money"})
    members = [("acme", "m-1"), ("bé", "ü-1"), ("acme", "9f1c0a5e-0000-4000-8000-000000000001")]
    for month in (1, 3, 5):
        archive.append(pl.DataFrame({
            "event_id": [f"{month}-{i}" for i in range(len(members))],
            "tenant": [t for t, _ in members], "member": [m for _, m in members],
            "event_type": "Spent", "amount": [month * 100 + i for i in range(len(members))],
            "event_time": datetime(2024, month, 10, tzinfo=UTC)}))
    return archive


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """``eventkit ARGS`` in this process (faster than a subprocess)."""
    from eventkit.workbench.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return Run(code, out, err)


def test_an_expired_archive_of_ones_own_answers_as_before_or_refuses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the command line replays the archive itself, not the frame of its events: the opening
    # states an expiry stored carry on, and a question before the cut-off is refused
    archive = club_archive(tmp_path / "my club")
    rules = tmp_path / "club.toml"
    rules.write_text(CLUB_RULES)
    asks = {"state": ["replay", str(archive.path), "--rules", str(rules), "--format", "csv"],
            "keys": ["replay", str(archive.path), "--rules", str(rules), "--format", "csv",
                     "--keys", "bé:ü-1,acme:9f1c0a5e-0000-4000-8000-000000000001"],
            "may": ["as-of", str(archive.path), "2024-05-10", "--rules", str(rules),
                    "--format", "csv"]}
    before = {name: run_cli(capsys, *args) for name, args in asks.items()}
    assert before["keys"].stdout.splitlines()[1:] == [
        "acme,9f1c0a5e-0000-4000-8000-000000000001,9.06,5-2,3,2024-05-10T00:00:00.000000+0000",
        "bé,ü-1,9.03,5-1,3,2024-05-10T00:00:00.000000+0000"]

    done = run_cli(capsys, "expire", str(archive.path), "--before", "2024-04-01", "--by", "ops",
                   "--reason", "retention", "--rules", str(rules), "--confirm")
    assert done.returncode == 0, done.stderr
    assert {name: run_cli(capsys, *args) for name, args in asks.items()} == before
    march = run_cli(capsys, "as-of", str(archive.path), "2024-03-31", "--rules", str(rules))
    assert_one_line_error(march, "expired", "2024-04-01")
    known = run_cli(capsys, "restatements", str(archive.path), "--rules", str(rules),
                    "--known-at", "2024-01-31", "--now-known-at", "2030-01-01")
    assert_one_line_error(known, "expired", "known at")


def test_restatements_of_an_archive_of_ones_own(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    archive = club_archive(tmp_path / "club")
    known = archive.scan().select(pl.col("recorded_at").max()).collect().item().isoformat()
    archive.append(pl.DataFrame({"event_id": ["late"], "tenant": ["bé"], "member": ["ü-1"],
                                 "event_type": ["Spent"], "amount": [-50],
                                 "event_time": [datetime(2024, 2, 1, tzinfo=UTC)]}))
    rules = tmp_path / "club.toml"
    rules.write_text(CLUB_RULES)
    [late] = pl.read_csv(io.StringIO(run_cli(capsys, "restatements", str(archive.path),
                                             "--rules", str(rules), "--format", "csv",
                                             "--known-at", known,
                                             "--now-known-at", "2099-01-01").stdout),
                         infer_schema=False).rows(named=True)
    assert {k: late[k] for k in ("tenant", "member", "event_id", "amount", "points_then",
                                 "points_now", "points_delta", "last_then", "last_now")} == {
        "tenant": "bé", "member": "ü-1", "event_id": "late", "amount": "-0.50",
        "points_then": "1.01", "points_now": "0.51", "points_delta": "-0.50",
        "last_then": "1-1", "last_now": "late"}


def test_the_table_shows_text_ids_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    archive = club_archive(tmp_path / "club")
    rules = tmp_path / "club.toml"
    rules.write_text(CLUB_RULES)
    done = run_cli(capsys, "replay", str(archive.path), "--rules", str(rules))
    assert [row[:2] for row in table_rows(done.stdout)] == [
        ["tenant", "member"], ["acme", "9f1c0a5e-0000-4000-8000-000000000001"], ["acme", "m-1"],
        ["bé", "ü-1"]]
