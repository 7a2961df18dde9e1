"""The replay explorer without a browser: set widget values, check the chart and table follow."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import tracemalloc
import weakref
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from ipywidgets.widgets.widget import _instances

import eventkit
from eventkit.rules.rates import rates_of
from eventkit.workbench import explorer as explore


@pytest.fixture(scope="module")
def events(sample_archive: Path) -> pl.DataFrame:
    return eventkit.open_archive(sample_archive).collect()


@pytest.fixture
def ex(events: pl.DataFrame):
    made = eventkit.explorer(events, name="test", account=3, as_of="2024-06-30", rules="banking",
                             debounce=0)
    yield made
    made.close()


def spec_of(ex: explore.Explorer) -> str:
    return json.dumps(ex.chart.spec, sort_keys=True)


def cells(ex: explore.Explorer) -> list[list[str]]:
    """The state table's body rows, as the text of their cells."""
    body = ex.table.value.split("<tbody", 1)[1]
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row,
                                                                    flags=re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)]


def lines(ex: explore.Explorer) -> dict:
    return next(layer for layer in ex.chart.spec["layer"] if layer["mark"]["type"] == "line")


def runs(ex: explore.Explorer) -> list[str] | None:
    domain = lines(ex)["encoding"]["color"].get("scale", {}).get("domain")
    return domain if domain and domain[0] == "baseline" else None


def money(cents: int) -> str:
    return eventkit.charts.Currency().words(cents)


def test_first_view_shows_the_account_at_the_as_of_day(ex, events):
    spec = ex.chart.spec
    assert spec["title"]["text"] == "Balance history of account 3"
    assert [layer["mark"]["type"] for layer in spec["layer"]] == [
        "line", "rule", "point", "rect", "rule", "text"]
    assert "as of 2024-06-30 23:59 UTC" in json.dumps(spec)
    assert "State as of 2024-06-30 23:59 UTC" in ex.table.value
    expected = eventkit.replay(events, "banking").as_of("2024-06-30", accrued=True).filter(
        pl.col("account_id") == 3).collect()
    assert cells(ex)[0][:2] == ["baseline", money(expected["balance"][0])]
    assert ex.status.value.startswith("account 3 as of 2024-06-30 23:59 UTC: balance $")
    assert ex.difference.value == ""  # no scenario, no difference
    assert ex.date.value == date(2024, 6, 30)


def test_moving_as_of_moves_the_marker_and_the_state_without_a_new_replay(ex):
    spec, table, view = spec_of(ex), ex.table.value, ex._view
    ex.as_of.value = date(2024, 1, 31)
    assert spec_of(ex) != spec
    assert "as of 2024-01-31 23:59 UTC" in spec_of(ex)
    assert ex.table.value != table and "State as of 2024-01-31" in ex.table.value
    assert ex._view.baseline is view.baseline  # same replay, another instant
    assert ex.date.value == date(2024, 1, 31)  # the date picker follows the slider


def test_what_is_drawn_is_the_schema_valid_spec_of_the_views_chart(ex):
    """The explorer builds specs without Altair's checks (speed): the result must be what
    Altair's validated path gives, for a new account, a scenario and a moved instant."""
    def expected() -> dict:
        chart = ex.view.chart(currency=ex.currency, zone=ex.zone)
        chart["width"] = explore.CHART_WIDTH
        return chart.to_dict(validate=True)  # checked against the Vega-Lite schema

    assert ex.chart.spec == expected()
    ex.as_of.value = date(2024, 2, 29)
    assert ex.chart.spec == expected()
    ex.rate.value = 0.5
    ex.account.value = "42"
    assert ex.chart.spec == expected()
    assert len(ex.chart.spec["layer"]) == 6  # the what-if: lines, hover, marker


def test_the_table_of_a_kept_layout_is_great_tables_own(ex):
    """The state table reuses a Great Tables layout per shape: same page as a fresh one."""
    for day in (date(2024, 1, 31), date(2024, 6, 30)):
        ex.as_of.value = day
        view = ex.view
        fresh = view.table(currency=ex.currency, zone=ex.zone).as_raw_html()
        ids = re.compile(r'id="[a-z]{10}"|#[a-z]{10}\b')  # Great Tables' random table id
        assert ids.sub("", ex.table.value) == ids.sub("", fresh)


def test_the_date_picker_moves_the_slider_and_refuses_days_outside_the_archive(ex):
    ex.date.value = date(2024, 2, 29)
    assert ex.as_of.value == date(2024, 2, 29)
    assert "as of 2024-02-29 23:59 UTC" in spec_of(ex)
    spec = spec_of(ex)
    ex.date.value = date(1999, 1, 1)
    assert "1999-01-01 is outside the archive" in ex.status.value
    assert ex.date.value == ex.as_of.value == date(2024, 2, 29)
    assert spec_of(ex) == spec


