"""The archive's data files: durable writes and checked, upcasting reads."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import date, datetime
from typing import Any, NoReturn

import polars as pl
import pyarrow as pa
from deltalake import Schema
from polars.io.plugins import register_io_source

from eventkit.archive import datafiles, ledger
from eventkit.archive.store import STAGING, Store, fsync, write_durably
from eventkit.exceptions import (
    AppendConflictError,
    CorruptionError,
    ExpiredError,
    SchemaError,
    StorageError,
)
from eventkit.schema import CANONICAL_SCHEMA
from eventkit.sources.upcast import (
    UNMARKED_VERSION,
    UPCASTERS,
    VERSION_KEY,
    Upcasters,
)

__all__ = [
    "add_action",
    "clean_interrupted",
    "commit_actions",
    "create_table",
    "delta_schema",
    "read_files",
    "remove_written",
    "tidying",
    "write_data_file",
]


def read_files(store: Store, entries: list[dict[str, Any]],
               schema: dict[str, pl.DataType] = CANONICAL_SCHEMA, *,
               check: bool = False, upcasters: Upcasters = UPCASTERS) -> pl.LazyFrame:
    """One lazy scan of the data files ``entries`` lists, in order.

    From an object store each file is fetched once (several at a time) and
    parsed from memory; with ``check`` its bytes are first checked against
    the entry (:func:`eventkit.archive.datafiles.check_bytes`). Local files are
    read in place (check them with ``check_data_file`` first).

    Polars reads the files with projection, predicate and row-limit pushdown, a
    group of small files (up to :data:`_ROWS_PER_READ` rows) at a time. Files
    whose ``seq`` ranges interleave (the buckets of one commit) are read in one
    group and its rows put in ``seq`` order. An error
    or a panic of the Parquet reader (``PanicException`` is no ``Exception``) on
    a damaged file becomes :class:`CorruptionError`; an error raised by the query
    itself (a failing cast in a filter) passes through unchanged. Files of an
    older schema version (see :mod:`eventkit.sources.upcast`) are read in groups of their
    own and upcast to the current shape (by ``upcasters``: the archive's, with
    the columns it added since) before any predicate sees them.
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
    groups: list[tuple[int, list[dict[str, Any]]]] = []
    ordered: list[bool] = []  # whether each group's files, read in order, are in seq order
    rows, high = 0, -1
    for entry, (low, top), after in zip(entries, ranges, later_min, strict=True):
        version = entry.get("schema_version", UNMARKED_VERSION)
        path = store.uri(entry["path"])
        if not groups or version != groups[-1][0] or (
                rows + entry.get("rows", 0) > _ROWS_PER_READ and high < after):
            upcasters.chain(version, source=path)  # a version we read, or a clear error
            groups.append((version, []))
            ordered.append(True)
            rows = 0
        ordered[-1] = ordered[-1] and low > high
        groups[-1][1].append(entry)
        rows += entry.get("rows", 0)
        high = max(high, top)

    def source(with_columns: list[str] | None, predicate: pl.Expr | None,
               n_rows: int | None, _batch_size: int | None) -> Iterator[pl.DataFrame]:
        left = n_rows
        for (version, group), in_order in zip(groups, ordered, strict=True):
            if left is not None and left <= 0:
                return
            stored = upcasters.stored_schema(version, schema)
            names = [store.uri(e["path"]) for e in group]
            sources: list[str] | list[bytes] = names if store.local else _fetch(store, group,
                                                                                  check=check)
            lf = pl.scan_parquet(sources, schema=stored)
            if version != upcasters.current:
                lf = upcasters.to_canonical(upcasters.upcast(lf, version), schema)
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
                _raise_unreadable(store, group, sources, exc, stored)
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


