"""Turn users' event tables into the canonical schema, and check every value.

A :class:`ColumnMapping` says which of the user's columns holds each canonical
column and how to read it (money in major units such as ``-20.0``, epoch
seconds, ...). :func:`conform` applies it lazily; :meth:`Conformed.validate`
then scans the result once and raises an
:class:`~eventkit.exceptions.EventDataError` that names the file, column and
row of the first bad value (see :mod:`eventkit.sources.checks`).
:meth:`Conformed.collect` does the same while decoding the events once: it
returns them, checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl

from eventkit.exceptions import DeadLetterWarning, SchemaError, warn
from eventkit.schema import BANKING, TIME_DTYPE, EventSchema
from eventkit.sources.checks import (
    ROW_COL,
    SOURCE_COL,
    Check,
    canonical_checks,
    check,
    raise_at_row,
)
from eventkit.sources.money import float_is_decimal, to_minor_units

__all__ = ["ColumnMapping", "Conformed", "complete", "conform"]

TimeUnit = Literal["s", "ms", "us", "ns"]
_OPTIONS = ("amount_unit", "minor_digits", "time_unit", "assume_timezone", "types", "format")
#: What a dead letter says about its row (see :meth:`Conformed.dead_letters`).
_WHY = pl.Struct({"column": pl.String, "problem": pl.String, "value": pl.String})
_MAX_MINOR_DIGITS = 18  # 10**18 minor units per unit still fits Int64
#: Epoch timestamps must fall in 1900-01-01 .. 2200-01-01 (microseconds): anything
#: else is a wrong time_unit, not a date.
_EPOCH_RANGE_US = (-2_208_988_800_000_000, 7_258_118_400_000_000)


@dataclass(frozen=True)
class ColumnMapping:
    """How a user's table maps onto the canonical event schema.

    Parameters
    ----------
    columns
        Canonical column name -> the user's column name. Unnamed canonical
        columns are looked up under their own name.
    amount_unit
        ``"minor"``: amounts are whole minor units (cents). ``"major"``: amounts
        are currency units (``-20.0`` is minus twenty), converted exactly to
        cents; a value with more decimals than ``minor_digits`` is an error.
    minor_digits
        Decimal digits of the minor unit (2 for cents; 0 to 18).
    time_unit
        Unit of integer epoch timestamps (``"s"`` for ``1702468800``).
    assume_timezone
        Time zone for naive datetimes. Without it a naive datetime is an error:
        eventkit never guesses a zone.
    types
        For text files (CSV): the type of some of the user's columns, by the
        user's name (``{"timestamp": "int"}``); the others are read as text and
        converted to the schema's types, each value checked.
    format
        The file format when the path's suffix does not say it: ``"csv"``,
        ``"ndjson"`` or ``"parquet"``.

    Missing columns are derived, never invented silently:

    * no ``event_type``: a signed ``amount`` becomes ``Deposit`` (>= 0) or
      ``Withdrawal`` (< 0) of its magnitude;
    * no ``event_id``: ``"<file name>:<row>"``;
    * no ``seq``: the position in the scan (files in name order, then rows);
    * no ``recorded_at``: equal to ``event_time`` (nothing was recorded late);
    * no ``counterparty_id`` / ``rate``: null.

    Examples
    --------
    >>> m = ColumnMapping.parse(
    ...     {"account_id": "accountId", "event_time": "timestamp",
    ...      "amount_unit": "major", "time_unit": "s"})
    >>> m.source_name("account_id"), m.source_name("amount")
    ('accountId', 'amount')

    """

    columns: Mapping[str, str] = field(default_factory=dict)
    amount_unit: Literal["minor", "major"] = "minor"
    minor_digits: int = 2
    time_unit: TimeUnit | None = None
    assume_timezone: str | None = None
    types: Mapping[str, str] = field(default_factory=dict)
    format: Literal["csv", "ndjson", "parquet"] | None = None

    def check(self, schema: EventSchema = BANKING) -> None:
        """Every name the mapping gives a column must be one of ``schema``'s columns."""
        unknown = sorted(set(self.columns) - set(schema.columns))
        if unknown:
            msg = (f"mapping names unknown column(s) {unknown}; the schema's columns are "
                   f"{list(schema.columns)}")
            raise SchemaError(msg, column=unknown[0])

    def __post_init__(self) -> None:
        if self.format not in (None, "csv", "ndjson", "parquet"):
            msg = f"format must be 'csv', 'ndjson' or 'parquet', not {self.format!r}"
            raise SchemaError(msg)
        if self.amount_unit not in ("minor", "major"):
            msg = f"amount_unit must be 'minor' or 'major', not {self.amount_unit!r}"
            raise SchemaError(msg, column="amount")
        digits = self.minor_digits
        if isinstance(digits, bool) or not isinstance(digits, int) or not (
                0 <= digits <= _MAX_MINOR_DIGITS):
            msg = f"minor_digits must be an integer from 0 to {_MAX_MINOR_DIGITS}, not {digits!r}"
            raise SchemaError(msg, column="amount")
        if self.time_unit not in (None, "s", "ms", "us", "ns"):
            msg = f"time_unit must be one of s, ms, us, ns, not {self.time_unit!r}"
            raise SchemaError(msg, column="event_time")

    @classmethod
    def parse(cls, spec: ColumnMapping | Mapping[str, Any] | None) -> ColumnMapping:
        """Build a mapping from ``None``, a mapping, or a plain dict.

        A dict holds canonical-name -> user-name pairs plus, optionally, the
        option keys ``amount_unit``, ``minor_digits``, ``time_unit`` and
        ``assume_timezone`` (handy in JSON or TOML files).
        """
        if spec is None:
            return cls()
        if isinstance(spec, ColumnMapping):
            return spec
        if not isinstance(spec, Mapping):
            msg = (f"a mapping is a dict of your column names (and options), not "
                   f"{type(spec).__name__} {spec!r:.80}")
            raise SchemaError(msg)
        options = {k: v for k, v in spec.items() if k in _OPTIONS}
        columns = {k: str(v) for k, v in spec.items() if k not in _OPTIONS}
        if "types" in options and not isinstance(options["types"], Mapping):
            msg = "types must map the user's column names to types, such as {'ts': 'int'}"
            raise SchemaError(msg)
        return cls(columns=columns, **options)

    def source_name(self, canonical: str) -> str:
        """The user's name for a canonical column."""
        return self.columns.get(canonical, canonical)


