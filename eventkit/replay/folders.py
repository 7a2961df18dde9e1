"""Where a bucketed replay writes: its results folder (or prefix), its scratch folder.

>>> scratch_folder("/results")
(PosixPath('/results/_buckets'), None)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from eventkit.archive.store import is_url, open_store
from eventkit.exceptions import ScaleError

__all__ = ["out_folder", "scratch_folder"]


def out_folder(out: str | Path | None, options: dict[str, str] | None) -> str | None:
    """``out`` made ready for a bucketed replay's results: a new prefix or an empty folder."""
    if out is None:
        return None
    if is_url(out):
        if open_store(out, options).list_files(""):
            msg = f"{out} is not empty; choose a new prefix for the results"
            raise ScaleError(msg, param="out")
        return str(out).rstrip("/")
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        msg = f"{folder} exists and is not an empty folder; choose a new folder for the results"
        raise ScaleError(msg, param="out")
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder.resolve())


def scratch_folder(out: str | None) -> tuple[Path, str | None]:
    """Where a source is split: ``<out>/_buckets``, or a temporary folder (to remove)."""
    if out is not None:
        return Path(out) / "_buckets", None
    folder = tempfile.mkdtemp(prefix="eventkit-buckets-")
    return Path(folder), folder
