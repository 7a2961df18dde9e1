"""Every error an eventkit error: public operations driven into foreign failures.

A read-only file system (a tmpfs the test mounts, fills with the state each
operation starts from, then remounts read-only: ``EROFS``), files that are not
what they should be (garbage in a key store or a view database, a directory
where a rules file or a data file should be), a database another program
holds: whatever the OS, Polars, DuckDB, SQLite or deltalake raise, the caller
gets a subclass of :class:`EventkitError` whose ``__cause__`` is the original.
(A full disk: tests/reliability/test_disk_full.py.)
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import eventkit
from eventkit import EventArchive, EventkitError, KeyStore, LiveReplay
from eventkit.banking.generate import generate
from eventkit.exceptions import is_foreign
from reliability import faults, workers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def read_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tmpfs holding each operation's starting state, remounted read-only."""
    mount = tmp_path_factory.mktemp("ro")
    faults.mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount))
    try:
        for operation in faults.OPERATIONS:
            (mount / operation).mkdir()
            faults.prepare(mount / operation, operation)
        faults.mount("-o", "remount,ro", str(mount))
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)] if os.geteuid() == 0 else
                       ["sudo", "-n", "umount", "--lazy", str(mount)], check=True)


def raises_ours(call: Callable[[], Any], name: str = "") -> EventkitError:
    """``call`` raises an eventkit error (never a foreign one); the error, for more checks."""
    try:
        call()
    except EventkitError as exc:
        return exc
    except BaseException as exc:  # the point: nothing else may escape
        pytest.fail(f"a foreign error escaped: {type(exc).__module__}.{type(exc).__name__}: "
                    f"{exc}")
    pytest.fail(f"{name}: no error at all")


@pytest.mark.parametrize("operation", faults.OPERATIONS)
def test_writing_on_a_read_only_file_system(read_only: Path, operation: str) -> None:
    err = raises_ours(lambda: faults.run(read_only / operation, operation))
    assert "Read-only file system" in str(err) or "readonly" in str(err).lower(), err
    assert err.__cause__ is not None and is_foreign(err.__cause__)


@pytest.mark.parametrize("call", [
    lambda ro: EventArchive.create(ro / "new-archive"),
    lambda ro: generate(ro / "gen", events=100, accounts=5, progress=False),
    lambda ro: KeyStore(ro / "new-keys.sqlite"),
    lambda ro: LiveReplay(ro / "checkpoint" / "bank", faults.RULES).catch_up(),
    lambda ro: eventkit.materialize(eventkit.replay(ro / "append" / "bank"),
                                    f"sqlite:///{ro / 'views.sqlite'}"),
], ids=["create", "generate", "key-store", "live-default-folder", "sqlite-view"])
def test_other_writers_on_a_read_only_file_system(read_only: Path,
                                                  call: Callable[[Path], Any]) -> None:
    raises_ours(lambda: call(read_only))


def test_files_that_are_not_what_they_should_be(tmp_path: Path) -> None:
    faults.prepare(tmp_path, "refresh")
    p = faults.paths(tmp_path)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(os.urandom(4096))
    rules_dir = tmp_path / "rules.toml"
    rules_dir.mkdir()
    cases: dict[str, Callable[[], Any]] = {
        "key store": lambda: KeyStore(garbage).keys(["a"]),
        "view database": lambda: eventkit.refresh(f"duckdb:///{garbage}"),
        "sqlite view": lambda: eventkit.refresh(f"sqlite:///{garbage}"),
        "rules file is a folder": lambda: eventkit.replay(p["bank"], rules_dir),
        "events file": lambda: eventkit.open_archive(garbage).collect(),
        "archive is a file": lambda: EventArchive(garbage),
        "replay of a garbage file": lambda: eventkit.replay(garbage).state().collect(),
    }
    for name, call in cases.items():
        err = raises_ours(call)
        assert str(err), name
    data = next(p["bank"].glob("*.parquet"))
    data.unlink()
    data.mkdir()  # a folder where a data file was
    for name, call in {
            "scan": lambda: EventArchive(p["bank"]).scan().collect(),
            "replay": lambda: eventkit.replay(p["bank"]).state().collect(),
            "refresh": lambda: eventkit.refresh(faults.url(tmp_path)),
            "snapshot": lambda: eventkit.snapshot(p["bank"]),
            "compact": lambda: eventkit.compact(p["bank"])}.items():
        raises_ours(call, name)
    # an append reads no earlier data file (constant cost): in a process that already knows
    # the archive's ids it may succeed; never with a foreign error, and reads still refuse
    try:
        EventArchive(p["bank"]).append(workers.make_batch("z"))
    except EventkitError:
        pass
    raises_ours(lambda: EventArchive(p["bank"]).scan().collect(), "scan after an append")
