"""The append-only, tamper-evident event archive.

An :class:`EventArchive` is a Delta table (``delta.appendOnly=true``) that only
eventkit writes. Each append is one atomic Delta commit whose ``commitInfo``
records the SHA-256 of the data file it adds, chained to the previous commit
(see :mod:`eventkit.archive.ledger`). Polars, DuckDB and Spark read it as any Delta
table; :meth:`EventArchive.verify` proves nothing was changed behind its back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

import polars as pl

from eventkit.archive import clock, datafiles, head, ledger
from eventkit.archive._append import (
    check_new_files,
    commit_batch,
    reject_known_ids,
    remember_ids,
)
from eventkit.archive._checks import (
    MAX_ID_BYTES,
    archive_schema,
    check_batch_columns,
    check_meta,
    check_new_archive,
    check_personal,
    check_raw_types,
    check_values,
    stale_streams,
)
from eventkit.archive._files import (
    clean_interrupted,
    create_table,
    delta_schema,
    read_files,
    tidying,
)
from eventkit.archive.buckets import bucket_parts, check_buckets
from eventkit.archive.declared import (
    Evolution,
    Layout,
    declaration,
    evolve,
    genesis_record,
    layout,
)
from eventkit.archive.lock import writer_lock
from eventkit.archive.receipt import AppendReceipt
from eventkit.archive.store import Store, open_store
from eventkit.archive.verify import VerifyReport, verify_log
from eventkit.exceptions import (
    AppendConflictError,
    ArchiveError,
    CorruptionError,
    ImmutabilityError,
    ParameterError,
    ScaleError,
    SchemaError,
    StaleVersionError,
    ValidationError,
    foreign_errors,
)
from eventkit.schema import BANK_ACCOUNT, EVENT_TYPES, EventSchema
from eventkit.sources.checks import ROW_COL, SOURCE_COL
from eventkit.sources.conform import ColumnMapping, conform
from eventkit.sources.frames import as_frame
from eventkit.sources.upcast import UPCASTERS, Upcasters

__all__ = ["AppendReceipt", "EventArchive"]


_FORMAT = 1
_ROWS_PER_FILE = 2_000_000
_TABLE_CONFIG = {"delta.appendOnly": "true"}


class EventArchive:
    """An append-only event archive on disk.

    Examples
    --------
    >>> import tempfile, polars as pl
    >>> from datetime import datetime, UTC
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> receipt = archive.append(pl.DataFrame({
    ...     "event_id": ["a1", "a2"], "account_id": [7, 7],
    ...     "event_type": ["Deposit", "Withdrawal"],
    ...     "event_time": [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)],
    ...     "amount": [10_000, 2_500]}))
    >>> receipt.rows, receipt.seq_start, receipt.seq_end
    (2, 0, 1)
    >>> archive.scan().select("seq", "amount").collect().rows()
    [(0, 10000), (1, 2500)]
    >>> archive.verify().ok
    True

    """

    @foreign_errors(ArchiveError, "open the archive {1}")
    def __init__(self, path: str | Path | Store, *,
                 storage_options: Mapping[str, str] | None = None) -> None:
        #: Where the archive's files are (see :mod:`eventkit.archive.store`).
        self.store = open_store(path, storage_options)
        #: The archive's location: its folder, or its URL (``s3://bucket/prefix``).
        self.location = self.store.root
        #: The archive's folder (a local archive), or its URL as text.
        self.path: Path | str = self.store.path("") if self.store.local else self.location
        #: Where any process finds it: the absolute folder, or the URL.
        self.address = str(self.store.path("").resolve()) if self.store.local else self.location
        genesis = ledger.read_commit(self.store, 0)
        if genesis.error is not None and not self.store.is_folder(ledger.LOG_DIR):
            msg = f"{self.location} is not an eventkit archive (no {ledger.LOG_DIR}/ folder)"
            raise ArchiveError(msg, path=self.location)
        if genesis.error is not None and ledger.log_versions(self.store):
            name = ledger.log_rel(0)
            msg = (f"{self.location}: the first commit ({name}) is missing or "
                   f"unreadable ({genesis.error}); run eventkit verify")
            raise CorruptionError(msg, path=self.location, file=self.store.uri(name))
        if genesis.record is None or genesis.record.get("kind") != "create":
            msg = (f"{self.location} is a Delta table but not an eventkit archive; "
                   "read it with eventkit.open_archive() instead")
            raise ArchiveError(msg, path=self.location)
        self._genesis = genesis.record
        #: the evolve records, the registered upcasters and the layout they give
        self._layout: tuple[list[dict[str, Any]], tuple[int, ...], Layout] | None = None
        self.event_types: tuple[str, ...] | None = (
            tuple(genesis.record["event_types"]) if genesis.record.get("event_types") else None
        )
        #: Personal columns (ciphertext, see :mod:`eventkit.archive.privacy`), pinned at creation.
        self.personal: tuple[str, ...] = tuple(genesis.record.get("personal") or ())
        #: Number of key buckets (see :mod:`eventkit.archive.buckets`); None: not bucketed.
        self.buckets: int | None = genesis.record.get("buckets")
        #: The stream key: the column(s) naming the stream each event belongs to.
        self.key: tuple[str, ...] = tuple(genesis.record.get("key") or ("account_id",))
        #: The key whose events a bucketed archive keeps in its shared bucket (read with
        #: every bucket): the bank's account 0 in the banking schema.
        shared = genesis.record.get("shared_key", BANK_ACCOUNT if self.key == ("account_id",)
                                    else None)
        self.shared_key: object = tuple(shared) if isinstance(shared, list) else shared
        #: Decimals of the minor unit amounts are stored in (2: cents), pinned at creation.
        self.minor_digits: int = genesis.record.get("minor_digits", 2)

    def _current(self, state: head.LogState | None = None) -> Layout:
        """The declared schema, stored columns and upcasters (as of ``state``, when given).

        Kept between calls: brought up to date by every read of the latest log
        state (:meth:`live_entries`, :meth:`append`), so a schema read costs nothing.
        """
        if state is None and self._layout is None:
            try:
                state = head.log_state(self.store)
            except CorruptionError:  # the damage is for scan and verify to name
                return layout(self._genesis, [])
        if state is not None:
            evolutions = state.evolutions
        else:
            assert self._layout is not None  # (read above when there was none)
            evolutions = self._layout[0]
        known = tuple(UPCASTERS._steps)  # upcasters registered since count too
        if self._layout is None or self._layout[:2] != (evolutions, known):
            self._layout = (list(evolutions), known, layout(self._genesis, evolutions))
        return self._layout[2]

    @property
    def schema(self) -> dict[str, pl.DataType]:
        """The stored columns: the declared ones, then ``subject`` and the personal ones."""
        return self._current().stored

    @property
    def declared(self) -> EventSchema:
        """The archive's schema: the banking one, or the one declared at creation (evolved)."""
        return self._current().declared

    @property
    def upcasters(self) -> Upcasters:
        """The schema versions this archive's files may have, and how each is brought up."""
        return self._current().upcasters

    def evolve(self, add: Mapping[str, Any], *, metadata: Sequence[str] = ()) -> Evolution:
        """Add columns (name -> type, as :meth:`create` takes them): one audited commit.

        Files already stored are never rewritten: rows written before read the
        new columns as null. The archive's schema version goes up by one; see
        :mod:`eventkit.archive.declared`. ``metadata`` marks added columns as
        per-event metadata.
        """
        with self.writing():
            done = evolve(self.store, self._current(head.log_state(self.store)), add,
                          metadata=metadata)
        self._layout = None
        return done

    @classmethod
    @foreign_errors(ArchiveError, "create an archive at {1}")
    def create(
        cls,
        path: str | Path,
        *,
        event_types: tuple[str, ...] | None | Literal["default"] = "default",
        personal: tuple[str, ...] = (),
        buckets: int | None = None,
        key: str | Sequence[str] | None = None,
        columns: Mapping[str, Any] | None = None,
        metadata: Sequence[str] | Mapping[str, Any] = (),
        required: Sequence[str] = (),
        shared_key: object = None,
        schema: EventSchema | None = None,
        storage_options: Mapping[str, str] | None = None,
        minor_digits: int = 2,
    ) -> EventArchive:
        """Create an empty archive at ``path`` (which must not hold one already).

        ``path`` is a folder or a URL of an object store (``s3://bucket/prefix``,
        ``gs://…``, ``az://…``; see :mod:`eventkit.archive.store`), whose
        credentials come from the environment or ``storage_options``.

        Without ``columns`` (or ``schema``) the archive holds the banking schema
        (:data:`~eventkit.schema.CANONICAL_SCHEMA`). ``key`` and ``columns``
        declare one's own (see :meth:`eventkit.schema.EventSchema.declare`): the
        key column(s) and payload columns with their types (``int``, ``float``,
        ``bool``, ``string``, ``date``, ``datetime``, ``money``, ``decimal(p,
        s)``, ``list[...]``, or a Polars type such as a struct), ``metadata``
        per-event metadata columns (causation or correlation ids, user, source),
        ``required`` payload columns never null; or pass ``schema``. Appends are
        checked against it: an unknown column, a missing required one, a value
        that does not convert exactly is refused, and nothing is written.
        ``event_types`` lists the types appends accept (default: the banking
        ones for the banking schema, any for one's own; ``None``: any).

        ``personal`` names personal fields (e.g. ``("name", "email",
        "iban")``): the archive then also stores a ``subject`` column (String,
        the data subject) and each personal field as ciphertext (Binary) that
        :func:`eventkit.archive.privacy.encrypt` made; plaintext is refused.
        ``buckets`` makes a bucketed archive (see :mod:`eventkit.archive.buckets`): each
        append stores one data file per non-empty bucket of keys; ``shared_key``
        is the key whose events every bucket reads (banking: account 0, the bank).
        ``minor_digits``: decimals of the currency's minor unit (amounts are
        stored in it; displays divide by ``10**minor_digits``).
        """
        ColumnMapping(minor_digits=minor_digits)  # checks it: 0..18
        if buckets is not None:
            check_buckets(buckets)
        declared = declaration(schema, key=key, columns=columns, metadata=metadata,
                               required=required, path=str(path))
        if event_types == "default":
            event_types = EVENT_TYPES if declared is None else declared.event_types
        store = open_store(path, storage_options)
        check_new_archive(store, personal, declared)
        stored = archive_schema(tuple(personal), declared)
        record = genesis_record(stored, declared, event_types=event_types, personal=personal,
                                buckets=buckets, shared_key=shared_key,
                                minor_digits=minor_digits, configuration=_TABLE_CONFIG,
                                path=store.root)
        record["digest"] = ledger.chain_digest(ledger.GENESIS, record)
        table = delta_schema(stored)  # checked before anything is made
        if store.local:
            store.path("").mkdir(parents=True, exist_ok=True)
        create_table(store, table, _TABLE_CONFIG, record)
        return cls(store)

    @property
    def version(self) -> int:
        """The latest commit version (0 for an empty archive), even of a damaged log."""
        try:
            return head.latest(self.store, lambda state: state.version)
        except CorruptionError:  # the damage is for scan and verify to name
            return ledger.log_versions(self.store)[-1]

    @property
    def head(self) -> str:
        """The head digest: save it elsewhere to detect a rewritten chain later."""
        return head.latest(self.store, lambda state: state.digest)

    @foreign_errors(ArchiveError, "scan {0.location}")
    def scan(
        self,
        *,
        version: int | None = None,
        verify: bool = True,
        buckets: Sequence[int] | None = None,
    ) -> pl.LazyFrame:
        """The events as a LazyFrame in the canonical schema, in log (``seq``) order.

        ``version`` reads the archive as it was after that commit (when a later
        compaction merged its files, from the merged files up to its last ``seq``).
        On a bucketed archive, ``buckets`` reads only the files of those buckets
        (include :data:`~eventkit.archive.buckets.BANK_BUCKET` for the bank's own events).

        Before anything is read, the commit log up to ``version`` is checked (every
        commit after the newest checkpoint present, parsed, written by eventkit and
        chained: cheap, see :mod:`eventkit.archive.head`) and, with ``verify`` (the
        default), every data file's size and SHA-256 against its record. A file
        that passed is not hashed again by this process while it stays untouched,
        so repeated scans cost one ``stat`` per file. Any damage raises
        :class:`~eventkit.exceptions.CorruptionError` naming the file. In an
        object store each file is checked as it is fetched to be read (one GET:
        the bytes are hashed, then parsed from memory), so damage is raised when
        the frame is collected.

        ``verify=False`` is the trusted fast path: data files are not hashed, so a
        change inside a data page may go unnoticed (values silently wrong); run
        :meth:`verify` on a schedule instead. Either way, a file the Parquet reader
        cannot read (missing, truncated, garbled: reader errors and panics) raises
        ``CorruptionError`` naming it when the frame is collected.
        """
        entries, last_seq = self.live_entries(version=version, buckets=buckets)
        return self.scan_entries(entries, last_seq=last_seq, verify=verify)

    def live_entries(
        self, *, version: int | None = None, buckets: Sequence[int] | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The record entries of the data files :meth:`scan` reads, and its last ``seq``.

        The commit log is checked as by :meth:`scan` (a cost that grows with the
        archive's files): a reader of many parts checks it once here and passes
        each part's entries to :meth:`scan_entries`. ``last_seq`` is None unless
        ``version`` is read from later merged files (rows after it are dropped).

        Examples
        --------
        >>> import tempfile
        >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank", buckets=2)
        >>> archive.live_entries()
        ([], None)

        """
        state = head.log_state(self.store, version=version)
        if version is None:
            self._current(state)
        entries = state.live
        last_seq = None
        if version is not None and not all(self.store.exists(e["path"]) for e in entries):
            entries, last_seq = ledger.merged_entries(self.store, version, entries)
        if buckets is not None:
            if self.buckets is None:
                msg = f"{self.location} is not a bucketed archive (create it with buckets=B)"
                raise ScaleError(msg, param="buckets")
            wanted = set(buckets)
            entries = [e for e in entries if e.get("bucket") in wanted]
        return entries, last_seq

    def scan_entries(self, entries: Sequence[dict[str, Any]], *, last_seq: int | None = None,
                     verify: bool = True) -> pl.LazyFrame:
        """The rows of the data files ``entries`` (from :meth:`live_entries`), as :meth:`scan`.

        Each file is checked (``verify``) and read as by :meth:`scan`; rows are in
        ``seq`` order when the files' ranges interleave, else in the files' order.

        Examples
        --------
        >>> import tempfile
        >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
        >>> archive.scan_entries([]).collect().height
        0

        """
        if self.store.local:  # a link never leads outside the folder, even when trusted
            for entry in entries:
                if verify:
                    datafiles.check_data_file(self.store, entry)
                else:
                    ledger.check_inside(self.store, entry["path"])
        lf = read_files(self.store, list(entries), self.schema,
                        check=verify and not self.store.local, upcasters=self.upcasters)
        return lf if last_seq is None else lf.filter(pl.col("seq") <= last_seq)

    def latest_meta(self, key: str) -> Any:
        """The value under ``key`` in the newest commit whose ``meta`` has it, else ``None``.

        Examples
        --------
        >>> import tempfile, polars as pl
        >>> from datetime import datetime, UTC
        >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
        >>> _ = archive.append(pl.DataFrame({"event_id": ["a"], "account_id": [1],
        ...     "event_type": ["Deposit"], "amount": [5],
        ...     "event_time": [datetime(2024, 1, 1, tzinfo=UTC)]}),
        ...     meta={"kafka/tx": {"0": 41}})
        >>> archive.latest_meta("kafka/tx"), archive.latest_meta("other")
        ({'0': 41}, None)

        """
        return head.latest(self.store, lambda state: state.meta.get(key))

    @foreign_errors(ArchiveError, "verify {0.location}")
    def verify(
        self,
        *,
        expect: str | None = None,
        on_bytes: Callable[[int], object] | None = None,
        since: str | None = None,
    ) -> VerifyReport:
        """Recompute the hash chain and every file's SHA-256; see :func:`verify_log`."""
        return verify_log(self.store, expect=expect, on_bytes=on_bytes, since=since)

    def __len__(self) -> int:
        return head.latest(self.store, lambda state: state.rows)

    def __repr__(self) -> str:
        return f"EventArchive({self.location!r})"

    @foreign_errors(ArchiveError, "append to {0.location}")
    def append(
        self,
        events: pl.DataFrame | pl.LazyFrame,
        *,
        mapping: ColumnMapping | dict[str, Any] | None = None,
        batch_id: str | None = None,
        recorded_at: Literal["now", "keep"] = "now",
        before_latest: clock.BeforeLatest = "raise",
        meta: dict[str, Any] | None = None,
        expected_version: int | None = None,
        schema_version: int | None = None,
        conflicts: Literal["archive", "stream"] = "archive",
    ) -> AppendReceipt:
        """Append a batch of events as one atomic commit.

        The archive assigns ``seq`` (continuing the log, in row order) and, by
        default, stamps ``recorded_at`` with the commit time. ``recorded_at=
        "keep"`` imports history with its own ``recorded_at`` column (which
        must not lie in the future). Transaction time never runs backwards: a
        ``recorded_at`` (kept, or the clock's after it stepped back) before the
        archive's latest raises, naming both instants, unless ``before_latest=
        "clamp"`` moves it up to the latest (see :mod:`eventkit.archive.clock`).
        Every row is checked before anything is written: a bad batch raises and
        leaves the archive exactly as it was.
        ``batch_id`` makes a retry idempotent: a batch id stored before is not
        stored again (the first receipt comes back with ``duplicate=True``).

        Beyond the canonical checks, an archive refuses nested columns, bytes
        that are not UTF-8 text, empty ids, ids over :data:`MAX_ID_BYTES` and
        types over :data:`MAX_TYPE_BYTES` bytes, NaN or infinite rates, and times
        outside 1900..2200 (sentinels such as 9999-12-31).

        ``meta`` (a JSON object of at most :data:`MAX_META_BYTES`) is stored in the
        same commit record as the events, covered by the hash chain, and read
        back with :meth:`latest_meta`: a consumer keeps its source positions there
        (e.g. Kafka offsets), so events and positions commit together or not at all.

        ``expected_version`` (optimistic concurrency): append only if the archive
        is still at that version, else raise :class:`StaleVersionError` and write
        nothing (the caller decided on state that has changed since). With
        ``conflicts="stream"`` only the batch's own streams count: the append is
        stale only if events of its keys (or global events: the shared key's,
        such as the bank's rate changes, which every stream's state follows) were
        appended after that version, so commands on unrelated streams never
        conflict.

        ``schema_version`` (see :mod:`eventkit.sources.upcast`; default: the archive's
        current one) stores a batch of an older schema version as it is (e.g.
        version 1: ``amount`` as float currency units): every check runs on the
        batch upcast to the current shape, the file keeps the old shape and its
        version (record and Parquet metadata), and reads upcast it. Plain Delta
        readers see the stored shape.

        When the receipt comes back the batch is on disk (files, commit and
        folders fsync-ed). Writers on one machine take turns (a file lock);
        a writer that still loses the race for the next commit (no shared lock,
        e.g. another host) writes nothing and raises :class:`AppendConflictError`:
        retry with the same ``batch_id``.
        """
        source = f"batch {batch_id}" if batch_id else "appended batch"
        if batch_id is not None and not (
                isinstance(batch_id, str) and 0 < len(batch_id.encode()) <= MAX_ID_BYTES):
            msg = f"batch_id must be non-empty text of at most {MAX_ID_BYTES} bytes"
            raise ValidationError(msg, source="appended batch")
        stored_meta = check_meta(meta, source)
        for param, value in (("expected_version", expected_version),
                             ("schema_version", schema_version)):
            if value is not None:
                head.check_version(value, param)
        if conflicts not in ("archive", "stream"):
            msg = f"must be 'archive' or 'stream', not {conflicts!r}"
            raise ParameterError(msg, param="conflicts")
        current = head.latest(self.store, self._current)
        declared, upcasters = current.declared, current.upcasters
        schema_version = upcasters.current if schema_version is None else schema_version
        batch = as_frame(events, source)
        check_batch_columns(batch, mapping, recorded_at, source, self.personal, declared,
                            self.minor_digits)
        if batch.height == 0:
            msg = "empty batch: nothing to append"
            raise ValidationError(msg, source=source)
        batch = check_raw_types(batch, ColumnMapping.parse(mapping), source, declared)
        original = batch
        if schema_version != upcasters.current:
            if mapping is not None:
                msg = "a batch of an older schema version is stored as it is: no mapping"
                raise SchemaError(msg, source=source)
            batch = upcasters.upcast(batch.lazy(), schema_version, source=source).collect()
        framed = batch.lazy().with_columns(
            pl.lit(source).alias(SOURCE_COL), pl.int_range(pl.len()).alias(ROW_COL)
        )
        conformed = conform(framed, ColumnMapping.parse(mapping), source=source,
                            schema=declared, keep_extra=bool(self.personal),
                            event_types=self.event_types)
        rows = conformed.collect(source=source)  # checked in the pass that converts
        check_personal(rows, self.personal, source)
        rows = rows.with_columns(
            (pl.col(c) if c in rows.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in self.schema.items() if c not in declared.columns)

        check_values(rows, source, check_recorded_at=recorded_at == "keep")

        with self.writing():
            # the verified head: checks the commits since this process last looked (and,
            # hashed once per process, the data files added since) before chaining to it
            state = head.log_state(self.store)
            if self._current(state) is not current:
                msg = (f"{self.location}: the archive's columns changed (evolve) while the "
                       "batch was checked; nothing was written, retry the append")
                raise AppendConflictError(msg, path=self.location)
            check_new_files(self.store, state)
            clean_interrupted(self.store, state.version, state.live)
            last = state.record
            if batch_id is not None and (old := state.batches.get(batch_id)) is not None:
                return AppendReceipt(old[0], batch_id, old[1], old[2], old[3], old[4],
                                     duplicate=True)
            if expected_version is not None and state.version != expected_version:
                moved = (stale_streams(self.store, state.live, self.schema, upcasters, rows,
                                       self.key, expected_version, self.shared_key)
                         if conflicts == "stream" else "the archive")
                if moved is not None:
                    msg = (f"stale append: the archive is at version {state.version}, not "
                           f"the expected {expected_version}, and {moved} changed since; "
                           "read the state again and retry")
                    raise StaleVersionError(msg, path=self.location,
                                            expected=expected_version, actual=state.version)
            reject_known_ids(self.store, state.live, rows, self.schema, source,
                             upcasters=upcasters)
            start = last.get("seq", [-1, -1])[1] + 1
            stamp = clock.stamp(rows, mode=recorded_at, latest=last.get("recorded_until"),
                                before_latest=before_latest, source=source, path=self.location)
            stored = stamp.with_columns(
                seq=pl.int_range(start, start + rows.height, dtype=pl.Int64)
            ).select(list(self.schema))
            recorded_until = cast("datetime", stored["recorded_at"].max())  # no nulls
            if schema_version != upcasters.current:  # the old shape of what the steps change
                kept = upcasters.stored_schema(schema_version, self.schema)
                changed = {c for s in upcasters.chain(schema_version) for c in s.changes}
                stored = stored.with_columns(original[c].cast(kept[c]) for c in changed
                                             if c in kept).select(list(kept))
            named = batch_id or uuid.uuid4().hex
            parts = bucket_parts(stored, self.key, self.buckets, self.shared_key, _ROWS_PER_FILE)
            record = commit_batch(
                self.store, state, list(parts), batch_id=named, start=start,
                rows=stored.height, recorded_until=recorded_until, key=self.key,
                meta=stored_meta, schema_version=schema_version)
            state.live.extend(record["files"])
            remember_ids(self.store, state.live, stored["event_id"])
            with tidying():
                clean_interrupted(self.store, state.version + 1, state.live)
            return AppendReceipt(state.version + 1, named, stored.height, start,
                                 start + stored.height - 1, record["digest"])

    def delete(self, *_: object, **__: object) -> None:
        """Refused: an archive never forgets events. Append a ``Correction`` instead."""
        msg = ("an eventkit archive is append-only: events cannot be deleted; append a "
               "Correction event to reverse an effect")
        raise ImmutabilityError(msg, path=self.location)

    def overwrite(self, *_: object, **__: object) -> None:
        """Refused: an archive is never rewritten. Create a new archive instead."""
        msg = "an eventkit archive is append-only: it cannot be overwritten"
        raise ImmutabilityError(msg, path=self.location)

    update = overwrite

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the archive's writer lock: appends, compaction and expiry wait for each other.

        Readers never take it. Raises :class:`~eventkit.exceptions.AppendConflictError`
        when another writer holds it for longer than :data:`~eventkit.archive.lock.TIMEOUT_S`.
        In an object store there is no lock: writers race for the next version (a
        conditional write, checked once per process by ``Store.check_atomic``) and
        the loser gets ``AppendConflictError``.
        """
        if not self.store.local:
            self.store.check_atomic()
        with writer_lock(self.store.path("")) if self.store.local else nullcontext():
            yield
