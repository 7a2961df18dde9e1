"""What a write killed midway leaves beside an archive, and its removal.

Every file eventkit writes locally is first written under a hidden temporary
name ending in :data:`LEFTOVER` and renamed into place only once complete and
flushed (:class:`eventkit.archive.store.LocalStore`, snapshot sets, live
checkpoints): a failed write removes its temporary file, a killed one leaves
it, and the next writer of the folder removes it (holding the folder's lock).
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["LEFTOVER", "clean_leftovers"]

#: The suffix of a temporary file or folder not yet renamed into place.
LEFTOVER = ".tmp"


def clean_leftovers(folder: Path) -> list[str]:
    """Remove what writes killed midway left in ``folder`` (call it holding the folder's lock).

    Returns the names removed.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / ".state.json.1f2e.tmp").write_text("{")
    1
    >>> clean_leftovers(folder), list(folder.iterdir())
    (['.state.json.1f2e.tmp'], [])

    """
    gone = []
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(LEFTOVER):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                gone.append(entry.name)
    return gone
