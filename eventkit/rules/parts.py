"""The parts a rule set is made of: state fields, handlers, interest, global events.

Plain declarations (see :class:`eventkit.rules.model.RuleSet`, which checks
them), and how a rules file's values are read into them.

>>> Field("status", "enum", values=("open", "closed")).start
'open'
>>> GlobalEvents(0, ("InterestRateChanged",)).key
0
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventkit.exceptions import RuleError
from eventkit.rules.expr import Typ
from eventkit.timeutil import InstantError, to_instant

__all__ = ["Field", "GlobalEvents", "Handler", "Interest", "KeyValue", "key_value", "normal",
           "plain", "read_rate_table"]

#: A value of a key column a rule set names (the key of its global events).
KeyValue = int | str | bool


@dataclass(frozen=True)
class Field:
    """A state field: ``int`` (exact money in minor units, counts), ``float``, ``enum``, ``string``.

    An ``enum`` field holds one of ``values`` (by name); its initial value
    defaults to the first. A ``string`` field holds any text (a status, the
    last order id: ``last_order_id = order_id``); its initial value defaults
    to the empty string. ``money`` marks an int field as an amount in minor
    units, so displays show it in currency units (it changes no arithmetic).
    """

    name: str
    type: Typ = "int"
    initial: int | float | str | None = None
    values: tuple[str, ...] = ()
    money: bool = False

    @property
    def start(self) -> int | float | str:
        """The initial value, with the type's default filled in."""
        if self.initial is not None:
            return self.initial
        defaults: dict[str, int | float | str] = {
            "int": 0, "float": 0.0, "enum": self.values[0] if self.values else "", "string": ""}
        return defaults[self.type]


@dataclass(frozen=True)
class Handler:
    """What one event type does: new field values, and an optional requirement.

    ``require`` replaces the rule set's requirement for this event type; the
    empty string means "no requirement".
    """

    event_type: str
    set: Mapping[str, str] = field(default_factory=dict)
    require: str | None = None


@dataclass(frozen=True)
class Interest:
    """Interest accrued on a field between consecutive events of a key.

    Convention (stated once, used by every engine and the reference fold):
    simple interest **ACT/365 on exact elapsed time**. When an event arrives,
    the interest for the interval since the key's previous event is

        ``rounding(balance * I / 31_536_000)``

    where ``I`` is the integral of the annual rate over the interval in
    rate-seconds (the rate in force changes at each rate-table entry) and
    ``balance`` is in minor units. The rounded amount is *posted* then: added to
    ``balance_field`` (so interest compounds at every posting) and to
    ``posted_field``. Negative balances accrue at the same rate. Posting
    happens before the event's own effect, also for events that a requirement
    rejects.

    The rate in force is the key's own ``account_rate_field`` when that is
    not NaN, else the rate table: the rule set's ``rate_table`` parameter when
    given, else the rule set's global events (:class:`GlobalEvents`) of type
    ``rate_event`` that carry a ``rate`` (without global events: no table, 0 %).
    """

    balance_field: str = "balance"
    posted_field: str | None = "interest"
    account_rate_field: str | None = None
    rounding: str = "round_half_even"
    rate_event: str = "InterestRateChanged"


@dataclass(frozen=True)
class GlobalEvents:
    """Events that belong to no key but apply to every key (a shared rate table).

    An event is global when its key is ``key`` (a value of the key column, or
    a tuple of values for a composite key) and, if ``event_types`` is given,
    its type is one of them. Global events are never folded into a key's
    state and never appear in a history; every key reads them: the
    :class:`Interest` rate table is made of them. The banking rules declare
    ``GlobalEvents(key=0, event_types=("InterestRateChanged",))``: the bank's
    own rate changes, on account 0. Against a key column of another type
    (text ids) no event is global.

    In a rules file::

        [global]
        key = 0
        event_types = ["InterestRateChanged"]
    """

    key: KeyValue | tuple[KeyValue, ...]
    event_types: tuple[str, ...] | None = None


def key_value(value: Any) -> KeyValue | tuple[KeyValue, ...]:
    """A key value as a rules file writes it: a list stands for a composite key's tuple."""
    return tuple(value) if isinstance(value, list) else value


def plain(value: object) -> object:
    """A declaration as JSON sees it: tuples as lists, values with their type's name."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value if value is None else [type(value).__name__, value]


def normal(text: str) -> str:
    """An expression's syntax tree as text: the same for any formatting of it."""
    try:
        return ast.dump(ast.parse(text.strip(), mode="eval"))
    except SyntaxError:
        return text


def read_rate_table(
    table: Any, source: str
) -> tuple[tuple[datetime, float], ...] | None:
    """Read a rate table: (instant, rate) pairs, or a mapping instant -> rate."""
    if table is None:
        return None
    pairs = table.items() if isinstance(table, Mapping) else table
    out = []
    try:
        for when, rate in pairs:
            out.append((to_instant(when, param="rate_table", day="start"), float(rate)))
    except (InstantError, TypeError, ValueError) as exc:
        msg = f"{source}: bad rate_table entry: {exc}"
        raise RuleError(msg) from None
    out.sort(key=lambda p: p[0])
    for _, rate in out:
        if not math.isfinite(rate):
            msg = f"{source}: rate_table holds a non-finite rate {rate}"
            raise RuleError(msg)
    return tuple(out)