def _fetch(store: Store, group: list[dict[str, Any]], *, check: bool) -> list[bytes]:
    """The bytes of a group's files from an object store, a few requests at a time."""
    def one(entry: dict[str, Any]) -> bytes:
        try:
            data, st = store.read_stat(entry["path"])
        except FileNotFoundError:
            _raise_if_expired(store, entry["path"])
            msg = f"{store.root}: data file {entry['path']} is missing"
            raise CorruptionError(msg, path=store.root, file=store.uri(entry["path"])) from None
        return datafiles.check_bytes(store, entry, data, st) if check else data

    if len(group) == 1:
        return [one(group[0])]
    with ThreadPoolExecutor(_FETCHES) as pool:
        return list(pool.map(one, group))


def _raise_unreadable(store: Store, group: list[dict[str, Any]],
                      sources: list[str] | list[bytes], exc: BaseException,
                      schema: dict[str, pl.DataType]) -> NoReturn:
    """Name the file of a group that cannot be read; re-raise ``exc`` if they all can."""
    for entry, source in zip(group, sources, strict=True):
        path = store.uri(entry["path"])
        try:  # does the file itself read, without the query's expressions?
            pl.scan_parquet(source if isinstance(source, bytes) else str(source),
                            schema=schema).collect()
        except (Exception, pl.exceptions.PanicException) as damage:
            if not store.exists(entry["path"]):
                _raise_if_expired(store, entry["path"])
            text = str(damage).strip()
            first = text.splitlines()[0][:300] if text else ""
            msg = (f"{store.root}: data file {path.rpartition('/')[2]} cannot be read "
                   f"({type(damage).__name__}: {first}); the archive is damaged (run eventkit "
                   "verify)")
            raise CorruptionError(msg, path=store.root, file=path) from None
    raise exc


def _raise_if_expired(store: Store, rel: str) -> None:
    """Raise :class:`ExpiredError` when an expiry removed the data file ``rel``.

    (An expiry deletes the files it rewrote at once: a read of an earlier
    version that began before it finds them gone. Damage it is not.)
    """
    for commit in ledger.read_log(store):
        record = commit.record or {}
        if record.get("kind") == "expire" and any(
                rel in group.get("removed", ()) for group in record.get("groups", [])):
            msg = (f"{store.root}: data file {rel} was removed by the expiry of version "
                   f"{commit.version} (events before {record.get('cutoff')}) while this read of "
                   "an earlier version ran; read again")
            raise ExpiredError(msg, path=store.root, cutoff=record.get("cutoff"))


def write_data_file(store: Store, rel: str, part: pl.DataFrame,
                    schema_version: int = UNMARKED_VERSION, *,
                    key: tuple[str, ...] = ("account_id",)) -> dict[str, Any]:
    """Write ``part`` durably as ``rel``; its record entry (marked unless unmarked version).

    The statistics (Delta's, in the entry) cover ``seq``, the ``key`` columns and
    the two times; null counts every column.

    Locally the file is written in place and flushed; to an object store the
    Parquet bytes are made in memory and put in one request (an object appears
    whole or not at all).
    """
    marked = schema_version != UNMARKED_VERSION
    options: dict[str, Any] = {
        "compression": "zstd", "statistics": True, "row_group_size": 256 * 1024,
        "metadata": {VERSION_KEY: str(schema_version)} if marked else None}
    if store.local:
        path = store.path(rel)
        part.write_parquet(path, **options)
        with path.open("rb") as f:
            os.fsync(f.fileno())
        before = store.stat(rel)
        digest = datafiles.sha256_file(path)
        size = path.stat().st_size
    else:
        buffer = io.BytesIO()
        part.write_parquet(buffer, **options)
        data = buffer.getvalue()
        store.write(rel, data)
        before, digest, size = store.stat(rel), hashlib.sha256(data).hexdigest(), len(data)
    datafiles.remember_verified(store, rel, digest, before)
    ranged = [c for c in ("seq", *key, "event_time", "recorded_at") if c in part.columns
              and _ranged(part.schema[c])]
    stats = {
        "numRecords": part.height,
        "minValues": {c: _stat(part[c].min()) for c in ranged},
        "maxValues": {c: _stat(part[c].max()) for c in ranged},
        "nullCount": {c: part[c].null_count() for c in part.columns
                      if not part[c].dtype.is_nested()},
    }
    return {"path": rel, "sha256": digest, "bytes": size, "rows": part.height,
            "stats": json.dumps(stats), **({"schema_version": schema_version} if marked else {})}


