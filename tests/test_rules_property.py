"""The engine against the reference fold: exact equality on random event streams.

Every rule set (built-in and custom, linear and compiled) is replayed by the
engine and by the plain per-event oracle in eventkit.reference; every state
field after every event must match exactly.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from eventkit import replay, rulesets
from eventkit.reference import reference_fold
from eventkit.rules import Field, Handler, RuleSet

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 1, 1, tzinfo=UTC)
BANK_TYPES = ["AccountOpened", "AccountClosed", "Deposit", "Withdrawal", "Fee", "TransferOut",
              "TransferIn", "Correction", "InterestRateChanged", "Unknown"]
LOYALTY_TYPES = ["Purchase", "Refund", "Redeem", "Deposit"]
SCHEMA = {"event_id": pl.String, "seq": pl.Int64, "account_id": pl.Int64,
          "event_type": pl.String, "event_time": pl.Datetime("us", "UTC"),
          "recorded_at": pl.Datetime("us", "UTC"), "amount": pl.Int64,
          "counterparty_id": pl.Int64, "rate": pl.Float64}


@st.composite
def streams(draw: st.DrawFn, types: list[str], max_size: int = 60) -> pl.DataFrame:
    """Random canonical events: few accounts (and the bank), ties in time, shuffled log."""
    n = draw(st.integers(0, max_size))
    rows = []
    for i in range(n):
        event_type = draw(st.sampled_from(types))
        big = draw(st.booleans())
        bound = 2**40 if big else 10_000
        amount = draw(st.integers(-bound, bound) if event_type == "Correction"
                      else st.integers(0, bound))
        rate = draw(st.one_of(st.none(), st.floats(0, 0.25))) \
            if event_type == "InterestRateChanged" else None
        minutes = draw(st.integers(0, 60 * 24 * 400))
        rows.append({
            "event_id": f"e{i}", "seq": i,
            "account_id": draw(st.sampled_from([0, 1, 2, 3, 7, 1_000_000_007])),
            "event_type": event_type,
            "event_time": T0 + timedelta(minutes=minutes - minutes % 7),  # many ties
            "amount": amount, "counterparty_id": None, "rate": rate,
        })
    for row in rows:
        row["recorded_at"] = row["event_time"]
    order = draw(st.permutations(range(n)))  # the log is not in seq order either
    return pl.DataFrame([rows[i] for i in order], schema=SCHEMA)


def assert_matches_oracle(events: pl.DataFrame, rules: RuleSet) -> None:
    result = replay(events, rules)
    got = result.history.collect().sort(rules.key, "event_time", "seq")
    rows = reference_fold(events.to_dicts(), rules)
    if not rows:
        assert got.height == 0
        assert result.state().collect().height == 0
        return
    expected = pl.DataFrame(rows, schema_overrides=dict(got.schema), infer_schema_length=None)
    assert_frame_equal(got.select(expected.columns), expected, check_exact=True)
    # final state: each key's last row in valid-time order
    state = result.state().collect()
    last = expected.group_by(rules.key, maintain_order=True).last().sort(rules.key)
    assert_frame_equal(state.select(last.select(rules.key, *result.checked.fields).columns),
                       last.select(rules.key, *result.checked.fields), check_exact=True)


def banking_variants() -> st.SearchStrategy[RuleSet]:
    banking = rulesets.get("banking")
    return st.sampled_from([
        banking,
        banking.with_params(overdraft_fee=2_500),
        banking.with_params(require_open=0),
        banking.with_params(require_open=0, rate_table={"2024-01-01": 0.05,
                                                         "2024-06-01T12:00:00Z": 0.0125}),
    ])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(BANK_TYPES))
def test_balance_rules_match_oracle(events: pl.DataFrame) -> None:
    assert_matches_oracle(events, rulesets.get("balance"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(BANK_TYPES), rules=banking_variants())
def test_banking_rules_match_oracle(events: pl.DataFrame, rules: RuleSet) -> None:
    assert_matches_oracle(events, rules)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(LOYALTY_TYPES))
def test_loyalty_rules_from_toml_match_oracle(events: pl.DataFrame) -> None:
    assert_matches_oracle(events, RuleSet.from_toml(ROOT / "data/rules/loyalty.toml"))


# A linear custom rule set (the vectorized Polars path), written in Python: counts,
# a float sum and a "set" field.
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
                                        "net": "net + round_half_even(rate * 1000.0)"}),
        Handler("Correction", {"net": "amount % 7 + net"}),
    ),
)


def test_tally_is_linear() -> None:
    assert TALLY.check().linear
    assert not rulesets.get("banking").check().linear


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(BANK_TYPES))
def test_linear_python_rules_match_oracle(events: pl.DataFrame) -> None:
    assert_matches_oracle(events, TALLY)


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
