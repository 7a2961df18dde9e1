"""The archive's lifecycle: compaction, retention (expiry) and the storage report.

An archive only grows, in one data file per append. Two audited rewrites keep
it in check, each one Delta commit carrying eventkit's record in the hash chain
(see :func:`eventkit.ledger.apply_record`), which ``verify`` accepts while any
foreign ``optimize``, ``delete`` or ``restore`` is still reported:

* :func:`compact` merges runs of small files into larger zstd files. The rows
  do not change: the record holds their content digest (before = after), the
  Delta removes and adds are ``dataChange=false`` (what the Delta protocol
  allows on an append-only table), and every answer stays the same.
* :func:`expire` replaces the events dated before a cut-off with one opening
  event per key; see its docstring.

:func:`info` reports events, files, bytes and compression.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq

from eventkit import ledger
from eventkit.archive import (
    EventArchive,
    _fsync,
    _read_files,
    _write_data_file,
    _write_durably,
)
from eventkit.exceptions import (
    AppendConflictError,
    ArchiveError,
    CorruptionError,
    ExpiredError,
    ImmutabilityError,
)
from eventkit.schema import BANK_ACCOUNT, MONEY_EVENT_TYPES
from eventkit.upcast import UNMARKED_VERSION

if TYPE_CHECKING:
    from eventkit.rules import RuleSet

__all__ = [
    "CompactReport",
    "ExpireReport",
    "Expiry",
    "StorageReport",
    "compact",
    "expire",
    "expiry_of",
    "info",
]

#: Files below this many rows are merged by :func:`compact` (up to this many per file).
TARGET_ROWS = 1_000_000


@dataclass(frozen=True)
class CompactReport:
    """What :func:`compact` did: files and bytes before and after, the new head.

    ``version`` is the compaction's commit (``None`` when there was nothing to merge).
    """

    version: int | None
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    head: str


def compact(
    archive: EventArchive | str | Path,
    *,
    target_rows: int = TARGET_ROWS,
    keep_old: bool = False,
) -> CompactReport:
    """Merge runs of small data files into files of up to ``target_rows`` rows.

    Every input file is checked against its hash first; the merged rows are
    read back from each new file and must hash to the same content digest as
    the files they replace, or nothing is committed. The commit records, in
    the hash chain, which files were replaced by which and that content digest;
    ``verify`` recomputes it. The replaced files are then deleted (``keep_old``
    leaves them on disk, as Delta's ``vacuum`` would before its retention).
    Earlier versions stay readable (``scan(version=v)`` reads the merged files
    up to that version's last ``seq``).

    Examples
    --------
    >>> import tempfile
    >>> from datetime import datetime, UTC
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> for i in range(3):
    ...     _ = archive.append(pl.DataFrame({"event_id": [f"e{i}"], "account_id": [1],
    ...         "event_type": ["Deposit"], "amount": [100],
    ...         "event_time": [datetime(2024, 1, 1 + i, tzinfo=UTC)]}))
    >>> report = compact(archive)
    >>> report.files_before, report.files_after, archive.verify().ok
    (3, 1, True)
    >>> archive.scan().select("seq").collect()["seq"].to_list()
    [0, 1, 2]

    """
    archive = archive if isinstance(archive, EventArchive) else EventArchive(archive)
    if target_rows < 1:
        msg = f"target_rows must be at least 1, not {target_rows}"
        raise ArchiveError(msg, path=str(archive.path))
    root = archive.path
    with archive._lock():
        commits = ledger.read_log(root)
        entries = ledger.live_files(root, commits)
        for entry in entries:
            ledger.check_data_file(root, entry)
        before = (len(entries), sum(e["bytes"] for e in entries))
        plan = [g for g in _runs(entries, target_rows) if len(g) > 1]
        last = commits[-1].record or {}
        if not plan:
            return CompactReport(None, before[0], before[0], before[1], before[1],
                                 last["digest"])
        version = commits[-1].version + 1
        groups: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        with _Writer(root, version) as writer:
            for i, run in enumerate(plan):
                frames = [pl.read_parquet(root / e["path"]) for e in run]
                content = ledger.content_digest(frames)
                entry = writer.write(pl.concat(frames), i, content, _version(run[0]))
                files.append(entry)
                groups.append({"removed": [e["path"] for e in run], "files": [entry["path"]],
                               "rows": entry["rows"], "content": content})
            record = _record(last, "compact", groups, files, {})
            removed = [e for run in plan for e in run]
            writer.commit(record, removed, operation="OPTIMIZE")
        if not keep_old:
            _delete(root, removed)
    after = ledger.live_files(root)
    return CompactReport(version, before[0], len(after), before[1],
                         sum(e["bytes"] for e in after), record["digest"])


def _runs(entries: list[dict[str, Any]], target_rows: int) -> list[list[dict[str, Any]]]:
    """Consecutive small files of one schema version, cut before ``target_rows`` is exceeded."""
    runs: list[list[dict[str, Any]]] = [[]]
    rows = 0
    for entry in entries:
        n = entry.get("rows", 0)
        if n >= target_rows or rows + n > target_rows or (
                runs[-1] and _version(runs[-1][-1]) != _version(entry)):
            runs.append([])
            rows = 0
        if n < target_rows:
            runs[-1].append(entry)
            rows += n
    return runs


def _version(entry: dict[str, Any]) -> int:
    return int(entry.get("schema_version", UNMARKED_VERSION))


def _record(last: dict[str, Any], kind: str, groups: list[dict[str, Any]],
            files: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "format": 1,
        "kind": kind,
        "at": datetime.now(UTC).isoformat(),
        **extra,
        "groups": groups,
        "files": files,
        "prev": last["digest"],
    }
    for carried in ("seq", "recorded_until"):  # what the next append continues from
        if carried in last:
            record[carried] = last[carried]
    record["digest"] = ledger.chain_digest(last["digest"], record)
    return record


class _Writer:
    """Data files of one rewrite commit, written with intents, committed or removed."""

    def __init__(self, root: Path, version: int) -> None:
        self.root, self.version = root, version
        self.pending = root / ledger.PRIVATE_DIR / "pending"
        self.written: list[tuple[Path, Path]] = []
        self.adds: list[dict[str, Any]] = []
        self.sides: list[Path] = []
        self.committed = False

    def __enter__(self) -> _Writer:
        self.pending.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, frame: pl.DataFrame, index: int, content: str,
              schema_version: int = UNMARKED_VERSION) -> dict[str, Any]:
        """Write ``frame`` (of ``schema_version``) as a data file whose rows hash to ``content``."""
        name = f"part-{self.version:08d}-{index:03d}-{uuid.uuid4().hex[:12]}.parquet"
        path, intent = self.root / name, self.pending / f"{name}.intent"
        self.written.append((path, intent))
        _write_durably(intent, b"rewrite")
        _fsync(self.pending)
        entry, add = _write_data_file(path, frame, schema_version)
        if ledger.content_digest([pl.read_parquet(path)]) != content:
            msg = f"{self.root}: the rewritten file {name} does not read back the same rows"
            raise CorruptionError(msg, path=str(self.root), file=str(path))
        self.adds.append({"path": add.path, "partitionValues": {}, "size": add.size,
                          "modificationTime": add.modification_time, "dataChange": False,
                          "stats": add.stats})
        return entry

    def side_file(self, frame: pl.DataFrame, rel: str) -> dict[str, Any]:
        """Write ``frame`` to ``_eventkit/<rel>`` (removed unless committed); its record entry."""
        path = self.root / ledger.PRIVATE_DIR / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sides.append(path)
        frame.write_parquet(path, compression="zstd", statistics=True)
        with path.open("rb") as f:
            os.fsync(f.fileno())
        _fsync(path.parent)
        return {"path": rel, "sha256": ledger.sha256_file(path), "bytes": path.stat().st_size,
                "rows": frame.height}

    def commit(self, record: dict[str, Any], removed: list[dict[str, Any]], *,
               operation: str, data_change: bool = False) -> None:
        """Commit the new files and the removal of ``removed`` as version ``self.version``."""
        now = int(datetime.now(UTC).timestamp() * 1000)
        for add in self.adds:
            add["dataChange"] = data_change
        actions: list[dict[str, Any]] = [
            {"commitInfo": {"timestamp": now, "operation": operation,
                            "operationParameters": {}, "clientVersion": "eventkit",
                            "eventkit": json.dumps(record)}},
            *({"remove": {"path": e["path"], "deletionTimestamp": now,
                          "dataChange": data_change, "extendedFileMetadata": True,
                          "partitionValues": {}, "size": e["bytes"]}} for e in removed),
            *({"add": add} for add in self.adds),
        ]
        _fsync(self.root)
        final = ledger.log_path(self.root, self.version)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
        _write_durably(tmp, "".join(json.dumps(a) + "\n" for a in actions).encode())
        try:
            os.link(tmp, final)  # put-if-absent: the version is ours or nobody's
        except FileExistsError:
            msg = (f"another writer committed version {self.version} first; nothing was "
                   "changed, retry")
            raise AppendConflictError(msg, path=str(self.root)) from None
        finally:
            tmp.unlink(missing_ok=True)
        _fsync(final.parent)
        self.committed = True

    def __exit__(self, *exc: object) -> None:
        for path, intent in self.written:
            if not self.committed:
                path.unlink(missing_ok=True)
            intent.unlink(missing_ok=True)
        for path in self.sides if not self.committed else ():
            path.unlink(missing_ok=True)


def _delete(root: Path, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        (root / entry["path"]).unlink(missing_ok=True)
    _fsync(root)


# ---------------------------------------------------------------------- storage report
@dataclass(frozen=True)
class StorageReport:
    """What :func:`info` found: sizes of an archive (or Parquet folder) and its parts.

    ``partitions`` has one row per folder of data files (hive partitions of a
    Parquet folder; ``.`` for an archive, which is not partitioned) with
    ``files``, ``events``, ``bytes`` and ``uncompressed_bytes``; ``files`` the
    same per data file. ``snapshot_bytes`` totals the files under the snapshot
    folder (``snapshot_files`` of them).
    """

    path: str
    kind: str
    events: int
    bytes: int
    uncompressed_bytes: int
    files: pl.DataFrame
    partitions: pl.DataFrame
    versions: int | None = None
    rewrites: dict[str, int] = field(default_factory=dict)
    snapshot_files: int = 0
    snapshot_bytes: int = 0

    @property
    def compression_ratio(self) -> float:
        """Uncompressed over stored bytes of the data pages (0 when empty)."""
        return self.uncompressed_bytes / self.bytes if self.bytes else 0.0

    def __str__(self) -> str:
        lines = [
            f"{self.kind} {self.path}",
            f"  events       {self.events:,}",
            f"  data files   {self.files.height:,}",
            f"  bytes        {self.bytes:,} ({self.uncompressed_bytes:,} uncompressed, "
            f"ratio {self.compression_ratio:.2f})",
        ]
        if self.versions is not None:
            done = ", ".join(f"{n} {k}" for k, n in sorted(self.rewrites.items())) or "none"
            lines.append(f"  versions     {self.versions + 1:,} (audited rewrites: {done})")
        lines.append(f"  snapshots    {self.snapshot_files:,} files, {self.snapshot_bytes:,} "
                     "bytes")
        lines.append("  partition                          files       events        bytes")
        lines += [f"  {p:<30} {f:>9,} {e:>12,} {b:>12,}" for p, f, e, b, _ in
                  self.partitions.iter_rows()]
        return "\n".join(lines)


def info(path: str | Path, *, snapshots: str | Path | None = None) -> StorageReport:
    """Storage report of an eventkit archive or a folder of Parquet files.

    Reads only the commit log and each file's Parquet footer (no data pages).
    ``snapshots`` is a folder of cached states to total (default: the
    archive's ``_eventkit/snapshots`` when it exists).

    Examples
    --------
    >>> import tempfile
    >>> from datetime import datetime, UTC
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> _ = archive.append(pl.DataFrame({"event_id": ["a", "b"], "account_id": [1, 2],
    ...     "event_type": ["Deposit", "Deposit"], "amount": [100, 5],
    ...     "event_time": [datetime(2024, 1, 1, tzinfo=UTC)] * 2}))
    >>> report = info(archive.path)
    >>> report.events, report.files.height, report.versions, report.compression_ratio > 0
    (2, 1, 1, True)

    """
    root = Path(path)
    versions = None
    rewrites: dict[str, int] = {}
    if (root / ledger.LOG_DIR).is_dir():
        EventArchive(root)  # an eventkit archive (or a clear error)
        commits = ledger.read_log(root)
        paths = [root / e["path"] for e in ledger.live_files(root, commits)]
        versions = commits[-1].version
        for c in commits:
            if c.record and c.record.get("kind") in ledger.REWRITE_KINDS:
                rewrites[c.record["kind"]] = rewrites.get(c.record["kind"], 0) + 1
        kind = "eventkit archive"
    elif root.is_dir():
        paths = sorted(p for p in root.rglob("*.parquet")
                       if not any(s.startswith((".", "_")) for s in p.relative_to(root).parts))
        kind = "Parquet folder"
    else:
        msg = f"{root} is neither an eventkit archive nor a folder of Parquet files"
        raise ArchiveError(msg, path=str(root))
    rows = []
    for p in paths:
        try:
            meta = pq.read_metadata(p)
        except (OSError, ValueError) as exc:
            msg = f"{root}: data file {p.name} cannot be read ({exc}); run eventkit verify"
            raise CorruptionError(msg, path=str(root), file=str(p)) from None
        raw = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        rows.append((str(p.relative_to(root)), str(p.parent.relative_to(root)), meta.num_rows,
                     p.stat().st_size, raw))
    files = pl.DataFrame(rows, schema={"file": pl.String, "partition": pl.String,
                                       "events": pl.Int64, "bytes": pl.Int64,
                                       "uncompressed_bytes": pl.Int64}, orient="row")
    partitions = (files.group_by("partition", maintain_order=True)
                  .agg(pl.len().cast(pl.Int64).alias("files"), pl.col("events").sum(),
                       pl.col("bytes").sum(), pl.col("uncompressed_bytes").sum()))
    snap = Path(snapshots) if snapshots is not None else root / ledger.PRIVATE_DIR / "snapshots"
    snap_files = [p for p in snap.rglob("*") if p.is_file()] if snap.is_dir() else []
    return StorageReport(
        path=str(root), kind=kind, events=int(files["events"].sum()),
        bytes=int(files["bytes"].sum()), uncompressed_bytes=int(files["uncompressed_bytes"].sum()),
        files=files, partitions=partitions, versions=versions, rewrites=rewrites,
        snapshot_files=len(snap_files), snapshot_bytes=sum(p.stat().st_size for p in snap_files),
    )


# ---------------------------------------------------------------------- retention
@dataclass(frozen=True)
class Expiry:
    """The cut-off of an archive's expiry: answers before it were replaced.

    ``cutoff_us``: events dated before it were replaced by opening states;
    ``known_from_us``: the latest transaction time among them (an answer "as
    known at" an earlier instant would miss the opening states).
    """

    path: str
    cutoff_us: int
    known_from_us: int
    #: the opening-state file's record entry (path under ``_eventkit/``, sha256, bytes),
    #: for an expiry that stored per-key states rather than opening events
    states: dict[str, Any] | None = None

    def opening_states(self, key: str, keys: list[int] | None = None) -> pl.DataFrame | None:
        """Each key's state just before the cut-off (``None``: the expiry left events).

        One row per key: the key, every state field, ``events`` (how many were
        folded) and ``last_event_time``, as :func:`eventkit.engine.fold` takes
        for ``start``. The file is checked against the SHA-256 in the expiry's
        record (in the hash chain) first.
        """
        if self.states is None:
            return None
        path = ledger.check_data_file(Path(self.path) / ledger.PRIVATE_DIR, self.states)
        lf = pl.scan_parquet(path)
        if keys is not None:
            lf = lf.filter(pl.col(key).is_in(keys))
        return lf.collect()

    def check(self, *, at_us: int | None = None, known_at_us: int | None = None) -> None:
        """Raise :class:`~eventkit.exceptions.ExpiredError` for a question the expiry cut off.

        Examples
        --------
        >>> e = Expiry("bank", cutoff_us=1_000, known_from_us=900)
        >>> e.check(at_us=1_000)
        >>> e.check(at_us=999)
        Traceback (most recent call last):
        ...
        eventkit.ExpiredError: bank: events ... asked about 1970-01-01T00:00:00.000999+00:00

        """
        if at_us is not None and at_us < self.cutoff_us:
            self._raise(f"asked about {_iso(at_us)}")
        if known_at_us is not None and known_at_us < self.known_from_us:
            self._raise(f"asked as known at {_iso(known_at_us)}, before the opening states "
                        f"were known ({_iso(self.known_from_us)})")

    def _raise(self, what: str) -> None:
        msg = (f"{self.path}: events dated before {_iso(self.cutoff_us)} were expired "
               f"(replaced by opening states); {what}")
        raise ExpiredError(msg, path=self.path, cutoff=_iso(self.cutoff_us))


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat()


def expiry_of(events: object, fingerprint: str | None = None) -> Expiry | None:
    """The latest expiry of ``events`` when it is an eventkit archive (or its path).

    Replay calls it so that questions before the cut-off raise instead of
    answering a wrong number; any other source gives ``None``. The opening
    states reproduce the rule set the expiry was made for: replaying an
    expired archive with another (``fingerprint`` differs) raises
    :class:`~eventkit.exceptions.ExpiredError`.

    Examples
    --------
    >>> expiry_of(pl.LazyFrame()) is None
    True

    """
    if isinstance(events, EventArchive):
        root = events.path
    elif isinstance(events, str | Path) and (Path(events) / ledger.LOG_DIR).is_dir():
        root = Path(events)
    else:
        return None
    found = None
    for commit in ledger.read_log(root):
        rec = commit.record or {}
        if rec.get("kind") != "expire":
            continue
        found = Expiry(str(root), _micros(rec["cutoff"]), _micros(rec["known_from"]),
                       rec.get("states"))
        made_for = rec.get("rules", {})
        if fingerprint is not None and made_for.get("fingerprint") != fingerprint:
            found._raise(f"its opening states reproduce the rule set {made_for.get('name')!r} "
                         "only, not this one")
    return found


def _micros(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)


@dataclass(frozen=True)
class ExpireReport:
    """What :func:`expire` did: its commit, the rows replaced and the opening events made."""

    version: int
    cutoff: str
    replaced_rows: int
    opening_rows: int
    files_removed: int
    head: str


def expire(
    archive: EventArchive | str | Path,
    *,
    before: datetime | str,
    by: str,
    reason: str,
    confirm: bool = False,
    rules: str | Path | RuleSet = "balance",
) -> ExpireReport:
    """Replace the events dated before ``before`` with each key's opening state.

    The one operation that removes events from an archive, so it is refused
    unless ``confirm=True`` and it must say who (``by``) and why (``reason``).
    The bank's own events (its rate table) always stay. Two kinds of opening:

    * a rule set whose only field is ``balance``: per key, every ``Deposit``,
      ``Withdrawal``, ``Fee``, transfer leg and ``Correction`` dated before the
      cut-off is replaced by one ``Correction`` (id ``opening-<key>-<cut-off>``)
      at the time and ``seq`` of the last of them, for the amount that brings
      the balance to what it was; status and rate events stay. Any reader of
      the log sees the same balances.
    * any other rule set (``banking``: interest, fees, status, account rates):
      every event of a key dated before the cut-off is removed and each key's
      whole state just before it (every field, the number of events and the
      time of the last one) is stored in a Parquet file under
      ``_eventkit/expiry/``, named with its SHA-256 in the expiry's record.
      :func:`eventkit.replay` continues each key's fold from it.

    Before anything is written the new log is replayed: every state after the
    cut-off must equal the old one, event by event, or nothing is changed.
    Replays with other rule sets then raise :class:`~eventkit.exceptions.ExpiredError`.

    The files holding expired rows are rewritten in one commit whose record
    (in the hash chain, accepted by ``verify``) keeps the cut-off, who, when,
    why, the rule set's fingerprint and a digest of the opening events (or the
    opening-state file's hash); the old files are then deleted. Afterwards
    ``replay(...).as_of(t)`` for ``t`` before the cut-off, and ``known_at``
    before the opening states were known, raise :class:`~eventkit.exceptions.ExpiredError`.
    """
    from eventkit import rulesets  # noqa: PLC0415 (replay imports this module's archive)
    from eventkit.temporal import micros  # noqa: PLC0415

    archive = archive if isinstance(archive, EventArchive) else EventArchive(archive)
    root = archive.path
    if not confirm:
        msg = (f"expire removes events from {root} for good: pass confirm=True (and by=, "
               "reason=) to do it")
        raise ImmutabilityError(msg, path=str(root))
    if not by or not reason:
        msg = "an expiry must say who asks (by=) and why (reason=)"
        raise ImmutabilityError(msg, path=str(root))
    cutoff = micros(before, param="before", day="start")
    ruleset = rulesets.resolve(rules)
    key = ruleset.key
    by_state = [f.name for f in ruleset.fields] != ["balance"]
    with archive._lock():
        prior = expiry_of(archive, ruleset.fingerprint)
        if prior is not None and cutoff <= prior.cutoff_us:
            msg = (f"{root}: events before {_iso(prior.cutoff_us)} were expired already; "
                   f"a new cut-off must be later, not {_iso(cutoff)}")
            raise ArchiveError(msg, path=str(root))
        start = None if prior is None else prior.opening_states(key)
        commits = ledger.read_log(root)
        entries = ledger.live_files(root, commits)
        for entry in entries:
            ledger.check_data_file(root, entry)
        last = commits[-1].record or {}
        frames = [_read_files(root, [e], archive.schema).collect() for e in entries]  # upcast
        old = pl.concat(frames) if frames else pl.DataFrame(schema=archive.schema)
        gone = (pl.col("event_time").dt.epoch("us") < cutoff) & (pl.col(key) != BANK_ACCOUNT)
        if not by_state:
            gone = gone & pl.col("event_type").is_in([*MONEY_EVENT_TYPES, "Correction"])
        hit = [i for i, f in enumerate(frames) if f.select(gone.any()).item()]
        if not hit:
            msg = f"no events to expire before {_iso(cutoff)} in {root}"
            raise ArchiveError(msg, path=str(root))
        replaced = old.filter(gone)
        if by_state:
            states = _replayed(old, ruleset, start).as_of(_iso(cutoff - 1)).collect()
            opening = old.clear()
            new = old.filter(~gone)
        else:
            states = start
            opening = _openings(old, replaced, gone, cutoff, ruleset, start, archive.schema)
            new = pl.concat([old.filter(~gone), opening]).sort("seq")
        _same_after(old, start, new, states, cutoff, ruleset, root)

        run = entries[hit[0]:hit[-1] + 1]
        seqs = pl.concat(frames[hit[0]:hit[-1] + 1])["seq"]
        rows = new.filter(pl.col("seq").is_in(seqs.implode()))
        version = commits[-1].version + 1
        with _Writer(root, version) as writer:
            files = [writer.write(part, i, ledger.content_digest([part]))
                     for i, part in enumerate(rows.iter_slices(TARGET_ROWS))]
            group = {"removed": [e["path"] for e in run], "files": [f["path"] for f in files],
                     "rows": rows.height, "content": ledger.content_digest([rows])}
            extra: dict[str, Any] = {
                "cutoff": _iso(cutoff), "by": by, "reason": reason,
                "known_from": _iso(replaced.select(pl.col("recorded_at").dt.epoch("us")
                                                   .max()).item()),
                "rules": {"name": ruleset.name, "fingerprint": ruleset.fingerprint},
                "replaced_rows": replaced.height,
                "opening_rows": len(states) if by_state and states is not None
                else opening.height,
                "opening": ledger.content_digest([opening]),
            }
            if states is not None:  # made now, or carried over from the previous expiry
                extra["states"] = writer.side_file(states, f"expiry/opening-v{version:08d}"
                                                   ".parquet")
            record = _record(last, "expire", [group], files, extra)
            writer.commit(record, run, operation="DELETE", data_change=True)
        _delete(root, run)
    return ExpireReport(version, _iso(cutoff), replaced.height, extra["opening_rows"],
                        len(run), record["digest"])


def _replayed(events: pl.DataFrame, ruleset: RuleSet, start: pl.DataFrame | None) -> Any:
    """The replay of ``events``, continuing from opening ``start`` states (if any)."""
    from eventkit.replay import ReplayResult  # noqa: PLC0415 (replay imports this module)

    return ReplayResult(events.lazy(), ruleset, start=start)


def _openings(old: pl.DataFrame, replaced: pl.DataFrame, gone: pl.Expr, cutoff: int,
              ruleset: RuleSet, start: pl.DataFrame | None,
              schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """One Correction per key at its last replaced event, for the balance it had."""
    key = ruleset.key
    last = (replaced.sort(key, "event_time", "seq")
            .group_by(key, maintain_order=True)
            .agg(pl.col("seq", "event_time").last(), pl.col("recorded_at").max()))
    stub = last.with_columns(
        event_id=pl.format("opening-{}-{}", pl.col(key), pl.lit(_iso(cutoff))),
        event_type=pl.lit("Correction"), amount=pl.lit(0, pl.Int64),
    ).with_columns(pl.lit(None, dtype=t).alias(c) for c, t in schema.items()
                   if c not in (key, "seq", "event_time", "recorded_at", "event_id",
                                "event_type", "amount")).select(list(schema))
    at = _iso(cutoff - 1)
    wanted = _replayed(old, ruleset, start).as_of(at).select(key, "balance")
    zero = pl.concat([old.filter(~gone), stub]).sort("seq")
    have = _replayed(zero, ruleset, start).as_of(at).select(key,
                                                            pl.col("balance").alias("was"))
    amounts = wanted.join(have, on=key, how="left").collect().select(
        key, (pl.col("balance") - pl.col("was").fill_null(0)).alias("amount"))
    return stub.drop("amount").join(amounts, on=key, how="left").select(list(schema))


def _same_after(old: pl.DataFrame, start: pl.DataFrame | None, new: pl.DataFrame,
                states: pl.DataFrame | None, cutoff: int, ruleset: RuleSet,
                root: Path) -> None:
    """Every event from the cut-off on must leave the same state in the new log."""
    fields = [f.name for f in ruleset.fields]
    after = pl.col("event_time").dt.epoch("us") >= cutoff

    def states_after(events: pl.DataFrame, opening: pl.DataFrame | None) -> pl.DataFrame:
        return (_replayed(events, ruleset, opening).history.filter(after)
                .select("event_id", *fields).sort("event_id").collect())

    a, b = states_after(old, start), states_after(new, states)
    if not a.equals(b):
        diff = a.join(b, on="event_id", suffix="_new", how="full").filter(
            pl.any_horizontal(pl.col(f).ne_missing(pl.col(f"{f}_new")) for f in fields))
        where = diff["event_id"][0] if diff.height else "?"
        msg = (f"{root}: opening states cannot reproduce {ruleset.name!r} after the cut-off "
               f"(event {where} would change); nothing was expired")
        raise ArchiveError(msg, path=str(root))
