"""Read users' event files: Parquet files, folders, hive partitions, globs, Delta tables.

:func:`read_events` maps them onto the canonical schema (see
:mod:`eventkit.sources.conform`) and upcasts older schema versions (see
:mod:`eventkit.sources.upcast`). :func:`eventkit.open_archive` calls it for
anything that is not an eventkit archive.
"""

from __future__ import annotations

import glob as globmod
from pathlib import Path
from typing import Any

import polars as pl

from eventkit.exceptions import EventDataError, SchemaError
from eventkit.schema import CANONICAL_SCHEMA
from eventkit.sources.budget import check_file, resolve_limit
from eventkit.sources.conform import ROW_COL, SOURCE_COL, ColumnMapping, conform
from eventkit.sources.upcast import (
    UNMARKED_VERSION,
    UPCASTERS,
    VERSION_COLUMN,
    Upcasters,
    file_version,
)

__all__ = ["DELTA_LOG", "read_events"]

#: The folder of a Delta table's commit log (the Delta protocol's name for it).
DELTA_LOG = "_delta_log"


def read_events(
    path: str | Path,
    *,
    mapping: ColumnMapping | dict[str, Any] | None = None,
    validate: bool = True,
    schema_version: int = UNMARKED_VERSION,
    upcasters: Upcasters = UPCASTERS,
    in_memory: bool = True,
    max_decoded_bytes: int | None = None,
) -> pl.LazyFrame:
    """Users' events at ``path`` as a LazyFrame in the canonical schema.

    What :func:`eventkit.open_archive` does for anything but an eventkit
    archive; see there for ``mapping``, ``validate``, ``in_memory``, the schema
    versions and ``max_decoded_bytes`` (:mod:`eventkit.sources.budget`).

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
                                      limit)
    framed = raw.with_columns(pl.int_range(pl.len()).over(SOURCE_COL).alias(ROW_COL))
    try:
        conformed = conform(framed, parsed, source=source, id_base=base)
    except pl.exceptions.PolarsError as exc:
        msg = f"cannot read events: {exc}"
        raise EventDataError(msg, source=source) from None
    if validate and in_memory:  # decoded once: what was checked is what is read
        return conformed.collect(source=source).lazy()
    if validate:
        conformed.validate(source=source)
    return conformed.events.drop(SOURCE_COL, ROW_COL)


def _scan(root: Path, text: str, mapping: ColumnMapping, default: int, upcasters: Upcasters,
          limit: int) -> tuple[pl.LazyFrame, str, str, ColumnMapping]:
    """A raw scan with a ``__source`` column, a name for messages, the id base, the mapping.

    Every file's footer is read first, so a damaged file is named, and a file
    declaring more than ``limit`` decoded bytes (of the columns read) is refused; columns
    present in only some files come through (null elsewhere); a column whose
    type differs between files of one schema version is an error naming both
    files. When a file or row of another version than the current one is
    present, the scan comes upcast, under canonical names, and the mapping
    returned keeps only its units.
    """
    read = {mapping.source_name(c) for c in CANONICAL_SCHEMA} | {VERSION_COLUMN}
    if (root / DELTA_LOG).is_dir():
        from deltalake import DeltaTable  # noqa: PLC0415 (only Delta tables pay its import)

        try:
            lf = pl.scan_delta(str(root)).with_columns(pl.lit(str(root)).alias(SOURCE_COL))
            names = lf.collect_schema().names()
            files = DeltaTable(str(root)).file_uris()
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            msg = f"cannot read Delta table: {exc}"
            raise EventDataError(msg, source=str(root)) from None
        for f in files:
            check_file(f, read, limit)
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
        files = sorted(str(p) for p in root.rglob("*.parquet")
                       if not any(part.startswith((".", "_"))
                                  for part in p.relative_to(root).parts))
        base = str(root)
    elif any(ch in text for ch in "*?["):
        files = sorted(globmod.glob(text, recursive=True))
        base = str(Path(text.split("*")[0].split("?")[0].split("[")[0] + "x").parent)
    else:
        msg = "no such file, folder or glob match"
        raise EventDataError(msg, source=text)
    if not files:
        msg = "no Parquet files found"
        raise EventDataError(msg, source=text)
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


def _canonical_names(lf: pl.LazyFrame, mapping: ColumnMapping, names: list[str]
                     ) -> pl.LazyFrame:
    """``lf`` with the mapping's columns renamed to their canonical names."""
    return lf.rename({user: canonical for canonical, user in mapping.columns.items()
                      if user in names and user != canonical})


def _units(mapping: ColumnMapping) -> ColumnMapping:
    """``mapping`` without its column names (they were applied): its units only."""
    return ColumnMapping(amount_unit=mapping.amount_unit, minor_digits=mapping.minor_digits,
                         time_unit=mapping.time_unit, assume_timezone=mapping.assume_timezone)


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
