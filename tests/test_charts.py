"""eventkit.charts: what the chart specs contain, checked through ``chart.to_dict()``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import altair as alt
import numpy as np
import polars as pl
import pytest
import vl_convert as vlc
from altair.utils._importers import vl_version_for_vl_convert
from conftest import make_events

import eventkit
from eventkit.banking import generate
from eventkit.workbench import charts
from eventkit.workbench.charts import balances
from eventkit.workbench.charts.balances import PERCENTILES
from eventkit.workbench.health import demo_archive, health_inputs, verdict

START = datetime(2023, 1, 1, tzinfo=UTC)
DAYS = 730


def synthetic_events(rows: int, accounts: int, *, seed: int = 0) -> pl.DataFrame:
    """Random deposits, withdrawals and fees of ``accounts`` accounts over two years."""
    rng = np.random.default_rng(seed)
    micros = np.sort(rng.integers(0, DAYS * 86_400 * 10**6, rows))
    times = pl.Series(micros + int(START.timestamp() * 10**6)).cast(pl.Datetime("us", "UTC"))
    return pl.DataFrame({
        "event_id": [f"e{i}" for i in range(rows)],
        "seq": np.arange(rows),
        "account_id": rng.integers(1, accounts + 1, rows),
        "event_type": rng.choice(["Deposit", "Withdrawal", "Fee"], rows, p=[0.5, 0.35, 0.15]),
        "event_time": times,
        "recorded_at": times,
        "amount": rng.integers(100, 100_000, rows),
    }).with_columns(pl.lit(None, pl.Int64).alias("counterparty_id"),
                    pl.lit(None, pl.Float64).alias("rate"))


@pytest.fixture(scope="module")
def big() -> eventkit.ReplayResult:
    """200,000 events of 20 accounts: far more points than a chart should hold."""
    return eventkit.replay(synthetic_events(200_000, 20))


@pytest.fixture(scope="module")
def bank() -> eventkit.ReplayResult:
    """20,000 events of 300 accounts: enough for a meaningful percentile band."""
    return eventkit.replay(synthetic_events(20_000, 300, seed=1))


@pytest.fixture
def small() -> eventkit.ReplayResult:
    return eventkit.replay(make_events([
        (1, "Deposit", 10_000, 0), (2, "Deposit", 500, 10), (1, "Fee", 250, 60 * 24),
        (1, "Withdrawal", 2_000, 60 * 48), (2, "Deposit", 700, 60 * 72),
    ]))


def rows(chart: alt.Chart | alt.LayerChart) -> list[dict]:
    """The data rows of a chart spec (Altair puts inline data under ``datasets``)."""
    return [row for dataset in chart.to_dict()["datasets"].values() for row in dataset]


def layer_rows(chart: alt.Chart | alt.LayerChart, mark: str, index: int = 0) -> list[dict]:
    """The data rows of the ``index``-th layer drawn with ``mark`` (its own data, or the top's)."""
    spec = chart.to_dict()
    layers = [layer for layer in spec.get("layer", [spec]) if layer["mark"]["type"] == mark]
    name = layers[index].get("data", spec.get("data"))["name"]
    return spec["datasets"][name]


def tooltip_rows(chart: alt.Chart | alt.LayerChart) -> list[dict]:
    """The rows behind the nearest-instant tooltip (the rule layer with a tooltip)."""
    spec = chart.to_dict()
    [layer] = [layer for layer in spec["layer"] if layer["mark"]["type"] == "rect"
               and "tooltip" in layer.get("encoding", {})]
    return spec["datasets"][layer.get("data", spec.get("data"))["name"]]


def size(chart: alt.Chart | alt.LayerChart) -> int:
    return len(json.dumps(chart.to_dict()))


def final_units(result: eventkit.ReplayResult, at: str | None = None) -> dict[int, float]:
    state = result.state() if at is None else result.as_of(at)
    return {k: b / 100 for k, b in state.select("account_id", "balance").collect().rows()}


# --------------------------------------------------------------------------- lines
def test_lines_follow_the_replay_for_the_selected_accounts(small):
    chart = charts.balance_history(small.history, accounts=[1])
    spec = chart.to_dict()
    line = spec["layer"][0]
    assert line["mark"] == {"type": "line", "interpolate": "step-after"}
    assert line["encoding"]["color"]["field"] == "series"
    assert line["encoding"]["y"]["axis"]["title"] == "balance (USD)"
    assert "'$'" in line["encoding"]["y"]["axis"]["labelExpr"]  # money on the axis
    assert spec["width"] == "container"
    assert spec["title"]["text"] == "Balance history of account 1"
    assert [(r["account_id"], r["balance"]) for r in layer_rows(chart, "line")] == [
        (1, 100.0), (1, 97.5), (1, 77.5)]


def test_line_tooltips_list_every_series_at_the_nearest_instant_as_text(small):
    chart = charts.balance_history(small.history, accounts=[1, 2], currency="EUR",
                                   zone="Europe/Paris")
    spec = chart.to_dict()
    [param] = spec["params"]
    assert param["select"] == {"type": "point", "clear": "pointerout", "fields": ["time"],
                               "on": "pointerover"}
    bands = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "rect")
    assert bands["encoding"]["x2"]["field"] == "until"  # each instant holds until the next
    assert [(t["field"], t["title"]) for t in bands["encoding"]["tooltip"]] == [
        ("when", "time"), ("t0", "account 1"), ("t1", "account 2")]
    assert all(t["type"] == "nominal" for t in bands["encoding"]["tooltip"])  # text: never NaN
    tips = tooltip_rows(chart)
    assert [(r["when"], r["t0"], r["t1"]) for r in tips] == [
        ("2024-01-01 01:00 CET", "€100.00", None),        # account 2 has no event yet
        ("2024-01-01 01:10 CET", "€100.00", "€5.00"),
        ("2024-01-02 01:00 CET", "€97.50", "€5.00"),      # each line's last value: step lines
        ("2024-01-03 01:00 CET", "€77.50", "€5.00"),
        ("2024-01-04 01:00 CET", "€77.50", "€12.00"),
    ]
    for when in ("NaN", "undefined"):
        assert when not in json.dumps(tips)


