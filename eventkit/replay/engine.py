"""The replay engine: fold a frame of events through checked rules.

Steps, none of them a Python loop over events:

1. take the rule set's global events aside (they feed the rate table) and
   keep only the events its ``where`` selects;
2. map keys of any type to dense codes (:mod:`eventkit.replay.keys`), and the
   text the rules read to codes of one dictionary per fold;
3. find the keys whose log order is not their valid-time order (late
   corrections, ties decided by seq); only their events get sorted, and the
   folds visit them in that order at the key's places in the log
   (:func:`eventkit.replay.kernels.visiting_order`); every other key is folded in log
   order, with no sort at all;
4. linear rules: compute each event's effect column-wise in Polars, then a
   compiled running sum / forward fill per key; other rules: one compiled pass
   of the rule program (:func:`eventkit.replay.interpreter.run_rules`);
5. attach the state after each event to the events, in their original order.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from eventkit.exceptions import RuleError, ValidationError
from eventkit.replay import interpreter
from eventkit.replay import kernels as K
from eventkit.replay.columns import check_column_types, rule_exprs
from eventkit.replay.compile import compile_program
from eventkit.replay.faults import program_fault, sum_fault, term_fault
from eventkit.replay.keys import dense_codes, key_codes
from eventkit.replay.to_polars import polars_expr
from eventkit.rules.expr import derived_name
from eventkit.rules.model import CheckedRules, Field, RuleSet, linear_delta
from eventkit.rules.rates import rate_events
from eventkit.rules.streams import global_expr
from eventkit.sources.frames import aligned

__all__ = [
    "AFTER_ALL",
    "Coverage",
    "Fold",
    "Prepared",
    "Start",
    "fold",
    "prepare",
    "selected",
    "selection_expr",
]

_FEW_ROWS = 256  # global events are cut out of the frame, when this few
#: An instant after every event (in microseconds): state "as of" it is the final state.
AFTER_ALL = int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class Coverage:
    """Which event types a fold met: handled ones it saw, and types no rule handles."""

    seen: tuple[str, ...]
    unhandled: tuple[str, ...]


@dataclass(frozen=True)
class Fold:
    """Events (without the global ones) with the state after each, and their keys.

    ``keys`` are dense key codes (``n_keys`` of them), ``times`` event times in
    microseconds and ``seqs`` the log positions, all aligned with ``events``;
    ``coverage`` the event types met.
    """

    events: pl.DataFrame  # input columns + one column per state field (+ violation)
    keys: np.ndarray
    n_keys: int
    times: np.ndarray
    seqs: np.ndarray
    visit: tuple[np.ndarray, np.ndarray]  # where the fold visited other rows (visiting_order)
    coverage: Coverage = Coverage((), ())
    #: the rate table the fold used: effective instants (µs) and annual rates
    rates: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.float64))

    def last_at(self, micros: int) -> tuple[np.ndarray, np.ndarray]:
        """Per key code: row of its last event at or before ``micros`` (-1: none), and count.

        ``micros`` :data:`AFTER_ALL`: each key's last event (the final state).
        """
        if micros == AFTER_ALL:
            return K.last_visits(*self.visit, self.keys, self.n_keys)
        rows, counts = K.grid_positions(self.keys, self.times, self.seqs, self.n_keys,
                                        np.array([micros], np.int64))
        return rows[0], counts[0]

    def rows_at(self, positions: np.ndarray, counts: np.ndarray, key: Sequence[str],
                fields: Sequence[str]) -> pl.DataFrame:
        """State rows at ``positions`` (as :meth:`last_at` gives them; -1 rows left out).

        Each: the ``key``, the ``fields`` after that event, ``events`` (the key's
        count) and ``last_event_time``. Only the columns kept are gathered.
        """
        found = positions >= 0
        return self.events.select(*key, *fields, "event_time")[positions[found]].select(
            *key, *fields, pl.Series("events", counts[found], dtype=pl.Int64),
            pl.col("event_time").alias("last_event_time"))


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
    """Events ready to fold, for any rule set keyed and selecting alike: the work they share.

    ``events`` the events folded (without the global ones, only those the
    selection keeps); ``shared`` the global events (the rate table); dense key
    codes, times, log positions and the visiting order (see
    :func:`eventkit.replay.kernels.visiting_order`). ``keying`` is the rule
    set's (:attr:`RuleSet.keying <eventkit.RuleSet.keying>`); ``cut`` the rows
    taken out of ``events`` (ascending: the global ones, those not selected).
    """

    keying: tuple[object, ...]
    events: pl.DataFrame
    shared: pl.DataFrame
    keys: np.ndarray
    n_keys: int
    times: np.ndarray
    seqs: np.ndarray
    visit: tuple[np.ndarray, np.ndarray]
    cut: np.ndarray

    def own(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of ``frame`` (aligned with the events prepared) that ``events`` kept."""
        return _without(frame, self.cut) if self.cut.size else frame


