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
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import polars as pl

from eventkit.archive import datafiles, ledger
from eventkit.archive.durable import LEFTOVER, clean_leftovers
from eventkit.archive.lock import exclusive
from eventkit.archive.store import Store, fsync
from eventkit.archive.table import EventArchive
from eventkit.exceptions import SnapshotError
from eventkit.rules.model import RuleSet
from eventkit.rules.streams import global_expr, key_filter, key_frame
from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import from_micros, micros, period_micros, period_problem

__all__ = ["MAX_CHECKPOINTS", "Snapshots", "by_key", "find", "period_ends", "write_set"]

FOLDER = "snapshots"
_BY_KEY = "by-key"
_KEY_ROW_GROUP = 65_536  # rows per row group of the by-key copy
_MANIFEST = "manifest.json"
_ROW_GROUP = 8_192  # rows per row group: one key's row is read with a few row groups
#: At most this many checkpoints per snapshot set (daily for 27 years), unless asked.
MAX_CHECKPOINTS = 10_000


@dataclass(frozen=True)
class Snapshots:
    """A stored snapshot set: state per key at each checkpoint, for one rule set and archive.

    ``checkpoints`` are instants in microseconds (ascending); the file of
    checkpoint ``i`` holds, per key with an event by then, the state fields,
    ``events`` (how many so far) and ``last_event_time``, sorted by key.
    """

    folder: Store
    key: tuple[str, ...]
    fingerprint: str
    version: int
    head: str
    every: str
    checkpoints: tuple[int, ...]
    files: tuple[dict, ...]
    shared: dict | None = None

    def before(self, micros: int) -> int | None:
        """Index of the last checkpoint at or before ``micros`` (None: none is)."""
        found = None
        for i, c in enumerate(self.checkpoints):  # dozens of checkpoints, not events
            if c > micros:
                break
            found = i
        return found

    def read(self, index: int, keys: list[object] | None = None) -> pl.DataFrame:
        """The state at checkpoint ``index`` (only ``keys``, when given)."""
        self._still_there()
        path = datafiles.check_data_file(self.folder, self.files[index])
        lf = pl.scan_parquet(path, storage_options=self.folder.storage_options)
        if keys is not None:
            wanted = key_frame(RuleSet("keys", (), (), key=self.key), keys,
                               lf.collect_schema())
            lf = lf.join(wanted.lazy(), on=list(self.key), how="semi")
        return lf.collect()

    def shared_events(self) -> pl.DataFrame:
        """The rule set's global events (the bank's rate table) in the archive state stored."""
        if self.shared is None:
            msg = (f"snapshot set {self.folder.root} holds no global events (its rules "
                   "declare none)")
            raise SnapshotError(msg, param="snapshots")
        self._still_there()
        return pl.read_parquet(datafiles.check_data_file(self.folder, self.shared),
                               storage_options=self.folder.storage_options)

    @property
    def replaced(self) -> bool:
        """True when a newer snapshot removed this set since it was found (use a full replay)."""
        return not self.folder.exists(_MANIFEST)

    def _still_there(self) -> None:
        if self.replaced:
            msg = f"snapshot set {self.folder.root} was replaced by a newer one meanwhile"
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
    version = archive.version if version is None else version
    path = _sets(archive.store, rules).child(f"v{version}")
    if not path.exists(_MANIFEST):
        return None
    try:
        found = load(path)
    except SnapshotError:
        if not path.exists(_MANIFEST):  # replaced by a newer set meanwhile
            return None
        raise
    if head is None:
        head = (ledger.read_commit(archive.store, version).record or {}).get("digest")
    if found.fingerprint != rules.fingerprint or found.version != version or found.head != head:
        return None
    if rules.global_events is not None and found.shared is None:  # made without them
        return None
    return found


def by_key(archive: EventArchive, rules: RuleSet, keys: Sequence[object], *,
           version: int, head: str | None = None) -> pl.LazyFrame | None:
    """The events of ``keys`` (and the global ones) from the by-key copy, in log order.

    None when there is no copy, or it is sorted by another key than the rule
    set's. Only a copy made from exactly this archive state (version and head
    digest) is used; its file is checked against its SHA-256 like a data file.
    """
    path = archive.store.child(f"{ledger.PRIVATE_DIR}/{FOLDER}/{_BY_KEY}/v{version}")
    try:
        m = json.loads(path.read(_MANIFEST))
    except (OSError, ValueError):
        return None
    if head is None:
        head = (ledger.read_commit(archive.store, version).record or {}).get("digest")
    if m.get("version") != version or m.get("head") != head \
            or tuple(m.get("key", ("account_id",))) != rules.key_columns:
        return None
    file = datafiles.check_data_file(path, m["file"])
    lf = pl.scan_parquet(file, storage_options=path.storage_options)
    return lf.filter(key_filter(rules, keys, lf.collect_schema())).sort("seq")


