"""Deterministic synthetic bank archives of any size.

The generated bank: accounts ``1..accounts`` open (ids in opening order) at
random times in the first 70 % of ``[start, end)``; each has a lognormal
activity weight, so a few accounts are busy and most are quiet. Once its
opening is recorded an account receives deposits, withdrawals, fees and
transfers (two adjacent legs, ``TransferOut`` on the payer and ``TransferIn`` on
the payee, same amount and times) at a rate proportional to its weight. About
3 % of the accounts close in the last 10 % of the period and get nothing
afterwards. The bank (account ``0``) changes its interest rate every one to
three months, the first time at ``start``. About 0.1 % of the events are late
``Correction`` events: a small signed amount recorded one to thirty days after
its ``event_time``; every other event is recorded 0-5 s after it happened.

Events are produced window by window over transaction time, so memory stays
flat whatever the size: each window's rows are drawn, sorted by
``recorded_at`` and numbered with the global ``seq``. The data is a pure
function of the arguments; note that ``chunk_events`` sets the windows, so a
different chunk size gives a different (equally valid) bank.

With ``patterns=`` the log also holds labelled instances of the built-in
patterns (see :mod:`eventkit.banking.injection`) on accounts of their own, numbered
after the bank's, with event ids ``p000000000000``, ...; :func:`generate`
writes their labels to ``<path>/_eventkit/labels.parquet``
(:func:`read_labels`). The bank's own events are exactly those of the same
call without ``patterns`` (same event ids, same order); only ``seq`` differs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from eventkit.archive.buckets import check_buckets
from eventkit.archive.ledger import PRIVATE_DIR
from eventkit.archive.table import EventArchive
from eventkit.banking.injection import Injection, plan
from eventkit.exceptions import ArchiveError, ParameterError, ScaleError, foreign_errors
from eventkit.questions.patterns import Thresholds
from eventkit.schema import BANK_ACCOUNT, CANONICAL_SCHEMA, EVENT_TYPES, TIME_DTYPE

__all__ = ["LABELS_FILE", "GenerateSummary", "generate", "generate_chunks", "read_labels"]

_DEFAULT_START = datetime(2023, 1, 1, tzinfo=UTC)
_DEFAULT_END = datetime(2026, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = 1_000_000  # timestamps are integer microseconds since the epoch
_DAY = 86_400 * _SECOND

_MAX_LATENCY = 5 * _SECOND  # recorded_at - event_time of an ordinary event
_CORRECTION_DELAY = (1 * _DAY, 30 * _DAY)
_RATE_GAP = (30 * _DAY, 92 * _DAY)
_OPEN_UNTIL = 0.7  # accounts open in this first share of the period...
_CLOSE_FROM = 0.9  # ...and the closing ones close after this share
_CLOSE_SHARE = 0.03
_TRANSFER_SHARE = 0.21  # share of rows that are transfer legs
_SINGLE_SHARE = {"Deposit": 0.35, "Withdrawal": 0.30, "Fee": 0.139, "Correction": 0.001}
#: Lognormal amount in cents per event type: (median, sigma).
_AMOUNT = {
    "Deposit": (20_000, 1.1),
    "Withdrawal": (8_000, 1.0),
    "Fee": (300, 0.6),
    "TransferOut": (10_000, 1.2),
    "Correction": (2_000, 0.8),
}
_NEGATIVE_CORRECTION = 0.7
_TICKETS = 4  # an account's activity weight is ceil(_TICKETS * lognormal(0, 1)) tickets
_GRID = 20_000  # cells of the piecewise-linear activity curve

_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}
_TYPE_NAMES = pl.Series(EVENT_TYPES, dtype=pl.String)
_SINGLE_CODES = np.array([_CODE[name] for name in _SINGLE_SHARE], np.int8)
_SINGLE_P = np.array(list(_SINGLE_SHARE.values())) / sum(_SINGLE_SHARE.values())
_MEDIAN, _SIGMA = np.array([_AMOUNT.get(name, (0, 0.0)) for name in EVENT_TYPES]).T
_NEVER = np.iinfo(np.int64).max

#: Where :func:`generate` writes the labels of injected pattern instances, under its path.
LABELS_FILE = f"{PRIVATE_DIR}/labels.parquet"


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate` wrote.

    ``files`` counts the Parquet data files, ``bytes`` is the size of
    everything under ``path`` (for an archive: data and log). ``events`` and
    ``accounts`` include injected pattern instances; ``labels`` is their
    label file, or None without ``patterns``.
    """

    path: Path
    events: int
    accounts: int
    files: int
    bytes: int
    seconds: float
    labels: Path | None = None


