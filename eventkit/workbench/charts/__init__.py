"""Altair charts, by subject, small enough to live in a notebook.

Every chart is aggregated in Polars before Altair sees it, so its data has at
most ``max_points`` rows however long the event log: the default stays well
under Altair's 5,000-row limit (``MaxRowsError``) without VegaFusion, and a
saved notebook stays small. Balances are exact integer cents in eventkit;
charts show them in a currency (:class:`Currency`: symbol and minor digits) on
axes and in tooltips, for display only. Tooltips are text made in Polars
(instants with their zone, money exact), so they never read ``NaN``; line
charts show every series at the instant nearest the pointer. Charts fill the
notebook's width; static renderings (:func:`enable_static`, :func:`export`)
are 760 pixels wide. Nothing to draw is a :class:`Sentence`, not an empty chart.

In JupyterLab call :func:`enable_offline` once: Altair 6 otherwise loads Vega
from a CDN, and JupyterLab cannot draw Vega-Lite 6 specs on its own.
"""

from eventkit.workbench.charts._common import (
    EMBED_OPTIONS,
    enable,
    enable_offline,
    enable_static,
    export,
)
from eventkit.workbench.charts.alerts import alert_timeline, pattern_alerts
from eventkit.workbench.charts.balances import as_of_marker, balance_history, pick_accounts
from eventkit.workbench.charts.health import schema_version_chart, snapshot_chart, storage_chart
from eventkit.workbench.charts.streams import field_history, state_counts
from eventkit.workbench.charts.temporal import restatement_view, totals_over_time
from eventkit.workbench.charts.whatif import (
    delta_distribution,
    difference_view,
    rate_steps,
    what_if,
    what_if_summary,
)
from eventkit.workbench.format import Currency, Sentence

__all__ = [
    "EMBED_OPTIONS",
    "Currency",
    "Sentence",
    "alert_timeline",
    "as_of_marker",
    "balance_history",
    "delta_distribution",
    "enable",
    "difference_view",
    "enable_offline",
    "enable_static",
    "export",
    "field_history",
    "pattern_alerts",
    "pick_accounts",
    "rate_steps",
    "restatement_view",
    "schema_version_chart",
    "snapshot_chart",
    "state_counts",
    "storage_chart",
    "totals_over_time",
    "what_if",
    "what_if_summary",
]
