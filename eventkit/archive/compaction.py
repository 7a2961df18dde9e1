"""Compaction: runs of small data files merged into larger ones, the rows unchanged."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from eventkit.archive import datafiles, head, ledger
from eventkit.archive._files import clean_interrupted, tidying
from eventkit.archive.digest import in_log_order
from eventkit.archive.rewrite import TARGET_ROWS, RewriteWriter, delete_files, rewrite_record
from eventkit.archive.store import Store
from eventkit.archive.table import EventArchive
from eventkit.exceptions import ArchiveError, foreign_errors
from eventkit.sources.upcast import UNMARKED_VERSION

__all__ = ["RETAIN_S", "CompactReport", "compact"]

#: How long the files a compaction replaced stay on disk (seconds): readers that
#: resolved an earlier version before the commit may still be reading them.
RETAIN_S = 600.0


@dataclass(frozen=True)
class CompactReport:
    """What :func:`compact` did: files and bytes before and after, the new head.

    ``version`` is the compaction's commit (``None`` when there was nothing to merge).
    """

    version: int | None
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    head: str


@foreign_errors(ArchiveError, "compact {0}")
def compact(
    archive: EventArchive | str | Path,
    *,
    target_rows: int = TARGET_ROWS,
    keep_old: bool = False,
) -> CompactReport:
    """Merge runs of small data files into files of up to ``target_rows`` rows.

    Every input file is checked against its hash first; the merged rows (in
    ``seq`` order: a bucketed append's files each hold one bucket's rows) are
    read back from each new file and must hash to the same content digest as
    the rows of the files they replace, or nothing is committed. The commit records, in
    the hash chain, which files were replaced by which and that content digest;
    ``verify`` recomputes it. Earlier versions stay readable (``scan(version=v)``
    reads the merged files up to that version's last ``seq``). The replaced
    files stay on disk for :data:`RETAIN_S` seconds — a reader that resolved an
    earlier version before the commit may still be reading them — and a later
    ``compact`` deletes them, as Delta's ``vacuum`` does after its retention
    (``keep_old``: this call deletes none).

    Examples
    --------
    >>> import tempfile
    >>> from datetime import datetime, UTC
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> for i in range(3):
    ...     _ = archive.append(pl.DataFrame({"event_id": [f"e{i}"], "account_id": [1],
    ...         "event_type": ["Deposit"], "amount": [100],
    ...         "event_time": [datetime(2024, 1, 1 + i, tzinfo=UTC)]}))
    >>> report = compact(archive)
    >>> report.files_before, report.files_after, archive.verify().ok
    (3, 1, True)
    >>> archive.scan().select("seq").collect()["seq"].to_list()
    [0, 1, 2]

    """
    archive = archive if isinstance(archive, EventArchive) else EventArchive(archive)
    if target_rows < 1:
        msg = f"target_rows must be at least 1, not {target_rows}"
        raise ArchiveError(msg, path=archive.location)
    store = archive.store
    with archive.writing():
        state = head.log_state(store)
        entries = state.live
        clean_interrupted(store, state.version, entries)
        for entry in entries:
            datafiles.check_data_file(store, entry)
        before = (len(entries), sum(e["bytes"] for e in entries))
        plan = [g for g in _runs(entries, target_rows) if len(g) > 1]
        last = state.record
        if not plan:
            if not keep_old:
                delete_files(store, _retired(store, time.time() - RETAIN_S))
            return CompactReport(None, before[0], before[0], before[1], before[1],
                                 last["digest"])
        version = state.version + 1
        groups: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        with RewriteWriter(store, version) as writer:
            for i, run in enumerate(plan):
                merged = in_log_order(pl.concat([_stored(store, e) for e in run]))
                content = ledger.content_digest([merged])
                entry = writer.write(merged, i, content, _version(run[0]))
                files.append(entry)
                groups.append({"removed": [e["path"] for e in run], "files": [entry["path"]],
                               "rows": entry["rows"], "content": content})
            record = rewrite_record(last, "compact", groups, files, {})
            removed = [e for run in plan for e in run]
            writer.commit(record, removed, operation="OPTIMIZE")
        if not keep_old:
            with tidying():  # committed: files left now go with the next compaction
                delete_files(store, _retired(store, time.time() - RETAIN_S))
    # (from what was committed, not read again: the store may fail now, after the commit)
    return CompactReport(version, before[0], before[0] - len(removed) + len(files), before[1],
                         before[1] - sum(e["bytes"] for e in removed)
                         + sum(e["bytes"] for e in files), record["digest"])


def _retired(store: Store, before: float) -> list[dict[str, Any]]:
    """Files still stored that compactions before ``before`` (epoch s) or expiries removed.

    An expiry deletes its files at once: those still here, the store kept.
    """
    live = {e["path"] for e in head.log_state(store).live}
    out = []
    for commit in ledger.read_log(store):
        record = commit.record or {}
        kind = record.get("kind")
        if kind not in ledger.REWRITE_KINDS or (
                kind == "compact" and datetime.fromisoformat(record["at"]).timestamp() >= before):
            continue
        out += [{"path": path} for group in record.get("groups", [])
                for path in group["removed"] if path not in live and store.exists(path)]
    return out


def _runs(entries: list[dict[str, Any]], target_rows: int) -> list[list[dict[str, Any]]]:
    """Consecutive small files of one schema version, cut before ``target_rows`` is exceeded."""
    runs: list[list[dict[str, Any]]] = [[]]
    rows = 0
    for entry in entries:
        n = entry.get("rows", 0)
        if n >= target_rows or rows + n > target_rows or (
                runs[-1] and _version(runs[-1][-1]) != _version(entry)):
            runs.append([])
            rows = 0
        if n < target_rows:
            runs[-1].append(entry)
            rows += n
    return runs


def _stored(store: Store, entry: dict[str, Any]) -> pl.DataFrame:
    """A data file's rows as stored (no upcast: a merged file keeps its files' version)."""
    return pl.read_parquet(store.uri(entry["path"]), storage_options=store.storage_options)


def _version(entry: dict[str, Any]) -> int:
    return int(entry.get("schema_version", UNMARKED_VERSION))
