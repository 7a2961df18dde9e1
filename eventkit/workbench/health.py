"""What an archive's health check reads: snapshot coverage and schema versions per file.

The archive-health notebook (``notebooks/06_archive_health.ipynb``) shows these
next to ``verify``, :func:`eventkit.info` and the erasure audit of
:mod:`eventkit.archive.privacy`. Everything here reads manifests, commit records and
Parquet footers only: no data pages.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from eventkit.archive import ledger
from eventkit.archive.compaction import compact
from eventkit.archive.privacy import KeyStore, encrypt, erasure_audit
from eventkit.archive.storage import versions
from eventkit.archive.table import EventArchive
from eventkit.archive.verify import VerifyReport
from eventkit.exceptions import ParameterError
from eventkit.replay import snapshots
from eventkit.replay.api import snapshot
from eventkit.rules import registry
from eventkit.schema import TIME_DTYPE

__all__ = ["Verdict", "demo_archive", "health_inputs", "schema_versions", "snapshot_coverage",
           "verdict"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def snapshot_coverage(archive: EventArchive | str | Path) -> pl.DataFrame:
    """Every snapshot set stored with ``archive``: for which rules and archive state.

    One row per set: ``rules`` (the registered rule set with that fingerprint,
    else ``None``), ``fingerprint``, ``version`` (archive version it was built
    from), ``current`` (built from the archive as it is now, so replay uses it),
    ``every``, ``checkpoints`` (a list of instants), ``files`` and ``bytes``.

    Examples
    --------
    >>> import tempfile
    >>> t = [datetime(2024, m, 10, tzinfo=UTC) for m in (1, 2, 3)]
    >>> bank = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> _ = bank.append(pl.DataFrame({"event_id": ["a", "b", "c"], "account_id": [1] * 3,
    ...     "event_type": ["Deposit"] * 3, "event_time": t, "amount": [100, 20, 3]}))
    >>> _ = snapshot(bank, "balance", every="1mo")
    >>> snapshot_coverage(bank).select("rules", "version", "current", "every").rows()
    [('balance', 1, True, '1mo')]

    """
    store = archive if isinstance(archive, EventArchive) else EventArchive(archive)
    names = {registry.get(n).fingerprint: n for n in registry.names()}
    folder = store.store.child(f"{ledger.PRIVATE_DIR}/{snapshots.FOLDER}")
    rows = []
    listed = folder.listing("")
    sets = sorted(rel.rpartition("/")[0] for rel, _ in listed
                  if rel.count("/") == 2 and rel.endswith("/manifest.json")
                  and not rel.startswith((f"{snapshots._BY_KEY}/", "."))
                  and rel.split("/")[1].startswith("v"))
    for prefix in sets:
        found = snapshots.load(folder.child(prefix))
        head = (ledger.read_commit(store.store, found.version).record or {}).get("digest") \
            if found.version <= store.version else None
        files = [st.size for rel, st in listed if rel.rpartition("/")[0] == prefix]
        rows.append({
            "rules": names.get(found.fingerprint), "fingerprint": found.fingerprint,
            "version": found.version,
            "current": found.version == store.version and found.head == head,
            "every": found.every,
            "checkpoints": [_EPOCH + timedelta(microseconds=c) for c in found.checkpoints],
            "files": len(files), "bytes": sum(files)})
    return pl.DataFrame(rows, schema={
        "rules": pl.String, "fingerprint": pl.String, "version": pl.Int64,
        "current": pl.Boolean, "every": pl.String, "checkpoints": pl.List(TIME_DTYPE),
        "files": pl.Int64, "bytes": pl.Int64})


def schema_versions(path: str | Path) -> pl.DataFrame:
    """Files and events per schema version of an archive or Parquet folder, oldest first.

    Counts :func:`eventkit.sources.upcast.versions`; ``None``: rows carry their own versions.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> pl.DataFrame({"amount": [1.5, 2.0]}).write_parquet(
    ...     folder / "a.parquet", metadata={"eventkit.schema_version": "1"})
    >>> schema_versions(folder).rows()
    [(1, 1, 2)]

    """
    return (versions(path).group_by("schema_version")
            .agg(pl.len().cast(pl.Int64).alias("files"), pl.col("events").sum())
            .sort("schema_version", nulls_last=True))


def health_inputs(archive: str | Path, keys: str | Path | None = None, *, demo: bool = False
                  ) -> tuple[dict[str, Path], dict[str, Path]]:
    """The archives the health check looks at, by name, and their key stores.

    ``archive`` under the name ``"archive"`` with ``keys`` (default: its
    :meth:`KeyStore.path_beside` file, not made); with ``demo``, also :func:`demo_archive` in a
    temporary folder under ``"demo"``. A ``keys`` file that does not exist is refused: a
    mistyped path must not read as "no personal fields to audit".

    Examples
    --------
    >>> archives, stores = health_inputs("data/bank")
    >>> archives["archive"].name, stores["archive"].name
    ('bank', 'bank.keys.sqlite')
    >>> health_inputs("data/bank", "data/bank.kyes.sqlite")
    Traceback (most recent call last):
    ...
    eventkit.ParameterError: keys: no key store at data/bank.kyes.sqlite

    """
    if keys and not Path(keys).is_file():
        msg = f"no key store at {keys}"
        raise ParameterError(msg, param="keys")
    archives = {"archive": Path(archive)}
    stores = {"archive": Path(keys) if keys else KeyStore.path_beside(archive)}
    if demo:  # personal fields, one subject forgotten, a v1 batch, a compaction, a snapshot set
        archives["demo"], stores["demo"] = demo_archive(tempfile.mkdtemp())
    return archives, stores


def demo_archive(folder: str | Path) -> tuple[Path, Path]:
    """A small archive in ``folder`` with every part the health check shows; its key store.

    Personal fields for three subjects (one of them forgotten), a batch written
    in schema version 1, two small appends merged by a compaction, and a
    snapshot set of the ``banking`` rules. Returns the archive's path and its
    key store's.

    Examples
    --------
    >>> import tempfile
    >>> path, keys = demo_archive(tempfile.mkdtemp())
    >>> schema_versions(path)["schema_version"].to_list()
    [1, 3]

    """
    demo = EventArchive.create(Path(folder) / "demo", personal=("name", "email"))
    keys = KeyStore.beside(demo)
    t = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(4)]
    people = pl.DataFrame({
        "event_id": ["o1", "o2", "o3", "d1"], "account_id": [1, 2, 3, 1],
        "event_type": ["AccountOpened"] * 3 + ["Deposit"], "amount": [0, 0, 0, 5_000],
        "event_time": t, "subject": ["cust-1", "cust-2", "cust-3", None],
        "name": ["Ada", "Bob", "Cy", None], "email": ["a@x", "b@x", "c@x", None]})
    demo.append(encrypt(people, keys, fields=demo.personal))
    demo.append(pl.DataFrame({"event_id": ["v1a", "v1b"], "account_id": [2, 1],
                              "event_type": ["Deposit", "CashOut"], "amount": [120.5, 12.25],
                              "event_time": t[2:]}), schema_version=1)
    for i in (1, 2):  # two small appends for the compaction to merge
        demo.append(pl.DataFrame({"event_id": [f"w{i}"], "account_id": [3],
                                  "event_type": ["Withdrawal"], "amount": [100 * i],
                                  "event_time": [t[3]]}))
    keys.forget("cust-2", by="dpo@bank", reason="erasure request 117")
    compact(demo, target_rows=2)
    snapshot(demo, "banking", every="1d")
    path = keys.path
    keys.close()
    return Path(demo.path), path


@dataclass(frozen=True)
class Verdict:
    """The health check in one banner: OK, or the problems in words.

    ``problems`` must be fixed (a failed verify, an erasure that does not
    hold); ``notes`` are worth knowing (stale snapshot sets, no key store).
    ``reports`` keeps each archive's :class:`~eventkit.VerifyReport`.
    """

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reports: dict[str, VerifyReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing must be fixed."""
        return not self.problems

    def headline(self) -> str:
        """One line: the verdict and what it covers."""
        names = ", ".join(self.reports) or "no archive"
        if self.ok:
            return f"OK: {names} intact, every erasure holds"
        return f"PROBLEMS ({len(self.problems)}): " + "; ".join(self.problems)

    def __str__(self) -> str:
        return "\n".join([self.headline(), *(f"  note: {n}" for n in self.notes)])

    def _repr_html_(self) -> str:
        colour, edge = ("#e6f4ea", "#1e8e3e") if self.ok else ("#fce8e6", "#d93025")
        items = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<div class='eventkit-verdict' style='background:{colour};border-left:6px "
                f"solid {edge};padding:10px 14px;margin:6px 0;font-size:15px'>"
                f"<b>{html.escape(self.headline())}</b>"
                + (f"<ul style='margin:6px 0 0 0'>{items}</ul>" if items else "") + "</div>")


