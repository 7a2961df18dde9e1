"""Turn users' event tables into the canonical schema, and check every value.

A :class:`ColumnMapping` says which of the user's columns holds each canonical
column and how to read it (money in major units such as ``-20.0``, epoch
seconds, ...). :func:`conform` applies it lazily; :func:`check` then scans the
result once and raises an :class:`~eventkit.exceptions.EventDataError` that
names the file, column and row of the first bad value. :meth:`Conformed.collect`
does the same while decoding the events once: it returns them, checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import polars as pl

from eventkit.exceptions import SchemaError, ValidationError
from eventkit.schema import CANONICAL_SCHEMA, MONEY_EVENT_TYPES, REQUIRED_COLUMNS, TIME_DTYPE
from eventkit.sources.unique import first_duplicate

__all__ = ["Check", "ColumnMapping", "Conformed", "check", "conform"]

#: Helper columns carried next to the events while checking: file and row in it.
SOURCE_COL = "__source"
ROW_COL = "__row"

TimeUnit = Literal["s", "ms", "us", "ns"]
_OPTIONS = ("amount_unit", "minor_digits", "time_unit", "assume_timezone")
#: The largest amount, in minor units, of one event (its magnitude). Sums of amounts are
#: checked by the replay (an overflow of Int64 is an error, never a wrap).
MAX_AMOUNT = 2**62
_MAX_MINOR_DIGITS = 18  # 10**18 minor units per unit still fits Int64
#: A plain decimal number, as text: sign, whole part, decimals (one of the two parts at least)
_DECIMAL_TEXT = r"^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$"
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

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(CANONICAL_SCHEMA))
        if unknown:
            msg = (
                f"mapping names unknown canonical column(s) {unknown}; "
                f"known: {list(CANONICAL_SCHEMA)}"
            )
            raise SchemaError(msg, column=unknown[0])
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
        options = {k: v for k, v in spec.items() if k in _OPTIONS}
        columns = {k: str(v) for k, v in spec.items() if k not in _OPTIONS}
        return cls(columns=columns, **options)

    def source_name(self, canonical: str) -> str:
        """The user's name for a canonical column."""
        return self.columns.get(canonical, canonical)


