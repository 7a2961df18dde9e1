"""Replay larger than memory: one bucket of accounts at a time, here or on a Dask cluster.

The accounts of different buckets are disjoint, so each bucket folds on its
own, with the bank's events (the rate table every account reads) added: the
union of the buckets' results is the in-memory engine's result, row for row.
A bucketed :class:`~eventkit.archive.EventArchive` is read bucket by bucket
(its record names each file's bucket); any other source is first split into
buckets by one streaming Polars pass into a scratch folder.

``engine="buckets"`` folds the buckets one after the other in this process:
peak memory is one bucket's, whatever the archive's size. ``engine="dask"``
makes each bucket a task on a ``dask.distributed`` cluster; tasks read the
events by path, so the workers must reach that path (and ``out``); Dask runs a
task again elsewhere when its worker dies.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from eventkit.archive import EventArchive
from eventkit.buckets import BANK_BUCKET, bucket_expr, bucket_of
from eventkit.exceptions import ScaleError
from eventkit.replay import ReplayResult
from eventkit.rules import RuleSet
from eventkit.schema import BANK_ACCOUNT, CANONICAL_SCHEMA
from eventkit.sources import is_eventkit_archive, open_archive
from eventkit.temporal import micros

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["BucketedReplay", "Engine", "replay_buckets"]

#: ``"memory"``: everything at once (default); ``"buckets"``: one bucket at a time here;
#: ``"dask"``: buckets as tasks on a Dask cluster.
Engine = Literal["memory", "buckets", "dask"]

#: Rows per bucket when a source that is not a bucketed archive is split on the fly.
ROWS_PER_BUCKET = 2_000_000
_ORDER = "#order"  # input position of each row of a split source (its log order)
_HISTORY = "history"


@dataclass(frozen=True)
class _Plan:
    """What a bucket task needs; small and picklable (the events are read by path)."""

    source: str  # an archive folder, or a folder of split buckets ("bucket=<b>/")
    archive: bool
    version: int | None
    rules: RuleSet
    known_at: int | None
    keys: tuple[int, ...] | None
    out: str | None
    at: int | None = None  # None: history and state; else: state at this instant


def _read(plan: _Plan, bucket: int) -> pl.DataFrame:
    """The events of one bucket and the bank's, in log order, filtered as the plan says."""
    if plan.archive:
        lf = EventArchive(plan.source).scan(version=plan.version, buckets=[bucket, BANK_BUCKET])
    else:
        parts = [Path(plan.source) / f"bucket={b}" for b in (bucket, BANK_BUCKET)]
        files = [str(p / "*.parquet") for p in parts if p.is_dir()]
        lf = pl.scan_parquet(files, hive_partitioning=False).sort(_ORDER)
    if plan.known_at is not None:
        lf = lf.filter(pl.col("recorded_at").dt.epoch("us") <= plan.known_at)
    if plan.keys is not None:
        lf = lf.filter(pl.col("account_id").is_in([*plan.keys, BANK_ACCOUNT]))
    names = lf.collect_schema().names()
    optional = [pl.lit(None, dtype=CANONICAL_SCHEMA[c]).alias(c)
                for c in ("counterparty_id", "rate") if c not in names]
    return lf.with_columns(optional).collect()


def _run(plan: _Plan, bucket: int) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """One bucket task: (history or None when written to ``out``, state)."""
    events = _read(plan, bucket)
    order = None
    if not plan.archive:  # the split source's log order, aligned with the history's rows
        order = events.filter(pl.col("account_id") != BANK_ACCOUNT)[_ORDER]
        events = events.drop(_ORDER)
    result = ReplayResult(events.lazy(), plan.rules)
    if plan.at is not None:
        return None, result.as_of(_instant(plan.at)).collect()
    history = result.history.collect()
    if order is not None:
        history = history.with_columns(order)
    state = result.state().collect()
    if plan.out is None:
        return history, state
    folder = Path(plan.out) / _HISTORY
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"bucket-{bucket:05d}.parquet"
    temp = folder / f".{final.name}.{uuid.uuid4().hex}"  # a task run twice writes it twice
    history.write_parquet(temp, compression="zstd", statistics=True)
    os.replace(temp, final)
    return None, state


