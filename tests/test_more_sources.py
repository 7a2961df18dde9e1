"""More sources with the same mapping: CSV, NDJSON, frames in memory, foreign Delta tables.

A mobile-money log keyed by text ids (as PaySim exports it) in CSV and NDJSON;
rows that cannot be read set aside with their problem (``on_error=
"dead-letter"``); pandas, pyarrow and Polars frames passed to ``replay`` and
``append``; Delta tables with column mapping, a deletion vector, a cleaned-up
log with a classic checkpoint and a vacuum, a v2 checkpoint, and a feature
eventkit cannot read (an error naming the table and the feature).
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from delta_tables import (
    KERNEL_EXAMPLE,
    checkpointed_and_vacuumed,
    column_mapped,
    deletion_vector,
    dv,
    needs_feature,
    v2_checkpoint,
    z85,
)
from polars.testing import assert_frame_equal

import eventkit
from eventkit.exceptions import DeadLetterWarning, EventDataError, SchemaError, ValidationError

PAYSIM = """step,type,amount,nameOrig,nameDest,ts
1,PAYMENT,9839.64,C1231006815,M1979787155,1702468800
1,TRANSFER,181.00,C1305486145,C553264065,1702468801
1,PAYMENT,1864.28,C1231006815,M2044282225,1702468802
1,CASH_OUT,181.123,C840083671,C38997010,1702468803
2,PAYMENT,11668.14,C2048537720,M1230701703,not-a-time
2,PAYMENT,7817.71,C90045638,M573487274,1702468805
"""
MAPPING = {"account_id": "nameOrig", "counterparty_id": "nameDest", "event_type": "type",
           "event_time": "ts", "time_unit": "s", "amount_unit": "major"}
RULES = eventkit.RuleSet("flows", (eventkit.Field("paid", money=True),),
                         (eventkit.Handler("PAYMENT", {"paid": "paid + amount"}),
                          eventkit.Handler("TRANSFER", {"paid": "paid + amount"}),
                          eventkit.Handler("CASH_OUT", {"paid": "paid + amount"})))


def test_a_csv_export_with_text_ids_is_read_exactly_or_refused_naming_the_row(
        tmp_path: Path) -> None:
    path = tmp_path / "paysim.csv"
    path.write_text(PAYSIM)
    # Step: all or nothing (the default): a bad value is named with its file, column, row.
    with pytest.raises(ValidationError, match="not-a-time") as caught:
        eventkit.open_archive(path, mapping=MAPPING).collect()
    assert (caught.value.source, caught.value.column, caught.value.row) == (
        str(path), "event_time", 4)
    # Step: row by row: the bad rows go to a Parquet file with their problem.
    with pytest.warns(DeadLetterWarning, match="2 of 6 rows refused"):
        events = eventkit.open_archive(path, mapping=MAPPING, on_error="dead-letter").collect()
    assert events["account_id"].to_list() == ["C1231006815", "C1305486145", "C1231006815",
                                              "C90045638"]
    assert events["amount"].to_list() == [983964, 18100, 186428, 781771]
    assert events.schema["counterparty_id"] == pl.String
    letters = pl.read_parquet(tmp_path / "paysim.csv.dead-letter.parquet")
    assert letters.select("row", "column", "value").rows() == [
        (3, "amount", "181.123"), (4, "event_time", "not-a-time")]
    assert letters["nameOrig"].to_list() == ["C840083671", "C2048537720"]  # as the file had it
    # Step: the rest replays, keyed by the text ids, in their own type.
    state = eventkit.replay(events, RULES).state().collect()
    assert state.select("account_id", "paid").rows()[0] == ("C1231006815", 983964 + 186428)


def test_types_named_in_the_mapping_and_ndjson(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,acct,kind,at,amount\nx,007,Deposit,2024-01-01T00:00Z,5\n")
    # without a type the id stays text ("007"); the mapping can say it is a number
    text = eventkit.open_archive(tmp_path / "a.csv", mapping={
        "event_id": "id", "account_id": "acct", "event_type": "kind", "event_time": "at"})
    assert text.collect()["account_id"].to_list() == ["007"]
    typed = eventkit.open_archive(tmp_path / "a.csv", mapping={
        "event_id": "id", "account_id": "acct", "event_type": "kind", "event_time": "at",
        "types": {"acct": "int"}})
    assert typed.collect()["account_id"].to_list() == [7]
    (tmp_path / "b.ndjson").write_text(
        '{"id": "a", "acct": "u-1", "kind": "Deposit", "at": "2024-01-01T00:00:00Z", "amount": 5}\n'
        '{"id": "b", "acct": "u-1", "kind": "Fee", "at": "2024-01-02T00:00:00+01:00", '
        '"amount": 1}\n')
    events = eventkit.open_archive(tmp_path / "b.ndjson", mapping={
        "event_id": "id", "account_id": "acct", "event_type": "kind", "event_time": "at"})
    assert eventkit.replay(events).state().collect().select("account_id", "balance").rows() == [
        ("u-1", 4)]
    (tmp_path / "broken.ndjson").write_text("{not json\n")
    with pytest.raises(EventDataError, match="not a readable NDJSON") as caught:
        eventkit.open_archive(tmp_path / "broken.ndjson").collect()
    assert caught.value.source == str(tmp_path / "broken.ndjson")


def test_frames_of_every_kind_replay_and_append_alike(tmp_path: Path) -> None:
    when = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    polars = pl.DataFrame({"account_id": ["a", "a", "b"], "event_type": ["Deposit", "Fee",
                                                                          "Deposit"],
                           "event_time": when, "amount": [100, 5, 7]})
    want = eventkit.replay(polars).state().collect()
    for frame in (polars.to_pandas(), polars.to_arrow(), polars.lazy()):
        assert_frame_equal(eventkit.replay(frame).state().collect(), want)
    # a scan without seq or event_id: completed as a file load would (no raw Polars error)
    csv = tmp_path / "e.csv"
    polars.with_columns(pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(csv)
    assert_frame_equal(eventkit.replay(pl.scan_csv(csv)).state().collect(), want)
    with pytest.raises(SchemaError, match="missing column 'event_time'"):
        eventkit.replay(pl.scan_csv(csv).drop("event_time")).state().collect()
    naive = polars.with_columns(pl.col("event_time").dt.replace_time_zone(None))
    with pytest.raises(SchemaError, match="never guesses"):
        eventkit.replay(naive).state().collect()
    # appends take them too
    archive = eventkit.EventArchive.create(tmp_path / "a", key="account_id",
                                           columns={"account_id": "string", "amount": "money"})
    frame = polars.with_columns(event_id=pl.Series(["1", "2", "3"]))
    archive.append(frame.to_pandas())
    archive.append(frame.with_columns(event_id=pl.lit("x") + pl.col("event_id")).to_arrow())
    assert archive.scan().collect().height == 6
    with pytest.raises(SchemaError, match="not a dict"):
        archive.append({"event_id": ["z"]})  # type: ignore[arg-type]


def test_deletion_vectors_are_encoded_as_the_protocol_says() -> None:
    assert z85(dv([3, 4, 7, 11, 18, 29])) == KERNEL_EXAMPLE


def test_delta_tables_other_engines_write_read_as_their_current_version(
        tmp_path: Path) -> None:
    mapped = eventkit.open_archive(column_mapped(tmp_path / "cm")).collect()
    assert mapped["account_id"].to_list() == [1, 2, 3, 4]  # never nulls
    deleted = eventkit.open_archive(deletion_vector(tmp_path / "dv", [1, 5])).collect()
    assert deleted["account_id"].to_list() == [1, 3, 4, 5, 7, 8]
    vacuumed = eventkit.open_archive(checkpointed_and_vacuumed(tmp_path / "ck")).collect()
    assert sorted(vacuumed["account_id"].to_list()) == [1, 2, 4, 5, 6]
    v2 = eventkit.open_archive(v2_checkpoint(tmp_path / "v2")).collect()
    assert sorted(v2["account_id"].to_list()) == [1, 2, 3, 4]
    assert eventkit.replay(v2).state().collect()["balance"].to_list() == [0, 100, 0, 100]


def test_what_cannot_be_read_names_the_table_and_the_feature(tmp_path: Path) -> None:
    table = needs_feature(tmp_path / "tw", "typeWidening")
    with pytest.raises(EventDataError, match=r"reader feature\(s\) \['typeWidening'\]") as caught:
        eventkit.open_archive(table).collect()
    assert caught.value.source == str(table)
    gone = checkpointed_and_vacuumed(tmp_path / "gone")
    next(p for p in gone.glob("*.parquet")).unlink()  # a live file deleted behind the log
    with pytest.raises(EventDataError, match="missing"):
        eventkit.open_archive(gone).collect()
    (tmp_path / "bad" / "_delta_log").mkdir(parents=True)
    (tmp_path / "bad" / "_delta_log" / f"{0:020d}.json").write_text("{not json")
    with pytest.raises(EventDataError, match="cannot read Delta table"):
        eventkit.open_archive(tmp_path / "bad").collect()


def test_no_raw_errors_for_frames_of_the_wrong_kind() -> None:
    with pytest.raises(SchemaError, match="not a list"), warnings.catch_warnings():
        eventkit.replay([1, 2, 3]).state().collect()  # type: ignore[arg-type]
    assert isinstance(pa.table({"a": [1]}), pa.Table) and pd.__version__


def test_append_given_a_path_says_to_read_the_file_first(tmp_path: Path) -> None:
    archive = eventkit.EventArchive.create(tmp_path / "bank")
    for path in ("data/orders/orders.ndjson", tmp_path / "export.parquet"):
        with pytest.raises(SchemaError, match="not a path .*read the file first") as caught:
            archive.append(path)  # type: ignore[arg-type]
        assert "(or a path)" not in str(caught.value)
    assert len(archive) == 0
    with pytest.raises(SchemaError, match=r"pyarrow Table \(or a path\), not a list"):
        eventkit.replay([1, 2, 3]).state().collect()  # type: ignore[arg-type]
