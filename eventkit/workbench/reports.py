"""Reports: every notebook executed with papermill, saved as a notebook and as HTML.

The runs are listed in a YAML file (``reports.yaml`` at the project root)::

    runs:
      - name: explorer-account-7        # output: reports/explorer-account-7.{ipynb,html}
        notebook: 04_replay_explorer.ipynb
        parameters: {ACCOUNT: 7, RATE_SHIFT: 1.0, interactive: false}

A notebook may have several runs; a notebook without any runs once with its
defaults (named after the file), so every notebook is in the reports. Before
anything runs, each entry is checked: the name is a plain file name (no folder,
not hidden), so outputs stay inside the output folder; the notebook lies inside
the notebook folder; parameter names are those of the notebook's ``parameters``
cell, and their values plain YAML text, numbers, booleans, nulls, lists and
mappings (a YAML date such as ``2024-01-01`` unquoted, an anchor reused, or
nesting deeper than :data:`MAX_DEPTH` is refused in one line). Every run gets
``interactive: false`` unless it says otherwise: charts are static SVG
pictures. A failing run does not stop the others; at the end
:class:`ReportError` names each failed notebook, its cell and the error.

The HTML stands alone: no script, font or style is loaded from anywhere (the
page needs no JavaScript at all: nbconvert's require.js, MathJax, mermaid and
widget scripts are left out), code cells are hidden (``with_code`` shows them),
the run's parameters are a small table at the top, and ``index.html`` links
every report.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from eventkit.exceptions import ParameterError, ReportError

__all__ = ["MAX_DEPTH", "Run", "load_runs", "run_reports", "write_index"]

#: How deeply a parameter value may nest lists and mappings.
MAX_DEPTH = 16
_MAX_NAME = 200

#: nbconvert's lab page without any script: no require.js, MathJax, mermaid or widgets.
TEMPLATE: Final = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style>
.eventkit-parameters { border-collapse: collapse; margin: 4px 0 12px 0; font-size: 13px; }
.eventkit-parameters td, .eventkit-parameters th { padding: 2px 12px; text-align: left;
  border-bottom: 1px solid #ddd; }
.eventkit-parameters caption { text-align: left; color: #555; padding-bottom: 4px; }
.eventkit-parameters .default { color: #888; }
main { max-width: 1100px; margin: auto; }
</style>
{%- endblock extra_css -%}
"""


@dataclass(frozen=True)
class Run:
    """One execution of a notebook: its output name and the parameters it gets."""

    name: str
    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)


