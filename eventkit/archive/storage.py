"""The storage report: events, files, bytes and compression of an archive or Parquet folder.

:func:`info` reads only the commit log and each file's Parquet footer; the
audited rewrites that keep an archive in check are :func:`eventkit.compact`
(:mod:`eventkit.archive.compaction`) and :func:`eventkit.expire`
(:mod:`eventkit.replay.expire`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from eventkit.archive import ledger
from eventkit.archive.store import open_store
from eventkit.archive.table import EventArchive
from eventkit.exceptions import ArchiveError, CorruptionError, foreign_errors
from eventkit.sources.upcast import UNMARKED_VERSION, VERSION_COLUMN, file_version

__all__ = ["StorageReport", "info", "versions"]


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


@foreign_errors(ArchiveError, "info on {0}")
def info(path: str | Path, *, snapshots: str | Path | None = None,
         storage_options: Mapping[str, str] | None = None) -> StorageReport:
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
    store = open_store(path, storage_options)
    root = store.root
    versions = None
    rewrites: dict[str, int] = {}
    if store.is_folder(ledger.LOG_DIR):
        EventArchive(store)  # an eventkit archive (or a clear error)
        commits = ledger.read_log(store)
        rels = [e["path"] for e in ledger.live_files(store, commits)]
        versions = commits[-1].version
        for c in commits:
            if c.record and c.record.get("kind") in ledger.REWRITE_KINDS:
                rewrites[c.record["kind"]] = rewrites.get(c.record["kind"], 0) + 1
        kind = "eventkit archive"
    elif store.local and store.path("").is_dir():
        rels = sorted(p.relative_to(store.path("")).as_posix()
                      for p in store.path("").rglob("*.parquet")
                      if not any(s.startswith((".", "_"))
                                 for s in p.relative_to(store.path("")).parts))
        kind = "Parquet folder"
    else:
        msg = f"{root} is neither an eventkit archive nor a folder of Parquet files"
        raise ArchiveError(msg, path=root)
    rows = []
    for rel in rels:
        try:
            meta = pq.read_metadata(store.path(rel) if store.local else
                                    io.BytesIO(store.read(rel)))
        except (OSError, ValueError) as exc:
            msg = f"{root}: data file {rel} cannot be read ({exc}); run eventkit verify"
            raise CorruptionError(msg, path=root, file=store.uri(rel)) from None
        raw = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        st = store.stat(rel)
        rows.append((rel, rel.rpartition("/")[0] or ".", meta.num_rows,
                     st.size if st else 0, raw))
    files = pl.DataFrame(rows, schema={"file": pl.String, "partition": pl.String,
                                       "events": pl.Int64, "bytes": pl.Int64,
                                       "uncompressed_bytes": pl.Int64}, orient="row")
    partitions = (files.group_by("partition", maintain_order=True)
                  .agg(pl.len().cast(pl.Int64).alias("files"), pl.col("events").sum(),
                       pl.col("bytes").sum(), pl.col("uncompressed_bytes").sum()))
    snap = open_store(snapshots) if snapshots is not None else store.child(
        f"{ledger.PRIVATE_DIR}/snapshots")
    snap_sizes = [st.size for _, st in snap.listing("")] if snap.is_folder("") else []
    return StorageReport(
        path=root, kind=kind, events=int(files["events"].sum()),
        bytes=int(files["bytes"].sum()), uncompressed_bytes=int(files["uncompressed_bytes"].sum()),
        files=files, partitions=partitions, versions=versions, rewrites=rewrites,
        snapshot_files=len(snap_sizes), snapshot_bytes=sum(snap_sizes),
    )


def versions(path: str | Path) -> pl.DataFrame:
    """The schema version of every data file of an eventkit archive or a Parquet folder.

    One row per file: ``file``, ``schema_version`` (the file's marker, else
    :data:`UNMARKED_VERSION`; null for a foreign file whose rows carry a
    :data:`VERSION_COLUMN`) and ``events``. Reads records and footers only.

    Examples
    --------
    >>> import tempfile
    >>> from eventkit.sources.upcast import VERSION_KEY
    >>> folder = Path(tempfile.mkdtemp())
    >>> pl.DataFrame({"amount": [1.5]}).write_parquet(folder / "a.parquet",
    ...                                               metadata={VERSION_KEY: "1"})
    >>> pl.DataFrame({"amount": [150]}).write_parquet(folder / "b.parquet")
    >>> versions(folder).rows()
    [('a.parquet', 1, 1), ('b.parquet', 3, 1)]

    """
    root = Path(path)
    rows: list[tuple[str, int | None, int]] = []
    if (root / ledger.LOG_DIR).is_dir():
        for e in ledger.live_files(root):
            rows.append((e["path"], int(e.get("schema_version", UNMARKED_VERSION)),
                         int(e.get("rows", 0))))
    else:
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*.parquet")
            if not any(s.startswith((".", "_")) for s in p.relative_to(root).parts))
        for f in files:
            marked = file_version(f)
            per_row = marked is None and VERSION_COLUMN in pq.read_schema(f).names
            rows.append((str(f.relative_to(root)) if f != root else f.name,
                         None if per_row else UNMARKED_VERSION if marked is None else marked,
                         pq.read_metadata(f).num_rows))
    return pl.DataFrame(rows, schema={"file": pl.String, "schema_version": pl.Int64,
                                      "events": pl.Int64}, orient="row")
