"""Exceptions raised by eventkit.

Every error eventkit raises on purpose derives from :class:`EventkitError`, so
``except EventkitError`` catches them all. The tree::

    EventkitError
    ├── EventDataError          bad input events: says source, column and row
    │   ├── SchemaError         a column is missing, extra or of the wrong type
    │   └── ValidationError     a value is wrong: null key, NaN, duplicate id, ...
    ├── ArchiveError            the archive itself
    │   ├── ImmutabilityError   overwrite, delete or update of an append-only archive
    │   ├── AppendConflictError another writer committed first (retryable)
    │   ├── CorruptionError     a file cannot be read or does not match its hash
    │   └── IntegrityError      ``verify`` found the hash chain broken
    ├── RuleError               a rule set or rules file is wrong
    └── ReportError             a report run is misconfigured or a notebook failed
"""

from __future__ import annotations

__all__ = [
    "AppendConflictError",
    "ArchiveError",
    "CorruptionError",
    "EventDataError",
    "EventkitError",
    "ImmutabilityError",
    "IntegrityError",
    "ReportError",
    "RuleError",
    "SchemaError",
    "ValidationError",
]


class EventkitError(Exception):
    """Base class of every error eventkit raises on purpose."""


class EventDataError(EventkitError):
    """Input events are unusable; ``source``, ``column`` and ``row`` say where.

    ``row`` is the 0-based row number within ``source`` (a file or a batch) when
    it is known, else ``None``.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.column = column
        self.row = row
        where = [
            f"{label} {value}"
            for label, value in (("source", source), ("column", column), ("row", row))
            if value is not None
        ]
        super().__init__(f"{problem} ({', '.join(where)})" if where else problem)


class SchemaError(EventDataError):
    """A required column is missing, an unknown one is present, or a type is wrong."""


class ValidationError(EventDataError):
    """A value breaks a rule of the canonical schema (null key, NaN amount, ...)."""


class ArchiveError(EventkitError):
    """Something is wrong with an archive as a whole; ``path`` names it."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class ImmutabilityError(ArchiveError):
    """An operation would change or remove events already in an append-only archive."""


class AppendConflictError(ArchiveError):
    """Another writer committed at the same time; the append wrote nothing. Retry it."""


class CorruptionError(ArchiveError):
    """A file of the archive is unreadable or differs from the hash recorded for it.

    ``file`` names the damaged file.
    """

    def __init__(self, message: str, *, path: str | None = None, file: str | None = None) -> None:
        self.file = file
        super().__init__(message, path=path)


class IntegrityError(ArchiveError):
    """``verify`` found the archive's hash chain broken; ``problems`` lists what and where."""

    def __init__(self, message: str, *, path: str | None = None, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(message, path=path)


class RuleError(EventkitError):
    """A rule set is invalid; the message names the file, rule and expression."""


class ReportError(EventkitError):
    """A report's runs file is wrong, or notebooks failed; ``failures`` has one line each.

    Each line names the notebook, the cell and the error.
    """

    def __init__(self, message: str, *, failures: list[str] | None = None) -> None:
        self.failures = failures or []
        super().__init__(message)