def test_changing_the_account_replays_that_account(ex, events):
    ex.account.value = "42"
    assert ex.chart.spec["title"]["text"] == "Balance history of account 42"
    expected = eventkit.replay(events, "banking").as_of("2024-06-30", accrued=True).filter(
        pl.col("account_id") == 42).collect()
    assert cells(ex)[0][1] == money(expected["balance"][0])


def test_a_rate_shift_adds_the_scenario_line_row_and_difference(ex, events):
    assert runs(ex) is None
    ex.rate.value = 1.5
    assert runs(ex) == ["baseline", "rate +1.50 pp"]
    assert [row[0] for row in cells(ex)] == ["baseline", "rate +1.50 pp"]
    view = ex._view
    shifted = explore.rate_scenario(eventkit.rules.get("banking"), rates_of(events), 1.5)
    full = eventkit.replay(events, shifted).as_of("2024-06-30", accrued=True).filter(
        pl.col("account_id") == 3).collect()
    assert view.state.filter(pl.col("run") == "rate +1.50 pp")["balance"].to_list() == \
        full["balance"].to_list()
    baseline, scenario = view.state["interest"].to_list()
    assert scenario > baseline
    delta = view.difference()
    assert delta is not None and delta > 0
    assert money(delta) in ex.difference.value and "+" in ex.difference.value
    ex.rate.value = 0.0
    assert runs(ex) is None
    assert ex.difference.value == ""


def test_rules_without_interest_reset_and_disable_the_rate_control(ex):
    ex.rate.value = 1.0
    ex.rules.value = "balance"
    assert ex.rate.disabled and ex.rate.value == 0.0  # what is shown is what is drawn
    assert runs(ex) is None  # no scenario: balance rules have no interest
    ex.rules.value = "banking"
    assert not ex.rate.disabled and runs(ex) is None  # the scenario does not come back


def test_typing_only_suggests_and_a_committed_choice_replays(ex):
    spec = spec_of(ex)
    for typed in ("1", "13", "137"):  # key by key: suggestions, never a replay
        ex.account.text = typed
        assert all(o.startswith(typed) for o in ex.account.options)
        assert spec_of(ex) == spec
    assert len(explore.Explorer._matching(ex, "4")) == explore.MAX_OPTIONS
    ex.account.value = "137"  # Enter
    assert ex.chart.spec["title"]["text"] == "Balance history of account 137"
    assert "eventkit-unknown" not in ex.view_box._dom_classes


def test_an_unknown_account_greys_the_view_out_and_says_so(ex):
    spec = spec_of(ex)
    ex.account.value = "99999"
    assert "no account 99999" in ex.status.value
    assert "eventkit-unknown" in ex.view_box._dom_classes
    assert spec_of(ex) == spec  # the last view stays, greyed out
    ex.account.value = "4"
    assert "eventkit-unknown" not in ex.view_box._dom_classes
    assert ex.chart.spec["title"]["text"] == "Balance history of account 4"


def test_a_computation_overtaken_by_a_newer_one_is_never_drawn(events):
    async def story() -> tuple[str, int, list[str]]:
        ex = eventkit.explorer(events, name="overtaken", account=3, debounce=0.01)
        drawn: list[str] = []
        ex.chart.observe(lambda c: drawn.append(c["new"]["title"]["text"]), "spec")
        try:
            for typed in ("1", "13", "137"):  # each committed, faster than a replay
                ex.account.value = typed
                await asyncio.sleep(0.02)
            for _ in range(200):
                await asyncio.sleep(0.05)
                if ex.view.account == 137:
                    break
            return ex.chart.spec["title"]["text"], ex.dropped, drawn
        finally:
            ex.close()

    title, dropped, drawn = asyncio.run(story())
    assert title == "Balance history of account 137"
    assert drawn == ["Balance history of account 137"]  # 1 and 13 were never drawn
    assert dropped >= 1


def test_account_search_is_fast_with_100k_accounts():
    n = 100_000
    t = datetime(2024, 1, 1, tzinfo=UTC)
    many = pl.DataFrame({"event_id": [f"e{i}" for i in range(n)], "seq": range(n),
                         "account_id": range(1, n + 1), "event_type": "Deposit",
                         "event_time": t, "recorded_at": t, "amount": 100})
    ex = eventkit.explorer(many, name="many", rules="balance", debounce=0)
    try:
        ex.account.text = "9876"
        assert ex.account.options == ["9876", *(f"9876{d}" for d in range(10))]
        ex.account.value = "9876"
        assert ex.chart.spec["title"]["text"] == "Balance history of account 9876"
    finally:
        ex.close()


