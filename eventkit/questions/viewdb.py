"""The databases views live in: DuckDB and SQLite behind one small interface.

:func:`connect` opens the database a view URL names (``duckdb:///path`` or
``sqlite:///path``), in one transaction held by this process alone, and turns
any error of the database or the file system into a
:class:`~eventkit.exceptions.ViewError` naming the operation and the file;
:data:`META` is the table of the views' records.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, cast

import polars as pl
import pyarrow as pa

from eventkit.archive.lock import exclusive
from eventkit.exceptions import ViewError

__all__ = ["META", "Database", "connect", "ident", "view_file"]

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
TIME_TEXT = "%Y-%m-%dT%H:%M:%S%.6fZ"  # how SQLite stores instants (sorts as time)
#: Rows per Arrow batch handed to DuckDB (its threads take one each): its row group size, so
#: each batch makes one full row group. Batches of 2**17 rows left a part-filled row group
#: each, which DuckDB merged at the next checkpoints: 3.5 s, then 1 s, for a change of one
#: row after loading 10 M rows (and a `refresh` paid it).
_BATCH_ROWS = 122_880
_WAIT_S = 600.0  # how long a refresh waits for another one on the same database


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


@contextmanager
def connect(url: str, operation: str) -> Iterator[Database]:
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
        db: Database | None = None
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


class Database:
    """The few operations views need, in one transaction per :func:`connect`."""

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
        """The rows ``sql`` selects, as a frame."""
        raise NotImplementedError

    def execute(self, sql: str, params: tuple = ()) -> None:
        """Run ``sql`` (in the transaction)."""
        raise NotImplementedError

    def commit(self) -> None:
        """Commit the transaction."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection (what was not committed is rolled back)."""
        raise NotImplementedError

    def scalar(self, sql: str) -> object:
        """The one value ``sql`` selects (None: no row)."""
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


class _DuckDB(Database):
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


class _SQLite(Database):
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
        return frame.with_columns(pl.col(pl.Datetime).dt.strftime(TIME_TEXT),
                                  pl.col(pl.Date).dt.strftime("%Y-%m-%d"),
                                  pl.col(pl.Decimal).cast(pl.String))
