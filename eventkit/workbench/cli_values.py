"""What the command line's values mean: whole numbers, seconds, a mapping, keys.

The ``eventkit`` command (:mod:`eventkit.workbench.cli`) reads its options
through these; each refuses a bad value with a message naming it.

>>> import polars as pl
>>> from eventkit.rules.model import RuleSet
>>> whole(1)("3"), seconds("0.5")
(3, 0.5)
>>> key_values("7, 9", RuleSet("r", (), ()), pl.Schema({"account_id": pl.Int64}))
[7, 9]
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from eventkit.exceptions import UsageError

if TYPE_CHECKING:
    import polars as pl

    from eventkit.rules.model import RuleSet

__all__ = ["key_values", "mapping_option", "seconds", "whole"]


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An option's whole number, at least ``low`` (and at most ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            msg = f"expected a whole number, not {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            msg = f"must be {span}, not {value}"
            raise argparse.ArgumentTypeError(msg)
        return value
    return parse


def seconds(text: str) -> float:
    """An option's positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        msg = f"expected a number of seconds, not {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not math.isfinite(value) or value <= 0:
        msg = f"must be a positive number of seconds, not {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def mapping_option(text: str) -> dict[str, object]:
    """``--mapping``: a JSON object, or a ``.json`` file holding one."""
    try:
        raw = Path(text).read_text() if text.endswith(".json") else text
        mapping = json.loads(raw)
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"not a JSON object or .json file ({exc})"
        raise UsageError(msg, param="--mapping") from None
    if not isinstance(mapping, dict):
        msg = "expected a JSON object such as {\"account_id\": \"accountId\"}"
        raise UsageError(msg, param="--mapping")
    return mapping


def key_values(text: str, rules: RuleSet, schema: pl.Schema) -> list[object]:
    """``--accounts`` as keys of the rule set, each part read as its key column's type."""
    columns = rules.key_columns
    out: list[object] = []
    for item in (x.strip() for x in text.split(",")):
        if not item:  # ("1,,2": a slip of the keyboard, never silently one key fewer)
            msg = f"{text!r} has an empty id between commas"
            raise UsageError(msg, param="--accounts")
        parts = item.split(":", len(columns) - 1) if len(columns) > 1 else [item]
        if len(parts) != len(columns):
            msg = (f"{item!r}: the key is {list(columns)}; give its parts joined by ':' "
                   f"(such as {':'.join('...' for _ in columns)})")
            raise UsageError(msg, param="--accounts")
        values: list[object] = []
        for part, column in zip(parts, columns, strict=True):
            dtype = schema.get(column)
            if dtype is not None and dtype.is_integer():
                try:
                    values.append(int(part))
                except ValueError:
                    msg = f"{column} holds integers, not {part!r}"
                    raise UsageError(msg, param="--accounts") from None
            else:
                values.append(part)
        out.append(values[0] if len(values) == 1 else tuple(values))
    return out
