"""The workbench as a person sees it: every notebook in JupyterLab, the app, the reports.

JupyterLab is started as `make lab` does, the app as `make app` does (Voila), and Debian's
/usr/bin/chromium (installed by `make setup`) is driven headless by Playwright. Pages may
talk to the local server only (reports: to nothing at all); any other request fails the
test. Screenshots go to tests/screenshots/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the visible notebook only
EXPLORER = f"{NB} .eventkit-explorer"
SETTINGS = {  # no news pop-up, and never autosave a notebook the test ran
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        '{"fetchNews": "false", "checkForUpdates": false}',
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": '{"autosave": false}',
    # every cell in the page (no windowing): whole-notebook screenshots, every chart drawn
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
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
def page() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"no browser at {CHROMIUM}: run `make setup` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS,
                                    headless=True, timeout=60_000)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1800})
            context.set_default_timeout(60_000)
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


def run_all(pg: Any, lab: dict[str, str], notebook: str) -> None:
    """Open ``notebook`` in JupyterLab, Run All, wait for every cell; no error output.

    Earlier tests' kernels are shut down and the notebook opens in a workspace of its own:
    JupyterLab would otherwise reopen every notebook an earlier test opened (a kernel each,
    and another notebook may take the focus that Run All acts on).
    """
    api = f"{lab['base']}/api/sessions"
    auth = {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(api, headers=auth), timeout=30) as r:
        sessions = json.load(r)
    for session in sessions:
        urllib.request.urlopen(urllib.request.Request(f"{api}/{session['id']}", headers=auth,
                                                      method="DELETE"), timeout=30).close()
    workspace = f"{notebook.removesuffix('.ipynb')}-{secrets.token_hex(4)}"
    pg.goto(f"{lab['base']}/lab/workspaces/{workspace}/tree/{notebook}?token={lab['token']}")
    # Run All does nothing until the kernel is connected and idle
    pg.wait_for_selector(".jp-StatusBar-TextItem:has-text('Python (eventkit) | Idle')",
                         timeout=120_000)
    pg.click(".lm-MenuBar-itemLabel:text-is('Run')")
    pg.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    pg.wait_for_function(ALL_RUN, timeout=300_000)
    errors = pg.locator(f"{NB} .jp-OutputArea-output[data-mime-type*='stderr'], "
                        f"{NB} .jp-OutputArea-output:has-text('Traceback')")
    assert errors.count() == 0, errors.all_inner_texts()


TITLES_SEEN = """() => {
  window.__titles = new Set();
  const note = () => {
    const t = document.querySelector('ROOT .vega-embed svg .role-title-text');
    if (t) window.__titles.add(t.textContent);
  };
  note();
  new MutationObserver(note).observe(document.body,
                                     {subtree: true, childList: true, characterData: true});
}"""


def type_137_key_by_key(pg: Any, root: str) -> None:
    """Type 137 into the account box as a person would; only 137 may ever be drawn."""
    pg.evaluate(TITLES_SEEN.replace("ROOT", root))
    box = pg.locator(f"{root} .eventkit-account-input")
    box.click()
    box.fill("")
    box.press_sequentially("137", delay=250)
    pg.wait_for_function(f"() => [...document.querySelectorAll('{root} datalist option')]"
                         ".every(o => o.value.startsWith('137'))")
    pg.wait_for_timeout(1500)  # longer than the debounce: typing alone must not replay
    assert "account 137" not in pg.locator(f"{root} .role-title-text").first.text_content()
    box.press("Enter")
    title = f"{root} .vega-embed svg .role-title-text"
    pg.wait_for_function(f"() => document.querySelector('{title}')?.textContent"
                         " === 'Balance history of account 137'")
    pg.wait_for_function(f"() => document.querySelector('{root} .eventkit-status')"
                         "?.textContent.startsWith('account 137 as of ')")
    seen = pg.evaluate("() => [...window.__titles]")
    assert [t for t in seen if "account 1" in t and "137" not in t and t not in
            ("Balance history of account 1",)] == [], seen  # never 13: typing draws nothing
    assert "Balance history of account 13" not in seen, seen
    assert "account 137" in pg.locator(f"{root} .eventkit-table").inner_text() or \
        "State as of" in pg.locator(f"{root} .eventkit-table").inner_text()


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_notebook_runs_in_jupyterlab_and_draws_its_charts(lab: dict[str, str], page: Any,
                                                                 notebook: str):
    SHOTS.mkdir(exist_ok=True)
    pg = page
    pg.set_viewport_size({"width": 1400, "height": 5200})  # the whole notebook in one picture
    run_all(pg, lab, notebook)
    pg.wait_for_function(f"() => document.querySelectorAll('{NB} .vega-embed svg').length >= 1")
    pg.wait_for_timeout(1000)  # charts finish drawing
    text = pg.locator(NB).inner_text()
    assert "NaN" not in text and "undefined" not in text
    assert "JavaScript Error" not in text and "Error displaying widget" not in text
    # every chart drew marks from its data, in a picture of some width (a chart whose data
    # came late drew them 0 px wide: nothing on screen, no error)
    blank = f"""() => [...document.querySelectorAll('{NB} .vega-embed')]
        .filter(c => !c.querySelector('svg g.role-mark path, svg g.role-mark line')
                     || c.querySelector('svg').getBoundingClientRect().width < 100).length"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):  # under load a chart may still be drawing
        pg.wait_for_function(f"() => ({blank})() === 0", timeout=30_000)
    empty = pg.evaluate(blank)
    assert empty == 0, f"{empty} chart(s) drew nothing to see"
    pg.locator(NB).screenshot(path=str(SHOTS / f"notebook-{notebook.removesuffix('.ipynb')}.png"))
    assert not pg.problems, pg.problems


