"""How numbers and instants read in the workbench: currency, dates, words.

One place for display formats, used by the charts (tooltips, axes, labels),
the tables helper and the explorer. Money stays exact integer minor units in
eventkit; :class:`Currency` turns it into text only at display time, from the
integers (no float rounding: ``-1`` cent reads ``-$0.01``). Instants are shown
in UTC unless a zone is chosen, always with the date and the zone.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from eventkit.exceptions import ParameterError

__all__ = ["Currency", "Sentence", "axis_time_format", "axis_time_ticks", "number_text",
           "percent_text", "plural", "time_text"]

#: Symbols of common ISO 4217 codes (others show their code: "CHF 12.00").
SYMBOLS: Final = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}
#: Minor digits of codes whose minor unit is not the cent.
DIGITS: Final = {"JPY": 0, "KRW": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}
MINUS: Final = "−"  # U+2212: as wide as the plus sign, reads as a minus in tables and tooltips
#: Scaled floats from here on are shown as Polars writes them (no Int64 holds them exactly).
_LARGEST: Final = 1e18


@dataclass(frozen=True)
class Currency:
    """A currency to show minor units in: its code, symbol and minor digits.

    ``Currency("EUR")`` knows its symbol (€) and digits (2); ``digits``
    overrides them for an archive whose amounts use another minor unit.

    Examples
    --------
    >>> usd = Currency()
    >>> usd.words(123456789), usd.words(-1), Currency("JPY").words(5000)
    ('$1,234,567.89', '−$0.01', '¥5,000')
    >>> pl.select(usd.text(pl.lit(-250_000))).item()
    '−$2,500.00'
    >>> Currency("CHF", digits=3).words(1500)
    'CHF 1.500'

    """

    code: str = "USD"
    digits: int | None = None

    def __post_init__(self) -> None:
        if not (len(self.code) == 3 and self.code.isalpha() and self.code.isupper()):
            msg = f"{self.code!r} is not an ISO 4217 currency code (three capital letters)"
            raise ParameterError(msg, param="currency")
        if self.digits is not None and not 0 <= self.digits <= 6:
            msg = f"minor digits must be 0 to 6, not {self.digits}"
            raise ParameterError(msg, param="digits")

    @classmethod
    def of(cls, currency: Currency | str | None) -> Currency:
        """A :class:`Currency` from one, a code, or ``None`` (the default, USD)."""
        if isinstance(currency, Currency):
            return currency
        if currency is not None and not isinstance(currency, str):
            msg = (f"expected an ISO 4217 code such as 'EUR' or a Currency, not "
                   f"{type(currency).__name__} {currency!r}")
            raise ParameterError(msg, param="currency")
        return cls() if currency is None else cls(currency.upper())

    @property
    def minor(self) -> int:
        """Minor digits (2 for cents)."""
        return self.digits if self.digits is not None else DIGITS.get(self.code, 2)

    @property
    def symbol(self) -> str:
        """What goes before the amount: ``$``, ``€``, or the code and a space."""
        return SYMBOLS.get(self.code, f"{self.code} ")

    def major(self, expr: pl.Expr) -> pl.Expr:
        """Minor units as a float of major units, for a chart's scale (display only)."""
        return (expr / 10**self.minor).round(self.minor)

    def words(self, minor_units: int) -> str:
        """One amount as text: sign, symbol, thousands separated, exact minor digits."""
        whole, part = divmod(abs(int(minor_units)), 10**self.minor)
        sign = MINUS if minor_units < 0 else ""
        frac = f".{part:0{self.minor}d}" if self.minor else ""
        return f"{sign}{self.symbol}{whole:,}{frac}"

    def signed(self, minor_units: int) -> str:
        """As :meth:`words` with a ``+`` on gains: a change, not a level."""
        return ("+" if minor_units > 0 else "") + self.words(minor_units)

    def text(self, expr: pl.Expr) -> pl.Expr:
        """Minor units as text, column-wise and exact (as :meth:`words`; null stays null)."""
        return _grouped(expr.cast(pl.Int64), self.minor, self.symbol)

    def signed_text(self, expr: pl.Expr) -> pl.Expr:
        """As :meth:`text` with a ``+`` on gains (see :meth:`signed`)."""
        plus = pl.when(expr.cast(pl.Int64) > 0).then(pl.lit("+")).otherwise(pl.lit(""))
        return pl.concat_str(plus, self.text(expr))

    def axis_label(self) -> str:
        """A Vega expression labelling a money axis (values in major units).

        Whole ticks read without decimals (``$1,000``), the others with the
        currency's minor digits (``$0.20``, ``BHD 0.125``; ``¥0.5`` for a
        currency without minor unit): a tick is never rounded to a whole unit.
        """
        symbol = self.symbol.replace("'", "\\'")
        part = f",.{self.minor}f" if self.minor else ",.6~f"  # ¥0.5: no minor unit to round to
        return (f"(datum.value < 0 ? '{MINUS}' : '') + '{symbol}' + format(abs(datum.value), "
                f"datum.value % 1 ? '{part}' : ',.0f')")

    def d3(self, *, decimals: int | None = None) -> str:
        """A d3 number format for tooltips of major units (no symbol: see :meth:`text`)."""
        return f",.{self.minor if decimals is None else decimals}f"


