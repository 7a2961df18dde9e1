"""Start JupyterLab on the notebooks: loopback only, with a token that never reaches argv.

``make lab`` runs ``python -m eventkit lab``; the test suite starts the server
through the same :func:`start_lab`, so what is tested is what users run. The
token travels in the server's environment (``JUPYTER_TOKEN``), readable only by
the user who started it — never on the command line, where ``ps`` shows it to
every local user — and the URL is printed only once the server answers.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from eventkit.exceptions import WorkbenchError

__all__ = ["LabServer", "lab_command", "start_lab"]

#: The environment variable JupyterLab reads its token from (and ``eventkit lab`` too).
TOKEN_ENV = "JUPYTER_TOKEN"


def lab_command(notebooks: str | Path, *, host: str = "127.0.0.1", port: int = 8888
                ) -> list[str]:
    """The command line that serves ``notebooks`` in JupyterLab (without the token).

    The server binds to ``host`` only (loopback by default), never opens a
    browser and never moves to another port. It reads its token from
    ``JUPYTER_TOKEN`` in its environment (see :func:`start_lab`).

    Examples
    --------
    >>> argv = lab_command("notebooks", port=9999)
    >>> "--ip=127.0.0.1" in argv and not any("token" in a.lower() for a in argv)
    True

    """
    argv = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        f"--ip={host}",
        f"--port={port}",
        "--port-retries=0",
        f"--ServerApp.root_dir={Path(notebooks).resolve()}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    return argv


@dataclass(frozen=True)
class LabServer:
    """A running JupyterLab: its process, the URL with the token, the token."""

    process: subprocess.Popen[bytes]
    url: str
    token: str


def start_lab(
    notebooks: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8888,
    token: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stdout: IO[str] | int | None = None,
    stderr: IO[str] | int | None = None,
    new_session: bool = False,
    timeout: float = 60.0,
) -> LabServer:
    """Start JupyterLab on ``notebooks`` and return once it answers.

    The token is ``token``, else ``JUPYTER_TOKEN`` of ``env`` (default: this
    process's environment), else a fresh random one; it reaches the server in
    its environment only. ``extra_args`` are appended to :func:`lab_command`;
    ``new_session`` puts the server in a process group of its own. If the
    server exits or does not answer within ``timeout`` seconds, it is stopped
    and :class:`~eventkit.exceptions.WorkbenchError` says why.
    """
    base_env = dict(os.environ if env is None else env)
    token = token or base_env.get(TOKEN_ENV) or secrets.token_hex(24)
    argv = [*lab_command(notebooks, host=host, port=port), *extra_args]
    try:
        process = subprocess.Popen(argv, env={**base_env, TOKEN_ENV: token}, stdout=stdout,
                                   stderr=stderr, start_new_session=new_session)
    except OSError as exc:
        msg = f"cannot start JupyterLab ({argv[0]}): {exc}"
        raise WorkbenchError(msg) from exc
    where = "127.0.0.1" if host in ("0.0.0.0", "") else host
    server = LabServer(process, f"http://{where}:{port}/lab?token={token}", token)
    deadline = time.monotonic() + timeout
    while not _answers(f"http://{where}:{port}/api/status", token):
        if process.poll() is not None:
            msg = f"JupyterLab exited with code {process.returncode} before it answered"
            raise WorkbenchError(msg)
        if time.monotonic() > deadline:
            process.terminate()
            process.wait(timeout=20)
            msg = f"JupyterLab did not answer on {where}:{port} within {timeout:.0f} s"
            raise WorkbenchError(msg)
        time.sleep(0.2)
    return server


def _answers(url: str, token: str) -> bool:
    """True when the server at ``url`` answers 200 to a request with the token."""
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False
