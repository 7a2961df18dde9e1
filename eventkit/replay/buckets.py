"""Replay larger than memory: a few buckets of accounts at a time, here or on a Dask cluster.

The accounts of different buckets are disjoint, so each bucket folds on its
own, with the bank's events (the rate table every account reads) added: the
union of the buckets' results is the in-memory engine's result, row for row.
A bucketed :class:`~eventkit.archive.table.EventArchive` is read bucket by bucket
(its record names each file's bucket); any other source is first split into
buckets by one streaming Polars pass into a scratch folder.

Small buckets are folded together, a *step* of about :data:`ROWS_PER_STEP`
events at a time. ``engine="buckets"`` runs the steps in this process,
:data:`LOCAL_STEPS` at once: peak memory is that many steps', whatever the
archive's size. ``engine="dask"`` makes each step a task on a
``dask.distributed`` cluster; tasks read the events by path or URL, so the
workers must reach the archive and ``out``: a shared folder, or an object
store (``s3://…``: each worker reads its buckets' files from the store and
writes its histories there, with the archive's storage options or the
workers' environment); Dask runs a task again elsewhere when its worker dies.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from eventkit._typing import Engine
from eventkit.archive.buckets import BANK_BUCKET, bucket_expr, bucket_of
from eventkit.archive.open import Events, archive_of, open_archive
from eventkit.archive.retention import expiry_of
from eventkit.archive.store import is_url, open_store
from eventkit.archive.table import EventArchive
from eventkit.exceptions import ScaleError
from eventkit.replay.progress import Steps
from eventkit.replay.protocol import Window
from eventkit.replay.result import ReplayResult
from eventkit.rules.model import RuleSet
from eventkit.schema import BANK_ACCOUNT, CANONICAL_SCHEMA
from eventkit.timeutil import from_micros, micros

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["BucketedReplay", "replay_buckets"]

#: Rows per bucket when a source that is not a bucketed archive is split on the fly.
ROWS_PER_BUCKET = 2_000_000
#: Small buckets of an archive are folded together, up to about this many events a step.
ROWS_PER_STEP = 1_000_000
#: Steps the local engine runs at once (threads: one reads or writes while one folds).
LOCAL_STEPS = 2
_ORDER = "#order"  # input position of each row of a split source (its log order)
_HISTORY = "history"
_HISTORY_ONLY = ("event_id", "recorded_at")  # columns no state depends on

#: What a step answers: the history and state, the state only, or a temporal question.
Question = (tuple[Literal["history"]] | tuple[Literal["state"]] | tuple[Literal["as_of"], int]
            | tuple[Literal["at_times"], tuple[int, ...]] | tuple[Literal["between"], Any, Any])
#: Runs a plan's steps (here, or as Dask tasks) and returns their answers in order.
Runner = Callable[["_Plan", list["_Step"]], list[Any]]


@dataclass(frozen=True)
class _Plan:
    """What a step task needs; small and picklable (the events are read by path)."""

    source: str  # an archive folder or URL, or a folder of split buckets ("bucket=<b>/")
    archive: bool
    rules: RuleSet
    known_at: int | None
    keys: tuple[int, ...] | None
    out: str | None
    question: Question = ("history",)
    #: how the workers reach an archive or ``out`` in an object store (None: environment)
    storage_options: dict[str, str] | None = None


@dataclass(frozen=True)
class _Step:
    """Buckets folded together, and (from an archive) the data files each is read from.

    ``files`` holds one tuple of record entries per bucket, then the bank's: the
    commit log is checked once for all the steps, not by each.
    """

    buckets: tuple[int, ...]
    files: tuple[tuple[dict[str, Any], ...], ...] = ()
    last_seq: int | None = None


def _read(plan: _Plan, step: _Step, *, lean: bool, until: int | None) -> pl.DataFrame:
    """The events of the ``step``'s buckets and the bank's, filtered as the plan says.

    Each bucket is read on its own, in log order without a sort (a bucket's
    files do not interleave), then the next: every account's events are in log
    order, which is all a fold needs. ``lean`` leaves out the columns only a
    history shows; ``until`` the events after that instant.
    """
    if plan.archive:
        archive = EventArchive(plan.source, storage_options=_options(plan, plan.source))
        parts = [archive.scan_entries(f, last_seq=step.last_seq) for f in step.files]
    else:
        folders = [Path(plan.source) / f"bucket={b}" for b in (*step.buckets, BANK_BUCKET)]
        parts = [pl.scan_parquet(f / "*.parquet", hive_partitioning=False).sort(_ORDER)
                 for f in folders if f.is_dir()]
    lf = pl.concat(parts)
    if plan.known_at is not None:
        lf = lf.filter(pl.col("recorded_at").dt.epoch("us") <= plan.known_at)
    if plan.keys is not None:
        lf = lf.filter(pl.col("account_id").is_in([*plan.keys, BANK_ACCOUNT]))
    if until is not None:
        lf = lf.filter(pl.col("event_time").dt.epoch("us") <= until)
    names = lf.collect_schema().names()
    if lean:
        read_by_rules = set(plan.rules.columns)
        lf = lf.drop([c for c in _HISTORY_ONLY if c in names and c not in read_by_rules])
    optional = [pl.lit(None, dtype=CANONICAL_SCHEMA[c]).alias(c)
                for c in ("counterparty_id", "rate") if c not in names]
    return lf.with_columns(optional).collect()


def _run(plan: _Plan, step: _Step) -> Any:
    """One step task: the plan's question answered for the accounts of ``step``'s buckets.

    ``("history",)``: (history, or None when written to ``out``; state);
    ``("between", ...)``: (opening, changes); any other: one frame.
    """
    question = plan.question
    kind = question[0]
    until = None  # the last instant the question looks at: later events change nothing
    if question[0] == "as_of":
        until = question[1]
    elif question[0] == "at_times":
        until = max(question[1])
    elif question[0] == "between":
        until = micros(question[2], param="end")
    events = _read(plan, step, lean=kind in ("state", "as_of", "at_times"), until=until)
    order = None
    if not plan.archive:  # the split source's log order, aligned with the history's rows
        order = events.filter(pl.col("account_id") != BANK_ACCOUNT)[_ORDER]
        events = events.drop(_ORDER)
    result = ReplayResult(events.lazy(), plan.rules)
    if question[0] == "state":
        return result.state().collect()
    if question[0] == "as_of":
        return result.as_of(from_micros(question[1])).collect()
    if question[0] == "at_times":
        return result.at_times([from_micros(t) for t in question[1]]).collect()
    if question[0] == "between":
        window = result.between(question[1], question[2])
        return window.opening.collect(), window.changes.collect()
    history = result.history.collect()
    if order is not None:
        history = history.with_columns(order)
    state = result.state().collect()
    if plan.out is None:
        return history, state
    # lz4 without statistics: a few times cheaper to write than zstd, for files read whole
    buffer = io.BytesIO()
    history.write_parquet(buffer, compression="lz4", statistics=False)
    # written whole (a renamed temporary file, or one PUT): a task run twice writes it twice
    open_store(plan.out, _options(plan, plan.out)).write(
        f"{_HISTORY}/buckets-{step.buckets[0]:05d}-{step.buckets[-1]:05d}.parquet",
        buffer.getvalue())
    return None, state


def _options(plan: _Plan, location: str) -> dict[str, str] | None:
    """The storage options for ``location`` (only URLs take them)."""
    return plan.storage_options if is_url(location) else None


class BucketedReplay:
    """A replay run a step of buckets at a time (see :func:`replay_buckets`).

    The same questions as :class:`~eventkit.replay.ReplayResult`, with the same
    answers: ``history``, ``state()``, ``as_of()``, ``at_times()``,
    ``between()``, ``violations()``. Each is one pass over the buckets, kept for
    the next time (the first use of ``history`` writes the histories to ``out``
    when given, and answers ``state()`` too); ``state()``, ``as_of()`` and
    ``at_times()`` read only the columns a state depends on, and ``as_of()``,
    ``at_times()`` and ``between()`` only the events up to their last instant.

    Examples
    --------
    >>> import tempfile, polars as pl
    >>> from datetime import datetime, UTC
    >>> from eventkit import EventArchive, replay
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank", buckets=2)
    >>> t = [datetime(2024, m, 15, tzinfo=UTC) for m in (1, 2, 3)]
    >>> _ = archive.append(pl.DataFrame({"event_id": ["a", "b", "c"], "account_id": [1] * 3,
    ...     "event_type": ["Deposit"] * 3, "event_time": t, "amount": [100, 20, 3]}))
    >>> result = replay(archive, "balance", engine="buckets")
    >>> ends = ["2024-01-31", "2024-02-29", "2024-03-31"]
    >>> result.at_times(ends).select("balance").collect()["balance"].to_list()
    [100, 120, 123]
    >>> window = result.between("2024-02-01", "2024-03-31")
    >>> window.opening.collect()["balance"].to_list()
    [100]
    >>> window.changes.collect()["balance"].to_list()
    [120, 123]

    """

    def __init__(self, plan: _Plan, steps: list[_Step], runner: Runner) -> None:
        self._plan = plan
        self._steps = steps
        self._runner = runner
        self._done: tuple[pl.DataFrame | None, pl.DataFrame] | None = None
        self._state: pl.DataFrame | None = None
        self.rules = plan.rules

    @property
    def fingerprint(self) -> str:
        """The rule set's fingerprint."""
        return self.rules.fingerprint

    @property
    def buckets(self) -> list[int]:
        """The buckets folded (those that may hold wanted accounts)."""
        return [b for step in self._steps for b in step.buckets]

    @property
    def steps(self) -> list[tuple[int, ...]]:
        """The buckets folded together in each step (each a task on Dask)."""
        return [step.buckets for step in self._steps]

    @property
    def history(self) -> pl.LazyFrame:
        """Every event with the state after it, in log order, as the in-memory engine's.

        With ``out``, the histories are files ``<out>/history/buckets-FFFFF-LLLLL.parquet``
        (first and last bucket of each step); this frame scans them in log order.
        """
        history, _ = self._fold()
        if history is not None:
            return history.lazy()
        out = self._plan.out or ""
        lf = pl.scan_parquet(f"{out.rstrip('/')}/{_HISTORY}/buckets-*.parquet",
                             storage_options=_options(self._plan, out))
        if self._plan.archive:
            return lf.sort("seq")
        return lf.sort(_ORDER).drop(_ORDER)

    def state(self) -> pl.LazyFrame:
        """Final state per key, as :meth:`ReplayResult.state <eventkit.ReplayResult.state>`."""
        if self._done is not None:
            return self._done[1].lazy()
        if self._state is None:
            self._state = self._concat(self._ask(("state",)))
        return self._state.lazy()

    def as_of(self, instant: datetime | date | str) -> pl.LazyFrame:
        """State per key at ``instant``, as :meth:`ReplayResult.as_of`: one pass."""
        return self._concat(self._ask(("as_of", micros(instant, param="as_of")))).lazy()

    def at_times(self, instants: Sequence[datetime | date | str] | pl.Series) -> pl.LazyFrame:
        """State per key at each instant, as :meth:`ReplayResult.at_times`: one pass."""
        values = list(instants)
        grid = sorted(micros(v, param="instants") for v in values)
        distinct = tuple(sorted(set(grid)))
        parts = self._ask(("at_times", distinct)) if distinct else []
        if not parts:
            return _nothing(self.rules).at_times(values)
        key = self.rules.key
        found = pl.concat(parts).sort("instant", key)
        if len(distinct) < len(grid):  # an instant asked twice: its rows twice, as in memory
            slots = pl.DataFrame({"#at": grid}).with_row_index("#slot")
            found = (slots.join(found.with_columns(pl.col("instant").dt.epoch("us").alias("#at")),
                                on="#at").sort("#slot", key).drop("#slot", "#at"))
        return found.lazy()

    def between(self, start: datetime | date | str, end: datetime | date | str) -> Window:
        """The state at ``start`` and every change up to ``end``, as ``ReplayResult.between``."""
        empty = _nothing(self.rules).between(start, end)  # checks the instants before any work
        parts = self._ask(("between", start, end))
        if not parts:
            return empty
        key = self.rules.key
        return Window(pl.concat([o for o, _ in parts]).sort(key).lazy(),
                      pl.concat([c for _, c in parts]).sort(key, "event_time", "seq").lazy())

    def violations(self) -> pl.LazyFrame:
        """Events the rules refused to fold, with the reason (empty when none)."""
        history = self.history
        if "violation" not in history.collect_schema().names():
            return history.head(0).with_columns(violation=pl.lit(None, dtype=pl.String))
        return history.filter(pl.col("violation").is_not_null())

    def _ask(self, question: Question) -> list[Any]:
        return self._runner(replace(self._plan, question=question, out=None), self._steps)

    def _fold(self) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        if self._done is None:
            parts = self._runner(self._plan, self._steps)
            state = self._concat([s for _, s in parts])
            history = None
            if self._plan.out is None:
                frames = [h for h, _ in parts if h is not None]
                history = pl.concat(frames) if frames else _empty_history(self._plan)
                history = history.sort(_ORDER).drop(_ORDER) if not self._plan.archive \
                    else history.sort("seq")
            self._done = (history, state)
        return self._done

    def _concat(self, frames: list[pl.DataFrame]) -> pl.DataFrame:
        if not frames:
            return _nothing(self.rules).state().collect()
        return pl.concat(frames).sort(self.rules.key)


