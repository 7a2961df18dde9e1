"""Rules: how events change state, as data — the model, its expression language, the oracle.

:class:`~eventkit.rules.model.RuleSet` (Python or a TOML file) with
expressions parsed by :mod:`~eventkit.rules.expr`, never ``eval``-ed; the
registry of named rule sets (:func:`get`, :func:`register`, :func:`names`)
with the built-in ``balance`` and ``banking``; rate tables as data
(:mod:`~eventkit.rules.rates`); and :func:`~eventkit.rules.reference.reference_fold`,
the per-event fold every engine is tested against. Knows nothing of archives.

>>> from eventkit import rules
>>> rules.names()
['balance', 'banking']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventkit import _lazy

if TYPE_CHECKING:
    from eventkit.rules.model import (
        CheckedRules,
        Field,
        GlobalEvents,
        Handler,
        Interest,
        RuleSet,
    )
    from eventkit.rules.registry import get, names, register, resolve

__all__ = [
    "CheckedRules",
    "Field",
    "GlobalEvents",
    "Handler",
    "Interest",
    "RuleSet",
    "get",
    "names",
    "register",
    "resolve",
]

_lazy.attach(__name__, {
    "eventkit.rules.model": ("CheckedRules", "Field", "GlobalEvents", "Handler", "Interest",
                             "RuleSet"),
    "eventkit.rules.registry": ("get", "names", "register", "resolve"),
})
