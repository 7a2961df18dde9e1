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
    """The state table's rows, as the text of their cells."""
    return [re.findall(r"<td[^>]*>(.*?)</td>", row)
            for row in re.findall(r"<tr>(.*?)</tr>", ex.table.value) if "<td" in row]


def runs(ex: explore.Explorer) -> list[str]:
    return ex.chart.spec["layer"][0]["encoding"].get("color", {}).get("scale", {}).get("domain")


def test_first_view_shows_the_account_at_the_as_of_day(ex, events):
    spec = ex.chart.spec
    assert spec["title"]["text"] == "Balance history of account 3"
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line", "rule", "text"]
    assert "as of 2024-06-30 23:59 UTC" in json.dumps(spec["datasets"])
    assert "state as of 2024-06-30 23:59 UTC" in ex.table.value
    expected = eventkit.replay(events, "banking").as_of("2024-06-30").filter(
        pl.col("account_id") == 3).collect()
    assert cells(ex)[0][:3] == ["baseline", "3", f"{expected['balance'][0] / 100:,.2f}"]
    assert ex.status.value.startswith("account 3: ")


def test_moving_as_of_moves_the_marker_and_the_state_without_a_new_replay(ex):
    spec, table, view = spec_of(ex), ex.table.value, ex._view
    ex.as_of.value = date(2024, 1, 31)
    assert spec_of(ex) != spec
    assert "as of 2024-01-31 23:59 UTC" in spec_of(ex)
    assert ex.table.value != table and "state as of 2024-01-31" in ex.table.value
    assert ex._view.baseline is view.baseline  # same replay, another instant


def test_changing_the_account_replays_that_account(ex, events):
    ex.account.value = "42"
    assert ex.chart.spec["title"]["text"] == "Balance history of account 42"
    expected = eventkit.replay(events, "banking").as_of("2024-06-30").filter(
        pl.col("account_id") == 42).collect()
    assert cells(ex)[0][1:3] == ["42", f"{expected['balance'][0] / 100:,.2f}"]


def test_a_rate_shift_adds_the_scenario_line_and_row(ex, events):
    assert runs(ex) is None
    ex.rate.value = 1.5
    assert runs(ex) == ["baseline", "rate +1.50 pp"]
    assert ex.table.value.count("<tr>") == 3  # header, baseline, scenario
    view = ex._view
    shifted = explore.rate_scenario(eventkit.rules.get("banking"), rates_of(events), 1.5)
    full = eventkit.replay(events, shifted).as_of("2024-06-30").filter(
        pl.col("account_id") == 3).collect()
    assert view.state.filter(pl.col("run") == "rate +1.50 pp")["balance"].to_list() == \
        full["balance"].to_list()
    baseline, scenario = view.state["interest"].to_list()
    assert scenario > baseline
    ex.rate.value = 0.0
    assert runs(ex) is None


def test_rules_without_interest_disable_the_rate_control(ex):
    ex.rate.value = 1.0
    ex.rules.value = "balance"
    assert ex.rate.disabled
    assert runs(ex) is None  # no scenario: balance rules have no interest
    assert "<th>status</th>" not in ex.table.value
    ex.rules.value = "banking"
    assert not ex.rate.disabled and runs(ex) == ["baseline", "rate +1.00 pp"]


def test_typing_searches_every_id_and_unknown_ids_change_nothing(ex):
    spec = spec_of(ex)
    ex.account.value = "4"
    assert ex.account.options[0] == "4"
    assert len(ex.account.options) == explore.MAX_OPTIONS
    assert all(o.startswith("4") for o in ex.account.options)
    assert ex.chart.spec["title"]["text"] == "Balance history of account 4"
    ex.account.value = "3"
    assert spec_of(ex) == spec
    ex.account.value = "99999"
    assert ex.account.options == ()
    assert "no account 99999" in ex.status.value
    assert spec_of(ex) == spec  # the last good view stays


def test_account_search_is_fast_with_100k_accounts():
    n = 100_000
    t = datetime(2024, 1, 1, tzinfo=UTC)
    many = pl.DataFrame({"event_id": [f"e{i}" for i in range(n)], "seq": range(n),
                         "account_id": range(1, n + 1), "event_type": "Deposit",
                         "event_time": t, "recorded_at": t, "amount": 100})
    ex = eventkit.explorer(many, name="many", rules="balance", debounce=0)
    try:
        ex.account.value = "9876"
        assert ex.account.options == ("9876", *(f"9876{d}" for d in range(10)))
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
            return ex.refreshes - before, ex.table.value.count("state as of 2024-03-05")
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
