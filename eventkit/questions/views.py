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

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

import polars as pl
import pyarrow as pa

from eventkit.archive import ledger
from eventkit.archive.lock import exclusive
from eventkit.archive.retention import expired_between
from eventkit.archive.table import EventArchive
from eventkit.exceptions import ViewError, foreign_errors
from eventkit.replay.api import replay
from eventkit.replay.live import advance, last_seq_of
from eventkit.replay.progress import Steps
from eventkit.replay.result import ReplayResult
from eventkit.rules import registry
from eventkit.rules.model import RuleSet

__all__ = ["RefreshReport", "materialize", "refresh"]

META = "eventkit_views"
#: The record of each view in the table :data:`META`: its columns, in order, and types.
_META_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String(), "rules": pl.String(), "fingerprint": pl.String(), "key": pl.String(),
    "archive": pl.String(), "archive_version": pl.Int64(), "head": pl.String(),
    "last_seq": pl.Int64(), "built_at": pl.String(), "refreshed_at": pl.String()}
_SQL_TYPES = {pl.String(): "TEXT", pl.Int64(): "BIGINT"}
#: DuckDB reads and writes the view file and nothing else.
_DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False, "autoload_known_extensions": False,
    "allow_community_extensions": False, "enable_external_access": False}
_HISTORY = ("event_id", "seq", "event_type", "event_time", "recorded_at", "amount")
_TIME_TEXT = "%Y-%m-%dT%H:%M:%S%.6fZ"  # how SQLite stores instants (sorts as time)
#: Rows per Arrow batch handed to DuckDB (its threads take one each): its row group size, so
#: each batch makes one full row group. Batches of 2**17 rows left a part-filled row group
#: each, which DuckDB merged at the next checkpoints: 3.5 s, then 1 s, for a change of one
#: row after loading 10 M rows (and a `refresh` paid it).
_BATCH_ROWS = 122_880
_WAIT_S = 600.0  # how long a refresh waits for another one on the same database


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
    with _connect(url, f"materialize {table!r}") as db:
        return _write_view(db, result, table)


def _write_view(db: _Database, result: ReplayResult, table: str) -> dict[str, Any]:
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
    with _connect(url, f"refresh {table!r}") as db:
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
        return column.str.to_datetime(_TIME_TEXT, time_zone="UTC", time_unit="us")
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


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (DuckDB and SQLite), whatever it holds.

    Examples
    --------
    >>> ident("balance"), ident('x INTEGER, "y')
    ('"balance"', '"x INTEGER, ""y"')

    """
    if not name or any(ord(c) < 32 for c in name):
        msg = f"{name!r} cannot be a column or table name in SQL (empty, or a control character)"
        raise ViewError(msg)
    return '"' + name.replace('"', '""') + '"'


def _columns(names: list[str]) -> str:
    """The quoted column list; names SQL would confuse (equal but for case) are refused."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            msg = (f"columns {other!r} and {name!r} differ only in case: SQL would take them "
                   "for one column; rename a field of the rule set")
            raise ViewError(msg)
    return ", ".join(ident(n) for n in names)


# --------------------------------------------------------------------------- databases

@contextmanager
def _connect(url: str, operation: str) -> Iterator[_Database]:
    """The database at ``url`` in one transaction, held by this process alone.

    Writers of one database file take turns (an ``flock`` beside it: a second
    ``refresh`` waits for the first, then finds the view current); any error of
    the database or the file system becomes a :class:`~eventkit.exceptions.ViewError`
    naming ``operation`` and the file, and the transaction is rolled back.
    """
    scheme, path = view_file(url)

    def busy(message: str) -> ViewError:
        return ViewError(f"{operation} on {path}: another process keeps it busy ({message})")

    with exclusive(path.with_name(f".{path.name}.eventkit.lock"), timeout=_WAIT_S, error=busy):
        made = not path.exists()  # a file this call creates is removed if it fails
        db: _Database | None = None
        try:
            db = _DuckDB(path) if scheme == "duckdb" else _SQLite(path)
            yield db
            db.commit()
        except BaseException as exc:
            if db is not None:
                db.close()
                db = None
            if made:  # (a half-made database file would not even open again)
                for leftover in (path, path.with_name(f"{path.name}.wal"),
                                 path.with_name(f"{path.name}-journal")):
                    leftover.unlink(missing_ok=True)
            if not isinstance(exc, OSError | sqlite3.Error | pl.exceptions.PolarsError
                              | _duckdb_error()):
                raise
            msg = f"{operation} on {path} failed, nothing was changed: {exc}"
            raise ViewError(msg) from exc
        finally:
            if db is not None:
                db.close()


