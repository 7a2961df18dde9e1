"""The Kafka consumer of :func:`eventkit.streams.kafka.ingest`, run as a process of its own.

Started by :class:`eventkit.streams.consumer.ConsumerProcess` as a script (it
imports nothing of eventkit): librdkafka runs here, so a crash of the C
library (it dereferences a null topic name when a topic is deleted under it)
ends this process, and the ingest that drives it ends with an ``IngestError``.

Requests and replies are pickled tuples over two pipes: ``("topics", topic,
timeout)``, ``("assign", topic, [(partition, offset), ...])``, ``("consume",
n, timeout)``, ``("ends", topic, partitions)``, ``("close",)``. A reply is
``("ok", value)``, ``("error", text)``, or ``("config", text)`` when the client
refused the consumer settings; ``consume`` gives the messages as
three lists (partitions, offsets, values) and the problems: ``(partition or
None, (code name, text, fatal))`` per message error and per client-wide error
reported since the last call. librdkafka's own log lines are dropped (its
errors come back here instead).
"""

from __future__ import annotations

import logging
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any


def serve(inbox: Connection, outbox: Connection) -> None:
    """Answer requests until ``close`` or until the driving process goes away."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition  # noqa: PLC0415

    errors: list[tuple[str, str, bool]] = []
    quiet = logging.getLogger("eventkit.kafka.librdkafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False

    def on_error(error: KafkaError) -> None:
        errors.append((error.name(), error.str(), error.fatal()))

    try:
        consumer = Consumer({**inbox.recv(), "error_cb": on_error, "logger": quiet})
    except (KafkaException, ValueError, TypeError) as exc:  # settings the client refuses
        refused(inbox, outbox, exc.args[0].str() if isinstance(exc, KafkaException) else str(exc))
        return
    while True:
        try:
            request = inbox.recv()
        except (EOFError, OSError):
            return  # the ingest that drove us is gone
        reply: tuple[str, Any]
        try:
            if request[0] == "topics":
                found = consumer.list_topics(request[1], timeout=request[2]).topics.get(
                    request[1])
                reply = ("ok", None if found is None else (
                    sorted(found.partitions), found.error.str() if found.error else None))
            elif request[0] == "ends":  # the high watermarks the last fetches reported
                reply = ("ok", {p: consumer.get_watermark_offsets(
                    TopicPartition(request[1], p), cached=True)[1] for p in request[2]})
            elif request[0] == "assign":
                consumer.assign([TopicPartition(request[1], p, o) for p, o in request[2]])
                reply = ("ok", None)
            elif request[0] == "consume":
                partitions, offsets, values = [], [], []
                problems: list[tuple[int | None, tuple[str, str, bool]]] = [
                    (None, e) for e in errors]
                errors.clear()
                for msg in consumer.consume(num_messages=request[1], timeout=request[2]):
                    error = msg.error()
                    if error is None:
                        partitions.append(msg.partition())
                        offsets.append(msg.offset())
                        values.append(msg.value() or b"")
                    else:
                        problems.append((msg.partition(), (error.name(), error.str(),
                                                           error.fatal())))
                reply = ("ok", (partitions, offsets, values, problems))
            else:
                consumer.close()
                outbox.send(("ok", None))
                return
        except KafkaException as exc:
            reply = ("error", str(exc))
        outbox.send(reply)


def refused(inbox: Connection, outbox: Connection, why: str) -> None:
    """Answer every request with why the consumer settings were refused, until ``close``."""
    while True:
        try:
            request = inbox.recv()
        except (EOFError, OSError):
            return
        outbox.send(("ok", None) if request[0] == "close" else ("config", why))
        if request[0] == "close":
            return


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the ingest, which stops us
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]),
                                                                   readable=False))
