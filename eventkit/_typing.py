"""Type aliases shared by every stage: instants and engine names.

>>> from eventkit._typing import Engine
>>> Engine.__args__
('memory', 'buckets', 'dask')
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, TypeAlias

__all__ = ["Engine", "Instant"]

#: An instant as eventkit takes it: an aware datetime, an ISO 8601 string with an offset,
#: or a date (see :func:`eventkit.timeutil.to_instant` for what a date means).
Instant: TypeAlias = datetime | date | str

#: How :func:`eventkit.replay` folds: ``"memory"`` everything at once, ``"buckets"`` one
#: bucket of keys at a time here, ``"dask"`` buckets as tasks on a Dask cluster.
Engine: TypeAlias = Literal["memory", "buckets", "dask"]
