"""Compiled passes over event arrays (numba): running folds and the rule interpreter.

Nothing here loops over events in Python. Every fold walks the log once, in
its order, visiting each key's events in valid-time order (see
:func:`visiting_order`: only keys with late events differ from log order), and
keeps each key's state in an array row indexed by the key's dense code: events
are read nearly sequentially, and the state row of the key a few events ahead
is prefetched into the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, TypedDict, cast

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

if TYPE_CHECKING:
    from numba.core.base import BaseContext
    from numba.core.typing.context import BaseContext as TypingContext
    from numba.core.typing.templates import Signature

__all__ = ["NO_TIME", "fold_terms", "grid_positions", "run_rules", "type_codes", "visiting_order"]


class _Options(TypedDict):
    """The options every kernel is compiled with (typed: ``njit(**_OPTS)`` is checked)."""

    cache: bool
    nogil: bool
    error_model: Literal["python", "numpy"]


_OPTS: _Options = {"cache": True, "nogil": True, "error_model": "numpy"}

# Opcodes of the rule program. An instruction is a row (opcode, a, b, c) of an int64
# array; state fields are addressed by their slot in the key's state row (see run_rules).
# Fused instructions (eventkit.replay.compile.fuse makes them of whole requirements and
# assignments of common forms; run_rules runs them in its event loop):
REQ_FIELD_I = 1  # refuse the event unless int field a <cmp c> constant b
ADD_COL_I = 2  # int field a += int column b
SUB_COL_I = 3  # int field a -= int column b
ADD_K_I = 4  # int field a += constant b
SET_K_I = 5  # int field a = constant b
SET_COL_I = 6  # int field a = int column b
SET_K_F = 7  # float field a = float constant number b
SET_COL_F = 8  # float field a = float column b
# Stack instructions: loads push onto the int or the float stack (a: the value, the float
# constant's number, the slot, the column), operators pop their operands and push the
# result, stores pop.
PUSH_I, PUSH_F, FIELD_I, FIELD_F, COL_I, COL_F = 10, 11, 12, 13, 14, 15
ADD_I, SUB_I, MUL_I, FDIV_I, MOD_I, NEG_I, ABS_I, MIN_I, MAX_I = 20, 21, 22, 23, 24, 25, 26, 27, 28
ADD_F, SUB_F, MUL_F, DIV_F, NEG_F, ABS_F, MIN_F, MAX_F = 30, 31, 32, 33, 34, 35, 36, 37
I2F, ROUND = 40, 41  # ROUND: a = rounding mode
CMP_I, CMP_F = 50, 51  # a = comparison
AND, OR, NOT = 60, 61, 62
SEL_I, SEL_F = 70, 71
STORE_I, STORE_F = 80, 81  # a = slot
REQUIRE = 90  # refuse the event unless the popped flag is set
CMP_OPS = ("<", "<=", ">", ">=", "==", "!=")
ROUND_MODES = ("round_half_even", "round_half_up", "floor", "ceil", "trunc")
YEAR_SECONDS = 31_536_000.0
NO_TIME = np.iinfo(np.int64).min
_AHEAD = 8  # prefetch the state of the event this many visits ahead
_LINE = 8  # int64 words per cache line


@intrinsic
def _prefetch_intrinsic(typingctx: TypingContext, arr: types.Array, i: types.Integer
                        ) -> tuple[Signature, Callable[..., object]]:
    """Hint the CPU to fetch item ``i`` of C-contiguous ``arr``'s flat buffer; nothing else."""
    def codegen(context: BaseContext, builder: ir.IRBuilder, signature: Signature,
                args: Sequence[ir.Value]) -> object:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        item = builder.gep(ary.data, [args[1]])
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", [i8p], ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))
        # for writing, kept in all cache levels, data (not instruction) cache
        builder.call(fn, [builder.bitcast(item, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.none(arr, i), codegen


# Compiled code calls an intrinsic without its typing context (numba supplies it); the
# stubs type a call as the typing function's own (typingctx, arr, i), returning Never.
_prefetch = cast("Callable[[np.ndarray, int], None]", _prefetch_intrinsic)


@njit(**_OPTS)
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
        if e + _AHEAD < n:
            _prefetch(last, 2 * keys[e + _AHEAD])
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
        if e + _AHEAD < n:
            _prefetch(final, keys[e + _AHEAD])
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


# For a string of n <= 12 bytes, the bits of its view's two words that hold its length and
# bytes (the rest should be zero, but is not read)
_INLINE_BITS = np.array([[(1 << min(64, 32 + 8 * n)) - 1, (1 << max(0, 8 * (n - 4))) - 1]
                         for n in range(13)], np.uint64).view(np.int64)
_CACHE = 256  # remembered views (a power of two)


@njit(**_OPTS)
def type_codes(views: np.ndarray, data: np.ndarray, starts: np.ndarray, names: np.ndarray,
               out: np.ndarray) -> None:
    """Codes of strings in Arrow's string-view layout: ``i`` for ``names[i]``, else -1.

    ``views`` has two int64 words per string (Arrow's 16-byte views): the byte
    length and the first 4 bytes, then, for a string of up to 12 bytes, its
    other 8 bytes, else the number of its data buffer and its offset there
    (buffer ``b`` starts at ``starts[b]`` of ``data``, the buffers one after the
    other). ``names`` holds name ``i`` as views do in row ``i``, padded with
    zero bytes, then its bytes (one per column). A small cache remembers the
    code of each view seen (for a long string: of its place in ``data``).
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


@njit(**_OPTS)
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


@njit(**_OPTS)
def fold_terms(at: np.ndarray, rows: np.ndarray, keys: np.ndarray, n_keys: int,
               types: np.ndarray, term_of: np.ndarray, sign_of: np.ndarray, values: np.ndarray,
               initial: float, start_keys: np.ndarray, start_values: np.ndarray,
               add: bool, out: np.ndarray) -> None:  # noqa: FBT001
    """A linear field's running fold per key, visiting events as ``(at, rows)`` say.

    (See :func:`visiting_order`.) Every key starts at ``initial``, except keys
    ``start_keys`` which start at ``start_values`` (state carried over from a
    snapshot). An event of type code ``t`` uses term ``term_of[t]`` (row of
    ``values``; -1: the field is untouched): ``add`` adds ``sign_of[t]`` times
    it, otherwise the field is set to it. ``out`` gets the value after each event.
    """
    acc = np.full(n_keys, initial, values.dtype)
    for r in range(start_keys.shape[0]):
        acc[start_keys[r]] = start_values[r]
    n = keys.shape[0]
    i = 0  # the next place where another row is visited
    for j in range(n):
        if j + _AHEAD < n:
            _prefetch(acc, keys[j + _AHEAD])
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
                    acc[k] += sign_of[t] * values[term, e]
                else:
                    acc[k] = values[term, e]
        out[e] = acc[k]


@njit(**_OPTS)
def _round(x: float, mode: int) -> int:
    if not np.isfinite(x):
        return 0
    if mode == 0:
        return int(np.rint(x))
    if mode == 1:
        whole = np.floor(abs(x))
        r = whole + 1.0 if abs(x) - whole >= 0.5 else whole
        return int(r if x >= 0 else -r)
    if mode == 2:
        return int(np.floor(x))
    if mode == 3:
        return int(np.ceil(x))
    return int(np.trunc(x))


@njit(**_OPTS)
def _cmp(op: int, a: float, b: float) -> bool:
    """Comparison ``op`` (an index into :data:`CMP_OPS`); compiled for ints and floats."""
    if op == 4:
        return a == b
    if op == 5:
        return a != b
    if op == 0:
        return a < b
    if op == 1:
        return a <= b
    if op == 2:
        return a > b
    return a >= b


@njit(**_OPTS)
def _rate_index(t: int, hint: int, rt_times: np.ndarray) -> int:
    """Index of the rate-table entry in force at ``t`` (-1: before the first).

    ``hint`` is the answer for the previous event; in log order it is almost
    always right, so the search is skipped.
    """
    n = rt_times.shape[0]
    if hint >= 0 and rt_times[hint] <= t and (hint + 1 == n or t < rt_times[hint + 1]):
        return hint
    return int(np.searchsorted(rt_times, t, side="right")) - 1


@njit(**_OPTS)
def _integral(t: int, i: int, rt_times: np.ndarray, rt_rates: np.ndarray, rt_cum: np.ndarray
              ) -> float:
    """Integral of the bank rate from the first table entry to ``t`` (entry ``i`` in force)."""
    if i < 0:
        return 0.0
    return rt_cum[i] + rt_rates[i] * ((t - rt_times[i]) / 1_000_000.0)


@njit(**_OPTS)
def _interpret(code: np.ndarray, a: int, b: int, cf: np.ndarray, st: np.ndarray,
               stf: np.ndarray, k: int, icols: np.ndarray, fcols: np.ndarray, e: int,
               si: np.ndarray, sf: np.ndarray) -> int:
    """Run the stack instructions of ``code[a:b]`` from ``a`` up to the first fused one.

    Returns where it stopped (the fused instruction, or ``b``), or -1 when a
    requirement failed. ``st``/``stf``: the state rows (see :func:`run_rules`);
    ``si``/``sf``: the int and float stacks, empty at ``a`` and where it stops
    (the compiler fuses only whole requirements and whole assignments).
    """
    ti = 0
    tf = 0
    for pc in range(a, b):
        op = code[pc, 0]
        arg = code[pc, 1]
        if op < 10:  # fused: the caller runs it
            return pc
        if op < 20:  # loads
            if op == FIELD_I:
                si[ti] = st[k, arg]
                ti += 1
            elif op == COL_I:
                si[ti] = icols[arg, e]
                ti += 1
            elif op == PUSH_I:
                si[ti] = arg
                ti += 1
            elif op == FIELD_F:
                sf[tf] = stf[k, arg]
                tf += 1
            elif op == COL_F:
                sf[tf] = fcols[arg, e]
                tf += 1
            else:
                sf[tf] = cf[arg]
                tf += 1
        elif op < 30:  # integer arithmetic
            if op == NEG_I:
                si[ti - 1] = -si[ti - 1]
                continue
            if op == ABS_I:
                si[ti - 1] = abs(si[ti - 1])
                continue
            ti -= 1
            x, y = si[ti - 1], si[ti]
            if op == ADD_I:
                si[ti - 1] = x + y
            elif op == SUB_I:
                si[ti - 1] = x - y
            elif op == MUL_I:
                si[ti - 1] = x * y
            elif op == FDIV_I:
                si[ti - 1] = 0 if y == 0 else x // y
            elif op == MOD_I:
                si[ti - 1] = 0 if y == 0 else x % y
            elif op == MIN_I:
                si[ti - 1] = x if x <= y else y
            else:
                si[ti - 1] = x if x >= y else y
        elif op < 40:  # float arithmetic
            if op == NEG_F:
                sf[tf - 1] = -sf[tf - 1]
                continue
            if op == ABS_F:
                sf[tf - 1] = abs(sf[tf - 1])
                continue
            tf -= 1
            u, v = sf[tf - 1], sf[tf]
            if op == ADD_F:
                sf[tf - 1] = u + v
            elif op == SUB_F:
                sf[tf - 1] = u - v
            elif op == MUL_F:
                sf[tf - 1] = u * v
            elif op == DIV_F:
                sf[tf - 1] = u / v
            elif op == MIN_F:
                sf[tf - 1] = u if u <= v else v
            else:
                sf[tf - 1] = u if u >= v else v
        elif op < 50:  # conversions
            if op == I2F:
                ti -= 1
                sf[tf] = float(si[ti])
                tf += 1
            else:
                tf -= 1
                si[ti] = _round(sf[tf], arg)
                ti += 1
        elif op < 60:  # comparisons
            if op == CMP_I:
                ti -= 1
                si[ti - 1] = 1 if _cmp(arg, si[ti - 1], si[ti]) else 0
            else:
                tf -= 2
                si[ti] = 1 if _cmp(arg, sf[tf], sf[tf + 1]) else 0
                ti += 1
        elif op < 70:  # logic
            if op == NOT:
                si[ti - 1] = 1 if si[ti - 1] == 0 else 0
            else:
                ti -= 1
                x, y = si[ti - 1] != 0, si[ti] != 0
                si[ti - 1] = 1 if ((x and y) if op == AND else (x or y)) else 0
        elif op < 80:  # choice
            if op == SEL_I:  # stack: cond, a, b
                ti -= 2
                si[ti - 1] = si[ti] if si[ti - 1] != 0 else si[ti + 1]
            else:  # int stack: cond; float stack: a, b
                ti -= 1
                tf -= 1
                sf[tf - 1] = sf[tf - 1] if si[ti] != 0 else sf[tf]
        elif op == STORE_I:
            ti -= 1
            st[k, arg] = si[ti]
        elif op == STORE_F:
            tf -= 1
            stf[k, arg] = sf[tf]
        else:  # REQUIRE
            ti -= 1
            if si[ti] == 0:
                return -1
    return b


@njit(**_OPTS)
def run_rules(at: np.ndarray, rows: np.ndarray, keys: np.ndarray, n_keys: int,
              types: np.ndarray,
              times: np.ndarray, icols: np.ndarray, fcols: np.ndarray, code: np.ndarray,
              prog: np.ndarray, refusal: np.ndarray, cf: np.ndarray, init_i: np.ndarray,
              init_f: np.ndarray, start_keys: np.ndarray, start_i: np.ndarray,
              start_f: np.ndarray, start_t: np.ndarray, interest: np.ndarray,
              rt_times: np.ndarray, rt_rates: np.ndarray, rt_cum: np.ndarray,
              out_i: np.ndarray, out_f: np.ndarray, viol: np.ndarray) -> int:
    """Fold events through the rule program, visiting them as ``(at, rows)`` say.

    (See :func:`visiting_order`.)
    ``code[prog[t]:prog[t + 1]]`` is the program of event type code ``t`` (code
    -1: an event type the rules do not handle), ``cf`` its float constants; an
    event it refuses gets violation code ``refusal[t]``. A key's state is one
    row: its int fields (slots ``0..n_i-1``, initially ``init_i``), its float
    fields (the next ``n_f`` slots, ``init_f``), then the time of its last event
    and the rate integral at that time. Keys ``start_keys`` start from a state
    carried over (a snapshot's): rows of ``start_i``/``start_f`` and the time
    of their last event ``start_t``. ``interest`` holds ``[enabled, balance
    slot, posted slot or -1, account-rate slot or -1, rounding mode]``. Writes
    the state after each event (``out_i``/``out_f``, one row per field) and its
    violation code (0: folded); returns the number of refused events.
    """
    n_i, n_f = init_i.shape[0], init_f.shape[0]
    prev_t, prev_integral = n_i + n_f, n_i + n_f + 1
    # rows of whole cache lines, aligned to a line: one fetch brings a key's whole state
    width = -(-(n_i + n_f + 2) // _LINE) * _LINE
    buf = np.empty(n_keys * width + _LINE, np.int64)
    skip = (-buf.ctypes.data % (8 * _LINE)) // 8
    st = buf[skip:skip + n_keys * width].reshape((n_keys, width))
    stf = st.view(np.float64)
    for k in range(n_keys):
        st[k, :n_i] = init_i
        stf[k, n_i:n_i + n_f] = init_f
        st[k, prev_t] = NO_TIME
        stf[k, prev_integral] = 0.0
    accrue = interest[0]
    for r in range(start_keys.shape[0]):
        k = start_keys[r]
        st[k, :n_i] = start_i[r]
        stf[k, n_i:n_i + n_f] = start_f[r]
        st[k, prev_t] = start_t[r]
        if accrue and start_t[r] != NO_TIME:  # as the key's last event left it
            t = start_t[r]
            stf[k, prev_integral] = _integral(t, _rate_index(t, -1, rt_times), rt_times,
                                              rt_rates, rt_cum)
    si = np.empty(64, np.int64)
    sf = np.empty(64, np.float64)
    hint = -1
    bal, posted, acct_rate, mode = interest[1], interest[2], interest[3], interest[4]
    refused = 0
    n = keys.shape[0]
    i = 0  # the next place where another row is visited
    for j in range(n):
        if j + _AHEAD < n:
            for w in range(0, width, _LINE):
                _prefetch(st, keys[j + _AHEAD] * width + w)
        k = keys[j]
        e = j
        if i < at.shape[0] and at[i] == j:
            e = rows[i]
            i += 1
        t = times[e]
        if accrue:
            hint = _rate_index(t, hint, rt_times)
            integral = _integral(t, hint, rt_times, rt_rates, rt_cum)
            since = st[k, prev_t]
            balance = st[k, bal]
            if since != NO_TIME and balance != 0:  # interest on nothing is 0, at any rate
                own = stf[k, acct_rate] if acct_rate >= 0 else np.nan
                if np.isnan(own):
                    growth = integral - stf[k, prev_integral]
                else:
                    growth = own * ((t - since) / 1_000_000.0)
                gain = _round(float(balance) * growth / YEAR_SECONDS, mode)
                st[k, bal] = balance + gain
                if posted >= 0:
                    st[k, posted] += gain
            stf[k, prev_integral] = integral
        st[k, prev_t] = t
        tc = types[e]
        pc, end = (prog[tc], prog[tc + 1]) if tc >= 0 else (0, 0)
        # The program: fused instructions right here (no call: the loop stays small), stack
        # instructions in _interpret. A program checks its requirement before it stores
        # anything, so a refused event (pc -1) leaves the state as it was.
        while 0 <= pc < end:
            op, a, b = code[pc, 0], code[pc, 1], code[pc, 2]
            pc += 1
            if op == ADD_COL_I:
                st[k, a] += icols[b, e]
            elif op == SUB_COL_I:
                st[k, a] -= icols[b, e]
            elif op == REQ_FIELD_I:
                if not _cmp(code[pc - 1, 3], st[k, a], b):
                    pc = -1
            elif op == ADD_K_I:
                st[k, a] += b
            elif op == SET_K_I:
                st[k, a] = b
            elif op == SET_COL_I:
                st[k, a] = icols[b, e]
            elif op == SET_K_F:
                stf[k, a] = cf[b]
            elif op == SET_COL_F:
                stf[k, a] = fcols[b, e]
            else:
                pc = _interpret(code, pc - 1, end, cf, st, stf, k, icols, fcols, e, si, sf)
        if pc < 0:
            viol[e] = refusal[tc]
            refused += 1
        else:
            viol[e] = 0
        for f in range(n_i):
            out_i[f, e] = st[k, f]
        for f in range(n_f):
            out_f[f, e] = stf[k, n_i + f]
    return refused


@njit(**_OPTS)
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
    for e in range(keys.shape[0]):
        g = np.searchsorted(grid, times[e], side="left")
        if g == g_n:
            continue
        k = keys[e]
        count[g, k] += 1
        p = best[g, k]
        if p < 0 or times[e] > times[p] or (times[e] == times[p] and seqs[e] > seqs[p]):
            best[g, k] = e
    for g in range(1, g_n):
        for k in range(n_keys):
            count[g, k] += count[g - 1, k]
            if best[g, k] < 0:
                best[g, k] = best[g - 1, k]
    return best, count
