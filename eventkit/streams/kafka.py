"""Kafka/Redpanda topics into the archive, exactly once; archives back into topics.

:func:`ingest` reads JSON events from every partition of a topic with
``confluent-kafka``, maps them onto the canonical schema (a
:class:`~eventkit.sources.conform.ColumnMapping`, as for files) and appends them in
batches. Each append stores, in the same atomic commit, the next offset of every
partition read so far (``meta`` of :meth:`EventArchive.append`): a run starts at
the offsets of the archive's last commit, never at the broker's committed
offsets, so after any crash nothing is lost and nothing is stored twice.

A message that cannot become an event (not JSON, not an object, a value that
does not convert, an id already archived) goes to a dead-letter JSON Lines file
with the reason, partition and offset; it never blocks its partition. Dead
letters are written before the commit that passes their offsets and are kept
once per (topic, partition, offset), so a restart does not repeat them.

:func:`produce` sends an archive's events to a topic as JSON, keyed by account
id: one key always lands on one partition, so each account's order is kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from eventkit.archive.open import is_eventkit_archive
from eventkit.archive.store import is_url
from eventkit.archive.table import EventArchive
from eventkit.exceptions import EventDataError, IngestError, ValidationError
from eventkit.schema import CANONICAL_SCHEMA
from eventkit.sources.conform import ROW_COL, SOURCE_COL, ColumnMapping, Conformed, conform

#: What a list of brokers looks like (``host:port[,host:port...]``): how the 0.1 argument
#: order of :func:`ingest` is recognised.
_BOOTSTRAP = re.compile(r"[\w.\-]+:\d+(,[\w.\-]+:\d+)*")

__all__ = ["IngestSummary", "create_topic", "dead_letter_path", "ingest", "produce",
           "stored_offsets"]

_META_PREFIX = "kafka/"
_STORED = [c for c in CANONICAL_SCHEMA if c not in ("seq", "recorded_at")]


@dataclass
class IngestSummary:
    """What one :func:`ingest` run did.

    ``offsets`` maps each partition to the next offset to read, as committed
    with the last batch (the position a new run starts from).
    """

    events: int = 0
    dead_letters: int = 0
    batches: int = 0
    offsets: dict[int, int] = field(default_factory=dict)


def stored_offsets(archive: EventArchive, topic: str) -> dict[int, int]:
    """Next offset to read per partition of ``topic``, as the archive's last commit says.

    Examples
    --------
    >>> import tempfile
    >>> stored_offsets(EventArchive.create(tempfile.mkdtemp() + "/a"), "tx")
    {}

    """
    found = archive.latest_meta(_META_PREFIX + topic) or {}
    return {int(p): int(o) for p, o in found.items()}


def dead_letter_path(archive: EventArchive | str | Path) -> Path:
    """The default dead-letter file of an archive: ``<archive>.dead-letter.jsonl`` beside it.

    Examples
    --------
    >>> dead_letter_path("/data/bank").as_posix()
    '/data/bank.dead-letter.jsonl'

    """
    path = archive.path if isinstance(archive, EventArchive) else archive
    if not isinstance(path, Path) and is_url(path):
        msg = (f"{path} is in an object store: pass dead_letter= a local file for the "
               "messages that are not events")
        raise IngestError(msg)
    path = Path(path)
    return path.with_name(path.name + ".dead-letter.jsonl")


def ingest(
    archive: EventArchive | str | Path,
    bootstrap: str,
    topic: str,
    *,
    mapping: ColumnMapping | dict[str, Any] | None = None,
    dead_letter: str | Path | None = None,
    batch_size: int = 10_000,
    max_wait: float = 1.0,
    idle_timeout: float | None = None,
    max_events: int | None = None,
    config: dict[str, Any] | None = None,
    on_batch: Callable[[IngestSummary], object] | None = None,
) -> IngestSummary:
    """Consume ``topic`` into ``archive`` exactly once; return what was done.

    Parameters
    ----------
    archive
        An :class:`EventArchive` or its path (created when missing).
    bootstrap
        ``HOST:PORT`` of a Kafka-protocol broker (Kafka, Redpanda, ...).
    topic
        The topic; every partition it has when the run starts is read.
    mapping
        How a message's JSON fields map onto the canonical columns (as for
        files). Without an ``event_id`` field an event's id is
        ``"<topic>/<partition>/<offset>"``. Fields the archive does not store
        (``seq``, ``recorded_at``, anything unknown) are ignored.
    dead_letter
        JSON Lines file for messages that are not events (default:
        :func:`dead_letter_path`).
    batch_size, max_wait
        An append happens at ``batch_size`` messages or ``max_wait`` seconds
        after the first message of the batch, whichever comes first.
    idle_timeout
        Stop after this many seconds without a message (default: run until
        interrupted).
    max_events
        Stop after the batch that reaches this many messages.
    config
        Extra ``confluent-kafka`` consumer settings.
    on_batch
        Called with the running summary after each commit.

    Examples
    --------
    >>> ingest("/tmp/bank", "127.0.0.1:9092", "tx")  # doctest: +SKIP
    IngestSummary(events=1000, dead_letters=1, batches=1, offsets={0: 501, 1: 500})

    """
    if isinstance(archive, str) and _BOOTSTRAP.fullmatch(archive) and not Path(archive).exists():
        warnings.warn("ingest(bootstrap, topic, archive) is now ingest(archive, bootstrap, topic); "
                      "the old order goes in the next release", DeprecationWarning, stacklevel=2)
        archive, bootstrap, topic = topic, archive, bootstrap
    from confluent_kafka import Consumer, KafkaError, TopicPartition  # noqa: PLC0415 (only a broker run pays its import)

    if not isinstance(archive, EventArchive):
        exists = is_eventkit_archive(archive) if is_url(archive) else Path(archive).exists()
        archive = EventArchive(archive) if exists else EventArchive.create(archive)
    m = ColumnMapping.parse(mapping)
    letters = _DeadLetters(Path(dead_letter) if dead_letter else dead_letter_path(archive))
    offsets = stored_offsets(archive, topic)
    summary = IngestSummary(offsets=dict(offsets))
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"eventkit-{topic}",  # required by the client; offsets live in the archive
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",  # never skip or repeat: re-seek to our own offsets
        **(config or {}),
    })
    try:
        partitions = _partitions(consumer, bootstrap, topic)
        position = {p: offsets.get(p, 0) for p in partitions}  # next offset after the buffer

        def assign() -> None:
            consumer.assign([TopicPartition(topic, p, o) for p, o in position.items()])

        assign()
        batch: list[Any] = []
        first = last_message = time.monotonic()
        while True:
            wait = max_wait if not batch else max(0.0, first + max_wait - time.monotonic())
            messages = consumer.consume(num_messages=batch_size - len(batch), timeout=wait)
            now = time.monotonic()
            good = [msg for msg in messages if msg.error() is None]
            for msg in messages:
                error = msg.error()
                if error is None:
                    continue
                if error.code() == KafkaError._AUTO_OFFSET_RESET:
                    # our offset lies outside the log (e.g. a broker lost its data and is
                    # being refilled): try again at the same offsets, never skip
                    time.sleep(0.2)
                    assign()
                elif error.fatal():
                    msg_text = f"broker {bootstrap}, topic {topic}: {error.str()}"
                    raise IngestError(msg_text, topic=topic)
            if good:
                if not batch:
                    first = now
                batch += good
                last_message = now
                for msg in good:  # positions only move forward (a re-seek may repeat)
                    partition, offset = msg.partition(), msg.offset()
                    # a consumed message without an error has both
                    assert partition is not None and offset is not None
                    position[partition] = max(position[partition], offset + 1)
            full = len(batch) >= batch_size or (batch and now - first >= max_wait)
            idle = idle_timeout is not None and now - last_message >= idle_timeout
            done = idle or (max_events is not None and summary.events
                            + summary.dead_letters + len(batch) >= max_events)
            if batch and (full or done):
                _store(archive, topic, batch, m, letters, summary)
                batch = []
                if on_batch is not None:
                    on_batch(summary)
            if done:
                return summary
    finally:
        consumer.close()


def _partitions(consumer: Any, bootstrap: str, topic: str) -> list[int]:
    from confluent_kafka import KafkaException  # noqa: PLC0415 (only a broker run pays its import)

    try:
        meta = consumer.list_topics(topic, timeout=15)
    except KafkaException as exc:
        msg = f"cannot reach the broker at {bootstrap}: {exc}"
        raise IngestError(msg, topic=topic) from None
    found = meta.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        why = found.error.str() if found is not None and found.error is not None else "missing"
        msg = f"topic {topic!r} on {bootstrap} cannot be read ({why})"
        raise IngestError(msg, topic=topic)
    return sorted(found.partitions)


def _store(archive: EventArchive, topic: str, messages: list[Any], mapping: ColumnMapping,
           letters: _DeadLetters, summary: IngestSummary) -> None:
    """Append one batch of messages with the offsets they reach, dead letters first."""
    partition = np.array([msg.partition() for msg in messages], np.int64)
    offset = np.array([msg.offset() for msg in messages], np.int64)
    # a re-seek may deliver a message twice within a run: keep the first, in order
    keep = _new_messages(partition, offset, summary.offsets)
    values = [(msg.value() or b"").replace(b"\n", b" ").replace(b"\r", b" ")
              for msg, k in zip(messages, keep, strict=True) if k]
    partition, offset = partition[keep], offset[keep]
    rows, bad = _parse(values, np.arange(len(values)), _Batch(mapping, topic, partition, offset,
                                                               archive.event_types))
    while True:
        written = letters.write(topic, [(int(partition[i]), int(offset[i]), values[i], why)
                                        for i, why in sorted(bad)])
        summary.dead_letters += written
        reach = dict(summary.offsets)
        for p in np.unique(partition):
            reach[int(p)] = max(reach.get(int(p), 0), int(offset[partition == p].max()) + 1)
        if rows.height == 0:  # nothing to append: the offsets advance with the next batch
            summary.offsets = reach
            return
        try:
            key = json.dumps(sorted(reach.items())) + json.dumps(sorted(summary.offsets.items()))
            receipt = archive.append(
                rows.drop("__index"),
                batch_id=f"{_META_PREFIX}{topic}/{hashlib.sha256(key.encode()).hexdigest()[:32]}",
                meta={_META_PREFIX + topic: {str(p): o for p, o in sorted(reach.items())}},
            )
        except ValidationError as exc:  # e.g. an id already archived: that message is bad
            if exc.row is None:
                raise
            bad = [(int(rows["__index"][exc.row]), str(exc))]
            rows = rows.filter(pl.int_range(pl.len()) != exc.row)
            continue
        summary.events += receipt.rows if not receipt.duplicate else 0
        summary.batches += 1
        summary.offsets = reach
        return


def _new_messages(partition: np.ndarray, offset: np.ndarray, done: dict[int, int]
                  ) -> np.ndarray:
    """Messages not yet stored and not repeated within the batch (a re-seek repeats)."""
    floor = np.array([done.get(int(p), 0) for p in partition], np.int64) if len(partition) \
        else np.zeros(0, np.int64)
    frame = pl.DataFrame({"p": partition, "o": offset})
    first = frame.select(pl.struct("p", "o").is_first_distinct()).to_series().to_numpy()
    return (offset >= floor) & first


@dataclass(frozen=True)
class _Batch:
    """What parsing a batch of messages needs besides their values."""

    mapping: ColumnMapping
    topic: str
    partition: np.ndarray
    offset: np.ndarray
    event_types: tuple[str, ...] | None


def _parse(values: list[bytes], index: np.ndarray, batch: _Batch
           ) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Canonical rows (with ``__index`` into the batch) and (index, reason) of bad ones.

    The whole batch is read at once; only when that fails, or most of it is bad
    (one odd value can change a column's type for all), it is split in halves.
    """
    if not len(index):
        return pl.DataFrame(schema={**{c: CANONICAL_SCHEMA[c] for c in _STORED},
                                    "__index": pl.Int64}), []
    bad: list[tuple[int, str]] | None  # None: the batch is unreadable as a whole
    try:
        raw = pl.read_ndjson(io.BytesIO(b"\n".join(values[i] for i in index)),
                             infer_schema_length=None)
        if raw.height != len(index):
            msg = "a message is empty or holds several JSON values"
            raise ValueError(msg)
        rows, bad = _conform(raw, index, batch)
    except (pl.exceptions.PolarsError, ValueError, EventDataError) as exc:
        if len(index) == 1:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return _parse(values, index[:0], batch)[0], [
                (int(index[0]), f"not a JSON event object: {text[:300]}")]
        rows, bad = pl.DataFrame(), None  # split below
    if bad is None or (bad and len(index) > 1 and len(bad) * 2 > len(index)):
        half = len(index) // 2
        left = _parse(values, index[:half], batch)
        right = _parse(values, index[half:], batch)
        return pl.concat([left[0], right[0]]), left[1] + right[1]
    return rows, bad


