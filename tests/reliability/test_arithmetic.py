"""Numbers you can trust: no engine wraps, rounds NaN or accepts a rule it cannot run.

The cases of issue 16, each through every path a number is made on: the
linear Polars path (``balance``), the compiled interpreter (``banking``),
interest, the bucket engine, ``compare``, the reference fold and the command
line. An Int64 overflow, a NaN, ±∞ or out-of-range float meeting an integer
is a :class:`ReplayError` naming key, event, field and rule; a rule set that
cannot be run is a :class:`RuleError` at load, naming the limit or the name.

Bounds: an amount is at most 2**62 minor units (checked on input); every
integer a rule computes — state, sums, intermediates — is checked against
Int64 (±9,223,372,036,854,775,807).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import eventkit
from eventkit import EventArchive, Field, Handler, ReplayError, RuleError, RuleSet
from eventkit import rules as rulesets
from eventkit.rules.model import MAX_FILE_BYTES
from eventkit.rules.reference import reference_fold
from eventkit.schema import CANONICAL_SCHEMA
from eventkit.workbench.cli import main

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CAP = 2**62  # the documented per-amount cap (eventkit.sources.conform)
BANKING = rulesets.get("banking").with_params(require_open=0)


def events(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """(account, type, amount, days after T0[, rate]) -> canonical events."""
    return pl.DataFrame([
        {"event_id": f"e{i}", "seq": i, "account_id": r[0], "event_type": r[1],
         "event_time": T0 + timedelta(days=r[3]), "recorded_at": T0 + timedelta(days=r[3]),
         "amount": r[2], "counterparty_id": None, "rate": r[4] if len(r) > 4 else None}
        for i, r in enumerate(rows)], schema=CANONICAL_SCHEMA)


FOUR_DEPOSITS = events([(7, "Deposit", CAP - 1, day) for day in range(4)])


@pytest.mark.parametrize("rules", ["balance", BANKING], ids=["linear", "interpreter"])
def test_four_deposits_below_the_cap_are_an_error_not_minus_four_cents(rules: Any) -> None:
    with pytest.raises(ReplayError) as caught:
        eventkit.replay(FOUR_DEPOSITS, rules).state().collect()
    err = caught.value
    assert (err.key, err.event_id, err.field) == (7, "e2", "balance")
    assert err.rule == "on Deposit: balance = balance + amount"
    assert "beyond Int64" in str(err)
    with pytest.raises(ReplayError):  # the oracle agrees: the sum does not fit
        reference_fold(FOUR_DEPOSITS.to_dicts(), rulesets.resolve(rules))


def test_the_command_line_exits_2_and_prints_no_balance(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(FOUR_DEPOSITS.select("event_id", "account_id", "event_type", "event_time",
                                        "amount"))
    code = main(["replay", str(tmp_path / "bank")])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "integer overflow" in err and "event 'e2'" in err and "field balance" in err


def test_a_replay_of_an_archive_names_the_event_by_its_id(tmp_path: Path) -> None:
    # an archive's replay reads the event ids beside the fold, which knows the seq only
    archive = EventArchive.create(tmp_path / "bank")
    archive.append(FOUR_DEPOSITS.select("event_id", "account_id", "event_type", "event_time",
                                        "amount"))
    for rules in ("balance", BANKING):
        with pytest.raises(ReplayError) as caught:
            eventkit.replay(archive, rules).state().collect()
        assert (caught.value.key, caught.value.event_id) == (7, "e2")
        assert "event 'e2'" in str(caught.value)


def test_the_bucket_engine_and_compare_raise_too(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "bank", buckets=4)
    archive.append(FOUR_DEPOSITS.select("event_id", "account_id", "event_type", "event_time",
                                        "amount"))
    with pytest.raises(ReplayError, match="beyond Int64"):
        eventkit.replay(archive, "balance", engine="buckets", out=tmp_path / "out"
                        ).state().collect()
    with pytest.raises(ReplayError, match="beyond Int64"):
        eventkit.compare(FOUR_DEPOSITS, BANKING, {"overdraft_fee": 1}).totals()


def test_interest_beyond_int64_is_an_error_in_engine_and_oracle() -> None:
    # 2**61 cents at 500 % a year for a year: the interest alone is beyond Int64
    stream = events([(0, "InterestRateChanged", 0, 0, 5.0), (1, "Deposit", 2**61, 0),
                     (1, "Deposit", 1, 365)])
    with pytest.raises(ReplayError) as caught:
        eventkit.replay(stream, BANKING).state().collect()
    assert (caught.value.field, caught.value.rule, caught.value.event_id) == (
        "balance", "interest", "e2")
    with pytest.raises(ReplayError):
        reference_fold(stream.to_dicts(), BANKING)


def test_interest_that_fits_is_the_oracle_s_exact_integer() -> None:
    stream = events([(0, "InterestRateChanged", 0, 0, 0.5), (1, "Deposit", 2**60, 0),
                     (1, "Deposit", 1, 365)])
    got = eventkit.replay(stream, BANKING).state().collect()["balance"].to_list()
    assert got == [reference_fold(stream.to_dicts(), BANKING)[-1]["balance"]]
    assert got[0] > 2**60  # it grew, and did not wrap to a negative number


@pytest.mark.parametrize("expression", ["v + amount * 1000000000000", "v * 3 + amount",
                                        "abs(-amount - amount - amount)",
                                        "(0 - amount - amount - amount) // -1"])
def test_a_rule_multiplying_by_a_large_constant_is_an_error(expression: str) -> None:
    rules = RuleSet(name="big", fields=(Field("v", "int", initial=1),),
                    handlers=(Handler("Deposit", {"v": expression}),))
    stream = events([(1, "Deposit", CAP, 0), (1, "Deposit", CAP, 1)])
    with pytest.raises(ReplayError, match="beyond Int64") as caught:
        eventkit.replay(stream, rules).state().collect()
    assert caught.value.field == "v" and caught.value.rule == f"on Deposit: v = {expression}"


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), float("-inf"), 1e300])
@pytest.mark.parametrize("rounding", ["round_half_even", "floor", "trunc"])
def test_nan_inf_or_huge_floats_never_reach_an_int_field(rate: float, rounding: str) -> None:
    """Formerly 0, or a different value on every run (uninitialised memory)."""
    rules = RuleSet(name="r", fields=(Field("v", "int"), Field("n", "int")), handlers=(
        Handler("InterestRateChanged", {"v": f"{rounding}(rate * 100.0)"}),
        Handler("Deposit", {"n": "n + 1"})))
    stream = events([(1, "Deposit", 5, 0), (1, "InterestRateChanged", 0, 1, rate)])
    for linear in (True, False):  # the Polars path, and the interpreter (a requirement)
        ruleset = rules if linear else RuleSet(name="r", fields=rules.fields,
                                               handlers=rules.handlers, require="n >= 0")
        assert ruleset.check().linear is linear
        with pytest.raises(ReplayError, match=rounding) as caught:
            eventkit.replay(stream, ruleset).state().collect()
        assert (caught.value.event_id, caught.value.field) == ("e1", "v")
        with pytest.raises(ReplayError):
            reference_fold(stream.to_dicts(), ruleset)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**63, -(2**63) - 1, "5", True])
def test_parameters_are_checked_on_load(value: Any) -> None:
    with pytest.raises(RuleError, match="overdraft_fee"):
        rulesets.get("banking").with_params(overdraft_fee=value).check()


def test_a_name_is_a_parameter_or_a_field_never_both(tmp_path: Path) -> None:
    rules = RuleSet(name="clash", fields=(Field("fee", "int"),),
                    handlers=(Handler("Deposit", {"fee": "fee + 1"}),), params={"fee": 5})
    with pytest.raises(RuleError, match=r"\['fee'\] named both a parameter and a state field"):
        rules.check()
    path = tmp_path / "clash.toml"
    path.write_text('[ruleset]\nname = "c"\n[params]\nfee = 5\n[fields.fee]\ntype = "int"\n'
                    '[on.Deposit]\nfee = "fee + amount"\n')
    with pytest.raises(RuleError, match="named both"):
        eventkit.replay(FOUR_DEPOSITS.head(1), path)


def balanced(leaves: int) -> str:
    """A sum of ``leaves`` amounts as a balanced tree: many terms, little nesting."""
    if leaves == 1:
        return "amount"
    return f"({balanced(leaves // 2)} + {balanced(leaves - leaves // 2)})"


@pytest.mark.parametrize(("expression", "words"), [
    ("(" * 300 + "amount" + ")" * 300, "too many nested parentheses"),
    ("-" * 1_500 + "amount", "nesting deeper than the limit of 64"),
    ("not " * 100 + "amount", "nesting deeper than the limit of 64"),
    (" + ".join(["amount"] * 100), "nesting deeper than the limit of 64"),
    (balanced(300), "more than the limit of 512 terms"),
    ("amount" + " + amount" * 500, "beyond the limit of 4,000"),
    ("amount + 9223372036854775808", "beyond Int64"),
    ("amount * 1e999", "must be finite"),
    ("amount * (4611686018427387904 + 4611686018427387904)", "a constant cannot be computed"),
    ("round_half_even(0.0 / 0.0)", "a constant cannot be computed"),
    ("1 if not rate else 0", "is a float"),
    ("1 if rate and amount else 0", "is a float"),
    ("amount if rate * 2.0 else 0", "is a float"),
])
def test_rules_beyond_the_limits_are_rule_errors_at_load(expression: str, words: str) -> None:
    rules = RuleSet(name="limits", fields=(Field("v", "int"),),
                    handlers=(Handler("Deposit", {"v": expression}),))
    start = time.monotonic()
    with pytest.raises(RuleError, match=words) as caught:
        rules.check()
    assert time.monotonic() - start < 1.0
    assert "rule on Deposit, field v" in str(caught.value)


def test_a_huge_or_deep_rules_file_is_refused_quickly(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text('[ruleset]\nname = "big"\n[params]\n' + "".join(
        f"p{i} = {i}\n" for i in range(MAX_FILE_BYTES // 8)))
    deep = tmp_path / "deep.toml"
    deep.write_text('[ruleset]\nname = "deep"\n[params]\nx = ' + "[" * 100_000 + "]" * 100_000)
    for path, words in ((big, "larger than the limit"), (deep, "cannot read rules file")):
        start = time.monotonic()
        with pytest.raises(RuleError, match=words):
            RuleSet.from_toml(path)
        assert time.monotonic() - start < 5.0


def test_a_guard_works_only_the_branch_taken_is_computed() -> None:
    rules = RuleSet(name="guard", fields=(Field("v", "int"),), handlers=(Handler(
        "Deposit", {"v": "v + (amount * 1000 if amount < 1_000_000_000 else 0)"}),))
    stream = events([(1, "Deposit", CAP, 0), (1, "Deposit", 7, 1)])
    assert eventkit.replay(stream, rules).state().collect()["v"].to_list() == [7_000]
    assert reference_fold(stream.to_dicts(), rules)[-1]["v"] == 7_000


def test_float_division_is_ieee_754_in_the_vectorized_path() -> None:
    """Polars divides by the reciprocal (an ulp off for a third of values): not the engine."""
    t = datetime(2024, 1, 1, tzinfo=UTC)
    amounts = list(range(-300, 300))
    events = pl.DataFrame({"event_id": [f"e{a}" for a in amounts], "seq": range(len(amounts)),
                           "account_id": amounts, "event_type": ["Deposit"] * len(amounts),
                           "event_time": [t] * len(amounts), "recorded_at": [t] * len(amounts),
                           "amount": amounts})
    rules = RuleSet("div", (Field("f", "float", 0.0),),
                    (Handler("Deposit", {"f": "amount / -1.5"}),))
    assert rules.check().linear  # the column-wise Polars path
    got = eventkit.replay(events, rules).history.collect()["f"].to_list()
    assert got == [a / -1.5 for a in amounts]  # exactly, as Python (and the oracle) divide