def test_time_axis_labels_carry_the_date_on_sub_day_scales(small):
    chart = charts.balance_history(small.history, accounts=[1], start="2024-01-02",
                                   end="2024-01-02T12:00:00+00:00")
    axis = chart.to_dict()["layer"][0]["encoding"]["x"]["axis"]
    assert axis["labelExpr"] == "utcFormat(datum.value, '%d %b %Y %H:%M')"
    svg = vlc.vegalite_to_svg(chart.to_dict() | {"width": 700},
                              vl_version=vl_version_for_vl_convert())
    assert "02 Jan 2024 06:00" in svg


def test_several_accounts_get_one_colour_each(big):
    chart = charts.balance_history(big.history, accounts=[3, 5, 8])
    assert {r["account_id"] for r in layer_rows(chart, "line")} == {3, 5, 8}
    assert chart.to_dict()["layer"][0]["encoding"]["color"]["sort"] == [
        "account 3", "account 5", "account 8"]
    assert chart.to_dict()["title"]["text"] == "Balance history of accounts 3, 5, 8"


def test_long_histories_are_downsampled_to_max_points(big):
    history = big.history.collect()
    assert history.filter(pl.col("account_id").is_in([1, 2])).height > 15_000
    chart = charts.balance_history(history, accounts=[1, 2], max_points=500)
    data = layer_rows(chart, "line")
    assert len(data) <= 500
    assert len(tooltip_rows(chart)) <= 500  # the hover: one row per instant, both lines
    assert size(chart) < 150_000  # lines, and the hover's text for every instant
    assert "last balance of every" in chart.to_dict()["title"]["subtitle"]
    final = final_units(big)
    for account in (1, 2):  # each line still ends on the exact final balance
        assert [r["balance"] for r in data if r["account_id"] == account][-1] == final[account]


def test_max_points_too_small_for_the_lines_is_refused(big):
    with pytest.raises(ValueError, match="too small for 20 lines"):
        charts.balance_history(big.history, accounts=range(1, 21), max_points=50)


def test_window_starts_with_the_carried_balance_and_ends_at_end(big):
    chart = charts.balance_history(big.history, accounts=[4], start="2023-06-01",
                                   end="2023-06-30T12:00:00+00:00")
    data = layer_rows(chart, "line")
    assert data[0]["time"].startswith("2023-06-01T00:00:00")
    assert data[0]["balance"] == final_units(big, "2023-05-31")[4]
    assert data[-1]["time"].startswith("2023-06-30T12:00:00")
    assert data[-1]["balance"] == final_units(big, "2023-06-30T12:00:00+00:00")[4]
    assert all("2023-06-01" <= r["time"][:10] <= "2023-06-30" for r in data)
    assert chart.to_dict()["title"]["subtitle"] == "2023-06-01 00:00 to 2023-06-30 12:00 UTC"


@pytest.mark.parametrize("bad", [datetime(2024, 1, 1), "2024-01-01T00:00:00", "soon", 20240101])
@pytest.mark.parametrize("param", ["start", "end"])
def test_naive_or_malformed_times_are_refused(small, param, bad):
    with pytest.raises(eventkit.InstantError, match=f"^{param}: ") as info:
        charts.balance_history(small.history, accounts=[1], **{param: bad})
    assert info.value.param == param


def test_start_after_end_is_refused(small):
    with pytest.raises(ValueError, match="is after end"):
        charts.balance_history(small.history, start="2024-02-01", end="2024-01-01")


def test_nothing_to_draw_is_refused(small):
    with pytest.raises(ValueError, match="no events of account 99 to draw"):
        charts.balance_history(small.history, accounts=[99])
    with pytest.raises(ValueError, match="no accounts chosen"):
        charts.balance_history(small.history, accounts=[])
    with pytest.raises(ValueError, match="no events to draw up to 2023-12-31"):
        charts.balance_history(small.history, end="2023-12-31")


# --------------------------------------------------------------------------- band
def test_band_of_all_accounts_is_percentiles_of_end_of_day_balances(bank):
    chart = charts.balance_history(bank.history)
    spec = chart.to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["area", "line", "rule", "rect"]
    assert spec["title"]["text"] == "Balances of 300 accounts: median and 10th-90th percentile"
    assert spec["title"]["subtitle"][0].endswith("balance at the end of every day")
    assert "middle 80 % of accounts" in spec["title"]["subtitle"][1]  # the band explained
    tip = [t["title"] for t in spec["layer"][3]["encoding"]["tooltip"]]
    assert tip == ["end of day", "90th percentile", "median", "10th percentile",
                   "accounts with events"]
    data = {r["time"][:10]: r for r in rows(chart)}
    assert len(data) == DAYS  # one row per day, never one per event
    for day in ("2023-01-01", "2023-03-15", "2024-12-30"):
        balances = pl.Series(list(final_units(bank, day).values()))
        assert data[day]["accounts"] == balances.len()
        for name, q in PERCENTILES.items():
            assert data[day][name] == pytest.approx(balances.quantile(q, "linear"), abs=0.005)


