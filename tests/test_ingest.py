"""Kafka ingest against a real Kafka-protocol broker (Tansu, started by the test session).

Exactly once: every message of the topic is in the archive once (or in the
dead-letter file once), whatever crashed in between.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from broker import Broker
from confluent_kafka import Consumer, Producer, TopicPartition
from polars.testing import assert_frame_equal

import eventkit
from eventkit import EventArchive, IngestError
from eventkit.banking.generate import generate
from eventkit.streams.kafka import create_topic, dead_letter_path, ingest, produce, stored_offsets

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("tansu"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def bank(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    path = tmp_path_factory.mktemp("bank") / "bank"
    generate(path, events=6_000, accounts=60, seed=3, progress=False)
    return eventkit.open_archive(path).collect()


_TOPICS = iter(range(1_000))


def new_topic(broker: Broker, partitions: int = 3) -> str:
    topic = f"tx{next(_TOPICS)}-{os.getpid()}"
    create_topic(broker.bootstrap, topic, partitions)
    return topic


def end_offsets(broker: Broker, topic: str) -> dict[int, int]:
    """Next offset per partition, found by reading the topic (Tansu 0.6 answers ListOffsets
    for the latest offset with 1)."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        ends = dict.fromkeys(parts, 0)
        while batch := consumer.consume(10_000, timeout=1.0):
            for msg in batch:
                ends[msg.partition()] = max(ends[msg.partition()], msg.offset() + 1)
        return ends
    finally:
        consumer.close()


def stored(path: Path) -> pl.DataFrame:
    return EventArchive(path).scan().collect()


def same_events(archived: pl.DataFrame, source: pl.DataFrame) -> None:
    cols = ["event_id", "account_id", "event_type", "event_time", "amount", "counterparty_id",
            "rate"]
    assert_frame_equal(archived.select(cols).sort("event_id"), source.select(cols)
                       .sort("event_id"))


def test_multi_partition_topic_is_archived_exactly_with_offsets(
        broker: Broker, bank: pl.DataFrame, tmp_path: Path) -> None:
    topic = new_topic(broker, partitions=4)
    assert produce(bank, broker.bootstrap, topic) == bank.height

    summary = ingest(tmp_path / "a", broker.bootstrap, topic, batch_size=1_500, idle_timeout=1.5)

    archived = stored(tmp_path / "a")
    same_events(archived, bank)
    assert summary.events == bank.height and summary.dead_letters == 0
    ends = end_offsets(broker, topic)
    assert len([p for p, end in ends.items() if end]) == 4  # keys spread over every partition
    assert summary.offsets == stored_offsets(EventArchive(tmp_path / "a"), topic) == ends
    # one account's events keep their order (a key lives on one partition)
    order = bank.select("event_id", "account_id").with_row_index("src")
    joined = archived.select("event_id", "seq").join(order, on="event_id")
    assert joined.sort("seq").group_by("account_id").agg(
        pl.col("src").diff().min().alias("step")).filter(pl.col("step") < 0).height == 0
    assert EventArchive(tmp_path / "a").verify().ok
    # a second run starts at the stored offsets: nothing new, nothing twice
    again = ingest(tmp_path / "a", broker.bootstrap, topic, idle_timeout=1.0)
    assert (again.events, again.batches) == (0, 0)
    assert stored(tmp_path / "a").height == bank.height


def test_an_idle_run_ends_after_idle_timeout_not_after_max_wait(
        broker: Broker, bank: pl.DataFrame, tmp_path: Path) -> None:
    # a consume waits its whole timeout unless its batch fills: the run must not wait out a
    # long max_wait (twice: the batch, then nothing) before noticing it went idle
    topic = new_topic(broker, partitions=2)
    produce(bank.head(20), broker.bootstrap, topic)
    began = time.monotonic()
    summary = ingest(tmp_path / "a", broker.bootstrap, topic, max_wait=30.0, idle_timeout=1.0)
    took = time.monotonic() - began
    assert (summary.events, summary.batches) == (20, 1)
    assert took < 15, f"{took:.1f} s: an idle run waited out max_wait"


