"""Incremental replay: fold only what was appended since a known archive state.

:func:`advance` is the one step every incremental consumer shares (a running
:class:`LiveReplay`, a database view's ``refresh``): given per-key state that
reflects the archive up to some ``seq``, it reads only the events appended
after it and folds them from that state. The late-event policy:

* an event dated before its key's last folded event (late: a correction,
  an import) makes that key fold again from its first event — correct, and
  reported in ``late``;
* a change of the bank's rate table dated before the newest folded event can
  change every balance that accrues interest: everything is replayed again
  (``rebuilt``).

:class:`LiveReplay` keeps that state (like a stream processor's keyed state),
checkpointed as Parquet with the archive version it reflects; ``catch_up()``
folds the new events. Any sequence of appends and catch-ups gives exactly the
state of one full replay (property-tested).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import polars as pl

from eventkit.archive import ledger
from eventkit.archive.store import open_store
from eventkit.archive.table import EventArchive
from eventkit.exceptions import ArchiveError
from eventkit.replay.api import replay
from eventkit.replay.engine import fold
from eventkit.rules import registry
from eventkit.rules.model import RuleSet
from eventkit.schema import BANK_ACCOUNT, CANONICAL_SCHEMA

__all__ = ["Advance", "LiveReplay", "advance"]

_LIVE = "live"


@dataclass(frozen=True)
class Advance:
    """What :func:`advance` folded.

    ``state``: new state rows (key, fields, ``events``, ``last_event_time``) of
    the keys that changed — of every key when ``rebuilt``; ``history``: the new
    events with the state after each (and every event of a late key);
    ``late``: keys folded again in full; ``version``/``last_seq``: the archive
    state now reflected.
    """

    state: pl.DataFrame
    history: pl.DataFrame
    new_events: int
    keys_updated: int
    late: list[int]
    rebuilt: bool
    version: int
    last_seq: int


def advance(archive: EventArchive, rules: RuleSet, *, since_seq: int,
            stored: Callable[[pl.Series], pl.DataFrame], newest: datetime | None,
            version: int | None = None) -> Advance:
    """Fold the events appended after ``since_seq`` from the stored state of their keys.

    ``stored(keys)`` returns the stored state rows of those keys (as
    ``ReplayResult.state()`` gives them; keys never seen are simply absent);
    ``newest`` is the latest ``last_event_time`` of any stored key (None: no
    state yet). ``version`` defaults to the archive's latest.
    """
    version = archive.version if version is None else version
    last_seq = last_seq_of(archive, version)
    key = rules.key
    checked = rules.check()
    new = archive.scan(version=version).filter(pl.col("seq") > since_seq).collect()
    bank_new = new.filter(pl.col(key) == BANK_ACCOUNT) if key == "account_id" else new.head(0)
    # event_time: a Datetime column without nulls, so the min of its rows is a datetime
    if (rules.interest is not None and rules.rate_table is None and bank_new.height
            and newest is not None
            and cast("datetime", bank_new["event_time"].min()) <= newest):
        full = replay(archive, rules, snapshots=False)
        return Advance(full.state().collect(), full.history.collect(), new.height, -1, [], True,
                       version, last_seq)
    if key == "account_id":
        new = new.filter(pl.col(key) != BANK_ACCOUNT)
    touched = new.group_by(key).agg(pl.col("event_time").min().alias("#first"))
    before = stored(touched[key])
    late = sorted(touched.join(before.select(key, "last_event_time"), on=key)
                  .filter(pl.col("#first") < pl.col("last_event_time"))[key].to_list())
    regular = new.filter(~pl.col(key).is_in(late))
    states, histories = [], []
    if regular.height:
        bank = (archive.scan(version=version).filter(pl.col(key) == BANK_ACCOUNT).collect()
                if key == "account_id" else regular.head(0))
        folded = fold(pl.concat([regular, bank.select(regular.columns)]), checked,
                      start=before.filter(~pl.col(key).is_in(late)))
        positions, counts = folded.last_at(2**62)
        found = positions >= 0
        rows = folded.events[positions[found]].select(
            key, *checked.fields, pl.Series("events", counts[found], dtype=pl.Int64),
            pl.col("event_time").alias("last_event_time"))
        states.append(rows.join(before.select(key, pl.col("events").alias("#before")), on=key,
                                how="left")
                      .with_columns(pl.col("events") + pl.col("#before").fill_null(0))
                      .drop("#before"))
        histories.append(folded.events)
    if late:
        again = replay(archive, rules, keys=late, snapshots=False)
        states.append(again.state().collect())
        histories.append(again.history.collect())
    if not states:  # nothing but the bank's own events came
        empty = replay(new.head(0), rules)
        states, histories = [empty.state().collect()], [empty.history.collect()]
    state = pl.concat(states)
    history = pl.concat(histories, how="diagonal_relaxed")
    return Advance(state.sort(key), history, new.height, touched.height, late, False, version,
                   last_seq)


def last_seq_of(archive: EventArchive, version: int) -> int:
    """The last ``seq`` stored by ``version`` of ``archive`` (-1: none yet)."""
    record = ledger.read_commit(archive.store, version).record or {}
    return int(record.get("seq", [-1, -1])[1])


class LiveReplay:
    """A replay kept current: per-key state and the archive version it reflects.

    The state is checkpointed under ``<archive>/_eventkit/live/<fingerprint>/``
    (or ``folder``) after every :meth:`catch_up`, so a new process resumes
    where the last one stopped.

    Examples
    --------
    >>> import tempfile, polars as pl
    >>> from datetime import datetime, UTC
    >>> from eventkit import EventArchive
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> batch = lambda ids, days, amounts: pl.DataFrame({"event_id": ids,
    ...     "account_id": [1] * len(ids), "event_type": ["Deposit"] * len(ids),
    ...     "event_time": [datetime(2024, 1, d, tzinfo=UTC) for d in days], "amount": amounts})
    >>> _ = archive.append(batch(["a", "b"], [1, 5], [100, 20]))
    >>> live = LiveReplay(archive, "balance")
    >>> live.catch_up().new_events, live.state["balance"].to_list()
    (2, [120])
    >>> _ = archive.append(batch(["late"], [3], [1]))   # dated before the last event
    >>> report = live.catch_up()
    >>> report.late, live.state["balance"].to_list()
    ([1], [121])

    """

    def __init__(self, archive: EventArchive | str | Path, rules: RuleSet | str | Path,
                 *, folder: str | Path | None = None) -> None:
        self.archive = archive if isinstance(archive, EventArchive) else EventArchive(archive)
        self.rules = registry.resolve(rules)
        #: Where the checkpoint is kept: beside the archive (in its store), or ``folder``.
        self.folder = open_store(folder) if folder is not None else self.archive.store.child(
            f"{ledger.PRIVATE_DIR}/{_LIVE}/{self.rules.fingerprint[:32]}")
        self.state = self._empty()
        self.version = -1
        self.last_seq = -1
        self._load()

    def catch_up(self) -> Advance:
        """Fold the events appended since the state's version; checkpoint; report."""
        version = self.archive.version
        if version == self.version:
            return Advance(self.state.head(0), self.state.head(0), 0, 0, [], False, version,
                           self.last_seq)
        if self.version > version or (self.version >= 0 and self._head(self.version)
                                      != self._saved_head):
            msg = (f"{self.archive.location}: the archive no longer holds version "
                   f"{self.version} as this live replay saw it (rewritten?); delete its "
                   "checkpoint")
            raise ArchiveError(msg, path=self.archive.location)
        key = self.rules.key
        step = advance(self.archive, self.rules, since_seq=self.last_seq,
                       stored=lambda keys: self.state.filter(pl.col(key).is_in(keys.implode())),
                       # a Datetime column: its max is a datetime, None when no state yet
                       newest=cast("datetime | None", self.state["last_event_time"].max()),
                       version=version)
        if step.rebuilt:
            self.state = step.state
        else:
            changed = step.state[key].implode()
            self.state = pl.concat([self.state.filter(~pl.col(key).is_in(changed)),
                                    step.state]).sort(key)
        self.version, self.last_seq = step.version, step.last_seq
        self._save()
        return step

    # ------------------------------------------------------------------ checkpoint
    def _empty(self) -> pl.DataFrame:
        return replay(pl.DataFrame(schema=CANONICAL_SCHEMA), self.rules).state().collect()

    def _head(self, version: int) -> str | None:
        return (ledger.read_commit(self.archive.store, version).record or {}).get("digest")

    def _save(self) -> None:
        """State into its own file, then the pointer to it: a crash leaves the old pair.

        Each is written whole (a renamed temporary file locally, one PUT in an
        object store), so a reader sees the old pair or the new one.
        """
        name = f"state-v{self.version}.parquet"
        buffer = io.BytesIO()
        self.state.write_parquet(buffer)
        self.folder.write(name, buffer.getvalue())
        self._saved_head = self._head(self.version)
        meta = {"version": self.version, "last_seq": self.last_seq, "head": self._saved_head,
                "fingerprint": self.rules.fingerprint, "state": name}
        self.folder.write("meta.json", json.dumps(meta).encode())
        for old in self.folder.list_files(""):
            if old.startswith("state-v") and old != name:
                self.folder.delete(old)

    def _load(self) -> None:
        self._saved_head = None
        try:
            meta = json.loads(self.folder.read("meta.json"))
        except FileNotFoundError:
            return
        if meta.get("fingerprint") != self.rules.fingerprint:
            return  # another rule set's checkpoint: start from nothing
        self.state = pl.read_parquet(io.BytesIO(self.folder.read(meta["state"]))).cast(
            self.state.schema)
        self.version, self.last_seq = int(meta["version"]), int(meta["last_seq"])
        self._saved_head = meta.get("head")
