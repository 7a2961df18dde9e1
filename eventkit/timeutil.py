"""Instants: every time eventkit takes is an aware UTC datetime, never a guess."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from eventkit._typing import Instant
from eventkit.exceptions import InstantError

__all__ = ["EPOCH", "from_micros", "is_date", "iso", "micros", "to_instant"]

#: The start of the Unix epoch, in UTC: instants are microseconds since then.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_instant(
    value: Instant,
    *,
    param: str,
    day: Literal["end", "start"] = "end",
) -> datetime:
    """Read an instant: an aware datetime, an ISO string with offset, or a date.

    A date (``2024-06-30`` or ``date(2024, 6, 30)``) means the *end* of that
    UTC day, so "balance as of 30 June" includes the events of 30 June; with
    ``day="start"`` it means its first instant (the start of a window, the day
    a rate takes effect). A datetime without a time zone is refused: eventkit
    never guesses one.

    Examples
    --------
    >>> to_instant("2024-06-30", param="as_of")
    datetime.datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc)
    >>> to_instant("2024-06-30", param="start", day="start")
    datetime.datetime(2024, 6, 30, 0, 0, tzinfo=datetime.timezone.utc)
    >>> to_instant("2024-06-30T12:00:00+02:00", param="as_of")
    datetime.datetime(2024, 6, 30, 10, 0, tzinfo=datetime.timezone.utc)
    >>> to_instant("2024-06-30T12:00:00", param="as_of")
    Traceback (most recent call last):
    ...
    eventkit.InstantError: as_of: '2024-06-30T12:00:00' has no time zone; ...

    """
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                value = date.fromisoformat(text)
            else:
                value = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            msg = f"{value!r} is not an ISO 8601 date or datetime"
            raise InstantError(msg, param=param) from None
        if isinstance(value, datetime) and value.tzinfo is None:
            msg = f"{text!r} has no time zone; add one (e.g. 'Z' or '+00:00')"
            raise InstantError(msg, param=param)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            msg = f"{value!r} has no time zone; eventkit never guesses one"
            raise InstantError(msg, param=param)
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.max if day == "end" else time.min, tzinfo=UTC)
    msg = f"expected a datetime, date or ISO string, not {type(value).__name__}"
    raise InstantError(msg, param=param)



def micros(instant: Instant, *, param: str, day: Literal["end", "start"] = "end") -> int:
    """An instant (as :func:`to_instant` reads it) in microseconds since 1970, exactly.

    Examples
    --------
    >>> micros("1970-01-02", param="at", day="start")
    86400000000
    >>> micros(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), param="at")
    1000000

    """
    return (to_instant(instant, param=param, day=day) - EPOCH) // _US


def from_micros(us: int) -> datetime:
    """Microseconds since 1970 as an aware UTC datetime (the inverse of :func:`micros`).

    Examples
    --------
    >>> from_micros(86_400_000_001).isoformat()
    '1970-01-02T00:00:00.000001+00:00'

    """
    return EPOCH + timedelta(microseconds=int(us))


def iso(us: int) -> str:
    """Microseconds since 1970 as ISO 8601 text (UTC), as commit records store instants.

    Examples
    --------
    >>> iso(0)
    '1970-01-01T00:00:00+00:00'

    """
    return from_micros(us).isoformat()


def is_date(value: object) -> bool:
    """True for a calendar date (a ``date`` or ``YYYY-MM-DD`` text), not an instant.

    Examples
    --------
    >>> is_date("2024-06-30"), is_date("2024-06-30T00:00:00Z"), is_date(datetime.now(UTC))
    (True, False, False)

    """
    if isinstance(value, str):
        return len(value.strip()) == len("YYYY-MM-DD")
    return isinstance(value, date) and not isinstance(value, datetime)
