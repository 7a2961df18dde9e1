"""The archive's commit log and its hash chain.

An eventkit archive is a Delta table whose every commit carries, in its
``commitInfo``, an ``eventkit`` record: the SHA-256 of each data file the
commit adds, the batch's ``seq`` range, and a digest chained to the previous
commit's digest. This module reads that log and checks it, through the
archive's :class:`~eventkit.archive.store.Store`; it never writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventkit.archive.digest import content_digest
from eventkit.archive.store import PRIVATE_DIR, Store, open_store
from eventkit.exceptions import ArchiveError, CorruptionError, ExpiredError
from eventkit.sources.files import DELTA_LOG

__all__ = [
    "ADD_KEYS",
    "GENESIS",
    "LOG_DIR",
    "PRIVATE_DIR",
    "REWRITE_KINDS",
    "Commit",
    "MAX_COMMIT_BYTES",
    "MAX_JSON_DEPTH",
    "actions_problem",
    "apply_record",
    "as_store",
    "chain_digest",
    "check_inside",
    "check_link",
    "commit_paths",
    "content_digest",
    "json_depth",
    "live_files",
    "log_path",
    "log_rel",
    "log_versions",
    "merged_entries",
    "parse_commit",
    "path_problem",
    "pending_files",
    "read_commit",
    "read_log",
    "table_problem",
]

LOG_DIR = DELTA_LOG
#: The digest a chain starts from.
GENESIS = "0" * 64
#: Record kinds that may remove data files (eventkit's own audited rewrites, see
#: :mod:`eventkit.archive.compaction`); any other commit that removes a file is tampering.
REWRITE_KINDS = ("compact", "expire")
#: A commit file larger than this is damage (or an attack), never read into memory: a
#: compaction of 100,000 files writes about 40 MB.
MAX_COMMIT_BYTES = 128 * 1024 * 1024
#: How deeply a commit's JSON may nest (eventkit writes 6 levels; ``meta`` is held to it).
MAX_JSON_DEPTH = 32


def as_store(root: Path | str | Store) -> Store:
    """``root`` as a :class:`~eventkit.archive.store.Store` (a path: the local folder)."""
    return root if isinstance(root, Store) else open_store(root)


def chain_digest(prev: str, record: dict[str, Any]) -> str:
    """Digest of a commit record (without its ``digest`` key) chained to ``prev``.

    Examples
    --------
    >>> d = chain_digest(GENESIS, {"kind": "create"})
    >>> len(d), d == chain_digest(GENESIS, {"kind": "create"})
    (64, True)

    """
    body = {k: v for k, v in record.items() if k != "digest"}
    text = prev + "\n" + json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Commit:
    """One parsed Delta commit: what it added or removed and eventkit's record of it."""

    version: int
    timestamp_ms: int | None
    adds: tuple[dict[str, Any], ...]
    removes: tuple[str, ...]
    metadata: dict[str, Any] | None  # the Delta metaData action, if the commit has one
    record: dict[str, Any] | None  # eventkit's commitInfo record, None if absent
    error: str | None = None  # why the commit file could not be read
    protocol: dict[str, Any] | None = None  # the Delta protocol action, if the commit has one
    others: tuple[str, ...] = ()  # the names of any other kind of action


def path_problem(rel: object) -> str | None:
    """Why ``rel``, a path a commit names, might lead outside the table folder; else None.

    A path is a plain relative one: no leading ``/``, no ``.`` or ``..`` part, no
    empty part, no backslash, no ``:`` (a URL or a drive), no ``%`` (Delta readers
    decode it), no control character. Links are checked where files are opened
    (:func:`check_inside`).

    Examples
    --------
    >>> path_problem("part-00000001-000-ab.parquet") is None
    True
    >>> path_problem("../outside.parquet")
    "'../outside.parquet' leaves the table folder"

    """
    if not isinstance(rel, str) or not rel:
        return f"{rel!r} is not a file path"
    if rel.startswith("/") or any(c in rel for c in "\\:%") or any(ord(c) < 32 for c in rel) \
            or any(part in ("", ".", "..") for part in rel.split("/")):
        return f"{rel!r} leaves the table folder"
    return None


