"""Complex event patterns (CEP) per key, in the spirit of Flink CEP, evaluated vectorized.

A :class:`Pattern` is a sequence of steps, each a Polars condition on one event:

* ``begin(cond)`` starts it; ``.next(cond)`` adds a step whose events come
  *immediately* after the previous step's (strict contiguity, per key);
  ``.followed_by(cond)`` adds one whose events come any time later (relaxed);
* ``.times(n)`` makes the last step need ``n`` matching events (consecutive in
  a ``next`` step; others may come in between in a ``begin`` or ``followed_by`` one);
* ``.within(duration)`` bounds the time from the first to the last event.

There is one alert per event that completes a match (the *end* event), with the
latest possible start: ``start_time``/``start_seq`` of the shortest match ending
there. Evaluation is a handful of vectorized passes per step (cumulative counts,
run lengths and cumulative maxima per key, then gathers), never a Python loop per
event. :class:`Detector` evaluates a pattern incrementally over a stream of
chunks, carrying the events still within ``within`` of each key's latest event:
it emits the same alerts as one evaluation of the whole stream (when each key's
events arrive in time order).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from eventkit.exceptions import PatternError
from eventkit.replay.keys import rows_by_key
from eventkit.replay.progress import Steps

__all__ = ["BUILTINS", "Detector", "Pattern", "Thresholds", "begin", "builtin_alerts",
           "negative_balance", "ping_pong", "rapid_withdrawals", "structuring"]

_ORDER = ("event_time", "seq")
_ALERT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "start_seq": pl.Int64, "end_seq": pl.Int64,
    "start_time": pl.Datetime("us", "UTC"), "end_time": pl.Datetime("us", "UTC")}


@dataclass(frozen=True)
class _Step:
    cond: pl.Expr
    times: int = 1
    strict: bool = False  # reached by next(): consecutive, right after the previous step


@dataclass(frozen=True)
class Pattern:
    """A sequence of conditions per key; build with :func:`begin`.

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, UTC
    >>> from eventkit.questions.patterns import begin
    >>> t = [datetime(2024, 1, 1, h, tzinfo=UTC) for h in range(4)]
    >>> events = pl.DataFrame({"account_id": [1, 1, 1, 1], "seq": [0, 1, 2, 3],
    ...     "event_time": t, "event_type": ["Deposit", "Fee", "Withdrawal", "Withdrawal"]})
    >>> p = begin(pl.col("event_type") == "Deposit").followed_by(
    ...     pl.col("event_type") == "Withdrawal").within("2h")
    >>> p.detect(events).select("account_id", "start_seq", "end_seq").rows()
    [(1, 0, 2)]

    """

    steps: tuple[_Step, ...]
    window: timedelta | None = None

    def next(self, cond: pl.Expr) -> Pattern:
        """Add a step whose events directly follow the previous step's (same key)."""
        return replace(self, steps=(*self.steps, _Step(cond, strict=True)))

    def followed_by(self, cond: pl.Expr) -> Pattern:
        """Add a step whose events come after the previous step's, others in between."""
        return replace(self, steps=(*self.steps, _Step(cond)))

    def times(self, n: int) -> Pattern:
        """The last step needs ``n`` matching events."""
        if not isinstance(n, int) or n < 1:
            msg = f"times(n) needs a whole number n >= 1, not {n!r}"
            raise PatternError(msg)
        return replace(self, steps=(*self.steps[:-1], replace(self.steps[-1], times=n)))

    def within(self, duration: timedelta | str) -> Pattern:
        """Bound the time from the first to the last event (``"10m"``, ``"2d"`` or a timedelta)."""
        return replace(self, window=_duration(duration))

    def detect(self, events: pl.DataFrame | pl.LazyFrame, *,
               key: str | list[str] = "account_id") -> pl.DataFrame:
        """Every alert: the key, ``start_seq``, ``end_seq``, ``start_time``, ``end_time``.

        ``events`` needs the key, ``event_time``, ``seq`` and the columns the
        conditions read (e.g. a replay's ``history`` for balances).
        """
        keys = [key] if isinstance(key, str) else list(key)
        frame = events.lazy().collect() if isinstance(events, pl.LazyFrame) else events
        read = [] if any(step.cond.meta.has_multiple_outputs() for step in self.steps) else [
            name for step in self.steps for name in step.cond.meta.root_names()]
        _need(frame, [*keys, *_ORDER, *read], "pattern")
        for n, step in enumerate(self.steps):  # (a number cast to a boolean would be a guess)
            dtype = frame.lazy().select(step.cond).collect_schema().dtypes()[0]
            if dtype != pl.Boolean:
                msg = (f"step {n + 1}'s condition {step.cond} gives {dtype} values, not true or "
                       "false (compare it: pl.col('amount') > 0)")
                raise PatternError(msg)
        return _detect(self, frame, keys)


