"""Commands: validated against the account's own stream, appended with a per-stream version."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from eventkit import CommandError, EventArchive, ParameterError, StaleVersionError
from eventkit.banking.commands import (
    account_state,
    close_account,
    deposit,
    open_account,
    set_overdraft_limit,
    transfer,
    withdraw,
)


@pytest.fixture
def bank(tmp_path: Path) -> EventArchive:
    archive = EventArchive.create(tmp_path / "bank")
    # Open two accounts and fund the first.
    open_account(archive, 1)
    open_account(archive, 2)
    deposit(archive, 1, 10_000)
    return archive


def test_story_open_deposit_withdraw_transfer(bank: EventArchive) -> None:
    # Withdraw within the balance; no overdraft before a limit is stored.
    withdraw(bank, 1, 4_000)
    with pytest.raises(CommandError, match="below the overdraft limit of 0"):
        withdraw(bank, 1, 6_500)
    # Store a limit (an event of the account's own), then overdraw within it.
    set_overdraft_limit(bank, 1, 1_000)
    assert account_state(bank, 1)["overdraft_limit"] == 1_000
    withdraw(bank, 1, 6_500)
    assert account_state(bank, 1)["balance"] == -500
    # Beyond the limit: refused, nothing written.
    before = len(bank)
    with pytest.raises(CommandError, match="below the overdraft limit of 1000") as info:
        withdraw(bank, 1, 600)
    assert info.value.account_id == 1 and len(bank) == before
    # A transfer is two legs in one commit.
    deposit(bank, 1, 2_000)
    receipt = transfer(bank, 1, 2, 1_500)
    assert receipt.rows == 2
    assert (account_state(bank, 1)["balance"], account_state(bank, 2)["balance"]) == (0, 1_500)
    assert bank.verify().ok


@pytest.mark.parametrize("command", [
    lambda a: deposit(a, 3, 100),
    lambda a: withdraw(a, 3, 100),
    lambda a: transfer(a, 1, 3, 100),
    lambda a: deposit(a, 1, 0),
    lambda a: deposit(a, 1, 1.5),
    lambda a: transfer(a, 1, 1, 100),
    lambda a: open_account(a, 1),
    lambda a: set_overdraft_limit(a, 1, -100),      # "keep at least 100" is not a limit
    lambda a: set_overdraft_limit(a, 3, 100),       # no such account
    lambda a: close_account(a, 1),                  # money still in it
    lambda a: withdraw(a, 1, 10_001),               # beyond the balance, no limit stored
])
def test_refused_commands_write_nothing(bank: EventArchive, command) -> None:
    version = bank.version
    with pytest.raises(CommandError):
        command(bank)
    assert bank.version == version


@pytest.mark.parametrize("command", [
    lambda a: deposit(a, "x", 100), lambda a: open_account(a, "new"),
    lambda a: transfer(a, 1, "two", 100),
])
def test_an_account_id_of_another_type_than_the_archives_is_named(bank: EventArchive,
                                                                   command) -> None:
    version = bank.version
    with pytest.raises(ParameterError, match=r"account_id holds Int64 values"):
        command(bank)
    assert bank.version == version


def test_a_command_never_goes_back_in_the_accounts_time(tmp_path: Path) -> None:
    # A backdated withdrawal, checked against today's balance, would overdraw the account
    # back then (balance -500 on 1 Feb, no limit); a naive time would be a guessed zone.
    archive = EventArchive.create(tmp_path / "bank")
    open_account(archive, 1, at=datetime(2024, 1, 1, tzinfo=UTC))
    deposit(archive, 1, 1_000, at=datetime(2024, 3, 1, tzinfo=UTC))
    version = archive.version
    with pytest.raises(CommandError, match="before the account's last event"):
        withdraw(archive, 1, 500, at=datetime(2024, 2, 1, tzinfo=UTC))
    with pytest.raises(CommandError, match="before the account's last event"):
        deposit(archive, 1, 5, at=datetime(2023, 12, 1, tzinfo=UTC))   # before it opened
    for naive in (datetime(2024, 4, 1), "2024-04-01T00:00:00", "2024-04-01"):
        with pytest.raises(CommandError, match="time zone"):
            deposit(archive, 1, 5, at=naive)
    assert archive.version == version
    withdraw(archive, 1, 500, at=datetime(2024, 3, 1, tzinfo=UTC))    # the same instant: after
    assert account_state(archive, 1)["balance"] == 500
    deposit(archive, 1, 5, at="2024-03-01T02:00:00+01:00")  # ISO text with a zone: an instant
    assert account_state(archive, 1)["last_event_time"] == datetime(2024, 3, 1, 1, tzinfo=UTC)


def test_no_events_on_a_closed_account(bank: EventArchive) -> None:
    import polars as pl

    bank.append(pl.DataFrame({"event_id": ["close-2"], "account_id": [2],
                              "event_type": ["AccountClosed"], "amount": [0],
                              "event_time": [datetime.now(UTC)]}))
    with pytest.raises(CommandError, match="account 2 is closed"):
        deposit(bank, 2, 100)
    with pytest.raises(CommandError, match="account 2 is closed"):
        transfer(bank, 1, 2, 100)
    with pytest.raises(CommandError, match="account 2 is closed"):
        set_overdraft_limit(bank, 2, 100)


def test_close_account_and_the_stored_limit_in_the_rules(bank: EventArchive) -> None:
    close_account(bank, 2)
    assert account_state(bank, 2)["status"] == "closed"
    with pytest.raises(CommandError, match="account 2 is closed"):
        close_account(bank, 2)
    # The banking rules honour a stored limit even for events appended behind the
    # commands' back: money out beyond it is a violation, never folded.
    import polars as pl

    set_overdraft_limit(bank, 1, 500)
    late = pl.DataFrame({"event_id": ["raw"], "account_id": [1], "event_type": ["Withdrawal"],
                         "amount": [10_600], "event_time": [datetime.now(UTC)]})
    bank.append(late)
    from eventkit import replay

    refused = replay(bank, "banking").violations().collect()
    assert refused["event_id"].to_list() == ["raw"]
    assert account_state(bank, 1)["balance"] == 10_000


def test_a_stale_command_gets_a_conflict_and_writes_nothing(bank: EventArchive) -> None:
    seen = bank.version
    assert account_state(bank, 1, version=seen)["balance"] == 10_000
    withdraw(bank, 1, 9_000)  # someone else acts first, on the same account
    with pytest.raises(StaleVersionError, match=f"not the expected {seen}.*stream 1") as info:
        withdraw(bank, 1, 9_000, expected_version=seen)  # valid at `seen`, not now
    assert (info.value.expected, info.value.actual) == (seen, seen + 1)
    assert account_state(bank, 1)["balance"] == 1_000


def test_unrelated_streams_never_conflict(bank: EventArchive) -> None:
    seen = bank.version
    deposit(bank, 2, 500)  # another account moves on
    withdraw(bank, 1, 1_000, expected_version=seen)  # still valid: account 1 did not change
    assert account_state(bank, 1)["balance"] == 9_000
    transfer(bank, 1, 2, 100, expected_version=seen + 2)  # read after the withdrawal
    deposit(bank, 1, 1)
    with pytest.raises(StaleVersionError, match="stream 1"):  # a transfer touches both
        transfer(bank, 2, 1, 100, expected_version=seen + 3)


def test_a_global_event_since_makes_every_stream_stale(bank: EventArchive) -> None:
    # A rate change (the bank's account 0) changes the interest every balance earns: a
    # command decided on state read before it must read again.
    seen = bank.version
    rate = pl.DataFrame({"event_id": ["rate-1"], "account_id": [0],
                         "event_type": ["InterestRateChanged"],
                         "event_time": [datetime.now(UTC)], "amount": [0], "rate": [0.05]})
    bank.append(rate)
    with pytest.raises(StaleVersionError, match="stream 0"):
        withdraw(bank, 1, 1_000, expected_version=seen)
    withdraw(bank, 1, 1_000, expected_version=bank.version)


def test_racing_commands_never_overdraw(bank: EventArchive) -> None:
    results: list[str] = []

    def spend() -> None:
        try:
            withdraw(bank, 1, 7_000)
            results.append("ok")
        except (StaleVersionError, CommandError) as exc:
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1
    assert account_state(bank, 1)["balance"] == 3_000
