"""Compile the replay kernels ahead of time, into numba's on-disk cache (``eventkit compile``).

The kernels (:mod:`eventkit.replay.kernels`) are compiled by numba for the
argument types of each call, and the machine code is cached on disk next to
the source (``eventkit/replay/__pycache__``; ``NUMBA_CACHE_DIR`` or the user's
cache folder when that is not writable). Compiling them all takes 20-30 s of
CPU: :func:`compile_kernels` pays it once, at set-up (``make setup`` runs
``eventkit compile``), by replaying a few events through every path of the
engine — linear rules on integer and float fields, the rule program with
interest and refusals, late events, a time grid, a carried-over start, keys
of text, of sparse integers and of several columns — so that a user's first
replay only loads machine code. numba keys its cache by the source file's
contents and the CPU, so a cache built in a clone serves that clone wherever
it lies, and a changed kernel is compiled again (on its first use, or by
running this again).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import replace
from datetime import UTC, datetime
from types import ModuleType

import polars as pl

from eventkit.exceptions import CoverageWarning
from eventkit.replay import accrue, interpreter, kernels, keys
from eventkit.replay.result import ReplayResult
from eventkit.rules import registry
from eventkit.rules.model import Field, Handler, RuleSet

__all__ = ["KERNELS", "compile_kernels", "compile_stats"]

_MODULES: dict[str, tuple[ModuleType, tuple[str, ...]]] = {
    "kernels": (kernels, ("visiting_order", "type_codes", "_type_code", "fold_terms",
                          "grid_positions", "key_time_order", "last_visits")),
    "interpreter": (interpreter, ("round_float", "int_fault", "_fail", "_cmp", "rate_index",
                                  "integral", "_int_op", "_interpret", "run_rules")),
    "accrue": (accrue, ("_gains",)),
    "keys": (keys, ("_slot", "_int_table", "_grow_ints", "_string_table", "_grow_strings",
                       "_long_bytes", "_hash", "_hashes", "_places", "_settle")),
}
#: The compiled functions whose machine code the cache holds (``module.function``).
KERNELS = tuple(f"{m}.{name}" for m, (_, names) in _MODULES.items() for name in names)

#: A linear rule set with float, "set" and enum fields (the vectorized path's other types).
_LINEAR = RuleSet(
    name="warm-up",
    fields=(Field("net"), Field("rate_sum", "float"), Field("last", "int", initial=-1),
            Field("kind", "enum", values=("none", "in"))),
    handlers=(Handler("Deposit", {"net": "net + amount", "last": "amount", "kind": "'in'"}),
              Handler("InterestRateChanged", {"rate_sum": "rate_sum + rate"})),
)


def _events() -> pl.DataFrame:
    """A few events of every kind the engine treats differently (one late, one refused)."""
    day = [datetime(2024, 1, d, tzinfo=UTC) for d in range(1, 9)]
    rows = [  # account, type, day, amount, rate
        (0, "InterestRateChanged", 0, 0, 0.02),
        (1, "AccountOpened", 0, 0, None),
        (1, "Deposit", 1, 10_000, None),
        (2, "Withdrawal", 2, 500, None),  # before its account is opened: refused
        (2, "AccountOpened", 3, 0, None),
        (1, "Withdrawal", 4, 2_500, None),
        (1, "InterestRateChanged", 5, 0, 0.03),
        (1, "Correction", 2, -100, None),  # late: dated before the account's last event
        (1, "Fee", 7, 250, None),
    ]
    return pl.DataFrame(
        {"event_id": [f"e{i}" for i in range(len(rows))], "seq": range(len(rows)),
         "account_id": [r[0] for r in rows], "event_type": [r[1] for r in rows],
         "event_time": [day[r[2]] for r in rows], "recorded_at": [day[-1]] * len(rows),
         "amount": [r[3] for r in rows], "counterparty_id": [None] * len(rows),
         "rate": [r[4] for r in rows]},
        schema_overrides={"counterparty_id": pl.Int64, "rate": pl.Float64, "seq": pl.Int64},
    )


def compile_kernels() -> dict[str, int]:
    """Compile (or load from the cache) every kernel for the types a replay passes.

    Returns, per kernel, how many signatures this call compiled (0 each: the
    cache had them all).

    Examples
    --------
    >>> compiled = compile_kernels()  # fast when the cache is there: it loads
    >>> sorted(compiled) == sorted(KERNELS)
    True

    """
    before = compile_stats()
    events = _events()
    with warnings.catch_warnings():  # the warm-up rules leave event types alone on purpose
        warnings.simplefilter("ignore", CoverageWarning)
        for rules in (registry.get("balance"), registry.get("banking"), _LINEAR):
            result = ReplayResult(events.lazy(), rules)
            result.history.collect()
            state = result.state().collect()
            result.at_times(["2024-01-03", "2024-01-31"]).collect()
            _ = ReplayResult(events.lazy(), rules, start=state).fold  # from a carried-over state
        # interest accrued to an instant (rules with interest only)
        ReplayResult(events.lazy(), registry.get("banking")).as_of("2024-01-31",
                                                                   accrued=True).collect()
        # keys of text (UUIDs, read back from Parquet: rows share their bytes), of sparse
        # integers, of two columns: the key coder's kernels
        balance = registry.get("balance")
        parquet = io.BytesIO()
        events.with_columns(
            pl.format("00000000-0000-4000-8000-{}", pl.col("account_id").cast(pl.String)
                      .str.zfill(12)).alias("order_id"),
            (pl.col("account_id") * 10**15).alias("customer")).write_parquet(parquet)
        keyed = pl.read_parquet(parquet.getvalue())
        for key in ("order_id", "customer", ("order_id", "customer")):
            ReplayResult(keyed.lazy(), replace(balance, key=key, global_events=None)).state(
            ).collect()
        keys.rows_by_key(keyed, ("order_id",))  # the patterns' grouping by key (a late event)
        fresh = keyed.with_columns(pl.col("order_id").str.to_uppercase())  # bytes of its own
        ReplayResult(fresh.lazy(), replace(balance, key="order_id", global_events=None)).state(
            ).collect()
    after = compile_stats()
    return {name: after[name] - before[name] for name in KERNELS}


def compile_stats() -> dict[str, int]:
    """Per kernel: signatures compiled in this process (not loaded from the cache)."""
    return {f"{m}.{name}": sum(getattr(module, name).stats.cache_misses.values())
            for m, (module, names) in _MODULES.items() for name in names}
