"""An archive of one's own: declared key, payload and metadata columns, end to end.

A shop's order stream keyed by UUID text, with money, dates, booleans,
decimals, line items (a list of structs) and per-event metadata: appended
under the user's own column names, checked against the declaration (a refused
batch leaves every byte as it was), evolved by adding a column, and replayed
by rules that read text, time parts and string fields, in every engine, with
snapshots, the by-key copy, a live replay and SQL views.
"""

from __future__ import annotations

import sqlite3
import uuid
import warnings
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_archive import assert_unchanged, snapshot

import eventkit
from eventkit import EventArchive, Handler, RuleSet
from eventkit.exceptions import (
    CoverageError,
    CoverageWarning,
    RuleError,
    SchemaError,
    ValidationError,
)
from eventkit.schema import EventSchema

T0 = datetime(2024, 5, 3, 9, 30, tzinfo=UTC)  # a Friday
ORDERS = [str(uuid.UUID(int=i * 104729 + 3)) for i in range(4)]
COLUMNS = {
    "order_id": "string", "sku": "string", "qty": "int", "price": "money",
    "paid_on": "date", "gift": "bool", "tax": "decimal(10,4)",
    "lines": pl.List(pl.Struct({"sku": pl.String, "qty": pl.Int64})),
}
RULES = RuleSet.from_dict({
    "ruleset": {"name": "orders", "key": "order_id"},
    "columns": {"sku": "string", "qty": "int", "price": "int"},
    "fields": {"status": {"type": "string", "initial": "new"}, "items": {"type": "int"},
               "total": {"type": "int", "money": True}, "last_sku": {"type": "string"},
               "placed_hour": {"type": "int"}, "paid_weekday": {"type": "int"}},
    "on": {"OrderPlaced": {"status": "'placed'", "placed_hour": "hour(event_time)"},
           "ItemAdded": {"require": "status == 'placed'", "items": "items + qty",
                         "total": "total + qty * price", "last_sku": "sku"},
           "OrderPaid": {"require": "status == 'placed' and items > 0", "status": "'paid'",
                         "paid_weekday": "weekday(event_time)"}},
})


def export(n: int = 0) -> pl.DataFrame:
    """The shop's own export: its own names (id, orderId, when), prices in currency units."""
    at = [T0 + timedelta(hours=h) for h in range(6)]
    return pl.DataFrame({
        "id": [f"e{n}-{i}" for i in range(6)],
        "orderId": [ORDERS[0], ORDERS[0], ORDERS[0], ORDERS[1], ORDERS[1], ORDERS[2]],
        "type": ["OrderPlaced", "ItemAdded", "OrderPaid", "OrderPlaced", "ItemAdded",
                 "ItemAdded"],
        "when": at,
        "sku": [None, "A-1", None, None, "B-2", "C-3"],
        "qty": [None, 2, None, None, 1, 4],
        "price": [None, 10.25, None, None, 3.5, 1.0],
        "paid_on": [None, None, date(2024, 5, 3), None, None, None],
        "gift": [None, True, None, None, False, None],
        "tax": [None, "0.1250", None, None, None, "1"],
        "lines": [None, [{"sku": "A-1", "qty": 2}], None, None, [], None],
        "correlation_id": ["c1", "c1", "c1", "c2", "c2", None],
        "user": ["ann"] * 6,
    })


MAPPING = {"event_id": "id", "order_id": "orderId", "event_type": "type",
           "event_time": "when", "amount_unit": "major"}


@pytest.fixture
def shop(tmp_path: Path) -> EventArchive:
    archive = EventArchive.create(tmp_path / "shop", key="order_id", columns=COLUMNS,
                                  metadata=["correlation_id", "user"], buckets=3)
    archive.append(export(), mapping=MAPPING)
    return archive


