"""Value checks: the rules rows obey, and how frames are checked against them.

A :class:`Check` marks the rows that break one rule; :func:`canonical_checks`
are those every event table of a schema obeys; :func:`check` scans lazy frames
once and raises an :class:`~eventkit.exceptions.EventDataError` naming the file,
column and row of the first bad value (each frame carries :data:`SOURCE_COL`
and :data:`ROW_COL`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from eventkit.exceptions import SchemaError, ValidationError
from eventkit.schema import BANKING, MONEY_EVENT_TYPES, EventSchema
from eventkit.sources.unique import first_duplicate

__all__ = ["ROW_COL", "SOURCE_COL", "TIME_RANGE", "Check", "canonical_checks", "check",
           "raise_at_row"]

#: Helper columns carried next to the events while checking: file and row in it.
SOURCE_COL = "__source"
ROW_COL = "__row"
#: Instants of any kind fall in 1900 .. 2200 (the range the loaders hold epochs to): outside
#: it, a placeholder (such as 2262-04-11, the largest nanosecond time, or 9999-12-31) or a
#: wrong unit.
TIME_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


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
    schema: EventSchema = BANKING, *, event_types: tuple[str, ...] | None = None
) -> list[Check]:
    """The rules every event table of ``schema`` obeys (after it is conformed)."""
    return list(_checks(schema.non_null, "amount" in schema.money, event_types))


@functools.lru_cache(maxsize=64)
def _checks(non_null: tuple[str, ...], money: bool,  # noqa: FBT001
            event_types: tuple[str, ...] | None) -> tuple[Check, ...]:
    """The checks, made once per kind of table (building them took 2 ms of a small append)."""
    checks = [
        Check(col, "null value in a required column", pl.col(col).is_null())
        for col in non_null
    ]
    checks.append(Check("event_id", "duplicate event_id", pl.col("event_id").is_duplicated(),
                        pl.col("event_id"), unique=True))
    for col in ("event_time", "recorded_at"):
        checks.append(Check(col, f"{col} outside 1900-2200 (a placeholder date such as "
                            "2262-04-11 or 9999-12-31, or a wrong unit?)",
                            ~pl.col(col).is_between(*TIME_RANGE, closed="left"), pl.col(col)))
    if money:
        checks.append(Check("amount", "negative amount for a money event (amounts are "
                            "magnitudes; the event type gives the sign)",
                            pl.col("event_type").is_in(MONEY_EVENT_TYPES)
                            & (pl.col("amount") < 0), pl.col("amount"),
                            among=pl.col("amount") < 0))
    if event_types is not None:
        checks.append(Check("event_type", f"unknown event type (known: {list(event_types)})",
                            ~pl.col("event_type").is_in(event_types), pl.col("event_type")))
    return tuple(checks)


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
                        raise_at_row(lf, c, row, source)
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


def raise_at_row(lf: pl.LazyFrame, c: Check, row: int, source: str,
                 frame: pl.DataFrame | None = None) -> None:
    """Raise for ``c`` broken at scan position ``row`` of ``lf`` (value from ``frame`` if given)."""
    found = lf.select(pl.col(SOURCE_COL).alias("src"), pl.col(ROW_COL).cast(pl.Int64)
                      .alias("row")).slice(row, 1).collect().row(0, named=True)
    value = None
    if c.value is not None:
        at = frame.slice(row, 1).lazy() if frame is not None else lf.slice(row, 1)
        value = at.select(c.value.cast(pl.String)).collect().item()
    problem = c.problem if value is None else f"{c.problem}: {value!r}"
    raise ValidationError(problem, source=found["src"] or source, column=c.column,
                          row=found["row"])