def test_changes_are_debounced_into_one_recomputation(events):
    async def story() -> tuple[int, int]:
        ex = eventkit.explorer(events, name="debounced", account=3, debounce=0.05)
        try:
            before = ex.refreshes
            for day in (1, 2, 3, 4, 5):  # a slider dragged over five days
                ex.as_of.value = date(2024, 3, day)
            await asyncio.sleep(0.3)
            for _ in range(100):  # computed off the event loop
                await asyncio.sleep(0.05)
                if ex.refreshes > before:
                    break
            return ex.refreshes - before, ex.table.value.count("State as of 2024-03-05")
        finally:
            ex.close()

    assert asyncio.run(story()) == (1, 1)


def observers(widgets_by_id: dict) -> int:
    return sum(len(handlers) for w in widgets_by_id.values()
               for per_type in w._trait_notifiers.values() for handlers in per_type.values())


def test_rerunning_the_cell_leaves_no_widgets_observers_or_memory_behind(events):
    eventkit.explorer(events, name="rerun", debounce=0)  # warm-up: imports, caches
    gc.collect()
    widgets, handlers = len(_instances), observers(_instances)
    tracemalloc.start()
    try:
        first = tracemalloc.take_snapshot()
        olds = []
        for _ in range(10):  # the cell run ten more times
            olds.append(weakref.ref(eventkit.explorer(events, name="rerun", debounce=0)))
        gc.collect()
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(first, "filename"))
    finally:
        tracemalloc.stop()
    assert (len(_instances), observers(_instances)) == (widgets, handlers)
    assert sum(ref() is not None for ref in olds) == 1  # only the one on screen is alive
    assert grown < 2_000_000, f"{grown:,} bytes more after ten re-runs"
    explore._LIVE.pop("rerun").close()
    assert len(_instances) < widgets


def test_account_view_refuses_an_account_without_events(events):
    with pytest.raises(eventkit.EventDataError, match="account 123456 has no events"):
        eventkit.account_view(events, 123456, "2024-06-30")


def text_keyed(ids: list[str]) -> pl.DataFrame:
    times = [datetime(2024, 1, d + 1, tzinfo=UTC) for d in range(len(ids))]
    return pl.DataFrame({"event_id": [f"e{i}" for i in range(len(ids))],
                         "seq": list(range(len(ids))), "account_id": ids,
                         "event_type": ["Deposit"] * len(ids), "event_time": times,
                         "recorded_at": times, "amount": [1_875] * len(ids)})


def test_text_ids_are_shown_as_text_never_as_markup():
    ex = eventkit.explorer(text_keyed(["<img src=x onerror=alert(1)>", "a&b"]),
                           name="markup", rules="balance", debounce=0, currency="BHD")
    try:
        assert "&lt;img src=x onerror=alert(1)&gt;" in ex.status.value
        assert "<img" not in ex.status.value
        ex.account.value = "a&b"
        assert ex.status.value.startswith("account a&amp;b as of 2024-01-02 23:59 UTC: "
                                          "balance BHD 1.875.")
    finally:
        ex.close()


def test_an_account_or_events_the_explorer_cannot_show_are_named():
    with pytest.raises(eventkit.EventDataError, match="no account 'x-9' in the events"):
        eventkit.explorer(text_keyed(["x-1"]), name="unknown", account="x-9", debounce=0)
    orders = text_keyed(["o-1"]).rename({"account_id": "order_id"})
    with pytest.raises(eventkit.EventDataError, match="no account_id .columns: event_id, seq, "
                                                      "order_id"):
        eventkit.explorer(orders, name="orders", rules="balance", debounce=0)


@pytest.mark.parametrize("currency", [None, "USD", "JPY", "BHD"])
def test_money_keeps_the_archives_own_minor_digits_in_any_currency(tmp_path, currency):
    archive = eventkit.EventArchive.create(tmp_path / "mils", minor_digits=3)
    archive.append(text_keyed(["m-1", "m-1"]).select(
        "event_type", "event_time", account_id=pl.lit(1), amount=pl.Series(["12.345", "0.005"])),
        mapping={"amount_unit": "major", "minor_digits": 3})
    ex = eventkit.explorer(archive.path, name="mils", rules="balance", debounce=0,
                           currency=currency)
    try:
        symbol = {None: "$", "USD": "$", "JPY": "¥", "BHD": "BHD "}[currency]
        assert f"balance {symbol}12.350." in ex.status.value
    finally:
        ex.close()
