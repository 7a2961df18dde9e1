"""Replay larger than memory: a few buckets of accounts at a time, here or on a Dask cluster.

The keys of different buckets are disjoint, so each bucket folds on its own,
with the rule set's global events (the bank's rate table every account reads)
added: the union of the buckets' results is the in-memory engine's result,
row for row. A bucketed :class:`~eventkit.archive.table.EventArchive` bucketed
by the rule set's key is read bucket by bucket (its record names each file's
bucket); any other source (or an archive bucketed by another key) is first
split into buckets of the rule set's key, by its stable hash (see
:mod:`eventkit.archive.buckets`), in one streaming Polars pass into a scratch
folder.

Small buckets are folded together, a *step* of about :data:`ROWS_PER_STEP`
events at a time. ``engine="buckets"`` runs the steps in this process,
:data:`~eventkit.replay.runners.LOCAL_STEPS` at once: peak memory is that many steps', whatever the
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
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from eventkit._typing import Engine
from eventkit.archive.buckets import SHARED_BUCKET, bucket_expr, bucket_of
from eventkit.archive.open import Events, archive_of, open_archive
from eventkit.archive.retention import expiry_of
from eventkit.archive.store import is_url, open_store
from eventkit.archive.table import EventArchive
from eventkit.exceptions import CoverageError, CoverageWarning, ScaleError, warn
from eventkit.replay import runners
from eventkit.replay.columns import check_columns, columns_read
from eventkit.replay.engine import Coverage, selection_expr
from eventkit.replay.folders import out_folder, scratch_folder
from eventkit.replay.progress import Steps
from eventkit.replay.protocol import Window
from eventkit.replay.result import ReplayResult, coverage
from eventkit.rules.model import RuleSet
from eventkit.rules.streams import global_expr, key_filter
from eventkit.timeutil import from_micros, micros, micros_each

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["BucketedReplay", "replay_buckets"]

#: Rows per bucket when a source that is not a bucketed archive is split on the fly.
ROWS_PER_BUCKET = 2_000_000
#: Small buckets of an archive are folded together, up to about this many events a step.
ROWS_PER_STEP = 1_000_000
_ORDER = "#order"  # input position of each row of a split source (its log order)
_HISTORY = "history"
_HISTORY_ONLY = ("event_id", "recorded_at")  # columns no state depends on

#: What a step answers: the history and state, the state only, or a temporal question.
Question = (tuple[Literal["history"]] | tuple[Literal["state"]]
            | tuple[Literal["as_of"], int, bool]  # (the instant, and whether accrued)
            | tuple[Literal["at_times"], tuple[int, ...]] | tuple[Literal["between"], Any, Any])
#: Runs a plan's steps (here, or as Dask tasks) and returns their answers in order.
Runner = Callable[["_Plan", list["_Step"]], list[Any]]  # the steps' answers, in order


@dataclass(frozen=True)
class _Plan:
    """What a step task needs; small and picklable (the events are read by path)."""

    source: str  # an archive folder or URL, or a folder of split buckets ("bucket=<b>/")
    archive: bool
    rules: RuleSet
    known_at: int | None
    keys: tuple[Any, ...] | None
    out: str | None
    schema: dict[str, pl.DataType]
    question: Question = ("history",)
    #: how the workers reach an archive or ``out`` in an object store (None: environment)
    storage_options: dict[str, str] | None = None


@dataclass(frozen=True)
class _Step:
    """Buckets folded together, and (from an archive) the data files each is read from.

    ``files`` holds one tuple of record entries per bucket, then the shared
    bucket's (its global events are read by every step): the commit log is
    checked once for all the steps, not by each.
    """

    buckets: tuple[int, ...]
    files: tuple[tuple[dict[str, Any], ...], ...] = ()
    last_seq: int | None = None


def _read(plan: _Plan, step: _Step, *, lean: bool, until: int | None) -> pl.DataFrame:
    """The events of the ``step``'s buckets and the global ones, filtered as the plan says.

    Each bucket is read on its own, in log order without a sort (a bucket's
    files do not interleave), then the next: every key's events are in log
    order, which is all a fold needs. The shared bucket's global events come
    last (a step that folds the shared bucket's own stream reads it whole).
    ``lean`` leaves out the columns only a history shows; ``until`` the
    events after that instant.
    """
    rules = plan.rules
    if plan.archive:
        archive = EventArchive(plan.source, storage_options=_options(plan, plan.source))
        parts = [archive.scan_entries(f, last_seq=step.last_seq) for f in step.files[:-1]]
        if SHARED_BUCKET not in step.buckets:
            shared = archive.scan_entries(step.files[-1], last_seq=step.last_seq)
            parts.append(shared.filter(global_expr(rules, shared.collect_schema())))
    else:
        folders = [Path(plan.source) / f"bucket={b}" for b in (*step.buckets, SHARED_BUCKET)]
        parts = [pl.scan_parquet(f / "*.parquet", hive_partitioning=False).sort(_ORDER)
                 for f in folders if f.is_dir()]
    lf = pl.concat(parts, how="diagonal_relaxed") if parts else pl.LazyFrame(schema=plan.schema)
    if plan.known_at is not None:
        lf = lf.filter(pl.col("recorded_at").dt.epoch("us") <= plan.known_at)
    if plan.keys is not None:
        lf = lf.filter(key_filter(rules, plan.keys, lf.collect_schema()))
    if until is not None:
        lf = lf.filter(pl.col("event_time").dt.epoch("us") <= until)
    names = lf.collect_schema().names()
    if lean:
        read_by_rules = columns_read(rules.check())
        lf = lf.drop([c for c in _HISTORY_ONLY if c in names and c not in read_by_rules])
    return lf.collect()


def _run(plan: _Plan, step: _Step) -> Any:
    """One step task: the plan's question answered for the keys of ``step``'s buckets.

    ``("history",)``: (history, or None when written to ``out``; state);
    ``("between", ...)``: (opening, changes); any other: one frame.
    (The replay checks which event types occur once, for the whole replay.)
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoverageWarning)
        return _answer(plan, step, ReplayResult(events.lazy(), plan.rules))