def test_a_declared_archive_stores_its_own_columns_under_the_users_names(
        shop: EventArchive) -> None:
    # Step: the declaration is the archive's schema; event types are open.
    assert shop.event_types is None and shop.key == ("order_id",)
    assert list(shop.schema)[:6] == ["event_id", "seq", "order_id", "event_type", "event_time",
                                     "recorded_at"]
    assert shop.declared.metadata == ("correlation_id", "user")
    rows = shop.scan().collect()
    # Step: values converted exactly: money to cents, text decimals, lists of structs.
    assert rows["price"].to_list() == [None, 1025, None, None, 350, 100]
    assert rows["tax"].to_list()[1] == Decimal("0.1250")
    assert rows["lines"].to_list()[1] == [{"sku": "A-1", "qty": 2}]
    assert rows["gift"].to_list()[:2] == [None, True]
    assert rows.schema["paid_on"] == pl.Date
    # Step: plain readers and eventkit's own see the same table; the chain holds.
    assert eventkit.open_archive(shop.path).collect().equals(rows)
    assert pl.scan_delta(str(shop.path)).collect().height == 6
    assert shop.verify().ok


@pytest.mark.parametrize(("change", "column", "row", "error", "match"), [
    (lambda f: f.with_columns(colour=pl.lit("red")), "colour", None, SchemaError,
     "unknown column"),
    (lambda f: f.with_columns(qty=pl.Series([None, "2", None, None, "two", "4"])), "qty", 4,
     ValidationError, "'two'"),
    (lambda f: f.with_columns(price=pl.Series([None, 10.255, None, None, 3.5, 1.0])),
     "price", 1, ValidationError, "more than 2 decimals"),
    (lambda f: f.with_columns(orderId=pl.Series([ORDERS[0], None, *ORDERS[:4]])), "order_id",
     1, ValidationError, "null value"),
    (lambda f: f.drop("orderId"), "order_id", None, SchemaError, "missing column"),
    (lambda f: f.with_columns(sku=pl.Series([[1]] * 6)), "sku", None, SchemaError,
     "List"),
    (lambda f: f.with_columns(paid_on=pl.Series([None, None, "3 May", None, None, None])),
     "paid_on", 2, ValidationError, "cannot convert"),
    (lambda f: f.with_columns(when=pl.lit(datetime(2262, 4, 11, tzinfo=UTC))), "event_time",
     0, ValidationError, "1900-2200"),
    # nothing is cut off on the way in: a decimal's digits beyond its scale, in any form
    (lambda f: f.with_columns(tax=pl.Series([None, "0.12345", None, None, None, "1"])), "tax",
     1, ValidationError, "'0.12345'"),
    (lambda f: f.with_columns(tax=pl.Series([None, "1e-5", None, None, None, "1"])), "tax",
     1, ValidationError, "'1e-5'"),
    (lambda f: f.with_columns(tax=pl.Series([None, 0.1, None, None, None, 1.00005])), "tax",
     5, ValidationError, "'1.00005'"),
    (lambda f: f.with_columns(tax=pl.Series([None, Decimal("0.12345"), None, None, None, None],
                                            dtype=pl.Decimal(10, 5))), "tax", 1,
     ValidationError, "0.12345"),
    (lambda f: f.with_columns(paid_on=pl.Series([None, None, T0, None, None, None])), "paid_on",
     2, ValidationError, "09:30"),  # a date has no time of day to drop
    (lambda f: f.with_columns(lines=pl.Series([None, [{"sku": "A-1", "n": 2}], None, None, [],
                                               None])), "lines", 1, ValidationError,
     '"n":2'),  # a struct field the declaration lacks is not dropped
    (lambda f: f.with_columns(lines=pl.Series([None, [{"sku": "A-1", "qty": 2.5}], None, None,
                                               [], None])), "lines", 1, ValidationError, "2.5"),
    (lambda f: f.with_columns(lines=pl.lit("A-1 x2")), "lines", None, SchemaError,
     "nested values"),
])
def test_a_refused_append_names_where_and_changes_no_byte(
        shop: EventArchive, change: object, column: str, row: int | None,
        error: type[Exception], match: str) -> None:
    before = snapshot(shop.path)
    bad = change(export(1))  # type: ignore[operator]
    with pytest.raises(error, match=match) as caught:
        shop.append(bad, mapping=MAPPING)
    assert (caught.value.column, caught.value.row) == (column, row)  # type: ignore[attr-defined]
    assert_unchanged(shop.path, before)


