"""A full disk during every operation: a small tmpfs the test mounts, fills and unmounts.

Each operation of :mod:`reliability.faults` runs on a tmpfs filled with a ballast
file up to a few bytes or kilobytes short of full, at several levels, so that the
writes run out of room at different points (``ENOSPC``, a real one: not a
``RLIMIT_FSIZE``, which gives ``EFBIG``). The operation must succeed or raise an
eventkit error — never an ``OSError``, a Polars, DuckDB, SQLite or deltalake
error — and leave everything as :func:`reliability.faults.check` requires.

Mounting needs root (or ``sudo -n``), as ``make test`` does for Chromium.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventkit import EventkitError
from reliability import faults

pytestmark = pytest.mark.slow

SIZE = 48 << 20
LEVELS = (0, 4 << 10, 32 << 10, 128 << 10, 512 << 10, 2 << 20)  # bytes left free
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tmpfs of :data:`SIZE` bytes, mounted for these tests and unmounted after."""
    mount = tmp_path_factory.mktemp("tmpfs")
    try:
        faults.mount("-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)] if os.geteuid() == 0 else
                       ["sudo", "-n", "umount", "--lazy", str(mount)], check=True)
    print(f"\ndisk-full trials: {dict(sorted(OUTCOMES.items()))}")


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """A ballast file taking all but ``leave`` bytes of the disk."""
    ballast = disk / "ballast"
    with ballast.open("wb") as f:
        size = free(disk) - leave
        if size > 0:
            os.posix_fallocate(f.fileno(), 0, size)
    return ballast


@pytest.mark.parametrize("operation", faults.OPERATIONS)
def test_a_full_disk_changes_nothing_or_completes(disk: Path, operation: str) -> None:
    failed = 0
    for level in LEVELS:
        root = disk / f"{operation}-{level}"
        root.mkdir()
        faults.prepare(root, operation)
        ballast = fill(disk, level)
        try:
            faults.run(root, operation)
            done = True
        except EventkitError as exc:  # the one kind of error a caller sees
            assert "No space left" in str(exc) or "disk is full" in str(exc) \
                or "full" in str(exc), exc
            done = False
        finally:
            ballast.unlink()
        failed += not done
        OUTCOMES[f"{operation}: {'completed' if done else 'refused, nothing changed'}"] += 1
        assert faults.leftovers(root) == [] or not done or operation == "append", \
            faults.leftovers(root)
        faults.check(root, operation, done=done)
        root.rename(disk / f"{operation}-{level}-checked")  # keep the names unique
        _remove(disk / f"{operation}-{level}-checked")
    assert failed > 0, f"the disk never filled up during {operation}"


def _remove(path: Path) -> None:
    subprocess.run(["rm", "-rf", str(path)], check=True)
