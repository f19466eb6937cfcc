"""Migration 0002: an unsalted (version 1) log is re-committed into the salted log."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from neurogate.consent.checkpoint import generate_signer, sign_checkpoint
from neurogate.consent.db import get_engine, session_scope, upgrade
from neurogate.consent.ledger import Ledger, log_origin
from neurogate.consent.merkle import (
    canonical_json,
    inclusion_proof,
    leaf_hash,
    root,
    salted_leaf_hash,
)
from neurogate.consent.models import LedgerLeaf, LedgerV1Checkpoint

ORIGIN = "clinic.test/ledger"
SIGNER = generate_signer(ORIGIN)
V1_SIZES = (2, 5, 6)


def _v1_entries() -> list[bytes]:
    subjects = ["sub_alpha", "sub_beta", None, "sub_alpha", "sub_gamma", "sub_alpha"]
    entries = []
    for seq, subject in enumerate(subjects):
        record: dict[str, Any] = {"action": "consent.grant", "seq": seq, "app": "app_1",
                                  "at": f"2026-11-0{seq + 1}T09:00:00.000+00:00"}
        if subject:
            record["subject"] = subject
        else:
            record["account"] = "acc-beta"
        entries.append(canonical_json(record))
    return entries


@pytest.fixture
def v1_engine(db_url: str) -> Engine:
    """A database at revision 0001 holding an unsalted log of six leaves, three signed
    checkpoints and the subjects its entries name."""
    upgrade(db_url, "0001")
    engine = get_engine(db_url)
    entries = _v1_entries()
    hashes = [leaf_hash(e) for e in entries]
    now = "2026-11-07 09:00:00+00:00"
    with engine.begin() as conn:
        for sid, pseudonym in (("s-alpha", "sub_alpha"), ("s-beta", "sub_beta")):
            conn.execute(sa.text(
                "INSERT INTO subjects (id, pseudonym, jurisdiction, preferred_language, "
                "capacity, created_at) VALUES (:id, :p, 'CRC', 'en', 'full', :t)"),
                {"id": sid, "p": pseudonym, "t": now})
        conn.execute(sa.text(
            "INSERT INTO accounts (id, username, password_hash, role, pseudonym, subject_id, "
            "disabled, created_at) VALUES ('acc-beta', 'beta', 'x', 'subject', 'acc_beta', "
            "'s-beta', false, :t)"), {"t": now})
        for seq, (entry, hashed) in enumerate(zip(entries, hashes, strict=True)):
            conn.execute(sa.text("INSERT INTO ledger_leaves (seq, entry, leaf_hash) "
                                 "VALUES (:s, :e, :h)"), {"s": seq, "e": entry, "h": hashed})
        for size in V1_SIZES:
            conn.execute(sa.text("INSERT INTO ledger_checkpoints (size, note, created_at) "
                                 "VALUES (:s, :n, :t)"),
                         {"s": size, "n": sign_checkpoint(SIGNER, ORIGIN, size,
                                                          root(hashes, size)), "t": now})
    return engine


def _v1_receipt(index: int) -> dict[str, Any]:
    """A version 1 receipt as the old gateway issued it for leaf ``index``."""
    entries = _v1_entries()
    hashes = [leaf_hash(e) for e in entries]
    body: dict[str, Any] = {
        "version": 1,
        "leaf": json.loads(entries[index]),
        "leaf_index": index,
        "tree_size": 6,
        "inclusion_proof": [base64.b64encode(h).decode()
                            for h in inclusion_proof(hashes, index, 6)],
        "checkpoint": sign_checkpoint(SIGNER, ORIGIN, 6, root(hashes)),
        "key": SIGNER.verifier_key,
    }
    return {**body, "signature": base64.b64encode(SIGNER.sign(canonical_json(body))).decode()}


def _leaves(engine: Engine) -> list[LedgerLeaf]:
    with Session(engine) as session:
        return list(session.exec(select(LedgerLeaf).order_by(col(LedgerLeaf.seq))).all())


def test_ledger_migration_recommits_every_leaf_under_a_salt(v1_engine: Engine,
                                                            db_url: str) -> None:
    """Entries keep their bytes and index, each leaf becomes a salted commitment, the
    subjects are found, and a bridge leaf commits to the old tree head."""
    upgrade(db_url, "0002")
    leaves = _leaves(v1_engine)
    entries = _v1_entries()
    assert [bytes(leaf.entry or b"") for leaf in leaves[:6]] == entries
    for leaf in leaves:
        assert leaf.salt is not None and leaf.entry is not None
        assert bytes(leaf.leaf_hash) == salted_leaf_hash(bytes(leaf.salt), bytes(leaf.entry))
    assert [leaf.subject_id for leaf in leaves] == [
        "s-alpha", "s-beta", "s-beta", "s-alpha", None, "s-alpha", None]
    bridge = json.loads(leaves[6].entry or b"")
    old_root = base64.b64encode(root([leaf_hash(e) for e in entries])).decode()
    assert bridge == {"action": "ledger.migrate", "at": bridge["at"], "from_origin": ORIGIN,
                      "from_root": old_root, "from_size": 6, "seq": 6}
    with Session(v1_engine) as session:
        kept = session.exec(select(LedgerV1Checkpoint.size)).all()
    assert sorted(kept) == list(V1_SIZES)


def test_ledger_migration_result_verifies_and_signs_under_new_origin(
        v1_engine: Engine, db_url: str, tmp_path: Any) -> None:
    """The migrated log verifies (old checkpoints rechecked against the kept entries), the
    first new checkpoint names the new origin, and old receipts still count."""
    upgrade(db_url, "0002")
    ledger = Ledger(signer=SIGNER, origin=ORIGIN)
    with session_scope(v1_engine) as session:
        note = ledger.latest_checkpoint(session)
        checkpoint = ledger.open(note)
        assert (checkpoint.origin, checkpoint.size) == (log_origin(ORIGIN), 7)
        report = ledger.verify(session, external=[_v1_receipt(2)["checkpoint"]])
        assert (report.problems, report.notes) == ([], [])
        status = ledger.check_receipt(session, _v1_receipt(3))
        assert (status.included, status.leaf_index, status.tree_size) == (True, 3, 7)
        appended = ledger.append(session, action="consent.revoke", concerns="s-alpha")
        assert appended.seq == 7
    with session_scope(v1_engine) as session:
        assert ledger.erase_subject(session, "s-alpha") == 4
    with session_scope(v1_engine) as session:
        report = ledger.verify(session)
        assert report.problems == [] and report.opaque == [0, 3, 5, 7]
        assert report.notes == [
            "3 version 1 checkpoints cover leaf 0, which was erased, so their roots cannot "
            "be recomputed any more (their signatures were checked)."]
        status = ledger.check_receipt(session, _v1_receipt(3))
        assert not status.included


def test_ledger_migration_detects_a_v1_checkpoint_that_does_not_match(
        v1_engine: Engine, db_url: str) -> None:
    """An old checkpoint whose root the kept entries do not give is reported."""
    with v1_engine.begin() as conn:
        conn.execute(sa.text("UPDATE ledger_checkpoints SET note=:n WHERE size=5"),
                     {"n": sign_checkpoint(SIGNER, ORIGIN, 5, b"\x00" * 32)})
    upgrade(db_url, "0002")
    ledger = Ledger(signer=SIGNER, origin=ORIGIN)
    with session_scope(v1_engine) as session:
        problems = ledger.verify(session).problems
    assert "Version 1 checkpoint 1: its root does not match the root of the first 5 " \
           "leaves." in problems


def test_ledger_migration_downgrade_restores_the_unsalted_log(v1_engine: Engine,
                                                               db_url: str) -> None:
    """Down again, leaves are unsalted hashes of their entries and the old checkpoints
    are back; once a leaf is erased the downgrade is refused."""
    upgrade(db_url, "0002")
    from alembic import command

    from neurogate.consent.db import alembic_config

    command.downgrade(alembic_config(db_url), "0001")
    with v1_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT entry, leaf_hash FROM ledger_leaves "
                                    "ORDER BY seq")).all()
        sizes = conn.execute(sa.text("SELECT size FROM ledger_checkpoints")).scalars().all()
    assert all(bytes(h) == leaf_hash(bytes(e)) for e, h in rows)
    assert sorted(sizes) == list(V1_SIZES)
    upgrade(db_url, "0002")
    with v1_engine.begin() as conn:
        conn.execute(sa.text("UPDATE ledger_leaves SET entry=NULL, salt=NULL WHERE seq=1"))
    with pytest.raises(RuntimeError, match="1 leaves were erased"):
        command.downgrade(alembic_config(db_url), "0001")


def test_ledger_migration_schema_matches_the_models(sqlite_url: str) -> None:
    """At head, the ledger tables are exactly what the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    upgrade(sqlite_url)
    with get_engine(sqlite_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diff if "ledger" in str(d)] == []
