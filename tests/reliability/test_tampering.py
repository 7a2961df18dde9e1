"""Tampering beyond tests/test_verify.py: reordered, replayed, transplanted and forged commits.

tests/test_verify.py covers edited, deleted, swapped and added files and commit
edits one by one. Here: changes to the *order* of the log, and rewrites an
attacker makes consistent. Every inconsistent change makes ``verify`` name the
first bad link and every read raise ``CorruptionError`` (never other numbers);
a consistent rewrite or a forged append is caught against a saved head digest.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from conftest import make_events
from test_verify import (  # noqa: F401 (archive: fixture)
    archive,
    commit_json,
    data_file,
    three_appends,
)

from eventkit import CorruptionError, EventArchive
from eventkit.archive.verify import verify_log


def swap(a: Path, b: Path) -> None:
    tmp = a.with_name(a.name + ".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def reorder_1_2(target: EventArchive) -> None:
    swap(commit_json(target, 1), commit_json(target, 2))


def reorder_2_3(target: EventArchive) -> None:
    swap(commit_json(target, 2), commit_json(target, 3))


def replay_commit_2_as_4(target: EventArchive) -> None:
    """The same batch committed twice (its data file listed again)."""
    shutil.copy(commit_json(target, 2), commit_json(target, 4))


def transplant_commit_2(target: EventArchive) -> None:
    """Commit 2 and its data file taken from a look-alike target."""
    twin = three_appends(target.path.parent / "twin")  # same appends, other digests
    data_file(target, 2).unlink()
    commit_json(target, 2).write_bytes(commit_json(twin, 2).read_bytes())
    shutil.copy(data_file(twin, 2), target.path / data_file(twin, 2).name)


def drop_2_and_renumber(target: EventArchive) -> None:
    data_file(target, 2).unlink()
    commit_json(target, 2).unlink()
    commit_json(target, 3).rename(commit_json(target, 2))


TAMPERING: dict[str, tuple[Callable[[EventArchive], None], int]] = {
    # what is done, and the commit verify must name first
    "commits-1-and-2-reordered": (reorder_1_2, 1),
    "commits-2-and-3-reordered": (reorder_2_3, 2),
    "commit-2-replayed-as-4": (replay_commit_2_as_4, 4),
    "commit-2-transplanted-from-another-archive": (transplant_commit_2, 2),
    "commit-2-dropped-and-3-renumbered": (drop_2_and_renumber, 2),
}


@pytest.mark.parametrize("name", TAMPERING)
def test_reordered_replayed_or_transplanted_commits(archive: EventArchive, name: str) -> None:  # noqa: F811
    tamper, bad = TAMPERING[name]
    answers = {v: archive.scan(version=v).collect() for v in range(archive.version + 1)}

    tamper(archive)

    report = archive.verify()
    assert not report.ok
    assert report.problems[0].startswith(f"commit {bad}:"), report.problems
    with pytest.raises(CorruptionError) as info:
        EventArchive(archive.path).scan().collect()
    assert info.value.file is not None and "_delta_log" in info.value.file
    # versions before the first bad link still give their old answers
    for v in range(bad):
        assert EventArchive(archive.path).scan(version=v).collect().equals(answers[v])


def test_forged_append_is_caught_only_against_the_saved_head(archive: EventArchive) -> None:  # noqa: F811
    """Anyone who can write the folder and run eventkit can extend the chain."""
    saved = archive.head
    fork = archive.path.parent / "fork"
    shutil.copytree(archive.path, fork)
    EventArchive(fork).append(make_events([(1, "Withdrawal", 99_999, 9)]).drop(
        "seq", "recorded_at").with_columns(event_id=pl.lit("forged")))
    for version in (4,):  # copy the forged commit and its file back
        shutil.copy(commit_json(EventArchive(fork), version), commit_json(archive, version))
        shutil.copy(data_file(EventArchive(fork), version), archive.path)

    assert archive.verify().ok  # a well-formed append: the chain is not signed
    caught = archive.verify(expect=saved)
    assert not caught.ok
    assert "head at commit 3, 1 commit(s) were appended since" in caught.problems[0]


@pytest.mark.slow
def test_archive_rebuilt_from_scratch_is_caught_by_the_cli_with_expect(
    archive: EventArchive,  # noqa: F811
) -> None:
    saved = archive.head
    events = archive.scan().collect()
    shutil.rmtree(archive.path)
    rebuilt = EventArchive.create(archive.path)
    altered = events.with_columns(amount=pl.when(pl.col("seq") == 0).then(1)
                                  .otherwise(pl.col("amount")))
    for _, batch in altered.group_by(pl.col("event_id").str.slice(-1), maintain_order=True):
        rebuilt.append(batch.drop("seq"), recorded_at="keep")
    assert rebuilt.verify().ok and rebuilt.head != saved

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eventkit", "verify", str(archive.path),
                               "--no-progress", *args], capture_output=True, text=True,
                              check=False, timeout=120)

    assert cli().returncode == 0  # consistent in itself
    result = cli("--expect", saved)
    assert result.returncode == 1
    assert saved in result.stdout and "rewritten" in result.stdout
    assert verify_log(archive.path, expect=rebuilt.head).ok
