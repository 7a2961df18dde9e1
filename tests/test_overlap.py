"""Decoding while folding (eventkit.replay.overlap) gives the fold of one collect, exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import eventkit
from eventkit.replay.overlap import collect_and_fold, fold_columns
from eventkit.replay.result import ReplayResult
from eventkit.rules import registry
from eventkit.rules.model import RuleSet

LOYALTY = Path(__file__).resolve().parents[1] / "data" / "rules" / "loyalty.toml"


@pytest.mark.parametrize("rules", ["balance", "banking", str(LOYALTY)])
@pytest.mark.parametrize("query", ["history", "state", "as_of"])
# the loyalty rules on the bank's archive: a rule set that selects nothing there (the
# coverage warning says so), its fold still split alike
@pytest.mark.filterwarnings("ignore::eventkit.CoverageWarning")
def test_an_archive_replay_decodes_while_folding_and_answers_the_same(
        sample_archive: Path, rules: str, query: str) -> None:
    result = eventkit.replay(sample_archive, rules, snapshots=False)
    once = ReplayResult(result.events, result.rules)  # one collect, then the fold
    assert result._split and not once._split

    def ask(r: ReplayResult) -> pl.DataFrame:
        if query == "history":
            return r.history.collect()
        return (r.state() if query == "state" else r.as_of("2024-06-30")).collect()

    assert_frame_equal(ask(result), ask(once))


def test_filters_and_keys_split_the_same(sample_archive: Path) -> None:
    for kwargs in ({"keys": [3, 17, 42]}, {"known_at": "2024-05-01"}):
        result = eventkit.replay(sample_archive, "banking", snapshots=False, **kwargs)
        once = ReplayResult(result.events, result.rules).history.collect()
        assert_frame_equal(result.history.collect(), once)


def test_the_fold_reads_only_what_the_rules_name() -> None:
    names = ["event_id", "seq", "account_id", "event_type", "event_time", "recorded_at",
             "amount", "counterparty_id", "rate"]
    assert "event_id" not in fold_columns(registry.get("banking").check(), names)
    assert "rate" in fold_columns(registry.get("banking").check(), names)  # interest
    loyalty = RuleSet.from_toml(LOYALTY).check()
    assert fold_columns(loyalty, names) == ["seq", "account_id", "event_type", "event_time",
                                            "amount"]


def test_a_frame_without_other_columns_is_folded_once(sample_archive: Path) -> None:
    events = eventkit.open_archive(sample_archive).select(
        "seq", "account_id", "event_type", "event_time", "amount")
    checked = registry.get("balance").check()
    split = collect_and_fold(events, checked, split=True).events
    assert_frame_equal(split, collect_and_fold(events, checked).events)


@pytest.mark.filterwarnings("ignore::eventkit.CoverageWarning")
def test_a_selection_global_events_and_a_text_key_split_the_same(sample_archive: Path) -> None:
    """The rows a split fold leaves out (global, not selected) are left out of the rest too."""
    banking, balance = registry.get("banking"), registry.get("balance")
    for rules in (replace(banking, where="amount > 5000"),  # global events and a selection
                  replace(balance, key="event_type", global_events=None,  # a text key
                          where="event_type != 'Fee'")):
        result = eventkit.replay(sample_archive, rules, snapshots=False)
        once = ReplayResult(result.events, result.rules)
        assert result._split
        split = result.history.collect()
        assert 0 < split.height < result.events.collect().height
        assert_frame_equal(split, once.history.collect())


@pytest.mark.parametrize("split", [True, False])
def test_the_history_columns_are_cut_alike(sample_archive: Path, *, split: bool) -> None:
    """State columns come in the events' chunks: a filter on the history rechunks nothing.

    (Columns cut unlike each other are copied whole by each later operation: 0.3 s
    per filter on a 10 M-event history.)
    """
    parts = eventkit.open_archive(sample_archive).collect().slice(0, 3000)
    events = pl.concat([parts.slice(0, 1000), parts.slice(1000, 700), parts.slice(1700)],
                       rechunk=False).lazy()
    folded = collect_and_fold(events, registry.get("banking").check(), split=split).events
    cuts = {name: [c.len() for c in folded[name].get_chunks()] for name in folded.columns}
    assert len(set(map(tuple, cuts.values()))) == 1, cuts  # (the global events cut out too)
    assert len(cuts["balance"]) >= 3, cuts
    assert_frame_equal(folded, collect_and_fold(events.collect().rechunk().lazy(),
                                                registry.get("banking").check()).events)
