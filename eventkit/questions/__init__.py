"""Questions asked of a replay: restatements, what-if, explanations, patterns, views.

Each takes what :func:`eventkit.replay` returns (or events, replayed here) and
answers one kind of question: what late events restated
(:mod:`~eventkit.questions.temporal`), the same history under other rules
(:mod:`~eventkit.questions.whatif`), how a value came to be
(:mod:`~eventkit.questions.explain`), fraud-like sequences
(:mod:`~eventkit.questions.patterns`), state kept in DuckDB or SQLite
(:mod:`~eventkit.questions.views`). Knows replay, rules and the archive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventkit import _lazy

if TYPE_CHECKING:
    from eventkit.questions.explain import Explanation, explain
    from eventkit.questions.patterns import Detector, Pattern, Thresholds, builtin_alerts
    from eventkit.questions.temporal import restatements
    from eventkit.questions.views import RefreshReport, materialize, refresh
    from eventkit.questions.whatif import Comparison, compare

__all__ = [
    "Comparison",
    "Detector",
    "Explanation",
    "Pattern",
    "RefreshReport",
    "Thresholds",
    "builtin_alerts",
    "compare",
    "explain",
    "materialize",
    "refresh",
    "restatements",
]

_lazy.attach(__name__, {
    "eventkit.questions.explain": ("Explanation", "explain"),
    "eventkit.questions.patterns": ("Detector", "Pattern", "Thresholds", "builtin_alerts"),
    "eventkit.questions.temporal": ("restatements",),
    "eventkit.questions.views": ("RefreshReport", "materialize", "refresh"),
    "eventkit.questions.whatif": ("Comparison", "compare"),
})