def test_resume_takes_offsets_from_the_archive_not_the_broker(
        broker: Broker, bank: pl.DataFrame, tmp_path: Path) -> None:
    topic = new_topic(broker, partitions=2)
    produce(bank.head(1_000), broker.bootstrap, topic)
    first = ingest(tmp_path / "a", broker.bootstrap, topic, batch_size=400, max_events=400,
                   idle_timeout=5)
    assert first.events == 400
    # the broker's group offsets say "everything read"; the archive says 400
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"eventkit-{topic}"})
    consumer.commit(offsets=[TopicPartition(topic, p, end) for p, end in
                             end_offsets(broker, topic).items()], asynchronous=False)
    consumer.close()
    produce(bank.slice(1_000, 500), broker.bootstrap, topic)

    rest = ingest(tmp_path / "a", broker.bootstrap, topic, idle_timeout=1.5)

    assert rest.events == 1_100
    same_events(stored(tmp_path / "a"), bank.head(1_500))


POISON = [
    b"not json at all",
    b"[1, 2, 3]",
    b"",
    b'{"account_id": 5, "event_type": "Deposit", "amount": "12x", '
    b'"event_time": "2024-03-01T00:00:00Z"}',
    b'{"event_type": "Deposit", "amount": 100, "event_time": "2024-03-01T00:00:00Z"}',
    b'{"account_id": 5, "event_type": "Deposit", "amount": 100, "event_time": "yesterday"}',
    b'{"account_id": 5, "event_type": "Teleport", "amount": 100, '
    b'"event_time": "2024-03-01T00:00:00Z"}',
    b'{"account_id": {"nested": 1}, "event_type": "Deposit", "amount": 1, '
    b'"event_time": "2024-03-01T00:00:00Z"}',
]


