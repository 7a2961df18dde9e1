"""Transaction time never runs backwards, whatever the clock or the caller does.

The archive reads the time from one seam, ``eventkit.archive.clock.now``; these
tests replace it with a clock they step forwards and backwards (no mock of the
archive: every append, scan and replay is the real one). A ``recorded_at``
before the archive's latest — kept by the caller, or stamped by a clock that
stepped back — is refused naming both instants (the archive unchanged), or
clamped up to the latest only when the caller asks. Then ``replay(known_at=t)``
never reports the archive knew an event before it was appended: what it knows
at any instant is a prefix of the log, commit by commit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import FAST
from test_archive import assert_unchanged, snapshot

import eventkit
from eventkit import ClockError, EventArchive, ValidationError
from eventkit.archive import clock

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
US = timedelta(microseconds=1)


class SteppedClock:
    """A clock the test sets; the archive reads it through the seam."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@contextmanager
def clock_at(at: datetime) -> Iterator[SteppedClock]:
    stepped = SteppedClock(at)
    real = clock.now
    clock.now = stepped
    try:
        yield stepped
    finally:
        clock.now = real


def batch(ids: list[str], recorded: list[datetime] | None = None) -> pl.DataFrame:
    frame = pl.DataFrame({"event_id": ids, "account_id": [1] * len(ids),
                          "event_type": ["Deposit"] * len(ids), "amount": [100] * len(ids),
                          "event_time": [datetime(2024, 1, 1, tzinfo=UTC)] * len(ids)})
    if recorded is not None:
        frame = frame.with_columns(recorded_at=pl.Series(recorded,
                                                         dtype=pl.Datetime("us", "UTC")))
    return frame


def known(archive: EventArchive, at: datetime) -> set[str]:
    history = eventkit.replay(archive, known_at=at).history.collect()
    return set(history["event_id"].to_list())


def test_a_clock_stepped_back_is_refused_naming_both_instants(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    with clock_at(NOW) as now:
        archive.append(batch(["a"]))
        now.at = NOW - timedelta(hours=1)  # NTP stepped the clock back an hour
        before = snapshot(archive.path)
        with pytest.raises(ClockError) as info:
            archive.append(batch(["b"]))
        assert_unchanged(archive.path, before)
        assert (info.value.clock, info.value.latest) == (now.at, NOW)
        assert now.at.isoformat() in str(info.value) and NOW.isoformat() in str(info.value)

        archive.append(batch(["b"]), before_latest="clamp")  # asked for: the latest instead

    stored = archive.scan().collect()
    assert stored["recorded_at"].to_list() == [NOW, NOW]
    # the archive did not know "b" an hour before it was appended, nor before "a"
    assert known(archive, NOW - timedelta(hours=1)) == set()
    assert known(archive, NOW) == {"a", "b"}


def test_kept_history_older_than_the_archive_is_refused_or_clamped(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    years_ago = NOW - timedelta(days=3 * 365)
    with clock_at(NOW):
        archive.append(batch(["today"]))
        before = snapshot(archive.path)
        with pytest.raises(ValidationError, match="before the latest recorded_at") as info:
            archive.append(batch(["old", "older"], [NOW, years_ago]), recorded_at="keep")
        assert_unchanged(archive.path, before)
        assert (info.value.column, info.value.row) == ("recorded_at", 1)
        assert years_ago.isoformat() in str(info.value) and NOW.isoformat() in str(info.value)

        archive.append(batch(["old", "older"], [NOW, years_ago]), recorded_at="keep",
                       before_latest="clamp")
    assert archive.scan().collect()["recorded_at"].to_list() == [NOW] * 3
    assert known(archive, years_ago) == set()  # never "known years ago"


def test_history_kept_from_before_1970_stays_as_it_was(tmp_path: Path) -> None:
    # found in CI by the round-trip property: the first commit's latest time once
    # defaulted to the Unix epoch, so a second batch's 1969 was clamped to 1970
    archive = EventArchive.create(tmp_path / "bank")
    moon = datetime(1969, 7, 20, 20, 17, tzinfo=UTC)
    archive.append(batch(["a"], [moon]), recorded_at="keep")
    archive.append(batch(["b", "c"], [NOW, moon]), recorded_at="keep", before_latest="clamp")
    assert archive.scan().collect()["recorded_at"].to_list() == [moon, NOW, moon]
    assert known(archive, moon) == {"a", "c"}


def test_before_latest_takes_only_raise_or_clamp(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    with pytest.raises(eventkit.ParameterError, match="before_latest"):
        archive.append(batch(["a"]), before_latest="ignore")  # type: ignore[arg-type]
    assert len(archive) == 0


# one step of the property test: move the clock, then append stamped or kept times
STEPS = st.lists(st.tuples(
    st.integers(-3 * 86_400, 3 * 86_400),            # clock step, seconds (back or forth)
    st.sampled_from(["now", "keep"]),
    st.lists(st.integers(-2 * 86_400, 60), min_size=1, max_size=3),  # kept: s from the clock
    st.sampled_from(["raise", "clamp"]),
), min_size=1, max_size=6)


@pytest.mark.slow
@settings(FAST, max_examples=25)
@given(steps=STEPS)
def test_what_the_archive_knew_grows_along_the_log(
        steps: list[tuple[int, str, list[int], str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, clock_at(NOW) as now:
        archive = EventArchive.create(Path(tmp) / "bank")
        latest: datetime | None = None
        appended: list[tuple[list[str], datetime, str]] = []  # ids, clock, mode
        for i, (step, mode, offsets, policy) in enumerate(steps):
            now.at += timedelta(seconds=step)
            ids = [f"{i}-{j}" for j in range(len(offsets))]
            if mode == "now":
                want = [now.at] * len(ids)
                frame = batch(ids)
            else:
                want = [now.at + timedelta(seconds=s) for s in offsets]
                frame = batch(ids, want)
            early = latest is not None and min(want) < latest
            before = snapshot(archive.path)
            if early and policy == "raise":
                error = ClockError if mode == "now" else ValidationError
                with pytest.raises(error, match="before the latest recorded_at"):
                    archive.append(frame, recorded_at=mode, before_latest=policy)  # type: ignore[arg-type]
                assert_unchanged(archive.path, before)
                continue
            archive.append(frame, recorded_at=mode, before_latest=policy)  # type: ignore[arg-type]
            if latest is not None:
                want = [max(t, latest) for t in want]
            got = archive.scan().collect().tail(len(ids))
            assert got["recorded_at"].to_list() == want
            latest = max(want) if latest is None else max(latest, *want)
            appended.append((ids, now.at, mode))

        stored = archive.scan().collect()
        spans = [stored.filter(pl.col("event_id").is_in(ids))["recorded_at"]
                 for ids, _, _ in appended]
        for earlier, later in zip(spans, spans[1:], strict=False):
            assert later.min() >= earlier.max()  # commit by commit, in transaction-time order
        probes = {t for span in spans for t in (span.min() - US, span.max())}
        for at in sorted(probes | {c - US for _, c, mode in appended if mode == "now"}):
            seen = known(archive, at)
            # knowing an event means knowing every event appended before it
            some = [any(x in seen for x in ids) for ids, _, _ in appended]
            last = max((k for k, s in enumerate(some) if s), default=0)
            assert all(all(x in seen for x in ids) for ids, _, _ in appended[:last]), at
            for ids, appended_at, mode in appended:
                if mode == "now" and at < appended_at:  # never known before it was appended
                    assert not set(ids) & seen, at