def test_band_periods_grow_when_the_grid_would_be_too_big(bank, monkeypatch):
    monkeypatch.setattr(balances, "GRID_CELLS", 300 * 50)  # 300 accounts: at most 50 periods
    chart = charts.balance_history(bank.history)
    data = rows(chart)
    assert len(data) <= 50
    assert chart.to_dict()["title"]["subtitle"][0].endswith("balance at the end of every 15 days")
    steps = {datetime.fromisoformat(b["time"]) - datetime.fromisoformat(a["time"])
             for a, b in zip(data, data[1:], strict=False)}
    assert steps == {timedelta(days=15)}


def test_band_window(bank):
    data = rows(charts.balance_history(bank.history, start="2024-03-01", end="2024-03-31"))
    assert [r["time"][:10] for r in (data[0], data[-1])] == ["2024-03-01", "2024-03-31"]
    assert len(data) == 31


# --------------------------------------------------------------------------- specs
def test_specs_of_the_sample_stay_small(sample_archive: Path):
    history = eventkit.replay(eventkit.open_archive(sample_archive)).history
    assert size(charts.balance_history(history)) < 300_000
    assert size(charts.balance_history(history, accounts=[1, 2, 3])) < 300_000
    assert size(charts.balance_history(history, accounts=range(1, 501))) < 300_000


def test_specs_are_valid_vega_lite_and_render_offline(small):
    for chart in (charts.balance_history(small.history, accounts=[1, 2]),
                  charts.balance_history(small.history)):
        svg = vlc.vegalite_to_svg(chart.to_dict(), vl_version=vl_version_for_vl_convert())
        assert chart.to_dict()["title"]["text"] in svg


@pytest.fixture
def restore_renderer():
    name, options = alt.renderers.active, alt.renderers.options
    yield
    alt.renderers.enable(name, **options)


@pytest.mark.usefixtures("restore_renderer")
def test_enable_offline_twice_is_the_same_as_once():
    charts.enable_offline()
    first = alt.renderers.options
    charts.enable_offline()
    assert alt.renderers.active == "eventkit-widget"
    assert alt.renderers.options == first == {"offline": True,
                                              "embed_options": charts.EMBED_OPTIONS}


def test_the_widget_renderer_gives_the_widget_altairs_own_renderer_gives(bank, monkeypatch):
    """The same widget spec as Altair's ``jupyter`` renderer, without its schema validations
    (of each data row: seconds for a few thousand points, which Run All waited for)."""
    from altair.utils import schemapi

    from eventkit.workbench.charts._common import widget_of

    validated: list[object] = []
    check = schemapi.validate_jsonschema
    monkeypatch.setattr(schemapi, "validate_jsonschema",
                        lambda spec, *a, **k: (validated.append(spec), check(spec, *a, **k))[1])
    for chart in (charts.balance_history(bank.history, accounts=[1, 2]),
                  alt.Chart(bank.state().collect()).mark_bar().encode(x="balance:Q", y="count()")
                  & alt.Chart(bank.history.head(3000).collect()).mark_point()
                  .encode(x="balance:Q")):
        spec = chart.to_dict()
        assert spec["datasets"]  # the data travel as the spec's datasets
        rows = len(json.dumps(spec["datasets"]))
        validated.clear()
        ours = widget_of(spec, offline=True).spec
        ours_checked = len(json.dumps(validated, default=str))
        validated.clear()
        theirs = alt.JupyterChart(alt.Chart.from_dict(spec)).spec
        theirs_checked = len(json.dumps(validated, default=str))
        # Altair validated the chart when it made the spec: the data rows are not checked
        # again (Altair's own renderer checks them twice)
        assert theirs_checked - ours_checked >= 2 * rows, (ours_checked, theirs_checked, rows)
        assert ours == theirs


# --------------------------------------------------------------------------- as-of, what-if
def test_as_of_marker_draws_a_rule_at_the_end_of_the_day_on_top_of_the_lines(small):
    lines = charts.balance_history(small.history, accounts=[1, 2])
    spec = charts.as_of_marker(lines, "2024-01-02").to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == [
        "line", "rule", "point", "rect", "rule", "text"]
    assert spec["params"] and spec["width"] == "container"  # the hover survives the marker
    assert "title" not in spec["layer"][0]  # one title, on the layer chart
    assert spec["title"]["text"] == "Balance history of accounts 1, 2"
    rule, text = spec["layer"][4:]
    at = {"year": 2024, "month": 1, "date": 2, "hours": 23, "minutes": 59, "seconds": 59,
          "milliseconds": 999, "utc": True}  # the end of the day (to the millisecond)
    assert rule["encoding"]["x"] == text["encoding"]["x"] == {"datum": at, "type": "temporal"}
    assert text["encoding"]["text"] == {"value": "as of 2024-01-02 23:59 UTC"}
    band = charts.as_of_marker(charts.balance_history(small.history), "2024-01-02")
    assert [layer["mark"]["type"] for layer in band.to_dict()["layer"]] == [
        "area", "line", "rule", "rect", "rule", "text"]


