"""Kafka/Redpanda topics into the archive, exactly once; archives back into topics.

:func:`ingest` reads JSON events from every partition of a topic with
``confluent-kafka``, maps them onto the archive's schema (the banking one or
one's own declared key, payload and metadata columns; a
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
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from eventkit.archive.clock import BeforeLatest
from eventkit.archive.open import is_eventkit_archive
from eventkit.archive.store import is_url
from eventkit.archive.table import EventArchive
from eventkit.exceptions import IngestError, ParameterError, ValidationError, foreign_errors
from eventkit.schema import BANKING
from eventkit.sources.conform import ColumnMapping
from eventkit.streams.consumer import ConsumerProcess, Watch
from eventkit.streams.messages import (
    Batch,
    doubled_keys,
    first_of_each_id,
    new_messages,
    parse,
    personal_values,
    withhold,
)

#: What a list of brokers looks like (``host:port[,host:port...]``): how the 0.1 argument
#: order of :func:`ingest` is recognised.
_BOOTSTRAP = re.compile(r"[\w.\-]+:\d+(,[\w.\-]+:\d+)*")

__all__ = ["IngestSummary", "create_topic", "dead_letter_path", "ingest", "produce",
           "stored_offsets"]

_META_PREFIX = "kafka/"


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


@foreign_errors(IngestError, "ingest into {0}")
def ingest(
    archive: EventArchive | str | Path,
    bootstrap: str,
    topic: str,
    *,
    mapping: ColumnMapping | dict[str, Any] | None = None,
    dead_letter: str | Path | None = None,
    batch_size: int = 100_000,
    max_wait: float = 1.0,
    idle_timeout: float | None = None,
    max_events: int | None = None,
    config: dict[str, Any] | None = None,
    on_batch: Callable[[IngestSummary], object] | None = None,
    broker_timeout: float = 30.0,
    before_latest: BeforeLatest = "raise",
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
        How a message's JSON fields map onto the archive's columns (as for
        files; a declared archive's key, payload and metadata columns too).
        Without an ``event_id`` field an event's id is
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
    broker_timeout
        How long the broker may stay unreachable, the topic or a partition
        missing, or a partition's log end before the offset the archive has
        read to (the broker lost data), before the run ends with an
        :class:`IngestError` naming it; shorter troubles (a broker restart)
        are waited out. A run that would stop (idle, ``max_events``) during
        such a trouble raises it at once.
    before_latest
        As for :meth:`EventArchive.append`: ``"clamp"`` stamps the archive's
        latest ``recorded_at`` when the clock stepped back, instead of failing.

    Each batch is taken in (partition, offset) order, so what is archived does
    not depend on how the partitions' messages interleave: of messages with
    one ``event_id``, the first by (partition, offset) that is an event is
    archived and every later one dead-lettered, naming the copy kept (one
    already archived by an earlier batch wins). The Kafka client runs in a
    child process (:mod:`eventkit.streams.consumer`): if it crashes (as
    librdkafka does when a topic is deleted under it), the run ends with an
    :class:`IngestError`, never the process.

    Examples
    --------
    >>> ingest("/tmp/bank", "127.0.0.1:9092", "tx")  # doctest: +SKIP
    IngestSummary(events=1000, dead_letters=1, batches=1, offsets={0: 501, 1: 500})

    """
    if isinstance(archive, str) and _BOOTSTRAP.fullmatch(archive) and not Path(archive).exists():
        warnings.warn("ingest(bootstrap, topic, archive) is now ingest(archive, bootstrap, topic); "
                      "the old order goes in the next release", DeprecationWarning, stacklevel=2)
        archive, bootstrap, topic = topic, archive, bootstrap
    _check_options(batch_size=batch_size, max_wait=max_wait, idle_timeout=idle_timeout,
                   max_events=max_events, broker_timeout=broker_timeout)
    m = ColumnMapping.parse(mapping)
    target, where = (archive, None) if isinstance(archive, EventArchive) else (None, archive)
    if where is not None:  # a new archive is created once the topic is found
        exists = is_eventkit_archive(where) if is_url(where) else Path(where).exists()
        target = EventArchive(where) if exists else None
    m.check(BANKING if target is None else target.declared)
    offsets = {} if target is None else stored_offsets(target, topic)
    summary = IngestSummary(offsets=dict(offsets))
    with ConsumerProcess(bootstrap, topic, {
        "bootstrap.servers": bootstrap,
        "group.id": f"eventkit-{topic}",  # required by the client; offsets live in the archive
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",  # never skip or repeat: re-seek to our own offsets
        **(config or {}),
    }) as client:
        partitions = _partitions(client, bootstrap, topic, broker_timeout)
        if target is None:
            target = EventArchive.create(cast("str | Path", where))
        letters = _DeadLetters(Path(dead_letter) if dead_letter else dead_letter_path(target),
                               target.personal)
        position = {p: offsets.get(p, 0) for p in partitions}  # next offset after the buffer
        client.assign(position)
        watch = Watch(client, position, broker_timeout)
        batch: tuple[list[int], list[int], list[bytes]] = ([], [], [])
        first = last_message = time.monotonic()
        while True:
            wait = max_wait if not batch[0] else max(0.0, first + max_wait - time.monotonic())
            parts, offs, values, problems = client.consume(
                batch_size - len(batch[0]), _until_idle(wait, last_message, idle_timeout))
            now = time.monotonic()
            if watch.saw(problems, now):
                time.sleep(0.2)  # an offset beyond the log: try again there, never skip
                client.assign(position)
            if values:
                if not batch[0]:
                    first = now
                batch[0].extend(parts)
                batch[1].extend(offs)
                batch[2].extend(values)
                last_message = now
                for partition, offset in _highest(parts, offs).items():
                    position[partition] = max(position[partition], offset + 1)  # only forward
                    watch.progress(partition)
            watch.check(now, last_message)
            full = len(batch[0]) >= batch_size or (batch[0] and now - first >= max_wait)
            idle = idle_timeout is not None and now - last_message >= idle_timeout
            done = idle or (max_events is not None and summary.events
                            + summary.dead_letters + len(batch[0]) >= max_events)
            if batch[0] and (full or done):
                if not done:  # the next messages are fetched while this batch is stored
                    client.prefetch(batch_size,
                                    _until_idle(max_wait, last_message, idle_timeout))
                _store(target, topic, batch, m, letters, summary, before_latest)
                batch = ([], [], [])
                if on_batch is not None:
                    on_batch(summary)
            if done:
                watch.check(now, last_message, stopping=True)
                return summary


