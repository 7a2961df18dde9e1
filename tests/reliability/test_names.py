"""Names that attack: SQL identifiers, view URLs, report names and paths in commits.

Every identifier that reaches SQL is quoted (a field called ``x INTEGER, y`` is a
column of that name, in SQLite and DuckDB alike); a view URL names a file
(never ``:memory:``, never another URL); DuckDB never installs or loads an
extension or reads anything but the view file; a report run's name is a plain
file name kept inside ``--out``; every path a commit names stays inside the
table folder — ``scan`` and ``verify`` refuse ``../x.parquet``, absolute paths,
encoded paths and links that lead outside, even after the attacker recomputed
the hash chain.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import nbformat
import polars as pl
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from test_verify import commit_json, data_file, three_appends

import eventkit
from eventkit import CorruptionError, EventArchive, ReportError, ViewError
from eventkit.archive import ledger
from eventkit.questions.viewdb import connect
from eventkit.questions.views import materialize, refresh
from eventkit.rules.model import Field, Handler, RuleSet
from eventkit.workbench.reports import Run, load_runs, run_reports

ROOT = Path(__file__).resolve().parents[2]
T = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]

# ---------------------------------------------------------------------- SQL identifiers

HOSTILE = ['x INTEGER, y', 'a"b', "c); DROP TABLE accounts_history; --", "ünïcode", "select"]


def hostile_rules() -> RuleSet:
    return RuleSet(name="hostile", fields=tuple(Field(n) for n in HOSTILE),
                   handlers=(Handler("Deposit", dict.fromkeys(HOSTILE, "amount")),))


def batch(n: int = 2) -> pl.DataFrame:
    return pl.DataFrame({"event_id": [f"e{i}" for i in range(n)], "account_id": [1, 2][:n],
                         "event_type": ["Deposit"] * n, "event_time": T[:n],
                         "amount": [500, 700][:n]})


def events() -> pl.DataFrame:
    return batch().with_columns(seq=pl.int_range(2), recorded_at=pl.col("event_time"))


@pytest.mark.parametrize("scheme", ["sqlite", "duckdb"])
def test_hostile_field_names_are_columns_never_sql(tmp_path: Path, scheme: str) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(batch(1))
    rules = hostile_rules()
    db = tmp_path / f"views.{scheme}"
    materialize(eventkit.replay(archive, rules), f"{scheme}:///{db}")
    archive.append(batch(2).tail(1))
    assert refresh(f"{scheme}:///{db}", rules).new_events == 1

    if scheme == "sqlite":
        con: Any = sqlite3.connect(db)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = [r[1] for r in con.execute('PRAGMA table_info("accounts_state")')]
    else:
        con = duckdb.connect(str(db), read_only=True)
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables")
                  .fetchall()}
        columns = [r[0] for r in con.execute("DESCRIBE accounts_state").fetchall()]
    assert tables == {"accounts_state", "accounts_history", "eventkit_views"}  # nothing dropped
    assert columns == ["account_id", *HOSTILE, "events", "last_event_time"]
    quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in HOSTILE)
    rows = con.execute(f"SELECT account_id, {quoted} FROM accounts_state ORDER BY 1").fetchall()
    assert rows == [(1, *[500] * len(HOSTILE)), (2, *[700] * len(HOSTILE))]
    assert con.execute("SELECT count(*) FROM accounts_history").fetchone() == (2,)


@pytest.mark.parametrize("scheme", ["sqlite", "duckdb"])
def test_names_sql_cannot_tell_apart_or_hold_are_refused(tmp_path: Path, scheme: str) -> None:
    twins = RuleSet(name="twins", fields=(Field("Total"), Field("total")),
                    handlers=(Handler("Deposit", {"Total": "amount"}),))
    result = eventkit.replay(events(), twins)
    with pytest.raises(ViewError, match="differ only in case"):
        materialize(result, f"{scheme}:///{tmp_path / 'v.db'}")
    for table in ["a b", "x;drop", "t\u00e4", "", "1x"]:
        with pytest.raises(ViewError, match="not a plain SQL name"):
            materialize(eventkit.replay(events()), f"{scheme}:///{tmp_path / 'v.db'}", table=table)


@pytest.mark.parametrize("url", [
    "sqlite:///:memory:", "duckdb:///:memory:", "duckdb:///:memory:shared", "sqlite:///",
    "duckdb:///md:my_db", "duckdb:///s3://bucket/views.duckdb", "sqlite:///file:v?mode=memory",
    "duckdb:///http://example.com/v.duckdb", "postgres:///views",
])
def test_view_urls_must_name_a_file(url: str) -> None:
    with pytest.raises(ViewError, match="url"):
        materialize(eventkit.replay(events()), url)
    with pytest.raises(ViewError, match="url"):
        refresh(url)


def test_a_view_url_naming_a_folder_is_refused_and_a_relative_one_is_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ViewError, match="folder"):
        materialize(eventkit.replay(events()), f"sqlite:///{tmp_path}")
    monkeypatch.chdir(tmp_path)
    materialize(eventkit.replay(events()), "duckdb:///rel.duckdb")
    assert (tmp_path / "rel.duckdb").is_file()


def test_duckdb_reads_and_writes_the_view_file_and_nothing_else(tmp_path: Path) -> None:
    # self-test: a plain DuckDB connection does try to load an extension for a URL
    with pytest.raises(duckdb.Error, match="httpfs|extension"):
        duckdb.connect(str(tmp_path / "plain.duckdb")).execute(
            "SELECT * FROM 'https://127.0.0.1:9/x.parquet'")
    with connect(f"duckdb:///{tmp_path / 'v.duckdb'}", "test") as db:
        for sql in ["INSTALL httpfs", "LOAD httpfs", "SELECT * FROM 'https://127.0.0.1:9/x.csv'",
                    f"SELECT * FROM read_csv('{ROOT / 'pyproject.toml'}')",
                    f"ATTACH '{tmp_path / 'other.duckdb'}'",
                    "SET enable_external_access = true", "SET autoinstall_known_extensions = true",
                    "SET autoload_known_extensions = true"]:
            with pytest.raises(duckdb.Error):
                db.execute(sql)
            db.execute("ROLLBACK")
            db.execute("BEGIN")
    assert not (tmp_path / "other.duckdb").exists()


# ---------------------------------------------------------------------- report names


def notebook(folder: Path, name: str = "a.ipynb") -> Path:
    cell = new_code_cell("x = 1")
    cell.metadata["tags"] = ["parameters"]
    kernel = {"name": "eventkit", "display_name": "Python (eventkit)", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[cell], metadata={"kernelspec": kernel}), folder / name)
    return folder / name


@pytest.mark.parametrize("name", ["../escape", "/tmp/escape", "sub/escape", ".hidden", "",
                                  "a\\b", "tab\there", "x" * 201])
def test_report_names_are_plain_file_names(tmp_path: Path, name: str) -> None:
    notebook(tmp_path / "nb")
    config = tmp_path / "r.yaml"
    config.write_text(json.dumps({"runs": [{"name": name, "notebook": "a.ipynb"}]}))
    with pytest.raises(ReportError, match=r"runs\[0\]\.name: .* not a plain file name"):
        load_runs(config, tmp_path / "nb")
    with pytest.raises(ReportError, match="not a plain file name"):
        run_reports([Run(name, tmp_path / "nb" / "a.ipynb")], tmp_path / "out")
    assert not (tmp_path / "escape.ipynb").exists() and not list((tmp_path / "out").iterdir())


def test_report_outputs_never_follow_a_link_out_of_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.html").symlink_to(tmp_path / "elsewhere.html")
    with pytest.raises(ReportError, match="leads outside"):
        run_reports([Run("a", notebook(tmp_path / "nb"))], out)
    assert not (tmp_path / "elsewhere.html").exists() and not (out / "a.ipynb").exists()


def test_a_notebook_outside_the_notebook_folder_is_refused(tmp_path: Path) -> None:
    notebook(tmp_path, "outside.ipynb")
    (tmp_path / "nb").mkdir()
    config = tmp_path / "r.yaml"
    config.write_text("runs: [{name: x, notebook: ../outside.ipynb}]")
    with pytest.raises(ReportError, match="outside"):
        load_runs(config, tmp_path / "nb")


# ---------------------------------------------------------------------- paths in commits


def rechain(archive: EventArchive, version: int, edit: Callable[[dict[str, Any]], None]
            ) -> None:
    """Apply ``edit`` to commit ``version``'s actions, then recompute every digest after it,
    as an attacker who can write the folder would."""
    prev = ledger.read_commit(archive.path, version - 1).record["digest"]  # type: ignore[index]
    for v in range(version, archive.version + 1):
        path = commit_json(archive, v)
        actions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for action in actions:
            if v == version:
                edit(action)
            if "commitInfo" in action:
                record = json.loads(action["commitInfo"]["eventkit"])
                if v == version:
                    edit(record)
                record["prev"] = prev
                record["digest"] = prev = ledger.chain_digest(prev, record)
                action["commitInfo"]["eventkit"] = json.dumps(record)
        path.write_text("".join(json.dumps(a) + "\n" for a in actions))


def move_file(rel: str) -> Callable[[dict[str, Any]], None]:
    """Point commit 2's data file (an add action, or its record) at ``rel``."""
    def edit(obj: dict[str, Any]) -> None:
        if "add" in obj:
            obj["add"]["path"] = rel
        for entry in obj.get("files", []):
            entry["path"] = rel
    return edit


