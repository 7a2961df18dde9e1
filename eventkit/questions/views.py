"""Views in a real database: state and history written to DuckDB or SQLite, kept current.

:func:`materialize` writes a replay's current state (``<table>_state``, one row
per key, the rule set's key its primary key) and history (``<table>_history``,
one row per event with the state after it, unique by ``seq``) into a database
file, and records in
``eventkit_views`` which rules (fingerprint) and which archive state (version,
head digest, last ``seq``) they reflect. :func:`refresh` brings a view up to
date after appends by folding only the new events of the keys that got some,
from their stored state; a key with a late event (dated before its stored
last event) is replayed again in full; a late change of the bank's rate table,
or an expiry of the archive since, rebuilds the view. Plain SQL (``duckdb`` or
``sqlite3``) then answers with the same numbers as eventkit.

The history's key is ``seq`` (the event's place in the log: unique like the
event ids, and an integer); events whose ``seq`` repeats are refused. SQLite
declares it (an integer primary key is the row id: no index to build); DuckDB
does not: its index of 10 M rows took 1–10 s to build and was written again
at every checkpoint (each refresh: 3–4 s), for an analytic table scanned, not
looked up by key — a refresh deletes the rows of the new events' ``seq`` and
inserts them in one transaction instead.

URLs: ``duckdb:///relative.db``, ``duckdb:////absolute/path.db``, and the same
with ``sqlite``: always a file (``:memory:`` is refused: the view would vanish
with the connection). Every name that reaches SQL (the table, the key, the rule
set's fields) is quoted, so a field called ``x INTEGER, y`` is a column of that
name, never SQL; DuckDB is opened with extension auto-install and auto-load,
community extensions and access to other files or the network switched off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import polars as pl

from eventkit.archive import ledger
from eventkit.archive.retention import expired_between
from eventkit.archive.table import EventArchive
from eventkit.exceptions import ViewError, foreign_errors
from eventkit.questions.viewdb import META, TIME_TEXT, Database, connect, ident
from eventkit.replay.api import replay
from eventkit.replay.live import advance, last_seq_of
from eventkit.replay.progress import Steps
from eventkit.replay.result import ReplayResult
from eventkit.rules import registry
from eventkit.rules.model import RuleSet

__all__ = ["RefreshReport", "materialize", "refresh"]

_HISTORY = ("event_id", "seq", "event_type", "event_time", "recorded_at", "amount")


@dataclass(frozen=True)
class RefreshReport:
    """What :func:`refresh` did: events and keys folded, keys replayed again, rebuilt."""

    new_events: int
    keys_updated: int
    keys_replayed: list[object]
    rebuilt: bool
    archive_version: int


@foreign_errors(ViewError, "materialize into {1}")
def materialize(result: ReplayResult, url: str, *, table: str = "accounts") -> dict[str, Any]:
    """Write ``result``'s state and history into the database at ``url``; return the record.

    ``result`` is what :func:`replay` gives in memory (a bucketed replay is
    refused). Tables ``<table>_state`` and ``<table>_history`` are replaced. To
    :func:`refresh` the view later, ``result`` must be a replay of every event
    of an eventkit archive (``replay("path/to/archive", rules)``, without
    ``keys`` or ``known_at``: new events would be folded into a view that lacks
    the others).

    Examples
    --------
    >>> import tempfile, sqlite3
    >>> from datetime import datetime, UTC
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2)]
    >>> events = pl.DataFrame({"event_id": ["a", "b"], "seq": [0, 1], "account_id": [1, 1],
    ...     "event_type": ["Deposit", "Fee"], "event_time": t, "recorded_at": t,
    ...     "amount": [10_000, 250]})
    >>> db = tempfile.mkdtemp() + "/views.sqlite"
    >>> _ = materialize(replay(events), f"sqlite:///{db}")
    >>> sqlite3.connect(db).execute("SELECT account_id, balance FROM accounts_state").fetchall()
    [(1, 9750)]

    """
    _check_name(table)
    if not isinstance(result, ReplayResult):  # (a bucketed replay knows no archive version)
        msg = (f"result: materialize takes what replay(...) gives in memory (engine='memory'), "
               f"not a {type(result).__name__}")
        raise ViewError(msg)
    with connect(url, f"materialize {table!r}") as db:
        return _write_view(db, result, table)


def _write_view(db: Database, result: ReplayResult, table: str) -> dict[str, Any]:
    # only a replay of every event can be continued by refresh (of some keys, new events of
    # the others would join a view that lacks their past; as known then, later ones would)
    archive = result.archive if result.whole else None
    version = result.archive_version
    with Steps(f"materialize {table}", 3) as steps:
        steps.begin("replaying")
        history = result.history.collect()
        record = {
            "name": table, "rules": result.rules.name, "fingerprint": result.rules.fingerprint,
            "key": ", ".join(result.rules.key_columns),
            "archive": None if archive is None else archive.address,
            "archive_version": version,
            "head": None if archive is None or version is None else _head(archive, version),
            # seq is an Int64 column without nulls: the max of its rows is an int
            "last_seq": int(cast("int", history["seq"].max())) if history.height else -1,
            "built_at": _now(), "refreshed_at": None,
        }
        if archive is not None and version is not None:  # the bank's events count too
            record["last_seq"] = last_seq_of(archive, version)
        if archive is None:  # (an archive's seq are unique: it numbers its events itself)
            _unique_seq(history)
        key = list(result.rules.key_columns)
        steps.begin(f"writing {table}_state")
        db.replace(f"{table}_state", _state_frame(result.state().collect(), result), key)
        steps.begin(f"writing {table}_history ({history.height:,} rows)")
        db.replace(f"{table}_history", _history_frame(history, result), ["seq"], index=False)
        db.put_meta(record)
    return record


def _unique_seq(history: pl.DataFrame) -> None:
    """Refuse events whose ``seq`` repeats: ``seq`` is the history table's primary key."""
    twice = history.select(pl.col("seq").is_duplicated().arg_true()).to_series()
    if twice.len():
        row = int(twice[0])
        msg = (f"seq {history['seq'][row]} is the seq of {twice.len()} events (event_id "
               f"{history['event_id'][row]!r} and others): the history table is keyed by seq")
        raise ViewError(msg)


