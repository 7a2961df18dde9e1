"""Every notebook: stored clean, parametrized, and runs headless with papermill."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
import pytest
from conftest import ROOT

import eventkit
from eventkit.banking import generate

pytestmark = pytest.mark.notebooks

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 120
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


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
    saved widget state holds the spec (and its bundled JavaScript). Charts inside
    boxes (the explorer) count too.
    """
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]

    def charts_in(model_id: str) -> list[dict]:
        model = state[model_id]["state"]
        if "spec" in model:
            return [model]
        return [chart for child in model.get("children", [])
                for chart in charts_in(child.removeprefix("IPY_MODEL_"))]

    ids = [o.data[WIDGET_VIEW]["model_id"] for c in nb.cells if c.cell_type == "code"
           for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
    models = [chart for i in ids for chart in charts_in(i)]
    assert all("esm.sh" not in m["_esm"] for m in models), "a chart loads JavaScript from a CDN"
    return [m["spec"] for m in models]


def data_rows(spec: dict) -> list[dict]:
    return [row for dataset in spec["datasets"].values() for row in dataset]


def line_rows(spec: dict) -> list[dict]:
    """The rows of a chart's line layer."""
    layer = next(layer for layer in spec.get("layer", [spec]) if layer["mark"]["type"] == "line")
    return spec["datasets"][layer.get("data", spec.get("data"))["name"]]


def html_outputs(nb: nbformat.NotebookNode) -> str:
    """Every HTML a notebook displayed (tables, sentences), in cell order."""
    return "\n".join(o.get("data", {}).get("text/html", "") for c in nb.cells
                     if c.cell_type == "code" for o in c.outputs)


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
    assert nb.metadata["kernelspec"]["name"] == "eventkit"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_has_parameters(path: Path):
    tagged = [c for c in nbformat.read(path, as_version=4).cells
              if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "need exactly one cell tagged 'parameters' (papermill)"
    assert pm.inspect_notebook(str(path)), "the 'parameters' cell defines no parameters"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_reads_every_parameter(path: Path):
    """A line papermill cannot parse (e.g. a quote in its comment) drops that parameter."""
    cell = next(c for c in nbformat.read(path, as_version=4).cells
                if "parameters" in c.metadata.get("tags", []))
    assigned = [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)]
    assert sorted(pm.inspect_notebook(str(path))) == sorted(assigned)


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
    assert {r["account_id"] for r in line_rows(lines)} == {4, 9}
    for spec, subtitle in ((lines, lines["title"]["subtitle"]),
                           (band, band["title"]["subtitle"][0])):
        assert subtitle.startswith("2024-07-01 00:00 to 2024-09-30 23:59 UTC")
        days = sorted(r["time"][:10] for r in line_rows(spec))
        assert (days[0], days[-1]) == ("2024-07-01", "2024-09-30")
    state = next(o.data["text/html"] for c in nb.cells if "as_of(END)" in c.source
                 for o in c.outputs)
    assert "State at the end of 2024-09-30" in state and state.count("<tr") == 4  # 2 rows
    assert "$" in state and "shape:" not in state
    assert "the median account holds $" in html_outputs(nb)  # the take-away


@pytest.mark.usefixtures("sample_archive")
def test_balance_history_takes_one_account_and_names_one_without_events(tmp_path: Path,
                                                                         kernel: str):
    nb = execute(NOTEBOOK_DIR / "01_balance_history.ipynb", tmp_path / "out.ipynb", kernel,
                 ACCOUNTS=5, interactive=False)  # one id, as `-p ACCOUNTS 5` gives it
    shown = html_outputs(nb)
    assert "of the chosen accounts, 5 holds the most: $" in shown
    with pytest.raises(pm.PapermillExecutionError) as failed:
        execute(NOTEBOOK_DIR / "01_balance_history.ipynb", tmp_path / "out.ipynb", kernel,
                ACCOUNTS=[5, 99_999], interactive=False)
    assert failed.value.evalue == "accounts: no events of account 99999 to draw"

def test_balance_history_of_an_expired_archive_starts_at_its_cut_off(tmp_path: Path,
                                                                      kernel: str):
    """Before the cut-off the history holds no balances of then: refused, never drawn as $0."""
    generate(tmp_path / "bank", events=600, accounts=4, seed=2)
    eventkit.expire(tmp_path / "bank", before="2024-01-01", by="ops", reason="retention",
                    confirm=True)
    archive = str(tmp_path / "bank")
    with pytest.raises(pm.PapermillExecutionError) as failed:  # START 2023-01-01, the default
        execute(NOTEBOOK_DIR / "01_balance_history.ipynb", tmp_path / "out.ipynb", kernel,
                ARCHIVE=archive, interactive=False)
    assert failed.value.ename == "ExpiredError", failed.value.evalue
    assert "asked about 2023-01-01" in failed.value.evalue
    nb = execute(NOTEBOOK_DIR / "01_balance_history.ipynb", tmp_path / "out.ipynb", kernel,
                 ARCHIVE=archive, START="2024-01-01", ACCOUNTS=[1, 2], interactive=False)
    assert "the median account holds $" in html_outputs(nb)

@pytest.mark.usefixtures("sample_archive")
def test_replay_explorer_widgets_show_the_account_and_the_restatements(tmp_path: Path,
                                                                        kernel: str):
    nb = execute(NOTEBOOK_DIR / "04_replay_explorer.ipynb", tmp_path / "out.ipynb", kernel,
                 ACCOUNT=7, AS_OF="2024-03-31", RATE_SHIFT=0.5)
    explorer, restated = chart_specs(nb)
    assert explorer["title"]["text"] == "Account 7: baseline and rate +0.50 pp"
    assert "as of 2024-03-31 23:59 UTC" in json.dumps(explorer)
    assert restated["title"]["text"].startswith("Restatements: ")
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    tables = [m["state"]["value"] for m in state.values()
              if "State as of" in str(m["state"].get("value", ""))]
    assert len(tables) == 1 and "rate +0.50 pp" in tables[0]


@pytest.mark.usefixtures("sample_archive")
def test_replay_explorer_headless_draws_static_svg_without_widgets(tmp_path: Path, kernel: str):
    nb = execute(NOTEBOOK_DIR / "04_replay_explorer.ipynb", tmp_path / "out.ipynb", kernel,
                 ACCOUNT=7, AS_OF="2024-03-31", RATE_SHIFT=1.0, interactive=False)
    svgs = [o.data["image/svg+xml"] for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) == 2
    assert "Account 7: baseline and rate +1.00 pp" in svgs[0]
    assert "as of 2024-03-31 23:59 UTC" in svgs[0]
    assert "Restatements: " in svgs[1]
    shown = html_outputs(nb)
    assert "State as of 2024-03-31 23:59 UTC" in shown and "rate +1.00 pp" in shown
    assert "Account 7 as of 2024-03-31 23:59 UTC: balance $" in shown  # the sentence
    assert "widgets" not in nb.metadata  # nothing for a report reader to run


def interest_delta(nb: nbformat.NotebookNode) -> int:
    """The sign of the interest the what-if notebook's summary says customers gain or lose."""
    said = next(o.data["text/plain"] for c in nb.cells if "what_if_summary" in c.source
                for o in c.outputs)
    assert said.startswith("Under the scenario customers "), said
    return 1 if " gain $" in said else -1 if " lose $" in said else 0


@pytest.mark.usefixtures("sample_archive")
@pytest.mark.parametrize(("scenario", "sign"), [
    ({"SHIFT": "-3mo"}, None),                      # the 2024 rate changes three months early
    ({"SHIFT": "0d", "BUMP": 1.0}, 1),              # one point more, all along
    ({"SHIFT": "0d", "BUMP": -0.5}, -1),            # half a point less
], ids=["earlier", "plus-1pp", "minus-half-pp"])
def test_what_if_notebook_follows_its_scenario(tmp_path: Path, kernel: str, scenario: dict,
                                               sign: int | None):
    nb = execute(NOTEBOOK_DIR / "03_what_if.ipynb", tmp_path / "out.ipynb", kernel,
                 ACCOUNTS=[4, 9], **scenario)
    delta = interest_delta(nb)
    assert delta != 0 if sign is None else delta * sign > 0, delta
    titles = [s["title"]["text"] for s in chart_specs(nb)]
    assert titles == ["Bank rate table: actual and scenario",
                      "Total difference of balance over all accounts (B − A)",
                      next(t for t in titles if "accounts changed" in t),
                      "Difference of balance (B − A), accounts 4, 9",
                      "Account 4: actual rates and scenario",
                      "Account 9: actual rates and scenario"]
    assert "Totals over all accounts" in html_outputs(nb)


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """Everything a notebook printed or displayed as text, in cell order."""
    return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "")
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.usefixtures("sample_archive")
def test_archive_health_reports_every_part(tmp_path: Path, kernel: str):
    nb = execute(NOTEBOOK_DIR / "06_archive_health.ipynb", tmp_path / "out.ipynb", kernel)
    text = outputs_text(nb)
    assert "OK: archive, demo intact, every erasure holds" in html_outputs(nb)  # the banner
    for expected in ("archive ../data/sample: OK", "eventkit archive ../data/sample",
                     "audited rewrites: 1 compact", "demo: 1 snapshot set(s)",
                     "archive: no key store", "demo: 1 subject(s) forgotten, 1 erasure check(s) "
                     "passed", "archive: versions [3]", "demo: versions [1, 3]",
                     "One data file: ", "are in schema version 3."):
        assert expected in text, expected
    assert "Bob" not in text and "b@x" not in text  # the forgotten subject's plaintext
    titles = [s["title"] if isinstance(s["title"], str) else s["title"]["text"]
              for s in chart_specs(nb)]
    # one file, one version: sentences, not a single bar
    assert titles == ["Data files in log order (3 files)", "Snapshot checkpoints (1 set)",
                      "Events per schema version"]