def write_set(store: EventArchive, rules: RuleSet, *, version: int, every: str,
              grid: list[datetime], states: Iterable[pl.DataFrame], key_copy: bool
              ) -> Snapshots:
    """Store ``states`` (``states_at(grid)`` of ``rules`` on ``store`` at ``version``) as a set.

    ``states`` gives one frame per checkpoint of ``grid``, in order: each is
    written as it comes, so memory holds one checkpoint's state at a time.

    What :func:`eventkit.snapshot` writes once it has replayed: one file per
    checkpoint, the rule set's global events, a manifest; with ``key_copy`` the
    by-key copy too. Older sets of the same rules are removed; the new one
    appears at once (see :func:`_publish`).
    """
    head = (ledger.read_commit(store.store, version).record or {}).get("digest")
    files: list[dict[str, object]] = []
    blobs: dict[str, bytes | Path] = {}
    for i, state in enumerate(states):
        part = state.drop("instant").sort(rules.key_columns)
        name = f"cp-{i:05d}.parquet"
        data = _parquet(part, row_group_size=_ROW_GROUP, statistics=True)
        blobs[name] = data
        files.append({"path": name, **_entry(data), "rows": part.height})
    shared = None
    if rules.global_events is not None:  # what every key reads: kept with the set
        events = store.scan(version=version)
        data = _parquet(events.filter(global_expr(rules, events.collect_schema())).collect())
        blobs["shared.parquet"] = data
        shared = {"path": "shared.parquet", **_entry(data)}
    manifest = {"key": list(rules.key_columns), "fingerprint": rules.fingerprint,
                "version": version, "head": head, "every": every,
                "checkpoints": [micros(t, param="every") for t in grid], "files": files,
                "shared": shared, "created": datetime.now(UTC).isoformat()}
    if key_copy:
        write_by_key(store, version, head)
    folder = _sets(store.store, rules)
    with _writing(folder):
        _publish(folder, f"v{version}", blobs, manifest)
    return load(folder.child(f"v{version}"))


def write_by_key(store: EventArchive, version: int, head: str | None) -> None:
    """Store the archive's events sorted by its key (log order within each key)."""
    folder = store.store.child(f"{ledger.PRIVATE_DIR}/{FOLDER}/{_BY_KEY}")
    with _writing(folder):
        _write_by_key(store, folder, version, head)


