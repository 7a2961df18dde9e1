"""Public names that load their module on first use (:pep:`562`): a fast ``import eventkit``.

A package lists the modules that define its public names; :func:`attach`
gives the package a ``__getattr__`` that imports that module when the name is
first read (then keeps the value, so the next read is a plain attribute) and
a ``__dir__`` that lists every name. ``import eventkit`` thus loads no Polars,
numba, Delta, Arrow, DuckDB, Kafka, Altair or cryptography: each comes with
the first name that needs it. The package's ``__all__`` stays the list of its
public names, and a ``TYPE_CHECKING`` block beside the table imports them for
type checkers (and for the layout test's import graph).

>>> import sys, types
>>> pkg = types.ModuleType("demo")
>>> sys.modules["demo"] = pkg
>>> attach("demo", {"textwrap": ("dedent", "indent")})
>>> "dedent" in vars(pkg), pkg.dedent.__module__, "dedent" in vars(pkg), "indent" in dir(pkg)
(False, 'textwrap', True, True)
>>> pkg.nothing
Traceback (most recent call last):
AttributeError: module 'demo' has no attribute 'nothing'
>>> del sys.modules["demo"]
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Package", "attach"]


class Package(types.ModuleType):
    """A package module whose public names may be its modules' names too.

    ``eventkit.replay`` is the function :func:`eventkit.replay`, while
    ``eventkit.replay.api`` is a module of the sub-package ``eventkit.replay``
    (and ``eventkit.questions.explain`` both a function and a module).
    Importing a module sets it as an attribute of its package: that would
    replace the public name whenever the module is imported first (``from
    eventkit.replay.result import ...``). A public name keeps its value; the
    module stays reachable by import.
    """

    public: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.public and isinstance(value, types.ModuleType):
            return  # the import system binding a module: the public name wins
        super().__setattr__(name, value)


def attach(package: str, modules: Mapping[str, Iterable[str]]) -> None:
    """Give ``package`` the names ``modules`` define (module -> names), loaded on first use.

    Any other name that is a module of the package (``eventkit.rules``,
    ``eventkit.archive.ledger``) is imported when first read, as it was
    reachable when the package imported everything up front. A public name
    that is also a module's name stays the public value (see :class:`Package`).
    A class keeps its defining module as ``__module__`` (so its doctests run
    there, whichever name was read first).
    """
    module = sys.modules[package]
    table = {name: defining for defining, names in modules.items() for name in names}
    module.__class__ = Package
    module.public = frozenset(table)  # type: ignore[attr-defined]
    for name in table:  # a module of that name bound already (imported first): undo it
        if isinstance(module.__dict__.get(name), types.ModuleType):
            del module.__dict__[name]
    own = module.__dict__

    def __getattr__(name: str) -> Any:
        if name not in table:
            if "__path__" in own and not name.startswith("__") \
                    and importlib.util.find_spec(f"{package}.{name}"):
                return importlib.import_module(f"{package}.{name}")
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(table[name]), name)
        own[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*own, *table, *own.get("__all__", ())})

    own["__getattr__"] = __getattr__
    own["__dir__"] = __dir__
