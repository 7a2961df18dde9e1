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
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = [
    "BANK_ACCOUNT",
    "CANONICAL_SCHEMA",
    "EVENT_TYPES",
    "MONEY_EVENT_TYPES",
    "REQUIRED_COLUMNS",
    "SUBJECT_COL",
    "TIME_DTYPE",
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

#: The event types of the built-in banking domain (the generator writes all of them).
EVENT_TYPES: Final = (
    "AccountOpened",
    "AccountClosed",
    *MONEY_EVENT_TYPES,
    "Correction",
    "InterestRateChanged",
)
