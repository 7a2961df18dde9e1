"""Delta tables other engines wrote (Spark, Databricks, delta-rs): read as their current version.

Which reader features a table needs is in its protocol. eventkit reads:

* plain tables, classic checkpoints (the log before them cleaned up),
  deletion vectors (rows a ``DELETE`` soft-deleted stay out),
  ``timestampNtz``: with Polars' Delta scan (lazy, with predicate and
  projection pushdown);
* **column mapping** (``delta.columnMapping.mode = name`` or ``id``: the
  Parquet files hold physical column names) and **v2 checkpoints**
  (UUID-named, with sidecars): with delta-rs's DataFusion reader, which maps
  the names back and reads such logs (deletion vectors included), into
  memory. (deltalake's pyarrow dataset reads a column-mapped table as all
  nulls: it is never used.)

Any other reader feature, a table delta-rs cannot load, or a data file the
current version needs that is missing raises an
:class:`~eventkit.exceptions.EventDataError` naming the table and the
feature (or the file) — never a raw ``DeltaProtocolError``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from eventkit.exceptions import EventDataError

__all__ = ["READ_FEATURES", "scan_delta"]

#: Reader features Polars' own Delta scan reads.
_POLARS = frozenset({"deletionVectors", "timestampNtz", "variantType", "variantType-preview"})
#: Reader features eventkit reads (see the module docstring): Polars', then delta-rs's.
READ_FEATURES = _POLARS | {"columnMapping", "v2Checkpoint", "vacuumProtocolCheck"}


def scan_delta(root: Path, *, each_file: Callable[[str], object] | None = None
               ) -> pl.LazyFrame:
    """The current version of the Delta table at ``root``, or an error naming what stops it.

    ``each_file`` is called with every data file's URI first (e.g. a size budget).

    Examples
    --------
    >>> import tempfile
    >>> from deltalake import write_deltalake
    >>> folder = tempfile.mkdtemp() + "/t"
    >>> write_deltalake(folder, pl.DataFrame({"a": [1, 2]}).to_arrow(),
    ...                 configuration={"delta.columnMapping.mode": "name"})
    >>> scan_delta(Path(folder)).collect()["a"].to_list()
    [1, 2]

    """
    where = str(root)
    try:
        table = DeltaTable(where)
        protocol = table.protocol()
        config = table.metadata().configuration
    except Exception as exc:
        msg = f"cannot read Delta table: {_first_line(exc)}{_feature_hint(exc)}"
        raise EventDataError(msg, source=where) from None
    features = set(protocol.reader_features or ())
    mapped = (protocol.min_reader_version == 2  # column mapping, before table features
              or "columnMapping" in features
              or config.get("delta.columnMapping.mode", "none") != "none")
    if mapped:
        features.add("columnMapping")
    unknown = sorted(features - READ_FEATURES)
    if unknown or protocol.min_reader_version > 3:
        what = f"reader feature(s) {unknown}" if unknown else \
            f"reader version {protocol.min_reader_version}"
        msg = (f"Delta table needs {what}, which eventkit cannot read (it reads "
               f"{sorted(READ_FEATURES)}); export the table without it")
        raise EventDataError(msg, source=where)
    _check_files(table, where, each_file)
    if features <= _POLARS:
        try:
            return pl.scan_delta(table)
        except Exception as exc:
            msg = f"cannot read Delta table: {_first_line(exc)}{_feature_hint(exc)}"
            raise EventDataError(msg, source=where) from None
    try:
        reader = QueryBuilder().register("t", table).execute("SELECT * FROM t")
        frame = pl.from_arrow(pa.table(reader.read_all()))
    except Exception as exc:
        msg = (f"cannot read Delta table with {sorted(features - _POLARS)}: {_first_line(exc)}"
               f"{_feature_hint(exc)}")
        raise EventDataError(msg, source=where) from None
    assert isinstance(frame, pl.DataFrame)  # (a table gives a frame)
    return frame.lazy()


def _check_files(table: DeltaTable, where: str, each_file: Callable[[str], object] | None
                 ) -> None:
    """Every data file of the current version must be there (a vacuum may have gone too far)."""
    for uri in table.file_uris():
        path = Path(uri.removeprefix("file://"))
        if "://" not in uri or uri.startswith("file://"):
            if not path.is_file():
                msg = (f"Delta table: data file {path.name} of the current version is missing "
                       "(vacuumed or deleted behind the log's back)")
                raise EventDataError(msg, source=where)
        if each_file is not None:
            each_file(uri)


def _feature_hint(exc: BaseException) -> str:
    text = str(exc)
    for feature in ("columnMapping", "deletionVectors", "v2Checkpoint", "typeWidening",
                    "variantType", "rowTracking", "catalogManaged", "icebergCompat"):
        if feature in text:
            return f" (feature {feature})"
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:300] if text else "") or type(exc).__name__
