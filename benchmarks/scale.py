"""Benchmark replay at scale: in memory, a step of buckets at a time, and on a Dask LocalCluster.

Usage: ``.venv/bin/python benchmarks/scale.py [--sizes 1000000 10000000 100000000]
[--rules balance] [--dask-size 10000000] [--store disk|s3]``

For each size a bucketed archive (about one million events per bucket) is
generated once into ``benchmarks/out/scale-<N>/`` (kept for the next run; 100M
events are about 2.5 GB). Every measurement runs in a fresh subprocess, so its
peak RSS is its own, with the folds compiled before timing:

- ``memory`` (the baseline, at the sizes that fit): ``replay(path)``, history and
  state collected;
- ``history``: ``replay(path, engine="buckets", out=...)``, every history written
  to Parquet, then the final state;
- ``state``: ``replay(path, engine="buckets").state()``: the final state only;
- ``dask`` (at ``--dask-size``): ``history`` on a ``LocalCluster(n_workers=2,
  threads_per_worker=1)``, workers warmed up before timing.

``per event`` is seconds over events; ``vs memory`` is over the in-memory
baseline of the same size; ``vs 1st size`` is the per-event cost over that of
the same engine at the smallest size (1.00 everywhere: time grows linearly).

``--store s3`` starts the tests' S3-protocol server (moto, tests/s3.py) on
127.0.0.1, copies each archive into it, and measures instead: ``state`` from
disk and from the store (``state-s3``, the bucket engine reading every file
from the server), ``history`` from disk, and at ``--dask-size`` ``dask-s3``
(a ``LocalCluster(2)`` whose workers read the buckets from the server and
write the histories to a local folder), ``dask-s3-out`` (the histories
written to the server too) and, for comparison, ``dask`` from disk; then the
server's per-object read rate (every data file fetched once, 8 at a time, as
the engine does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_lines, report, run_child

OUT = Path(__file__).resolve().parent / "out"
EVENTS_PER_BUCKET = 1_000_000
MEMORY_UP_TO = 10_000_000  # the in-memory baseline is run up to this size


def archive(events: int) -> Path:
    """The bucketed archive of ``events`` events, generated on first use."""
    from eventkit.banking.generate import generate

    path = OUT / f"scale-{events}"
    if not (path / "_delta_log").is_dir():
        shutil.rmtree(path, ignore_errors=True)
        began = time.perf_counter()
        generate(path, events=events, accounts=max(1_000, events // 200), seed=1,
                 buckets=max(1, events // EVENTS_PER_BUCKET), chunk_events=2_000_000,
                 progress=True)
        print(f"generated {events:,} events in {time.perf_counter() - began:.0f} s",
              file=sys.stderr)
    return path


def warm_up(rules: str) -> None:
    """Compile the folds (numba) on a tiny bank, so that no measurement includes it."""
    import eventkit
    from eventkit.banking.generate import generate_chunks

    for chunk in generate_chunks(events=2_000, accounts=50, seed=1):
        eventkit.replay(chunk, rules).state().collect()


def s3_url(events: int) -> str:
    return f"s3://eventkit/scale-{events}"


def upload(events: int) -> float:
    """Copy the archive of ``events`` into the S3 server; the seconds it took."""
    from eventkit.archive.store import open_store

    folder, store = archive(events), open_store(s3_url(events))
    began = time.perf_counter()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "_eventkit" not in path.parts:
            store.write(path.relative_to(folder).as_posix(), path.read_bytes())
    return time.perf_counter() - began


def read_rate(events: int) -> tuple[int, int, float]:
    """Objects and bytes of every data file fetched once from the server, and the seconds."""
    from concurrent.futures import ThreadPoolExecutor

    from eventkit.archive import head
    from eventkit.archive.store import open_store

    store = open_store(s3_url(events))
    live = head.log_state(store).live
    began = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda e: len(store.read(e["path"])), live))
    return len(sizes), sum(sizes), time.perf_counter() - began


def run(mode: str, events: int, rules: str) -> None:
    """Measure one replay in this process and print the result as JSON."""
    import eventkit

    path: Path | str = s3_url(events) if mode.endswith("-s3") else archive(events)
    warm_up(rules)
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        out: Path | str = Path(scratch) / "o"
        began = time.perf_counter()
        if mode == "memory":
            result = eventkit.replay(path, rules)
            result.history.collect()
            result.state().collect()
        elif mode == "history":
            result = eventkit.replay(path, rules, engine="buckets", out=out)
            _ = result.history
            result.state().collect()
        elif mode in ("state", "state-s3"):
            eventkit.replay(path, rules, engine="buckets").state().collect()
        else:
            if mode == "dask-s3-out":
                out = f"{s3_url(events)}-out-{time.time_ns()}"
                path = s3_url(events)
            from distributed import Client, LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.run(warm_up, rules)  # workers start warm, as this process
                began = time.perf_counter()
                result = eventkit.replay(path, rules, client=client, out=out)
                _ = result.history
                result.state().collect()
        seconds = time.perf_counter() - began
    report([seconds])


LABELS = {"memory": "in memory (history + state collected)",
          "history": "buckets, local (histories written to Parquet, then state)",
          "state": "buckets, local (state only)",
          "dask": "Dask LocalCluster(2 workers) (histories written, then state)",
          "state-s3": "buckets, from the S3 server (state only)",
          "dask-s3": "Dask LocalCluster(2 workers), from the S3 server (histories written "
                     "to a local folder, then state)",
          "dask-s3-out": "Dask LocalCluster(2 workers), from and to the S3 server (histories "
                         "written there, then state)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", choices=tuple(LABELS), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1_000_000, 10_000_000, 100_000_000])
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rules", default="balance")
    parser.add_argument("--dask-size", type=int, default=10_000_000)
    parser.add_argument("--store", choices=("disk", "s3"), default="disk")
    args = parser.parse_args()
    if args.run:
        run(args.run, args.events, args.rules)
        return
    OUT.mkdir(exist_ok=True)
    if args.store == "s3":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from s3 import S3Server

        with S3Server() as server:
            os.environ.update(server.env)  # the children (and their Dask workers) reach it
            on_s3(args)
        return
    print("\n".join(machine_lines(("polars", "numba", "dask", "distributed"))))
    print(f"\nrules: {args.rules}\n")
    print("| events | engine | seconds | per event | vs memory | vs 1st size | peak RSS |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    first: dict[str, float] = {}  # per engine: per-event seconds at the smallest size
    local = dask = None  # seconds of the local and the Dask history cases at --dask-size
    for events in args.sizes:
        archive(events)
        modes = ["memory"] if events <= MEMORY_UP_TO else []
        modes += ["history", "state"]
        if events == args.dask_size:
            modes.append("dask")
        base = None
        for mode in modes:
            r = run_child([sys.executable, __file__, "--run", mode, "--events", str(events),
                           "--rules", args.rules])
            per_event = r["median"] / events
            base = r["median"] if mode == "memory" else base
            first.setdefault(mode, per_event)
            if events == args.dask_size and mode in ("history", "dask"):
                local, dask = (r["median"], dask) if mode == "history" else (local, r["median"])
            versus = f"{r['median'] / base:.2f}" if base else "–"
            rss = f"{r['rss'] / 2**30:.2f} GiB" if mode != "dask" else "(client only)"
            print(f"| {events:,} | {LABELS[mode]} | {r['median']:.1f} | "
                  f"{per_event * 1e9:.0f} ns | {versus} | {per_event / first[mode]:.2f} | "
                  f"{rss} |", flush=True)
    if local and dask:
        print(f"\nDask LocalCluster(2 workers) over the local bucket engine at "
              f"{args.dask_size:,} events: {dask / local:.2f}x")


def on_s3(args: argparse.Namespace) -> None:
    """The ``--store s3`` runs: disk against the S3 server, the same archives."""
    print("\n".join(machine_lines(("polars", "numba", "dask", "distributed", "obstore",
                                   "moto"))))
    print(f"\nrules: {args.rules}; S3: moto's server on 127.0.0.1 (tests/s3.py)\n")
    print("| events | engine | seconds | per event | vs disk | peak RSS |")
    print("|---:|---|---:|---:|---:|---:|")
    rates = []
    for events in args.sizes:
        archive(events)
        uploaded = upload(events)
        rates.append((events, uploaded, *read_rate(events)))
        modes = ["state", "state-s3", "history"]
        if events == args.dask_size:
            modes += ["dask", "dask-s3", "dask-s3-out"]
        seconds: dict[str, float] = {}
        for mode in modes:
            r = run_child([sys.executable, __file__, "--run", mode, "--events", str(events),
                           "--rules", args.rules])
            seconds[mode] = r["median"]
            base = {"state-s3": "state", "dask": "history", "dask-s3": "history",
                    "dask-s3-out": "history"}.get(mode)
            versus = f"{r['median'] / seconds[base]:.2f}" if base else "1.00"
            rss = "(client only)" if mode.startswith("dask") else f"{r['rss'] / 2**30:.2f} GiB"
            print(f"| {events:,} | {LABELS[mode]} | {r['median']:.1f} | "
                  f"{r['median'] / events * 1e9:.0f} ns | {versus} | {rss} |", flush=True)
    print("\nPer-object reads from the S3 server (every data file once, 8 requests at a time):\n")
    print("| events | objects | MB | GET seconds | objects/s | GET MB/s | PUT (upload) MB/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for events, uploaded, n, size, spent in rates:
        print(f"| {events:,} | {n:,} | {size / 1e6:,.0f} | {spent:.2f} | {n / spent:,.0f} | "
              f"{size / 1e6 / spent:,.0f} | {size / 1e6 / uploaded:,.0f} |")


if __name__ == "__main__":
    main()
