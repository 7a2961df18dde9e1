"""Instants: every time eventkit takes is an aware UTC datetime, never a guess."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Literal

from eventkit.exceptions import EventkitError

__all__ = ["InstantError", "to_instant"]


class InstantError(EventkitError, ValueError):
    """A time argument is naive, malformed or of the wrong type; ``param`` names it."""

    def __init__(self, message: str, *, param: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


def to_instant(
    value: datetime | date | str,
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

