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

import contextlib
import hashlib
import io
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import polars as pl

from eventkit.archive import ledger
from eventkit.archive.lock import exclusive
from eventkit.archive.retention import expired_between, expiry_of
from eventkit.archive.store import open_store
from eventkit.archive.table import EventArchive
from eventkit.exceptions import ArchiveError, foreign_errors
from eventkit.replay.api import replay
from eventkit.replay.engine import AFTER_ALL, fold, selected, selection_expr
from eventkit.rules import registry
from eventkit.rules.model import RuleSet
from eventkit.rules.streams import global_expr

__all__ = ["Advance", "LiveReplay", "advance"]

_LIVE = "live"
_META = "meta.json"


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
    late: list[object]
    rebuilt: bool
    version: int
    last_seq: int


def advance(archive: EventArchive, rules: RuleSet, *, since_seq: int,
            stored: Callable[[pl.DataFrame], pl.DataFrame], newest: datetime | None,
            version: int | None = None) -> Advance:
    """Fold the events appended after ``since_seq`` from the stored state of their keys.

    ``stored(keys)`` returns the stored state rows of the keys in ``keys`` (a
    frame of the key columns; rows as ``ReplayResult.state()`` gives them, keys
    never seen simply absent); ``newest`` is the latest ``last_event_time`` of
    any stored key (None: no state yet). ``version`` defaults to the archive's
    latest.
    """
    version = archive.version if version is None else version
    last_seq = last_seq_of(archive, version)
    key = list(rules.key_columns)
    checked = rules.check()
    new = archive.scan(version=version).filter(pl.col("seq") > since_seq).collect()
    is_shared = global_expr(rules, new.schema)
    shared_new = new.filter(is_shared)
    if rules.interest is not None:
        shared_new = shared_new.filter(pl.col("event_type") == rules.interest.rate_event)
    # event_time: a Datetime column without nulls, so the min of its rows is a datetime
    if (rules.interest is not None and rules.rate_table is None and shared_new.height
            and newest is not None
            and cast("datetime", shared_new["event_time"].min()) <= newest):
        full = replay(archive, rules, snapshots=False, version=version)
        return Advance(full.state().collect(), full.history.collect(), new.height, -1, [], True,
                       version, last_seq)
    new = selected(new.filter(~is_shared), checked)
    touched = new.group_by(key).agg(pl.col("event_time").min().alias("#first"))
    before = stored(touched.select(key))
    late_keys = (touched.join(before.select(*key, "last_event_time"), on=key)
                 .filter(pl.col("#first") < pl.col("last_event_time")).select(key).sort(key))
    late: list[object] = (late_keys.to_series().to_list() if len(key) == 1
                          else list(late_keys.rows()))
    regular = new.join(late_keys, on=key, how="anti", maintain_order="left")
    states, histories = [], []
    if regular.height:
        everything = archive.scan(version=version)
        shared = (everything.filter(global_expr(rules, everything.collect_schema())).collect()
                  if rules.global_events is not None else regular.head(0))
        folded = fold(pl.concat([regular, shared.select(regular.columns)]), checked,
                      start=before.join(late_keys, on=key, how="anti"))
        rows = folded.rows_at(*folded.last_at(AFTER_ALL), key, list(checked.fields))
        states.append(rows.join(before.select(*key, pl.col("events").alias("#before")),
                                on=key, how="left", maintain_order="left")
                      .with_columns(pl.col("events") + pl.col("#before").fill_null(0))
                      .drop("#before"))
        histories.append(folded.events)
    if late:
        again = replay(archive, rules, keys=late, snapshots=False, version=version)
        states.append(again.state().collect())
        histories.append(again.history.collect())
    if not states:  # nothing but global events came
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
    where the last one stopped. Processes sharing a checkpoint take turns (a
    lock on the folder): each catch-up starts from the newest checkpoint any of
    them saved, and a checkpoint holds exactly the state of the version it
    names. It is checked when read — its file's SHA-256, the archive's last
    ``seq`` and the number of events folded at that version — and one that
    fails (torn, edited, folded twice) is not trusted: the next catch-up folds
    everything again (``rebuilt``), and :attr:`discarded` says why.

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

    @foreign_errors(ArchiveError, "live replay of {1}")
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
        #: Why the checkpoint last read was not trusted (None: it was, or there was none).
        self.discarded: str | None = None
        self._saved: dict[str, Any] = {}  # the record of the checkpoint the state came from
        with self._lock():
            self._load()

    @foreign_errors(ArchiveError, "catch up with {0.archive.location}")
    def catch_up(self) -> Advance:
        """Fold the events appended since the state's version; checkpoint; report."""
        with self._lock():
            self._load()  # another process may have saved a newer checkpoint
            version = self.archive.version
            if version == self.version:
                return Advance(self.state.head(0), self.state.head(0), 0, 0, [], False,
                               version, self.last_seq)
            if self.version > version or (self.version >= 0 and self._head(self.version)
                                          != self._saved.get("head")):
                msg = (f"{self.archive.location}: the archive no longer holds version "
                       f"{self.version} as this live replay saw it (rewritten?); delete its "
                       "checkpoint")
                raise ArchiveError(msg, path=self.archive.location)
            if self.version >= 0 and expired_between(self.archive, self.version, version):
                self._discard(f"the archive was expired after its version {self.version}")
            if self.version < 0:  # from the start: an expiry's opening states, if any
                self.state = self._opening()
            key = list(self.rules.key_columns)
            step = advance(self.archive, self.rules, since_seq=self.last_seq,
                           stored=lambda keys: self.state.join(keys, on=key, how="semi"),
                           # a Datetime column: its max is a datetime, None when no state yet
                           newest=cast("datetime | None", self.state["last_event_time"].max()),
                           version=version)
            if step.rebuilt:
                state = step.state
            else:
                state = pl.concat([self.state.join(step.state.select(key), on=key, how="anti"),
                                   step.state]).sort(key)
            self._save(state, step.version, step.last_seq)  # raises: nothing changes
            self.state, self.version, self.last_seq = state, step.version, step.last_seq
            rebuilt = step.rebuilt or self.discarded is not None
            self.discarded = None
            return replace(step, rebuilt=rebuilt)

    # ------------------------------------------------------------------ checkpoint
    def _empty(self) -> pl.DataFrame:
        return replay(pl.DataFrame(schema=self.archive.schema), self.rules).state().collect()

    def _opening(self) -> pl.DataFrame:
        """The state before the log's first event: no key, or each key's opening state.

        (An expiry that stored opening states removed the events they sum up.)
        """
        expiry = expiry_of(self.archive, self.rules.fingerprint)
        opening = None if expiry is None else expiry.opening_states()
        if opening is None:
            return self._empty()
        return opening.select(self.state.columns).cast(self.state.schema)

    def _head(self, version: int) -> str | None:
        return (ledger.read_commit(self.archive.store, version).record or {}).get("digest")

    def _lock(self) -> AbstractContextManager[None]:
        """Catch-ups of one checkpoint take turns: an ``flock`` in a local folder.

        (An object store has no lock: there processes may overwrite each
        other's checkpoint — each one whole, of one version — and every
        checkpoint is still checked when read.)
        """
        if not self.folder.local:
            return nullcontext()

        def busy(message: str) -> ArchiveError:
            return ArchiveError(f"live replay checkpoint: {message}", path=self.folder.root)

        return exclusive(self.folder.path(".lock"), error=busy)

    def _save(self, state: pl.DataFrame, version: int, last_seq: int) -> None:
        """State into a file of its own, then the record naming it: a crash leaves the old pair.

        Each is written whole (a renamed temporary file locally, one PUT in an
        object store). A failure (a full disk) raises and leaves the old pair.
        """
        name = f"state-v{version}-{uuid.uuid4().hex[:12]}.parquet"
        try:
            buffer = io.BytesIO()
            state.write_parquet(buffer)
            data = buffer.getvalue()
            self.folder.write(name, data)
            record = {"version": version, "last_seq": last_seq, "head": self._head(version),
                      "fingerprint": self.rules.fingerprint, "state": name,
                      "sha256": hashlib.sha256(data).hexdigest(), "rows": state.height,
                      "events": int(state["events"].sum())}
            self.folder.write(_META, json.dumps(record).encode())
        except (OSError, pl.exceptions.PolarsError) as exc:
            with contextlib.suppress(OSError):
                self.folder.delete(name)
            msg = f"{self.folder.root}: cannot save the live replay's checkpoint ({exc})"
            raise ArchiveError(msg, path=self.folder.root) from exc
        self._saved = record
        for old in self.folder.list_files(""):  # older states (and what killed saves left)
            stale = old.startswith("state-v") and old != name and (
                self.folder.local or _version_of(old) < version)
            if stale or (self.folder.local and old.startswith(".") and old.endswith(".tmp")):
                self.folder.delete(old)

    def _load(self) -> None:
        """Adopt the checkpoint stored, unless it is the one held, or not to be trusted."""
        try:
            record = json.loads(self.folder.read(_META))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self._discard(f"its record is unreadable ({exc})")
            return
        if record.get("fingerprint") != self.rules.fingerprint or record == self._saved:
            return  # another rule set's checkpoint (start from nothing), or the one held
        try:
            data = self.folder.read(str(record["state"]))
            if hashlib.sha256(data).hexdigest() != record["sha256"]:
                self._discard(f"{record['state']} differs from its recorded SHA-256")
                return
            state = pl.read_parquet(io.BytesIO(data)).cast(self.state.schema)
            version, last_seq = int(record["version"]), int(record["last_seq"])
        except (OSError, KeyError, TypeError, ValueError, pl.exceptions.PolarsError) as exc:
            self._discard(f"it cannot be read ({type(exc).__name__}: {exc})")
            return
        if version > self.archive.version or record.get("head") != self._head(version):
            # another history: catch_up refuses it (the archive was rewritten)
            self.state, self.version, self.last_seq, self._saved = state, version, last_seq, \
                record
            return
        if expired_between(self.archive, version, self.archive.version):
            self._discard(f"the archive was expired after its version {version}")
            return
        folded, want = int(state["events"].sum()), self._events_at(version)
        if last_seq != last_seq_of(self.archive, version) or folded != want:
            self._discard(f"it claims version {version} (last seq {last_seq}) but holds "
                          f"{folded:,} events folded where that version has {want:,}")
            return
        self.state, self.version, self.last_seq, self._saved = state, version, last_seq, record
        self.discarded = None

    def _discard(self, why: str) -> None:
        """Start from nothing: the next catch-up folds every event again."""
        self.discarded = f"checkpoint in {self.folder.root} not trusted: {why}"
        self.state, self.version, self.last_seq, self._saved = self._empty(), -1, -1, {}

    def _events_at(self, version: int) -> int:
        """How many events a state of ``version`` has folded (the expiry's opening ones too)."""
        events = self.archive.scan(version=version)
        events = events.filter(~global_expr(self.rules, events.collect_schema())
                               & selection_expr(self.rules.check()))
        count = int(events.select(pl.len()).collect().item())
        expiry = expiry_of(self.archive, self.rules.fingerprint)
        opening = None if expiry is None else expiry.opening_states()
        return count + (0 if opening is None else int(opening["events"].sum()))


def _version_of(name: str) -> int:
    """The version in a state file's name (``state-v12-…``; -1 when it has none)."""
    part = name.removeprefix("state-v").split("-", 1)[0]
    return int(part) if part.isdigit() else -1