def replay_buckets(
    events: Events,
    rules: RuleSet,
    *,
    engine: Engine = "buckets",
    client: Client | None = None,
    out: str | Path | None = None,
    known_at: datetime | date | str | None = None,
    keys: Sequence[int] | None = None,
) -> BucketedReplay:
    """Replay ``events`` one bucket of accounts at a time; what ``replay(engine=...)`` runs.

    ``events`` is an eventkit archive (bucketed: read bucket by bucket; not
    bucketed: split first) or a path :func:`eventkit.open_archive` reads (split
    first, into ``<out>/_buckets`` or a temporary folder, removed when the result
    is). ``engine="dask"`` runs the buckets as tasks of ``client`` (default: the
    current Dask client); the workers read the events, the scratch folder and
    ``out`` by path. ``out`` (a new or empty folder) receives each bucket's
    history as Parquet instead of keeping them in memory. Rules must be keyed by
    ``account_id`` (the buckets' key).

    Examples
    --------
    >>> import tempfile
    >>> from datetime import datetime, UTC
    >>> from eventkit import rules
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank", buckets=4)
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> _ = archive.append(pl.DataFrame({"event_id": ["a", "b", "c"], "account_id": [1, 2, 1],
    ...     "event_type": ["Deposit"] * 3, "event_time": t, "amount": [100, 20, 3]}))
    >>> result = replay_buckets(archive, rules.resolve("balance"))
    >>> result.state().select("account_id", "balance").collect().rows()
    [(1, 103), (2, 20)]

    """
    if rules.key != "account_id":
        msg = (f"rule set {rules.name!r} is keyed by {rules.key!r}; buckets hold accounts "
               "(account_id): use engine='memory'")
        raise ScaleError(msg, param="rules")
    runner = _runner(engine, client)
    archive = _archive(events)
    options = None if archive is None else archive.store.storage_options
    plan = _Plan(source="", archive=True, rules=rules,
                 known_at=None if known_at is None else micros(known_at, param="known_at"),
                 keys=None if keys is None else tuple(int(k) for k in keys),
                 out=_out_folder(out, options), storage_options=options)
    if archive is not None and expiry_of(archive) is not None:
        msg = (f"{archive.location} expired events (eventkit.replay.expire.expire); its opening "
               "states are read by the memory engine only: replay it with engine='memory'")
        raise ScaleError(msg, param="engine")
    if archive is not None and archive.buckets is not None and _all_tagged(archive):
        plan = replace(plan, source=archive.address)
        count = archive.buckets
        result_keep: object = None
    else:
        if archive is not None:
            lf = archive.scan()
        else:  # _archive returned no archive: events is a path (it refuses anything else)
            assert isinstance(events, str | Path)
            lf = open_archive(events, in_memory=False)  # larger than memory: streamed
        scratch, result_keep = _scratch(None if plan.out and is_url(plan.out) else plan.out)
        count = _split(lf, scratch)
        plan = replace(plan, source=str(scratch), archive=False)
    wanted = list(range(count)) if keys is None else sorted({bucket_of(k, count) for k in keys}
                                                          - {BANK_BUCKET})
    if plan.archive:
        steps = _steps(archive, wanted)  # type: ignore[arg-type]
    else:
        steps = [_Step((b,)) for b in wanted if (Path(plan.source) / f"bucket={b}").is_dir()]
    result = BucketedReplay(plan, steps, runner)
    if isinstance(result_keep, str):  # the temporary split goes with the result
        weakref.finalize(result, shutil.rmtree, result_keep, ignore_errors=True)
    return result


