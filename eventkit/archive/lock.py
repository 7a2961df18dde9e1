"""Locks: the archive's writer lock, and the one of each store of derived state.

The writer lock lets one writer at a time change an archive on this machine's
file system. Appends take it around their checks and commit; compaction and
expiry around their rewrite. Readers never take it: a Delta commit is atomic,
and every read pins a version. (The commit itself is put-if-absent too, so a
writer that skips the lock still cannot overwrite another's commit: it gets
an :class:`~eventkit.exceptions.AppendConflictError`.)

:func:`exclusive` is the same ``flock`` on any file: derived state (a live
replay's checkpoints, snapshot sets, views) is saved under it, so concurrent
processes take turns and never save a state that mixes versions.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from eventkit.archive import ledger
from eventkit.exceptions import AppendConflictError

__all__ = ["TIMEOUT_S", "exclusive", "writer_lock"]

#: How long a writer waits for the lock before giving up, in seconds.
TIMEOUT_S = 120.0


@contextmanager
def exclusive(path: Path, *, timeout: float | None = None,
              error: Callable[[str], Exception]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (made if missing), waiting ``timeout`` s.

    (Default: :data:`TIMEOUT_S`, read at each call.)

    When it stays held by another process that long, raises ``error(message)``.

    Examples
    --------
    >>> import tempfile
    >>> with exclusive(Path(tempfile.mkdtemp()) / "x.lock", error=RuntimeError):
    ...     pass

    """
    timeout = TIMEOUT_S if timeout is None else timeout
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = f"{path} stayed locked by another process for {timeout:.0f} s"
                    raise error(msg) from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive writer lock of the archive at ``root`` (an ``flock`` on a file).

    Examples
    --------
    >>> import tempfile
    >>> with writer_lock(Path(tempfile.mkdtemp())):
    ...     pass

    """
    def busy(message: str) -> AppendConflictError:
        return AppendConflictError(f"archive {root} stayed locked by another writer ({message})",
                                   path=str(root))

    with exclusive(root / ledger.PRIVATE_DIR / "append.lock", error=busy):
        yield