@pytest.mark.usefixtures("sample_archive")
def test_archive_health_without_the_demo(tmp_path: Path, kernel: str):
    nb = execute(NOTEBOOK_DIR / "06_archive_health.ipynb", tmp_path / "out.ipynb", kernel,
                 DEMO=False)
    assert "demo" not in outputs_text(nb)
    assert "widgets" not in nb.metadata  # one file, one version: sentences, no chart

def test_patterns_follow_their_parameters(tmp_path: Path, kernel: str):
    # a missing archive is generated with injected instances; every label is found
    nb = execute(NOTEBOOK_DIR / "05_patterns.ipynb", tmp_path / "out.ipynb", kernel,
                 ARCHIVE=str(tmp_path / "bank"), PATTERN="structuring", ALERT=1,
                 NEGATIVE_LONGER_THAN="30d", interactive=False)
    assert (tmp_path / "bank" / "_eventkit" / "labels.parquet").is_file()
    summary = next(o.data["text/html"] for c in nb.cells if c.cell_type == "code"
                   and "labelled" in c.source
                   for o in c.outputs if o.output_type == "execute_result")
    body = summary.split("<tbody", 1)[1]
    rows = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r,
                                                                    flags=re.S)]
            for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)]
    counts = {r[0]: [r[3], r[4]] for r in rows}  # pattern -> [labelled, found]
    assert counts["ping_pong"] == counts["rapid_withdrawals"] == counts["structuring"] \
        == ["4", "4"], summary
    assert counts["negative_balance"] == ["4", "0"], summary  # injected dips last 6 days < 30
    svgs = [o.data["image/svg+xml"] for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) == 1 and "structuring alert on account" in svgs[0]  # static: no slider
    assert "widgets" not in nb.metadata
    assert "missed instances of negative_balance" in outputs_text(nb)



