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

import hashlib
import io
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from eventkit.archive import ledger
from eventkit.archive.store import Store
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

    folder: Store
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
        path = ledger.check_data_file(self.folder, self.files[index])
        lf = pl.scan_parquet(path, storage_options=self.folder.storage_options)
        if keys is not None:
            lf = lf.filter(pl.col(self.key).is_in(keys))
        return lf.collect()

    def bank_events(self) -> pl.DataFrame:
        """The bank's own events (account 0: its rate table) in the archive state stored."""
        if self.bank is None:
            msg = (f"snapshot set {self.folder.root} holds no bank events (rules keyed by "
                   f"{self.key!r})")
            raise SnapshotError(msg, param="snapshots")
        return pl.read_parquet(ledger.check_data_file(self.folder, self.bank),
                               storage_options=self.folder.storage_options)

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
    version = archive.version if version is None else version
    path = _sets(archive.store, rules).child(f"v{version}")
    if not path.exists(_MANIFEST):
        return None
    found = load(path)
    if head is None:
        head = (ledger.read_commit(archive.store, version).record or {}).get("digest")
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
    path = archive.store.child(f"{ledger.PRIVATE_DIR}/{FOLDER}/{_BY_KEY}/v{version}")
    try:
        m = json.loads(path.read(_MANIFEST))
    except (OSError, ValueError):
        return None
    if head is None:
        head = (ledger.read_commit(archive.store, version).record or {}).get("digest")
    if m.get("version") != version or m.get("head") != head:
        return None
    file = ledger.check_data_file(path, m["file"])
    return (pl.scan_parquet(file, storage_options=path.storage_options)
            .filter(pl.col("account_id").is_in(keys)).sort("seq"))


def write_set(store: EventArchive, rules: RuleSet, *, version: int, every: str,
              grid: list[datetime], states: pl.DataFrame, key_copy: bool) -> Snapshots:
    """Store ``states`` (``at_times(grid)`` of ``rules`` on ``store`` at ``version``) as a set.

    What :func:`eventkit.snapshot` writes once it has replayed: one file per
    checkpoint, the bank's rate events, a manifest; with ``key_copy`` the
    by-key copy too. Older sets of the same rules are removed; the new one
    appears at once (see :func:`_publish`).
    """
    head = (ledger.read_commit(store.store, version).record or {}).get("digest")
    files: list[dict[str, object]] = []
    blobs: dict[str, bytes | Path] = {}
    for i, instant in enumerate(grid):
        part = states.filter(pl.col("instant") == instant).drop("instant").sort(rules.key)
        name = f"cp-{i:05d}.parquet"
        data = _parquet(part, row_group_size=_ROW_GROUP, statistics=True)
        blobs[name] = data
        files.append({"path": name, **_entry(data), "rows": part.height})
    bank = None
    if rules.key == "account_id":  # the rate table every account reads: kept with the set
        data = _parquet(
            store.scan(version=version).filter(pl.col("account_id") == BANK_ACCOUNT).collect())
        blobs["bank.parquet"] = data
        bank = {"path": "bank.parquet", **_entry(data)}
    manifest = {"key": rules.key, "fingerprint": rules.fingerprint, "version": version,
                "head": head, "every": every,
                "checkpoints": [micros(t, param="every") for t in grid], "files": files,
                "bank": bank, "created": datetime.now(UTC).isoformat()}
    if key_copy and rules.key == "account_id":
        write_by_key(store, version, head)
    folder = _sets(store.store, rules)
    _publish(folder, f"v{version}", blobs, manifest)
    return load(folder.child(f"v{version}"))


def write_by_key(store: EventArchive, version: int, head: str | None) -> None:
    """Store the archive's events sorted by account (log order within each)."""
    folder = store.store.child(f"{ledger.PRIVATE_DIR}/{FOLDER}/{_BY_KEY}")
    try:
        if json.loads(folder.read(f"v{version}/{_MANIFEST}")).get("head") == head:
            return  # already there for this archive state
    except (OSError, ValueError):
        pass
    name = "events.parquet"
    events = store.scan(version=version).sort("account_id", maintain_order=True)
    data: bytes | Path
    if folder.local:  # streamed to a file: flat memory
        data = folder.path("") / f".events-{uuid.uuid4().hex}.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        events.sink_parquet(data, compression="zstd", statistics=True,
                            row_group_size=_KEY_ROW_GROUP)
        entry: dict[str, object] = {"bytes": data.stat().st_size,
                                    "sha256": ledger.sha256_file(data)}
    else:
        data = _parquet(events.collect(), compression="zstd", statistics=True,
                        row_group_size=_KEY_ROW_GROUP)
        entry = _entry(data)
    _publish(folder, f"v{version}", {name: data},
             {"version": version, "head": head, "file": {"path": name, **entry}})


def _sets(store: Store, rules: RuleSet) -> Store:
    return store.child(f"{ledger.PRIVATE_DIR}/{FOLDER}/{rules.fingerprint[:32]}")


def _parquet(frame: pl.DataFrame, **options: object) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, **options)  # type: ignore[arg-type]  # (options: keywords)
    return buffer.getvalue()


def _entry(data: bytes) -> dict[str, object]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _publish(folder: Store, name: str, blobs: dict[str, bytes | Path],
             manifest: dict[str, object]) -> None:
    """Store a set as ``folder/name/`` (its files, then its manifest); remove older sets.

    Locally the set is written to a hidden folder renamed into place, so it
    appears at once; in an object store its files are put first and the
    manifest last (a set without its manifest is never read). Every file is
    checked against the manifest's SHA-256 when read.
    """
    body = json.dumps(manifest, indent=1).encode()
    if folder.local:
        root = folder.path("")
        staging = root / f".{name}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        for file, data in blobs.items():
            if isinstance(data, Path):
                os.replace(data, staging / file)
            else:
                (staging / file).write_bytes(data)
        (staging / _MANIFEST).write_bytes(body)
        for old in root.iterdir():  # older (or equal) sets are never used again
            if old != staging and not old.name.startswith("."):
                folder.delete_tree(old.name)
        os.replace(staging, root / name)
        return
    for stale in {r.split("/", 1)[0] for r in folder.list_files("")} - {name}:
        folder.delete_tree(stale)
    folder.delete(f"{name}/{_MANIFEST}")
    for file, data in blobs.items():
        folder.write(f"{name}/{file}", data.read_bytes() if isinstance(data, Path) else data)
    folder.write(f"{name}/{_MANIFEST}", body)


def load(path: Store) -> Snapshots:
    """The snapshot set whose manifest is in ``path``."""
    try:
        m = json.loads(path.read(_MANIFEST))
        return Snapshots(path, m["key"], m["fingerprint"], int(m["version"]), m["head"],
                         m["every"], tuple(int(c) for c in m["checkpoints"]),
                         tuple(m["files"]), m.get("bank"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"snapshot manifest {path.uri(_MANIFEST)} is unreadable ({exc})"
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
