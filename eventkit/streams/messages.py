"""Kafka messages into canonical rows, and the reason each bad one is a dead letter.

What :func:`eventkit.streams.kafka.ingest` does with a batch of JSON messages
(taken in (partition, offset) order): parse them at once (splitting only when
that fails), map them onto the canonical columns as files are, and give every
message that is not an event its reason: not JSON, a key named twice, a
nested or unconvertible value, an unknown type, an ``event_id`` a message
before it in the batch already has.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from eventkit.exceptions import EventDataError
from eventkit.schema import BANKING, EventSchema
from eventkit.sources.checks import ROW_COL, SOURCE_COL
from eventkit.sources.conform import ColumnMapping, Conformed, conform

__all__ = ["WITHHELD", "Batch", "doubled_keys", "first_of_each_id", "given",
           "new_messages", "parse", "personal_values", "withhold"]

#: What a dead letter of an archive with personal fields shows instead of a personal value.
WITHHELD = "«withheld»"


def given(schema: EventSchema) -> list[str]:
    """The columns a message gives: all of ``schema``'s but those the archive assigns.

    Examples
    --------
    >>> given(EventSchema.declare(key="order_id", columns={"order_id": "string", "qty": "int"}))
    ['event_id', 'order_id', 'event_type', 'event_time', 'qty']

    """
    return [c for c in schema.columns if c not in ("seq", "recorded_at")]


def first_of_each_id(rows: pl.DataFrame, batch: Batch
                     ) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Of the events of a batch sharing an ``event_id``, the first by (partition, offset).

    ``rows`` come in batch order (``__index``); each later copy becomes a dead
    letter naming the first (which is archived, unless the archive holds the id
    already: then it is a dead letter too).
    """
    first = rows.select(pl.col("__index").first().over("event_id")).to_series().to_numpy()
    index = rows["__index"].to_numpy()
    later = index != first
    reasons = [(int(i), f"event_id: duplicate event_id in the topic (the same as partition "
                        f"{batch.partition[k]}, offset {batch.offset[k]}, before it)")
               for i, k in zip(index[later], first[later], strict=True)]
    return rows.filter(~pl.Series(later)), reasons


