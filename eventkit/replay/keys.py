"""Keys of any type as dense codes: what every fold indexes its state arrays by.

A rule set's key is one column or several (:attr:`eventkit.RuleSet.key_columns`):
Int64 account ids, text such as ``"C1231006815"`` or UUIDs, dates, booleans,
or a tuple of them. The engine needs, per event, a code ``0 .. n_keys-1``;
the answers carry the key back in its own columns and types (the codes never
leave the engine).

* small non-negative integers are their own codes (no work at all);
* other integers (and dates, times, booleans: their physical integers) get
  codes from a compiled open-addressing hash table keyed by the exact value;
* text gets codes from a compiled hash table keyed by a hash of the string,
  where two strings share a code only if their bytes are equal (compared in
  place in Arrow's string-view buffers): exact, never a guess from a hash.
  Text read from dictionary-encoded Parquet pages (what Polars, Spark and
  pyarrow write for repeated ids) points at each distinct string's bytes
  from every row that holds it: such a place is hashed and coded once, and
  its other rows only look it up (10 M UUIDs: 0.19-0.21 s instead of 0.7-0.9 s);
* a composite key combines its columns' codes (``a * n_b + b``), coded again.

The same codes group rows by key at the cost of a counting sort
(:func:`rows_by_key`, what the patterns need).

Nothing here loops over events in Python.

>>> import polars as pl
>>> codes, n = dense_codes(pl.DataFrame({"k": ["b", "a", "b", "c"]}), ("k",))
>>> codes.tolist(), n
([0, 1, 0, 2], 3)
>>> codes, n = dense_codes(pl.DataFrame({"t": ["x", "x", "y"], "i": [1, 2, 1]}), ("t", "i"))
>>> len(set(codes.tolist())), bool(codes.max() < n)
(3, True)
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
from numba import njit

from eventkit.exceptions import EventDataError, SchemaError, ValidationError
from eventkit.replay import kernels as K
from eventkit.replay._intrinsics import OPTS, prefetch

__all__ = ["dense_codes", "key_codes", "key_type_error", "rows_by_key"]

_DENSE_SLACK = 1 << 20  # integer keys up to 4 n + this are their own codes
_EMPTY = -1
_AHEAD = 8
# For a string of n <= 12 bytes, the bits of its view's two words that hold its length and
# bytes (the rest should be zero, but is not read)
_INLINE = np.array([[(1 << min(64, 32 + 8 * n)) - 1, (1 << max(0, 8 * (n - 4))) - 1]
                    for n in range(13)], np.uint64).view(np.int64)
_MIX = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 as a signed word
_FNV_OFFSET = np.int64(-3750763034362895579)  # 0xCBF29CE484222325 as a signed word
_FNV_PRIME = np.int64(0x100000001B3)
_FIN_1 = np.int64(-4658895280553007687)  # 0xBF58476D1CE4E5B9, splitmix64's finaliser
_FIN_2 = np.int64(-7723592293110705685)  # 0x94D049BB133111EB


def dense_codes(frame: pl.DataFrame, columns: tuple[str, ...], *,
                source: str = "events") -> tuple[np.ndarray, int]:
    """Codes ``0 .. n_keys-1`` of the key ``columns`` of ``frame``, and ``n_keys``.

    Equal keys get equal codes, different keys different ones. Codes need
    not all be used (small integer keys are their own codes). A null key or
    a column of a type no key can have (floats, lists, structs) raises an
    :class:`~eventkit.exceptions.EventDataError` naming the column and row.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = (f"the rule set's key {list(columns)} names column(s) {missing} the events do "
               f"not have; they have {frame.columns}")
        raise SchemaError(msg, source=source, column=missing[0])
    if frame.height == 0:
        return np.zeros(0, np.int64), 0
    codes, n = key_codes(frame[columns[0]], source=source)
    for name in columns[1:]:
        more, m = key_codes(frame[name], source=source)
        if n * m < 1 << 62:  # the pair as one integer, then coded again
            codes, n = _int_codes(codes * m + more)
        else:  # (never with fewer than 2**31 events: n and m are at most their number)
            codes, n = _int_codes(_pairs(codes, more))
    return codes, n