def add_action(entry: dict[str, Any], *, data_change: bool = True) -> dict[str, Any]:
    """The Delta ``add`` action of the data file a record ``entry`` describes."""
    return {"path": entry["path"], "partitionValues": {}, "size": entry["bytes"],
            "modificationTime": int(time.time() * 1000), "dataChange": data_change,
            "stats": entry["stats"]}


def commit_actions(record: dict[str, Any], operation: str, parameters: dict[str, Any],
                   actions: list[dict[str, Any]]) -> bytes:
    """A Delta commit file: ``commitInfo`` carrying eventkit's ``record``, then ``actions``."""
    info = {"commitInfo": {"timestamp": int(time.time() * 1000), "operation": operation,
                           "operationParameters": parameters, "clientVersion": "eventkit",
                           "eventkit": json.dumps(record)}}
    return "".join(json.dumps(a) + "\n" for a in [info, *actions]).encode()


def _ranged(dtype: pl.DataType) -> bool:
    """Whether a file's statistics keep the least and greatest value of a column of ``dtype``.

    Those whose values JSON holds as such: integers, text, dates and instants (not
    decimals, bytes or booleans, of which Delta readers need none).
    """
    return dtype.is_integer() or dtype in (pl.String, pl.Date) or isinstance(dtype, pl.Datetime)


