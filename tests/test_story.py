"""The README as one story: a bank's archive from generation to a view an auditor can query.

Each step is what a user types; each check is what they would look at. In the
manner of the eventsourcing library's bank-accounts example test.
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import UTC, datetime

import polars as pl
import pytest

import eventkit
from eventkit.banking import generate
from eventkit.rules.rates import bump_rates, rates_of


def test_a_bank_from_archive_to_view(tmp_path) -> None:
    # Generate a small synthetic bank as an eventkit archive.
    summary = generate(tmp_path / "bank", events=3_000, accounts=40, seed=11,
                       start=datetime(2023, 1, 1, tzinfo=UTC), end=datetime(2024, 1, 1, tzinfo=UTC))
    archive = eventkit.EventArchive(tmp_path / "bank")
    assert len(archive) == summary.events == 3_000

    # The archive proves nothing was changed behind its back.
    assert archive.verify().ok

    # Append a late deposit for account 7, dated in June, recorded today.
    late = pl.DataFrame({"event_id": ["late-1"], "account_id": [7], "event_type": ["Deposit"],
                         "event_time": [datetime(2023, 6, 15, tzinfo=UTC)], "amount": [12_345]})
    receipt = archive.append(late, batch_id="late-1")
    assert receipt.rows == 1 and archive.verify().ok

    # Replay everything with the banking rules: status, fees, interest.
    result = eventkit.replay(archive, "banking")
    state = result.state().collect()
    assert state.height == 40
    assert isinstance(result, eventkit.Replayed)

    # As of the end of June, account 7 has the late deposit in its balance...
    june = result.as_of("2023-06-30").filter(pl.col("account_id") == 7).collect()
    # ...but as the archive knew it before the late append, it has not.
    before = eventkit.replay(archive, "banking",
                             known_at=receipt_time(archive, receipt.version - 1))
    june_then = before.as_of("2023-06-30").filter(pl.col("account_id") == 7).collect()
    assert june["balance"].item() - june_then["balance"].item() >= 12_345

    # Snapshots make the same questions cheap, with the same answers.
    eventkit.snapshot(archive, "banking", every="1mo")
    again = eventkit.replay(archive, "banking").as_of("2023-06-30").collect()
    assert again.equals(result.as_of("2023-06-30").collect())

    # What if every rate had been one percentage point higher?
    higher = bump_rates(rates_of(archive.scan()), 1.0)
    diff = eventkit.compare(archive, "banking", {"rate_table": higher})
    totals = diff.totals()
    interest = totals.filter(pl.col("field") == "interest")
    assert interest["delta"].item() > 0  # customers earn more

    # Explain account 7's balance: every change, summing back to the value.
    why = eventkit.explain(result, 7, "balance")
    assert why.start + why.steps["change"].sum() == why.value
    assert "late-1" in why.steps["event_id"].to_list()

    # Keep the state in SQLite for a dashboard, then refresh it after one more append.
    url = f"sqlite:///{tmp_path / 'views.sqlite'}"
    eventkit.materialize(result, url)
    archive.append(pl.DataFrame({"event_id": ["late-2"], "account_id": [7],
                                 "event_type": ["Deposit"], "amount": [100],
                                 "event_time": [datetime(2023, 12, 1, tzinfo=UTC)]}))
    report = eventkit.refresh(url)
    assert report.new_events == 1
    with sqlite3.connect(tmp_path / "views.sqlite") as db:
        (stored,) = db.execute("SELECT balance FROM accounts_state WHERE account_id = 7").fetchone()
    assert stored == eventkit.replay(archive, "banking").state().filter(
        pl.col("account_id") == 7).collect()["balance"].item()


def receipt_time(archive: eventkit.EventArchive, version: int) -> datetime:
    """The transaction time the archive had reached at ``version``."""
    return archive.scan(version=version).select(pl.col("recorded_at").max()).collect().item()


@pytest.mark.parametrize("old", ["rulesets", "temporal", "lifecycle", "rates", "privacy",
                                 "upcast", "health", "generate"])
def test_the_readme_s_old_module_paths_still_import_with_a_warning(old: str) -> None:
    name = {"rulesets": "get", "temporal": "restatements", "lifecycle": "expire",
            "rates": "rates_of", "privacy": "KeyStore", "upcast": "Upcaster",
            "health": "snapshot_coverage", "generate": "read_labels"}[old]
    sys.modules.pop(f"eventkit.{old}", None)  # the warning comes with the (first) import
    with pytest.warns(DeprecationWarning, match=f"eventkit.{old} moved to"):
        module = __import__(f"eventkit.{old}", fromlist=[name])
    assert callable(getattr(module, name))


def test_import_eventkit_charts_is_the_workbench_s_chart_module() -> None:
    import eventkit.charts

    from eventkit.workbench import charts

    assert eventkit.charts is charts
    assert charts.__spec__ is not None and charts.__spec__.name == "eventkit.workbench.charts"
