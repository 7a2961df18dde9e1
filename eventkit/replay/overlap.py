"""Decode and fold at once: the columns the rules read first, the others meanwhile.

A history carries every column of the events, but the fold reads a few: the
key, the event type, time and ``seq``, and the columns the rule expressions
and the selection name (``amount`` for ``balance``; the global ``rate`` events
for interest).
:func:`collect_and_fold` has Polars decode those first; while the compiled fold
(one core) runs on them, a second query decodes the others — event ids,
transaction times — on the other cores, and the two come side by side.

Two queries line up row by row only when the plan reads rows in a fixed order:
an eventkit archive's scan does (log order, ``seq``). Any other frame is
collected once (``split=False``), as is a frame already in memory.

>>> import polars as pl
>>> from eventkit.rules import registry
>>> sorted(fold_columns(registry.get("balance").check(),
...     ["event_id", "seq", "account_id", "event_type", "event_time", "amount", "rate"]))
['account_id', 'amount', 'event_time', 'event_type', 'seq']
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import polars as pl

from eventkit.exceptions import ReplayError
from eventkit.replay.columns import columns_read
from eventkit.replay.engine import Fold, fold, prepare
from eventkit.rules.model import CheckedRules

__all__ = ["collect_and_fold", "fold_columns"]


def fold_columns(checked: CheckedRules, names: Sequence[str]) -> list[str]:
    """The columns of ``names`` (in their order) a fold through ``checked`` reads."""
    rules = checked.rules
    wanted = {*rules.key_columns, "event_type", "event_time", "seq", *columns_read(checked)}
    if rules.interest is not None and rules.rate_table is None:
        wanted.add("rate")  # the global rate events make the rate table
    return [n for n in names if n in wanted]


def collect_and_fold(events: pl.LazyFrame, checked: CheckedRules, *,
                     start: pl.DataFrame | None = None, split: bool = False) -> Fold:
    """Collect ``events`` and fold them; with ``split``, decode the rest while folding.

    The result is what ``fold(events.collect(), checked, start=start)`` gives:
    every column of ``events``, in its order, then the state columns.
    """
    names = events.collect_schema().names()
    core = fold_columns(checked, names)
    rest = [n for n in names if n not in core]
    clash = {*checked.fields, "violation"} & set(rest)  # the fold refuses it, naming them
    if not split or not rest or clash:
        return fold(events.collect(), checked, start=start)
    with ThreadPoolExecutor(1, thread_name_prefix="eventkit-decode") as pool:
        later = pool.submit(events.select(rest).collect)
        read = events.select(core).collect()
        prepared = prepare(read, checked)
        try:
            folded = fold(prepared, checked, start=start)
        except ReplayError as err:
            raise _by_id(err, read, later.result()) from None
        others = later.result()
    # the state columns by name: a drop or select would first rechunk every column alike
    # (the state is one chunk, the decoded columns many: ~0.25 s on 10 M events)
    state = [folded.events.get_column(n) for n in folded.events.columns if n not in core]
    frame = pl.concat([prepared.events, prepared.own(others)], how="horizontal")
    return replace(folded, events=frame.select(names).hstack(state))


def _by_id(err: ReplayError, read: pl.DataFrame, others: pl.DataFrame) -> ReplayError:
    """``err`` naming its event by ``event_id``: the fold read ``seq`` only (``read``)."""
    seq = err.event_id.removeprefix("seq ") if err.event_id else ""
    if not seq.isdigit() or "event_id" not in others.columns:
        return err
    row = read["seq"].eq(int(seq)).arg_true()
    if len(row) != 1:
        return err
    return ReplayError(err.problem, key=err.key, event_id=others["event_id"][row[0]],
                       field=err.field, rule=err.rule)
