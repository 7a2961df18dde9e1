"""`make lab` end to end: the server it starts serves the notebooks on loopback, with a token."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, stop_server

pytestmark = pytest.mark.slow

NOTEBOOK = "01_balance_history.ipynb"
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Lab:
    base: str
    port: int
    token: str
    stdout: Path
    stderr: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """`python -m eventkit lab` as `make lab` runs it, with Jupyter's own files in tmp."""
    tmp = tmp_path_factory.mktemp("lab")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTER_DATA_DIR": str(tmp / "data"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "PYTHONUNBUFFERED": "1"}
    port, token = free_port(), secrets.token_hex(16)
    env["JUPYTER_TOKEN"] = token  # as a user who wants a fixed token sets it
    lab = Lab(f"http://127.0.0.1:{port}", port, token, tmp / "stdout.log", tmp / "stderr.log")
    with lab.stdout.open("w") as out, lab.stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "eventkit", "lab", "--notebooks", "notebooks",
             "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
    try:
        wait_until_up(proc, lab)
        yield lab
    finally:
        stop_server(proc)


def wait_until_up(proc: subprocess.Popen, lab: Lab) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited {proc.returncode}:\n{lab.stderr.read_text()[-3000:]}")
        try:
            if get(f"{lab.base}/api/status?token={lab.token}")[0] == 200 \
                    and lab.stdout.read_text().endswith("\n"):  # and the URL was printed
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"jupyter lab not up in {START_TIMEOUT_S} s:\n"
                        f"{lab.stderr.read_text()[-3000:]}")
        time.sleep(0.3)


def test_first_line_is_the_loopback_url_with_the_token(lab: Lab):
    first = lab.stdout.read_text().splitlines()[0]
    assert first == f"JupyterLab: http://127.0.0.1:{lab.port}/lab?token={lab.token}"


def test_url_is_printed_once_the_server_answers(tmp_path: Path):
    """The line comes after the server is up: printed at once, it could point at nothing."""
    port = free_port()
    out = tmp_path / "stdout"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "PYTHONUNBUFFERED": "1"}
    with out.open("w") as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "eventkit", "lab", "--notebooks",
                                 "notebooks", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not out.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        url = out.read_text().split("JupyterLab: ", 1)[1].strip()
        status, _ = get(url.replace("/lab?", "/api/status?"))  # answered at once
        assert status == 200
    finally:
        stop_server(proc)


def test_the_token_is_not_on_any_command_line(lab: Lab):
    """`ps` shows every process's argv to every local user: the token must not be there."""
    leaks = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:
            continue  # the process ended
        if lab.token.encode() in argv:
            leaks.append(argv.replace(b"\0", b" ").decode(errors="replace"))
    assert leaks == []


def test_serves_the_notebooks(lab: Lab):
    status, body = get(f"{lab.base}/api/contents/{NOTEBOOK}?token={lab.token}")
    assert status == 200
    model = json.loads(body)
    assert (model["type"], model["name"]) == ("notebook", NOTEBOOK)
    assert model["content"]["metadata"]["kernelspec"]["name"] == "eventkit"


@pytest.mark.parametrize("query", ["", "?token=wrong"])
def test_refuses_requests_without_the_token(lab: Lab, query: str):
    assert get(f"{lab.base}/api/contents/{NOTEBOOK}{query}")[0] == 403


def test_listens_on_loopback_only(lab: Lab):
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        pytest.skip("needs Linux /proc/net/tcp")
    assert listening(tables, lab.port) == {"0100007F"}  # 127.0.0.1, and nothing on IPv6
    with pytest.raises(ConnectionRefusedError):  # another loopback address is not served
        socket.create_connection(("127.0.0.2", lab.port), timeout=5).close()


def listening(tables: list[Path], port: int) -> set[str]:
    """Hex local addresses of the sockets listening on ``port`` (state 0A = LISTEN)."""
    found = set()
    for table in tables:
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found