def verdict(archives: Mapping[str, str | Path], stores: Mapping[str, str | Path] | None = None
            ) -> Verdict:
    """Check archives as the health notebook does: verify, erasures, snapshot sets.

    ``stores`` names each archive's key store. An archive without one has no
    personal fields to audit, unless it declares some: then its erasures cannot
    be checked, a problem.

    Examples
    --------
    >>> import tempfile
    >>> path, keys = demo_archive(tempfile.mkdtemp())
    >>> found = verdict({"demo": path}, {"demo": keys})
    >>> found.ok, found.headline()
    (True, 'OK: demo intact, every erasure holds')

    """
    problems: list[str] = []
    notes: list[str] = []
    reports: dict[str, VerifyReport] = {}
    for name, path in archives.items():
        opened = EventArchive(path)
        report = opened.verify()
        reports[name] = report
        if not report.ok:
            problems.append(f"{name} fails verify: {report.problems[0]}")
        store = Path((stores or {}).get(name, "")) if (stores or {}).get(name) else None
        personal = opened.personal
        if personal and (store is None or not store.exists()):
            problems.append(f"{name} has personal fields ({', '.join(personal)}) but no key "
                            f"store{f' at {store}' if store else ''}: its erasures cannot be "
                            "audited")
        elif store is not None and store.exists():
            audit = erasure_audit(path, KeyStore(store))
            leaks = audit.filter((pl.col("readable") > 0) | ~pl.col("erased"))
            if leaks.height:
                problems.append(f"{name}: {leaks.height} erasure(s) do not hold "
                                f"(subjects {', '.join(leaks['subject'].to_list()[:5])})")
        else:
            notes.append(f"{name}: no key store, so no personal fields to audit")
        coverage = snapshot_coverage(path)
        stale = coverage.filter(~pl.col("current")).height
        if coverage.height == 0:
            notes.append(f"{name}: no snapshot sets (as-of queries replay in full)")
        elif stale:
            notes.append(f"{name}: {stale} of {coverage.height} snapshot set(s) built from an "
                         "older archive state (not used; run eventkit snapshot again)")
    return Verdict(problems, notes, reports)