def conform(
    lf: pl.LazyFrame,
    mapping: ColumnMapping,
    *,
    source: str,
    schema: EventSchema = BANKING,
    keep_extra: bool = True,
    event_types: tuple[str, ...] | None = None,
    id_base: str | None = None,
) -> Conformed:
    """Map ``lf`` onto ``schema`` (default: the banking schema); return it with the checks to run.

    ``lf`` must carry :data:`SOURCE_COL` (file) and :data:`ROW_COL` (row within
    that file). The result has the schema's columns, then any extra columns of
    the user's (``keep_extra``), then the two helper columns. Values that cannot
    be converted become null here; the returned checks report them (and, with
    ``event_types``, any other event type). Derived event ids name the file
    relative to ``id_base`` (the folder opened). Every column is converted to
    its declared type; text keys of a schema whose key is an integer stay text
    when the data's key is text (see :func:`key_types`).
    """
    mapping.check(schema)
    raw_schema = lf.collect_schema()
    present = {name for name in raw_schema.names() if name not in (SOURCE_COL, ROW_COL)}
    schema = key_types(schema, mapping, raw_schema)

    def has(column: str) -> bool:
        return mapping.source_name(column) in present

    derives_type = not has("event_type") and "amount" in schema.money
    for required in (*schema.key, "event_time", *schema.required,
                     *(() if derives_type else ("event_type",))):
        if not has(required):
            _missing(required, mapping, present, source)
    for named in mapping.columns:  # a column the mapping names must exist
        if not has(named):
            _missing(named, mapping, present, source)

    exprs: dict[str, pl.Expr] = {}
    checks: list[Check] = []

    def raw(column: str) -> pl.Expr:
        return pl.col(mapping.source_name(column))

    def converted(column: str, expr: pl.Expr, what: str) -> None:
        exprs[column] = expr
        dtype, target = raw_schema[mapping.source_name(column)], schema.columns[column]
        if dtype == target or (isinstance(dtype, pl.Datetime) and dtype.time_unit != "ns"
                               and target == TIME_DTYPE):
            return  # nothing to convert, or a conversion that cannot fail: nothing to check
        shown = raw(column)  # nested values are shown as JSON
        if dtype.is_nested():
            shown = pl.struct(shown.alias("v")).struct.json_encode().str.slice(5).str.head(-1)
        checks.append(Check(column, f"cannot convert {what}",
                            raw(column).is_not_null() & expr.is_null(), shown))

    for col in ("event_time", "recorded_at"):
        if has(col):
            dtype = raw_schema[mapping.source_name(col)]
            converted(col, _to_time(raw(col), dtype, mapping, col, source),
                      f"value to {_type_name(TIME_DTYPE)}")
    if not has("recorded_at"):
        exprs["recorded_at"] = exprs["event_time"]
    for col in schema.money:
        if has(col):
            value, money_checks = to_minor_units(raw(col), raw_schema[mapping.source_name(col)],
                                                  mapping, source, column=col)
            exprs[col] = value
            checks += money_checks
    if has("event_type"):
        exprs["event_type"] = raw("event_type").cast(pl.String)
    elif derives_type:  # signed amounts: the sign says what happened
        amount = exprs["amount"]
        exprs["event_type"] = pl.when(amount < 0).then(pl.lit("Withdrawal")).otherwise(
            pl.lit("Deposit"))
        exprs["amount"] = amount.abs()
    ids = None  # the user's ids, when integers: cheaper to check for duplicates
    if has("event_id"):
        exprs["event_id"] = raw("event_id").cast(pl.String)
        if raw_schema[mapping.source_name("event_id")].is_integer():
            ids = raw("event_id")
    else:
        file_name = (pl.col(SOURCE_COL).str.strip_prefix(id_base.rstrip("/") + "/")
                     if id_base else pl.col(SOURCE_COL))
        exprs["event_id"] = pl.concat_str([file_name, pl.col(ROW_COL).cast(pl.String)],
                                          separator=":")
    if has("seq"):
        converted("seq", _to_int(raw("seq"), raw_schema[mapping.source_name("seq")]),
                  "value to an integer seq")
    else:
        exprs["seq"] = pl.int_range(pl.len(), dtype=pl.Int64)
    for col, dtype in schema.columns.items():
        if col in exprs:
            continue
        if not has(col):
            exprs[col] = pl.lit(None, dtype=dtype)
            continue
        source_dtype = raw_schema[mapping.source_name(col)]
        what = f"value to {_type_name(dtype)}" + (" (a key)" if col in schema.key else "")
        converted(col, _to_type(raw(col), source_dtype, dtype, mapping, col, source), what)

    used = {mapping.source_name(c) for c in schema.columns}
    extra = [n for n in raw_schema.names() if n not in used and n not in (SOURCE_COL, ROW_COL)
             and n not in schema.columns] if keep_extra else []
    columns = [*[exprs[c].cast(dtype).alias(c) for c, dtype in schema.columns.items()],
               *[pl.col(e) for e in extra]]
    return Conformed(lf.select(*columns, SOURCE_COL, ROW_COL), lf, checks,
                     canonical_checks(schema, event_types=event_types), columns, ids)