def conform(
    lf: pl.LazyFrame,
    mapping: ColumnMapping,
    *,
    source: str,
    keep_extra: bool = True,
    event_types: tuple[str, ...] | None = None,
    id_base: str | None = None,
) -> Conformed:
    """Map ``lf`` onto the canonical schema; return it with the checks to run.

    ``lf`` must carry :data:`SOURCE_COL` (file) and :data:`ROW_COL` (row within
    that file). The result has the canonical columns, then any extra columns of
    the user's (``keep_extra``), then the two helper columns. Values that cannot
    be converted become null here; the returned checks report them (and, with
    ``event_types``, any other event type). Derived event ids name the file
    relative to ``id_base`` (the folder opened).
    """
    schema = lf.collect_schema()
    present = {name for name in schema.names() if name not in (SOURCE_COL, ROW_COL)}

    def has(canonical: str) -> bool:
        return mapping.source_name(canonical) in present

    for required in ("account_id", "event_time", "amount"):
        if not has(required):
            _missing(required, mapping, present, source)
    for named in mapping.columns:  # a column the mapping names must exist
        if not has(named):
            _missing(named, mapping, present, source)

    exprs: dict[str, pl.Expr] = {}
    checks: list[Check] = []

    def raw(canonical: str) -> pl.Expr:
        return pl.col(mapping.source_name(canonical))

    def converted(canonical: str, expr: pl.Expr, what: str) -> None:
        exprs[canonical] = expr
        dtype = schema[mapping.source_name(canonical)]
        if dtype == CANONICAL_SCHEMA[canonical] or isinstance(dtype, pl.Datetime):
            return  # nothing to convert, or a conversion that cannot fail: nothing to check
        checks.append(
            Check(
                canonical,
                f"cannot convert {what}",
                raw(canonical).is_not_null() & expr.is_null(),
                raw(canonical),
            )
        )

    converted("account_id", _to_int(raw("account_id"), schema[mapping.source_name("account_id")]),
              "value to an integer account id")
    time_cols = [c for c in ("event_time", "recorded_at") if has(c)]
    for col in time_cols:
        dtype = schema[mapping.source_name(col)]
        converted(col, _to_time(raw(col), dtype, mapping, col, source),
                  "value to a timestamp (text needs a zone such as Z or +01:00, or "
                  "assume_timezone; epoch numbers must fall in 1900-2200 in time_unit)")
    if not has("recorded_at"):
        exprs["recorded_at"] = exprs["event_time"]

    amount, amount_checks = _to_minor_units(raw("amount"), schema[mapping.source_name("amount")],
                                            mapping, source)
    checks += amount_checks
    if has("event_type"):
        exprs["event_type"] = raw("event_type").cast(pl.String)
        exprs["amount"] = amount
    else:  # signed amounts: the sign says what happened
        exprs["event_type"] = pl.when(amount < 0).then(pl.lit("Withdrawal")).otherwise(
            pl.lit("Deposit"))
        exprs["amount"] = amount.abs()

    ids = None  # the user's ids, when integers: cheaper to check for duplicates
    if has("event_id"):
        exprs["event_id"] = raw("event_id").cast(pl.String)
        if schema[mapping.source_name("event_id")].is_integer():
            ids = raw("event_id")
    else:
        file_name = (pl.col(SOURCE_COL).str.strip_prefix(id_base.rstrip("/") + "/")
                     if id_base else pl.col(SOURCE_COL))
        exprs["event_id"] = pl.concat_str([file_name, pl.col(ROW_COL).cast(pl.String)],
                                          separator=":")
    if has("seq"):
        converted("seq", _to_int(raw("seq"), schema[mapping.source_name("seq")]),
                  "value to an integer seq")
    else:
        exprs["seq"] = pl.int_range(pl.len(), dtype=pl.Int64)
    for col in ("counterparty_id",):
        if has(col):
            converted(col, _to_int(raw(col), schema[mapping.source_name(col)]),
                      "value to an integer account id")
        else:
            exprs[col] = pl.lit(None, dtype=pl.Int64)
    if has("rate"):
        converted("rate", raw("rate").cast(pl.Float64, strict=False), "value to a float rate")
    else:
        exprs["rate"] = pl.lit(None, dtype=pl.Float64)

    used = {mapping.source_name(c) for c in CANONICAL_SCHEMA}
    extra = [n for n in schema.names() if n not in used and n not in (SOURCE_COL, ROW_COL)
             and n not in CANONICAL_SCHEMA] if keep_extra else []
    columns = [*[exprs[c].cast(dtype).alias(c) for c, dtype in CANONICAL_SCHEMA.items()],
               *[pl.col(e) for e in extra]]
    return Conformed(lf.select(*columns, SOURCE_COL, ROW_COL), lf, checks,
                     canonical_checks(event_types=event_types), columns, ids)


