"""Charts of an archive's health: storage per file, snapshot coverage, schema versions."""

from __future__ import annotations

import math

import altair as alt
import polars as pl

from eventkit.workbench.charts._common import SIZE, TIME_TIP, X_TIME

__all__ = ["schema_version_chart", "snapshot_chart", "storage_chart"]


# ---------------------------------------------------------------------- archive health
def storage_chart(files: pl.DataFrame, *, max_bars: int = 500) -> alt.Chart:
    """Bars of the data files' sizes in log order (MiB), from ``eventkit.info(...).files``.

    More than ``max_bars`` files are summed in runs of consecutive files, so
    the chart stays small; the tooltip gives events and compression per bar.

    Examples
    --------
    >>> files = pl.DataFrame({"file": ["a", "b"], "partition": [".", "."],
    ...     "events": [10, 5], "bytes": [2_000_000, 1_000_000],
    ...     "uncompressed_bytes": [6_000_000, 2_500_000]})
    >>> spec = storage_chart(files).to_dict()
    >>> [round(r["mib"], 2) for r in next(iter(spec["datasets"].values()))]
    [1.91, 0.95]

    """
    per = max(1, math.ceil(files.height / max_bars))
    data = (files.with_row_index("n")
            .group_by((pl.col("n") // per).alias("run"), maintain_order=True)
            .agg(pl.col("file").first(), pl.len().alias("files"), pl.col("events").sum(),
                 pl.col("bytes").sum(), pl.col("uncompressed_bytes").sum())
            .with_columns(mib=pl.col("bytes") / 2**20,
                          ratio=pl.col("uncompressed_bytes") / pl.col("bytes")))
    title = f"Data files in log order ({files.height:,} files" + (
        f", {per} per bar)" if per > 1 else ")")
    return alt.Chart(data, title=title).mark_bar().encode(
        x=alt.X("run:O", title="data file (log order)", axis=alt.Axis(labels=False)),
        y=alt.Y("mib:Q", title="size (MiB)"),
        tooltip=["file:N", "files:Q", alt.Tooltip("events:Q", format=","),
                 alt.Tooltip("mib:Q", format=",.2f", title="MiB"),
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
        .select("set", "time", "current"))
    title = f"Snapshot checkpoints ({coverage.height} set{'s' * (coverage.height != 1)})"
    return alt.Chart(data, title=title).mark_tick(thickness=2).encode(
        x=X_TIME, y=alt.Y("set:N", title="rules @ archive version"),
        color=alt.Color("current:N", title="current",
                        scale=alt.Scale(domain=[True, False], range=["#4c78a8", "#bbbbbb"])),
        tooltip=["set:N", TIME_TIP],
    ).properties(width=SIZE["width"], height=max(40, 30 * coverage.height))


def schema_version_chart(versions: pl.DataFrame) -> alt.Chart:
    """Events per schema version, from :func:`eventkit.workbench.health.schema_versions`.

    Examples
    --------
    >>> v = pl.DataFrame({"schema_version": [1, 3], "files": [2, 5], "events": [10, 90]})
    >>> schema_version_chart(v).to_dict()["title"]
    'Events per schema version'

    """
    data = versions.with_columns(
        version=pl.col("schema_version").cast(pl.String).fill_null("per row"))
    return alt.Chart(data, title="Events per schema version").mark_bar().encode(
        x=alt.X("events:Q", title="events"), y=alt.Y("version:N", title="schema version"),
        tooltip=["version:N", "files:Q", alt.Tooltip("events:Q", format=",")],
    ).properties(width=SIZE["width"], height=max(40, 30 * versions.height))
