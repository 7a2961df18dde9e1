"""Read users' event files: Parquet, CSV, NDJSON files, folders, hive partitions, globs, Delta.

:func:`read_events` maps them onto the canonical schema (or one's own, see
:mod:`eventkit.sources.conform`) and upcasts older schema versions (see
:mod:`eventkit.sources.upcast`). :func:`eventkit.open_archive` calls it for
anything that is not an eventkit archive. CSV is read as text (but the
columns the mapping's ``types`` name) and every value converted to the
schema's type and checked; NDJSON as JSON types it. Delta tables other
engines wrote are read by :mod:`eventkit.sources.delta`.
"""

from __future__ import annotations

import glob as globmod
from pathlib import Path
from typing import Any, Literal

import polars as pl

from eventkit.exceptions import EventDataError, SchemaError
from eventkit.schema import BANKING, EventSchema, dtype_of
from eventkit.sources.budget import check_file, resolve_limit
from eventkit.sources.checks import ROW_COL, SOURCE_COL
from eventkit.sources.conform import ColumnMapping, conform
from eventkit.sources.delta import scan_delta
from eventkit.sources.upcast import (
    UNMARKED_VERSION,
    UPCASTERS,
    VERSION_COLUMN,
    Upcasters,
    file_version,
)

__all__ = ["DELTA_LOG", "FORMATS", "read_events"]

