"""An archive's declared schema: fixed at creation, evolved only by audited commits.

The genesis record of an archive created with its own columns keeps the
declaration (key, money, required and metadata columns; the types are the
table's own fields, which the record pins too). An archive created without
one holds the banking schema. Adding a column later is an ``evolve`` commit
(:func:`evolve`): in the hash chain, it changes the Delta table's schema (the
one metadata change an archive accepts after creation, checked against its
record) and raises the archive's schema version by one; the files written
before it are never rewritten: an upcasting step (see
:mod:`eventkit.sources.upcast`) gives their rows the new column (null)
whenever they are read.

>>> import tempfile, polars as pl
>>> from datetime import datetime, UTC
>>> from eventkit.archive.table import EventArchive
>>> archive = EventArchive.create(tempfile.mkdtemp() + "/orders", key="order_id",
...                               columns={"order_id": "string", "qty": "int"})
>>> t = datetime(2024, 1, 1, tzinfo=UTC)
>>> _ = archive.append(pl.DataFrame({"event_id": ["a"], "order_id": ["o-1"],
...     "event_type": ["Placed"], "event_time": [t], "qty": [2]}))
>>> archive.evolve({"coupon": "string"}).schema_version
4
>>> _ = archive.append(pl.DataFrame({"event_id": ["b"], "order_id": ["o-1"],
...     "event_type": ["Placed"], "event_time": [t], "qty": [1], "coupon": ["WINTER"]}))
>>> archive.scan().select("event_id", "coupon").collect().rows()
[('a', None), ('b', 'WINTER')]
>>> archive.verify().ok
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import Schema

from eventkit.archive import head, ledger
from eventkit.archive._files import commit_actions, commit_version, delta_schema
from eventkit.archive.store import Store
from eventkit.exceptions import SchemaError
from eventkit.schema import BANKING, CORE_COLUMNS, SUBJECT_COL, EventSchema, typed_columns
from eventkit.sources.upcast import CURRENT_VERSION, UPCASTERS, Upcaster, Upcasters

__all__ = ["Evolution", "Layout", "declaration", "evolve", "fields_of", "genesis_record",
           "layout", "table_fields"]

_FORMAT = 1


@dataclass(frozen=True)
class Layout:
    """What an archive holds now: its declared schema, stored columns and schema versions."""

    declared: EventSchema
    stored: dict[str, pl.DataType]
    upcasters: Upcasters


@dataclass(frozen=True)
class Evolution:
    """What :func:`evolve` did: the commit, the columns added, the new schema version."""

    version: int
    added: tuple[str, ...]
    schema_version: int
    head: str


def table_fields(schema: Mapping[str, pl.DataType]) -> list[list[Any]]:
    """The table's fields as a record pins them: ``[name, Delta type]`` pairs."""
    return [[f.name, json.loads(f.to_json())["type"]] for f in delta_schema(dict(schema)).fields]


def fields_of(fields: Sequence[Sequence[Any]]) -> dict[str, pl.DataType]:
    """The Polars types of a record's table fields (see :func:`table_fields`)."""
    if not fields:
        return {}
    text = json.dumps({"type": "struct", "fields": [
        {"name": name, "type": typ, "nullable": True, "metadata": {}} for name, typ in fields]})
    arrow = pa.schema(Schema.from_json(text).to_arrow())
    return dict(pl.DataFrame(arrow.empty_table()).schema)


def layout(genesis: dict[str, Any], evolutions: Sequence[dict[str, Any]]) -> Layout:
    """The declared schema, the stored columns and the upcasters, from the log's records."""
    personal = tuple(genesis.get("personal") or ())
    event_types = tuple(genesis["event_types"]) if genesis.get("event_types") else None
    decl = genesis.get("schema")
    if decl is None:
        declared = replace(BANKING, event_types=event_types, text_ids=False)
    else:
        hidden = {SUBJECT_COL, *personal}
        columns = {c: t for c, t in fields_of(genesis["table"]["fields"]).items()
                   if c not in hidden}
        declared = EventSchema(columns, tuple(decl["key"]), tuple(decl.get("money", ())),
                               tuple(decl.get("required", ())), tuple(decl.get("metadata", ())),
                               event_types)
    steps = dict(UPCASTERS._steps)
    current = CURRENT_VERSION
    for record in evolutions:
        added = fields_of(record["added"])
        steps[current] = Upcaster(current, columns={c: pl.lit(None, t) for c, t in added.items()},
                                  added=tuple(added), description=f"add {list(added)}")
        current += 1
        declared = replace(declared, columns={**declared.columns, **added},
                           money=(*declared.money, *record.get("money", ())),
                           metadata=(*declared.metadata, *record.get("metadata", ())))
    stored = dict(declared.columns)
    if personal:
        stored.update({SUBJECT_COL: pl.String(), **{f: pl.Binary() for f in personal}})
    return Layout(declared, stored, Upcasters(current, tuple(steps.values())))


