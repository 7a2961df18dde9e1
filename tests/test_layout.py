"""The package's shape: stages that import only the stages below them, no cycle, small modules.

The import graph is read from the source (``ast``), every import counted: at
module level, inside functions and under ``TYPE_CHECKING`` alike, so a cycle
cannot hide behind a deferred import.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "eventkit"

#: What each stage may import from eventkit (besides itself). ``root`` is the modules
#: at the top of the package (exceptions, schema, timeutil, _typing).
ALLOWED: dict[str, set[str]] = {
    "root": set(),
    "sources": {"root"},
    "archive": {"root", "sources"},
    "rules": {"root"},
    "replay": {"root", "sources", "archive", "rules"},
    "questions": {"root", "sources", "archive", "rules", "replay"},
    "streams": {"root", "sources", "archive"},
    "banking": {"root", "sources", "archive", "rules", "replay", "questions"},
    "workbench": {"root", "sources", "archive", "rules", "replay", "questions", "streams",
                  "banking"},
}
#: The package's own front: eventkit/__init__.py, __main__.py and the module aliases.
FRONT = {"eventkit", "eventkit.__main__", "eventkit._aliases"}
MAX_LINES = 600
MAX_ROOT_MODULES = 8


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every eventkit module ``name`` imports, wherever in the file the import is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import sub`` imports the module pkg.sub when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target.startswith("eventkit") and target != name:
                yield target


def stage(module: str) -> str:
    parts = module.split(".")
    if module in FRONT:
        return "front"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else "root"


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def test_no_import_cycle() -> None:
    edges = graph()
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            cycle = [*path[path.index(node):], node]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if node in done:
            return
        path.append(node)
        for target in sorted(edges.get(node, ())):
            visit(target)
        path.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)


def test_each_stage_imports_only_the_stages_below_it() -> None:
    wrong = []
    for module, targets in graph().items():
        mine = stage(module)
        if mine == "front":
            continue
        for target in targets:
            theirs = stage(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert not wrong, "\n".join(wrong)


def test_the_stages_are_the_sub_packages() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(ALLOWED) - {"root"}


def test_modules_stay_small() -> None:
    big = {name: n for name, path in modules().items()
           if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_root_holds_few_modules() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


def test_the_checks_see_a_cycle_and_a_wrong_way_import(tmp_path, monkeypatch) -> None:
    """The walker reads function-local and TYPE_CHECKING imports (a test that cannot fail...)."""
    fake = tmp_path / "eventkit"
    (fake / "rules").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "rules" / "__init__.py").write_text("")
    (fake / "rules" / "a.py").write_text("def f():\n    from eventkit.rules import b\n")
    (fake / "rules" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from eventkit.rules.a import f\n"
        "from eventkit.archive.table import EventArchive\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    edges = graph()
    assert edges["eventkit.rules.a"] == {"eventkit.rules.b"}
    assert edges["eventkit.rules.b"] == {"eventkit.rules.a", "eventkit.archive.table"}
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle()
    with pytest.raises(AssertionError, match=r"eventkit.rules.b \(rules\) imports eventkit"):
        test_each_stage_imports_only_the_stages_below_it()


def readme_names() -> set[str]:
    """Every ``eventkit.<name>...`` path and ``from eventkit... import ...`` name in the README."""
    text = (PACKAGE.parent / "README.md").read_text()
    text = text[:text.index("Moved in 0.2:")]  # the deprecation note names the old paths
    found = set(re.findall(r"\beventkit(?:\.[A-Za-z_]\w*)+", text))
    for module, names in re.findall(r"from (eventkit[\w.]*) import ([\w, ]+)", text):
        found |= {f"{module}.{n.strip()}" for n in names.split(",") if n.strip()}
    return {n for n in found if not n.endswith((".py", ".toml", ".schema_version"))}


def test_every_name_the_readme_uses_exists_under_its_new_path() -> None:
    missing = []
    for dotted in sorted(readme_names()):
        parts = dotted.split(".")
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            obj: object = importlib.import_module(parts[0])
            for i in range(1, len(parts)):
                try:  # a module first: eventkit.replay is also the name of a function
                    obj = importlib.import_module(".".join(parts[:i + 1]))
                    continue
                except ImportError:
                    pass
                if not hasattr(obj, parts[i]):
                    missing.append(dotted)
                    break
                obj = getattr(obj, parts[i])
    assert not missing, missing
