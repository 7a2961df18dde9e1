"""What an append gives back: its receipt, found again for a retried batch id."""

from __future__ import annotations

from dataclasses import dataclass

from eventkit.archive import ledger

__all__ = ["AppendReceipt", "find_batch"]


@dataclass(frozen=True)
class AppendReceipt:
    """What one :meth:`EventArchive.append` stored.

    ``seq_start``..``seq_end`` (inclusive) are the log positions given to the
    batch; ``digest`` is the archive's new head digest. ``duplicate`` is true
    when the batch id had been stored before and nothing was written.
    """

    version: int
    batch_id: str
    rows: int
    seq_start: int
    seq_end: int
    digest: str
    duplicate: bool = False


def find_batch(commits: list[ledger.Commit], batch_id: str) -> AppendReceipt | None:
    """The receipt of the commit that stored ``batch_id`` (marked duplicate), if any."""
    for commit in commits:
        rec = commit.record
        if rec is not None and rec.get("batch_id") == batch_id:
            return AppendReceipt(commit.version, batch_id, rec["rows"], rec["seq"][0],
                                 rec["seq"][1], rec["digest"], duplicate=True)
    return None