def _all_tagged(archive: EventArchive) -> bool:
    """Whether every live file of a bucketed archive records its bucket.

    A compaction merges files across buckets and drops the tags: such an
    archive is split on the fly like an unbucketed one (slower, never wrong).
    """
    entries, _ = archive.live_entries(version=archive.version)
    return all(entry.get("bucket") is not None for entry in entries)


def _steps(archive: EventArchive, buckets: list[int]) -> list[_Step]:
    """``buckets`` cut into runs of about :data:`ROWS_PER_STEP` events; empty ones left out.

    The commit log is read and checked here, once; each step gets its files' entries.
    """
    entries, last_seq = archive.live_entries(version=archive.version)
    files: dict[int, list[dict[str, Any]]] = {}
    for entry in entries:
        if entry.get("bucket") is not None:
            files.setdefault(entry["bucket"], []).append(entry)
    bank = tuple(files.get(BANK_BUCKET, ()))
    runs: list[list[int]] = []
    size = ROWS_PER_STEP
    for bucket in buckets:
        rows = sum(int(e.get("rows", 0)) for e in files.get(bucket, ()))
        if not rows:
            continue
        if size + rows > ROWS_PER_STEP:
            runs.append([])
            size = 0
        runs[-1].append(bucket)
        size += rows
    return [_Step(tuple(run), (*(tuple(files[b]) for b in run), bank), last_seq)
            for run in runs]


