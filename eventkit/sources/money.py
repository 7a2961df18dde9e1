"""Exact money: amounts in any form (integers, floats, decimals, text) as Int64 minor units.

Each conversion gives the converted expression and the :class:`~eventkit.sources.checks.Check` rules
that refuse what cannot be converted exactly (run by
:func:`eventkit.sources.conform.conform`, vectorized: no per-row Python).
"""

from __future__ import annotations

from typing import Protocol

import polars as pl

from eventkit.exceptions import SchemaError
from eventkit.sources.checks import Check

__all__ = ["MAX_AMOUNT", "Units", "float_is_decimal", "to_minor_units"]

#: The largest amount, in minor units, of one event (its magnitude). Sums of amounts are
#: checked by the replay (an overflow of Int64 is an error, never a wrap).
MAX_AMOUNT = 2**62
#: A plain decimal number, as text: sign, whole part, decimals (one of the two parts at least)
_DECIMAL_TEXT = r"^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$"


class Units(Protocol):
    """What a conversion reads of a column mapping (see ``ColumnMapping``)."""

    @property
    def amount_unit(self) -> str:
        """``"minor"`` (integers of the minor unit) or ``"major"`` (currency units)."""

    @property
    def minor_digits(self) -> int:
        """Decimals of the minor unit (2: cents)."""


def to_minor_units(
    expr: pl.Expr, dtype: pl.DataType, mapping: Units, source: str,
    column: str = "amount",
) -> tuple[pl.Expr, list[Check]]:
    """Amounts as Int64 minor units, exactly: the expression and the checks refusing the rest.

    Integers are scaled (major units) and bounded by :data:`MAX_AMOUNT`. A float
    stands for the decimal with at most ``minor_digits`` decimals within 4 ulps
    of it, if there is one: ``0.29`` is 29 cents, ``1e-10`` is refused. Decimals
    and text are read digit by digit: every decimal beyond ``minor_digits`` must
    be 0.
    """
    digits = mapping.minor_digits if mapping.amount_unit == "major" else 0
    scale = 10**digits
    too_large = f"amount too large (beyond {MAX_AMOUNT:,} minor units)"
    if dtype.is_integer():
        wide = expr.cast(pl.Int128)
        bad = (wide > MAX_AMOUNT // scale) | (wide < -(MAX_AMOUNT // scale))
        return pl.when(~bad).then(wide * scale).cast(pl.Int64), [
            Check(column, too_large, bad, expr)]
    if dtype.is_float():
        value = expr.cast(pl.Float64)
        scaled = value * 10.0**digits  # (as float_is_decimal writes it: computed once)
        cents = scaled.round(0)
        bits = 24 if dtype == pl.Float32 else 53
        checks = [
            Check(column, "amount is NaN or infinite", expr.is_nan() | expr.is_infinite(),
                  expr),
            Check(column, "amount too large to be exact as a float (send integer minor "
                  "units or decimals)", scaled.abs() > 2**bits, expr),
            Check(column, f"amount has more than {digits} decimals" if digits
                  else "amount in minor units is not a whole number",
                  ~float_is_decimal(expr, dtype, digits), expr),
        ]
        return pl.when(value.is_finite()).then(cents).cast(pl.Int64, strict=False), checks
    if isinstance(dtype, pl.Decimal) or dtype == pl.String:
        return _decimal_text(expr if dtype == pl.String else expr.cast(pl.String), expr,
                             digits, too_large, column)
    msg = f"cannot read {dtype} as money"
    raise SchemaError(msg, source=source, column=column)


def float_is_decimal(expr: pl.Expr, dtype: pl.DataType, digits: int) -> pl.Expr:
    """True where a float stands for a decimal with at most ``digits`` decimals.

    That is, one within 4 ulps of it (a Float64's ~16 significant digits, a
    Float32's ~7; ``0.29 * 100`` is 28.999999999999996), with no absolute slack,
    so ``1e-10`` is never 0 cents.

    >>> pl.select(float_is_decimal(pl.lit([0.29, 1e-10]).explode(), pl.Float64(), 2)
    ...           ).to_series().to_list()
    [True, False]
    """
    scaled = expr.cast(pl.Float64) * 10.0**digits
    bits = 24 if dtype == pl.Float32 else 53
    slack = (scaled.abs() * 2.0 ** (2 - bits)).clip(upper_bound=0.25)
    return (scaled - scaled.round(0)).abs() <= slack


def _decimal_text(text: pl.Expr, raw: pl.Expr, digits: int, too_large: str,
                  column: str) -> tuple[pl.Expr, list[Check]]:
    """Plain decimal text (``-20.5``, ``+3``, ``.25``) as minor units, digit by digit."""
    parts = text.str.extract_groups(_DECIMAL_TEXT)
    sign, whole, decimals = (parts.struct.field(n) for n in ("1", "2", "3"))
    readable = sign.is_not_null() & text.str.contains(r"\d")  # matched, with a digit
    decimals = decimals.fill_null("")
    head = decimals.str.slice(0, digits).str.pad_end(digits, "0")  # the minor units' digits
    rest = decimals.str.slice(digits)
    units = pl.concat_str(whole, head).str.strip_chars_start("0")  # the amount, as digits
    long = units.str.len_chars() > 19  # beyond any UInt64
    magnitude = pl.when(units == "").then(pl.lit("0")).when(~long).then(units).cast(
        pl.UInt64, strict=False).cast(pl.Int128)
    big = long | (magnitude > MAX_AMOUNT)
    value = pl.when(sign == "-").then(pl.lit(0, dtype=pl.Int128) - magnitude).otherwise(magnitude)
    checks = [
        Check(column, "cannot convert value to an amount (write a plain decimal such as "
              "-20.50)", raw.is_not_null() & ~readable.fill_null(value=False), raw),
        Check(column, f"amount has more than {digits} decimals" if digits
              else "amount in minor units is not a whole number",
              readable & rest.str.contains("[1-9]"), raw),
        Check(column, too_large, readable & big, raw),
    ]
    return pl.when(readable & ~big).then(value).cast(pl.Int64, strict=False), checks
