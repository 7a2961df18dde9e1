"""Text and composite keys beyond the in-memory engine: buckets, Dask, CLI, explorer, patterns.

The bucket engine folds archives bucketed by a text or composite key (by
eventkit's stable hash) and equals the per-event oracle on random streams;
a Dask cluster gives the same answers; the command line takes text and
composite ids; the explorer and the patterns take text account ids.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from oracle_checks import FAST, check_against_oracle
from polars.testing import assert_frame_equal
from test_keys_property import COLUMNS, FIELDS, HANDLERS, streams

import eventkit
from eventkit import EventArchive, GlobalEvents, RuleSet
from eventkit.archive.buckets import bucket_of
from eventkit.questions.patterns import rapid_withdrawals

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def declared(events: pl.DataFrame, key: tuple[str, ...], folder: Path,
             buckets: int | None) -> EventArchive:
    """An archive declaring ``events``' key and payload columns, holding them (seq assigned)."""
    types = {"k": "int" if events.schema.get("k") == pl.Int64 else "string",
             "tenant": "string", "n": "int"}
    archive = EventArchive.create(
        folder, key=key[0] if len(key) == 1 else key, buckets=buckets,
        columns={**{c: types[c] for c in key}, "sku": "string", "qty": "int",
                 "price": "float", "kind": "string"})
    if events.height:
        archive.append(events.drop("seq", "recorded_at"))
    return archive


@settings(FAST, max_examples=40)
@given(stream=streams())
def test_the_bucket_engine_matches_the_oracle_for_any_key(
        stream: tuple[pl.DataFrame, tuple[str, ...], Any]) -> None:
    events, key, shared_key = stream
    rules = RuleSet(name="orders", key=key[0] if len(key) == 1 else key, columns=COLUMNS,
                    fields=FIELDS, handlers=HANDLERS, where="kind != 'skip'",
                    global_events=GlobalEvents(shared_key, ("Noted",)), ignore=("Noted",))
    with tempfile.TemporaryDirectory() as folder:
        bucketed = declared(events, key, Path(folder) / "b", buckets=3)
        stored = bucketed.scan().collect()
        check_against_oracle(stored, rules, engine="buckets", archive=bucketed)  # split: the
        # rules' global events are not the archive's shared key, so it is split by the hash
        plain = declared(events, key, Path(folder) / "p", buckets=None)
        memory = eventkit.replay(plain, rules)
        on_the_fly = eventkit.replay(plain, rules, engine="buckets")
        assert_frame_equal(on_the_fly.state().collect(), memory.state().collect())


def test_an_archive_bucketed_by_a_text_key_is_read_bucket_by_bucket(tmp_path: Path) -> None:
    ids = [f"C{1231006815 + 97 * i}" for i in range(40)]
    events = pl.DataFrame({
        "event_id": [f"e{i}" for i in range(120)], "k": [ids[i % 40] for i in range(120)],
        "event_type": ["Added"] * 120,
        "event_time": [T0 + timedelta(minutes=i) for i in range(120)],
        "qty": list(range(120)), "sku": ["x"] * 120, "price": [1.0] * 120, "kind": ["o"] * 120})
    archive = EventArchive.create(tmp_path / "a", key="k", buckets=4, columns={
        "k": "string", "sku": "string", "qty": "int", "price": "float", "kind": "string"})
    archive.append(events)
    files = [f for c in eventkit.archive.ledger.read_log(archive.path) if c.record
             for f in c.record.get("files", [])]
    assert sorted({f["bucket"] for f in files}) == sorted({bucket_of(i, 4) for i in ids})
    rules = RuleSet("n", (eventkit.Field("total"),),
                    (eventkit.Handler("Added", {"total": "total + qty"}),), key="k",
                    columns={"qty": "int"})
    result = eventkit.replay(archive, rules, engine="buckets", keys=ids[:3])
    assert set(result.buckets) == {bucket_of(i, 4) for i in ids[:3]}  # only those buckets
    want = eventkit.replay(archive, rules, keys=ids[:3]).state().collect()
    assert_frame_equal(result.state().collect(), want)
    assert want["total"].to_list() == [sum(range(i, 120, 40)) for i in range(3)]


@pytest.mark.parametrize(("declared_as", "ids"), [
    ("decimal(10,2)", [Decimal("1.50"), Decimal("-7.25"), Decimal("1000.00")]),
    (pl.Binary, [b"\x00\xff", b"order-7", b""])])
def test_an_archive_bucketed_by_a_decimal_or_bytes_key_replays_by_bucket(
        tmp_path: Path, declared_as: object, ids: list[object]) -> None:
    dtype = pl.Decimal(10, 2) if declared_as != pl.Binary else pl.Binary
    events = pl.DataFrame({
        "event_id": [f"e{i}" for i in range(9)], "k": pl.Series([ids[i % 3] for i in range(9)],
                                                                dtype=dtype),
        "event_type": ["Added"] * 9, "event_time": [T0 + timedelta(minutes=i) for i in range(9)],
        "qty": list(range(9))})
    archive = EventArchive.create(tmp_path / "a", key="k", buckets=2,
                                  columns={"k": declared_as, "qty": "int"})
    archive.append(events)  # each key's bucket from its stable hash (was a ScaleError)
    rules = RuleSet("n", (eventkit.Field("total"),),
                    (eventkit.Handler("Added", {"total": "total + qty"}),), key="k",
                    columns={"qty": "int"})
    state = eventkit.replay(archive, rules, engine="buckets").state().collect()
    assert_frame_equal(state, eventkit.replay(archive, rules).state().collect())
    assert dict(zip(state["k"], state["total"], strict=True)) == {
        ids[i]: sum(range(i, 9, 3)) for i in range(3)}


