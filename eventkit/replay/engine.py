"""The replay engine: fold a frame of events through checked rules.

Steps, none of them a Python loop over events:

1. take the bank's own events (account 0) aside: they feed the rate table;
2. map keys to dense codes;
3. find the keys whose log order is not their valid-time order (late
   corrections, ties decided by seq); only their events get sorted, and the
   folds visit them in that order at the key's places in the log
   (:func:`eventkit.replay.kernels.visiting_order`); every other key is folded in log
   order, with no sort at all;
4. linear rules: compute each event's effect column-wise in Polars, then a
   compiled running sum / forward fill per key; other rules: one compiled pass
   of the rule program (:func:`eventkit.replay.kernels.run_rules`);
5. attach the state after each event to the events, in their original order.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from eventkit.exceptions import RuleError
from eventkit.replay import interpreter
from eventkit.replay import kernels as K
from eventkit.replay.compile import compile_program
from eventkit.replay.faults import program_fault, sum_fault, term_fault
from eventkit.replay.to_polars import polars_expr
from eventkit.rules.model import CheckedRules, Field, linear_delta
from eventkit.rules.rates import rate_events
from eventkit.schema import BANK_ACCOUNT

__all__ = ["Fold", "Prepared", "Start", "fold", "prepare"]

_DENSE_SLACK = 1 << 20
_FEW_ROWS = 256  # the bank's own events are cut out of the frame, when this few


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
    #: the bank-wide rate table the fold used: effective instants (µs) and annual rates
    rates: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.float64))

    def last_at(self, micros: int) -> tuple[np.ndarray, np.ndarray]:
        """Per key code: row of its last event at or before ``micros`` (-1: none), and count."""
        rows, counts = K.grid_positions(self.keys, self.times, self.seqs, self.n_keys,
                                        np.array([micros], np.int64))
        return rows[0], counts[0]


@dataclass(frozen=True)
class Start:
    """State carried over into a fold: per listed key code, its fields and last event time.

    ``values`` holds one array per state field (enum fields as value codes),
    aligned with ``keys``; ``times`` the time of each key's last event so far,
    in microseconds (interest accrues from there).
    """

    keys: np.ndarray
    values: dict[str, np.ndarray]
    times: np.ndarray


@dataclass(frozen=True)
class Prepared:
    """Events ready to fold, for any rule set with this key: the work rule sets share.

    ``events`` without the bank's own when keyed by account; ``bank`` the
    bank's own events (account 0: the rate table); dense key codes, times,
    log positions and the visiting order (see :func:`eventkit.replay.kernels.visiting_order`);
    ``cut`` the rows taken out of ``events`` (ascending).
    """

    key: str
    events: pl.DataFrame
    bank: pl.DataFrame
    keys: np.ndarray
    n_keys: int
    times: np.ndarray
    seqs: np.ndarray
    visit: tuple[np.ndarray, np.ndarray]
    cut: np.ndarray

    def own(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of ``frame`` (aligned with the events prepared) that ``events`` kept."""
        return _without(frame, self.cut) if self.cut.size else frame


def prepare(events: pl.DataFrame, key: str) -> Prepared:
    """Everything a fold needs that does not depend on the rules (keyed by ``key``)."""
    bank_rows = (events[key] == BANK_ACCOUNT).arg_true().to_numpy()
    bank = events[bank_rows]
    cut = bank_rows if key == "account_id" else bank_rows[:0]
    if cut.size:
        events = _without(events, cut)
    keys, n_keys = _dense(events[key])
    times = _numpy(events["event_time"].dt.epoch("us"), np.int64)
    seqs = _numpy(events["seq"], np.int64)
    visit = K.visiting_order(keys, times, seqs, n_keys)
    return Prepared(key, events, bank, keys, n_keys, times, seqs, visit, cut)