def _write_by_key(store: EventArchive, folder: Store, version: int, head: str | None) -> None:
    try:
        if json.loads(folder.read(f"v{version}/{_MANIFEST}")).get("head") == head:
            return  # already there for this archive state
    except (OSError, ValueError):
        pass
    name = "events.parquet"
    events = store.scan(version=version).sort(list(store.key), maintain_order=True)
    data: bytes | Path
    if folder.local:  # streamed to a file: flat memory
        data = folder.path("") / f".events-{uuid.uuid4().hex}{LEFTOVER}"
        data.parent.mkdir(parents=True, exist_ok=True)
        events.sink_parquet(data, compression="zstd", statistics=True,
                            row_group_size=_KEY_ROW_GROUP)
        entry: dict[str, object] = {"bytes": data.stat().st_size,
                                    "sha256": datafiles.sha256_file(data)}
    else:
        data = _parquet(events.collect(), compression="zstd", statistics=True,
                        row_group_size=_KEY_ROW_GROUP)
        entry = _entry(data)
    _publish(folder, f"v{version}", {name: data},
             {"version": version, "head": head, "key": list(store.key),
              "file": {"path": name, **entry}})


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
    appears at once (a set of the same name already there is moved aside
    first), and older sets go once it is there, each moved aside whole first;
    in an object store its files are put first and the manifest last, and an
    older set loses its manifest first (a set without its manifest is never
    read). So a reader of an older set that finds a file missing finds the
    set :attr:`~Snapshots.replaced`, never damaged. Every file is checked
    against the manifest's SHA-256 when read.
    """
    body = json.dumps(manifest, indent=1).encode()
    if folder.local:
        root = folder.path("")
        staging = root / f".{name}-{uuid.uuid4().hex}{LEFTOVER}"
        staging.mkdir(parents=True)
        try:
            for file, data in blobs.items():
                if isinstance(data, Path):
                    os.replace(data, staging / file)
                else:
                    (staging / file).write_bytes(data)
            (staging / _MANIFEST).write_bytes(body)
            for written in staging.iterdir():
                fsync(written)
            if (root / name).exists():  # the same set made before: aside, then gone
                os.replace(root / name, root / f".{name}-{uuid.uuid4().hex}.old{LEFTOVER}")
            os.replace(staging, root / name)
            fsync(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for old in root.iterdir():  # older (or equal) sets are never used again: moved
            if old.name != name and not old.name.startswith("."):  # aside whole, then gone
                os.replace(old, root / f".{old.name}-{uuid.uuid4().hex}.old{LEFTOVER}")
        clean_leftovers(root)
        return
    for stale in {r.split("/", 1)[0] for r in folder.list_files("")} - {name}:
        folder.delete(f"{stale}/{_MANIFEST}")  # first: a reader missing a file sees it replaced
        folder.delete_tree(stale)
    folder.delete(f"{name}/{_MANIFEST}")
    for file, data in blobs.items():
        folder.write(f"{name}/{file}", data.read_bytes() if isinstance(data, Path) else data)
    folder.write(f"{name}/{_MANIFEST}", body)


@contextmanager
def _writing(folder: Store) -> Iterator[None]:
    """Writers of ``folder`` take turns (an ``flock``, locally), clearing what killed ones left.

    A failure (a full disk) is a :class:`SnapshotError` and leaves what was there.
    """
    def busy(message: str) -> SnapshotError:
        return SnapshotError(f"another process keeps writing snapshots ({message})",
                             param="snapshots")

    here = folder.path("") if folder.local else None  # (the lock beside it, not in it)
    lock = (exclusive(here.parent / f".{here.name}.lock", error=busy) if here is not None
            else nullcontext())
    with lock:
        try:
            if folder.local:
                clean_leftovers(folder.path(""))
            yield
        except (OSError, pl.exceptions.PolarsError) as exc:
            if folder.local:
                clean_leftovers(folder.path(""))
            msg = f"cannot write snapshots under {folder.root}, nothing was changed: {exc}"
            raise SnapshotError(msg, param="snapshots") from exc


def load(path: Store) -> Snapshots:
    """The snapshot set whose manifest is in ``path``."""
    try:
        m = json.loads(path.read(_MANIFEST))
        key = m["key"]
        return Snapshots(path, (key,) if isinstance(key, str) else tuple(key), m["fingerprint"],
                         int(m["version"]), m["head"], m["every"],
                         tuple(int(c) for c in m["checkpoints"]), tuple(m["files"]),
                         m.get("shared"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"snapshot manifest {path.uri(_MANIFEST)} is unreadable ({exc})"
        raise SnapshotError(msg, param="snapshots") from None


def period_ends(history: pl.LazyFrame, every: str, *,
                max_checkpoints: int = MAX_CHECKPOINTS) -> list[datetime]:
    """The last microsecond of each ``every`` period from the first event to the last.

    More than ``max_checkpoints`` periods raise :class:`SnapshotError` before any
    is made (``every="1s"`` over a year would be 31 million).
    """
    if (problem := period_problem(every)) is not None:
        raise SnapshotError(problem, param="every")
    if not isinstance(max_checkpoints, int) or max_checkpoints < 1:
        msg = f"must be a positive number, not {max_checkpoints!r}"
        raise SnapshotError(msg, param="max_checkpoints")
    span = history.select(lo=pl.col("event_time").min(), hi=pl.col("event_time").max()).collect()
    lo, hi = span["lo"][0], span["hi"][0]
    if lo is None:
        return []
    first = pl.Series([lo], dtype=TIME_DTYPE).dt.truncate(every)[0]

    def refuse(count: int) -> SnapshotError:
        msg = (f"every={every!r} makes {count:,} checkpoints from {lo:%Y-%m-%d} to "
               f"{hi:%Y-%m-%d}, more than max_checkpoints={max_checkpoints:,}; choose a "
               "longer period")
        return SnapshotError(msg, param="every")

    # months and years taken at their shortest over-count by at most 11 %: a cheap bound
    # first, so that every="1s" is refused before 31 million instants are made
    bound = int((hi - first) / timedelta(microseconds=1) // cast("float", period_micros(every)))
    if bound + 1 > max_checkpoints * 1.2:
        raise refuse(bound + 1)
    try:
        starts = pl.datetime_range(first, hi, every, eager=True, time_zone="UTC")
        ends = (starts.dt.offset_by(every) - timedelta(microseconds=1)).to_list()
    except (pl.exceptions.PolarsError, OverflowError) as exc:
        msg = f"every={every!r}: {' '.join(str(exc).split())}"
        raise SnapshotError(msg, param="every") from None
    if len(ends) > max_checkpoints:
        raise refuse(len(ends))
    return ends
