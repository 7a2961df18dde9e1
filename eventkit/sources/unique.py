"""Find a repeated id among millions, exactly, at the cost of a sort of integers.

:func:`first_duplicate` answers what ``ids.is_duplicated().arg_true()[0]``
answers — the first row whose id occurs more than once — without hashing
strings into a table of strings (about 1.5 s for 5 million ids). Integer ids
are their own keys: ids that only grow (a log's usual order) are distinct by
a look at neighbours, others are sorted. Other ids are hashed to 64 bits and
the hashes sorted. Equal ids have equal keys, so every repeated id is among
the rows whose key repeats (a hash collision cannot hide one); those few rows
are then compared by value, so a collision cannot invent one either.

>>> import polars as pl
>>> first_duplicate(pl.Series(["a", "b", "c", "b", "a"]))
0
>>> first_duplicate(pl.Series([10, 11, 12])) is None
True
"""

from __future__ import annotations

import numpy as np
import polars as pl

__all__ = ["first_duplicate", "keys_of"]


def keys_of(ids: pl.Series) -> np.ndarray:
    """64-bit keys of ``ids`` without nulls: equal ids, equal keys (integers: the ids)."""
    if ids.dtype.is_integer() and ids.dtype != pl.UInt64:
        return ids.cast(pl.Int64).to_numpy()
    return ids.hash(seed=0).to_numpy()


def _growing(ids: pl.Series) -> bool:
    """Whether integer ``ids`` (no nulls) grow strictly, row by row, across their chunks.

    Each chunk is read in place (10 M ids: 0.01 s; copying them out first took 0.05 s).
    """
    last = None
    for chunk in ids.cast(pl.Int64).get_chunks():
        values = chunk.to_numpy()
        if values.size == 0:
            continue
        if (last is not None and values[0] <= last) or not bool(
                np.all(values[1:] > values[:-1])):
            return False
        last = values[-1]
    return True


def first_duplicate(ids: pl.Series) -> int | None:
    """The first row whose value occurs again elsewhere in ``ids`` (``None``: all distinct).

    Nulls count as one value, as :meth:`polars.Series.is_duplicated` counts them.
    """
    if ids.len() < 2:
        return None
    if ids.null_count():
        present = ids.is_not_null()
        found = first_duplicate(ids.filter(present))
        rows = [] if found is None else [int(present.arg_true()[found])]
        if ids.null_count() > 1:
            rows.append(int(present.not_().arg_true()[0]))
        return min(rows, default=None)
    if ids.dtype.is_integer() and ids.dtype != pl.UInt64 and _growing(ids):
        return None  # strictly growing: distinct
    keys = keys_of(ids)
    ordered = pl.Series(keys).sort().to_numpy()  # (Polars' sort: 3x NumPy's on 10 M keys)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return None
    # the rows whose key repeats: every repeated id, and ids that only share a hash
    candidates = np.flatnonzero(np.isin(keys, ordered[1:][same]))
    repeated = ids.gather(candidates).is_duplicated()
    if not repeated.any():
        return None  # hash collisions only
    return int(candidates[int(repeated.arg_true()[0])])