def prepare(events: pl.DataFrame, rules: RuleSet | CheckedRules) -> Prepared:
    """Everything a fold needs that depends only on the rule set's key and selection."""
    checked = rules if isinstance(rules, CheckedRules) else rules.check()
    ruleset = checked.rules
    key = ruleset.key_columns
    missing = [c for c in key if c not in events.columns]
    if missing:
        msg = (f"rule set {ruleset.name!r} is keyed by {list(key)}, but the events have no "
               f"column {missing[0]!r}; they have {events.columns}")
        raise RuleError(msg)
    check_column_types(checked, events.schema)
    for column in ("event_time", "seq", "event_type"):
        if column in events.columns and events[column].null_count():
            row = int(events[column].is_null().arg_true()[0])
            msg = "null value in a required column"
            raise ValidationError(msg, source="events", column=column, row=row)
    shared_rows = np.zeros(0, np.int64)
    if ruleset.global_events is not None and events.height:
        shared_rows = events.select(global_expr(ruleset, events.schema)).to_series(
            ).arg_true().to_numpy()
    shared = events[shared_rows]
    cut = shared_rows
    if checked.selection is not None and events.height:
        unselected = ~events.select(selection_expr(checked)).to_series().fill_null(value=False)
        cut = np.union1d(cut, unselected.arg_true().to_numpy())
    events = _without(events, cut) if cut.size else events
    keys, n_keys = dense_codes(events, key)
    times = _numpy(events["event_time"].dt.epoch("us"), np.int64)
    seqs = _numpy(events["seq"], np.int64)
    visit = K.visiting_order(keys, times, seqs, n_keys)
    return Prepared(ruleset.keying, events, shared, keys, n_keys, times, seqs, visit, cut)


def selected(events: pl.DataFrame, checked: CheckedRules) -> pl.DataFrame:
    """The events the rule set's ``where`` keeps (all of them when it has none)."""
    if checked.selection is None or events.height == 0:
        return events
    return events.filter(selection_expr(checked))


def selection_expr(checked: CheckedRules) -> pl.Expr:
    """True for the events the rule set's ``where`` keeps (a Polars filter, lazy or not)."""
    if checked.selection is None:
        return pl.lit(value=True)
    return polars_expr(checked.selection.node, checked, text=None) != 0


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
    p = events if isinstance(events, Prepared) else prepare(events, checked)
    if p.keying != rules.keying:
        msg = (f"events were prepared for another key or selection than the rule set "
               f"{rules.name!r} has ({rules.key!r})")
        raise RuleError(msg)
    clash = [f for f in (*checked.fields, "violation") if f in p.events.columns
             and (f != "violation" or any(r is not None for r in checked.requirements.values()))]
    if clash:
        msg = (f"rule set {rules.name!r}: state field(s) {clash} have the name of event "
               f"column(s); a history holds both: rename the field(s)")
        raise RuleError(msg)
    rate_times, rate_rates = _rate_table(p.shared, checked)
    handled = tuple(checked.assignments)
    types, counts = _type_codes(p.events["event_type"], handled)
    inputs, texts = _inputs(p.events, checked, start)
    carried = _start(p.events, p.keys, start, checked, texts)
    if checked.linear:
        state = _fold_linear(inputs, checked, p.visit, p.keys, p.n_keys, types, carried, texts,
                             p.events)
    else:
        state = _fold_program(inputs, checked, p.visit, p.keys, p.n_keys, types, p.times,
                              rate_times, rate_rates, carried, texts, p.events)
    return Fold(aligned(p.events.hstack(state)), p.keys, p.n_keys, p.times, p.seqs, p.visit,
                _coverage(p.events["event_type"], types, counts, handled),
                (rate_times, rate_rates))


def _coverage(column: pl.Series, types: np.ndarray, counts: np.ndarray,
              handled: tuple[str, ...]) -> Coverage:
    """Which handled types occur, which types occur unhandled (``counts``: of each code)."""
    seen = counts[1:]
    unhandled: tuple[str, ...] = ()
    if counts[0]:
        unhandled = tuple(sorted(str(t) for t in column.filter(pl.Series(types < 0)).unique()
                                 .to_list()))
    return Coverage(tuple(t for t, n in zip(handled, seen, strict=True) if n), unhandled)


