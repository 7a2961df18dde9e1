"""Progress of long operations: shown after a delay when on, quiet in programs, one bar each.

The bar is tqdm's; these tests read what it writes (text on standard error outside a
kernel). ``eventkit.replay.progress.DELAY`` is set to 0 where a bar must appear at once; the
notebook test (in a real kernel, below) checks that the bar is a widget there and on by
default.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

import eventkit
from eventkit.replay import progress
from eventkit.replay.progress import Steps, progress_enabled, show_progress


@pytest.fixture
def events() -> pl.DataFrame:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    n = 200
    times = [t0 + timedelta(hours=i) for i in range(n)]
    return pl.DataFrame({
        "event_id": [f"e{i}" for i in range(n)], "seq": list(range(n)),
        "account_id": [i % 7 + 1 for i in range(n)],
        "event_type": ["Deposit" if i % 3 else "Withdrawal" for i in range(n)],
        "event_time": times, "recorded_at": times, "amount": [100 + i for i in range(n)]})


@pytest.fixture
def at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "DELAY", 0.0)


def test_quiet_by_default_outside_a_kernel(events, at_once, capsys):
    assert not progress_enabled()
    eventkit.replay(events).state().collect()
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("at_once")
def test_a_replay_names_its_steps_when_progress_is_on(events, capsys):
    with show_progress(True):
        eventkit.replay(events, "balance").state().collect()
    err = capsys.readouterr().err
    assert "replay (balance): reading and folding the events" in err
    assert "replay (balance): done" in err and "1/1 steps" in err


@pytest.mark.usefixtures("at_once")
def test_an_operation_inside_another_shows_no_bar_of_its_own(events, capsys, tmp_path):
    archive = eventkit.EventArchive.create(tmp_path / "bank")
    archive.append(events.drop("seq", "recorded_at"))
    with show_progress(True):
        eventkit.snapshot(archive, "balance")
        eventkit.compare(events, "banking", {"overdraft_fee": 100})
    err = capsys.readouterr().err
    assert "snapshot (balance): replaying the archive" in err
    assert "snapshot (balance): states at 1 checkpoints" in err
    assert "compare (banking and banking): folding under B" in err
    assert "replay (balance)" not in err and "replay (banking)" not in err  # nested: quiet


def test_quick_operations_print_nothing_even_when_on(events, capsys):
    assert progress.DELAY >= 1
    with show_progress(True):
        eventkit.replay(events).state().collect()
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("at_once")
def test_a_long_step_ticks_while_it_runs(capsys, monkeypatch):
    monkeypatch.setattr(progress, "TICK", 0.05)
    with show_progress(True), Steps("work", 2) as steps:
        steps.begin("one long step")
        threading.Event().wait(0.4)  # nothing calls the bar meanwhile: the ticker redraws it
    err = capsys.readouterr().err
    assert err.count("work: one long step") >= 3, err


@pytest.mark.usefixtures("at_once")
def test_a_failed_operation_leaves_its_bar_where_it_stopped(capsys):
    with pytest.raises(RuntimeError), show_progress(True), Steps("work", 3) as steps:
        steps.begin("first")
        steps.begin("second")
        raise RuntimeError
    err = capsys.readouterr().err
    assert "work: second" in err and "1/3" in err and "done" not in err


def test_a_with_block_restores_the_choice_and_other_threads_keep_theirs():
    seen = []
    show_progress(True)
    try:
        with show_progress(False):
            assert not progress_enabled()
            worker = threading.Thread(target=lambda: seen.append(progress_enabled()))
            worker.start()
            worker.join()
        assert progress_enabled()
    finally:
        show_progress(None)
    assert seen == [False]  # a new thread: automatic, and this is no kernel
    assert not progress_enabled()


@pytest.mark.usefixtures("at_once")
def test_the_command_line_shows_no_bar_when_stderr_is_not_a_terminal(capsys, events, tmp_path):
    from eventkit.workbench.cli import main

    events.write_parquet(tmp_path / "e.parquet")
    assert main(["replay", str(tmp_path / "e.parquet"), "--format", "csv"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.notebooks
def test_in_a_notebook_a_long_step_shows_a_widget_bar_by_default(kernel: str, tmp_path: Path,
                                                                   events):
    """In a kernel progress is on without being asked; charts.enable(interactive=False) is quiet."""
    events.write_parquet(tmp_path / "e.parquet")
    setup = ("import eventkit\nfrom eventkit.replay import progress\n"
             "progress.DELAY = 0\n")
    run = "eventkit.replay('e.parquet').state().collect().height"
    nb = new_notebook(cells=[new_code_cell(setup), new_code_cell(run),
                             new_code_cell("from eventkit import charts\n"
                                           "charts.enable(interactive=False)"),
                             new_code_cell(run)])
    NotebookClient(nb, kernel_name=kernel, timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = nb.cells[1].outputs
    bars = [o for o in shown if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(bars) == 1, shown
    assert "replay (balance)" in bars[0]["data"]["text/plain"]
    assert [o["data"]["text/plain"] for o in shown if o["output_type"] == "execute_result"] \
        == ["7"]
    assert all("widget-view" not in str(o) and o["output_type"] != "stream"
               for o in nb.cells[3].outputs), nb.cells[3].outputs  # a report run: no bar
    nbformat.validate(nb)
