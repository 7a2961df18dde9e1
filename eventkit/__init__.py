"""eventkit: an event-sourcing analytics workbench.

Load event archives into Polars, keep them append-only and tamper-evident,
and replay them into exact balances.

>>> import eventkit
>>> sorted(eventkit.__all__)[:3]
['AppendConflictError', 'AppendReceipt', 'ArchiveError']
"""

from __future__ import annotations

import importlib

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
    ReportError,
    RuleError,
    ScaleError,
    SchemaError,
    SchemaVersionError,
    SnapshotError,
    StaleVersionError,
    ValidationError,
)
from eventkit.incremental import LiveReplay
from eventkit.ingest import IngestSummary, ingest, produce
from eventkit.ledger import VerifyReport
from eventkit.lifecycle import CompactReport, StorageReport, compact, info
from eventkit.patterns import Detector, Pattern, Thresholds, builtin_alerts
from eventkit.privacy import KeyStore
from eventkit.replay import ReplayResult, replay
from eventkit.scale import BucketedReplay
from eventkit.schema import CANONICAL_SCHEMA, EVENT_TYPES
from eventkit.snapshots import Snapshots, snapshot
from eventkit.sources import open_archive
from eventkit.timeutil import InstantError
from eventkit.upcast import Upcaster, Upcasters
from eventkit.views import materialize, refresh
from eventkit.whatif import Comparison, compare

#: Loaded on first use: the widgets and charts they need take seconds to import.
_LAZY = {"explorer": "eventkit.explore", "account_view": "eventkit.explore"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module 'eventkit' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "CANONICAL_SCHEMA",
    "Comparison",
    "EVENT_TYPES",
    "AppendConflictError",
    "AppendReceipt",
    "ArchiveError",
    "BucketedReplay",
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
    "LiveReplay",
    "Pattern",
    "PatternError",
    "PrivacyError",
    "ReplayResult",
    "ReportError",
    "RuleError",
    "ScaleError",
    "SchemaError",
    "SchemaVersionError",
    "SnapshotError",
    "Snapshots",
    "StaleVersionError",
    "StorageReport",
    "Thresholds",
    "Upcaster",
    "Upcasters",
    "ValidationError",
    "VerifyReport",
    "account_view",
    "builtin_alerts",
    "compact",
    "compare",
    "explorer",
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
    _obj = globals().get(_name)
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = "eventkit"
del _name, _obj