@pytest.mark.parametrize("rel", ["../outside.parquet", "sub/../../outside.parquet",
                                 "/ABS/outside.parquet", "%2E%2E/outside.parquet",
                                 "file:///ABS/outside.parquet", "./part.parquet",
                                 "a//b.parquet"])
def test_commit_paths_leaving_the_folder_are_refused_even_rechained(
        tmp_path: Path, rel: str) -> None:
    archive = three_appends(tmp_path / "bank")
    outside = tmp_path / "outside.parquet"
    shutil.copy(data_file(archive, 2), outside)  # the same bytes: its hash matches the record
    rel = rel.replace("/ABS", str(tmp_path))
    rechain(archive, 2, move_file(rel))
    # self-test: without the path check the chain is consistent and the file hashes right
    assert all(ledger.read_commit(archive.path, v).record for v in range(4))

    with pytest.raises(CorruptionError, match="leaves the table folder") as info:
        EventArchive(archive.path).scan().collect()
    assert info.value.file is not None and info.value.file.endswith("00002.json")
    with pytest.raises(CorruptionError, match="leaves the table folder"):
        EventArchive(archive.path).scan(verify=False).collect()
    report = archive.verify()
    assert not report.ok and report.problems[0].startswith("commit 2: names a file path")
    assert EventArchive(archive.path).scan(version=1).collect().height == 3  # before: readable


