"""Plain per-event reference folds: the test oracle, never the engine.

Each function here folds events one at a time in plain Python, written to be
obviously right rather than fast. Property tests compare the vectorized and
compiled engines against them, value for value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eventkit.replay import BALANCE_SIGNS
from eventkit.schema import BANK_ACCOUNT

__all__ = ["reference_balances"]


def reference_balances(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Fold events into balances one by one; return each event's row with ``balance``.

    Rows come back in (account, event time, seq) order, as :func:`eventkit.replay` gives.

    Examples
    --------
    >>> rows = [{"account_id": 1, "event_time": 2, "seq": 1, "event_type": "Fee", "amount": 5},
    ...         {"account_id": 1, "event_time": 1, "seq": 0, "event_type": "Deposit",
    ...          "amount": 100}]
    >>> [r["balance"] for r in reference_balances(rows)]
    [100, 95]
    """
    ordered = sorted(
        (e for e in events if e["account_id"] != BANK_ACCOUNT),
        key=lambda e: (e["account_id"], e["event_time"], e["seq"]),
    )
    balances: dict[int, int] = {}
    out = []
    for event in ordered:
        sign = BALANCE_SIGNS.get(event["event_type"], 0)
        balance = balances.get(event["account_id"], 0) + sign * event["amount"]
        balances[event["account_id"]] = balance
        out.append({**event, "balance": balance})
    return out