def begin(cond: pl.Expr) -> Pattern:
    """Start a pattern with a step matching ``cond`` (a boolean Polars expression).

    Examples
    --------
    >>> begin(pl.col("event_type") == "Withdrawal").times(3).within("10m").window
    datetime.timedelta(seconds=600)

    """
    if not isinstance(cond, pl.Expr):
        msg = f"a pattern condition is a Polars expression, not {type(cond).__name__}"
        raise PatternError(msg)
    return Pattern((_Step(cond),))


def _need(frame: pl.DataFrame | pl.LazyFrame, columns: list[str], what: str) -> None:
    """Refuse a frame that lacks any of ``columns``, naming them (not a Polars error later)."""
    names = frame.collect_schema().names()
    missing = [c for c in dict.fromkeys(columns) if c not in names]
    if missing:
        msg = f"{what} needs column(s) {missing}; the events have {names}"
        raise PatternError(msg)


def _duration(value: timedelta | str, name: str = "within()") -> timedelta:
    """``value`` as a positive timedelta; ``name`` (the parameter) is what an error names."""
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            msg = f"{name} needs a positive duration, not {value}"
            raise PatternError(msg)
        return value
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    text = str(value).strip()
    number, unit = text[:-1], text[-1:]
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if unit not in units or amount <= 0:
        msg = f"{name} takes a timedelta or text such as '90s', '10m', '2h', '3d', not {value!r}"
        raise PatternError(msg)
    return timedelta(**{units[unit]: amount})