def test_as_of_marker_refuses_a_naive_instant(small):
    lines = charts.balance_history(small.history, accounts=[1])
    with pytest.raises(eventkit.InstantError, match="^as_of: "):
        charts.as_of_marker(lines, "2024-01-02T00:00:00")


def banking_at(rate: float):
    return eventkit.rules.get("banking").with_params(require_open=0,
                                                        rate_table={"2022-01-01": rate})


def test_what_if_overlays_two_runs_of_one_account_that_end_on_their_replays():
    events = synthetic_events(5_000, 5, seed=3)
    base = eventkit.replay(events, banking_at(0.02))
    high = eventkit.replay(events, banking_at(0.06))
    chart = charts.what_if(base.history, high.history, account=2, labels=("2 %", "6 %"))
    spec = chart.to_dict()
    assert spec["title"]["text"] == "Account 2: 2 % and 6 %"
    line = spec["layer"][0]
    assert line["encoding"]["color"]["scale"]["domain"] == ["2 %", "6 %"]
    assert line["encoding"]["strokeDash"]["field"] == "series"
    data = layer_rows(chart, "line")
    finals = {run: [r["balance"] for r in data if r["run"] == run][-1] for run in ("2 %", "6 %")}
    last = tooltip_rows(chart)[-1]
    assert (last["t0"], last["t1"]) == tuple(f"${v:,.2f}" for v in finals.values())
    assert finals == {"2 %": final_units(base)[2], "6 %": final_units(high)[2]}
    assert finals["6 %"] != finals["2 %"]


def test_what_if_of_a_long_history_stays_under_max_points(big):
    history = big.history.collect()
    chart = charts.what_if(history, history, account=1, max_points=400)
    assert len(layer_rows(chart, "line")) <= 400
    assert size(chart) < 100_000


# --------------------------------------------------------------------------- restatements
def late_events() -> pl.DataFrame:
    """Account 1: deposits, then two corrections recorded late; account 2 one on time."""
    d = lambda day: datetime(2024, 1, day, tzinfo=UTC)  # noqa: E731
    return make_events([]).vstack(pl.DataFrame({
        "event_id": ["a", "b", "c", "late1", "late2"], "seq": [0, 1, 2, 3, 4],
        "account_id": [1, 1, 2, 1, 1],
        "event_type": ["Deposit", "Deposit", "Deposit", "Correction", "Correction"],
        "event_time": [d(1), d(3), d(3), d(2), d(4)],
        "recorded_at": [d(1), d(3), d(3), d(10), d(11)],
        "amount": [10_000, 5_000, 700, -3_000, 250],
        "counterparty_id": [None] * 5, "rate": [None] * 5,
    }, schema=make_events([]).schema))


def test_restatement_view_has_one_point_per_late_event():
    table = eventkit.restatements(late_events(), known_at="2024-01-05",
                                           now_known_at="2024-01-31")
    chart = charts.restatement_view(table)
    spec = chart.to_dict()
    assert spec["title"]["text"] == "Restatements: 2 late events changed balance"
    points = spec["datasets"][spec["layer"][1]["data"]["name"]]
    # at late2's time the state as known now also holds late1: -30 + 2.50
    assert [(p["event_id"], p["delta"], p["delta_text"], p["when"]) for p in points] == [
        ("late1", -30.0, "−$30.00", "2024-01-02 00:00 UTC"),
        ("late2", -27.5, "−$27.50", "2024-01-04 00:00 UTC")]
    labels = spec["datasets"][spec["layer"][2]["data"]["name"]]  # few points: labelled
    assert [r["label"] for r in labels] == ["account 1: −$30.00", "account 1: −$27.50"]


def test_restatement_view_of_nothing_late_is_a_sentence():
    table = eventkit.restatements(late_events(), known_at="2024-01-31",
                                           now_known_at="2024-02-28")
    said = charts.restatement_view(table)
    assert isinstance(said, charts.Sentence)
    assert said == "No late event changed balance: nothing was restated."
    assert said._repr_html_().startswith("<p")


def test_many_restatements_are_summed_per_period():
    n = 5_000
    rng = np.random.default_rng(0)
    instants = pl.Series(np.sort(rng.integers(0, 365 * 86_400 * 10**6, n))
                         + int(START.timestamp() * 10**6)).cast(pl.Datetime("us", "UTC"))
    table = pl.DataFrame({"account_id": rng.integers(1, 50, n), "instant": instants,
                          "event_id": [f"e{i}" for i in range(n)], "event_type": "Correction",
                          "recorded_at": instants, "balance_delta": rng.integers(-500, 500, n)})
    chart = charts.restatement_view(table, max_points=200)
    data = chart.layer[1].data
    assert data.height <= 200
    assert data["events"].sum() == n
    assert data["delta"].sum() == pytest.approx(table["balance_delta"].sum() / 100)
    assert chart.to_dict()["title"]["subtitle"][0].startswith(
        "total change of balance per 2 days")


def test_restatement_view_names_a_missing_field():
    table = eventkit.restatements(late_events(), known_at="2024-01-05",
                                           now_known_at="2024-01-31")
    with pytest.raises(ValueError, match="no column 'fees_delta'"):
        charts.restatement_view(table, field="fees")


