"""The bucketed layout: events partitioned by a hash of their key into buckets.

An archive created with ``EventArchive.create(path, buckets=B)`` stores each
append as one data file per non-empty bucket (all in the same commit), and its
record names the bucket of every file, so a reader picks a bucket's files
without opening any. The events of key ``k`` lie in bucket :func:`bucket_of`
``(k, B)`` (``0 .. B-1``); the events of the archive's shared key (the bank's
own, account 0, whose rate table every account reads) lie in
:data:`SHARED_BUCKET`, which a reader of any bucket reads too.

The hash is eventkit's own, never Polars' ``hash`` (whose values may change
between releases), so a key keeps its bucket across appends, processes and
versions:

* an integer (or a date, time or boolean: its physical integer) ``v``:
  the splitmix64 finaliser of ``v + 0x9E3779B97F4A7C15`` (wrapping 64-bit);
* text: FNV-1a 64 of its UTF-8 bytes, then the same finaliser;
* a composite key ``(a, b, ...)``: ``h = 0``, then for each part
  ``h = finaliser(h ^ hash(part))``.

The bucket is the hash modulo ``B``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
from numba import njit

from eventkit.exceptions import ScaleError

__all__ = ["BANK_BUCKET", "MAX_BUCKETS", "SHARED_BUCKET", "bucket_expr", "bucket_of",
           "bucket_parts", "check_buckets", "key_hashes", "shared_expr"]

#: The bucket of the shared key's events (the bank's, account 0): read with every bucket.
SHARED_BUCKET = -1
BANK_BUCKET = SHARED_BUCKET
#: Most buckets an archive may have (each append writes up to one file per bucket).
MAX_BUCKETS = 4096

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def bucket_expr(key: str | Sequence[str], buckets: int, *, shared: pl.Expr | None = None
                ) -> pl.Expr:
    """Polars expression ``bucket`` (Int32): the bucket of each event's key.

    ``key`` is the key column or columns; ``shared`` (optional) marks the events
    that go to :data:`SHARED_BUCKET` instead.

    Examples
    --------
    >>> pl.DataFrame({"account_id": [0, 1, 2, 3]}).select(bucket_expr(
    ...     "account_id", 4, shared=pl.col("account_id") == 0))["bucket"].to_list()
    [-1, 1, 2, 1]
    >>> pl.DataFrame({"id": ["C1231006815", "order-42"]}).select(
    ...     bucket_expr("id", 8))["bucket"].to_list()
    [2, 7]

    """
    columns = [key] if isinstance(key, str) else list(key)
    hashed = pl.struct(columns).map_batches(_hash_batch, return_dtype=pl.UInt64,
                                            is_elementwise=True)
    bucket = (hashed % buckets).cast(pl.Int32)
    if shared is not None:
        bucket = pl.when(shared).then(pl.lit(SHARED_BUCKET, pl.Int32)).otherwise(bucket)
    return bucket.alias("bucket")


def shared_expr(key: Sequence[str], value: object, schema: Mapping[str, pl.DataType]
                ) -> pl.Expr | None:
    """True for the events of the shared key ``value`` (None: no shared key, or another type).

    Examples
    --------
    >>> frame = pl.DataFrame({"account_id": [0, 3]})
    >>> frame.select(shared_expr(["account_id"], 0, frame.schema))["account_id"].to_list()
    [True, False]

    """
    if value is None:
        return None
    values = value if isinstance(value, tuple) else (value,)
    if len(values) != len(key) or not all(
            isinstance(v, str) == (schema.get(c) == pl.String) for c, v in zip(key, values,
                                                                            strict=True)):
        return None
    return pl.all_horizontal(pl.col(c) == pl.lit(v) for c, v in zip(key, values, strict=True))


def bucket_parts(rows: pl.DataFrame, key: Sequence[str], buckets: int | None, shared: object,
                 rows_per_file: int) -> Iterator[tuple[int | None, pl.DataFrame]]:
    """An append's data files: (bucket or None, rows), each in log order, none too long.

    Examples
    --------
    >>> frame = pl.DataFrame({"account_id": [0, 1, 2, 1]})
    >>> [(b, p["account_id"].to_list()) for b, p in bucket_parts(frame, ["account_id"], 4, 0, 9)]
    [(-1, [0]), (1, [1, 1]), (2, [2])]

    """
    if buckets is None:
        for part in rows.iter_slices(rows_per_file):
            yield None, part
        return
    split = rows.with_columns(bucket_expr(key, buckets, shared=shared_expr(
        key, shared, rows.schema))).partition_by(
        "bucket", maintain_order=True, include_key=False, as_dict=True)
    for (bucket,), frame in sorted(split.items()):
        for part in frame.iter_slices(rows_per_file):
            yield int(bucket), part


def bucket_of(key: object, buckets: int) -> int:
    """The bucket of one key: a value, or a tuple of values for a composite key.

    Examples
    --------
    >>> bucket_of(1, 4), bucket_of("C1231006815", 8), bucket_of(("acme", 7), 8)
    (1, 2, 7)

    """
    parts = key if isinstance(key, tuple) else (key,)
    frame = pl.DataFrame({f"k{i}": [v] for i, v in enumerate(parts)})
    return int(key_hashes(frame)[0] % buckets)


def key_hashes(frame: pl.DataFrame) -> np.ndarray:
    """The stable 64-bit hash (see the module docstring) of each row's key, as ``uint64``."""
    h = np.zeros(frame.height, np.uint64)
    for i, name in enumerate(frame.columns):
        one = _column_hash(frame[name])
        h = one if i == 0 and frame.width == 1 else _finalise(h ^ one)
    return h


