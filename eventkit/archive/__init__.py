"""The archive: eventkit's own append-only, tamper-evident event store, and its upkeep.

:class:`~eventkit.archive.table.EventArchive` is a Delta table whose commits
form a hash chain (:mod:`~eventkit.archive.ledger`, checked by
:mod:`~eventkit.archive.verify`); :func:`~eventkit.archive.open.open_archive`
reads it or any source :mod:`eventkit.sources` reads. Its files live in a
:class:`~eventkit.archive.store.Store` (a local folder or an object store such
as ``s3://``); :mod:`eventkit.archive.head` keeps the verified head and the
checkpoints that spare appends and reads the whole log. Upkeep: compaction,
the storage report, the read side of retention, buckets of keys, privacy
(per-subject encryption and erasure). Knows only :mod:`eventkit.sources` below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventkit import _lazy

if TYPE_CHECKING:
    from eventkit.archive.compaction import CompactReport, compact
    from eventkit.archive.open import Events, open_archive
    from eventkit.archive.privacy import KeyStore
    from eventkit.archive.storage import StorageReport, info
    from eventkit.archive.table import AppendReceipt, EventArchive
    from eventkit.archive.verify import VerifyReport

__all__ = [
    "AppendReceipt",
    "CompactReport",
    "EventArchive",
    "Events",
    "KeyStore",
    "StorageReport",
    "VerifyReport",
    "compact",
    "info",
    "open_archive",
]

_lazy.attach(__name__, {
    "eventkit.archive.compaction": ("CompactReport", "compact"),
    "eventkit.archive.open": ("Events", "open_archive"),
    "eventkit.archive.privacy": ("KeyStore",),
    "eventkit.archive.storage": ("StorageReport", "info"),
    "eventkit.archive.table": ("AppendReceipt", "EventArchive"),
    "eventkit.archive.verify": ("VerifyReport",),
})