def view_file(url: str) -> tuple[str, Path]:
    """The database (``duckdb`` or ``sqlite``) and the absolute file of a view URL.

    The path always names a file: ``:memory:`` (a view that vanishes with the
    connection), an empty path, a folder, or a URL inside the URL (``md:``,
    ``s3://``: DuckDB would fetch an extension for it) are refused. A relative
    path is taken from the working folder.

    Examples
    --------
    >>> view_file("sqlite:///:memory:")
    Traceback (most recent call last):
    ...
    eventkit.ViewError: url: 'sqlite:///:memory:' is an in-memory database: ...

    """
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme not in ("duckdb", "sqlite") or not rest:
        msg = f"url: {url!r} is not duckdb:///path or sqlite:///path"
        raise ViewError(msg)
    if rest.startswith(":memory:"):
        msg = (f"url: {url!r} is an in-memory database: the view would be lost when the "
               "connection closes; name a file such as duckdb:///views.duckdb")
        raise ViewError(msg)
    if "://" in rest or (":" in rest.split("/")[0] and not rest.startswith("/")):
        msg = f"url: {url!r} names another URL, not a file; name a file path"
        raise ViewError(msg)
    path = Path(rest).absolute()
    if path.is_dir():
        msg = f"url: {url!r} names a folder, not a database file"
        raise ViewError(msg)
    return scheme, path


class _Database:
    """The few operations views need, in one transaction per :func:`_connect`."""

    def replace(self, table: str, frame: pl.DataFrame, primary: list[str], *,
                index: bool = True) -> None:
        """``table`` holds ``frame``, its rows unique by ``primary``.

        The key is declared if ``index`` (a database that pays for the key's
        index at each change may leave it out).
        """
        raise NotImplementedError

    def upsert(self, table: str, frame: pl.DataFrame, *, key: list[str] | None = None) -> None:
        """``frame``'s rows replace those of ``table`` with the same key.

        The key is the primary key, or ``key`` for a table made without its index.
        """
        raise NotImplementedError

    def query(self, sql: str, params: tuple = ()) -> pl.DataFrame:
        raise NotImplementedError

    def execute(self, sql: str, params: tuple = ()) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def scalar(self, sql: str) -> object:
        frame = self.query(sql)
        return frame.item() if frame.height else None

    def rows_for_keys(self, table: str, keys: pl.DataFrame) -> pl.DataFrame:
        """The rows of ``table`` whose key (the columns of ``keys``) is in ``keys``."""
        names = ", ".join(ident(c) for c in keys.columns)
        self.replace("eventkit_keys", keys.unique(), list(keys.columns))
        found = self.query(f"SELECT t.* FROM {ident(table)} AS t JOIN eventkit_keys "
                           f"USING ({names}) ORDER BY {names}")
        self.execute("DROP TABLE eventkit_keys")
        return found

    def columns_of(self, table: str) -> list[str]:
        """The columns of ``table``, in order (none: no such table)."""
        raise NotImplementedError

    def put_meta(self, record: dict[str, Any]) -> None:
        """Store a view's record; a table of records of another layout is made anew.

        (Rows are written by position: an older layout's columns would take the wrong
        values, or none. The other views' records are kept, null where they lack a column.)
        """
        found = self.columns_of(META)
        if found != list(_META_SCHEMA):
            kept = self.query(f"SELECT * FROM {META}") if found else pl.DataFrame()
            self.execute(f"DROP TABLE IF EXISTS {META}")
            columns = ", ".join(f"{n} {_SQL_TYPES[t]}" for n, t in _META_SCHEMA.items())
            self.execute(f"CREATE TABLE {META} ({columns}, PRIMARY KEY (name))")
            if kept.height and "name" in kept.columns:
                self.upsert(META, kept.filter(pl.col("name") != record["name"]).select(
                    pl.col(n).cast(t, strict=False) if n in kept.columns
                    else pl.lit(None, dtype=t).alias(n) for n, t in _META_SCHEMA.items()))
        self.upsert(META, pl.DataFrame([record], schema=_META_SCHEMA))

    def get_meta(self, table: str) -> dict[str, Any] | None:
        """The record of the view ``table`` (None: there is none); every column present."""
        if not self.columns_of(META):
            return None
        rows = self.query(f"SELECT * FROM {META} WHERE name = ?", (table,))
        if not rows.height:
            return None
        return {n: None for n in _META_SCHEMA} | rows.to_dicts()[0]


def _duckdb_error() -> type[Exception]:
    import duckdb  # noqa: PLC0415 (only when DuckDB is used)

    return duckdb.Error