def test_a_data_file_linked_outside_the_folder_is_refused(tmp_path: Path) -> None:
    archive = three_appends(tmp_path / "bank")
    target = data_file(archive, 2)
    outside = tmp_path / "outside.parquet"
    shutil.move(target, outside)
    target.symlink_to(outside)  # same bytes, same hash: only the link gives it away
    for verify in (True, False):
        with pytest.raises(CorruptionError, match="outside the table folder") as info:
            EventArchive(archive.path).scan(verify=verify).collect()
        assert info.value.file == str(target)
    report = archive.verify()
    assert [p for p in report.problems if "outside the table folder" in p]
    assert report.files_checked == 2  # the linked file was never opened


def test_links_that_stay_inside_the_folder_are_followed(tmp_path: Path) -> None:
    archive = three_appends(tmp_path / "real")
    link = tmp_path / "bank"
    link.symlink_to(archive.path)  # the archive folder itself may be a link
    target = data_file(archive, 2)
    (archive.path / "kept").mkdir()
    shutil.move(target, archive.path / "kept" / target.name)
    target.symlink_to(archive.path / "kept" / target.name)  # a link inside the folder
    linked = EventArchive(link)
    assert linked.scan().collect().height == 9
    assert linked.verify().problems == [f"file kept/{target.name} is not part of any commit "
                                        "(added behind the archive's back)"]


def test_the_cli_names_a_commit_leaving_the_folder_in_one_line(tmp_path: Path) -> None:
    archive = three_appends(tmp_path / "bank")
    shutil.copy(data_file(archive, 2), tmp_path / "outside.parquet")
    rechain(archive, 2, move_file("../outside.parquet"))
    done = subprocess.run([sys.executable, "-m", "eventkit", "replay", str(archive.path)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "leaves the table folder" in done.stderr
