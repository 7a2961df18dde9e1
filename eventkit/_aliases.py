"""Module paths that are not where the module lives: short public ones, and old ones.

``eventkit.charts`` is the workbench's chart module (:mod:`eventkit.workbench.charts`)
under the short name notebooks use: ``import eventkit.charts`` gives that very module.

eventkit 0.1 had flat modules (``eventkit.rulesets``, ``eventkit.temporal``,
``eventkit.lifecycle``, ...); 0.2 groups them in sub-packages by stage. The
paths the README showed still import, through a finder on ``sys.meta_path``
that hands out a stand-in module looking each name up in the new module (or,
for a module that was split, in each of its parts), and warns once per import;
they go in the next release.

>>> import sys, warnings
>>> _ = sys.modules.pop("eventkit.temporal", None)  # the warning comes with the first import
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     from eventkit.temporal import restatements
>>> restatements.__module__, caught[0].category.__name__
('eventkit.questions.temporal', 'DeprecationWarning')
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["ALIASES", "MOVED", "install"]

#: Short public module paths -> the module they name (no warning: these stay).
ALIASES: dict[str, str] = {"eventkit.charts": "eventkit.workbench.charts"}

#: Old module -> the modules that now hold its public names (looked up in this order).
MOVED: dict[str, tuple[str, ...]] = {
    "eventkit.rulesets": ("eventkit.rules",),
    "eventkit.temporal": ("eventkit.questions.temporal",),
    "eventkit.lifecycle": ("eventkit.archive.compaction", "eventkit.archive.storage",
                           "eventkit.replay.expire", "eventkit.archive.retention"),
    "eventkit.rates": ("eventkit.rules.rates",),
    "eventkit.privacy": ("eventkit.archive.privacy",),
    "eventkit.upcast": ("eventkit.sources.upcast",),
    "eventkit.health": ("eventkit.workbench.health",),
    "eventkit.generate": ("eventkit.banking.generate",),
}


class _Moved(types.ModuleType):
    """A stand-in for a moved module: each name is looked up in the new modules."""

    def __init__(self, name: str, parts: Sequence[str]) -> None:
        super().__init__(name, f"moved to {', '.join(parts)}")
        self._parts = tuple(parts)

    def __getattr__(self, attr: str) -> Any:
        for part in self._parts:
            module = importlib.import_module(part)
            if hasattr(module, attr):
                return getattr(module, attr)
        msg = f"module {self.__name__!r} has no attribute {attr!r}"
        raise AttributeError(msg)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self._own_spec: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(self, fullname: str, path: object, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED and fullname not in ALIASES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name in ALIASES:  # the module itself, under a second name
            module = importlib.import_module(ALIASES[spec.name])
            self._own_spec[module.__name__] = module.__spec__
            return module
        parts = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {' and '.join(parts)}; the old path goes in the "
                      "next release", DeprecationWarning, stacklevel=3)
        return _Moved(spec.name, parts)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is already imported; an alias keeps its own spec."""
        if module.__name__ in self._own_spec:  # the import system set the alias's spec on it
            module.__spec__ = self._own_spec[module.__name__]


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