def _label(bucket: int) -> str:
    """A bucket as history files name it: its number, or ``shared``."""
    return "shared" if bucket == SHARED_BUCKET else f"{bucket:05d}"


def _answer(plan: _Plan, step: _Step, result: ReplayResult) -> Any:
    question = plan.question
    if question[0] == "state":
        return result.state().collect()
    if question[0] == "as_of":
        return result.as_of(from_micros(question[1]), accrued=question[2]).collect()
    if question[0] == "at_times":
        return result.at_times([from_micros(t) for t in question[1]]).collect()
    if question[0] == "between":
        window = result.between(question[1], question[2])
        changes = window.changes.collect()
        return window.opening.collect(), changes.drop(_ORDER, strict=False)
    history = result.history.collect()  # (a split source's rows carry their log order)
    state = result.state().collect()
    if plan.out is None:
        return history, state
    # lz4 without statistics: a few times cheaper to write than zstd, for files read whole
    buffer = io.BytesIO()
    history.write_parquet(buffer, compression="lz4", statistics=False)
    # written whole (a renamed temporary file, or one PUT): a task run twice writes it twice
    open_store(plan.out, _options(plan, plan.out)).write(
        f"{_HISTORY}/buckets-{_label(step.buckets[0])}-{_label(step.buckets[-1])}.parquet",
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

    def __init__(self, plan: _Plan, steps: list[_Step], runner: Runner, *,
                 types: Callable[[], Coverage] | None = None, strict: bool = False) -> None:
        self._plan = plan
        self._steps = steps
        self._runner = runner
        self._done: tuple[pl.DataFrame | None, pl.DataFrame] | None = None
        self._state: pl.DataFrame | None = None
        self.rules = plan.rules
        self._types = types
        self._strict = strict

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
        (first and last bucket of each step; ``shared`` for the shared bucket, whose
        key's own events are folded too); this frame scans them in log order.
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

    def as_of(self, instant: datetime | date | str, *, accrued: bool = False) -> pl.LazyFrame:
        """State per key at ``instant``, as :meth:`ReplayResult.as_of` (``accrued`` too)."""
        at = micros(instant, param="as_of")
        if accrued:  # checks the rules have interest before any work
            _nothing(self._plan).as_of(from_micros(at), accrued=True)
        parts = self._ask(("as_of", at, accrued))
        if not parts:
            return _nothing(self._plan).as_of(from_micros(at), accrued=accrued)
        return pl.concat(parts).sort(self.rules.key_columns).lazy()

    def at_times(self, instants: Sequence[datetime | date | str] | pl.Series) -> pl.LazyFrame:
        """State per key at each instant, as :meth:`ReplayResult.at_times`: one pass."""
        grid = sorted(micros_each(instants, param="instants"))
        distinct = tuple(sorted(set(grid)))
        parts = self._ask(("at_times", distinct)) if distinct else []
        if not parts:
            return _nothing(self._plan).at_times([from_micros(t) for t in grid])
        key = list(self.rules.key_columns)
        found = pl.concat(parts).sort("instant", *key)
        if len(distinct) < len(grid):  # an instant asked twice: its rows twice, as in memory
            slots = pl.DataFrame({"#at": grid}).with_row_index("#slot")
            found = (slots.join(found.with_columns(pl.col("instant").dt.epoch("us").alias("#at")),
                                on="#at").sort("#slot", *key).drop("#slot", "#at"))
        return found.lazy()

    def between(self, start: datetime | date | str, end: datetime | date | str) -> Window:
        """The state at ``start`` and every change up to ``end``, as ``ReplayResult.between``."""
        empty = _nothing(self._plan).between(start, end)  # checks the instants before any work
        parts = self._ask(("between", start, end))
        if not parts:
            return empty
        key = list(self.rules.key_columns)
        return Window(pl.concat([o for o, _ in parts]).sort(key).lazy(),
                      pl.concat([c for _, c in parts]).sort(*key, "event_time", "seq").lazy())

    def violations(self) -> pl.LazyFrame:
        """Events the rules refused to fold, with the reason (empty when none)."""
        history = self.history
        if "violation" not in history.collect_schema().names():
            return history.head(0).with_columns(violation=pl.lit(None, dtype=pl.String))
        return history.filter(pl.col("violation").is_not_null())

    def _check(self) -> None:
        """Which event types occur, once per replay (see :func:`eventkit.replay`)."""
        if self._types is None:
            return
        met, self._types = self._types(), None
        problem = coverage(self.rules, met, declared=self._declared(), strict=self._strict)
        if problem is not None and self._strict:
            raise CoverageError(problem)
        if problem is not None:
            warn(problem, CoverageWarning)

    def _declared(self) -> tuple[str, ...] | None:
        return EventArchive(self._plan.source).event_types if self._plan.archive else None

    def _ask(self, question: Question) -> list[Any]:
        self._check()
        return self._runner(replace(self._plan, question=question, out=None), self._steps)

    def _fold(self) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        if self._done is None:
            self._check()
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
            return _nothing(self._plan).state().collect()
        return pl.concat(frames).sort(self.rules.key_columns)


def replay_buckets(
    events: Events,
    rules: RuleSet,
    *,
    engine: Engine = "buckets",
    client: Client | None = None,
    out: str | Path | None = None,
    known_at: datetime | date | str | None = None,
    keys: Sequence[Any] | None = None,
    strict: bool = False,
) -> BucketedReplay:
    """Replay ``events`` one bucket of keys at a time; what ``replay(engine=...)`` runs.

    ``events`` is an eventkit archive (bucketed by the rule set's key: read
    bucket by bucket; else split first) or a path :func:`eventkit.open_archive`
    reads (split first, into ``<out>/_buckets`` or a temporary folder, removed
    when the result is). ``engine="dask"`` runs the buckets as tasks of
    ``client`` (default: the current Dask client); the workers read the
    events, the scratch folder and ``out`` by path. ``out`` (a new or empty
    folder) receives each bucket's history as Parquet instead of keeping them
    in memory. Keys of any type (text, composite) are bucketed by eventkit's
    stable hash.

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
    runner = _runner(engine, client)
    archive = _archive(events)
    options = None if archive is None else archive.store.storage_options
    if archive is not None and expiry_of(archive) is not None:
        msg = (f"{archive.location} expired events (eventkit.replay.expire.expire); its opening "
               "states are read by the memory engine only: replay it with engine='memory'")
        raise ScaleError(msg, param="engine")
    direct = archive is not None and _direct(archive, rules)
    if archive is not None:  # (the steps check the files they read; a split reads them all)
        lf = archive.scan(verify=not direct)
    else:  # _archive returned no archive: events is a path (it refuses anything else)
        assert isinstance(events, str | Path)
        lf = open_archive(events, in_memory=False)  # larger than memory: streamed
    schema = dict(lf.collect_schema())
    check_columns(rules.check(), schema)
    plan = _Plan(source="", archive=True, rules=rules,
                 known_at=None if known_at is None else micros(known_at, param="known_at"),
                 keys=None if keys is None else tuple(keys), out=out_folder(out, options),
                 schema=schema, storage_options=options)
    if archive is not None and direct:
        plan = replace(plan, source=archive.address)
        count = archive.buckets or 0
        shared_key = archive.shared_key
        result_keep: object = None
        wanted = [*range(count), SHARED_BUCKET] if keys is None else sorted(
            {SHARED_BUCKET if k == shared_key else bucket_of(k, count) for k in keys})
        steps = _steps(archive, wanted)
    else:
        scratch, result_keep = scratch_folder(None if plan.out and is_url(plan.out) else plan.out)
        count = _split(lf, scratch, rules)
        plan = replace(plan, source=str(scratch), archive=False)
        wanted = list(range(count)) if keys is None else sorted(
            {bucket_of(k, count) for k in keys})
        steps = [_Step((b,)) for b in wanted if (Path(plan.source) / f"bucket={b}").is_dir()]
    result = BucketedReplay(plan, steps, runner, types=lambda: _types(lf, rules),
                            strict=strict)
    if isinstance(result_keep, str):  # the temporary split goes with the result
        weakref.finalize(result, shutil.rmtree, result_keep, ignore_errors=True)
    return result


def _direct(archive: EventArchive, rules: RuleSet) -> bool:
    """Whether the archive's own buckets serve these rules (else the events are split).

    They do when the archive is bucketed by the rule set's key, every live file
    still records its bucket, and the rules' global events (if any) are the
    events of the archive's shared key, which every bucket reads.
    """
    shared = rules.global_events
    return (archive.buckets is not None and archive.key == rules.key_columns
            and (shared is None or (archive.shared_key is not None
                                    and shared.key == archive.shared_key))
            and _all_tagged(archive))


def _types(lf: pl.LazyFrame, rules: RuleSet) -> Coverage:
    """The event types the rules fold, handled or not: one scan of a few columns."""
    checked = rules.check()
    schema = lf.collect_schema()
    found = (lf.filter(~global_expr(rules, schema) & selection_expr(checked))
             .select(pl.col("event_type").unique()).collect(engine="streaming")
             ["event_type"].to_list())
    handled = set(checked.assignments)
    return Coverage(tuple(t for t in checked.assignments if t in found),
                    tuple(sorted(str(t) for t in found if t not in handled)))


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
    bank = tuple(files.get(SHARED_BUCKET, ()))
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


def _split(lf: pl.LazyFrame, folder: Path, rules: RuleSet) -> int:
    """Split events into ``folder/bucket=<b>/`` by the rule set's key, in one streaming pass.

    The rules' global events go to the shared bucket, which every step reads.
    Returns the number of buckets.
    """
    rows = int(lf.select(pl.len()).collect().item())
    count = max(1, -(-rows // ROWS_PER_BUCKET))
    shared = global_expr(rules, lf.collect_schema())
    (lf.with_row_index(_ORDER)
     .sink_parquet(pl.PartitionBy(folder, key=bucket_expr(rules.key_columns, count,
                                                            shared=shared),
                                  include_key=False)))
    return count


def _runner(engine: str, client: Client | None) -> Runner:
    run = runners.runner(engine, client)
    return lambda plan, steps: run(_run, [(plan, step) for step in steps],
                                   _progress(plan, steps),
                                   [f"eventkit-bucket-{step.buckets[0]}" for step in steps])


def _progress(plan: _Plan, steps: list[_Step]) -> Steps:
    """The bar of a bucketed replay: steps of buckets done (the folds inside are quiet)."""
    return Steps(f"replay ({plan.rules.name}, {plan.question[0]}) by buckets", len(steps))


def _empty_history(plan: _Plan) -> pl.DataFrame:
    history = _nothing(plan).history.collect()
    return history if plan.archive else history.with_columns(pl.lit(0, pl.UInt32).alias(_ORDER))


def _nothing(plan: _Plan) -> ReplayResult:
    """The replay of no events: the answers' schemas, and the checks of their arguments."""
    return ReplayResult(pl.LazyFrame(schema=plan.schema), plan.rules)