def complete(lf: pl.LazyFrame, *, source: str = "events") -> pl.LazyFrame:
    """A frame of events as the engines read it: the core columns there, in their types.

    A frame passed to a replay (Polars, pandas, pyarrow) is taken as it is
    when ``event_id``, ``seq``, ``event_type``, ``event_time`` and
    ``recorded_at`` are there in their types: nothing is scanned. What is
    missing is derived as a file load derives it (``seq``: the row order;
    ``event_id``: ``row:<n>``; ``recorded_at``: the event time); an
    ``event_time`` of another type is read as a file's would be (text with a
    zone); what cannot be (a naive time, epoch numbers without a unit, no
    ``event_time`` or ``event_type`` at all) raises a
    :class:`~eventkit.exceptions.SchemaError` naming the column.

    Examples
    --------
    >>> frame = pl.LazyFrame({"account_id": [1], "event_type": ["Deposit"], "amount": [5],
    ...                       "event_time": ["2024-01-01T00:00:00Z"]})
    >>> complete(frame).collect().select("event_id", "seq", "event_time").row(0)
    ('row:0', 0, datetime.datetime(2024, 1, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')))

    """
    try:
        schema = lf.collect_schema()
    except pl.exceptions.PolarsError as exc:
        msg = f"cannot read the events: {str(exc).strip().splitlines()[0]}"
        raise SchemaError(msg, source=source) from None
    for required in ("event_time", "event_type"):
        if required not in schema.names():
            msg = (f"missing column {required!r}; the events have {schema.names()} (rename "
                   "the column, or open the data with open_archive(..., mapping=...))")
            raise SchemaError(msg, source=source, column=required)
    exprs: list[pl.Expr] = []
    if schema["event_time"] != TIME_DTYPE:
        exprs.append(_to_time(pl.col("event_time"), schema["event_time"], ColumnMapping(),
                              "event_time", source).alias("event_time"))
    if "recorded_at" not in schema.names():
        exprs.append(pl.col("event_time").alias("recorded_at") if not exprs
                     else exprs[0].alias("recorded_at"))
    elif schema["recorded_at"] != TIME_DTYPE:
        exprs.append(_to_time(pl.col("recorded_at"), schema["recorded_at"], ColumnMapping(),
                              "recorded_at", source).alias("recorded_at"))
    if "seq" not in schema.names():
        exprs.append(pl.int_range(pl.len(), dtype=pl.Int64).alias("seq"))
    elif schema["seq"] != pl.Int64:
        exprs.append(_to_int(pl.col("seq"), schema["seq"]).alias("seq"))
    if "event_id" not in schema.names():
        exprs.append(pl.format("row:{}", pl.int_range(pl.len())).alias("event_id"))
    elif schema["event_id"] != pl.String:
        exprs.append(pl.col("event_id").cast(pl.String))
    if schema["event_type"] != pl.String:
        exprs.append(pl.col("event_type").cast(pl.String))
    return lf.with_columns(exprs) if exprs else lf


