"""Rule sets: files, errors that point at the rule, fingerprints, the seed example."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from eventkit import RuleError, open_archive, replay
from eventkit import rules as rulesets
from eventkit.rules.model import Field, Handler, RuleSet

ROOT = Path(__file__).resolve().parent.parent
LOYALTY = ROOT / "data" / "rules" / "loyalty.toml"
SEED = ROOT / "tests" / "data" / "seed_transactions.parquet"
SEED_MAPPING = {"account_id": "accountId", "event_time": "timestamp",
                "amount_unit": "major", "time_unit": "s"}

GOOD = """
[ruleset]
name = "mini"
[fields.balance]
type = "int"
[on.Deposit]
balance = "balance + amount"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD.replace("balance + amount", "balance +* amount"), "syntax error"),
        (GOOD.replace("balance + amount", "balance + amont"), "unknown name 'amont'"),
        (GOOD.replace("balance + amount", "__import__('os').system('true')"),
         "only plain calls"),
        (GOOD.replace("balance + amount", "open('x')"), "unknown function 'open'"),
        (GOOD.replace("balance + amount", "balance * 1.5"), "round it explicitly"),
        (GOOD.replace('balance = "balance', 'balanse = "balance'), "unknown field 'balanse'"),
        (GOOD.replace('type = "int"', 'type = "money"'), "unknown type 'money'"),
        (GOOD.replace("[on.Deposit]", "[onn.Deposit]"), "unknown section"),
        (GOOD + "[params]\nrate = 1\n", "reserved"),
        (GOOD.replace('name = "mini"', ""), "needs a name"),
        (GOOD + '[fields.s]\ntype = "enum"\nvalues = ["a", "b"]\n'
         '[on.Fee]\ns = "\'c\'"\n', "'c' is not one of"),
        ("[ruleset\nname=1", "cannot read rules file"),
    ],
)
def test_bad_rules_file_names_file_rule_and_expression(tmp_path: Path, text: str,
                                                       needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RuleError) as err:
        RuleSet.from_toml(path).check()
    message = str(err.value)
    assert needle in message
    assert str(path) in message


def test_error_names_the_rule_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("balance + amount", "balance + nope"))
    with pytest.raises(RuleError) as err:
        RuleSet.from_toml(path).check()
    assert "rule on Deposit, field balance" in str(err.value)
    assert "'balance + nope'" in str(err.value)


def test_fingerprint_ignores_formatting_but_not_meaning(tmp_path: Path) -> None:
    base = RuleSet.from_toml(write(tmp_path, GOOD))
    reformatted = RuleSet.from_toml(write(tmp_path, GOOD.replace(
        '"balance + amount"', '"balance   +   (amount)"  # same rule') + "\n# comment\n"))
    changed = RuleSet.from_toml(write(tmp_path, GOOD.replace("+ amount", "- amount")))
    assert base.fingerprint == reformatted.fingerprint
    assert base.fingerprint != changed.fingerprint
    banking = rulesets.get("banking")
    assert banking.with_params(overdraft_fee=1).fingerprint != banking.fingerprint
    assert banking.with_params(rate_table={"2024-01-01": 0.01}).fingerprint != \
        banking.fingerprint
    assert banking.with_params().fingerprint == banking.fingerprint


def test_unknown_parameter_is_an_error() -> None:
    with pytest.raises(RuleError, match="no parameter"):
        rulesets.get("banking").with_params(overdraft_feee=1)