#: The most messages one fetch of the Kafka client takes (librdkafka's limit).
MAX_BATCH = 1_000_000


def _check_options(*, batch_size: int, max_wait: float, idle_timeout: float | None,
                   max_events: int | None, broker_timeout: float) -> None:
    """Refuse an option :func:`ingest` cannot use, naming it, before anything is done."""
    counts = {"batch_size": (batch_size, MAX_BATCH), "max_events": (max_events, None)}
    for name, (count, high) in counts.items():
        if count is None and high is None:
            continue
        if isinstance(count, bool) or not isinstance(count, int) or count < 1 or (
                high is not None and count > high):
            span = f"from 1 to {high:,}" if high is not None else "at least 1"
            msg = f"must be a whole number {span}, not {count!r}"
            raise ParameterError(msg, param=name)
    times = {"max_wait": max_wait, "idle_timeout": idle_timeout, "broker_timeout": broker_timeout}
    for name, value in times.items():
        if value is None and name == "idle_timeout":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                0 <= value < float("inf")) or (value == 0 and name != "max_wait"):
            least = "0 or more" if name == "max_wait" else "more than 0"
            msg = f"must be a number of seconds, {least}, not {value!r}"
            raise ParameterError(msg, param=name)


def _until_idle(wait: float, last_message: float, idle_timeout: float | None) -> float:
    """``wait``, cut short to end when the run would be idle: a consume returns in time.

    (A consume waits its whole timeout unless its ``n`` messages come: a run
    idle for ``idle_timeout`` must not wait out ``max_wait`` first.)
    """
    if idle_timeout is None:
        return wait
    return min(wait, max(0.0, last_message + idle_timeout - time.monotonic()))


def _highest(partitions: list[int], offsets: list[int]) -> dict[int, int]:
    """The highest offset fetched from each partition."""
    found = pl.DataFrame({"p": partitions, "o": offsets}, schema={"p": pl.Int64, "o": pl.Int64})
    return dict(found.group_by("p").agg(pl.col("o").max()).iter_rows())


def _partitions(client: ConsumerProcess, bootstrap: str, topic: str, timeout: float
                ) -> list[int]:
    try:
        found, why = client.partitions(timeout)
    except IngestError as exc:
        msg = f"cannot reach the broker at {bootstrap}: {exc}"
        raise IngestError(msg, topic=topic) from None
    if why is not None:
        msg = f"topic {topic!r} on {bootstrap} cannot be read ({why})"
        raise IngestError(msg, topic=topic)
    return found