@pytest.mark.cluster
def test_dask_gives_the_same_answers_for_text_keys(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    events = pl.DataFrame({
        "event_id": [f"e{i}" for i in range(60)], "tenant": ["acme", "zeta", "ü"] * 20,
        "n": [i % 7 for i in range(60)], "event_type": ["Added"] * 60,
        "event_time": [T0 + timedelta(hours=i) for i in range(60)], "qty": list(range(60)),
        "sku": ["x"] * 60, "price": [0.5] * 60, "kind": ["o"] * 60})
    archive = declared(events.with_columns(seq=pl.lit(0), recorded_at=pl.lit(T0)),
                       ("tenant", "n"), tmp_path / "a", buckets=3)
    rules = RuleSet("n", (eventkit.Field("total"), eventkit.Field("last", "string")),
                    (eventkit.Handler("Added", {"total": "total + qty", "last": "sku"}),),
                    key=("tenant", "n"), columns={"qty": "int", "sku": "string"})
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = eventkit.replay(archive, rules, client=client, out=tmp_path / "out")
        assert_frame_equal(result.history.collect(), eventkit.replay(archive, rules)
                           .history.collect())
        assert_frame_equal(result.state().collect(), eventkit.replay(archive, rules)
                           .state().collect())


def test_the_command_line_takes_text_and_composite_ids(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "a", key=("tenant", "order_id"), columns={
        "tenant": "string", "order_id": "string", "qty": "int"})
    archive.append(pl.DataFrame({
        "event_id": ["1", "2", "3"], "tenant": ["acme", "acme", "zeta"],
        "order_id": ["o-1", "o-2", "o-1"], "event_type": ["Added"] * 3,
        "event_time": [T0, T0, T0], "qty": [2, 3, 4]}))
    rules = tmp_path / "r.toml"
    rules.write_text('[ruleset]\nname = "n"\nkey = ["tenant", "order_id"]\n[columns]\n'
                     'qty = "int"\n[fields.items]\ntype = "int"\n[on.Added]\n'
                     'items = "items + qty"\n')

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eventkit", *args], capture_output=True,
                              text=True, timeout=120, check=False)

    done = cli("replay", str(archive.path), "--rules", str(rules), "--accounts",
               "zeta:o-1,acme:o-2", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == ["acme,o-2,3,1,2024-01-01T00:00:00.000000+0000",
                                            "zeta,o-1,4,1,2024-01-01T00:00:00.000000+0000"]
    bad = cli("replay", str(archive.path), "--rules", str(rules), "--accounts", "acme")
    assert bad.returncode == 2 and "joined by ':'" in bad.stderr


def test_explorer_and_patterns_take_text_account_ids() -> None:
    ids = ["C1231006815", "C1666544295"]
    t = [T0 + timedelta(minutes=m) for m in range(5)]
    events = pl.DataFrame({"event_id": list("abcde"), "seq": list(range(5)),
                           "account_id": [ids[0]] * 4 + [ids[1]],
                           "event_type": ["Deposit", "Withdrawal", "Withdrawal", "Withdrawal",
                                          "Deposit"],
                           "event_time": t, "recorded_at": t, "amount": [900, 1, 1, 1, 5]})
    view = eventkit.account_view(events, ids[0], "2024-01-01", rules="balance")
    assert view.state.select("account_id", "balance").rows() == [(ids[0], 897)]
    alerts = rapid_withdrawals(3, "10m").detect(events)
    assert alerts["account_id"].to_list() == [ids[0]]
    history = eventkit.replay(events).history
    found = eventkit.builtin_alerts(history, eventkit.Thresholds(rapid_count=3))
    assert found.select("pattern", "account_id").rows() == [("rapid_withdrawals", ids[0])]


def test_restatements_and_the_account_table_take_a_composite_key() -> None:
    t = [T0 + timedelta(days=d) for d in (0, 1, 2)]
    events = pl.DataFrame({"event_id": ["a", "b", "late"], "seq": [0, 1, 2],
                           "shop": ["s1", "s1", "s1"], "sku": [1, 2, 1],
                           "event_type": ["Deposit"] * 3, "event_time": t,
                           "recorded_at": [t[0], t[1], T0 + timedelta(days=20)],
                           "amount": [100, 5, -30]})
    rules = RuleSet(name="stock", key=("shop", "sku"), fields=(eventkit.Field("balance", "int"),),
                    handlers=(eventkit.Handler("Deposit", {"balance": "balance + amount"}),))
    late = eventkit.restatements(events, rules, known_at=T0 + timedelta(days=5),
                                 now_known_at=T0 + timedelta(days=30)).collect()
    assert late.select("shop", "sku", "event_id", "balance_then", "balance_now",
                       "balance_delta").rows() == [("s1", 1, "late", 100, 70, -30)]
    view = eventkit.account_view(events, ("s1", 1), T0 + timedelta(days=30), rules=rules)
    table = view.table().as_raw_html()  # the key is the view's subject, not a column
    assert "balance" in table and ">70<" in table
    assert ">shop<" not in table and ">sku<" not in table
