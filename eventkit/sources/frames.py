"""Frames users hold in memory: Polars, pandas, pyarrow, read as Polars without surprises.

:func:`as_polars` is the one place that tells them apart: a Polars
DataFrame or LazyFrame as it is, a pyarrow Table or RecordBatch and a pandas
DataFrame converted (through Arrow; a pandas index that holds data becomes
columns), anything else refused with an eventkit error. :func:`as_frame`
also collects a lazy frame, turning Polars' errors into eventkit's.

>>> import pyarrow as pa
>>> as_frame(pa.table({"account_id": [1], "amount": [5]}), "batch").rows()
[(1, 5)]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from eventkit.exceptions import SchemaError

__all__ = ["aligned", "as_frame", "as_polars", "is_frame"]


def is_frame(obj: object) -> bool:
    """Whether ``obj`` is a frame :func:`as_polars` reads (not a path or an archive)."""
    return isinstance(obj, pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatch) \
        or _is_pandas(obj)


def as_polars(obj: Any, source: str, *, paths: bool = False) -> pl.DataFrame | pl.LazyFrame:
    """``obj`` as a Polars frame (lazy stays lazy); an eventkit error for anything else.

    ``paths`` says whether the caller also takes a path (read before it gets
    here): the error then says so; where only frames go, a path is refused
    saying how to read the file.
    """
    if isinstance(obj, pl.DataFrame | pl.LazyFrame):
        return obj
    try:
        if isinstance(obj, pa.Table | pa.RecordBatch):
            frame = pl.from_arrow(obj)
            assert isinstance(frame, pl.DataFrame)  # (a table or batch gives a frame)
            return frame
        if _is_pandas(obj):
            named = [n for n in obj.index.names if n is not None]
            return pl.from_pandas(obj.reset_index() if named else obj)
    except (pl.exceptions.PolarsError, pa.ArrowException, TypeError, ValueError) as exc:
        msg = f"cannot read the {type(obj).__name__} as events: {_first_line(exc)}"
        raise SchemaError(msg, source=source) from None
    if isinstance(obj, str | Path) and not paths:
        msg = (f"expected a frame of events, not a path ({str(obj)!r}): read the file first "
               "(pl.read_parquet, pl.read_csv, pl.read_ndjson) and pass the frame")
        raise SchemaError(msg, source=source)
    also = " (or a path)" if paths else ""
    msg = (f"expected a Polars DataFrame or LazyFrame, a pandas DataFrame or a pyarrow "
           f"Table{also}, not a {type(obj).__name__}")
    raise SchemaError(msg, source=source)


def as_frame(obj: Any, source: str) -> pl.DataFrame:
    """``obj`` collected into a Polars DataFrame (see :func:`as_polars`; no path)."""
    frame = as_polars(obj, source)
    if isinstance(frame, pl.DataFrame):
        return frame
    try:
        return frame.collect()
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        msg = f"cannot read the batch: {_first_line(exc)}"
        raise SchemaError(msg, source=source) from None


def _is_pandas(obj: object) -> bool:
    return type(obj).__module__.startswith("pandas") and type(obj).__name__ == "DataFrame"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def aligned(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its one-chunk columns cut, without a copy, into the others' chunks.

    A frame whose columns are chunked unlike each other is rechunked whole by
    the next operation on it (a filter, a select, a drop: ~0.3 s for a 10 M-row
    history), and again by each one after that. Columns computed over a whole
    frame (a fold's state, a row number) come in one chunk beside decoded ones
    in many; those are cut alike here. Columns of two different many-chunk
    layouts are left as they are (Polars rechunks them).

    >>> parts = pl.concat([pl.DataFrame({"a": [1]}), pl.DataFrame({"a": [2, 3]})], rechunk=False)
    >>> aligned(parts.hstack([pl.Series("b", [4, 5, 6])])).n_chunks("all")
    [2, 2]
    """
    layouts = [[c.len() for c in s.get_chunks()] for s in frame.iter_columns()]
    many = {tuple(lengths) for lengths in layouts if len(lengths) > 1}
    if len(many) != 1 or all(len(lengths) > 1 for lengths in layouts):
        return frame
    lengths = list(many.pop())
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    return pl.DataFrame([
        s if len(layout) > 1 else pl.concat([s.slice(a, n) for a, n in zip(starts, lengths,
                                                                           strict=True)],
                                            rechunk=False)
        for s, layout in zip(frame.iter_columns(), layouts, strict=True)])