def _inputs(events: pl.DataFrame, checked: CheckedRules, start: pl.DataFrame | None
            ) -> tuple[pl.DataFrame, pl.Series]:
    """The event columns the rules read, as numbers: time parts computed, text as codes.

    Text (the columns of type ``string`` read, the string fields' values in
    ``start``) is coded with one dictionary, returned too: the rules' own
    texts (:attr:`CheckedRules.strings`) first, so their codes are fixed.
    """
    exprs = []
    for name in sorted({d for e in rule_exprs(checked) for d in e.derived}):
        part, column = name[:-1].split("(")
        call = ast.Call(ast.Name(part), [ast.Name(column)], [])
        exprs.append(polars_expr(call, checked, text=None).alias(derived_name(part, column)))
    numeric = sorted({c for e in rule_exprs(checked) for c in e.columns}
                     - set(checked.text_columns))
    frame = events.select(pl.col("seq").alias("#seq"),  # (a frame of the events' height)
                          *[pl.col(c) if c in events.columns else pl.lit(
                              None, pl.Float64 if checked.scope.columns[c] == "float"
                              else pl.Int64).alias(c) for c in numeric], *exprs)
    dictionary = pl.Series("text", checked.strings, dtype=pl.String)
    coded = []
    for name in checked.text_columns:
        text = events[name] if name in events.columns else pl.Series(
            name, [None] * events.height, pl.String)
        codes, dictionary = _text_codes(text.cast(pl.String).fill_null(""), dictionary)
        coded.append(pl.Series(name, codes))
    for name, f in checked.fields.items():  # carried-over text joins the dictionary too
        if f.type == "string" and start is not None and name in start.columns:
            _, dictionary = _text_codes(start[name].cast(pl.String).fill_null(""), dictionary)
    return frame.with_columns(coded), dictionary


