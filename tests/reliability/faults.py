"""Operations to break, and what must hold after: shared by the disk-full and SIGKILL families.

Each operation starts from the state :func:`prepare` makes in a folder (an
archive of small batches, plus what the operation needs: a view, a live
checkpoint, a key store), :func:`run` performs it — in the test's process
when the disk fills up, in a forked child when it is killed — and
:func:`check` then requires: the archive opens and ``verify`` passes, every
batch stored is there once and whole (the one in flight whole or absent),
derived state equals a full replay or is rebuilt, ``forget`` did all or
nothing, and nothing the operation half-wrote is left once it (or the next
one of its kind) has run.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

import eventkit
from eventkit import EventArchive, KeyStore, LiveReplay
from eventkit.archive import ledger
from eventkit.archive.durable import LEFTOVER
from reliability import workers

OPERATIONS = ("append", "snapshot", "compact", "expire", "materialize", "refresh",
              "checkpoint", "forget")
BATCHES = [f"b{k}" for k in range(12)]
LATER = [f"c{k}" for k in range(3)]  # appended after the view or checkpoint was made
CUTOFF = workers.T0 + timedelta(days=3)
RULES = "balance"
SUBJECT = "s3"


def mount(*options: str) -> None:
    """Run ``mount`` with ``options`` (as root, or through ``sudo -n``, as ``make test`` does)."""
    command = ["mount", *options] if os.geteuid() == 0 else ["sudo", "-n", "mount", *options]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"cannot {' '.join(command)} (needs root or sudo -n): {done.stderr.strip()}"
        raise RuntimeError(msg)


def paths(root: Path) -> dict[str, Path]:
    return {"bank": root / "bank", "live": root / "live", "keys": root / "keys.sqlite",
            "view": root / "views.duckdb", "state": root / "before.json"}


def url(root: Path) -> str:
    return f"duckdb:///{paths(root)['view']}"


def prepare(root: Path, operation: str) -> None:
    """The state before ``operation``, and what :func:`check` compares with (in before.json)."""
    p = paths(root)
    archive = EventArchive.create(p["bank"])
    for batch_id in BATCHES:
        archive.append(workers.make_batch(batch_id), batch_id=batch_id)
    before: dict[str, Any] = {}
    if operation == "refresh":
        eventkit.materialize(eventkit.replay(archive, RULES), url(root))
        before["view"] = _view(p["view"])
    if operation == "checkpoint":
        LiveReplay(archive, RULES, folder=p["live"]).catch_up()
        before["live_version"] = archive.version
    if operation in ("refresh", "checkpoint"):
        for batch_id in LATER:
            archive.append(workers.make_batch(batch_id), batch_id=batch_id)
    if operation == "forget":
        keys = KeyStore(p["keys"])
        found = keys.keys([f"s{i}" for i in range(6)], create=True)
        before["key"] = found[SUBJECT].hex()
        keys.close()
    before["state"] = _state(eventkit.replay(archive, RULES, snapshots=False))
    before["version"] = archive.version
    p["state"].write_text(json.dumps(before))


def run(root: str | Path, operation: str) -> Any:
    """Perform ``operation`` once (what a test breaks)."""
    p = paths(Path(root))
    if operation == "append":
        return EventArchive(p["bank"]).append(workers.make_batch("victim"), batch_id="victim")
    if operation == "snapshot":
        return eventkit.snapshot(p["bank"], RULES, every="1d")
    if operation == "compact":
        return eventkit.compact(p["bank"])
    if operation == "expire":
        return eventkit.expire(p["bank"], before=CUTOFF, by="ops", reason="retention",
                               confirm=True, rules=RULES)
    if operation == "materialize":
        return eventkit.materialize(eventkit.replay(p["bank"], RULES), url(Path(root)))
    if operation == "refresh":
        return eventkit.refresh(url(Path(root)))
    if operation == "checkpoint":
        return LiveReplay(p["bank"], RULES, folder=p["live"]).catch_up()
    with KeyStore(p["keys"]) as keys:
        return keys.forget(SUBJECT, by="dpo@bank", reason="request 7")


def leftovers(root: Path) -> list[str]:
    """What a write left half-done: temporary files and folders, pending intents."""
    found = [str(q.relative_to(root)) for q in root.rglob("*")
             if q.name.endswith(LEFTOVER) and q.name.startswith(".")]
    pending = paths(root)["bank"] / ledger.PRIVATE_DIR / "pending"
    if pending.is_dir():
        found += [str(q.relative_to(root)) for q in pending.iterdir()]
    return found


def check(root: Path, operation: str, *, done: bool | None) -> None:
    """Everything that must hold after ``operation`` failed (False), succeeded (True) or was
    killed at an unknown point (None); then the operation run again must succeed and leave
    nothing half-written."""
    p = paths(root)
    before = json.loads(p["state"].read_text())
    archive = EventArchive(p["bank"])
    report = archive.verify()
    assert report.ok, report
    events = archive.scan().collect()
    expired = False
    if operation == "expire":
        expired = not events.filter(pl.col("event_id").str.starts_with("opening-")).is_empty()
        assert done is None or expired == done
        if not expired:
            workers.check_whole_batches(events)
    else:
        ranges = workers.check_whole_batches(events)
        stored = set(BATCHES) | (set(LATER) if operation in ("refresh", "checkpoint") else set())
        assert set(ranges) - {"victim"} == stored
        if operation == "append":
            assert done is None or ("victim" in ranges) == done
            retry = archive.append(workers.make_batch("victim"), batch_id="victim")
            assert retry.duplicate == ("victim" in ranges)
    full = _state(eventkit.replay(archive, RULES, snapshots=False))
    if operation != "append":  # every other operation leaves every answer as it was
        assert full == before["state"]
    forgotten = _check_derived(root, operation, before, done=done, full=full)
    if operation == "expire" and expired:
        clean = EventArchive(p["bank"]).append(workers.make_batch("after"), batch_id="after")
        assert not clean.duplicate  # the next write cleans what a killed expire left
        return
    again = run(root, operation)  # with room, and after any kill: it succeeds, and cleans up
    if operation == "forget":
        assert again is not forgotten  # True: done now; False: it was done before
    _check_derived(root, operation, before, done=True, full=full)
    assert leftovers(root) == [], leftovers(root)


def _check_derived(root: Path, operation: str, before: dict[str, Any], *, done: bool | None,
                   full: list[list[str]]) -> bool:
    """Derived state after ``operation``: a full replay's, or as before. For ``forget``:
    whether the erasure happened (all of it; half of it fails)."""
    p = paths(root)
    if operation == "snapshot":  # with or without the set: the same answers
        for day in (1, 2, 5):
            at = workers.T0 + timedelta(days=day)
            assert_frame_equal(eventkit.replay(p["bank"], RULES).as_of(at).collect(),
                               eventkit.replay(p["bank"], RULES, snapshots=False)
                               .as_of(at).collect())
    elif operation in ("materialize", "refresh"):
        view = _view(p["view"])
        scratch = root / "scratch.duckdb"
        eventkit.materialize(eventkit.replay(p["bank"], RULES), f"duckdb:///{scratch}")
        current = _view(scratch)
        scratch.unlink()
        assert view == current if done else view in (before.get("view"), current), \
            "a view that is neither as it was nor a full rebuild"
    elif operation == "checkpoint":
        live = LiveReplay(p["bank"], RULES, folder=p["live"])
        assert live.discarded is None, live.discarded
        version = EventArchive(p["bank"]).version
        assert live.version == version if done else live.version in (
            before["live_version"], version)
        if live.version == version:
            assert _state_of(live.state) == full
        live.catch_up()
        assert _state_of(live.state) == full
    elif operation == "forget":
        gone = _forgotten(root)
        assert done is None or gone == done
        if gone:
            assert bytes.fromhex(before["key"]) not in p["keys"].read_bytes(), \
                "the destroyed key is still in the file"
        return gone
    return False


def _forgotten(root: Path) -> bool:
    """True when the erasure happened whole, False when not at all (anything else fails)."""
    with KeyStore(paths(root)["keys"]) as keys:
        has_key = SUBJECT in keys.keys([SUBJECT])
        recorded = SUBJECT in keys.forgotten()["subject"].to_list()
    assert has_key != recorded, "a half-done erasure"
    return recorded


def _state(result: Any) -> list[list[Any]]:
    return _state_of(result.state().collect())


def _state_of(state: pl.DataFrame) -> list[list[Any]]:
    return [[str(v) for v in row] for row in state.sort("account_id").rows()]


def _view(path: Path) -> dict[str, list[list[str]]] | None:
    """The view's tables in the DuckDB file ``path`` (None: no file, or no view in it)."""
    import duckdb

    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {r[0] for r in con.sql("SELECT table_name FROM information_schema.tables")
                  .fetchall()}
        if "accounts_state" not in tables:
            return None
        return {t: [[str(v) for v in row] for row in con.sql(
            f"SELECT * FROM {t} ORDER BY ALL").fetchall()]
            for t in ("accounts_state", "accounts_history")}
    finally:
        con.close()
