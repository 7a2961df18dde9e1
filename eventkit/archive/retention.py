"""Retention, the read side: what an expiry cut off, so replay refuses to answer before it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from eventkit.archive import datafiles, head, ledger
from eventkit.archive.open import archive_of
from eventkit.archive.store import Store
from eventkit.archive.table import EventArchive
from eventkit.exceptions import ExpiredError
from eventkit.timeutil import iso, micros

__all__ = ["Expiry", "expired_between", "expiry_of"]


@dataclass(frozen=True)
class Expiry:
    """The cut-off of an archive's expiry: answers before it were replaced.

    ``cutoff_us``: events dated before it were replaced by opening states;
    ``known_from_us``: the latest transaction time among them (an answer "as
    known at" an earlier instant would miss the opening states).
    """

    path: str
    cutoff_us: int
    known_from_us: int
    #: the opening-state file's record entry (path under ``_eventkit/``, sha256, bytes),
    #: for an expiry that stored per-key states rather than opening events
    states: dict[str, Any] | None = None
    #: the archive's store (the opening-state file is read from it)
    store: Store | None = None

    def opening_states(self, keys: pl.DataFrame | None = None) -> pl.DataFrame | None:
        """Each key's state just before the cut-off (``None``: the expiry left events).

        One row per key: the key, every state field, ``events`` (how many were
        folded) and ``last_event_time``, as :func:`eventkit.replay.engine.fold` takes
        for ``start``; only the keys in ``keys`` (a frame of the key columns) when
        given. The file is checked against the SHA-256 in the expiry's record (in
        the hash chain) first.
        """
        if self.states is None:
            return None
        store = (self.store or ledger.as_store(self.path)).child(ledger.PRIVATE_DIR)
        lf = pl.scan_parquet(datafiles.check_data_file(store, self.states),
                             storage_options=store.storage_options)
        if keys is not None:
            lf = lf.join(keys.lazy(), on=keys.columns, how="semi")
        return lf.collect()

    def check(self, *, at_us: int | None = None, known_at_us: int | None = None) -> None:
        """Raise :class:`~eventkit.exceptions.ExpiredError` for a question the expiry cut off.

        Examples
        --------
        >>> e = Expiry("bank", cutoff_us=1_000, known_from_us=900)
        >>> e.check(at_us=1_000)
        >>> e.check(at_us=999)
        Traceback (most recent call last):
        ...
        eventkit.ExpiredError: bank: events ... asked about 1970-01-01T00:00:00.000999+00:00

        """
        if at_us is not None and at_us < self.cutoff_us:
            self._raise(f"asked about {iso(at_us)}")
        if known_at_us is not None and known_at_us < self.known_from_us:
            self._raise(f"asked as known at {iso(known_at_us)}, before the opening states "
                        f"were known ({iso(self.known_from_us)})")

    def _raise(self, what: str) -> None:
        msg = (f"{self.path}: events dated before {iso(self.cutoff_us)} were expired "
               f"(replaced by opening states); {what}")
        raise ExpiredError(msg, path=self.path, cutoff=iso(self.cutoff_us))


def expiry_of(events: object, fingerprint: str | None = None) -> Expiry | None:
    """The latest expiry of ``events`` when it is an eventkit archive (or its path).

    Replay calls it so that questions before the cut-off raise instead of
    answering a wrong number; any other source gives ``None``. The opening
    states reproduce the rule set the expiry was made for: replaying an
    expired archive with another (``fingerprint`` differs) raises
    :class:`~eventkit.exceptions.ExpiredError`.

    Examples
    --------
    >>> expiry_of(pl.LazyFrame()) is None
    True

    """
    archive = archive_of(events) if isinstance(events, EventArchive | str | Path) else None
    if archive is None:
        return None
    found = None
    for rec in head.log_state(archive.store).expiries:
        found = Expiry(archive.location, micros(rec["cutoff"], param="cutoff"),
                       micros(rec["known_from"], param="known_from"),
                       rec.get("states"), archive.store)
        made_for = rec.get("rules", {})
        if fingerprint is not None and made_for.get("fingerprint") != fingerprint:
            found._raise(f"its opening states reproduce the rule set {made_for.get('name')!r} "
                         "only, not this one")
    return found



def expired_between(archive: EventArchive, since: int, until: int) -> bool:
    """Whether an expiry was committed after version ``since``, up to ``until``.

    State derived from version ``since`` (a view, a live checkpoint) cannot be
    continued past such an expiry: the events it folded were replaced (by
    opening states or opening events), so it is built again.

    Examples
    --------
    >>> import tempfile
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> expired_between(archive, 0, archive.version)
    False

    """
    if not head.log_state(archive.store).expiries:  # never expired: no commit to read
        return False
    return any((ledger.read_commit(archive.store, v).record or {}).get("kind") == "expire"
               for v in range(since + 1, until + 1))
