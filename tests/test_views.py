"""Views in real DuckDB and SQLite files: written, queried with plain SQL, refreshed."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from eventkit import EventArchive, ViewError, materialize, refresh, replay
from eventkit.banking.generate import generate
from eventkit.questions.viewdb import _batches
from eventkit.rules.registry import get

ENGINES = ["duckdb", "sqlite"]


def read(url: str, table: str) -> pl.DataFrame:
    """A table as plain SQL returns it, ordered by its first column(s)."""
    path = url.partition(":///")[2]
    order = "account_id" if table.endswith("_state") else "event_id"
    sql = f"SELECT * FROM {table} ORDER BY {order}"
    if url.startswith("duckdb"):
        with duckdb.connect(path, read_only=True) as con:
            return pl.from_arrow(con.sql(sql).to_arrow_table())
    con = sqlite3.connect(path)
    try:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return pl.DataFrame(cursor.fetchall(), schema=names, orient="row",
                            infer_schema_length=None)
    finally:
        con.close()


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("views") / "bank"
    generate(path, events=4_000, accounts=60, seed=3)
    return path


@pytest.fixture
def archive(bank: Path, tmp_path: Path) -> EventArchive:
    """A private copy of the generated archive (tests append to it)."""
    import shutil

    shutil.copytree(bank, tmp_path / "bank")
    return EventArchive(tmp_path / "bank")


@pytest.mark.parametrize("engine", ENGINES)
def test_plain_sql_returns_eventkit_numbers(archive: EventArchive, tmp_path: Path,
                                            engine: str) -> None:
    url = f"{engine}:///{tmp_path / 'views.db'}"
    result = replay(archive, "banking")
    record = materialize(result, url)
    assert record["fingerprint"] == result.fingerprint
    assert record["archive_version"] == archive.version
    state = read(url, "accounts_state")
    want = result.state().collect()
    assert state["account_id"].to_list() == want["account_id"].to_list()
    for f in ("balance", "interest", "fees", "overdrafts", "events"):
        assert state[f].to_list() == want[f].to_list(), f
    assert state["status"].to_list() == want["status"].cast(pl.String).to_list()
    history = read(url, "accounts_history")
    assert history.height == result.history.collect().height
    path = url.partition(":///")[2]
    sql = "SELECT fingerprint, archive_version FROM eventkit_views WHERE name = 'accounts'"
    if engine == "duckdb":
        with duckdb.connect(path, read_only=True) as con:
            meta = con.execute(sql).fetchone()
    else:
        meta = sqlite3.connect(path).execute(sql).fetchone()
    assert meta == (result.fingerprint, archive.version)


def test_sqlite3_command_line_sums_the_same(archive: EventArchive, tmp_path: Path) -> None:
    db = tmp_path / "views.sqlite"
    result = replay(archive, "banking")
    materialize(result, f"sqlite:///{db}")
    out = subprocess.run(["sqlite3", str(db), "SELECT sum(balance), count(*) FROM "
                          "accounts_state; SELECT fingerprint FROM eventkit_views"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.split()
    state = result.state().collect()
    assert out[0] == f"{state['balance'].sum()}|{state.height}"
    assert out[1] == result.fingerprint


def new_events(archive: EventArchive, prefix: str, *, late: bool, rate: bool = False
               ) -> pl.DataFrame:
    """Deposits after the end, a new account, and optionally a late correction or rate."""
    events = archive.scan().collect()
    end = events["event_time"].max()
    accounts = events.filter(pl.col("account_id") > 0)["account_id"].unique().sort()[:5]
    rows = [(a, "Deposit", 1_000 * (i + 1), end + timedelta(days=i + 1))
            for i, a in enumerate(accounts.to_list())]
    rows += [(9_999, "AccountOpened", 0, end + timedelta(days=2)),
             (9_999, "Deposit", 77_700, end + timedelta(days=3))]
    if late:
        rows.append((accounts[0], "Correction", -12_345, end - timedelta(days=40)))
    if rate:
        rows.append((0, "InterestRateChanged", 0, end - timedelta(days=90)))
    return pl.DataFrame({
        "event_id": [f"{prefix}{i}" for i in range(len(rows))],
        "account_id": [r[0] for r in rows], "event_type": [r[1] for r in rows],
        "amount": [r[2] for r in rows], "event_time": [r[3] for r in rows],
        "rate": [0.09 if r[1] == "InterestRateChanged" else None for r in rows],
    }, schema_overrides={"event_time": pl.Datetime("us", "UTC")})


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", ["appended", "late", "late-rate"])
def test_refresh_equals_a_full_rebuild(archive: EventArchive, tmp_path: Path, engine: str,
                                       case: str) -> None:
    late, rate = case != "appended", case == "late-rate"
    url = f"{engine}:///{tmp_path / 'views.db'}"
    rules = get("banking")
    materialize(replay(archive, rules), url)
    archive.append(new_events(archive, "x", late=late, rate=rate))
    archive.append(new_events(archive, "y", late=False))
    report = refresh(url, rules)
    assert report.archive_version == archive.version
    assert report.rebuilt == rate
    if late and not rate:
        assert len(report.keys_replayed) == 1
    rebuilt = f"{engine}:///{tmp_path / 'rebuilt.db'}"
    materialize(replay(archive, rules), rebuilt)
    for table in ("accounts_state", "accounts_history"):
        assert_frame_equal(read(url, table), read(rebuilt, table))
    assert refresh(url, rules).new_events == 0  # nothing new: nothing done


def test_refresh_refuses_other_rules_and_other_sources(archive: EventArchive,
                                                       tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'views.db'}"
    materialize(replay(archive, "banking"), url)
    with pytest.raises(ViewError, match="materialize it again"):
        refresh(url, get("banking").with_params(overdraft_fee=5))
    with pytest.raises(ViewError, match="no view 'other'"):
        refresh(url, "banking", table="other")
    frame = archive.scan().collect()
    materialize(replay(frame, "banking"), url, table="loose")
    with pytest.raises(ViewError, match="not built from a replay of every event"):
        refresh(url, "banking", table="loose")
    with pytest.raises(ViewError, match="url"):
        materialize(replay(frame), "postgres://x")
    with pytest.raises(ViewError, match="table"):
        materialize(replay(frame), url, table="x; DROP TABLE y")
    with pytest.raises(ViewError, match="not a BucketedReplay"):  # was an AttributeError
        materialize(replay(archive, "banking", engine="buckets"), url)


def test_materialize_records_times_as_utc(archive: EventArchive, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'views.db'}"
    result = replay(archive, "balance")
    materialize(result, url)
    state = read(url, "accounts_state")
    first = result.state().collect().row(0, named=True)["last_event_time"]
    assert state["last_event_time"][0] == first
    assert first.tzinfo is not None and first.utcoffset() == timedelta(0)
    assert datetime.now(UTC) > first


def test_the_duckdb_tables_keep_their_keys(archive: EventArchive, tmp_path: Path) -> None:
    """The state's primary key, built after the bulk load, still refuses a second row.

    The history has no index (a refresh keeps its seq unique all the same: the refresh tests
    compare it with a rebuild row by row, late events included).
    """
    db = tmp_path / "views.duckdb"
    materialize(replay(archive, "banking"), f"duckdb:///{db}")
    with duckdb.connect(str(db)) as con:
        keys = con.sql("SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                       "WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name").fetchall()
        assert keys[:1] == [("accounts_state", ["account_id"])]
        assert "accounts_history" not in {name for name, _ in keys}
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO accounts_state SELECT * FROM accounts_state LIMIT 1")
        # text handed over as Arrow string views arrives as text
        types = dict(con.sql("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'accounts_history'").fetchall())
        assert {types[c] for c in ("event_id", "event_type", "status")} == {"VARCHAR"}


@pytest.mark.parametrize("scheme", ENGINES)
def test_events_sharing_a_seq_are_refused_not_merged(tmp_path: Path, scheme: str) -> None:
    """The history is keyed by seq: a frame whose seq repeats would lose rows, so it is refused."""
    t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 1], "account_id": [1, 1, 2],
                           "event_type": ["Deposit", "Fee", "Deposit"], "event_time": t,
                           "recorded_at": t, "amount": [10_000, 250, 5]})
    url = f"{scheme}:///{tmp_path / 'views.db'}"
    with pytest.raises(ViewError, match=r"seq 1 is the seq of 2 events \(event_id 'b'"):
        materialize(replay(events), url)
    materialize(replay(events.with_columns(seq=pl.Series([0, 1, 2]))), url)
    assert read(url, "accounts_history")["event_id"].to_list() == ["a", "b", "c"]


def test_duckdb_gets_whole_row_groups_however_the_frame_is_chunked() -> None:
    """Each batch DuckDB loads is one of its row groups (122,880 rows), whole: part-filled ones
    were merged at later checkpoints, seconds for a one-row refresh after 10 M rows."""
    parts = [pl.DataFrame({"seq": range(a, b)}) for a, b in ((0, 100_000), (100_000, 250_001),
                                                             (250_001, 257_000))]
    frame = pl.concat(parts, rechunk=False)
    assert frame.n_chunks() == 3
    sizes = [b.num_rows for b in _batches(frame).to_batches()]
    assert sizes == [122_880, 122_880, 257_000 - 2 * 122_880]


def text_keyed(path: Path) -> EventArchive:
    """A small archive of text ids: two accounts, a deposit on days 1 and 10 each."""
    archive = EventArchive.create(path, key="account_id",
                                  columns={"account_id": "string", "amount": "money"})
    for day in (1, 10):
        archive.append(deposits(["Ä-1", "b-2"], day, f"d{day}"))
    return archive


def deposits(accounts: list[str], day: int, prefix: str) -> pl.DataFrame:
    return pl.DataFrame({"event_id": [f"{prefix}-{a}" for a in accounts], "account_id": accounts,
                         "event_type": ["Deposit"] * len(accounts),
                         "event_time": [datetime(2024, 1, day, tzinfo=UTC)] * len(accounts),
                         "amount": [100 * day] * len(accounts)})


@pytest.mark.parametrize("engine", ENGINES)
def test_refresh_after_an_expiry_rebuilds_the_view(tmp_path: Path, engine: str) -> None:
    """The expired events leave the view's history (they stayed, beside the opening events
    that replaced them: summing a key's amounts counted them twice)."""
    from eventkit import expire

    archive = text_keyed(tmp_path / "bank")
    url = f"{engine}:///{tmp_path / 'views.db'}"
    materialize(replay(archive), url)
    archive.append(deposits(["Ä-1"], 12, "d12"))
    expire(archive, before=datetime(2024, 1, 20, tzinfo=UTC), by="ops", reason="retention",
           confirm=True)
    archive.append(deposits(["b-2", "c-3"], 25, "d25"))

    report = refresh(url)

    assert report.rebuilt and report.archive_version == archive.version
    fresh = f"{engine}:///{tmp_path / 'fresh.db'}"
    materialize(replay(archive), fresh)
    for table in ("accounts_state", "accounts_history"):
        assert_frame_equal(read(url, table), read(fresh, table))
    assert not read(url, "accounts_history")["event_id"].is_in(["d1-Ä-1", "d12-Ä-1"]).any()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("partial", ["keys", "known_at", "compare"])
