"""Shared helpers for the benchmarks: timing in a child process, peak RSS, machine facts."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def peak_rss() -> int:
    """Peak resident set size of this process's own image so far, in bytes.

    Linux's ``VmHWM``, not ``ru_maxrss``: the latter survives ``exec``, so a child
    that ``subprocess`` started (by ``vfork``) reports its parent's peak when that is
    larger.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def time_work(work: Callable[[], Any], repeat: int) -> list[float]:
    """Call ``work`` once untimed (warm-up), then ``repeat`` times timed; wall seconds each.

    Each result is dropped before the next call, so the peak RSS is about one call's.
    """
    work()
    gc.collect()
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - began)
        del result
        gc.collect()
    return seconds


def case_parser(doc: str, cases: dict[str, str]) -> argparse.ArgumentParser:
    """The options every case-by-case benchmark takes; ``--run`` is the child's own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (median)")
    parser.add_argument("--cases", nargs="+", choices=cases, default=list(cases))
    parser.add_argument("--run", choices=cases, help=argparse.SUPPRESS)
    return parser


def report(seconds: list[float], **extra: Any) -> None:
    """Print a child's result as the JSON line that :func:`run_child` reads."""
    print(json.dumps({"seconds": seconds, "rss": peak_rss(), **extra}), flush=True)


def run_child(command: list[str]) -> dict[str, Any]:
    """Run ``command`` in a fresh interpreter; return its JSON report plus the median seconds."""
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        msg = f"{' '.join(command)} exited with {done.returncode}"
        raise RuntimeError(msg)
    result = json.loads(done.stdout.splitlines()[-1])
    result["median"] = statistics.median(result["seconds"])
    return result


def package_version(name: str) -> str:
    """Installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_lines(packages: tuple[str, ...]) -> list[str]:
    """Markdown bullet lines: date, machine, load, command line and package versions."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = ", ".join(f"{name} {package_version(name)}" for name in packages)
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}",
        f"- load average at start (1, 5, 15 min): {load}",
        f"- command: `{' '.join([os.path.relpath(sys.executable), *sys.argv])}`",
        f"- versions: {versions}",
    ]
