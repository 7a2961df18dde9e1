"""Shared by the reliability tests, and the code their writer processes run.

Batches are derived from their batch id alone, so the test process knows
exactly what every acknowledged batch must look like in the archive
(:func:`check_whole_batches`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from eventkit import AppendConflictError, EventArchive
from eventkit.archive import _append as append_module

T0 = datetime(2024, 1, 1, tzinfo=UTC)
#: Where a crash-test writer kills itself (None: killed from outside at a random moment).
STAGES = ("before-intent", "after-intent", "after-data-file", "before-commit", "after-commit",
          "before-receipt")


def batch_rows(batch_id: str) -> int:
    """1 to 4 rows, fixed by the batch id."""
    return 1 + zlib.crc32(batch_id.encode()) % 4


def make_batch(batch_id: str) -> pl.DataFrame:
    """The batch a writer sends under ``batch_id`` (no seq, no recorded_at)."""
    n = batch_rows(batch_id)
    h = zlib.crc32(batch_id.encode())
    return pl.DataFrame(
        {
            "event_id": [f"{batch_id}/{i}" for i in range(n)],
            "account_id": [(h >> i) % 7 + 1 for i in range(n)],
            "event_type": ["Deposit" if (h >> i) & 1 else "Withdrawal" for i in range(n)],
            "event_time": [T0 + timedelta(minutes=(h >> i) % 10_000) for i in range(n)],
            "amount": [(h >> i) % 100_000 for i in range(n)],
        },
        schema={"event_id": pl.String, "account_id": pl.Int64, "event_type": pl.String,
                "event_time": pl.Datetime("us", "UTC"), "amount": pl.Int64},
    )


def check_whole_batches(events: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """Every batch in ``events`` is whole, exactly as sent, in consecutive seq; seq has no gaps.

    Returns each batch's (first, last) seq.
    """
    assert events["seq"].to_list() == list(range(events.height)), "seq has gaps or repeats"
    assert events["event_id"].n_unique() == events.height, "an event is stored twice"
    ranges: dict[str, tuple[int, int]] = {}
    for (batch_id,), got in events.group_by(
            pl.col("event_id").str.split("/").list.first(), maintain_order=True):
        want = make_batch(str(batch_id))
        assert got.height == want.height, f"batch {batch_id} is partial"
        assert got.select(want.columns).equals(want), f"batch {batch_id} differs"
        first, last = got["seq"].min(), got["seq"].max()
        assert last - first + 1 == got.height, f"batch {batch_id} is not contiguous"  # type: ignore[operator]
        ranges[str(batch_id)] = (first, last)  # type: ignore[assignment]
    return ranges


def receipt_line(receipt: Any) -> bytes:
    return (json.dumps({"batch_id": receipt.batch_id, "version": receipt.version,
                        "seq": [receipt.seq_start, receipt.seq_end], "rows": receipt.rows,
                        "duplicate": receipt.duplicate}) + "\n").encode()


def read_receipts(path: Path) -> list[dict[str, Any]]:
    """Complete receipt lines only: a line cut by the kill was never acknowledged."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")[:-1]  # the part after the last newline is incomplete
    return [json.loads(line) for line in lines]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(stage: str) -> None:
    """Make this process SIGKILL itself at ``stage`` of its first append."""
    hooks = {"before-intent": "write_intent", "after-intent": "write_intent",
             "after-data-file": "write_data_file", "before-commit": "commit_version",
             "after-commit": "commit_version"}
    name = hooks[stage]
    real = getattr(append_module, name)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if stage.startswith("before"):
            _die()
        out = real(*args, **kwargs)
        _die()
        return out

    setattr(append_module, name, hooked)


def crash_writer(path: str, receipts: str, batch_ids: list[str], stage: str | None) -> None:
    """Append ``batch_ids`` one by one, writing a receipt line after each append returns.

    With ``stage``, die by SIGKILL at that point of the first append; else run
    until killed from outside (or out of batches).
    """
    archive = EventArchive(path)
    if stage is not None and stage != "before-receipt":
        _arm(stage)
    fd = os.open(receipts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for batch_id in batch_ids:
        receipt = archive.append(make_batch(batch_id), batch_id=batch_id)
        if stage == "before-receipt":
            _die()
        os.write(fd, receipt_line(receipt))  # one write: the acknowledgement


@contextlib.contextmanager
def _no_lock(_self: EventArchive) -> Iterator[None]:
    yield


def concurrent_writer(path: str, writer: int, appends: int, start_at: float, *,
                      use_lock: bool) -> tuple[list[dict[str, Any]], int]:
    """Append ``appends`` batches, retrying a batch (same id) on AppendConflictError.

    Returns the receipts and the number of conflicts met. ``use_lock=False``
    skips the archive's file lock, so writers really race for each commit.
    """
    if not use_lock:
        EventArchive.writing = _no_lock  # type: ignore[method-assign,assignment]
    archive = EventArchive(path)
    while time.time() < start_at:  # all writers start together
        time.sleep(0.001)
    receipts, conflicts = [], 0
    for k in range(appends):
        batch_id = f"w{writer}-{k}"
        while True:
            try:
                receipt = archive.append(make_batch(batch_id), batch_id=batch_id)
                break
            except AppendConflictError:
                conflicts += 1
        receipts.append(json.loads(receipt_line(receipt)))
    return receipts, conflicts


def lock_holder(path: str, ready: str, hold_s: float) -> None:
    """Hold the archive's append lock for ``hold_s`` seconds (signals ``ready`` first)."""
    archive = EventArchive(path)
    with archive.writing():
        Path(ready).touch()
        time.sleep(hold_s)
