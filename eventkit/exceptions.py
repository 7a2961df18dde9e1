"""Exceptions raised by eventkit.

Every error eventkit raises on purpose derives from :class:`EventkitError`, so
``except EventkitError`` catches them all. The tree::

    EventkitError
    ├── ParameterError (ValueError)  an argument cannot be used: ``param`` names it
    │   ├── InstantError        a time argument is naive, malformed or of the wrong type
    │   └── UsageError          a command-line option cannot be used
    ├── EventDataError          bad input events: says source, column and row
    │   ├── SchemaError         a column is missing, extra or of the wrong type
    │   │   └── SchemaVersionError  events of a schema version no upcaster reaches
    │   └── ValidationError     a value is wrong: null key, NaN, duplicate id, ...
    ├── ArchiveError            the archive itself
    │   ├── ImmutabilityError   overwrite, delete or update of an append-only archive
    │   ├── AppendConflictError another writer committed first (retryable)
    │   │   └── StaleVersionError   an append expected an older archive version
    │   ├── CorruptionError     a file cannot be read or does not match its hash
    │   ├── IntegrityError      ``verify`` found the hash chain broken
    │   ├── ExpiredError        a question about a time whose events were expired
    │   └── StorageError        the store holding it fails, refuses, or cannot append safely
    ├── PrivacyError            key store problems, refused erasures
    ├── RuleError               a rule set or rules file is wrong
    ├── SnapshotError           a snapshot cannot be built or read
    ├── ViewError               a view in DuckDB or SQLite cannot be written or refreshed
    ├── IngestError             a broker or topic cannot be read or written
    ├── PatternError            a CEP pattern is malformed or cannot run on the events
    ├── CommandError            a command is refused by the account's current state
    ├── ScaleError              a bucket count, or a bucketed or Dask replay, is not possible
    ├── ReportError             a report run is misconfigured or a notebook failed
    └── WorkbenchError (ValueError)  a chart or the explorer cannot show what was asked

Errors that used to be ``ValueError`` still are (``ParameterError`` and
``WorkbenchError`` subclass it), so older ``except ValueError`` blocks keep working.
"""

from __future__ import annotations

__all__ = [
    "AppendConflictError",
    "ArchiveError",
    "CommandError",
    "CorruptionError",
    "EventDataError",
    "EventkitError",
    "ExpiredError",
    "ImmutabilityError",
    "IngestError",
    "InstantError",
    "IntegrityError",
    "ParameterError",
    "PatternError",
    "PrivacyError",
    "ReportError",
    "RuleError",
    "ScaleError",
    "SchemaError",
    "SchemaVersionError",
    "SnapshotError",
    "StaleVersionError",
    "StorageError",
    "UsageError",
    "ValidationError",
    "ViewError",
    "WorkbenchError",
]


class EventkitError(Exception):
    """Base class of every error eventkit raises on purpose."""


class ParameterError(EventkitError, ValueError):
    """An argument cannot be used: out of range, of the wrong type; ``param`` names it."""

    def __init__(self, message: str, *, param: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


class InstantError(ParameterError):
    """A time argument is naive, malformed or of the wrong type; ``param`` names it."""


class UsageError(ParameterError):
    """A command-line option has a value that cannot be used; ``param`` names the option."""


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


class SchemaVersionError(SchemaError):
    """Events carry a schema version that no registered upcaster brings to the current one."""


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


class StaleVersionError(AppendConflictError):
    """An append with ``expected_version`` found the archive moved on; nothing was written.

    ``expected`` and ``actual`` are the versions. Re-read the state, re-check, retry.
    """

    def __init__(self, message: str, *, path: str | None = None, expected: int,
                 actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message, path=path)


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


class ExpiredError(ArchiveError):
    """The events a question needs were expired (see :func:`eventkit.replay.expire.expire`).

    ``cutoff`` is the expiry's cut-off (events dated before it were replaced by
    opening states); answers at or after it are unchanged.
    """

    def __init__(self, message: str, *, path: str | None = None,
                 cutoff: str | None = None) -> None:
        self.cutoff = cutoff
        super().__init__(message, path=path)


class StorageError(ArchiveError):
    """The store an archive lives in failed, refused, or cannot append safely.

    Network, credentials or permissions; or the store lacks what an operation
    needs (appends need atomic conditional writes). ``path`` names the archive
    or object; the store's own message is kept in the text.
    """


class PrivacyError(EventkitError):
    """A key store cannot be used, or an erasure or decryption was refused."""


class RuleError(EventkitError):
    """A rule set is invalid; the message names the file, rule and expression."""


class SnapshotError(EventkitError):
    """A snapshot cannot be built or read; ``param`` names the argument at fault."""

    def __init__(self, message: str, *, param: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


class ViewError(EventkitError):
    """A view cannot be written or refreshed; the message says which and why."""


class IngestError(EventkitError):
    """A broker cannot be reached, or a topic cannot be read or written; ``topic`` names it."""

    def __init__(self, message: str, *, topic: str | None = None) -> None:
        self.topic = topic
        super().__init__(message)


class PatternError(EventkitError):
    """A CEP pattern is malformed (a bad duration or count) or its events lack a column."""


class CommandError(EventkitError):
    """A command is refused: unknown or closed account, overdraft beyond the limit, ...

    ``account_id`` names the account.
    """

    def __init__(self, message: str, *, account_id: int | None = None) -> None:
        self.account_id = account_id
        super().__init__(message)


class ScaleError(EventkitError):
    """A bucket count, or a bucketed or Dask replay, is not possible; ``param`` names why."""

    def __init__(self, message: str, *, param: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


class ReportError(EventkitError):
    """A report's runs file is wrong, or notebooks failed; ``failures`` has one line each.

    Each line names the notebook, the cell and the error.
    """

    def __init__(self, message: str, *, failures: list[str] | None = None) -> None:
        self.failures = failures or []
        super().__init__(message)


class WorkbenchError(EventkitError, ValueError):
    """A chart or the explorer cannot show what was asked: nothing to draw, a closed explorer."""
