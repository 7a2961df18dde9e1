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
    CorruptionError,
    EventDataError,
    EventkitError,
    ImmutabilityError,
    IntegrityError,
    RuleError,
    ScaleError,
    SchemaError,
    SnapshotError,
    ValidationError,
)
from eventkit.ledger import VerifyReport
from eventkit.replay import ReplayResult, replay
from eventkit.scale import BucketedReplay
from eventkit.schema import CANONICAL_SCHEMA, EVENT_TYPES
from eventkit.snapshots import Snapshots, snapshot
from eventkit.sources import open_archive
from eventkit.timeutil import InstantError

__all__ = [
    "CANONICAL_SCHEMA",
    "EVENT_TYPES",
    "AppendConflictError",
    "AppendReceipt",
    "ArchiveError",
    "BucketedReplay",
    "ColumnMapping",
    "CorruptionError",
    "EventArchive",
    "EventDataError",
    "EventkitError",
    "ImmutabilityError",
    "InstantError",
    "IntegrityError",
    "ReplayResult",
    "RuleError",
    "ScaleError",
    "SchemaError",
    "SnapshotError",
    "Snapshots",
    "ValidationError",
    "VerifyReport",
    "open_archive",
    "replay",
    "snapshot",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = "eventkit"
del _name, _obj
