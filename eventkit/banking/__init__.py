"""The banking domain: a wing built on the core, not part of it.

A deterministic synthetic bank (:mod:`~eventkit.banking.generate`) with
injected fraud-like patterns (:mod:`~eventkit.banking.injection`), and the
write side of a bank account (:mod:`~eventkit.banking.commands`: open,
deposit, withdraw, transfer, set an overdraft limit, close, each checked
against the account's replayed state and appended per stream). The core
stages (sources to questions) know nothing of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventkit import _lazy

if TYPE_CHECKING:
    from eventkit.banking.generate import GenerateSummary, generate, read_labels

__all__ = ["GenerateSummary", "generate", "read_labels"]

_lazy.attach(__name__, {
    "eventkit.banking.generate": ("GenerateSummary", "generate", "read_labels"),
})
