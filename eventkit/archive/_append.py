"""The write side of an append: known ids, data files with intents, one put-if-absent commit.

Everything here costs the same whatever the archive's length: the log comes
from the verified head (:mod:`eventkit.archive.head`), the data files checked
are those added since this process last looked, and ids are looked up in a
per-process index of the archive's ids (hashes), grown with each append.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from eventkit.archive import datafiles, head, ledger
from eventkit.archive._files import (
    add_action,
    commit_actions,
    commit_version,
    data_name,
    read_files,
    remove_written,
    tidying,
    write_data_file,
    write_intent,
)
from eventkit.archive.store import Store
from eventkit.exceptions import AppendConflictError, ValidationError
from eventkit.sources.upcast import UPCASTERS, Upcasters

__all__ = ["check_new_files", "commit_batch", "reject_known_ids"]

_FORMAT = 1
#: Archives with more events than this are not indexed: each append then reads the ids
#: of the files whose statistics may hold the batch's (a cost that grows with the archive).
MAX_INDEXED = 20_000_000
_SEED = 0x5EED
#: Per archive (store root): how many leading live entries had their data files checked,
#: and the path of the last of them.
_FILES_CHECKED: dict[str, tuple[int, str | None]] = {}


class _Index:
    """Hashes of an archive's ids: a sorted array, plus a smaller sorted one of additions.

    An addition is merged into the small array (a copy of it, not of the large
    one); the small one is merged into the large one once it holds more than an
    eighth of it. A lookup is two binary searches: no cost grows with the number
    of appends since the last merge.
    """

    def __init__(self) -> None:
        self.covered = 0  # leading live entries whose ids are in
        self.last: str | None = None
        self.main = np.empty(0, dtype=np.uint64)
        self.extra = np.empty(0, dtype=np.uint64)

    def add(self, hashes: np.ndarray) -> None:
        new = np.sort(hashes)
        self.extra = np.insert(self.extra, np.searchsorted(self.extra, new), new)
        if len(self.extra) > max(65_536, len(self.main) // 8):
            self.main = np.insert(self.main, np.searchsorted(self.main, self.extra), self.extra)
            self.extra = np.empty(0, dtype=np.uint64)

    @property
    def empty(self) -> bool:
        return not len(self.main) and not len(self.extra)

    def hits(self, hashes: np.ndarray) -> np.ndarray:
        return _in_sorted(self.main, hashes) | _in_sorted(self.extra, hashes)


def _in_sorted(values: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Which ``hashes`` are in the sorted array ``values``."""
    if not len(values):
        return np.zeros(len(hashes), bool)
    at = np.searchsorted(values, hashes).clip(0, len(values) - 1)
    return values[at] == hashes


_INDEX: dict[str, _Index] = {}


def _hashes(ids: pl.Series) -> np.ndarray:
    return ids.hash(seed=_SEED).to_numpy()


def reject_known_ids(store: Store, live: list[dict[str, Any]], rows: pl.DataFrame,
                     schema: dict[str, pl.DataType], source: str, *,
                     upcasters: Upcasters = UPCASTERS) -> None:
    """Raise :class:`ValidationError` when an id of ``rows`` is in the archive already.

    The ids' hashes are looked up in the index (brought up to date with the
    files appended since); a hit is confirmed by reading the ids, so a hash
    collision never refuses a batch.
    """
    ids = rows["event_id"]
    index = _INDEX.get(store.root)
    fresh = index is None or index.covered > len(live) or (
        index.covered and live[index.covered - 1]["path"] != index.last)
    if fresh:
        if sum(int(e.get("rows", 0)) for e in live) > MAX_INDEXED:
            _INDEX.pop(store.root, None)
            _confirm(store, live, rows, schema, source, ids, upcasters)
            return
        index = _INDEX[store.root] = _Index()
    assert index is not None
    new = live[index.covered:]
    if new:
        known = (read_files(store, new, schema, upcasters=upcasters).select("event_id")
                 .collect()["event_id"])
        index.add(_hashes(known))
        index.covered, index.last = len(live), live[-1]["path"]
    if index.empty:  # a new archive: no id to meet
        return
    hit = index.hits(_hashes(ids))
    if hit.any():
        _confirm(store, live, rows, schema, source, ids.filter(pl.Series(hit)), upcasters)