def test_required_columns_and_a_declaration_that_makes_no_sense(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "ledger", key=("tenant", "n"), columns={
        "tenant": "string", "n": "int", "amount": "money"}, required=["amount"])
    one = pl.DataFrame({"event_id": ["a"], "tenant": ["acme"], "n": [1],
                        "event_type": ["Paid"], "event_time": [T0], "amount": [None]},
                       schema_overrides={"amount": pl.Int64})
    with pytest.raises(ValidationError, match="null value") as caught:
        archive.append(one)
    assert caught.value.column == "amount"
    archive.append(one.with_columns(amount=pl.lit(5)))
    assert archive.scan().collect().select("tenant", "n", "amount").row(0) == ("acme", 1, 5)
    for i, columns in enumerate(({"x": "int"},               # the key's type undeclared
                                 {"k": "float"},             # a float key
                                 {"k": "int", "seq": "int"},  # a core column
                                 {"k": "uuid"})):            # no such type
        with pytest.raises(SchemaError):
            EventArchive.create(tmp_path / f"bad-{i}", key="k", columns=columns)


def test_adding_a_column_goes_through_the_schema_versions(shop: EventArchive) -> None:
    before = shop.scan().collect()
    evolution = shop.evolve({"coupon": "string"}, metadata=[])
    # Step: one audited commit, the next schema version; old files are not rewritten.
    assert evolution.schema_version == 4 and evolution.added == ("coupon",)
    assert shop.verify().ok
    assert shop.scan().collect()["coupon"].null_count() == before.height
    shop.append(export(2).with_columns(coupon=pl.lit("MAY")), mapping=MAPPING)
    after = shop.scan().collect()
    assert after["coupon"].to_list() == [None] * 6 + ["MAY"] * 6
    assert after["seq"].to_list() == list(range(12))  # the log continues after the evolve
    assert_frame_equal(after.head(6).drop("coupon"), before)
    # Step: plain Delta readers see the evolved table (the new column, every row).
    plain = pl.read_delta(str(shop.path))
    assert "coupon" in plain.columns and plain.height == 12
    # Step: the new files carry the new version; the old ones keep theirs.
    versions = eventkit.archive.storage.versions(shop.path)
    assert sorted(set(versions["schema_version"].to_list())) == [3, 4]
    with pytest.raises(SchemaError, match="exist already"):
        shop.evolve({"sku": "string"})


def test_rules_read_text_time_parts_and_fill_string_fields_in_every_engine(
        shop: EventArchive) -> None:
    memory = eventkit.replay(shop, RULES)
    state = memory.state().collect()
    first = state.filter(pl.col("order_id") == ORDERS[0]).row(0, named=True)
    assert (first["status"], first["items"], first["total"], first["last_sku"]) == (
        "paid", 2, 2050, "A-1")
    assert (first["placed_hour"], first["paid_weekday"]) == (9, 5)  # 09:30 UTC, a Friday
    # ORDERS[2] never placed: its item is refused (violation), its state stays new
    assert memory.violations().collect()["order_id"].to_list() == [ORDERS[2]]
    buckets = eventkit.replay(shop, RULES, engine="buckets")
    assert_frame_equal(buckets.state().collect(), state)
    assert_frame_equal(buckets.history.collect(), memory.history.collect())
    # one key, from the by-key copy a snapshot makes (sorted by the archive's key)
    eventkit.snapshot(shop, RULES, every="1d")
    one = eventkit.replay(shop, RULES, keys=[ORDERS[1]])
    assert one.state().collect().rows() == state.filter(pl.col("order_id") == ORDERS[1]).rows()
    assert_frame_equal(eventkit.replay(shop, RULES).as_of(T0 + timedelta(hours=3)).collect(),
                       memory.as_of(T0 + timedelta(hours=3)).collect())
    why = eventkit.explain(memory, ORDERS[0], "total")
    assert why.steps["change"].sum() == 2050


def test_live_replay_and_views_keep_text_keys(shop: EventArchive, tmp_path: Path) -> None:
    live = eventkit.LiveReplay(shop, RULES)
    live.catch_up()
    for url in (f"duckdb:///{tmp_path}/v.duckdb", f"sqlite:///{tmp_path}/v.sqlite"):
        eventkit.materialize(eventkit.replay(shop, RULES), url, table="orders")
    shop.append(pl.DataFrame({"event_id": ["late"], "order_id": [ORDERS[1]],
                              "event_type": ["ItemAdded"], "event_time": [T0],
                              "qty": [3], "price": [100], "sku": ["Z"]}))
    report = live.catch_up()
    assert report.late == [ORDERS[1]]  # dated before the order's last event
    full = eventkit.replay(shop, RULES).state().collect()
    assert_frame_equal(live.state, full)
    eventkit.refresh(f"duckdb:///{tmp_path}/v.duckdb", RULES, table="orders")
    eventkit.refresh(f"sqlite:///{tmp_path}/v.sqlite", RULES, table="orders")
    want = sorted(full.select("order_id", "status", "items", "total").rows())
    got = sqlite3.connect(tmp_path / "v.sqlite").execute(
        "SELECT order_id, status, items, total FROM orders_state").fetchall()
    assert sorted(got) == want


