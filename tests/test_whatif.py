"""What-if: compare two rule sets on one history; explain a value; rate tables as data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy_financial as npf
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import FAST, ORDER, event_streams
from polars.testing import assert_frame_equal

import eventkit
from eventkit import EventDataError, InstantError, RuleError, SchemaError, replay
from eventkit.questions.whatif import compare
from eventkit.rules.rates import bump_rates, rates_of, read_rates, shift_rates
from eventkit.rules.reference import reference_fold
from eventkit.rules.registry import get

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TABLES = st.sampled_from([{"2023-12-01": 0.02}, {"2023-12-01": 0.02, "2024-01-02": 0.07},
                          {"2024-01-01": -0.01, "2024-01-04": 0.0}])


@settings(FAST, max_examples=40)
@given(events=event_streams(), a=TABLES, b=TABLES, fee=st.sampled_from([0, 2_500]))
def test_compare_is_two_exact_replays_side_by_side(events: pl.DataFrame, a: dict, b: dict,
                                                   fee: int) -> None:
    rules_a = get("banking").with_params(rate_table=a)
    diff = compare(events, rules_a, {"rate_table": b, "overdraft_fee": fee})
    history = diff.history.collect()
    fields = ["balance", "interest", "fees", "overdrafts", "status"]
    for side, rules in (("a", rules_a), ("b", rules_a.with_params(rate_table=b,
                                                                   overdraft_fee=fee))):
        oracle = reference_fold(events.to_dicts(), rules)  # the oracle, per event
        got = history.sort(ORDER).select("event_id", *[f"{f}_{side}" for f in fields])
        assert got.rows() == [(o["event_id"], *(o[f] for f in fields)) for o in oracle]
    numeric = ["balance", "interest", "fees", "overdrafts"]
    for f in numeric:
        assert (history[f"{f}_delta"] == history[f"{f}_b"] - history[f"{f}_a"]).all()
    # the first divergence per account is the earliest (time, seq) event that differs
    first = diff.divergence().collect()
    differs = history.filter(pl.any_horizontal(
        [pl.col(f"{f}_a").ne_missing(pl.col(f"{f}_b")) for f in fields]))
    want = differs.sort(ORDER).group_by("account_id", maintain_order=True).first()
    assert first.select("account_id", "event_id").rows() == want.select(
        "account_id", "event_id").rows()
    # totals are the sums of the final states
    state = diff.state().collect()
    totals = {r["field"]: r for r in diff.totals().to_dicts()}
    for f in numeric:
        assert totals[f]["delta"] == state[f"{f}_delta"].sum()
        assert totals[f]["keys_affected"] == (state[f"{f}_delta"] != 0).sum()


def test_bank_rate_events_equal_the_same_table_given_as_a_scenario(
        sample_archive: Path) -> None:
    events = eventkit.open_archive(sample_archive)
    diff = compare(events, "banking", {"rate_table": rates_of(events)})
    totals = diff.totals()
    assert totals["keys_affected"].sum() == 0
    assert diff.divergence().collect().height == 0
    assert diff.state().collect().height == 500


def test_earlier_rate_rise_pays_more_interest(sample_archive: Path) -> None:
    events = eventkit.open_archive(sample_archive)
    table = rates_of(events)
    assert any(t.year == 2024 for t in table)
    earlier = shift_rates(table, "-3mo", start="2024-01-01", end="2024-12-31")
    diff = compare(events, "banking", {"rate_table": earlier})
    interest = diff.totals().filter(pl.col("field") == "interest").row(0, named=True)
    assert interest["keys_affected"] > 0
    assert interest["delta"] != 0
    top = diff.largest("interest", 5)
    assert top["interest_delta"].abs().to_list() == sorted(
        top["interest_delta"].abs().to_list(), reverse=True)
    # the month-end grid under both rules, and the same totals from the grid's last instant
    grid = diff.at_times(["2024-03-31", "2025-12-31"]).collect()
    last = grid.filter(pl.col("instant") == grid["instant"].max())
    assert last["interest_delta"].sum() == interest["delta"]


def test_rule_change_and_late_corrections_at_once(sample_archive: Path) -> None:
    events = eventkit.open_archive(sample_archive)
    late = events.filter(pl.col("recorded_at") > pl.col("event_time") + timedelta(days=1))
    r1 = late.select(pl.col("recorded_at").min()).collect().item() - timedelta(seconds=1)
    diff = compare(events, "banking", {"overdraft_fee": 1_000}, known_at=r1,
                   known_at_b="2030-01-01")
    history = diff.history.collect()
    only_b = history.filter(pl.col("balance_a").is_null())
    assert only_b.height >= late.collect().height  # B knows the late events, A does not
    assert_frame_equal(diff.b.state().collect(),
                       replay(events, get("banking").with_params(overdraft_fee=1_000)
                              ).state().collect())


@pytest.mark.parametrize(("deposit", "rate", "periods", "tolerance"), [
    (100_000_000, 0.05, 4, 0),     # interest is a whole number of cents at every posting
    (50_000, 0.035, 24, 12),       # rounding at each posting: at most half a cent each
])
def test_regular_deposits_match_the_annuity_formula(deposit: int, rate: float, periods: int,
                                                    tolerance: int) -> None:
    """A deposit every 73 days (a fifth of a 365-day year) at a constant rate.

    Convention (banking rules): simple interest ACT/365 between events, posted
    and rounded half-even at each event, so it compounds at every posting: a
    period rate of rate/5. After the n-th deposit the balance is the future
    value of an ordinary annuity (``numpy_financial.fv``, payments at period end).
    """
    times = [T0 + timedelta(days=73 * k) for k in range(periods)]
    events = pl.DataFrame({
        "event_id": ["open", *[f"d{k}" for k in range(periods)]],
        "seq": list(range(periods + 1)), "account_id": [1] * (periods + 1),
        "event_type": ["AccountOpened"] + ["Deposit"] * periods,
        "event_time": [T0, *times], "recorded_at": [T0, *times],
        "amount": [0] + [deposit] * periods,
    })
    rules = get("banking").with_params(rate_table={"2020-01-01": 0.0})
    diff = compare(events, rules, {"rate_table": {"2020-01-01": rate}})
    balance = diff.state().collect()["balance_b"].item()
    future_value = npf.fv(rate / 5, periods, -deposit, 0)
    assert abs(balance - future_value) <= tolerance + 0.5, (balance, future_value)
    assert diff.state().collect()["balance_a"].item() == deposit * periods


def test_compare_refuses_what_it_cannot_compare(sample_archive: Path) -> None:
    with pytest.raises(RuleError, match="no parameter"):
        compare(sample_archive, "banking", {"overdraft": 1})
    keyed = get("balance")
    other = type(keyed)(**{**vars(keyed), "key": "counterparty_id"})
    with pytest.raises(RuleError, match="rules_b"):
        compare(sample_archive, keyed, other)


# --------------------------------------------------------------------------- explain


def test_explain_sums_back_to_the_value(sample_archive: Path) -> None:
    result = replay(sample_archive, "banking")
    state = result.as_of("2024-06-30").collect()
    for account in state["account_id"].head(25).to_list():
        why = eventkit.explain(result, account, "balance", at="2024-06-30")
        want = state.filter(pl.col("account_id") == account)["balance"].item()
        assert why.value == want
        assert why.start + why.steps["change"].sum() == want
        assert (why.steps["interest"] + why.steps["effect"] == why.steps["change"]).all()
        assert why.fingerprint == result.fingerprint
        assert why.archive_version == eventkit.EventArchive(sample_archive).version
        assert set(why.steps["rule"]) <= {"balance + amount", "balance - amount", "unchanged",
                                          "balance - amount - (overdraft_fee if balance - "
                                          "amount < 0 else 0)"}


@settings(FAST, max_examples=40)
@given(events=event_streams())
def test_explain_matches_the_oracle_on_random_streams(events: pl.DataFrame) -> None:
    rules = get("banking").with_params(rate_table={"2023-12-01": 0.05}, require_open=0)
    result = replay(events, rules)
    for account in set(events.filter(pl.col("account_id") != 0)["account_id"].to_list()):
        why = eventkit.explain(result, account, "balance")
        oracle = [r for r in reference_fold(events.to_dicts(), rules)
                  if r["account_id"] == account]
        assert why.value == oracle[-1]["balance"]
        assert why.start + why.steps["change"].sum() == why.value
        assert why.steps["event_id"].to_list() == [
            r["event_id"] for i, r in enumerate(oracle)
            if r["balance"] != (oracle[i - 1]["balance"] if i else 0)]


def test_explain_names_a_bad_field(sample_archive: Path) -> None:
    with pytest.raises(RuleError, match="'balanse'"):
        eventkit.explain(replay(sample_archive), 1, "balanse")


# --------------------------------------------------------------------------- rate tables


def test_rate_tables_from_files(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("effective,rate\n2024-07-01,0.035\n2024-01-01,0.02\n")
    table = read_rates(tmp_path / "r.csv")
    assert list(table.values()) == [0.02, 0.035]
    pl.DataFrame({"effective": list(table), "rate": list(table.values())}).write_parquet(
        tmp_path / "r.parquet")
    assert read_rates(tmp_path / "r.parquet") == table
    (tmp_path / "bad.csv").write_text("effective,rate\n2024-01-01,0.02\n2024-13-01,0.03\n")
    with pytest.raises(EventDataError) as info:
        read_rates(tmp_path / "bad.csv")
    assert (info.value.column, info.value.row) == ("effective", 1)
    (tmp_path / "nan.csv").write_text("effective,rate\n2024-01-01,abc\n")
    with pytest.raises(EventDataError, match="finite") as info:
        read_rates(tmp_path / "nan.csv")
    assert (info.value.column, info.value.row) == ("rate", 0)
    (tmp_path / "cols.csv").write_text("date,rate\n2024-01-01,0.02\n")
    with pytest.raises(SchemaError, match="effective"):
        read_rates(tmp_path / "cols.csv")


def test_rate_scenarios() -> None:
    table = {datetime(2023, 1, 1, tzinfo=UTC): 0.01, datetime(2024, 5, 1, tzinfo=UTC): 0.04}
    assert list(shift_rates(table, "-3mo", start="2024-01-01")) == [
        datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)]
    assert shift_rates(table, "1mo", end="2023-12-31") == {
        datetime(2023, 2, 1, tzinfo=UTC): 0.01, datetime(2024, 5, 1, tzinfo=UTC): 0.04}
    bumped = bump_rates(table, 0.5)  # percentage points
    assert [round(r, 4) for r in bumped.values()] == [0.015, 0.045]
    with pytest.raises(InstantError) as info:
        shift_rates(table, "three months")
    assert info.value.param == "by"


def test_bumped_rates_are_the_decimals_a_user_means() -> None:
    """0.0375 + 0.5 pp was float addition's 0.042499999999999996, not 4.25 %."""
    table = {datetime(2024, 1, 1, tzinfo=UTC): 0.0375, datetime(2024, 6, 1, tzinfo=UTC): 0.001}
    assert list(bump_rates(table, 0.5).values()) == [0.0425, 0.006]
    assert list(bump_rates(table, 0.1, start="2024-03-01").values()) == [0.0375, 0.0385, 0.002]
    assert list(bump_rates(table, np.float64(-0.25)).values()) == [0.035, -0.0015]


