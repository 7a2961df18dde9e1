"""What an append refuses: the checks of a batch's columns and values before anything is stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import polars as pl

from eventkit.archive import ledger
from eventkit.archive._files import read_files
from eventkit.archive.store import Store
from eventkit.exceptions import (
    ArchiveError,
    SchemaError,
    ValidationError,
)
from eventkit.schema import BANKING, CANONICAL_SCHEMA, SUBJECT_COL, EventSchema
from eventkit.sources.conform import ColumnMapping
from eventkit.sources.upcast import Upcasters

__all__ = [
    "CIPHERTEXT_PREFIX",
    "MAX_ID_BYTES",
    "MAX_META_BYTES",
    "MAX_META_DEPTH",
    "MAX_TYPE_BYTES",
    "archive_schema",
    "check_batch_columns",
    "check_meta",
    "check_new_archive",
    "check_personal",
    "check_raw_types",
    "check_values",
    "stale_streams",
]


def check_batch_columns(
    batch: pl.DataFrame, mapping: ColumnMapping | dict[str, Any] | None, recorded_at: str,
    source: str, personal: tuple[str, ...] = (), declared: EventSchema = BANKING,
    minor_digits: int = 2,
) -> None:
    m = ColumnMapping.parse(mapping)
    m.check(declared)
    if m.amount_unit == "major" and m.minor_digits != minor_digits:
        msg = (f"the archive keeps amounts in minor units of {minor_digits} decimals; the "
               f"mapping converts major units with minor_digits={m.minor_digits}")
        raise SchemaError(msg, source=source, column="amount")
    if recorded_at not in ("now", "keep"):
        msg = f"recorded_at must be 'now' or 'keep', not {recorded_at!r}"
        raise SchemaError(msg, source=source, column="recorded_at")
    names = set(batch.columns)
    if m.source_name("seq") in names:
        msg = "seq is assigned by the archive; drop the column"
        raise SchemaError(msg, source=source, column="seq")
    if recorded_at == "now" and m.source_name("recorded_at") in names:
        msg = ("recorded_at is stamped by the archive; drop the column, or pass "
               "recorded_at='keep' to import history with its own transaction times")
        raise SchemaError(msg, source=source, column="recorded_at")
    if recorded_at == "keep" and m.source_name("recorded_at") not in names:
        msg = "recorded_at='keep' needs a recorded_at column"
        raise SchemaError(msg, source=source, column="recorded_at")
    for canonical, name in m.columns.items():
        if name not in names:
            msg = (f"missing column {canonical!r} (mapped from {name!r}); the batch has "
                   f"{sorted(names)}")
            raise SchemaError(msg, source=source, column=canonical)
    known = {m.source_name(c) for c in declared.columns}
    stored = [*declared.columns, *([SUBJECT_COL, *personal] if personal else [])]
    extra = sorted(names - known - set(stored))
    if extra:
        msg = f"unknown column(s) {extra}; the archive stores {stored}"
        raise SchemaError(msg, source=source, column=extra[0])
    for name in personal:
        if name in names and batch[name].dtype not in (pl.Binary, pl.Null):
            msg = (f"personal column holds {batch[name].dtype} values; personal fields are "
                   "stored only as ciphertext: encrypt them with eventkit.archive.privacy.encrypt")
            raise SchemaError(msg, source=source, column=name)
    if personal and SUBJECT_COL in names and batch[SUBJECT_COL].dtype not in (pl.String,
                                                                              pl.Null):
        msg = f"{SUBJECT_COL} must be text, not {batch[SUBJECT_COL].dtype}"
        raise SchemaError(msg, source=source, column=SUBJECT_COL)


def archive_schema(personal: tuple[str, ...], declared: EventSchema | None = None
                   ) -> dict[str, pl.DataType]:
    """The columns an archive stores: the declared ones (banking), ``subject``, personal ones."""
    columns = dict(CANONICAL_SCHEMA if declared is None else declared.columns)
    if not personal:
        return columns
    return {**columns, SUBJECT_COL: pl.String(), **{f: pl.Binary() for f in personal}}


def check_personal(rows: pl.DataFrame, personal: tuple[str, ...], source: str) -> None:
    """Personal values must be eventkit ciphertext of a named subject."""
    for name in personal:
        if name not in rows.columns:
            continue
        value = pl.col(name).cast(pl.Binary)
        for bad, problem in (
            (value.is_not_null() & ~value.bin.starts_with(CIPHERTEXT_PREFIX),
             "not eventkit ciphertext (plaintext is never stored; encrypt it with "
              "eventkit.archive.privacy.encrypt)"),
            (value.is_not_null() & pl.col(SUBJECT_COL).is_null()
             if SUBJECT_COL in rows.columns else value.is_not_null(),
             f"a personal value without a {SUBJECT_COL}"),
        ):
            found = rows.select(bad.arg_true().first()).item()
            if found is not None:
                raise ValidationError(problem, source=source, column=name, row=int(found))


def check_meta(meta: dict[str, Any] | None, source: str) -> dict[str, Any] | None:
    """``meta`` as it will be stored (a JSON round trip), or a clear error."""
    if meta is None:
        return None
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        msg = f"meta must be a JSON object of text keys and JSON values ({exc})"
        raise ValidationError(msg, source=source, column="meta") from None
    if not isinstance(meta, dict) or len(text.encode()) > MAX_META_BYTES \
            or ledger.json_depth(meta) > MAX_META_DEPTH:
        msg = (f"meta must be a JSON object of at most {MAX_META_BYTES:,} bytes, nested at "
               f"most {MAX_META_DEPTH} deep")
        raise ValidationError(msg, source=source, column="meta")
    return json.loads(text)


def check_raw_types(batch: pl.DataFrame, mapping: ColumnMapping, source: str,
                    declared: EventSchema = BANKING) -> pl.DataFrame:
    """Refuse column types no conversion makes sense of, before they reach the checks.

    Nested values (lists, structs) are refused unless the column is declared
    nested; bytes (Binary) in a text column must be valid UTF-8 (then they are
    read as text); unsigned integers must fit in Int64.
    """
    for canonical, want in declared.columns.items():
        name = mapping.source_name(canonical)
        if name not in batch.columns:
            continue
        column = batch[name]
        dtype = column.dtype
        if (dtype.is_nested() and not want.is_nested()) or dtype == pl.Object:
            msg = f"column holds {dtype} values; expected {want}"
            raise SchemaError(msg, source=source, column=canonical)
        if dtype == pl.Binary and want == pl.String:
            try:
                text = column.cast(pl.String)
            except pl.exceptions.PolarsError:
                row = next(i for i, v in enumerate(column) if v is not None and not _utf8(v))
                msg = f"bytes that are not UTF-8 text: {column[row][:80]!r}"
                raise ValidationError(msg, source=source, column=canonical, row=row) from None
            batch = batch.with_columns(text.alias(name))
        if dtype == pl.UInt64 and want.is_integer():
            bad = (column > _INT64_MAX).arg_true()
            if len(bad):
                row = int(bad[0])
                msg = f"value too large for a 64-bit integer: {column[row]}"
                raise ValidationError(msg, source=source, column=canonical, row=row)
    return batch


def _non_finite(expr: pl.Expr, dtype: Any) -> pl.Expr | None:
    """True where ``expr`` (of ``dtype``) is or holds NaN or ±inf; None: it holds no floats."""
    if isinstance(dtype, type):  # (a schema may hold a type's class)
        dtype = dtype()
    if dtype.is_float():
        return expr.is_nan() | expr.is_infinite()
    if isinstance(dtype, pl.List):
        inner = _non_finite(pl.element(), dtype.inner)
        return None if inner is None else expr.list.eval(inner).list.any()
    if isinstance(dtype, pl.Struct):
        parts = [bad for f in dtype.fields
                 if (bad := _non_finite(expr.struct.field(f.name), f.dtype)) is not None]
        return None if not parts else pl.any_horizontal(parts)
    return None


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_values(rows: pl.DataFrame, source: str, *, check_recorded_at: bool) -> None:
    """What the archive refuses beyond the canonical checks, before storing anything."""
    checks: list[tuple[str, pl.Expr, str]] = [
        ("event_id", pl.col("event_id").str.len_bytes() == 0, "empty event_id"),
        ("event_id", pl.col("event_id").str.len_bytes() > MAX_ID_BYTES,
         f"event_id longer than {MAX_ID_BYTES} bytes (ids are keys, not documents)"),
        ("event_type", pl.col("event_type").str.len_bytes() > MAX_TYPE_BYTES,
         f"event_type longer than {MAX_TYPE_BYTES} bytes"),
        *[(c, bad, f"{c} is NaN or infinite" if t.is_float() else
           f"{c} holds a NaN or infinite number")
          for c, t in rows.schema.items() if (bad := _non_finite(pl.col(c), t)) is not None],
        ("event_time", ~pl.col("event_time").is_between(*_TIME_RANGE, closed="left"),
         "event_time outside 1900-2200 (a wrong unit or a placeholder date?)"),
    ]
    if check_recorded_at:
        checks.append(("recorded_at", pl.col("recorded_at") < _TIME_RANGE[0],
                       "recorded_at before 1900"))
    found = rows.select(pl.col(c).filter(bad.fill_null(value=False)).len().alias(str(i))
                        for i, (c, bad, _) in enumerate(checks)).row(0)
    for (column, bad, problem), count in zip(checks, found, strict=True):
        if count:
            row = int(rows.select(bad.fill_null(value=False).arg_true().first()).item())
            value = rows[column][row]
            value = value.to_list() if isinstance(value, pl.Series) else value  # (a list)
            shown = f"{len(value.encode()):,} bytes" if isinstance(value, str) and \
                len(value) > 80 else repr(value)
            raise ValidationError(f"{problem}: {shown}", source=source, column=column,
                                  row=row)


#: How every ciphertext eventkit stores begins (see :mod:`eventkit.archive.privacy`): a personal
#: column holding anything else (such as plaintext cast to bytes) is refused.
CIPHERTEXT_PREFIX = b"ek1\x00"


#: Longest ``event_id`` an archive stores, in UTF-8 bytes (ids are keys, not documents).
MAX_ID_BYTES = 256


#: Largest ``meta`` object one append stores with its commit, in bytes of JSON.
MAX_META_BYTES = 64 * 1024
#: How deeply ``meta`` may nest (its commit record is read back only up to
#: :data:`~eventkit.archive.ledger.MAX_JSON_DEPTH`).
MAX_META_DEPTH = 16


#: Longest ``event_type`` an archive stores, in UTF-8 bytes.
MAX_TYPE_BYTES = 64


_INT64_MAX = 2**63 - 1


#: Valid and transaction times must fall in 1900 .. 2200 (a wrong unit or a sentinel
#: such as 9999-12-31 otherwise): the same plausible range the loaders use for epochs.
_TIME_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


def check_new_archive(store: Store, personal: tuple[str, ...],
                      declared: EventSchema | None = None) -> None:
    """``store`` must be a new or empty folder (or prefix), ``personal`` distinct plain names."""
    root = store.root
    if store.is_folder(ledger.LOG_DIR):
        msg = f"an archive already exists at {root}"
        raise ArchiveError(msg, path=root)
    if store.local and store.path("").exists() and not store.path("").is_dir():
        msg = f"{root} is a file; choose a folder for the archive"
        raise ArchiveError(msg, path=root)
    if store.local and store.path("").is_dir() and any(store.path("").iterdir()) or (
            not store.local and store.list_files("")):
        msg = f"{root} exists and is not empty; choose a new folder for the archive"
        raise ArchiveError(msg, path=root)
    taken = CANONICAL_SCHEMA if declared is None else declared.columns
    bad = [f for f in personal if f in taken or f == SUBJECT_COL or not f.isidentifier()]
    if bad or len(set(personal)) != len(personal):
        msg = (f"personal fields must be distinct names other than the canonical columns "
               f"and {SUBJECT_COL!r}: {list(personal)}")
        raise SchemaError(msg, source=str(root), column=bad[0] if bad else None)


def stale_streams(store: Store, entries: list[dict[str, Any]], schema: dict[str, pl.DataType],
                  upcasters: Upcasters, rows: pl.DataFrame, key: tuple[str, ...], version: int,
                  shared: object = None) -> str | None:
    """Which of ``rows``' streams got events after archive ``version`` (None: none did).

    A stream is a value of the archive's ``key``; the ``shared`` key's stream
    (global events, such as the bank's rate changes, which every stream's state
    follows) counts as each one's. Only the live files (``entries``) that may
    hold events after that version's last ``seq`` are read (their recorded
    ranges say which), one key column each.
    """
    since = _last_seq_at(store, version)
    later = [e for e in entries if _last_seq(e) > since]
    if not later:
        return None
    wanted = rows.select(key).unique()
    if shared is not None:
        values = shared if isinstance(shared, tuple) else (shared,)
        wanted = pl.concat([wanted, pl.DataFrame([values], schema=wanted.schema, orient="row")])
    found = (read_files(store, later, schema, upcasters=upcasters)
             .filter(pl.col("seq") > since).select(key).unique()
             .join(wanted.lazy(), on=list(key), how="semi").head(1).collect())
    if found.height == 0:
        return None
    value = found.row(0)
    return f"stream {value[0] if len(value) == 1 else value!r}"


def _last_seq_at(store: Store, version: int) -> int:
    """The last ``seq`` stored by version ``version`` (-1: none), reading commits back from it."""
    for v in range(version, 0, -1):
        seq = (ledger.read_commit(store, v).record or {}).get("seq")
        if seq:
            return int(seq[1])
    return -1


def _last_seq(entry: dict[str, Any]) -> int:
    stats = json.loads(entry["stats"]) if "stats" in entry else None
    return int(stats["maxValues"]["seq"]) if stats else 2**62
