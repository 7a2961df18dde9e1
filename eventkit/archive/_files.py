"""The archive's data files: durable writes and checked, upcasting reads."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import polars as pl
import pyarrow as pa
from deltalake import Schema
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    PostCommitHookProperties,
    create_table_with_add_actions,
)
from polars.io.plugins import register_io_source

from eventkit.archive import ledger
from eventkit.archive.durable import fsync, write_durably
from eventkit.exceptions import CorruptionError, ValidationError
from eventkit.schema import CANONICAL_SCHEMA
from eventkit.sources.upcast import CURRENT_VERSION, UNMARKED_VERSION, UPCASTERS, VERSION_KEY

__all__ = [
    "NO_CHECKPOINTS",
    "clean_interrupted",
    "create_table",
    "delta_schema",
    "fsync",
    "read_files",
    "reject_known_ids",
    "remove_written",
    "write_data_file",
    "write_durably",
]


def reject_known_ids(root: Path, entries: list[dict[str, Any]], schema: dict[str, pl.DataType],
                     rows: pl.DataFrame, source: str) -> None:
    """Raise for the first id of ``rows`` already stored in the data files ``entries`` lists."""
    ids = rows["event_id"]
    known = (
        read_files(root, entries, schema)
        .select("event_id")
        .filter(pl.col("event_id").is_between(pl.lit(ids.min()), pl.lit(ids.max()))
                & pl.col("event_id").is_in(ids.implode()))
        .head(1)
        .collect()
    )
    if known.height:
        dup = known.item(0, 0)
        row = rows.with_row_index().filter(pl.col("event_id") == dup).item(0, "index")
        msg = f"event_id {dup!r} is already in the archive"
        raise ValidationError(msg, source=source, column="event_id", row=row)


#: Commits eventkit makes write no Delta checkpoint and expire no log (the hash chain needs it).
NO_CHECKPOINTS = PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False)


def read_files(root: Path, entries: list[dict[str, Any]],
                schema: dict[str, pl.DataType] = CANONICAL_SCHEMA) -> pl.LazyFrame:
    """One lazy scan of the data files ``entries`` lists, in order.

    Polars reads the files with projection, predicate and row-limit pushdown, a
    group of small files (up to :data:`_ROWS_PER_READ` rows) at a time. Files
    whose ``seq`` ranges interleave (the buckets of one commit) are read in one
    group and its rows put in ``seq`` order. An error
    or a panic of the Parquet reader (``PanicException`` is no ``Exception``) on
    a damaged file becomes :class:`CorruptionError`; an error raised by the query
    itself (a failing cast in a filter) passes through unchanged. Files of an
    older schema version (see :mod:`eventkit.sources.upcast`) are read in groups of their
    own and upcast to the current shape before any predicate sees them.
    """
    if not entries:
        return pl.LazyFrame(schema=schema)
    ranges: list[tuple[int, int]] = []
    for e in entries:
        ranges.append(_seq_range(e, ranges[-1][1] if ranges else -1))
    later_min = [r[0] for r in ranges]  # the smallest seq of this file and all after it
    for i in range(len(ranges) - 2, -1, -1):
        later_min[i] = min(later_min[i], later_min[i + 1])
    # groups of consecutive files of one schema version; a group is never cut where seq
    # ranges interleave (the buckets of one commit, which share a version)
    groups: list[tuple[int, list[Path]]] = []
    ordered: list[bool] = []  # whether each group's files, read in order, are in seq order
    rows, high = 0, -1
    for entry, (low, top), after in zip(entries, ranges, later_min, strict=True):
        version = entry.get("schema_version", UNMARKED_VERSION)
        path = root / entry["path"]
        if not groups or version != groups[-1][0] or (
                rows + entry.get("rows", 0) > _ROWS_PER_READ and high < after):
            UPCASTERS.chain(version, source=str(path))  # a version we read, or a clear error
            groups.append((version, []))
            ordered.append(True)
            rows = 0
        ordered[-1] = ordered[-1] and low > high
        groups[-1][1].append(path)
        rows += entry.get("rows", 0)
        high = max(high, top)

    def source(with_columns: list[str] | None, predicate: pl.Expr | None,
               n_rows: int | None, _batch_size: int | None) -> Iterator[pl.DataFrame]:
        left = n_rows
        for (version, group), in_order in zip(groups, ordered, strict=True):
            if left is not None and left <= 0:
                return
            stored = UPCASTERS.stored_schema(version, schema)
            lf = pl.scan_parquet(group, schema=stored)
            if version != CURRENT_VERSION:
                lf = UPCASTERS.to_canonical(UPCASTERS.upcast(lf, version), schema)
            if predicate is not None:
                lf = lf.filter(predicate)
            if not in_order:
                lf = lf.sort("seq")
            if with_columns is not None:
                lf = lf.select(with_columns)
            if left is not None:
                lf = lf.head(left)
            try:
                frame = lf.collect()
            except (Exception, pl.exceptions.PanicException) as exc:
                _raise_unreadable(root, group, exc, stored)
            if left is not None:
                left -= frame.height
            yield frame

    return register_io_source(source, schema=schema, is_pure=True,
                              explain_name="eventkit archive")


def _seq_range(entry: dict[str, Any], after: int) -> tuple[int, int]:
    """The smallest and largest ``seq`` of a data file, from its recorded statistics.

    A file recorded without statistics (archives written before they were
    recorded were never bucketed) is taken to follow the file before it.
    """
    if "stats" not in entry:
        return after + 1, after + 1
    stats = json.loads(entry["stats"])
    return int(stats["minValues"]["seq"]), int(stats["maxValues"]["seq"])


def _raise_unreadable(root: Path, group: list[Path], exc: BaseException,
                      schema: dict[str, pl.DataType]) -> NoReturn:
    """Name the file of ``group`` that cannot be read; re-raise ``exc`` if they all can."""
    for path in group:
        try:  # does the file itself read, without the query's expressions?
            pl.scan_parquet(path, schema=schema).collect()
        except (Exception, pl.exceptions.PanicException) as damage:
            text = str(damage).strip()
            first = text.splitlines()[0][:300] if text else ""
            msg = (f"{root}: data file {path.name} cannot be read ({type(damage).__name__}: "
                   f"{first}); the archive is damaged (run eventkit verify)")
            raise CorruptionError(msg, path=str(root), file=str(path)) from None
    raise exc


def write_data_file(path: Path, part: pl.DataFrame, schema_version: int = UNMARKED_VERSION
                     ) -> tuple[dict[str, Any], AddAction]:
    """Write ``part`` durably; its record entry (marked when not :data:`UNMARKED_VERSION`)."""
    marked = schema_version != UNMARKED_VERSION
    part.write_parquet(path, compression="zstd", statistics=True, row_group_size=256 * 1024,
                       metadata={VERSION_KEY: str(schema_version)} if marked else None)
    before = path.stat()
    with path.open("rb") as f:
        os.fsync(f.fileno())
    size = before.st_size
    digest = ledger.sha256_file(path)
    ledger.remember_verified(path, digest, before)
    stats = {
        "numRecords": part.height,
        "minValues": {c: _stat(part[c].min()) for c in ("seq", "account_id", "event_time",
                                                         "recorded_at")},
        "maxValues": {c: _stat(part[c].max()) for c in ("seq", "account_id", "event_time",
                                                         "recorded_at")},
        "nullCount": {c: part[c].null_count() for c in CANONICAL_SCHEMA},
    }
    stats_text = json.dumps(stats)
    entry = {"path": path.name, "sha256": digest, "bytes": size,
             "rows": part.height, "stats": stats_text,
             **({"schema_version": schema_version} if marked else {})}
    add = AddAction(path.name, size, {}, int(time.time() * 1000), True, stats_text)
    return entry, add


def _stat(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def delta_schema(schema: dict[str, pl.DataType]) -> Schema:
    return Schema.from_arrow(pa.schema(pl.DataFrame(schema=schema).to_arrow().schema))


def remove_written(written: list[tuple[Path, Path]]) -> None:
    for data, intent in written:
        data.unlink(missing_ok=True)
        intent.unlink(missing_ok=True)


_ROWS_PER_READ = 1_000_000  # small files are read together, up to this many rows


def clean_interrupted(root: Path, latest: int, committed: set[str]) -> None:
    """Remove data files (and commit files) of appends and rewrites that died before their commit.

    An intent names a data file and, in the name, the version its append
    meant to commit. Once that version is taken (``latest`` or before), the
    append can no longer commit (commits are pinned to one version), so its
    file goes; ``committed`` data files stay, only their intent goes. An
    intent for a later version may belong to a writer still at work (one
    that does not share this lock): it stays until a commit takes its version.
    """
    for tmp in (root / ledger.LOG_DIR).glob(".*.json.*.tmp"):  # a commit written, not linked
        meant = tmp.name[1:].split(".", 1)[0]
        if meant.isdigit() and int(meant) <= latest:
            tmp.unlink(missing_ok=True)
    folder = root / ledger.PRIVATE_DIR / "pending"
    if not folder.is_dir():
        return
    for intent in folder.glob("*.intent"):
        name = intent.name.removesuffix(".intent")
        if name in committed:
            intent.unlink(missing_ok=True)
            continue
        meant = name.split("-")[1] if name.startswith("part-") else ""
        if meant.isdigit() and int(meant) > latest:
            continue
        (root / name).unlink(missing_ok=True)
        intent.unlink(missing_ok=True)


def create_table(root: Path, schema: Schema, configuration: dict[str, str],
                 record: dict[str, Any]) -> None:
    """Create the empty Delta table of a new archive, its genesis ``record`` in commit 0."""
    create_table_with_add_actions(
        str(root),
        schema,
        [],
        name="eventkit archive",
        configuration=configuration,
        commit_properties=CommitProperties(custom_metadata={"eventkit": json.dumps(record)}),
        post_commithook_properties=NO_CHECKPOINTS,
    )
    (root / ledger.PRIVATE_DIR).mkdir()
    (root / ledger.PRIVATE_DIR / "append.lock").touch()

