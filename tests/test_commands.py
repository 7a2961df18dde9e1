"""Commands: validated against current state, appended with an expected version."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from eventkit import CommandError, EventArchive, StaleVersionError
from eventkit.banking.commands import account_state, deposit, open_account, transfer, withdraw


@pytest.fixture
def bank(tmp_path: Path) -> EventArchive:
    archive = EventArchive.create(tmp_path / "bank")
    # Open two accounts and fund the first.
    open_account(archive, 1)
    open_account(archive, 2)
    deposit(archive, 1, 10_000)
    return archive


def test_story_open_deposit_withdraw_transfer(bank: EventArchive) -> None:
    # Withdraw within the balance, then into an allowed overdraft.
    withdraw(bank, 1, 4_000)
    withdraw(bank, 1, 6_500, overdraft_limit=1_000)
    assert account_state(bank, 1)["balance"] == -500
    # Beyond the limit: refused, nothing written.
    before = len(bank)
    with pytest.raises(CommandError, match="below the overdraft limit of 1000") as info:
        withdraw(bank, 1, 600, overdraft_limit=1_000)
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
])
def test_refused_commands_write_nothing(bank: EventArchive, command) -> None:
    version = bank.version
    with pytest.raises(CommandError):
        command(bank)
    assert bank.version == version


def test_no_events_on_a_closed_account(bank: EventArchive) -> None:
    from datetime import UTC, datetime

    import polars as pl

    bank.append(pl.DataFrame({"event_id": ["close-2"], "account_id": [2],
                              "event_type": ["AccountClosed"], "amount": [0],
                              "event_time": [datetime.now(UTC)]}))
    with pytest.raises(CommandError, match="account 2 is closed"):
        deposit(bank, 2, 100)
    with pytest.raises(CommandError, match="account 2 is closed"):
        transfer(bank, 1, 2, 100)


def test_a_stale_command_gets_a_conflict_and_writes_nothing(bank: EventArchive) -> None:
    seen = bank.version
    assert account_state(bank, 1, version=seen)["balance"] == 10_000
    withdraw(bank, 1, 9_000)  # someone else acts first
    with pytest.raises(StaleVersionError, match=f"not the expected {seen}") as info:
        withdraw(bank, 1, 9_000, expected_version=seen)  # valid at `seen`, not now
    assert (info.value.expected, info.value.actual) == (seen, seen + 1)
    assert account_state(bank, 1)["balance"] == 1_000


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
