"""Compiled passes over event arrays (numba): running folds and the rule interpreter.

Nothing here loops over events in Python. Every fold walks events in the order
given by ``positions`` and keeps each key's state in an array indexed by the
key's dense code, so a pass in log order reads the events sequentially and the
state from cache. A key whose events are not in valid-time order in the log
(a late correction) is found by :func:`disordered_keys` and folded again,
alone, in sorted order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["disordered_keys", "fold_terms", "last_at", "rows_in_time_order", "run_rules"]

_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}

# Opcodes of the rule program: (opcode, argument) pairs in an int64 array.
PUSH_I, PUSH_F, FIELD_I, FIELD_F, COL_I, COL_F = 0, 1, 2, 3, 4, 5
ADD_I, SUB_I, MUL_I, FDIV_I, MOD_I, NEG_I, ABS_I, MIN_I, MAX_I = 10, 11, 12, 13, 14, 15, 16, 17, 18
ADD_F, SUB_F, MUL_F, DIV_F, NEG_F, ABS_F, MIN_F, MAX_F = 20, 21, 22, 23, 24, 25, 26, 27
I2F, ROUND = 30, 31
CMP_I, CMP_F = 40, 41
AND, OR, NOT = 50, 51, 52
SEL_I, SEL_F = 60, 61
STORE_I, STORE_F = 70, 71
REQUIRE = 80
CMP_OPS = ("<", "<=", ">", ">=", "==", "!=")
ROUND_MODES = ("round_half_even", "round_half_up", "floor", "ceil", "trunc")
YEAR_SECONDS = 31_536_000.0
_NO_TIME = np.iinfo(np.int64).min


@njit(**_OPTS)
def disordered_keys(keys: np.ndarray, times: np.ndarray, seqs: np.ndarray, n_keys: int
                    ) -> np.ndarray:
    """Keys with an event that comes, in the log, after a later (time, seq) of the same key."""
    last_t = np.full(n_keys, np.iinfo(np.int64).min, np.int64)
    last_s = np.full(n_keys, np.iinfo(np.int64).min, np.int64)
    bad = np.zeros(n_keys, np.bool_)
    for e in range(keys.shape[0]):
        k = keys[e]
        t, q = times[e], seqs[e]
        if t < last_t[k] or (t == last_t[k] and q < last_s[k]):
            bad[k] = True
        else:
            last_t[k] = t
            last_s[k] = q
    return bad


@njit(**_OPTS)
def rows_in_time_order(skip: np.ndarray, keys: np.ndarray, times: np.ndarray, seqs: np.ndarray
                       ) -> np.ndarray:
    """Rows of the keys flagged in ``skip``, grouped by key, each key by (time, seq).

    A counting sort by key keeps log order within a key, which is nearly time
    order, so an insertion sort finishes each key's run quickly.
    """
    n_keys = skip.shape[0]
    starts = np.zeros(n_keys + 1, np.int64)
    for e in range(keys.shape[0]):
        if skip[keys[e]]:
            starts[keys[e] + 1] += 1
    for k in range(n_keys):
        starts[k + 1] += starts[k]
    rows = np.empty(starts[n_keys], np.int64)
    fill = starts[:-1].copy()
    for e in range(keys.shape[0]):
        k = keys[e]
        if skip[k]:
            rows[fill[k]] = e
            fill[k] += 1
    for k in range(n_keys):
        for j in range(starts[k] + 1, starts[k + 1]):
            row = rows[j]
            i = j - 1
            while i >= starts[k] and (times[rows[i]] > times[row] or (
                    times[rows[i]] == times[row] and seqs[rows[i]] > seqs[row])):
                rows[i + 1] = rows[i]
                i -= 1
            rows[i + 1] = row
    return rows


@njit(**_OPTS)
def fold_terms(positions: np.ndarray, skip: np.ndarray, keys: np.ndarray, n_keys: int,
               types: np.ndarray, term_of: np.ndarray, sign_of: np.ndarray, values: np.ndarray,
               initial: float, add: bool, out: np.ndarray) -> None:  # noqa: FBT001
    """A linear field's running fold per key, visiting events in order.

    Visits ``positions`` in order, or, when that is empty, every event in log
    order except those of keys flagged in ``skip``.

    An event of type code ``t`` uses term ``term_of[t]`` (row of ``values``; -1:
    the field is untouched): ``add`` adds ``sign_of[t]`` times it, otherwise the
    field is set to it. ``out`` gets the value after each visited event.
    """
    acc = np.full(n_keys, initial, values.dtype)
    every = positions.shape[0] == 0
    for j in range(keys.shape[0] if every else positions.shape[0]):
        e = j if every else positions[j]
        k = keys[e]
        if every and skip[k]:
            continue
        t = types[e]
        if t >= 0:
            j = term_of[t]
            if j >= 0:
                if add:
                    acc[k] += sign_of[t] * values[j, e]
                else:
                    acc[k] = values[j, e]
        out[e] = acc[k]


@njit(**_OPTS)
def last_at(keys: np.ndarray, times: np.ndarray, seqs: np.ndarray, n_keys: int, t: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per key: the position of its last event at or before ``t`` (-1: none), and a count.

    "Last" is by (time, seq); the count is of the key's events at or before ``t``.
    """
    pos = np.full(n_keys, -1, np.int64)
    count = np.zeros(n_keys, np.int64)
    for e in range(keys.shape[0]):
        if times[e] > t:
            continue
        k = keys[e]
        count[k] += 1
        p = pos[k]
        if p < 0 or times[e] > times[p] or (times[e] == times[p] and seqs[e] > seqs[p]):
            pos[k] = e
    return pos, count


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
    if op == 0:
        return a < b
    if op == 1:
        return a <= b
    if op == 2:
        return a > b
    if op == 3:
        return a >= b
    if op == 4:
        return a == b
    return a != b


