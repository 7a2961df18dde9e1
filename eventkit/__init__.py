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
    ExpiredError,
    ImmutabilityError,
    IngestError,
    IntegrityError,
    PatternError,
    PrivacyError,
    RuleError,
    SchemaError,
    SchemaVersionError,
    SnapshotError,
    StaleVersionError,
    ValidationError,
)
from eventkit.ingest import IngestSummary, ingest, produce
from eventkit.ledger import VerifyReport
from eventkit.lifecycle import CompactReport, StorageReport, compact, info
from eventkit.patterns import Detector, Pattern, Thresholds, builtin_alerts
from eventkit.privacy import KeyStore
from eventkit.replay import ReplayResult, replay
from eventkit.schema import CANONICAL_SCHEMA, EVENT_TYPES
from eventkit.snapshots import Snapshots, snapshot
from eventkit.sources import open_archive
from eventkit.timeutil import InstantError
from eventkit.views import materialize, refresh
from eventkit.whatif import Comparison, compare

__all__ = [
    "CANONICAL_SCHEMA",
    "Comparison",
    "EVENT_TYPES",
    "AppendConflictError",
    "AppendReceipt",
    "ArchiveError",
    "ColumnMapping",
    "CommandError",
    "CompactReport",
    "CorruptionError",
    "Detector",
    "EventArchive",
    "EventDataError",
    "EventkitError",
    "ExpiredError",
    "ImmutabilityError",
    "IngestError",
    "IngestSummary",
    "InstantError",
    "IntegrityError",
    "KeyStore",
    "Pattern",
    "PatternError",
    "PrivacyError",
    "ReplayResult",
    "RuleError",
    "SchemaError",
    "SchemaVersionError",
    "SnapshotError",
    "Snapshots",
    "StaleVersionError",
    "StorageReport",
    "Thresholds",
    "ValidationError",
    "VerifyReport",
    "builtin_alerts",
    "compact",
    "compare",
    "info",
    "ingest",
    "materialize",
    "open_archive",
    "produce",
    "refresh",
    "replay",
    "snapshot",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = "eventkit"
del _name, _obj