def generate_chunks(
    *,
    events: int,
    accounts: int,
    seed: int = 0,
    start: datetime = _DEFAULT_START,
    end: datetime = _DEFAULT_END,
    chunk_events: int = 1_000_000,
    patterns: bool | Thresholds = False,
) -> Iterator[pl.DataFrame]:
    """Generate a synthetic bank's event log as canonical frames in log order.

    The arguments are checked at once; the frames are made lazily, one time
    window (about ``chunk_events`` rows) at a time.

    Parameters
    ----------
    events
        Total number of rows; at least ``2 * accounts`` plus the number of
        rate changes between ``start`` and ``end``.
    accounts
        Number of customer accounts, at least 1 (transfers need 2).
    seed
        Non-negative seed: the same arguments give identical frames.
    start, end
        Timezone-aware bounds of every ``event_time`` and ``recorded_at``
        (``end`` excluded); at least one day apart.
    chunk_events
        Rows per frame, about. It also sets the time windows, so changing it
        changes the data.
    patterns
        ``True`` (the default :class:`~eventkit.questions.patterns.Thresholds`) or
        thresholds: add ``max(2, events // 5000)`` labelled instances of each
        built-in pattern, beyond ``events`` rows (see :func:`generate`).

    Returns
    -------
    Iterator[pl.DataFrame]
        Frames with exactly the columns and dtypes of ``CANONICAL_SCHEMA``,
        sorted by ``recorded_at``, ``seq`` numbering the rows of the whole log
        from 0.

    Raises
    ------
    ValueError
        A parameter is out of range; the message names it.

    Examples
    --------
    >>> frames = list(generate_chunks(events=2_000, accounts=50, seed=1, chunk_events=1_000))
    >>> len(frames), sum(f.height for f in frames)
    (2, 2000)
    >>> frames[0].schema == pl.Schema(CANONICAL_SCHEMA)
    True
    >>> frames[1]["seq"][0] == frames[0].height
    True

    """
    bank, injection = _prepare(events, accounts, seed, start, end, chunk_events, patterns=patterns)
    return _frames(bank, events, -(-events // chunk_events), seed, injection)


def _prepare(events: int, accounts: int, seed: int, start: datetime, end: datetime,
             chunk_events: int, *, patterns: bool | Thresholds
             ) -> tuple[_Bank, Injection | None]:
    """Check the arguments; draw the bank and plan the injected instances (if any)."""
    t_start, t_end = _check_params(accounts, seed, start, end, chunk_events)
    bank = _Bank.draw(_rng(seed, 0), accounts, t_start, t_end)
    minimum = 2 * accounts + bank.rate_changes
    if events < minimum:
        msg = (f"must be >= {minimum} (2 per account plus {bank.rate_changes} rate "
               f"changes) for {accounts} accounts, got {events}")
        raise ParameterError(msg, param="events")
    if patterns is False:
        return bank, None
    thresholds = patterns if isinstance(patterns, Thresholds) else Thresholds()
    return bank, plan(_rng(seed, 2), events=events, first_account=accounts + 1, start=t_start,
                      end=t_end, thresholds=thresholds)


@foreign_errors(ArchiveError, "generate {0}")
def generate(
    path: str | Path,
    *,
    events: int,
    accounts: int,
    seed: int = 0,
    start: datetime = _DEFAULT_START,
    end: datetime = _DEFAULT_END,
    chunk_events: int = 1_000_000,
    format: Literal["delta", "parquet"] = "delta",
    progress: bool = False,
    buckets: int | None = None,
    patterns: bool | Thresholds = False,
) -> GenerateSummary:
    """Write a synthetic bank's event log (see :func:`generate_chunks`) to ``path``.

    Parameters
    ----------
    path
        New or empty folder to write into.
    events, accounts, seed, start, end, chunk_events
        As for :func:`generate_chunks`.
    format
        ``"delta"``: an eventkit :class:`~eventkit.archive.table.EventArchive`, one
        append per chunk (``recorded_at`` kept). ``"parquet"``: plain files
        ``part-00000.parquet``, ``part-00001.parquet``, ... (zstd), one per chunk.
    progress
        Show a progress bar over the events written.
    buckets
        For ``"delta"``: a bucketed archive of that many account buckets
        (see :mod:`eventkit.archive.buckets`), for replays one bucket at a time.
    patterns
        As for :func:`generate_chunks`; the labels go to ``path/_eventkit/labels.parquet``
        (:func:`read_labels`), written last.

    Returns
    -------
    GenerateSummary
        The path, sizes and wall-clock seconds of the run.

    Raises
    ------
    ValueError
        A parameter is out of range; for ``"delta"``, also an ``end`` in the future.
    eventkit.exceptions.ArchiveError
        ``path`` exists and is not an empty folder.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     summary = generate(f"{tmp}/bank", events=3_000, accounts=100, format="parquet")
    ...     pl.read_parquet(f"{tmp}/bank/*.parquet").height
    3000
    >>> summary.events, summary.files
    (3000, 1)

    """
    if format not in ("delta", "parquet"):
        msg = f"must be 'delta' or 'parquet', got {format!r}"
        raise ParameterError(msg, param="format")
    if buckets is not None:
        check_buckets(buckets)
        if format != "delta":
            msg = "buckets need format='delta' (an eventkit archive)"
            raise ScaleError(msg, param="buckets")
    root = Path(path)
    began = time.perf_counter()
    bank, injection = _prepare(events, accounts, seed, start, end, chunk_events, patterns=patterns)
    chunks = _frames(bank, events, -(-events // chunk_events), seed, injection)
    if format == "delta" and end > datetime.now(UTC):
        msg = f"must not lie in the future for format='delta' (archives refuse it), got {end}"
        raise ParameterError(msg, param="end")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        msg = f"{root} exists and is not an empty folder; choose a new folder"
        raise ArchiveError(msg, path=str(root))
    if format == "delta":
        archive = EventArchive.create(root, buckets=buckets)
    else:
        root.mkdir(parents=True, exist_ok=True)
    extra = 0 if injection is None else injection.events.height
    with tqdm(total=events + extra, unit="events", unit_scale=True,
              disable=not progress) as bar:
        for part, chunk in enumerate(_ahead(chunks)):
            if format == "delta":
                archive.append(chunk.drop("seq"), recorded_at="keep")
            else:
                chunk.write_parquet(root / f"part-{part:05d}.parquet", compression="zstd")
            bar.update(chunk.height)
    labels = None
    if injection is not None:
        labels = root / LABELS_FILE
        labels.parent.mkdir(exist_ok=True)
        injection.labels.write_parquet(labels)
    seconds = time.perf_counter() - began
    return GenerateSummary(
        path=root,
        events=events + extra,
        accounts=accounts + (0 if injection is None else injection.accounts),
        files=len(list(root.glob("*.parquet"))),
        bytes=sum(f.stat().st_size for f in root.rglob("*") if f.is_file()),
        seconds=seconds,
        labels=labels,
    )


def read_labels(path: str | Path) -> pl.DataFrame:
    """The labels of the pattern instances :func:`generate` injected at ``path``.

    One row per instance: ``pattern`` (a name of
    :data:`eventkit.questions.patterns.BUILTINS`), ``instance``, ``accounts``,
    ``event_ids`` (its events in time order: the first starts the alert its
    detector raises, the last ends it), ``start_time``, ``end_time``.

    Raises
    ------
    eventkit.exceptions.ArchiveError
        ``path`` holds no labels (generated without ``patterns``).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = generate(f"{tmp}/bank", events=3_000, accounts=100, patterns=True)
    ...     read_labels(f"{tmp}/bank")["pattern"].value_counts().height
    4

    """
    file = Path(path) / LABELS_FILE
    if not file.is_file():
        msg = f"{path} has no pattern labels ({LABELS_FILE}); generate it with patterns=True"
        raise ArchiveError(msg, path=str(path))
    return pl.read_parquet(file)


def _ahead(chunks: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """Yield ``chunks``, making the next one in a worker thread while the caller writes."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        upcoming = worker.submit(next, chunks, None)
        while (chunk := upcoming.result()) is not None:
            upcoming = worker.submit(next, chunks, None)
            yield chunk


def _check_params(
    accounts: int, seed: int, start: datetime, end: datetime, chunk_events: int
) -> tuple[int, int]:
    """Validate the parameters ``events`` does not depend on; return start, end in µs."""
    if accounts < 1:
        msg = f"must be >= 1, got {accounts}"
        raise ParameterError(msg, param="accounts")
    if seed < 0:
        msg = f"must be >= 0, got {seed}"
        raise ParameterError(msg, param="seed")
    if chunk_events < 1:
        msg = f"must be >= 1, got {chunk_events}"
        raise ParameterError(msg, param="chunk_events")
    for name, value in (("start", start), ("end", end)):
        if value.utcoffset() is None:
            msg = f"must be timezone-aware, got {value!r}"
            raise ParameterError(msg, param=name)
    if end - start < timedelta(days=1):
        msg = f"must be at least one day after start, got start={start} end={end}"
        raise ParameterError(msg, param="end")
    return _micros(start), _micros(end)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Independent generator number ``key`` of ``seed``: 0 for the bank, (1, k) for window k."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(frozen=True)
class _Bank:
    """Everything drawn once: accounts, closures, rate changes, the activity curve.

    Its size is O(accounts); account ``i + 1`` is at index ``i`` of the arrays.
    """

    live_from: np.ndarray  # sorted: time from which the account may have events
    owner: np.ndarray  # activity tickets: account i + 1 holds weight[i] consecutive ones
    tickets: np.ndarray  # tickets[k]: number of tickets of the first k accounts
    close_at: np.ndarray  # closing event_time, _NEVER if the account stays open
    fixed: dict[str, np.ndarray]  # openings, closings, rate changes, sorted by recorded_at
    grid: np.ndarray  # times (float µs) ...
    curve: np.ndarray  # ... and the share of the activity recorded before each
    begin: int  # activity is recorded from here on, late enough to find a live account
    transfer_share: float

    @property
    def rate_changes(self) -> int:
        return int(np.count_nonzero(self.fixed["code"] == _CODE["InterestRateChanged"]))

    @classmethod
    def draw(cls, rng: np.random.Generator, accounts: int, start: int, end: int) -> _Bank:
        period = end - start
        opened = np.sort(rng.integers(start, start + int(period * _OPEN_UNTIL), accounts))
        weight = np.ceil(_TICKETS * rng.lognormal(0.0, 1.0, accounts)).astype(np.int64)
        # The first `keep` accounts never close, so some account is always live.
        keep = min(2, accounts)
        closing = rng.permutation(np.arange(keep, accounts))[: round(accounts * _CLOSE_SHARE)]
        close_at = np.full(accounts, _NEVER)
        close_at[closing] = rng.integers(start + int(period * _CLOSE_FROM), end - _MAX_LATENCY,
                                         len(closing))
        gaps = rng.integers(*_RATE_GAP, period // _RATE_GAP[0] + 1)
        rate_at = start + np.concatenate([[0], np.cumsum(gaps)])
        rate_at = rate_at[rate_at < end - _MAX_LATENCY]
        steps = rng.choice([-0.005, -0.0025, 0.0025, 0.005], len(rate_at) - 1)
        rate = np.clip(rng.choice([0.01, 0.015, 0.02, 0.025, 0.03]) + np.cumsum([0, *steps]),
                       0.0, 0.08).round(4)

        ids = np.arange(1, accounts + 1)
        event_time = np.concatenate([opened, close_at[closing], rate_at])
        fixed = {
            "event_time": event_time,
            "recorded_at": event_time + rng.integers(0, _MAX_LATENCY + 1, len(event_time)),
            "account": np.concatenate([ids, ids[closing], np.full(len(rate_at), BANK_ACCOUNT)]),
            "counterparty": np.zeros(len(event_time), np.int64),
            "code": np.repeat(np.array([_CODE["AccountOpened"], _CODE["AccountClosed"],
                                        _CODE["InterestRateChanged"]], np.int8),
                              [accounts, len(closing), len(rate_at)]),
            "amount": np.zeros(len(event_time), np.int64),
            "rate": np.concatenate([np.full(accounts + len(closing), np.nan), rate]),
        }
        order = np.argsort(fixed["recorded_at"], kind="stable")
        fixed = {name: column[order] for name, column in fixed.items()}

        # Activity is recorded from `begin` on (late enough for an event time after the
        # first accounts went live) at a rate proportional to the opened accounts' tickets.
        live_from = opened + _MAX_LATENCY
        owner = np.repeat(ids.astype(np.int32), weight)
        tickets = np.concatenate([[0], np.cumsum(weight)])
        begin = int(live_from[keep - 1]) + _MAX_LATENCY + 1
        grid = np.union1d(np.linspace(start, end, _GRID + 1), [begin])
        middle = (grid[:-1] + grid[1:]) / 2
        density = np.where(middle > begin,
                           tickets[np.searchsorted(live_from, middle)], 0.0)
        curve = np.concatenate([[0.0], np.cumsum(density * np.diff(grid))])
        return cls(live_from, owner, tickets, close_at, fixed, grid, curve / curve[-1], begin,
                   _TRANSFER_SHARE if accounts > 1 else 0.0)

    def bounds(self, events: int, windows: int) -> tuple[np.ndarray, np.ndarray]:
        """Window bounds (µs) holding about equally many rows, and activity rows before each."""
        activity = events - len(self.fixed["code"])
        expected = activity * self.curve + np.searchsorted(self.fixed["recorded_at"], self.grid)
        inner = np.floor(np.interp(events * np.arange(1, windows) / windows, expected, self.grid))
        bounds = np.concatenate([[self.grid[0]], inner, [self.grid[-1]]]).astype(np.int64)
        before = np.rint(activity * np.interp(bounds, self.grid, self.curve)).astype(np.int64)
        return bounds, before

    def pick(
        self,
        rng: np.random.Generator,
        event_time: np.ndarray,
        recorded_at: np.ndarray,
        other: np.ndarray | None = None,
    ) -> np.ndarray:
        """Account ids, by tickets, live at ``event_time`` and still open at ``recorded_at``.

        With ``other``, each pick differs from ``other`` (the payer of a transfer).
        """
        tickets = self.tickets[np.searchsorted(self.live_from, event_time)]
        picked = np.empty(len(event_time), np.int64)
        todo = np.arange(len(event_time))
        while todo.size:  # redraw the few picks that hit a closed account
            drawn = self.owner[(rng.random(todo.size) * tickets[todo]).astype(np.int64)]
            picked[todo] = drawn
            bad = self.close_at[drawn - 1] <= recorded_at[todo]
            if other is not None:
                bad |= drawn == other[todo]
            todo = todo[bad]
        return picked


def _frames(bank: _Bank, events: int, windows: int, seed: int,
            injection: Injection | None = None) -> Iterator[pl.DataFrame]:
    bounds, before = bank.bounds(events, windows)
    fixed_cut = np.searchsorted(bank.fixed["recorded_at"], bounds)
    injected = injection.events if injection is not None else None
    extra_cut = (np.zeros(len(bounds), np.int64) if injected is None else np.searchsorted(
        injected["recorded_at"].dt.epoch("us").to_numpy(), bounds))
    seq = shift = 0  # the bank's own rows so far (their ids), injected rows so far
    for k in range(windows):
        activity = int(before[k + 1] - before[k])
        extra = int(extra_cut[k + 1] - extra_cut[k])
        if fixed_cut[k] == fixed_cut[k + 1] and activity == 0 and extra == 0:
            continue
        fixed = {name: col[fixed_cut[k]: fixed_cut[k + 1]] for name, col in bank.fixed.items()}
        frame = _log(fixed, _activity(bank, _rng(seed, 1, k), bounds[k], bounds[k + 1], activity),
                     seq)
        seq += frame.height
        if extra:
            assert injected is not None
            frame = pl.concat([frame.drop("seq"), injected.slice(int(extra_cut[k]), extra)]).sort(
                "recorded_at", maintain_order=True).with_row_index("seq", seq - frame.height + shift
            ).with_columns(pl.col("seq").cast(pl.Int64)).select(list(CANONICAL_SCHEMA))
            shift += extra
        yield frame


def _activity(
    bank: _Bank, rng: np.random.Generator, low: int, high: int, rows: int
) -> dict[str, np.ndarray]:
    """``rows`` activity rows recorded in ``[low, high)``: one slot per row, two per transfer."""
    transfers = rng.binomial(rows // 2, bank.transfer_share)
    singles = rows - 2 * transfers
    code = rng.permutation(np.concatenate([rng.choice(_SINGLE_CODES, singles, p=_SINGLE_P),
                                           np.full(transfers, _CODE["TransferOut"], np.int8)]))
    share = np.interp([low, high], bank.grid, bank.curve)
    at = np.interp(np.sort(rng.uniform(share[0], share[1], len(code))), bank.curve, bank.grid)
    recorded_at = np.clip(np.floor(at).astype(np.int64), max(low, bank.begin), high - 1)
    event_time = recorded_at - rng.integers(0, _MAX_LATENCY + 1, len(code))
    late = code == _CODE["Correction"]
    # at the earliest just after the first accounts went live (still a live account to pick)
    delay = np.minimum(rng.integers(*_CORRECTION_DELAY, np.count_nonzero(late)),
                       recorded_at[late] - (bank.begin - _MAX_LATENCY))
    event_time[late] = recorded_at[late] - delay
    account = bank.pick(rng, event_time, recorded_at)
    counterparty = np.zeros(len(code), np.int64)
    transfer = code == _CODE["TransferOut"]
    counterparty[transfer] = bank.pick(rng, event_time[transfer], recorded_at[transfer],
                                       other=account[transfer])
    amount = np.ceil(_MEDIAN[code] * np.exp(_SIGMA[code] * rng.standard_normal(len(code))))
    amount[late] *= np.where(rng.random(np.count_nonzero(late)) < _NEGATIVE_CORRECTION, -1, 1)
    return {
        "event_time": event_time,
        "recorded_at": recorded_at,
        "account": account,
        "counterparty": counterparty,
        "code": code,
        "amount": amount.astype(np.int64),
        "rate": np.full(len(code), np.nan),
    }


def _log(fixed: dict[str, np.ndarray], activity: dict[str, np.ndarray], seq: int) -> pl.DataFrame:
    """Merge the slots by ``recorded_at`` (fixed first on ties), expand transfers into two legs.

    Consumes ``activity``: each array is dropped once used, to keep the peak memory low.
    """
    slots = {name: np.concatenate([fixed[name], activity.pop(name)]) for name in fixed}
    order = np.argsort(slots["recorded_at"], kind="stable")
    row = np.repeat(order, np.where(slots["code"][order] == _CODE["TransferOut"], 2, 1))
    leg_in = np.zeros(len(row), bool)
    leg_in[1:] = row[1:] == row[:-1]
    col = {name: slots.pop(name)[row] for name in list(slots)}
    frame = pl.DataFrame({
        "seq": np.arange(seq, seq + len(row)),
        "account_id": np.where(leg_in, col["counterparty"], col["account"]),
        "event_type": _TYPE_NAMES.gather(np.where(leg_in, _CODE["TransferIn"], col.pop("code"))),
        "event_time": pl.Series(col.pop("event_time")).cast(TIME_DTYPE),
        "recorded_at": pl.Series(col.pop("recorded_at")).cast(TIME_DTYPE),
        "amount": col.pop("amount"),
        "counterparty_id": np.where(leg_in, col.pop("account"), col.pop("counterparty")),
        "rate": pl.Series(col.pop("rate"), nan_to_null=True),
    })
    return frame.with_columns(
        event_id=pl.format("e{}", pl.col("seq").cast(pl.String).str.pad_start(12, "0")),
        counterparty_id=pl.when(pl.col("counterparty_id") > 0).then("counterparty_id"),
    ).select(list(CANONICAL_SCHEMA))