# --------------------------------------------------------------------------- export
@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<svg"), (".png", b"\x89PNG")])
def test_export_writes_a_static_image(small, tmp_path, suffix, magic):
    chart = charts.as_of_marker(charts.balance_history(small.history, accounts=[1]), "2024-01-02")
    out = charts.export(chart, tmp_path / f"balance{suffix}")
    assert out.read_bytes().startswith(magic)
    if suffix == ".svg":
        assert "Balance history of account 1" in out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no partial file left


def test_export_refuses_other_formats_and_writes_nothing(small, tmp_path):
    chart = charts.balance_history(small.history, accounts=[1])
    with pytest.raises(ValueError, match=r"must end in \.svg or \.png"):
        charts.export(chart, tmp_path / "balance.pdf")
    assert not list(tmp_path.iterdir())


@pytest.mark.usefixtures("restore_renderer")
def test_enable_static_shows_svg_made_in_the_kernel(small):
    charts.enable_static()
    bundle = charts.balance_history(small.history, accounts=[1])._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["image/svg+xml"].lstrip().startswith("<svg")


def test_specs_of_the_sample_explorer_and_restatements_stay_small(sample_archive: Path):
    events = eventkit.open_archive(sample_archive)
    banking = eventkit.rules.get("banking")
    base = eventkit.replay(events, banking)
    high = eventkit.replay(events, banking.with_params(rate_table={"2023-01-01": 0.08}))
    overlay = charts.as_of_marker(charts.what_if(base.history, high.history, account=3),
                                  "2024-06-30")
    assert size(overlay) < 300_000
    table = eventkit.restatements(events, banking, known_at="2024-01-20",
                                           now_known_at="2026-01-01")
    view = charts.restatement_view(table)
    assert size(view) < 1_000_000
    assert layer_rows(view, "circle")  # the sample has late corrections

# ---------------------------------------------------------------------- alert timeline


@pytest.fixture(scope="module")
def injected(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    from eventkit.banking.generate import generate

    path = tmp_path_factory.mktemp("timeline") / "bank"
    generate(path, events=10_000, accounts=100, seed=4, patterns=True)
    history = eventkit.replay(eventkit.open_archive(path), "banking").history.collect()
    return history, eventkit.builtin_alerts(history)


@pytest.mark.parametrize("pattern", ["rapid_withdrawals", "structuring", "ping_pong",
                                     "negative_balance"])
def test_alert_timeline_highlights_the_alerts_events(injected, pattern):
    history, alerts = injected
    alert = alerts.filter(pl.col("pattern") == pattern, pl.col("account_id") > 100).head(1)
    chart = charts.alert_timeline(history, alert)
    spec, rows = chart.to_dict(), layer_rows(chart, "point")
    a = alert.row(0, named=True)
    inside = sorted(r["seq"] for r in rows if r["in_alert"])
    assert inside[0] == a["start_seq"]
    assert a["end_seq"] in inside
    expected = {"rapid_withdrawals": 4, "structuring": 2, "ping_pong": 4, "negative_balance": 2}
    assert len(inside) == expected[pattern]
    assert spec["title"]["text"].startswith(f"{pattern} alert on account")
    points = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "point")
    assert points["encoding"]["color"]["field"] == "event_type"
    assert points["encoding"]["size"]["field"] == "in_alert"
    assert all(r["amount_text"].startswith("$") for r in rows)  # amounts, in currency
    labels = layer_rows(chart, "text", 1)  # the alert's amounts written beside its events
    assert len(labels) == len(inside)
    shaded = layer_rows(chart, "rect")
    assert len(shaded) == 1 and shaded[0]["label"] in ("alert window", "alert start")
    links = [layer for layer in spec["layer"] if layer["mark"]["type"] == "rule"]
    assert len(links) == (pattern == "ping_pong")  # the legs of each transfer linked
    lanes = {r["account_id"] for r in rows}
    assert lanes == ({str(a["account_id"]), str(a["counterparty_id"])} if pattern == "ping_pong"
                     else {str(a["account_id"])})
    times = [r["time"] for r in rows]
    assert times == sorted(times)
    left, right = points["encoding"]["x"]["scale"]["domain"]
    assert left <= times[0] and times[-1] <= right


def test_alert_timeline_context_and_limits(injected):
    history, alerts = injected
    busy = alerts.filter(pl.col("account_id") <= 100).sort("end_time").head(1)  # a real overdraft
    wide = charts.alert_timeline(history, busy, margin=timedelta(days=60))
    rows = layer_rows(wide, "point")
    assert any(not r["in_alert"] for r in rows)  # context around the alert
    svg = vlc.vegalite_to_svg(wide.to_dict(), vl_version=vl_version_for_vl_convert())
    assert "negative_balance alert on account" in svg
    capped = layer_rows(charts.alert_timeline(history, busy, margin=timedelta(days=60),
                                              max_points=3), "point")
    assert len(capped) == 3
    assert [r["seq"] for r in capped if r["in_alert"]] == [r["seq"] for r in rows
                                                           if r["in_alert"]][:3]
    with pytest.raises(ValueError, match="one row"):
        charts.alert_timeline(history, alerts.head(2))
    with pytest.raises(ValueError, match="^max_points: 1 "):
        charts.alert_timeline(history, alerts.filter(pl.col("pattern") == "ping_pong").head(1),
                              max_points=1)


