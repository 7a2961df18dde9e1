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
nesting deeper than :data:`MAX_DEPTH` is refused in one line). A failing run
does not stop the others; at the end :class:`ReportError` names each failed
notebook, its cell and the error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from eventkit.exceptions import ReportError

__all__ = ["MAX_DEPTH", "Run", "load_runs", "run_reports"]

#: How deeply a parameter value may nest lists and mappings.
MAX_DEPTH = 16
_MAX_NAME = 200


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
        runs.append(Run(name, path, dict(parameters)))
    listed = {r.notebook.name for r in runs}
    runs += [Run(p.stem, p) for p in sorted(folder.glob("*.ipynb")) if p.name not in listed]
    return runs


def _check_run_name(name: str, where: str) -> None:
    """A run's name becomes two file names in the output folder: a plain one only."""
    if not name or len(name) > _MAX_NAME or name.startswith(".") or any(
            c in "/\\" or ord(c) < 32 for c in name):
        msg = (f"{where}: {name[:_MAX_NAME]!r} is not a plain file name (1-{_MAX_NAME} "
               "characters, no folder separator or control character, not starting with '.')")
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


def run_reports(
    runs: list[Run],
    out: str | Path,
    *,
    kernel: str = "eventkit",
    timeout: int = 600,
    on_done: Callable[[Run, Path, float], None] | None = None,
) -> list[Path]:
    """Execute each run with papermill into ``out``, then export it to HTML beside.

    Notebooks run from their own folder (relative paths work as in JupyterLab);
    ``timeout`` bounds each cell (seconds). ``on_done(run, html, seconds)`` is
    called after each successful run. Returns the HTML files.

    Raises
    ------
    eventkit.ReportError
        After all runs, if any failed: per failed run the notebook, the cell
        (its index and first line) and the error. The failed run's output notebook
        (with papermill's error banner) is kept for inspection.

    """
    import papermill as pm  # noqa: PLC0415 (a quarter second to import)
    from nbconvert import HTMLExporter  # noqa: PLC0415 (a quarter second to import)

    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    for run in runs:  # runs built by hand are checked as load_runs checks them
        _check_run_name(run.name, f"run {run.name!r}")
        for side in (".ipynb", ".html"):  # not through a link that leads elsewhere
            if (target / f"{run.name}{side}").resolve().parent != target.resolve():
                msg = f"run {run.name!r}: {target / run.name}{side} leads outside {target}"
                raise ReportError(msg)
    written, failures = [], []
    for run in runs:
        began = time.perf_counter()
        executed = target / f"{run.name}.ipynb"
        try:
            pm.execute_notebook(str(run.notebook), str(executed), parameters=run.parameters,
                                cwd=str(run.notebook.parent), kernel_name=kernel,
                                execution_timeout=timeout, progress_bar=False)
        except pm.PapermillExecutionError as exc:
            first = exc.source.strip().splitlines()[0] if exc.source.strip() else ""
            error = " ".join(f"{exc.ename}: {exc.evalue}".split())  # one line
            failures.append(f"{run.notebook.name} (run {run.name}) cell {exc.cell_index} "
                            f"[{first}]: {error}")
            continue
        body, _ = HTMLExporter().from_filename(str(executed))
        page = executed.with_suffix(".html")
        page.write_text(body, encoding="utf-8")
        written.append(page)
        if on_done is not None:
            on_done(run, page, time.perf_counter() - began)
    if failures:
        msg = f"{len(failures)} of {len(runs)} report run(s) failed: " + "; ".join(failures)
        raise ReportError(msg, failures=failures)
    return written
