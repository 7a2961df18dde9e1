"""The canonical event schema every loader produces and every rule set reads.

===================  =================  ==============================================
column               type               meaning
===================  =================  ==============================================
``event_id``         String             unique id; a duplicate is an error
``seq``              Int64              position in the log (total order, breaks ties)
``account_id``       Int64              the key whose state the event changes; ``0``
                                        is the bank itself (bank-wide rate changes)
``event_type``       String             ``Deposit``, ``Withdrawal``, ... (see below)
``event_time``       Datetime(us, UTC)  when it happened (valid time)
``recorded_at``      Datetime(us, UTC)  when the archive received it (transaction time)
``amount``           Int64              money in minor units (cents); never a float
``counterparty_id``  Int64, nullable    the other account of a transfer leg
``rate``             Float64, nullable  annual rate (0.035 = 3.5 %) of a rate change
===================  =================  ==============================================

Sign convention: ``amount`` is a non-negative magnitude for the money event
types (``Deposit``, ``Withdrawal``, ``Fee``, ``TransferOut``, ``TransferIn``);
the rule set decides the sign. ``Correction`` carries a signed amount (a late
adjustment of the balance). Other event types carry ``0``.

That is the built-in example (:data:`BANKING`). An :class:`EventSchema` of
one's own keeps the five core columns (``event_id``, ``seq``, ``event_type``,
``event_time``, ``recorded_at``) and declares the rest: the key column(s) and
payload columns with their types, and per-event metadata columns:

>>> orders = EventSchema.declare(key="order_id", columns={
...     "order_id": "string", "sku": "string", "qty": "int", "price": "money",
...     "lines": pl.List(pl.Struct({"sku": pl.String, "qty": pl.Int64}))},
...     metadata=["correlation_id", "user"])
>>> list(orders.columns)[:4], orders.payload, orders.money
(['event_id', 'seq', 'order_id', 'event_type'], ('sku', 'qty', 'price', 'lines'), ('price',))
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from eventkit.exceptions import SchemaError

__all__ = [
    "BANKING",
    "BANK_ACCOUNT",
    "CANONICAL_SCHEMA",
    "CORE_COLUMNS",
    "EVENT_TYPES",
    "MONEY_EVENT_TYPES",
    "REQUIRED_COLUMNS",
    "SUBJECT_COL",
    "TIME_DTYPE",
    "EventSchema",
    "dtype_of",
    "typed_columns",
]

TIME_DTYPE: Final = pl.Datetime("us", "UTC")

#: Account id of the bank itself: events with it (rate changes) apply to every account.
BANK_ACCOUNT: Final = 0

CANONICAL_SCHEMA: Final[dict[str, pl.DataType]] = {
    "event_id": pl.String(),
    "seq": pl.Int64(),
    "account_id": pl.Int64(),
    "event_type": pl.String(),
    "event_time": TIME_DTYPE,
    "recorded_at": TIME_DTYPE,
    "amount": pl.Int64(),
    "counterparty_id": pl.Int64(),
    "rate": pl.Float64(),
}

#: The data subject (the person personal fields belong to) in archives created with
#: personal fields (see :mod:`eventkit.archive.privacy`); other sources have no such column.
SUBJECT_COL: Final = "subject"

#: Columns that must be present and never null.
REQUIRED_COLUMNS: Final = (
    "event_id",
    "seq",
    "account_id",
    "event_type",
    "event_time",
    "recorded_at",
    "amount",
)

#: Money events: ``amount`` is a magnitude >= 0, the rules give the sign.
MONEY_EVENT_TYPES: Final = ("Deposit", "Withdrawal", "Fee", "TransferOut", "TransferIn")

#: The event types of the built-in banking domain (the generator writes all but
#: ``OverdraftLimitSet``, which :func:`eventkit.banking.commands.set_overdraft_limit` writes).
EVENT_TYPES: Final = (
    "AccountOpened",
    "AccountClosed",
    *MONEY_EVENT_TYPES,
    "Correction",
    "InterestRateChanged",
    "OverdraftLimitSet",
)


#: The columns every event table has, whatever else it declares.
CORE_COLUMNS: Final[dict[str, pl.DataType]] = {
    "event_id": pl.String(),
    "seq": pl.Int64(),
    "event_type": pl.String(),
    "event_time": TIME_DTYPE,
    "recorded_at": TIME_DTYPE,
}
#: Type names a declaration may use (or any Polars type, such as ``pl.List(pl.String)``).
TYPE_NAMES: Final[dict[str, pl.DataType]] = {
    "int": pl.Int64(), "float": pl.Float64(), "bool": pl.Boolean(), "string": pl.String(),
    "date": pl.Date(), "datetime": TIME_DTYPE, "money": pl.Int64(),
    "decimal": pl.Decimal(38, 9),
}
_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_LIST = re.compile(r"list\[(.+)\]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def dtype_of(spec: object, *, column: str = "") -> pl.DataType:
    """The Polars type a declaration names: ``"int"``, ``"decimal(18,4)"``, ``"list[string]"``...

    Examples
    --------
    >>> dtype_of("decimal(18, 4)"), dtype_of("list[int]"), dtype_of(pl.Date)
    (Decimal(precision=18, scale=4), List(Int64), Date)

    """
    if isinstance(spec, pl.DataType):
        return spec
    if isinstance(spec, type) and issubclass(spec, pl.DataType):
        return spec()
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in TYPE_NAMES:
            return TYPE_NAMES[text]
        if m := _DECIMAL.fullmatch(text):
            return pl.Decimal(int(m[1]), int(m[2]))
        if m := _LIST.fullmatch(text):
            return pl.List(dtype_of(m[1], column=column))
    msg = (f"unknown column type {spec!r}: one of {sorted(TYPE_NAMES)}, 'decimal(p, s)', "
           "'list[type]', or a Polars type such as pl.Struct({...})")
    raise SchemaError(msg, column=column or None)


def typed_columns(columns: Mapping[str, Any]) -> dict[str, pl.DataType]:
    """Declared columns with their Polars types; names must be plain and not core ones.

    Examples
    --------
    >>> typed_columns({"sku": "string", "qty": "int"})
    {'sku': String, 'qty': Int64}

    """
    bad = [n for n in columns if not isinstance(n, str) or not _NAME.fullmatch(n)
           or n in CORE_COLUMNS or n == SUBJECT_COL]
    if bad:
        msg = (f"column names must be plain names other than the core columns "
               f"{list(CORE_COLUMNS)} and {SUBJECT_COL!r}: {bad}")
        raise SchemaError(msg, column=str(bad[0]))
    return {n: dtype_of(t, column=n) for n, t in columns.items()}


@dataclass(frozen=True)
class EventSchema:
    """What an event table holds: its key, payload and metadata columns, and their types.

    ``columns`` lists every column in order: ``event_id``, ``seq``, the key
    column(s), ``event_type``, ``event_time``, ``recorded_at``, the payload
    columns, then the metadata columns. ``money`` names the payload columns
    holding money in integer minor units (a mapping's ``amount_unit`` reads
    them); ``required`` the payload columns that are never null (the core and
    key columns never are); ``event_types`` the types allowed (None: any).
    With ``text_ids``, integer key columns (and ``counterparty_id``) whose
    data is text are read as text (ids such as ``"C1231006815"``) instead of
    being refused: how foreign data is read with the banking schema; an
    archive's stored schema is fixed. Build one with :meth:`declare`.
    """

    columns: Mapping[str, pl.DataType]
    key: tuple[str, ...] = ("account_id",)
    money: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()
    event_types: tuple[str, ...] | None = None
    text_ids: bool = False

    @classmethod
    def declare(
        cls,
        *,
        key: str | Sequence[str],
        columns: Mapping[str, Any],
        metadata: Sequence[str] | Mapping[str, Any] = (),
        required: Sequence[str] = (),
        event_types: Sequence[str] | None = None,
    ) -> EventSchema:
        """A schema of one's own: ``columns`` maps each key and payload column to its type.

        Types are names (``int``, ``float``, ``bool``, ``string``, ``date``,
        ``datetime`` — an instant in UTC —, ``money`` — integer minor units —,
        ``decimal`` or ``decimal(p, s)``, ``list[type]``) or Polars types (lists
        and structs as Parquet stores them). ``metadata`` names per-event
        metadata columns (text), or maps them to types.
        """
        keys = (key,) if isinstance(key, str) else tuple(key)
        meta = dict(metadata) if isinstance(metadata, Mapping) else dict.fromkeys(
            metadata, "string")
        missing = [k for k in keys if k not in columns]
        if not keys or missing:
            msg = (f"declare the type of each key column {list(keys)} in columns "
                   "(such as {'order_id': 'string'})")
            raise SchemaError(msg, column=missing[0] if missing else None)
        if set(columns) & set(meta):
            msg = f"metadata columns {sorted(set(columns) & set(meta))} are declared twice"
            raise SchemaError(msg)
        typed = typed_columns({**columns, **meta})
        for k in keys:
            if typed[k].is_nested() or typed[k].is_float():
                msg = f"a key column cannot hold {typed[k]} values (integers, text, dates)"
                raise SchemaError(msg, column=k)
        unknown = [r for r in required if r not in typed]
        if unknown:
            msg = f"required column(s) {unknown} are not declared"
            raise SchemaError(msg, column=unknown[0])
        payload = [n for n in columns if n not in keys]
        ordered = {"event_id": CORE_COLUMNS["event_id"], "seq": CORE_COLUMNS["seq"],
                   **{k: typed[k] for k in keys},
                   **{c: t for c, t in CORE_COLUMNS.items() if c not in ("event_id", "seq")},
                   **{n: typed[n] for n in payload}, **{n: typed[n] for n in meta}}
        money = tuple(n for n, t in columns.items() if isinstance(t, str) and t.strip().lower()
                      == "money" and n not in keys)
        return cls(ordered, keys, money, tuple(required), tuple(meta),
                   None if event_types is None else tuple(event_types))

    @property
    def payload(self) -> tuple[str, ...]:
        """The payload columns: neither core, key nor metadata."""
        return tuple(c for c in self.columns if c not in CORE_COLUMNS and c not in self.key
                     and c not in self.metadata)

    @property
    def non_null(self) -> tuple[str, ...]:
        """The columns that are never null: core, key and required ones."""
        return (*[c for c in self.columns if c in CORE_COLUMNS or c in self.key],
                *self.required)

    def record(self) -> dict[str, Any]:
        """What an archive's genesis record keeps of it (the types are the table's own)."""
        return {"key": list(self.key), "money": list(self.money),
                "required": list(self.required), "metadata": list(self.metadata)}


#: The built-in example: the banking schema (:data:`CANONICAL_SCHEMA`); text ids are read
#: as text (an archive created with it stores integer ids).
BANKING: Final = EventSchema(CANONICAL_SCHEMA, ("account_id",), ("amount",), ("amount",), (),
                             EVENT_TYPES, text_ids=True)