def key_types(schema: EventSchema, mapping: ColumnMapping, raw: pl.Schema) -> EventSchema:
    """``schema`` with integer id columns read as text where the data's ids are text.

    Account ids such as ``"C1231006815"`` or UUIDs are keys as good as
    integers: with a schema that allows it (``text_ids``, as the banking schema
    does for foreign data), a text ``account_id`` (and ``counterparty_id``)
    column stays text instead of being refused.

    Examples
    --------
    >>> typed = key_types(BANKING, ColumnMapping(), pl.Schema({"account_id": pl.String}))
    >>> typed.columns["account_id"], typed.columns["counterparty_id"]
    (String, Int64)

    """
    ids = (*schema.key, *(("counterparty_id",) if "counterparty_id" in schema.columns else ()))
    text = {c: pl.String() for c in ids if schema.columns[c].is_integer()
            and mapping.source_name(c) in raw.names()
            and raw[mapping.source_name(c)] in (pl.String, pl.Categorical)}
    if not schema.text_ids or not text:
        return schema
    return replace(schema, columns={c: text.get(c, t) for c, t in schema.columns.items()})


def _type_name(dtype: pl.DataType) -> str:
    if dtype == pl.Int64:
        return "an integer"
    if dtype.is_integer():  # a narrower one: say which
        return f"an integer of {dtype} (a whole number in its range)"
    if dtype == TIME_DTYPE:
        return ("a timestamp (text needs a zone such as Z or +01:00, or assume_timezone; epoch "
                "numbers must fall in 1900-2200 in time_unit; eventkit keeps microseconds: "
                "truncate nanoseconds first, .dt.truncate('1us'), if they may go)")
    return f"{dtype}"