def load_runs(config: str | Path, notebooks: str | Path) -> list[Run]:
    """The runs of ``config`` (YAML, see the module docstring), then every unlisted notebook.

    Raises
    ------
    eventkit.ReportError
        The file is not such a YAML file, or an entry names a missing notebook,
        repeats a name, or passes a parameter the notebook does not declare.

    Examples
    --------
    >>> import tempfile, nbformat
    >>> from nbformat.v4 import new_code_cell, new_notebook
    >>> root = Path(tempfile.mkdtemp())
    >>> cell = new_code_cell("x = 1")
    >>> cell.metadata["tags"] = ["parameters"]
    >>> kernel = {"name": "eventkit", "display_name": "Python (eventkit)", "language": "python"}
    >>> nbformat.write(new_notebook(cells=[cell], metadata={"kernelspec": kernel}),
    ...                root / "a.ipynb")
    >>> _ = (root / "r.yaml").write_text("runs: [{name: a-2, notebook: a.ipynb, "
    ...                                  "parameters: {x: 2}}]")
    >>> [(r.name, r.parameters) for r in load_runs(root / "r.yaml", root)]
    [('a-2', {'x': 2})]

    """
    import papermill as pm  # noqa: PLC0415 (a quarter second to import)
    import yaml  # noqa: PLC0415 (a quarter second to import)

    config, folder = Path(config), Path(notebooks)
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        msg = f"{config}: cannot read the report runs: {exc}"
        raise ReportError(msg) from None
    entries = data.get("runs", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        msg = f"{config}: expected a mapping with a list under 'runs'"
        raise ReportError(msg)
    runs: list[Run] = []
    for i, entry in enumerate(entries):
        where = f"{config}: runs[{i}]"
        if not isinstance(entry, dict) or "notebook" not in entry:
            msg = f"{where}: expected a mapping with 'notebook' (and 'name', 'parameters')"
            raise ReportError(msg)
        path = folder / str(entry["notebook"])
        if not path.is_file():
            msg = f"{where}: no notebook {path}"
            raise ReportError(msg)
        if not path.resolve().is_relative_to(folder.resolve()):
            msg = f"{where}: notebook {entry['notebook']!r} lies outside {folder}"
            raise ReportError(msg)
        parameters = entry.get("parameters") or {}
        if not isinstance(parameters, dict):
            msg = f"{where}.parameters: expected a mapping of names to values"
            raise ReportError(msg)
        for key, value in parameters.items():
            _check_value(value, f"{where}.parameters.{key}", set(), 0)
        declared = pm.inspect_notebook(str(path))
        unknown = sorted(set(parameters) - set(declared))
        if unknown:
            msg = (f"{where}: {path.name} declares no parameter {', '.join(unknown)} "
                   f"(it has {', '.join(declared) or 'none'})")
            raise ReportError(msg)
        name = str(entry.get("name", path.stem))
        _check_run_name(name, f"{where}.name")
        if any(r.name == name for r in runs):
            msg = f"{where}: the name {name!r} is used twice (outputs would collide)"
            raise ReportError(msg)
        runs.append(Run(name, path, _static(parameters, declared)))
    listed = {r.notebook.name for r in runs}
    runs += [Run(p.stem, p, _static({}, pm.inspect_notebook(str(p))))
             for p in sorted(folder.glob("*.ipynb")) if p.name not in listed]
    return runs


def _check_run_name(name: str, where: str) -> None:
    """A run's name becomes two file names in the output folder: a plain one only."""
    if not name or len(name) > _MAX_NAME or name.startswith(".") or any(
            c in "/\\" or ord(c) < 32 for c in name):
        msg = (f"{where}: {name[:_MAX_NAME]!r} is not a plain file name (1-{_MAX_NAME} "
               "characters, no folder separator or control character, not starting with '.')")
        raise ReportError(msg)
    if name == "index":
        msg = f"{where}: 'index' is taken by the page that links every report (index.html)"
        raise ReportError(msg)


def _check_value(value: object, where: str, seen: set[int], depth: int) -> None:
    """A parameter value papermill can pass on: plain YAML scalars, lists and mappings."""
    if isinstance(value, float) and not math.isfinite(value):
        msg = f"{where}: {value} is not a finite number"
        raise ReportError(msg)
    if value is None or isinstance(value, str | bool | int | float):
        return
    if isinstance(value, date):
        msg = (f"{where}: {value.isoformat()} is a YAML {type(value).__name__}, which a "
               f"notebook parameter cannot take; quote it: \"{value.isoformat()}\"")
        raise ReportError(msg)
    if not isinstance(value, list | dict):
        msg = f"{where}: a YAML {type(value).__name__} cannot be a notebook parameter"
        raise ReportError(msg)
    if id(value) in seen or depth >= MAX_DEPTH:
        msg = (f"{where}: nested more than {MAX_DEPTH} deep, or a YAML anchor used twice "
               "(write the value out)")
        raise ReportError(msg)
    seen.add(id(value))
    for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
        if isinstance(value, dict) and not isinstance(key, str):
            msg = f"{where}: key {key!r} is not text"
            raise ReportError(msg)
        _check_value(item, f"{where}.{key}" if isinstance(value, dict) else f"{where}[{key}]",
                     seen, depth + 1)


def _static(parameters: dict[str, Any], declared: dict[str, Any]) -> dict[str, Any]:
    """A report run's parameters: ``interactive`` false unless the run says otherwise."""
    return {**({"interactive": False} if "interactive" in declared else {}), **parameters}


def run_reports(
    runs: list[Run],
    out: str | Path,
    *,
    kernel: str = "eventkit",
    timeout: int = 600,
    with_code: bool = False,
    workers: int | None = None,
    on_done: Callable[[Run, Path, float], None] | None = None,
) -> list[Path]:
    """Execute each run with papermill into ``out``, then export it to HTML beside.

    Notebooks run from their own folder (relative paths work as in JupyterLab);
    ``timeout`` bounds each cell (seconds). Up to ``workers`` runs execute at
    once, each in its own kernel (default: one per core, at most one per run);
    a run's outputs do not depend on the others. The HTML has no script and
    loads nothing; its code cells are hidden unless ``with_code``; its parameters
    are a table at the top. ``out/index.html`` links every report written.
    ``on_done(run, html, seconds)`` is called after each successful run, as it
    finishes. Returns the HTML files, in the order of ``runs``.

    Raises
    ------
    eventkit.ParameterError
        ``workers`` is less than 1.
    eventkit.ReportError
        After all runs, if any failed: per failed run the notebook, the cell
        (its index and first line) and the error. The failed run's output notebook
        (with papermill's error banner) is kept for inspection.

    """
    if workers is not None and workers < 1:
        msg = f"must be at least 1, got {workers}"
        raise ParameterError(msg, param="workers")
    import papermill  # noqa: F401, PLC0415 (once, before the threads that use it)

    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    for run in runs:  # runs built by hand are checked as load_runs checks them
        _check_run_name(run.name, f"run {run.name!r}")
        for side in (".ipynb", ".html"):  # not through a link that leads elsewhere
            if (target / f"{run.name}{side}").resolve().parent != target.resolve():
                msg = f"run {run.name!r}: {target / run.name}{side} leads outside {target}"
                raise ReportError(msg)
    n = max(1, min(len(runs), workers or os.cpu_count() or 1))
    pages: dict[str, Path] = {}
    failures: dict[str, str] = {}
    # threads, each waiting on its own kernel process: the work is in the kernels
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="eventkit-report") as pool:
        futures = {pool.submit(_run_one, run, target, kernel=kernel, timeout=timeout,
                               with_code=with_code): run for run in runs}
        for future in as_completed(futures):
            run = futures[future]
            page, seconds, failure = future.result()
            if failure is not None:
                failures[run.name] = failure
            else:
                pages[run.name] = page
                if on_done is not None:
                    on_done(run, page, seconds)
    written = [pages[r.name] for r in runs if r.name in pages]
    if written:
        write_index(target, [(r, target / f"{r.name}.html") for r in runs
                             if target / f"{r.name}.html" in written], written)
    if failures:
        failed = [failures[r.name] for r in runs if r.name in failures]
        msg = f"{len(failed)} of {len(runs)} report run(s) failed: " + "; ".join(failed)
        raise ReportError(msg, failures=failed)
    return written