def rows_by_key(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray | None:
    """Row numbers grouping ``frame``'s rows by the key ``columns``, each key's by (time, seq).

    Keys come in no particular order; each key's rows in the order of
    ``event_time``, then ``seq``: the order a fold visits them in
    (:func:`~eventkit.replay.kernels.visiting_order`), grouped by a counting
    sort. ``None`` when a key, time or seq is null or of a type this cannot
    order (the caller sorts).

    >>> frame = pl.DataFrame({"k": ["b", "a", "b"], "event_time": [2, 1, 1], "seq": [0, 1, 2]})
    >>> rows_by_key(frame, ("k",)).tolist()
    [2, 0, 1]
    """
    order = ("event_time", "seq")
    if frame.height == 0 or any(frame[c].null_count() for c in (*columns, *order)) or not all(
            frame.schema[c].is_temporal() or frame.schema[c].is_integer() for c in order):
        return None
    try:
        codes, n_keys = dense_codes(frame, columns)
        times, seqs = (frame[c].to_physical().cast(pl.Int64).to_numpy() for c in order)
    except (EventDataError, pl.exceptions.PolarsError):  # e.g. float keys, seqs beyond Int64
        return None
    return K.key_time_order(codes, *K.visiting_order(codes, times, seqs, n_keys), n_keys)


def key_codes(column: pl.Series, *, source: str = "events") -> tuple[np.ndarray, int]:
    """Codes of one key column (see :func:`dense_codes`)."""
    if column.null_count():
        row = int(column.is_null().arg_true()[0])
        msg = "null key: every event needs a value in each key column"
        raise ValidationError(msg, source=source, column=column.name, row=row)
    dtype = column.dtype
    error = key_type_error(column.name, dtype, source=source)
    if error is not None:
        raise error
    if dtype == pl.String:
        return _string_codes(column)
    if dtype.is_integer() or dtype == pl.Boolean:
        if dtype == pl.UInt64 and column.max() > np.iinfo(np.int64).max:  # type: ignore[operator]
            return _string_codes(column.cast(pl.String))
        return _int_codes(_numpy(column.cast(pl.Int64)))
    if dtype.is_temporal():
        return _int_codes(_numpy(column.to_physical().cast(pl.Int64)))
    if dtype == pl.Binary:  # any bytes, not only UTF-8 text: coded by their hex digits
        return _string_codes(column.bin.encode("hex"))
    return _string_codes(column.cast(pl.String))  # categories, decimals


def key_type_error(name: str, dtype: pl.DataType, *, source: str = "events"
                   ) -> SchemaError | None:
    """The error of a key column ``name`` of ``dtype`` values, or None for a type keys may have."""
    if dtype == pl.String or dtype.is_integer() or dtype == pl.Boolean or dtype.is_temporal() \
            or isinstance(dtype, pl.Categorical | pl.Enum | pl.Decimal) or dtype == pl.Binary:
        return None
    msg = (f"a key column cannot hold {dtype} values (keys are integers, text, dates or "
           "booleans, or several such columns)")
    return SchemaError(msg, source=source, column=name)


def _numpy(column: pl.Series) -> np.ndarray:
    out = np.empty(column.len(), np.int64)
    at = 0
    for chunk in column.get_chunks():
        out[at:at + chunk.len()] = chunk.to_numpy()
        at += chunk.len()
    return out


def _pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Codes of (a, b) pairs when ``a * n_b + b`` could overflow: dense rank of the pairs."""
    frame = pl.DataFrame({"a": a, "b": b})
    return (frame.select(pl.struct("a", "b").rank("dense")).to_series().cast(pl.Int64) - 1
            ).to_numpy()


# --------------------------------------------------------------------------- integers
def _int_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    n = values.shape[0]
    if n == 0:
        return values, 0
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0 and hi <= 4 * n + _DENSE_SLACK:
        return values, hi + 1
    out = np.empty(n, np.int64)
    cap = 1 << 12
    table = np.full((cap, 2), _EMPTY, np.int64)
    count = np.zeros(1, np.int64)
    at = 0
    while at < n:
        at = _int_table(values, at, table, count, out)
        if at < n:
            table = _grow_ints(table)
    return out, int(count[0])


@njit(**OPTS)
def _slot(x: int, cap: int) -> int:
    z = x * _MIX
    return int((z ^ (z >> 29)) & (cap - 1))


@njit(**OPTS)
def _int_table(values: np.ndarray, at: int, table: np.ndarray, count: np.ndarray,
               out: np.ndarray) -> int:
    """Code ``values[at:]`` into ``out`` (new values get the next code); stop when half full.

    ``table`` rows are (value, code), code -1 when empty. Returns where it stopped.
    """
    cap = table.shape[0]
    n = values.shape[0]
    m = count[0]
    for i in range(at, n):
        if 2 * (m + 1) > cap:
            count[0] = m
            return i
        if i + _AHEAD < n:
            prefetch(table, 2 * _slot(values[i + _AHEAD], cap))
        x = values[i]
        s = _slot(x, cap)
        while True:
            c = table[s, 1]
            if c == _EMPTY:
                table[s, 0], table[s, 1] = x, m
                out[i] = m
                m += 1
                break
            if table[s, 0] == x:
                out[i] = c
                break
            s = (s + 1) & (cap - 1)
    count[0] = m
    return n


@njit(**OPTS)
def _grow_ints(table: np.ndarray) -> np.ndarray:
    cap = table.shape[0] * 2
    new = np.full((cap, 2), _EMPTY, np.int64)
    for r in range(table.shape[0]):
        if table[r, 1] != _EMPTY:
            s = _slot(table[r, 0], cap)
            while new[s, 1] != _EMPTY:
                s = (s + 1) & (cap - 1)
            new[s, 0], new[s, 1] = table[r, 0], table[r, 1]
    return new


# --------------------------------------------------------------------------- text
#: A row of the text table: 8 words (one cache line): the string's hash, its code (-1: an
#: empty row), its view's first word (length, first 4 bytes), then up to 40 more of its
#: bytes (longer strings: where their bytes are in the arena).
_ROW = 8
_HELD = 4 + 8 * (_ROW - 3)  # strings up to this long are held whole in their table row


def _string_codes(column: pl.Series) -> tuple[np.ndarray, int]:
    """Codes of a text column: hashed, equal only when the bytes are equal."""
    out = np.empty(column.len(), np.int64)
    joined: dict[tuple[tuple[int, int], ...], np.ndarray] = {}  # (one copy per buffer set)
    chunks = [_Chunk(chunk, joined) for chunk in pa.chunked_array(column).chunks]
    # Text read from dictionary-encoded Parquet pages: the views of equal strings point at
    # the same bytes (chunks often share them), so each place of bytes is coded once (see
    # _Places). Otherwise Polars hashes every row, and every row is coded.
    held = {c.buffers: c.data.size for c in chunks}
    rows = dict.fromkeys(held, 0)
    shortest = dict.fromkeys(held, 1 << 30)  # each buffer set's shortest long string
    long = 0
    for c in chunks:
        rows[c.buffers] += c.words.shape[0]
        size, least = _long_bytes(c.words)
        long += size
        shortest[c.buffers] = min(shortest[c.buffers], least)
    shared = column.len() < 1 << 31 and sum(held.values()) < long
    # a word of the index of places per 2**shift bytes (see _Places)
    shift = {b: max(3, min(n, 1 << 16).bit_length() - 1) for b, n in shortest.items()}
    hashes = np.zeros(0, np.int64) if shared else column.hash().to_numpy().view(np.int64)
    text = _Text()
    places: _Places | None = None
    row = 0
    for c in chunks:
        size = c.words.shape[0]
        if not shared:
            text.code(c.words, c.data, c.starts, hashes[row:row + size], out[row:row + size])
        elif c.data.size >> shift[c.buffers] > 2 * rows[c.buffers]:  # (an index outweighing
            text.code(c.words, c.data, c.starts, _hashes(c.words, c.data, c.starts),
                      out[row:row + size])  # the rows would not pay)
        else:
            if places is None or places.buffers != c.buffers:  # (the one before is dropped:
                places = _Places(c, shift[c.buffers])  # its memory is bounded)
            places.code(text, c, out[row:row + size])
        row += size
    return out, int(text.count[0])


class _Chunk:
    """A text chunk's 16-byte views (pairs of words), its bytes, where each buffer starts.

    ``buffers`` names the data buffers (address, size): chunks sliced from one
    array share them (and, in ``joined``, their bytes in one array).
    """

    def __init__(self, chunk: pa.Array,
                 joined: dict[tuple[tuple[int, int], ...], np.ndarray]) -> None:
        chunk = chunk.cast(pa.string_view()) if chunk.type != pa.string_view() else chunk
        _, views, *buffers = chunk.buffers()  # Polars' own buffers, not a copy
        self.words = np.frombuffer(views, np.int64).reshape(-1, 2)[chunk.offset:][:len(chunk)]
        parts = [np.frombuffer(b, np.uint8) for b in buffers if b is not None]
        self.buffers = tuple((b.address, b.size) for b in buffers if b is not None)
        if self.buffers not in joined:
            joined[self.buffers] = (parts[0] if len(parts) == 1 else np.concatenate(parts)
                                    if parts else np.zeros(0, np.uint8))
        self.data = joined[self.buffers]
        self.starts = np.cumsum([0] + [b.size for b in buffers if b is not None],
                                dtype=np.int64)


class _Text:
    """The table of the text coded so far (see ``_string_table``), grown as it fills."""

    def __init__(self) -> None:
        self.table = _table(1 << 12)
        self.arena = np.zeros(1 << 12, np.uint8)  # the bytes of strings too long for a row
        self.count = np.zeros(2, np.int64)  # codes, arena bytes used

    def code(self, words: np.ndarray, data: np.ndarray, starts: np.ndarray,
             hashes: np.ndarray, out: np.ndarray) -> None:
        """Code the strings of ``words`` (views into ``data``) into ``out``."""
        at = 0
        while at < words.shape[0]:
            at = _string_table(words, data, starts, hashes, at, self.table, self.arena,
                               self.count, out)
            if at < words.shape[0]:  # the table or the arena filled up: grow it, go on
                if 2 * (self.count[0] + 1) > self.table.shape[0]:
                    self.table = _grow_strings(self.table, _table(2 * self.table.shape[0]))
                longest = int(words[at, 0] & 0xFFFFFFFF)
                if self.count[1] + longest > self.arena.shape[0]:
                    self.arena = np.concatenate(
                        [self.arena, np.zeros(max(self.arena.shape[0], longest), np.uint8)])


class _Places:
    """The codes of the long strings (over 12 bytes) of chunks sharing one set of buffers.

    A long string whose bytes are where an earlier one's of the same length
    are is the same string: its row takes that place's code. The first row of
    each new place and the short strings (held in their views) are hashed and
    coded; the other rows only look their place up. ``at[p >> shift]``
    holds the code of the string whose bytes start at ``p`` (high 32 bits),
    its length and ``p``'s last ``shift`` bits (``length << shift | p & (2**shift
    - 1)``): one word read per row (-1: none yet). ``2**shift`` is the
    shortest long string's length rounded down to a power of two: two long
    strings that do not overlap never share a word (36-byte UUIDs: a word
    per 32 bytes, an index a quarter the size of one per 8). Overlapping
    places (never from Parquet) and strings of ``2**(31 - shift)`` bytes or
    more: the chunk's rows are all coded.
    """

    def __init__(self, chunk: _Chunk, shift: int) -> None:
        self.buffers = chunk.buffers
        self.shift = shift
        self.at = np.full((chunk.data.size >> self.shift) + 1, -1, np.int64)

    def code(self, text: _Text, c: _Chunk, out: np.ndarray) -> None:
        """Code the rows of chunk ``c`` into ``out``."""
        first = np.empty(c.words.shape[0], np.int64)  # new places' rows, then short strings'
        new, short, pending = _places(c.words, c.starts, self.at, self.shift, first, out)
        if new < 0:
            text.code(c.words, c.data, c.starts, _hashes(c.words, c.data, c.starts), out)
            return
        if new + short == 0:
            return
        rows = first[:new + short]
        sub = c.words[rows]
        sub.flags.writeable = False  # (typed as every chunk's views: one compiled kernel)
        codes = np.empty(sub.shape[0], np.int64)
        text.code(sub, c.data, c.starts, _hashes(sub, c.data, c.starts), codes)
        _settle(c.words, c.starts, first[:new], codes, self.at, self.shift,
                out if pending else out[:0])
        out[rows[new:]] = codes[new:]


@njit(**OPTS)
def _places(views: np.ndarray, starts: np.ndarray, at: np.ndarray, shift: int,
            first: np.ndarray, out: np.ndarray) -> tuple[int, int, int]:
    """Per row: the code of its place (see ``_Places``), or ``-2 - k``, or -1.

    ``-2 - k`` marks a row of new place ``k``, -1 a short string. ``first``
    gets the first row of each new place, then the rows of short strings.
    Returns the numbers of new places, of short strings and of rows of new
    places; or -1 (nothing changed) if places overlap: two strings of
    different lengths start at one spot, or two start within 8 bytes (or a
    string is 2**28 bytes long or more).
    """
    n = views.shape[0]
    low = (1 << shift) - 1
    k = pending = 0
    short = n
    for i in range(n):
        if i + _AHEAD < n and views[i + _AHEAD, 0] & 0xFFFFFFFF > 12:
            ahead = views[i + _AHEAD, 1]
            prefetch(at, (starts[ahead & 0xFFFFFFFF] + ((ahead >> 32) & 0xFFFFFFFF)) >> shift)
        size = views[i, 0] & 0xFFFFFFFF
        if size <= 12:
            short -= 1
            first[short] = i
            out[i] = -1
            continue
        w1 = views[i, 1]
        p = starts[w1 & 0xFFFFFFFF] + ((w1 >> 32) & 0xFFFFFFFF)
        tag = (size << shift) | (p & low)  # the same string: the same length, same byte
        e = at[p >> shift]
        c = e >> 32
        if size >= 1 << (31 - shift) or (e != -1 and e & 0xFFFFFFFF != tag):
            for j in range(k):  # undo the new places
                w = views[first[j], 1]
                at[(starts[w & 0xFFFFFFFF] + ((w >> 32) & 0xFFFFFFFF)) >> shift] = -1
            return -1, 0, 0
        if e == -1:
            c = -2 - k
            at[p >> shift] = (c << 32) | tag
            first[k] = i
            k += 1
        pending += c < -1
        out[i] = c
    first[k:k + n - short] = first[short:][::-1].copy()  # the short strings' rows, in order
    return k, n - short, pending


@njit(**OPTS)
def _settle(views: np.ndarray, starts: np.ndarray, first: np.ndarray, codes: np.ndarray,
            at: np.ndarray, shift: int, out: np.ndarray) -> None:
    """The new places get their codes (``codes[k]``: place ``k``'s), and so do their rows."""
    for k in range(first.shape[0]):
        w1 = views[first[k], 1]
        p = starts[w1 & 0xFFFFFFFF] + ((w1 >> 32) & 0xFFFFFFFF)
        at[p >> shift] = (codes[k] << 32) | (at[p >> shift] & 0xFFFFFFFF)  # (tag stays)
    for i in range(out.shape[0]):
        if out[i] < -1:
            out[i] = codes[-2 - out[i]]


@njit(**OPTS)
def _hashes(views: np.ndarray, data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each string's hash (:func:`_hash`)."""
    out = np.empty(views.shape[0], np.int64)
    for i in range(views.shape[0]):
        w0, w1 = views[i, 0], views[i, 1]
        length = w0 & 0xFFFFFFFF
        if length <= 12:
            out[i] = _hash(w0 & _INLINE[length, 0], w1 & _INLINE[length, 1], data, 0, length)
        else:
            out[i] = _hash(w0, w1, data, starts[w1 & 0xFFFFFFFF] + ((w1 >> 32) & 0xFFFFFFFF),
                           length)
    return out


@njit(**OPTS)
def _long_bytes(views: np.ndarray) -> tuple[int, int]:
    """Bytes of the strings over 12 bytes (not held in their views), and the shortest's length.

    (2**30: no such string.)
    """
    total, shortest = 0, 1 << 30
    for i in range(views.shape[0]):
        length = views[i, 0] & 0xFFFFFFFF
        if length > 12:
            total += length
            shortest = min(shortest, length)
    return total, shortest


@njit(**OPTS)
def _hash(w0: int, w1: int, data: np.ndarray, src: int, length: int) -> np.int64:
    """A string's hash: of its view's two words (up to 12 bytes), else of its bytes.

    Bytes are taken 8 at a time (a 36-byte UUID: 5 steps, not 36), each word
    multiplied in and its high half folded down; then splitmix64's
    finaliser, so that every bit counts in the table's slot.
    """
    h = _FNV_OFFSET
    if length <= 12:
        h = ((h ^ w0) * _FNV_PRIME ^ w1) * _FNV_PRIME
    else:
        b, end = src, src + length
        while b + 8 <= end:
            word = (np.int64(data[b]) | np.int64(data[b + 1]) << 8
                    | np.int64(data[b + 2]) << 16 | np.int64(data[b + 3]) << 24
                    | np.int64(data[b + 4]) << 32 | np.int64(data[b + 5]) << 40
                    | np.int64(data[b + 6]) << 48 | np.int64(data[b + 7]) << 56)
            h = (h ^ word) * _MIX
            h ^= (h >> 32) & 0xFFFFFFFF
            b += 8
        word = np.int64(length) << 56  # the last bytes, and the length (no 0-byte padding)
        for j in range(end - b):
            word |= np.int64(data[b + j]) << (8 * j)
        h = (h ^ word) * _MIX
    h = (h ^ ((h >> 30) & 0x3FFFFFFFF)) * _FIN_1
    h = (h ^ ((h >> 27) & 0x1FFFFFFFFF)) * _FIN_2
    return h ^ ((h >> 31) & 0x1FFFFFFFF)


def _table(cap: int) -> np.ndarray:
    """An empty text table of ``cap`` rows, each aligned to a cache line."""
    buf = np.empty(cap * _ROW + _ROW, np.int64)
    skip = (-buf.ctypes.data % (8 * _ROW)) // 8
    table = buf[skip:skip + cap * _ROW].reshape(cap, _ROW)
    table[:, 1] = _EMPTY
    return table


@njit(**OPTS)
def _grow_strings(table: np.ndarray, new: np.ndarray) -> np.ndarray:
    cap = new.shape[0]
    for r in range(table.shape[0]):
        if table[r, 1] != _EMPTY:
            s = _slot(table[r, 0], cap)
            while new[s, 1] != _EMPTY:
                s = (s + 1) & (cap - 1)
            new[s] = table[r]
    return new


@njit(**OPTS)
def _string_table(views: np.ndarray, data: np.ndarray, starts: np.ndarray,
                  hashes: np.ndarray, at: int, table: np.ndarray, arena: np.ndarray,
                  count: np.ndarray, out: np.ndarray) -> int:
    """Code the strings ``at..`` of one chunk (Arrow string views, see ``type_codes``).

    A string gets the code of a table row only if the row holds its hash and
    its bytes (compared in the row, or in ``arena`` for long strings); else a
    new row and code. Stops (returning the row number) when the table would be
    half full or ``arena`` is too short; returns the chunk's length when done.
    """
    cap = table.shape[0]
    held = table.view(np.uint8).reshape(cap, 8 * _ROW)
    n = views.shape[0]
    m, used = count[0], count[1]
    for i in range(at, n):
        if i + _AHEAD < n:
            prefetch(table, _ROW * _slot(hashes[i + _AHEAD], cap))
        w0, w1 = views[i, 0], views[i, 1]
        length = w0 & 0xFFFFFFFF
        if length <= 12:
            w0 &= _INLINE[length, 0]
            w1 &= _INLINE[length, 1]
            src = 0
        else:
            src = starts[w1 & 0xFFFFFFFF] + ((w1 >> 32) & 0xFFFFFFFF)
        h = hashes[i]
        s = _slot(h, cap)
        while True:
            c = table[s, 1]
            if c == _EMPTY:
                if 2 * (m + 1) > cap or (length > _HELD and used + length > arena.shape[0]):
                    count[0], count[1] = m, used
                    return i
                table[s, 0], table[s, 1], table[s, 2] = h, m, w0
                if length <= 12:
                    table[s, 3] = w1
                elif length <= _HELD:
                    held[s, 24:24 + length - 4] = data[src + 4:src + length]
                else:
                    table[s, 3] = used
                    arena[used:used + length] = data[src:src + length]
                    used += length
                out[i] = m
                m += 1
                break
            if table[s, 0] == h and table[s, 2] == w0:
                same = True
                if length <= 12:
                    same = table[s, 3] == w1
                elif length <= _HELD:
                    for b in range(4, length):  # the first 4 bytes are in the view
                        if data[src + b] != held[s, 20 + b]:
                            same = False
                            break
                else:
                    rep = table[s, 3]
                    for b in range(4, length):
                        if data[src + b] != arena[rep + b]:
                            same = False
                            break
                if same:
                    out[i] = c
                    break
            s = (s + 1) & (cap - 1)
    count[0], count[1] = m, used
    return n
