"""Data files against their record: each one's size and SHA-256, hashed once per process.

A commit's record lists each data file it adds with its size and SHA-256
(:mod:`eventkit.archive.ledger`); :func:`check_data_file` and :func:`check_bytes`
hold a file to them before it is read, and remember the files that passed (by
the stat fields any rewrite changes) so repeated scans only ``stat`` them.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventkit.archive.ledger import as_store, check_inside
from eventkit.archive.store import Stat, Store
from eventkit.exceptions import CorruptionError

__all__ = ["check_bytes", "check_data_file", "remember_verified", "sha256_file", "sha256_of"]

_CHUNK = 1 << 20
#: Files whose SHA-256 matched their record in this process, by location and the stat
#: fields any rewrite changes (size, and mtime, ctime, inode or an ETag): repeated scans
#: only ``stat`` them.
_VERIFIED: dict[tuple[object, ...], str] = {}
_VERIFIED_MAX = 1_000_000
#: A file changed within this long of its last change can keep its stat fields
#: (timestamps are coarse): such a file is hashed on every read until it is older.
_RACY_NS = 1_000_000_000


def sha256_file(path: Path, *, on_bytes: Callable[[int], object] | None = None) -> str:
    """Hex SHA-256 of a local file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return h.hexdigest()


def sha256_of(store: Store, rel: str, *, on_bytes: Callable[[int], object] | None = None
              ) -> str:
    """Hex SHA-256 of the file ``rel`` of ``store`` (read in chunks locally, one GET else)."""
    if store.local:
        return sha256_file(store.path(rel), on_bytes=on_bytes)
    data = store.read(rel)
    if on_bytes is not None:
        on_bytes(len(data))
    return hashlib.sha256(data).hexdigest()


def check_data_file(root: Path | str | Store, entry: dict[str, Any]) -> str:
    """Check a data file against its record entry (size, then SHA-256); return its URI.

    Raises :class:`~eventkit.exceptions.CorruptionError` naming the file when it is
    missing, of another size, or hashes differently. A file that passed once in
    this process is not hashed again while its stat stays the same (locally
    size, mtime, ctime and inode: any rewrite changes its ctime; in an object
    store its size and ETag), unless a local file had changed less than a second
    before it was hashed (timestamps are coarse; it is hashed again).
    """
    store = as_store(root)
    rel = entry["path"]
    where = store.uri(rel)
    check_inside(store, rel)
    try:
        st = store.stat(rel)
    except OSError as exc:
        st, problem = None, f" ({exc})"
    else:
        problem = ""
    if st is None:
        msg = f"{store.root}: data file {rel} is missing or unreadable{problem}"
        raise CorruptionError(msg, path=store.root, file=where) from None
    if st.size != entry.get("bytes"):
        msg = (f"{store.root}: data file {rel} is damaged: {st.size:,} bytes instead of "
               f"the {entry.get('bytes'):,} recorded")
        raise CorruptionError(msg, path=store.root, file=where)
    if _VERIFIED.get(_stat_key(store, rel, st)) == entry.get("sha256"):
        return where
    try:
        digest = sha256_of(store, rel)
    except OSError as exc:
        msg = f"{store.root}: data file {rel} is unreadable ({exc})"
        raise CorruptionError(msg, path=store.root, file=where) from None
    _same_digest(store, entry, digest)
    remember_verified(store, rel, digest, st)
    return where


def check_bytes(store: Store, entry: dict[str, Any], data: bytes, st: Stat) -> bytes:
    """Check the bytes of a data file read from ``store`` against its record entry.

    What :func:`check_data_file` checks, on bytes fetched to be parsed (one
    request per file in an object store): the size, then the SHA-256 unless
    these bytes (size and ETag) passed before in this process.
    """
    rel = entry["path"]
    check_inside(store, rel)
    if len(data) != entry.get("bytes"):
        msg = (f"{store.root}: data file {rel} is damaged: {len(data):,} bytes instead of "
               f"the {entry.get('bytes'):,} recorded")
        raise CorruptionError(msg, path=store.root, file=store.uri(rel))
    key = _stat_key(store, rel, st)
    if not st.tag or _VERIFIED.get(key) != entry.get("sha256"):
        _same_digest(store, entry, hashlib.sha256(data).hexdigest())
        if st.tag and not store.local:
            _VERIFIED[key] = entry["sha256"]
    return data


def _same_digest(store: Store, entry: dict[str, Any], digest: str) -> None:
    if digest != entry.get("sha256"):
        msg = (f"{store.root}: data file {entry['path']} is damaged or was changed: its "
               "SHA-256 differs from the one recorded")
        raise CorruptionError(msg, path=store.root, file=store.uri(entry["path"]))


def remember_verified(root: Path | str | Store, rel: str, digest: str,
                      st: Stat | None = None) -> None:
    """Record that ``rel`` hashes to ``digest`` (see :func:`check_data_file`).

    ``st`` is the file's stat taken before hashing; nothing is recorded when the
    file changed since.
    """
    store = as_store(root)
    now = store.stat(rel)
    if now is None or (st is not None and now != st):
        return
    if store.local and time.time_ns() - now.changed_ns < _RACY_NS:
        return  # "racily clean": a change in the same clock tick would look the same
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[_stat_key(store, rel, now)] = digest


def _stat_key(store: Store, rel: str, st: Stat) -> tuple[object, ...]:
    where = os.path.abspath(store.uri(rel)) if store.local else store.uri(rel)
    return (where, st.size, *st.tag)