def test_compare_and_explain_a_rule_set_of_ones_own_with_text_fields_and_no_amount() -> None:
    """Text state fields had a '-' delta (Polars: sub on str) and the history needed `amount`."""
    t = [T0 + timedelta(hours=h) for h in range(5)]
    events = pl.DataFrame({
        "event_id": list("abcde"), "seq": [0, 1, 2, 3, 4], "site": ["x", "x", "y", "x", "y"],
        "sensor": [1, 2, 1, 1, 1], "event_type": ["Read", "Read", "Read", "Mode", "Read"],
        "event_time": t, "recorded_at": t, "temp": [20.5, 21.0, 19.0, None, 18.0],
        "mode": [None, None, None, "eco", None]})
    rules = eventkit.RuleSet.from_dict({
        "ruleset": {"name": "sensors", "key": ["site", "sensor"]}, "params": {"limit": 20.0},
        "columns": {"temp": "float", "mode": "string"},
        "fields": {"reads": {"type": "int"}, "mode_now": {"type": "string", "initial": "std"},
                   "alarm": {"type": "enum", "values": ["off", "on"], "initial": "off"}},
        "on": {"Read": {"reads": "reads + 1", "alarm": "'on' if temp > limit else 'off'"},
               "Mode": {"mode_now": "mode"}}})
    diff = compare(events, rules, {"limit": 18.5})
    state = diff.state().collect()
    assert state.select("site", "sensor", "mode_now_a", "mode_now_b", "alarm_a", "alarm_b",
                        "reads_delta").rows() == [("x", 1, "eco", "eco", "on", "on", 0),
                                                  ("x", 2, "std", "std", "on", "on", 0),
                                                  ("y", 1, "std", "std", "off", "off", 0)]
    assert "mode_now_delta" not in state.columns
    assert diff.totals()["field"].to_list() == ["reads"]
    assert diff.divergence().collect()["event_id"].to_list() == ["c"]
    assert diff.history.collect().height == 5
    assert diff.at_times([t[4]]).collect().height == 3
    with pytest.raises(RuleError, match="not a numeric field"):
        diff.largest("mode_now")
    why = eventkit.explain(replay(events, rules), ("x", 1), "mode_now")
    assert (why.start, why.value) == ("std", "eco")
    assert why.steps.select("event_id", "before", "after", "change").rows() == [
        ("d", "std", "eco", "eco")]


