"""Verify an archive: recompute the hash chain and every data file's SHA-256."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eventkit.archive.ledger import (
    GENESIS,
    LOG_DIR,
    PRIVATE_DIR,
    REWRITE_KINDS,
    Commit,
    apply_record,
    chain_digest,
    check_inside,
    commit_paths,
    content_digest,
    log_path,
    log_versions,
    path_problem,
    pending_files,
    read_commit,
    remember_verified,
    sha256_file,
)
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
    root: Path,
    *,
    expect: str | None = None,
    on_bytes: Callable[[int], object] | None = None,
) -> VerifyReport:
    """Recompute the hash chain and every data file's SHA-256.

    Checks, per commit in order: the commit file exists and parses; it carries
    eventkit's record; the record chains to the previous digest and its own
    digest recomputes; it adds exactly the files the record lists and removes
    none, unless it is an audited rewrite (compaction or expiry) whose record
    names exactly what it replaces; it does not change the table's metadata
    (after creation). Every listed file exists with the recorded hash (files a
    rewrite replaced may be gone); the rows of a rewrite's new files hash to its
    content digest (and, for a compaction, so do the old files when still
    there); no other data file lies in the table. ``expect``, a head digest
    saved elsewhere, catches a chain that was rewritten consistently from the start.
    """
    report = VerifyReport(path=str(root))
    versions = log_versions(root)
    if not versions:
        report.problems.append("no commits: not an archive")
        return report
    expected = list(range(versions[-1] + 1))
    for missing in sorted(set(expected) - set(versions)):
        report.problems.append(f"commit {missing}: file {log_path(root, missing).name} is missing")
    prev = GENESIS
    referenced: set[str] = set()
    digests: dict[str, int] = {}
    commits = [read_commit(root, v) for v in versions]
    rewritten = {p for c in commits if c.record and c.record.get("kind") in REWRITE_KINDS
                 for g in c.record.get("groups", []) for p in g.get("removed", [])}
    live: list[dict[str, Any]] = []
    merged_away = 0
    for commit in commits:
        report.version = commit.version
        where = f"commit {commit.version}"
        if commit.error is not None:
            report.problems.append(f"{where}: unreadable commit file "
                                   f"{log_path(root, commit.version).name} ({commit.error})")
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
        if commit.version == 0:
            _check_table(commit, rec, where, report)
        elif commit.metadata is not None:
            report.problems.append(f"{where}: changes the table's metadata or properties")
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
            if rel in rewritten and not (root / rel).exists():
                merged_away += 1  # replaced by a later audited rewrite, then deleted
                continue
            _check_file(root, rel, entry, where, report, on_bytes)
        if rec.get("kind") in REWRITE_KINDS and not problem:
            _check_rewrite(root, rec, where, report)
    report.head = prev
    if merged_away:
        report.notes.append(f"{merged_away} data file(s) replaced by audited compactions or "
                            "expiries are no longer on disk (their records remain in the chain)")
    for rel in _stray_files(root, referenced):
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


def _check_rewrite(root: Path, rec: dict[str, Any], where: str, report: VerifyReport) -> None:
    """The rows of a rewrite's new files hash to its record; a compaction's old ones too.

    An expiry's opening-state file (under ``_eventkit/``) must match its hash.
    """
    if rec.get("states"):
        _check_file(root / PRIVATE_DIR, rec["states"]["path"], rec["states"], where, report,
                    None)
    for group in rec.get("groups", []):
        for side in ("files", "removed"):
            if side == "removed" and rec.get("kind") != "compact":
                continue  # an expiry replaced those rows on purpose
            paths = [root / p for p in group.get(side, [])]
            if not all(p.is_file() for p in paths):
                continue  # reported (new files) or deleted on purpose (old files)
            try:
                found = content_digest([pl.read_parquet(p) for p in paths])
            except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException):
                continue  # an unreadable file is reported by its hash check
            if found != group.get("content"):
                names = [p.name for p in paths]
                report.problems.append(f"{where}: the rows of {names} differ from the "
                                       f"{rec.get('kind')} record's content digest")


def _check_table(commit: Commit, rec: dict[str, Any], where: str, report: VerifyReport
                 ) -> None:
    """The genesis commit's table definition must be the one its record describes."""
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
            report.problems.append(f"{where}: table {key} differ from the archive's record "
                                   f"({value!r} instead of {expected.get(key)!r})")


def _check_file(
    root: Path,
    rel: str,
    entry: dict[str, Any],
    where: str,
    report: VerifyReport,
    on_bytes: Callable[[int], object] | None,
) -> None:
    path = root / rel
    try:
        check_inside(root, rel)
    except CorruptionError:
        report.problems.append(f"{where}: data file {rel} is a link to "
                               f"{os.path.realpath(path)}, outside the table folder (never "
                               "opened)")
        return
    if not path.is_file():
        report.problems.append(f"{where}: data file {rel} is missing")
        return
    if path.stat().st_size != entry.get("bytes"):
        report.problems.append(f"{where}: data file {rel} was changed (size differs)")
        return
    st = path.stat()
    digest = sha256_file(path, on_bytes=on_bytes)
    report.files_checked += 1
    report.bytes_checked += st.st_size
    if digest != entry.get("sha256"):
        report.problems.append(f"{where}: data file {rel} was changed (SHA-256 differs)")
    else:
        remember_verified(path, digest, st)


_INTERRUPTED_COMMIT = re.compile(r"\d{20}\.json#\d+")


def _stray_files(root: Path, referenced: set[str]) -> Iterator[str]:
    pending = pending_files(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path():
            dirnames[:] = [d for d in dirnames if d not in (LOG_DIR, PRIVATE_DIR)]
        for name in filenames:
            rel = str(rel_dir / name) if rel_dir != Path() else name
            if rel not in referenced and rel not in pending:
                yield rel
    for name in os.listdir(root / LOG_DIR):
        stem, _, ext = name.partition(".")
        # temp files of a commit that was interrupted (delta-rs / object_store name them
        # ".tmp...", "_commit_..." or "<version>.json#<n>"); no Delta reader reads them
        transient = name.startswith((".", "_commit_")) or _INTERRUPTED_COMMIT.fullmatch(name)
        if not (ext == "json" and stem.isdigit()) and not transient:
            yield f"{LOG_DIR}/{name}"
