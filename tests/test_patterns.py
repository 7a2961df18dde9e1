"""CEP patterns: the vectorized evaluation against a brute-force oracle, chunked = whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import eventkit
from eventkit.exceptions import PatternError
from eventkit.questions.patterns import (
    Detector,
    Pattern,
    Thresholds,
    begin,
    builtin_alerts,
    negative_balance,
    ping_pong,
    rapid_withdrawals,
    structuring,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TYPES = ["A", "B", "C"]


def is_type(name: str) -> pl.Expr:
    return pl.col("event_type") == name


def oracle(events: pl.DataFrame, spec: list[tuple[str, int, bool]], window: int | None
           ) -> pl.DataFrame:
    """Every end event of a match and the latest start, by trying every choice of events."""
    out = []
    for (key,), rows in events.sort("account_id", "event_time", "seq").group_by(
            "account_id", maintain_order=True):
        types, seqs, times = rows["event_type"].to_list(), rows["seq"].to_list(), \
            rows["event_time"].to_list()

        def latest(i: int, end: int, types: list[str] = types) -> int | None:
            name, n, strict = spec[i]
            if end < 0 or types[end] != name:
                return None
            if strict:
                first = end - n + 1
                if first < 0 or any(t != name for t in types[first:end + 1]):
                    return None
                return latest(i - 1, first - 1) if i else first
            found = None
            for first in range(end, -1, -1):  # every possible first event of this step
                if types[first] != name or types[first:end + 1].count(name) < n:
                    continue
                starts = [first] if i == 0 else [latest(i - 1, q) for q in range(first)]
                best = max((s for s in starts if s is not None), default=None)
                if best is not None and (found is None or best > found):
                    found = best
            return found

        for end in range(len(types)):
            start = latest(len(spec) - 1, end)
            if start is None:
                continue
            if window is not None and times[end] - times[start] > timedelta(minutes=window):
                continue
            out.append((key, seqs[start], seqs[end], times[start], times[end]))
    return pl.DataFrame(out, schema={"account_id": pl.Int64, "start_seq": pl.Int64,
                                     "end_seq": pl.Int64, "start_time": pl.Datetime("us", "UTC"),
                                     "end_time": pl.Datetime("us", "UTC")},
                        orient="row").sort("end_seq")


def build(spec: list[tuple[str, int, bool]], window: int | None) -> Pattern:
    name, n, _ = spec[0]
    p = begin(is_type(name)).times(n)
    for name, n, strict in spec[1:]:
        p = (p.next(is_type(name)) if strict else p.followed_by(is_type(name))).times(n)
    return p.within(timedelta(minutes=window)) if window else p


@st.composite
def streams(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(0, 40))
    accounts = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    types = draw(st.lists(st.sampled_from(TYPES), min_size=n, max_size=n))
    gaps = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))  # ties included
    minutes = [sum(gaps[:i + 1]) for i in range(n)]
    return pl.DataFrame({"seq": list(range(n)), "account_id": accounts, "event_type": types,
                         "event_time": [T0 + timedelta(minutes=m) for m in minutes]},
                        schema={"seq": pl.Int64, "account_id": pl.Int64, "event_type": pl.String,
                                "event_time": pl.Datetime("us", "UTC")})


specs = st.lists(st.tuples(st.sampled_from(TYPES), st.integers(1, 3), st.booleans()),
                 min_size=1, max_size=3).map(lambda s: [(s[0][0], s[0][1], False), *s[1:]])


@settings(max_examples=150, deadline=None)
@given(events=streams(), spec=specs, window=st.none() | st.integers(1, 12))
def test_detect_equals_the_brute_force_oracle(events: pl.DataFrame,
                                              spec: list[tuple[str, int, bool]],
                                              window: int | None) -> None:
    assert_frame_equal(build(spec, window).detect(events), oracle(events, spec, window))


@settings(max_examples=100, deadline=None)
@given(events=streams(), spec=specs, window=st.integers(1, 12), data=st.data())
def test_incremental_chunks_give_the_same_alerts_as_the_whole(
        events: pl.DataFrame, spec: list[tuple[str, int, bool]], window: int,
        data: st.DataObject) -> None:
    pattern = build(spec, window)
    cuts = sorted(data.draw(st.lists(st.integers(0, events.height), max_size=5)))
    detector = Detector(pattern)
    parts = [detector.feed(events.slice(a, b - a))
             for a, b in zip([0, *cuts], [*cuts, events.height], strict=True)]
    assert_frame_equal(pl.concat(parts).sort("end_seq"), pattern.detect(events))


@st.composite
def logs(draw: st.DrawFn) -> pl.DataFrame:
    """Streams in log order with late events (times out of order), pairs of keys, balances."""
    n = draw(st.integers(0, 40))
    pick = st.lists(st.integers(1, 3), min_size=n, max_size=n)
    return pl.DataFrame({
        "seq": list(range(n)), "account_id": draw(pick),
        "counterparty_id": draw(st.lists(st.none() | st.integers(1, 2), min_size=n,
                                         max_size=n)),
        "event_type": draw(st.lists(st.sampled_from(TYPES), min_size=n, max_size=n)),
        "event_time": [T0 + timedelta(minutes=m)
                       for m in draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))],
        "balance": draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)),
    }, schema={"seq": pl.Int64, "account_id": pl.Int64, "counterparty_id": pl.Int64,
               "event_type": pl.String, "event_time": pl.Datetime("us", "UTC"),
               "balance": pl.Int64})


@settings(max_examples=150, deadline=None)
@given(events=logs(), spec=specs, window=st.none() | st.integers(1, 12))
def test_a_pair_of_keys_detects_as_one_key_per_pair(events: pl.DataFrame,
                                                    spec: list[tuple[str, int, bool]],
                                                    window: int | None) -> None:
    """Per (account, counterparty) pair, as the oracle finds on one key per pair."""
    pair = ["account_id", "counterparty_id"]
    pattern = build(spec, window)
    found = pattern.detect(events, key=pair)
    code = pl.struct(pair).rank("dense").cast(pl.Int64)
    coded = events.with_columns(code.alias("account_id")).drop("counterparty_id")
    expected = oracle(coded, spec, window)
    assert_frame_equal(found.drop(pair), expected.drop("account_id"))
    by_code = dict(zip(coded["account_id"], events.select(pl.struct(pair))[:, 0], strict=True))
    assert [tuple(by_code[c].values()) for c in expected["account_id"]] == found.select(
        pair).rows()


@settings(max_examples=150, deadline=None)
@given(events=logs(), minutes=st.integers(1, 20), until=st.booleans())
def test_negative_balance_equals_a_plain_walk(events: pl.DataFrame, minutes: int,
                                              until: bool) -> None:  # noqa: FBT001
    end = T0 + timedelta(hours=1) if until else None
    limit = timedelta(minutes=minutes)
    expected = []
    for (key,), rows in events.sort("account_id", "event_time", "seq").group_by(
            "account_id", maintain_order=True):
        stretch = None
        for seq, time, balance in rows.select("seq", "event_time", "balance").iter_rows():
            if balance < 0 and stretch is None:
                stretch = (seq, time)
            elif balance >= 0 and stretch is not None:
                if time - stretch[1] > limit:
                    expected.append((key, stretch[0], seq, stretch[1], time))
                stretch = None
        if stretch is not None and end is not None and end - stretch[1] > limit:
            expected.append((key, stretch[0], None, stretch[1], None))
    found = negative_balance(events, limit, until=end)
    assert found.rows() == expected  # by key, then start


def test_bad_patterns_are_clear_errors() -> None:
    with pytest.raises(PatternError, match="times"):
        begin(is_type("A")).times(0)
    with pytest.raises(PatternError, match="within"):
        begin(is_type("A")).within("soon")
    with pytest.raises(PatternError, match="Polars expression"):
        begin("A")  # type: ignore[arg-type]
    with pytest.raises(PatternError, match="needs a pattern with within"):
        Detector(begin(is_type("A")))
    with pytest.raises(PatternError, match=r"\['seq'\]"):
        begin(is_type("A")).detect(pl.DataFrame({"account_id": [1], "event_type": ["A"],
                                                 "event_time": [T0]}))


# ---------------------------------------------------------------------- built-ins


def bank_events(rows: list[tuple[int, str, int, float, int | None]]) -> pl.DataFrame:
    """(account, type, amount, hours after T0, counterparty) rows with ids and seq."""
    return pl.DataFrame({
        "event_id": [f"e{i}" for i in range(len(rows))],
        "account_id": [r[0] for r in rows], "event_type": [r[1] for r in rows],
        "amount": [r[2] for r in rows],
        "event_time": [T0 + timedelta(hours=r[3]) for r in rows],
        "counterparty_id": [r[4] for r in rows],
    }, schema_overrides={"counterparty_id": pl.Int64})


def test_builtins_find_their_instances_and_nothing_in_a_clean_stream(tmp_path) -> None:
    rows = [(a, "AccountOpened", 0, 0.0, None) for a in (1, 2, 3, 4, 5)]
    rows += [(a, "Deposit", 100_000, 0.5, None) for a in (1, 2, 3, 4, 5)]
    # 1: three withdrawals in 20 minutes (rapid)
    rows += [(1, "Withdrawal", 1_000, 1 + i / 6, None) for i in range(3)]
    # 2: deposit then 95 % of the balance out within 2 hours (structuring)
    rows += [(2, "Deposit", 50_000, 10.0, None), (2, "Withdrawal", 145_000, 11.5, None)]
    # 3: overdrawn for two days (negative balance)
    rows += [(3, "Withdrawal", 150_000, 20.0, None), (3, "Deposit", 100_000, 68.0, None)]
    # 4 -> 5 -> 4 within an hour (ping-pong)
    rows += [(4, "TransferOut", 30_000, 30.0, 5), (5, "TransferIn", 30_000, 30.0, 4),
             (5, "TransferOut", 30_000, 30.5, 4), (4, "TransferIn", 30_000, 30.5, 5)]
    # clean activity: spread-out withdrawals, small ones after deposits, slow transfers
    clean = [(a, "Withdrawal", 2_000, 100.0 + 5 * i + a, None) for a in (1, 2, 3, 4, 5)
             for i in range(6)]
    clean += [(5, "Deposit", 10_000, 200.0, None), (5, "Withdrawal", 3_000, 201.0, None),
              (1, "TransferOut", 1_000, 210.0, 2), (2, "TransferIn", 1_000, 210.0, 1),
              (2, "TransferOut", 1_000, 240.0, 1), (1, "TransferIn", 1_000, 240.0, 2)]
    archive = eventkit.EventArchive.create(tmp_path / "bank")
    archive.append(bank_events(rows + clean))
    history = eventkit.replay(archive, "banking").history.collect()

    found = {
        "rapid": rapid_withdrawals(3, "30m").detect(history),
        "structuring": structuring("3h").detect(history),
        "ping_pong": ping_pong("2h").detect(history, key=["account_id", "counterparty_id"]),
        "negative": negative_balance(history, "1d"),
    }
    assert found["rapid"]["account_id"].to_list() == [1]
    assert found["structuring"]["account_id"].to_list() == [2]
    # the initiator's view: out to 5, back from 5 (5 sees in, then out: not this pattern)
    assert found["ping_pong"].select("account_id", "counterparty_id").rows() == [(4, 5)]
    assert found["negative"]["account_id"].to_list() == [3]
    assert (found["negative"]["end_time"] - found["negative"]["start_time"]).to_list() == [
        timedelta(hours=48)]

    clean_archive = eventkit.EventArchive.create(tmp_path / "clean")
    clean_archive.append(bank_events(rows[:10] + clean))
    clean_history = eventkit.replay(clean_archive, "banking").history.collect()
    assert rapid_withdrawals(3, "30m").detect(clean_history).height == 0
    assert structuring("3h").detect(clean_history).height == 0
    assert ping_pong("2h").detect(clean_history, key=["account_id", "counterparty_id"]).height == 0
    assert negative_balance(clean_history, "1d").height == 0


def test_text_keys_and_a_missing_column_named_never_a_polars_error() -> None:
    """A condition, negative_balance or builtin_alerts reading a column the events lack
    raised Polars' ColumnNotFoundError (builtin_alerts: a KeyError); now a PatternError."""
    t = [T0 + timedelta(minutes=m) for m in range(5)]
    events = pl.DataFrame({
        "event_id": list("abcde"), "seq": list(range(5)), "account_id": ["ü"] * 4 + ["v"],
        "event_type": ["Deposit", "Withdrawal", "Withdrawal", "Withdrawal", "Deposit"],
        "event_time": t, "recorded_at": t, "amount": [100, 10, 10, 10, 5]})
    history = eventkit.replay(events).history
    alerts = builtin_alerts(history, Thresholds(rapid_count=3))
    assert alerts.select("pattern", "account_id", "start_event_id", "end_event_id").rows() == [
        ("rapid_withdrawals", "ü", "b", "d")]
    handlers = (eventkit.Handler("Deposit", {"balance": "balance + 1"}),
                eventkit.Handler("Withdrawal", {"balance": "balance - 1"}))
    orders = eventkit.replay(events.rename({"account_id": "order_id"}), eventkit.RuleSet(
        "o", (eventkit.Field("balance"),), handlers, key="order_id")).history
    assert begin(is_type("Withdrawal")).times(3).detect(orders, key="order_id").height == 1
    for call, missing in [(lambda: builtin_alerts(orders), "account_id"),
                          (lambda: negative_balance(orders, "1m"), "account_id"),
                          (lambda: negative_balance(events, "1m"), "balance"),
                          (lambda: begin(pl.col("channel") == "web").detect(events), "channel")]:
        with pytest.raises(PatternError, match=rf"needs column\(s\) \['{missing}'\]"):
            call()
    with pytest.raises(PatternError, match="step 1's condition .* gives Int64 values"):
        begin(pl.col("seq") + 1).detect(events)  # a number is no condition (was cast to bool)