def _confirm(store: Store, live: list[dict[str, Any]], rows: pl.DataFrame,
             schema: dict[str, pl.DataType], source: str, ids: pl.Series,
             upcasters: Upcasters) -> None:
    known = (read_files(store, live, schema, upcasters=upcasters).select("event_id")
             .filter(pl.col("event_id").is_between(pl.lit(ids.min()), pl.lit(ids.max()))
                     & pl.col("event_id").is_in(ids.implode()))
             .head(1).collect())
    if known.height:
        dup = known.item(0, 0)
        row = rows.with_row_index().filter(pl.col("event_id") == dup).item(0, "index")
        msg = f"event_id {dup!r} is already in the archive"
        raise ValidationError(msg, source=source, column="event_id", row=row)


def remember_ids(store: Store, live_after: list[dict[str, Any]], ids: pl.Series) -> None:
    """Add a committed batch's ids to the index (its files are the last live entries)."""
    index = _INDEX.get(store.root)
    if index is not None and index.covered == len(live_after) - 1:
        index.add(_hashes(ids))
        index.covered, index.last = len(live_after), live_after[-1]["path"]


def check_new_files(store: Store, state: head.LogState) -> None:
    """Check the data files added since this process last checked this archive's files.

    The first append of a process checks the files added after the newest
    checkpoint (each hashed once per process), later ones the files other
    writers added since: a cost that does not grow with the archive. (Reads
    check every file they read; ``verify`` checks them all.)
    """
    live = state.live
    done, last = _FILES_CHECKED.get(store.root, (state.base_files, None))
    if done > len(live) or (done and last is not None and live[done - 1]["path"] != last):
        done = state.base_files
    for entry in live[done:]:
        datafiles.check_data_file(store, entry)
    _FILES_CHECKED[store.root] = (len(live), live[-1]["path"] if live else None)


def commit_batch(store: Store, state: head.LogState, parts: list[tuple[int | None, pl.DataFrame]],
                 *, batch_id: str, start: int, rows: int, recorded_until: datetime,
                 meta: dict[str, Any] | None, schema_version: int,
                 key: tuple[str, ...] = ("account_id",)) -> dict[str, Any]:
    """Write ``parts`` as data files and commit them as version ``state.version + 1``.

    Each data file's intent is stored before the file; then, when one is due,
    a checkpoint of ``state``; then the commit, put-if-absent. A writer that
    loses the version gets :class:`AppendConflictError` and leaves nothing
    behind (its files and intents are removed). Returns the commit's record.
    """
    version = state.version + 1
    last = state.record
    written: list[tuple[str, str]] = []
    record: dict[str, Any] = {}
    try:
        files: list[dict[str, Any]] = []
        for i, (bucket, part) in enumerate(parts):
            name = data_name(version, i)
            written.append((name, write_intent(store, name, batch_id.encode())))
            entry = write_data_file(store, name, part, schema_version, key=key)
            if bucket is not None:
                entry["bucket"] = bucket
            files.append(entry)
        store.flush()
        record = {
            "format": _FORMAT,
            "kind": "append",
            "batch_id": batch_id,
            "rows": rows,
            "seq": [start, start + rows - 1],
            "files": files,
            "recorded_until": _latest(recorded_until, last.get("recorded_until")).isoformat(),
            "prev": last["digest"],
        }
        if meta is not None:
            record["meta"] = meta
        if head.checkpoint_due(state):
            record["checkpoint"] = head.write_checkpoint(store, state)
        record["digest"] = ledger.chain_digest(last["digest"], record)
        body = commit_actions(record, "WRITE", {"mode": "Append"},
                              [{"add": add_action(f)} for f in files])
        commit_version(store, version, body)
    except BaseException as exc:
        if not record or not _committed(store, version, record):
            remove_written(store, written)
            if isinstance(exc, AppendConflictError):
                raise
            if isinstance(exc, Exception) and store.exists(ledger.log_rel(version)):
                msg = (f"another writer committed version {version} of {store.root} first; "
                       f"nothing was written, retry the append ({type(exc).__name__}: {exc})")
                raise AppendConflictError(msg, path=store.root) from None
            raise
        if not isinstance(exc, Exception):  # interrupted after the commit landed: keep it
            raise
        # the commit landed but something after it failed: the append did happen
    with tidying():
        for _, intent in written:  # (a writer without the lock may have cleaned it already)
            store.delete(intent)
    return record


def _committed(store: Store, version: int, record: dict[str, Any]) -> bool:
    """Whether commit ``version`` exists and is the one carrying ``record``."""
    found = ledger.read_commit(store, version).record
    return found is not None and found.get("digest") == record.get("digest")


def _latest(batch: datetime, before: str | None) -> datetime:
    """The archive's latest ``recorded_at`` after a batch whose latest is ``batch``."""
    return batch if before is None else max(batch, datetime.fromisoformat(before))
