"""Tables people read: one formatting helper for every notebook and report.

:func:`table` turns a Polars frame into a Great Tables table (what Polars'
``DataFrame.style`` gives): money in currency from exact minor units,
instants readable with their zone, counts with thousands separators, column
labels in words, no dtype row, no quoted strings, always-empty columns
dropped. A long table shows its first rows with a "first n of m" note, or
every row in a scrollable box; an empty result is one sentence.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from eventkit.exceptions import ParameterError
from eventkit.workbench.format import (
    Currency,
    Sentence,
    number_text,
    percent_text,
    plural,
    time_text,
    zone_of,
)

if TYPE_CHECKING:
    from great_tables import GT
    from great_tables._text import BaseText

__all__ = ["label_of", "table", "table_html"]

#: State fields and columns that hold money in minor units (also with _a, _b, _delta, ...).
MONEY: Final = frozenset({"balance", "amount", "interest", "fees", "total_balance",
                          "largest_rise", "largest_fall", "accrued_interest"})
#: Labels of common columns; any other reads as its words ("keys_affected" -> "Keys affected").
LABELS: Final = {"account_id": "Account", "event_id": "Event", "event_type": "Type",
                 "event_time": "Time", "recorded_at": "Recorded", "seq": "Log position",
                 "counterparty_id": "Counterparty", "last_event_time": "Last event",
                 "instant": "At", "account_rate": "Own rate", "run": "Run"}
SUFFIXES: Final = (("_a", " (A)"), ("_b", " (B)"), ("_delta", " (B − A)"), ("_then", " then"),
                   ("_now", " now"))


def label_of(column: str) -> str:
    """A column name in words, for a table header.

    >>> [label_of(c) for c in ("account_id", "balance_delta", "keys_affected", "balance_now")]
    ['Account', 'Balance (B − A)', 'Keys affected', 'Balance now']
    """
    if column in LABELS:
        return LABELS[column]
    for suffix, words in SUFFIXES:
        if column.endswith(suffix) and len(column) > len(suffix):
            return label_of(column.removesuffix(suffix)) + words
    text = column.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _base(column: str) -> str:
    for suffix, _ in SUFFIXES:
        if column.endswith(suffix):
            return column.removesuffix(suffix)
    return column


def table(
    frame: pl.DataFrame | pl.LazyFrame,
    *,
    title: str | None = None,
    subtitle: str | None = None,
    money: Iterable[str] | None = None,
    percent: Iterable[str] = (),
    labels: Mapping[str, str] | None = None,
    currency: Currency | str | None = None,
    zone: str | None = None,
    max_rows: int = 15,
    scroll: bool = False,
    empty: str = "Nothing to show.",
) -> GT | Sentence:
    """A frame formatted for people (see the module docstring).

    Parameters
    ----------
    frame
        The rows to show (a LazyFrame is collected).
    title, subtitle
        Above the table.
    money
        Columns in minor units shown in ``currency``; default: the columns
        named like money fields (``balance``, ``amount``, ``interest``, ``fees``
        and their ``_a``/``_b``/``_delta``/``_then``/``_now`` variants).
    percent
        Float columns of fractions shown in % (0.035 -> 3.50 %).
    labels
        Column labels that replace the words made by :func:`label_of`.
    currency, zone
        How money and instants read (default: USD, UTC).
    max_rows
        Longer tables show their first ``max_rows`` rows and say "first n of
        m".
    scroll
        Show every row instead, in a box that scrolls.
    empty
        The sentence returned when there are no rows.

    Returns
    -------
    great_tables.GT or Sentence

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> state = pl.DataFrame({"account_id": [7, 12], "balance": [287803, -1250],
    ...     "events": [1200, 3], "last_event_time": [datetime(2024, 1, 31, 23, 59, tzinfo=UTC)] * 2,
    ...     "violation": [None, None]})
    >>> shown = table(state, title="State", max_rows=1)
    >>> html = shown.as_raw_html()
    >>> all(s in html for s in ("$2,878.03", "1,200", "2024-01-31 23:59 UTC", "Last event",
    ...                         "First 1 of 2 rows"))
    True
    >>> "Violation" in html  # always empty: left out
    False
    >>> table(state.head(0), empty="No account differs.")
    No account differs.

    """
    made = _prepare(frame, money=money, percent=percent, labels=labels, currency=currency,
                    zone=zone, max_rows=max_rows, scroll=scroll)
    if made is None:
        return Sentence(empty)
    return _gt(made, title=title, subtitle=subtitle)


def table_html(frame: pl.DataFrame | pl.LazyFrame, *, title: str | None = None,
               **options: Any) -> str:
    """:func:`table` as HTML (the same options), fast enough to redo at every interaction.

    Great Tables lays a table out once per shape (columns, labels, rows,
    note): the layout is kept with a placeholder in each cell and the title,
    and filled with this frame's text (escaped). What a widget shows.

    Examples
    --------
    >>> a = table_html(pl.DataFrame({"balance": [100]}), title="A")
    >>> b = table_html(pl.DataFrame({"balance": [-250]}), title="B <b>")
    >>> "$1.00" in a and "−$2.50" in b and "B &lt;b&gt;" in b and "$1.00" not in b
    True
    >>> table_html(pl.DataFrame({"balance": []}), empty="Nothing yet.")
    "<p class='eventkit-sentence tex2jax_ignore mathjax_ignore'>Nothing yet.</p>"

    """
    empty = options.pop("empty", "Nothing to show.")
    made = _prepare(frame, **options)
    if made is None:
        return Sentence(empty)._repr_html_()
    shape = (tuple(made.shown.columns), tuple(made.words.values()), made.right,
             made.shown.height, made.note, title is not None)
    layout = _LAYOUTS.get(shape)
    if layout is None:
        cells = pl.DataFrame({c: [f"{_CELL}{r},{i}{_END}" for r in range(made.shown.height)]
                              for i, c in enumerate(made.shown.columns)})
        layout = _gt(_Prepared(cells, made.words, made.right, made.note),
                     title=None if title is None else f"{_CELL}title{_END}").as_raw_html()
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.pop(next(iter(_LAYOUTS)))
        _LAYOUTS[shape] = layout
    rows = made.shown.rows()

    def cell(match: re.Match[str]) -> str:
        if match[1] == "title":
            return html.escape(title or "")
        r, c = map(int, match[1].split(","))
        return html.escape(rows[r][c] or "")

    return _PLACEHOLDER.sub(cell, layout)


@dataclass(frozen=True)
class _Prepared:
    """A table's text: every cell formatted, the labels, the right-aligned columns, a note."""

    shown: pl.DataFrame
    words: dict[str, str]
    right: tuple[str, ...]
    note: str | None


