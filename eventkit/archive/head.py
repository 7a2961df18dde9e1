"""The verified head: an archive's log state without reading the whole log.

:func:`log_state` returns what readers and writers need from the commit log
(the live data files, the last record, stored batch ids, the latest ``meta``
values, the row count, the expiries) at the latest version or any earlier one,
checked link by link as :func:`eventkit.archive.ledger.check_link` checks.

It never reads the whole log:

* **Checkpoints in the chain.** Every so often an append first writes the log
  state it has checked (a JSON file under ``_eventkit/checkpoints/``) and names
  it, with its SHA-256 and size, in its own record: the hash chain covers it.
  A process that knows nothing starts from the newest commit that names a
  checkpoint (found by reading commits backwards from the latest: at most
  about :func:`checkpoint_every` of them), checks the checkpoint's hash and
  that the commit after it chains to the checkpoint's digest, then applies the
  commits after it.
* **A verified head per process.** The state at the latest version is kept
  per archive, with the stat (size and change tag) of the newest commit files
  it applied (at most :data:`RECHECKED` of them, since the checkpoint it grew
  from). The next call re-checks those stats (a few ``stat`` calls, or one
  short listing in an object store) and applies only the new commits. A commit
  among them changed, removed or rolled back since (e.g. the archive restored
  from an older copy) makes the process start over from a checkpoint.

So an append or a read costs the same with 10 commits as with 100,000; only
:func:`eventkit.archive.verify.verify_log` reads everything (or everything
after a head verified before, ``since=``). Older commits (those before the
newest checkpoint, trusted through it, and those this process checked once,
more than :data:`RECHECKED` commits back) are not re-read by reads: damage to
them later (which plain Delta readers would see) is found by ``verify``, while
this process keeps answering from what it checked.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from eventkit.archive import ledger
from eventkit.archive.store import Stat, Store
from eventkit.exceptions import ArchiveError, CorruptionError, ParameterError

__all__ = ["CHECKPOINT_DIR", "LogState", "check_version", "checkpoint_due", "checkpoint_every",
           "find_digest", "forget", "latest", "log_state", "write_checkpoint"]

#: Folder of the checkpoints, inside the archive's private folder.
CHECKPOINT_DIR = f"{ledger.PRIVATE_DIR}/checkpoints"
#: At least this many commits between two checkpoints.
MIN_INTERVAL = 100
#: ... and at least one per this many live data files (a checkpoint's size grows with them,
#: so its cost per commit stays constant).
FILES_PER_INTERVAL = 100
#: Commits (the newest applied since the checkpoint) whose files each call re-checks: a
#: rollback (an older copy of the archive put back) or a replaced head changes the newest.
RECHECKED = 10
_FORMAT = 1
#: The latest state of each archive this process has checked, by the store's root.
_HEADS: dict[str, LogState] = {}
_LOCK = threading.RLock()
_T = TypeVar("_T")


@dataclass
class LogState:
    """The checked state of an archive's log after commit ``version``.

    ``live``: record entries of the live data files, in log order; ``record``:
    the last commit's record (``seq``, ``recorded_until``, ``digest``);
    ``batches``: batch id → ``[version, rows, seq_start, seq_end, digest]``;
    ``meta``: the newest value of each ``meta`` key; ``rows``: events stored by
    appends (rows minus none: rewrites keep rows); ``expiries``: every expiry
    record; ``checkpoint``: the version of the newest checkpoint named in the
    chain (-1: none yet); ``stats``: the stat of each commit file applied on
    top of the checkpoint this state grew from, the newest :data:`RECHECKED`
    of them (for the cheap re-check);
    ``evolutions``: what each ``evolve`` commit added to the archive's schema
    (see :mod:`eventkit.archive.declared`), in order.
    """

    version: int
    digest: str
    record: dict[str, Any]
    live: list[dict[str, Any]] = field(default_factory=list)
    batches: dict[str, list[Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    expiries: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: int = -1
    base: int = -1
    #: live entries at ``base`` (those after them were added by the commits re-checked)
    base_files: int = 0
    stats: dict[int, Stat | None] = field(default_factory=dict)
    evolutions: list[dict[str, Any]] = field(default_factory=list)

    def copy(self) -> LogState:
        """An independent copy (the lists and maps are copied, their entries shared).

        ``batches`` is shared, not copied (one entry per append ever: copying it was an
        append's cost growing with the log): it is only ever added to, under ``_LOCK``,
        and an entry added later answers "was batch b appended?" the same for any copy.
        """
        return replace(self, live=list(self.live), meta=dict(self.meta),
                       expiries=list(self.expiries), stats=dict(self.stats),
                       evolutions=list(self.evolutions))

    def apply(self, store: Store, commit: ledger.Commit | None, stat: Stat | None) -> None:
        """Check ``commit`` as the next link (see ``check_link``) and apply it in place."""
        version = self.version + 1
        before = len(self.live)
        self.live = ledger.check_link(store, version, commit, self.digest, self.live)
        assert commit is not None and commit.record is not None  # check_link raised else
        self.absorb(version, commit.record)
        self.stats[version] = stat
        if len(self.stats) > RECHECKED:  # (in version order: the oldest goes)
            del self.stats[next(iter(self.stats))]
        if self.checkpoint > self.base:  # commits up to it are summed up in it
            self.base = self.checkpoint
            self.base_files = before if self.checkpoint == version - 1 else 0
            self.stats = {v: st for v, st in self.stats.items() if v > self.base}

    def absorb(self, version: int, rec: dict[str, Any]) -> None:
        """Take in the record of commit ``version`` (``live`` already includes its files)."""
        self.version, self.digest, self.record = version, rec.get("digest", ""), rec
        if rec.get("kind") == "append":
            self.rows += int(rec.get("rows", 0))
            if rec.get("batch_id") is not None:
                self.batches.setdefault(rec["batch_id"], [
                    version, rec.get("rows"), *rec.get("seq", [None, None]), rec.get("digest")])
        if rec.get("kind") == "evolve":
            self.evolutions.append({k: rec.get(k) for k in
                                    ("added", "money", "metadata", "schema_version")})
        if rec.get("kind") == "expire":
            self.expiries.append({k: rec.get(k) for k in
                                  ("cutoff", "known_from", "states", "rules")})
        self.meta.update(rec.get("meta") or {})
        if rec.get("checkpoint"):
            self.checkpoint = int(rec["checkpoint"].get("version", -1))

    def to_json(self) -> bytes:
        """The checkpoint file's content (canonical JSON: equal states give equal bytes)."""
        body = {"format": _FORMAT, "version": self.version, "digest": self.digest,
                "record": self.record, "live": self.live, "batches": self.batches,
                "meta": self.meta, "rows": self.rows, "expiries": self.expiries,
                "checkpoint": self.checkpoint, "evolutions": self.evolutions}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def checkpoint_every(state: LogState) -> int:
    """Commits between checkpoints: :data:`MIN_INTERVAL`, or more for many live files."""
    return max(MIN_INTERVAL, len(state.live) // FILES_PER_INTERVAL)


def checkpoint_due(state: LogState) -> bool:
    """Whether the next commit after ``state`` should name a checkpoint of it."""
    return state.version - max(state.checkpoint, 0) >= checkpoint_every(state)


def write_checkpoint(store: Store, state: LogState) -> dict[str, Any]:
    """Store ``state`` as a checkpoint; the entry the next commit's record names it by.

    The file's name holds the version; writers racing for the same version
    write the same bytes (the state is canonical JSON), so either copy is right.
    """
    data = state.to_json()
    rel = f"{CHECKPOINT_DIR}/{state.version:020d}.json"
    store.write(rel, data)
    return {"version": state.version, "path": rel, "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data)}


def forget(store: Store | None = None) -> None:
    """Drop this process's verified head of ``store`` (of every archive when None)."""
    if store is None:
        _HEADS.clear()
    else:
        _HEADS.pop(store.root, None)


def log_state(store: Store, *, version: int | None = None) -> LogState:
    """The checked log state at ``version`` (default: the latest); see the module docstring.

    Raises :class:`~eventkit.exceptions.CorruptionError` naming the first bad
    commit or checkpoint after the checkpoint it starts from, and
    :class:`~eventkit.exceptions.ArchiveError` for a version the log does not have.
    The returned state is the caller's to change.
    """
    if version is None:
        with _LOCK:
            return _latest_locked(store).copy()
    check_version(version, "version")
    with _LOCK:
        cached = _HEADS.get(store.root)
        if cached is not None and version == cached.version and _unchanged(store, cached):
            return cached.copy()
    latest = _latest_version(store)  # an earlier version reads even when later ones are bad
    if not 0 <= version <= latest:
        msg = f"{store.root} has no version {version} (versions 0..{latest})"
        raise ArchiveError(msg, path=store.root)
    read: dict[int, ledger.Commit] = {}
    state = _from_checkpoint(store, version, read)
    _forward(store, state, version, read)
    return state


def latest(store: Store, read: Callable[[LogState], _T]) -> _T:
    """What ``read`` takes from the checked latest state, without a copy of it.

    For a value or two (the version, the head digest, a ``meta`` entry): a copy
    of the state costs time in proportion to its live files. ``read`` runs
    under the lock that guards the cached state and must not change it.

    >>> import tempfile, eventkit
    >>> archive = eventkit.EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> latest(archive.store, lambda state: state.version)
    0
    """
    with _LOCK:
        return read(_latest_locked(store))


def find_digest(store: Store, digest: str) -> int | None:
    """The version whose record has head ``digest``, reading commits back from the latest.

    Costs one read per commit after it (None when no commit has it).
    """
    with _LOCK:
        latest = _latest_locked(store).version
    for v in range(latest, -1, -1):
        rec = ledger.read_commit(store, v).record or {}
        if rec.get("digest") == digest:
            return v
    return None


def _latest_locked(store: Store) -> LogState:
    """The cached head of ``store``, brought up to date (hold ``_LOCK``: threads share it)."""
    cached = _HEADS.get(store.root)
    if cached is not None and _unchanged(store, cached):
        _forward(store, cached, None, {})
    else:
        latest = _latest_version(store)
        read: dict[int, ledger.Commit] = {}
        cached = _from_checkpoint(store, latest, read)
        _forward(store, cached, latest, read)
    _HEADS[store.root] = cached
    return cached


def check_version(value: object, param: str) -> None:
    """Refuse a ``value`` that is not a whole number (a version, ``True`` or ``"3"`` is not).

    Examples
    --------
    >>> check_version(3, "version")
    >>> check_version("3", "version")
    Traceback (most recent call last):
    eventkit.ParameterError: version: must be a whole number, not '3'

    """
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"must be a whole number, not {value!r}"
        raise ParameterError(msg, param=param)


def _unchanged(store: Store, state: LogState) -> bool:
    """Whether the commit files whose stats the cached state keeps still have them."""
    if store.local:
        return all(store.stat(ledger.log_rel(v)) == st for v, st in state.stats.items())
    found = dict(_listing(store, min(state.stats, default=state.version + 1) - 1))
    return all(found.get(v) == st for v, st in state.stats.items())


def _listing(store: Store, after: int) -> list[tuple[int, Stat]]:
    """Commit versions after ``after`` with their stats: one listing of an object store."""
    start = ledger.log_rel(after) if after >= 0 else None
    out = []
    for rel, st in store.listing(f"{ledger.LOG_DIR}/", after=start):
        stem, _, ext = rel.rpartition("/")[2].partition(".")
        if ext == "json" and stem.isdigit():
            out.append((int(stem), st))
    return sorted(out)


def _forward(store: Store, state: LogState, upto: int | None,
             read: dict[int, ledger.Commit]) -> None:
    """Apply the commits after ``state.version``.

    Up to ``upto`` (each must be there), or as long as the next one exists;
    ``read`` holds commits read already.
    """
    def commit(v: int) -> ledger.Commit:
        return read[v] if v in read else ledger.read_commit(store, v)

    if not store.local:
        for v, st in _listing(store, state.version):
            if upto is not None and v > upto:
                break
            while v > state.version + 1:
                state.apply(store, None, None)  # a gap: raises, naming the missing commit
            state.apply(store, commit(v), st)
        if upto is not None and state.version < upto:
            state.apply(store, None, None)
        return
    while upto is None or state.version < upto:
        found = store.stat(ledger.log_rel(state.version + 1))
        if found is None:
            if upto is not None:
                state.apply(store, None, None)  # raises: the commit is missing
            return
        state.apply(store, commit(state.version + 1), found)


def _latest_version(store: Store) -> int:
    versions = ledger.log_versions(store)
    if not versions:
        msg = f"{store.root}: the commit log is empty"
        raise CorruptionError(msg, path=store.root, file=store.uri(ledger.LOG_DIR))
    return versions[-1]


def _from_checkpoint(store: Store, version: int, read: dict[int, ledger.Commit]) -> LogState:
    """The state at the newest checkpoint at or before ``version`` (or before commit 0).

    Commits are read back from ``version`` (into ``read``) until one names a
    checkpoint; the checkpoint file must have the SHA-256 and size the chain
    records for it.
    """
    for v in range(version, 0, -1):
        read[v] = ledger.read_commit(store, v)
        named = (read[v].record or {}).get("checkpoint")
        if not named:
            continue
        where = store.uri(named.get("path", ""))
        try:
            data = store.read(named["path"])
        except (OSError, KeyError) as exc:
            msg = (f"{store.root}: checkpoint {named.get('path')} named by commit {v} is "
                   f"missing or unreadable ({exc}); run eventkit verify")
            raise CorruptionError(msg, path=store.root, file=where) from None
        if len(data) != named.get("bytes") or \
                hashlib.sha256(data).hexdigest() != named.get("sha256"):
            msg = (f"{store.root}: checkpoint {named['path']} is damaged or was changed: it "
                   f"differs from the SHA-256 commit {v} records for it")
            raise CorruptionError(msg, path=store.root, file=where)
        body = json.loads(data)
        state = LogState(int(body["version"]), body["digest"], body["record"], body["live"],
                         body["batches"], body["meta"], int(body["rows"]), body["expiries"],
                         int(body["checkpoint"]), evolutions=body.get("evolutions", []))
        state.base, state.base_files = state.version, len(state.live)
        return state
    return LogState(-1, ledger.GENESIS, {})
