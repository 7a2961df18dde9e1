"""Instants: every time eventkit takes is an aware UTC datetime, never a guess."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from eventkit._typing import Instant
from eventkit.exceptions import InstantError

__all__ = ["EPOCH", "MAX_PERIOD_YEARS", "from_micros", "is_date", "iso", "micros", "micros_each",
           "period_micros", "period_problem", "to_instant"]

#: The start of the Unix epoch, in UTC: instants are microseconds since then.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: The longest calendar period eventkit takes (instants stay within Python's years 1..9999).
MAX_PERIOD_YEARS = 1_000
_PART = re.compile(r"(\d{1,12})(ns|us|ms|mo|s|m|h|d|w|q|y)")
#: Microseconds per unit, months and years at their shortest (the count of periods in a
#: span is then never under-estimated).
_UNIT_US = {"ns": 0.001, "us": 1, "ms": 1_000, "s": 10**6, "m": 60 * 10**6, "h": 3_600 * 10**6,
            "d": 86_400 * 10**6, "w": 7 * 86_400 * 10**6, "mo": 28 * 86_400 * 10**6,
            "q": 89 * 86_400 * 10**6, "y": 365 * 86_400 * 10**6}


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
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+05:00 is in year 0 in UTC
            msg = f"{value.isoformat()!r} is outside the years 1 to 9999 in UTC"
            raise InstantError(msg, param=param) from None
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


def micros_each(instants: Iterable[Instant], *, param: str) -> list[int]:
    """Each of several instants (as :func:`micros` reads them), in microseconds.

    One instant on its own (a string, date or datetime) is refused: it is not
    read character by character.

    Examples
    --------
    >>> micros_each(["1970-01-01", date(1970, 1, 2)], param="instants")
    [86399999999, 172799999999]
    >>> micros_each("1970-01-01", param="instants")
    Traceback (most recent call last):
    ...
    eventkit.InstantError: instants: expected a list of instants, not one: '1970-01-01'

    """
    if isinstance(instants, str | date) or not isinstance(instants, Iterable):
        msg = f"expected a list of instants, not one: {instants!r}"
        raise InstantError(msg, param=param)
    return [micros(v, param=param) for v in instants]


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


def period_micros(text: str) -> float | None:
    """The length of a calendar period such as ``"1mo"`` or ``"-1d12h"`` in microseconds.

    Months count as 28 days, quarters 89 and years 365 (their shortest). ``None``
    when ``text`` is not such a period.

    Examples
    --------
    >>> period_micros("1d12h") == 36 * 3600 * 10**6, period_micros("-1w"), period_micros("1x")
    (True, -604800000000.0, None)

    """
    if not isinstance(text, str):
        return None
    body = text.removeprefix("-")
    parts = _PART.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        return None
    length = float(sum(int(n) * _UNIT_US[u] for n, u in parts))
    return -length if text.startswith("-") else length


def period_problem(text: object, *, signed: bool = False) -> str | None:
    """Why ``text`` is not a usable calendar period (Polars' duration text), else None.

    A period is positive (``signed``: an offset, which may also be zero or start
    with ``-``) and at most :data:`MAX_PERIOD_YEARS` years long.

    Examples
    --------
    >>> period_problem("1mo") is None, period_problem("-3mo", signed=True) is None
    (True, True)
    >>> period_problem("10000y")
    "'10000y' is longer than 1,000 years"
    >>> period_problem("monthly")
    "'monthly' is not a calendar period such as '1mo', '1q', '7d' or '12h'"

    """
    length = period_micros(text) if isinstance(text, str) else None
    if length is None or (not signed and length <= 0):
        return f"{text!r} is not a calendar period such as '1mo', '1q', '7d' or '12h'"
    if abs(length) > MAX_PERIOD_YEARS * _UNIT_US["y"]:
        return f"{text!r} is longer than {MAX_PERIOD_YEARS:,} years"
    return None
