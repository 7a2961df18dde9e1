"""The write side of the banking domain: commands checked against each account's own stream.

A command reads the accounts it touches (a replay of just those keys with the
``banking`` rules, at the archive version it read), refuses what the state
forbids (:class:`~eventkit.exceptions.CommandError`: an unknown, unopened or
closed account, a withdrawal beyond the account's stored overdraft limit, a
negative limit, a time ``at`` (an aware datetime, or ISO text with a zone)
without a zone or before the account's last event: a command adds to the end
of its stream) and appends its events with that ``expected_version`` **per
stream**: if events of *those accounts*, or global ones (rate changes), were
appended since it read, nothing is written and
:class:`~eventkit.exceptions.StaleVersionError` says so (read again, retry);
events of other accounts never make it stale. Events go through
:meth:`EventArchive.append` and all its checks.

The overdraft limit is state like any other: :func:`set_overdraft_limit`
stores it as an ``OverdraftLimitSet`` event (validated: an open account, not
negative), the banking rules keep it in ``overdraft_limit`` and refuse money
out beyond it (``-1``: never set, no overdraft for commands).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import polars as pl

from eventkit.archive.table import AppendReceipt, EventArchive
from eventkit.exceptions import CommandError, InstantError
from eventkit.replay.api import replay
from eventkit.timeutil import to_instant

__all__ = ["account_state", "close_account", "deposit", "open_account", "set_overdraft_limit",
           "transfer", "withdraw"]


def account_state(archive: EventArchive, account_id: object, *, version: int | None = None
                  ) -> dict[str, object] | None:
    """The account's ``banking`` state at ``version`` (default: now), or ``None`` if unknown.

    Examples
    --------
    >>> import tempfile
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> _ = open_account(archive, 7)
    >>> account_state(archive, 7)["status"], account_state(archive, 8)
    ('open', None)

    """
    events = archive.scan(version=version)
    state = replay(events, "banking", keys=[account_id]).state().filter(
        pl.col("account_id") == account_id).collect()
    return state.row(0, named=True) if state.height else None


def open_account(archive: EventArchive, account_id: object, *, at: datetime | str | None = None,
                 expected_version: int | None = None) -> AppendReceipt:
    """Open ``account_id`` (which must not exist yet).

    Examples
    --------
    >>> import tempfile
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> open_account(archive, 1).rows
    1
    >>> open_account(archive, 1)
    Traceback (most recent call last):
    eventkit.CommandError: account 1 already exists (status open)

    """
    when = _when(at, account_id)
    version = _version(archive, expected_version)
    state = account_state(archive, account_id, version=version)
    if state is not None:
        msg = f"account {account_id} already exists (status {state['status']})"
        raise CommandError(msg, account_id=account_id)
    return _append(archive, [(account_id, "AccountOpened", 0, None)], when, version)


def deposit(archive: EventArchive, account_id: object, amount: int, *,
            at: datetime | str | None = None, expected_version: int | None = None) -> AppendReceipt:
    """Deposit ``amount`` cents into an open account.

    Examples
    --------
    >>> import tempfile
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> _ = open_account(archive, 1)
    >>> _ = deposit(archive, 1, 5_000)
    >>> account_state(archive, 1)["balance"]
    5000

    """
    when = _when(at, account_id)
    version = _version(archive, expected_version)
    _open(archive, account_id, version, when)
    _positive(amount, account_id)
    return _append(archive, [(account_id, "Deposit", amount, None)], when, version)


def withdraw(archive: EventArchive, account_id: object, amount: int, *,
             at: datetime | str | None = None, expected_version: int | None = None
             ) -> AppendReceipt:
    """Withdraw ``amount`` cents; the balance may not fall below the account's stored limit.

    Examples
    --------
    >>> import tempfile
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> _ = open_account(archive, 1)
    >>> withdraw(archive, 1, 100)
    Traceback (most recent call last):
    eventkit.CommandError: account 1: withdrawing 100 would leave -100, below ...
    >>> _ = set_overdraft_limit(archive, 1, 500)
    >>> _ = withdraw(archive, 1, 100)
    >>> account_state(archive, 1)["balance"]
    -100

    """
    when = _when(at, account_id)
    version = _version(archive, expected_version)
    state = _open(archive, account_id, version, when)
    _positive(amount, account_id)
    _covered(state, account_id, amount)
    return _append(archive, [(account_id, "Withdrawal", amount, None)], when, version)


def transfer(archive: EventArchive, from_id: object, to_id: object, amount: int, *,
             at: datetime | str | None = None, expected_version: int | None = None
             ) -> AppendReceipt:
    """Move ``amount`` cents between two open accounts: both legs in one commit.

    Examples
    --------
    >>> import tempfile
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> for a in (1, 2):
    ...     _ = open_account(archive, a)
    >>> _ = deposit(archive, 1, 1_000)
    >>> transfer(archive, 1, 2, 400).rows
    2
    >>> account_state(archive, 1)["balance"], account_state(archive, 2)["balance"]
    (600, 400)

    """
    if from_id == to_id:
        msg = f"account {from_id}: a transfer needs two different accounts"
        raise CommandError(msg, account_id=from_id)
    when = _when(at, from_id)
    version = _version(archive, expected_version)
    payer = _open(archive, from_id, version, when)
    _open(archive, to_id, version, when)
    _positive(amount, from_id)
    _covered(payer, from_id, amount)
    return _append(archive, [(from_id, "TransferOut", amount, to_id),
                             (to_id, "TransferIn", amount, from_id)], when, version)


def set_overdraft_limit(archive: EventArchive, account_id: object, limit: int, *,
                        at: datetime | str | None = None, expected_version: int | None = None
                        ) -> AppendReceipt:
    """Store how far (cents) the balance of an open account may go below zero; 0: none.

    A negative limit (which would mean "keep at least X") is refused, as is a
    limit the balance is already beyond.

    Examples
    --------
    >>> import tempfile
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> _ = open_account(archive, 1)
    >>> _ = set_overdraft_limit(archive, 1, 2_000)
    >>> account_state(archive, 1)["overdraft_limit"]
    2000
    >>> set_overdraft_limit(archive, 1, -100)
    Traceback (most recent call last):
    eventkit.CommandError: account 1: an overdraft limit is a whole number of cents >= 0, not -100

    """
    when = _when(at, account_id)
    version = _version(archive, expected_version)
    state = _open(archive, account_id, version, when)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        msg = (f"account {account_id}: an overdraft limit is a whole number of cents >= 0, "
               f"not {limit!r}")
        raise CommandError(msg, account_id=account_id)
    balance = int(state["balance"])  # type: ignore[call-overload]
    if balance < -limit:
        msg = (f"account {account_id}: the balance {balance} is already below a limit of "
               f"{limit}; bring it back first")
        raise CommandError(msg, account_id=account_id)
    return _append(archive, [(account_id, "OverdraftLimitSet", limit, None)], when, version)


def close_account(archive: EventArchive, account_id: object, *, at: datetime | str | None = None,
                  expected_version: int | None = None) -> AppendReceipt:
    """Close an open account whose balance is zero (move the money out first).

    Examples
    --------
    >>> import tempfile
    >>> archive = EventArchive.create(tempfile.mkdtemp() + "/bank")
    >>> _ = open_account(archive, 1)
    >>> _ = close_account(archive, 1)
    >>> account_state(archive, 1)["status"]
    'closed'
    >>> deposit(archive, 1, 100)
    Traceback (most recent call last):
    eventkit.CommandError: account 1 is closed; only open accounts take money events

    """
    when = _when(at, account_id)
    version = _version(archive, expected_version)
    state = _open(archive, account_id, version, when)
    if state["balance"] != 0:
        msg = (f"account {account_id}: the balance is {state['balance']}, not 0; withdraw or "
               "transfer it before closing")
        raise CommandError(msg, account_id=account_id)
    return _append(archive, [(account_id, "AccountClosed", 0, None)], when, version)


def _version(archive: EventArchive, expected: int | None) -> int:
    return archive.version if expected is None else expected


def _when(at: datetime | str | None, account_id: object) -> datetime:
    """When a command's events happen: ``at`` (an aware datetime or ISO text with a zone)."""
    if at is None:
        return datetime.now(UTC)
    if isinstance(at, str) and len(at.strip()) > 10:  # (a date alone names no instant)
        try:
            at = to_instant(at, param="at")
        except InstantError as exc:
            msg = f"account {account_id}: {exc} (eventkit never guesses a time zone)"
            raise CommandError(msg, account_id=account_id) from None
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        msg = (f"account {account_id}: at must be a datetime with a time zone, not {at!r} "
               "(eventkit never guesses one)")
        raise CommandError(msg, account_id=account_id)
    return at


