"""Keys of any type, payload columns and event types of one's own: engine == oracle, exactly.

Random streams keyed by integers (small, huge, negative), text (UUIDs, ids that
share a prefix, the empty string, non-ASCII, strings too long to sit in the
coder's table rows) or a composite (tenant, number), with payload columns of
several types (nulls included), rules that read text, time parts and a
selection, string state fields, and global events declared by the rule set.
Every state field after every event, and the final state, must equal the
per-event reference fold's.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_checks import FAST, check_against_oracle

import eventkit
from eventkit import Field, GlobalEvents, Handler, RuleSet
from eventkit.exceptions import RuleError, SchemaError, ValidationError
from eventkit.replay.keys import _places, key_codes, rows_by_key

T0 = datetime(2024, 3, 1, tzinfo=UTC)
UUIDS = [str(uuid.UUID(int=i * 7919 + 17)) for i in range(5)]
TEXT_KEYS = [*UUIDS, "C1231006815", "order-1", "order-2", "order-10", "", "ключ-ü",
             "x" * 60, "x" * 59 + "y", "abcd" + "q" * 40, "abcd" + "r" * 40]
INT_KEYS = [0, 1, 2, 7, -5, 2**40, 2**62, -(2**62)]
TYPES = ("Added", "Removed", "Paid", "Noted")
OFFSETS = [0, 1, 3_600_000_000, 13 * 3_600_000_000, 86_400_000_000, 5 * 86_400_000_000 + 7]
COLUMNS = {"sku": "string", "qty": "int", "price": "float", "kind": "string"}
HANDLERS = (
    Handler("Added", {"total": "total + qty", "last_sku": "sku", "spent": "spent + price"}),
    Handler("Removed", {"total": "total - qty",
                        "status": "'edited' if sku != last_sku else status"}),
    Handler("Paid", {"status": "'paid'", "tag": "'late' if hour(event_time) >= 12 else tag",
                     "weekend": "weekend + (1 if weekday(event_time) >= 6 else 0)",
                     "day_paid": "day(event_time)"},
            require="status != 'paid' and total > 0"),
)
FIELDS = (Field("total", "int"), Field("last_sku", "string"),
          Field("status", "string", initial="new"), Field("spent", "float"),
          Field("tag", "enum", values=("early", "late")), Field("weekend", "int"),
          Field("day_paid", "int"))
LINEAR_FIELDS = (Field("total", "int"), Field("last_sku", "string"),
                 Field("last_kind", "string", initial="none"))
LINEAR = (Handler("Added", {"total": "total + qty", "last_sku": "sku", "last_kind": "kind"}),
          Handler("Removed", {"total": "total - qty", "last_sku": "'removed'"}))


@st.composite
def streams(draw: st.DrawFn) -> tuple[pl.DataFrame, tuple[str, ...], Any]:
    """Events with a key of a random type; returns them, the key and a global key value."""
    kind = draw(st.sampled_from(["int", "text", "composite"]))
    n = draw(st.integers(0, 30))
    seq = draw(st.permutations(list(range(n)))) if n else []
    rows = []
    for i in range(n):
        if kind == "int":
            key: dict[str, Any] = {"k": draw(st.sampled_from(INT_KEYS))}
        elif kind == "text":
            key = {"k": draw(st.sampled_from(TEXT_KEYS))}
        else:
            key = {"tenant": draw(st.sampled_from(["acme", "", "zeta", "ü"])),
                   "n": draw(st.sampled_from([0, 1, -3, 2**50]))}
        when = T0 + timedelta(microseconds=draw(st.sampled_from(OFFSETS)))
        rows.append({
            "event_id": f"e{i}", "seq": seq[i], **key,
            "event_type": draw(st.sampled_from(TYPES)),
            "event_time": when, "recorded_at": when,
            "sku": draw(st.sampled_from([None, "", "A-1", "B-2", "a-1", "sku-" + "z" * 50])),
            "qty": draw(st.sampled_from([None, 0, 1, 5, -2, 2**40])),
            "price": draw(st.sampled_from([None, 0.0, 1.5, -0.25, 1e9])),
            "kind": draw(st.sampled_from(["order", "order", "skip", None])),
        })
    schema = {"event_id": pl.String, "seq": pl.Int64,
              **({"k": pl.Int64 if kind == "int" else pl.String} if kind != "composite"
                 else {"tenant": pl.String, "n": pl.Int64}),
              "event_type": pl.String, "event_time": pl.Datetime("us", "UTC"),
              "recorded_at": pl.Datetime("us", "UTC"), "sku": pl.String, "qty": pl.Int64,
              "price": pl.Float64, "kind": pl.String}
    events = pl.DataFrame(rows, schema=schema)
    key = ("k",) if kind != "composite" else ("tenant", "n")
    shared = {"int": 0, "text": "", "composite": ("acme", 0)}[kind]
    return events, key, shared


@settings(FAST, max_examples=150)
@given(stream=streams(), linear=st.booleans(), shared=st.booleans(), where=st.booleans())
def test_any_key_matches_the_oracle(stream: tuple[pl.DataFrame, tuple[str, ...], Any], *,
                                    linear: bool, shared: bool, where: bool) -> None:
    events, key, shared_key = stream
    rules = RuleSet(
        name="orders", key=key[0] if len(key) == 1 else key, columns=COLUMNS,
        fields=LINEAR_FIELDS if linear else FIELDS, handlers=LINEAR if linear else HANDLERS,
        global_events=GlobalEvents(shared_key, ("Noted",)) if shared else None,
        where="kind != 'skip'" if where else None, ignore=("Noted", "Paid"))
    assert rules.check().linear is linear
    check_against_oracle(events, rules)


def test_the_key_comes_back_in_its_own_type_and_columns() -> None:
    t = [T0 + timedelta(days=d) for d in range(4)]
    events = pl.DataFrame({
        "event_id": list("abcd"), "seq": [0, 1, 2, 3],
        "tenant": ["acme", "acme", "zeta", "acme"], "n": [1, 2, 1, 1],
        "event_type": ["Added"] * 4, "event_time": t, "recorded_at": t,
        "sku": ["x", "y", "z", "w"], "qty": [1, 2, 3, 4], "price": [0.0] * 4, "kind": ["o"] * 4})
    rules = RuleSet("orders", LINEAR_FIELDS, LINEAR, key=("tenant", "n"), columns=COLUMNS)
    result = eventkit.replay(events, rules)
    state = result.state().collect()
    assert state.select("tenant", "n", "total", "last_sku").rows() == [
        ("acme", 1, 5, "w"), ("acme", 2, 2, "y"), ("zeta", 1, 3, "z")]
    assert state.schema["tenant"] == pl.String and state.schema["n"] == pl.Int64
    assert result.as_of(t[1]).collect().height == 2
    assert result.at_times([t[0], t[3]]).collect().select("tenant", "n").rows()[-1] == ("zeta", 1)
    one = eventkit.replay(events, rules, keys=[("acme", 1)]).state().collect()
    assert one.select("tenant", "n", "total").rows() == [("acme", 1, 5)]
    with pytest.raises(eventkit.ParameterError, match="tuple of 2 values"):
        eventkit.replay(events, rules, keys=["acme"]).state().collect()


def test_a_wanted_key_of_another_type_than_its_column_is_named() -> None:
    t = [T0, T0 + timedelta(days=1)]
    events = pl.DataFrame({
        "event_id": ["a", "b"], "seq": [0, 1], "tenant": ["acme", "zeta"], "n": [1, 2],
        "event_type": ["Added"] * 2, "event_time": t, "recorded_at": t,
        "sku": ["x", "y"], "qty": [1, 2], "price": [0.0] * 2, "kind": ["o"] * 2})
    rules = RuleSet("orders", LINEAR_FIELDS, LINEAR, key=("tenant", "n"), columns=COLUMNS)
    with pytest.raises(eventkit.ParameterError, match=r"key column\(s\) \(tenant String, n Int64"):
        eventkit.replay(events, rules, keys=[("acme", "one")]).state().collect()
    single = RuleSet("orders", LINEAR_FIELDS, LINEAR, key="n", columns=COLUMNS)
    with pytest.raises(eventkit.ParameterError, match=r"\(n Int64\).*String: \"x\""):
        eventkit.replay(events, single, keys=["x"]).state().collect()
    with pytest.raises(eventkit.ParameterError, match=r"\(n Int64\)"):
        eventkit.replay(events, single, keys=[2**70]).state().collect()


def test_a_key_that_is_not_a_column_is_an_eventkit_error() -> None:
    events = pl.DataFrame({"event_id": ["a"], "seq": [0], "order_id": ["o1"],
                           "event_type": ["Added"], "event_time": [T0], "recorded_at": [T0]})
    rules = RuleSet("r", (Field("total"),), (Handler("Added", {"total": "total + 1"}),),
                    key="orderId")
    with pytest.raises(SchemaError, match=r"lack column\(s\) \['orderId'\].*they have") as err:
        eventkit.replay(events, rules).state().collect()
    assert err.value.column == "orderId"
    with pytest.raises(RuleError, match="key must name a column"):
        RuleSet("r", (Field("total"),), (), key=("a", "a")).check()
    with pytest.raises(RuleError, match="clash with a state field"):
        RuleSet("r", (Field("total"),), (), key="total").check()


def test_null_and_float_keys_are_refused_naming_column_and_row() -> None:
    events = pl.DataFrame({"event_id": ["a", "b"], "seq": [0, 1], "k": ["x", None],
                           "event_type": ["Added"] * 2, "event_time": [T0] * 2,
                           "recorded_at": [T0] * 2})
    rules = RuleSet("r", (Field("total"),), (Handler("Added", {"total": "total + 1"}),), key="k")
    with pytest.raises(ValidationError, match="null key") as err:
        eventkit.replay(events, rules).state().collect()
    assert (err.value.column, err.value.row) == ("k", 1)
    floats = events.with_columns(k=pl.Series([1.5, 2.5]))
    with pytest.raises(SchemaError, match="cannot hold Float64"):
        eventkit.replay(floats, rules).state().collect()


def _same_when_equal(codes: np.ndarray, text: pl.Series) -> None:
    """Codes are a one-to-one image of the text: equal codes exactly where strings are equal."""
    ranks = text.rank("dense").to_numpy().astype(np.int64)
    pairs = set(zip(codes.tolist(), ranks.tolist(), strict=True))
    assert len(pairs) == len({c for c, _ in pairs}) == len({r for _, r in pairs})


@given(words=st.lists(st.sampled_from(TEXT_KEYS + [k + "!" for k in TEXT_KEYS]), max_size=300),
       group=st.integers(1, 120), cut=st.integers(0, 5))
@settings(FAST)
def test_text_read_from_parquet_dictionary_pages_is_coded_by_its_bytes(
        words: list[str], group: int, cut: int) -> None:
    # Read back from dictionary pages, equal strings point at the same bytes: the coder codes
    # each place once (row groups of `group` rows: a string in several of them has several
    # places); a slice starts its views mid-buffer.
    buffer = io.BytesIO()
    pl.DataFrame({"k": words}, schema={"k": pl.String}).write_parquet(
        buffer, row_group_size=group)
    text = pl.read_parquet(buffer.getvalue())["k"][cut:]
    codes, n = key_codes(text)
    assert n == text.n_unique() and codes.shape == (text.len(),)
    _same_when_equal(codes, text)


def test_strings_whose_bytes_start_at_one_place_are_told_apart_by_length_and_bytes() -> None:
    data = b"abcdefghijklmnopqrstuvwxyz" + b"abcdefghijklmnop"

    def view(at: int, length: int) -> list[int]:
        return [length | int.from_bytes(data[at:at + 4], "little") << 32, at << 32]

    # "a..p" at 0 and at 26 (equal bytes, two places), "a..q" also at 0, "b..q" at 1
    views = np.array([view(0, 16), view(0, 17), view(26, 16), view(1, 16), view(0, 17),
                      view(0, 16)], np.int64)
    text = pl.Series("k", pa.Array.from_buffers(
        pa.string_view(), len(views), [None, pa.py_buffer(views.tobytes()), pa.py_buffer(data)]))
    assert text.to_list()[:4] == ["abcdefghijklmnop", "abcdefghijklmnopq", "abcdefghijklmnop",
                                  "bcdefghijklmnopq"]
    codes, n = key_codes(text)
    assert n == 3
    _same_when_equal(codes, text)
    # two strings of one length starting a byte apart: one word of the index (a word per 16
    # bytes), told apart by the place's last bits
    views = np.array([view(0, 16), view(1, 16), view(0, 16), view(1, 16)], np.int64)
    text = pl.Series("k", pa.Array.from_buffers(
        pa.string_view(), len(views), [None, pa.py_buffer(views.tobytes()), pa.py_buffer(data)]))
    codes, n = key_codes(text)
    assert n == 2
    _same_when_equal(codes, text)


def test_the_places_pass_marks_every_row() -> None:
    # every row gets its place, or -1 (a short string): nothing is left as it was in `out`
    data = b"abcdefghijklmnopqrstuvwxyz"
    views = np.array([[16 | int.from_bytes(data[:4], "little") << 32, 0],  # "a..p", at 0
                      [3 | int.from_bytes(b"xyz", "little") << 32, 0],  # "xyz", in its view
                      [16 | int.from_bytes(data[:4], "little") << 32, 0]], np.int64)
    for shift in (3, 4):  # a word of the index per 8 bytes, or per 16 (the shortest is 16)
        at = np.full((len(data) >> shift) + 1, -1, np.int64)
        first, out = np.empty(3, np.int64), np.full(3, 99, np.int64)
        assert _places(views, np.zeros(2, np.int64), at, shift, first, out) == (1, 1, 2)
        assert out.tolist() == [-2, -1, -2] and first[:2].tolist() == [0, 1]
        # the place holds new place 0's code, the string's length and its first byte's last
        # bits
        assert at[0] == (-2 << 32) | (16 << shift)
        # the same place read with another length is another string: every row coded instead
        other = views.copy()
        other[2, 0] = 17 | int.from_bytes(data[:4], "little") << 32
        at[:] = -1
        assert _places(other, np.zeros(2, np.int64), at, shift, first, out)[0] == -1
        assert (at == -1).all()  # (the new places undone)


@settings(FAST, max_examples=150)
@given(data=st.data(), kind=st.sampled_from(["int", "text", "composite"]),
       n=st.integers(0, 120), reversed_run=st.integers(0, 60))
def test_rows_by_key_groups_keys_each_in_time_and_seq_order(
        data: st.DataObject, kind: str, n: int, reversed_run: int) -> None:
    """Each key's rows in one run, ordered as a stable sort by (time, seq) orders them.

    Times tie and go back (late events); one key's run may come in reverse time
    order, pairs of its events at the same time in reverse seq order.
    """
    pick = st.sampled_from(TEXT_KEYS if kind == "text" else INT_KEYS)
    keys = data.draw(st.lists(pick, min_size=n, max_size=n))
    times = data.draw(st.lists(st.sampled_from(OFFSETS[:4]), min_size=n, max_size=n))
    seqs = data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))  # repeats too
    lone = "zz-reversed" if kind == "text" else 99
    keys += [lone] * reversed_run
    times += [OFFSETS[-1] - i // 2 for i in range(reversed_run)]  # back in time, in pairs
    seqs += list(range(reversed_run, 0, -1))  # a pair's second row first
    frame = pl.DataFrame({"k": keys, "event_time": times, "seq": seqs},
                         schema={"k": pl.Int64 if kind != "text" else pl.String,
                                 "event_time": pl.Int64, "seq": pl.Int64})
    columns: tuple[str, ...] = ("k",)
    if kind == "composite":
        frame = frame.with_columns(tenant=(pl.col("k") % 2 == 0).cast(pl.String))
        columns = ("tenant", "k")
    rows = rows_by_key(frame, columns)
    if frame.height == 0:
        assert rows is None
        return
    assert rows is not None
    assert sorted(rows.tolist()) == list(range(frame.height))
    got = frame.with_row_index("row")[rows]
    runs = got.select(pl.struct(columns).rle_id()).to_series()
    assert runs.n_unique() == got.select(pl.struct(columns).n_unique()).item()  # one run each
    for _, part in got.group_by(columns, maintain_order=True):
        want = part.sort("row").sort("event_time", "seq", maintain_order=True)
        assert part["row"].to_list() == want["row"].to_list()


def test_rows_by_key_leaves_nulls_and_float_keys_to_the_caller() -> None:
    frame = pl.DataFrame({"k": [1, None], "event_time": [1, 2], "seq": [0, 1]})
    assert rows_by_key(frame, ("k",)) is None
    assert rows_by_key(frame.with_columns(pl.col("k").cast(pl.Float64).fill_null(2.0)),
                       ("k",)) is None
    assert rows_by_key(frame.fill_null(3).with_columns(pl.lit(None, pl.Int64).alias("seq")),
                       ("k",)) is None
