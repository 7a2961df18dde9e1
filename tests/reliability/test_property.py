"""Property-based loaders: random valid batches round-trip exactly, invalid ones leave no trace.

Valid: any text ids (up to the 256-byte limit), any Int64 keys, the whole
1900..2200 range of microsecond times, optional counterparties and rates,
columns under the user's own names with a mapping, ``recorded_at`` stamped or
kept. Appended in one to three batches, the archive must give back exactly
those events (``seq`` continuing the log), and replay to what the reference
oracle folds. Invalid: a valid batch with one random defect; the append must
raise an ``EventDataError`` and leave every byte of the archive as it was.
"""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oracle_checks import FAST, check_against_oracle
from test_archive import assert_unchanged, snapshot

from eventkit import EventArchive, EventDataError
from eventkit.archive._checks import MAX_ID_BYTES
from eventkit.schema import CANONICAL_SCHEMA, EVENT_TYPES, MONEY_EVENT_TYPES

INT64 = st.integers(-(2**63), 2**63 - 1)
ACCOUNTS = st.one_of(st.integers(0, 5), INT64)
TIMES = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31),
                     timezones=st.just(UTC))
IDS = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) <= MAX_ID_BYTES)
INPUT_SCHEMA = {c: t for c, t in CANONICAL_SCHEMA.items() if c not in ("seq", "recorded_at")}


@st.composite
def rows(draw: st.DrawFn, ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for event_id in ids:
        event_type = draw(st.sampled_from(EVENT_TYPES))
        if event_type in MONEY_EVENT_TYPES:
            amount = draw(st.integers(0, 2**40))
        elif event_type == "Correction":
            amount = draw(st.integers(-(2**40), 2**40))
        else:
            amount = 0
        out.append({
            "event_id": event_id,
            "account_id": draw(ACCOUNTS),
            "event_type": event_type,
            "event_time": draw(TIMES),
            "amount": amount,
            "counterparty_id": draw(st.none() | INT64),
            "rate": draw(st.none() | st.floats(-1, 1, allow_nan=False)),
        })
    return out


@st.composite
def batches(draw: st.DrawFn) -> list[pl.DataFrame]:
    """One to three batches of 1..12 events with ids unique across all of them."""
    sizes = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3))
    ids = draw(st.lists(IDS, min_size=sum(sizes), max_size=sum(sizes), unique=True))
    out, at = [], 0
    for n in sizes:
        out.append(pl.DataFrame(draw(rows(ids[at:at + n])), schema=INPUT_SCHEMA))
        at += n
    return out


def with_mapping(draw: st.DrawFn, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, str]]:
    """Maybe rename some columns to the user's names and map them back."""
    renamed = draw(st.lists(st.sampled_from(list(INPUT_SCHEMA)), unique=True, max_size=3))
    mapping = {c: f"user_{c}" for c in renamed}
    return frame.rename({c: f"user_{c}" for c in renamed}), mapping


@pytest.mark.slow
@settings(FAST, max_examples=40)
@given(data=st.data(), sent=batches())
def test_valid_batches_round_trip_exactly(data: st.DataObject, sent: list[pl.DataFrame]
                                          ) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = EventArchive.create(Path(tmp) / "bank")
        expected = []
        latest = None  # the archive's latest recorded_at: transaction time never goes below it
        for frame in sent:
            keep = data.draw(st.booleans(), label="keep recorded_at")
            if keep:
                frame = frame.with_columns(recorded_at=pl.Series([data.draw(
                    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2024, 1, 1),
                                 timezones=st.just(UTC))) for _ in range(frame.height)]))
            user_frame, mapping = with_mapping(data.draw, frame)
            if keep and latest is not None and frame["recorded_at"].min() < latest:
                before = snapshot(archive.path)  # an older kept time: refused, naming it
                with pytest.raises(EventDataError, match="before the latest recorded_at"):
                    archive.append(user_frame, mapping=mapping or None, recorded_at="keep")
                assert_unchanged(archive.path, before)
                frame = frame.with_columns(  # clamped to the latest only when asked
                    pl.max_horizontal("recorded_at", pl.lit(latest)).alias("recorded_at"))
            receipt = archive.append(user_frame, mapping=mapping or None,
                                     recorded_at="keep" if keep else "now",
                                     before_latest="clamp" if keep else "raise")
            assert receipt.rows == frame.height
            expected.append(frame)
            latest = archive.scan().select(pl.col("recorded_at").max()).collect().item()

        stored = archive.scan().collect()

        assert stored.schema == pl.Schema(CANONICAL_SCHEMA)
        assert stored["seq"].to_list() == list(range(stored.height))
        want = pl.concat([f.select(list(INPUT_SCHEMA)) for f in expected])
        assert stored.select(list(INPUT_SCHEMA)).equals(want)
        for frame, got in zip(expected, _split(stored, expected), strict=True):
            if "recorded_at" in frame.columns:
                assert got["recorded_at"].equals(frame["recorded_at"].cast(
                    CANONICAL_SCHEMA["recorded_at"]))
            else:  # stamped: one commit time, close to now
                assert got["recorded_at"].n_unique() == 1
                assert abs(got["recorded_at"][0] - datetime.now(UTC)) < timedelta(minutes=5)
        assert archive.verify().ok
        check_against_oracle(stored, "balance")


