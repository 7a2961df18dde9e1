"""Shared fixtures: small canonical event frames and the sample archive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from s3 import S3Server

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


def make_events(rows: list[tuple[int, str, int, int]], *, start: datetime | None = None
                ) -> pl.DataFrame:
    """Canonical events from (account_id, event_type, amount, minutes after start) tuples."""
    start = start or datetime(2024, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=m) for _, _, _, m in rows]
    return pl.DataFrame(
        {
            "event_id": [f"t{i}" for i in range(len(rows))],
            "seq": list(range(len(rows))),
            "account_id": [r[0] for r in rows],
            "event_type": [r[1] for r in rows],
            "event_time": times,
            "recorded_at": times,
            "amount": [r[2] for r in rows],
            "counterparty_id": [None] * len(rows),
            "rate": [None] * len(rows),
        },
        schema={"event_id": pl.String, "seq": pl.Int64, "account_id": pl.Int64,
                "event_type": pl.String, "event_time": pl.Datetime("us", "UTC"),
                "recorded_at": pl.Datetime("us", "UTC"), "amount": pl.Int64,
                "counterparty_id": pl.Int64, "rate": pl.Float64},
    )


@pytest.fixture(scope="session")
def sample_archive() -> Path:
    """The sample archive in data/sample, built by `make sample` (run here if missing)."""
    if not (SAMPLE / "_delta_log").is_dir():  # (-o: this interpreter is set up already; a
        # checkout sharing another's venv never reinstalls the package from here)
        subprocess.run(["make", "sample", f"PY={sys.executable}", "-o", ".venv/.installed-stamp"],
                       cwd=ROOT, check=True)
    return SAMPLE


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-protocol server on 127.0.0.1 (moto, tests/s3.py), for the whole session.

    Its credentials and endpoint are also in the environment while it runs, as
    a user's would be, so child processes (writers, Dask workers, notebook
    kernels) reach it too.
    """
    server = S3Server()
    server.start()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(scope="session")
def kernel() -> str:
    """The `eventkit` kernel of this interpreter, registered as `make` does if missing."""
    try:
        registered = KernelSpecManager().get_kernel_spec("eventkit").argv[0] == sys.executable
    except NoSuchKernel:
        registered = False
    if not registered:
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix",
                        "--name", "eventkit", "--display-name", "Python (eventkit)"],
                       check=True, capture_output=True, timeout=60)
    return "eventkit"


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server started in its own process group: SIGTERM, then kill what is left."""
    proc.send_signal(signal.SIGTERM)  # JupyterLab shuts its kernels down on SIGTERM
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:  # whatever is left of the group we started
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
