"""Sources: users' event files read into the canonical schema.

The first stage. :mod:`~eventkit.sources.files` reads Parquet files, folders,
hive partitions, globs and Delta tables; :mod:`~eventkit.sources.conform`
maps the user's columns and units onto the canonical schema and checks every
value; :mod:`~eventkit.sources.upcast` brings older schema versions to the
current shape. Knows only :mod:`eventkit.schema`, :mod:`eventkit.timeutil`
and :mod:`eventkit.exceptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventkit import _lazy

if TYPE_CHECKING:
    from eventkit.sources.conform import ColumnMapping
    from eventkit.sources.files import read_events
    from eventkit.sources.upcast import UPCASTERS, Upcaster, Upcasters

__all__ = ["UPCASTERS", "ColumnMapping", "Upcaster", "Upcasters", "read_events"]

_lazy.attach(__name__, {
    "eventkit.sources.conform": ("ColumnMapping",),
    "eventkit.sources.files": ("read_events",),
    "eventkit.sources.upcast": ("UPCASTERS", "Upcaster", "Upcasters"),
})
