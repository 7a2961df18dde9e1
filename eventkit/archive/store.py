"""Where an archive's bytes live: a local folder or an object store, behind one small interface.

Every module that reads or writes an archive's files (commits, data files,
checkpoints, snapshots, live state) goes through a :class:`Store` rooted at the
archive: paths are relative to it, with ``/`` between parts. Two kinds:

* :class:`LocalStore` — a folder on this machine's file system. Writes are
  durable (file and folder ``fsync``-ed) and atomic (a temporary file renamed);
  :meth:`Store.put_if_absent` is a hard link, which fails when the name exists,
  from a temporary file in :data:`STAGING` (one small folder: what a killed
  writer left there is found without listing the commit log).
* :class:`ObjectStore` — ``s3://``, ``gs://``, ``az://``/``abfs://`` (and any
  other URL :mod:`obstore` opens), the same object stores Polars and deltalake
  read. Credentials come from the environment (``AWS_ACCESS_KEY_ID``,
  ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, …) or from
  ``storage_options`` (the keys Polars and deltalake take, e.g.
  ``{"aws_endpoint_url": "http://127.0.0.1:9000", "aws_allow_http": "true"}``).
  :meth:`Store.put_if_absent` is the store's conditional write (S3
  ``If-None-Match: *``, GCS ``ifGenerationMatch=0``, Azure ``If-None-Match``):
  of two writers, exactly one creates an object.

Commits are only ever created with :meth:`Store.put_if_absent`, so two writers
never both commit a version. A store that cannot create conditionally (plain
HTTP, an S3-compatible server that ignores ``If-None-Match``) is found by
:meth:`Store.check_atomic` and refused for appends with a
:class:`~eventkit.exceptions.StorageError`; it can still be read.

Examples
--------
>>> import tempfile
>>> store = open_store(tempfile.mkdtemp())
>>> store.put_if_absent("_delta_log/00.json", b"{}"), store.put_if_absent("_delta_log/00.json", b"")
(True, False)
>>> store.read("_delta_log/00.json"), store.list_files("_delta_log/")
(b'{}', ['_delta_log/00.json'])

"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventkit.exceptions import StorageError

if TYPE_CHECKING:
    from obstore.store import ObjectStore as _Obstore

__all__ = ["PRIVATE_DIR", "STAGING", "LocalStore", "ObjectStore", "Stat", "Store", "is_url",
           "open_store"]

#: Folder of eventkit's own bookkeeping inside a table (lock, pending writes, staging).
PRIVATE_DIR = "_eventkit"
#: Where a local store writes the temporary files it links into place (hidden names).
STAGING = f"{PRIVATE_DIR}/staging"

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
#: Storage options that are HTTP client settings rather than the store's own (obstore
#: takes them apart; Polars and deltalake take both in one mapping).
_CLIENT_KEYS = frozenset({"allow_http", "allow_invalid_certificates", "connect_timeout",
                          "timeout", "proxy_url", "user_agent", "pool_idle_timeout",
                          "pool_max_idle_per_host", "http1_only", "http2_only"})


def is_url(location: str | Path) -> bool:
    """Whether ``location`` is a URL (``s3://…``) rather than a local path.

    Examples
    --------
    >>> is_url("s3://bank/archive"), is_url("data/sample"), is_url("file:///tmp/x")
    (True, False, False)

    """
    text = str(location)
    return bool(_URL.match(text)) and not text.startswith("file://")


@dataclass(frozen=True)
class Stat:
    """What a store tells about a file without reading it.

    ``tag`` changes whenever the file's content may have (local: mtime, ctime,
    inode and device; object store: its ETag or version); ``changed_ns`` is
    when it last changed (nanoseconds since the epoch).
    """

    size: int
    tag: tuple[object, ...]
    changed_ns: int


class Store:
    """The files of one archive (or of a folder beside it); see the module docstring."""

    #: The store's root: a local path or a URL (named in every message).
    root: str
    #: What Polars and deltalake need to read :meth:`uri` (None for a local folder).
    storage_options: dict[str, str] | None
    #: True for a folder on this machine (paths, ``fsync``, links).
    local: bool

    def uri(self, rel: str) -> str:
        """``rel`` as Polars and deltalake open it (a path, or a URL)."""
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root

    def child(self, rel: str) -> Store:
        """The store rooted at the folder ``rel`` of this one."""
        raise NotImplementedError

    def read(self, rel: str) -> bytes:
        """The bytes of ``rel``; :class:`FileNotFoundError` when it does not exist."""
        raise NotImplementedError

    def read_stat(self, rel: str) -> tuple[bytes, Stat]:
        """The bytes of ``rel`` and its :class:`Stat` as they were read (one request)."""
        data = self.read(rel)
        st = self.stat(rel)
        return data, st if st is not None else Stat(len(data), (), 0)

    def write(self, rel: str, data: bytes) -> None:
        """Store ``data`` as ``rel``, durably, replacing it whole (readers never see a part)."""
        raise NotImplementedError

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """Create ``rel`` with ``data`` unless it exists (then False, nothing written). Atomic."""
        raise NotImplementedError

    def stat(self, rel: str) -> Stat | None:
        """Size and change tag of ``rel`` (None when it does not exist)."""
        raise NotImplementedError

    def list_files(self, prefix: str = "", *, after: str | None = None) -> list[str]:
        """Every file under the folder ``prefix`` (recursively), sorted; only names > ``after``."""
        raise NotImplementedError

    def listing(self, prefix: str = "", *, after: str | None = None) -> list[tuple[str, Stat]]:
        """Like :meth:`list`, with each file's :class:`Stat`."""
        return [(rel, st) for rel in self.list_files(prefix, after=after)
                if (st := self.stat(rel)) is not None]

    def delete(self, rel: str) -> None:
        """Remove ``rel`` (nothing when it is already gone)."""
        raise NotImplementedError

    def delete_tree(self, prefix: str) -> None:
        """Remove every file under the folder ``prefix``."""
        for rel in self.list_files(prefix):
            self.delete(rel)

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` exists."""
        return self.stat(rel) is not None

    def is_folder(self, prefix: str) -> bool:
        """Whether any file lies under the folder ``prefix``."""
        return bool(self.list_files(prefix))

    def path(self, rel: str) -> Path:
        """``rel`` as a local path; :class:`StorageError` for an object store."""
        msg = f"{self.uri(rel)} is in an object store, not on this machine's disk"
        raise StorageError(msg, path=self.root)

    def check_atomic(self) -> None:
        """Raise :class:`StorageError` unless :meth:`put_if_absent` is atomic here (cached)."""

    def flush(self, prefix: str = "") -> None:
        """Make the folder ``prefix``'s entries durable (``fsync``; nothing in an object store)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Store) and (type(self), self.root) == (type(other), other.root)

    def __hash__(self) -> int:
        return hash((type(self), self.root))


class LocalStore(Store):
    """A folder on this machine's file system (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.base = Path(root)
        self.root = str(self.base)
        self.storage_options = None
        self.local = True

    def child(self, rel: str) -> LocalStore:
        """The store rooted at the folder ``rel`` of this one."""
        return LocalStore(self.base / rel)

    def path(self, rel: str) -> Path:
        """``rel`` as a local path."""
        return self.base / rel if rel else self.base

    def uri(self, rel: str) -> str:
        """``rel`` as a path."""
        return str(self.path(rel))

    def read(self, rel: str) -> bytes:
        """The bytes of ``rel``; :class:`FileNotFoundError` when it does not exist."""
        return self.path(rel).read_bytes()

    def write(self, rel: str, data: bytes) -> None:
        """A temporary file written and flushed, renamed over ``rel``, the folder flushed."""
        with self._staged(rel, data) as (tmp, final):
            os.replace(tmp, final)
        fsync(final.parent)

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """A flushed temporary file in :data:`STAGING` hard-linked to ``rel`` (fails if taken)."""
        with self._staged(rel, data, folder=self.path(STAGING)) as (tmp, final):
            try:
                os.link(tmp, final)
            except FileExistsError:
                return False
        fsync(final.parent)
        return True

    @contextmanager
    def _staged(self, rel: str, data: bytes, *, folder: Path | None = None
                ) -> Iterator[tuple[Path, Path]]:
        """``data`` in a flushed temporary file beside ``rel`` or in ``folder`` (then removed)."""
        final = self.path(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        tmp = (folder or final.parent) / f".{final.name}.{uuid.uuid4().hex}.tmp"
        try:
            write_durably(tmp, data)
            yield tmp, final
        finally:
            tmp.unlink(missing_ok=True)

    def stat(self, rel: str) -> Stat | None:
        """Size, and (mtime, ctime, inode, device) as the change tag."""
        try:  # (os.path, not pathlib: the cached head stats its commits on every append)
            st = os.stat(os.path.join(self.root, rel) if rel else self.root)
        except FileNotFoundError:
            return None
        return Stat(st.st_size, (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev),
                    max(st.st_mtime_ns, st.st_ctime_ns))

    def list_files(self, prefix: str = "", *, after: str | None = None) -> list[str]:
        """Every file under ``prefix``, sorted (a walk of the folder)."""
        top = self.path(prefix.rstrip("/"))
        found: list[str] = []
        for dirpath, _, filenames in os.walk(top):
            rel_dir = Path(dirpath).relative_to(self.base).as_posix()
            found += [name if rel_dir == "." else f"{rel_dir}/{name}" for name in filenames]
        found.sort()
        return found if after is None else [r for r in found if r > after]

    def delete(self, rel: str) -> None:
        """Unlink ``rel`` (missing is fine)."""
        self.path(rel).unlink(missing_ok=True)

    def delete_tree(self, prefix: str) -> None:
        """Remove the folder ``prefix`` and everything in it."""
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def is_folder(self, prefix: str) -> bool:
        """Whether ``prefix`` is a folder."""
        return self.path(prefix).is_dir()

    def flush(self, prefix: str = "") -> None:
        """``fsync`` the folder ``prefix``."""
        fsync(self.path(prefix))


class ObjectStore(Store):
    """A prefix of an object store bucket, through :mod:`obstore` (see the module docstring)."""

    #: Roots whose conditional writes were checked in this process (see :meth:`check_atomic`).
    _ATOMIC: dict[str, str | None] = {}

    def __init__(self, url: str, storage_options: Mapping[str, str] | None = None) -> None:
        from obstore.store import from_url  # noqa: PLC0415 (only object stores need obstore)

        self.root = url.rstrip("/")
        self.storage_options = {k.lower(): str(v) for k, v in (storage_options or {}).items()}
        self.local = False
        config: dict[str, Any] = {}
        client: dict[str, Any] = {}
        for key, value in self.storage_options.items():
            bare = key.split("_", 1)[1] if key.startswith(("aws_", "google_", "azure_")) else key
            if bare in _CLIENT_KEYS:
                client[bare] = value
            else:
                config[key] = value
        try:
            self._store: _Obstore = from_url(
                self.root, config=config or None,  # type: ignore[arg-type]
                client_options=client or None)  # type: ignore[arg-type]
        except BaseException as exc:  # obstore raises (and panics) on unknown keys and schemes
            if not isinstance(exc, Exception | _panic()):
                raise
            msg = f"cannot open the object store at {self.root}: {exc}"
            raise StorageError(msg, path=self.root) from None

    def child(self, rel: str) -> ObjectStore:
        """The store rooted at the prefix ``rel`` of this one."""
        return ObjectStore(self.uri(rel), self.storage_options)

    def read(self, rel: str) -> bytes:
        """One GET; :class:`FileNotFoundError` when the object does not exist."""
        import obstore  # noqa: PLC0415

        with self._errors(rel):
            return obstore.get(self._store, rel).bytes().to_bytes()

    def read_stat(self, rel: str) -> tuple[bytes, Stat]:
        """One GET: the bytes and the object's stat from the same response."""
        import obstore  # noqa: PLC0415

        with self._errors(rel):
            found = obstore.get(self._store, rel)
            return found.bytes().to_bytes(), _stat(found.meta)

    def write(self, rel: str, data: bytes) -> None:
        """One PUT (an object appears whole or not at all)."""
        import obstore  # noqa: PLC0415

        with self._errors(rel):
            obstore.put(self._store, rel, data)

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """A conditional PUT (``mode="create"``): False when the object exists."""
        import obstore  # noqa: PLC0415
        from obstore.exceptions import AlreadyExistsError, PreconditionError  # noqa: PLC0415

        try:
            with self._errors(rel, passing=(AlreadyExistsError, PreconditionError)):
                obstore.put(self._store, rel, data, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return False
        return True

    def stat(self, rel: str) -> Stat | None:
        """One HEAD: size, and the ETag (or version) as the change tag."""
        import obstore  # noqa: PLC0415

        try:
            with self._errors(rel):
                meta = obstore.head(self._store, rel)
        except FileNotFoundError:
            return None
        return _stat(meta)

    def list_files(self, prefix: str = "", *, after: str | None = None) -> list[str]:
        """One LIST (paged), starting after ``after`` when given."""
        return [m["path"] for m in self._listing(prefix, after)]

    def listing(self, prefix: str = "", *, after: str | None = None) -> list[tuple[str, Stat]]:
        """Like :meth:`list`, with each object's :class:`Stat` (from the same LIST)."""
        return [(m["path"], _stat(m)) for m in self._listing(prefix, after)]

    def _listing(self, prefix: str, after: str | None) -> list[Any]:
        import obstore  # noqa: PLC0415

        folder = prefix.rstrip("/")
        with self._errors(prefix):
            found = [m for batch in obstore.list(self._store, folder or None, offset=after,
                                                 chunk_size=1000) for m in batch]
        found.sort(key=lambda m: m["path"])
        return found

    def delete(self, rel: str) -> None:
        """One DELETE (missing is fine)."""
        import obstore  # noqa: PLC0415

        try:
            with self._errors(rel):
                obstore.delete(self._store, rel)
        except FileNotFoundError:
            pass

    def check_atomic(self) -> None:
        """Create one probe object twice: the second conditional PUT must fail.

        Done once per process and store; a store that lets both through (an
        S3-compatible server that ignores ``If-None-Match``) or cannot create
        conditionally at all raises :class:`StorageError`: appends there could
        overwrite each other's commits.
        """
        import obstore  # noqa: PLC0415
        from obstore.exceptions import NotSupportedError  # noqa: PLC0415

        if self.root not in self._ATOMIC:
            probe = f"_eventkit/probe/{uuid.uuid4().hex}"
            try:
                first = self.put_if_absent(probe, b"1")
                second = self.put_if_absent(probe, b"2")
                problem = None if first and not second else (
                    "it let a conditional write (If-None-Match) replace an existing object")
            except NotSupportedError as exc:
                problem = f"it cannot write conditionally ({exc})"
            finally:
                with self._errors(probe, passing=(FileNotFoundError,)):
                    try:
                        obstore.delete(self._store, probe)
                    except FileNotFoundError:
                        pass
            self._ATOMIC[self.root] = problem
        problem = self._ATOMIC[self.root]
        if problem is not None:
            msg = (f"{self.root}: this store cannot take appends safely: {problem}. Concurrent "
                   "writers could overwrite each other's commits; use a store with atomic "
                   "conditional writes (AWS S3, GCS, Azure Blob, MinIO, a local folder)")
            raise StorageError(msg, path=self.root)

    def _errors(self, rel: str, passing: tuple[type[BaseException], ...] = ()) -> _Errors:
        return _Errors(self, rel, passing)


class _Errors:
    """Turn obstore's errors into ours, naming the object (a missing one: FileNotFoundError)."""

    def __init__(self, store: ObjectStore, rel: str,
                 passing: tuple[type[BaseException], ...]) -> None:
        self.store, self.rel, self.passing = store, rel, passing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 _tb: object) -> None:
        if exc is None or isinstance(exc, (FileNotFoundError, *self.passing)):
            return
        if not isinstance(exc, Exception | _panic()):
            return
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        msg = f"{self.store.uri(self.rel)}: the object store failed ({type(exc).__name__}: {first})"
        raise StorageError(msg, path=self.store.root) from None


def _panic() -> type[BaseException]:
    import polars as pl  # noqa: PLC0415 (pyo3's PanicException, as Polars exposes it)

    return pl.exceptions.PanicException


def _stat(meta: Any) -> Stat:
    changed = meta.get("last_modified")
    return Stat(int(meta["size"]), (meta.get("e_tag"), meta.get("version")),
                int(changed.timestamp() * 1e9) if changed is not None else 0)


def open_store(location: str | Path | Store,
               storage_options: Mapping[str, str] | None = None) -> Store:
    """The store at ``location``: an object store for a URL, else a local folder.

    Examples
    --------
    >>> open_store("data/sample")
    LocalStore('data/sample')
    >>> open_store("data/sample", {"aws_region": "eu-west-1"})
    Traceback (most recent call last):
    ...
    eventkit.StorageError: storage_options apply to archives at URLs (s3://...), not to data/sample

    """
    if isinstance(location, Store):
        return location
    if is_url(location):
        return ObjectStore(str(location), storage_options)
    if storage_options:
        msg = f"storage_options apply to archives at URLs (s3://...), not to {location}"
        raise StorageError(msg, path=str(location))
    text = str(location)
    return LocalStore(text.removeprefix("file://") if text.startswith("file://") else text)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to the local file ``path`` and flush it to disk."""
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync(path: Path) -> None:
    """Flush a local file or folder (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
