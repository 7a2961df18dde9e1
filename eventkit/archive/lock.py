"""The archive's writer lock: one writer at a time per archive on this machine's file system.

Appends take it around their checks and commit; compaction and expiry around
their rewrite. Readers never take it: a Delta commit is atomic, and every
read pins a version. (The commit itself is put-if-absent too, so a writer
that skips the lock still cannot overwrite another's commit: it gets an
:class:`~eventkit.exceptions.AppendConflictError`.)
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eventkit.archive import ledger
from eventkit.exceptions import AppendConflictError

__all__ = ["TIMEOUT_S", "writer_lock"]

#: How long a writer waits for the lock before giving up, in seconds.
TIMEOUT_S = 120.0


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive writer lock of the archive at ``root`` (an ``flock`` on a file).

    Examples
    --------
    >>> import tempfile
    >>> with writer_lock(Path(tempfile.mkdtemp())):
    ...     pass

    """
    private = root / ledger.PRIVATE_DIR
    private.mkdir(exist_ok=True)
    with (private / "append.lock").open("a") as handle:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = f"archive {root} stayed locked by another writer"
                    raise AppendConflictError(msg, path=str(root)) from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