def _split(stored: pl.DataFrame, frames: list[pl.DataFrame]) -> list[pl.DataFrame]:
    out, at = [], 0
    for f in frames:
        out.append(stored.slice(at, f.height))
        at += f.height
    return out


def _set(frame: pl.DataFrame, column: str, row: int, value: Any, dtype: Any = None
         ) -> pl.DataFrame:
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=dtype or frame[column].dtype))


DEFECTS = {
    "null-key": lambda f, r, _: _set(f, "account_id", r, None),
    "null-id": lambda f, r, _: _set(f, "event_id", r, None),
    "null-type": lambda f, r, _: _set(f, "event_type", r, None),
    "null-time": lambda f, r, _: _set(f, "event_time", r, None),
    "nan-amount": lambda f, r, _: _set(f.with_columns(pl.col("amount").cast(pl.Float64)),
                                       "amount", r, math.nan),
    "inf-amount": lambda f, r, _: _set(f.with_columns(pl.col("amount").cast(pl.Float64)),
                                       "amount", r, math.inf),
    "negative-deposit": lambda f, r, _: _set(_set(f, "event_type", r, "Deposit"), "amount",
                                             r, -1),
    "unknown-type": lambda f, r, _: _set(f, "event_type", r, "Bogus"),
    "duplicate-in-batch": lambda f, r, _: _set(
        pl.concat([f, f.slice(r, 1)]), "event_id", f.height, f["event_id"][r]),
    "duplicate-in-archive": lambda f, r, old: _set(f, "event_id", r, old),
    "id-too-long": lambda f, r, _: _set(f, "event_id", r, "x" * (MAX_ID_BYTES + 1)),
    "empty-id": lambda f, r, _: _set(f, "event_id", r, ""),
    "time-out-of-range": lambda f, r, _: _set(f, "event_time", r,
                                              datetime(9999, 12, 31, tzinfo=UTC)),
    "naive-times": lambda f, r, _: f.with_columns(pl.col("event_time").dt.replace_time_zone(
        None)),
    "nan-rate": lambda f, r, _: _set(f, "rate", r, math.nan),
    "extra-column": lambda f, r, _: f.with_columns(extra=pl.lit(r)),
    "missing-column": lambda f, r, _: f.drop("amount"),
    "seq-given": lambda f, r, _: f.with_columns(seq=pl.int_range(pl.len())),
    "binary-id": lambda f, r, _: _set(f.with_columns(pl.col("event_id").cast(pl.Binary)),
                                      "event_id", r, b"\xff"),
}


@pytest.mark.parametrize("defect", DEFECTS)
@settings(FAST, max_examples=4)
@given(data=st.data(), sent=batches())
def test_invalid_batches_are_rejected_whole(data: st.DataObject, sent: list[pl.DataFrame],
                                            defect: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = EventArchive.create(Path(tmp) / "bank")
        archive.append(pl.DataFrame({"event_id": ["old"], "account_id": [1],
                                     "event_type": ["Deposit"], "amount": [5],
                                     "event_time": [datetime(2024, 1, 1, tzinfo=UTC)]}))
        frame = sent[0]
        assume("old" not in frame["event_id"].to_list())
        row = data.draw(st.integers(0, frame.height - 1), label="row")
        bad = DEFECTS[defect](frame, row, "old")
        before = snapshot(archive.path)

        try:
            archive.append(bad)
        except EventDataError:
            pass
        else:
            raise AssertionError(f"{defect} was accepted")

        assert_unchanged(archive.path, before)
        assert archive.verify().ok
        # the good version of the batch still goes in, whole
        archive.append(frame)
        assert archive.scan().collect().height == 1 + frame.height
