"""Open event data wherever it lies: an eventkit archive, or any file :mod:`eventkit.sources` reads.

:data:`Events` is everything the later stages take as events; :func:`as_lazy`
and :func:`archive_of` are the one place that tells them apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeAlias

import polars as pl
import pyarrow as pa

from eventkit.archive import head, ledger
from eventkit.archive.store import Store, open_store
from eventkit.archive.table import EventArchive
from eventkit.exceptions import EventDataError, EventkitWarning, SchemaError, foreign_errors, warn
from eventkit.schema import BANKING, EventSchema
from eventkit.sources.conform import ColumnMapping, complete
from eventkit.sources.files import read_events
from eventkit.sources.frames import as_polars
from eventkit.sources.upcast import UNMARKED_VERSION, UPCASTERS, Upcasters

__all__ = ["Events", "archive_of", "as_lazy", "is_eventkit_archive", "minor_digits_of",
           "open_archive"]

#: Events as every stage takes them: a frame of events (Polars; pandas and pyarrow frames
#: are read too), an archive, or a path :func:`open_archive` reads.
Events: TypeAlias = pl.LazyFrame | pl.DataFrame | pa.Table | EventArchive | str | Path


@foreign_errors(EventDataError, "open the events at {0}")
def open_archive(
    path: str | Path,
    *,
    mapping: ColumnMapping | dict[str, Any] | None = None,
    validate: bool = True,
    schema_version: int = UNMARKED_VERSION,
    upcasters: Upcasters = UPCASTERS,
    schema: EventSchema = BANKING,
    on_error: Literal["raise", "dead-letter"] = "raise",
    dead_letter: str | Path | None = None,
    storage_options: Mapping[str, str] | None = None,
    in_memory: bool = True,
    max_decoded_bytes: int | None = None,
) -> pl.LazyFrame:
    """Open events as a LazyFrame in the canonical schema, or in ``schema``.

    ``path`` may be an eventkit archive (a folder, or a URL such as
    ``s3://bucket/bank`` with credentials from the environment or
    ``storage_options``, see :mod:`eventkit.archive.store`), any other Delta
    table (column mapping, deletion vectors, checkpoints: see
    :mod:`eventkit.sources.delta`), a Parquet, CSV or NDJSON file, a folder of
    them (hive partitions such as ``day=2024-01-01/`` become columns), or a
    glob such as ``"exports/*.csv"``.
    ``mapping`` names the user's columns and units (see
    :class:`~eventkit.sources.conform.ColumnMapping`), the key columns included.
    ``schema`` (an :class:`~eventkit.schema.EventSchema`) says which columns to
    read and their types; by default the banking schema,
    whose ``account_id`` (and ``counterparty_id``) stay text when the data's
    ids are text (``"C1231006815"``, UUIDs).

    With ``validate`` (the default) one scan checks every value and raises an
    :class:`~eventkit.exceptions.EventDataError` naming the file, column and row
    of the first bad one. That scan decodes the events once and keeps them in
    memory: the LazyFrame returned reads the very rows that were checked (a file
    changed afterwards changes nothing), and its ``collect`` costs nothing more.
    For a source larger than memory pass ``in_memory=False``: a streaming pass
    checks it, and the LazyFrame scans the files again when collected (or use
    ``replay(..., engine="buckets")``, which does so). With
    ``on_error="dead-letter"`` bad rows are set aside instead: written with
    their problem to ``dead_letter`` (default: ``<path>.dead-letter.parquet``),
    the rest returned, with a :class:`~eventkit.exceptions.DeadLetterWarning`
    saying how many. An eventkit archive was checked on append and is returned
    as stored (run ``verify`` to prove it unchanged); one whose old events were
    expired warns (an :class:`~eventkit.exceptions.EventkitWarning`) that the
    frame has no opening states, so a replay of it is not the archive's (replay
    the archive itself).

    Files of older schema versions are upcast on load (see :mod:`eventkit.sources.upcast`):
    a file's version is its Parquet metadata ``eventkit.schema_version``, else a
    ``schema_version`` column (per row), else ``schema_version``. Upcasters see the
    columns under their canonical names (the mapping's renames applied first);
    the mapping's units then read the upcast values. Consecutive files of one
    version are read together, and any version no upcaster reaches raises
    :class:`~eventkit.exceptions.SchemaVersionError` naming the file.

    A file whose footer declares more than ``max_decoded_bytes`` decoded bytes
    (of the columns read; default: half the memory this process may use) is
    refused with an ``EventDataError`` before it is decoded: a small file can
    declare billions of values (see :mod:`eventkit.sources.budget`). An eventkit
    archive's own files were written and hashed by eventkit and are not checked.

    Examples
    --------
    >>> import tempfile, polars as pl
    >>> f = tempfile.mkdtemp() + "/seed.parquet"
    >>> pl.DataFrame({"accountId": [1, 1], "amount": [50.0, -20.0],
    ...               "timestamp": [1702468800, 1702472400]}).write_parquet(f)
    >>> events = open_archive(f, mapping={"account_id": "accountId",
    ...     "event_time": "timestamp", "amount_unit": "major", "time_unit": "s"})
    >>> events.select("account_id", "event_type", "amount").collect().rows()
    [(1, 'Deposit', 5000), (1, 'Withdrawal', 2000)]

    """
    store = open_store(path, storage_options)
    if is_eventkit_archive(store):
        if mapping is not None:
            msg = "an eventkit archive is already canonical; mapping applies to foreign data"
            raise SchemaError(msg, source=store.root)
        archive = EventArchive(store)
        expired = head.log_state(archive.store).expiries
        if expired:  # the frame holds no opening states: a replay of it would start from zero
            rec = expired[-1]
            made_for = (rec.get("rules") or {}).get("name")
            warn(f"{archive.location}: events dated before {rec.get('cutoff')} were expired "
                 f"(replaced by opening states of rule set {made_for!r}); this frame holds "
                 "the events after them only, so a replay of it starts every key from "
                 "nothing: replay the archive itself (eventkit.replay(path, rules)) for "
                 "answers that start from the opening states", EventkitWarning)
        return archive.scan()
    if not store.local:
        msg = ("no eventkit archive there: from object stores eventkit reads its own "
               "archives only (copy other files to a local folder, or scan them with Polars)")
        raise EventDataError(msg, source=store.root)
    return read_events(path, mapping=mapping, validate=validate, schema_version=schema_version,
                       upcasters=upcasters, schema=schema, on_error=on_error,
                       dead_letter=dead_letter, in_memory=in_memory,
                       max_decoded_bytes=max_decoded_bytes)


def is_eventkit_archive(root: Path | str | Store) -> bool:
    """True when ``root`` is an eventkit archive (a Delta table eventkit created)."""
    store = ledger.as_store(root)
    if store.local and not store.is_folder(ledger.LOG_DIR):
        return False
    record = ledger.read_commit(store, 0).record
    return record is not None and record.get("kind") == "create"


def archive_of(events: Events) -> EventArchive | None:
    """The eventkit archive ``events`` is or names, if it is one (else ``None``).

    Examples
    --------
    >>> archive_of(pl.LazyFrame()) is None
    True

    """
    if isinstance(events, EventArchive):
        return events
    if isinstance(events, str | Path) and is_eventkit_archive(events):
        return EventArchive(events)
    return None


def as_lazy(events: Events) -> pl.LazyFrame:
    """``events`` as a LazyFrame of events (an archive scanned, a path opened, a frame completed).

    A Polars, pandas or pyarrow frame gets its missing core columns derived
    and its times read (see :func:`eventkit.sources.conform.complete`).

    Examples
    --------
    >>> as_lazy(pl.DataFrame({"event_type": ["Deposit"], "event_time": ["2024-01-01Z"]})
    ...         ).collect().columns
    ['event_type', 'event_time', 'recorded_at', 'seq', 'event_id']

    """
    if isinstance(events, EventArchive):
        return events.scan()
    if isinstance(events, str | Path):
        return open_archive(events)
    return complete(as_polars(events, "events", paths=True).lazy())


def minor_digits_of(events: Events, mapping: ColumnMapping | dict[str, Any] | None = None
                    ) -> int:
    """Decimals of the minor unit ``events`` keep amounts in: an archive's own, else the mapping's.

    Displays divide amounts by ``10**minor_digits_of(...)`` (2 for cents).

    Examples
    --------
    >>> minor_digits_of(pl.LazyFrame(), {"amount_unit": "major", "minor_digits": 3})
    3

    """
    archive = archive_of(events)
    if archive is not None:
        return archive.minor_digits
    return ColumnMapping.parse(mapping).minor_digits
