"""Kafka ingest's appends in a worker thread: one at a time, in order, nothing lost or hidden.

(The broker tests in tests/test_ingest.py run the whole path; these pin the hand-off.)
"""

from __future__ import annotations

import threading
import time

import pytest

from eventkit.streams.kafka import IngestSummary, _Appends, _Messages


def batch(n: int) -> _Messages:
    messages = _Messages()
    messages.values = [b"{}"] * n
    return messages


def test_appends_run_in_order_one_at_a_time_and_report_in_the_callers_thread() -> None:
    running, log, seen = threading.Lock(), [], []

    def store(messages: _Messages, work: IngestSummary) -> None:
        assert running.acquire(blocking=False), "two appends at once"
        try:
            time.sleep(0.05)
            log.append((len(messages), work.events, threading.current_thread().name))
            work.events += len(messages)
            work.batches += 1
            work.offsets = {0: work.offsets.get(0, 0) + len(messages)}
        finally:
            running.release()

    summary = IngestSummary()
    appends = _Appends(store, summary,
                       lambda s: seen.append((s.events, threading.current_thread().name)))
    for n in (3, 5, 7):
        appends.submit(batch(n))
        assert appends.pending == n
        assert summary.events < 15  # the caller's summary changes only when settled
    appends.settle()
    appends.close()

    assert [(n, before) for n, before, _ in log] == [(3, 0), (5, 3), (7, 8)]
    assert all(name.startswith("eventkit-ingest") for _, _, name in log)
    me = threading.current_thread().name
    assert seen == [(3, me), (8, me), (15, me)]
    assert (summary.events, summary.batches, summary.offsets) == (15, 3, {0: 15})
    assert appends.pending == 0


def test_an_append_that_fails_raises_in_the_caller() -> None:
    def store(messages: _Messages, work: IngestSummary) -> None:
        raise RuntimeError("disk full")

    summary = IngestSummary()
    appends = _Appends(store, summary, None)
    appends.submit(batch(2))
    with pytest.raises(RuntimeError, match="disk full"):
        appends.settle()
    appends.close()
    assert summary.events == 0


def test_close_waits_for_the_append_in_flight() -> None:
    done = threading.Event()

    def store(messages: _Messages, work: IngestSummary) -> None:
        time.sleep(0.2)
        done.set()

    appends = _Appends(store, IngestSummary(), None)
    appends.submit(batch(1))
    appends.close()
    assert done.is_set()
