"""A Kafka consumer in a child process: a crash of the Kafka client is an error, not ours.

librdkafka (under ``confluent-kafka``) crashes the whole process when a topic is
deleted while it is read (a null pointer in its metadata cache). So
:func:`eventkit.streams.kafka.ingest` reads through :class:`ConsumerProcess`:
the consumer lives in a child process (:mod:`eventkit.streams._consumer_worker`,
which imports nothing of eventkit) that answers over pipes; if it dies, or
stops answering, the ingest raises :class:`~eventkit.exceptions.IngestError`
naming the broker, the topic and how the client ended. The archive is never
touched by the child: events and offsets still commit together in the parent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from eventkit.exceptions import IngestError, ParameterError

__all__ = ["ConsumerProcess", "Fetched", "Watch"]

#: What a ``consume`` gives: the messages' partitions, offsets and values, and the
#: problems, ``(partition or None, (code name, text, fatal))``.
Fetched = tuple[list[int], list[int], list[bytes], list[tuple[int | None, tuple[str, str, bool]]]]
_WORKER = Path(__file__).with_name("_consumer_worker.py")
_SLACK = 30.0  # seconds a request may take beyond its own timeout before the child is dead


class ConsumerProcess:
    """``confluent_kafka.Consumer(config)`` in a child process, for one topic.

    Examples
    --------
    >>> with ConsumerProcess("127.0.0.1:9092", "tx", {}) as client:  # doctest: +SKIP
    ...     client.partitions(5.0)
    ([0, 1, 2], None)

    """

    def __init__(self, bootstrap: str, topic: str, config: dict[str, Any], *,
                 probe: bool = False) -> None:
        self.bootstrap, self.topic, self._probe = bootstrap, topic, probe
        to_child, self._requests = os.pipe()
        self._replies, from_child = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(_WORKER), str(to_child), str(from_child)],
            pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._ahead: tuple[Any, ...] | None = None  # a consume asked ahead, not yet answered
        self._out = Connection(self._requests, readable=False)
        self._in = Connection(self._replies, writable=False)
        self._out.send(config)

    def __enter__(self) -> ConsumerProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def partitions(self, timeout: float) -> tuple[list[int], str | None]:
        """The topic's partitions and None, or ``[]`` and why it cannot be read.

        ``why`` is ``"missing"`` or the broker's error for the topic. Raises
        :class:`IngestError` when the broker cannot be asked at all.
        """
        found = self._call(("topics", self.topic, timeout), timeout)
        if found is None:
            return [], "missing"
        partitions, error = found
        return ([], error) if error is not None else (list(partitions), None)

    def assign(self, positions: dict[int, int]) -> None:
        """Read each partition from its offset."""
        self._call(("assign", self.topic, sorted(positions.items())), 0.0)

    def ends(self, partitions: list[int]) -> dict[int, int]:
        """Each partition's log end as the last fetches reported it (negative: not known yet).

        (Not a ListOffsets request: some brokers answer those wrongly.)
        """
        return dict(self._call(("ends", self.topic, partitions), 0.0))

    def consume(self, n: int, timeout: float) -> Fetched:
        """Up to ``n`` messages within ``timeout`` s, and the problems met since last time.

        After :meth:`prefetch`, its answer (whatever ``n`` and ``timeout`` say now).
        """
        if self._ahead is None:
            self.prefetch(n, timeout)
        fetched: Fetched = self._settle()
        return fetched

    def prefetch(self, n: int, timeout: float) -> None:
        """Ask for the next :meth:`consume` now: the child fetches while the caller works."""
        if self._ahead is None:
            self._ahead = ("consume", n, timeout)
            self._send(self._ahead)

    def _settle(self) -> Any:
        """The answer to the consume asked ahead (None if none was)."""
        ahead, self._ahead = self._ahead, None
        return None if ahead is None else self._receive(ahead, ahead[2])

    def close(self) -> None:
        """Close the consumer and end the child (killed if it does not end by itself)."""
        if self.proc.poll() is None:
            try:
                self._out.send(("close",))
                if self._in.poll(10):
                    self._in.recv()
            except (OSError, EOFError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()
        self._in.close()

    def _call(self, request: tuple[Any, ...], timeout: float) -> Any:
        if self._ahead is not None:  # messages asked ahead come first; nothing is lost:
            self._settle()           # offsets only advance with commits
        self._send(request)
        return self._receive(request, timeout)

    def _send(self, request: tuple[Any, ...]) -> None:
        try:
            self._out.send(request)
        except OSError:
            raise self._died() from None

    def _receive(self, request: tuple[Any, ...], timeout: float) -> Any:
        try:
            if not self._in.poll(timeout + _SLACK):
                self.proc.kill()
                self.proc.wait(10)
                msg = (f"the Kafka client reading topic {self.topic!r} on {self.bootstrap} "
                       f"stopped answering ({request[0]} took over {timeout + _SLACK:.0f} s)")
                raise IngestError(msg, topic=self.topic)
            status, value = self._in.recv()
        except (EOFError, OSError):
            raise self._died() from None
        if status == "config":
            msg = f"the Kafka client refused the consumer settings: {value}"
            raise ParameterError(msg, param="config")
        if status != "ok":
            msg = f"broker {self.bootstrap}, topic {self.topic!r}: {value}"
            raise IngestError(msg, topic=self.topic)
        return value

    def _died(self) -> IngestError:
        """The error for a child that ended without answering: how, and whether the topic is."""
        code = self.proc.wait(10)
        how = (f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}")
        gone = False
        if not self._probe:  # ask a fresh client whether the topic is still there
            try:
                with ConsumerProcess(self.bootstrap, self.topic, {
                        "bootstrap.servers": self.bootstrap, "group.id": "eventkit-probe"},
                        probe=True) as probe:
                    gone = probe.partitions(10.0)[1] is not None
            except IngestError:
                pass
        why = (f"topic {self.topic!r} no longer exists on {self.bootstrap} (deleted while it "
               "was read?)" if gone else f"reading topic {self.topic!r} on {self.bootstrap}")
        msg = (f"{why}: the Kafka client (librdkafka) crashed ({how}); events up to the last "
               "commit are stored, a new run resumes from there")
        return IngestError(msg, topic=self.topic)


#: librdkafka errors that mean "the topic or a partition is not there (now)".
_MISSING = {"UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION",
            "UNKNOWN_TOPIC_ID", "LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION"}


class Watch:
    """Troubles with the broker or the topic, each since when; fatal after ``timeout`` s.

    Kinds: ``("offset", p)`` (partition ``p``'s log ends before the offset the
    archive has read to: the broker lost data), ``("topic",)`` (the topic or
    some partitions are missing) and ``("broker",)`` (unreachable, or any other
    error). The broker is asked (metadata and log ends) once a second while a
    trouble is open, every few seconds while no message comes (some troubles
    make no error: a deleted topic may just fall silent), and when the run
    stops; an answer that finds all well clears the trouble.
    """

    def __init__(self, client: ConsumerProcess, position: dict[int, int], timeout: float
                 ) -> None:
        self.client, self.position, self.timeout = client, position, timeout
        self.troubles: dict[tuple[Any, ...], tuple[float, str]] = {}
        self.asked = 0.0
        self.where = f"broker {client.bootstrap}, topic {client.topic!r}"

    def saw(self, errors: list[tuple[int | None, tuple[str, str, bool]]], now: float) -> bool:
        """Note the errors of a ``consume``; whether offsets must be assigned again."""
        again = False
        for partition, (code, text, fatal) in errors:
            if fatal:
                msg = f"{self.where}: {text}"
                raise IngestError(msg, topic=self.client.topic)
            if code == "_AUTO_OFFSET_RESET" and partition is not None:
                again = True
                self._short(partition, now)
            else:
                self._note(("topic",) if code in _MISSING else ("broker",), now,
                           f"{self.where}: {text}")
        return again

    def progress(self, partition: int) -> None:
        """A message came from ``partition``: its log reaches our offset."""
        self.troubles.pop(("offset", partition), None)

    def check(self, now: float, quiet_since: float, *, stopping: bool = False) -> None:
        """Ask the broker when it is time; raise a trouble that lasted ``timeout`` s.

        ``quiet_since``: when the last message came. ``stopping``: the run ends
        now, so any open trouble is raised at once (never a silent end).
        """
        due = 1.0 if self.troubles else 5.0
        if stopping or (now - self.asked >= due and (self.troubles or now - quiet_since >= due)):
            self.asked = now
            self._ask(now)
        for since, problem in self.troubles.values():
            if stopping or now - since >= self.timeout:
                lasted = "" if stopping else f" for {now - since:.0f} s"
                msg = (f"{problem}{lasted}; events up to the last commit are stored, a new run "
                       "resumes from there")
                raise IngestError(msg, topic=self.client.topic)

    def _ask(self, now: float) -> None:
        try:
            found, why = self.client.partitions(min(self.timeout, 5.0))
            ends = self.client.ends(sorted(self.position)) if why is None else {}
        except IngestError as exc:
            self._note(("broker",), now,
                       f"cannot reach the broker at {self.client.bootstrap} ({exc})")
            return
        self.troubles.pop(("broker",), None)
        gone = sorted(set(self.position) - set(found))
        if why is not None:
            self._note(("topic",), now, f"{self.where} cannot be read ({why}: deleted?)")
        elif gone:
            self._note(("topic",), now, f"{self.where}: partition(s) {gone} are gone")
        else:
            self.troubles.pop(("topic",), None)
        for partition, end in ends.items():
            if 0 <= end < self.position[partition]:
                self._short(partition, now)
            elif end >= self.position[partition]:
                self.troubles.pop(("offset", partition), None)

    def _short(self, partition: int, now: float) -> None:
        self._note(("offset", partition), now, (
            f"{self.where}: partition {partition} ends before offset "
            f"{self.position[partition]}, which the archive has read to (the broker lost "
            "data, or the topic was created again)"))

    def _note(self, kind: tuple[Any, ...], now: float, problem: str) -> None:
        since = self.troubles.get(kind, (now, problem))[0]
        self.troubles[kind] = (since, problem)