def _to_type(expr: pl.Expr, dtype: pl.DataType, target: pl.DataType, mapping: ColumnMapping,
             column: str, source: str) -> pl.Expr:
    """``expr`` (of the user's ``dtype``) as ``target``; null where it cannot be, exactly."""
    if target == dtype:
        return expr
    if target.is_integer():
        return _to_int(expr, dtype, target)
    if target == TIME_DTYPE:
        return _to_time(expr, dtype, mapping, column, source)
    if target == pl.String:
        if dtype.is_nested():
            return pl.lit(None, pl.String)
        return expr.cast(pl.String, strict=False)
    if target == pl.Boolean and dtype == pl.String:
        text = expr.str.strip_chars().str.to_lowercase()
        return (pl.when(text.is_in(["true", "1", "yes"])).then(pl.lit(value=True))
                .when(text.is_in(["false", "0", "no"])).then(pl.lit(value=False)))
    if target == pl.Boolean and dtype.is_integer():
        return pl.when(expr.is_in([0, 1])).then(expr == 1)
    if target == pl.Date and dtype == pl.String:
        return expr.str.to_date(strict=False)
    if target.is_float() and dtype == pl.String:
        return expr.str.strip_chars().cast(target, strict=False)
    if target.is_nested() and not dtype.is_nested():
        msg = (f"column holds {dtype} values; expected {target} (nested values come from "
               "Parquet, NDJSON or a frame, not from text)")
        raise SchemaError(msg, source=source, column=column)
    if isinstance(target, pl.Decimal) and (dtype == pl.String or dtype.is_float()):
        return _to_decimal(expr, dtype, target)
    value = expr.cast(target, strict=False)
    if target.is_float():  # a float column holds the nearest float
        return value
    # anything else must come back as it was: no decimals cut off, no time of day dropped
    # from a date, no struct field or list item lost (null where it would be)
    return pl.when(value.cast(dtype, strict=False) == expr).then(value)


def _to_decimal(expr: pl.Expr, dtype: pl.DataType, target: pl.Decimal) -> pl.Expr:
    """Text or floats as ``target``; null where a digit beyond its scale would be lost.

    Text must be a plain decimal (``-20.50``, ``.25``; not ``1e-5``); a float
    stands for the decimal with at most ``scale`` decimals within 4 ulps of it
    (as amounts do, see :func:`~eventkit.sources.money.to_minor_units`).
    """
    scale = target.scale or 0
    if dtype == pl.String:
        parts = expr.str.extract_groups(r"^\s*[+-]?\d*(?:\.(\d*))?\s*$").struct.field("1")
        plain = expr.str.contains(r"^\s*[+-]?\d*(?:\.\d*)?\s*$") & expr.str.contains(r"\d")
        exact = plain & ~parts.fill_null("").str.slice(scale).str.contains("[1-9]")
        return pl.when(exact).then(expr.str.strip_chars().cast(target, strict=False))
    return pl.when(float_is_decimal(expr, dtype, scale)).then(expr.cast(target, strict=False))


