"""Replay: events folded through rules into histories and state, by one of three engines.

:func:`~eventkit.replay.api.replay` and :func:`~eventkit.replay.api.snapshot`
are the front doors; :class:`~eventkit.replay.result.ReplayResult` (in memory)
and :class:`~eventkit.replay.buckets.BucketedReplay` (a bucket at a time, here
or on Dask) both satisfy :class:`~eventkit.replay.protocol.Replayed`. The fold
itself is :mod:`~eventkit.replay.engine` (Polars for linear rules, compiled
passes from :mod:`~eventkit.replay.compile` and :mod:`~eventkit.replay.kernels`
for the rest). Also here: stored snapshots, incremental replay
(:class:`~eventkit.replay.live.LiveReplay`) and expiry, which replays to
prove it changes no answer. Knows the archive and the rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventkit import _lazy

if TYPE_CHECKING:
    from eventkit.replay.api import replay, snapshot
    from eventkit.replay.buckets import BucketedReplay
    from eventkit.replay.expire import ExpireReport, expire
    from eventkit.replay.live import LiveReplay
    from eventkit.replay.protocol import Replayed
    from eventkit.replay.result import ReplayResult, Window
    from eventkit.replay.snapshots import Snapshots

__all__ = [
    "BucketedReplay",
    "ExpireReport",
    "LiveReplay",
    "ReplayResult",
    "Replayed",
    "Snapshots",
    "Window",
    "expire",
    "replay",
    "snapshot",
]

_lazy.attach(__name__, {
    "eventkit.replay.api": ("replay", "snapshot"),
    "eventkit.replay.buckets": ("BucketedReplay",),
    "eventkit.replay.expire": ("ExpireReport", "expire"),
    "eventkit.replay.live": ("LiveReplay",),
    "eventkit.replay.protocol": ("Replayed",),
    "eventkit.replay.result": ("ReplayResult", "Window"),
    "eventkit.replay.snapshots": ("Snapshots",),
})
