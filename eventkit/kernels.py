"""Compiled passes over sorted event arrays (numba): ordering, running folds, rules.

Nothing here loops over events in Python. :func:`order_by_key` groups events
by key with a counting sort (stable, so each key keeps log order) and then puts
each key's events in valid-time order; :func:`segment_cumsum` and
:func:`segment_ffill` fold linear rules; :func:`run_rules` interprets a rule
program (see :mod:`eventkit.compile`) in one sequential pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["order_by_key", "run_rules", "segment_cumsum", "segment_ffill", "segment_last_at"]

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


@njit(**_OPTS)
def order_by_key(keys: np.ndarray, times: np.ndarray, seqs: np.ndarray, n_keys: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Permutation grouping events by dense key, each key in (time, seq) order.

    Returns ``(order, starts)``: key ``k``'s events are
    ``order[starts[k]:starts[k + 1]]`` (empty for keys without events).
    """
    n = keys.shape[0]
    starts = np.zeros(n_keys + 1, np.int64)
    for i in range(n):
        starts[keys[i] + 1] += 1
    for k in range(n_keys):
        starts[k + 1] += starts[k]
    fill = starts[:-1].copy()
    order = np.empty(n, np.int64)
    for i in range(n):
        k = keys[i]
        order[fill[k]] = i
        fill[k] += 1
    for k in range(n_keys):
        a, b = starts[k], starts[k + 1]
        if _sorted(order, a, b, times, seqs):
            continue
        seg = order[a:b]
        by_seq = seg[np.argsort(seqs[seg], kind="mergesort")]
        order[a:b] = by_seq[np.argsort(times[by_seq], kind="mergesort")]
    return order, starts


@njit(**_OPTS)
def _sorted(order: np.ndarray, a: int, b: int, times: np.ndarray, seqs: np.ndarray) -> bool:
    for j in range(a + 1, b):
        p, q = order[j - 1], order[j]
        if times[q] < times[p] or (times[q] == times[p] and seqs[q] < seqs[p]):
            return False
    return True


@njit(**_OPTS)
def segment_cumsum(order: np.ndarray, starts: np.ndarray, delta: np.ndarray, initial: float
                   ) -> np.ndarray:
    """Running sum of ``delta`` per key segment (in ``order``), plus ``initial``.

    The result is indexed like ``delta`` (log positions).
    """
    out = np.empty_like(delta)
    for k in range(starts.shape[0] - 1):
        acc = delta.dtype.type(initial)
        for j in range(starts[k], starts[k + 1]):
            e = order[j]
            acc += delta[e]
            out[e] = acc
    return out


@njit(**_OPTS)
def segment_ffill(order: np.ndarray, starts: np.ndarray, values: np.ndarray, valid: np.ndarray,
                  initial: float) -> np.ndarray:
    """Last valid value per key segment (in ``order``), ``initial`` before the first."""
    out = np.empty_like(values)
    for k in range(starts.shape[0] - 1):
        acc = values.dtype.type(initial)
        for j in range(starts[k], starts[k + 1]):
            e = order[j]
            if valid[e]:
                acc = values[e]
            out[e] = acc
    return out


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
def _cmp_i(op: int, a: int, b: int) -> bool:
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
def _cmp_f(op: int, a: float, b: float) -> bool:
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
def _integral(t: int, rt_times: np.ndarray, rt_rates: np.ndarray, rt_cum: np.ndarray) -> float:
    """Integral of the bank rate from the first table entry to ``t``, in rate-seconds."""
    i = np.searchsorted(rt_times, t, side="right") - 1
    if i < 0:
        return 0.0
    return rt_cum[i] + rt_rates[i] * ((t - rt_times[i]) / 1_000_000.0)


