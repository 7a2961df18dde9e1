"""Every rule-set shape against the reference fold, exactly, on random streams.

tests/test_replay.py covers the built-in rule sets as shipped; here: banking
with changed parameters (overdraft fee, no status machine, a what-if rate
table), a custom non-linear rule set from TOML, and a custom linear rule set
written in Python (the vectorized Polars path).
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import FAST, T0, check_against_oracle, event_streams

from eventkit import replay
from eventkit import rules as rulesets
from eventkit.rules.model import Field, Handler, RuleSet
from eventkit.schema import CANONICAL_SCHEMA, EVENT_TYPES

ROOT = Path(__file__).resolve().parent.parent
LOYALTY_TYPES = ("Purchase", "Refund", "Redeem", "Deposit")
BANKING = rulesets.get("banking")
VARIANTS = [
    BANKING.with_params(overdraft_fee=2_500),
    BANKING.with_params(require_open=0),
    BANKING.with_params(require_open=0, rate_table={"2024-01-01": 0.05,
                                                     "2024-01-02T12:00:00Z": 0.0125}),
]


@settings(FAST, max_examples=100)
@given(events=event_streams(max_events=30), rules=st.sampled_from(VARIANTS))
def test_banking_variants_match_oracle(events: pl.DataFrame, rules: RuleSet) -> None:
    check_against_oracle(events, rules)


@st.composite
def interest_streams(draw: st.DrawFn) -> pl.DataFrame:
    """Streams where interest posts at nearly every event: a bank rate from the start,
    open accounts, and money moving over a year and more."""
    rows = [("InterestRateChanged", 0, 0, draw(st.sampled_from([0.035, 0.1, 0.5])), 0)]
    rows += [("AccountOpened", a, 0, None, 0) for a in (1, 2, 3)]
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["Deposit", "Deposit", "Withdrawal", "Fee",
                                     "InterestRateChanged", "Correction"]))
        account = draw(st.sampled_from([0, 1, 2, 3] if kind == "InterestRateChanged"
                                       else [1, 2, 3]))
        amount = draw(st.integers(-10**9, 10**9) if kind == "Correction"
                      else st.integers(0, 10**9)) if kind != "InterestRateChanged" else 0
        rate = draw(st.floats(-0.01, 0.2)) if kind == "InterestRateChanged" else None
        rows.append((kind, account, amount, rate, draw(st.integers(0, 450 * 86_400_000_000))))
    return pl.DataFrame(
        [{"event_id": f"i{i}", "seq": i, "account_id": a, "event_type": k,
          "event_time": T0 + timedelta(microseconds=us), "amount": amt, "rate": r}
         for i, (k, a, amt, r, us) in enumerate(rows)],
        schema_overrides={"rate": pl.Float64},
    ).with_columns(recorded_at=pl.col("event_time"), counterparty_id=pl.lit(None, pl.Int64))


ROUNDINGS = ["round_half_even", "round_half_up", "floor", "ceil", "trunc"]


@settings(FAST, max_examples=100)
@given(events=interest_streams(), rounding=st.sampled_from(ROUNDINGS))
def test_interest_postings_match_oracle(events: pl.DataFrame, rounding: str) -> None:
    check_against_oracle(events.select(list(CANONICAL_SCHEMA)),
                         BANKING.with_params(rounding=rounding))


@pytest.mark.parametrize(("rounding", "plus", "minus", "odd"), [
    ("round_half_even", 2, -2, 4), ("round_half_up", 3, -3, 4), ("floor", 2, -3, 3),
    ("ceil", 3, -2, 4), ("trunc", 2, -2, 3)])
def test_interest_rounding_modes(rounding: str, plus: int, minus: int, odd: int) -> None:
    # A rate of 50 % a year for exactly 365 days on 5, -5 and 7 cents: 2.5, -2.5, 3.5 cents.
    year = timedelta(days=365)
    rows = [(1, "Deposit", 5), (2, "Withdrawal", 5), (3, "Deposit", 7)]
    events = pl.DataFrame(
        [{"event_id": f"{a}{t}", "seq": i, "account_id": a, "event_type": k,
          "event_time": T0 + t * year, "amount": amt if t == 0 else 0}
         for t in (0, 1) for i, (a, k, amt) in enumerate(rows, start=3 * t)],
    ).with_columns(recorded_at=pl.col("event_time"))
    rules = BANKING.with_params(require_open=0, rate_table={T0: 0.5}, rounding=rounding)
    state = replay(events, rules).state().collect()
    assert state["interest"].to_list() == [plus, minus, odd]


@settings(FAST, max_examples=80)
@given(events=event_streams(types=LOYALTY_TYPES))
def test_loyalty_rules_from_toml_match_oracle(events: pl.DataFrame) -> None:
    check_against_oracle(events, RuleSet.from_toml(ROOT / "data/rules/loyalty.toml"))


# A linear custom rule set (the vectorized Polars path), written in Python: counts,
# a float sum, "set" fields, integer // and % and a rounding function.
TALLY = RuleSet(
    name="tally",
    fields=(Field("deposits", "int"), Field("net", "int"), Field("rate_sum", "float"),
            Field("last_amount", "int", initial=-1),
            Field("kind", "enum", values=("none", "in", "out"))),
    handlers=(
        Handler("Deposit", {"deposits": "deposits + 1", "net": "net + amount",
                            "last_amount": "amount", "kind": "'in'"}),
        Handler("Withdrawal", {"net": "net - amount * 2 // 3", "last_amount": "-amount",
                               "kind": "'out' if amount > 0 else 'none'"}),
        Handler("InterestRateChanged", {"rate_sum": "rate_sum + rate * 2.5",
                                        # a missing rate reads NaN, which cannot be rounded:
                                        # the guard (NaN != NaN) keeps it out
                                        "net": "net + (round_half_even(rate * 1000.0) "
                                               "if rate == rate else 0)"}),
        Handler("Correction", {"net": "amount % 7 + net"}),
    ),
)


def test_which_rule_sets_take_the_vectorized_path() -> None:
    assert TALLY.check().linear
    assert rulesets.get("balance").check().linear
    assert not BANKING.check().linear


@settings(FAST, max_examples=80)
@given(events=event_streams(types=EVENT_TYPES))
def test_linear_python_rules_match_oracle(events: pl.DataFrame) -> None:
    check_against_oracle(events, TALLY)


def test_story_deposits_and_interest() -> None:
    # Open an account and deposit 1,000.00 on 1 January 2024.
    # The bank rate is 3.65 % a year from 1 January; on 1 April it drops to 0.
    # A withdrawal on 1 July posts the interest earned: 91 days * 1,000.00 * 0.01 % a day.
    day = timedelta(days=1)
    events = pl.DataFrame([
        {"event_id": "r1", "seq": 0, "account_id": 0, "event_type": "InterestRateChanged",
         "event_time": T0, "amount": 0, "rate": 0.0365},
        {"event_id": "o", "seq": 1, "account_id": 9, "event_type": "AccountOpened",
         "event_time": T0, "amount": 0, "rate": None},
        {"event_id": "d", "seq": 2, "account_id": 9, "event_type": "Deposit",
         "event_time": T0, "amount": 100_000, "rate": None},
        {"event_id": "r2", "seq": 3, "account_id": 0, "event_type": "InterestRateChanged",
         "event_time": T0 + 91 * day, "amount": 0, "rate": 0.0},
        {"event_id": "w", "seq": 4, "account_id": 9, "event_type": "Withdrawal",
         "event_time": T0 + 182 * day, "amount": 1_000, "rate": None},
    ]).with_columns(recorded_at=pl.col("event_time"), counterparty_id=pl.lit(None, pl.Int64))
    state = replay(events, "banking").state().collect().row(0, named=True)
    assert state["interest"] == 910  # 100,000 cents * 0.0365 * 91/365
    assert state["balance"] == 100_000 + 910 - 1_000
    assert math.isnan(state["account_rate"])
