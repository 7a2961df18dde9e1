"""Snapshots: stored state per key at checkpoints, so temporal queries skip most events.

:func:`eventkit.snapshot` replays an eventkit archive once and stores each key's state
at the end of every calendar period (``every="1mo"``: month ends) as Parquet
files under ``<archive>/_eventkit/snapshots/``. A snapshot set is keyed by the
rule set's fingerprint and the archive version *and* head digest it was built
from: :func:`find` returns it only for exactly those rules and that archive
state, so a changed rule parameter or one appended event makes it unusable
(never wrong). :func:`eventkit.replay` on an archive then answers ``as_of``,
``at_times`` and ``between`` from the nearest checkpoint at or before the
instant plus the events after it.

Each file's SHA-256 is in the set's manifest and checked when it is read (once
per process while the file stays untouched, as for data files).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from eventkit.archive import ledger
from eventkit.archive.durable import clean_leftovers, replaced
from eventkit.archive.lock import exclusive
from eventkit.archive.table import EventArchive
from eventkit.exceptions import SnapshotError
from eventkit.rules.model import RuleSet
from eventkit.schema import BANK_ACCOUNT, TIME_DTYPE
from eventkit.timeutil import from_micros, micros

__all__ = ["Snapshots", "by_key", "find", "period_ends", "write_set"]

FOLDER = "snapshots"
_BY_KEY = "by-key"
_KEY_ROW_GROUP = 65_536  # rows per row group of the by-key copy
_MANIFEST = "manifest.json"
_ROW_GROUP = 8_192  # rows per row group: one key's row is read with a few row groups


@dataclass(frozen=True)
class Snapshots:
    """A stored snapshot set: state per key at each checkpoint, for one rule set and archive.

    ``checkpoints`` are instants in microseconds (ascending); the file of
    checkpoint ``i`` holds, per key with an event by then, the state fields,
    ``events`` (how many so far) and ``last_event_time``, sorted by key.
    """

    folder: Path
    key: str
    fingerprint: str
    version: int
    head: str
    every: str
    checkpoints: tuple[int, ...]
    files: tuple[dict, ...]
    bank: dict | None = None

    def before(self, micros: int) -> int | None:
        """Index of the last checkpoint at or before ``micros`` (None: none is)."""
        found = None
        for i, c in enumerate(self.checkpoints):  # dozens of checkpoints, not events
            if c > micros:
                break
            found = i
        return found

    def read(self, index: int, keys: list[int] | None = None) -> pl.DataFrame:
        """The state at checkpoint ``index`` (only ``keys``, when given)."""
        self._still_there()
        path = ledger.check_data_file(self.folder, self.files[index])
        lf = pl.scan_parquet(path)
        if keys is not None:
            lf = lf.filter(pl.col(self.key).is_in(keys))
        return lf.collect()

    def bank_events(self) -> pl.DataFrame:
        """The bank's own events (account 0: its rate table) in the archive state stored."""
        if self.bank is None:
            msg = f"snapshot set {self.folder} holds no bank events (rules keyed by {self.key!r})"
            raise SnapshotError(msg, param="snapshots")
        self._still_there()
        return pl.read_parquet(ledger.check_data_file(self.folder, self.bank))

    @property
    def replaced(self) -> bool:
        """True when a newer snapshot removed this set since it was found (use a full replay)."""
        return not (self.folder / _MANIFEST).is_file()

    def _still_there(self) -> None:
        if self.replaced:
            msg = f"snapshot set {self.folder} was replaced by a newer one meanwhile"
            raise SnapshotError(msg, param="snapshots")

    @property
    def instants(self) -> list[datetime]:
        """The checkpoints as datetimes (UTC)."""
        return [from_micros(c) for c in self.checkpoints]


def find(archive: EventArchive, rules: RuleSet, *, version: int | None = None,
         head: str | None = None) -> Snapshots | None:
    """The snapshot set for exactly these rules and this archive state, if one is stored.

    ``version``/``head`` default to the archive's latest. A set built with
    other rules (another fingerprint) or from another archive state (another
    version or head digest) is never returned.
    """
    folder = archive.path / ledger.PRIVATE_DIR / FOLDER / rules.fingerprint[:32]
    version = archive.version if version is None else version
    path = folder / f"v{version}"
    if not (path / _MANIFEST).is_file():
        return None
    found = load(path)
    if head is None:
        head = (ledger.read_commit(archive.path, version).record or {}).get("digest")
    if found.fingerprint != rules.fingerprint or found.version != version or found.head != head:
        return None
    if found.key == "account_id" and found.bank is None:  # made without the rate table
        return None
    return found


