"""eventkit: an event-sourcing analytics workbench.

Load event archives into Polars, keep them append-only and tamper-evident,
replay them through folding rules into exact histories and state, ask
temporal and what-if questions, and explain any value.

The package is a house of stages, each knowing only those below it::

    workbench/   charts, explorer, reports, CLI, lab        (loaded on first use)
    banking/     the synthetic bank, pattern injection, commands  (a domain wing)
    streams/     Kafka ingest and produce
    questions/   restatements, what-if, explain, patterns, views
    replay/      replay(), snapshot(), the engines, live replay, expiry
    rules/       RuleSet, the expression language, the registry, the oracle
    archive/     EventArchive, the ledger and verify, compaction, privacy
    sources/     users' files read into the canonical schema
    schema, timeutil, exceptions, _typing

Every public name is re-exported here:

>>> import eventkit
>>> sorted(eventkit.__all__)[:3]
['AppendConflictError', 'AppendReceipt', 'ArchiveError']
"""

from __future__ import annotations

import importlib
from typing import Any

from eventkit import _aliases
from eventkit.archive.compaction import CompactReport, compact
from eventkit.archive.open import Events, open_archive
from eventkit.archive.privacy import KeyStore
from eventkit.archive.storage import StorageReport, info
from eventkit.archive.table import AppendReceipt, EventArchive
from eventkit.archive.verify import VerifyReport
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
    InstantError,
    IntegrityError,
    ParameterError,
    PatternError,
    PrivacyError,
    ReportError,
    RuleError,
    ScaleError,
    SchemaError,
    SchemaVersionError,
    SnapshotError,
    StaleVersionError,
    StorageError,
    UsageError,
    ValidationError,
    ViewError,
    WorkbenchError,
)
from eventkit.progress import show_progress
from eventkit.questions.explain import Explanation, explain
from eventkit.questions.patterns import Detector, Pattern, Thresholds, builtin_alerts
from eventkit.questions.temporal import restatements
from eventkit.questions.views import RefreshReport, materialize, refresh
from eventkit.questions.whatif import Comparison, compare
from eventkit.replay.api import replay, snapshot
from eventkit.replay.buckets import BucketedReplay
from eventkit.replay.expire import ExpireReport, expire
from eventkit.replay.live import LiveReplay
from eventkit.replay.protocol import Replayed, Window
from eventkit.replay.result import ReplayResult
from eventkit.replay.snapshots import Snapshots
from eventkit.rules.model import Field, Handler, Interest, RuleSet
from eventkit.schema import CANONICAL_SCHEMA, EVENT_TYPES
from eventkit.sources.conform import ColumnMapping
from eventkit.sources.upcast import Upcaster, Upcasters
from eventkit.streams.kafka import IngestSummary, ingest, produce

#: Loaded on first use (widgets and charts take seconds to import): name -> its module.
_LAZY = {"explorer": "eventkit.workbench.explorer", "account_view": "eventkit.workbench.explorer",
         "table": "eventkit.workbench.tables"}
#: Sub-modules reachable as attributes, loaded on first use (``eventkit.charts.what_if``).
_LAZY_MODULES = {"charts": "eventkit.workbench.charts"}

_aliases.install()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if f"eventkit.{name}" in _aliases.MOVED:
        return importlib.import_module(f"eventkit.{name}")
    msg = f"module 'eventkit' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "CANONICAL_SCHEMA",
    "EVENT_TYPES",
    "AppendConflictError",
    "AppendReceipt",
    "ArchiveError",
    "BucketedReplay",
    "ColumnMapping",
    "CommandError",
    "CompactReport",
    "Comparison",
    "CorruptionError",
    "Detector",
    "EventArchive",
    "EventDataError",
    "EventkitError",
    "Events",
    "ExpireReport",
    "ExpiredError",
    "Explanation",
    "Field",
    "Handler",
    "ImmutabilityError",
    "IngestError",
    "IngestSummary",
    "InstantError",
    "IntegrityError",
    "Interest",
    "KeyStore",
    "LiveReplay",
    "ParameterError",
    "Pattern",
    "PatternError",
    "PrivacyError",
    "RefreshReport",
    "ReplayResult",
    "Replayed",
    "ReportError",
    "RuleError",
    "RuleSet",
    "ScaleError",
    "SchemaError",
    "SchemaVersionError",
    "SnapshotError",
    "Snapshots",
    "StaleVersionError",
    "StorageError",
    "StorageReport",
    "Thresholds",
    "Upcaster",
    "Upcasters",
    "UsageError",
    "ValidationError",
    "VerifyReport",
    "ViewError",
    "Window",
    "WorkbenchError",
    "account_view",
    "builtin_alerts",
    "charts",
    "compact",
    "compare",
    "expire",
    "explain",
    "explorer",
    "info",
    "ingest",
    "materialize",
    "open_archive",
    "produce",
    "refresh",
    "replay",
    "restatements",
    "show_progress",
    "snapshot",
    "table",
]

for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) and _obj.__module__.startswith("eventkit."):
        _obj.__module__ = "eventkit"
del _name, _obj