def test_poison_messages_go_to_the_dead_letter_file_and_never_block(
        broker: Broker, bank: pl.DataFrame, tmp_path: Path) -> None:
    topic = new_topic(broker, partitions=1)
    good = bank.head(600)
    produce(good.head(300), broker.bootstrap, topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for value in POISON:
        producer.produce(topic, value, key=b"5")
    producer.flush(10)
    # an id that is already in the topic (and so in the archive): refused, not stored twice
    produce(good.head(1), broker.bootstrap, topic)
    produce(good.slice(300), broker.bootstrap, topic)

    summary = ingest(tmp_path / "a", broker.bootstrap, topic, batch_size=250, idle_timeout=1.5)

    same_events(stored(tmp_path / "a"), good)
    letters = [json.loads(line) for line in dead_letter_path(tmp_path / "a").read_text()
               .splitlines()]
    assert summary.dead_letters == len(letters) == len(POISON) + 1
    assert [x["offset"] for x in letters] == list(range(300, 300 + len(POISON) + 1))
    assert {x["partition"] for x in letters} == {0}
    assert [x["value"].encode() for x in letters[:len(POISON)]] == POISON
    reasons = [x["reason"] for x in letters]
    assert reasons[0].startswith("not a JSON event object")
    assert "amount" in reasons[3] and "account_id" in reasons[4]
    assert "event_time" in reasons[5] and "unknown event type" in reasons[6]
    assert "already in the archive" in reasons[-1]
    assert summary.offsets == {0: 600 + len(POISON) + 1}
    # a restart does not write them again
    ingest(tmp_path / "a", broker.bootstrap, topic, idle_timeout=1.0)
    assert len(dead_letter_path(tmp_path / "a").read_text().splitlines()) == len(letters)


def test_a_declared_archive_takes_messages_of_its_own_columns(
        broker: Broker, tmp_path: Path) -> None:
    # its key, payload and event types are its own: no account_id, no amount
    archive = EventArchive.create(tmp_path / "shop", key="order_id", columns={
        "order_id": "string", "qty": "int", "price": "money", "due": "date",
        "tags": "list[string]"}, metadata=["user"], event_types=("Placed", "Shipped"))
    topic = new_topic(broker, partitions=1)
    sent = [
        {"event_id": "e1", "order_id": "7d1c0c52-9b3e", "event_type": "Placed",
         "event_time": "2024-01-01T12:00:00+02:00", "qty": 9_223_372_036_854_775_807,
         "price": 12.5, "due": "2024-02-01", "tags": ["gift", "ü"], "user": "ana"},
        {"event_id": "e2", "order_id": "7d1c0c52-9b3e", "event_type": "Shipped",
         "event_time": "2024-01-02T00:00:00Z"},
        {"event_id": "e3", "event_type": "Placed", "event_time": "2024-01-02T00:00:00Z"},
        {"event_id": "e4", "order_id": "o-4", "event_type": "Placed",
         "event_time": "2024-01-02T00:00:00Z", "qty": 1.5},
    ]
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for message in sent:
        producer.produce(topic, json.dumps(message).encode())
    producer.flush(10)

    summary = ingest(archive, broker.bootstrap, topic, mapping={"amount_unit": "major"},
                     idle_timeout=1.0)

    assert (summary.events, summary.dead_letters) == (2, 2)
    got = stored(tmp_path / "shop").drop("seq", "recorded_at")
    assert got.to_dicts() == [
        {"event_id": "e1", "order_id": "7d1c0c52-9b3e", "event_type": "Placed",
         "event_time": datetime(2024, 1, 1, 10, tzinfo=UTC), "qty": 9_223_372_036_854_775_807,
         "price": 1250, "due": date(2024, 2, 1), "tags": ["gift", "ü"], "user": "ana"},
        {"event_id": "e2", "order_id": "7d1c0c52-9b3e", "event_type": "Shipped",
         "event_time": datetime(2024, 1, 2, tzinfo=UTC), "qty": None, "price": None,
         "due": None, "tags": None, "user": None}]
    letters = [json.loads(line) for line in dead_letter_path(archive).read_text().splitlines()]
    assert [(x["offset"], x["reason"]) for x in letters] == [
        (2, "order_id: null value in a required column"),
        (3, "qty: cannot convert value to an integer")]


def test_a_declared_archive_goes_through_a_topic_to_another_exactly(
        broker: Broker, tmp_path: Path) -> None:
    # produce keys messages by the archive's own (composite) key; ingest takes them back
    columns = {"tenant": "string", "order_id": "string", "qty": "int", "price": "money",
               "lines": pl.List(pl.Struct({"sku": pl.String, "n": pl.Int64})),
               "paid": "datetime"}
    source = EventArchive.create(tmp_path / "a", key=("tenant", "order_id"), columns=columns)
    t = [datetime(2024, 1, d, 9, tzinfo=UTC) for d in (1, 2, 3)]
    source.append(pl.DataFrame({
        "event_id": ["e1", "e2", "e3"], "tenant": ["acme", "acme", "zeta"],
        "order_id": ["o-1", "o-1", "o-1"], "event_type": ["Placed", "Paid", "Placed"],
        "event_time": t, "qty": [2, None, 1], "price": [1250, None, 99],
        "lines": [[{"sku": "A", "n": 2}], None, []], "paid": [None, t[1], None]}))
    topic = new_topic(broker, partitions=2)
    assert produce(source.scan(), broker.bootstrap, topic, key=source.key) == 3
    with pytest.raises(eventkit.ParameterError, match="no key column"):
        produce(source.scan(), broker.bootstrap, topic)  # (account_id: not this archive's)
    target = EventArchive.create(tmp_path / "b", key=("tenant", "order_id"), columns=columns)
    assert ingest(target, broker.bootstrap, topic, idle_timeout=1.0).events == 3
    order = ["event_id"]
    assert_frame_equal(stored(tmp_path / "b").drop("seq", "recorded_at").sort(order),
                       source.scan().collect().drop("seq", "recorded_at").sort(order))


def test_personal_values_are_never_taken_nor_kept_in_plaintext(
        broker: Broker, tmp_path: Path) -> None:
    # ingest has no key store: it dropped a message's personal values without a word and
    # kept them in plaintext in the dead-letter file, where no erasure could reach them
    archive = EventArchive.create(tmp_path / "shop", key="order_id", columns={
        "order_id": "string"}, personal=("email",))
    topic = new_topic(broker, partitions=1)
    at = "2024-01-01T00:00:00Z"
    sent = [b'{"event_id": "e1", "order_id": "o1", "event_type": "Placed", "event_time": "%s", '
            b'"subject": "c1", "email": "first.secret@example.org"}' % at.encode(),
            b'{"event_id": "e2", "order_id": "o2", "event_type": "Placed", "event_time": "no", '
            b'"email": "second.secret@example.org"}',
            b'{"event_id": "e3", "order_id": "o3", "event_type": "Placed", "event_time": "%s", '
            b'"email": null}' % at.encode(),
            b'{"event_id": "e4", "email": "third.secret@example.org"',
            b'{"event_id": "e5", "order_id": "o5", "event_type": "Placed", "event_time": "no"}']
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for message in sent:
        producer.produce(topic, message)
    producer.flush(10)

    summary = ingest(archive, broker.bootstrap, topic, idle_timeout=1.0)

    assert (summary.events, summary.dead_letters) == (1, 4)
    assert stored(tmp_path / "shop")["event_id"].to_list() == ["e3"]
    letters = [json.loads(line) for line in dead_letter_path(archive).read_text().splitlines()]
    assert [(x["offset"], x["reason"].split(":")[0]) for x in letters] == [
        (0, "email"), (1, "email"), (3, "not a JSON event object"), (4, "event_time")]
    assert "a personal value, which ingest does not encrypt" in letters[0]["reason"]
    assert [x["value"] and json.loads(x["value"]).get("email") for x in letters] == [
        "«withheld»", "«withheld»", None, None]
    assert json.loads(letters[4 - 1]["value"])["event_id"] == "e5"  # nothing personal: kept
    assert b"secret" not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_an_unknown_topic_or_broker_is_a_clear_error(broker: Broker, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="topic 'nope' on 127.0.0.1"):
        ingest(tmp_path / "a", broker.bootstrap, "nope", idle_timeout=1.0)
    with pytest.raises(IngestError, match="cannot reach the broker at 127.0.0.1:1"):
        ingest(tmp_path / "a", "127.0.0.1:1", "nope", idle_timeout=1.0, broker_timeout=1.0)
    assert not (tmp_path / "a").exists()  # a failed run creates no archive


@pytest.mark.parametrize(("option", "param"), [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": -5}, "batch_size"),
    ({"batch_size": 2_000_000}, "batch_size"), ({"max_wait": -1.0}, "max_wait"),
    ({"idle_timeout": -1.0}, "idle_timeout"), ({"max_events": 0}, "max_events"),
    ({"broker_timeout": float("nan")}, "broker_timeout"),
    ({"config": {"no.such.setting": 1}}, "config"),
    ({"config": {"session.timeout.ms": "abc"}}, "config"),
])
def test_options_the_run_cannot_use_are_refused_naming_them(
        broker: Broker, tmp_path: Path, option: dict[str, object], param: str) -> None:
    # (they read nothing, hung, or ended as "the Kafka client crashed")
    topic = new_topic(broker, partitions=1)
    with pytest.raises(eventkit.ParameterError) as caught:
        ingest(tmp_path / "a", broker.bootstrap, topic, **{"idle_timeout": 1.0, **option})  # type: ignore[arg-type]
    assert caught.value.param == param
    assert "crashed" not in str(caught.value)
    assert not (tmp_path / "a").exists()


def test_a_mapping_naming_a_column_the_archive_lacks_is_refused(
        broker: Broker, tmp_path: Path) -> None:
    topic = new_topic(broker, partitions=1)
    with pytest.raises(eventkit.SchemaError, match="nosuch"):
        ingest(tmp_path / "a", broker.bootstrap, topic, mapping={"nosuch": "x"},
               idle_timeout=1.0)


def run_ingester(broker: Broker, topic: str, archive: Path, *args: str
                 ) -> subprocess.Popen[bytes]:
    """``eventkit ingest`` in a process of its own; its output goes to ARCHIVE.log."""
    with archive.with_suffix(".log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "eventkit", "ingest", "--bootstrap", broker.bootstrap,
             "--topic", topic, "--archive", str(archive), *args],
            cwd=ROOT, stdout=log, stderr=log)