def fold(events: pl.DataFrame | Prepared, checked: CheckedRules,
         start: pl.DataFrame | None = None) -> Fold:
    """Fold ``events`` (canonical columns, or :func:`prepare`-d) through ``checked`` rules.

    ``start`` (optional) carries state over, e.g. from a snapshot: one row per
    key with the key, every state field and ``last_event_time``; those keys'
    folds continue from there instead of the fields' start values. Keys of
    ``start`` without events here are ignored. Folding one :class:`Prepared`
    through several rule sets shares the work that does not depend on them.
    """
    rules = checked.rules
    p = events if isinstance(events, Prepared) else prepare(events, rules.key)
    if p.key != rules.key:
        msg = f"events were prepared for key {p.key!r}, the rules are keyed by {rules.key!r}"
        raise RuleError(msg)
    rate_times, rate_rates = _rate_table(p.bank, checked)
    types = _type_codes(p.events["event_type"], tuple(checked.assignments))
    carried = _start(p.events[p.key], p.keys, start, checked)
    if checked.linear:
        state = _fold_linear(p.events, checked, p.visit, p.keys, p.n_keys, types, carried)
    else:
        state = _fold_program(p.events, checked, p.visit, p.keys, p.n_keys, types, p.times,
                              rate_times, rate_rates, carried)
    return Fold(p.events.hstack(state), p.keys, p.n_keys, p.times, p.seqs,
                (rate_times, rate_rates))


def _start(column: pl.Series, keys: np.ndarray, start: pl.DataFrame | None,
           checked: CheckedRules) -> Start:
    """``start``'s rows for the keys in ``column``, addressed by their codes ``keys``."""
    fields = checked.fields
    if start is None or start.height == 0 or column.len() == 0:
        return Start(np.zeros(0, np.int64),
                     {n: np.zeros(0, np.float64 if f.type == "float" else np.int64)
                      for n, f in fields.items()}, np.zeros(0, np.int64))
    name = column.name
    codes = pl.DataFrame({name: column, "#code": keys}).unique(name)
    rows = start.join(codes, on=name, how="inner")
    return Start(
        rows["#code"].to_numpy().astype(np.int64),
        {n: (rows[n].to_physical().cast(pl.Int64).to_numpy() if f.type == "enum"
             else rows[n].cast(pl.Float64 if f.type == "float" else pl.Int64).to_numpy())
         for n, f in fields.items()},
        rows["last_event_time"].dt.epoch("us").fill_null(K.NO_TIME).to_numpy().astype(np.int64),
    )


