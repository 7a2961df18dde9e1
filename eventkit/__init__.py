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
    CorruptionError,
    EventDataError,
    EventkitError,
    ImmutabilityError,
    IntegrityError,
    ReportError,
    RuleError,
    SchemaError,
    ValidationError,
)
from eventkit.ledger import VerifyReport
from eventkit.replay import ReplayResult, replay
from eventkit.schema import CANONICAL_SCHEMA, EVENT_TYPES
from eventkit.sources import open_archive
from eventkit.timeutil import InstantError

#: Loaded on first use: the widgets and charts they need take seconds to import.
_LAZY = {"explorer": "eventkit.explore", "account_view": "eventkit.explore"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module 'eventkit' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "CANONICAL_SCHEMA",
    "EVENT_TYPES",
    "AppendConflictError",
    "AppendReceipt",
    "ArchiveError",
    "ColumnMapping",
    "CorruptionError",
    "EventArchive",
    "EventDataError",
    "EventkitError",
    "ImmutabilityError",
    "InstantError",
    "IntegrityError",
    "ReplayResult",
    "ReportError",
    "RuleError",
    "SchemaError",
    "ValidationError",
    "VerifyReport",
    "account_view",
    "explorer",
    "open_archive",
    "replay",
]

for _name in __all__:
    _obj = globals().get(_name)
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = "eventkit"
del _name, _obj
