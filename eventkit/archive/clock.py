"""Transaction time: the archive's clock, and why ``recorded_at`` never runs backwards.

Every append reads the time from :func:`now` (the one place; tests replace it to
step the clock back). :func:`stamp` gives a batch its ``recorded_at``: the
clock's reading, or the batch's own times (``recorded_at="keep"``), and refuses
either when it lies before the latest ``recorded_at`` the archive holds — the
log is then in transaction-time order from commit to commit, so
``replay(known_at=t)`` can never report that the archive knew an event before
the events appended ahead of it. ``before_latest="clamp"`` (only where the
caller asks) moves such times up to the archive's latest instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, cast

import polars as pl

from eventkit.exceptions import ClockError, ParameterError, ValidationError
from eventkit.schema import CANONICAL_SCHEMA

__all__ = ["BeforeLatest", "now", "stamp"]

#: What an append does with a ``recorded_at`` before the archive's latest: refuse or clamp.
BeforeLatest = Literal["raise", "clamp"]
#: How far ahead of the clock a kept ``recorded_at`` may lie (clocks of hosts differ).
CLOCK_SKEW = timedelta(minutes=5)


def now() -> datetime:
    """The current time in UTC: what ``recorded_at="now"`` stamps (replaceable in tests).

    Examples
    --------
    >>> now().tzinfo
    datetime.timezone.utc

    """
    return datetime.now(UTC)


def stamp(rows: pl.DataFrame, *, mode: str, latest: str | None, before_latest: str,
          source: str, path: str) -> pl.DataFrame:
    """``rows`` with their ``recorded_at``: stamped now, or kept; never before ``latest``.

    ``latest`` is the archive's latest ``recorded_at`` (ISO text, from the last
    commit's record; ``None`` for an empty archive). Called under the writer
    lock, so no other append can move it meanwhile.

    Examples
    --------
    >>> rows = pl.DataFrame({"recorded_at": [datetime(2024, 1, 2, tzinfo=UTC)]})
    >>> stamp(rows, mode="keep", latest="2024-01-03T00:00:00+00:00", before_latest="clamp",
    ...       source="batch", path="bank")["recorded_at"].dt.day().to_list()
    [3]
    >>> stamp(rows, mode="keep", latest="2024-01-03T00:00:00+00:00", before_latest="raise",
    ...       source="batch", path="bank")
    Traceback (most recent call last):
    ...
    eventkit.ValidationError: recorded_at 2024-01-02T00:00:00+00:00 lies before ...

    """
    if before_latest not in ("raise", "clamp"):
        msg = f"must be 'raise' or 'clamp', not {before_latest!r}"
        raise ParameterError(msg, param="before_latest")
    clock = now()
    floor = None if latest is None else datetime.fromisoformat(latest)
    dtype = CANONICAL_SCHEMA["recorded_at"]
    if mode != "keep":
        if floor is not None and clock < floor:
            if before_latest == "raise":
                msg = (f"{path}: the clock reads {clock.isoformat()}, before the latest "
                       f"recorded_at {floor.isoformat()} the archive holds (the system clock "
                       "stepped back, or another writer's runs ahead); transaction time never "
                       "runs backwards: fix the clock, or append with before_latest='clamp' "
                       "to stamp the archive's latest instead")
                raise ClockError(msg, path=path, clock=clock, latest=floor)
            clock = floor
        return rows.with_columns(recorded_at=pl.lit(clock, dtype=dtype))
    kept = rows["recorded_at"]
    newest = cast("datetime", kept.max())  # Datetime, rows, no nulls
    if newest > clock + CLOCK_SKEW:
        row = _first(kept > clock + CLOCK_SKEW)
        msg = (f"recorded_at {newest.isoformat()} lies in the future (the clock reads "
               f"{clock.isoformat()})")
        raise ValidationError(msg, source=source, column="recorded_at", row=row)
    if floor is None or cast("datetime", kept.min()) >= floor:
        return rows
    if before_latest == "clamp":
        return rows.with_columns(pl.max_horizontal("recorded_at", pl.lit(floor, dtype=dtype))
                                 .alias("recorded_at"))
    row = _first(kept < floor)
    msg = (f"recorded_at {kept[row].isoformat()} lies before the latest recorded_at "
           f"{floor.isoformat()} the archive holds: transaction time never runs backwards "
           "(an archive cannot learn of an event before the events appended ahead of it); "
           "append such history before the newer events, or pass before_latest='clamp' to "
           "record it as learnt at the archive's latest time")
    raise ValidationError(msg, source=source, column="recorded_at", row=row)


def _first(mask: pl.Series) -> int:
    return int(cast("int", mask.arg_true()[0]))