@njit(**_OPTS)
def _execute(code: np.ndarray, a: int, b: int, ci: np.ndarray, cf: np.ndarray,
             st_i: np.ndarray, st_f: np.ndarray, nx_i: np.ndarray, nx_f: np.ndarray,
             icols: np.ndarray, fcols: np.ndarray, e: int,
             si: np.ndarray, sf: np.ndarray) -> int:
    """Run program ``code[a:b]`` for event ``e``; return 0, or the failed requirement's code."""
    ti = 0
    tf = 0
    pc = a
    while pc < b:
        op = code[2 * pc]
        arg = code[2 * pc + 1]
        pc += 1
        if op == PUSH_I:
            si[ti] = ci[arg]
            ti += 1
        elif op == PUSH_F:
            sf[tf] = cf[arg]
            tf += 1
        elif op == FIELD_I:
            si[ti] = st_i[arg]
            ti += 1
        elif op == FIELD_F:
            sf[tf] = st_f[arg]
            tf += 1
        elif op == COL_I:
            si[ti] = icols[arg, e]
            ti += 1
        elif op == COL_F:
            sf[tf] = fcols[arg, e]
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
        elif op == I2F:
            ti -= 1
            sf[tf] = float(si[ti])
            tf += 1
        elif op == ROUND:
            tf -= 1
            si[ti] = _round(sf[tf], arg)
            ti += 1
        elif op == CMP_I:
            ti -= 1
            si[ti - 1] = 1 if _cmp_i(arg, si[ti - 1], si[ti]) else 0
        elif op == CMP_F:
            tf -= 2
            si[ti] = 1 if _cmp_f(arg, sf[tf], sf[tf + 1]) else 0
            ti += 1
        elif op == AND:
            ti -= 1
            si[ti - 1] = 1 if (si[ti - 1] != 0 and si[ti] != 0) else 0
        elif op == OR:
            ti -= 1
            si[ti - 1] = 1 if (si[ti - 1] != 0 or si[ti] != 0) else 0
        elif op == NOT:
            si[ti - 1] = 1 if si[ti - 1] == 0 else 0
        elif op == SEL_I:  # stack: cond, a, b
            ti -= 2
            si[ti - 1] = si[ti] if si[ti - 1] != 0 else si[ti + 1]
        elif op == SEL_F:  # int stack: cond; float stack: a, b
            ti -= 1
            tf -= 1
            sf[tf - 1] = sf[tf - 1] if si[ti] != 0 else sf[tf]
        elif op == STORE_I:
            ti -= 1
            nx_i[arg] = si[ti]
        elif op == STORE_F:
            tf -= 1
            nx_f[arg] = sf[tf]
        elif op == REQUIRE:
            ti -= 1
            if si[ti] == 0:
                return arg
    return 0


@njit(**_OPTS)
def run_rules(order: np.ndarray, starts: np.ndarray, types: np.ndarray, times: np.ndarray,
              icols: np.ndarray, fcols: np.ndarray, code: np.ndarray, prog: np.ndarray,
              ci: np.ndarray, cf: np.ndarray, init_i: np.ndarray, init_f: np.ndarray,
              interest: np.ndarray, rt_times: np.ndarray, rt_rates: np.ndarray,
              rt_cum: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fold every key's events through the rule program, in valid-time order.

    ``prog[t]:prog[t + 1]`` is the program of event type code ``t`` (code -1:
    an event type the rules do not handle). ``interest`` holds
    ``[enabled, balance slot, posted slot or -1, account-rate float slot or -1,
    rounding mode]``. Returns the state after each event (int and float fields,
    by log position) and each event's violation code (0: folded).
    """
    n = order.shape[0]
    out_i = np.empty((init_i.shape[0], n), np.int64)
    out_f = np.empty((init_f.shape[0], n), np.float64)
    viol = np.zeros(n, np.int32)
    st_i = init_i.copy()
    st_f = init_f.copy()
    nx_i = init_i.copy()
    nx_f = init_f.copy()
    si = np.empty(64, np.int64)
    sf = np.empty(64, np.float64)
    accrue, bal, posted, acct_rate, mode = (interest[0], interest[1], interest[2], interest[3],
                                            interest[4])
    for k in range(starts.shape[0] - 1):
        st_i[:] = init_i
        st_f[:] = init_f
        prev_t = 0
        for j in range(starts[k], starts[k + 1]):
            e = order[j]
            t = times[e]
            if accrue and j > starts[k]:
                own = st_f[acct_rate] if acct_rate >= 0 else np.nan
                if np.isnan(own):
                    growth = (_integral(t, rt_times, rt_rates, rt_cum)
                              - _integral(prev_t, rt_times, rt_rates, rt_cum))
                else:
                    growth = own * ((t - prev_t) / 1_000_000.0)
                gain = _round(float(st_i[bal]) * growth / YEAR_SECONDS, mode)
                st_i[bal] += gain
                if posted >= 0:
                    st_i[posted] += gain
            prev_t = t
            tc = types[e]
            if tc >= 0:
                nx_i[:] = st_i
                nx_f[:] = st_f
                v = _execute(code, prog[tc], prog[tc + 1], ci, cf, st_i, st_f, nx_i, nx_f,
                             icols, fcols, e, si, sf)
                viol[e] = v
                if v == 0:
                    st_i[:] = nx_i
                    st_f[:] = nx_f
            out_i[:, e] = st_i
            out_f[:, e] = st_f
    return out_i, out_f, viol


@njit(**_OPTS)
def segment_last_at(order: np.ndarray, starts: np.ndarray, times: np.ndarray, t: int
                    ) -> np.ndarray:
    """Per key: log position of its last event with time <= ``t`` (-1 if none)."""
    n_keys = starts.shape[0] - 1
    out = np.full(n_keys, -1, np.int64)
    for k in range(n_keys):
        lo, hi = starts[k], starts[k + 1]
        while lo < hi:  # first position whose time is > t
            mid = (lo + hi) // 2
            if times[order[mid]] <= t:
                lo = mid + 1
            else:
                hi = mid
        if lo > starts[k]:
            out[k] = order[lo - 1]
    return out
