"""Interest accrued between a key's last event and an instant, as the rules would post it.

``ReplayResult.as_of(t, accrued=True)`` asks this: a balance as of ``t`` in
the rule set's own convention (:class:`~eventkit.rules.model.Interest`) is
the balance after the last event *plus* the interest that an event at ``t``
would post first. The arithmetic is the engine's own compiled functions
(:mod:`eventkit.replay.interpreter`), so the answer is exactly what the fold
(and the reference fold) gives for a synthetic event at ``t``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from eventkit.exceptions import ParameterError, ReplayError
from eventkit.replay import interpreter as vm
from eventkit.replay._intrinsics import OPTS, add_checked
from eventkit.replay.engine import rate_cumulative
from eventkit.rules.model import RuleSet
from eventkit.timeutil import from_micros

__all__ = ["ACCRUED", "accrue"]

#: The column that holds the interest accrued since each key's last event.
ACCRUED = "accrued"


@njit(**OPTS)
def _gains(since: np.ndarray, balance: np.ndarray, posted: np.ndarray, own: np.ndarray,
           at: int, rt_times: np.ndarray, rt_rates: np.ndarray, rt_cum: np.ndarray,
           mode: int, out: np.ndarray) -> int:
    """Per key: the interest an event at ``at`` would post (the fold's own steps), in ``out``.

    Returns -1, or the row whose interest (or balance or posted total with it) is not
    an Int64.
    """
    end = vm.integral(at, vm.rate_index(at, -1, rt_times), rt_times, rt_rates, rt_cum)
    for r in range(since.shape[0]):
        out[r] = 0
        t = since[r]
        if balance[r] == 0 or t > at:
            continue
        if np.isnan(own[r]):
            growth = end - vm.integral(t, vm.rate_index(t, -1, rt_times), rt_times, rt_rates,
                                       rt_cum)
        else:
            growth = own[r] * ((at - t) / 1_000_000.0)
        rounded = vm.round_float(float(balance[r]) * growth / vm.YEAR_SECONDS, mode)
        if vm.int_fault(rounded):
            return r
        out[r] = int(rounded)
        _, over = add_checked(balance[r], out[r])
        _, also = add_checked(posted[r], out[r])
        if over or also:
            return r
    return -1


def accrue(rows: pl.DataFrame, rules: RuleSet, rates: tuple[np.ndarray, np.ndarray],
           at: int) -> pl.DataFrame:
    """``rows`` (state per key with ``last_event_time``) with interest accrued to ``at`` (µs).

    The balance field and the posted-interest field grow by the accrued part,
    which is also in the column :data:`ACCRUED`. ``rates`` is the bank-wide
    rate table the fold used (effective instants in µs, annual rates).

    Raises
    ------
    eventkit.ParameterError
        The rule set has no interest.

    """
    spec = rules.interest
    if spec is None:
        msg = f"rule set {rules.name!r} has no interest to accrue"
        raise ParameterError(msg, param="accrued")
    times, values = rates
    own = (rows[spec.account_rate_field].cast(pl.Float64).fill_null(np.nan).to_numpy()
           if spec.account_rate_field else np.full(rows.height, np.nan))
    balance = rows[spec.balance_field].cast(pl.Int64).to_numpy()
    posted = (rows[spec.posted_field].cast(pl.Int64).to_numpy() if spec.posted_field
              else np.zeros(rows.height, np.int64))
    gains = np.empty(rows.height, np.int64)
    bad = _gains(rows["last_event_time"].dt.epoch("us").to_numpy().astype(np.int64),
                 balance, posted, own.astype(np.float64), at, times.astype(np.int64),
                 values.astype(np.float64), rate_cumulative(times, values),
                 vm.ROUND_MODES.index(spec.rounding), gains)
    if bad >= 0:
        msg = (f"the interest accrued on {balance[bad]} to {from_micros(at).isoformat()} "
               "cannot be an Int64 (nor the balance or the posted total with it)")
        key = tuple(rows[c][bad] for c in rules.key_columns)
        raise ReplayError(msg, key=key[0] if len(key) == 1 else key, field=spec.balance_field,
                          rule="interest (accrued)")
    gained = pl.Series(ACCRUED, gains, dtype=pl.Int64)
    changed = [pl.col(spec.balance_field) + gained]
    if spec.posted_field:
        changed.append(pl.col(spec.posted_field) + gained)
    return rows.with_columns(changed).with_columns(gained)