@foreign_errors(ViewError, "refresh {0}")
def refresh(url: str, rules: RuleSet | str | Path | None = None, *,
            table: str = "accounts",
            storage_options: Mapping[str, str] | None = None) -> RefreshReport:
    """Bring the view ``table`` at ``url`` up to date with its archive.

    ``rules`` must be the rule set the view was built with (same
    fingerprint); by default the registered rule set of the name the view
    recorded. Only events appended since the recorded archive version are
    read; see the module docstring for late events. An archive in an object
    store is opened with credentials from the environment or
    ``storage_options`` (the view records its URL, never credentials).
    """
    _check_name(table)
    with connect(url, f"refresh {table!r}") as db:
        meta = db.get_meta(table)
        if meta is None:
            msg = f"{url}: no view {table!r} (materialize it first)"
            raise ViewError(msg)
        lacking = [n for n in ("rules", "fingerprint", "archive_version", "head", "last_seq")
                   if meta[n] is None and (meta["archive"] is not None or n == "fingerprint")]
        if lacking:
            msg = (f"{url}: the record of view {table!r} in {META} has no {', '.join(lacking)} "
                   "(written by another version of eventkit?); materialize it again")
            raise ViewError(msg)
        if rules is None and meta["rules"] not in registry.names():
            msg = (f"{url}: view {table!r} was built with rules {meta['rules']!r}, which are "
                   "not registered; pass them: refresh(url, rules)")
            raise ViewError(msg)
        ruleset = registry.resolve(meta["rules"] if rules is None else rules)
        if meta["fingerprint"] != ruleset.fingerprint:
            msg = (f"{url}: view {table!r} was built with rules {meta['rules']!r} "
                   f"({meta['fingerprint'][:12]}), not these ({ruleset.fingerprint[:12]}); "
                   "materialize it again")
            raise ViewError(msg)
        if meta["archive"] is None:
            msg = (f"{url}: view {table!r} was not built from a replay of every event of an "
                   "eventkit archive (but from a frame, or a replay of some keys or as known "
                   "at an instant), so it cannot be refreshed; materialize it again")
            raise ViewError(msg)
        archive = EventArchive(meta["archive"], storage_options=storage_options)
        old = int(meta["archive_version"])
        version = archive.version
        if version < old or _head(archive, old) != meta["head"]:
            msg = (f"{url}: the archive {meta['archive']} no longer holds version {old} as the "
                   "view saw it (rewritten?); materialize the view again")
            raise ViewError(msg)
        if version == old:
            return RefreshReport(0, 0, [], False, version)
        result = replay(archive, ruleset, snapshots=False, version=version)
        if expired_between(archive, old, version):  # the events the view holds were replaced
            _write_view(db, result, table)
            return RefreshReport(_count_after(archive, version, int(meta["last_seq"])), -1, [],
                                 True, version)
        newest = db.scalar(f"SELECT max(last_event_time) FROM {ident(table + '_state')}")
        step = advance(
            archive, ruleset, since_seq=int(meta["last_seq"]), version=version,
            stored=lambda keys: _typed_state(db.rows_for_keys(f"{table}_state", keys),
                                             result, keys.schema),
            newest=None if newest is None else _as_time(newest))
        if step.rebuilt:  # a late change of the bank's rate table: every balance may change
            _write_view(db, result, table)
            return RefreshReport(step.new_events, -1, [], True, version)
        db.upsert(f"{table}_history", _history_frame(step.history, result), key=["seq"])
        db.upsert(f"{table}_state", _state_frame(step.state, result))
        db.put_meta({**meta, "archive_version": version, "head": _head(archive, version),
                     "last_seq": step.last_seq, "refreshed_at": _now()})
        return RefreshReport(step.new_events, step.keys_updated, step.late, False, version)


