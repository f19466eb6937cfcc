"""The ledger over a real database: salted leaves, per-transaction checkpoints, several
gateway nodes on one database, receipts and the readers of whole entries."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from neurogate.consent.access import Principal
from neurogate.consent.checkpoint import generate_signer
from neurogate.consent.db import get_engine, session_scope, upgrade
from neurogate.consent.ledger import Ledger, log_origin
from neurogate.consent.merkle import root, salted_leaf_hash
from neurogate.consent.models import LedgerCheckpoint, LedgerLeaf, Subject
from neurogate.consent.receipts import verify_receipt
from neurogate.errors import (
    ErasedEntryError,
    LedgerError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)

ORIGIN = "clinic.test/ledger"
SIGNER = generate_signer(ORIGIN)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty database (SQLite, and PostgreSQL when marked)."""
    upgrade(db_url)
    yield get_engine(db_url)


def _node() -> Ledger:
    """One gateway node's ledger (all nodes share the signing key)."""
    return Ledger(signer=SIGNER, origin=ORIGIN)


def _append(engine: Engine, ledger: Ledger, count: int = 1, **fields: object) -> list[int]:
    with session_scope(engine) as session:
        return [ledger.append(session, action="consent.grant", app="app_x", **fields).seq
                for _ in range(count)]