def _open(archive: EventArchive, account_id: object, version: int, when: datetime
          ) -> dict[str, object]:
    """The state of an open account whose last event is not after ``when``.

    A command adds to the end of the account's stream: an event dated before
    the account's last one would change the history the state was checked
    against (a withdrawal overdrawing the account back then), so it is refused.
    """
    state = account_state(archive, account_id, version=version)
    if state is None or state["status"] != "open":
        why = "does not exist" if state is None else f"is {state['status']}"
        msg = f"account {account_id} {why}; only open accounts take money events"
        raise CommandError(msg, account_id=account_id)
    last = state["last_event_time"]
    if isinstance(last, datetime) and when < last:
        msg = (f"account {account_id}: a command at {when.isoformat()} would come before the "
               f"account's last event ({last.isoformat()}); commands only add to the end of "
               "an account's stream (append a Correction to restate the past)")
        raise CommandError(msg, account_id=account_id)
    return state


def _positive(amount: int, account_id: object) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        msg = f"account {account_id}: amount must be a positive whole number of cents, " \
              f"not {amount!r}"
        raise CommandError(msg, account_id=account_id)


def _covered(state: dict[str, object], account_id: object, amount: int) -> None:
    limit = max(int(state["overdraft_limit"]), 0)  # type: ignore[call-overload]  # -1: unset
    after = int(state["balance"]) - amount  # type: ignore[call-overload]
    if after < -limit:
        msg = (f"account {account_id}: withdrawing {amount} would leave {after}, below the "
               f"overdraft limit of {limit} (set_overdraft_limit stores another)")
        raise CommandError(msg, account_id=account_id)


def _append(archive: EventArchive, legs: list[tuple[object, str, int, object]],
            when: datetime, version: int) -> AppendReceipt:
    key = archive.schema["account_id"]
    batch = pl.DataFrame({
        "event_id": [f"cmd-{uuid.uuid4().hex}" for _ in legs],
        "account_id": [leg[0] for leg in legs], "event_type": [leg[1] for leg in legs],
        "event_time": [when] * len(legs), "amount": [leg[2] for leg in legs],
        "counterparty_id": [leg[3] for leg in legs],
    }, schema_overrides={"account_id": key, "counterparty_id": archive.schema.get(
        "counterparty_id", key), "event_time": pl.Datetime("us", "UTC")})
    return archive.append(batch, expected_version=version, conflicts="stream")
