"""Schema evolution: events of older schema versions brought to the current shape on load.

Events are never rewritten; when what they look like changes, the old files
stay as they are and an **upcaster** per version step (``v`` → ``v + 1``)
turns their rows into the next version's shape whenever they are read: as
Polars expressions over a whole group of files of one version (no per-event
Python). A chain of steps brings any known version to :data:`CURRENT_VERSION`.

Where the version lives:

* an eventkit archive: each data file's entry in its commit record
  (``schema_version``, in the hash chain) and the file's Parquet key-value
  metadata (:data:`VERSION_KEY`); see ``EventArchive.append(schema_version=)``;
* plain Parquet: the file's key-value metadata :data:`VERSION_KEY`, else a
  :data:`VERSION_COLUMN` column (per row), else ``open_archive(...,
  schema_version=)`` (default: current).

A file or row without a marker is version :data:`UNMARKED_VERSION` (the shape
eventkit has written all along). A version no registered step reaches raises
:class:`~eventkit.exceptions.SchemaVersionError` naming the file.

The built-in steps (:data:`UPCASTERS`):

* **1 → 2**: version 1 wrote ``amount`` as a float of currency units
  (``-20.5`` for twenty and a half); from version 2 on it is integer minor
  units (cents). The step scales by 100; the loader then converts exactly (a
  value with more than two decimals is an error naming file and row).
* **2 → 3**: the withdrawal event type was written ``"Withdrawl"`` or
  ``"CashOut"``; it is ``"Withdrawal"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from eventkit.exceptions import EventDataError, SchemaError, SchemaVersionError
from eventkit.sources.checks import SOURCE_COL

__all__ = [
    "CURRENT_VERSION",
    "UNMARKED_VERSION",
    "UPCASTERS",
    "VERSION_COLUMN",
    "VERSION_KEY",
    "Upcaster",
    "Upcasters",
    "file_version",
    "register",
]

#: The version of the canonical schema (:mod:`eventkit.schema`) this eventkit writes.
CURRENT_VERSION = 3
#: The version of files and rows that carry no marker (eventkit wrote none before).
UNMARKED_VERSION = 3
#: Parquet key-value metadata key holding a file's schema version.
VERSION_KEY = "eventkit.schema_version"
#: Column of foreign Parquet files holding each row's schema version.
VERSION_COLUMN = "schema_version"


@dataclass(frozen=True)
class Upcaster:
    """One step: rows of schema ``version`` into the shape of ``version + 1``.

    ``columns`` maps a column to its new value, an expression over the old
    row; ``event_types`` renames event types (old name → new); ``dtypes`` are
    the types the changed columns have in ``version`` (how an archive stores
    them); ``added`` names the columns of ``columns`` that ``version`` does not
    have at all (a column added later: its value for older rows).

    Examples
    --------
    >>> import polars as pl
    >>> from eventkit.sources.upcast import Upcaster
    >>> step = Upcaster(1, columns={"amount": pl.col("amount") * 100},
    ...                 event_types={"CashOut": "Withdrawal"})
    >>> step.apply(pl.LazyFrame({"event_type": ["CashOut", "Deposit"],
    ...                          "amount": [1.5, 2.0]})).collect().rows()
    [('Withdrawal', 150.0), ('Deposit', 200.0)]

    """

    version: int
    columns: Mapping[str, pl.Expr] = field(default_factory=dict)
    event_types: Mapping[str, str] = field(default_factory=dict)
    dtypes: Mapping[str, pl.DataType] = field(default_factory=dict)
    description: str = ""
    added: tuple[str, ...] = ()

    def apply(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        """``lf`` (of this step's version) in the next version's shape."""
        names = lf.collect_schema().names()
        exprs = [e.alias(c) for c, e in self.columns.items() if c in names or c in self.added]
        if self.event_types and "event_type" in names:
            exprs.append(pl.col("event_type").replace(dict(self.event_types)))
        return lf.with_columns(exprs) if exprs else lf

    @property
    def changes(self) -> tuple[str, ...]:
        """The columns this step changes."""
        return (*self.columns, *(("event_type",) if self.event_types else ()))


class Upcasters:
    """A registry of upcasting steps up to ``current`` (one per older version).

    Examples
    --------
    >>> import polars as pl
    >>> from eventkit.sources.upcast import SchemaVersionError, Upcaster, Upcasters
    >>> mine = Upcasters(current=2)
    >>> mine.register(Upcaster(1, event_types={"Buy": "Purchase"}))
    >>> mine.upcast(pl.LazyFrame({"event_type": ["Buy"]}), 1).collect().item()
    'Purchase'
    >>> try:
    ...     mine.upcast(pl.LazyFrame({"event_type": ["Buy"]}), 0, source="old.parquet")
    ... except SchemaVersionError as err:
    ...     print(err.source, "|", err.problem[:28])
    old.parquet | schema version 0 is unknown:

    """

    def __init__(self, current: int, steps: tuple[Upcaster, ...] = ()) -> None:
        self.current = current
        self._steps: dict[int, Upcaster] = {}
        for step in steps:
            self.register(step)

    def register(self, step: Upcaster) -> None:
        """Add (or replace) the step from ``step.version`` to the next version."""
        if not step.version < self.current:
            msg = (f"an upcaster from version {step.version} cannot lead to the current "
                   f"version {self.current}")
            raise SchemaError(msg, column=VERSION_COLUMN)
        self._steps[step.version] = step

    @property
    def known(self) -> list[int]:
        """Every version this registry reads: those a chain of steps leads from, and current."""
        return [v for v in range(min(self._steps, default=self.current), self.current + 1)
                if self._reaches(v)]

    def _reaches(self, version: int) -> bool:
        return all(v in self._steps for v in range(version, self.current))

    def chain(self, version: int, *, source: str | None = None) -> list[Upcaster]:
        """The steps from ``version`` to the current one, or a clear error naming ``source``."""
        if version > self.current or not self._reaches(version):
            msg = (f"schema version {version} is unknown: this eventkit reads versions "
                   f"{self.known} (register an upcaster for it, or upgrade eventkit)")
            raise SchemaVersionError(msg, source=source, column=VERSION_COLUMN)
        return [self._steps[v] for v in range(version, self.current)]

    def upcast(self, lf: pl.LazyFrame, version: int, *, source: str | None = None
               ) -> pl.LazyFrame:
        """``lf``, all of schema ``version``, in the current shape."""
        for step in self.chain(version, source=source):
            lf = step.apply(lf)
        return lf

    def upcast_rows(self, lf: pl.LazyFrame, column: str = VERSION_COLUMN, *,
                    source: str | None = None) -> pl.LazyFrame:
        """``lf`` whose ``column`` gives each row's version (null: unmarked), upcast row-wise.

        Each step rewrites only the rows still below its target; the version
        column is dropped. One pass over the versions present (a handful). An
        unknown version names the file of its first row (the ``__source`` column
        of a scan), else ``source``.
        """
        version = pl.col(column).fill_null(UNMARKED_VERSION).cast(pl.Int64)
        where = SOURCE_COL if SOURCE_COL in lf.collect_schema().names() else None
        found = lf.group_by(version.alias("v")).agg(
            pl.col(where).first() if where else pl.lit(source).alias("at")).collect()
        present = found["v"].to_list()
        for v, at in found.iter_rows():
            self.chain(v, source=at or source)  # every version present must be known
        lf = lf.with_columns(version.alias(column))
        for v in range(min(present, default=self.current), self.current):
            step, older = self._steps[v], pl.col(column) <= v
            exprs = [pl.when(older).then(e).otherwise(pl.col(c)).alias(c)
                     for c, e in step.columns.items()]
            if step.event_types:
                exprs.append(pl.when(older).then(pl.col("event_type").replace(
                    dict(step.event_types))).otherwise(pl.col("event_type")))
            names = lf.collect_schema().names()
            lf = lf.with_columns(e for e in exprs if e.meta.output_name() in names)
        return lf.drop(column)

    def stored_schema(self, version: int, schema: Mapping[str, pl.DataType]
                      ) -> dict[str, pl.DataType]:
        """The column types an archive stores rows of ``version`` in (``schema``: current)."""
        out = dict(schema)
        for step in reversed(self.chain(version)):
            out.update({c: t for c, t in step.dtypes.items() if c in out})
            for c in step.added:
                out.pop(c, None)
        return out

    def to_canonical(self, lf: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
        """Upcast rows (checked when stored) cast to ``schema``: floats rounded to integers."""
        have = lf.collect_schema()
        return lf.select(
            (pl.col(c).round(0) if have[c].is_float() and t.is_integer() else pl.col(c))
            .cast(t).alias(c) for c, t in schema.items())


#: The built-in registry (see the module docstring); :func:`register` adds to it.
UPCASTERS = Upcasters(CURRENT_VERSION, (
    Upcaster(1, columns={"amount": pl.col("amount") * 100}, dtypes={"amount": pl.Float64()},
             description="amount: float currency units -> integer cents"),
    Upcaster(2, event_types={"Withdrawl": "Withdrawal", "CashOut": "Withdrawal"},
             description="event type 'Withdrawl' / 'CashOut' -> 'Withdrawal'"),
))


def register(step: Upcaster) -> None:
    """Register ``step`` with the built-in registry (read by archives and ``open_archive``).

    Examples
    --------
    >>> register(Upcaster(0, event_types={"Payout": "Withdrawl"}))
    >>> UPCASTERS.known
    [0, 1, 2, 3]
    >>> UPCASTERS._steps.pop(0).description  # (undo, for the other examples)
    ''

    """
    UPCASTERS.register(step)


def file_version(path: str | Path) -> int | None:
    """The schema version in a Parquet file's key-value metadata (``None``: no marker).

    Examples
    --------
    >>> import tempfile
    >>> f = tempfile.mkdtemp() + "/old.parquet"
    >>> pl.DataFrame({"amount": [1.5]}).write_parquet(f, metadata={VERSION_KEY: "1"})
    >>> file_version(f)
    1

    """
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, ValueError) as exc:
        msg = f"not a readable Parquet file: {exc}"
        raise EventDataError(msg, source=str(path)) from None
    raw = meta.get(VERSION_KEY.encode())
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        msg = f"{VERSION_KEY} metadata is not a version number: {raw[:40]!r}"
        raise SchemaVersionError(msg, source=str(path), column=VERSION_COLUMN) from None