# ---------------------------------------------------------------------- what-if views
@pytest.fixture(scope="module")
def comparison(sample_archive: Path):
    from eventkit.rules.rates import rates_of, shift_rates

    actual = rates_of(eventkit.open_archive(sample_archive))
    earlier = shift_rates(actual, "-3mo", start="2024-01-01", end="2024-12-31")
    return actual, earlier, eventkit.compare(sample_archive, "banking", {"rate_table": earlier})


def test_difference_view_total_is_the_sum_of_every_accounts_latest_difference(comparison):
    _, _, diff = comparison
    chart = charts.difference_view(diff.history, window=("2024-01-01", "2024-12-31"))
    spec = chart.to_dict()
    assert spec["title"]["text"] == "Total difference of balance over all accounts (B − A)"
    assert [layer["mark"]["type"] for layer in spec["layer"]][:3] == ["rect", "text", "rule"]
    data = layer_rows(chart, "line")
    final = diff.totals().filter(pl.col("field") == "balance")["delta"].item()
    assert data[-1]["balance"] == pytest.approx(final / 100)  # ends on the total delta
    assert len(data) <= 2000
    history = diff.history.collect()
    at = datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)
    latest = (history.filter(pl.col("event_time") <= at).sort("event_time", "seq")
              .group_by("account_id").agg(pl.col("balance_delta").last())["balance_delta"].sum())
    exact = charts.difference_view(diff.history, end=at)
    assert layer_rows(exact, "line")[-1]["balance"] == pytest.approx(latest / 100)
    assert tooltip_rows(exact)[-1]["t0"] == charts.Currency().signed(latest)


def test_difference_view_per_account_and_a_missing_field(comparison):
    _, _, diff = comparison
    chart = charts.difference_view(diff.history, accounts=[4, 9])
    assert {r["account_id"] for r in layer_rows(chart, "line")} == {4, 9}
    assert chart.to_dict()["title"]["text"] == "Difference of balance (B − A), accounts 4, 9"
    with pytest.raises(ValueError, match="no column 'status_delta'"):
        charts.difference_view(diff.history, field="status")


def test_accounts_chosen_are_one_id_or_several_and_each_must_have_events(small):
    """A mistyped id is refused by name, never left out of the chart in silence."""
    one = charts.balance_history(small.history, accounts=2)  # one id, not a list
    assert {r["account_id"] for r in layer_rows(one, "line")} == {2}
    with pytest.raises(eventkit.ParameterError, match="^accounts: no events of account 99 "):
        charts.balance_history(small.history, accounts=[1, 99])
    diff = eventkit.compare(small.events, "balance", {})
    with pytest.raises(eventkit.ParameterError, match="^accounts: no events of account 99 "):
        charts.difference_view(diff.history, accounts=[1, 99])
    with pytest.raises(eventkit.ParameterError, match="^accounts: no events of account 99 "):
        charts.what_if(small.history, small.history, account=99)
    with pytest.raises(eventkit.ParameterError, match="^accounts: .* not ids of account_id"):
        charts.what_if(small.history, small.history, account="x1")  # not a Polars error
    state = small.state().collect()
    assert charts.pick_accounts(state, 2)["account_id"].to_list() == [2]
    with pytest.raises(eventkit.ParameterError, match="^accounts: "):
        charts.pick_accounts(state, ["x1"])

def test_rate_steps_show_both_tables_in_percent_with_the_window_shaded(comparison):
    actual, earlier, _ = comparison
    chart = charts.rate_steps(actual, earlier, window=("2024-01-01", "2024-12-31"))
    spec = chart.to_dict()
    shaded = layer_rows(chart, "rect")
    assert shaded[0]["time"].startswith("2024-01-01")
    assert shaded[0]["until"].startswith("2024-12-31")
    lines = layer_rows(chart, "line")
    assert {r["series"] for r in lines} == {"actual rates", "scenario"}
    assert max(r["rate"] for r in lines) == pytest.approx(100 * max(actual.values()))
    line = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "line")
    assert line["encoding"]["y"]["title"] == "annual rate (%)"
    tips = tooltip_rows(chart)
    assert all(r["t0"].endswith(" %") for r in tips if r["t0"])
    assert any(r["t0"] != r["t1"] for r in tips)  # the shifted window differs


def test_what_if_summary_is_one_formatted_sentence(comparison):
    _, _, diff = comparison
    said = charts.what_if_summary(diff)
    totals = diff.totals().filter(pl.col("field") == "interest").row(0, named=True)
    money = charts.Currency()
    assert said.startswith("Under the scenario customers ")
    assert money.words(abs(totals["delta"])) in said
    assert f"{totals['keys_affected']:,} accounts affected" in said
    assert money.signed(totals["largest_fall"]) in said
    same = eventkit.compare(diff.a.events, "banking", "banking")
    assert charts.what_if_summary(same) == "The scenario changes no account's interest."
    assert charts.delta_distribution(same.state()) == "No account's interest changed."


