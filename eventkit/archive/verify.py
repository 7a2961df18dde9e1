"""Verify an archive: recompute the hash chain and every data file's SHA-256."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eventkit.archive.datafiles import remember_verified, sha256_of
from eventkit.archive.digest import in_log_order
from eventkit.archive.head import LogState, find_digest, log_state
from eventkit.archive.ledger import (
    GENESIS,
    LOG_DIR,
    PRIVATE_DIR,
    REWRITE_KINDS,
    Commit,
    actions_problem,
    apply_record,
    as_store,
    chain_digest,
    check_inside,
    commit_paths,
    content_digest,
    log_rel,
    log_versions,
    path_problem,
    pending_files,
    read_commit,
    table_problem,
)
from eventkit.archive.store import Store
from eventkit.exceptions import CorruptionError

__all__ = ["VerifyReport", "verify_log"]


@dataclass
class VerifyReport:
    """What :meth:`EventArchive.verify` found.

    ``problems`` is empty when the archive is intact; otherwise its first entry
    names the first bad link (commit version and file).
    """

    path: str
    version: int = -1
    head: str = GENESIS
    files_checked: int = 0
    bytes_checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def __str__(self) -> str:
        status = "OK" if self.ok else f"FAILED ({len(self.problems)} problem(s))"
        lines = [
            f"archive {self.path}: {status}",
            f"  version {self.version}, {self.files_checked} data files, "
            f"{self.bytes_checked:,} bytes hashed",
            f"  head {self.head}",
        ]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def verify_log(
    root: Path | str | Store,
    *,
    expect: str | None = None,
    on_bytes: Callable[[int], object] | None = None,
    since: str | None = None,
) -> VerifyReport:
    """Recompute the hash chain and every data file's SHA-256.

    Checks, per commit in order: the commit file exists and parses; it carries
    eventkit's record; the record chains to the previous digest and its own
    digest recomputes; it adds exactly the files the record lists and removes
    none, unless it is an audited rewrite (compaction or expiry) whose record
    names exactly what it replaces; it does not change the table's metadata
    (after creation); a checkpoint it names has the recorded hash and holds the
    log state the commits before it give. Every listed file exists with the
    recorded hash (files a rewrite replaced may be gone); the rows of a
    rewrite's new files hash to its content digest (and, for a compaction, so do
    the old files when still there); no other data file lies in the table.
    ``expect``, a head digest saved elsewhere, catches a chain that was
    rewritten consistently from the start. Linear in the log and the data.

    ``since``, a head digest verified before (``report.head`` of an earlier
    run), checks only what came after it: the commits after the one with that
    head (found by reading back from the latest), their files and the files
    added since; the state at it is taken from its checkpoint. Time is
    proportional to what came after.
    """
    store = as_store(root)
    report = VerifyReport(path=store.root)
    live: list[dict[str, Any]] = []
    first, prev = 0, GENESIS
    if since is not None:
        found = find_digest(store, since)
        if found is None:
            report.problems.append(f"no commit has the head digest {since} given as --since "
                                   "(the chain was rewritten, or it is another archive's)")
            return report
        try:
            start = log_state(store, version=found)
        except CorruptionError as exc:
            report.problems.append(str(exc))
            return report
        first, prev, live = found + 1, since, start.live
        report.version = found
    versions = [v for v in log_versions(store) if v >= first]
    if not versions and since is None:
        report.problems.append("no commits: not an archive")
        return report
    upto = versions[-1] if versions else first - 1
    for missing in sorted(set(range(first, upto + 1)) - set(versions)):
        report.problems.append(f"commit {missing}: file {log_rel(missing)} is missing")
    referenced: set[str] = set()
    digests: dict[str, int] = {since: first - 1} if since is not None else {}
    commits = [read_commit(store, v) for v in versions]
    rewritten = {p for c in commits if c.record and c.record.get("kind") in REWRITE_KINDS
                 for g in c.record.get("groups", []) for p in g.get("removed", [])}
    merged_away = 0
    checker = _Checkpoints(store, live, prev, first - 1)
    for commit in commits:
        report.version = commit.version
        where = f"commit {commit.version}"
        if commit.error is not None:
            report.problems.append(f"{where}: unreadable commit file "
                                   f"{log_rel(commit.version)} ({commit.error})")
            continue
        rec = commit.record
        if rec is None:
            report.problems.append(f"{where}: not written by eventkit (no eventkit record)")
            continue
        if rec.get("prev") != prev:
            report.problems.append(f"{where}: chain broken (prev digest does not match commit "
                                   f"{commit.version - 1})")
        if chain_digest(rec.get("prev", ""), rec) != rec.get("digest"):
            report.problems.append(f"{where}: record altered (digest does not recompute)")
        if rec.get("checkpoint"):
            report.problems += [f"{where}: {p}" for p in checker.check(rec["checkpoint"])]
        prev = rec.get("digest", "")
        digests.setdefault(prev, commit.version)
        unsafe = {str(rel) for rel in commit_paths(commit) if path_problem(rel) is not None}
        for rel in sorted(unsafe):
            report.problems.append(f"{where}: names a file path {path_problem(rel)} (never "
                                   "opened)")
        if unsafe:
            continue
        live, problem = apply_record(live, rec, commit.removes)
        if problem:
            report.problems.append(f"{where}: {problem}")
        checker.advance(commit, live)
        if commit.version == 0 or commit.metadata is not None:
            problem = table_problem(commit, rec, evolve=commit.version > 0)
            if problem:
                report.problems.append(f"{where}: {problem}")
        foreign = actions_problem(commit, rec)
        if foreign:
            report.problems.append(f"{where}: {foreign}")
        listed = {f["path"]: f for f in rec.get("files", [])}
        added = {a["path"]: a for a in commit.adds}
        for extra in sorted(set(added) - set(listed)):
            report.problems.append(f"{where}: adds file {extra} that its record does not list")
        for gone in sorted(set(listed) - set(added)):
            report.problems.append(f"{where}: record lists file {gone} that the commit "
                                   "does not add")
        for rel in sorted(set(added) & set(listed)):
            action, entry = added[rel], listed[rel]
            if (action.get("size"), action.get("stats"), action.get("partitionValues") or {}) \
                    != (entry.get("bytes"), entry.get("stats"), {}):
                report.problems.append(f"{where}: the add action of file {rel} was edited "
                                       "(size, statistics or partition values differ from "
                                       "the record)")
        for rel, entry in listed.items():
            referenced.add(rel)
            if rel in rewritten and not store.exists(rel):
                merged_away += 1  # replaced by a later audited rewrite, then deleted
                continue
            _check_file(store, rel, entry, where, report, on_bytes)
        if rec.get("kind") in REWRITE_KINDS and not problem:
            _check_rewrite(store, rec, where, report)
    report.head = prev
    if merged_away:
        report.notes.append(f"{merged_away} data file(s) replaced by audited compactions or "
                            "expiries are no longer on disk (their records remain in the chain)")
    if since is not None:
        report.notes.append(f"verified from the head {since} on (version {first - 1}): "
                            f"{len(commits)} later commit(s)")
    for rel in _stray_files(store, referenced, first if since is not None else None):
        report.problems.append(f"file {rel} is not part of any commit (added behind the "
                               "archive's back)")
    if expect is not None and expect != report.head:
        if expect in digests:
            later = report.version - digests[expect]
            report.problems.append(
                f"head digest {report.head} differs from the expected {expect}: that was the "
                f"head at commit {digests[expect]}, {later} commit(s) were appended since "
                "(check that they are yours, then save the new head)")
        else:
            report.problems.append(
                f"head digest {report.head} differs from the expected {expect} (the chain was "
                "rewritten or the archive rolled back)")
    return report


class _Checkpoints:
    """Follows the log state as verify walks the chain, to check the checkpoints it names."""

    def __init__(self, store: Store, live: list[dict[str, Any]], digest: str,
                 version: int) -> None:
        self.store = store
        self.state = LogState(version, digest, {}, list(live))
        self.exact = version < 0  # from the start: every part of the state is known

    def advance(self, commit: Commit, live: list[dict[str, Any]]) -> None:
        self.state.live = live
        self.state.absorb(commit.version, commit.record or {})

    def check(self, named: dict[str, Any]) -> list[str]:
        """Problems of a checkpoint named by the next commit (it must hold the state now)."""
        rel = str(named.get("path"))
        try:
            data = self.store.read(rel)
        except OSError:
            return [f"checkpoint {rel} is missing"]
        if len(data) != named.get("bytes") or \
                hashlib.sha256(data).hexdigest() != named.get("sha256"):
            return [f"checkpoint {rel} was changed (SHA-256 differs)"]
        if named.get("version") != self.state.version:
            return [f"checkpoint {rel} is of version {named.get('version')}, not the "
                    f"commit before ({self.state.version})"]
        try:
            body = json.loads(data)
        except (json.JSONDecodeError, RecursionError):
            return [f"checkpoint {rel} is unreadable"]
        if not self.exact:  # after --since: check what is known (the chain and the files)
            body = {k: body.get(k) for k in ("digest", "live")}
            mine = {"digest": self.state.digest, "live": self.state.live}
            return [] if body == mine else [f"checkpoint {rel} differs from the log state"]
        if json.loads(self.state.to_json()) != body:
            return [f"checkpoint {rel} differs from the log state the commits before it give"]
        return []


def _check_rewrite(store: Store, rec: dict[str, Any], where: str, report: VerifyReport
                   ) -> None:
    """The rows of a rewrite's new files hash to its record; a compaction's old ones too.

    An expiry's opening-state file (under ``_eventkit/``) must match its hash.
    """
    if rec.get("states"):
        _check_file(store, f"{PRIVATE_DIR}/{rec['states']['path']}", rec["states"], where,
                    report, None)
    for group in rec.get("groups", []):
        for side in ("files", "removed"):
            if side == "removed" and rec.get("kind") != "compact":
                continue  # an expiry replaced those rows on purpose
            paths = list(group.get(side, []))
            if not all(store.exists(p) for p in paths):
                continue  # reported (new files) or deleted on purpose (old files)
            try:
                frames = [pl.read_parquet(io.BytesIO(store.read(p))) for p in paths]
                found = content_digest(frames)
                if found != group.get("content") and frames:  # a compaction merges a bucketed
                    found = content_digest([in_log_order(pl.concat(frames))])  # append in order
            except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException):
                continue  # an unreadable file is reported by its hash check
            if found != group.get("content"):
                names = [p.rpartition("/")[2] for p in paths]
                report.problems.append(f"{where}: the rows of {names} differ from the "
                                       f"{rec.get('kind')} record's content digest")


def _check_file(
    store: Store,
    rel: str,
    entry: dict[str, Any],
    where: str,
    report: VerifyReport,
    on_bytes: Callable[[int], object] | None,
) -> None:
    try:
        check_inside(store, rel)
    except CorruptionError as exc:
        report.problems.append(f"{where}: data file {rel} is refused, never opened ({exc})")
        return
    st = store.stat(rel)
    if st is None:
        report.problems.append(f"{where}: data file {rel} is missing")
        return
    if st.size != entry.get("bytes"):
        report.problems.append(f"{where}: data file {rel} was changed (size differs)")
        return
    digest = sha256_of(store, rel, on_bytes=on_bytes)
    report.files_checked += 1
    report.bytes_checked += st.size
    if digest != entry.get("sha256"):
        report.problems.append(f"{where}: data file {rel} was changed (SHA-256 differs)")
    else:
        remember_verified(store, rel, digest, st)


_INTERRUPTED_COMMIT = re.compile(r"\d{20}\.json#\d+")


def _stray_files(store: Store, referenced: set[str], since: int | None) -> Iterator[str]:
    """Files in the table that no commit lists.

    After ``since``: only files named for a version from it on, found with one
    listing that starts there.
    """
    pending = pending_files(store)
    after = f"part-{since:08d}" if since is not None else None
    for rel in store.list_files("", after=after):
        top = rel.split("/", 1)[0]
        if top in (LOG_DIR, PRIVATE_DIR) or rel in referenced or rel in pending:
            continue
        if since is not None and not (rel.startswith("part-") and rel[5:13].isdigit()
                                      and int(rel[5:13]) >= since):
            continue
        yield rel
    for rel in store.list_files(f"{LOG_DIR}/", after=f"{LOG_DIR}/{max(since or 0, 0):020d}"
                          if since is not None else None):
        name = rel.rpartition("/")[2]
        stem, _, ext = name.partition(".")
        # temp files of a commit that was interrupted (delta-rs / object_store name them
        # ".tmp...", "_commit_..." or "<version>.json#<n>"); no Delta reader reads them
        transient = name.startswith((".", "_commit_")) or _INTERRUPTED_COMMIT.fullmatch(name)
        if not (ext == "json" and stem.isdigit()) and not transient:
            yield f"{LOG_DIR}/{name}"
