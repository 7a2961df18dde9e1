"""Temporal questions: time grids, windows, as-known-at, restatements; exact, on random streams."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from conftest import make_events
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import CUTS, FAST, ORDER, T0, event_streams
from polars.testing import assert_frame_equal

import eventkit
from eventkit import InstantError, replay
from eventkit.questions.temporal import restatements
from eventkit.rules import get
from eventkit.rules.streams import global_expr

ROOT = Path(__file__).resolve().parent.parent
RULES = st.sampled_from(["balance", "banking"])
INSTANTS = st.lists(st.sampled_from(CUTS), min_size=0, max_size=6)


def at(offset_us: int) -> datetime:
    return T0 + timedelta(microseconds=offset_us)


@settings(FAST, max_examples=80)
@given(events=event_streams(), cuts=INSTANTS, rules=RULES)
def test_time_grid_equals_one_as_of_per_instant(events: pl.DataFrame, cuts: list[int],
                                                 rules: str) -> None:
    result = replay(events, rules)
    instants = [at(c) for c in cuts]
    grid = result.at_times(instants).collect()
    expected = [result.as_of(t).collect().with_columns(instant=pl.lit(t, pl.Datetime("us", "UTC")))
                for t in sorted(instants)]
    if not expected:
        assert grid.height == 0
        return
    want = pl.concat(expected).select(grid.columns)
    assert_frame_equal(grid.sort("instant", "account_id"), want.sort("instant", "account_id"))


@settings(FAST, max_examples=80)
@given(events=event_streams(), rules=RULES)
def test_final_state_equals_as_of_a_day_after_every_event(events: pl.DataFrame,
                                                          rules: str) -> None:
    # state() takes each key's last visited row (no times read); as_of, the rows by time
    result = replay(events, rules)
    state = result.state().collect()
    if not events.height:
        assert state.height == 0
        return
    after = events["event_time"].max() + timedelta(days=1)  # type: ignore[operator]
    assert_frame_equal(state, result.as_of(after).collect().select(state.columns))


@settings(FAST, max_examples=80)
@given(events=event_streams(), cut=st.sampled_from(CUTS), rules=RULES)
def test_known_at_forgets_what_was_recorded_later(events: pl.DataFrame, cut: int,
                                                  rules: str) -> None:
    r = at(cut)
    known = replay(events, rules, known_at=r).history.collect()
    filtered = replay(events.filter(pl.col("recorded_at") <= r), rules).history.collect()
    assert_frame_equal(known, filtered)


@settings(FAST, max_examples=60)
@given(events=event_streams(), cuts=st.tuples(st.sampled_from(CUTS), st.sampled_from(CUTS)))
def test_window_is_opening_state_plus_changes(events: pl.DataFrame,
                                              cuts: tuple[int, int]) -> None:
    start, end = sorted(at(c) for c in cuts)
    result = replay(events)
    window = result.between(start, end)
    assert_frame_equal(window.opening.collect(), result.as_of(start).collect())
    changes = window.changes.collect()
    inside = result.history.filter((pl.col("event_time") > start)
                                   & (pl.col("event_time") <= end)).collect().sort(ORDER)
    assert_frame_equal(changes, inside)
    # opening balance + every change in the window = the balance at its end
    closing = result.as_of(end).collect()
    for row in closing.iter_rows(named=True):
        mine = changes.filter(pl.col("account_id") == row["account_id"])
        if mine.height:
            assert mine["balance"][-1] == row["balance"]


@settings(FAST, max_examples=60)
@given(events=event_streams(), cuts=st.tuples(st.sampled_from(CUTS), st.sampled_from(CUTS)))
def test_restatements_explain_every_late_event(events: pl.DataFrame,
                                               cuts: tuple[int, int]) -> None:
    r1, r2 = sorted(at(c) for c in cuts)
    found = restatements(events, known_at=r1, now_known_at=r2).collect()
    late = events.filter((pl.col("recorded_at") > r1) & (pl.col("recorded_at") <= r2)
                         & (pl.col("event_time") <= r1)
                         & ~global_expr(get("balance"), events.schema))
    assert sorted(found["event_id"]) == sorted(late["event_id"])
    for row in found.iter_rows(named=True):
        then = replay(events, known_at=r1).as_of(row["instant"]).filter(
            pl.col("account_id") == row["account_id"]).collect()
        now = replay(events, known_at=r2).as_of(row["instant"]).filter(
            pl.col("account_id") == row["account_id"]).collect()
        assert row["balance_now"] == now["balance"][0]
        assert row["balance_then"] == (then["balance"][0] if then.height else None)
        assert row["balance_delta"] == row["balance_now"] - (row["balance_then"] or 0)


# ---------------------------------------------------------------------- boundaries

STORY = [(1, "Deposit", 100, 60), (1, "Deposit", 10, 120), (2, "Deposit", 7, 120)]


def test_as_of_boundaries() -> None:
    result = replay(make_events(STORY))
    first, second = T0 + timedelta(minutes=60), T0 + timedelta(minutes=120)
    assert result.as_of(first - timedelta(microseconds=1)).collect().height == 0  # before all
    assert result.as_of(first).collect()["balance"].to_list() == [100]  # exactly at an event
    assert result.as_of(second).collect()["balance"].to_list() == [110, 7]  # a tie in time
    assert result.as_of(datetime(2030, 1, 1, tzinfo=UTC)).collect()["balance"].to_list() == \
        [110, 7]  # after the last event
    assert result.as_of(date(2024, 1, 1)).collect()["balance"].to_list() == [110, 7]  # the day


def test_window_of_whole_days_and_bad_windows() -> None:
    result = replay(make_events(STORY))
    window = result.between("2024-01-01", "2024-01-01")  # the whole day, from its start
    assert window.opening.collect().height == 0
    assert window.changes.collect().height == 3
    with pytest.raises(InstantError) as info:
        result.between("2024-01-02", "2024-01-01")
    assert info.value.param == "end"


@pytest.mark.parametrize("call", [
    lambda r: r.as_of(datetime(2024, 1, 1)),
    lambda r: r.at_times(["2024-01-01T00:00:00"]),
    lambda r: r.between("2024-01-01T00:00:00", "2024-01-02"),
    lambda r: replay(make_events(STORY), known_at="2024-01-01 10:00"),
])
def test_naive_instants_are_refused(call) -> None:
    with pytest.raises(InstantError, match="time zone"):
        call(replay(make_events(STORY))).collect()


def test_late_correction_changes_as_of_but_not_what_was_known() -> None:
    # A deposit on 1 June, reported on 30 June; a correction dated 15 June arrives on 10 July.
    june = datetime(2024, 6, 1, tzinfo=UTC)
    events = pl.DataFrame({
        "event_id": ["d", "c"], "seq": [0, 1], "account_id": [5, 5],
        "event_type": ["Deposit", "Correction"],
        "event_time": [june, june + timedelta(days=14)],
        "recorded_at": [june, june + timedelta(days=39)], "amount": [10_000, -2_500]})
    assert replay(events).as_of("2024-06-30").collect()["balance"].to_list() == [7_500]
    assert replay(events, known_at="2024-07-01").as_of("2024-06-30").collect()[
        "balance"].to_list() == [10_000]
    restated = restatements(events, known_at="2024-07-01", now_known_at="2024-07-31").collect()
    assert restated.select("event_id", "balance_then", "balance_now", "balance_delta").rows() \
        == [("c", 10_000, 7_500, -2_500)]


def test_restatements_of_text_fields_and_events_without_an_amount() -> None:
    # a rule set of one's own: a text field (no difference to take) on events without amount
    rules = eventkit.RuleSet.from_dict({
        "ruleset": {"name": "visits"}, "columns": {"qty": "int"},
        "fields": {"visits": {"type": "int"}, "last": {"type": "string", "initial": "none"}},
        "on": {"Visit": {"visits": "visits + qty", "last": "event_id"}}})
    day = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 3, 2)]
    events = pl.DataFrame({"event_id": ["a", "b", "late"], "seq": [0, 1, 2],
                           "account_id": [1, 1, 1], "event_type": ["Visit"] * 3,
                           "event_time": day, "recorded_at": [*day[:2], day[0] + timedelta(9)],
                           "qty": [1, 1, 1]})
    found = restatements(events, rules, known_at="2024-01-05", now_known_at="2024-01-31")
    assert found.collect().drop("instant", "recorded_at").rows(named=True) == [
        {"account_id": 1, "event_id": "late", "event_type": "Visit", "visits_then": 1,
         "last_then": "a", "visits_now": 2, "last_now": "late", "visits_delta": 1}]


def test_sample_month_end_grid_matches_as_of(sample_archive: Path) -> None:
    result = replay(eventkit.open_archive(sample_archive), "banking")
    month_ends = pl.date_range(date(2023, 1, 31), date(2025, 12, 31), "1mo", eager=True
                               ).dt.month_end().to_list()
    grid = result.at_times(month_ends).collect()
    for day in (month_ends[5], month_ends[-1]):
        at_day = grid.filter(pl.col("instant").dt.date() == day).drop("instant")
        assert_frame_equal(at_day, result.as_of(day).collect())


def test_cli_as_of_and_restatements(sample_archive: Path) -> None:
    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "eventkit", *args], capture_output=True,
                              text=True, cwd=ROOT, check=True, timeout=300)
        return done.stdout

    as_of = run("as-of", str(sample_archive), "2024-06-30", "--known-at", "2024-07-01",
                "--accounts", "1,2", "--format", "csv")
    assert as_of.splitlines()[0].startswith("account_id,balance,events")
    restated = run("restatements", str(sample_archive), "--known-at", "2023-06-10",
                   "--now-known-at", "2025-12-31", "--format", "csv")
    lines = restated.splitlines()
    assert lines[0].startswith("account_id,instant,event_id,event_type,amount")
    assert len(lines) > 1


@settings(FAST, max_examples=60)
@given(events=event_streams(), rules=RULES, pick=st.sets(st.integers(0, 6), max_size=3))
def test_replaying_some_keys_equals_filtering_the_full_replay(events: pl.DataFrame, rules: str,
                                                              pick: set[int]) -> None:
    some = replay(events, rules, keys=sorted(pick)).history.collect()
    full = replay(events, rules).history.filter(pl.col("account_id").is_in(sorted(pick)))
    assert_frame_equal(some, full.collect())
