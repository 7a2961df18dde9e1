"""How much memory a Parquet file declares it decodes to, checked before it is read.

A Parquet footer declares, per row group and column, how many values it holds;
a file of a few kilobytes can declare billions (run-length encoded zeros, or
row groups that all point at the same bytes), and decoding it would make the
Parquet reader ask for more memory than there is — which aborts the process
from Rust, with no Python exception to catch. :func:`check_file` adds up what
a file declares for the columns eventkit will read and refuses a file over
the limit with an :class:`~eventkit.exceptions.EventDataError`, before a byte
of data is decoded.

The limit (``max_decoded_bytes``) is per file; by default
:func:`default_limit`: half the memory this process may use (physical memory,
or less when a container's cgroup or ``RLIMIT_AS``/``RLIMIT_DATA`` allows less).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Collection
from pathlib import Path

from eventkit.exceptions import EventDataError, ParameterError

__all__ = ["check_file", "declared_bytes", "default_limit", "resolve_limit"]

#: Decoded bytes per value of each fixed-width Parquet physical type.
_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8}
#: Per value of a text or binary column: Polars' view of it (the bytes come on top).
_VIEW = 16
_CGROUP = Path("/sys/fs/cgroup/memory.max")


def default_limit() -> int:
    """Half the memory this process may use: the default ``max_decoded_bytes``.

    Examples
    --------
    >>> default_limit() > 0
    True

    """
    usable = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY:
            usable = min(usable, soft)
    try:
        cgroup = _CGROUP.read_text().strip()
    except OSError:
        cgroup = "max"
    if cgroup.isdigit():
        usable = min(usable, int(cgroup))
    return usable // 2


def resolve_limit(limit: int | None) -> int:
    """``limit``, checked, or :func:`default_limit` for ``None``.

    Examples
    --------
    >>> resolve_limit(1 << 30)
    1073741824
    >>> resolve_limit(0)
    Traceback (most recent call last):
    ...
    eventkit.ParameterError: max_decoded_bytes: must be a positive number of bytes, not 0

    """
    if limit is None:
        return default_limit()
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        msg = f"must be a positive number of bytes, not {limit!r}"
        raise ParameterError(msg, param="max_decoded_bytes")
    return limit


def declared_bytes(path: str | Path, columns: Collection[str] | None = None) -> tuple[int, int]:
    """The rows and the decoded bytes the footer of ``path`` declares.

    Only the columns named in ``columns`` count (top-level names; ``None``:
    all). Reads the footer alone; an unreadable one raises ``EventDataError``.

    Examples
    --------
    >>> import tempfile, polars as pl
    >>> f = tempfile.mkdtemp() + "/x.parquet"
    >>> pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).write_parquet(f)
    >>> declared_bytes(f, ["a"])
    (3, 24)

    """
    import pyarrow as pa  # noqa: PLC0415 (only reading foreign files pays its import)
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        meta = pq.read_metadata(str(path))
    except (OSError, pa.ArrowException) as exc:
        msg = f"not a readable Parquet file: {exc}"
        raise EventDataError(msg, source=str(path)) from None
    total = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if columns is not None and chunk.path_in_schema.split(".")[0] not in columns:
                continue
            width = _WIDTH.get(chunk.physical_type)
            total += (chunk.num_values * width if width is not None
                      else chunk.num_values * _VIEW + chunk.total_uncompressed_size)
    return meta.num_rows, total


def check_file(path: str | Path, columns: Collection[str] | None, limit: int) -> None:
    """Refuse ``path`` when its footer declares more than ``limit`` decoded bytes.

    Examples
    --------
    >>> import tempfile, polars as pl
    >>> f = tempfile.mkdtemp() + "/x.parquet"
    >>> pl.DataFrame({"a": list(range(1000))}).write_parquet(f)
    >>> check_file(f, None, 1 << 20)
    >>> check_file(f, None, 4096)
    Traceback (most recent call last):
    ...
    eventkit.EventDataError: declares 1,000 rows that decode to about 8,000 bytes, ...

    """
    rows, size = declared_bytes(path, columns)
    if size > limit:
        msg = (f"declares {rows:,} rows that decode to about {_size(size)}, more than the "
               f"{_size(limit)} allowed per file (max_decoded_bytes); refused before decoding "
               f"({Path(path).stat().st_size:,} bytes on disk)")
        raise EventDataError(msg, source=str(path))


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"
