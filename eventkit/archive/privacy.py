"""Personal data in an immutable log: per-subject encryption, erasure, pseudonyms.

An archive created with personal fields (``EventArchive.create(path,
personal=("name", "email", "iban"))``) stores each personal value as AES-GCM
ciphertext under a key of its data subject (``subject`` column), a fresh
96-bit nonce per value, authenticated with the field and subject names.
Keys live in a :class:`KeyStore` (a SQLite file *beside* the archive, never
in it). :meth:`KeyStore.forget` destroys a subject's key: the ciphertext stays
in the archive, byte for byte, so the hash chain still verifies and every
replay (which never reads personal fields, nor needs a key) answers as before,
but the values can no longer be read: :func:`reveal` shows :data:`ERASED`.

Encryption and decryption call ``cryptography`` once per personal value;
personal values sit on few events (an account's opening, a change of address),
never on the money events a replay folds.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventkit.archive._checks import CIPHERTEXT_PREFIX
from eventkit.archive.store import is_url
from eventkit.archive.table import EventArchive
from eventkit.exceptions import PrivacyError, foreign_errors
from eventkit.schema import SUBJECT_COL

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["ERASED", "KeyStore", "encrypt", "erasure_audit", "pseudonymise", "reveal"]

#: What a personal value of a forgotten subject reads as.
ERASED = "«erased»"
_NONCE = 12
#: The keys of some subjects (``... IN (?, ...)`` follows).
_KEYS_OF = "SELECT subject, key FROM subject_keys WHERE subject IN"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS subject_keys (subject TEXT PRIMARY KEY, key BLOB NOT NULL,
                                         created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS forgotten (subject TEXT PRIMARY KEY, at TEXT NOT NULL,
                                      by TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class KeyStore:
    """Per-subject keys in a SQLite file; :meth:`forget` destroys one for good.

    The file is opened with ``secure_delete`` (freed pages are zeroed) and a
    rollback journal, and is compacted (``VACUUM``) after each erasure, so a
    destroyed key leaves no copy in the file. Keys are never printed, logged or
    put in an error message. Keep the file beside the archive, not in it, and
    back it up apart: without it no personal value can be read again (and
    :func:`reveal` refuses a key store that never held a subject's key, rather
    than show the values as erased).

    Examples
    --------
    >>> import tempfile
    >>> keys = KeyStore(tempfile.mkdtemp() + "/bank.keys.sqlite")
    >>> len(keys.keys(["c1"], create=True)["c1"])
    32
    >>> keys.forget("c1", by="dpo@bank", reason="erasure request 17")
    True
    >>> keys.keys(["c1"]), keys.forgotten()["subject"].to_list()
    ({}, ['c1'])

    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA secure_delete = ON")
            self._db.execute("PRAGMA journal_mode = DELETE")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            msg = f"cannot open the key store {self.path}: {exc}"
            raise PrivacyError(msg) from None

    @classmethod
    def beside(cls, archive: EventArchive | str | Path) -> KeyStore:
        """The default key store of an archive: ``<archive>.keys.sqlite`` next to its folder."""
        return cls(cls.path_beside(archive))

    @staticmethod
    def path_beside(archive: EventArchive | str | Path) -> Path:
        """Where :meth:`beside` keeps an archive's keys (the file is not made)."""
        root = archive.path if isinstance(archive, EventArchive) else archive
        if not isinstance(root, Path) and is_url(root):
            msg = (f"{root} is in an object store: a key store is a local SQLite file, open "
                   "it with KeyStore(path) where the keys are kept")
            raise PrivacyError(msg)
        root = Path(root)
        return root.parent / f"{root.name}.keys.sqlite"

    @foreign_errors(PrivacyError, "key store {0.path}: keys")
    def keys(self, subjects: Iterable[str], *, create: bool = False) -> dict[str, bytes]:
        """The keys of ``subjects`` that exist (``create``: make the missing ones).

        A forgotten subject never gets a key again: creating one raises.
        """
        wanted = sorted(set(_text_subjects(subjects)))
        found: dict[str, bytes] = dict(self._rows_in(_KEYS_OF, wanted))
        missing = [s for s in wanted if s not in found]
        if create and missing:
            now = datetime.now(UTC).isoformat()
            new = {s: AESGCM.generate_key(bit_length=256) for s in missing}
            # checked and written under the write lock: another process may have made a key
            # for one of them (its key is the one kept) or forgotten one since the read above
            with self._transaction("store new subjects' keys"):
                gone = self._forgotten_among(missing)
                if gone:
                    msg = (f"subject {gone[0]!r} was forgotten; its personal data cannot be "
                           "stored again under the same subject id")
                    raise PrivacyError(msg)
                self._db.executemany("INSERT OR IGNORE INTO subject_keys VALUES (?, ?, ?)",
                                     [(s, k, now) for s, k in new.items()])
                found.update(self._rows_in(_KEYS_OF, missing))
        return found

    @foreign_errors(PrivacyError, "key store {0.path}: forget {1!r}")
    def forget(self, subject: str, *, by: str, reason: str) -> bool:
        """Destroy ``subject``'s key and record who did it, when and why.

        Returns ``False`` when the subject was forgotten before (nothing to do).
        """
        if not by or not reason:
            msg = "an erasure must say who asks (by=) and why (reason=)"
            raise PrivacyError(msg)
        _text_subjects([subject])
        if self._forgotten_among([subject]):
            return False
        with self._transaction(f"forget {subject!r}"):  # all of it, or nothing
            deleted = self._db.execute("DELETE FROM subject_keys WHERE subject = ?",
                                       (subject,)).rowcount
            if not deleted:
                msg = f"the key store has no key for subject {subject!r}"
                raise PrivacyError(msg)
            self._db.execute("INSERT INTO forgotten VALUES (?, ?, ?, ?)",
                             (subject, datetime.now(UTC).isoformat(), by, reason))
        # secure_delete zeroed the key's bytes as it was deleted; VACUUM also gives the freed
        # pages back. It needs room for a copy of the file: on a full disk the erasure stands
        # (done, recorded, no copy left) and the next erasure compacts the file.
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("VACUUM")
        return True

    @foreign_errors(PrivacyError, "key store {0.path}: erasures")
    def forgotten(self) -> pl.DataFrame:
        """Every erasure: ``subject``, ``at``, ``by``, ``reason``."""
        rows = self._db.execute("SELECT subject, at, by, reason FROM forgotten ORDER BY at")
        return pl.DataFrame(list(rows), schema=["subject", "at", "by", "reason"], orient="row")

    @foreign_errors(PrivacyError, "key store {0.path}: pseudonym secret")
    def pepper(self) -> bytes:
        """The secret of keyed pseudonyms (made once per key store)."""
        row = self._db.execute("SELECT value FROM secrets WHERE name = 'pepper'").fetchone()
        if row is not None:
            return bytes(row[0])
        value = os.urandom(32)
        with self._transaction("make the pseudonym secret"):
            self._db.execute("INSERT INTO secrets VALUES ('pepper', ?)", (value,))
        return value

    def close(self) -> None:
        """Close the SQLite file."""
        self._db.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r})"  # never the keys

    def _forgotten_among(self, subjects: list[str]) -> list[str]:
        return [r[0] for r in self._rows_in("SELECT subject FROM forgotten WHERE subject IN",
                                            subjects)]

    def _rows_in(self, query: str, subjects: list[str]) -> Iterator[tuple[Any, ...]]:
        """The rows of ``query`` (ending ``... IN``) for ``subjects``, 500 at a time.

        (SQLite caps the parameters of one statement: 32,766 on some builds.)
        """
        for i in range(0, len(subjects), 500):
            chunk = subjects[i:i + 500]
            yield from self._db.execute(f"{query} ({','.join('?' * len(chunk))})", chunk)

    @contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        """One write transaction: committed whole, or rolled back and a PrivacyError raised.

        SQLite may roll back by itself (a full disk): then the error is the one
        reported, not a failed ``ROLLBACK``.
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            msg = f"key store {self.path}: cannot {what}, nothing was changed ({exc})"
            raise PrivacyError(msg) from exc


def _aad(field: str, subject: str) -> bytes:
    return f"{field}\x00{subject}".encode()


@foreign_errors(PrivacyError, "encrypt")
def encrypt(
    events: pl.DataFrame, keys: KeyStore, *, fields: Iterable[str], subject: str = SUBJECT_COL,
) -> pl.DataFrame:
    """Replace the plaintext personal ``fields`` of ``events`` by ciphertext (Binary).

    Each value gets a fresh random nonce and is bound to its field and subject
    (moving a ciphertext to another row or column makes it unreadable). Keys
    of new subjects are created in ``keys``. Rows with a personal value need a
    ``subject``. A value is sealed as its text (:func:`reveal` gives text back):
    lists, structs and bytes are refused (make them JSON or base64 text first).

    Examples
    --------
    >>> import tempfile
    >>> keys = KeyStore(tempfile.mkdtemp() + "/k.sqlite")
    >>> rows = pl.DataFrame({"subject": ["c1", None], "email": ["ann@example.org", None]})
    >>> sealed = encrypt(rows, keys, fields=["email"])
    >>> sealed["email"].dtype, b"ann" in sealed["email"][0], sealed["email"][1]
    (Binary, False, None)
    >>> reveal(sealed, keys, fields=["email"])["email"].to_list()
    ['ann@example.org', None]

    """
    fields = list(fields)
    _check_columns(events, [subject, *fields], subject)
    for name in fields:
        dtype = events[name].dtype
        if dtype.is_nested() or dtype == pl.Binary:
            msg = (f"column {name!r} holds {dtype} values: a personal value is sealed as text "
                   "and revealed as text; make it text first (JSON: pl.col(...).struct"
                   ".json_encode(), bytes: base64)"
                   + ("; is it already ciphertext?" if dtype == pl.Binary else ""))
            raise PrivacyError(msg)
    has_value = events.select(pl.any_horizontal(pl.col(fields).is_not_null())).to_series()
    todo = events.with_row_index("_row").filter(has_value)
    if todo[subject].null_count():
        row = int(todo.filter(pl.col(subject).is_null())["_row"][0])
        msg = f"row {row} has personal values but no {subject!r}"
        raise PrivacyError(msg)
    key_of = keys.keys(todo[subject].to_list(), create=True)
    out = []
    for name in fields:
        sealed: list[bytes | None] = [None] * events.height
        for row, who, value in todo.select("_row", subject, name).iter_rows():
            if value is not None:
                nonce = os.urandom(_NONCE)
                sealed[row] = CIPHERTEXT_PREFIX + nonce + AESGCM(key_of[who]).encrypt(
                    nonce, str(value).encode(), _aad(name, who))
        out.append(pl.Series(name, sealed, dtype=pl.Binary))
    return events.with_columns(out)


@foreign_errors(PrivacyError, "reveal")
def reveal(
    events: pl.DataFrame | pl.LazyFrame, keys: KeyStore, *, fields: Iterable[str] | None = None,
    subject: str = SUBJECT_COL,
) -> pl.DataFrame:
    """Decrypt the personal ``fields`` (default: every column of eventkit ciphertext) to text.

    Values of forgotten subjects (no key) read as :data:`ERASED`. A ciphertext
    that does not authenticate (edited, or moved to another row or column)
    raises :class:`~eventkit.exceptions.PrivacyError` naming the row and column,
    and so does a ciphertext without a subject. Subjects the key store has no
    key for and never forgot (another archive's key store, or a new empty one
    at a mistyped path) raise too: their values were not erased.
    """
    frame = events.collect() if isinstance(events, pl.LazyFrame) else events
    fields = _sealed_columns(frame) if fields is None else list(fields)
    _check_columns(frame, [subject, *fields], subject)
    key_of = _keys_of_sealed(frame, keys, fields, subject)
    out = []
    for name in fields:
        opened: list[str | None] = [None] * frame.height
        rows = frame.with_row_index("_row").filter(pl.col(name).is_not_null())
        for row, who, blob in rows.select("_row", subject, name).iter_rows():
            key = key_of.get(who)
            if key is None:
                opened[row] = ERASED
                continue
            body = blob[len(CIPHERTEXT_PREFIX):]
            try:
                opened[row] = AESGCM(key).decrypt(body[:_NONCE], body[_NONCE:],
                                                  _aad(name, who)).decode()
            except (InvalidTag, ValueError):
                msg = (f"row {row}, column {name!r}: the ciphertext does not authenticate "
                       "(edited, or moved from another row or column)")
                raise PrivacyError(msg) from None
        out.append(pl.Series(name, opened, dtype=pl.String))
    return frame.with_columns(out)


@foreign_errors(PrivacyError, "pseudonymise")
def pseudonymise(
    events: pl.DataFrame | pl.LazyFrame, keys: KeyStore, *, fields: Iterable[str] | None = None,
    subject: str = SUBJECT_COL,
) -> pl.DataFrame:
    """An export for analysts: subjects and personal values become keyed pseudonyms.

    A pseudonym is HMAC-SHA256 under the key store's secret pepper (first 32
    hex digits): stable (the same email always gives the same pseudonym, so
    analysts can count and join) but not guessable from a list of candidate
    emails without the pepper, unlike a plain hash. Values of forgotten
    subjects become null; the subject's own pseudonym stays (it names no one).

    Examples
    --------
    >>> import tempfile
    >>> keys = KeyStore(tempfile.mkdtemp() + "/k.sqlite")
    >>> rows = encrypt(pl.DataFrame({"subject": ["c1", "c2"], "email": ["a@x.org", "a@x.org"]}),
    ...                keys, fields=["email"])
    >>> export = pseudonymise(rows, keys, fields=["email"])
    >>> export["email"].n_unique(), export["subject"].n_unique(), len(export["email"][0])
    (1, 2, 32)

    """
    frame = events.collect() if isinstance(events, pl.LazyFrame) else events
    fields = _sealed_columns(frame) if fields is None else list(fields)
    frame = reveal(frame, keys, fields=fields, subject=subject)
    pepper = keys.pepper()

    def token(value: str) -> str:
        return hmac.new(pepper, value.encode(), hashlib.sha256).hexdigest()[:32]

    def tokens(column: str) -> dict[str, str]:  # one mapping per column: a subject's pseudonym
        values = frame[column].drop_nulls().unique().to_list()  # never a value's (an email)
        if column == subject:
            return {v: token(f"{subject}\x00{v}") for v in values}
        return {v: token(v) for v in values if v != ERASED}

    return frame.with_columns(
        pl.col(c).replace_strict(tokens(c), default=None, return_dtype=pl.String)
        for c in [subject, *fields])


@foreign_errors(PrivacyError, "erasure audit of {0}")
def erasure_audit(archive: EventArchive | str | Path, keys: KeyStore) -> pl.DataFrame:
    """Per forgotten subject: when, by whom, why, and whether the erasure holds.

    ``personal_values`` counts the subject's ciphertexts still in the archive
    (they stay: the log is immutable), ``readable`` how many of them can still
    be decrypted (must be 0), and ``erased`` whether no key is left.
    """
    archive = archive if isinstance(archive, EventArchive) else EventArchive(archive)
    gone = keys.forgotten()
    if not archive.personal:
        return gone.with_columns(personal_values=pl.lit(0), readable=pl.lit(0),
                                 erased=pl.lit(value=True))
    rows = archive.scan().filter(pl.col(SUBJECT_COL).is_in(gone["subject"].implode())
                                 ).select(SUBJECT_COL, *archive.personal).collect()
    opened = reveal(rows, keys, fields=archive.personal)
    per = opened.group_by(SUBJECT_COL).agg(
        pl.sum_horizontal(pl.col(archive.personal).is_not_null()).sum().alias("personal_values"),
        pl.sum_horizontal(pl.col(archive.personal).is_not_null()
                           & (pl.col(archive.personal) != ERASED)).sum().alias("readable"))
    left = keys.keys(gone["subject"].to_list())
    return (gone.join(per, left_on="subject", right_on=SUBJECT_COL, how="left",
                      maintain_order="left")
            .with_columns(pl.col("personal_values", "readable").fill_null(0),
                          erased=pl.col("subject").is_in(list(left)).not_()))


def _sealed_columns(frame: pl.DataFrame) -> list[str]:
    """The Binary columns whose every value is eventkit ciphertext (not bytes of one's own)."""
    binary = [c for c, t in frame.schema.items() if t == pl.Binary]
    sealed = frame.select(pl.col(c).bin.starts_with(CIPHERTEXT_PREFIX).all() for c in binary)
    return [c for c in binary if sealed[c][0]]


def _keys_of_sealed(frame: pl.DataFrame, keys: KeyStore, fields: list[str], subject: str
                    ) -> dict[str, bytes]:
    """The keys of the subjects with a ciphertext in ``fields``; each missing one forgotten."""
    for name in fields:
        if frame[name].dtype not in (pl.Binary, pl.Null):
            msg = (f"column {name!r} holds {frame[name].dtype} values, not ciphertext (Binary): "
                   "name only personal fields")
            raise PrivacyError(msg)
    sealed = frame.select(pl.any_horizontal(pl.col(fields).is_not_null()) if fields
                          else pl.repeat(value=False, n=frame.height)).to_series()
    orphan = frame.select((sealed & pl.col(subject).is_null()).arg_true().first()).item()
    if orphan is not None:
        name = next(c for c in fields if frame[c][orphan] is not None)
        msg = f"row {orphan}, column {name!r}: a personal value without a {subject!r}"
        raise PrivacyError(msg)
    subjects = frame.filter(sealed)[subject].unique().sort().to_list()
    key_of = keys.keys(subjects)
    lost = [s for s in subjects if s not in key_of]
    unknown = sorted(set(lost) - set(keys._forgotten_among(lost)))
    if unknown:
        named = ", ".join(map(repr, unknown[:3])) + (", ..." if len(unknown) > 3 else "")
        msg = (f"key store {keys.path} has no key for {len(unknown)} subject(s) never "
               f"forgotten ({named}): "
               "it is not the key store of these events (another archive's, or a new one at a "
               "mistyped path?), or it was restored from a backup older than their keys")
        raise PrivacyError(msg)
    return key_of


def _check_columns(frame: pl.DataFrame, columns: list[str], subject: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"missing column(s) {missing}; the frame has {frame.columns}"
        raise PrivacyError(msg)
    if frame[subject].dtype not in (pl.String, pl.Null):  # keys are kept under text ids
        msg = (f"column {subject!r} holds {frame[subject].dtype} values; subjects are text "
               f"(an archive stores them as String): cast it, pl.col({subject!r}).cast(pl.String)")
        raise PrivacyError(msg)


def _text_subjects(subjects: Iterable[object]) -> list[str]:
    """``subjects`` as given, each checked to be text (a key is found by its text id only)."""
    out: list[str] = []
    for subject in subjects:
        if not isinstance(subject, str):
            msg = f"subjects are text, not {subject!r} ({type(subject).__name__})"
            raise PrivacyError(msg)
        out.append(subject)
    return out