def _text_codes(column: pl.Series, dictionary: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Codes of ``column``'s text in ``dictionary`` (extended with the text it lacks)."""
    local, n = key_codes(column)
    first = np.full(n, -1, np.int64)
    first[local[::-1]] = np.arange(local.shape[0] - 1, -1, -1)  # the first row of each code
    values = column.gather(first)
    known = dictionary.to_frame("v").with_row_index("#code").with_columns(
        pl.col("#code").cast(pl.Int64))
    found = values.to_frame("v").join(known, on="v", how="left", maintain_order="left")["#code"]
    new = found.is_null()
    extra = values.filter(new)
    lut = found.to_numpy().copy() if not new.any() else found.fill_null(-1).to_numpy().copy()
    lut[new.to_numpy()] = np.arange(dictionary.len(), dictionary.len() + extra.len())
    return lut[local], pl.concat([dictionary, extra.rename(dictionary.name)])


def _start(events: pl.DataFrame, keys: np.ndarray, start: pl.DataFrame | None,
           checked: CheckedRules, texts: pl.Series) -> Start:
    """``start``'s rows for the keys of ``events``, addressed by their codes ``keys``."""
    fields = checked.fields
    if start is None or start.height == 0 or events.height == 0:
        return Start(np.zeros(0, np.int64),
                     {n: np.zeros(0, np.float64 if f.type == "float" else np.int64)
                      for n, f in fields.items()}, np.zeros(0, np.int64))
    names = list(checked.rules.key_columns)
    codes = events.select(names).with_columns(pl.Series("#code", keys)).unique(names)
    rows = start.join(codes, on=names, how="inner")
    if any(f.type == "string" for f in fields.values()):
        coded = texts.to_frame("#text").with_row_index("#tcode").with_columns(
            pl.col("#tcode").cast(pl.Int64))
        rows = rows.with_columns(
            rows.select(pl.col(n).cast(pl.String).fill_null("")).to_series().to_frame("#text")
            .join(coded, on="#text", how="left", maintain_order="left")["#tcode"].alias(n)
            for n, f in fields.items() if f.type == "string")
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


def _type_codes(column: pl.Series, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: ``i`` where the string is ``names[i]``, -1 for any other string or null.

    Also the rows of each code: ``counts[i + 1]`` of code ``i``, ``counts[0]`` of -1.

    Reads Polars' strings in place (Arrow's string-view layout, see
    :func:`eventkit.replay.kernels.type_codes`): no string is hashed or copied.
    """
    chunks = pa.chunked_array(column)  # Polars' own buffers, not a copy
    if chunks.type != pa.string_view() or sys.byteorder != "little":
        handled = {name: i for i, name in enumerate(names)}
        codes = column.replace_strict(handled, default=-1, return_dtype=pl.Int32).to_numpy()
        return codes, np.bincount(codes + 1, minlength=len(names) + 1)
    out = np.empty(column.len(), np.int32)
    counts = np.zeros(len(names) + 1, np.int64)
    table = _view_table(names)
    at = 0
    for chunk in chunks.chunks:
        _, views, *buffers = chunk.buffers()
        rows = np.frombuffer(views, np.int64).reshape(-1, 2)[chunk.offset:][:len(chunk)]
        # the data buffers one after the other (a few long strings; short ones are inline)
        data = np.frombuffer(b"".join(b"" if b is None else b.to_pybytes() for b in buffers),
                             np.uint8)
        starts = np.cumsum([0] + [0 if b is None else b.size for b in buffers], dtype=np.int64)
        part = out[at:at + len(chunk)]
        K.type_codes(rows, data, starts, table, part, counts)
        if chunk.null_count:  # (a null's view was read as some string: it is none)
            nulls = chunk.is_null().to_numpy(zero_copy_only=False)
            np.subtract.at(counts, part[nulls] + 1, 1)
            counts[0] += chunk.null_count
            part[nulls] = -1
        at += len(chunk)
    return out, counts


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


def _rate_table(shared: pl.DataFrame, checked: CheckedRules) -> tuple[np.ndarray, np.ndarray]:
    """The rate table: the rule set's own, else the rate events among its global events."""
    rules = checked.rules
    if rules.interest is None:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    if rules.rate_table is not None:
        table = pl.DataFrame(
            {"t": [t for t, _ in rules.rate_table], "rate": [r for _, r in rules.rate_table]},
            schema={"t": pl.Datetime("us", "UTC"), "rate": pl.Float64},
        )
    else:
        table = rate_events(shared, rules)
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
                 types: np.ndarray, start: Start, texts: pl.Series, original: pl.DataFrame
                 ) -> list[pl.Series]:
    """Each event's effect computed column-wise in Polars, then a compiled running fold.

    Per field, the distinct event-only expressions ("terms") are evaluated once
    each; a table says which term (and sign) each event type uses. ``events``
    are the inputs (:func:`_inputs`), ``original`` the events as they came (a
    fault names the event and key from them).
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
        exprs += [polars_expr(t, checked, field if field.type == "enum" else None,
                              text="codes").cast(term_dtype).alias(f"{target}#{j}")
                  for j, t in enumerate(terms)]
    # with_columns: a constant term (a literal) fills every row, as select would not. Lazy:
    # eager with_columns of Polars 2.1 keeps a length-1 column (a shape error) where a
    # comparison meets a when/then whose rows all took a literal, as in 0 < min(0, amount)
    columns = events.lazy().with_columns(exprs).select(
        e.meta.output_name() for e in exprs).collect()
    for target, (_, terms, term_of, _) in plans.items():  # null: cannot be computed exactly
        for j, node in enumerate(terms):
            column = columns[f"{target}#{j}"]
            if column.null_count():
                bad = column.is_null().to_numpy() & (types >= 0)
                bad[bad] = term_of[types[bad]] == j  # only where the event type uses it
                if bad.any():
                    raise term_fault(original, checked, target, int(np.argmax(bad)), node)
    out = []
    for name, field in checked.fields.items():
        dtype = np.float64 if field.type == "float" else np.int64
        # a checked int or float field starts at a number (only an enum's start is text)
        initial = (field.values.index(str(field.start)) if field.type == "enum"
                   else checked.strings.index(str(field.start)) if field.type == "string"
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
                raise sum_fault(original, checked, name, row, int(values[row]),
                                int(matrix[term_of[types[row]], row]), sign)
        else:  # untouched by every event: its start value, or the one carried over
            first = np.full(n_keys, initial, dtype)
            first[start.keys] = start.values[name]
            values = first[keys]
        out.append(_state_series(name, field, values, texts))
    return out


def _fold_program(events: pl.DataFrame, checked: CheckedRules,
                  visit: tuple[np.ndarray, np.ndarray], keys: np.ndarray, n_keys: int,
                  types: np.ndarray, times: np.ndarray, rate_times: np.ndarray,
                  rate_rates: np.ndarray, start: Start, texts: pl.Series, original: pl.DataFrame
                  ) -> list[pl.Series]:
    """One compiled pass of the rule program over the events (see module docstring).

    ``events`` are the inputs, ``original`` the events as they came (for faults).
    """
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
        raise program_fault(original, checked, program, err, errf)
    out = []
    for name, field in checked.fields.items():
        if field.type == "float":
            values = out_f[program.float_fields.index(name)]
        else:
            values = out_i[program.int_fields.index(name)]
        out.append(_state_series(name, field, values, texts))
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


def _state_series(name: str, field: Field, values: np.ndarray, texts: pl.Series
                  ) -> pl.Series:
    if field.type == "enum":
        names = pl.Series(name, field.values, dtype=pl.Enum(list(field.values)))
        return names.gather(values)
    if field.type == "string":
        return texts.gather(values).rename(name)
    return pl.Series(name, values)
