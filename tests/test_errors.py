"""The exception tree: every eventkit error survives a trip to another process and back.

A Dask worker pickles the error it raised; Polars re-raises an error from inside an
expression (``map_batches``) as ``type(e)(*e.args)``. Either way the user must meet the
same eventkit error, with its message and what it says of where — not a ``TypeError``
about a missing keyword argument.
"""

from __future__ import annotations

import inspect
import pickle
from datetime import UTC, datetime

import polars as pl
import pytest

import eventkit
from eventkit import exceptions
from eventkit.exceptions import CoverageWarning, EventkitError, ScaleError

WHERE = {"param": "buckets", "path": "s3://bank/events", "expected": 3, "actual": 5,
         "problems": ["commit 4: digest differs"], "clock": datetime(2024, 1, 1, tzinfo=UTC),
         "latest": datetime(2024, 2, 1, tzinfo=UTC), "file": "part-0.parquet",
         "cutoff": "2023-01-01", "source": "a.csv", "column": "amount", "row": 7, "key": "C1",
         "event_id": "e9", "field": "balance", "rule": "on.Deposit", "topic": "events",
         "account_id": 42, "failures": ["01_balance_history"]}
ERRORS = sorted((c for c in vars(exceptions).values()
                 if isinstance(c, type) and issubclass(c, EventkitError)),
                key=lambda c: c.__name__)


def made(cls: type[EventkitError]) -> EventkitError:
    """``cls`` with a message and every keyword it takes that says where."""
    taken = inspect.signature(cls.__init__).parameters
    return cls("something is wrong", **{k: v for k, v in WHERE.items() if k in taken})


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_message_and_where(cls: type[EventkitError]) -> None:
    error = made(cls)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert str(back) == str(error)
    assert vars(back) == vars(error)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_is_made_again_from_its_message_alone(cls: type[EventkitError]) -> None:
    error = made(cls)
    again = type(error)(*error.args)
    assert type(again) is cls
    assert str(again) == str(error)


def test_an_error_raised_inside_a_polars_expression_reaches_the_user_as_itself() -> None:
    def refuse(_: pl.Series) -> pl.Series:
        raise ScaleError("a key column of Float64 values cannot be bucketed", param="buckets")

    frame = pl.DataFrame({"k": [1.5]})
    with pytest.raises(ScaleError, match="buckets: a key column of Float64"):
        frame.select(pl.col("k").map_batches(refuse, return_dtype=pl.UInt64,
                                             is_elementwise=True))


def test_a_warning_points_at_the_callers_own_line() -> None:
    # found deep inside the replay; shown where the user asked (a notebook cell, a script)
    events = pl.DataFrame({"account_id": [1, 1], "event_type": ["Deposit", "Gift"],
                           "amount": [5, 7], "event_time": ["2024-01-01T00:00:00Z"] * 2})
    with pytest.warns(CoverageWarning, match="Gift") as caught:
        eventkit.replay(events, "balance").state().collect()
    assert [w.filename for w in caught] == [__file__]
