"""The plain per-event reference fold: the test oracle, never the engine.

:func:`reference_fold` folds events one at a time in plain Python, evaluating
each rule's syntax tree directly (:func:`eventkit.rules.expr.evaluate`), written to
be obviously right rather than fast. Property tests require the engine
(vectorized Polars and compiled passes) to agree with it exactly, for every
state field after every event — or both to raise the same error: integers are
Python's own (unbounded), and every result is checked against Int64 here, so an
overflow is a :class:`~eventkit.exceptions.ReplayError`, as in the engines.
Use it to test your own rule sets too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from eventkit.exceptions import ReplayError
from eventkit.rules.expr import binop, evaluate, round_to_int
from eventkit.rules.model import CheckedRules, RuleSet

__all__ = ["is_global", "reference_fold"]

_YEAR_SECONDS = 31_536_000.0


def reference_fold(events: Iterable[Mapping[str, Any]], rules: RuleSet) -> list[dict[str, Any]]:
    """Fold events through ``rules`` one by one.

    Returns one dict per event the rules fold (their global events and the
    events their ``where`` leaves out are not folded), in (key, event time,
    seq) order: the event's fields plus every state field after it, plus
    ``violation`` (None or the reason) when the rules have requirements. Enum
    and string fields hold their text.

    Examples
    --------
    >>> from eventkit import rules
    >>> rows = [{"account_id": 1, "event_time": 2, "seq": 1, "event_type": "Fee", "amount": 5},
    ...         {"account_id": 1, "event_time": 1, "seq": 0, "event_type": "Deposit",
    ...          "amount": 100}]
    >>> [r["balance"] for r in reference_fold(rows, rules.get("balance"))]
    [100, 95]

    """
    checked = rules.check()
    all_events = list(events)
    shared = [e for e in all_events if is_global(e, rules)]
    rate_table = _rate_table(shared, rules)
    chosen = [e for e in all_events if not is_global(e, rules) and _selected(e, checked)]
    ordered = sorted(chosen, key=lambda e: (key_of(e, rules), _micros(e["event_time"]),
                                            e["seq"]))
    initial = {name: f.start for name, f in checked.fields.items()}
    has_requirements = any(r is not None for r in checked.requirements.values())
    states: dict[Any, dict[str, Any]] = {}
    last_time: dict[Any, int] = {}
    out = []
    for event in ordered:
        key = key_of(event, rules)
        state = states.setdefault(key, dict(initial))
        now = _micros(event["event_time"])
        at: list[str | None] = ["interest", None]  # the rule and field being computed
        try:
            if rules.interest is not None and key in last_time:
                _post_interest(state, rules, rate_table, last_time[key], now, at)
            last_time[key] = now
            violation = None
            if event["event_type"] in checked.assignments:
                scope = checked.scope
                env = {**scope.params, **_columns(event, scope.columns), **state}
                requirement = checked.requirements[event["event_type"]]
                if requirement is not None:
                    at[:] = [f"on {event['event_type']}: require {requirement.text}", None]
                if requirement is not None and not evaluate(requirement, env, scope):
                    violation = f"{event['event_type']} requires {requirement.text}"
                else:
                    updates = {}
                    for target, expr in checked.assignments[event["event_type"]]:
                        at[:] = [f"on {event['event_type']}: {target} = {expr.text}", target]
                        updates[target] = evaluate(expr, env, scope)
                    for target, value in updates.items():
                        typ = checked.fields[target].type
                        state[target] = float(value) if typ == "float" else value
        except ReplayError as exc:
            raise ReplayError(exc.problem, key=key, event_id=event.get("event_id"),
                              field=at[1], rule=at[0]) from exc
        row = {**event, **state}
        if has_requirements:
            row["violation"] = violation
        out.append(row)
    return out


def key_of(event: Mapping[str, Any], rules: RuleSet) -> Any:
    """The event's key: the key column's value, or a tuple of them for a composite key."""
    columns = rules.key_columns
    return event[columns[0]] if len(columns) == 1 else tuple(event[c] for c in columns)


def is_global(event: Mapping[str, Any], rules: RuleSet) -> bool:
    """Whether ``event`` is one of the rule set's global events (see ``GlobalEvents``)."""
    shared = rules.global_events
    if shared is None:
        return False
    key = key_of(event, rules)
    want = shared.key
    same = [type(v) is type(w) and v == w for v, w in zip(
        key if isinstance(key, tuple) else (key,), want if isinstance(want, tuple) else (want,),
        strict=True)]
    return all(same) and (shared.event_types is None
                          or event["event_type"] in shared.event_types)


def _selected(event: Mapping[str, Any], checked: CheckedRules) -> bool:
    if checked.selection is None:
        return True
    env = {**checked.scope.params, **_columns(event, checked.scope.columns)}
    return bool(evaluate(checked.selection, env, checked.scope))


def _columns(event: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, Any]:
    """Event columns as rules see them: nulls read 0 (int), NaN (float), '' (text)."""
    out: dict[str, Any] = {}
    for name, typ in columns.items():
        value = event.get(name)
        if typ == "time":
            out[name] = value
        elif typ == "string":
            out[name] = "" if value is None else str(value)
        elif value is None:
            out[name] = math.nan if typ == "float" else 0
        else:
            out[name] = float(value) if typ == "float" else int(value)
    return out


def _micros(t: datetime | int) -> int:
    if isinstance(t, int):
        return t
    delta = t - datetime(1970, 1, 1, tzinfo=t.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _rate_table(shared: list[Mapping[str, Any]], rules: RuleSet) -> list[tuple[int, float]]:
    if rules.rate_table is not None:
        return [(_micros(t), r) for t, r in rules.rate_table]
    if rules.interest is None:
        return []
    changes = sorted(
        (e for e in shared if e["event_type"] == rules.interest.rate_event
         and e.get("rate") is not None),
        key=lambda e: (_micros(e["event_time"]), e["seq"]),
    )
    return [(_micros(e["event_time"]), float(e["rate"])) for e in changes]


def _integral(table: list[tuple[int, float]], t: int) -> float:
    """Integral of the bank rate from the first entry to ``t``, in rate-seconds."""
    total = 0.0
    for i, (start, rate) in enumerate(table):
        if start > t:
            break
        end = table[i + 1][0] if i + 1 < len(table) and table[i + 1][0] <= t else None
        if end is None:
            return total + rate * ((t - start) / 1_000_000.0)
        total = total + rate * ((end - start) / 1_000_000.0)
    return total


def _post_interest(state: dict[str, Any], rules: RuleSet, table: list[tuple[int, float]],
                   since: int, now: int, at: list[str | None]) -> None:
    spec = rules.interest
    assert spec is not None
    own = state[spec.account_rate_field] if spec.account_rate_field else math.nan
    if math.isnan(own):
        growth = _integral(table, now) - _integral(table, since)
    else:
        growth = own * ((now - since) / 1_000_000.0)
    balance = state[spec.balance_field]
    if balance == 0:  # interest on nothing is 0, at any rate
        return
    at[1] = spec.balance_field
    gain = round_to_int(spec.rounding, float(balance) * growth / _YEAR_SECONDS)
    state[spec.balance_field] = binop("+", balance, gain)
    if spec.posted_field:
        at[1] = spec.posted_field
        state[spec.posted_field] = binop("+", state[spec.posted_field], gain)