@dataclass(frozen=True)
class Conformed:
    """Events mapped onto the canonical schema, with the checks still to run.

    ``conversion_checks`` read the user's raw columns (in ``raw``);
    ``value_checks`` read the canonical ones (in ``events``). ``columns`` make
    the canonical columns (and the extra ones) of ``raw``; ``ids`` is the
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
        naming file, column and row; returns the canonical columns (and the
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
                    _raise_at_row(self.raw, c, int(frame[flag].arg_true()[0]), source)
            frame = frame.drop(flags)
            for c in self.value_checks:
                if c.unique and extra:  # the user's integer ids: equal texts, equal integers
                    c = replace(c, value=pl.col("#ids"))
                row = c.first_bad(frame)
                if row is not None:
                    _raise_at_row(self.raw, c, row, source, frame)
        except pl.exceptions.PolarsError as exc:
            msg = f"cannot read events: {exc}"
            raise SchemaError(msg, source=source) from None
        return frame.drop("#ids", strict=False)


@dataclass(frozen=True)
class Check:
    """One value rule: rows where ``bad`` is true break it; ``value`` is shown.

    ``unique``: the rule is that ``value`` never repeats (``bad`` marks the
    repeated rows, for per-row use; whole frames are checked by a sort, see
    :func:`~eventkit.sources.unique.first_duplicate`). ``among``: a cheaper
    condition that every bad row meets; a frame in memory is checked on those
    rows only.
    """

    column: str
    problem: str
    bad: pl.Expr
    value: pl.Expr | None = None
    unique: bool = False
    among: pl.Expr | None = None

    def first_bad(self, frame: pl.DataFrame) -> int | None:
        """The first row of ``frame`` (in memory) that breaks the rule, or ``None``."""
        if self.unique:
            return first_duplicate(frame.select(self.value).to_series())
        rows = None
        if self.among is not None:
            candidates = frame.select(self.among.fill_null(value=False)).to_series()
            if not candidates.any():
                return None
            rows = candidates.arg_true()
            frame = frame[rows]
        bad = frame.select(self.bad.fill_null(value=False)).to_series()
        if not bad.any():
            return None
        first = int(bad.arg_true()[0])
        return first if rows is None else int(rows[first])


def canonical_checks(
    *, event_types: tuple[str, ...] | None = None
) -> list[Check]:
    """The rules every canonical event table obeys (run after :func:`conform`)."""
    checks = [
        Check(col, "null value in a required column", pl.col(col).is_null())
        for col in REQUIRED_COLUMNS
    ]
    checks.append(Check("event_id", "duplicate event_id", pl.col("event_id").is_duplicated(),
                        pl.col("event_id"), unique=True))
    checks.append(Check("amount", "negative amount for a money event (amounts are magnitudes; "
                        "the event type gives the sign)",
                        pl.col("event_type").is_in(MONEY_EVENT_TYPES) & (pl.col("amount") < 0),
                        pl.col("amount"), among=pl.col("amount") < 0))
    if event_types is not None:
        checks.append(Check("event_type", f"unknown event type (known: {list(event_types)})",
                            ~pl.col("event_type").is_in(event_types), pl.col("event_type")))
    return checks


def check(frames: list[tuple[pl.LazyFrame, list[Check]]], *, source: str) -> None:
    """Scan the frames and raise for the first broken check.

    One pass computes, per check, whether any row breaks it; only when one
    does, a second pass finds where. Each frame carries :data:`SOURCE_COL`
    and :data:`ROW_COL`, so the error names the file, column and row. A
    ``unique`` check reads its column on its own (see
    :func:`~eventkit.sources.unique.first_duplicate`).
    """
    queries = [lf.select([(pl.lit(value=False) if c.unique else c.bad.fill_null(value=False))
                          .any().alias(str(i)) for i, c in enumerate(checks)] or [pl.len()])
               for lf, checks in frames]
    try:
        results = pl.collect_all(queries)
        for (lf, checks), result in zip(frames, results, strict=True):
            for i, c in enumerate(checks):
                if c.unique and c.value is not None:
                    row = first_duplicate(lf.select(c.value).collect().to_series())
                    if row is not None:
                        _raise_at_row(lf, c, row, source)
                elif result.item(0, i):
                    _raise_at(lf, c, source)
    except pl.exceptions.PolarsError as exc:
        msg = f"cannot read events: {exc}"
        raise SchemaError(msg, source=source) from None


def _raise_at(lf: pl.LazyFrame, c: Check, source: str) -> None:
    bad = c.bad.fill_null(value=False)
    value = c.value.filter(bad).first().cast(pl.String) if c.value is not None else pl.lit(None)
    found = lf.select(
        pl.col(SOURCE_COL).filter(bad).first().alias("src"),
        pl.col(ROW_COL).filter(bad).first().cast(pl.Int64).alias("row"),
        value.alias("val"),
    ).collect().row(0, named=True)
    problem = c.problem if found["val"] is None else f"{c.problem}: {found['val']!r}"
    raise ValidationError(problem, source=found["src"] or source, column=c.column,
                          row=found["row"])


def _raise_at_row(lf: pl.LazyFrame, c: Check, row: int, source: str,
                  frame: pl.DataFrame | None = None) -> None:
    """Raise for ``c`` broken at scan position ``row`` of ``lf``.

    ``lf`` carries the file and the row within it; the value comes from
    ``frame`` (the canonical columns in memory) when given, else from ``lf``.
    """
    found = lf.select(pl.col(SOURCE_COL).alias("src"), pl.col(ROW_COL).cast(pl.Int64)
                      .alias("row")).slice(row, 1).collect().row(0, named=True)
    value = None
    if c.value is not None:
        at = frame.slice(row, 1).lazy() if frame is not None else lf.slice(row, 1)
        value = at.select(c.value.cast(pl.String)).collect().item()
    problem = c.problem if value is None else f"{c.problem}: {value!r}"
    raise ValidationError(problem, source=found["src"] or source, column=c.column,
                          row=found["row"])


def _missing(canonical: str, mapping: ColumnMapping, present: set[str], source: str) -> None:
    wanted = mapping.source_name(canonical)
    hint = "" if wanted == canonical else f" (mapped from {wanted!r})"
    msg = (f"missing column {canonical!r}{hint}; the data has {sorted(present)}; "
           "pass mapping={...} to name the column")
    raise SchemaError(msg, source=source, column=canonical)


def _to_int(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Int64:
        return expr
    if dtype.is_float():
        whole = expr.is_finite() & (expr == expr.round(0))
        return pl.when(whole).then(expr).otherwise(None).cast(pl.Int64, strict=False)
    return expr.cast(pl.Int64, strict=False)


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
        return expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if dtype.is_integer() or dtype.is_float():
        if mapping.time_unit is None:
            msg = (f"column holds numbers ({dtype}); say their epoch unit with "
                   "time_unit='s' (or 'ms', 'us', 'ns') in the mapping")
            raise SchemaError(msg, source=source, column=column)
        per_us = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}[mapping.time_unit]
        raw = _to_int(expr, dtype)
        micros = raw // 1000 if mapping.time_unit == "ns" else raw * per_us
        lo, hi = (_EPOCH_RANGE_US[0] // per_us, _EPOCH_RANGE_US[1] // per_us) \
            if mapping.time_unit != "ns" else (_EPOCH_RANGE_US[0] * 1000, _EPOCH_RANGE_US[1] * 1000)
        plausible = raw.is_between(lo, hi)  # also keeps the multiplication from overflowing
        return pl.when(plausible).then(micros).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype == pl.String:
        has_zone = expr.str.contains(r"(?:[Zz]|[+-]\d{2}:?\d{2})$")
        aware = expr.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
        if mapping.assume_timezone is None:
            return pl.when(has_zone).then(aware)
        naive = (expr.str.to_datetime(time_unit="us", strict=False)
                 .dt.replace_time_zone(mapping.assume_timezone).dt.convert_time_zone("UTC"))
        return pl.when(has_zone).then(aware).otherwise(naive)
    msg = f"cannot read {dtype} as a timestamp"
    raise SchemaError(msg, source=source, column=column)


def _to_minor_units(
    expr: pl.Expr, dtype: pl.DataType, mapping: ColumnMapping, source: str
) -> tuple[pl.Expr, list[Check]]:
    """Amounts as Int64 minor units, exactly: the expression and the checks refusing the rest.

    Integers are scaled (major units) and bounded by :data:`MAX_AMOUNT`. A float
    stands for the decimal with at most ``minor_digits`` decimals within 4 ulps
    of it, if there is one: ``0.29`` is 29 cents, ``1e-10`` is refused. Decimals
    and text are read digit by digit: every decimal beyond ``minor_digits`` must
    be 0.
    """
    digits = mapping.minor_digits if mapping.amount_unit == "major" else 0
    scale = 10**digits
    too_large = f"amount too large (beyond {MAX_AMOUNT:,} minor units)"
    if dtype.is_integer():
        wide = expr.cast(pl.Int128)
        bad = (wide > MAX_AMOUNT // scale) | (wide < -(MAX_AMOUNT // scale))
        return pl.when(~bad).then(wide * scale).cast(pl.Int64), [
            Check("amount", too_large, bad, expr)]
    if dtype.is_float():
        value = expr.cast(pl.Float64)
        scaled = value * scale
        cents = scaled.round(0)
        # A float stands for the decimal within 4 ulps of it (a Float64's ~16 significant
        # digits, a Float32's ~7; 0.29 * 100 is 28.999999999999996): no absolute slack,
        # so 1e-10 is never 0 cents.
        bits = 24 if dtype == pl.Float32 else 53
        slack = (scaled.abs() * 2.0 ** (2 - bits)).clip(upper_bound=0.25)
        checks = [
            Check("amount", "amount is NaN or infinite", expr.is_nan() | expr.is_infinite(),
                  expr),
            Check("amount", "amount too large to be exact as a float (send integer minor "
                  "units or decimals)", scaled.abs() > 2**bits, expr),
            Check("amount", f"amount has more than {digits} decimals" if digits
                  else "amount in minor units is not a whole number",
                  (scaled - cents).abs() > slack, expr),
        ]
        return pl.when(value.is_finite()).then(cents).cast(pl.Int64, strict=False), checks
    if isinstance(dtype, pl.Decimal) or dtype == pl.String:
        return _decimal_text(expr if dtype == pl.String else expr.cast(pl.String), expr,
                             digits, too_large)
    msg = f"cannot read {dtype} as money"
    raise SchemaError(msg, source=source, column="amount")


def _decimal_text(text: pl.Expr, raw: pl.Expr, digits: int, too_large: str
                  ) -> tuple[pl.Expr, list[Check]]:
    """Plain decimal text (``-20.5``, ``+3``, ``.25``) as minor units, digit by digit."""
    parts = text.str.extract_groups(_DECIMAL_TEXT)
    sign, whole, decimals = (parts.struct.field(n) for n in ("1", "2", "3"))
    readable = sign.is_not_null() & text.str.contains(r"\d")  # matched, with a digit
    decimals = decimals.fill_null("")
    head = decimals.str.slice(0, digits).str.pad_end(digits, "0")  # the minor units' digits
    rest = decimals.str.slice(digits)
    units = pl.concat_str(whole, head).str.strip_chars_start("0")  # the amount, as digits
    long = units.str.len_chars() > 19  # beyond any UInt64
    magnitude = pl.when(units == "").then(pl.lit("0")).when(~long).then(units).cast(
        pl.UInt64, strict=False).cast(pl.Int128)
    big = long | (magnitude > MAX_AMOUNT)
    value = pl.when(sign == "-").then(pl.lit(0, dtype=pl.Int128) - magnitude).otherwise(magnitude)
    checks = [
        Check("amount", "cannot convert value to an amount (write a plain decimal such as "
              "-20.50)", raw.is_not_null() & ~readable.fill_null(value=False), raw),
        Check("amount", f"amount has more than {digits} decimals" if digits
              else "amount in minor units is not a whole number",
              readable & rest.str.contains("[1-9]"), raw),
        Check("amount", too_large, readable & big, raw),
    ]
    return pl.when(readable & ~big).then(value).cast(pl.Int64, strict=False), checks