def finished(proc: subprocess.Popen[bytes], archive: Path, timeout: float = 120) -> str:
    proc.wait(timeout)
    out = archive.with_suffix(".log").read_text()
    assert proc.returncode == 0, out
    return out


def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def archived_rows(path: Path) -> int:
    try:
        return len(EventArchive(path))
    except eventkit.ArchiveError:
        return 0


@pytest.mark.slow
def test_kill_9_of_the_ingester_mid_batch_then_restart_loses_and_repeats_nothing(
        broker: Broker, bank: pl.DataFrame, tmp_path: Path) -> None:
    topic = new_topic(broker, partitions=3)
    produce(bank, broker.bootstrap, topic)
    archive = tmp_path / "a"
    rng = random.Random(9)
    kills = 0
    while kills < 4:
        proc = run_ingester(broker, topic, archive, "--batch-size", "150", "--idle-timeout", "2")
        before = archived_rows(archive)
        # kill it somewhere inside the stream of small commits
        try:
            wait_for(lambda before=before: archived_rows(archive) > before, 60)
        except AssertionError:
            proc.kill()
            raise
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        kills += 1
        assert archived_rows(archive) < bank.height, "finished before the kill"
    finished(run_ingester(broker, topic, archive, "--idle-timeout", "2"), archive)

    assert kills == 4
    same_events(stored(archive), bank)  # every event once: none lost, none twice
    assert stored_offsets(EventArchive(archive), topic) == end_offsets(broker, topic)
    assert EventArchive(archive).verify().ok
    assert not dead_letter_path(archive).exists()