#: Great Tables layouts by shape, with placeholders (see :func:`table_html`).
_LAYOUTS: dict[tuple[Any, ...], str] = {}
_MAX_LAYOUTS: Final = 64
_CELL, _END = "\ue000", "\ue001"  # private-use characters: never in data, never escaped
_PLACEHOLDER: Final = re.compile(f"{_CELL}([^{_END}]*){_END}")


def _prepare(frame: pl.DataFrame | pl.LazyFrame, *, money: Iterable[str] | None = None,
             percent: Iterable[str] = (), labels: Mapping[str, str] | None = None,
             currency: Currency | str | None = None, zone: str | None = None,
             max_rows: int = 15, scroll: bool = False) -> _Prepared | None:
    """Every cell as text (Polars, column-wise), or None when there are no rows."""
    if not isinstance(frame, pl.DataFrame | pl.LazyFrame):
        msg = f"expected a Polars DataFrame or LazyFrame, not a {type(frame).__name__}"
        raise ParameterError(msg, param="frame")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        msg = f"must be a whole number of rows, at least 1, not {max_rows!r}"
        raise ParameterError(msg, param="max_rows")
    data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    money = None if money is None else _named(data, money, "money")
    percent = _named(data, percent, "percent")
    unit, zone = Currency.of(currency), zone_of(zone)
    if data.height == 0:
        return None
    data = data.with_columns(pl.col(pl.Float32, pl.Float64).fill_nan(None))  # NaN: no value
    data = data.select(c for c in data.columns if data[c].null_count() < data.height)
    total = data.height
    if not scroll and total > max_rows:
        data = data.head(max_rows)
    money_columns = [c for c in (money if money is not None else
                                 [c for c in data.columns if _base(c) in MONEY])
                     if c in data.columns and data.schema[c].is_integer()]
    nested = [c for c, t in data.schema.items() if t.is_nested() or t == pl.Object]
    percents = [c for c in percent if c in data.columns]
    times = [c for c, t in data.schema.items() if isinstance(t, pl.Datetime)]
    counts = [c for c, t in data.schema.items() if t.is_integer() and c not in money_columns
              and not c.endswith("_id") and c not in ("seq", "version", "schema_version")]
    floats = [c for c, t in data.schema.items() if t.is_float() and c not in percents]
    shown = data.with_columns(
        *(unit.text(pl.col(c)).alias(c) for c in money_columns),
        *(percent_text(pl.col(c) * 100).alias(c) for c in percents),
        *(time_text(pl.col(c), zone=zone).alias(c) for c in times),
        *(number_text(pl.col(c)).alias(c) for c in counts),
        *(number_text(pl.col(c), decimals=2).alias(c) for c in floats),
        *(pl.col(c).bin.encode("hex") for c, t in data.schema.items() if t == pl.Binary),
        *(pl.col(c).dt.to_string("polars") for c, t in data.schema.items()
          if isinstance(t, pl.Duration)),
        *(pl.Series(c, [_value_text(v) for v in data[c].to_list()], pl.String) for c in nested),
    ).with_columns(pl.all().cast(pl.String))
    words = {c: (labels or {}).get(c, label_of(c)) for c in shown.columns}
    right = tuple(c for c, t in data.schema.items() if t.is_numeric())
    note = None
    if total > shown.height:
        note = f"First {shown.height:,} of {plural(total, 'row')}."
    elif scroll and total > max_rows:
        note = f"All {plural(total, 'row')}; scroll to see them."
    return _Prepared(shown, words, right, note)


