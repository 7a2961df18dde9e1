"""Where the steps of a bucketed replay run: here, a few at a time, or on a Dask cluster.

A runner calls ``work(*args)`` once for each tuple of ``calls`` and returns the
answers in their order, advancing the progress bar as each step is done. Here,
:data:`LOCAL_STEPS` run at once on threads (folds and Parquet I/O drop the GIL);
on a cluster each step is a task. A cluster that is gone, closed or failing is
a :class:`~eventkit.exceptions.ScaleError` naming its scheduler (the steps only
read, so nothing was changed).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from eventkit.exceptions import EventkitError, ScaleError

if TYPE_CHECKING:
    from distributed import Client

    from eventkit.replay.progress import Steps

__all__ = ["LOCAL_STEPS", "Runner", "runner"]

#: Steps run here at once (threads: one reads or writes while one folds).
LOCAL_STEPS = 2

#: ``run(work, calls, shown, name)``: ``work(*c)`` for each ``c`` of ``calls``, answers in
#: order; ``shown`` is the progress bar, ``name`` names the steps' tasks.
Runner = Callable[[Callable[..., Any], list[tuple[Any, ...]], "Steps", list[str]], list[Any]]


def runner(engine: str, client: Client | None) -> Runner:
    """The runner of ``engine`` (``"buckets"``: here; ``"dask"``: on ``client``'s cluster).

    >>> runner("buckets", None).__name__
    '_here'
    """
    if engine == "buckets":
        if client is not None:
            msg = "a Dask client needs engine='dask'"
            raise ScaleError(msg, param="client")
        return _here
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
    from distributed import Client  # noqa: PLC0415 (only the Dask engine needs it)

    if not isinstance(client, Client):
        msg = (f"client must be a dask.distributed Client, such as "
               f"Client('tcp://scheduler:8786'), not {type(client).__name__}")
        raise ScaleError(msg, param="client")
    return _on(client)


def _here(work: Callable[..., Any], calls: list[tuple[Any, ...]], shown: Steps,
          names: list[str]) -> list[Any]:
    """The steps run here, :data:`LOCAL_STEPS` at a time."""
    del names  # (tasks have names on a cluster only)
    with shown:
        if len(calls) < 2 or LOCAL_STEPS < 2:
            done = []
            for args in calls:
                done.append(work(*args))
                shown.advance()
            return done
        with ThreadPoolExecutor(LOCAL_STEPS) as pool:
            futures = [pool.submit(work, *args) for args in calls]
            for future in futures:
                future.add_done_callback(lambda _done: shown.advance())
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:  # a failed step: the steps not started yet are not run
                    future.cancel()
                raise


def _on(client: Client) -> Runner:
    """The steps run as tasks of ``client``'s cluster."""
    def run(work: Callable[..., Any], calls: list[tuple[Any, ...]], shown: Steps,
            names: list[str]) -> list[Any]:
        tag = uuid.uuid4().hex[:8]
        try:
            with shown:
                futures = client.map(work, *zip(*calls, strict=True),
                                     key=[f"{name}-{tag}" for name in names])
                for future in futures:
                    future.add_done_callback(lambda _done: shown.advance())
                return list(client.gather(futures))
        except Exception as exc:  # a cluster gone, closed or failing: said as eventkit's
            if isinstance(exc, EventkitError):
                raise
            msg = (f"the Dask cluster {_address(client)} did not run the replay's "
                   f"{len(calls)} step(s) ({type(exc).__name__}: {exc}); nothing was "
                   "changed, run it again when the cluster is back")
            raise ScaleError(msg, param="client") from exc

    return run


def _address(client: Client) -> str:
    """The scheduler a client talks to, as its address (or the client's own text)."""
    address = getattr(client.scheduler, "address", None)  # None: closed before it connected
    return str(address) if address else repr(client)
