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
    │   ├── ClockError          the clock stepped back before the archive's latest recorded_at
    │   ├── ExpiredError        a question about a time whose events were expired
    │   └── StorageError        the store holding it fails, refuses, or cannot append safely
    ├── PrivacyError            key store problems, refused erasures
    ├── RuleError               a rule set or rules file is wrong
    │   └── CoverageError       (``strict``) event types no rule handles, rules that never apply
    ├── ReplayError             a value cannot be computed exactly: Int64 overflow, NaN/∞
    ├── SnapshotError           a snapshot cannot be built or read
    ├── ViewError               a view in DuckDB or SQLite cannot be written or refreshed
    ├── IngestError             a broker or topic cannot be read or written
    ├── PatternError            a CEP pattern is malformed or cannot run on the events
    ├── CommandError            a command is refused by the account's current state
    ├── ScaleError              a bucket count, or a bucketed or Dask replay, is not possible
    ├── ReportError             a report run is misconfigured or a notebook failed
    └── WorkbenchError (ValueError)  a chart or the explorer cannot show what was asked

Warnings derive from :class:`EventkitWarning` (a ``UserWarning``)::

    EventkitWarning
    ├── CoverageWarning         event types no rule handles, rules that never apply
    └── DeadLetterWarning       rows refused by a load with on_error="dead-letter"

Errors that used to be ``ValueError`` still are (``ParameterError`` and
``WorkbenchError`` subclass it), so older ``except ValueError`` blocks keep working.

Errors of the parts eventkit stands on — the operating system (a full disk, a
file gone), Polars, DuckDB, SQLite, deltalake, Arrow, Kafka — never reach the
caller raw: public operations are wrapped (:func:`foreign_errors`) in the error
of their kind above, whose message names the operation and the cause and whose
``__cause__`` is the original.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from datetime import datetime
    from types import FrameType

__all__ = [
    "AppendConflictError",
    "ArchiveError",
    "ClockError",
    "CommandError",
    "CorruptionError",
    "CoverageError",
    "CoverageWarning",
    "DeadLetterWarning",
    "EventDataError",
    "EventkitError",
    "EventkitWarning",
    "ExpiredError",
    "ImmutabilityError",
    "IngestError",
    "InstantError",
    "IntegrityError",
    "ParameterError",
    "PatternError",
    "PrivacyError",
    "ReplayError",
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
    "foreign_errors",
    "is_foreign",
    "warn",
]


class EventkitError(Exception):
    """Base class of every error eventkit raises on purpose.

    Each one can be pickled (a Dask worker sends it back) and made again from its
    message alone, ``type(e)(*e.args)``, as Polars re-raises an error from inside an
    expression: the keyword arguments that say where are optional.
    """

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(cls: type[EventkitError], args: tuple[object, ...],
             state: dict[str, object]) -> EventkitError:
    """An unpickled error: its message and attributes as they were (``__init__`` not run)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


def _named(param: str | None, message: str) -> str:
    return message if param is None else f"{param}: {message}"


class ParameterError(EventkitError, ValueError):
    """An argument cannot be used: out of range, of the wrong type; ``param`` names it."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(_named(param, message))


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

    def __init__(self, message: str, *, path: str | None = None, expected: int | None = None,
                 actual: int | None = None) -> None:
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

    def __init__(self, message: str, *, path: str | None = None,
                 problems: list[str] | None = None) -> None:
        self.problems = [] if problems is None else problems
        super().__init__(message, path=path)


class ClockError(ArchiveError):
    """An append read a clock before the latest ``recorded_at`` the archive holds.

    Transaction time never runs backwards; ``clock`` and ``latest`` are the two
    instants. Nothing was written: fix the clock, or append with
    ``before_latest="clamp"``.
    """

    def __init__(self, message: str, *, path: str | None = None, clock: datetime | None = None,
                 latest: datetime | None = None) -> None:
        self.clock = clock
        self.latest = latest
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


class CoverageError(RuleError):
    """Event types no rule handles, or rules that cannot apply (``replay(..., strict=True)``).

    See :class:`CoverageWarning`, which is given instead without ``strict``.
    """


class EventkitWarning(UserWarning):
    """Base class of the warnings eventkit gives."""


class DeadLetterWarning(EventkitWarning):
    """A load with ``on_error="dead-letter"`` refused rows: how many, and the file they are in."""