def test_one_account_reads_as_one_account():
    """A bank of one: 'Balances of 1 account', whole accounts on the count axis."""
    one = eventkit.replay(make_events([(1, "Deposit", 500, 0), (1, "Fee", 20, 60 * 24)]))
    band = charts.balance_history(one.history).to_dict()
    assert band["title"]["text"].startswith("Balances of 1 account: ")
    state = pl.DataFrame({"account_id": [7], "interest_delta": [915]})
    bars = charts.delta_distribution(state)
    assert bars.to_dict()["title"]["text"] == "Change of interest per account (1 account changed)"
    counts = [t for t in svg_labels(bars) if re.fullmatch(r"[\d.]+", t)]
    assert counts and all(t.isdigit() for t in counts), counts  # never 0.1 of an account



def test_balances_of_an_expired_archive_begin_at_its_cut_off(tmp_path: Path):
    """Rows before an expiry's cut-off do not hold the balances of then: never drawn."""
    generate(tmp_path / "bank", events=600, accounts=4, seed=2)
    before = eventkit.replay(tmp_path / "bank").as_of("2023-12-31").collect()
    eventkit.expire(tmp_path / "bank", before="2024-01-01", by="ops", reason="retention",
                    confirm=True)
    result = eventkit.replay(tmp_path / "bank")
    for window in ({"start": "2023-06-01"}, {"end": "2023-09-30"}):
        with pytest.raises(eventkit.ExpiredError, match="asked about 2023-"):
            charts.balance_history(result, accounts=[1, 2], **window)
    lines = charts.balance_history(result, accounts=[1, 2]).layer[0].data
    first = lines.group_by("account_id").agg(pl.col("time", "minor").first()).sort("account_id")
    assert first["time"].to_list() == [datetime(2024, 1, 1, tzinfo=UTC)] * 2
    assert first["minor"].to_list() == before.filter(pl.col("account_id") <= 2).sort(
        "account_id")["balance"].to_list()  # not the 0 of an account's kept opening event
    band = charts.balance_history(result).to_dict()
    assert band["title"]["subtitle"][0].startswith("2024-01-01 00:00 to ")

# ---------------------------------------------------------------------- formats, health
def test_currency_text_is_exact_for_any_amount():
    rng = np.random.default_rng(5)
    values = [*rng.integers(-10**15, 10**15, 5_000).tolist(), 0, 1, -1, 999, 1_000, -100_000]
    for money in (charts.Currency(), charts.Currency("JPY"), charts.Currency("BHD")):
        texts = pl.select(money.text(pl.lit(pl.Series(values, dtype=pl.Int64)))).to_series()
        assert texts.to_list() == [money.words(v) for v in values]
        for v, text in zip(values[:50], texts, strict=False):  # read back: the same minor units
            digits = text.lstrip("−").removeprefix(money.symbol).replace(",", "").replace(".", "")
            assert int(digits) * (-1 if text.startswith("−") else 1) == v
    with pytest.raises(ValueError, match="not an ISO 4217"):
        charts.Currency("dollars")


def test_storage_and_schema_charts_say_one_file_or_version_in_words():
    files = pl.DataFrame({"file": ["a"], "partition": ["."], "events": [50_000],
                          "bytes": [843_520], "uncompressed_bytes": [2_000_000]})
    said = charts.storage_chart(files)
    assert said == "One data file: 823.8 KiB, 50,000 events (2.4x compression)."
    two = charts.storage_chart(pl.concat([files, files]))
    assert two.to_dict()["encoding"]["y"]["title"] == "size (KiB)"  # not KB on a MiB axis
    versions = pl.DataFrame({"schema_version": [3], "files": [1], "events": [50_000]})
    assert charts.schema_version_chart(versions) == (
        "All 50,000 events (1 file) are in schema version 3.")



def test_health_check_does_not_pass_personal_fields_it_cannot_audit(tmp_path: Path):
    path, keys = demo_archive(tmp_path)
    assert verdict({"demo": path}, {"demo": keys}).ok
    keys.rename(tmp_path / "elsewhere.sqlite")  # the key store moved: nothing to audit with
    found = verdict({"demo": path}, {"demo": keys})
    assert not found.ok
    assert "demo has personal fields (name, email) but no key store" in found.headline()
    with pytest.raises(eventkit.ParameterError, match="keys: no key store at .*typo"):
        health_inputs(path, tmp_path / "typo.sqlite")  # a mistyped KEYS is not 'no keys'



@pytest.mark.parametrize(("start", "end", "first"), [
    ("2023-01-01", "2023-06-30", "Jan 2023"),      # weekly ticks read 'Jan 2023' four times
    ("2023-01-01", "2023-01-04", "01 Jan 2023"),   # 6-hourly ones '01 Jan 2023' four times
    ("2023-01-01", "2024-12-31", "Jan 2023"),
])
def test_time_axis_labels_never_repeat(start: str, end: str, first: str):
    history = eventkit.replay(synthetic_events(300, 3)).history
    for chart in (charts.balance_history(history, accounts=[1, 2], start=start, end=end),
                  charts.balance_history(history, start=start, end=end)):
        days = [label for label in svg_labels(chart) if re.fullmatch(r"[\w ]+ 20\d\d", label)]
        assert days[0] == first and len(days) >= 3, days
        assert len(days) == len(set(days)), days

# --------------------------------------------------------------------------- own streams
def order_history(totals: list[int], *, keys: list[str] | None = None) -> pl.DataFrame:
    """Orders keyed by text: ``total`` (minor units) and ``status`` after each event."""
    n = len(totals)
    times = [START + timedelta(hours=i) for i in range(n)]
    return pl.DataFrame({
        "event_id": [f"e{i}" for i in range(n)], "seq": list(range(n)),
        "order_id": keys or ["ö-1"] * n, "event_type": ["ItemAdded"] * n,
        "event_time": times, "recorded_at": times, "total": totals,
        "status": ["placed"] * n, "share": [0.5] * n,
    })


