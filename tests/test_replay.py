"""Replay against the plain-Python oracle (``eventkit.reference``), on random streams, exactly.

``replay(...).history`` keeps the events in log (input) order with the state
after each; the oracle returns them in (account, event time, seq) order, so the
history is sorted that way before comparing row by row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from conftest import make_events
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import (
    CUTS,
    FAST,
    ORDER,
    T0,
    assert_state_equal,
    check_against_oracle,
    event_streams,
    last_per_account,
)

import eventkit
from eventkit import rules as rulesets
from eventkit.rules.reference import reference_fold
from eventkit.schema import BANK_ACCOUNT, CANONICAL_SCHEMA


@settings(FAST, max_examples=150)
@given(events=event_streams())
def test_balance_replay_equals_the_reference_fold(events: pl.DataFrame) -> None:
    check_against_oracle(events, "balance")


@settings(FAST, max_examples=60)
@given(events=event_streams(max_events=25))
def test_banking_replay_equals_the_reference_fold(events: pl.DataFrame) -> None:
    check_against_oracle(events, "banking")


@settings(FAST, max_examples=80)
@given(events=event_streams(), cut=st.sampled_from(CUTS),
       rules=st.sampled_from(["balance", "banking"]))
def test_as_of_equals_the_reference_fold_up_to_that_instant(
    events: pl.DataFrame, cut: int, rules: str
) -> None:
    t = T0 + timedelta(microseconds=cut)
    ruleset = rulesets.get(rules)
    fields = list(ruleset.check().fields)
    oracle = reference_fold([e for e in events.to_dicts() if e["event_time"] <= t], ruleset)

    state = eventkit.replay(events, rules).as_of(t).collect()

    assert_state_equal(state, last_per_account(oracle, fields))


@settings(FAST, max_examples=40)
@given(events=event_streams())
def test_replay_does_not_depend_on_the_input_row_order(events: pl.DataFrame) -> None:
    shuffled = events.sample(fraction=1.0, shuffle=True, seed=1)

    assert eventkit.replay(shuffled).history.collect().sort(ORDER).equals(
        eventkit.replay(events).history.collect().sort(ORDER))
    assert eventkit.replay(shuffled).state().collect().equals(
        eventkit.replay(events).state().collect())


def test_replay_of_nothing_is_empty() -> None:
    result = eventkit.replay(pl.DataFrame(schema=CANONICAL_SCHEMA))

    assert result.history.collect().height == 0
    assert result.state().collect().height == 0
    assert result.as_of("2024-06-30").collect().height == 0
    assert reference_fold([], rulesets.get("balance")) == []


def test_bank_events_only_give_no_accounts() -> None:
    events = make_events([(BANK_ACCOUNT, "InterestRateChanged", 0, 0)])

    assert eventkit.replay(events).state().collect().height == 0


def test_as_of_refuses_a_naive_instant() -> None:
    result = eventkit.replay(make_events([(1, "Deposit", 1, 0)]))

    with pytest.raises(eventkit.InstantError) as info:
        result.as_of(datetime(2024, 6, 30))  # naive on purpose

    assert info.value.param == "as_of"


def test_replay_reads_an_archive_and_a_path(tmp_path: Any) -> None:
    archive = eventkit.EventArchive.create(tmp_path / "bank")
    archive.append(make_events([(1, "Deposit", 700, 0), (1, "Fee", 50, 1)]).drop(
        "seq", "recorded_at"))

    for source in (archive, archive.path, str(archive.path), archive.scan()):
        state = eventkit.replay(source).state().collect()
        assert state.select("account_id", "balance").rows() == [(1, 650)]


def test_a_customer_story() -> None:
    # 1. The customer opens account 42 on 1 January at 09:00 UTC.
    story = [(42, "AccountOpened", 0, 9 * 60)]
    # 2. The same morning they deposit 1,000.00 (amounts are cents).
    story.append((42, "Deposit", 100_000, 9 * 60 + 5))
    # 3. Another customer, 7, deposits at exactly the same instant: ties are per account.
    story.append((7, "Deposit", 5_000, 9 * 60 + 5))
    # 4. On 2 January they withdraw 250.50.
    story.append((42, "Withdrawal", 25_050, 24 * 60 + 10 * 60))
    # 5. On 31 January the bank charges a 4.99 fee, and changes its rate (account 0).
    story.append((42, "Fee", 499, 30 * 24 * 60))
    story.append((BANK_ACCOUNT, "InterestRateChanged", 0, 30 * 24 * 60))
    # 6. A late correction, logged last, credits 0.49 back on 15 January.
    story.append((42, "Correction", 49, 14 * 24 * 60))
    result = eventkit.replay(make_events(story))

    # 7. Now: 1000.00 - 250.50 + 0.49 - 4.99 = 745.00 for 42, and 7 still has 50.00.
    assert result.state().select("account_id", "balance").collect().rows() == [
        (7, 5_000), (42, 74_500)]
    # 8. As of 1 January (a date means the end of that UTC day): only the deposit counts.
    assert result.as_of("2024-01-01").select("account_id", "balance").collect().rows() == [
        (7, 5_000), (42, 100_000)]
    # 9. As of 20 January: the withdrawal and the late correction, not yet the fee.
    assert result.as_of("2024-01-20").filter(pl.col("account_id") == 42).select(
        "balance", "events").collect().rows() == [(74_999, 4)]
    # 10. Before the account existed there is nothing.
    assert result.as_of("2024-01-01T08:59:59Z").collect().height == 0
    # 11. On the time line the correction sits between the withdrawal and the fee.
    timeline = result.history.filter(pl.col("account_id") == 42).sort(ORDER).collect()
    assert timeline["event_type"].to_list() == ["AccountOpened", "Deposit", "Withdrawal",
                                                "Correction", "Fee"]
    assert timeline["balance"].to_list() == [0, 100_000, 74_950, 74_999, 74_500]


@settings(FAST, max_examples=100)
@given(parts=st.lists(st.lists(st.one_of(st.none(), st.sampled_from(
    ["Deposit", "Withdrawal", "X", "", "a-type-name-longer-than-twelve-bytes",
     "a-type-name-longer-than-twelve-bytez"])), max_size=30), min_size=1, max_size=4))
def test_event_types_are_coded_and_counted_as_polars_would(parts: list[list[str | None]]
                                                           ) -> None:
    """Codes read from string views in place (any chunks, nulls, long names) and their counts."""
    from eventkit.replay.engine import _type_codes

    names = ("Deposit", "Withdrawal", "a-type-name-longer-than-twelve-bytes")
    column = pl.concat([pl.Series(p, dtype=pl.String) for p in parts], rechunk=False)
    codes, counts = _type_codes(column, names)
    want = column.replace_strict({n: i for i, n in enumerate(names)}, default=-1,
                                 return_dtype=pl.Int32)
    assert codes.tolist() == want.to_list()
    assert counts.tolist() == [want.to_list().count(c) for c in range(-1, len(names))]