def commit_paths(commit: Commit) -> list[object]:
    """Every path commit ``commit`` names: Delta adds and removes, and its record's files."""
    rec = commit.record or {}
    named: list[object] = [a.get("path") for a in commit.adds]
    named += list(commit.removes)
    named += [f.get("path") if isinstance(f, dict) else f for f in rec.get("files", [])]
    for group in rec.get("groups", []):
        named += [*group.get("removed", []), *group.get("files", [])]
    if isinstance(rec.get("states"), dict):
        named.append(rec["states"].get("path"))
    return named


def check_inside(root: Path | str | Store, rel: str) -> None:
    """Refuse a data file whose path, or a link on it, leads outside the table folder.

    The path must pass :func:`path_problem`; in a local archive, links that stay
    inside the table folder are followed (the folder itself may be a link), links
    that lead out are refused. Raises :class:`~eventkit.exceptions.CorruptionError`
    naming the file.
    """
    store = as_store(root)
    if (problem := path_problem(rel)) is not None:
        msg = (f"{store.root}: a data file path {problem}; the archive was changed behind "
               "eventkit's back")
        raise CorruptionError(msg, path=store.root, file=str(rel))
    if not store.local:
        return  # object stores have no links
    path, top = store.path(rel), store.path("")
    try:
        linked = "/" in rel or stat.S_ISLNK(path.lstat().st_mode)
    except OSError:
        return  # missing: reported where it is opened
    if linked and not os.path.realpath(path).startswith(os.path.realpath(top) + os.sep):
        msg = (f"{store.root}: data file {rel} is a link to {os.path.realpath(path)}, outside "
               "the table folder; the archive was changed behind eventkit's back")
        raise CorruptionError(msg, path=store.root, file=str(path))


def log_rel(version: int) -> str:
    """The name of the JSON file of commit ``version``, inside the archive."""
    return f"{LOG_DIR}/{version:020d}.json"


def log_path(root: Path | str | Store, version: int) -> Path:
    """Local path of the JSON file of commit ``version`` (a local archive only)."""
    return as_store(root).path(log_rel(version))


