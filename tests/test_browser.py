"""The replay explorer as a person sees it: JupyterLab, started as `make lab` does, in Chromium.

Debian's /usr/bin/chromium (installed by `make setup`) is driven headless by Playwright.
The page may talk to the local server only; any other request fails the test.
Screenshots go to tests/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, stop_server

from eventkit.exceptions import WorkbenchError
from eventkit.workbench.lab import start_lab

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "tests" / "screenshots"
NOTEBOOK = "04_replay_explorer.ipynb"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the visible notebook only
EXPLORER = f"{NB} .eventkit-explorer"
SETTINGS = {  # no news pop-up, and never autosave a notebook the test ran
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        '{"fetchNews": "false", "checkForUpdates": false}',
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": '{"autosave": false}',
}
ALL_RUN = r"""() => {
  const p = [...document.querySelectorAll(
      '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
    .map(e => e.textContent.trim());
  return p.length > 0 && p.every(t => /^\[\d+\]:$/.test(t));
}"""
CHART_TEXT = f"() => document.querySelector('{EXPLORER} .vega-embed svg')?.textContent ?? ''"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, kernel: str) -> Iterator[dict[str, str]]:
    """`eventkit lab`'s command on a copy of the notebooks (data/ linked beside them)."""
    tmp = tmp_path_factory.mktemp("browser")
    served = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", served)
    (tmp / "data").symlink_to(ROOT / "data")  # the notebooks read ../data/sample
    settings = tmp / "settings"
    for name, text in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(text)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTER_DATA_DIR": str(tmp / "data-dir"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "PYTHONUNBUFFERED": "1"}
    port = free_port()
    log_path = tmp / "lab.log"
    with log_path.open("w") as log:
        try:  # own process group: the server and its kernels
            server = start_lab(served, port=port, env=env, stdout=log, stderr=subprocess.STDOUT,
                               new_session=True, extra_args=[
                                   f"--LabApp.user_settings_dir={settings}",
                                   f"--LabApp.workspaces_dir={tmp / 'workspaces'}"])
        except WorkbenchError as exc:
            pytest.fail(f"{exc}:\n{log_path.read_text()[-3000:]}")
    proc = server.process
    try:
        yield {"base": f"http://127.0.0.1:{port}", "token": server.token, "log": str(log_path)}
    finally:
        stop_server(proc)


@pytest.fixture
def page(lab: dict[str, str]) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"no browser at {CHROMIUM}: run `make setup` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS,
                                    headless=True, timeout=60_000)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1800})
            pg = context.new_page()
            pg.set_default_timeout(60_000)
            pg.problems = []  # page errors and requests that tried to leave the machine

            def leave(route: Any) -> None:
                pg.problems.append(f"request off the machine: {route.request.url}")
                route.abort()

            context.route(lambda url: not url.startswith(LOCAL), leave)
            pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
            yield pg
        finally:
            browser.close()


def explorer_state(pg: Any) -> dict[str, str]:
    """What the explorer shows: the chart's text and line, the slider, the status line."""
    return pg.evaluate(f"""() => {{
      const root = document.querySelector('{EXPLORER}');
      const q = s => root.querySelector(s);
      return {{
        chart: q('.vega-embed svg').textContent,
        line: [...root.querySelectorAll('.vega-embed svg g.mark-line path')]
                .map(p => p.getAttribute('d')).join('|'),
        as_of: q('.eventkit-as-of .widget-readout').textContent,
        status: q('.eventkit-status').textContent,
      }};
    }}""")


def wait_for_change(pg: Any, before: str, *, contains: str, timeout: int = 60_000) -> None:
    pg.wait_for_function(f"""([before, contains]) => {{
      const t = ({CHART_TEXT})();
      return t !== before && t.includes(contains);
    }}""", arg=[before, contains], timeout=timeout)


def test_replay_explorer_in_jupyterlab(lab: dict[str, str], page: Any):
    SHOTS.mkdir(exist_ok=True)
    pg = page
    pg.goto(f"{lab['base']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
    # Run All does nothing until the kernel is connected and idle
    pg.wait_for_selector(".jp-StatusBar-TextItem:has-text('Python (eventkit) | Idle')",
                         timeout=120_000)
    pg.click(".lm-MenuBar-itemLabel:text-is('Run')")
    pg.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    pg.wait_for_function(ALL_RUN, timeout=240_000)
    pg.wait_for_selector(f"{EXPLORER} .vega-embed svg g.mark-line path")
    pg.wait_for_selector(f"{EXPLORER} .eventkit-as-of .noUi-handle")
    pg.wait_for_selector(f"{EXPLORER} table.eventkit-state")
    pg.wait_for_function(f"() => document.querySelectorAll('{NB} .vega-embed svg').length >= 2")

    errors = pg.locator(f"{NB} .jp-OutputArea-output[data-mime-type*='stderr'], "
                        f"{NB} .jp-OutputArea-output:has-text('Traceback')")
    assert errors.count() == 0, errors.all_inner_texts()
    first = explorer_state(pg)
    assert "Balance history of account 1" in first["chart"]
    assert "as of 2024-06-30 23:59 UTC" in first["chart"]
    assert first["status"].startswith("account 1: ")
    pg.locator(EXPLORER).screenshot(path=str(SHOTS / "explorer-1-start.png"))

    # the as-of slider, by keyboard as a person would: ten days back
    assert first["as_of"] == "2024-06-30"
    handle = pg.locator(f"{EXPLORER} .eventkit-as-of .noUi-handle")
    handle.focus()
    for _ in range(10):
        handle.press("ArrowLeft")
    wait_for_change(pg, first["chart"], contains="as of 2024-06-20 23:59 UTC")
    moved = explorer_state(pg)
    assert moved["line"] == first["line"]  # same account: only the marker moved
    assert moved["as_of"] == "2024-06-20"
    assert "state as of 2024-06-20" in pg.locator(f"{EXPLORER} table.eventkit-state").inner_text()
    pg.locator(EXPLORER).screenshot(path=str(SHOTS / "explorer-2-as-of.png"))

    # another account, typed into the search box
    box = pg.locator(f"{EXPLORER} .eventkit-account input")
    box.fill("42")
    wait_for_change(pg, moved["chart"], contains="Balance history of account 42")
    changed = explorer_state(pg)
    assert changed["line"] != moved["line"]
    assert "as of 2024-06-20 23:59 UTC" in changed["chart"]
    assert changed["status"].startswith("account 42: ")

    # a what-if: the rate slider up eight steps of 0.25 draws the scenario line
    rate = pg.locator(f"{EXPLORER} .eventkit-rate .noUi-handle")
    rate.focus()
    for _ in range(8):
        rate.press("ArrowRight")
    wait_for_change(pg, changed["chart"], contains="rate +2.00 pp")
    pg.wait_for_function(f"() => document.querySelectorAll('{EXPLORER} .vega-embed svg "
                         "g.mark-line path').length >= 2")
    pg.locator(EXPLORER).screenshot(path=str(SHOTS / "explorer-3-what-if.png"))

    assert errors.count() == 0, errors.all_inner_texts()
    assert not pg.problems, pg.problems
