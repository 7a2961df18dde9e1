"""eventkit: an event-sourcing analytics workbench.

Load event archives into Polars, keep them append-only and tamper-evident,
and replay them into exact balances.

>>> import eventkit
>>> sorted(eventkit.__all__)[:3]
['AppendConflictError', 'AppendReceipt', 'ArchiveError']
"""

from __future__ import annotations

from eventkit.archive import AppendReceipt, EventArchive
from eventkit.conform import ColumnMapping
from eventkit.exceptions import (
    AppendConflictError,
    ArchiveError,
    CommandError,
    CorruptionError,
    EventDataError,
    EventkitError,
    ImmutabilityError,
    IngestError,
    IntegrityError,
    PatternError,
    RuleError,
    SchemaError,
    StaleVersionError,
    ValidationError,
)
from eventkit.ingest import IngestSummary, ingest, produce
from eventkit.ledger import VerifyReport
from eventkit.patterns import Detector, Pattern
from eventkit.replay import ReplayResult, replay
from eventkit.schema import CANONICAL_SCHEMA, EVENT_TYPES
from eventkit.sources import open_archive
from eventkit.timeutil import InstantError

__all__ = [
    "CANONICAL_SCHEMA",
    "EVENT_TYPES",
    "AppendConflictError",
    "AppendReceipt",
    "ArchiveError",
    "ColumnMapping",
    "CommandError",
    "CorruptionError",
    "Detector",
    "EventArchive",
    "EventDataError",
    "EventkitError",
    "ImmutabilityError",
    "IngestError",
    "IngestSummary",
    "InstantError",
    "IntegrityError",
    "Pattern",
    "PatternError",
    "ReplayResult",
    "RuleError",
    "SchemaError",
    "StaleVersionError",
    "ValidationError",
    "VerifyReport",
    "ingest",
    "open_archive",
    "produce",
    "replay",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = "eventkit"
del _name, _obj
