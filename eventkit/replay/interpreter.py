"""The rule interpreter: one compiled pass (numba) of a rule program over the events.

:mod:`eventkit.replay.compile` turns a rule set into a program of instructions,
one row (opcode, a, b, c, d) each; :func:`run_rules` runs it for every event, in
the order :func:`eventkit.replay.kernels.visiting_order` gives. Integer
arithmetic is checked (Int64 overflow is an error, never a wrap), and so is
every float that becomes an integer (a rounding, posted interest): the pass
stops at the first such event and says where (:func:`run_rules`'s ``err``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from eventkit.replay._intrinsics import (
    AHEAD,
    LINE,
    NO_TIME,
    OPTS,
    add_checked,
    mul_checked,
    prefetch,
    sub_checked,
)

__all__ = ["ROUND_MODES", "run_rules"]

# Opcodes. State fields are addressed by their slot in the key's state row (see run_rules).
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
PASS_FIELD_I = 9  # when int field a <cmp c> constant b, go d instructions on (past a requirement)
# Stack instructions: loads push onto the int or the float stack (a: the value, the float
# constant's number, the slot, the column), operators pop their operands and push the
# result, stores pop.
PUSH_I, PUSH_F, FIELD_I, FIELD_F, COL_I, COL_F = 10, 11, 12, 13, 14, 15
ADD_I, SUB_I, MUL_I, FDIV_I, MOD_I, NEG_I, ABS_I, MIN_I, MAX_I = 20, 21, 22, 23, 24, 25, 26, 27, 28
ADD_F, SUB_F, MUL_F, DIV_F, NEG_F, ABS_F, MIN_F, MAX_F = 30, 31, 32, 33, 34, 35, 36, 37
I2F, ROUND = 40, 41  # ROUND: a = rounding mode
CMP_I, CMP_F = 50, 51  # a = comparison
NOT, BOOL = 60, 61  # BOOL: 1 when the top is not 0, else 0
JUMP, JUMP_IF_ZERO, JUMP_IF_NONZERO = 70, 71, 72  # a: offset; the conditional ones pop
STORE_I, STORE_F = 80, 81  # a = slot
REQUIRE = 90  # refuse the event unless the popped flag is set
CMP_OPS = ("<", "<=", ">", ">=", "==", "!=")
ROUND_MODES = ("round_half_even", "round_half_up", "floor", "ceil", "trunc")
YEAR_SECONDS = 31_536_000.0
# What run_rules reports in err[0], and the "instructions" of posted interest in err[2]
OVERFLOW, NOT_FINITE, OUT_OF_RANGE = 1, 2, 3
INTEREST_BALANCE, INTEREST_POSTED = -1, -2
_TWO_63 = 9.223372036854775808e18  # 2**63: the first float beyond Int64
_FAILED = -2  # _interpret's answer when an operation cannot be done exactly


@njit(**OPTS)
def round_float(x: float, mode: int) -> float:
    """``x`` rounded by ``mode`` (an index into :data:`ROUND_MODES`), still a float."""
    if mode == 0:
        return float(np.rint(x))
    if mode == 1:
        whole = np.floor(abs(x))
        r = whole + 1.0 if abs(x) - whole >= 0.5 else whole
        return float(r if x >= 0 else -r)
    if mode == 2:
        return float(np.floor(x))
    if mode == 3:
        return float(np.ceil(x))
    return float(np.trunc(x))


@njit(**OPTS)
def int_fault(r: float) -> int:
    """0 when the rounded ``r`` is an Int64, else why not (:data:`NOT_FINITE`, ...)."""
    if not np.isfinite(r):
        return NOT_FINITE
    if r < -_TWO_63 or r >= _TWO_63:
        return OUT_OF_RANGE
    return 0


@njit(**OPTS)
def _fail(err: np.ndarray, kind: int, pc: int, a: int, b: int) -> int:
    """Record what failed where (see :func:`run_rules`); the answer for ``_interpret``."""
    err[0], err[2], err[3], err[4] = kind, pc, a, b
    return _FAILED


@njit(**OPTS)
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


@njit(**OPTS)
def rate_index(t: int, hint: int, rt_times: np.ndarray) -> int:
    """Index of the rate-table entry in force at ``t`` (-1: before the first).

    ``hint`` is the answer for the previous event; in log order it is almost
    always right, so the search is skipped.
    """
    n = rt_times.shape[0]
    if hint >= 0 and rt_times[hint] <= t and (hint + 1 == n or t < rt_times[hint + 1]):
        return hint
    return int(np.searchsorted(rt_times, t, side="right")) - 1


@njit(**OPTS)
def integral(t: int, i: int, rt_times: np.ndarray, rt_rates: np.ndarray, rt_cum: np.ndarray
             ) -> float:
    """Integral of the bank rate from the first table entry to ``t`` (entry ``i`` in force)."""
    if i < 0:
        return 0.0
    return rt_cum[i] + rt_rates[i] * ((t - rt_times[i]) / 1_000_000.0)


@njit(**OPTS)
def _int_op(op: int, x: int, y: int) -> tuple[int, bool]:
    """Binary integer operator ``op`` on ``x``, ``y``: the result and whether it overflowed."""
    if op == ADD_I:
        return add_checked(x, y)
    if op == SUB_I:
        return sub_checked(x, y)
    if op == MUL_I:
        return mul_checked(x, y)
    if op == FDIV_I or op == MOD_I:
        if y == 0:
            return 0, False
        if y == -1:  # x // -1 is -x (beyond Int64 for the smallest x); x % -1 is 0
            return sub_checked(0, x) if op == FDIV_I else (0, False)
        return (x // y if op == FDIV_I else x % y), False
    if op == MIN_I:
        return (x if x <= y else y), False
    return (x if x >= y else y), False


@njit(**OPTS)
def _interpret(code: np.ndarray, a: int, b: int, cf: np.ndarray, st: np.ndarray,
               stf: np.ndarray, k: int, icols: np.ndarray, fcols: np.ndarray, e: int,
               si: np.ndarray, sf: np.ndarray, err: np.ndarray, errf: np.ndarray) -> int:
    """Run the stack instructions of ``code[a:b]`` from ``a`` up to the first fused one.

    Returns where it stopped (the fused instruction, or ``b``), -1 when a
    requirement failed, or ``_FAILED`` when an operation cannot be done exactly
    (``err``/``errf`` say which, see :func:`run_rules`). ``st``/``stf``: the state
    rows; ``si``/``sf``: the int and float stacks, empty at ``a`` and where it
    stops (the compiler fuses only whole requirements and whole assignments).
    """
    ti = 0
    tf = 0
    pc = a
    while pc < b:
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
        elif op < 30:  # integer arithmetic, checked
            x = si[ti - 1]
            if op == NEG_I or (op == ABS_I and x < 0):
                r, over = sub_checked(0, x)
                if over:
                    return _fail(err, OVERFLOW, pc, x, 0)
                si[ti - 1] = r
            elif op != ABS_I:
                ti -= 1
                x, y = si[ti - 1], si[ti]
                r, over = _int_op(op, x, y)
                if over:
                    return _fail(err, OVERFLOW, pc, x, y)
                si[ti - 1] = r
        elif op < 40:  # float arithmetic
            if op == NEG_F:
                sf[tf - 1] = -sf[tf - 1]
            elif op == ABS_F:
                sf[tf - 1] = abs(sf[tf - 1])
            else:
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
                rounded = round_float(sf[tf], arg)
                kind = int_fault(rounded)
                if kind:
                    errf[0] = sf[tf]
                    return _fail(err, kind, pc, arg, 0)
                si[ti] = int(rounded)
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
                si[ti - 1] = 0 if si[ti - 1] == 0 else 1
        elif op < 80:  # jumps: choices, and and/or, compute only what they need
            if op == JUMP:
                pc += arg
                continue
            ti -= 1
            if (si[ti] == 0) == (op == JUMP_IF_ZERO):
                pc += arg
                continue
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
        pc += 1
    return b


@njit(**OPTS)
def run_rules(at: np.ndarray, rows: np.ndarray, keys: np.ndarray, n_keys: int,
              types: np.ndarray,
              times: np.ndarray, icols: np.ndarray, fcols: np.ndarray, code: np.ndarray,
              prog: np.ndarray, refusal: np.ndarray, cf: np.ndarray, init_i: np.ndarray,
              init_f: np.ndarray, start_keys: np.ndarray, start_i: np.ndarray,
              start_f: np.ndarray, start_t: np.ndarray, interest: np.ndarray,
              rt_times: np.ndarray, rt_rates: np.ndarray, rt_cum: np.ndarray,
              out_i: np.ndarray, out_f: np.ndarray, viol: np.ndarray, err: np.ndarray,
              errf: np.ndarray) -> int:
    """Fold events through the rule program, visiting them as ``(at, rows)`` say.

    (See :func:`eventkit.replay.kernels.visiting_order`.)
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

    An operation that cannot be done exactly stops the pass and returns -1,
    with ``err`` = [what (:data:`OVERFLOW`, :data:`NOT_FINITE`,
    :data:`OUT_OF_RANGE`), the event's row, the instruction (or
    :data:`INTEREST_BALANCE`, :data:`INTEREST_POSTED`), the integer operands]
    and ``errf[0]`` the float that could not be rounded.
    """
    n_i, n_f = init_i.shape[0], init_f.shape[0]
    prev_t, prev_integral = n_i + n_f, n_i + n_f + 1
    # rows of whole cache lines, aligned to a line: one fetch brings a key's whole state
    width = -(-(n_i + n_f + 2) // LINE) * LINE
    buf = np.empty(n_keys * width + LINE, np.int64)
    skip = (-buf.ctypes.data % (8 * LINE)) // 8
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
            stf[k, prev_integral] = integral(t, rate_index(t, -1, rt_times), rt_times,
                                             rt_rates, rt_cum)
    si = np.empty(128, np.int64)  # as compile._STACK
    sf = np.empty(128, np.float64)
    hint = -1
    bal, posted, acct_rate, mode = interest[1], interest[2], interest[3], interest[4]
    refused = 0
    n = keys.shape[0]
    i = 0  # the next place where another row is visited
    for j in range(n):
        if j + AHEAD < n:
            for w in range(0, width, LINE):
                prefetch(st, keys[j + AHEAD] * width + w)
        k = keys[j]
        e = j
        if i < at.shape[0] and at[i] == j:
            e = rows[i]
            i += 1
        t = times[e]
        if accrue:
            hint = rate_index(t, hint, rt_times)
            now = integral(t, hint, rt_times, rt_rates, rt_cum)
            since = st[k, prev_t]
            balance = st[k, bal]
            if since != NO_TIME and balance != 0:  # interest on nothing is 0, at any rate
                own = stf[k, acct_rate] if acct_rate >= 0 else np.nan
                if np.isnan(own):
                    growth = now - stf[k, prev_integral]
                else:
                    growth = own * ((t - since) / 1_000_000.0)
                value = float(balance) * growth / YEAR_SECONDS
                rounded = round_float(value, mode)
                kind = int_fault(rounded)
                if kind:
                    errf[0] = value
                    err[1] = e
                    _fail(err, kind, INTEREST_BALANCE, mode, 0)
                    return -1
                gain = int(rounded)
                total, over = add_checked(balance, gain)
                if over:
                    err[1] = e
                    _fail(err, OVERFLOW, INTEREST_BALANCE, balance, gain)
                    return -1
                st[k, bal] = total
                if posted >= 0:
                    total, over = add_checked(st[k, posted], gain)
                    if over:
                        err[1] = e
                        _fail(err, OVERFLOW, INTEREST_POSTED, st[k, posted], gain)
                        return -1
                    st[k, posted] = total
            stf[k, prev_integral] = now
        st[k, prev_t] = t
        tc = types[e]
        pc, end = (prog[tc], prog[tc + 1]) if tc >= 0 else (0, 0)
        # The program: fused instructions right here (no call: the loop stays small), stack
        # instructions in _interpret. A program checks its requirement before it stores
        # anything, so a refused event (pc -1) leaves the state as it was.
        while 0 <= pc < end:
            op, a, b = code[pc, 0], code[pc, 1], code[pc, 2]
            pc += 1
            if op == ADD_COL_I or op == SUB_COL_I or op == ADD_K_I:
                x = st[k, a]
                y = b if op == ADD_K_I else icols[b, e]
                total, over = sub_checked(x, y) if op == SUB_COL_I else add_checked(x, y)
                if over:
                    pc = _fail(err, OVERFLOW, pc - 1, x, y)
                st[k, a] = total
            elif op == REQ_FIELD_I:
                if not _cmp(code[pc - 1, 3], st[k, a], b):
                    pc = -1
            elif op == PASS_FIELD_I:
                if _cmp(code[pc - 1, 3], st[k, a], b):
                    pc += code[pc - 1, 4] - 1
            elif op == SET_K_I:
                st[k, a] = b
            elif op == SET_COL_I:
                st[k, a] = icols[b, e]
            elif op == SET_K_F:
                stf[k, a] = cf[b]
            elif op == SET_COL_F:
                stf[k, a] = fcols[b, e]
            else:
                pc = _interpret(code, pc - 1, end, cf, st, stf, k, icols, fcols, e, si, sf,
                                err, errf)
        if pc == _FAILED:
            err[1] = e
            return -1
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