def declaration(schema: EventSchema | None, *, key: str | Sequence[str] | None,
                columns: Mapping[str, Any] | None, metadata: Sequence[str] | Mapping[str, Any],
                required: Sequence[str], path: str) -> EventSchema | None:
    """The schema :meth:`EventArchive.create` was given (None: the banking one)."""
    if schema is None and columns is not None:
        return EventSchema.declare(key=key or "account_id", columns=columns,
                                   metadata=metadata, required=required)
    if schema is None and (key is not None or metadata or required):
        msg = "key, metadata and required declare an archive's own columns: give columns too"
        raise SchemaError(msg, source=path)
    return schema


def genesis_record(stored: Mapping[str, pl.DataType], schema: EventSchema | None, *,
                   event_types: Sequence[str] | None, personal: Sequence[str],
                   buckets: int | None, shared_key: object, configuration: dict[str, str],
                   path: str, minor_digits: int = 2) -> dict[str, Any]:
    """The record of an archive's first commit: what it holds, pinned in the hash chain."""
    record: dict[str, Any] = {
        "format": _FORMAT,
        "kind": "create",
        "event_types": list(event_types) if event_types is not None else None,
        **({"personal": list(personal)} if personal else {}),
        **({"minor_digits": minor_digits} if minor_digits != 2 else {}),
        "table": {"configuration": configuration, "partitionColumns": [],
                  "fields": table_fields(stored)},
        "prev": ledger.GENESIS,
    }
    if schema is not None:
        record["schema"] = schema.record()
        record["key"] = list(schema.key)
        record["shared_key"] = list(shared_key) if isinstance(shared_key, tuple) else shared_key
    elif shared_key is not None:
        msg = "the banking schema's shared key is account 0 (the bank): give no shared_key"
        raise SchemaError(msg, source=path)
    if buckets is not None:
        record["buckets"] = buckets
    return record


def evolve(store: Store, current: Layout, add: Mapping[str, Any], *,
           metadata: Sequence[str] = ()) -> Evolution:
    """Add columns to the archive in ``store`` (see :meth:`EventArchive.evolve`): one commit.

    ``current`` is the archive's layout now (its stored columns and version);
    the caller holds the writer lock. The commit carries the table's new Delta
    ``metaData`` (the genesis one with the new schema) and a record pinning it;
    it is created put-if-absent, so a writer that lost the version gets
    :class:`~eventkit.exceptions.AppendConflictError` and nothing changes.
    """
    root = store.root
    if not add:
        msg = "evolve adds at least one column: add={'name': 'type'}"
        raise SchemaError(msg, source=root)
    taken = [c for c in add if c in current.stored or c in CORE_COLUMNS or c == SUBJECT_COL]
    if taken:
        msg = f"column(s) {taken} exist already; evolve only adds new columns"
        raise SchemaError(msg, source=root, column=taken[0])
    added = typed_columns(add)
    unknown = [m for m in metadata if m not in add]
    if unknown:
        msg = f"metadata column(s) {unknown} are not among the columns added"
        raise SchemaError(msg, source=root, column=unknown[0])
    state = head.log_state(store)  # refuses to extend a damaged log
    genesis = ledger.read_commit(store, 0)
    new_stored = {**current.stored, **added}
    last = state.record
    record: dict[str, Any] = {
        "format": _FORMAT, "kind": "evolve", "added": table_fields(added),
        "money": [c for c, t in add.items() if isinstance(t, str)
                  and t.strip().lower() == "money"],
        "metadata": list(metadata),
        "schema_version": current.upcasters.current + 1,
        "table": {**(genesis.record or {}).get("table", {}), "fields": table_fields(new_stored)},
        "prev": last["digest"],
    }
    for carried in ("seq", "recorded_until"):  # what the next append continues from
        if carried in last:
            record[carried] = last[carried]
    record["digest"] = ledger.chain_digest(last["digest"], record)
    meta = {**(genesis.metadata or {}), "schemaString": delta_schema(new_stored).to_json()}
    body = commit_actions(record, "ADD COLUMNS", {"columns": list(added)}, [{"metaData": meta}])
    commit_version(store, state.version + 1, body)
    return Evolution(state.version + 1, tuple(added), record["schema_version"], record["digest"])
