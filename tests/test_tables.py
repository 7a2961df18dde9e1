"""eventkit.table: every column of any frame reads, and a wrong option is named, never ignored."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import eventkit
from eventkit.exceptions import ParameterError


def cells(frame: pl.DataFrame, **options: object) -> list[str]:
    shown = eventkit.table(frame, **options)
    return re.findall(r"<td[^>]*>([^<]*)</td>", shown.as_raw_html())


def test_columns_of_any_type_read_as_text() -> None:
    lines = pl.List(pl.Struct({"sku": pl.String, "qty": pl.Int64}))
    frame = pl.DataFrame({
        "order_id": ["ü-1"], "lines": [[{"sku": "A-1", "qty": 2}]], "tags": [["x", "y"]],
        "raw": [b"\x00\xff"], "took": [timedelta(hours=3)], "huge": [1e30],
        "serial": [2**64 - 1], "at": [datetime(2024, 1, 2, 3, 4, tzinfo=UTC)],
    }, schema_overrides={"lines": lines, "serial": pl.UInt64})
    assert cells(frame) == [
        "ü-1", "[{&quot;sku&quot;: &quot;A-1&quot;, &quot;qty&quot;: 2}]",
        "[&quot;x&quot;, &quot;y&quot;]", "00ff", "3h", "1e+30",
        "18,446,744,073,709,551,615", "2024-01-02 03:04 UTC"]
    assert cells(pl.DataFrame({"share": [1e30, float("inf"), 0.035]}), percent=["share"]) == [
        "1e+32 %", "", "3.50 %"]


def test_money_named_as_one_text_is_one_column() -> None:
    frame = pl.DataFrame({"total": [1299, -5]})
    assert cells(frame, money="total", currency="JPY") == ["¥1,299", "−¥5"]
    assert cells(frame, money="total", currency="BHD") == ["BHD 1.299", "−BHD 0.005"]


@pytest.mark.parametrize(("options", "param", "words"), [
    ({"money": ["totl"]}, "money", "no column 'totl'"),
    ({"money": ["price"]}, "money", "'price' is Float64"),
    ({"percent": ["rate"]}, "percent", "no column 'rate'"),
    ({"percent": ["total"]}, "percent", "'total' is Int64"),
    ({"max_rows": 0}, "max_rows", "at least 1"),
    ({"max_rows": -1}, "max_rows", "at least 1"),
    ({"currency": 978}, "currency", "not int 978"),
])
def test_an_option_that_cannot_apply_is_named(options: dict, param: str, words: str) -> None:
    frame = pl.DataFrame({"total": [1299], "price": [12.99]})
    with pytest.raises(ParameterError, match=words) as caught:
        eventkit.table(frame, **options)
    assert caught.value.param == param
    with pytest.raises(ParameterError, match=words):  # an empty frame alike
        eventkit.table(frame.head(0), **options)


def test_a_frame_of_another_kind_is_named() -> None:
    with pytest.raises(ParameterError, match="not a dict") as caught:
        eventkit.table({"total": [1299]})  # type: ignore[arg-type]
    assert caught.value.param == "frame"


def test_a_zone_that_does_not_exist_is_named_even_without_times() -> None:
    with pytest.raises(ParameterError, match="Mars/Olympus") as caught:
        eventkit.table(pl.DataFrame({"total": [1]}), zone="Mars/Olympus")
    assert caught.value.param == "zone"