class _DuckDB(_Database):
    def __init__(self, path: Path) -> None:
        import duckdb  # noqa: PLC0415

        # nothing but this one file: no extension installed or loaded, no network
        self.con = duckdb.connect(str(path), config=_DUCKDB_CONFIG)
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET lock_configuration = true")  # no SQL can switch the above on
        self.con.begin()

    def replace(self, table: str, frame: pl.DataFrame, primary: list[str], *,
                index: bool = True) -> None:
        _columns(frame.columns)
        self.con.execute(f"DROP TABLE IF EXISTS {ident(table)}")
        self.con.register("eventkit_frame", _batches(frame))
        self.con.execute(f"CREATE TABLE {ident(table)} AS SELECT * FROM eventkit_frame")
        if index:
            # the key's index built from the loaded rows at once (it checks them all), not
            # grown row by row during the load: for 10M history rows, the difference of a
            # few seconds and a minute
            self.con.execute(f"ALTER TABLE {ident(table)} ADD PRIMARY KEY "
                             f"({_columns(primary)})")
        self.con.unregister("eventkit_frame")

    def upsert(self, table: str, frame: pl.DataFrame, *, key: list[str] | None = None) -> None:
        # by name, as SQLite's: a table whose columns are in another order (or has one more,
        # left null) gets each value in its own column
        self.con.register("eventkit_frame", _batches(frame))
        if key is None:
            self.con.execute(f"INSERT OR REPLACE INTO {ident(table)} BY NAME "
                             "SELECT * FROM eventkit_frame")
        else:  # no index: the rows of those keys deleted, then inserted (one transaction)
            same = " AND ".join(f"t.{ident(c)} = f.{ident(c)}" for c in key)
            self.con.execute(f"DELETE FROM {ident(table)} AS t USING eventkit_frame AS f "
                             f"WHERE {same}")
            self.con.execute(f"INSERT INTO {ident(table)} BY NAME SELECT * FROM eventkit_frame")
        self.con.unregister("eventkit_frame")

    def columns_of(self, table: str) -> list[str]:
        return self.query("SELECT column_name FROM information_schema.columns WHERE "
                          "table_name = ? ORDER BY ordinal_position", (table,)
                          )["column_name"].to_list()

    def query(self, sql: str, params: tuple = ()) -> pl.DataFrame:
        # an Arrow table (not an array) converts to a DataFrame
        return cast("pl.DataFrame",
                    pl.from_arrow(self.con.sql(sql, params=list(params)).to_arrow_table()))

    def execute(self, sql: str, params: tuple = ()) -> None:
        self.con.execute(sql, list(params))

    def commit(self) -> None:
        self.con.commit()

    def close(self) -> None:
        self.con.close()


def _batches(frame: pl.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table of record batches of :data:`_BATCH_ROWS` rows.

    DuckDB reads the batches of an Arrow table in parallel: one batch of
    millions of rows would be loaded by one thread. No copy, unless ``frame``
    comes in several chunks (batches end where chunks do). Text goes as Arrow's
    string views, Polars' own layout (as ``large_string`` each string would be
    copied: 0.5-1.2 s for a 10 M-row history; DuckDB reads either as VARCHAR).
    """
    if frame.n_chunks("all") != [1] * frame.width:
        frame = frame.rechunk()
    table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    return pa.Table.from_batches(table.to_batches(max_chunksize=_BATCH_ROWS), table.schema)


class _SQLite(_Database):
    _TYPES: ClassVar[dict[pl.DataType | type[pl.DataType], str]] = {
        pl.Int64: "INTEGER", pl.Float64: "REAL", pl.String: "TEXT", pl.Boolean: "INTEGER"}

    def __init__(self, path: Path) -> None:
        try:
            self.con = sqlite3.connect(str(path))
        except sqlite3.Error as exc:
            msg = f"cannot open the SQLite file {path}: {exc}"
            raise ViewError(msg) from None
        self.con.execute("BEGIN")

    def replace(self, table: str, frame: pl.DataFrame, primary: list[str], *,
                index: bool = True) -> None:
        # (SQLite keeps the key: an INTEGER PRIMARY KEY is the row id itself, no index)
        frame = self._text_times(frame)
        _columns(frame.columns)
        columns = ", ".join(f"{ident(name)} {self._TYPES.get(dtype, 'TEXT')}"
                            for name, dtype in frame.schema.items())
        self.con.execute(f"DROP TABLE IF EXISTS {ident(table)}")
        self.con.execute(f"CREATE TABLE {ident(table)} ({columns}, "
                         f"PRIMARY KEY ({_columns(primary)}))")
        self.upsert(table, frame)

    def upsert(self, table: str, frame: pl.DataFrame, *, key: list[str] | None = None) -> None:
        frame = self._text_times(frame)
        marks = ", ".join("?" * frame.width)
        self.con.executemany(f"INSERT OR REPLACE INTO {ident(table)} ({_columns(frame.columns)}) "
                             f"VALUES ({marks})", frame.iter_rows())

    def columns_of(self, table: str) -> list[str]:
        return [row[1] for row in self.con.execute(f"PRAGMA table_info({ident(table)})")]

    def query(self, sql: str, params: tuple = ()) -> pl.DataFrame:
        cursor = self.con.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return pl.DataFrame(cursor.fetchall(), schema=names, orient="row", infer_schema_length=None)

    def execute(self, sql: str, params: tuple = ()) -> None:
        self.con.execute(sql, params)

    def commit(self) -> None:
        self.con.commit()

    def close(self) -> None:
        self.con.close()

    @staticmethod
    def _text_times(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col(pl.Datetime).dt.strftime(_TIME_TEXT),
                                  pl.col(pl.Date).dt.strftime("%Y-%m-%d"),
                                  pl.col(pl.Decimal).cast(pl.String))