def _without(events: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """``events`` without the (ascending) ``rows``; a few rows are cut out, not filtered."""
    if rows.size > _FEW_ROWS:
        keep = np.ones(events.height, np.bool_)
        keep[rows] = False
        return events.filter(pl.Series(keep))
    cuts = np.concatenate([[-1], rows, [events.height]])
    parts = [events.slice(int(a) + 1, int(b - a) - 1) for a, b in zip(cuts[:-1], cuts[1:],
                                                                        strict=True)]
    return pl.concat([p for p in parts if p.height] or [events.clear()], rechunk=False)


def _numpy(column: pl.Series, dtype: npt.DTypeLike, out: np.ndarray | None = None
           ) -> np.ndarray:
    """A column (without nulls) copied chunk by chunk into ``out`` or a new NumPy array.

    (One copy, into NumPy's memory: it comes in huge pages, cheaper to get
    fresh than Polars' own for these large arrays.)
    """
    out = np.empty(column.len(), dtype) if out is None else out
    at = 0
    for chunk in column.get_chunks():
        out[at:at + chunk.len()] = chunk.to_numpy()
        at += chunk.len()
    return out


def _type_codes(column: pl.Series, names: tuple[str, ...]) -> np.ndarray:
    """Per row: ``i`` where the string is ``names[i]``, -1 for any other string or null.

    Reads Polars' strings in place (Arrow's string-view layout, see
    :func:`eventkit.replay.kernels.type_codes`): no string is hashed or copied.
    """
    chunks = pa.chunked_array(column)  # Polars' own buffers, not a copy
    if chunks.type != pa.string_view() or sys.byteorder != "little":
        handled = {name: i for i, name in enumerate(names)}
        return column.replace_strict(handled, default=-1, return_dtype=pl.Int32).to_numpy()
    out = np.empty(column.len(), np.int32)
    table = _view_table(names)
    at = 0
    for chunk in chunks.chunks:
        _, views, *buffers = chunk.buffers()
        rows = np.frombuffer(views, np.int64).reshape(-1, 2)[chunk.offset:][:len(chunk)]
        # the data buffers one after the other (a few long strings; short ones are inline)
        data = np.frombuffer(b"".join(b"" if b is None else b.to_pybytes() for b in buffers),
                             np.uint8)
        starts = np.cumsum([0] + [0 if b is None else b.size for b in buffers], dtype=np.int64)
        K.type_codes(rows, data, starts, table, out[at:at + len(chunk)])
        if chunk.null_count:
            out[at:at + len(chunk)][chunk.is_null().to_numpy(zero_copy_only=False)] = -1
        at += len(chunk)
    return out


def _view_table(names: tuple[str, ...]) -> np.ndarray:
    """``names`` as :func:`~eventkit.replay.kernels.type_codes` wants them: 16-byte views, bytes."""
    encoded = [n.encode() for n in names]
    width = max((len(b) for b in encoded), default=0)
    table = np.zeros((len(names), 2 + width), np.int64)
    for i, b in enumerate(encoded):
        head = len(b).to_bytes(4, "little") + b[:12].ljust(12, b"\0")
        table[i, :2] = np.frombuffer(head, np.int64)
        table[i, 2:2 + len(b)] = list(b)
    return table


def _dense(column: pl.Series) -> tuple[np.ndarray, int]:
    """Key codes 0..n_keys-1 (the values themselves when small and non-negative)."""
    if column.len() == 0:
        return np.zeros(0, np.int64), 0
    lo, hi = column.min(), column.max()
    if lo >= 0 and hi <= 4 * column.len() + _DENSE_SLACK:  # type: ignore[operator]
        return _numpy(column.cast(pl.Int64), np.int64), int(hi) + 1  # type: ignore[arg-type]
    codes = column.rank("dense").cast(pl.Int64) - 1
    return _numpy(codes, np.int64), int(codes.max()) + 1  # type: ignore[arg-type]


def _rate_table(events: pl.DataFrame, checked: CheckedRules) -> tuple[np.ndarray, np.ndarray]:
    """The bank-wide rate table: the rule set's own, else the bank's rate events in ``events``."""
    rules = checked.rules
    if rules.interest is None:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    if rules.rate_table is not None:
        table = pl.DataFrame(
            {"t": [t for t, _ in rules.rate_table], "rate": [r for _, r in rules.rate_table]},
            schema={"t": pl.Datetime("us", "UTC"), "rate": pl.Float64},
        )
    else:
        table = rate_events(events, key=rules.key)
    # fresh, writable arrays (a handful of rows): a read-only view of Polars' memory would be
    # another argument type for the kernels, compiled again (see eventkit.replay.warm)
    return (np.array(table["t"].dt.epoch("us").to_numpy(), np.int64),
            np.array(table["rate"].to_numpy(), np.float64))


def rate_cumulative(rate_times: np.ndarray, rate_rates: np.ndarray) -> np.ndarray:
    """Integral of the rate from the first entry up to each entry, in rate-seconds."""
    cum = np.zeros(rate_times.shape[0], np.float64)
    for i in range(1, rate_times.shape[0]):  # a handful of rate changes, not events
        cum[i] = cum[i - 1] + rate_rates[i - 1] * ((rate_times[i] - rate_times[i - 1])
                                                   / 1_000_000.0)
    return cum


def _fold_linear(events: pl.DataFrame, checked: CheckedRules,
                 visit: tuple[np.ndarray, np.ndarray], keys: np.ndarray, n_keys: int,
                 types: np.ndarray, start: Start) -> list[pl.Series]:
    """Each event's effect computed column-wise in Polars, then a compiled running fold.

    Per field, the distinct event-only expressions ("terms") are evaluated once
    each; a table says which term (and sign) each event type uses.
    """
    n_types = len(checked.assignments)
    plans: dict[str, tuple[str, list[ast.expr], np.ndarray, np.ndarray]] = {}
    for code, pairs in enumerate(checked.assignments.values()):
        for target, expr in pairs:
            kind, node, sign = linear_delta(target, expr)
            if kind == "keep":
                continue  # the field keeps its value: untouched by this event type
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
        term_dtype = pl.Float64 if field.type == "float" else pl.Int64
        exprs += [polars_expr(t, checked, field if field.type == "enum" else None)
                  .cast(term_dtype).alias(f"{target}#{j}") for j, t in enumerate(terms)]
    # with_columns: a constant term (a literal) fills every row, as select would not
    columns = events.with_columns(exprs).select(e.meta.output_name() for e in exprs)
    for target, (_, terms, term_of, _) in plans.items():  # null: cannot be computed exactly
        for j, node in enumerate(terms):
            column = columns[f"{target}#{j}"]
            if column.null_count():
                bad = column.is_null().to_numpy() & (types >= 0)
                bad[bad] = term_of[types[bad]] == j  # only where the event type uses it
                if bad.any():
                    raise term_fault(events, checked, target, int(np.argmax(bad)), node)
    out = []
    for name, field in checked.fields.items():
        dtype = np.float64 if field.type == "float" else np.int64
        # a checked int or float field starts at a number (only an enum's start is text)
        initial = (field.values.index(str(field.start)) if field.type == "enum"
                   else cast("int | float", field.start))
        if name in plans:
            kind, terms, term_of, sign_of = plans[name]
            matrix = _matrix(columns, tuple(f"{name}#{j}" for j in range(len(terms))),
                             pl.Float64 if field.type == "float" else pl.Int64,
                             float("nan") if field.type == "float" else 0)
            values = np.empty(events.height, dtype)
            row = K.fold_terms(*visit, keys, n_keys, types, term_of, sign_of, matrix, initial,
                               start.keys, start.values[name].astype(dtype), kind == "add",
                               values)
            if row >= 0:
                sign = int(sign_of[types[row]])
                raise sum_fault(events, checked, name, row, int(values[row]),
                                int(matrix[term_of[types[row]], row]), sign)
        else:  # untouched by every event: its start value, or the one carried over
            first = np.full(n_keys, initial, dtype)
            first[start.keys] = start.values[name]
            values = first[keys]
        out.append(_state_series(name, field, values))
    return out


def _fold_program(events: pl.DataFrame, checked: CheckedRules,
                  visit: tuple[np.ndarray, np.ndarray], keys: np.ndarray, n_keys: int,
                  types: np.ndarray, times: np.ndarray, rate_times: np.ndarray,
                  rate_rates: np.ndarray, start: Start) -> list[pl.Series]:
    """One compiled pass of the rule program over the events (see module docstring)."""
    program = compile_program(checked)
    icols = _matrix(events, program.int_columns, pl.Int64, 0)
    fcols = _matrix(events, program.float_columns, pl.Float64, float("nan"))
    n = events.height
    out_i = np.empty((program.init_i.shape[0], n), np.int64)
    out_f = np.empty((program.init_f.shape[0], n), np.float64)
    viol = np.empty(n, np.int32)
    start_i = np.array([start.values[f] for f in program.int_fields], np.int64).T.copy()
    start_f = np.array([start.values[f] for f in program.float_fields], np.float64).T.copy()
    err, errf = np.zeros(5, np.int64), np.zeros(1, np.float64)
    refused = interpreter.run_rules(
        *visit, keys, n_keys, types, times, icols, fcols, program.code, program.prog,
        program.refusal, program.consts_f, program.init_i, program.init_f, start.keys,
        start_i.reshape(start.keys.shape[0], len(program.int_fields)),
        start_f.reshape(start.keys.shape[0], len(program.float_fields)), start.times,
        program.interest, rate_times, rate_rates, rate_cumulative(rate_times, rate_rates),
        out_i, out_f, viol, err, errf)
    if refused < 0:
        raise program_fault(events, checked, program, err, errf)
    out = []
    for name, field in checked.fields.items():
        if field.type == "float":
            values = out_f[program.float_fields.index(name)]
        else:
            values = out_i[program.int_fields.index(name)]
        out.append(_state_series(name, field, values))
    if any(r is not None for r in checked.requirements.values()):
        out.append(_violations(viol, refused, program.violations))
    return out


def _violations(viol: np.ndarray, refused: int, reasons: tuple[str, ...]) -> pl.Series:
    """The violation column: null where code 0 (folded), else the reason for the code."""
    column = pl.Series("violation", [None, *reasons], dtype=pl.String)
    if refused > viol.shape[0] // 16:
        return column.gather(pl.Series(viol))
    # few refusals: set them in a column of nulls (cheaper than gathering every row)
    rows = np.flatnonzero(viol)
    nulls = pl.Series("violation", [], dtype=pl.String).extend_constant(None, viol.shape[0])
    return nulls.scatter(rows, column.gather(pl.Series(viol[rows])))


def _matrix(events: pl.DataFrame, names: tuple[str, ...],
            dtype: pl.DataType | type[pl.DataType], null: float) -> np.ndarray:
    """Columns ``names`` as the rows of one array, nulls read as ``null``."""
    out = np.empty((len(names), events.height), np.float64 if dtype == pl.Float64 else np.int64)
    for row, name in zip(out, names, strict=True):
        column = events[name].cast(dtype)
        if column.null_count() == column.len():
            row.fill(null)  # e.g. rates: only on a few event types, if any
        else:
            _numpy(column.fill_null(null), row.dtype, row)
    return out


def _state_series(name: str, field: Field, values: np.ndarray) -> pl.Series:
    if field.type == "enum":
        names = pl.Series(name, field.values, dtype=pl.Enum(list(field.values)))
        return names.gather(values)
    return pl.Series(name, values)
