"""The replay engine: fold a frame of events through checked rules.

Steps, none of them a Python loop over events:

1. take the bank's own events (account 0) aside: they feed the rate table;
2. map keys to dense codes;
3. find the keys whose log order is not their valid-time order (late
   corrections, ties decided by seq); only their events get sorted;
4. linear rules: compute each event's effect column-wise in Polars, then a
   compiled running sum / forward fill per key; other rules: one compiled pass
   of the rule program (:func:`eventkit.kernels.run_rules`). Every other key is
   folded in log order, with no sort at all;
5. attach the state after each event to the events, in their original order.
"""

from __future__ import annotations

import ast
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
    """Events (without the bank's own) with the state after each, and their keys.

    ``keys`` are dense key codes (``n_keys`` of them), ``times`` event times in
    microseconds and ``seqs`` the log positions, all aligned with ``events``.
    """

    events: pl.DataFrame  # input columns + one column per state field (+ violation)
    keys: np.ndarray
    n_keys: int
    times: np.ndarray
    seqs: np.ndarray

    def last_at(self, micros: int) -> tuple[np.ndarray, np.ndarray]:
        """Per key code: row of its last event at or before ``micros`` (-1: none), and count."""
        return K.last_at(self.keys, self.times, self.seqs, self.n_keys, micros)


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
    handled = {t: i for i, t in enumerate(checked.assignments)}
    types = events["event_type"].replace_strict(handled, default=-1, return_dtype=pl.Int32)
    passes = _passes(keys, times, seqs, n_keys)
    if checked.linear:
        state = _fold_linear(events, checked, passes, keys, n_keys, types.to_numpy())
    else:
        state = _fold_program(events, checked, passes, keys, n_keys, types.to_numpy(), times,
                              rate_times, rate_rates)
    return Fold(events.hstack(state), keys, n_keys, times, seqs)


@dataclass(frozen=True)
class _Passes:
    """The two passes of a fold.

    First every event in log order except those of the ``disordered`` keys
    (whose log order is not their valid-time order); then those keys' events,
    ``sorted`` by (key, time, seq).
    """

    disordered: np.ndarray  # bool per key code
    sorted: np.ndarray  # rows

    @property
    def in_log_order(self) -> np.ndarray:
        """The first pass's positions: empty, meaning "all rows, in order"."""
        return np.zeros(0, np.int64)


def _passes(keys: np.ndarray, times: np.ndarray, seqs: np.ndarray, n_keys: int) -> _Passes:
    disordered = K.disordered_keys(keys, times, seqs, n_keys)
    return _Passes(disordered, K.rows_in_time_order(disordered, keys, times, seqs))


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


def _fold_linear(events: pl.DataFrame, checked: CheckedRules, passes: _Passes,
                 keys: np.ndarray, n_keys: int, types: np.ndarray) -> list[pl.Series]:
    """Each event's effect computed column-wise in Polars, then a compiled running fold.

    Per field, the distinct event-only expressions ("terms") are evaluated once
    each; a table says which term (and sign) each event type uses.
    """
    n_types = len(checked.assignments)
    plans: dict[str, tuple[str, list[ast.expr], np.ndarray, np.ndarray]] = {}
    for code, pairs in enumerate(checked.assignments.values()):
        for target, expr in pairs:
            kind, node, sign = linear_delta(target, expr)
            _, terms, term_of, sign_of = plans.setdefault(
                target, (kind, [], np.full(n_types, -1, np.int64), np.ones(n_types, np.int64)))
            dumps = [ast.dump(t) for t in terms]
            if ast.dump(node) not in dumps:
                terms.append(node)
                dumps.append(ast.dump(node))
            term_of[code] = dumps.index(ast.dump(node))
            sign_of[code] = sign
    exprs = []
    for target, (_, terms, _, _) in plans.items():
        field = checked.fields[target]
        dtype = pl.Float64 if field.type == "float" else pl.Int64
        exprs += [polars_expr(t, checked, field if field.type == "enum" else None)
                  .cast(dtype).alias(f"{target}#{j}") for j, t in enumerate(terms)]
    columns = events.select(exprs)
    out = []
    for name, field in checked.fields.items():
        dtype = np.float64 if field.type == "float" else np.int64
        initial = (field.values.index(str(field.start)) if field.type == "enum"
                   else field.start)
        if name in plans:
            kind, terms, term_of, sign_of = plans[name]
            matrix = np.stack([columns[f"{name}#{j}"].to_numpy() for j in range(len(terms))])
            values = np.empty(events.height, dtype)
            for positions in (passes.in_log_order, passes.sorted):
                K.fold_terms(positions, passes.disordered, keys, n_keys, types, term_of,
                             sign_of, matrix, initial, kind == "add", values)
        else:
            values = np.full(events.height, initial, dtype)
        out.append(_state_series(name, field, values))
    return out


def _fold_program(events: pl.DataFrame, checked: CheckedRules, passes: list[np.ndarray],
                  keys: np.ndarray, n_keys: int, type_codes: np.ndarray, times: np.ndarray,
                  rate_times: np.ndarray, rate_rates: np.ndarray) -> list[pl.Series]:
    """One compiled pass of the rule program over the events (see module docstring)."""
    program = compile_program(checked)
    icols = _matrix(events, program.int_columns, pl.Int64, 0)
    fcols = _matrix(events, program.float_columns, pl.Float64, float("nan"))
    n = events.height
    out_i = np.empty((program.init_i.shape[0], n), np.int64)
    out_f = np.empty((program.init_f.shape[0], n), np.float64)
    viol = np.empty(n, np.int32)
    rates = (rate_times, rate_rates, rate_cumulative(rate_times, rate_rates))

    def run(positions: np.ndarray, keys: np.ndarray, types: np.ndarray, times: np.ndarray,
            icols: np.ndarray, fcols: np.ndarray, out_rows: np.ndarray) -> None:
        K.run_rules(positions, passes.disordered, keys, n_keys, types, times, icols, fcols,
                    program.code, program.prog, program.consts_i, program.consts_f,
                    program.init_i, program.init_f, program.interest, *rates, out_rows, out_i,
                    out_f, viol)

    run(passes.in_log_order, keys, type_codes, times, icols, fcols, np.zeros(0, np.int64))
    rows = passes.sorted
    if rows.size:  # these keys' events gathered in order: a sequential pass, results to rows
        run(np.arange(rows.size, dtype=np.int64), keys[rows], type_codes[rows], times[rows],
            np.take(icols, rows, axis=1), np.take(fcols, rows, axis=1), rows)
    out = []
    for name, field in checked.fields.items():
        if field.type == "float":
            values = out_f[program.float_fields.index(name)]
        else:
            values = out_i[program.int_fields.index(name)]
        out.append(_state_series(name, field, values))
    if any(r is not None for r in checked.requirements.values()):
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