class Sentence(str):
    """A result told in words: what a notebook shows instead of an empty table or chart.

    Reads as plain text in a console and as a paragraph in JupyterLab and reports.

    >>> Sentence("No late events: nothing was restated.")
    No late events: nothing was restated.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        # tex2jax_ignore: JupyterLab's MathJax would read "$2.00 ... $3.00" as a formula
        return (f"<p class='eventkit-sentence tex2jax_ignore mathjax_ignore'>"
                f"{html.escape(self)}</p>")


def _grouped(scaled: pl.Expr, decimals: int, symbol: str = "") -> pl.Expr:
    """Integers of 10**-``decimals`` units as text: sign, symbol, thousands apart, decimals.

    The digits are grouped in threes from the right (reversed, cut, joined,
    reversed back): a small expression, quick to plan for the few rows of a
    table or a tooltip (a chain of per-group conditions took ~5 ms per column).
    """
    whole = (scaled.abs() // 10**decimals).cast(pl.String)
    digits = whole.str.reverse().str.extract_all(r"\d{1,3}").list.join(",").str.reverse()
    part = (scaled.abs() % 10**decimals).cast(pl.String).str.zfill(decimals)
    frac = pl.concat_str(pl.lit("."), part) if decimals else pl.lit("")
    sign = pl.when(scaled < 0).then(pl.lit(MINUS)).otherwise(pl.lit(""))
    return pl.concat_str(sign, pl.lit(symbol), digits, frac)


def number_text(expr: pl.Expr, *, decimals: int = 0) -> pl.Expr:
    """Numbers as text, thousands separated: integers exactly, others to ``decimals``.

    Null stays null.

    >>> pl.select(a=number_text(pl.lit(1200)), b=number_text(pl.lit(-1234.567), decimals=2)
    ...           ).row(0)
    ('1,200', '−1,234.57')
    """
    if decimals == 0:
        return _grouped(expr.cast(pl.Int128), 0)  # any integer, UInt64 included
    return _scaled_text(expr, decimals)


def _scaled_text(expr: pl.Expr, decimals: int) -> pl.Expr:
    """Floats as text with ``decimals``; NaN and ±inf null, beyond ±1e18 units in Polars' own.

    >>> pl.select(a=_scaled_text(pl.lit(1e30), 2), b=_scaled_text(pl.lit(-0.004), 2)).row(0)
    ('1e+30', '0.00')
    """
    scaled = expr * 10**decimals
    fits = pl.when(scaled.abs() < _LARGEST).then(scaled)  # NaN, ±inf and the huge: null
    return pl.coalesce(_grouped(fits.round().cast(pl.Int64), decimals),
                       pl.when(expr.is_finite()).then(expr.cast(pl.String)))


def percent_text(expr: pl.Expr, *, decimals: int = 2) -> pl.Expr:
    """Percentages as text with fixed decimals: ``2.25 %`` (null stays null).

    >>> pl.select(a=percent_text(pl.lit(3.0)), b=percent_text(pl.lit(-0.126))).row(0)
    ('3.00 %', '−0.13 %')
    """
    return pl.concat_str(_scaled_text(expr, decimals), pl.lit(" %"))


def plural(count: int, word: str, words: str | None = None) -> str:
    """``count`` and the noun, in the right number, thousands separated.

    >>> plural(1, "account"), plural(1200, "account"), plural(2, "entry", "entries")
    ('1 account', '1,200 accounts', '2 entries')
    """
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def zone_of(zone: str | None) -> str:
    """A time-zone name Polars and the zone database know (``None``: UTC)."""
    if zone is None or zone == "UTC":
        return "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {zone!r} (use an IANA name such as 'Europe/Paris')"
        raise ParameterError(msg, param="zone") from None
    return zone


def time_text(expr: pl.Expr, *, zone: str | None = None, seconds: bool = False) -> pl.Expr:
    """Instants as readable text with their zone: ``2024-01-31 23:59 UTC``.

    >>> from datetime import UTC
    >>> t = pl.lit(datetime(2024, 1, 31, 23, 59, 59, 999999, tzinfo=UTC))
    >>> pl.select(time_text(t)).item(), pl.select(time_text(t, zone="Europe/Paris")).item()
    ('2024-01-31 23:59 UTC', '2024-02-01 00:59 CET')
    """
    pattern = "%Y-%m-%d %H:%M" + (":%S" if seconds else "") + " %Z"
    return expr.dt.convert_time_zone(zone_of(zone)).dt.strftime(pattern)


def axis_time_format(span: timedelta) -> str:
    """A d3 time format for an axis spanning ``span``: every label carries its context.

    Sub-day scales keep the day, month and year; long spans show months and years.

    >>> axis_time_format(timedelta(hours=6)), axis_time_format(timedelta(days=400))
    ('%d %b %Y %H:%M', '%b %Y')
    """
    if span <= timedelta(days=3):
        return "%d %b %Y %H:%M"
    if span <= timedelta(days=120):
        return "%d %b %Y"
    return "%b %Y" if span <= timedelta(days=365 * 4) else "%Y"


#: Tick steps per time unit that d3's UTC intervals take evenly (``utcMonth.every(3)``...).
TickUnit = Literal["day", "month", "year"]
_STEPS: Final[dict[TickUnit, tuple[int, ...]]] = {
    "day": (1, 2, 7, 14), "month": (1, 2, 3, 6), "year": (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)}
_UNIT: Final = {"day": timedelta(days=1), "month": timedelta(days=30.44),
                "year": timedelta(days=365.25)}
#: At most this many ticks on a time axis (fewer labels still, where they would overlap).
MAX_TIME_TICKS: Final = 16


def axis_time_ticks(span: timedelta) -> tuple[TickUnit, int] | None:
    """The tick interval of a time axis spanning ``span``: a unit and a step.

    Never finer than the labels of :func:`axis_time_format` (weekly ticks of a
    half year all read ``Jan 2024``; hourly ones of a few days ``02 Jan 2024``),
    at most :data:`MAX_TIME_TICKS`. ``None`` for spans of up to three days,
    whose labels carry the minute: Vega's own ticks never repeat those.

    >>> axis_time_ticks(timedelta(days=181)), axis_time_ticks(timedelta(days=4))
    (('month', 1), ('day', 1))
    >>> axis_time_ticks(timedelta(days=3 * 365)), axis_time_ticks(timedelta(hours=2))
    (('month', 3), None)
    """
    by_format: dict[str, tuple[TickUnit, ...]] = {
        "%d %b %Y": ("day", "month"), "%b %Y": ("month", "year"), "%Y": ("year",)}
    units = by_format.get(axis_time_format(span), ())
    for unit in units:
        for step in _STEPS[unit]:
            if span <= _UNIT[unit] * step * MAX_TIME_TICKS:
                return unit, step
    return (units[-1], _STEPS[units[-1]][-1]) if units else None


def span_words(left: datetime, right: datetime, *, zone: str | None = None) -> str:
    """A window as words for a subtitle: ``2024-01-01 00:00 to 2024-12-31 23:59 UTC``.

    >>> from datetime import UTC
    >>> span_words(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    '2024-01-01 00:00 to 2024-03-01 00:00 UTC'
    """
    name = zone_of(zone)
    a, b = (t.astimezone(ZoneInfo(name)) for t in (left, right))
    return f"{a:%Y-%m-%d %H:%M} to {b:%Y-%m-%d %H:%M} {b.tzname()}"