# --------------------------------------------------------------------------- frames

def _state_frame(state: pl.DataFrame, result: ReplayResult) -> pl.DataFrame:
    key = list(result.rules.key_columns)
    return state.select(*key, *result.checked.fields, "events", "last_event_time").with_columns(
        _enums_as_text(result)).sort(key)


def _history_frame(history: pl.DataFrame, result: ReplayResult) -> pl.DataFrame:
    key = list(result.rules.key_columns)
    extra = ["violation"] if "violation" in history.columns else []
    base = [c for c in _HISTORY if c in history.columns]
    return history.select(*base, *key, *result.checked.fields, *extra).with_columns(
        _enums_as_text(result))


def _typed_state(stored: pl.DataFrame, result: ReplayResult,
                 key: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Stored state rows back in the engine's types (enums, UTC instants, ``key``'s types).

    SQLite gives dates and instants back as text.
    """
    if not stored.height:  # no stored row: SQLite's answer has no column types
        return result.state().head(0).collect().select(stored.columns)
    fields = result.checked.fields
    casts = [pl.col(n).cast(pl.Enum(list(f.values))) for n, f in fields.items()
             if f.type == "enum"]
    keys = [_typed(stored[c], t) for c, t in key.items() if stored.schema[c] != t]
    return stored.with_columns(*casts, *keys, last_event_time=_times(stored["last_event_time"]))


def _typed(column: pl.Series, dtype: pl.DataType) -> pl.Series:
    """A key column as the database gave it back, in its own type ``dtype``."""
    if isinstance(dtype, pl.Datetime):
        return _times(column).dt.convert_time_zone(dtype.time_zone or "UTC")
    if dtype == pl.Date and column.dtype == pl.String:
        return column.str.to_date("%Y-%m-%d")
    return column.cast(dtype)


def _enums_as_text(result: ReplayResult) -> list[pl.Expr]:
    return [pl.col(n).cast(pl.String) for n, f in result.checked.fields.items()
            if f.type == "enum"]


def _times(column: pl.Series) -> pl.Series:
    if column.dtype == pl.String:
        return column.str.to_datetime(TIME_TEXT, time_zone="UTC", time_unit="us")
    return column.cast(pl.Datetime("us", "UTC"))


def _as_time(value: object) -> datetime:
    return _times(pl.Series([value]))[0]


def _count_after(archive: EventArchive, version: int, seq: int) -> int:
    """How many events ``version`` of ``archive`` holds after ``seq``."""
    return int(archive.scan(version=version).filter(pl.col("seq") > seq)
               .select(pl.len()).collect().item())


def _head(archive: EventArchive, version: int) -> str | None:
    return (ledger.read_commit(archive.store, version).record or {}).get("digest")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _check_name(table: str) -> None:
    if not (table.isascii() and table.isidentifier()):
        msg = f"table: {table!r} is not a plain SQL name (letters, digits, underscores)"
        raise ViewError(msg)
