"""`eventkit report` / `make reports`: papermill runs from a YAML file, HTML, named failures."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT
from nbformat.v4 import new_code_cell, new_notebook

import eventkit
from eventkit.workbench.reports import load_runs, run_reports

pytestmark = pytest.mark.notebooks


def write_notebook(path: Path, *sources: str) -> Path:
    params = new_code_cell("divisor = 1")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, *(new_code_cell(s) for s in sources)])
    nb.metadata["kernelspec"] = {"name": "eventkit", "display_name": "Python (eventkit)",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    books = tmp_path / "notebooks"
    books.mkdir()
    write_notebook(books / "a.ipynb", "print(f'ratio {10 / divisor}')")
    write_notebook(books / "b.ipynb", "print('b ran')")
    return books


def runs_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reports.yaml"
    path.write_text(text)
    return path


def test_the_projects_runs_cover_every_notebook_with_known_parameters():
    runs = load_runs(ROOT / "reports.yaml", ROOT / "notebooks")
    assert {r.notebook.name for r in runs} == {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert all(r.parameters.get("interactive") is False for r in runs if r.parameters)


def test_unlisted_notebooks_run_with_their_defaults(tmp_path, folder):
    runs = load_runs(runs_file(tmp_path, "runs:\n  - {name: a-5, notebook: a.ipynb, "
                                         "parameters: {divisor: 5}}\n"), folder)
    assert [(r.name, r.notebook.name, r.parameters) for r in runs] == [
        ("a-5", "a.ipynb", {"divisor": 5}), ("b", "b.ipynb", {})]


@pytest.mark.parametrize(("text", "words"), [
    ("runs:\n  - {notebook: zzz.ipynb}\n", ["runs[0]", "no notebook", "zzz.ipynb"]),
    ("runs:\n  - {notebook: a.ipynb, parameters: {divisr: 2}}\n",
     ["runs[0]", "a.ipynb declares no parameter divisr", "(it has divisor)"]),
    ("runs:\n  - {notebook: a.ipynb}\n  - {notebook: a.ipynb}\n", ["runs[1]", "'a' is used twice"]),
    ("runs: {notebook: a.ipynb}\n", ["expected a mapping with a list under 'runs'"]),
    ("runs: [\n", ["cannot read the report runs"]),
])
def test_bad_runs_files_are_refused_before_anything_runs(tmp_path, folder, text, words):
    with pytest.raises(eventkit.ReportError) as info:
        load_runs(runs_file(tmp_path, text), folder)
    assert str(tmp_path / "reports.yaml") in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_a_failing_notebook_is_named_with_its_cell_and_error_and_others_still_run(
        tmp_path, folder, kernel):
    runs = load_runs(runs_file(tmp_path, "runs:\n  - {name: zero, notebook: a.ipynb, "
                                         "parameters: {divisor: 0}}\n"), folder)
    out = tmp_path / "reports"
    with pytest.raises(eventkit.ReportError) as info:
        run_reports(runs, out, kernel=kernel, timeout=60)
    assert info.value.failures == [
        "a.ipynb (run zero) cell 2 [print(f'ratio {10 / divisor}')]: "
        "ZeroDivisionError: division by zero"]
    assert (out / "zero.ipynb").exists()  # kept, with papermill's error banner
    assert (out / "b.html").read_text().count("b ran") >= 1


@pytest.mark.parametrize("workers", [1, 2])
def test_runs_execute_side_by_side_up_to_workers_each_in_its_own_kernel(tmp_path, kernel,
                                                                        workers, monkeypatch):
    books = tmp_path / "notebooks"
    books.mkdir()
    started = tmp_path / "started"
    started.mkdir()
    for name in "abc":  # each run notes when its kernel worked, which kernel, and where
        # it waits (up to 50 s) until `workers` kernels have started, then works 1 s: under
        # load kernels start seconds apart, and a fixed sleep let the first end too early
        write_notebook(books / f"{name}.ipynb", "import os, time, pathlib\nbegan = time.time()",
                       f"started = pathlib.Path({str(started)!r})\n(started / {name!r}).touch()\n"
                       f"while len(list(started.iterdir())) < {workers} and "
                       "time.time() - began < 50:\n    time.sleep(0.05)\ntime.sleep(1)\n"
                       "print(f'{os.getpid()} {began} {time.time()} {os.getcwd()}')")
    monkeypatch.chdir(tmp_path)  # relative paths, as `make reports` gives
    runs = load_runs(runs_file(tmp_path, "runs: []\n"), "notebooks")
    done: list[str] = []
    pages = run_reports(runs, "out", kernel=kernel, timeout=60, workers=workers,
                        on_done=lambda run, page, s: done.append(run.name))
    assert [p.name for p in pages] == ["a.html", "b.html", "c.html"]  # the runs' order
    assert sorted(done) == ["a", "b", "c"]
    assert Path.cwd() == tmp_path  # no run moved this process
    spans = []
    for name in "abc":
        nb = nbformat.read(tmp_path / "out" / f"{name}.ipynb", as_version=4)
        pid, began, ended, cwd = nb.cells[-1].outputs[0]["text"].split()
        assert cwd == str(books)  # each kernel in the notebook's folder
        spans.append((int(pid), float(began), float(ended)))
    assert len({pid for pid, _, _ in spans}) == 3  # a fresh kernel per run
    at_once = max(sum(b <= t < e for _, b, e in spans) for _, t, _ in spans)
    assert at_once == workers


def test_workers_below_one_are_refused(tmp_path, folder):
    runs = load_runs(runs_file(tmp_path, "runs: []\n"), folder)
    with pytest.raises(eventkit.ParameterError, match="workers: must be at least 1, got 0"):
        run_reports(runs, tmp_path / "out", workers=0)
    assert not (tmp_path / "out").exists()


def test_report_command_writes_notebooks_and_html_with_static_charts(tmp_path, kernel,
                                                                     sample_archive):
    out = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "eventkit", "report", "--out", str(out),
                           "--only", "replay-explorer-account-7", "--kernel", kernel],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "TCP" not in done.stderr  # the kernel listened on Unix sockets, not on a port
    assert done.stdout.startswith(f"replay-explorer-account-7: {out}/replay-explorer-account-7"
                                  ".html (")
    page = (out / "replay-explorer-account-7.html").read_text()
    svgs = [base64.b64decode(b).decode() for b in
            re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)]
    assert len(svgs) == 2  # the charts are pictures in the page: no JavaScript needed
    assert "Account 7: baseline and rate +1.00 pp" in svgs[0]
    assert "Restatements: " in svgs[1]
    assert "rate +1.00 pp" in page  # the state table
    executed = nbformat.read(out / "replay-explorer-account-7.ipynb", as_version=4)
    assert executed.metadata["papermill"]["parameters"]["ACCOUNT"] == 7


def test_report_command_fails_with_one_line_naming_notebook_cell_and_error(tmp_path, folder,
                                                                          kernel):
    config = runs_file(tmp_path, "runs:\n  - {name: zero, notebook: a.ipynb, "
                                 "parameters: {divisor: 0}}\n")
    done = subprocess.run([sys.executable, "-m", "eventkit", "report", "--config", str(config),
                           "--notebooks", str(folder), "--out", str(tmp_path / "out"),
                           "--kernel", kernel], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    # (the kernel's own start-up warnings may come before it on the same stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("eventkit")]
    assert len(lines) == 1 and lines[0].startswith("eventkit: error: 1 of 2 report run(s) failed")
    assert "Traceback" not in done.stderr
    assert "a.ipynb (run zero) cell 2" in lines[0] and "ZeroDivisionError" in lines[0]