def _conform(raw: pl.DataFrame, index: np.ndarray, batch: _Batch
             ) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Map parsed messages onto the canonical columns; every bad row with its reason."""
    mapping, topic = batch.mapping, batch.topic
    partition, offset = batch.partition, batch.offset
    id_col = mapping.source_name("event_id")
    derived = pl.Series([f"{topic}/{p}/{o}" for p, o in zip(partition[index], offset[index],
                                                             strict=True)], dtype=pl.String)
    raw = raw.with_columns((pl.col(id_col).cast(pl.String).fill_null(derived)
                            if id_col in raw.columns else derived).alias(id_col))
    for required in ("account_id", "event_time", "amount"):  # missing: a null, reported per row
        name = mapping.source_name(required)
        if name not in raw.columns:
            raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    known = {mapping.source_name(c) for c in _STORED}
    raw = raw.select([c for c in raw.columns if c in known])
    nested = [c for c, dtype in raw.schema.items() if dtype.is_nested()]
    if nested:  # found per message by splitting the batch
        msg = f"field {nested[0]!r} holds a list or an object"
        raise ValueError(msg)
    raw = raw.with_columns(
        pl.lit(topic).alias(SOURCE_COL), pl.Series(ROW_COL, index, dtype=pl.Int64))
    conformed: Conformed = conform(raw.lazy(), mapping, source=f"topic {topic}",
                                   keep_extra=False, event_types=batch.event_types)
    reasons = [(c, conformed.raw) for c in conformed.conversion_checks] + \
              [(c, conformed.events) for c in conformed.value_checks
               if c.problem != "duplicate event_id"]
    first = pl.concat([lf.select(pl.when(c.bad.fill_null(value=False))
                                 .then(pl.lit(f"{c.column}: {c.problem}")).alias(str(i)))
                       for i, (c, lf) in enumerate(reasons)], how="horizontal").collect() \
        if reasons else pl.DataFrame()
    reason = first.select(pl.coalesce(first.columns).alias("reason"))["reason"] \
        if first.width else pl.Series("reason", [None] * raw.height, dtype=pl.String)
    events = conformed.events.collect().with_columns(reason)
    # a repeated id within the batch: the first one counts, the others are bad
    events = events.with_columns(pl.when(pl.col("reason").is_null()
                                         & ~pl.col("event_id").is_first_distinct())
                                 .then(pl.lit("event_id: duplicate event_id in the topic"))
                                 .otherwise(pl.col("reason")).alias("reason"))
    bad = events.filter(pl.col("reason").is_not_null())
    good = events.filter(pl.col("reason").is_null())
    rows = good.select(*_STORED, pl.col(ROW_COL).alias("__index"))
    return rows, list(zip(bad[ROW_COL].to_list(), bad["reason"].to_list(), strict=True))


class _DeadLetters:
    """A JSON Lines file of rejected messages, each (topic, partition, offset) once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: set[tuple[str, int, int]] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    self.known.add((rec["topic"], rec["partition"], rec["offset"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut by a crash: its message comes again
        # a crash may have cut the last line: make sure the next one starts on its own
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with path.open("ab") as f:
                f.write(b"\n")

    def write(self, topic: str, letters: list[tuple[int, int, bytes, str]]) -> int:
        """Append the letters not written before (fsync-ed); return how many."""
        new = [(p, o, v, why) for p, o, v, why in letters if (topic, p, o) not in self.known]
        if not new:
            return 0
        at = datetime.now(UTC).isoformat()
        lines = [json.dumps({"topic": topic, "partition": p, "offset": o, "reason": why,
                             "value": v.decode("utf-8", errors="replace"), "at": at}) + "\n"
                 for p, o, v, why in new]
        with self.path.open("a") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        self.known.update((topic, p, o) for p, o, _, _ in new)
        return len(new)


def produce(
    events: pl.LazyFrame | pl.DataFrame,
    bootstrap: str,
    topic: str,
    *,
    partitions: int | None = None,
    config: dict[str, Any] | None = None,
) -> int:
    """Send events to ``topic`` as JSON, keyed by account id; return how many.

    Messages carry the canonical columns but ``seq`` and ``recorded_at`` (the
    receiving archive assigns them), times as ISO 8601 in UTC. They go in log
    order; one account's events share a key, hence a partition, hence keep their
    order. ``partitions`` creates the topic first when it does not exist.

    Examples
    --------
    >>> produce(eventkit.open_archive("bank"), "127.0.0.1:9092", "tx")  # doctest: +SKIP
    50000

    """
    from confluent_kafka import KafkaException, Producer  # noqa: PLC0415 (only a broker run pays its import)

    if partitions is not None:
        create_topic(bootstrap, topic, partitions)
    frame = events.lazy().select(_STORED).collect()
    payload = frame.with_columns(pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    lines = payload.write_ndjson().encode().splitlines()
    keys = frame["account_id"].cast(pl.String).to_list()
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 20, **(config or {})})
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    try:
        for key, line in zip(keys, lines, strict=True):
            while True:
                try:
                    producer.produce(topic, line, key=key.encode(), on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain
                    producer.poll(0.1)
        left = producer.flush(60)
    except KafkaException as exc:
        msg = f"cannot produce to {topic!r} on {bootstrap}: {exc}"
        raise IngestError(msg, topic=topic) from None
    if failed or left:
        msg = (f"{len(failed) + left} of {len(lines)} messages were not delivered to {topic!r} "
               f"on {bootstrap}: {failed[0] if failed else 'timed out'}")
        raise IngestError(msg, topic=topic)
    return len(lines)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create ``topic`` with ``partitions`` partitions unless it exists.

    Examples
    --------
    >>> create_topic("127.0.0.1:9092", "tx", 3)  # doctest: +SKIP

    """
    from confluent_kafka import KafkaError, KafkaException  # noqa: PLC0415 (only a broker run pays its import)
    from confluent_kafka.admin import AdminClient, NewTopic  # noqa: PLC0415 (only a broker run pays its import)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                           replication_factor=1)])[topic]
    try:
        future.result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            msg = f"cannot create topic {topic!r} on {bootstrap}: {exc}"
            raise IngestError(msg, topic=topic) from None