def test_divergence_of_rule_sets_whose_enum_fields_list_other_values() -> None:
    """A scenario's enum with a value more (a 'silver' tier) raised Polars' Enum mismatch."""
    t = [T0 + timedelta(days=d) for d in range(3)]
    events = pl.DataFrame({
        "event_id": ["a", "b", "c"], "seq": [0, 1, 2], "shop": ["s", "s", "t"],
        "event_type": ["Buy"] * 3, "event_time": t, "recorded_at": t, "price": [300, 400, 50]})

    def tiers(values: list[str], silver: str) -> eventkit.RuleSet:
        return eventkit.RuleSet.from_dict({
            "ruleset": {"name": "tiers", "key": "shop"}, "columns": {"price": "int"},
            "fields": {"spent": {"type": "int"},
                       "tier": {"type": "enum", "values": values, "initial": "basic"}},
            "on": {"Buy": {"spent": "spent + price",
                           "tier": f"'gold' if spent + price >= 700 else {silver}"}}})

    diff = compare(events, tiers(["basic", "gold"], "'basic'"),
                   tiers(["basic", "silver", "gold"], "'silver' if price >= 300 else tier"))
    assert diff.divergence().select("event_id", "tier_a", "tier_b").collect().rows() == [
        ("a", "basic", "silver")]
    assert diff.state().select("shop", "tier_a", "tier_b").collect().rows() == [
        ("s", "gold", "gold"), ("t", "basic", "basic")]


