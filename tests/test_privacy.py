"""Personal data: encrypted per subject, forgotten by destroying a key, found nowhere after.

A story: a bank archive whose AccountOpened events carry each customer's name,
email and IBAN. One customer asks to be forgotten. Afterwards the archive is
byte for byte what it was, verifies, replays to the same balances, reads the
customer's fields as erased, and no file eventkit wrote holds the plaintext.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from test_archive import assert_unchanged, snapshot

import eventkit
from eventkit import EventArchive, PrivacyError, SchemaError, ValidationError
from eventkit.archive import privacy
from eventkit.archive.compaction import compact
from eventkit.archive.privacy import ERASED, KeyStore, encrypt, erasure_audit, pseudonymise, reveal
from eventkit.archive.storage import info
from eventkit.banking.generate import generate_chunks
from eventkit.workbench.cli import main

PERSONAL = ("name", "email", "iban")
START = datetime(2024, 1, 1, tzinfo=UTC)


def personal_of(account: int) -> dict[str, str]:
    """Plaintext that appears nowhere else (so finding it anywhere is a leak)."""
    return {"name": f"Ottilie Quandtberg-{account:03d}",
            "email": f"ottilie.q{account:03d}@example.org",
            "iban": f"DE89370400440532{account:06d}"}


def with_personal(chunk: pl.DataFrame) -> pl.DataFrame:
    opened = pl.col("event_type") == "AccountOpened"
    accounts = chunk["account_id"].to_list()
    columns = {f: [personal_of(a)[f] for a in accounts] for f in PERSONAL}
    return chunk.with_columns(
        subject=pl.when(opened).then(pl.format("cust-{}", pl.col("account_id"))),
        **{f: pl.when(opened).then(pl.Series(v)) for f, v in columns.items()})


@pytest.fixture
def bank(tmp_path: Path) -> tuple[EventArchive, KeyStore]:
    archive = EventArchive.create(tmp_path / "bank", personal=PERSONAL)
    keys = KeyStore.beside(archive)
    for chunk in generate_chunks(events=3_000, accounts=30, seed=5, chunk_events=1_000,
                                 start=START, end=START + timedelta(days=200)):
        sealed = encrypt(with_personal(chunk), keys, fields=PERSONAL)
        archive.append(sealed.drop("seq"), recorded_at="keep")
    return archive, keys


def leaks(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under ``root`` holding a needle: raw bytes, and decoded Parquet values."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = [n for n in needles if n in data]
        if path.suffix == ".parquet" and not hits:  # data pages are compressed: decode them
            table = pq.read_table(path)
            values = b"\n".join(v if isinstance(v, bytes) else str(v).encode()
                                 for col in table.columns for v in col.to_pylist())
            hits = [n for n in needles if n in values]
        found += [f"{path.relative_to(root)}: {n!r}" for n in hits]
    return found


def test_forgetting_a_subject(bank: tuple[EventArchive, KeyStore], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    archive, keys = bank
    # Before: personal fields decrypt; replay never needs them
    opened = reveal(archive.scan().filter(pl.col("subject") == "cust-7"), keys)
    assert opened.select(PERSONAL).row(0) == tuple(personal_of(7).values())
    balances = eventkit.replay(archive, "banking").state().collect()
    head = archive.head
    key = keys.keys(["cust-7"])["cust-7"]
    files = snapshot(archive.path)

    # The customer asks to be forgotten
    assert keys.forget("cust-7", by="dpo@bank.example", reason="request 2024-117")
    assert not keys.forget("cust-7", by="dpo@bank.example", reason="again")

    # The archive is untouched and verifies; balances replay identically
    assert_unchanged(archive.path, files)
    assert archive.verify(expect=head).ok
    assert eventkit.replay(archive, "banking").state().collect().equals(balances)
    # Everywhere the fields are read, they read as erased; other customers are intact
    events = reveal(archive.scan(), keys)
    mine = events.filter(pl.col("subject") == "cust-7")
    assert mine.select(PERSONAL).rows() == [(ERASED,) * 3]
    assert events.filter(pl.col("subject") == "cust-8").select("email").item() == \
        personal_of(8)["email"]
    audit = erasure_audit(archive, keys)
    assert audit.select("subject", "by", "personal_values", "readable", "erased").rows() == [
        ("cust-7", "dpo@bank.example", 3, 0, True)]
    with pytest.raises(PrivacyError, match="forgotten"):
        keys.keys(["cust-7"], create=True)

    # Everything eventkit writes afterwards: compaction, snapshots (and the by-account copy),
    # views in DuckDB and SQLite, exports, CLI output
    compact(archive)
    assert archive.verify().ok
    eventkit.snapshot(archive, "banking", every="1mo")
    for url in (f"duckdb:///{tmp_path / 'views.duckdb'}", f"sqlite:///{tmp_path / 'views.db'}"):
        eventkit.materialize(eventkit.replay(archive, "banking"), url)
    pseudonymise(archive.scan(), keys).write_parquet(tmp_path / "export.parquet")
    events.write_parquet(tmp_path / "revealed.parquet", statistics=True)
    for argv in (["info", str(archive.path)], ["verify", str(archive.path), "--no-progress"],
                 ["replay", str(archive.path), "--format", "csv"]):
        main(argv)
    (tmp_path / "cli.txt").write_text(capsys.readouterr().out + repr(keys))
    keys.close()

    forgotten = [v.encode() for v in personal_of(7).values()]
    assert leaks(tmp_path, [*forgotten, key, key.hex().encode()]) == []
    # the search does find what is there: another customer's plaintext, decoded
    assert any(personal_of(8)["email"] in hit for hit in leaks(tmp_path, [
        personal_of(8)["email"].encode()]))


def test_pseudonyms_are_stable_keyed_and_not_plain_hashes(
    bank: tuple[EventArchive, KeyStore], tmp_path: Path,
) -> None:
    import hashlib

    archive, keys = bank
    first = pseudonymise(archive.scan(), keys, fields=PERSONAL)
    again = pseudonymise(archive.scan(), keys, fields=PERSONAL)
    assert first.equals(again)
    row = first.filter(pl.col("account_id") == 3, pl.col("event_type") == "AccountOpened")
    email = personal_of(3)["email"]
    assert row["email"].item() not in (hashlib.sha256(email.encode()).hexdigest()[:32],
                                       hashlib.md5(email.encode()).hexdigest())
    assert row["subject"].item() != "cust-3"
    other = KeyStore(tmp_path / "other.sqlite")
    # another pepper gives other pseudonyms (and, without the keys, nothing to read)
    with pytest.raises(PrivacyError, match="no key for 30 subject"):
        pseudonymise(archive.scan(), other, fields=PERSONAL)
    assert pseudonymise(archive.scan(), other, fields=[])["subject"].drop_nulls()[0] \
        not in first["subject"].to_list()
    keys.forget("cust-3", by="dpo", reason="request")
    after = pseudonymise(archive.scan(), keys, fields=PERSONAL)
    assert after.filter(pl.col("subject") == row["subject"].item())["email"].to_list() == [None]


def test_plaintext_is_refused_and_leaves_the_archive_as_it_was(
    bank: tuple[EventArchive, KeyStore],
) -> None:
    archive, keys = bank
    files = snapshot(archive.path)
    row = pl.DataFrame({"event_id": ["p1"], "account_id": [1], "event_type": ["Deposit"],
                        "amount": [5], "event_time": [START], "subject": ["cust-1"],
                        "email": ["leak@example.org"]})
    with pytest.raises(SchemaError, match="only as ciphertext") as err:
        archive.append(row)
    assert err.value.column == "email"
    with pytest.raises(ValidationError, match="not eventkit ciphertext"):
        archive.append(row.with_columns(pl.col("email").cast(pl.Binary)))
    sealed = encrypt(row, keys, fields=["email"])
    with pytest.raises(ValidationError, match="without a subject"):
        archive.append(sealed.with_columns(subject=pl.lit(None, pl.String)))
    assert_unchanged(archive.path, files)
    # a ciphertext moved to another subject does not authenticate
    swapped = sealed.with_columns(subject=pl.lit("cust-2"))
    keys.keys(["cust-2"], create=True)
    with pytest.raises(PrivacyError, match="row 0, column 'email'"):
        reveal(swapped, keys, fields=["email"])


def test_archives_without_personal_fields_are_unchanged(tmp_path: Path) -> None:
    archive = EventArchive.create(tmp_path / "plain")
    assert archive.schema == eventkit.CANONICAL_SCHEMA
    with pytest.raises(SchemaError, match="personal fields must be distinct"):
        EventArchive.create(tmp_path / "bad", personal=("amount",))
    assert info(archive.path).events == 0


def test_a_subjects_pseudonym_does_not_depend_on_the_values_beside_it(tmp_path: Path) -> None:
    # subjects are often emails: the subject's pseudonym must not become the email's, nor
    # change with which rows are exported or after an erasure
    keys = KeyStore(tmp_path / "k.sqlite")
    rows = pl.DataFrame({"subject": ["ann@x.org", "ann@x.org", "bob@x.org"],
                         "email": ["ann@x.org", None, "bob@x.org"]})
    sealed = encrypt(rows, keys, fields=["email"])
    full = pseudonymise(sealed, keys, fields=["email"])
    assert full["subject"][0] == full["subject"][1] == \
        pseudonymise(sealed[1:2], keys, fields=["email"])["subject"][0]
    assert full["subject"][0] != full["email"][0]  # a subject's and a value's differ
    keys.forget("ann@x.org", by="dpo", reason="request")
    after = pseudonymise(sealed, keys, fields=["email"])
    assert after["subject"].to_list() == full["subject"].to_list()
    assert after["email"].to_list() == [None, None, full["email"][2]]


def test_subjects_must_be_text(tmp_path: Path) -> None:
    # an integer customer id sealed fine, then read as erased (its key is kept under '5')
    keys = KeyStore(tmp_path / "k.sqlite")
    rows = pl.DataFrame({"customer_id": [5, 6], "email": ["a@x.org", "b@x.org"]})
    for call in (lambda: encrypt(rows, keys, fields=["email"], subject="customer_id"),
                 lambda: reveal(rows.with_columns(pl.col("email").cast(pl.Binary)), keys,
                                subject="customer_id"),
                 lambda: pseudonymise(rows, keys, fields=[], subject="customer_id")):
        with pytest.raises(PrivacyError, match="'customer_id' holds Int64 values; subjects "
                                               "are text") :
            call()
    for call in (lambda: keys.keys([5], create=True),  # type: ignore[list-item]
                 lambda: keys.forget(5, by="dpo", reason="request")):  # type: ignore[arg-type]
        with pytest.raises(PrivacyError, match="subjects are text, not 5"):
            call()
    sealed = encrypt(rows.with_columns(pl.col("customer_id").cast(pl.String)), keys,
                     fields=["email"], subject="customer_id")
    assert reveal(sealed, keys, subject="customer_id")["email"].to_list() == ["a@x.org",
                                                                              "b@x.org"]


def test_keys_for_a_batch_of_many_new_subjects(tmp_path: Path) -> None:
    # the erasure check asked SQLite about every new subject in one statement: too many
    # SQL variables for a first import of a quarter of a million customers
    keys = KeyStore(tmp_path / "k.sqlite")
    keys.keys(["gone"], create=True)
    assert keys.forget("gone", by="dpo", reason="request")
    with pytest.raises(PrivacyError, match="'gone' was forgotten"):
        keys.keys([f"d{i}" for i in range(260_000)] + ["gone"], create=True)


def test_a_key_made_or_a_subject_forgotten_meanwhile_by_another_process_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # another process acts between this one's read of the keys and its write of new ones
    mine, theirs = KeyStore(tmp_path / "k.sqlite"), KeyStore(tmp_path / "k.sqlite")
    real = privacy.AESGCM.generate_key
    meanwhile: list[Callable[[], object]] = []

    def generate_key(bit_length: int) -> bytes:
        acts = meanwhile.copy()  # (the other process's own keys come through here too)
        meanwhile.clear()
        for act in acts:
            act()
        return real(bit_length=bit_length)

    monkeypatch.setattr(privacy.AESGCM, "generate_key", staticmethod(generate_key))
    meanwhile.append(lambda: theirs.keys(["ann"], create=True))
    assert mine.keys(["ann"], create=True) == theirs.keys(["ann"])  # theirs is kept, no error
    theirs.keys(["bob"], create=True)
    meanwhile.append(lambda: theirs.keys(["cid"], create=True))
    meanwhile.append(lambda: theirs.forget("cid", by="dpo", reason="request"))
    with pytest.raises(PrivacyError, match="'cid' was forgotten"):
        mine.keys(["cid"], create=True)  # a forgotten subject never gets a key again
    assert theirs.keys(["cid"]) == {}


def test_reveal_with_a_key_store_that_never_held_the_keys(
    bank: tuple[EventArchive, KeyStore], tmp_path: Path,
) -> None:
    # a typo in the key store's path opened a new, empty one: every value read as erased
    archive, keys = bank
    keys.forget("cust-7", by="dpo", reason="request")
    events = archive.scan().filter(pl.col("event_type") == "AccountOpened").collect()
    for other in (KeyStore(tmp_path / "typo.keys.sqlite"), KeyStore(tmp_path / "other.sqlite")):
        with pytest.raises(PrivacyError, match=r"no key for 30 subject\(s\) never forgotten "
                                               r"\('cust-1', "):
            reveal(events, other)
        with pytest.raises(PrivacyError, match="never forgotten"):
            pseudonymise(events, other)
    with pytest.raises(PrivacyError, match="row 1, column 'name': a personal value without "
                                           "a 'subject'"):
        reveal(events.with_columns(subject=pl.when(pl.int_range(pl.len()) != 1)
                                   .then("subject")), keys)
    with pytest.raises(PrivacyError, match="column 'event_type' holds String values, not "
                                           "ciphertext"):
        reveal(events, keys, fields=["event_type"])
    # the right key store: only the forgotten subject reads as erased
    opened = reveal(events, keys)
    assert opened.filter(pl.col("email") == ERASED)["subject"].to_list() == ["cust-7"]


def test_encrypt_refuses_values_it_would_not_give_back(tmp_path: Path) -> None:
    # a struct came back as a Python repr ("{'street': ...}"), bytes as "b'\\xff'", and sealing
    # twice gave the repr of the first ciphertext
    keys = KeyStore(tmp_path / "k.sqlite")
    rows = pl.DataFrame({"subject": ["a"], "address": [{"street": "Elm St", "no": 5}],
                         "tags": [["vip"]], "photo": [b"\xff\x00"], "email": ["a@x.org"]})
    for field, what in (("address", "Struct"), ("tags", "List"), ("photo", "Binary")):
        with pytest.raises(PrivacyError, match=f"column '{field}' holds {what}"):
            encrypt(rows, keys, fields=["email", field])
    sealed = encrypt(rows, keys, fields=["email"])
    with pytest.raises(PrivacyError, match="column 'email' holds Binary values: .*already "
                                           "ciphertext"):
        encrypt(sealed, keys, fields=["email"])
    as_json = encrypt(rows.with_columns(pl.col("address").struct.json_encode()), keys,
                      fields=["address"])
    assert reveal(as_json, keys, fields=["address"])["address"].item() == \
        '{"street":"Elm St","no":5}'


def test_a_binary_column_of_ones_own_is_not_taken_for_personal(tmp_path: Path) -> None:
    # reveal's default (every Binary column) tried to decrypt a declared payload of bytes:
    # "does not authenticate (edited ...)", and a forgotten subject's bytes read «erased»
    archive = EventArchive.create(tmp_path / "docs", key="doc_id", columns={
        "doc_id": "string", "signature": pl.Binary}, personal=("email",))
    keys = KeyStore.beside(archive)
    rows = pl.DataFrame({"event_id": ["1", "2"], "doc_id": ["d1", "d2"],
                         "event_type": ["Signed"] * 2, "event_time": [START] * 2,
                         "signature": [b"\x01\x02", b"\x03"], "subject": ["s1", "s2"],
                         "email": ["s1@example.org", "s2@example.org"]})
    archive.append(encrypt(rows, keys, fields=archive.personal))
    keys.forget("s2", by="dpo", reason="request")
    opened = reveal(archive.scan(), keys)
    assert opened.select("signature", "email").rows() == [(b"\x01\x02", "s1@example.org"),
                                                          (b"\x03", ERASED)]
    export = pseudonymise(archive.scan(), keys)
    assert export["signature"].to_list() == [b"\x01\x02", b"\x03"]
    assert export["email"].null_count() == 1