@njit(**_OPTS)
def _rate_index(t: int, hint: int, rt_times: np.ndarray) -> int:
    """Index of the rate-table entry in force at ``t`` (-1: before the first).

    ``hint`` is the answer for the previous event; in log order it is almost
    always right, so the search is skipped.
    """
    n = rt_times.shape[0]
    if hint >= 0 and rt_times[hint] <= t and (hint + 1 == n or t < rt_times[hint + 1]):
        return hint
    return np.searchsorted(rt_times, t, side="right") - 1


@njit(**_OPTS)
def _integral(t: int, i: int, rt_times: np.ndarray, rt_rates: np.ndarray, rt_cum: np.ndarray
              ) -> float:
    """Integral of the bank rate from the first table entry to ``t`` (entry ``i`` in force)."""
    if i < 0:
        return 0.0
    return rt_cum[i] + rt_rates[i] * ((t - rt_times[i]) / 1_000_000.0)


@njit(inline="always", **_OPTS)
def _execute(code: np.ndarray, a: int, b: int, ci: np.ndarray, cf: np.ndarray,
             st_i: np.ndarray, st_f: np.ndarray, k: int, icols: np.ndarray, fcols: np.ndarray,
             e: int,
             si: np.ndarray, sf: np.ndarray) -> int:
    """Run program ``code[a:b]`` for event ``e`` of key ``k``; return 0 or the failed requirement.

    A program checks its requirement before it stores anything, so a refused
    event leaves the state as it was.
    """
    ti = 0
    tf = 0
    pc = a
    while pc < b:
        op = code[2 * pc]
        arg = code[2 * pc + 1]
        pc += 1
        if op < 10:  # loads, most frequent first
            if op == FIELD_I:
                si[ti] = st_i[k, arg]
                ti += 1
            elif op == COL_I:
                si[ti] = icols[arg, e]
                ti += 1
            elif op == PUSH_I:
                si[ti] = ci[arg]
                ti += 1
            elif op == FIELD_F:
                sf[tf] = st_f[k, arg]
                tf += 1
            elif op == COL_F:
                sf[tf] = fcols[arg, e]
                tf += 1
            else:
                sf[tf] = cf[arg]
                tf += 1
        elif op < 20:  # integer arithmetic
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
        elif op < 30:  # float arithmetic
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
        elif op < 40:  # conversions
            if op == I2F:
                ti -= 1
                sf[tf] = float(si[ti])
                tf += 1
            else:
                tf -= 1
                si[ti] = _round(sf[tf], arg)
                ti += 1
        elif op < 50:  # comparisons
            if op == CMP_I:
                ti -= 1
                si[ti - 1] = 1 if _cmp(arg, si[ti - 1], si[ti]) else 0
            else:
                tf -= 2
                si[ti] = 1 if _cmp(arg, sf[tf], sf[tf + 1]) else 0
                ti += 1
        elif op < 60:  # logic
            if op == NOT:
                si[ti - 1] = 1 if si[ti - 1] == 0 else 0
            else:
                ti -= 1
                x, y = si[ti - 1] != 0, si[ti] != 0
                si[ti - 1] = 1 if ((x and y) if op == AND else (x or y)) else 0
        elif op < 70:  # choice
            if op == SEL_I:  # stack: cond, a, b
                ti -= 2
                si[ti - 1] = si[ti] if si[ti - 1] != 0 else si[ti + 1]
            else:  # int stack: cond; float stack: a, b
                ti -= 1
                tf -= 1
                sf[tf - 1] = sf[tf - 1] if si[ti] != 0 else sf[tf]
        elif op == STORE_I:
            ti -= 1
            st_i[k, arg] = si[ti]
        elif op == STORE_F:
            tf -= 1
            st_f[k, arg] = sf[tf]
        else:  # REQUIRE
            ti -= 1
            if si[ti] == 0:
                return arg
    return 0


