"""Kafka ingest is deterministic and ends cleanly, against a real broker (Tansu).

Determinism, property-tested: random messages (events, copies of an id, bad
amounts, text that is not JSON, JSON naming a key twice) are produced to random
partitions in a random interleaving; whatever the interleaving and whatever
else the batch holds, the archive keeps, of each ``event_id``, the first event
by (partition, offset), and every other message is dead-lettered once with its
reason (a copy names the one kept). An oracle folds the same messages in
(partition, offset) order in plain Python.

Ending: a topic deleted while it is read (librdkafka then crashes its process),
a broker that goes away, a partition that is lost, a partition whose log
no longer reaches the archive's offsets: each ends the run with an
``IngestError`` naming it. These runs are made in a child process, so a crash
fails the test instead of killing pytest; a self-test shows the crash is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ingest import broker, new_topic  # noqa: F401 (broker: the session's fixture)

from eventkit import EventArchive, IngestError
from eventkit.streams.kafka import create_topic, dead_letter_path, ingest

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
Broker = Any  # tests/broker.py's Broker

KINDS = ["event"] * 6 + ["bad-amount", "not-json", "doubled-key"]


def value(kind: str, event_id: str, amount: int) -> bytes:
    body = (f'"event_id": "{event_id}", "account_id": 5, "event_type": "Deposit", '
            f'"event_time": "2024-03-01T00:00:00Z"')
    if kind == "not-json":
        return f"{{{body}, amount: {amount}".encode()
    if kind == "bad-amount":
        return f'{{{body}, "amount": "{amount}x"}}'.encode()
    if kind == "doubled-key":  # a JSON reader would keep one of the two silently
        return f'{{{body}, "amount": {amount}, "amount": 1}}'.encode()
    return f'{{{body}, "amount": {amount}}}'.encode()


@st.composite
def streams(draw: st.DrawFn, *, partitions: int, ids_cross_partitions: bool
            ) -> list[tuple[int, str, str]]:
    """(partition, kind, event_id) per message, in the order they are produced."""
    n = draw(st.integers(1, 24))
    out = []
    for _ in range(n):
        partition = draw(st.integers(0, partitions - 1))
        number = draw(st.integers(0, max(1, n // 3)))
        event_id = f"e{number}" if ids_cross_partitions else f"p{partition}-e{number}"
        out.append((partition, draw(st.sampled_from(KINDS)), event_id))
    return out


def produce_all(tansu: Broker, topic: str, stream: list[tuple[int, str, str]]
                ) -> dict[tuple[int, int], tuple[str, str, int]]:
    """Send ``stream`` in its order; (partition, offset) -> (kind, id, amount)."""
    producer = Producer({"bootstrap.servers": tansu.bootstrap, "enable.idempotence": True})
    placed: dict[tuple[int, int], tuple[str, str, int]] = {}
    for i, (partition, kind, event_id) in enumerate(stream):
        amount = 1_000 + i

        def delivered(err: Any, msg: Any, kind: str = kind, event_id: str = event_id,
                      amount: int = amount) -> None:
            assert err is None, err
            placed[(msg.partition(), msg.offset())] = (kind, event_id, amount)

        producer.produce(topic, value(kind, event_id, amount), partition=partition,
                         on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert len(placed) == len(stream)
    return placed


def oracle(placed: dict[tuple[int, int], tuple[str, str, int]]
           ) -> tuple[set[tuple[str, int]], dict[tuple[int, int], str]]:
    """What the archive and the dead letters must hold: a plain fold in (partition, offset).

    A later copy of an id is a letter ``"copy"``; which earlier message its reason
    names depends on the batches (the first of its batch), so :func:`check` takes
    any earlier message with that id — but in one batch, exactly the one kept.
    """
    seen: set[str] = set()
    archived, letters = set(), {}
    for (p, o), (kind, event_id, amount) in sorted(placed.items()):
        if kind != "event":
            letters[(p, o)] = kind
        elif event_id in seen:
            letters[(p, o)] = "copy"
        else:
            seen.add(event_id)
            archived.add((event_id, amount))
    return archived, letters


REASONS = {"bad-amount": "amount", "not-json": "not a JSON event object",
           "doubled-key": "key 'amount' appears twice"}


def check(archive: Path, placed: dict[tuple[int, int], tuple[str, str, int]], *,
          one_batch: bool = True) -> None:
    want_archived, want_letters = oracle(placed)
    stored = EventArchive(archive).scan().collect()
    assert set(zip(stored["event_id"].to_list(), stored["amount"].to_list(),
                   strict=True)) == want_archived
    letters = [json.loads(line) for line in dead_letter_path(archive).read_text().splitlines()] \
        if dead_letter_path(archive).exists() else []
    assert len(letters) == len(want_letters)  # each once
    for letter in letters:
        at = (letter["partition"], letter["offset"])
        want = want_letters[at]
        if want != "copy":
            assert REASONS[want] in letter["reason"], letter
            continue
        _, event_id, _ = placed[at]
        events = sorted(k for k, (kind, i, _) in placed.items()
                        if kind == "event" and i == event_id)
        named = [f"(the same as partition {p}, offset {o}, before it)" in letter["reason"]
                 for p, o in events if (p, o) < at]
        if one_batch:  # the first event with the id: the one archived
            assert named and named[0], letter
        else:  # an earlier one of its batch, or the one met in the archive
            assert any(named) or "is already in the archive" in letter["reason"], letter


@pytest.mark.slow
@settings(deadline=None, max_examples=8, suppress_health_check=list(HealthCheck))
@given(stream=streams(partitions=3, ids_cross_partitions=True))
def test_one_batch_keeps_the_first_copy_by_partition_and_offset_whatever_the_interleaving(
        broker: Broker, stream: list[tuple[int, str, str]]) -> None:  # noqa: F811
    topic = new_topic(broker, partitions=3)
    placed = produce_all(broker, topic, stream)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "a"
        summary = ingest(archive, broker.bootstrap, topic, batch_size=10_000, max_wait=3.0,
                         idle_timeout=1.0)
        check(archive, placed)
        assert summary.batches <= 1


@pytest.mark.slow
@settings(deadline=None, max_examples=5, suppress_health_check=list(HealthCheck))
@given(stream=streams(partitions=2, ids_cross_partitions=False),
       batch_size=st.integers(1, 6))
def test_copies_within_a_partition_keep_the_first_whatever_the_batches(
        broker: Broker, stream: list[tuple[int, str, str]], batch_size: int) -> None:  # noqa: F811
    topic = new_topic(broker, partitions=2)
    placed = produce_all(broker, topic, stream)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "a"
        ingest(archive, broker.bootstrap, topic, batch_size=batch_size, max_wait=0.2,
               idle_timeout=1.0)
        check(archive, placed, one_batch=False)
        # a second run adds nothing and writes no letter twice
        again = ingest(archive, broker.bootstrap, topic, idle_timeout=0.5)
        assert (again.events, again.dead_letters) == (0, 0)
        check(archive, placed, one_batch=False)


def test_the_first_by_partition_not_by_arrival_is_kept(broker: Broker) -> None:  # noqa: F811
    """The copy produced first (partition 1) is not the one kept (partition 0); and the
    oracle catches the other choice (self-test)."""
    topic = new_topic(broker, partitions=2)
    placed = produce_all(broker, topic, [(1, "event", "x"), (0, "event", "x")])
    assert placed == {(1, 0): ("event", "x", 1_000), (0, 0): ("event", "x", 1_001)}
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "a"
        ingest(archive, broker.bootstrap, topic, max_wait=2.0, idle_timeout=1.0)
        check(archive, placed)
        assert EventArchive(archive).scan().collect()["amount"].to_list() == [1_001]
        with pytest.raises(AssertionError):  # had the arrival order decided
            check(archive, {(0, 0): ("event", "x", 1_000), (1, 0): ("event", "x", 1_001)})


# ---------------------------------------------------------------------- ending cleanly

INGEST = """
    import sys, threading, time
    from confluent_kafka.admin import AdminClient
    import eventkit
    from eventkit.streams.kafka import ingest
    admin = AdminClient({{"bootstrap.servers": {bootstrap!r}}})
    def delete():  # once the first events are stored
        while True:
            try:
                if len(eventkit.EventArchive({archive!r})) >= {delete_after}:
                    break
            except eventkit.ArchiveError:
                pass
            time.sleep(0.1)
        admin.delete_topics([{topic!r}])[{topic!r}].result(10)
        print("deleted", flush=True)
    if {delete_after} > 0:
        threading.Thread(target=delete, daemon=True).start()
    try:
        print(ingest({archive!r}, {bootstrap!r}, {topic!r}, idle_timeout={idle},
                     broker_timeout={timeout}), flush=True)
    except eventkit.IngestError as exc:
        print("IngestError:", exc, flush=True)