class CoverageWarning(EventkitWarning):
    """Event types occur that no rule handles (nor ignores), or rules cannot apply.

    The message lists the unhandled types, the handled types that never
    occurred, and rules for types the archive does not declare.
    """
class ReplayError(EventkitError):
    """A replay met a value it cannot compute exactly: no answer rather than a wrong one.

    Integer arithmetic beyond Int64 (the rules' ``+ - * // %``, ``abs``, unary
    minus, a running sum, posted interest), or a NaN, infinite or out-of-range
    float that a rounding function or interest would turn into an integer.
    ``key``, ``event_id``, ``field`` and ``rule`` say where (``None`` when not
    known, e.g. for a constant); ``problem`` is the message without them.
    """

    def __init__(self, problem: str, *, key: object = None, event_id: str | None = None,
                 field: str | None = None, rule: str | None = None) -> None:
        self.problem = problem
        self.key = key
        self.event_id = event_id
        self.field = field
        self.rule = rule
        where = [f"{label} {value}" for label, value in
                 (("key", None if key is None else repr(key)),
                  ("event", None if event_id is None else repr(event_id)),
                  ("field", field), ("rule", rule)) if value is not None]
        super().__init__(f"{problem} ({', '.join(where)})" if where else problem)


class SnapshotError(EventkitError):
    """A snapshot cannot be built or read; ``param`` names the argument at fault."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(_named(param, message))


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

    def __init__(self, message: str, *, account_id: object = None) -> None:
        self.account_id = account_id
        super().__init__(message)


class ScaleError(EventkitError):
    """A bucket count, or a bucketed or Dask replay, is not possible; ``param`` names why."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(_named(param, message))


class ReportError(EventkitError):
    """A report's runs file is wrong, or notebooks failed; ``failures`` has one line each.

    Each line names the notebook, the cell and the error.
    """

    def __init__(self, message: str, *, failures: list[str] | None = None) -> None:
        self.failures = failures or []
        super().__init__(message)


class WorkbenchError(EventkitError, ValueError):
    """A chart or the explorer cannot show what was asked: nothing to draw, a closed explorer."""


#: The top-level modules whose exceptions eventkit wraps (``_internal``: deltalake's,
#: ``cimpl``: confluent-kafka's, ``pyo3_runtime``: a panic in Polars or deltalake).
_FOREIGN = frozenset({"polars", "_duckdb", "duckdb", "sqlite3", "_sqlite3", "_internal",
                      "deltalake", "pyarrow", "cimpl", "confluent_kafka", "pyo3_runtime"})
_P = ParamSpec("_P")
_R = TypeVar("_R")


def is_foreign(exc: BaseException) -> bool:
    """True for an error of the OS or of a library eventkit uses (not one of eventkit's own).

    >>> is_foreign(OSError(28, "No space left on device")), is_foreign(RuleError("x"))
    (True, False)
    """
    if isinstance(exc, EventkitError):
        return False
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _FOREIGN


def foreign_errors(error: Callable[[str], EventkitError], operation: str
                   ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a public operation: a foreign error escaping it becomes ``error(message)``.

    ``operation`` is formatted with the call's arguments (``"append to {0.path}"``)
    and leads the message, followed by the cause; the original is the new
    error's ``__cause__``. Eventkit's own errors and everything else pass.

    >>> @foreign_errors(ArchiveError, "read {0}")
    ... def read(path): return open(path).read()
    >>> read("/no/such/file")
    Traceback (most recent call last):
    ...
    eventkit.ArchiveError: read /no/such/file: FileNotFoundError: [Errno 2] No such file ...
    """
    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(function)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return function(*args, **kwargs)
            except BaseException as exc:
                if not is_foreign(exc):
                    raise
                try:
                    what = operation.format(*args, **kwargs)
                except (AttributeError, IndexError, KeyError):
                    what = operation
                msg = f"{what}: {type(exc).__name__}: {exc}"
                raise error(msg) from exc
        return wrapper
    return decorate


_PACKAGE = str(Path(__file__).resolve().parent) + "/"


def warn(message: str, category: type[Warning]) -> None:
    """Give ``message`` as a ``category`` warning shown at the caller's own line.

    The warning names the first line outside eventkit on the way up (the user's
    ``replay(...)`` or notebook cell), however deep inside eventkit it was found.
    """
    frame: FrameType | None = sys._getframe(0)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