@njit(**_OPTS)
def run_rules(positions: np.ndarray, skip: np.ndarray, keys: np.ndarray, n_keys: int,
              types: np.ndarray,
              times: np.ndarray, icols: np.ndarray, fcols: np.ndarray, code: np.ndarray,
              prog: np.ndarray, ci: np.ndarray, cf: np.ndarray, init_i: np.ndarray,
              init_f: np.ndarray, interest: np.ndarray, rt_times: np.ndarray,
              rt_rates: np.ndarray, rt_cum: np.ndarray, out_rows: np.ndarray, out_i: np.ndarray,
              out_f: np.ndarray, viol: np.ndarray) -> None:
    """Fold events through the rule program, visiting events in order.

    Visits ``positions`` in order, or, when that is empty, every event in log
    order except those of keys flagged in ``skip``.

    ``prog[t]:prog[t + 1]`` is the program of event type code ``t`` (code -1:
    an event type the rules do not handle). ``interest`` holds
    ``[enabled, balance slot, posted slot or -1, account-rate float slot or -1,
    rounding mode]``. Writes the state after each event (``out_i``/``out_f``,
    one row per field) and its violation code (0: folded) at its position, or
    at ``out_rows[position]`` when ``out_rows`` is not empty (the inputs were
    gathered from those rows).
    """
    n_i, n_f = init_i.shape[0], init_f.shape[0]
    # A key's whole state in two rows (one cache line each for most rule sets): its int
    # fields, then the time of its last event (_NO_TIME: none yet); its float fields, then the
    # rate integral at that time.
    prev_t, prev_integral = n_i, n_f
    st_i = np.empty((n_keys, n_i + 1), np.int64)
    st_f = np.empty((n_keys, n_f + 1), np.float64)
    for k in range(n_keys):
        st_i[k, :n_i] = init_i
        st_i[k, prev_t] = _NO_TIME
        st_f[k, :n_f] = init_f
        st_f[k, prev_integral] = 0.0
    si = np.empty(64, np.int64)
    sf = np.empty(64, np.float64)
    hint = -1
    accrue, bal, posted, acct_rate, mode = (interest[0], interest[1], interest[2], interest[3],
                                            interest[4])
    every = positions.shape[0] == 0
    for j in range(keys.shape[0] if every else positions.shape[0]):
        e = j if every else positions[j]
        k = keys[e]
        if every and skip[k]:
            continue
        t = times[e]
        if accrue:
            hint = _rate_index(t, hint, rt_times)
            integral = _integral(t, hint, rt_times, rt_rates, rt_cum)
            if st_i[k, prev_t] != _NO_TIME:
                own = st_f[k, acct_rate] if acct_rate >= 0 else np.nan
                if np.isnan(own):
                    growth = integral - st_f[k, prev_integral]
                else:
                    growth = own * ((t - st_i[k, prev_t]) / 1_000_000.0)
                gain = _round(float(st_i[k, bal]) * growth / YEAR_SECONDS, mode)
                st_i[k, bal] += gain
                if posted >= 0:
                    st_i[k, posted] += gain
            st_f[k, prev_integral] = integral
        st_i[k, prev_t] = t
        tc = types[e]
        row = out_rows[e] if out_rows.shape[0] else e
        viol[row] = 0 if tc < 0 else _execute(code, prog[tc], prog[tc + 1], ci, cf, st_i, st_f,
                                              k, icols, fcols, e, si, sf)
        for f in range(n_i):
            out_i[f, row] = st_i[k, f]
        for f in range(n_f):
            out_f[f, row] = st_f[k, f]