def test_rule_coverage_is_reported_never_silent(shop: EventArchive) -> None:
    typo = RuleSet("typo", RULES.fields, (*RULES.handlers[:2],
                                          Handler("OrderPayed", {"status": "'paid'"})),
                   key="order_id", columns=RULES.columns)
    with pytest.warns(CoverageWarning, match=r"\['OrderPaid'\] occur but no rule handles them"
                      r".*rules for \['OrderPayed'\] never applied"):
        eventkit.replay(shop, typo).state().collect()
    with pytest.raises(CoverageError, match="OrderPaid"):
        eventkit.replay(shop, typo, strict=True).state().collect()
    with pytest.warns(CoverageWarning, match="OrderPaid"):  # the bucket engine too, once
        eventkit.replay(shop, typo, engine="buckets").state().collect()
    ignoring = RuleSet("ok", typo.fields, typo.handlers, key="order_id",
                       columns=RULES.columns, ignore=("OrderPaid",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eventkit.replay(shop, ignoring).state().collect()
    with pytest.raises(RuleError, match="wildcards"):
        RuleSet("star", (), (Handler("*", {}),)).check()


def test_a_declared_archive_rejects_rules_for_types_it_does_not_declare(
        tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "a", key="k", columns={"k": "string"},
                                  event_types=("Opened", "Closed"))
    archive.append(pl.DataFrame({"event_id": ["a"], "k": ["x"], "event_type": ["Opened"],
                                 "event_time": [T0]}))
    rules = RuleSet("r", (eventkit.Field("n"),), (Handler("Opened", {"n": "n + 1"}),
                                                  Handler("Closd", {"n": "n - 1"})), key="k",
                    ignore=("Closed",))
    with pytest.raises(CoverageError, match="does not declare"):
        eventkit.replay(archive, rules, strict=True).state().collect()
    with warnings.catch_warnings():  # (an archive older than a rule is no mistake on its own)
        warnings.simplefilter("error")
        eventkit.replay(archive, rules).state().collect()


def test_open_archive_reads_foreign_data_in_a_schema_of_ones_own(tmp_path: Path) -> None:
    schema = EventSchema.declare(key="order_id", columns={"order_id": "string", "qty": "int",
                                                          "price": "money"})
    path = tmp_path / "orders.parquet"
    export().select("id", "orderId", "type", "when", "qty", "price").write_parquet(path)
    events = eventkit.open_archive(path, schema=schema, mapping=MAPPING).collect()
    assert events.columns == ["event_id", "seq", "order_id", "event_type", "event_time",
                              "recorded_at", "qty", "price"]
    assert events["price"].to_list() == [None, 1025, None, None, 350, 100]
    # the placeholder date 2262-04-11 is refused here as by the archive
    export().with_columns(when=pl.lit(datetime(2262, 4, 11, tzinfo=UTC))).select(
        "id", "orderId", "type", "when").write_parquet(path)
    with pytest.raises(ValidationError, match="1900-2200") as caught:
        eventkit.open_archive(path, schema=schema, mapping=MAPPING).collect()
    assert (caught.value.column, caught.value.row) == ("event_time", 0)


def test_a_line_item_that_would_change_is_set_aside_as_json(tmp_path: Path) -> None:
    schema = EventSchema.declare(key="order_id", columns={"order_id": "string",
                                                          "lines": COLUMNS["lines"]})
    path = tmp_path / "orders.ndjson"
    path.write_text("".join(
        f'{{"id": "e{i}", "orderId": "o", "type": "Placed", "when": "2024-05-03T09:30:00Z", '
        f'"lines": [{line}]}}\n' for i, line in enumerate(
            ['{"sku": "A", "qty": 1}', '{"sku": "A", "qty": 1.5}', '{"sku": "B", "n": 2}'])))
    with pytest.warns(eventkit.DeadLetterWarning, match="2 of 3 rows"):
        events = eventkit.open_archive(path, schema=schema, mapping=MAPPING,
                                       on_error="dead-letter").collect()
    assert events["lines"].to_list() == [[{"sku": "A", "qty": 1}]]
    letters = pl.read_parquet(f"{path}.dead-letter.parquet")
    assert letters.select("row", "column").rows() == [(1, "lines"), (2, "lines")]
    assert letters["value"].to_list() == ['[{"sku":"A","qty":1.5,"n":null}]',
                                          '[{"sku":"B","qty":null,"n":2}]']


def test_several_kinds_of_stream_in_one_archive_each_rule_set_selecting_its_own(
        tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "mixed", key="stream", columns={
        "stream": "string", "stream_type": "string", "account_id": "int",
        "order_id": "string", "amount": "money"})
    t = [T0 + timedelta(hours=h) for h in range(5)]
    archive.append(pl.DataFrame({
        "event_id": list("abcde"),
        "stream": ["account-1", "order-42", "account-1", "order-42", "order-7"],
        "stream_type": ["account", "order", "account", "order", "order"],
        "account_id": [1, None, 1, None, None], "order_id": [None, "42", None, "42", "7"],
        "event_type": ["Deposit", "Placed", "Deposit", "Paid", "Placed"], "event_time": t,
        "amount": [500, 1200, 250, 1200, 90]}))
    accounts = RuleSet.from_dict({
        "ruleset": {"name": "accounts", "key": "account_id",
                    "where": "stream_type == 'account'"},
        "columns": {"stream_type": "string"},
        "fields": {"balance": {"type": "int"}},
        "on": {"Deposit": {"balance": "balance + amount"}}})
    orders = RuleSet.from_dict({
        "ruleset": {"name": "orders", "key": "order_id", "where": "stream_type == 'order'"},
        "columns": {"stream_type": "string"},
        "fields": {"status": {"type": "string", "initial": "new"}, "due": {"type": "int"}},
        "on": {"Placed": {"status": "'placed'", "due": "amount"},
               "Paid": {"status": "'paid'", "due": "due - amount"}}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # each sees only its own types: nothing unhandled
        by_account = eventkit.replay(archive, accounts).state().collect()
        by_order = eventkit.replay(archive, orders).state().collect()
    assert by_account.select("account_id", "balance").rows() == [(1, 750)]
    assert by_order.select("order_id", "status", "due").rows() == [("42", "paid", 0),
                                                                  ("7", "placed", 90)]


@pytest.mark.parametrize(("declared", "values"), [
    ("date", [date(2024, 5, 1), date(2024, 5, 2), date(2030, 1, 1)]),
    ("datetime", [T0, T0 + timedelta(hours=1), T0 + timedelta(days=900)]),
    ("bool", [True, False, False]),
    ("decimal(10,2)", [Decimal("1.50"), Decimal("-2.00"), Decimal("3.25")]),
    (pl.Binary, [b"\x00a", b"b", b"c"]),
])
def test_keys_of_any_type_are_stored_replayed_and_kept_in_views(
        tmp_path: Path, declared: object, values: list[object]) -> None:
    archive = EventArchive.create(tmp_path / "a", key="k", columns={"k": declared, "n": "int"})
    rules = RuleSet.from_dict({"ruleset": {"name": "sums", "key": "k"},
                               "columns": {"n": "int"}, "fields": {"total": {"type": "int"}},
                               "on": {"Counted": {"total": "total + n"}}})
    def batch(ids: list[str], keys: list[object], days: list[int]) -> pl.DataFrame:
        return pl.DataFrame({"event_id": ids, "event_type": ["Counted"] * len(ids),
                             "event_time": [T0 + timedelta(days=d) for d in days],
                             "n": list(range(1, len(ids) + 1))}).with_columns(
            pl.Series("k", keys, dtype=archive.schema["k"]))
    archive.append(batch(["a", "b"], values[:2], [1, 2]))  # (file statistics of any key type)
    assert archive.verify().ok
    urls = [f"duckdb:///{tmp_path}/v.duckdb", f"sqlite:///{tmp_path}/v.sqlite"]
    for url in urls:
        eventkit.materialize(eventkit.replay(archive, rules), url)
    archive.append(batch(["late", "new"], [values[0], values[2]], [0, 3]))  # late, new key
    for url in urls:
        assert eventkit.refresh(url, rules).keys_replayed == [values[0]]
    full = eventkit.replay(archive, rules).state().collect()
    assert full.schema["k"] == archive.schema["k"]
    with duckdb.connect(f"{tmp_path}/v.duckdb", read_only=True) as con:
        got = pl.from_arrow(con.sql("SELECT k, total FROM accounts_state ORDER BY k")
                            .to_arrow_table())
    assert got.rows() == full.select("k", "total").rows()
    stored = sqlite3.connect(tmp_path / "v.sqlite").execute(
        "SELECT total FROM accounts_state ORDER BY k").fetchall()
    assert sorted(t for (t,) in stored) == sorted(full["total"].to_list())


@pytest.mark.parametrize(("declared", "problem"), [
    (pl.Time, "cannot store"), (pl.Duration("us"), "cannot store"), (pl.Int128, "cannot store"),
    (pl.Datetime("us", "Europe/Paris"), "cannot store"),
    # stored as another type: a UInt8 column would come back Int8 and refuse 200
    (pl.UInt8, "no unsigned integers"), (pl.UInt64, "no unsigned integers"),
    (pl.List(pl.UInt16), "no unsigned integers"),
    (pl.Struct({"n": pl.UInt32}), "no unsigned integers"),
    (pl.Categorical, "categories as text"), (pl.Enum(["a", "b"]), "categories as text")])
def test_a_type_no_delta_table_stores_is_refused_before_anything_is_made(
        tmp_path: Path, declared: pl.DataType, problem: str) -> None:
    with pytest.raises(SchemaError, match=problem) as caught:
        EventArchive.create(tmp_path / "a", key="k", columns={"k": "string", "at": declared})
    assert caught.value.column == "at"
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(("declared", "given", "value"), [
    (pl.Int8, pl.Int64, 200), (pl.Int16, pl.UInt16, 40_000), (pl.Int32, pl.Float64, 2.0**40)])
def test_a_value_beyond_a_narrow_integer_column_is_refused_naming_it(
        tmp_path: Path, declared: pl.DataType, given: pl.DataType, value: object) -> None:
    archive = EventArchive.create(tmp_path / "a", key="k", columns={"k": "string", "n": declared})
    before = snapshot(tmp_path / "a")
    batch = pl.DataFrame({"event_id": ["e1", "e2"], "k": ["x", "x"], "event_type": ["T", "T"],
                          "event_time": [T0, T0], "n": pl.Series([1, value], dtype=given)})
    with pytest.raises(ValidationError, match=f"integer of {declared}") as caught:
        archive.append(batch)
    assert (caught.value.column, caught.value.row) == ("n", 1)
    assert_unchanged(tmp_path / "a", before)


@pytest.mark.parametrize(("declared", "bad"), [
    (pl.List(pl.Float64), [2.0, float("nan")]),
    (pl.Struct({"n": pl.Int64, "w": pl.Float64}), {"n": 2, "w": float("inf")}),
    (pl.List(pl.Struct({"w": pl.Float32})), [{"w": None}, {"w": float("-inf")}])])
def test_nan_inside_a_list_or_struct_is_refused_as_at_the_top(
        tmp_path: Path, declared: pl.DataType, bad: object) -> None:
    archive = EventArchive.create(tmp_path / "a", key="k", columns={"k": "string", "x": declared})
    before = snapshot(tmp_path / "a")
    good = [1.0] if isinstance(declared, pl.List) and declared.inner == pl.Float64 else (
        {"n": 1, "w": 1.0} if isinstance(declared, pl.Struct) else [{"w": 1.0}])
    batch = pl.DataFrame({"event_id": ["e1", "e2"], "k": ["x", "x"], "event_type": ["T", "T"],
                          "event_time": [T0, T0], "x": pl.Series([good, bad], dtype=declared)})
    with pytest.raises(ValidationError, match="holds a NaN or infinite number") as caught:
        archive.append(batch)
    assert (caught.value.column, caught.value.row) == ("x", 1)
    assert_unchanged(tmp_path / "a", before)
    archive.append(batch.head(1))  # finite values (and nulls inside) are stored as they are
    assert archive.scan().collect()["x"].to_list() == [good]
