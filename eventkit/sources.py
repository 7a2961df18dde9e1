"""Open event data wherever it lies.

A Parquet file, a folder, hive partitions, a glob, a Delta table, or an
eventkit archive: all come out as one LazyFrame in the canonical schema.
"""

from __future__ import annotations

import glob as globmod
from pathlib import Path
from typing import Any

import polars as pl

from eventkit import ledger
from eventkit.archive import EventArchive
from eventkit.conform import ROW_COL, SOURCE_COL, ColumnMapping, conform
from eventkit.exceptions import EventDataError, SchemaError

__all__ = ["is_eventkit_archive", "open_archive"]


def open_archive(
    path: str | Path,
    *,
    mapping: ColumnMapping | dict[str, Any] | None = None,
    validate: bool = True,
) -> pl.LazyFrame:
    """Open events as a LazyFrame in the canonical schema.

    ``path`` may be an eventkit archive, any other Delta table, a Parquet file,
    a folder of Parquet files (hive partitions such as ``day=2024-01-01/`` become
    columns), or a glob such as ``"exports/*.parquet"``. ``mapping`` names the
    user's columns and units (see :class:`~eventkit.conform.ColumnMapping`).

    With ``validate`` (the default) one scan checks every value and raises an
    :class:`~eventkit.exceptions.EventDataError` naming the file, column and row
    of the first bad one. An eventkit archive was checked on append and is
    returned as stored (run ``verify`` to prove it unchanged).

    Examples
    --------
    >>> import tempfile, polars as pl
    >>> f = tempfile.mkdtemp() + "/seed.parquet"
    >>> pl.DataFrame({"accountId": [1, 1], "amount": [50.0, -20.0],
    ...               "timestamp": [1702468800, 1702472400]}).write_parquet(f)
    >>> events = open_archive(f, mapping={"account_id": "accountId",
    ...     "event_time": "timestamp", "amount_unit": "major", "time_unit": "s"})
    >>> events.select("account_id", "event_type", "amount").collect().rows()
    [(1, 'Deposit', 5000), (1, 'Withdrawal', 2000)]

    """
    root = Path(path)
    if is_eventkit_archive(root):
        if mapping is not None:
            msg = "an eventkit archive is already canonical; mapping applies to foreign data"
            raise SchemaError(msg, source=str(root))
        return EventArchive(root).scan()
    raw, source, base = _scan(root, str(path))
    framed = raw.with_columns(pl.int_range(pl.len()).over(SOURCE_COL).alias(ROW_COL))
    try:
        conformed = conform(framed, ColumnMapping.parse(mapping), source=source, id_base=base)
    except pl.exceptions.PolarsError as exc:
        msg = f"cannot read events: {exc}"
        raise EventDataError(msg, source=source) from None
    if validate:
        conformed.validate(source=source)
    return conformed.events.drop(SOURCE_COL, ROW_COL)


def is_eventkit_archive(root: Path) -> bool:
    """True when ``root`` is an eventkit archive (a Delta table eventkit created)."""
    if not (root / ledger.LOG_DIR).is_dir():
        return False
    record = ledger.read_commit(root, 0).record
    return record is not None and record.get("kind") == "create"


def _scan(root: Path, text: str) -> tuple[pl.LazyFrame, str, str]:
    """A raw scan with a ``__source`` column, a name for messages, and the id base.

    Every file's footer is read first, so a damaged file is named; columns
    present in only some files come through (null elsewhere); a column whose
    type differs between files is an error naming both files.
    """
    if (root / ledger.LOG_DIR).is_dir():
        try:
            lf = pl.scan_delta(str(root)).with_columns(pl.lit(str(root)).alias(SOURCE_COL))
            lf.collect_schema()
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            msg = f"cannot read Delta table: {exc}"
            raise EventDataError(msg, source=str(root)) from None
        return lf, str(root), str(root)
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
    schema = _union_schema(files)
    hive = root.is_dir() and any("=" in part for f in files
                                 for part in Path(f).relative_to(root).parts[:-1])
    lf = pl.scan_parquet(files, schema=schema, hive_partitioning=hive,
                         include_file_paths=SOURCE_COL, missing_columns="insert",
                         extra_columns="raise")
    return lf, text, base


def _union_schema(files: list[str]) -> dict[str, pl.DataType]:
    union: dict[str, pl.DataType] = {}
    first_seen: dict[str, str] = {}
    for f in files:
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
