"""Exact input: every way an amount arrives is converted exactly, or refused naming the value.

An amount may come as an integer (signed or not), a float (64 or 32 bits), a
Decimal of any scale, or text; in minor units or in major units with any
``minor_digits`` from 0 to 18. The oracle is Python's own :class:`decimal.Decimal`
arithmetic: the amount in minor units is ``value * 10**digits`` when that is a
whole number within ±2**62, and the value is refused otherwise. A float stands
for the decimal within a few ulps of it (``0.29`` is 29 cents), never for a
value farther away (``1e-10`` is not 0 cents). Money is shown with the
archive's (or the mapping's) own minor digits.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import eventkit
from eventkit import EventArchive, SchemaError, ValidationError
from eventkit.sources.money import MAX_AMOUNT, to_minor_units
from eventkit.workbench.cli import main


def load(tmp_path: Path, amounts: pl.Series, **mapping: Any) -> pl.DataFrame:
    path = tmp_path / "in.parquet"
    pl.DataFrame({"account_id": [1] * len(amounts),
                  "event_time": ["2024-01-01T00:00:00Z"] * len(amounts),
                  "amount": amounts}).write_parquet(path)
    return eventkit.open_archive(path, mapping=mapping).collect()


def expected(value: Decimal, digits: int) -> int | None:
    """The oracle: minor units of ``value`` at ``digits``, or None when it must be refused."""
    with localcontext() as exact:  # (the default 28 digits would round 29-digit values)
        exact.prec = 100
        units = value.scaleb(digits)
    if units != units.to_integral_value() or abs(units) > MAX_AMOUNT:
        return None
    return int(units)


@pytest.mark.parametrize("dtype", [pl.String, pl.Decimal(38, 12)])
@pytest.mark.parametrize(("text", "digits"), [
    ("0.0000000001", 2), ("12.345", 2), ("12.340", 2), ("-0.01", 2), ("8.125", 3),
    ("8.125", 2), ("46116860184273879.04", 2), ("46116860184273879.05", 2), ("7", 0),
    ("7.5", 0), ("0.000000000001", 12),
])
def test_decimals_and_text_convert_digit_by_digit(tmp_path: Path, dtype: Any, text: str,
                                                  digits: int) -> None:
    want = expected(Decimal(text), digits)
    column = pl.Series([text]).cast(dtype) if dtype == pl.String else pl.Series(
        [Decimal(text)], dtype=dtype)
    if want is None:
        with pytest.raises(ValidationError, match="decimals|whole number|too large") as err:
            load(tmp_path, column, amount_unit="major", minor_digits=digits)
        assert (err.value.column, err.value.row) == ("amount", 0)
        assert text.rstrip("0") in str(err.value) or text in str(err.value)  # named
    else:
        got = load(tmp_path, column, amount_unit="major", minor_digits=digits)
        assert got["amount"].to_list() == [abs(want)]


@pytest.mark.parametrize(("value", "digits", "want"), [
    (0.29, 2, 29), (-0.07, 2, -7), (19.99, 2, 1999), (12_345_678_901.23, 2, 1_234_567_890_123),
    (8.125, 3, 8_125), (0.1 + 0.2, 2, 30), (1e-10, 2, None), (8.125, 2, None),
    (0.001, 2, None), (1e-300, 2, None), (5e-324, 0, None), (3.0, 0, 3), (2.5, 0, None),
])
def test_floats_are_the_decimal_they_stand_for_or_refused(tmp_path: Path, value: float,
                                                          digits: int, want: int | None) -> None:
    column = pl.Series([value])
    if want is None:
        with pytest.raises(ValidationError, match="decimals|whole number") as err:
            load(tmp_path, column, amount_unit="major", minor_digits=digits)
        assert repr(value) in str(err.value)
    else:
        got = load(tmp_path, column, amount_unit="major", minor_digits=digits)
        assert got["amount"].to_list() == [abs(want)]
        assert got["event_type"].to_list() == ["Withdrawal" if want < 0 else "Deposit"]


def test_float32_amounts_are_their_own_decimals(tmp_path: Path) -> None:
    got = load(tmp_path, pl.Series([0.1, 1.5, 19.99], dtype=pl.Float32), amount_unit="major")
    assert got["amount"].to_list() == [10, 150, 1999]


@pytest.mark.parametrize(("values", "dtype"), [
    ([1, 2**62 + 1], pl.Int64), ([1, -(2**63)], pl.Int64), ([1, 2**64 - 1], pl.UInt64),
])
def test_integers_beyond_the_cap_are_refused_even_the_smallest(tmp_path: Path,
                                                               values: list[int],
                                                               dtype: Any) -> None:
    with pytest.raises(ValidationError, match="too large") as err:
        load(tmp_path, pl.Series(values, dtype=dtype))
    assert err.value.row == 1 and str(values[1]) in str(err.value)


def test_integers_in_major_units_scale_with_the_digits(tmp_path: Path) -> None:
    got = load(tmp_path, pl.Series([3, -7]), amount_unit="major", minor_digits=3)
    assert got["amount"].to_list() == [3_000, 7_000]
    with pytest.raises(ValidationError, match="too large"):
        load(tmp_path, pl.Series([MAX_AMOUNT // 100 + 1]), amount_unit="major")


@pytest.mark.parametrize("text", ["1e3", "1,000.00", "12 34", "--5", "", ".", "NaN", "inf"])
def test_text_that_is_not_a_plain_decimal_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValidationError, match="cannot convert value to an amount") as err:
        load(tmp_path, pl.Series(["5.00", text]), amount_unit="major")
    assert err.value.row == 1


@pytest.mark.parametrize("digits", [-1, 19, 2.0, True, "2"])
def test_minor_digits_must_be_0_to_18(tmp_path: Path, digits: Any) -> None:
    with pytest.raises(SchemaError, match="minor_digits"):
        load(tmp_path, pl.Series([1]), amount_unit="major", minor_digits=digits)


DECIMALS = st.one_of(
    st.decimals(-(10**20), 10**20, allow_nan=False, allow_infinity=False),
    st.integers(0, 20).flatmap(lambda places: st.decimals(-(10**20), 10**20, places=places)))


@settings(max_examples=300, deadline=None)
@given(value=DECIMALS, digits=st.integers(0, 18))
@example(value=Decimal("1953124999999999999.9999999995"), digits=0)  # 29 digits: the oracle's
def test_any_decimal_text_is_exact_or_refused(value: Decimal, digits: int) -> None:
    text = format(value, "f")
    frame = pl.DataFrame({"amount": [text]}).lazy()
    mapping = eventkit.ColumnMapping(amount_unit="major", minor_digits=digits)
    expr, checks = to_minor_units(pl.col("amount"), pl.String(), mapping, "x")
    row = frame.select(expr.alias("v"), *[c.bad.alias(str(i)) for i, c in enumerate(checks)]
                       ).collect().row(0)
    want = expected(value, digits)
    if want is None:
        assert any(row[1:]), (text, digits, row)
    else:
        assert not any(row[1:]) and row[0] == want, (text, digits, row)


def test_an_archive_keeps_its_minor_digits_and_refuses_another(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "mils", minor_digits=3)
    batch = pl.DataFrame({"event_id": ["a"], "account_id": [1], "event_type": ["Deposit"],
                          "event_time": ["2024-01-01T00:00:00Z"], "amount": ["8.125"]})
    with pytest.raises(SchemaError, match="minor units of 3 decimals"):
        archive.append(batch, mapping={"amount_unit": "major"})  # would read it in cents
    archive.append(batch, mapping={"amount_unit": "major", "minor_digits": 3})
    assert EventArchive(tmp_path / "mils").minor_digits == 3
    assert archive.scan().collect()["amount"].to_list() == [8_125]
    assert archive.verify().ok


def test_the_command_line_shows_money_in_the_source_s_own_digits(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load(tmp_path, pl.Series(["8.125"]), amount_unit="major", minor_digits=3)
    mapping = '{"amount_unit": "major", "minor_digits": 3}'
    assert main(["replay", str(tmp_path / "in.parquet"), "--mapping", mapping,
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split(",")[1] == "8.125"  # not 81.25
    archive = EventArchive.create(tmp_path / "mils", minor_digits=3)
    archive.append(pl.DataFrame({"event_id": ["a", "b"], "account_id": [1, 1],
                                 "event_type": ["Deposit", "Fee"],
                                 "event_time": ["2024-01-01T00:00:00Z"] * 2,
                                 "amount": [8_125, 1]}))
    assert main(["replay", str(tmp_path / "mils"), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split(",")[1] == "8.124"