def json_depth(value: object, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply a parsed JSON value nests lists and objects (counting stops past ``limit``).

    Examples
    --------
    >>> json_depth({"a": [1, {"b": "]]}"}]}), json_depth("x")
    (3, 0)

    """
    depth, level = 0, [value]
    while depth <= limit:
        containers = [x for x in level if isinstance(x, dict | list)]
        if not containers:
            return depth
        depth += 1
        level = [v for x in containers for v in (x.values() if isinstance(x, dict) else x)]
    return depth


def parse_commit(version: int, data: bytes) -> Commit:
    """Parse the bytes of commit ``version``; a damaged file gives a Commit with ``error`` set.

    JSON nested too deeply to parse, or a record nested deeper than
    :data:`MAX_JSON_DEPTH`, is damage, never a ``RecursionError``.
    """
    def damaged(error: str) -> Commit:
        return Commit(version, None, (), (), metadata=None, record=None, error=error)

    try:
        actions = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return damaged(f"{type(exc).__name__}: {exc}")


    adds: list[dict[str, Any]] = []
    removes: list[str] = []
    info: dict[str, Any] = {}
    meta = protocol = None
    others: list[str] = []
    for action in actions:
        if not isinstance(action, dict) or any(
                k in action and not (isinstance(action[k], dict)
                                     and isinstance(action[k].get("path"), str))
                for k in ("add", "remove")):
            return Commit(version, None, (), (), metadata=None, record=None,
                          error=f"malformed action {str(action)[:200]}")
        if "add" in action:
            adds.append(action["add"])
        elif "remove" in action:
            removes.append(action["remove"]["path"])
        elif "commitInfo" in action and isinstance(action["commitInfo"], dict):
            info = action["commitInfo"]
        elif "metaData" in action:
            meta = action["metaData"]
        elif "protocol" in action:
            protocol = action["protocol"]
        others.extend(str(k)[:40] for k in action if k not in _KNOWN)
    record = None
    if isinstance(info.get("eventkit"), str):
        try:
            record = json.loads(info["eventkit"])
        except (json.JSONDecodeError, RecursionError):
            return damaged("its eventkit record is not JSON, or nests too deeply to read")
        if not isinstance(record, dict):
            record = None
        elif json_depth(record) > MAX_JSON_DEPTH:
            return damaged(f"its eventkit record nests deeper than {MAX_JSON_DEPTH} levels")
    return Commit(version, info.get("timestamp"), tuple(adds), tuple(removes),
                  metadata=meta, record=record, protocol=protocol, others=tuple(others))


def read_commit(root: Path | str | Store, version: int) -> Commit:
    """Read and parse commit ``version``; a missing or damaged file gives ``error``.

    A file over :data:`MAX_COMMIT_BYTES` is damage, never read into memory.
    """
    store = as_store(root)
    try:
        st = store.stat(log_rel(version))
        if st is not None and st.size > MAX_COMMIT_BYTES:
            return Commit(version, None, (), (), metadata=None, record=None, error=(
                f"{st.size:,} bytes, over the {MAX_COMMIT_BYTES:,} a commit may have"))
        data = store.read(log_rel(version))
    except OSError as exc:
        return Commit(version, None, (), (), metadata=None, record=None,
                      error=f"{type(exc).__name__}: {exc}")
    return parse_commit(version, data)


def log_versions(root: Path | str | Store) -> list[int]:
    """Versions that have a JSON commit file, ascending (one listing of the log)."""
    store = as_store(root)
    out = []
    for rel in store.list_files(f"{LOG_DIR}/"):
        stem, _, ext = rel.rpartition("/")[2].partition(".")
        if ext == "json" and stem.isdigit():
            out.append(int(stem))
    return sorted(out)


def read_log(root: Path | str | Store) -> list[Commit]:
    """Every commit of the table, in version order."""
    store = as_store(root)
    return [read_commit(store, v) for v in log_versions(store)]


def check_link(store: Store, version: int, commit: Commit | None, prev: str,
               entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check commit ``version`` as the next link after digest ``prev``; the live entries after it.

    The commit exists and parses, carries eventkit's record, chains to ``prev``
    and recomputes its own digest, removes nothing (but what an audited
    rewrite's record names, see :func:`apply_record`), changes no metadata
    after creation (but an evolve commit, to what its record pins), and adds
    exactly the files its record lists. ``entries`` (the live entries before
    it) may be extended in place. The first failure
    raises :class:`~eventkit.exceptions.CorruptionError` naming the commit file.
    """
    rel = log_rel(version)

    def fail(problem: str) -> CorruptionError:
        msg = (f"{store.root}: commit {version} ({rel}) {problem}; the archive was "
               "damaged or changed behind eventkit's back (run eventkit verify)")
        return CorruptionError(msg, path=store.root, file=store.uri(rel))

    if commit is None:
        raise fail("is missing")
    if commit.error is not None:
        raise fail(f"is unreadable ({commit.error})")
    rec = commit.record
    if rec is None:
        raise fail("was not written by eventkit (no eventkit record)")
    for named in commit_paths(commit):
        if (problem := path_problem(named)) is not None:
            raise fail(f"names a file path {problem}")
    if rec.get("prev") != prev:
        raise fail("does not chain to the commit before it")
    if chain_digest(prev, rec) != rec.get("digest"):
        raise fail("was altered (its digest does not recompute)")
    if version > 0 and commit.metadata is not None and table_problem(commit, rec, evolve=True):
        raise fail("changes the table's metadata or properties")
    listed = rec.get("files", [])
    added = [str(a.get("path")) for a in commit.adds]  # JSON values, as listed
    if sorted(added) != sorted(str(f.get("path")) for f in listed):
        raise fail("adds other files than its record lists")
    entries, problem = apply_record(entries, rec, commit.removes)
    if problem:
        raise fail(problem)
    return entries


def live_files(
    root: Path | str | Store, commits: list[Commit] | None = None, *, version: int | None = None
) -> list[dict[str, Any]]:
    """The record entries (path, sha256, bytes, rows) of the data files live at ``version``.

    The whole log up to ``version`` (default: the latest) is read and every
    commit checked by :func:`check_link` (the first failure raises
    :class:`~eventkit.exceptions.CorruptionError` naming the commit file). Data
    files are not opened here: see :func:`eventkit.archive.datafiles.check_data_file`. Readers use
    :func:`eventkit.archive.head.log_state`, which starts from the latest
    checkpoint instead of the first commit.
    """
    store = as_store(root)
    commits = read_log(store) if commits is None else commits
    if not commits:
        msg = f"{store.root}: the commit log is empty"
        raise CorruptionError(msg, path=store.root, file=store.uri(LOG_DIR))
    latest = commits[-1].version
    if version is not None and not 0 <= version <= latest:
        msg = f"{store.root} has no version {version} (versions 0..{latest})"
        raise ArchiveError(msg, path=store.root)
    upto = latest if version is None else version
    by_version = {c.version: c for c in commits}
    prev = GENESIS
    entries: list[dict[str, Any]] = []
    for v in range(upto + 1):
        entries = check_link(store, v, by_version.get(v), prev, entries)
        prev = (by_version[v].record or {})["digest"]
    return entries


def table_problem(commit: Commit, rec: dict[str, Any], *, evolve: bool = False) -> str | None:
    """How a commit's Delta table definition differs from the one its record pins (None: same).

    The genesis commit defines the table; after it, only an ``evolve`` commit
    (``evolve=True`` asks whether this is one) may change it, to what its
    record says (columns added, see :mod:`eventkit.archive.declared`).
    """
    if evolve and rec.get("kind") != "evolve":
        return "changes the table's metadata or properties"
    meta = commit.metadata or {}
    expected = rec.get("table", {})
    try:
        fields = [[f["name"], f["type"]] for f in json.loads(meta.get("schemaString", "{}"))
                  .get("fields", [])]
    except (json.JSONDecodeError, TypeError, KeyError):
        fields = None
    found = {"configuration": meta.get("configuration"),
             "partitionColumns": meta.get("partitionColumns"), "fields": fields}
    for key, value in found.items():
        if value != expected.get(key):
            return (f"table {key} differ from the archive's record ({value!r} instead of "
                    f"{expected.get(key)!r})")
    return None


#: The kinds of Delta action eventkit writes.
_KNOWN = frozenset({"add", "remove", "commitInfo", "metaData", "protocol"})
#: The keys of the add actions eventkit writes; any other (a deletion vector, tags, row
#: ids) is allowed only empty.
ADD_KEYS = frozenset({"path", "partitionValues", "size", "modificationTime", "dataChange",
                      "stats"})


def actions_problem(commit: Commit, rec: dict[str, Any]) -> str | None:
    """What a commit's Delta actions carry beyond what eventkit writes for ``rec`` (None: none).

    The hash chain covers eventkit's record, not the Delta actions beside it,
    and Delta readers (Polars, Spark) follow those: a protocol asking readers
    for features, a deletion vector on an add (rows those readers then skip),
    an add marked as no change of data, or any other kind of action would
    change what they read while every record still verifies. The genesis
    commit's protocol needs no reader feature; no later commit has one.

    Examples
    --------
    >>> add = {"path": "p", "size": 1, "dataChange": True, "deletionVector": {"cardinality": 2}}
    >>> actions_problem(Commit(3, None, (add,), (), None, None), {"kind": "append"})
    'the add action of file p carries deletionVector, which eventkit never writes'

    """
    if commit.others:
        return f"has Delta action(s) eventkit never writes: {sorted(set(commit.others))}"
    protocol = commit.protocol
    if protocol is not None and (commit.version != 0 or protocol.get("minReaderVersion") != 1
                                 or protocol.get("readerFeatures")):
        return (f"sets the table's protocol to {json.dumps(protocol)[:200]} (eventkit's needs "
                "no reader feature, set once in commit 0)")
    change = rec.get("kind") != "compact"  # a compaction's files hold no new data
    for add in commit.adds:
        extra = sorted(k for k in set(add) - ADD_KEYS if add[k] not in (None, {}, []))
        if extra:
            return (f"the add action of file {add['path']} carries {', '.join(extra)}, which "
                    "eventkit never writes")
        if add.get("dataChange") is not change:
            return (f"the add action of file {add['path']} has dataChange "
                    f"{json.dumps(add.get('dataChange'))}, not {json.dumps(change)}")
    return None


def apply_record(
    entries: list[dict[str, Any]], record: dict[str, Any], removes: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], str | None]:
    """The live file entries after a commit with ``record`` (and Delta ``removes``).

    An append adds its files at the end (``entries`` is extended in place: a
    log is applied in linear time). An audited rewrite (``compact`` or
    ``expire``, see :mod:`eventkit.archive.compaction`) replaces runs of
    consecutive live files (its ``groups``) by new files in their place, so the
    files stay in log order; its Delta ``removes`` must be exactly the files its
    groups name. Any other removal is tampering. Returns the new entries and
    the problem found (``None`` when there is none; the entries are then unchanged).

    Examples
    --------
    >>> live = [{"path": "a"}, {"path": "b"}, {"path": "c"}]
    >>> merged = {"kind": "compact", "files": [{"path": "ab"}],
    ...           "groups": [{"removed": ["a", "b"], "files": ["ab"]}]}
    >>> [e["path"] for e in apply_record(live, merged, ("a", "b"))[0]]
    ['ab', 'c']
    >>> apply_record(live, {"kind": "append", "files": []}, ("c",))[1]
    "removes ['c'] from an append-only archive"

    """
    if record.get("kind") not in REWRITE_KINDS:
        if removes:
            return entries, f"removes {list(removes)} from an append-only archive"
        entries.extend(record.get("files", []))
        return entries, None
    groups = record.get("groups", [])
    named = [p for g in groups for p in g.get("removed", [])]
    if sorted(removes) != sorted(named):
        return entries, (f"removes {sorted(removes)} but its {record.get('kind')} record names "
                         f"{sorted(named)}")
    new = {f.get("path"): f for f in record.get("files", [])}
    if sorted(new) != sorted(p for g in groups for p in g.get("files", [])):
        return entries, "lists other new files than its groups"
    out = list(entries)
    for group in groups:
        gone = group.get("removed", [])
        paths = [e["path"] for e in out]
        start = paths.index(gone[0]) if gone and gone[0] in paths else -1
        if start < 0 or paths[start:start + len(gone)] != gone:
            return entries, (f"rewrites files {gone} that are not consecutive live files of "
                             "the archive")
        out[start:start + len(gone)] = [new[p] for p in group.get("files", [])]
    return out, None


