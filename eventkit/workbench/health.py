"""What an archive's health check reads: snapshot coverage and schema versions per file.

The archive-health notebook (``notebooks/06_archive_health.ipynb``) shows these
next to ``verify``, :func:`eventkit.info` and the erasure audit of
:mod:`eventkit.archive.privacy`. Everything here reads manifests, commit records and
Parquet footers only: no data pages.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from eventkit.archive import ledger
from eventkit.archive.compaction import compact
from eventkit.archive.privacy import KeyStore, encrypt
from eventkit.archive.storage import versions
from eventkit.archive.table import EventArchive
from eventkit.replay import snapshots
from eventkit.replay.api import snapshot
from eventkit.rules import registry
from eventkit.schema import TIME_DTYPE

__all__ = ["demo_archive", "schema_versions", "snapshot_coverage"]

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