"""


def run_child(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def fill(tansu: Broker, topic: str, n: int = 200) -> None:
    producer = Producer({"bootstrap.servers": tansu.bootstrap})
    for i in range(n):
        producer.produce(topic, value("event", f"f{i}", i), key=str(i % 7).encode())
    assert producer.flush(30) == 0


def test_a_topic_deleted_while_it_is_read_ends_the_run_with_an_ingest_error(
        broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    topic = new_topic(broker, partitions=2)
    fill(broker, topic)
    done = run_child(INGEST.format(bootstrap=broker.bootstrap, topic=topic, delete_after=200,
                                   archive=str(tmp_path / "a"), idle=20, timeout=30))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "deleted" in done.stdout
    line = done.stdout.splitlines()[-1]
    assert line.startswith("IngestError:") and f"topic {topic!r}" in line, done.stdout
    assert len(EventArchive(tmp_path / "a")) == 200  # what was read before stays stored


DELETE_UNDER_PLAIN_CONSUMER = """
    import time
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({{"bootstrap.servers": {bootstrap!r}}})
    consumer = Consumer({{"bootstrap.servers": {bootstrap!r}, "group.id": "g"}})
    consumer.assign([TopicPartition({topic!r}, p, 0) for p in (0, 1)])
    consumer.consume(1000, timeout=2)
    admin.delete_topics([{topic!r}])[{topic!r}].result(10)
    for _ in range(20):
        consumer.consume(1000, timeout=0.5)
    print("survived")
