"""Every notebook: stored clean, parametrized, and runs headless with papermill."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
import pytest
from conftest import ROOT
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

pytestmark = pytest.mark.notebooks

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "eventkit"
CELL_TIMEOUT_S = 120
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="session")
def kernel() -> str:
    """The `eventkit` kernel of this interpreter, registered as `make` does if missing."""
    try:
        registered = KernelSpecManager().get_kernel_spec(KERNEL).argv[0] == sys.executable
    except NoSuchKernel:
        registered = False
    if not registered:
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix",
                        "--name", KERNEL, "--display-name", "Python (eventkit)"],
                       check=True, capture_output=True, timeout=60)
    return KERNEL


def execute(path: Path, out: Path, kernel: str, **parameters: Any) -> nbformat.NotebookNode:
    """Run a notebook as a user would, from its own folder; fail on any error output."""
    nb = pm.execute_notebook(str(path), str(out), parameters=parameters, cwd=str(NOTEBOOK_DIR),
                             kernel_name=kernel, execution_timeout=CELL_TIMEOUT_S,
                             progress_bar=False)
    errors = [f"cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(nb.cells)
              if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    return nb


def chart_specs(nb: nbformat.NotebookNode) -> list[dict]:
    """Vega-Lite specs of the charts a notebook showed, in cell order.

    Altair's offline ``JupyterChart`` is a widget: the output holds a model id, the
    saved widget state holds the spec (and its bundled JavaScript).
    """
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    ids = [o.data[WIDGET_VIEW]["model_id"] for c in nb.cells if c.cell_type == "code"
           for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
    models = [state[i]["state"] for i in ids]
    assert all("esm.sh" not in m["_esm"] for m in models), "a chart loads JavaScript from a CDN"
    return [m["spec"] for m in models]


def data_rows(spec: dict) -> list[dict]:
    return [row for dataset in spec["datasets"].values() for row in dataset]


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"cells {dirty} keep outputs or execution counts; clear them before saving"
    assert "widgets" not in nb.metadata, "saved widget state: clear outputs before saving"
    assert nb.metadata["kernelspec"]["name"] == KERNEL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_has_parameters(path: Path):
    tagged = [c for c in nbformat.read(path, as_version=4).cells
              if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "need exactly one cell tagged 'parameters' (papermill)"
    assert pm.inspect_notebook(str(path)), "the 'parameters' cell defines no parameters"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
@pytest.mark.usefixtures("sample_archive")
def test_runs_with_default_parameters(path: Path, tmp_path: Path, kernel: str):
    execute(path, tmp_path / path.name, kernel)


@pytest.mark.usefixtures("sample_archive")
def test_balance_history_follows_its_parameters(tmp_path: Path, kernel: str):
    nb = execute(NOTEBOOK_DIR / "01_balance_history.ipynb", tmp_path / "out.ipynb", kernel,
                 ACCOUNTS=[4, 9], START="2024-07-01", END="2024-09-30")
    lines, band = chart_specs(nb)
    assert lines["title"]["text"] == "Balance history of accounts 4, 9"
    assert {r["account_id"] for r in data_rows(lines)} == {4, 9}
    for spec in (lines, band):
        assert spec["title"]["subtitle"].startswith("2024-07-01 00:00 to 2024-09-30 23:59 UTC")
        days = sorted(r["time"][:10] for r in data_rows(spec))
        assert (days[0], days[-1]) == ("2024-07-01", "2024-09-30")
    state = next(o.data["text/plain"] for c in nb.cells if "as_of(END)" in c.source
                 for o in c.outputs)
    assert state.startswith("shape: (2, "), state  # one row per account


def test_patterns_follow_their_parameters(tmp_path: Path, kernel: str):
    # a missing archive is generated with injected instances; every label is found
    nb = execute(NOTEBOOK_DIR / "05_patterns.ipynb", tmp_path / "out.ipynb", kernel,
                 ARCHIVE=str(tmp_path / "bank"), PATTERN="structuring", ALERT=1,
                 NEGATIVE_LONGER_THAN="30d", interactive=False)
    assert (tmp_path / "bank" / "_eventkit" / "labels.parquet").is_file()
    summary = next(o.data["text/plain"] for c in nb.cells if c.cell_type == "code"
                   and "labelled" in c.source
                   for o in c.outputs if o.output_type == "execute_result")
    counts = {line.split()[1]: line.split()[-4:-1:2] for line in summary.splitlines()
              if line.startswith("│ ") and "┆" in line}  # pattern -> [labelled, found]
    assert counts["ping_pong"] == counts["rapid_withdrawals"] == counts["structuring"] \
        == ["4", "4"], summary
    assert counts["negative_balance"] == ["4", "0"], summary  # injected dips last 6 days < 30
    [timeline] = chart_specs(nb)  # interactive=False: no slider
    assert timeline["title"]["text"].startswith("structuring alert on account")
    inside = [r for r in data_rows(timeline) if r["in_alert"]]
    assert [r["event_type"] for r in inside] == ["Deposit", "Withdrawal"]