def _by_key(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``frame`` grouped by the keys, each key's rows in (time, seq) order.

    A log is in time order for almost every key: coded keys and a counting
    sort keep it (:func:`~eventkit.replay.keys.rows_by_key`), and only the
    keys with an event out of (time, seq) order are ordered again. A key that
    is null somewhere is sorted by Polars: by the keys (stable), then the late
    keys' rows. Either way the order is worked out on row numbers and the
    frame gathered once, from one chunk per column (a gather across chunks
    costs several times more: a replay's history comes in the chunks its
    files were read in).
    """
    frame = frame.rechunk()  # (a no-op when it is one chunk)
    rows = rows_by_key(frame, tuple(keys))
    if rows is not None:
        return frame[rows]
    order = frame.select(pl.arg_sort_by(keys, maintain_order=True)).to_series()
    lines = frame.select(*keys, *_ORDER)[order]
    same = pl.all_horizontal(pl.col(k).eq_missing(pl.col(k).shift(1)) for k in keys)
    time, seq = pl.col("event_time"), pl.col("seq")
    late = same & ((time < time.shift(1)) | ((time == time.shift(1)) & (seq < seq.shift(1))))
    found = lines.filter(late.fill_null(value=False)).select(keys).unique()
    if found.height:
        # the late keys' rows, by (keys, time, seq), into the places they hold
        at = lines.with_row_index("#at").join(found, on=keys, how="semi", nulls_equal=True,
                                              maintain_order="left")
        again = at.select(pl.col("#at").sort_by([*keys, *_ORDER]))
        order = order.scatter(at["#at"], order.gather(again.to_series()))
    return frame[order]


def _detect(pattern: Pattern, frame: pl.DataFrame, keys: list[str], *,
            presorted: bool = False) -> pl.DataFrame:
    """One vectorized pass per step; see the module docstring for the semantics.

    ``best`` is, per row, the row index of the latest start of a match of the
    steps so far that ends at that row (null: none ends there). Rows are grouped
    by key, each key's by (time, seq) (:func:`_by_key`; ``presorted``: they
    already are), so each key's rows are one run and a larger index is a later
    start within a key. Counts per key are global counts (cumulative sums,
    maxima, fills) read against the first row of the key's run: no window, no
    join.
    """
    df = frame
    if not any(step.cond.meta.has_multiple_outputs() for step in pattern.steps):
        # the columns the conditions name (a selector such as pl.all() may read any)
        read = {name for step in pattern.steps for name in step.cond.meta.root_names()}
        df = frame.select(list(dict.fromkeys([*keys, *_ORDER, *sorted(read - {*keys, *_ORDER})])))
    if not presorted:
        df = _by_key(df, keys)
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    new_key = pl.any_horizontal(pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys)
    df = df.with_columns(index.alias("__i"), pl.when(new_key.fill_null(value=True))
                         .then(index).forward_fill().alias("__first_of_key"))
    i, first_of_key = pl.col("__i"), pl.col("__first_of_key")
    for n, step in enumerate(pattern.steps):
        hit = step.cond.fill_null(value=False)
        df = df.with_columns(hit.alias("__hit"))
        if step.strict:
            # the run of hits ending here (within the key) holds the step's n events
            last_miss = pl.when(~pl.col("__hit")).then(i).forward_fill().fill_null(-1)
            run = i - pl.max_horizontal(last_miss, first_of_key - 1)
            first = i - step.times + 1
            ok = pl.col("__hit") & (run >= step.times)
            prev_at = first - 1  # the previous step must end right before
            start = pl.col("__best").gather(prev_at.clip(0)) if n else first
            valid = ok & ((prev_at >= first_of_key) if n else pl.lit(value=True))
        else:
            # the latest n hits at or before this row (this row one of them): the hit
            # numbered (hits so far) - n + 1, when it is in this key
            at = pl.col("__hit").cast(pl.Int64).cum_sum() - step.times
            hits = i.filter(pl.col("__hit")).append(pl.lit(-1, dtype=pl.Int64))  # never empty
            # a column of its own (each use of an expression computes it again)
            df = df.with_columns(pl.when(at >= 0).then(hits.gather(at.clip(0))).alias("__first"))
            first = pl.col("__first")
            df = df.with_columns(pl.when(first >= first_of_key).then(first).alias("__first"))
            ok = pl.col("__hit") & first.is_not_null()
            if n:  # the latest start of a previous-steps match ending before `first`
                latest = pl.col("__best").fill_null(-1).cum_max()
                df = df.with_columns(pl.when(latest >= first_of_key).then(latest)
                                     .alias("__prior"))
                prev_at = first - 1
                start = pl.col("__prior").gather(prev_at.clip(0))
                valid = ok & (prev_at >= first_of_key)
            else:
                start, valid = first, ok
        df = df.with_columns(pl.when(valid).then(start).otherwise(None).alias("__best"))
    ends = df.filter(pl.col("__best").is_not_null())
    starts = df.select(pl.col("seq").alias("start_seq"),
                       pl.col("event_time").alias("start_time"))[ends["__best"]]
    alerts = pl.concat([ends.select(*keys, pl.col("seq").alias("end_seq"),
                                    pl.col("event_time").alias("end_time")), starts],
                       how="horizontal").select(*keys, *_ALERT_SCHEMA)
    if pattern.window is not None:
        alerts = alerts.filter(pl.col("end_time") - pl.col("start_time") <= pattern.window)
    return alerts.sort("end_seq")


class Detector:
    """Evaluate a pattern incrementally over chunks of a stream (state carried between calls).

    Each :meth:`feed` returns the alerts whose end event is in the new chunk;
    over any split of a stream into chunks they are exactly the alerts of
    ``pattern.detect(whole stream)``, provided each key's events come in time
    order. The pattern needs ``within`` (the carried state is, per key, the
    events within that long of its latest one).

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, UTC
    >>> from eventkit.questions.patterns import rapid_withdrawals
    >>> t = [datetime(2024, 1, 1, 0, m, tzinfo=UTC) for m in range(3)]
    >>> events = pl.DataFrame({"account_id": [1, 1, 1], "seq": [0, 1, 2], "event_time": t,
    ...                        "event_type": ["Withdrawal"] * 3})
    >>> d = Detector(rapid_withdrawals(3, "5m"))
    >>> d.feed(events.head(2)).height, d.feed(events.tail(1)).height
    (0, 1)

    """

    def __init__(self, pattern: Pattern, *, key: str | list[str] = "account_id") -> None:
        if pattern.window is None:
            msg = "incremental detection needs a pattern with within(...)"
            raise PatternError(msg)
        self.pattern = pattern
        self.keys = [key] if isinstance(key, str) else list(key)
        self._tail: pl.DataFrame | None = None

    def feed(self, chunk: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
        """Alerts ending in ``chunk``; the chunk is kept as far as later matches need it."""
        new = chunk.lazy().collect() if isinstance(chunk, pl.LazyFrame) else chunk
        frame = new if self._tail is None else pl.concat([self._tail, new], how="vertical_relaxed")
        alerts = self.pattern.detect(frame, key=self.keys)
        alerts = alerts.filter(pl.col("end_seq").is_in(new["seq"].implode()))
        window = self.pattern.window
        assert window is not None
        self._tail = frame.filter(
            pl.col("event_time") >= pl.col("event_time").max().over(self.keys) - window)
        return alerts


# ---------------------------------------------------------------------- built-in patterns


def rapid_withdrawals(n: int, within: timedelta | str) -> Pattern:
    """``n`` or more withdrawals of one account within ``within``.

    Examples
    --------
    >>> len(rapid_withdrawals(5, "1h").steps[0].cond.meta.root_names())
    1

    """
    return begin(pl.col("event_type") == "Withdrawal").times(n).within(within)


def structuring(within: timedelta | str, *, share: float = 0.9,
                min_deposit: int = 0) -> Pattern:
    """A deposit, then a withdrawal of nearly all the balance, within ``within``.

    The deposit is at least ``min_deposit`` cents; the withdrawal takes
    ``share`` or more of the balance before it. The conditions read
    ``balance``: detect on a replay's history.

    Examples
    --------
    >>> structuring("1d").window
    datetime.timedelta(days=1)

    """
    deposit = (pl.col("event_type") == "Deposit") & (pl.col("amount") >= min_deposit)
    drain = (pl.col("event_type") == "Withdrawal") & (
        pl.col("amount") >= share * (pl.col("balance") + pl.col("amount")))
    return begin(deposit).followed_by(drain).within(within)


def ping_pong(within: timedelta | str) -> Pattern:
    """Money sent to an account and back from it within ``within``.

    Detect with ``key=["account_id", "counterparty_id"]``: per pair of accounts,
    a ``TransferOut`` followed by a ``TransferIn``.

    Examples
    --------
    >>> len(ping_pong("1h").steps)
    2

    """
    return begin(pl.col("event_type") == "TransferOut").followed_by(
        pl.col("event_type") == "TransferIn").within(within)


def negative_balance(history: pl.DataFrame | pl.LazyFrame, longer_than: timedelta | str, *,
                     key: str = "account_id", until: object = None) -> pl.DataFrame:
    """Accounts whose balance stayed below zero longer than ``longer_than``.

    One row per negative stretch: ``start_seq``/``start_time`` (the event that
    took the balance below zero), ``end_seq``/``end_time`` (the event that
    brought it back, or null and ``until`` when it is still negative).
    ``history`` is a replay's history (it has ``balance``).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 9)]
    >>> h = pl.DataFrame({"account_id": [1, 1, 1], "seq": [0, 1, 2], "event_time": t,
    ...                   "balance": [100, -50, 20]})
    >>> negative_balance(h, "3d").select("account_id", "start_seq", "end_seq").rows()
    [(1, 1, 2)]

    """
    _need(history, [key, *_ORDER, "balance"], "negative_balance")
    frame = _by_key(history.lazy().select(key, *_ORDER, "balance").collect(), [key])
    return _negative_stretches(frame, _duration(longer_than, "longer_than"), key, until)


def _negative_stretches(frame: pl.DataFrame, limit: timedelta, key: str, until: object
                        ) -> pl.DataFrame:
    """:func:`negative_balance` on a frame grouped by key, each key's rows by (time, seq).

    A stretch starts where the balance turns negative (or a key starts
    negative) and ends at the next change of sign of the same key. The
    stretches come ordered by key, then start.
    """
    neg = pl.col("balance") < 0
    new_key = pl.col(key).ne_missing(pl.col(key).shift(1)).fill_null(value=True)
    before = pl.when(new_key).then(pl.lit(value=False)).otherwise(neg.shift(1))
    runs = frame.filter(new_key | (neg != before)).select(
        key, neg.alias("neg"), pl.col("seq").alias("start_seq"),
        pl.col("event_time").alias("start_time"))
    same = pl.col(key).shift(-1) == pl.col(key)
    runs = runs.with_columns(pl.when(same).then(pl.col("start_seq").shift(-1)).alias("end_seq"),
                             pl.when(same).then(pl.col("start_time").shift(-1))
                             .alias("end_time"))
    end = pl.col("end_time").fill_null(pl.lit(until, dtype=pl.Datetime("us", "UTC"))) \
        if until is not None else pl.col("end_time")
    return runs.filter(pl.col("neg") & ((end - pl.col("start_time")) > limit)).select(
        key, "start_seq", "end_seq", "start_time", "end_time").sort(key, "start_time",
                                                                   "start_seq")


# ---------------------------------------------------------------------- all built-ins at once

#: The built-in patterns, in the order :func:`builtin_alerts` reports them.
BUILTINS = ("rapid_withdrawals", "structuring", "ping_pong", "negative_balance")


@dataclass(frozen=True)
class Thresholds:
    """The parameters of the four built-in patterns (durations: timedelta or ``"90m"``-style text).

    The defaults raise no alert on the generator's background activity at the
    sizes of the sample archives, and :func:`eventkit.banking.generate.generate` with
    ``patterns=`` injects instances that cross them.

    Examples
    --------
    >>> t = Thresholds(rapid_count=5, negative_longer_than="2d")
    >>> t.rapid_count, t.negative_longer_than, t.longest
    (5, datetime.timedelta(days=2), datetime.timedelta(days=2))

    """

    rapid_count: int = 4
    rapid_within: timedelta = timedelta(hours=1)
    structuring_within: timedelta = timedelta(hours=1)
    structuring_share: float = 0.9
    structuring_min_deposit: int = 100_000
    ping_pong_within: timedelta = timedelta(hours=1)
    negative_longer_than: timedelta = timedelta(days=3)

    def __post_init__(self) -> None:
        for name in ("rapid_within", "structuring_within", "ping_pong_within",
                     "negative_longer_than"):
            object.__setattr__(self, name, _duration(getattr(self, name), name))
        if not isinstance(self.rapid_count, int) or self.rapid_count < 2:
            msg = f"rapid_count must be a whole number >= 2, not {self.rapid_count!r}"
            raise PatternError(msg)
        if not 0 < self.structuring_share < 1:
            msg = ("structuring_share must lie strictly between 0 and 1, "
                   f"not {self.structuring_share!r}")
            raise PatternError(msg)
        if self.structuring_min_deposit < 0:
            msg = ("structuring_min_deposit must be >= 0 cents, "
                   f"not {self.structuring_min_deposit!r}")
            raise PatternError(msg)

    @property
    def longest(self) -> timedelta:
        """The longest of the durations."""
        return max(self.rapid_within, self.structuring_within, self.ping_pong_within,
                   self.negative_longer_than)


_ALERTS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "pattern": pl.String, "account_id": pl.Int64, "counterparty_id": pl.Int64,
    **_ALERT_SCHEMA, "start_event_id": pl.String, "end_event_id": pl.String}


def builtin_alerts(history: pl.DataFrame | pl.LazyFrame, thresholds: Thresholds | None = None,
                   *, until: datetime | None = None) -> pl.DataFrame:
    """Every alert of the four built-in patterns, one table (see :data:`BUILTINS`).

    Columns: ``pattern``, ``account_id``, ``counterparty_id`` (the other
    account of a ping-pong, else null), ``start_seq``, ``end_seq``,
    ``start_time``, ``end_time`` and the ``start_event_id``/``end_event_id``
    of those events. ``history`` is a replay's history (it has ``balance``);
    ``until`` is passed to :func:`negative_balance` (a stretch still negative
    then counts up to it; without it, only stretches that ended).

    Examples
    --------
    >>> import eventkit
    >>> from datetime import datetime, UTC
    >>> t = [datetime(2024, 1, 1, 0, m, tzinfo=UTC) for m in range(4)]
    >>> events = pl.DataFrame({"event_id": list("abcd"), "seq": [0, 1, 2, 3],
    ...     "account_id": [1] * 4, "event_type": ["Deposit"] + ["Withdrawal"] * 3,
    ...     "event_time": t, "recorded_at": t, "amount": [9_000, 100, 100, 100]})
    >>> history = eventkit.replay(events).history
    >>> builtin_alerts(history, Thresholds(rapid_count=3)).select(
    ...     "pattern", "account_id", "start_event_id", "end_event_id").rows()
    [('rapid_withdrawals', 1, 'b', 'd')]

    """
    t = thresholds if thresholds is not None else Thresholds()
    _need(history, ["account_id", *_ORDER, "event_id", "event_type", "amount", "balance"],
          "builtin_alerts (the bank's patterns, on a replay's history)")
    frame = history.lazy().collect() if isinstance(history, pl.LazyFrame) else history
    if "counterparty_id" not in frame.columns:  # no transfers: no ping-pong
        frame = frame.with_columns(counterparty_id=pl.lit(None, frame.schema["account_id"]))
    pair = ["account_id", "counterparty_id"]
    found = {}
    with Steps(f"alerts in {frame.height:,} events", 5) as steps:
        steps.begin("sorting by account")
        # sorted once for the three patterns per account (the columns they read only)
        by_account = _by_key(frame.select("account_id", *_ORDER, "amount", "balance",
                                          pl.col("event_type").cast(pl.Categorical)),
                             ["account_id"])  # (types as codes: compared and moved cheaply)
        transfers = frame.filter(pl.col("counterparty_id").is_not_null())
        detect = {
            "rapid_withdrawals": lambda: _detect(
                rapid_withdrawals(t.rapid_count, t.rapid_within),
                by_account, ["account_id"], presorted=True),
            "structuring": lambda: _detect(
                structuring(t.structuring_within, share=t.structuring_share,
                            min_deposit=t.structuring_min_deposit),
                by_account, ["account_id"], presorted=True),
            "ping_pong": lambda: ping_pong(t.ping_pong_within).detect(transfers, key=pair),
            "negative_balance": lambda: _negative_stretches(
                by_account, t.negative_longer_than, "account_id", until),
        }
        for name, run in detect.items():
            steps.begin(name.replace("_", " "))
            found[name] = run()
    parts = [alerts.with_columns(pattern=pl.lit(name)) for name, alerts in found.items()]
    alerts = pl.concat(parts, how="diagonal_relaxed")
    wanted = pl.concat([alerts["start_seq"], alerts["end_seq"]]).unique()
    ids = frame.select("seq", "event_id").filter(pl.col("seq").is_in(wanted.implode()))
    return (alerts
            .join(ids.rename({"seq": "start_seq", "event_id": "start_event_id"}),
                  on="start_seq", how="left", maintain_order="left")
            .join(ids.rename({"seq": "end_seq", "event_id": "end_event_id"}),
                  on="end_seq", how="left", maintain_order="left")
            .select([pl.col(c).cast(frame.schema[c] if c in pair else d)  # ids: text or not
                     for c, d in _ALERTS_SCHEMA.items()]))
