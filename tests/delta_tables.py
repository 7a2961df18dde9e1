"""Delta tables as other engines leave them, made with deltalake (delta-rs) and the protocol.

deltalake writes column mapping (physical column names in the files) and
classic checkpoints itself, and vacuums. Two things it does not write are
made here by hand, exactly as the Delta protocol (PROTOCOL.md) specifies
them and as Spark writes them: a **deletion vector** (a commit that re-adds a
file with an inline DV: a RoaringTreemap of deleted row positions, magic
1681511377, Z85-encoded; checked against delta-kernel-rs's own example), and
a **v2 checkpoint** (UUID-named, with a ``checkpointMetadata`` action, and the
JSON commits before it cleaned up). Tests read each back through eventkit.
"""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
#: delta-kernel-rs's example inline DV (rows 3, 4, 7, 11, 18, 29), which z85 of dv() must give
KERNEL_EXAMPLE = "^Bg9^0rr910000000000iXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L"


def z85(data: bytes) -> str:
    """Z85 (ZeroMQ's base85), as Delta encodes inline deletion vectors."""
    out = []
    for i in range(0, len(data), 4):
        value = int.from_bytes(data[i:i + 4], "big")
        chars = []
        for _ in range(5):
            value, rest = divmod(value, 85)
            chars.append(_Z85[rest])
        out.append("".join(reversed(chars)))
    return "".join(out)


def dv(rows: list[int]) -> bytes:
    """A serialized deletion vector of ``rows`` (< 65536): magic, then a RoaringTreemap.

    The treemap: one 32-bit bitmap (key 0) in the portable Roaring format, one
    array container (cookie 12346, the container's key and cardinality - 1, its
    offset, the sorted 16-bit values).
    """
    rows = sorted(rows)
    bitmap = (struct.pack("<II", 12346, 1) + struct.pack("<HH", 0, len(rows) - 1)
              + struct.pack("<I", 16) + b"".join(struct.pack("<H", r) for r in rows))
    return struct.pack("<IQI", 1681511377, 1, 0) + bitmap


def _commit(root: Path, version: int, actions: list[dict[str, Any]]) -> None:
    with (root / "_delta_log" / f"{version:020d}.json").open("w") as f:
        for action in actions:
            f.write(json.dumps(action) + "\n")


def events(n: int, start: int = 1) -> pl.DataFrame:
    """``n`` deposits by accounts ``start``, ``start + 1``, ... one day apart."""
    times = pl.datetime_range(pl.datetime(2024, 1, 1, time_zone="UTC"),
                              pl.datetime(2024, 1, n, time_zone="UTC"), "1d", eager=True)
    return pl.DataFrame({"account_id": list(range(start, start + n)),
                         "event_type": ["Deposit"] * n, "amount": [100 * i for i in range(n)],
                         "event_time": times})


def column_mapped(root: Path) -> Path:
    """A table whose files store physical column names (``delta.columnMapping.mode=name``)."""
    write_deltalake(str(root), events(4).to_arrow(),
                    configuration={"delta.columnMapping.mode": "name"})
    return root


def deletion_vector(root: Path, deleted: list[int]) -> Path:
    """A table of 8 events whose file has a deletion vector for rows ``deleted``."""
    write_deltalake(str(root), events(8).to_arrow(),
                    configuration={"delta.enableDeletionVectors": "true"})
    add = pa.table(DeltaTable(str(root)).get_add_actions(flatten=False)).to_pylist()[0]
    raw, now = dv(deleted), int(time.time() * 1000)
    _commit(root, 1, [
        {"commitInfo": {"timestamp": now, "operation": "DELETE"}},
        {"remove": {"path": add["path"], "deletionTimestamp": now, "dataChange": True,
                    "extendedFileMetadata": True, "partitionValues": {},
                    "size": add["size_bytes"]}},
        {"add": {"path": add["path"], "partitionValues": {}, "size": add["size_bytes"],
                 "modificationTime": now, "dataChange": True,
                 "stats": json.dumps({"numRecords": 8}),
                 "deletionVector": {"storageType": "i", "pathOrInlineDv": z85(raw),
                                    "sizeInBytes": len(raw), "cardinality": len(deleted)}}},
    ])
    return root


def checkpointed_and_vacuumed(root: Path) -> Path:
    """Three appends, one file removed, a checkpoint, the log cleaned up and the file vacuumed."""
    for i in range(3):
        write_deltalake(str(root), events(2, start=1 + 2 * i).to_arrow(),
                        mode="append" if i else "error")
    table = DeltaTable(str(root))
    table.delete("account_id = 3")  # rewrites one file: a remove and an add
    table.create_checkpoint()
    checkpoint = table.version()
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    for path in (root / "_delta_log").glob("*.json"):  # as a metadata cleanup leaves it
        if int(path.stem) < checkpoint:
            path.unlink()
    return root


def v2_checkpoint(root: Path) -> Path:
    """A table needing the ``v2Checkpoint`` feature, readable only through its v2 checkpoint."""
    write_deltalake(str(root), events(2).to_arrow())
    write_deltalake(str(root), events(2, start=3).to_arrow(), mode="append")
    log = root / "_delta_log"
    first = [json.loads(line) for line in (log / f"{0:020d}.json").read_text().splitlines()]
    for action in first:
        if "protocol" in action:
            action["protocol"] = {"minReaderVersion": 3, "minWriterVersion": 7,
                                  "readerFeatures": ["v2Checkpoint"],
                                  "writerFeatures": ["v2Checkpoint"]}
        if "metaData" in action:
            action["metaData"]["configuration"]["delta.checkpointPolicy"] = "v2"
    adds = [json.loads(line) for v in (0, 1)
            for line in (log / f"{v:020d}.json").read_text().splitlines()]
    actions = [{"checkpointMetadata": {"version": 1}},
               *[a for a in first if "protocol" in a or "metaData" in a],
               *[a for a in adds if "add" in a]]
    name = f"{1:020d}.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.json"
    with (log / name).open("w") as f:
        for action in actions:
            f.write(json.dumps(action) + "\n")
    size = os.path.getsize(log / name)
    (log / "_last_checkpoint").write_text(json.dumps({
        "version": 1, "size": len(actions), "sizeInBytes": size, "numOfAddFiles": 2,
        "v2Checkpoint": {"path": name, "sizeInBytes": size, "modificationTime": 0}}))
    for v in (0, 1):
        (log / f"{v:020d}.json").unlink()
    return root


def needs_feature(root: Path, feature: str) -> Path:
    """A plain table whose protocol asks readers for ``feature`` (one eventkit lacks)."""
    write_deltalake(str(root), events(2).to_arrow())
    path = root / "_delta_log" / f"{0:020d}.json"
    actions = [json.loads(line) for line in path.read_text().splitlines()]
    for action in actions:
        if "protocol" in action:
            action["protocol"] = {"minReaderVersion": 3, "minWriterVersion": 7,
                                  "readerFeatures": [feature], "writerFeatures": [feature]}
    path.write_text("".join(json.dumps(a) + "\n" for a in actions))
    return root