#: The folder of a Delta table's commit log (the Delta protocol's name for it).
DELTA_LOG = "_delta_log"
#: File formats by suffix.
FORMATS = {".parquet": "parquet", ".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}


def read_events(
    path: str | Path,
    *,
    mapping: ColumnMapping | dict[str, Any] | None = None,
    validate: bool = True,
    schema_version: int = UNMARKED_VERSION,
    upcasters: Upcasters = UPCASTERS,
    schema: EventSchema = BANKING,
    on_error: Literal["raise", "dead-letter"] = "raise",
    dead_letter: str | Path | None = None,
    in_memory: bool = True,
    max_decoded_bytes: int | None = None,
) -> pl.LazyFrame:
    """Users' events at ``path`` as a LazyFrame in ``schema`` (default: the banking one).

    What :func:`eventkit.open_archive` does for anything but an eventkit
    archive; see there for ``mapping``, ``validate``, ``schema``,
    ``on_error``, ``in_memory``, the schema versions and ``max_decoded_bytes``
    (:mod:`eventkit.sources.budget`).

    Examples
    --------
    >>> import tempfile
    >>> f = tempfile.mkdtemp() + "/seed.parquet"
    >>> pl.DataFrame({"accountId": [1], "amount": [-20.0],
    ...               "timestamp": [1702468800]}).write_parquet(f)
    >>> events = read_events(f, mapping={"account_id": "accountId", "event_time": "timestamp",
    ...     "amount_unit": "major", "time_unit": "s"})
    >>> events.select("event_type", "amount").collect().rows()
    [('Withdrawal', 2000)]

    """
    root = Path(path)
    parsed = ColumnMapping.parse(mapping)
    limit = resolve_limit(max_decoded_bytes)
    raw, source, base, parsed = _scan(root, str(path), parsed, schema_version, upcasters,
                                      limit, schema)
    framed = raw.with_columns(pl.int_range(pl.len()).over(SOURCE_COL).alias(ROW_COL))
    try:
        conformed = conform(framed, parsed, source=source, id_base=base, schema=schema)
    except pl.exceptions.PolarsError as exc:
        msg = f"cannot read events: {exc}"
        raise EventDataError(msg, source=source) from None
    if on_error == "dead-letter":
        target = Path(dead_letter) if dead_letter is not None else \
            Path(str(root).rstrip("/") + ".dead-letter.parquet")
        return conformed.dead_letters(source=source, into=target).lazy()
    if on_error != "raise":
        msg = f"on_error must be 'raise' or 'dead-letter', not {on_error!r}"
        raise SchemaError(msg, source=source)
    if validate and in_memory:  # decoded once: what was checked is what is read
        return conformed.collect(source=source).lazy()
    if validate:
        conformed.validate(source=source)
    return conformed.events.drop(SOURCE_COL, ROW_COL)


def _scan(root: Path, text: str, mapping: ColumnMapping, default: int, upcasters: Upcasters,
          limit: int, declared: EventSchema) -> tuple[pl.LazyFrame, str, str, ColumnMapping]:
    """A raw scan with a ``__source`` column, a name for messages, the id base, the mapping.

    Every file's footer is read first, so a damaged file is named, and a file
    declaring more than ``limit`` decoded bytes (of the columns read) is refused; columns
    present in only some files come through (null elsewhere); a column whose
    type differs between files of one schema version is an error naming both
    files. When a file or row of another version than the current one is
    present, the scan comes upcast, under canonical names, and the mapping
    returned keeps only its units.
    """
    read = {mapping.source_name(c) for c in declared.columns} | {VERSION_COLUMN}
    if (root / DELTA_LOG).is_dir():
        lf = scan_delta(root, each_file=lambda f: check_file(f, read, limit)).with_columns(
            pl.lit(str(root)).alias(SOURCE_COL))
        names = lf.collect_schema().names()
        if VERSION_COLUMN not in names and default == upcasters.current:
            return lf, str(root), str(root), mapping
        lf = _canonical_names(lf, mapping, names)
        if VERSION_COLUMN not in names:
            return upcasters.upcast(lf, default, source=str(root)), str(root), str(root), \
                _units(mapping)
        lf = lf.with_columns(pl.col(VERSION_COLUMN).fill_null(default))
        return upcasters.upcast_rows(lf, source=str(root)), str(root), str(root), \
            _units(mapping)
    if root.is_file():
        files, base = [str(root)], str(root.parent)
    elif root.is_dir():
        files = sorted(str(p) for p in root.rglob("*")
                       if p.suffix in FORMATS and p.is_file()
                       and not any(part.startswith((".", "_"))
                                   for part in p.relative_to(root).parts))
        base = str(root)
    elif any(ch in text for ch in "*?["):
        files = sorted(globmod.glob(text, recursive=True))
        base = str(Path(text.split("*")[0].split("?")[0].split("[")[0] + "x").parent)
    else:
        msg = "no such file, folder or glob match"
        raise EventDataError(msg, source=text)
    if not files:
        msg = "no Parquet files found (nor CSV or NDJSON files)"
        raise EventDataError(msg, source=text)
    kind = _format(files, mapping, text)
    if kind != "parquet":
        lf, renamed = _scan_text(files, kind, mapping, default, upcasters)
        return lf, text, base, _units(mapping) if renamed else mapping
    hive = root.is_dir() and any("=" in part for f in files
                                 for part in Path(f).relative_to(root).parts[:-1])
    runs: list[tuple[int, list[str]]] = []  # consecutive files of one version, in order
    for f in files:
        version = file_version(f)
        version = default if version is None else version
        if not runs or runs[-1][0] != version:
            runs.append((version, []))
        runs[-1][1].append(f)
    scans = []
    for version, group in runs:
        schema = _union_schema(group, read, limit)
        lf = pl.scan_parquet(group, schema=schema, hive_partitioning=hive,
                             include_file_paths=SOURCE_COL, missing_columns="insert",
                             extra_columns="raise")
        scans.append((version, group, lf, schema))
    if len(runs) == 1 and runs[0][0] == upcasters.current and VERSION_COLUMN not in scans[0][3]:
        return scans[0][2], text, base, mapping  # nothing to upcast: read as it is
    upcast = []
    for version, group, lf, schema in scans:
        lf = _canonical_names(lf, mapping, list(schema))
        if VERSION_COLUMN in schema:
            lf = upcasters.upcast_rows(lf.with_columns(pl.col(VERSION_COLUMN).fill_null(version)),
                                       source=group[0])
        else:
            lf = upcasters.upcast(lf, version, source=group[0])
        upcast.append(lf)
    return pl.concat(upcast, how="diagonal_relaxed"), text, base, _units(mapping)


def _format(files: list[str], mapping: ColumnMapping, text: str) -> str:
    """The one format of ``files``: the mapping's, else their suffixes' (never mixed)."""
    if mapping.format is not None:
        return mapping.format
    kinds = {FORMATS.get(Path(f).suffix.lower(), "parquet") for f in files}
    if len(kinds) > 1:
        msg = (f"files of several formats {sorted(kinds)}; open each format on its own "
               "(or name one with mapping={'format': ...})")
        raise EventDataError(msg, source=text)
    return kinds.pop()


def _scan_text(files: list[str], kind: str, mapping: ColumnMapping, default: int,
               upcasters: Upcasters) -> tuple[pl.LazyFrame, bool]:
    """CSV (every column text, but the mapping's ``types``) or NDJSON files, one scan.

    Rows are numbered from 0 after a CSV's header. A file that is not what its
    format says raises an error naming it. Also says whether the scan was
    upcast (then under canonical names).
    """
    types = {name: dtype_of(t, column=name) for name, t in mapping.types.items()}
    for f in files:  # name the file that cannot be read (scanning all would not)
        try:
            if kind == "csv":
                pl.scan_csv(f, infer_schema=False, schema_overrides=types).head(1).collect()
            else:
                pl.scan_ndjson(f, infer_schema_length=1000).head(1).collect()
        except (pl.exceptions.PolarsError, OSError) as exc:
            text = str(exc).strip().splitlines()
            msg = f"not a readable {kind.upper()} file: {text[0] if text else exc}"
            raise EventDataError(msg, source=f) from None
    if kind == "csv":
        lf = pl.scan_csv(files, infer_schema=False, schema_overrides=types,
                         include_file_paths=SOURCE_COL)
    else:
        lf = pl.scan_ndjson(files, infer_schema_length=None, schema_overrides=types or None,
                            include_file_paths=SOURCE_COL)
    names = lf.collect_schema().names()
    if VERSION_COLUMN in names:
        return upcasters.upcast_rows(_canonical_names(lf, mapping, names).with_columns(
            pl.col(VERSION_COLUMN).cast(pl.Int64, strict=False).fill_null(default)),
            source=files[0]), True
    if default != upcasters.current:
        return upcasters.upcast(_canonical_names(lf, mapping, names), default,
                                source=files[0]), True
    return lf, False


def _canonical_names(lf: pl.LazyFrame, mapping: ColumnMapping, names: list[str]
                     ) -> pl.LazyFrame:
    """``lf`` with the mapping's columns renamed to their canonical names."""
    return lf.rename({user: canonical for canonical, user in mapping.columns.items()
                      if user in names and user != canonical})


def _units(mapping: ColumnMapping) -> ColumnMapping:
    """``mapping`` without its column names (they were applied): its units only."""
    return ColumnMapping(amount_unit=mapping.amount_unit, minor_digits=mapping.minor_digits,
                         time_unit=mapping.time_unit, assume_timezone=mapping.assume_timezone,
                         types=mapping.types, format=mapping.format)


def _union_schema(files: list[str], read: set[str], limit: int) -> dict[str, pl.DataType]:
    union: dict[str, pl.DataType] = {}
    first_seen: dict[str, str] = {}
    for f in files:
        check_file(f, read, limit)
        try:
            schema = pl.read_parquet_schema(f)
        except (pl.exceptions.PolarsError, OSError) as exc:
            msg = f"not a readable Parquet file: {exc}"
            raise EventDataError(msg, source=f) from None
        for name, dtype in schema.items():
            if name in union and union[name] != dtype:
                msg = (f"column type differs between files: {union[name]} in "
                       f"{first_seen[name]}, {dtype} here")
                raise SchemaError(msg, source=f, column=name)
            union.setdefault(name, dtype)
            first_seen.setdefault(name, f)
    return union