def by_key(archive: EventArchive, keys: list[int], *, version: int,
           head: str | None = None) -> pl.LazyFrame | None:
    """The events of ``keys`` from the archive's by-key copy, in log order (None: no copy).

    Only a copy made from exactly this archive state (version and head digest)
    is used; its file is checked against its SHA-256 like a data file.
    """
    path = archive.path / ledger.PRIVATE_DIR / FOLDER / _BY_KEY / f"v{version}"
    try:
        m = json.loads((path / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if head is None:
        head = (ledger.read_commit(archive.path, version).record or {}).get("digest")
    if m.get("version") != version or m.get("head") != head:
        return None
    file = ledger.check_data_file(path, m["file"])
    return pl.scan_parquet(file).filter(pl.col("account_id").is_in(keys)).sort("seq")


def write_set(store: EventArchive, rules: RuleSet, *, version: int, every: str,
              grid: list[datetime], states: pl.DataFrame, key_copy: bool) -> Snapshots:
    """Store ``states`` (``at_times(grid)`` of ``rules`` on ``store`` at ``version``) as a set.

    What :func:`eventkit.snapshot` writes once it has replayed: one file per
    checkpoint, the bank's rate events, a manifest; with ``key_copy`` the
    by-key copy too. Writers take turns (a lock on the snapshots folder); a set
    is written in a hidden folder and appears in one rename, then older sets of
    the same rules are removed. A failed write (a full disk) leaves what was
    there; what a killed one left is removed by the next.
    """
    head = (ledger.read_commit(store.path, version).record or {}).get("digest")
    root = store.path / ledger.PRIVATE_DIR / FOLDER
    folder = root / rules.fingerprint[:32]
    final = folder / f"v{version}"
    with _writing(root, folder):
        with replaced(final) as staging:
            staging.mkdir(parents=True)
            files = []
            for i, instant in enumerate(grid):
                part = states.filter(pl.col("instant") == instant).drop("instant").sort(rules.key)
                name = f"cp-{i:05d}.parquet"
                part.write_parquet(staging / name, row_group_size=_ROW_GROUP, statistics=True)
                files.append(_entry(staging, name, rows=part.height))
            bank = None
            if rules.key == "account_id":  # the rate table every account reads: kept with it
                store.scan(version=version).filter(pl.col("account_id") == BANK_ACCOUNT).collect(
                    ).write_parquet(staging / "bank.parquet")
                bank = _entry(staging, "bank.parquet")
            manifest = {"key": rules.key, "fingerprint": rules.fingerprint, "version": version,
                        "head": head, "every": every,
                        "checkpoints": [micros(t, param="every") for t in grid], "files": files,
                        "bank": bank, "created": datetime.now(UTC).isoformat()}
            (staging / _MANIFEST).write_text(json.dumps(manifest, indent=1))
        for old in folder.iterdir():  # older (or equal) sets of these rules are never used again
            if old != final and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
    if key_copy and rules.key == "account_id":
        write_by_key(store, version, head)
    return load(final)


def write_by_key(store: EventArchive, version: int, head: str | None) -> None:
    """Store the archive's events sorted by account (log order within each)."""
    root = store.path / ledger.PRIVATE_DIR / FOLDER
    folder = root / _BY_KEY
    final = folder / f"v{version}"
    with _writing(root, folder):
        if (final / _MANIFEST).is_file() and json.loads(
                (final / _MANIFEST).read_text()).get("head") == head:
            return  # already there for this archive state
        with replaced(final) as staging:
            staging.mkdir(parents=True)
            name = "events.parquet"
            (store.scan(version=version).sort("account_id", maintain_order=True)
             .sink_parquet(staging / name, compression="zstd", statistics=True,
                           row_group_size=_KEY_ROW_GROUP))
            (staging / _MANIFEST).write_text(json.dumps({"version": version, "head": head,
                                                         "file": _entry(staging, name)}))
        for old in folder.iterdir():
            if old != final and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)


def _entry(folder: Path, name: str, **extra: int) -> dict[str, Any]:
    """A stored file's record: path, size and SHA-256 (checked when read)."""
    return {"path": name, "bytes": (folder / name).stat().st_size,
            "sha256": ledger.sha256_file(folder / name), **extra}


@contextmanager
def _writing(root: Path, folder: Path) -> Iterator[None]:
    """Hold the snapshots' lock; clean what killed writers left in ``folder``; wrap failures."""
    def busy(message: str) -> SnapshotError:
        return SnapshotError(f"another process keeps writing snapshots ({message})",
                             param="snapshots")

    with exclusive(root / ".lock", error=busy):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            clean_leftovers(folder)
            yield
        except (OSError, pl.exceptions.PolarsError) as exc:
            msg = f"cannot write snapshots under {folder}, nothing was changed: {exc}"
            raise SnapshotError(msg, param="snapshots") from exc


def load(path: Path) -> Snapshots:
    try:
        m = json.loads((path / _MANIFEST).read_text())
        return Snapshots(path, m["key"], m["fingerprint"], int(m["version"]), m["head"],
                         m["every"], tuple(int(c) for c in m["checkpoints"]),
                         tuple(m["files"]), m.get("bank"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"snapshot manifest {path / _MANIFEST} is unreadable ({exc})"
        raise SnapshotError(msg, param="snapshots") from None


def period_ends(history: pl.LazyFrame, every: str) -> list[datetime]:
    """The last microsecond of each ``every`` period from the first event to the last."""
    span = history.select(lo=pl.col("event_time").min(), hi=pl.col("event_time").max()).collect()
    lo, hi = span["lo"][0], span["hi"][0]
    if lo is None:
        return []
    try:
        starts = pl.datetime_range(
            pl.lit(lo, TIME_DTYPE).dt.truncate(every), pl.lit(hi, TIME_DTYPE), every,
            eager=True, time_zone="UTC")
        ends = (starts.dt.offset_by(every) - timedelta(microseconds=1)).to_list()
    except pl.exceptions.PolarsError as exc:
        msg = f"every={every!r} is not a calendar period such as '1mo', '1q', '7d' ({exc})"
        raise SnapshotError(msg, param="every") from None
    return ends
