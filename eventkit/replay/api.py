"""The front doors of the replay stage: :func:`replay` and :func:`snapshot`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import polars as pl

from eventkit._typing import Engine, Instant
from eventkit.archive.open import Events, archive_of, as_lazy
from eventkit.archive.retention import expiry_of
from eventkit.archive.table import EventArchive
from eventkit.exceptions import (
    EventDataError,
    ScaleError,
    SnapshotError,
    foreign_errors,
)
from eventkit.replay import snapshots as stored_sets
from eventkit.replay.buckets import BucketedReplay, replay_buckets
from eventkit.replay.columns import check_columns, columns_read
from eventkit.replay.progress import Steps
from eventkit.replay.protocol import Replayed
from eventkit.replay.result import ReplayResult
from eventkit.replay.snapshots import Snapshots, by_key
from eventkit.rules import registry
from eventkit.rules.model import RuleSet
from eventkit.rules.streams import key_filter, key_frame
from eventkit.schema import CANONICAL_SCHEMA
from eventkit.timeutil import micros

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["replay", "snapshot"]


@overload
def replay(events: Events, rules: RuleSet | str | Path = ..., *,
           known_at: Instant | None = ..., keys: Sequence[Any] | None = ...,
           snapshots: bool = ..., engine: Literal["memory"] | None = ..., client: None = ...,
           out: None = ..., strict: bool = ..., version: int | None = ...) -> ReplayResult: ...


@overload
def replay(events: Events, rules: RuleSet | str | Path = ..., *,
           known_at: Instant | None = ..., keys: Sequence[Any] | None = ...,
           snapshots: bool = ..., engine: Literal["buckets", "dask"],
           client: Client | None = ..., out: str | Path | None = ...,
           strict: bool = ..., version: None = ...) -> BucketedReplay: ...


@overload  # a client and no engine: the Dask engine
def replay(events: Events, rules: RuleSet | str | Path = ..., *,
           known_at: Instant | None = ..., keys: Sequence[Any] | None = ...,
           snapshots: bool = ..., engine: None = ..., client: Client,
           out: str | Path | None = ..., strict: bool = ...,
           version: None = ...) -> BucketedReplay: ...


@overload  # an engine known only at run time
def replay(events: Events, rules: RuleSet | str | Path = ..., *,
           known_at: Instant | None = ..., keys: Sequence[Any] | None = ...,
           snapshots: bool = ..., engine: Engine | None = ..., client: Client | None = ...,
           out: str | Path | None = ..., strict: bool = ..., version: int | None = ...
           ) -> ReplayResult | BucketedReplay: ...


@foreign_errors(EventDataError, "replay")
def replay(
    events: Events,
    rules: RuleSet | str | Path = "balance",
    *,
    known_at: Instant | None = None,
    keys: Sequence[Any] | None = None,
    snapshots: bool = True,
    engine: Engine | None = None,
    client: Client | None = None,
    out: str | Path | None = None,
    strict: bool = False,
    version: int | None = None,
) -> Replayed:
    """Replay events through a rule set.

    ``events`` is a LazyFrame or DataFrame in the canonical schema, an
    :class:`EventArchive`, or a path that :func:`eventkit.open_archive` reads.
    ``rules`` is a :class:`RuleSet`, the name of a registered one (``"balance"``,
    the default: balance = running sum of signed amounts; ``"banking"``: status
    machine, fees, interest), or the path of a TOML rules file. ``known_at``
    answers as the archive knew it then: events recorded after that instant
    (``recorded_at``) are left out, whatever their ``event_time``. ``keys``
    replays only those keys — values of the key column, or tuples for a
    composite key — (and the rule set's global events, which every key
    reads): the filter reaches the Parquet reader, so one account of a large
    archive costs a scan of one column, not a replay of everything.

    Event types are checked against the rules on the first full fold: a type
    that occurs but that no rule handles (nor ``ignore``-s) gives a
    :class:`~eventkit.exceptions.CoverageWarning` naming it and the handled
    types that never occurred (a misspelt ``[on.Deposits]``); ``strict=True``
    makes it a :class:`~eventkit.exceptions.CoverageError`.

    On an eventkit archive (an :class:`EventArchive` or its path), a snapshot
    set stored by :func:`eventkit.snapshot` for exactly these rules and this
    archive state is used by ``as_of``, ``at_times`` and ``between`` (unless
    ``snapshots=False``, or ``known_at`` is given): they fold only the events
    after the nearest checkpoint, from the state stored there.

    ``engine`` picks how (see :mod:`eventkit.replay.buckets`): ``"memory"`` (the default)
    folds everything at once; ``"buckets"`` one bucket of accounts at a time
    (memory bounded by a bucket, for archives larger than memory; ``out``, a
    folder, receives the histories as Parquet); ``"dask"`` (the default when a
    ``client`` is given) runs the buckets as tasks on a ``dask.distributed``
    cluster. Both return a :class:`~eventkit.replay.buckets.BucketedReplay` with the same
    answers; ``events`` must then be an archive or a path.

    ``version`` replays an eventkit archive as it was at that version (default:
    its latest), with the snapshots made for exactly that version, if any.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 2], "event_type": ["Deposit", "Fee", "Deposit"],
    ...     "event_time": t, "recorded_at": t, "amount": [10_000, 250, 500]})
    >>> replay(events).state().select("account_id", "balance").collect().rows()
    [(1, 9750), (2, 500)]

    """
    ruleset = registry.resolve(rules)
    if engine is None:
        engine = "dask" if client is not None else "memory"
    if engine != "memory" or out is not None or client is not None:
        if version is not None:
            msg = "replays an earlier archive version in memory only (engine='memory')"
            raise ScaleError(msg, param="version")
        return replay_buckets(events, ruleset, engine=engine, client=client, out=out,
                              known_at=known_at, keys=keys, strict=strict)
    archive = archive_of(events)
    stored = None
    lf = None
    if archive is not None:
        version = archive.version if version is None else version
        if snapshots and known_at is None:
            stored = stored_sets.find(archive, ruleset, version=version)
        if snapshots and keys is not None:
            lf = by_key(archive, ruleset, keys, version=version)
        if lf is None:
            lf = archive.scan(version=version)
    else:
        version = None  # not an eventkit archive: no versions
        lf = as_lazy(events)
    check_columns(ruleset.check(), lf.collect_schema())
    known_us = None if known_at is None else micros(known_at, param="known_at")
    if known_us is not None:
        lf = lf.filter(pl.col("recorded_at").dt.epoch("us") <= known_us)
    if keys is not None:
        lf = lf.filter(key_filter(ruleset, keys, lf.collect_schema()))
    names = lf.collect_schema().names()
    read = columns_read(ruleset.check())
    optional = [pl.lit(None, dtype=CANONICAL_SCHEMA[c]).alias(c)
                for c in ("counterparty_id", "rate") if c not in names and c in read]
    expiry = None if archive is None else expiry_of(archive, ruleset.fingerprint)
    start = None
    if expiry is not None:
        if known_at is not None:
            expiry.check(known_at_us=micros(known_at, param="known_at"))
        start = expiry.opening_states(None if keys is None else key_frame(
            ruleset, keys, lf.collect_schema()))
    return ReplayResult(lf.with_columns(optional), ruleset, snapshots=stored,
                        keys=None if keys is None else list(keys), archive=archive,
                        archive_version=version, expiry=expiry, start=start, strict=strict,
                        split=archive is not None, known_at=known_us)


@foreign_errors(functools.partial(SnapshotError, param="snapshots"), "snapshot {0}")
def snapshot(
    archive: EventArchive | str | Path,
    rules: RuleSet | str | Path = "balance",
    *,
    every: str = "1mo",
    key_copy: bool = True,
    max_checkpoints: int = stored_sets.MAX_CHECKPOINTS,
) -> Snapshots:
    """Replay ``archive`` once and store each key's state at the end of every period.

    ``every`` is a calendar period as Polars writes durations (``"1mo"``,
    ``"1q"``, ``"7d"``, ``"1y"``): checkpoints are the last microsecond of each
    period (UTC) from the first event's period (after an expiry: the cut-off's)
    to the last event's, at most
    ``max_checkpoints`` of them (more raise :class:`SnapshotError` before any
    is made: ``every="1s"`` over a year would be 31 million). The set is
    stored under ``<archive>/_eventkit/snapshots/`` and replaces older sets of
    the same rules; :func:`eventkit.replay` finds and uses it by itself.

    With ``key_copy`` (the default) the archive's events are also stored
    sorted by account (once per archive state, for every rule set): then
    ``replay(archive, keys=[...])`` reads a few row groups of that copy
    instead of scanning the archive — one account's history in milliseconds.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import datetime, UTC
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> t = [datetime(2024, m, 10, tzinfo=UTC) for m in (1, 2, 3)]
    >>> _ = archive.append(pl.DataFrame({"event_id": ["a", "b", "c"], "account_id": [1, 1, 1],
    ...     "event_type": ["Deposit"] * 3, "event_time": t, "amount": [100, 20, 3]}))
    >>> snaps = snapshot(archive, every="1mo")
    >>> [c.date().isoformat() for c in snaps.instants]
    ['2024-01-31', '2024-02-29', '2024-03-31']
    >>> snaps.read(1)["balance"].to_list()
    [120]

    """
    store = archive if isinstance(archive, EventArchive) else EventArchive(archive)
    ruleset = registry.resolve(rules)
    with Steps(f"snapshot ({ruleset.name})", 3) as steps:
        steps.begin("replaying the archive")
        result = replay(store, ruleset, snapshots=False)  # with an expiry's opening states
        version = store.version if result.archive_version is None else result.archive_version
        grid = stored_sets.period_ends(result.history, every, max_checkpoints=max_checkpoints)
        if result.expiry is not None:  # no answer before an expiry's cut-off: no checkpoint
            grid = [t for t in grid if micros(t, param="every") >= result.expiry.cutoff_us]
        steps.begin(f"states at {len(grid)} checkpoints")
        states = result.states_at(grid)
        steps.begin("storing them" + (" and the events by key" if key_copy else ""))
        return stored_sets.write_set(store, ruleset, version=version, every=every, grid=grid,
                                     states=states, key_copy=key_copy)