def _run_one(run: Run, target: Path, *, kernel: str, timeout: int,
             with_code: bool) -> tuple[Path, float, str | None]:
    """One run executed and exported: its page, its seconds, and its failure line or None."""
    import papermill as pm  # noqa: PLC0415 (a quarter second to import)

    began = time.perf_counter()
    executed = target / f"{run.name}.ipynb"
    page = executed.with_suffix(".html")
    try:  # the kernel starts in the notebook's folder; papermill's cwd= would chdir this
        # process, which the other runs' threads share
        pm.execute_notebook(str(run.notebook.resolve()), str(executed.resolve()),
                            parameters=run.parameters, kernel_name=kernel,
                            resources={"metadata": {"path": str(run.notebook.parent.resolve())}},
                            execution_timeout=timeout, progress_bar=False,
                            kernel_manager_class="eventkit.workbench.kernels.SocketKernelManager")
    except pm.PapermillExecutionError as exc:
        first = exc.source.strip().splitlines()[0] if exc.source.strip() else ""
        error = " ".join(f"{exc.ename}: {exc.evalue}".split())  # one line
        return page, 0.0, (f"{run.notebook.name} (run {run.name}) cell {exc.cell_index} "
                           f"[{first}]: {error}")
    finally:  # nbclient talked to the kernel on an event loop it made for this thread
        policy = asyncio.get_event_loop_policy()
        with contextlib.suppress(RuntimeError):  # (none made)
            policy.get_event_loop().close()
            policy.set_event_loop(None)
    page.write_text(to_html(executed, run, with_code=with_code), encoding="utf-8")
    return page, time.perf_counter() - began, None


def to_html(executed: Path, run: Run, *, with_code: bool = False) -> str:
    """An executed notebook as a page that stands alone (see the module docstring)."""
    import jinja2  # noqa: PLC0415 (nbconvert's own dependency)
    import nbformat  # noqa: PLC0415 (a quarter second to import)
    import papermill as pm  # noqa: PLC0415 (a quarter second to import)
    from nbconvert import HTMLExporter  # noqa: PLC0415 (a quarter second to import)
    from nbformat.v4 import new_markdown_cell  # noqa: PLC0415

    nb = nbformat.read(executed, as_version=4)
    tags = {"parameters", "injected-parameters"}
    nb.cells = [c for c in nb.cells if not tags & set(c.metadata.get("tags", []))]
    defaults = {name: p["default"] for name, p in pm.inspect_notebook(str(run.notebook)).items()}
    given = nb.metadata.get("papermill", {}).get("parameters", {}) or run.parameters
    rows = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(_value(given[name]))}"
        f"</td></tr>" if name in given else
        f"<tr class='default'><td><code>{html.escape(name)}</code></td>"
        f"<td>{html.escape(value)} (default)</td></tr>"
        for name, value in defaults.items())
    table = (f"<table class='eventkit-parameters'><caption>Parameters of this run "
             f"({html.escape(run.notebook.name)})</caption>{rows}</table>")
    at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(at, new_markdown_cell(table))
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"eventkit.html.j2": TEMPLATE})],
                            template_file="eventkit.html.j2", exclude_input=not with_code,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": run.name}})
    return str(body)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def write_index(out: Path, done: list[tuple[Run, Path]], pages: list[Path]) -> Path:
    """``out/index.html``: a page linking every report in ``pages``, with its parameters."""
    by_name = {run.name: run for run, _ in done}
    items = []
    for page in sorted(pages):
        run = by_name.get(page.stem)
        params = "" if run is None else ", ".join(
            f"{k}={_value(v)}" for k, v in run.parameters.items() if k != "interactive")
        source = "" if run is None else run.notebook.name
        items.append(f"<tr><td><a href='{html.escape(page.name)}'>{html.escape(page.stem)}"
                     f"</a></td><td>{html.escape(source)}</td><td><code>{html.escape(params)}"
                     "</code></td></tr>")
    index = out / "index.html"
    index.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>eventkit reports"
        "</title><style>body{font-family:sans-serif;max-width:960px;margin:2em auto}"
        "td,th{padding:4px 12px;text-align:left;border-bottom:1px solid #ddd}"
        "table{border-collapse:collapse}</style></head><body><h1>eventkit reports</h1>"
        f"<p>{len(pages)} report(s), made {time.strftime('%Y-%m-%d %H:%M %Z')}.</p>"
        "<table><tr><th>report</th><th>notebook</th><th>parameters</th></tr>"
        + "".join(items) + "</table></body></html>", encoding="utf-8")
    return index
