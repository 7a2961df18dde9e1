"""The archive's lifecycle: compaction, retention (expiry) and the storage report.

An archive only grows, in one data file per append. Two audited rewrites keep
it in check, each one Delta commit carrying eventkit's record in the hash chain
(see :func:`eventkit.ledger.apply_record`), which ``verify`` accepts while any
foreign ``optimize``, ``delete`` or ``restore`` is still reported:

* :func:`compact` merges runs of small files into larger zstd files. The rows
  do not change: the record holds their content digest (before = after), the
  Delta removes and adds are ``dataChange=false`` (what the Delta protocol
  allows on an append-only table), and every answer stays the same.
* :func:`expire` replaces the events dated before a cut-off with one opening
  event per key; see its docstring.

:func:`info` reports events, files, bytes and compression.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from eventkit import ledger
from eventkit.archive import EventArchive, _fsync, _write_data_file, _write_durably
from eventkit.exceptions import AppendConflictError, ArchiveError, CorruptionError

__all__ = ["CompactReport", "StorageReport", "compact", "info"]

#: Files below this many rows are merged by :func:`compact` (up to this many per file).
TARGET_ROWS = 1_000_000


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


def compact(
    archive: EventArchive | str | Path,
    *,
    target_rows: int = TARGET_ROWS,
    keep_old: bool = False,
) -> CompactReport:
    """Merge runs of small data files into files of up to ``target_rows`` rows.

    Every input file is checked against its hash first; the merged rows are
    read back from each new file and must hash to the same content digest as
    the files they replace, or nothing is committed. The commit records, in
    the hash chain, which files were replaced by which and that content digest;
    ``verify`` recomputes it. The replaced files are then deleted (``keep_old``
    leaves them on disk, as Delta's ``vacuum`` would before its retention).
    Earlier versions stay readable (``scan(version=v)`` reads the merged files
    up to that version's last ``seq``).

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
        raise ArchiveError(msg, path=str(archive.path))
    root = archive.path
    with archive._lock():
        commits = ledger.read_log(root)
        entries = ledger.live_files(root, commits)
        for entry in entries:
            ledger.check_data_file(root, entry)
        before = (len(entries), sum(e["bytes"] for e in entries))
        plan = [g for g in _runs(entries, target_rows) if len(g) > 1]
        last = commits[-1].record or {}
        if not plan:
            return CompactReport(None, before[0], before[0], before[1], before[1],
                                 last["digest"])
        version = commits[-1].version + 1
        groups: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        with _Writer(root, version) as writer:
            for i, run in enumerate(plan):
                frames = [pl.read_parquet(root / e["path"]) for e in run]
                content = ledger.content_digest(frames)
                entry = writer.write(pl.concat(frames), i, content)
                files.append(entry)
                groups.append({"removed": [e["path"] for e in run], "files": [entry["path"]],
                               "rows": entry["rows"], "content": content})
            record = _record(last, "compact", groups, files, {})
            removed = [e for run in plan for e in run]
            writer.commit(record, removed, operation="OPTIMIZE")
        if not keep_old:
            _delete(root, removed)
    after = ledger.live_files(root)
    return CompactReport(version, before[0], len(after), before[1],
                         sum(e["bytes"] for e in after), record["digest"])


def _runs(entries: list[dict[str, Any]], target_rows: int) -> list[list[dict[str, Any]]]:
    """Consecutive small files, cut where the next would exceed ``target_rows``."""
    runs: list[list[dict[str, Any]]] = [[]]
    rows = 0
    for entry in entries:
        n = entry.get("rows", 0)
        if n >= target_rows or rows + n > target_rows:
            runs.append([])
            rows = 0
        if n < target_rows:
            runs[-1].append(entry)
            rows += n
    return runs


def _record(last: dict[str, Any], kind: str, groups: list[dict[str, Any]],
            files: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "format": 1,
        "kind": kind,
        "at": datetime.now(UTC).isoformat(),
        **extra,
        "groups": groups,
        "files": files,
        "prev": last["digest"],
    }
    for carried in ("seq", "recorded_until"):  # what the next append continues from
        if carried in last:
            record[carried] = last[carried]
    record["digest"] = ledger.chain_digest(last["digest"], record)
    return record


class _Writer:
    """Data files of one rewrite commit, written with intents, committed or removed."""

    def __init__(self, root: Path, version: int) -> None:
        self.root, self.version = root, version
        self.pending = root / ledger.PRIVATE_DIR / "pending"
        self.written: list[tuple[Path, Path]] = []
        self.adds: list[dict[str, Any]] = []
        self.committed = False

    def __enter__(self) -> _Writer:
        self.pending.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, frame: pl.DataFrame, index: int, content: str) -> dict[str, Any]:
        """Write ``frame`` as a new data file; its rows must hash to ``content``."""
        name = f"part-{self.version:08d}-{index:03d}-{uuid.uuid4().hex[:12]}.parquet"
        path, intent = self.root / name, self.pending / f"{name}.intent"
        self.written.append((path, intent))
        _write_durably(intent, b"rewrite")
        _fsync(self.pending)
        entry, add = _write_data_file(path, frame)
        if ledger.content_digest([pl.read_parquet(path)]) != content:
            msg = f"{self.root}: the rewritten file {name} does not read back the same rows"
            raise CorruptionError(msg, path=str(self.root), file=str(path))
        self.adds.append({"path": add.path, "partitionValues": {}, "size": add.size,
                          "modificationTime": add.modification_time, "dataChange": False,
                          "stats": add.stats})
        return entry

    def commit(self, record: dict[str, Any], removed: list[dict[str, Any]], *,
               operation: str, data_change: bool = False) -> None:
        """Commit the new files and the removal of ``removed`` as version ``self.version``."""
        now = int(datetime.now(UTC).timestamp() * 1000)
        for add in self.adds:
            add["dataChange"] = data_change
        actions: list[dict[str, Any]] = [
            {"commitInfo": {"timestamp": now, "operation": operation,
                            "operationParameters": {}, "clientVersion": "eventkit",
                            "eventkit": json.dumps(record)}},
            *({"remove": {"path": e["path"], "deletionTimestamp": now,
                          "dataChange": data_change, "extendedFileMetadata": True,
                          "partitionValues": {}, "size": e["bytes"]}} for e in removed),
            *({"add": add} for add in self.adds),
        ]
        _fsync(self.root)
        final = ledger.log_path(self.root, self.version)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
        _write_durably(tmp, "".join(json.dumps(a) + "\n" for a in actions).encode())
        try:
            os.link(tmp, final)  # put-if-absent: the version is ours or nobody's
        except FileExistsError:
            msg = (f"another writer committed version {self.version} first; nothing was "
                   "changed, retry")
            raise AppendConflictError(msg, path=str(self.root)) from None
        finally:
            tmp.unlink(missing_ok=True)
        _fsync(final.parent)
        self.committed = True

    def __exit__(self, *exc: object) -> None:
        for path, intent in self.written:
            if not self.committed:
                path.unlink(missing_ok=True)
            intent.unlink(missing_ok=True)


def _delete(root: Path, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        (root / entry["path"]).unlink(missing_ok=True)
    _fsync(root)


# ---------------------------------------------------------------------- storage report
@dataclass(frozen=True)
class StorageReport:
    """What :func:`info` found: sizes of an archive (or Parquet folder) and its parts.

    ``partitions`` has one row per folder of data files (hive partitions of a
    Parquet folder; ``.`` for an archive, which is not partitioned) with
    ``files``, ``events``, ``bytes`` and ``uncompressed_bytes``; ``files`` the
    same per data file. ``snapshot_bytes`` totals the files under the snapshot
    folder (``snapshot_files`` of them).
    """

    path: str
    kind: str
    events: int
    bytes: int
    uncompressed_bytes: int
    files: pl.DataFrame
    partitions: pl.DataFrame
    versions: int | None = None
    rewrites: dict[str, int] = field(default_factory=dict)
    snapshot_files: int = 0
    snapshot_bytes: int = 0

    @property
    def compression_ratio(self) -> float:
        """Uncompressed over stored bytes of the data pages (0 when empty)."""
        return self.uncompressed_bytes / self.bytes if self.bytes else 0.0

    def __str__(self) -> str:
        lines = [
            f"{self.kind} {self.path}",
            f"  events       {self.events:,}",
            f"  data files   {self.files.height:,}",
            f"  bytes        {self.bytes:,} ({self.uncompressed_bytes:,} uncompressed, "
            f"ratio {self.compression_ratio:.2f})",
        ]
        if self.versions is not None:
            done = ", ".join(f"{n} {k}" for k, n in sorted(self.rewrites.items())) or "none"
            lines.append(f"  versions     {self.versions + 1:,} (audited rewrites: {done})")
        lines.append(f"  snapshots    {self.snapshot_files:,} files, {self.snapshot_bytes:,} "
                     "bytes")
        lines.append("  partition                          files       events        bytes")
        lines += [f"  {p:<30} {f:>9,} {e:>12,} {b:>12,}" for p, f, e, b, _ in
                  self.partitions.iter_rows()]
        return "\n".join(lines)


def info(path: str | Path, *, snapshots: str | Path | None = None) -> StorageReport:
    """Storage report of an eventkit archive or a folder of Parquet files.

    Reads only the commit log and each file's Parquet footer (no data pages).
    ``snapshots`` is a folder of cached states to total (default: the
    archive's ``_eventkit/snapshots`` when it exists).

    Examples
    --------
    >>> import tempfile
    >>> from datetime import datetime, UTC
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> _ = archive.append(pl.DataFrame({"event_id": ["a", "b"], "account_id": [1, 2],
    ...     "event_type": ["Deposit", "Deposit"], "amount": [100, 5],
    ...     "event_time": [datetime(2024, 1, 1, tzinfo=UTC)] * 2}))
    >>> report = info(archive.path)
    >>> report.events, report.files.height, report.versions, report.compression_ratio > 0
    (2, 1, 1, True)

    """
    root = Path(path)
    versions = None
    rewrites: dict[str, int] = {}
    if (root / ledger.LOG_DIR).is_dir():
        EventArchive(root)  # an eventkit archive (or a clear error)
        commits = ledger.read_log(root)
        paths = [root / e["path"] for e in ledger.live_files(root, commits)]
        versions = commits[-1].version
        for c in commits:
            if c.record and c.record.get("kind") in ledger.REWRITE_KINDS:
                rewrites[c.record["kind"]] = rewrites.get(c.record["kind"], 0) + 1
        kind = "eventkit archive"
    elif root.is_dir():
        paths = sorted(p for p in root.rglob("*.parquet")
                       if not any(s.startswith((".", "_")) for s in p.relative_to(root).parts))
        kind = "Parquet folder"
    else:
        msg = f"{root} is neither an eventkit archive nor a folder of Parquet files"
        raise ArchiveError(msg, path=str(root))
    rows = []
    for p in paths:
        try:
            meta = pq.read_metadata(p)
        except (OSError, ValueError) as exc:
            msg = f"{root}: data file {p.name} cannot be read ({exc}); run eventkit verify"
            raise CorruptionError(msg, path=str(root), file=str(p)) from None
        raw = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        rows.append((str(p.relative_to(root)), str(p.parent.relative_to(root)), meta.num_rows,
                     p.stat().st_size, raw))
    files = pl.DataFrame(rows, schema={"file": pl.String, "partition": pl.String,
                                       "events": pl.Int64, "bytes": pl.Int64,
                                       "uncompressed_bytes": pl.Int64}, orient="row")
    partitions = (files.group_by("partition", maintain_order=True)
                  .agg(pl.len().cast(pl.Int64).alias("files"), pl.col("events").sum(),
                       pl.col("bytes").sum(), pl.col("uncompressed_bytes").sum()))
    snap = Path(snapshots) if snapshots is not None else root / ledger.PRIVATE_DIR / "snapshots"
    snap_files = [p for p in snap.rglob("*") if p.is_file()] if snap.is_dir() else []
    return StorageReport(
        path=str(root), kind=kind, events=int(files["events"].sum()),
        bytes=int(files["bytes"].sum()), uncompressed_bytes=int(files["uncompressed_bytes"].sum()),
        files=files, partitions=partitions, versions=versions, rewrites=rewrites,
        snapshot_files=len(snap_files), snapshot_bytes=sum(p.stat().st_size for p in snap_files),
    )