def _checkpoint_sizes(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return list(session.exec(select(LedgerCheckpoint.size)
                                 .order_by(col(LedgerCheckpoint.size))).all())


def test_ledger_signs_one_checkpoint_per_transaction(engine: Engine) -> None:
    """Five appends in one transaction store one checkpoint, of the tree they end in."""
    ledger = _node()
    _append(engine, ledger, 5)
    _append(engine, ledger, 1)
    _append(engine, ledger, 3)
    assert _checkpoint_sizes(engine) == [5, 6, 9]
    with Session(engine) as session:
        assert ledger.open(ledger.latest_checkpoint(session)).origin == log_origin(ORIGIN)
        assert ledger.verify(session).problems == []


def test_ledger_leaf_is_salted_commitment_to_its_entry(engine: Engine) -> None:
    """The stored leaf hash is salted_leaf_hash(salt, entry), and no two salts repeat."""
    ledger = _node()
    _append(engine, ledger, 3, subject="p_same")
    with Session(engine) as session:
        rows = session.exec(select(LedgerLeaf).order_by(col(LedgerLeaf.seq))).all()
    assert len({bytes(r.salt or b"") for r in rows}) == 3
    for row in rows:
        assert row.entry is not None and row.salt is not None
        assert bytes(row.leaf_hash) == salted_leaf_hash(bytes(row.salt), bytes(row.entry))


def test_ledger_nodes_sharing_a_database_catch_up(engine: Engine) -> None:
    """Two nodes appending in turn each continue the other's log, and every checkpoint
    of both verifies and extends the one before."""
    first, second = _node(), _node()
    order = [first, second, second, first, second, first, first]
    seqs = [_append(engine, node)[0] for node in order]
    assert seqs == list(range(7))
    assert first.frontier().size == 7 and second.frontier().size == 5  # its last append
    with Session(engine) as session:
        assert second.size(session) == 7  # reading catches up too
        assert second.frontier().root() == first.frontier().root()
        report = second.verify(session)
    assert report.problems == []
    assert _checkpoint_sizes(engine) == list(range(1, 8))


def test_ledger_concurrent_appenders_never_collide(engine: Engine) -> None:
    """Threads on two nodes appending at once get distinct, gapless indices."""
    nodes = [_node(), _node()]
    got: list[int] = []
    errors: list[BaseException] = []

    def work(node: Ledger) -> None:
        try:
            for _ in range(8):
                got.extend(_append(engine, node, 2))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(nodes[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(got) == list(range(64))
    with Session(engine) as session:
        assert nodes[0].verify(session).problems == []


def test_ledger_rolled_back_batch_leaves_no_trace(engine: Engine) -> None:
    """A rolled-back transaction's leaves never reach this node's tree or the database."""
    ledger = _node()
    _append(engine, ledger, 2)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        ledger.append(session, action="consent.revoke", app="app_y")
        msg = "boom"
        raise RuntimeError(msg)
    assert ledger.frontier().size == 2
    assert _append(engine, ledger) == [2]
    with Session(engine) as session:
        assert ledger.verify(session).problems == []


def test_ledger_refuses_append_after_log_cut_back(engine: Engine) -> None:
    """A node that has seen more committed leaves than the database holds appends nothing."""
    ledger = _node()
    _append(engine, ledger, 4)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM ledger_leaves WHERE seq >= 2"))
    with pytest.raises(LedgerError, match="holds 2 leaves, but this gateway has already seen 4"):
        _append(engine, ledger)


def test_ledger_refuses_append_after_newest_leaf_rewritten(engine: Engine) -> None:
    """A node notices when the newest committed leaf was replaced behind its back."""
    ledger = _node()
    _append(engine, ledger, 3)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ledger_leaves SET leaf_hash = :h WHERE seq = 2"),
                     {"h": b"\x01" * 32})
    with pytest.raises(LedgerError, match="newest ledger leaf in the database"):
        _append(engine, ledger)


def test_ledger_receipt_in_transaction_has_a_stored_checkpoint(engine: Engine) -> None:
    """A receipt asked for before commit carries a checkpoint that is stored with it, and
    a later append in the same transaction is covered by the commit's checkpoint."""
    ledger = _node()
    _append(engine, ledger, 3)
    with session_scope(engine) as session:
        appended = ledger.append(session, action="consent.grant", app="app_r")
        receipt = ledger.receipt(session, appended)
        ledger.append(session, action="consent.assent", app="app_r")
    check = verify_receipt(receipt, SIGNER.verifier_key)
    assert (check.leaf_index, check.tree_size) == (3, 4)
    assert base64.b64decode(receipt["salt"]) == appended.salt
    assert _checkpoint_sizes(engine) == [3, 4, 5]


def test_ledger_entries_for_subject_and_erasure(engine: Engine) -> None:
    """A subject's entries come with their salts; erasing them leaves opaque leaves that
    still verify, and receipts for them are refused."""
    ledger = _node()
    with session_scope(engine) as session:
        session.add(Subject(id="subj-1", pseudonym="sub_one"))
    _append(engine, ledger, 2, subject="sub_one")  # concerns looked up from the pseudonym
    _append(engine, ledger, 1, subject="sub_other")
    _append(engine, ledger, 1, concerns="subj-1")
    with Session(engine) as session:
        mine = ledger.entries_for_subject(session, "subj-1")
        assert [e.seq for e in mine] == [0, 1, 3]
        for item in mine:
            assert item.salt is not None and item.entry is not None
            assert salted_leaf_hash(item.salt, item.entry) == item.leaf_hash
        assert json.loads(mine[0].entry or b"")["subject"] == "sub_one"
        assert mine[0].as_json()["salt"] == base64.b64encode(mine[0].salt or b"").decode()
    with session_scope(engine) as session:
        assert ledger.erase_subject(session, "subj-1") == 3
    with session_scope(engine) as session:
        assert ledger.entries_for_subject(session, "subj-1") == []
        report = ledger.verify(session)
        assert (report.problems, report.opaque) == ([], [0, 1, 3])
        with pytest.raises(ErasedEntryError, match="leaf 1 was erased") as caught:
            ledger.receipt_for(session, 1)
        assert isinstance(caught.value, LedgerError) and isinstance(caught.value, NotFoundError)
        assert verify_receipt(ledger.receipt_for(session, 2), SIGNER.verifier_key)


def test_ledger_check_receipt_says_included_in_newest_tree(engine: Engine) -> None:
    """A receipt stays included as the log grows; an altered one or another log's is not."""
    ledger = _node()
    with session_scope(engine) as session:
        receipt = ledger.receipt(session, ledger.append(session, action="consent.grant"))
    _append(engine, ledger, 6)
    with session_scope(engine) as session:
        status = ledger.check_receipt(session, receipt)
        assert (status.included, status.tree_size, status.leaf_index) == (True, 7, 0)
        assert status.checkpoint_at is not None and status.problem is None
        forged = {**receipt, "leaf": {**receipt["leaf"], "app": "app_z"}}
        refused = ledger.check_receipt(session, forged)
        assert not refused.included
        assert refused.problem is not None and "inclusion proof" in refused.problem
        assert not ledger.check_receipt(session, "not a receipt").included
    other = Ledger(signer=SIGNER, origin="elsewhere.test/ledger")
    with session_scope(engine) as session:
        status = other.check_receipt(session, receipt)
    assert not status.included
    assert status.problem == (f"The receipt is for the log {log_origin(ORIGIN)!r}, not "
                              "'elsewhere.test/ledger/v2'.")


AUDITOR = Principal(kind="account", id="acc-aud", role="auditor")


def test_ledger_entries_open_to_auditors_and_admins_only(engine: Engine) -> None:
    """Whole entries are for auditors and admins; other roles are refused."""
    ledger = _node()
    _append(engine, ledger, 3)
    with Session(engine) as session:
        page = ledger.entries(session, AUDITOR, start=1, limit=5)
        assert [e["seq"] for e in page["entries"]] == [1, 2]
        assert page["tree_size"] == 3 and page["entries"][0]["entry"]["app"] == "app_x"
        admin = Principal(kind="account", id="acc-adm", role="admin")
        assert len(ledger.entries(session, admin)["entries"]) == 3
        for role in ("subject", "clinician", "guardian", "app"):
            with pytest.raises(PermissionDenied, match="'auditor', 'admin' only"):
                ledger.entries(session, Principal(kind="account", id="x", role=role))


@pytest.mark.parametrize(
    ("start", "limit", "field", "message"),
    [
        (-1, 10, "start", "Invalid value for the 'start' parameter. It must be a whole "
                          "number of 0 or more, but got -1 instead."),
        (0, 0, "limit", "Invalid value for the 'limit' parameter. Allowed values are 1 to "
                        "1000, but got 0 instead."),
        (0, 1001, "limit", "Invalid value for the 'limit' parameter. Allowed values are 1 "
                           "to 1000, but got 1001 instead."),
    ],
)
def test_ledger_pages_refuse_bad_bounds(engine: Engine, start: int, limit: int, field: str,
                                        message: str) -> None:
    """Listings are bounded, and a bad bound names its parameter and value."""
    ledger = _node()
    with Session(engine) as session:
        for call in (lambda: ledger.entries(session, AUDITOR, start, limit),
                     lambda: ledger.leaves(session, start, limit)):
            with pytest.raises(ValidationError) as caught:
                call()
            assert (caught.value.field, caught.value.message) == (field, message)


def test_ledger_public_views_hold_hashes_only(engine: Engine) -> None:
    """Leaves, inclusion and consistency answers carry hashes and checkpoints, no entry."""
    ledger = _node()
    _append(engine, ledger, 5, subject="p_secret")
    with session_scope(engine) as session:
        leaves = ledger.leaves(session)
        proof = ledger.inclusion(session, 3)
        answers = [leaves, proof, ledger.consistency(session, 2, 5),
                   ledger.checkpoints(session)]
    text = json.dumps(answers)
    for word in ("p_secret", "app_x", "consent.grant", "subject", '"at"'):
        assert word not in text
    hashes = [bytes.fromhex(h) for h in leaves["leaf_hashes"]]
    assert bytes.fromhex(proof["root"]) == root(hashes)
    assert ledger.open(proof["checkpoint"]).root == root(hashes)


def test_ledger_rolled_back_savepoint_leaves_no_trace(engine: Engine) -> None:
    """Appends inside a SAVEPOINT that rolls back vanish from the batch too: the commit's
    checkpoint covers only what was kept, and the next append takes the freed index."""
    ledger = _node()
    with session_scope(engine) as session:
        ledger.append(session, action="consent.grant", app="kept")
        savepoint = session.begin_nested()
        ledger.append(session, action="consent.grant", app="dropped")
        savepoint.rollback()
        assert ledger.size(session) == 1
        assert ledger.append(session, action="consent.revoke", app="kept").seq == 1
    assert _checkpoint_sizes(engine) == [2]
    assert ledger.frontier().size == 2
    with Session(engine) as session:
        assert ledger.verify(session).problems == []
        apps = [json.loads(bytes(leaf.entry or b""))["app"] for leaf in
                session.exec(select(LedgerLeaf).order_by(col(LedgerLeaf.seq))).all()]
    assert apps == ["kept", "kept"]