def doubled_keys(values: list[bytes], mapping: ColumnMapping, schema: EventSchema = BANKING
                 ) -> list[tuple[int, str]]:
    r"""Messages whose JSON names a key twice (JSON readers would keep one value silently).

    Found for the fields eventkit reads: a cheap count of each field's key per
    message flags candidates (and any message with ``\\u`` escapes, which can
    spell a key differently); each candidate is parsed in Python to be sure,
    which also catches doubled keys anywhere else in it.
    """
    if not values:
        return []
    try:
        text = pl.Series(values, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.ComputeError:  # bytes that are not UTF-8 (the parse names them)
        text = pl.Series([v.decode("utf-8", "replace") for v in values], dtype=pl.String)
    fields = {mapping.source_name(c) for c in schema.columns}
    flags = pl.select(pl.any_horizontal(
        [text.str.count_matches(f'"{re.escape(name)}"\\s*:') > 1 for name in sorted(fields)]
        + [text.str.contains("\\u", literal=True)])).to_series()
    out = []
    for i in flags.arg_true().to_list():
        try:
            json.loads(values[i], object_pairs_hook=_unique_pairs)
        except _DoubledKey as exc:
            out.append((i, f"not a JSON event object: key {exc.args[0]!r} appears twice"))
        except ValueError:
            continue  # not JSON at all: the parse names it
    return out


def personal_values(values: list[bytes], personal: tuple[str, ...]) -> list[tuple[int, str]]:
    r"""Messages holding a value of a personal field: ingest has no key to encrypt it with.

    Candidates are the messages naming a personal field (or with ``\\u``
    escapes, which can spell one); each is parsed to be sure.

    >>> found = personal_values([b'{"email": "a@x.org"}', b'{"email": null}', b'[1]'], ("email",))
    >>> [(i, why.split(",")[0]) for i, why in found]
    [(0, 'email: a personal value')]

    """
    names = [f'"{name}"'.encode() for name in personal]
    out = []
    for i, value in enumerate(values):
        if not any(name in value for name in names) and b"\\u" not in value:
            continue
        try:
            message = json.loads(value)
        except ValueError:
            continue  # not JSON: the parse names it
        found = [f for f in personal if isinstance(message, dict) and message.get(f) is not None]
        if found:
            out.append((i, f"{found[0]}: a personal value, which ingest does not encrypt: seal "
                           "it with eventkit.archive.privacy.encrypt and append the event"))
    return out


def withhold(value: bytes, personal: tuple[str, ...]) -> str | None:
    """A dead letter's message as it is kept: its personal fields' values withheld.

    A message that is not a JSON object is not kept at all (None) when the
    archive has personal fields: nothing could say which part is personal.

    >>> withhold(b'{"id": "e1", "email": "a@x.org"}', ("email",))
    '{"id": "e1", "email": "«withheld»"}'
    >>> withhold(b'{"id": "e1", "email": "a@x.org"', ("email",)) is None
    True

    """
    if not personal:
        return value.decode("utf-8", errors="replace")
    try:
        message = json.loads(value)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    return json.dumps({k: WITHHELD if k in personal and v is not None else v
                       for k, v in message.items()}, ensure_ascii=False)


class _DoubledKey(ValueError):
    """A JSON object names a key twice."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DoubledKey(key)
        found[key] = value
    return found


def new_messages(partition: np.ndarray, offset: np.ndarray, done: dict[int, int]
                  ) -> np.ndarray:
    """Messages not yet stored and not repeated within the batch (a re-seek repeats)."""
    floor = np.zeros(len(partition), np.int64)
    for p, stored in done.items():
        floor[partition == p] = stored
    frame = pl.DataFrame({"p": partition, "o": offset})
    first = frame.select(pl.struct("p", "o").is_first_distinct()).to_series().to_numpy()
    return (offset >= floor) & first


@dataclass(frozen=True)
class Batch:
    """What parsing a batch of messages needs besides their values.

    ``schema`` is the archive's (banking or declared); its key columns keep
    their stored type: a text id in an integer key is a bad message, never a
    text key (one message must not change the column's type for its batch).
    """

    mapping: ColumnMapping
    topic: str
    partition: np.ndarray
    offset: np.ndarray
    event_types: tuple[str, ...] | None
    schema: EventSchema = BANKING

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema", replace(self.schema, text_ids=False))


def parse(values: list[bytes], index: np.ndarray, batch: Batch
           ) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Canonical rows (with ``__index`` into the batch) and (index, reason) of bad ones.

    The whole batch is read at once; only when that fails, or most of it is bad
    (one odd value can change a column's type for all), it is split in halves.
    """
    if not len(index):
        return pl.DataFrame(schema={**{c: batch.schema.columns[c] for c in given(batch.schema)},
                                    "__index": pl.Int64}), []
    bad: list[tuple[int, str]] | None  # None: the batch is unreadable as a whole
    try:
        raw = pl.read_ndjson(io.BytesIO(b"\n".join(values[i] for i in index)),
                             infer_schema_length=None)
        if raw.height != len(index):
            msg = "a message is empty or holds several JSON values"
            raise ValueError(msg)
        rows, bad = _conform(raw, index, batch)
    except (pl.exceptions.PolarsError, ValueError, EventDataError) as exc:
        if len(index) == 1:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return parse(values, index[:0], batch)[0], [
                (int(index[0]), f"not a JSON event object: {text[:300]}")]
        rows, bad = pl.DataFrame(), None  # split below
    if bad is None or (bad and len(index) > 1 and len(bad) * 2 > len(index)):
        half = len(index) // 2
        left = parse(values, index[:half], batch)
        right = parse(values, index[half:], batch)
        return pl.concat([left[0], right[0]]), left[1] + right[1]
    return rows, bad


def _conform(raw: pl.DataFrame, index: np.ndarray, batch: Batch
             ) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Map parsed messages onto the canonical columns; every bad row with its reason."""
    mapping, topic, schema = batch.mapping, batch.topic, batch.schema
    partition, offset = batch.partition, batch.offset
    id_col = mapping.source_name("event_id")
    where = pl.DataFrame({"p": partition[index], "o": offset[index]})
    derived = where.select(pl.concat_str(pl.lit(f"{topic}/"), "p", pl.lit("/"), "o")).to_series()
    raw = raw.with_columns((pl.col(id_col).cast(pl.String).fill_null(derived)
                            if id_col in raw.columns else derived).alias(id_col))
    for required in (*schema.key, "event_time", *schema.required):  # missing: a null per row
        name = mapping.source_name(required)
        if name not in raw.columns:
            raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    fields = {mapping.source_name(c): c for c in given(schema)}
    raw = raw.select([c for c in raw.columns if c in fields])
    nested = [c for c, dtype in raw.schema.items()
              if dtype.is_nested() and not schema.columns[fields[c]].is_nested()]
    if nested:  # found per message by splitting the batch
        msg = f"field {nested[0]!r} holds a list or an object"
        raise ValueError(msg)
    raw = raw.with_columns(
        pl.lit(topic).alias(SOURCE_COL), pl.Series(ROW_COL, index, dtype=pl.Int64))
    conformed: Conformed = conform(raw.lazy(), mapping, source=f"topic {topic}",
                                   schema=schema, keep_extra=False,
                                   event_types=batch.event_types)
    reasons = [(c, conformed.raw) for c in conformed.conversion_checks] + \
              [(c, conformed.events) for c in conformed.value_checks
               if c.problem != "duplicate event_id"]
    first = pl.concat([lf.select(pl.when(c.bad.fill_null(value=False))
                                 .then(pl.lit(f"{c.column}: {c.problem}")).alias(str(i)))
                       for i, (c, lf) in enumerate(reasons)], how="horizontal").collect() \
        if reasons else pl.DataFrame()
    reason = first.select(pl.coalesce(first.columns).alias("reason"))["reason"] \
        if first.width else pl.Series("reason", [None] * raw.height, dtype=pl.String)
    events = conformed.events.collect().with_columns(reason)
    bad = events.filter(pl.col("reason").is_not_null())
    good = events.filter(pl.col("reason").is_null())
    rows = good.select(*given(schema), pl.col(ROW_COL).alias("__index"))
    return rows, list(zip(bad[ROW_COL].to_list(), bad["reason"].to_list(), strict=True))
