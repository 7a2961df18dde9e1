"""Built-in rule sets and a registry for users' own.

>>> from eventkit import rules
>>> sorted(rules.names())
['balance', 'banking']
>>> rules.get("banking").with_params(overdraft_fee=2_500).params["overdraft_fee"]
2500
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from eventkit.exceptions import RuleError
from eventkit.rules.model import RuleSet

__all__ = ["get", "names", "register", "resolve"]

_REGISTRY: dict[str, RuleSet] = {}


def register(rules: RuleSet, *, name: str | None = None) -> None:
    """Make ``rules`` available by name (to :func:`get`, the CLI and the widgets)."""
    rules.check()
    _REGISTRY[name or rules.name] = rules


def get(name: str) -> RuleSet:
    """A registered rule set by name."""
    try:
        return _REGISTRY[name]
    except KeyError:
        msg = f"no rule set named {name!r}; known: {sorted(_REGISTRY)} (or give a .toml path)"
        raise RuleError(msg) from None


def names() -> list[str]:
    """Names of the registered rule sets."""
    return list(_REGISTRY)


def resolve(rules: RuleSet | str | Path) -> RuleSet:
    """A rule set from itself, a registered name, or a rules file path."""
    if isinstance(rules, RuleSet):
        return rules
    text = str(rules)
    if text.endswith(".toml") or isinstance(rules, Path):
        return RuleSet.from_toml(text)
    return get(text)


for _name in ("balance", "banking"):
    register(RuleSet.from_toml(str(resources.files(__package__) / f"{_name}.toml")))
