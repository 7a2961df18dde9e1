"""environment.yml (conda) and pyproject.toml (pip) must list the same dependencies."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from conftest import ROOT

#: Conda-only entries: the interpreter (checked against requires-python) and pip itself.
CONDA_ONLY = {"python", "pip"}
#: Packages conda-forge names differently (PyPI name -> conda-forge name).
CONDA_NAMES = {"confluent-kafka": "python-confluent-kafka"}
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;#]*)")


def parse(requirement: str) -> tuple[str, str]:
    """(normalized name, normalized version bound) of ``"name[extra] >=1.0, <2"``."""
    match = _REQUIREMENT.match(requirement)
    assert match, f"cannot read requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match[1]).lower()
    bound = ",".join(sorted(part.replace(" ", "") for part in match[2].split(",") if part.strip()))
    return name, bound


def drift(pip: dict[str, str], conda: dict[str, str]) -> list[str]:
    """Every difference between two {name: bound} maps, one line each, by package name."""
    problems = [f"{name}: in pyproject.toml ({pip[name] or 'no bound'}) but not in "
                "environment.yml" for name in sorted(pip.keys() - conda.keys())]
    problems += [f"{name}: in environment.yml ({conda[name] or 'no bound'}) but not in "
                 "pyproject.toml" for name in sorted(conda.keys() - pip.keys())]
    problems += [f"{name}: pyproject.toml says {pip[name] or 'no bound'!r}, environment.yml "
                 f"says {conda[name] or 'no bound'!r}"
                 for name in sorted(pip.keys() & conda.keys()) if pip[name] != conda[name]]
    return problems


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def pip_requirements() -> dict[str, str]:
    project = pyproject()
    return dict(map(parse, [*project["dependencies"], *project["optional-dependencies"]["dev"]]))


def conda_requirements() -> dict[str, str]:
    """Conda's requirements under their PyPI names, plus those only pip can install."""
    pypi = {conda: name for name, conda in CONDA_NAMES.items()}
    deps = environment()["dependencies"]
    out = {}
    for dep in deps:
        if isinstance(dep, str):
            name, bound = parse(dep)
            out[pypi.get(name, name)] = bound
    out |= dict(parse(dep) for dep in pip_section() if not dep.startswith("-e "))
    return out


def pip_section() -> list[str]:
    sections = [dep["pip"] for dep in environment()["dependencies"] if isinstance(dep, dict)]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return sections[0]


def test_same_packages_and_bounds():
    conda = {name: bound for name, bound in conda_requirements().items()
             if name not in CONDA_ONLY}
    problems = drift(pip_requirements(), conda)
    assert not problems, "environment.yml and pyproject.toml drifted:\n" + "\n".join(problems)


def test_conda_python_matches_requires_python():
    assert conda_requirements()["python"] == parse("python" + pyproject()["requires-python"])[1]


def test_pip_section_installs_the_project_with_dev_extras():
    assert pip_section()[-1] == "-e .[dev]"


@pytest.mark.parametrize(("pip", "conda", "expected"), [
    ({"a": ">=1"}, {"a": ">=1"}, []),
    ({"a": ">=1", "b": ">=2"}, {"a": ">=1"},
     ["b: in pyproject.toml (>=2) but not in environment.yml"]),
    ({"a": ">=1"}, {"a": ">=1", "c": ""},
     ["c: in environment.yml (no bound) but not in pyproject.toml"]),
    ({"a": ">=1.1"}, {"a": ">=1.0"},
     ["a: pyproject.toml says '>=1.1', environment.yml says '>=1.0'"]),
])
def test_drift_names_each_difference(pip, conda, expected):
    assert drift(pip, conda) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("polars>=2.1", ("polars", ">=2.1")),
    ("vl_convert.Python >= 1.9", ("vl-convert-python", ">=1.9")),
    ("numpy>=2.0, <3", ("numpy", "<3,>=2.0")),
    ("eventkit[dev] >=0.1 ; python_version >= '3.11'", ("eventkit", ">=0.1")),
    ("pip", ("pip", "")),
])
def test_parse_normalizes_names_and_bounds(text, expected):
    assert parse(text) == expected