def _stat(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def delta_schema(schema: dict[str, pl.DataType]) -> Schema:
    """The Delta schema of ``schema``; a type a Delta table cannot store is a SchemaError.

    So is one it would store as another type (values read back in it would not be
    what was declared): unsigned integers (Delta's are signed: a ``UInt8``
    column would come back ``Int8`` and refuse 128..255), categories and enums.
    """
    for name, dtype in schema.items():
        for part in _parts(dtype):
            if part.is_unsigned_integer():
                msg = (f"a Delta table has no unsigned integers ({dtype}): declare a signed "
                       "type that holds every value (Int16 for UInt8, Int32 for UInt16, int "
                       "for UInt32, decimal(20, 0) for UInt64)")
                raise SchemaError(msg, column=name)
            if isinstance(part, pl.Categorical | pl.Enum):
                msg = f"a Delta table stores categories as text ({dtype}): declare string"
                raise SchemaError(msg, column=name)
    try:
        return Schema.from_arrow(pa.schema(pl.DataFrame(schema=schema).to_arrow().schema))
    except Exception:  # deltalake raises a bare Exception (and Arrow its own) for such types
        for name, dtype in schema.items():
            try:
                Schema.from_arrow(pa.schema(pl.DataFrame(schema={name: dtype}).to_arrow().schema))
            except Exception:
                msg = (f"a Delta table cannot store {dtype} values (declare int, float, bool, "
                       "string, date, datetime, money, decimal(p, s), a list or a struct)")
                raise SchemaError(msg, column=name) from None
        raise


def _parts(dtype: Any) -> list[pl.DataType]:
    """``dtype`` (a Polars type, or its class) and every type nested in it."""
    if isinstance(dtype, type):
        dtype = dtype()
    if isinstance(dtype, pl.List | pl.Array):
        return [dtype, *_parts(dtype.inner)]
    if isinstance(dtype, pl.Struct):
        return [dtype, *[p for f in dtype.fields for p in _parts(f.dtype)]]
    return [dtype]


@contextmanager
def tidying() -> Iterator[None]:
    """Clean-up after a commit landed: a store failing now fails nothing.

    The operation happened (its commit is in the log), so it must not be
    reported as failed; what is left (intents, files of writers that died)
    the next writer removes (:func:`clean_interrupted`).
    """
    with suppress(StorageError, OSError):
        yield


def remove_written(store: Store, written: list[tuple[str, str]]) -> None:
    """Remove data files (and their intents) of a write that did not commit."""
    for data, intent in written:
        store.delete(data)
        store.delete(intent)


_ROWS_PER_READ = 1_000_000  # small files are read together, up to this many rows
_FETCHES = 8  # files fetched at once from an object store


def clean_interrupted(store: Store, latest: int, live: list[dict[str, Any]]) -> None:
    """Remove data files (and commit files) of appends and rewrites that died before their commit.

    An intent names a data file and, in the name, the version its append
    meant to commit. Once that version is taken (``latest`` or before), the
    append can no longer commit (commits are pinned to one version), so its
    file goes; ``live`` data files stay, only their intent goes. An intent
    for a later version may belong to a writer still at work (one that does
    not share this lock): it stays until a commit takes its version.
    """
    if store.local:  # a commit written to a temporary file, never linked into place
        for tmp in store.path(STAGING).glob(".*.json.*.tmp"):
            meant = tmp.name[1:].split(".", 1)[0]
            if meant.isdigit() and int(meant) <= latest:
                tmp.unlink(missing_ok=True)
    pending = ledger.pending_files(store)
    committed = {e["path"] for e in live} if pending else set()
    for name in sorted(pending):
        intent = f"{ledger.PRIVATE_DIR}/pending/{name}.intent"
        if name in committed:
            store.delete(intent)
            continue
        meant = name.split("-")[1] if name.startswith("part-") else ""
        if meant.isdigit() and int(meant) > latest:
            continue
        store.delete(name)
        store.delete(intent)


def write_intent(store: Store, rel: str, tag: bytes) -> str:
    """Record, before data file ``rel`` is written, that it belongs to an unfinished write."""
    intent = f"{ledger.PRIVATE_DIR}/pending/{rel}.intent"
    if store.local:
        folder = store.path(f"{ledger.PRIVATE_DIR}/pending")
        folder.mkdir(parents=True, exist_ok=True)
        write_durably(store.path(intent), tag)
        fsync(folder)  # the intent is on disk before the data file can be
    else:
        store.write(intent, tag)
    return intent


def commit_version(store: Store, version: int, body: bytes) -> None:
    """Create commit ``version`` with ``body``, or raise :class:`AppendConflictError`.

    Put-if-absent: of two writers of the same version exactly one succeeds,
    on a local disk (a hard link) as in an object store (a conditional write).
    """
    if not store.put_if_absent(ledger.log_rel(version), body):
        msg = (f"another writer committed version {version} of {store.root} first; nothing "
               "was written, retry")
        raise AppendConflictError(msg, path=store.root)


def data_name(version: int, index: int) -> str:
    """A new data file's name: the version its write means to commit, an index, a random tag."""
    return f"part-{version:08d}-{index:03d}-{uuid.uuid4().hex[:12]}.parquet"


def create_table(store: Store, schema: Schema, configuration: dict[str, str],
                 record: dict[str, Any]) -> None:
    """Create the empty Delta table of a new archive, its genesis ``record`` in commit 0.

    The commit (protocol, table metadata and eventkit's record) is written as
    any Delta writer would, created put-if-absent: of two creators one wins.
    """
    now = int(time.time() * 1000)
    metadata: dict[str, Any] = {
        "id": str(uuid.uuid4()), "name": "eventkit archive", "description": None,
        "format": {"provider": "parquet", "options": {}}, "schemaString": schema.to_json(),
        "partitionColumns": [], "createdTime": now, "configuration": configuration}
    body = commit_actions(record, "CREATE TABLE", {"mode": "ErrorIfExists"}, [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}, {"metaData": metadata}])
    commit_version(store, 0, body)
    if store.local:
        store.path(ledger.PRIVATE_DIR).mkdir(exist_ok=True)
        (store.path(ledger.PRIVATE_DIR) / "append.lock").touch()