def test_a_view_of_part_of_an_archive_is_not_refreshed(tmp_path: Path, engine: str,
                                                       partial: str) -> None:
    """Refreshing it folded the new events of every key into it: a view of one key got the
    others' new events alone; a view as known then got the later events on top."""
    from eventkit import compare

    archive = text_keyed(tmp_path / "bank")
    url = f"{engine}:///{tmp_path / 'views.db'}"
    result = {"keys": lambda: replay(archive, keys=["Ä-1"]),
              "known_at": lambda: replay(archive, known_at=datetime(2000, 1, 1, tzinfo=UTC)),
              "compare": lambda: compare(archive, "balance", "balance", keys=["Ä-1"]).b}[partial]
    materialize(result(), url)
    archive.append(deposits(["b-2"], 25, "d25"))
    before = read(url, "accounts_state")
    with pytest.raises(ViewError, match="some keys or as known at an instant"):
        refresh(url)
    assert_frame_equal(read(url, "accounts_state"), before)


def execute(url: str, sql: str) -> None:
    """Run ``sql`` on the view database at ``url`` (as another program would)."""
    path = url.partition(":///")[2]
    if url.startswith("duckdb"):
        with duckdb.connect(path) as con:
            con.execute(sql)
        return
    con = sqlite3.connect(path)
    try:
        con.execute(sql)
        con.commit()
    finally:
        con.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_view_record_of_another_layout_is_refused_then_made_anew(tmp_path: Path,
                                                                   engine: str) -> None:
    """A record lacking a column was a raw KeyError; materialize could not replace it."""
    archive = text_keyed(tmp_path / "bank")
    url = f"{engine}:///{tmp_path / 'views.db'}"
    materialize(replay(archive), url)
    materialize(replay(archive), url, table="other")
    execute(url, "ALTER TABLE eventkit_views DROP COLUMN last_seq")  # as an older layout
    archive.append(deposits(["b-2"], 25, "d25"))

    with pytest.raises(ViewError, match="view 'accounts' in eventkit_views has no last_seq"):
        refresh(url)
    materialize(replay(archive, version=archive.version - 1), url)
    assert refresh(url).new_events == 1
    fresh = f"{engine}:///{tmp_path / 'fresh.db'}"
    materialize(replay(archive), fresh)
    assert_frame_equal(read(url, "accounts_state"), read(fresh, "accounts_state"))
    with pytest.raises(ViewError, match="view 'other' in eventkit_views has no last_seq"):
        refresh(url, table="other")  # its record kept, as far as it went


