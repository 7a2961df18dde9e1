"""Compiled passes over event arrays (numba): visiting order, running folds, grids.

Nothing here loops over events in Python. Every fold walks the log once, in
its order, visiting each key's events in valid-time order (see
:func:`visiting_order`: only keys with late events differ from log order), and
keeps each key's state in an array row indexed by the key's dense code: events
are read nearly sequentially, and the state row of the key a few events ahead
is prefetched into the cache. The rule interpreter, the other fold, is
:mod:`eventkit.replay.interpreter`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from eventkit.replay._intrinsics import AHEAD, NO_TIME, OPTS, accumulate, prefetch

__all__ = ["NO_TIME", "fold_terms", "grid_positions", "key_time_order", "last_visits",
           "type_codes", "visiting_order"]


@njit(**OPTS)
def visiting_order(keys: np.ndarray, times: np.ndarray, seqs: np.ndarray, n_keys: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Where a fold walking the log must visit another row to see each key's events in order.

    A fold walks log positions ``j = 0, 1, ...`` and visits row ``j``, except
    at positions ``at[i]`` (ascending), where it visits row ``rows[i]``. So
    every key's events are visited by (time, seq): a key whose log order is its
    valid-time order (almost every key: a log is written as time goes by) keeps
    it; a key with late events (that come, in the log, after a later (time,
    seq) of the same key: late corrections) gets its events sorted into its own
    places in the log. Only the few events that move are listed.
    """
    n = keys.shape[0]
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    last = np.full((n_keys, 2), small, np.int64)  # per key: the latest (time, seq) so far
    first = np.full((n_keys, 2), big, np.int64)  # per key: its earliest late (time, seq)
    final = np.full(n_keys, -1, np.int64)  # per key: the log position of its last late event
    for e in range(n):
        if e + AHEAD < n:
            prefetch(last, 2 * keys[e + AHEAD])
        k = keys[e]
        t, q = times[e], seqs[e]
        if t < last[k, 0] or (t == last[k, 0] and q < last[k, 1]):
            final[k] = e
            if t < first[k, 0] or (t == first[k, 0] and q < first[k, 1]):
                first[k, 0], first[k, 1] = t, q
        else:
            last[k, 0], last[k, 1] = t, q
    if np.all(final < 0):  # no late events: log order is every key's time order
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # A late key's events before the first one after its earliest late event come before
    # that one, in order; those after its last late event come after all before them, in
    # order: both stay where they are. The events in between get sorted.
    places = np.empty(n, np.int64)  # those in between, in log order
    m = 0
    count = np.zeros(n_keys + 1, np.int64)
    for e in range(n):
        if e + AHEAD < n:
            prefetch(final, keys[e + AHEAD])
        k = keys[e]
        if e <= final[k] and (times[e] > first[k, 0] or (
                times[e] == first[k, 0] and seqs[e] >= first[k, 1])):
            first[k, 0] = small  # from here on, all of the key's events up to its last late one
            places[m] = e
            m += 1
            count[k + 1] += 1
    # grouped by key (a counting sort keeps log order), then each group by (time, seq)
    start = np.cumsum(count)
    slots = np.empty(m, np.int64)
    fill = start[:-1].copy()
    for e in places[:m]:
        slots[fill[keys[e]]] = e
        fill[keys[e]] += 1
    # log order is nearly time order, so insertion sort (on copies of the times and seqs)
    rows, t, q = slots.copy(), times[slots], seqs[slots]
    for k in np.flatnonzero(final >= 0):
        for j in range(start[k] + 1, start[k + 1]):
            row, tj, qj = rows[j], t[j], q[j]
            i = j - 1
            while i >= start[k] and (t[i] > tj or (t[i] == tj and q[i] > qj)):
                rows[i + 1], t[i + 1], q[i + 1] = rows[i], t[i], q[i]
                i -= 1
            rows[i + 1], t[i + 1], q[i + 1] = row, tj, qj
    moved = np.flatnonzero(rows != slots)
    by_place = np.argsort(slots[moved])
    return slots[moved][by_place], rows[moved][by_place]