def test_explain_after_an_expiry_starts_from_the_opening_state(tmp_path: Path) -> None:
    """After an expiry the steps began at 0 (the interest posted before the cut-off counted
    as the first step's), and an ``at`` before the cut-off answered 0 instead of raising."""
    t = [datetime(2024, m, 1, tzinfo=UTC) for m in (1, 1, 2, 5)]
    archive = eventkit.EventArchive.create(tmp_path / "bank")
    archive.append(pl.DataFrame({
        "event_id": ["o", "d1", "d2", "w"], "account_id": [1] * 4, "event_time": t,
        "event_type": ["AccountOpened", "Deposit", "Deposit", "Withdrawal"],
        "amount": [0, 100_000, 5_000, 300]}))
    rules = get("banking").with_params(rate_table={"2023-01-01": 0.05})
    whole = eventkit.explain(replay(archive, rules), 1, "balance")
    eventkit.expire(archive, before="2024-03-01", by="test", reason="retention", confirm=True,
                    rules=rules)
    result = replay(archive, rules)
    why = eventkit.explain(result, 1, "balance")
    assert why.value == whole.value == 106_425
    assert why.start == 105_425  # the balance at the cut-off, interest posted so far included
    assert why.steps.rows() == whole.steps.filter(pl.col("event_id") == "w").rows()
    assert why.steps.select("change", "interest", "effect").row(0) == (1_000, 1_300, -300)
    assert eventkit.explain(result, 1, "interest").start == 425
    assert eventkit.explain(result, 1, "status").start == "open"
    with pytest.raises(eventkit.ExpiredError):
        eventkit.explain(result, 1, "balance", at="2024-02-15")


def test_explain_of_a_key_that_never_occurs_is_refused() -> None:
    t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2)]
    events = pl.DataFrame({"event_id": ["a", "b"], "seq": [0, 1], "account_id": [1, 1],
                           "event_type": ["Deposit", "Fee"], "event_time": t, "recorded_at": t,
                           "amount": [10_000, 250]})
    result = eventkit.replay(events)
    with pytest.raises(eventkit.ParameterError, match="no events of key 2") as caught:
        eventkit.explain(result, 2, "balance")  # a typo: there is no such account
    assert caught.value.param == "key"
    early = eventkit.explain(result, 1, "balance", at="2023-12-31")  # before its first event
    assert (early.value, early.steps.height) == (0, 0)