@dataclass(frozen=True)
class Conformed:
    """Events mapped onto the canonical schema, with the checks still to run.

    ``conversion_checks`` read the user's raw columns (in ``raw``);
    ``value_checks`` read the canonical ones (in ``events``). ``columns`` make
    the schema's columns (and the extra ones) of ``raw``; ``ids`` is the
    user's event id column when it holds integers (checked for duplicates as
    such: distinct integers have distinct texts).
    """

    events: pl.LazyFrame
    raw: pl.LazyFrame
    conversion_checks: list[Check]
    value_checks: list[Check]
    columns: list[pl.Expr] = field(default_factory=list)
    ids: pl.Expr | None = None

    def validate(self, *, source: str) -> None:
        """Scan once and raise for the first broken check (see :func:`check`)."""
        check([(self.raw, self.conversion_checks), (self.events, self.value_checks)],
              source=source)

    def collect(self, *, source: str) -> pl.DataFrame:
        """The events, decoded once and checked: what :meth:`validate` checks, in memory.

        One pass reads the user's columns, converts them and marks the rows
        each conversion check finds bad; the value checks then run on the
        frame in memory (duplicate ids by :func:`~eventkit.sources.unique.first_duplicate`).
        Raises for the first broken check, in the order of :meth:`validate`,
        naming file, column and row; returns the schema's columns (and the
        extra ones), without the helper columns.
        """
        flags = [f"#bad{i}" for i in range(len(self.conversion_checks))]
        extra = [] if self.ids is None else [self.ids.alias("#ids")]
        try:
            frame = self.raw.select(
                *self.columns, *extra,
                *[c.bad.fill_null(value=False).alias(f)
                  for f, c in zip(flags, self.conversion_checks, strict=True)]).collect()
            for flag, c in zip(flags, self.conversion_checks, strict=True):
                if frame[flag].any():
                    raise_at_row(self.raw, c, int(frame[flag].arg_true()[0]), source)
            frame = frame.drop(flags)
            # one query says which checks any row may break (a small append ran one per check)
            probes = [pl.lit(value=True) if c.unique else  # (duplicates: found by a sort)
                      (c.bad if c.among is None else c.among).fill_null(value=False).any()
                      for c in self.value_checks]
            maybe = frame.select([p.alias(str(i)) for i, p in enumerate(probes)]
                                 or [pl.lit(value=True)]).row(0)
            for c, suspect in zip(self.value_checks, maybe, strict=False):
                if not suspect:
                    continue
                if c.unique and extra:  # the user's integer ids: equal texts, equal integers
                    c = replace(c, value=pl.col("#ids"))
                row = c.first_bad(frame)
                if row is not None:
                    raise_at_row(self.raw, c, row, source, frame)
        except pl.exceptions.PolarsError as exc:
            msg = f"cannot read events: {exc}"
            raise SchemaError(msg, source=source) from None
        return frame.drop("#ids", strict=False)

    def dead_letters(self, *, source: str, into: Path) -> pl.DataFrame:
        """The good events; the bad rows go to a Parquet file ``into``, each with its problem.

        Row by row instead of all or nothing: a row breaking any check (the
        first one it breaks is its ``problem``, with ``column`` and ``value``)
        is written to ``into`` with its own columns as the user's file had them,
        its ``source`` file and ``row``; of rows sharing an ``event_id``, the
        first is kept. A :class:`~eventkit.exceptions.DeadLetterWarning` says
        how many rows went where (never silently dropped). Collects the events.
        """
        def reasons(checks: list[Check]) -> pl.Expr:
            found: list[pl.Expr] = [pl.when(c.bad.fill_null(value=False)).then(pl.struct(
                column=pl.lit(c.column), problem=pl.lit(c.problem),
                value=(c.value if c.value is not None else pl.lit(None)).cast(pl.String)))
                for c in checks if not c.unique]
            return pl.coalesce(found or [pl.lit(None, _WHY)]).cast(_WHY).alias("#why")
        try:
            raw, events = pl.collect_all([
                self.raw.with_columns(reasons(self.conversion_checks)),
                self.events.with_columns(reasons(self.value_checks))])
        except pl.exceptions.PolarsError as exc:
            msg = f"cannot read events: {exc}"
            raise SchemaError(msg, source=source) from None
        first = pl.coalesce(pl.lit(raw["#why"]), pl.lit(events["#why"]))
        repeated = first.is_null() & ~pl.lit(events["event_id"]).is_first_distinct()
        why = pl.select(pl.when(repeated).then(pl.struct(
            column=pl.lit("event_id"), problem=pl.lit("duplicate event_id"),
            value=pl.lit(events["event_id"]))).otherwise(first)).to_series()
        bad = why.is_not_null()
        if bad.any():
            letters = raw.filter(bad).drop("#why").with_columns(
                why.filter(bad).struct.unnest()).rename(
                {SOURCE_COL: "source", ROW_COL: "row"}, strict=False)
            into.parent.mkdir(parents=True, exist_ok=True)
            letters.write_parquet(into)
            msg = (f"{letters.height:,} of {raw.height:,} rows refused, written with their "
                   f"problem to {into}")
            warn(msg, DeadLetterWarning)
        return events.filter(~bad).drop("#why", SOURCE_COL, ROW_COL)


