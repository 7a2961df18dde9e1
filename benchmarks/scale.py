"""Benchmark replay at scale: one bucket at a time, in memory, and on a Dask LocalCluster.

Usage: ``.venv/bin/python benchmarks/scale.py [--sizes 1000000 10000000 100000000]
[--rules balance] [--dask-size 10000000]``

For each size a bucketed archive (about one million events per bucket) is
generated once into ``benchmarks/out/scale-<N>/`` (kept for the next run; 100M
events are about 2.5 GB). Every measurement runs in a fresh subprocess, so its
peak RSS is its own: the bucket engine (``replay(..., engine="buckets",
out=...)``, histories written to Parquet, final state collected), and, as the
baseline at the sizes that fit, the in-memory engine (history and state
collected). ``per event`` is seconds over events; ``ratio`` is over the baseline
of the same size. ``--dask-size`` also runs that size on a
``LocalCluster(n_workers=2, threads_per_worker=1)`` against the bucket engine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_lines, report, run_child  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
EVENTS_PER_BUCKET = 1_000_000
MEMORY_UP_TO = 10_000_000  # the in-memory baseline is run up to this size


def archive(events: int) -> Path:
    """The bucketed archive of ``events`` events, generated on first use."""
    from eventkit.generate import generate

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
    from eventkit.generate import generate_chunks

    for chunk in generate_chunks(events=2_000, accounts=50, seed=1):
        eventkit.replay(chunk, rules).state().collect()


def run(mode: str, events: int, rules: str) -> None:
    """Measure one replay in this process and print the result as JSON."""
    import eventkit

    path = archive(events)
    warm_up(rules)
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        began = time.perf_counter()
        if mode == "memory":
            result = eventkit.replay(path, rules)
            rows = result.history.collect().height
            result.state().collect()
        elif mode == "buckets":
            result = eventkit.replay(path, rules, engine="buckets", out=Path(scratch) / "o")
            result.state().collect()
            rows = len(result.buckets)
        else:
            from distributed import Client, LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.run(warm_up, rules)  # workers start warm, as this process
                began = time.perf_counter()
                result = eventkit.replay(path, rules, client=client, out=Path(scratch) / "o")
                result.state().collect()
                rows = len(result.buckets)
        seconds = time.perf_counter() - began
    report([seconds], rows=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", choices=("memory", "buckets", "dask"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1_000_000, 10_000_000, 100_000_000])
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rules", default="balance")
    parser.add_argument("--dask-size", type=int, default=10_000_000)
    args = parser.parse_args()
    if args.run:
        run(args.run, args.events, args.rules)
        return
    OUT.mkdir(exist_ok=True)
    print("\n".join(machine_lines(("polars", "numba", "dask", "distributed"))))
    print(f"\nrules: {args.rules}\n")
    print("| events | engine | seconds | per event | ratio | peak RSS |")
    print("|---:|---|---:|---:|---:|---:|")
    for events in args.sizes:
        archive(events)
        modes = ["memory"] if events <= MEMORY_UP_TO else []
        modes.append("buckets")
        if events == args.dask_size:
            modes.append("dask")
        base = None
        for mode in modes:
            r = run_child([sys.executable, __file__, "--run", mode, "--events", str(events),
                           "--rules", args.rules])
            base = base or r["median"]
            label = {"memory": "in memory", "buckets": "buckets (local)",
                     "dask": "Dask LocalCluster(2 workers)"}[mode]
            rss = f"{r['rss'] / 2**30:.2f} GiB" if mode != "dask" else "(client only)"
            print(f"| {events:,} | {label} | {r['median']:.1f} | "
                  f"{r['median'] / events * 1e9:.0f} ns | {r['median'] / base:.2f} | {rss} |",
                  flush=True)


if __name__ == "__main__":
    main()