def merged_entries(
    root: Path | str | Store, version: int, entries: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int | None]:
    """Where the rows of ``version`` live after later compactions deleted its files.

    Returns the live files of the first later version whose files are all
    there, and the last ``seq`` of ``version`` (its rows are those up to it:
    appends only add later ``seq``, compactions keep rows). Raises
    :class:`~eventkit.exceptions.ExpiredError` when an expiry rewrote them
    since; returns ``entries`` unchanged (``None``) when nothing replaced them.
    """
    store = as_store(root)
    commits = read_log(store)
    last_seq = (commits[version].record or {}).get("seq", [-1, -1])[1]
    for commit in commits[version + 1:]:
        rec = commit.record or {}
        if rec.get("kind") == "expire":
            msg = (f"{store.root}: version {version} cannot be read: it was expired by version "
                   f"{commit.version} (events before {rec.get('cutoff')} were replaced by "
                   "opening states)")
            raise ExpiredError(msg, path=store.root, cutoff=rec.get("cutoff"))
        if rec.get("kind") == "compact":
            later = live_files(store, commits, version=commit.version)
            if all(store.exists(e["path"]) for e in later):
                return later, last_seq
    return entries, None


def pending_files(root: Path | str | Store) -> set[str]:
    """Data files named by intents of appends that have not finished (yet)."""
    store = as_store(root)
    folder = f"{PRIVATE_DIR}/pending/"
    return {rel.rpartition("/")[2].removesuffix(".intent") for rel in store.list_files(folder)
            if rel.endswith(".intent")}