def test_custom_rule_set_from_python_and_toml_agree() -> None:
    from_file = RuleSet.from_toml(LOYALTY)
    in_python = RuleSet(
        name="loyalty-py",
        params={"silver_at": 10_000, "gold_at": 50_000, "gold_bonus": 2},
        fields=(Field("points"), Field("lifetime"),
                Field("tier", "enum", values=("basic", "silver", "gold"))),
        handlers=(
            Handler("Purchase", {
                "points": "points + amount // 100 * (gold_bonus if tier == 'gold' else 1)",
                "lifetime": "lifetime + amount // 100",
                "tier": "'gold' if lifetime + amount // 100 >= gold_at else "
                        "('silver' if lifetime + amount // 100 >= silver_at else tier)"}),
            Handler("Refund", {"points": "max(points - amount // 100, 0)",
                               "lifetime": "max(lifetime - amount // 100, 0)"}),
            Handler("Redeem", {"points": "points - amount"}, require="points >= amount"),
        ),
    )
    assert in_python.fingerprint == from_file.fingerprint
    events = pl.DataFrame({
        "event_id": [f"l{i}" for i in range(5)], "seq": list(range(5)),
        "account_id": [1, 1, 1, 1, 2],
        "event_type": ["Purchase", "Purchase", "Redeem", "Redeem", "Purchase"],
        "event_time": pl.datetime_range(pl.datetime(2024, 1, 1, time_zone="UTC"),
                                        pl.datetime(2024, 1, 5, time_zone="UTC"), "1d",
                                        eager=True),
        "amount": [1_200_000, 4_000_000, 30_000, 999_999, 10_000],
    }).with_columns(recorded_at=pl.col("event_time"))
    state = replay(events, LOYALTY).state().collect()
    # 12,000 points (silver), then 40,000 more at 1x (lifetime 52,000 -> gold after it),
    # redeem 30,000; a 999,999-point redemption is refused and reported.
    assert state.filter(pl.col("account_id") == 1).select("points", "lifetime", "tier").row(0) \
        == (22_000, 52_000, "gold")
    violations = replay(events, in_python).violations().collect()
    assert violations["event_id"].to_list() == ["l3"]
    assert violations["violation"][0] == "Redeem requires points >= amount"


def test_seed_example_balances_then_historical_interest() -> None:
    events = open_archive(SEED, mapping=SEED_MAPPING)
    plain = replay(events).state().collect()
    frame = events.collect()
    signed = frame.with_columns(
        s=pl.when(pl.col("event_type") == "Deposit").then(pl.col("amount"))
        .otherwise(-pl.col("amount")))
    expected = signed.group_by("account_id").agg(pl.col("s").sum()).sort("account_id")
    assert plain["balance"].to_list() == expected["s"].to_list()
    # Replay again with a historical rate table applied at each balance change.
    start = frame["event_time"].min()
    savings = rulesets.get("banking").with_params(require_open=0, rate_table={start: 0.05})
    with_interest = replay(events, savings).state().collect()
    assert (with_interest["balance"] - with_interest["interest"]).to_list() == \
        plain["balance"].to_list()
    assert with_interest["interest"].abs().sum() > 0


def test_an_enum_field_takes_values_of_its_own_and_compares_with_any() -> None:
    """Literals a choice compares with are not the values it gives; another enum's are refused.

    ``tier = 'gold' if status == 'vip' else tier`` is a valid rule (it was refused:
    every literal of the expression was checked against ``tier``'s values), and
    ``tier = status`` of other values is refused (it gave ``status``'s value at the
    same place in ``tier``'s list: 'vip' became 'gold').
    """
    from datetime import UTC, datetime, timedelta

    from eventkit.rules.reference import reference_fold

    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    events = pl.DataFrame({
        "event_id": ["a", "b", "c", "d"], "seq": [0, 1, 2, 3], "account_id": [1, 1, 1, 2],
        "event_type": ["Vip", "Buy", "Buy", "Buy"],
        "event_time": [t0 + timedelta(days=d) for d in range(4)], "recorded_at": [t0] * 4,
        "amount": [0, 5, 7, 1], "channel": ["web", "web", "shop", "shop"]})

    def rules(tier: str, require: str | None = None) -> RuleSet:
        return RuleSet.from_dict({
            "ruleset": {"name": "two"}, "columns": {"channel": "string"},
            "fields": {"status": {"type": "enum", "values": ["normal", "vip"],
                                  "initial": "normal"},
                       "tier": {"type": "enum", "values": ["basic", "silver", "gold"],
                                "initial": "basic"}},
            "on": {"Vip": {"status": "'vip'"},
                   "Buy": {"tier": tier, **({"require": require} if require else {})}}})

    for tier, want in [("'gold' if status == 'vip' else tier", ["basic", "gold", "gold", "basic"]),
                       ("'silver' if channel == 'shop' else tier",
                        ["basic", "basic", "silver", "silver"])]:
        for ruleset in (rules(tier), rules(tier, "amount >= 0")):  # linear path, interpreter
            history = replay(events, ruleset).history.collect()
            assert history["tier"].to_list() == want
            oracle = {r["event_id"]: r["tier"] for r in reference_fold(events.to_dicts(), ruleset)}
            assert [oracle[e] for e in history["event_id"]] == want
    for tier in ("status", "status if amount > 6 else 'gold'"):
        with pytest.raises(RuleError, match=r"rule on Buy, field tier: .*status"):
            rules(tier).check()
    with pytest.raises(RuleError, match="'vip' is not one of"):
        rules("'vip' if channel == 'shop' else tier").check()
