"""The explorer as a page for people who do not code: ``eventkit app`` (Voilà).

Voilà runs a notebook and shows only its outputs (the widgets), with no code
and no notebook interface; it serves the same widgets as JupyterLab
(ipywidgets 8, anywidget, Altair's offline chart). :func:`app_notebook` writes
that notebook (one cell: the explorer on an archive); :func:`app_command` is
the command line that serves it, bound to loopback with a token, like the lab.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from eventkit.archive.store import is_url

__all__ = ["app_command", "app_environment", "app_notebook", "offline_template"]


def app_notebook(folder: str | Path, archive: str | Path, *, account: int | None = None,
                 as_of: str | None = None, rules: str = "banking",
                 currency: str = "USD", kernel: str = "eventkit") -> Path:
    """Write ``folder/explorer.ipynb``: a heading and the explorer on ``archive``.

    Examples
    --------
    >>> import tempfile
    >>> book = app_notebook(tempfile.mkdtemp(), "data/sample", account=7)
    >>> print(nbformat.read(book, as_version=4).cells[1].source.splitlines()[-2:][1])
    eventkit.explorer(ARCHIVE, **OPTIONS)

    """
    options = {"account": account, "as_of": as_of, "rules": rules, "currency": currency}
    given = {k: v for k, v in options.items() if v is not None}
    where = str(archive) if is_url(archive) else str(Path(archive).resolve())  # s3://... as is
    name = where.rstrip("/").rsplit("/", 1)[-1]
    code = ("import eventkit\n"
            "from eventkit import charts\n\n"
            "charts.enable(interactive=True)\n"
            f"ARCHIVE = {json.dumps(where)}\n"
            f"OPTIONS = {json.dumps(given)}\n"
            "eventkit.explorer(ARCHIVE, **OPTIONS)")
    intro = ("# Account explorer\n\n"
             "Type an account id and press Enter (or pick one of the suggestions); move the "
             "*as of* slider or pick a date; choose the rules; shift the bank's rates to see "
             "what a different rate would have changed. Money is exact; balances as of an "
             f"instant include the interest accrued up to it. Archive: `{name}`.")
    kernelspec = {"name": kernel, "display_name": "Python (eventkit)", "language": "python"}
    book = new_notebook(cells=[new_markdown_cell(intro), new_code_cell(code)],
                        metadata={"kernelspec": kernelspec})
    target = Path(folder) / "explorer.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, target)
    return target


def offline_template(folder: str | Path) -> Path:
    """Write Voilà's ``lab`` page template without its two CDN links (Font Awesome).

    Voilà's own template loads Font Awesome's CSS from a CDN; the widgets
    bundle the fonts already. The copy, named ``eventkit``, lives under
    ``folder/voila/templates`` (put ``folder`` on ``JUPYTER_PATH``). Returns
    the folder to add to ``JUPYTER_PATH``.
    """
    from jupyter_core.paths import jupyter_path  # noqa: PLC0415 (Jupyter's own)

    source = next(Path(p) / "index.html.j2" for p in jupyter_path("voila", "templates", "lab")
                  if (Path(p) / "index.html.j2").is_file())
    page = "\n".join(line for line in source.read_text().splitlines()
                     if not ("<link" in line and "//cdn." in line))
    target = Path(folder) / "voila" / "templates" / "eventkit"
    target.mkdir(parents=True, exist_ok=True)
    (target / "index.html.j2").write_text(page)
    (target / "conf.json").write_text(json.dumps({"base_template": "lab"}))
    return Path(folder)


def app_command(notebook: str | Path, *, host: str = "127.0.0.1", port: int = 8866
                ) -> list[str]:
    """The command line that serves ``notebook`` with Voilà (without the token).

    Binds to ``host`` only (loopback by default), opens no browser, shows no
    code and no tracebacks. The page template is ``eventkit`` (see
    :func:`offline_template`) and the token reaches Voilà through a config file
    only the user can read (never on the command line ``ps`` shows): run it with
    :func:`app_environment`.

    Examples
    --------
    >>> argv = app_command("explorer.ipynb", port=9999)
    >>> "--Voila.ip=127.0.0.1" in argv and not any("token" in a for a in argv)
    True

    """
    argv = [
        sys.executable, "-m", "voila", str(Path(notebook).resolve()),
        "--no-browser",
        f"--Voila.ip={host}",
        f"--port={port}",
        "--strip_sources=True",
        "--show_tracebacks=False",
        "--VoilaConfiguration.file_allowlist=[]",
        "--template=eventkit",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--ServerApp.allow_root=True")
    return argv


def app_environment(notebook: str | Path, env: dict[str, str] | None = None, *,
                    token: str | None = None) -> tuple[dict[str, str], str]:
    """``env`` (default: this process's) for :func:`app_command`, and the token in it.

    The offline page template is on ``JUPYTER_PATH``; the token is ``token``,
    else ``JUPYTER_TOKEN`` of ``env``, else a fresh random one. Voilà does not read
    ``JUPYTER_TOKEN`` (without a token of its own it would serve anyone), so the
    token goes into a ``voila.json`` only the user can read (mode 0600, in a folder
    of mode 0700 beside the notebook) on ``JUPYTER_CONFIG_PATH``: never on a
    command line.
    """
    base = dict(os.environ if env is None else env)
    token = token or base.get("JUPYTER_TOKEN") or secrets.token_hex(24)
    base["JUPYTER_TOKEN"] = token
    private = Path(notebook).resolve().parent / ".eventkit-app-config"
    private.mkdir(mode=0o700, exist_ok=True)
    private.chmod(0o700)
    config = private / "voila.json"
    config.unlink(missing_ok=True)
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"Voila": {"token": token}}, out)
    base["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        p for p in (str(private), base.get("JUPYTER_CONFIG_PATH")) if p)
    folder = offline_template(Path(notebook).resolve().parent / "share")
    base["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(folder), base.get("JUPYTER_PATH"))
                                           if p)
    return base, token
