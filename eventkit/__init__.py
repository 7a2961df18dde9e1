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

Every public name is re-exported here, and loaded on first use (see
:mod:`eventkit._lazy`): ``import eventkit`` itself loads none of Polars,
numba, Delta, Arrow, DuckDB or cryptography.

>>> import eventkit
>>> sorted(eventkit.__all__)[:3]
['AppendConflictError', 'AppendReceipt', 'ArchiveError']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventkit import _aliases, _lazy
from eventkit.exceptions import (
    AppendConflictError,
    ArchiveError,
    ClockError,
    CommandError,
    CorruptionError,
    CoverageError,
    CoverageWarning,
    DeadLetterWarning,
    EventDataError,
    EventkitError,
    EventkitWarning,
    ExpiredError,
    ImmutabilityError,
    IngestError,
    InstantError,
    IntegrityError,
    ParameterError,
    PatternError,
    PrivacyError,
    ReplayError,
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

if TYPE_CHECKING:
    from eventkit.archive.compaction import CompactReport, compact
    from eventkit.archive.open import Events, open_archive
    from eventkit.archive.privacy import KeyStore
    from eventkit.archive.storage import StorageReport, info
    from eventkit.archive.table import AppendReceipt, EventArchive
    from eventkit.archive.verify import VerifyReport
    from eventkit.questions.explain import Explanation, explain
    from eventkit.questions.patterns import Detector, Pattern, Thresholds, builtin_alerts
    from eventkit.questions.temporal import restatements
    from eventkit.questions.views import RefreshReport, materialize, refresh
    from eventkit.questions.whatif import Comparison, compare
    from eventkit.replay.api import replay, snapshot
    from eventkit.replay.buckets import BucketedReplay
    from eventkit.replay.expire import ExpireReport, expire
    from eventkit.replay.live import LiveReplay
    from eventkit.replay.progress import show_progress
    from eventkit.replay.protocol import Replayed, Window
    from eventkit.replay.result import ReplayResult
    from eventkit.replay.snapshots import Snapshots
    from eventkit.rules.model import Field, GlobalEvents, Handler, Interest, RuleSet
    from eventkit.schema import CANONICAL_SCHEMA, EVENT_TYPES, EventSchema
    from eventkit.sources.conform import ColumnMapping
    from eventkit.sources.upcast import Upcaster, Upcasters
    from eventkit.streams.kafka import IngestSummary, ingest, produce
    from eventkit.workbench.explorer import account_view, explorer
    from eventkit.workbench.tables import table

__all__ = [
    "CANONICAL_SCHEMA",
    "EVENT_TYPES",
    "AppendConflictError",
    "AppendReceipt",
    "ArchiveError",
    "BucketedReplay",
    "ClockError",
    "ColumnMapping",
    "CommandError",
    "CompactReport",
    "Comparison",
    "CorruptionError",
    "CoverageError",
    "CoverageWarning",
    "DeadLetterWarning",
    "Detector",
    "EventArchive",
    "EventDataError",
    "EventSchema",
    "EventkitError",
    "EventkitWarning",
    "Events",
    "ExpireReport",
    "ExpiredError",
    "Explanation",
    "Field",
    "GlobalEvents",
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
    "ReplayError",
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

#: Where each public name lives: its module is imported when the name is first used.
_MODULES: dict[str, tuple[str, ...]] = {
    "eventkit.archive.compaction": ("CompactReport", "compact"),
    "eventkit.archive.open": ("Events", "open_archive"),
    "eventkit.archive.privacy": ("KeyStore",),
    "eventkit.archive.storage": ("StorageReport", "info"),
    "eventkit.archive.table": ("AppendReceipt", "EventArchive"),
    "eventkit.archive.verify": ("VerifyReport",),
    "eventkit.replay.progress": ("show_progress",),
    "eventkit.questions.explain": ("Explanation", "explain"),
    "eventkit.questions.patterns": ("Detector", "Pattern", "Thresholds", "builtin_alerts"),
    "eventkit.questions.temporal": ("restatements",),
    "eventkit.questions.views": ("RefreshReport", "materialize", "refresh"),
    "eventkit.questions.whatif": ("Comparison", "compare"),
    "eventkit.replay.api": ("replay", "snapshot"),
    "eventkit.replay.buckets": ("BucketedReplay",),
    "eventkit.replay.expire": ("ExpireReport", "expire"),
    "eventkit.replay.live": ("LiveReplay",),
    "eventkit.replay.protocol": ("Replayed", "Window"),
    "eventkit.replay.result": ("ReplayResult",),
    "eventkit.replay.snapshots": ("Snapshots",),
    "eventkit.rules.model": ("Field", "GlobalEvents", "Handler", "Interest", "RuleSet"),
    "eventkit.schema": ("CANONICAL_SCHEMA", "EVENT_TYPES", "EventSchema"),
    "eventkit.sources.conform": ("ColumnMapping",),
    "eventkit.sources.upcast": ("Upcaster", "Upcasters"),
    "eventkit.streams.kafka": ("IngestSummary", "ingest", "produce"),
    "eventkit.workbench.explorer": ("account_view", "explorer"),
    "eventkit.workbench.tables": ("table",),
}

for _error in [v for v in globals().values() if isinstance(v, type)]:
    _error.__module__ = __name__  # reprs show the public path
del _error

_aliases.install()
_lazy.attach(__name__, _MODULES)
