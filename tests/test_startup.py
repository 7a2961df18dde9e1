"""Start-up: ``import eventkit`` is cheap, and every public name still loads on first use."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "eventkit"
#: Modules ``import eventkit`` must not load: each comes with the first name needing it.
HEAVY = ("polars", "numpy", "numba", "llvmlite", "deltalake", "pyarrow", "duckdb",
         "cryptography", "confluent_kafka", "altair", "ipywidgets", "dask", "distributed",
         "obstore")
CPU_BUDGET = 0.5  # seconds of CPU for the import itself (the target)
PACKAGES = ["eventkit", *sorted(f"eventkit.{p.parent.name}"
                                for p in PACKAGE.glob("*/__init__.py"))]


def probe(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter: the CPU seconds it took, the heavy modules loaded."""
    script = (f"import sys, time, json\nt = time.process_time()\n{code}\n"
              "cpu = time.process_time() - t\n"
              f"print(json.dumps({{'cpu': cpu, 'heavy': [m for m in {HEAVY!r} "
              "if m in sys.modules]}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_import_eventkit_is_cheap_and_loads_no_heavy_module() -> None:
    found = probe("import eventkit")
    assert found["heavy"] == [], found
    assert found["cpu"] <= CPU_BUDGET, found


def test_the_probe_sees_heavy_modules_once_a_name_needs_them() -> None:
    """The check above can fail: the first use of ``replay`` loads Polars and numba."""
    found = probe("import eventkit\neventkit.replay")
    assert {"polars", "numba"} <= set(found["heavy"]), found  # type: ignore[arg-type]


def test_a_function_keeps_its_name_when_the_module_of_that_name_loads_first() -> None:
    """``eventkit.replay`` (also a sub-package), ``eventkit.questions.explain`` (also a module)."""
    code = ("from eventkit.replay.result import ReplayResult\nimport eventkit\n"
            "import eventkit.questions.explain, eventkit.banking.generate\n"
            "assert callable(eventkit.replay) and eventkit.replay.__name__ == 'replay'\n"
            "import eventkit.replay.snapshots\nassert callable(eventkit.replay)\n"
            "assert callable(eventkit.questions.explain), eventkit.questions.explain\n"
            "assert callable(eventkit.banking.generate), eventkit.banking.generate")
    probe(code)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_resolves_and_is_listed(name: str) -> None:
    package = importlib.import_module(name)
    listed = dir(package)
    for public in getattr(package, "__all__", ()):
        assert getattr(package, public) is not None, public
        assert public in listed, public
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        package.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", PACKAGES)
def test_the_lazy_table_matches_the_imports_type_checkers_see(name: str) -> None:
    """The ``TYPE_CHECKING`` block (what mypy and the layout test read) names the same modules."""
    path = PACKAGE.parent / Path(*name.split(".")) / "__init__.py"
    tree = ast.parse(path.read_text())
    seen: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module is not None
                seen |= {alias.name: imp.module for alias in imp.names}
    package = importlib.import_module(name)
    errors = vars(importlib.import_module("eventkit.exceptions"))
    public = set(getattr(package, "__all__", ())) - set(errors)
    public -= {"charts"}  # a module alias (see eventkit._aliases), not a name
    assert set(seen) == public
    for attr, module in seen.items():
        assert getattr(package, attr) is getattr(importlib.import_module(module), attr)


def test_modules_of_a_package_are_reachable_as_attributes() -> None:
    """As when the packages imported everything up front: ``eventkit.rules.names()``."""
    import eventkit

    assert eventkit.rules.names() == ["balance", "banking"]
    assert eventkit.archive.ledger.LOG_DIR == "_delta_log"
    assert eventkit.ReplayResult.__module__ == "eventkit.replay.result"  # its doctests run there


FIRST_REPLAY = """
import json, time
import eventkit
from eventkit.replay.warm import compile_stats
began = time.perf_counter()
for rules in ("balance", "banking"):
    result = eventkit.replay(ARCHIVE, rules)
    result.history.collect(); result.state().collect(); result.as_of("2024-06-30").collect()
eventkit.builtin_alerts(result.history)  # the patterns' grouping by key
print(json.dumps({"file": eventkit.__file__, "compiled": compile_stats(),
                  "seconds": time.perf_counter() - began, "cpu": time.process_time()}))
"""


@pytest.mark.slow
def test_the_first_replay_in_a_fresh_clone_after_set_up_compiles_nothing(tmp_path) -> None:
    """``make setup``'s ``eventkit compile`` fills numba's cache; the first replay only loads.

    The clone is a copy of the package without its ``__pycache__`` (so without a
    cache: ``compile`` compiles), in another folder (numba's cache must hold there).
    """
    import shutil

    from eventkit.banking.generate import generate

    clone = tmp_path / "clone"
    shutil.copytree(PACKAGE, clone / "eventkit", ignore=shutil.ignore_patterns("__pycache__"))
    archive = tmp_path / "bank"
    generate(archive, events=5_000, accounts=50, seed=3, progress=False)
    env = {**__import__("os").environ, "PYTHONPATH": str(clone)}
    setup = subprocess.run([sys.executable, "-m", "eventkit", "compile"], cwd=clone, env=env,
                           capture_output=True, text=True, check=True)
    compiled = int(setup.stdout.split("(")[1].split()[0])
    assert compiled > 0, setup.stdout  # the clone came without a cache: set-up compiled
    assert str(clone) in setup.stdout, setup.stdout  # into the clone's own cache
    first = subprocess.run([sys.executable, "-c", FIRST_REPLAY.replace("ARCHIVE",
                                                                          repr(str(archive)))],
                           cwd=clone, env=env, capture_output=True, text=True, check=True)
    found = json.loads(first.stdout.splitlines()[-1])
    assert found["file"].startswith(str(clone)), found
    assert sum(found["compiled"].values()) == 0, found  # every kernel came from the cache
    assert found["cpu"] <= 3.0, found  # the whole process, imports included (CPU: load-proof)