@pytest.mark.usefixtures("sample_archive")
@pytest.mark.parametrize(("parameters", "error"), [
    ({"PATTERN": "pingpong"}, "pattern: no pattern 'pingpong'; known: negative_balance, "),
    ({"PATTERN": "ping_pong", "ALERT": 99}, "alert: ping_pong has "),
    ({"NEGATIVE_LONGER_THAN": "0s"}, "negative_longer_than takes a timedelta"),
], ids=["mistyped-pattern", "alert-out-of-range", "bad-threshold"])
def test_patterns_refuse_a_mistaken_parameter_at_once(tmp_path: Path, kernel: str,
                                                      parameters: dict, error: str):
    """A typo is an error naming the parameter before any table, never 'no alert'."""
    with pytest.raises(pm.PapermillExecutionError) as failed:
        execute(NOTEBOOK_DIR / "05_patterns.ipynb", tmp_path / "out.ipynb", kernel,
                ARCHIVE="../data/sample", interactive=False, PING_PONG_WITHIN="30d",
                **parameters)
    assert failed.value.ename in {"ParameterError", "PatternError"}
    assert failed.value.evalue.startswith(error), failed.value.evalue
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "Alerts per pattern" not in html_outputs(nb)  # stopped before the first table

@pytest.mark.usefixtures("sample_archive")
def test_time_travel_notebook_shows_what_late_corrections_restated(tmp_path: Path, kernel: str):
    nb = execute(NOTEBOOK_DIR / "02_time_travel.ipynb", tmp_path / "out.ipynb", kernel)
    text = outputs_text(nb)
    assert "2 of 226 accounts differ; total difference −$94.16" in text
    restated, month_ends = chart_specs(nb)
    assert restated["title"]["text"].startswith("Restatements: 2 late events")
    assert month_ends["title"]["text"] == "Total balance at each month end"
    assert len(line_rows(month_ends)) == 12  # the month-end totals: a chart, not a table
    assert "−$94.16 in total" in html_outputs(nb)  # the take-away
    # known at the end of the as-of day itself: what we believed then is what we know now
    nb = execute(NOTEBOOK_DIR / "02_time_travel.ipynb", tmp_path / "later.ipynb", kernel,
                 AS_OF="2023-06-30", KNOWN_AT="2025-12-31")
    assert "0 of " in outputs_text(nb)