def _hash_batch(keys: pl.Series) -> pl.Series:
    return pl.Series(keys.name, key_hashes(keys.struct.unnest()), pl.UInt64)


def _column_hash(column: pl.Series) -> np.ndarray:
    dtype = column.dtype
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum | pl.Decimal) \
            or dtype == pl.Binary:  # text, decimals as their text ("1.50"), bytes: their bytes
        arrow = pa.array(column.fill_null(b"" if dtype == pl.Binary else "").cast(
            pl.Binary if dtype == pl.Binary else pl.String).to_arrow()).cast(pa.large_binary())
        _, offsets, data = arrow.buffers()
        starts = np.frombuffer(offsets, np.int64)[arrow.offset:arrow.offset + len(arrow) + 1]
        return _fnv1a(starts, np.frombuffer(data, np.uint8) if data is not None
                      else np.zeros(0, np.uint8))
    if dtype.is_integer() or dtype == pl.Boolean or dtype.is_temporal():
        values = column.to_physical().cast(pl.Int64).fill_null(0).to_numpy()
        return _finalise(values.view(np.uint64) + np.uint64(_GOLDEN))
    msg = f"a key column of {dtype} values cannot be bucketed (integers, text, dates, bytes)"
    raise ScaleError(msg, param="buckets")


@njit(cache=True, nogil=True)
def _finalise(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def _fnv1a(starts: np.ndarray, data: np.ndarray) -> np.ndarray:
    n = starts.shape[0] - 1
    out = np.empty(n, np.uint64)
    for i in range(n):
        h = np.uint64(_FNV_OFFSET)
        for b in range(starts[i], starts[i + 1]):
            h = (h ^ np.uint64(data[b])) * np.uint64(_FNV_PRIME)
        out[i] = h
    return _finalise(out)


def check_buckets(buckets: object, *, param: str = "buckets") -> int:
    """``buckets`` as an int in ``1 .. MAX_BUCKETS``, or :class:`ScaleError` naming it."""
    if isinstance(buckets, bool) or not isinstance(buckets, int) \
            or not 1 <= buckets <= MAX_BUCKETS:
        msg = f"{param} must be an integer from 1 to {MAX_BUCKETS}, got {buckets!r}"
        raise ScaleError(msg, param=param)
    return buckets
