"""as_of(t, accrued=True): interest accrued to an instant, exactly as the rules would post it.

The oracle is the per-event reference fold of the events up to ``t`` plus one
synthetic event per account at ``t`` (a type the rules do not handle): the
interest it posts first is what ``accrued`` must add, to the cent, in every
rounding mode, with bank rate tables, a rule set's own table and accounts'
own rates.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import FAST, T0, event_streams
from test_rules_property import BANKING, ROUNDINGS, VARIANTS, interest_streams

import eventkit
from eventkit.rules.model import RuleSet
from eventkit.rules.reference import reference_fold
from eventkit.rules.streams import global_expr
from eventkit.schema import CANONICAL_SCHEMA


def oracle_at(events: pl.DataFrame, rules: RuleSet, at) -> dict[int, tuple[int, int]]:
    """Per account: (balance, interest) after a synthetic event at ``at``.

    The accounts are the keys of the events that are not the rule set's global
    ones (account 0's own events, say an ``AccountOpened``, make it an account).
    """
    upto = events.filter(pl.col("event_time") <= at)
    accounts = upto.filter(~global_expr(rules, upto.schema))["account_id"].unique().to_list()
    top = int(events["seq"].max() or 0) + 1
    probe = pl.DataFrame([{
        "event_id": f"probe-{a}", "seq": top + i, "account_id": a, "event_type": "Probe",
        "event_time": at, "recorded_at": at, "amount": 0, "counterparty_id": None, "rate": None,
    } for i, a in enumerate(accounts)], schema=CANONICAL_SCHEMA)
    rows = reference_fold(pl.concat([upto, probe]).to_dicts(), rules)
    return {r["account_id"]: (r["balance"], r["interest"]) for r in rows
            if r["event_type"] == "Probe"}


def check(events: pl.DataFrame, rules: RuleSet, at) -> None:
    result = eventkit.replay(events, rules)
    got = result.as_of(at, accrued=True).collect()
    plain = result.as_of(at).collect()
    want = oracle_at(events, rules, at)
    assert got["account_id"].to_list() == sorted(want)
    for account, balance, interest, accrued in got.select(
            "account_id", "balance", "interest", "accrued").rows():
        assert (balance, interest) == want[account], account
        before = plain.filter(pl.col("account_id") == account)["balance"].item()
        assert accrued == balance - before


@settings(FAST, max_examples=100)
@given(events=interest_streams(), rounding=st.sampled_from(ROUNDINGS),
       days=st.integers(0, 500), micros=st.integers(0, 86_400_000_000))
def test_accrued_interest_is_what_a_posting_at_the_instant_would_add(
        events: pl.DataFrame, rounding: str, days: int, micros: int) -> None:
    at = T0 + timedelta(days=days, microseconds=micros)
    check(events.select(list(CANONICAL_SCHEMA)), BANKING.with_params(rounding=rounding), at)


@settings(FAST, max_examples=100)
@given(events=event_streams(max_events=30), rules=st.sampled_from(VARIANTS),
       micros=st.sampled_from([0, 1, 86_400_000_000, 500 * 86_400_000_000]))
def test_accrued_interest_on_random_streams_and_rule_variants(
        events: pl.DataFrame, rules: RuleSet, micros: int) -> None:
    check(events, rules, T0 + timedelta(microseconds=micros))


def test_a_year_after_one_deposit_the_interest_is_there():
    t = T0
    events = pl.DataFrame([{"event_id": "a", "seq": 0, "account_id": 1,
                            "event_type": "Deposit", "event_time": t, "recorded_at": t,
                            "amount": 100_000, "counterparty_id": None, "rate": None}],
                          schema=CANONICAL_SCHEMA)
    rules = BANKING.with_params(require_open=0, rate_table={"2023-01-01": 0.05})
    result = eventkit.replay(events, rules)
    later = T0 + timedelta(days=365)
    assert result.as_of(later).collect()["interest"].item() == 0  # nothing posted yet
    assert result.as_of(later, accrued=True).collect().select(
        "balance", "interest", "accrued").row(0) == (105_000, 5_000, 5_000)


def test_rules_without_interest_refuse_accrued():
    events = pl.DataFrame([{"event_id": "a", "seq": 0, "account_id": 1,
                            "event_type": "Deposit", "event_time": T0, "recorded_at": T0,
                            "amount": 1, "counterparty_id": None, "rate": None}],
                          schema=CANONICAL_SCHEMA)
    with pytest.raises(eventkit.ParameterError, match="'balance' has no interest to accrue"):
        eventkit.replay(events).as_of(T0, accrued=True)


def test_accrued_from_a_snapshot_equals_the_full_replay(tmp_path):
    from eventkit.banking.generate import generate

    path = tmp_path / "bank"
    generate(path, events=3_000, accounts=40, seed=2)
    eventkit.snapshot(path, "banking", every="1mo")
    fast = eventkit.replay(path, "banking").as_of("2024-05-20T10:00:00Z", accrued=True)
    full = eventkit.replay(path, "banking", snapshots=False).as_of("2024-05-20T10:00:00Z",
                                                                   accrued=True)
    assert fast.collect().equals(full.collect())
    assert full.collect()["accrued"].abs().sum() > 0
