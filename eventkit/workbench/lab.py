"""Start JupyterLab on the notebooks: loopback only, with a token.

``make lab`` runs ``python -m eventkit lab``; the test suite starts the server
through the same :func:`lab_command`, so what is tested is what users run.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

__all__ = ["lab_command"]


def lab_command(
    notebooks: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8888,
    token: str | None = None,
) -> tuple[list[str], str]:
    """The command line that serves ``notebooks`` in JupyterLab, and its token.

    The server binds to ``host`` only (loopback by default), never opens a
    browser and never moves to another port; a random token is made when none
    is given.

    Examples
    --------
    >>> argv, token = lab_command("notebooks", port=9999, token="abc")
    >>> "--ip=127.0.0.1" in argv and "--IdentityProvider.token=abc" in argv
    True

    """
    token = token or secrets.token_hex(24)
    argv = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        f"--ip={host}",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={Path(notebooks).resolve()}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    return argv, token
