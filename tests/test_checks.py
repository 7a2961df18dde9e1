"""The cheaper checks still catch what they caught: duplicate ids, one decode, every path.

Duplicate ids are found by sorting 64-bit keys (the integers themselves, or
hashes) and comparing the rows whose key repeats by value
(:mod:`eventkit.sources.unique`): these tests hold it to ``is_duplicated`` on
random ids, with the real hash and with hashes made to collide, and check that
every loader still names file, column and row.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventkit
from eventkit import ValidationError
from eventkit.sources import unique
from eventkit.sources.unique import first_duplicate

JAN1 = datetime(2024, 1, 1, tzinfo=UTC)
I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def expected(ids: pl.Series) -> int | None:
    """What the check used to compute: the first row ``is_duplicated`` marks."""
    marked = ids.is_duplicated()
    return int(marked.arg_true()[0]) if marked.any() else None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-5, 5), I64), max_size=40))
def test_integer_ids_match_is_duplicated(values: list[int | None]) -> None:
    ids = pl.Series(values, dtype=pl.Int64)
    assert first_duplicate(ids) == expected(ids)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "", "é", "a" * 20]),
                          st.text(max_size=14)), max_size=40))
def test_string_ids_match_is_duplicated(values: list[str | None]) -> None:
    ids = pl.Series(values, dtype=pl.String)
    assert first_duplicate(ids) == expected(ids)


@pytest.mark.parametrize("collide", [
    lambda ids: np.zeros(ids.len(), np.uint64),  # every id shares one hash
    lambda ids: ids.str.len_bytes().cast(pl.UInt64).to_numpy(),  # ids of one length collide
])
@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.text(alphabet="ab", max_size=4), max_size=30))
def test_hash_collisions_neither_hide_nor_invent_duplicates(collide, values: list[str],
                                                            ) -> None:
    ids = pl.Series(values, dtype=pl.String)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(unique, "keys_of", collide)
        assert first_duplicate(ids) == expected(ids)


def test_collisions_alone_are_not_duplicates(monkeypatch) -> None:
    monkeypatch.setattr(unique, "keys_of", lambda ids: np.zeros(ids.len(), np.uint64))
    assert first_duplicate(pl.Series([f"id{i}" for i in range(1000)])) is None
    assert first_duplicate(pl.Series([f"id{i}" for i in [*range(1000), 500]])) == 500


@pytest.mark.parametrize(("values", "row"), [
    ([], None), ([7], None), ([1, 2, 3], None), ([3, 2, 1], None), ([1, 1], 0),
    ([1, 2, 3, 4, 2], 1), ([5, 4, 3, 2, 1, 5], 0), ([2**63 - 1, -(2**63), 2**63 - 1], 0),
    ([-(2**63), 2**63 - 1], None), ([0, 0, 0], 0),
])
def test_integer_edge_cases(values: list[int], row: int | None) -> None:
    assert first_duplicate(pl.Series(values, dtype=pl.Int64)) == row


def test_unsigned_ids_beyond_int64_are_compared_exactly() -> None:
    big = 2**64 - 1
    assert first_duplicate(pl.Series([big, 2**63, big - 1], dtype=pl.UInt64)) is None
    assert first_duplicate(pl.Series([big, 2**63, big], dtype=pl.UInt64)) == 0


def test_a_million_growing_ids_with_one_repeat_at_the_end() -> None:
    ids = pl.Series(np.arange(1_000_000, dtype=np.int64) * 3)
    assert first_duplicate(ids) is None
    assert first_duplicate(ids.append(pl.Series([999_999]))) == 333_333


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.integers(-3, 30), max_size=30), cuts=st.lists(st.integers(0, 30)),
       grow=st.booleans())
def test_ids_in_several_chunks_match_is_duplicated(values: list[int], cuts: list[int],
                                                   *, grow: bool) -> None:
    # growing ids are checked chunk by chunk in place: a repeat where two chunks meet (or
    # across an empty chunk) must still be found
    if grow:
        values = sorted(values)
    bounds = [0, *sorted(min(c, len(values)) for c in cuts), len(values)]
    ids = pl.concat([pl.Series("id", values[a:b], pl.Int64)
                     for a, b in zip(bounds, bounds[1:], strict=False)], rechunk=False)
    assert first_duplicate(ids) == expected(ids)


# ----------------------------------------------------------------- through the loaders


def user_file(path: Path, ids: list[int], *, amounts: list[float] | None = None) -> Path:
    n = len(ids)
    pl.DataFrame({
        "txn": ids, "acct": [1 + i % 3 for i in range(n)],
        "at": [JAN1 + timedelta(minutes=i) for i in range(n)],
        "eur": amounts if amounts is not None else [1.25 * (i + 1) for i in range(n)],
    }).write_parquet(path)
    return path


MAPPING = {"event_id": "txn", "account_id": "acct", "event_time": "at", "amount": "eur",
           "amount_unit": "major"}


@pytest.mark.parametrize("in_memory", [True, False])
def test_integer_ids_repeated_across_files_name_file_column_and_row(
        tmp_path: Path, in_memory: bool) -> None:  # noqa: FBT001
    user_file(tmp_path / "a.parquet", [10, 11, 12])
    user_file(tmp_path / "b.parquet", [13, 14, 11, 15])

    with pytest.raises(ValidationError) as info:
        eventkit.open_archive(tmp_path, mapping=MAPPING, in_memory=in_memory).collect()

    err = info.value
    assert (err.source, err.column, err.row) == (str(tmp_path / "a.parquet"), "event_id", 1)
    assert "'11'" in str(err)


@pytest.mark.parametrize("in_memory", [True, False])
def test_string_ids_repeated_at_the_last_row(tmp_path: Path,
                                             in_memory: bool) -> None:  # noqa: FBT001
    path = tmp_path / "x.parquet"
    pl.DataFrame({"event_id": ["u-3", "u-1", "u-2", "u-1"], "account_id": [1, 2, 1, 2],
                  "event_time": [JAN1] * 4, "amount": [1, 2, 3, 4]}).write_parquet(path)

    with pytest.raises(ValidationError) as info:
        eventkit.open_archive(path, in_memory=in_memory).collect()

    assert (info.value.column, info.value.row) == ("event_id", 1)


def test_collisions_in_a_file_are_not_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(unique, "keys_of", lambda ids: np.zeros(ids.len(), np.uint64))
    path = tmp_path / "x.parquet"
    pl.DataFrame({"event_id": [f"e{i}" for i in range(50)], "account_id": [1] * 50,
                  "event_time": [JAN1] * 50, "amount": [1] * 50}).write_parquet(path)

    assert eventkit.open_archive(path).collect().height == 50


def test_a_negative_money_amount_among_negative_corrections_is_found(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.DataFrame({"event_id": ["a", "b", "c", "d"], "account_id": [1] * 4,
                  "event_type": ["Correction", "Deposit", "Correction", "Fee"],
                  "event_time": [JAN1] * 4, "amount": [-5, 10, -7, -3]}).write_parquet(path)

    with pytest.raises(ValidationError) as info:
        eventkit.open_archive(path).collect()

    assert (info.value.column, info.value.row) == ("amount", 3)
    assert "-3" in str(info.value)


def test_what_was_checked_is_what_is_read(tmp_path: Path) -> None:
    """The checked rows are kept: a file rewritten afterwards changes nothing read."""
    path = user_file(tmp_path / "x.parquet", [1, 2, 3])
    events = eventkit.open_archive(path, mapping=MAPPING)
    user_file(path, [1, 1, 1], amounts=[0.001, float("nan"), 1.0])  # would fail every check

    assert events.collect()["event_id"].to_list() == ["1", "2", "3"]
    assert events.collect()["amount"].to_list() == [125, 250, 375]


def test_streamed_check_reads_the_files_again(tmp_path: Path) -> None:
    path = user_file(tmp_path / "x.parquet", [1, 2, 3])
    events = eventkit.open_archive(path, mapping=MAPPING, in_memory=False)
    user_file(path, [4, 5, 6])

    assert events.collect()["event_id"].to_list() == ["4", "5", "6"]


def test_an_append_still_refuses_a_repeated_id_in_its_batch(tmp_path: Path) -> None:
    archive = eventkit.EventArchive.create(tmp_path / "bank")
    batch = pl.DataFrame({"event_id": ["x", "y", "x"], "account_id": [1, 1, 1],
                          "event_type": ["Deposit"] * 3, "event_time": [JAN1] * 3,
                          "amount": [1, 2, 3]})

    with pytest.raises(ValidationError) as info:
        archive.append(batch)

    assert (info.value.column, info.value.row) == ("event_id", 0)
    assert archive.version == 0


def deposits(ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"event_id": ids, "account_id": [1] * len(ids),
                         "event_type": ["Deposit"] * len(ids), "event_time": [JAN1] * len(ids),
                         "amount": [1] * len(ids)})


def test_ids_of_earlier_appends_are_known_when_sorted_in_late(tmp_path: Path) -> None:
    # the first append of a new archive neither hashes nor sorts for the id index; batches
    # over the index's merge size are sorted in when the next append looks ids up
    archive = eventkit.EventArchive.create(tmp_path / "bank")
    n = 70_000
    archive.append(deposits([f"a{i}" for i in range(n)]))
    archive.append(deposits([f"b{i}" for i in range(n)]))  # a1.. are sorted in here
    for old, at in [("a0", 1), (f"a{n - 1}", 2), ("b0", 0), (f"b{n - 1}", 1)]:
        batch = deposits(["new1", "new2", "new3"][:at] + [old] + ["new4"])
        with pytest.raises(ValidationError, match="already in the archive") as info:
            archive.append(batch)
        assert (info.value.column, info.value.row) == ("event_id", at)
    archive.append(deposits(["c0", "c1"]))  # new ids pass
    assert archive.version == 3 and len(archive) == 2 * n + 2
    # a new process builds its index from the files (sorted at once) and still finds them
    code = ("import eventkit, polars as pl, sys\n"
            f"archive = eventkit.EventArchive({str(archive.path)!r})\n"
            "for old in ('a5', 'b69998', 'c1'):\n"
            "    try:\n"
            "        archive.append(pl.read_ipc(sys.argv[1]).with_columns(event_id=pl.lit(old)))\n"
            "    except eventkit.ValidationError as e:\n"
            "        print(e.column, e.row)\n")
    deposits(["z"]).write_ipc(tmp_path / "one.arrow")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "one.arrow")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["event_id", "0"] * 3
    assert eventkit.EventArchive(archive.path).version == 3
