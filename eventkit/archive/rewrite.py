"""Audited rewrites of an archive (compaction, expiry): new files, one commit in the hash chain."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import polars as pl

from eventkit.archive import datafiles, ledger
from eventkit.archive._files import (
    add_action,
    clean_interrupted,
    commit_actions,
    commit_version,
    data_name,
    remove_written,
    tidying,
    write_data_file,
    write_intent,
)
from eventkit.archive.store import Store
from eventkit.exceptions import CorruptionError
from eventkit.sources.upcast import UNMARKED_VERSION

__all__ = ["TARGET_ROWS", "RewriteWriter", "delete_files", "rewrite_record"]


class RewriteWriter:
    """Data files of one rewrite commit, written with intents, committed or removed."""

    def __init__(self, store: Store, version: int) -> None:
        self.store, self.version = store, version
        self.written: list[tuple[str, str]] = []
        self.entries: list[dict[str, Any]] = []
        self.sides: list[str] = []
        self.committed = False

    def __enter__(self) -> RewriteWriter:
        return self

    def write(self, frame: pl.DataFrame, index: int, content: str,
              schema_version: int = UNMARKED_VERSION) -> dict[str, Any]:
        """Write ``frame`` (of ``schema_version``) as a data file whose rows hash to ``content``."""
        name = data_name(self.version, index)
        self.written.append((name, write_intent(self.store, name, b"rewrite")))
        entry = write_data_file(self.store, name, frame, schema_version)
        back = pl.read_parquet(io.BytesIO(self.store.read(name)))
        if ledger.content_digest([back]) != content:
            msg = f"{self.store.root}: the rewritten file {name} does not read back the same rows"
            raise CorruptionError(msg, path=self.store.root, file=self.store.uri(name))
        self.entries.append(entry)
        return entry

    def side_file(self, frame: pl.DataFrame, rel: str) -> dict[str, Any]:
        """Write ``frame`` to ``_eventkit/<rel>`` (removed unless committed); its record entry."""
        full = f"{ledger.PRIVATE_DIR}/{rel}"
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=True)
        data = buffer.getvalue()
        self.sides.append(full)
        self.store.write(full, data)
        return {"path": rel, "sha256": datafiles.sha256_of(self.store, full), "bytes": len(data),
                "rows": frame.height}

    def commit(self, record: dict[str, Any], removed: list[dict[str, Any]], *,
               operation: str, data_change: bool = False) -> None:
        """Commit the new files and the removal of ``removed`` as version ``self.version``."""
        now = int(datetime.now(UTC).timestamp() * 1000)
        actions: list[dict[str, Any]] = [
            *({"remove": {"path": e["path"], "deletionTimestamp": now,
                          "dataChange": data_change, "extendedFileMetadata": True,
                          "partitionValues": {}, "size": e["bytes"]}} for e in removed),
            *({"add": add_action(e, data_change=data_change)} for e in self.entries),
        ]
        self.store.flush()
        commit_version(self.store, self.version,
                       commit_actions(record, operation, {}, actions))
        self.committed = True
        # a rewrite killed before it committed this version meant it too: its files go
        with tidying():
            clean_interrupted(self.store, self.version,
                              [*ledger.live_files(self.store), *self.entries])

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            remove_written(self.store, self.written)
            for rel in self.sides:
                self.store.delete(rel)
        else:
            with tidying():
                for _, intent in self.written:
                    self.store.delete(intent)


def delete_files(store: Store, entries: list[dict[str, Any]]) -> None:
    """Delete the data files ``entries`` name (once a rewrite replaced them)."""
    for entry in entries:
        store.delete(entry["path"])
    store.flush()


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
