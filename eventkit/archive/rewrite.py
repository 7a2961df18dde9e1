"""Audited rewrites of an archive (compaction, expiry): new files, one commit in the hash chain."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from eventkit.archive import ledger
from eventkit.archive._files import clean_interrupted, write_data_file
from eventkit.archive.durable import fsync, write_durably
from eventkit.exceptions import AppendConflictError, CorruptionError
from eventkit.sources.upcast import UNMARKED_VERSION

__all__ = ["TARGET_ROWS", "RewriteWriter", "delete_files", "rewrite_record"]


class RewriteWriter:
    """Data files of one rewrite commit, written with intents, committed or removed."""

    def __init__(self, root: Path, version: int) -> None:
        self.root, self.version = root, version
        self.pending = root / ledger.PRIVATE_DIR / "pending"
        self.written: list[tuple[Path, Path]] = []
        self.adds: list[dict[str, Any]] = []
        self.sides: list[Path] = []
        self.committed = False

    def __enter__(self) -> RewriteWriter:
        self.pending.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, frame: pl.DataFrame, index: int, content: str,
              schema_version: int = UNMARKED_VERSION) -> dict[str, Any]:
        """Write ``frame`` (of ``schema_version``) as a data file whose rows hash to ``content``."""
        name = f"part-{self.version:08d}-{index:03d}-{uuid.uuid4().hex[:12]}.parquet"
        path, intent = self.root / name, self.pending / f"{name}.intent"
        self.written.append((path, intent))
        write_durably(intent, b"rewrite")
        fsync(self.pending)
        entry, add = write_data_file(path, frame, schema_version)
        if ledger.content_digest([pl.read_parquet(path)]) != content:
            msg = f"{self.root}: the rewritten file {name} does not read back the same rows"
            raise CorruptionError(msg, path=str(self.root), file=str(path))
        self.adds.append({"path": add.path, "partitionValues": {}, "size": add.size,
                          "modificationTime": add.modification_time, "dataChange": False,
                          "stats": add.stats})
        return entry

    def side_file(self, frame: pl.DataFrame, rel: str) -> dict[str, Any]:
        """Write ``frame`` to ``_eventkit/<rel>`` (removed unless committed); its record entry."""
        path = self.root / ledger.PRIVATE_DIR / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sides.append(path)
        frame.write_parquet(path, compression="zstd", statistics=True)
        with path.open("rb") as f:
            os.fsync(f.fileno())
        fsync(path.parent)
        return {"path": rel, "sha256": ledger.sha256_file(path), "bytes": path.stat().st_size,
                "rows": frame.height}

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
        fsync(self.root)
        final = ledger.log_path(self.root, self.version)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
        write_durably(tmp, "".join(json.dumps(a) + "\n" for a in actions).encode())
        try:
            os.link(tmp, final)  # put-if-absent: the version is ours or nobody's
        except FileExistsError:
            msg = (f"another writer committed version {self.version} first; nothing was "
                   "changed, retry")
            raise AppendConflictError(msg, path=str(self.root)) from None
        finally:
            tmp.unlink(missing_ok=True)
        fsync(final.parent)
        self.committed = True
        # a rewrite killed before it committed this version meant it too: its files go
        kept = {e["path"] for e in ledger.live_files(self.root)} | {a["path"] for a in self.adds}
        clean_interrupted(self.root, self.version, kept)

    def __exit__(self, *exc: object) -> None:
        for path, intent in self.written:
            if not self.committed:
                path.unlink(missing_ok=True)
            intent.unlink(missing_ok=True)
        for path in self.sides if not self.committed else ():
            path.unlink(missing_ok=True)


def delete_files(root: Path, entries: list[dict[str, Any]]) -> None:
    """Delete the data files ``entries`` name (once a rewrite replaced them)."""
    for entry in entries:
        (root / entry["path"]).unlink(missing_ok=True)
    fsync(root)


def rewrite_record(last: dict[str, Any], kind: str, groups: list[dict[str, Any]],
                   files: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    """The hash-chained record of a rewrite of ``kind``, continuing from ``last``."""
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


#: Files below this many rows are merged by :func:`compact` (up to this many per file).
TARGET_ROWS = 1_000_000