@njit(**OPTS)
def key_time_order(keys: np.ndarray, at: np.ndarray, rows: np.ndarray, n_keys: int
                   ) -> np.ndarray:
    """Row numbers that group the rows by key code, each key's rows by (time, seq).

    A counting sort of the rows in the order a fold visits them (``at`` and
    ``rows`` from :func:`visiting_order`: each key's rows by (time, seq)).
    """
    n = keys.shape[0]
    fill = np.zeros(n_keys + 1, np.int64)
    for e in range(n):
        fill[keys[e] + 1] += 1
    for k in range(n_keys):
        fill[k + 1] += fill[k]
    order = np.empty(n, np.int64)
    i = 0
    for j in range(n):
        e = j
        if i < at.shape[0] and at[i] == j:
            e = rows[i]
            i += 1
        k = keys[e]
        order[fill[k]] = e
        fill[k] += 1
    return order


@njit(**OPTS)
def last_visits(at: np.ndarray, rows: np.ndarray, keys: np.ndarray, n_keys: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per key code: the row a fold visits last (its latest by (time, seq)), and its rows.

    (``at`` and ``rows`` from :func:`visiting_order`: a key's events are
    visited at its own places in the log, so the last one at its last place.)
    What :func:`grid_positions` gives for an instant after every event,
    without reading times or seqs; -1 and 0 for a code no row has.
    """
    last = np.full(n_keys, -1, np.int64)
    count = np.zeros(n_keys, np.int64)
    n = keys.shape[0]
    i = 0
    for j in range(n):
        if j + AHEAD < n:
            prefetch(last, keys[j + AHEAD])
        k = keys[j]
        e = j
        if i < at.shape[0] and at[i] == j:
            e = rows[i]
            i += 1
        last[k] = e
        count[k] += 1
    return last, count


# For a string of n <= 12 bytes, the bits of its view's two words that hold its length and
# bytes (the rest should be zero, but is not read)
_INLINE_BITS = np.array([[(1 << min(64, 32 + 8 * n)) - 1, (1 << max(0, 8 * (n - 4))) - 1]
                         for n in range(13)], np.uint64).view(np.int64)
_CACHE = 256  # remembered views (a power of two)


@njit(**OPTS)
def type_codes(views: np.ndarray, data: np.ndarray, starts: np.ndarray, names: np.ndarray,
               out: np.ndarray, counts: np.ndarray) -> None:
    """Codes of strings in Arrow's string-view layout: ``i`` for ``names[i]``, else -1.

    ``views`` has two int64 words per string (Arrow's 16-byte views): the byte
    length and the first 4 bytes, then, for a string of up to 12 bytes, its
    other 8 bytes, else the number of its data buffer and its offset there
    (buffer ``b`` starts at ``starts[b]`` of ``data``, the buffers one after the
    other). ``names`` holds name ``i`` as views do in row ``i``, padded with
    zero bytes, then its bytes (one per column). A small cache remembers the
    code of each view seen (for a long string: of its place in ``data``).
    Adds the rows of code ``i`` to ``counts[i + 1]`` (of -1 to ``counts[0]``).
    """
    seen = np.full((_CACHE, 3), -1, np.int64)  # view words and code; -1: no view looks so
    for r in range(views.shape[0]):
        w0, w1 = views[r, 0], views[r, 1]
        length = w0 & 0xFFFFFFFF
        if length <= 12:
            w0 &= _INLINE_BITS[length, 0]
            w1 &= _INLINE_BITS[length, 1]
        slot = ((w0 * 0x9E3779B97F4A7C15) ^ (w1 * 0xC2B2AE3D27D4EB4F)) >> 40 & (_CACHE - 1)
        if seen[slot, 0] != w0 or seen[slot, 1] != w1:
            seen[slot, 0], seen[slot, 1] = w0, w1
            seen[slot, 2] = _type_code(w0, w1, length, data, starts, names)
        out[r] = seen[slot, 2]
        counts[seen[slot, 2] + 1] += 1


@njit(**OPTS)
def _type_code(w0: int, w1: int, length: int, data: np.ndarray, starts: np.ndarray,
               names: np.ndarray) -> int:
    """The code of one view (see :func:`type_codes`; inline bytes past the string zeroed)."""
    for i in range(names.shape[0]):
        if w0 != names[i, 0]:  # length and first 4 bytes
            continue
        if length <= 12:
            if w1 == names[i, 1]:
                return i
            continue
        at = starts[w1 & 0xFFFFFFFF] + ((w1 >> 32) & 0xFFFFFFFF)
        same = True
        for b in range(length):
            if data[at + b] != names[i, 2 + b]:
                same = False
                break
        if same:
            return i
    return -1


@njit(**OPTS)
def fold_terms(at: np.ndarray, rows: np.ndarray, keys: np.ndarray, n_keys: int,
               types: np.ndarray, term_of: np.ndarray, sign_of: np.ndarray, values: np.ndarray,
               initial: float, start_keys: np.ndarray, start_values: np.ndarray,
               add: bool, out: np.ndarray) -> int:  # noqa: FBT001
    """A linear field's running fold per key, visiting events as ``(at, rows)`` say.

    (See :func:`visiting_order`.) Every key starts at ``initial``, except keys
    ``start_keys`` which start at ``start_values`` (state carried over from a
    snapshot). An event of type code ``t`` uses term ``term_of[t]`` (row of
    ``values``; -1: the field is untouched): ``add`` adds it (``sign_of[t]``
    -1: subtracts it), otherwise the field is set to it. ``out`` gets the value
    after each event. Returns -1, or the row of the event whose integer sum
    went beyond Int64 (the fold stops there; ``out`` holds the sum before it).
    """
    acc = np.full(n_keys, initial, values.dtype)
    for r in range(start_keys.shape[0]):
        acc[start_keys[r]] = start_values[r]
    n = keys.shape[0]
    i = 0  # the next place where another row is visited
    for j in range(n):
        if j + AHEAD < n:
            prefetch(acc, keys[j + AHEAD])
        k = keys[j]
        e = j
        if i < at.shape[0] and at[i] == j:
            e = rows[i]
            i += 1
        t = types[e]
        if t >= 0:
            term = term_of[t]
            if term >= 0:
                if add:
                    total, over = accumulate(acc[k], values[term, e], sign_of[t] < 0)
                    if over:
                        out[e] = acc[k]  # the sum before it, for the error
                        return e
                    acc[k] = total
                else:
                    acc[k] = values[term, e]
        out[e] = acc[k]
    return -1


@njit(**OPTS)
def grid_positions(keys: np.ndarray, times: np.ndarray, seqs: np.ndarray, n_keys: int,
                   grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (grid instant, key): the row of the key's last event at or before it.

    One pass over the events: each event can only be the answer from the
    first grid instant at or after its time on, so it competes in that cell
    only; a running maximum along the grid then fills the later cells.
    ``grid`` is sorted. Returns rows (-1: no event yet) and event counts, both
    of shape (len(grid), n_keys).
    """
    g_n = grid.shape[0]
    best = np.full((g_n, n_keys), -1, np.int64)
    count = np.zeros((g_n, n_keys), np.int64)
    # the best row's time and seq beside it: no lookup of a far row's time for each event
    best_t = np.empty((g_n, n_keys), np.int64)
    best_s = np.empty((g_n, n_keys), np.int64)
    for e in range(keys.shape[0]):
        t = times[e]
        g = np.searchsorted(grid, t, side="left")
        if g == g_n:
            continue
        k = keys[e]
        count[g, k] += 1
        if best[g, k] < 0 or t > best_t[g, k] or (t == best_t[g, k] and seqs[e] > best_s[g, k]):
            best[g, k] = e
            best_t[g, k] = t
            best_s[g, k] = seqs[e]
    for g in range(1, g_n):
        for k in range(n_keys):
            count[g, k] += count[g - 1, k]
            if best[g, k] < 0:
                best[g, k] = best[g - 1, k]
    return best, count
