"""Files written so that a crash or a full disk leaves the old one or the new one, never a mix.

Everything eventkit writes beside an archive goes through here: data files and
commits (flushed to disk before they count), and derived state — checkpoints,
snapshot sets, manifests — written under a temporary name and renamed over the
old one only once complete and flushed. A failed write removes its temporary
file; a killed one leaves a hidden ``.*.tmp`` that :func:`clean_leftovers`
removes (the next writer calls it, under its lock).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LEFTOVER", "clean_leftovers", "fsync", "replaced", "write_durably"]

#: The suffix of a temporary file or folder not yet renamed into place.
LEFTOVER = ".tmp"


def fsync(path: Path) -> None:
    """Flush a file or a folder (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to disk."""
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``; written without error, it replaces ``path`` durably.

    The block writes the new content (a file, or a folder) to the path it is
    given; at its end that is flushed and renamed to ``path`` (an old folder of
    that name is moved aside first and removed after). On any error nothing is
    renamed and the temporary file or folder is removed: ``path`` is as before.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "state.json"
    >>> with replaced(target) as tmp:
    ...     write_durably(tmp, b"{}")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('{}', ['state.json'])

    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{LEFTOVER}")
    try:
        yield tmp
        if tmp.is_dir():
            for child in tmp.iterdir():
                fsync(child)
        fsync(tmp)
        old = path.with_name(f".{path.name}.{uuid.uuid4().hex}.old{LEFTOVER}")
        if path.is_dir():
            os.replace(path, old)
        os.replace(tmp, path)
        fsync(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        _remove(tmp)


def clean_leftovers(folder: Path) -> list[str]:
    """Remove what writes killed midway left in ``folder`` (call it holding the folder's lock).

    Returns the names removed.
    """
    gone = []
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(LEFTOVER):
                _remove(entry)
                gone.append(entry.name)
    return gone


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
