"""Explain a value: the chain of events and rules that produced it, for an auditor.

:func:`explain` lists every event of one key that changed one state field up
to an instant, with the rule applied, the value before and after, and (for an
interest-bearing balance) the interest posted at that event; the changes sum
back exactly to the value. The rule-set fingerprint and archive version say
which rules and which archive state produced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

import polars as pl

from eventkit.exceptions import ParameterError, RuleError
from eventkit.rules.streams import global_expr, key_filter, key_frame
from eventkit.timeutil import micros, to_instant

if TYPE_CHECKING:
    from eventkit.replay.result import ReplayResult

__all__ = ["Explanation", "explain"]


@dataclass(frozen=True)
class Explanation:
    """How ``field`` of ``key`` came to be ``value`` (at ``at``, or after the last event).

    ``steps`` has one row per contributing event, in valid-time order:
    ``event_id``, ``event_type``, ``event_time``, ``seq``, ``amount``, ``rule``
    (the expression the rule set applies to this field for that event type),
    ``before``, ``after``, ``change``, and, for a field that earns interest,
    ``interest`` (posted at that event, for the time since the key's previous
    event) and ``effect`` (the event's own part: ``change - interest``).
    ``start`` is the field's initial value, or after an expiry the key's
    opening state at the cut-off; ``start + steps["change"].sum() == value``
    always holds for a number (for a named value or text, ``change`` is the
    new value). ``refused`` lists the key's events the rules refused (they
    changed nothing).
    """

    key: object
    field: str
    at: datetime | None
    value: int | float | str | None
    start: int | float | str
    steps: pl.DataFrame
    refused: pl.DataFrame
    rules: str
    fingerprint: str
    archive_version: int | None


def explain(result: ReplayResult, key: object, field: str,
            at: datetime | date | str | None = None) -> Explanation:
    """Explain ``field`` of ``key`` in ``result`` at ``at`` (default: after the last event).

    On an expired archive ``at`` before the cut-off raises
    :class:`~eventkit.exceptions.ExpiredError`, as ``as_of`` does.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from eventkit import replay
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 1], "event_type": ["Deposit", "Fee", "Deposit"],
    ...     "event_time": t, "recorded_at": t, "amount": [10_000, 250, 500]})
    >>> why = explain(replay(events), 1, "balance", at="2024-01-02")
    >>> why.value, why.steps.select("event_id", "rule", "change").rows()
    (9750, [('a', 'balance + amount', 10000), ('b', 'balance - amount', -250)])

    """
    rules, checked = result.rules, result.checked
    if field not in checked.fields:
        msg = f"field: {field!r} is not a state field of {rules.name!r} ({list(checked.fields)})"
        raise RuleError(msg)
    spec = checked.fields[field]
    history = result.history.filter(key_filter(rules, [key], result.history.collect_schema())
                                    & ~global_expr(rules, result.history.collect_schema()))
    any_events = history.select(pl.len()).collect().item() > 0
    if at is not None:
        at_us = micros(at, param="at")
        if result.expiry is not None:  # before the cut-off the events are gone
            result.expiry.check(at_us=at_us)
        history = history.filter(pl.col("event_time").dt.epoch("us") <= at_us)
    interest = rules.interest
    # the field interest is posted to, when ``field`` is the balance that earns it
    posted_field = interest.posted_field if interest is not None and \
        interest.balance_field == field else None
    earns = posted_field is not None
    has_amount = "amount" in result.history.collect_schema().names()
    cols = ["event_id", "event_type", "event_time", "seq", *(["amount"] * has_amount), field]
    if posted_field is not None and posted_field != field:
        cols.append(posted_field)
    has_violation = "violation" in result.history.collect_schema().names()
    rows = history.sort("event_time", "seq").select(
        *cols, *(["violation"] if has_violation else [])).collect()
    start = spec.start if spec.type != "enum" else str(spec.start)
    posted_start = 0
    opening = pl.DataFrame()
    if result.start is not None:  # after an expiry: the key's state at the cut-off
        opening = result.start.join(key_frame(rules, [key], result.start.schema),
                                    on=list(rules.key_columns), how="semi")
        if opening.height:
            start = opening[field].cast(pl.String)[0] if spec.type == "enum" \
                else opening[field][0]
            posted_start = opening[posted_field][0] if posted_field is not None else 0
    if not rows.height and not opening.height and not any_events:
        msg = (f"no events of key {key!r} in the replay ({list(rules.key_columns)}): "
               "nothing to explain (a key that never occurs has no state)")
        raise ParameterError(msg, param="key")
    before = rows[field].shift(1)
    steps = rows.with_columns(before=before.fill_null(start).cast(rows[field].dtype),
                              after=pl.col(field))
    if spec.type in ("enum", "string"):  # named values and text: the change is the new value
        steps = steps.with_columns(change=pl.col("after").cast(pl.String))
        changed = pl.col("after").cast(pl.String) != pl.col("before").cast(pl.String)
    else:
        steps = steps.with_columns(change=pl.col("after") - pl.col("before"))
        changed = pl.col("change") != 0
    if posted_field is not None:
        posted = rows[posted_field]
        steps = steps.with_columns(
            interest=(posted - posted.shift(1).fill_null(posted_start)).cast(pl.Int64)
        ).with_columns(effect=pl.col("change") - pl.col("interest"))
    texts = {h.event_type: h.set.get(field) for h in rules.handlers}
    steps = steps.with_columns(rule=pl.col("event_type").replace_strict(
        {t: v or "unchanged" for t, v in texts.items()}, default="not handled",
        return_dtype=pl.String))
    refused = steps.head(0)
    if has_violation:
        refused = steps.filter(pl.col("violation").is_not_null()).select(
            "event_id", "event_type", "event_time", "seq", *(["amount"] * has_amount),
            "violation")
    keep = ["event_id", "event_type", "event_time", "seq", *(["amount"] * has_amount), "rule",
            "before", "after", "change", *(["interest", "effect"] if earns else [])]
    steps = steps.filter(changed).select(keep)
    value = rows[field][-1] if rows.height else start
    return Explanation(key, field, None if at is None else to_instant(at, param="at"), value,
                       start, steps,
                       refused, rules.name, rules.fingerprint, result.archive_version)