class BucketedReplay:
    """A replay run bucket by bucket (see :func:`replay_buckets`).

    The same questions as :class:`~eventkit.replay.ReplayResult`, with the same
    answers: ``history``, ``state()``, ``as_of()``, ``violations()``. The first
    use of ``history`` or ``state()`` folds every bucket once (writing the
    histories to ``out`` when given); each ``as_of`` is one more pass.
    """

    def __init__(self, plan: _Plan, buckets: list[int],
                 runner: Callable[[_Plan, list[int]], list[Any]]) -> None:
        self._plan = plan
        self._buckets = buckets
        self._runner = runner
        self._done: tuple[pl.DataFrame | None, pl.DataFrame] | None = None
        self.rules = plan.rules

    @property
    def fingerprint(self) -> str:
        """The rule set's fingerprint."""
        return self.rules.fingerprint

    @property
    def buckets(self) -> list[int]:
        """The buckets folded (those that may hold wanted accounts)."""
        return list(self._buckets)

    @property
    def history(self) -> pl.LazyFrame:
        """Every event with the state after it, in log order, as the in-memory engine's.

        With ``out``, the histories are files ``<out>/history/bucket-NNNNN.parquet``
        (each in log order); this frame scans them and puts the rows in log order.
        """
        history, _ = self._fold()
        if history is not None:
            return history.lazy()
        lf = pl.scan_parquet(Path(self._plan.out or "") / _HISTORY / "bucket-*.parquet")
        if self._plan.archive:
            return lf.sort("seq")
        return lf.sort(_ORDER).drop(_ORDER)

    def state(self) -> pl.LazyFrame:
        """Final state per key, as :meth:`ReplayResult.state <eventkit.ReplayResult.state>`."""
        return self._fold()[1].lazy()

    def as_of(self, instant: datetime | date | str) -> pl.LazyFrame:
        """State per key at ``instant``, as :meth:`ReplayResult.as_of`: one pass."""
        at = micros(instant, param="as_of")
        parts = self._runner(replace(self._plan, at=at, out=None), self._buckets)
        return self._concat([state for _, state in parts]).lazy()

    def violations(self) -> pl.LazyFrame:
        """Events the rules refused to fold, with the reason (empty when none)."""
        history = self.history
        if "violation" not in history.collect_schema().names():
            return history.head(0).with_columns(violation=pl.lit(None, dtype=pl.String))
        return history.filter(pl.col("violation").is_not_null())

    def _fold(self) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        if self._done is None:
            parts = self._runner(self._plan, self._buckets)
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
            return ReplayResult(_no_events(), self.rules).state().collect()
        return pl.concat(frames).sort(self.rules.key)


def replay_buckets(
    events: EventArchive | str | Path,
    rules: RuleSet,
    *,
    engine: Literal["buckets", "dask"] = "buckets",
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
    >>> from eventkit import rulesets
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank", buckets=4)
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> _ = archive.append(pl.DataFrame({"event_id": ["a", "b", "c"], "account_id": [1, 2, 1],
    ...     "event_type": ["Deposit"] * 3, "event_time": t, "amount": [100, 20, 3]}))
    >>> result = replay_buckets(archive, rulesets.resolve("balance"))
    >>> result.state().select("account_id", "balance").collect().rows()
    [(1, 103), (2, 20)]

    """
    if rules.key != "account_id":
        msg = (f"rule set {rules.name!r} is keyed by {rules.key!r}; buckets hold accounts "
               "(account_id): use engine='memory'")
        raise ScaleError(msg, param="rules")
    runner = _runner(engine, client)
    plan = _Plan(source="", archive=True, version=None, rules=rules,
                 known_at=None if known_at is None else micros(known_at, param="known_at"),
                 keys=None if keys is None else tuple(int(k) for k in keys),
                 out=_out_folder(out))
    archive = _archive(events)
    if archive is not None and archive.buckets is not None:
        plan = replace(plan, source=str(archive.path.resolve()), version=archive.version)
        count = archive.buckets
        result_keep: object = None
    else:
        lf = archive.scan() if archive is not None else open_archive(events)
        scratch, result_keep = _scratch(plan.out)
        count = _split(lf, scratch)
        plan = replace(plan, source=str(scratch), archive=False)
    wanted = list(range(count)) if keys is None else sorted({bucket_of(k, count) for k in keys}
                                                          - {BANK_BUCKET})
    if not plan.archive:
        wanted = [b for b in wanted if (Path(plan.source) / f"bucket={b}").is_dir()]
    result = BucketedReplay(plan, wanted, runner)
    if isinstance(result_keep, str):  # the temporary split goes with the result
        weakref.finalize(result, shutil.rmtree, result_keep, ignore_errors=True)
    return result


def _archive(events: object) -> EventArchive | None:
    if isinstance(events, EventArchive):
        return events
    if isinstance(events, str | Path) and is_eventkit_archive(Path(events)):
        return EventArchive(events)
    if not isinstance(events, str | Path):
        msg = (f"the bucket and Dask engines read events by path, not from a "
               f"{type(events).__name__}; pass an archive or a Parquet path")
        raise ScaleError(msg, param="events")
    return None


def _out_folder(out: str | Path | None) -> str | None:
    if out is None:
        return None
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


def _runner(engine: str, client: Client | None) -> Callable[[_Plan, list[int]], list[Any]]:
    if engine == "buckets":
        if client is not None:
            msg = "a Dask client needs engine='dask'"
            raise ScaleError(msg, param="client")
        return lambda plan, buckets: [_run(plan, b) for b in buckets]
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

    def run(plan: _Plan, buckets: list[int]) -> list[Any]:
        tag = uuid.uuid4().hex[:8]
        futures = dask.map(_run, [plan] * len(buckets), buckets,
                           key=[f"eventkit-bucket-{b}-{tag}" for b in buckets])
        return dask.gather(futures)

    return run


def _empty_history(plan: _Plan) -> pl.DataFrame:
    history = ReplayResult(_no_events(), plan.rules).history.collect()
    return history if plan.archive else history.with_columns(pl.lit(0, pl.UInt32).alias(_ORDER))


def _no_events() -> pl.LazyFrame:
    return pl.LazyFrame(schema=CANONICAL_SCHEMA)


def _instant(at: int) -> datetime:
    return pl.select(pl.lit(at).cast(pl.Datetime("us", "UTC"))).item()