def test_your_archive_notebook_replays_the_shop_export(tmp_path: Path, kernel: str):
    nb = execute(NOTEBOOK_DIR / "07_your_archive.ipynb", tmp_path / "out.ipynb", kernel,
                 ARCHIVE=str(tmp_path / "shop"), AS_OF="2024-02-29", ORDERS=3)
    specs = chart_specs(nb)
    titles = [s["title"] if isinstance(s["title"], str) else s["title"]["text"] for s in specs]
    assert titles == ["Orders by status at the end of 2024-02-29",
                      "Totals of the 3 orders active last"]
    counts = {r["value"]: r["keys"] for r in data_rows(specs[0])}
    assert set(counts) <= {"placed", "paid", "shipped", "delivered", "cancelled"}
    assert {r["key"] for r in data_rows(specs[1]) if "key" in r} and len(
        {r["key"] for r in data_rows(specs[1]) if "key" in r}) == 3
    text = outputs_text(nb)
    assert "requires status" in text  # the refused events are shown, with why
    archive = eventkit.EventArchive(tmp_path / "shop")  # a real archive, verified
    assert archive.verify().ok and archive.key == ("order_id",)


def test_your_archive_notebook_before_any_order_and_in_another_currency(tmp_path: Path,
                                                                       kernel: str):
    nb = execute(NOTEBOOK_DIR / "07_your_archive.ipynb", tmp_path / "out.ipynb", kernel,
                 AS_OF="2023-12-31", CURRENCY="JPY")
    assert "widgets" not in nb.metadata  # nothing to draw: sentences, no empty chart
    text = outputs_text(nb)
    assert "No orders to count by status." in text
    assert "No keys chosen: no total to draw." in text
    assert "0 were still open (placed or paid, ¥0.00 in total)" in text  # the archive's cents
    late = execute(NOTEBOOK_DIR / "07_your_archive.ipynb", tmp_path / "late.ipynb", kernel,
                   AS_OF="2024-12-31", CURRENCY="BHD")
    assert re.search(r"open \(placed or paid, BHD [\d,]+\.\d\d in total\)", outputs_text(late))
