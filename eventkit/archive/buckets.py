"""The bucketed layout: events partitioned by a hash of their account into buckets.

An archive created with ``EventArchive.create(path, buckets=B)`` stores each
append as one data file per non-empty bucket (all in the same commit), and its
record names the bucket of every file, so a reader picks a bucket's files
without opening any. Account ``a`` lies in bucket :func:`bucket_of` ``(a, B)``
(``0 .. B-1``); the bank's own events (account 0, the rate table every account
reads) lie in :data:`BANK_BUCKET`, which a reader of any bucket reads too.

The hash is eventkit's own (the splitmix64 finaliser, wrapping 64-bit
arithmetic), not Polars' ``hash`` (whose values may change between releases):
a key keeps its bucket across appends, processes and versions.
"""

from __future__ import annotations

import polars as pl

from eventkit.exceptions import ScaleError
from eventkit.schema import BANK_ACCOUNT

__all__ = ["BANK_BUCKET", "MAX_BUCKETS", "bucket_expr", "bucket_of", "check_buckets"]

#: The bucket of the bank's own events (account 0): read with every other bucket.
BANK_BUCKET = -1
#: Most buckets an archive may have (each append writes up to one file per bucket).
MAX_BUCKETS = 4096

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def bucket_expr(column: str | pl.Expr, buckets: int) -> pl.Expr:
    """Polars expression ``bucket`` (Int32): the bucket of each account in ``column``.

    Examples
    --------
    >>> pl.DataFrame({"account_id": [0, 1, 2, 3]}).select(
    ...     bucket_expr("account_id", 4))["bucket"].to_list()
    [-1, 1, 2, 1]

    """
    key = pl.col(column) if isinstance(column, str) else column
    z = key.cast(pl.UInt64, wrap_numerical=True) + pl.lit(_GOLDEN, pl.UInt64)
    z = (z ^ (z // (1 << 30))) * pl.lit(_MIX1, pl.UInt64)
    z = (z ^ (z // (1 << 27))) * pl.lit(_MIX2, pl.UInt64)
    z = z ^ (z // (1 << 31))
    return (pl.when(key == BANK_ACCOUNT).then(pl.lit(BANK_BUCKET, pl.Int32))
            .otherwise((z % buckets).cast(pl.Int32)).alias("bucket"))


def bucket_of(account: int, buckets: int) -> int:
    """The bucket of one account (:data:`BANK_BUCKET` for the bank, account 0).

    Examples
    --------
    >>> bucket_of(1, 4), bucket_of(0, 4)
    (1, -1)

    """
    return int(pl.select(bucket_expr(pl.lit(account, pl.Int64), buckets)).item())


def check_buckets(buckets: object, *, param: str = "buckets") -> int:
    """``buckets`` as an int in ``1 .. MAX_BUCKETS``, or :class:`ScaleError` naming it."""
    if isinstance(buckets, bool) or not isinstance(buckets, int) \
            or not 1 <= buckets <= MAX_BUCKETS:
        msg = f"{param} must be an integer from 1 to {MAX_BUCKETS}, got {buckets!r}"
        raise ScaleError(msg, param=param)
    return buckets