"""


def test_self_test_librdkafka_really_crashes_when_a_topic_is_deleted(
        broker: Broker) -> None:  # noqa: F811
    topic = new_topic(broker, partitions=2)
    fill(broker, topic, 20)
    done = run_child(DELETE_UNDER_PLAIN_CONSUMER.format(bootstrap=broker.bootstrap, topic=topic))
    assert done.returncode < 0 and "survived" not in done.stdout, (done.returncode, done.stdout)


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker of this test alone: it is stopped or restarted under the ingest."""
    from broker import Broker as Tansu

    b = Tansu(tmp_path_factory.mktemp("tansu-own"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


def start_ingest(tansu: Broker, topic: str, archive: Path, **kw: Any
                 ) -> subprocess.Popen[str]:
    code = INGEST.format(bootstrap=tansu.bootstrap, topic=topic, delete_after=0,
                         archive=str(archive), idle=kw.get("idle", 60),
                         timeout=kw.get("timeout", 3))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stored_rows(archive: Path) -> int:
    try:
        return len(EventArchive(archive))
    except Exception:  # not created yet
        return 0


def wait_rows(archive: Path, rows: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while stored_rows(archive) < rows:
        assert time.monotonic() < deadline, "ingest did not store the first events"
        time.sleep(0.1)


def ended(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, float]:
    began = time.monotonic()
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out.strip().splitlines()[-1], time.monotonic() - began


@pytest.mark.slow
def test_a_broker_gone_for_longer_than_broker_timeout_ends_the_run(
        own_broker: Broker, tmp_path: Path) -> None:
    topic = f"gone-{os.getpid()}"
    create_topic(own_broker.bootstrap, topic, 2)
    fill(own_broker, topic)
    proc = start_ingest(own_broker, topic, tmp_path / "a", timeout=3)
    wait_rows(tmp_path / "a", 200)
    own_broker.stop()
    line, seconds = ended(proc)
    assert line.startswith("IngestError:") and "cannot reach the broker" in line, line
    assert own_broker.bootstrap in line and seconds < 40


@pytest.mark.slow
def test_a_lost_partition_ends_the_run_naming_it(own_broker: Broker, tmp_path: Path) -> None:
    topic = f"lost-{os.getpid()}"
    create_topic(own_broker.bootstrap, topic, 2)
    fill(own_broker, topic)
    proc = start_ingest(own_broker, topic, tmp_path / "a", timeout=3)
    wait_rows(tmp_path / "a", 200)
    own_broker.restart()  # in memory: the topic is lost; it comes back with one partition
    create_topic(own_broker.bootstrap, topic, 1)
    line, _ = ended(proc)
    assert line.startswith("IngestError:") and "partition(s) [1]" in line, line


@pytest.mark.slow
def test_a_partition_whose_log_lost_the_archives_offsets_ends_the_run(
        own_broker: Broker, tmp_path: Path) -> None:
    topic = f"short-{os.getpid()}"
    create_topic(own_broker.bootstrap, topic, 2)
    fill(own_broker, topic)
    proc = start_ingest(own_broker, topic, tmp_path / "a", timeout=3)
    wait_rows(tmp_path / "a", 200)
    own_broker.restart()  # the topic comes back empty: the archive has read beyond its end
    create_topic(own_broker.bootstrap, topic, 2)
    line, _ = ended(proc)
    assert line.startswith("IngestError:") and "partition 0 ends before offset" in line, line


def test_the_cli_ends_with_one_line_when_the_topic_is_deleted(
        broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    topic = new_topic(broker, partitions=1)
    fill(broker, topic, 20)
    proc = subprocess.Popen([sys.executable, "-m", "eventkit", "ingest", "--bootstrap",
                             broker.bootstrap, "--topic", topic, "--archive",
                             str(tmp_path / "a"), "--idle-timeout", "30"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_rows(tmp_path / "a", 20)
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics([topic])[topic].result(10)
    _, err = proc.communicate(timeout=90)
    lines = [line for line in err.splitlines() if line.startswith("eventkit: error:")]
    assert proc.returncode == 2 and len(lines) == 1, err[-3000:]
    assert topic in lines[0] and "Traceback" not in err
    with pytest.raises(IngestError, match=f"topic {topic!r} on .* cannot be read"):
        ingest(tmp_path / "a", broker.bootstrap, topic, idle_timeout=0.5)
