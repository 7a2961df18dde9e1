"""Charts of an archive's health: storage per file, snapshot coverage, schema versions."""

from __future__ import annotations

import math

import altair as alt
import polars as pl

from eventkit.workbench.charts._common import SIZE, tip_time, with_when, x_time
from eventkit.workbench.format import Sentence, plural

#: Byte units of the storage chart: the largest that keeps the biggest bar >= 1.
BYTE_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("bytes", 1))


def byte_unit(largest: int) -> tuple[str, int]:
    """The unit to show sizes up to ``largest`` bytes in.

    >>> byte_unit(843_520), byte_unit(12)
    (('KiB', 1024), ('bytes', 1))
    """
    return next((name, size) for name, size in BYTE_UNITS if largest >= size or size == 1)

__all__ = ["schema_version_chart", "snapshot_chart", "storage_chart"]


# ---------------------------------------------------------------------- archive health
def storage_chart(files: pl.DataFrame, *, max_bars: int = 500) -> alt.Chart | Sentence:
    """Bars of the data files' sizes in log order, from ``eventkit.info(...).files``.

    More than ``max_bars`` files are summed in runs of consecutive files, so
    the chart stays small; the tooltip gives events and compression per bar.
    Sizes are in the unit that suits the largest bar (bytes, KiB, MiB, GiB).
    One file (or none) is a sentence, not a single bar.

    Examples
    --------
    >>> files = pl.DataFrame({"file": ["a", "b"], "partition": [".", "."],
    ...     "events": [10, 5], "bytes": [2_000_000, 1_000_000],
    ...     "uncompressed_bytes": [6_000_000, 2_500_000]})
    >>> spec = storage_chart(files).to_dict()
    >>> [round(r["size"], 2) for r in next(iter(spec["datasets"].values()))]
    [1.91, 0.95]
    >>> spec["encoding"]["y"]["title"]
    'size (MiB)'
    >>> storage_chart(files.head(1))
    One data file: 1.9 MiB, 10 events (3.0x compression).

    """
    if files.height <= 1:
        if files.height == 0:
            return Sentence("No data files yet.")
        row = files.row(0, named=True)
        name, size = byte_unit(row["bytes"])
        ratio = row["uncompressed_bytes"] / row["bytes"] if row["bytes"] else 0.0
        return Sentence(f"One data file: {row['bytes'] / size:,.1f} {name}, "
                        f"{plural(row['events'], 'event')} ({ratio:.1f}x compression).")
    per = max(1, math.ceil(files.height / max_bars))
    data = (files.with_row_index("n")
            .group_by((pl.col("n") // per).alias("run"), maintain_order=True)
            .agg(pl.col("file").first(), pl.len().alias("files"), pl.col("events").sum(),
                 pl.col("bytes").sum(), pl.col("uncompressed_bytes").sum())
            .with_columns(ratio=pl.col("uncompressed_bytes") / pl.col("bytes")))
    unit, size = byte_unit(int(data["bytes"].max()))  # type: ignore[arg-type]
    data = data.with_columns(size=pl.col("bytes") / size)
    title = f"Data files in log order ({files.height:,} files" + (
        f", {per} per bar)" if per > 1 else ")")
    return alt.Chart(data, title=title).mark_bar().encode(
        x=alt.X("run:O", title="data file (log order)", axis=alt.Axis(labels=False)),
        y=alt.Y("size:Q", title=f"size ({unit})"),
        tooltip=[alt.Tooltip("file:N", title="first file"), alt.Tooltip("files:Q"),
                 alt.Tooltip("events:Q", format=","),
                 alt.Tooltip("size:Q", format=",.2f", title=unit),
                 alt.Tooltip("ratio:Q", format=".2f", title="compression")],
    ).properties(**SIZE)


def snapshot_chart(coverage: pl.DataFrame) -> alt.Chart:
    """Checkpoints of every snapshot set over time, one row of ticks per rule set and version.

    ``coverage`` is :func:`eventkit.workbench.health.snapshot_coverage`'s frame; sets built
    from an older archive state (``current`` false) are drawn grey.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> cov = pl.DataFrame({"rules": ["banking"], "fingerprint": ["ab" * 32], "version": [3],
    ...     "current": [True], "checkpoints": [[datetime(2024, 1, 31, tzinfo=UTC)]]})
    >>> snapshot_chart(cov).to_dict()["title"]
    'Snapshot checkpoints (1 set)'

    """
    data = (coverage.with_columns(
        set=pl.format("{} @ v{}", pl.col("rules").fill_null(pl.col("fingerprint").str.head(12)),
                      pl.col("version")))
        .explode("checkpoints").rename({"checkpoints": "time"})
        .select("set", "time", "current").with_columns(with_when()))
    title = f"Snapshot checkpoints ({coverage.height} set{'s' * (coverage.height != 1)})"
    return alt.Chart(data, title=title).mark_tick(thickness=2).encode(
        x=x_time(data["time"].min(), data["time"].max()),  # type: ignore[arg-type]
        y=alt.Y("set:N", title="rules @ archive version"),
        color=alt.Color("current:N", title="current",
                        scale=alt.Scale(domain=[True, False], range=["#4c78a8", "#bbbbbb"])),
        tooltip=[alt.Tooltip("set:N", title="snapshot set"), tip_time("checkpoint")],
    ).properties(width=SIZE["width"], height=max(40, 30 * coverage.height))


def schema_version_chart(versions: pl.DataFrame) -> alt.Chart | Sentence:
    """Events per schema version, from :func:`eventkit.workbench.health.schema_versions`.

    One version is a sentence, not a single bar.

    Examples
    --------
    >>> v = pl.DataFrame({"schema_version": [1, 3], "files": [2, 5], "events": [10, 90]})
    >>> schema_version_chart(v).to_dict()["title"]
    'Events per schema version'
    >>> schema_version_chart(v.tail(1))
    All 90 events (5 files) are in schema version 3.

    """
    if versions.height <= 1:
        if versions.height == 0:
            return Sentence("No data files: no schema versions.")
        row = versions.row(0, named=True)
        which = ("per-row versions" if row["schema_version"] is None
                 else f"schema version {row['schema_version']}")
        return Sentence(f"All {plural(row['events'], 'event')} ({plural(row['files'], 'file')}) "
                        f"are in {which}.")
    data = versions.with_columns(
        version=pl.col("schema_version").cast(pl.String).fill_null("per row"))
    return alt.Chart(data, title="Events per schema version").mark_bar().encode(
        x=alt.X("events:Q", title="events", axis=alt.Axis(format=",d", tickMinStep=1)),
        y=alt.Y("version:N", title="schema version"),
        tooltip=[alt.Tooltip("version:N", title="schema version"), "files:Q",
                 alt.Tooltip("events:Q", format=",")],
    ).properties(width=SIZE["width"], height=max(40, 30 * versions.height))
