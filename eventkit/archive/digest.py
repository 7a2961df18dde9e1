"""The content digest: what the rows of a set of data files are, however they are stored."""

from __future__ import annotations

import hashlib

import polars as pl

__all__ = ["content_digest", "in_log_order"]

_DIGEST_ROWS = 500_000


def content_digest(frames: list[pl.DataFrame]) -> str:
    """SHA-256 of the rows of ``frames`` (in order), independent of how they are stored.

    Two sets of data files hold the same events in the same order exactly when
    their content digests are equal, however the rows are split into files,
    row groups or compressed. Values are hashed as text (times as epoch
    microseconds, bytes as hex), with the column names first.

    Examples
    --------
    >>> a = pl.DataFrame({"seq": [0, 1, 2], "amount": [5, 7, 9]})
    >>> content_digest([a]) == content_digest([a.head(1), a.tail(2)])
    True
    >>> content_digest([a]) == content_digest([a.reverse()])
    False

    """
    h = hashlib.sha256()
    names: list[str] | None = None
    for frame in frames:
        if names is None:
            names = frame.columns
            h.update(("\t".join(names) + "\n").encode())
        stable = frame.select(_stable(name, frame.schema[name]) for name in names)
        for part in stable.iter_slices(_DIGEST_ROWS):
            h.update(part.write_csv(include_header=False, float_precision=None).encode())
    return h.hexdigest()


def _stable(name: str, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        return pl.col(name).dt.epoch("us")
    if dtype == pl.Binary:
        return pl.col(name).bin.encode("hex")
    return pl.col(name)


def in_log_order(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` in ``seq`` order: the files of a bucketed append each hold one bucket's rows.

    A merged file is read as one range of ``seq`` values; were its rows left in
    the order of their files, a scan of a compacted bucketed archive would not
    be in log order.

    >>> in_log_order(pl.DataFrame({"seq": [0, 2, 1]}))["seq"].to_list()
    [0, 1, 2]
    """
    return rows if rows["seq"].is_sorted() else rows.sort("seq", maintain_order=True)