def test_hovering_a_line_shows_every_accounts_balance_at_that_instant(lab: dict[str, str],
                                                                      page: Any, sample_archive):
    import eventkit
    from eventkit import charts

    pg = page
    run_all(pg, lab, "01_balance_history.ipynb")
    svg = pg.locator(f"{NB} .vega-embed svg").first
    svg.scroll_into_view_if_needed()
    box = svg.bounding_box()
    tips = []
    for x in (0.3, 0.55, 0.8):  # across the plot
        pg.mouse.move(box["x"] + box["width"] * x - 5, box["y"] + box["height"] * 0.5)
        pg.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * 0.55, steps=5)
        pg.wait_for_selector("#vg-tooltip-element.visible", timeout=10_000)
        tips.append(pg.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
            '#vg-tooltip-element tr')].map(r => [...r.querySelectorAll('td')]
            .map(td => td.textContent.trim())))"""))
    pg.locator(NB).screenshot(path=str(SHOTS / "hover-tooltip.png"))
    chart = charts.balance_history(eventkit.replay(eventkit.open_archive(sample_archive)).history,
                                   accounts=[1, 2, 3], start="2023-01-01", end="2025-12-31")
    rows = {r["when"]: r for r in chart.layer[3].data.iter_rows(named=True)}
    assert len({tip["time"] for tip in tips}) == 3, tips  # three different instants
    for tip in tips:
        assert "NaN" not in str(tip) and "undefined" not in str(tip), tip
        when = tip["time"]
        assert when.endswith(" UTC") and when in rows, (when, tip)
        for i, account in enumerate((1, 2, 3)):
            assert tip[f"account {account}"] == (rows[when][f"t{i}"] or ""), (account, tip)
    assert not pg.problems, pg.problems


def test_explorer_typing_an_account_draws_only_that_account(lab: dict[str, str], page: Any):
    SHOTS.mkdir(exist_ok=True)
    pg = page
    run_all(pg, lab, NOTEBOOK)
    pg.wait_for_selector(f"{EXPLORER} .vega-embed svg g.mark-line path")
    pg.locator(EXPLORER).screenshot(path=str(SHOTS / "explorer-1-start.png"))
    type_137_key_by_key(pg, EXPLORER)
    pg.locator(EXPLORER).screenshot(path=str(SHOTS / "explorer-2-account-137.png"))
    # an unknown account greys the view out and says so
    box = pg.locator(f"{EXPLORER} .eventkit-account-input")
    box.fill("99999")
    box.press("Enter")
    pg.wait_for_selector(f"{EXPLORER} .eventkit-view.eventkit-unknown")
    assert "no account 99999" in pg.locator(f"{EXPLORER} .eventkit-status").inner_text()
    pg.locator(EXPLORER).screenshot(path=str(SHOTS / "explorer-3-unknown.png"))
    assert not pg.problems, pg.problems


def test_replay_explorer_in_jupyterlab(lab: dict[str, str], page: Any):
    SHOTS.mkdir(exist_ok=True)
    pg = page
    run_all(pg, lab, NOTEBOOK)
    pg.wait_for_selector(f"{EXPLORER} .vega-embed svg g.mark-line path")
    pg.wait_for_selector(f"{EXPLORER} .eventkit-as-of .noUi-handle")
    pg.wait_for_selector(f"{EXPLORER} .eventkit-table table")
    pg.wait_for_function(f"() => document.querySelectorAll('{NB} .vega-embed svg').length >= 2")

    errors = pg.locator(f"{NB} .jp-OutputArea-output[data-mime-type*='stderr'], "
                        f"{NB} .jp-OutputArea-output:has-text('Traceback')")
    assert errors.count() == 0, errors.all_inner_texts()
    first = explorer_state(pg)
    assert "Balance history of account 1" in first["chart"]
    assert "as of 2024-06-30 23:59 UTC" in first["chart"]
    assert first["status"].startswith("account 1 as of ")

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
    assert "State as of 2024-06-20" in pg.locator(f"{EXPLORER} .eventkit-table").inner_text()
    assert pg.locator(f"{EXPLORER} .eventkit-date input").input_value() == "2024-06-20"

    # another account, typed into the search box
    box = pg.locator(f"{EXPLORER} .eventkit-account-input")
    box.fill("42")
    box.press("Enter")
    wait_for_change(pg, moved["chart"], contains="Balance history of account 42")
    changed = explorer_state(pg)
    assert changed["line"] != moved["line"]
    assert "as of 2024-06-20 23:59 UTC" in changed["chart"]
    assert changed["status"].startswith("account 42 as of ")

    # a what-if: the rate slider up eight steps of 0.25 draws the scenario line
    rate = pg.locator(f"{EXPLORER} .eventkit-rate .noUi-handle")
    rate.focus()
    for _ in range(8):
        rate.press("ArrowRight")
    wait_for_change(pg, changed["chart"], contains="rate +2.00 pp")
    pg.wait_for_function(f"() => document.querySelectorAll('{EXPLORER} .vega-embed svg "
                         "g.mark-line path').length >= 2")
    pg.wait_for_function(f"() => document.querySelector('{EXPLORER} .eventkit-difference')"
                         "?.textContent.includes('rate +2.00 pp − baseline')")
    pg.locator(EXPLORER).screenshot(path=str(SHOTS / "explorer-4-what-if.png"))

    assert errors.count() == 0, errors.all_inner_texts()
    assert not pg.problems, pg.problems


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, kernel: str,
        sample_archive: Path) -> Iterator[dict[str, str]]:
    """`eventkit app`'s command (Voila) on the sample archive."""
    from eventkit.workbench.app import app_command, app_environment, app_notebook

    tmp = tmp_path_factory.mktemp("app")
    book = app_notebook(tmp / "book", sample_archive, account=1, as_of="2024-06-30")
    env, token = app_environment(book, {
        **os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data-dir"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "PYTHONUNBUFFERED": "1"})
    port = free_port()
    argv = app_command(book, port=port)
    log_path = tmp / "app.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:  # the port accepts (a page request would start a kernel each time)
            if proc.poll() is not None:
                pytest.fail(f"voila exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"voila not up in 90 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        try:  # the token is required: without it, an error or the login page
            with urllib.request.urlopen(f"{base}/", timeout=60) as r:
                assert "login" in r.geturl(), r.geturl()
        except urllib.error.HTTPError as exc:
            assert exc.code in (401, 403), exc.code
        yield {"base": base, "token": token, "log": str(log_path)}
    finally:
        stop_server(proc)


def test_the_app_serves_the_explorer_without_code_and_types_like_the_lab(app: dict[str, str],
                                                                          page: Any):
    SHOTS.mkdir(exist_ok=True)
    pg = page
    pg.goto(f"{app['base']}/?token={app['token']}", timeout=180_000)
    root = ".eventkit-explorer"
    pg.wait_for_selector(f"{root} .vega-embed svg g.mark-line path", timeout=180_000)
    title = pg.locator(f"{root} .vega-embed svg").first.text_content()
    assert "Balance history of account 1" in title
    assert "import eventkit" not in pg.content()  # no code for people who do not code
    pg.screenshot(path=str(SHOTS / "app-1-start.png"))
    type_137_key_by_key(pg, root)
    pg.screenshot(path=str(SHOTS / "app-2-account-137.png"))
    assert not pg.problems, pg.problems


def test_every_report_stands_alone_offline(tmp_path: Path, page: Any, kernel: str,
                                           sample_archive: Path):
    import base64
    import re

    out = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "eventkit", "report", "--out", str(out),
                           "--kernel", kernel], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    pages = sorted(out.glob("*.html"))
    assert out / "index.html" in pages and len(pages) >= 8
    pg = page
    requested: list[str] = []
    pg.context.unroute("**/*")
    pg.context.route("**/*", lambda route: (requested.append(route.request.url),
                                            route.continue_() if route.request.url.startswith(
                                                ("file://", "data:")) else route.abort()))
    for report in pages:
        html = report.read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", html), report.name
        assert "@import" not in html and "<script src" not in html, report.name
        pg.goto(report.as_uri())
        pg.wait_for_load_state("load")
        if report.name == "index.html":
            links = pg.locator("a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
            assert sorted(links) == sorted(p.name for p in pages if p.name != "index.html")
            continue
        svgs = re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
        drawn = pg.locator("img[src^='data:image/svg+xml']")
        assert drawn.count() == len(svgs), report.name  # every chart is in the page
        assert all(img.evaluate("i => i.naturalWidth > 0") for img in drawn.all()), report.name
        for svg in svgs:
            assert "NaN" not in base64.b64decode(svg).decode()
        assert "Parameters of this run" in pg.content(), report.name
        assert pg.locator(".jp-CodeCell .jp-InputArea").count() == 0, report.name  # code hidden
        assert "import eventkit" not in pg.locator("body").inner_text(), report.name
        pg.screenshot(path=str(SHOTS / f"report-{report.stem}.png"), full_page=True)
    offsite = [u for u in requested if not u.startswith(("file://", "data:"))]
    assert offsite == [], offsite
    assert not [p for p in pg.problems if "page error" in p], pg.problems