def _missing(canonical: str, mapping: ColumnMapping, present: set[str], source: str) -> None:
    wanted = mapping.source_name(canonical)
    hint = "" if wanted == canonical else f" (mapped from {wanted!r})"
    msg = (f"missing column {canonical!r}{hint}; the data has {sorted(present)}; "
           "pass mapping={...} to name the column")
    raise SchemaError(msg, source=source, column=canonical)


def _to_int(expr: pl.Expr, dtype: pl.DataType, target: pl.DataType | None = None) -> pl.Expr:
    """``expr`` as integers of ``target`` (Int64); null where one is no whole number in range."""
    target = pl.Int64() if target is None else target
    if dtype == target:
        return expr
    if dtype.is_float():
        whole = expr.is_finite() & (expr == expr.round(0))
        return pl.when(whole).then(expr).otherwise(None).cast(target, strict=False)
    return expr.cast(target, strict=False)


def _to_time(
    expr: pl.Expr, dtype: pl.DataType, mapping: ColumnMapping, column: str, source: str
) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        if dtype == TIME_DTYPE:
            return expr
        if dtype.time_zone is None:
            if mapping.assume_timezone is None:
                msg = ("timestamps without a time zone; eventkit never guesses one: "
                       "pass assume_timezone='UTC' (or the right zone) in the mapping")
                raise SchemaError(msg, source=source, column=column)
            expr = expr.dt.replace_time_zone(mapping.assume_timezone)
        micros = expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        if dtype.time_unit == "ns":  # (the cast would cut nanoseconds off: null, refused)
            return pl.when(expr.dt.nanosecond() % 1000 == 0).then(micros)
        return micros
    if dtype.is_integer() or dtype.is_float():
        if mapping.time_unit is None:
            msg = (f"column holds numbers ({dtype}); say their epoch unit with "
                   "time_unit='s' (or 'ms', 'us', 'ns') in the mapping")
            raise SchemaError(msg, source=source, column=column)
        per_us = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}[mapping.time_unit]
        raw = _to_int(expr, dtype)
        micros = pl.when(raw % 1000 == 0).then(raw // 1000) if mapping.time_unit == "ns" \
            else raw * per_us  # (nanoseconds that would be cut off: null, refused)
        lo, hi = (_EPOCH_RANGE_US[0] // per_us, _EPOCH_RANGE_US[1] // per_us) \
            if mapping.time_unit != "ns" else (_EPOCH_RANGE_US[0] * 1000, _EPOCH_RANGE_US[1] * 1000)
        plausible = raw.is_between(lo, hi)  # also keeps the multiplication from overflowing
        return pl.when(plausible).then(micros).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype == pl.String and mapping.time_unit is not None:  # epoch numbers, as text (CSV)
        return _to_time(expr.str.strip_chars().cast(pl.Int64, strict=False), pl.Int64(),
                        mapping, column, source)
    if dtype == pl.String:
        cut = expr.str.contains(r"\.\d{6}\d*[1-9]")  # a digit beyond the microseconds, not 0
        has_zone = expr.str.contains(r"(?:[Zz]|[+-]\d{2}:?\d{2})$")
        aware = expr.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
        if mapping.assume_timezone is None:
            return pl.when(has_zone & ~cut).then(aware)
        naive = (expr.str.to_datetime(time_unit="us", strict=False)
                 .dt.replace_time_zone(mapping.assume_timezone).dt.convert_time_zone("UTC"))
        return pl.when(cut).then(None).when(has_zone).then(aware).otherwise(naive)
    msg = f"cannot read {dtype} as a timestamp"
    raise SchemaError(msg, source=source, column=column)
