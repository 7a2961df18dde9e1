"""Shared by the property tests: random event streams and the oracle comparison."""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import eventkit
from eventkit import ReplayError
from eventkit import rules as rulesets
from eventkit.exceptions import CoverageWarning
from eventkit.rules.model import RuleSet
from eventkit.rules.reference import key_of, reference_fold
from eventkit.rules.streams import global_expr
from eventkit.schema import BANK_ACCOUNT, CANONICAL_SCHEMA, EVENT_TYPES, MONEY_EVENT_TYPES

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BIG = 2**40
ORDER = ["account_id", "event_time", "seq"]
ACCOUNTS = st.one_of(st.integers(0, 6), st.sampled_from([BIG, 2**62, 123_456_789, -5]))
AMOUNTS = st.one_of(st.integers(0, BIG), st.sampled_from([0, 1, BIG - 1, BIG]))
# few distinct instants (many ties), a microsecond, a minute or days apart
OFFSETS = [0, 1, 2, 60_000_000, 86_400_000_000, 3 * 86_400_000_000 + 7, 400 * 86_400_000_000 + 13]
CUTS = [-1, *OFFSETS, 10**12]
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def event_streams(draw: st.DrawFn, *, max_events: int = 40,
                  types: tuple[str, ...] = EVENT_TYPES) -> pl.DataFrame:
    """Canonical events: ties in time, seq unrelated to time, every event type."""
    n = draw(st.integers(0, max_events))
    seq = draw(st.permutations(list(range(n)))) if n else []
    rows: list[dict[str, Any]] = []
    for i in range(n):
        event_type = draw(st.sampled_from(types))
        if event_type == "Correction":
            amount = draw(st.integers(-BIG, BIG))
        elif event_type in MONEY_EVENT_TYPES:
            amount = draw(AMOUNTS)
        else:
            amount = 0
        when = T0 + timedelta(microseconds=draw(st.sampled_from(OFFSETS)))
        rate = None
        if event_type == "InterestRateChanged":  # mostly the bank's, sometimes an account's
            account = draw(st.sampled_from([BANK_ACCOUNT, BANK_ACCOUNT, 1, 2]))
            rate = draw(st.sampled_from([None, 0.0, 0.035, 0.1, -0.01]))
        else:
            account = draw(ACCOUNTS)
        rows.append({
            "event_id": f"e{i}", "seq": seq[i], "account_id": account, "event_type": event_type,
            "event_time": when, "recorded_at": when + timedelta(seconds=draw(st.integers(0, 9))),
            "amount": amount,
            "counterparty_id": draw(ACCOUNTS) if event_type.startswith("Transfer") else None,
            "rate": rate,
        })
    return pl.DataFrame(rows, schema=CANONICAL_SCHEMA)


def same(a: object, b: object) -> bool:
    """Equality where NaN equals NaN (float state fields start as NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def assert_rows_equal(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.keys() == w.keys(), i
        bad = {k: (g[k], w[k]) for k in g if not same(g[k], w[k])}
        assert not bad, f"row {i} ({w['event_id']}): engine vs oracle {bad}"


def last_per_account(rows: list[dict[str, Any]], fields: list[str],
                     rules: RuleSet | None = None) -> list[tuple[Any, ...]]:
    """(key, *state fields, events, last event time) per key, from oracle rows.

    The key is ``account_id``, or the rule set's key columns (each its own column).
    """
    out: dict[Any, tuple[Any, ...]] = {}
    for r in rows:
        key = r["account_id"] if rules is None else key_of(r, rules)
        parts = key if isinstance(key, tuple) else (key,)
        count = out[key][-2] + 1 if key in out else 1
        out[key] = (*parts, *(r[f] for f in fields), count, r["event_time"])
    return [out[k] for k in sorted(out)]


def assert_state_equal(state: pl.DataFrame, want: list[tuple[Any, ...]]) -> None:
    got = state.rows()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert all(same(x, y) for x, y in zip(g, w, strict=True)), (g, w)


def check_against_oracle(events: pl.DataFrame, rules: str | RuleSet,
                         engine: str = "memory", archive: object = None) -> None:
    """Engine == oracle: every state field after every event, and the final state.

    (Which event types the rules handle is tested on its own: coverage warnings
    are not the question here.) ``engine`` other than memory replays ``archive``
    (holding ``events``) with that engine. Or both raise :class:`ReplayError`
    (a value neither can compute exactly).
    """
    ruleset = rulesets.resolve(rules)
    fields = list(ruleset.check().fields)
    key = list(ruleset.key_columns)
    order = [*key, "event_time", "seq"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoverageWarning)
        try:
            oracle = reference_fold(events.to_dicts(), ruleset)
        except ReplayError:
            with pytest.raises(ReplayError):
                (eventkit.replay(events, ruleset) if engine == "memory" else
                 eventkit.replay(archive, ruleset, engine=engine)).history.collect()
            return
        result = (eventkit.replay(events, ruleset) if engine == "memory"
                  else eventkit.replay(archive, ruleset, engine=engine))
        history = result.history.collect()
        state = result.state().collect()

    # log order is kept: the history is the input without the global events
    folded = events.filter(~global_expr(ruleset, events.schema))
    if ruleset.where is None:
        assert history.select(events.columns).equals(folded)
    # every row, in (key, time, seq) order, with its state after the event
    assert_rows_equal(history.sort(order).to_dicts(), oracle)

    assert state.columns == [*key, *fields, "events", "last_event_time"]
    assert_state_equal(state, last_per_account(oracle, fields, ruleset))