def _store(archive: EventArchive, topic: str, messages: tuple[list[int], list[int], list[bytes]],
           mapping: ColumnMapping, letters: _DeadLetters, summary: IngestSummary,
           before_latest: BeforeLatest = "raise") -> None:
    """Append one batch of messages with the offsets they reach, dead letters first.

    ``messages`` are the partitions, offsets and values of the batch, taken in
    (partition, offset) order: which copy of a repeated id is kept does not
    depend on how partitions interleave or what else the batch holds.
    """
    partition, offset = np.array(messages[0], np.int64), np.array(messages[1], np.int64)
    order = np.lexsort((offset, partition))
    partition, offset = partition[order], offset[order]
    # a re-seek may deliver a message twice within a run: keep the first
    keep = new_messages(partition, offset, summary.offsets)
    values = [messages[2][i] for i in order[keep].tolist()]
    joined = b"".join(values)
    if b"\n" in joined or b"\r" in joined:  # a message is one line of the parse's input
        values = [v.replace(b"\n", b" ").replace(b"\r", b" ") for v in values]
    partition, offset = partition[keep], offset[keep]
    batch = Batch(mapping, topic, partition, offset, archive.event_types, archive.declared)
    refused = doubled_keys(values, mapping, batch.schema)
    if archive.personal:  # ingest has no key store to seal personal values with
        taken = {i for i, _ in refused}
        refused += [(i, why) for i, why in personal_values(values, archive.personal)
                    if i not in taken]
    rows, bad = parse(values, np.setdiff1d(np.arange(len(values)), [i for i, _ in refused]),
                       batch)
    rows, repeated = first_of_each_id(rows, batch)
    bad = refused + bad + repeated
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
                before_latest=before_latest,
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


class _DeadLetters:
    """A JSON Lines file of rejected messages, each (topic, partition, offset) once.

    For an archive with ``personal`` fields, their values are withheld from the
    file (see :func:`~eventkit.streams.messages.withhold`): an erasure could not
    reach them there.
    """

    def __init__(self, path: Path, personal: tuple[str, ...] = ()) -> None:
        self.path = path
        self.personal = personal
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
                             "value": withhold(v, self.personal), "at": at}) + "\n"
                 for p, o, v, why in new]
        with self.path.open("a") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        self.known.update((topic, p, o) for p, o, _, _ in new)
        return len(new)


@foreign_errors(IngestError, "produce to {2}")
def produce(
    events: pl.LazyFrame | pl.DataFrame,
    bootstrap: str,
    topic: str,
    *,
    key: str | Sequence[str] = "account_id",
    partitions: int | None = None,
    config: dict[str, Any] | None = None,
) -> int:
    """Send events to ``topic`` as JSON, keyed by their stream's ``key``; return how many.

    Messages carry the events' columns but ``seq`` and ``recorded_at`` (the
    receiving archive assigns them), times as ISO 8601 in UTC, lists and
    structs as JSON. They go in log order; one stream's events share a key
    (``key``: the column or columns naming the stream, ``account_id`` for the
    banking schema), hence a partition, hence keep their order. ``partitions``
    creates the topic first when it does not exist.

    Examples
    --------
    >>> produce(eventkit.open_archive("bank"), "127.0.0.1:9092", "tx")  # doctest: +SKIP
    50000
    >>> produce(eventkit.open_archive("shop"), "127.0.0.1:9092", "orders",
    ...         key="order_id")  # doctest: +SKIP
    748

    """
    from confluent_kafka import KafkaException, Producer  # noqa: PLC0415 (only a broker run pays its import)

    frame = events.lazy().collect()
    keys = [key] if isinstance(key, str) else list(key)
    missing = [k for k in keys if k not in frame.columns]
    if missing or not keys:
        msg = (f"the events have no key column {missing or keys} to send as the messages' "
               f"keys; they have {frame.columns} (pass key=...)")
        raise ParameterError(msg, param="key")
    if partitions is not None:
        create_topic(bootstrap, topic, partitions)
    frame = frame.drop("seq", "recorded_at", strict=False)
    payload = frame.with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC")
                                 .dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    lines = payload.write_ndjson().encode().splitlines()
    keyed = frame.select(pl.col(keys[0]).cast(pl.String) if len(keys) == 1
                         else pl.struct(keys).struct.json_encode())
    keys = keyed.to_series().to_list()
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
