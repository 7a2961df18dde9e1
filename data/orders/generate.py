"""Make orders.ndjson: a small shop's order stream, as its own system exports it.

Run from the repository root (``python data/orders/generate.py``); the file is
committed, so the notebook and the tests never run this. Deterministic (seed
15). Each order is keyed by a UUID; events carry the shop's own names
(``orderId``, ``type``, ``occurredAt``, prices in currency units as text),
line items (a list of structs), and per-event metadata (correlation id, user,
channel). A few events break the order's rules on purpose (an item added after
shipping, a payment that does not match the total): the rules refuse them.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

SKUS = {"TEA-01": "4.50", "MUG-02": "12.00", "BAG-03": "29.90", "PEN-04": "1.20",
        "BOOK-05": "18.75", "LAMP-06": "45.00"}
START = datetime(2024, 1, 2, 8, 0, tzinfo=UTC)


def cents(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def money(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


def main() -> None:
    rng = random.Random(15)
    rows = []
    for n in range(180):
        order = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        user = f"customer-{rng.randint(1, 60):03d}"
        channel = rng.choice(["web", "web", "app"])
        corr = f"checkout-{n:04d}"
        at = START + timedelta(minutes=rng.randint(0, 180 * 24 * 60))
        lines = [{"sku": sku, "qty": rng.randint(1, 3), "unitPrice": SKUS[sku]}
                 for sku in rng.sample(sorted(SKUS), rng.randint(1, 3))]
        total = sum(line["qty"] * cents(line["unitPrice"]) for line in lines)
        items = sum(line["qty"] for line in lines)

        def event(kind: str, when: datetime, **extra: object) -> None:
            rows.append({"eventId": f"{order[:8]}-{len(rows):05d}", "orderId": order,
                         "type": kind, "occurredAt": when.isoformat().replace("+00:00", "Z"),
                         **extra, "correlationId": corr, "user": user, "channel": channel})

        event("OrderPlaced", at, qty=items, amount=money(total), lines=lines)
        for _ in range(rng.choice([0, 0, 1, 2])):
            at += timedelta(minutes=rng.randint(1, 90))
            sku = rng.choice(sorted(SKUS))
            qty = rng.randint(1, 2)
            if rng.random() < 0.3 and items > qty:
                event("ItemRemoved", at, sku=sku, qty=qty, amount=money(qty * cents(SKUS[sku])))
                items, total = items - qty, total - qty * cents(SKUS[sku])
            else:
                event("ItemAdded", at, sku=sku, qty=qty, amount=money(qty * cents(SKUS[sku])))
                items, total = items + qty, total + qty * cents(SKUS[sku])
        fate = rng.random()
        at += timedelta(hours=rng.randint(1, 48))
        if fate < 0.12:
            event("OrderCancelled", at)
            continue
        wrong = rng.random() < 0.04  # a payment that does not match the total: refused
        event("OrderPaid", at, amount=money(total + (100 if wrong else 0)))
        if wrong or fate < 0.2:
            continue
        at += timedelta(days=rng.randint(1, 4))
        event("OrderShipped", at)
        if rng.random() < 0.05:  # an item added after shipping: refused
            event("ItemAdded", at + timedelta(hours=2), sku="PEN-04", qty=1, amount="1.20")
        if rng.random() < 0.8:
            event("OrderDelivered", at + timedelta(days=rng.randint(1, 6)))
    rows.sort(key=lambda r: r["occurredAt"])  # the export is in the order events happened
    path = Path(__file__).with_name("orders.ndjson")
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
    print(f"wrote {len(rows)} events of 180 orders to {path}")


if __name__ == "__main__":
    main()