def svg_labels(chart: alt.TopLevelMixin) -> list[str]:
    svg = vlc.vegalite_to_svg(charts._common.fixed_width(chart.to_dict()),
                              vl_version=vl_version_for_vl_convert())
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


@pytest.mark.parametrize(("currency", "expected"), [
    ("USD", ["$0", "$0.20", "$1", "$1.20", "$2"]),
    ("BHD", ["BHD 0", "BHD 0.020", "BHD 0.100", "BHD 0.200"]),
])
def test_money_axes_keep_the_minor_digits_of_fractional_ticks(currency, expected):
    events = make_events([(1, "Deposit", 50, 60 * 24 * d) for d in range(4)])
    labels = svg_labels(charts.balance_history(eventkit.replay(events).history, accounts=[1],
                                               currency=currency))
    money = [label for label in labels if label.startswith(expected[0].rstrip("0"))]
    assert set(expected) <= set(money)
    assert len(money) == len(set(money))  # no two ticks read the same amount


@pytest.mark.parametrize(("currency", "texts", "values"), [
    ("BHD", ["BHD 1.875", "BHD 4.275"], [1.875, 4.275]),
    ("JPY", ["¥1,875", "¥4,275"], [1875.0, 4275.0]),
])
def test_field_history_tooltips_show_money_exactly_in_its_currency(currency, texts, values):
    chart = charts.field_history(order_history([1875, 4275]), "total", key="order_id",
                                 keys=["ö-1"], money=True, currency=currency)
    assert chart.data["text"].to_list() == texts
    assert chart.data["value"].to_list() == values
    tooltip = {t["title"]: t for t in chart.to_dict()["encoding"]["tooltip"]}
    assert tooltip["total"] == {"field": "text", "title": "total", "type": "nominal"}


def test_field_history_shows_integers_exactly_and_keeps_the_latest_events():
    history = order_history([2**62 + 1, 5, 7, 9], keys=["a", "b", "a", "b"])
    chart = charts.field_history(history, "total", key="order_id", keys=["a", "b"],
                                 max_points=3)
    assert chart.data.select("key", "text").rows() == [("a", "7"), ("b", "5"), ("b", "9")]
    assert "the first 1 events left out" in chart.to_dict()["title"]["subtitle"]
    full = charts.field_history(history, "total", key="order_id", keys="a")  # one key as text
    assert full.data["text"][0] == "4,611,686,018,427,387,905"


def test_field_history_and_state_counts_name_what_cannot_be_drawn():
    history = order_history([100, 200])
    with pytest.raises(eventkit.ParameterError, match="no column 'totl'") as caught:
        charts.field_history(history, "totl", key="order_id", keys=["ö-1"])
    assert caught.value.param == "field"
    with pytest.raises(eventkit.ParameterError, match="no column 'order'") as caught:
        charts.field_history(history, "total", key="order", keys=["ö-1"])
    assert caught.value.param == "key"
    with pytest.raises(eventkit.ParameterError, match="'status' is String"):
        charts.field_history(history, "status", key="order_id", keys=["ö-1"])
    with pytest.raises(eventkit.ParameterError, match="'share' is Float64") as caught:
        charts.field_history(history, "share", key="order_id", keys=["ö-1"], money=True)
    assert caught.value.param == "money"
    with pytest.raises(eventkit.WorkbenchError, match="no events of order_id ö-2 in the"):
        charts.field_history(history, "total", key="order_id", keys=["ö-1", "ö-2"])
    with pytest.raises(eventkit.ParameterError, match="no column 'stage' in the state"):
        charts.state_counts(history, "stage")


def test_nothing_to_count_or_follow_is_a_sentence_the_marker_keeps():
    none = charts.field_history(order_history([100]), "total", key="order_id", keys=[])
    assert none == "No keys chosen: no total to draw."
    assert charts.as_of_marker(none, "2024-01-01") is none
    empty = charts.state_counts(order_history([]), "status", noun="orders")
    assert isinstance(empty, charts.Sentence)
    assert empty == "No orders to count by status."
    counts = charts.state_counts(pl.DataFrame({"status": ["paid", None, None]}), "status")
    assert counts.data.rows() == [("(none)", 2), ("paid", 1)]


def test_balance_history_names_a_history_or_accounts_it_cannot_draw(small):
    other = small.history.rename({"account_id": "customer"})
    with pytest.raises(eventkit.ParameterError, match="field_history") as caught:
        charts.balance_history(other, accounts=[1])
    assert caught.value.param == "history"
    with pytest.raises(eventkit.ParameterError, match="Int64") as caught:
        charts.balance_history(small.history, accounts=["x-1"])
    assert caught.value.param == "accounts"
    with pytest.raises(eventkit.ParameterError, match="positive whole number"):
        charts.balance_history(small.history, accounts=[1], max_points="100")
    keyed = small.history.with_columns(pl.col("account_id").cast(pl.String))
    chart = charts.balance_history(keyed, accounts=1)  # one id, given as a number
    assert chart.to_dict()["title"]["text"] == "Balance history of account 1"