@pytest.mark.slow
def test_broker_restart_while_ingesting(
        broker: Broker, bank: pl.DataFrame, tmp_path: Path) -> None:
    topic = f"restart-{os.getpid()}"
    first, second = bank.head(2_000), bank.slice(2_000, 1_500)
    create_topic(broker.bootstrap, topic, 2)
    produce(first, broker.bootstrap, topic)
    archive = tmp_path / "a"
    proc = run_ingester(broker, topic, archive, "--batch-size", "500", "--idle-timeout", "25")
    try:
        wait_for(lambda: archived_rows(archive) == first.height, 60)
        # the broker goes away and comes back (its memory storage is refilled with the
        # same log, as a durable broker would keep it, and then more)
        broker.restart()
        time.sleep(1.0)
        create_topic(broker.bootstrap, topic, 2)
        produce(first, broker.bootstrap, topic)
        produce(second, broker.bootstrap, topic)
        wait_for(lambda: archived_rows(archive) == first.height + second.height, 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        finished(proc, archive)
    same_events(stored(archive), bank.head(3_500))
    assert stored_offsets(EventArchive(archive), topic) == end_offsets(broker, topic)


def test_produce_and_ingest_on_the_command_line(broker: Broker, tmp_path: Path) -> None:
    source = tmp_path / "src"
    generate(source, events=800, accounts=20, seed=5, progress=False)
    topic = f"cli-{os.getpid()}"
    produced = subprocess.run(
        [sys.executable, "-m", "eventkit", "produce", str(source), "--bootstrap",
         broker.bootstrap, "--topic", topic, "--partitions", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert produced.returncode == 0, produced.stderr
    assert "produced 800 events" in produced.stdout
    out = finished(run_ingester(broker, topic, tmp_path / "a", "--idle-timeout", "1.5"),
                   tmp_path / "a")
    assert "ingested 800 events" in out
    same_events(stored(tmp_path / "a"), eventkit.open_archive(source).collect())