@pytest.mark.parametrize("engine", ENGINES)
def test_a_damaged_view_file_is_not_called_missing(tmp_path: Path, engine: str) -> None:
    """A broken file said "no view 'accounts' (materialize it first)"."""
    archive = text_keyed(tmp_path / "bank")
    path = tmp_path / "views.db"
    materialize(replay(archive), f"{engine}:///{path}")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ViewError, match=f"refresh 'accounts' on {path} failed") as caught:
        refresh(f"{engine}:///{path}")
    assert "materialize it first" not in str(caught.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_refresh_writes_each_value_in_its_own_column(tmp_path: Path, engine: str) -> None:
    """DuckDB inserted by position: in a table whose columns came in another order (made
    again by another program) balances went into `events`, amounts into `balance`."""
    archive = text_keyed(tmp_path / "bank")
    url = f"{engine}:///{tmp_path / 'views.db'}"
    materialize(replay(archive), url)
    for sql in ("CREATE TABLE s2 (account_id TEXT PRIMARY KEY, events BIGINT, balance BIGINT, "
                "last_event_time TIMESTAMPTZ)",
                "INSERT INTO s2 (account_id, events, balance, last_event_time) SELECT "
                "account_id, events, balance, last_event_time FROM accounts_state",
                "DROP TABLE accounts_state", "ALTER TABLE s2 RENAME TO accounts_state",
                "CREATE TABLE h2 AS SELECT event_id, seq, event_type, event_time, recorded_at, "
                "balance, account_id, amount FROM accounts_history",
                "DROP TABLE accounts_history", "ALTER TABLE h2 RENAME TO accounts_history"):
        execute(url, sql)
    archive.append(deposits(["b-2", "c-3"], 25, "d25"))

    refresh(url)

    fresh = f"{engine}:///{tmp_path / 'fresh.db'}"
    materialize(replay(archive), fresh)
    for table, columns in (("accounts_state", ["account_id", "balance", "events"]),
                           ("accounts_history", ["event_id", "amount", "balance"])):
        got = read(url, table).select(columns)
        assert_frame_equal(got, read(fresh, table).select(columns), check_dtypes=False)