def _named(data: pl.DataFrame, columns: Iterable[str] | str, param: str) -> list[str]:
    """``columns`` (one name, or several), each a column of ``data`` of a type ``param`` shows.

    A name that is not a column would leave its values unformatted (cents as
    whole units): refused, naming it and the columns there are.
    """
    names = [columns] if isinstance(columns, str) else list(columns)
    for name in names:
        dtype = data.schema.get(name) if isinstance(name, str) else None
        if dtype is None:
            msg = f"no column {name!r} to show as {param} (columns: {', '.join(data.columns)})"
            raise ParameterError(msg, param=param)
        wanted = dtype.is_integer() if param == "money" else dtype.is_float()
        if not wanted and dtype != pl.Null:
            kind = ("whole minor units (an integer column: cents)" if param == "money"
                    else "fractions (a float column: 0.035 for 3.50 %)")
            msg = f"column {name!r} is {dtype}: {param} columns hold {kind}"
            raise ParameterError(msg, param=param)
    return names


def _value_text(value: object) -> str | None:
    """A nested value (a list, a struct) as one line of JSON text; null stays null."""
    return None if value is None else json.dumps(value, default=str, ensure_ascii=False)


def _gt(made: _Prepared, *, title: str | None, subtitle: str | None = None) -> GT:
    """Lay ``made`` out with Great Tables: header, labels in bold, numbers to the right."""
    from great_tables import GT, loc, style  # noqa: PLC0415 (a second to import)

    gt = GT(made.shown)
    if title or subtitle:
        gt = gt.tab_header(title=title or "", subtitle=subtitle)
    words: dict[str, str | BaseText] = dict(made.words)
    gt = gt.cols_label(words)
    if made.right:
        gt = gt.cols_align(align="right", columns=list(made.right))
    gt = gt.sub_missing(missing_text="")
    gt = gt.tab_style(style=style.text(weight="bold"), locations=loc.column_labels())
    if made.note is not None:
        if made.note.startswith("All "):
            gt = gt.tab_options(container_height="420px", container_overflow_y="auto")
        gt = gt.tab_source_note(made.note)
    return gt
