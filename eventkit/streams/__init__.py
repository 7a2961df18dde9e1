"""Streams: events from and to Kafka-protocol brokers, archived exactly once.

:func:`~eventkit.streams.kafka.ingest` consumes a topic into an archive
(offsets stored in the same commit as the events); :func:`~eventkit.streams.kafka.produce`
writes events to a topic. Knows the archive and the sources' mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventkit import _lazy

if TYPE_CHECKING:
    from eventkit.streams.kafka import IngestSummary, ingest, produce

__all__ = ["IngestSummary", "ingest", "produce"]

_lazy.attach(__name__, {
    "eventkit.streams.kafka": ("IngestSummary", "ingest", "produce"),
})