def _archive(events: object) -> EventArchive | None:
    """The archive ``events`` is or names; None for another path; a frame is refused."""
    if not isinstance(events, EventArchive | str | Path):
        msg = (f"the bucket and Dask engines read events by path, not from a "
               f"{type(events).__name__}; pass an archive or a Parquet path")
        raise ScaleError(msg, param="events")
    return archive_of(events)


def _out_folder(out: str | Path | None, options: dict[str, str] | None) -> str | None:
    if out is None:
        return None
    if is_url(out):
        if open_store(out, options).list_files(""):
            msg = f"{out} is not empty; choose a new prefix for the results"
            raise ScaleError(msg, param="out")
        return str(out).rstrip("/")
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        msg = f"{folder} exists and is not an empty folder; choose a new folder for the results"
        raise ScaleError(msg, param="out")
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder.resolve())


def _scratch(out: str | None) -> tuple[Path, str | None]:
    """Where a source is split: ``<out>/_buckets``, or a temporary folder (to remove)."""
    if out is not None:
        return Path(out) / "_buckets", None
    folder = tempfile.mkdtemp(prefix="eventkit-buckets-")
    return Path(folder), folder


def _split(lf: pl.LazyFrame, folder: Path) -> int:
    """Split events into ``folder/bucket=<b>/`` in one streaming pass; return the count."""
    rows = int(lf.select(pl.len()).collect().item())
    count = max(1, -(-rows // ROWS_PER_BUCKET))
    (lf.with_row_index(_ORDER)
     .sink_parquet(pl.PartitionBy(folder, key=bucket_expr("account_id", count),
                                  include_key=False)))
    return count


def _runner(engine: str, client: Client | None) -> Runner:
    if engine == "buckets":
        if client is not None:
            msg = "a Dask client needs engine='dask'"
            raise ScaleError(msg, param="client")
        return _local
    if engine == "memory":
        msg = "out= and client= need engine='buckets' or 'dask' (not 'memory')"
        raise ScaleError(msg, param="engine")
    if engine != "dask":
        msg = f"engine must be 'memory', 'buckets' or 'dask', not {engine!r}"
        raise ScaleError(msg, param="engine")
    if client is None:
        from distributed import default_client  # noqa: PLC0415 (only the Dask engine needs it)

        try:
            client = default_client()
        except ValueError:
            msg = "engine='dask' needs a client: pass client=Client('tcp://scheduler:8786')"
            raise ScaleError(msg, param="client") from None
    dask = client

    def run(plan: _Plan, steps: list[_Step]) -> list[Any]:
        tag = uuid.uuid4().hex[:8]
        with _progress(plan, steps) as shown:
            futures = dask.map(_run, [plan] * len(steps), steps,
                               key=[f"eventkit-bucket-{s.buckets[0]}-{tag}" for s in steps])
            for future in futures:
                future.add_done_callback(lambda _done: shown.advance())
            return dask.gather(futures)

    return run


def _local(plan: _Plan, steps: list[_Step]) -> list[Any]:
    """The steps run here, :data:`LOCAL_STEPS` at a time (folds and Parquet I/O drop the GIL)."""
    with _progress(plan, steps) as shown:
        if len(steps) < 2 or LOCAL_STEPS < 2:
            done = []
            for step in steps:
                done.append(_run(plan, step))
                shown.advance()
            return done
        with ThreadPoolExecutor(LOCAL_STEPS) as pool:
            futures = [pool.submit(_run, plan, step) for step in steps]
            for future in futures:
                future.add_done_callback(lambda _done: shown.advance())
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:  # a failed step: the steps not started yet are not run
                    future.cancel()
                raise


def _progress(plan: _Plan, steps: list[_Step]) -> Steps:
    """The bar of a bucketed replay: steps of buckets done (the folds inside are quiet)."""
    return Steps(f"replay ({plan.rules.name}, {plan.question[0]}) by buckets", len(steps))


def _empty_history(plan: _Plan) -> pl.DataFrame:
    history = _nothing(plan.rules).history.collect()
    return history if plan.archive else history.with_columns(pl.lit(0, pl.UInt32).alias(_ORDER))


def _nothing(rules: RuleSet) -> ReplayResult:
    """The replay of no events: the answers' schemas, and the checks of their arguments."""
    return ReplayResult(pl.LazyFrame(schema=CANONICAL_SCHEMA), rules)
