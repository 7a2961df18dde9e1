"""The replay engine: fold a frame of events through checked rules.

Steps, none of them a Python loop over events:

1. take the bank's own events (account 0) aside: they feed the rate table;
2. map keys to dense codes and order each key's events by (event time, seq)
   with a compiled counting sort (a log is nearly in time order already, so
   this costs far less than a general sort);
3. linear rules: compute each event's effect column-wise in Polars, then a
   compiled running sum / forward fill per key; other rules: one compiled pass
   of the rule program (:func:`eventkit.kernels.run_rules`);
4. attach the state after each event to the events, in their original order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from eventkit import kernels as K
from eventkit.compile import compile_program, polars_expr
from eventkit.rules import CheckedRules, Field, linear_delta
from eventkit.schema import BANK_ACCOUNT

__all__ = ["Fold", "fold"]

_DENSE_SLACK = 1 << 20


@dataclass(frozen=True)
class Fold:
    """Events (without the bank's own) with the state after each, and the key layout.

    ``order[starts[k]:starts[k + 1]]`` are the positions of key code ``k``'s
    events in valid-time order; ``times`` are event times in microseconds.
    """

    events: pl.DataFrame  # input columns + one column per state field (+ violation)
    order: np.ndarray
    starts: np.ndarray
    times: np.ndarray


def fold(events: pl.DataFrame, checked: CheckedRules) -> Fold:
    """Fold ``events`` (canonical columns) through ``checked`` rules."""
    rules = checked.rules
    key = rules.key
    rate_times, rate_rates = _rate_table(events, checked)
    if key == "account_id":
        events = events.filter(pl.col(key) != BANK_ACCOUNT)
    keys, n_keys = _dense(events[key])
    times = events["event_time"].dt.epoch("us").to_numpy()
    seqs = events["seq"].to_numpy()
    order, starts = K.order_by_key(keys, times, seqs, n_keys)
    if checked.linear:
        state = _fold_linear(events, checked, order, starts)
    else:
        state = _fold_program(events, checked, order, starts, times, rate_times, rate_rates)
    return Fold(events.hstack(state), order, starts, times)


def _dense(column: pl.Series) -> tuple[np.ndarray, int]:
    """Key codes 0..n_keys-1 (the values themselves when small and non-negative)."""
    if column.len() == 0:
        return np.zeros(0, np.int64), 0
    lo, hi = column.min(), column.max()
    if lo >= 0 and hi <= 4 * column.len() + _DENSE_SLACK:  # type: ignore[operator]
        return column.to_numpy().astype(np.int64, copy=False), int(hi) + 1  # type: ignore[arg-type]
    codes = column.rank("dense").cast(pl.Int64) - 1
    return codes.to_numpy(), int(codes.max()) + 1  # type: ignore[arg-type]


def _rate_table(events: pl.DataFrame, checked: CheckedRules) -> tuple[np.ndarray, np.ndarray]:
    """The bank-wide rate table: the rule set's own, else the bank's rate events."""
    rules = checked.rules
    if rules.interest is None:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    if rules.rate_table is not None:
        table = pl.DataFrame(
            {"t": [t for t, _ in rules.rate_table], "rate": [r for _, r in rules.rate_table]},
            schema={"t": pl.Datetime("us", "UTC"), "rate": pl.Float64},
        )
    else:
        table = (
            events.filter((pl.col(rules.key) == BANK_ACCOUNT)
                          & (pl.col("event_type") == "InterestRateChanged")
                          & pl.col("rate").is_not_null())
            .sort("event_time", "seq")
            .select(pl.col("event_time").alias("t"), "rate")
        )
    return table["t"].dt.epoch("us").to_numpy(), table["rate"].to_numpy().astype(np.float64)


def rate_cumulative(rate_times: np.ndarray, rate_rates: np.ndarray) -> np.ndarray:
    """Integral of the rate from the first entry up to each entry, in rate-seconds."""
    cum = np.zeros(rate_times.shape[0], np.float64)
    for i in range(1, rate_times.shape[0]):  # a handful of rate changes, not events
        cum[i] = cum[i - 1] + rate_rates[i - 1] * ((rate_times[i] - rate_times[i - 1])
                                                   / 1_000_000.0)
    return cum


def _fold_linear(events: pl.DataFrame, checked: CheckedRules, order: np.ndarray,
                 starts: np.ndarray) -> list[pl.Series]:
    """Each event's effect as Polars columns, then a compiled running fold per key."""
    effects: dict[str, tuple[str, pl.Expr]] = {}
    for event_type, pairs in checked.assignments.items():
        is_type = pl.col("event_type") == event_type
        for target, expr in pairs:
            kind, node, sign = linear_delta(target, expr)
            field = checked.fields[target]
            value = polars_expr(node, checked, field if field.type == "enum" else None)
            if sign < 0:
                value = -value
            branch = pl.when(is_type).then(value)
            if target in effects:  # rows of other event types fall through to earlier rules
                branch = branch.otherwise(effects[target][1])
            effects[target] = (kind, branch)
    columns = events.select([e.alias(t) for t, (_, e) in effects.items()])
    out = []
    for name, field in checked.fields.items():
        out.append(_linear_field(name, field, effects.get(name, ("add", None))[0],
                                 columns, order, starts, events.height))
    return out


def _linear_field(name: str, field: Field, kind: str, columns: pl.DataFrame,
                  order: np.ndarray, starts: np.ndarray, n: int) -> pl.Series:
    dtype = np.float64 if field.type == "float" else np.int64
    initial = (field.values.index(str(field.start)) if field.type == "enum"
               else field.start)
    if name not in columns.columns:
        values = np.full(n, initial, dtype)
    elif kind == "add":
        delta = columns[name].fill_null(0).cast(pl.Float64 if dtype is np.float64 else pl.Int64)
        values = K.segment_cumsum(order, starts, delta.to_numpy(), initial)
    else:
        col = columns[name]
        valid = col.is_not_null().to_numpy()
        raw = col.fill_null(0).cast(pl.Float64 if dtype is np.float64 else pl.Int64).to_numpy()
        values = K.segment_ffill(order, starts, raw, valid, initial)
    return _state_series(name, field, values)


def _fold_program(events: pl.DataFrame, checked: CheckedRules, order: np.ndarray,
                  starts: np.ndarray, times: np.ndarray, rate_times: np.ndarray,
                  rate_rates: np.ndarray) -> list[pl.Series]:
    """One compiled pass of the rule program over each key's events."""
    program = compile_program(checked)
    codes = {t: i for i, t in enumerate(program.event_types)}
    types = events["event_type"].replace_strict(codes, default=-1, return_dtype=pl.Int64)
    icols = _matrix(events, program.int_columns, pl.Int64, 0)
    fcols = _matrix(events, program.float_columns, pl.Float64, float("nan"))
    out_i, out_f, viol = K.run_rules(
        order, starts, types.to_numpy(), times, icols, fcols, program.code, program.prog,
        program.consts_i, program.consts_f, program.init_i, program.init_f, program.interest,
        rate_times, rate_rates, rate_cumulative(rate_times, rate_rates))
    out = []
    for name, field in checked.fields.items():
        if field.type == "float":
            values = out_f[program.float_fields.index(name)]
        else:
            values = out_i[program.int_fields.index(name)]
        out.append(_state_series(name, field, values))
    if program.violations:
        reasons = pl.Series("violation", [None, *program.violations], dtype=pl.String)
        out.append(reasons.gather(pl.Series(viol)).alias("violation"))
    return out


def _matrix(events: pl.DataFrame, names: tuple[str, ...], dtype: pl.DataType,
            null: float) -> np.ndarray:
    np_dtype = np.float64 if dtype == pl.Float64 else np.int64
    if not names:
        return np.zeros((0, events.height), np_dtype)
    return np.ascontiguousarray(np.stack([
        events[n].cast(dtype).fill_null(null).to_numpy() for n in names]))


def _state_series(name: str, field: Field, values: np.ndarray) -> pl.Series:
    if field.type == "enum":
        names = pl.Series(name, field.values, dtype=pl.Enum(list(field.values)))
        return names.gather(values)
    return pl.Series(name, values)
