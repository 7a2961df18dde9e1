"""Interest-rate tables as data: read them, take them from an archive, build scenarios.

A rate table maps an effective instant to the annual rate in force from then
on (0.035 = 3.5 %). Pass one to a rule set with interest:
``rules.get("banking").with_params(rate_table=table)``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl

from eventkit._typing import Instant
from eventkit.exceptions import EventDataError, InstantError, SchemaError
from eventkit.rules import registry
from eventkit.rules.model import RuleSet
from eventkit.rules.streams import global_expr
from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import period_problem, to_instant

__all__ = ["RateTable", "bump_rates", "rate_events", "rates_of", "read_rates", "shift_rates"]

RateTable = dict[datetime, float]


def read_rates(path: str | Path, *, effective: str = "effective", rate: str = "rate"
               ) -> RateTable:
    """A rate table from a CSV or Parquet file with an effective-date and a rate column.

    Dates mean the start of that UTC day; instants need a zone. A bad value
    raises :class:`~eventkit.EventDataError` naming the file, row and column.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "rates.csv"
    >>> _ = f.write_text(chr(10).join(["effective,rate", "2024-01-01,0.02", "2024-07-01,0.035"]))
    >>> {t.isoformat(): r for t, r in read_rates(f).items()}
    {'2024-01-01T00:00:00+00:00': 0.02, '2024-07-01T00:00:00+00:00': 0.035}

    """
    source = str(path)
    try:
        frame = (pl.read_parquet(path) if Path(path).suffix == ".parquet"
                 else pl.read_csv(path, infer_schema=False))
    except (OSError, pl.exceptions.PolarsError) as exc:
        msg = f"cannot read rate table: {exc}"
        raise EventDataError(msg, source=source) from None
    for column in (effective, rate):
        if column not in frame.columns:
            msg = f"missing column {column!r} (columns: {frame.columns})"
            raise SchemaError(msg, source=source, column=column)
    table: RateTable = {}
    for row, (when, value) in enumerate(frame.select(effective, rate).iter_rows()):
        try:
            instant = to_instant(when if not isinstance(when, str) or "T" in when
                                 else date.fromisoformat(when), param=effective, day="start")
        except (InstantError, ValueError) as exc:
            raise EventDataError(str(exc), source=source, column=effective, row=row) from None
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if number != number or abs(number) == float("inf"):
            msg = f"not a finite rate: {value!r}"
            raise EventDataError(msg, source=source, column=rate, row=row)
        table[instant] = number
    return dict(sorted(table.items()))


def rate_events(events: pl.LazyFrame | pl.DataFrame, rules: RuleSet | str = "banking"
                ) -> pl.DataFrame:
    """The rate changes among the rule set's global events: ``t`` and ``rate``, in time order.

    They are the global events (see :class:`~eventkit.rules.model.GlobalEvents`;
    for the ``banking`` rules the bank's own, on account 0) of the interest's
    ``rate_event`` type that carry a rate. The one place that knows it: the
    engine reads them through here, :func:`rates_of` too.

    Examples
    --------
    >>> t = datetime(2024, 3, 1, tzinfo=UTC)
    >>> rate_events(pl.DataFrame({"account_id": [0, 7],
    ...     "event_type": ["InterestRateChanged"] * 2, "event_time": [t, t], "seq": [0, 1],
    ...     "rate": [0.03, 0.09]})).rows()
    [(datetime.datetime(2024, 3, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 0.03)]

    """
    ruleset = registry.resolve(rules)
    lf = events.lazy()
    schema = lf.collect_schema()
    if "rate" not in schema.names() or ruleset.interest is None:
        return pl.DataFrame(schema={"t": TIME_DTYPE, "rate": pl.Float64})
    return (lf.filter(global_expr(ruleset, schema)
                      & (pl.col("event_type") == ruleset.interest.rate_event)
                      & pl.col("rate").is_not_null())
            .sort("event_time", "seq")
            .select(pl.col("event_time").alias("t"), pl.col("rate").cast(pl.Float64))
            .collect())


def rates_of(events: pl.LazyFrame | pl.DataFrame, rules: RuleSet | str = "banking"
             ) -> RateTable:
    """The rate table in ``events``: the rule set's global rate events (see :func:`rate_events`).

    Examples
    --------
    >>> t = datetime(2024, 3, 1, tzinfo=UTC)
    >>> rates_of(pl.DataFrame({"account_id": [0, 7], "event_type": ["InterestRateChanged"] * 2,
    ...     "event_time": [t, t], "seq": [0, 1], "rate": [0.03, 0.09]})) == {t: 0.03}
    True

    """
    rows = rate_events(events, rules)
    return {t.astimezone(UTC): r for t, r in zip(rows["t"].to_list(), rows["rate"].to_list(),
                                                  strict=True)}


def shift_rates(table: RateTable, by: str, *, start: Instant | None = None,
                end: Instant | None = None) -> RateTable:
    """Move the rate changes effective in [``start``, ``end``] by a calendar offset.

    ``by`` is a Polars duration such as ``"-3mo"`` (three months earlier) or
    ``"10d"``: "what if the 2024 rise had come 3 months earlier" is
    ``shift_rates(table, "-3mo", start="2024-01-01", end="2024-12-31")``.

    Examples
    --------
    >>> table = {datetime(2023, 1, 1, tzinfo=UTC): 0.01, datetime(2024, 5, 1, tzinfo=UTC): 0.04}
    >>> [t.date().isoformat() for t in shift_rates(table, "-3mo", start="2024-01-01")]
    ['2023-01-01', '2024-02-01']

    """
    lo = None if start is None else to_instant(start, param="start", day="start")
    hi = None if end is None else to_instant(end, param="end")
    if (problem := period_problem(by, signed=True)) is not None:
        raise InstantError(problem, param="by")
    times = pl.Series(list(table), dtype=TIME_DTYPE)
    try:
        moved = times.dt.offset_by(by).to_list()
    except (pl.exceptions.PolarsError, OverflowError) as exc:
        msg = f"{by!r} moves a rate change out of the years 1..9999 ({type(exc).__name__})"
        raise InstantError(msg, param="by") from None
    out: RateTable = {}
    for (t, rate), new in zip(table.items(), moved, strict=True):  # a handful of entries
        inside = (lo is None or t >= lo) and (hi is None or t <= hi)
        out[new if inside else t] = rate
    return dict(sorted(out.items()))


def bump_rates(table: RateTable, points: float, *, start: Instant | None = None,
               end: Instant | None = None) -> RateTable:
    """Add ``points`` percentage points to the rate in force between ``start`` and ``end``.

    The one rate scenario by level, in **percentage points** (``points=0.5``
    turns 2 % into 2.5 %; the table itself holds fractions, 0.02). Both bounds
    are optional; outside the window the table is unchanged (entries are added
    at its edges). An empty table means 0 % from ``start``. Rates and points
    are added as the decimals they print as (3.75 % + 0.5 is 4.25 %, exactly
    the float ``0.0425``, not float addition's ``0.042499999999999996``).

    Examples
    --------
    >>> table = {datetime(2024, 1, 1, tzinfo=UTC): 0.0375}
    >>> {t.date().isoformat(): r for t, r in bump_rates(
    ...     table, 0.5, start="2024-03-01", end="2024-05-31").items()}
    {'2024-01-01': 0.0375, '2024-03-01': 0.0425, '2024-06-01': 0.0375}

    """
    def plus(rate: float) -> float:  # as decimals: 0.0375 + 0.005 is 0.0425, not 0.042499...96
        return float(Decimal(repr(float(rate))) + Decimal(repr(float(points))) / 100)

    lo = None if start is None else to_instant(start, param="start", day="start")
    hi = None if end is None else to_instant(end, param="end") + timedelta(microseconds=1)

    def in_force(t: datetime) -> float:
        before = [r for e, r in table.items() if e <= t]
        return before[-1] if before else 0.0

    out: RateTable = {}
    for t, rate in table.items():
        inside = (lo is None or t >= lo) and (hi is None or t < hi)
        out[t] = plus(rate) if inside else rate
    if lo is not None:
        out[lo] = plus(in_force(lo))
    if hi is not None:
        out[hi] = in_force(hi)
    return dict(sorted(out.items()))
