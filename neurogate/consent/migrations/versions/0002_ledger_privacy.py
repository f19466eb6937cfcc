"""ledger privacy (salted leaf commitments)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Choice: the existing leaves are **re-committed** into a new salted log (format 2), and
the old log's checkpoints are kept as history; it is not a second live log.

Each existing entry keeps its bytes and its index (``seq``) and gets a fresh random
salt; its leaf becomes ``leaf_hash(HMAC-SHA256(salt, entry))``. The subject each entry
concerns is looked up from its pseudonym or account and stored beside it, so erasure
and export reach old entries too. If the old log held leaves, one ``ledger.migrate``
leaf is appended that names the old log's origin, size and root, so the new log's first
checkpoint commits to the old tree head. The old checkpoints move to
``ledger_v1_checkpoints``; the new log signs its own under the origin
``<configured origin>/v2`` (the gateway signs the first one when it is next asked; the
migration holds no key).

Why re-commit rather than start a new log beside the old one: the old leaf hashes are
unsalted hashes of entries whose fields are mostly guessable (an app knows its own id,
the purpose and its pseudonym for a subject, and the time to the millisecond is a small
search), so publishing them would keep the very leak this fixes, for every entry
written so far, and an erasure could never make those leaves opaque. Re-committing
gives old and new entries the same protection and keeps one log, one index space
(consent history and receipts refer to leaves by ``seq``) and one audit. What it gives
up: the old checkpoints cannot be extended by the new tree, so the new log takes a new
origin rather than appear as a fork of the old one. Receipts issued before the migration
carry their own proof and checkpoint and still verify offline; ``neurogate audit
verify`` rechecks the kept old checkpoints against the unsalted hashes of the entries
still held (until one of them is erased).

Works on SQLite and PostgreSQL. The downgrade restores unsalted leaves and the old
checkpoints, and refuses once any leaf was erased (an erased entry cannot be brought
back).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import neurogate.consent.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_SALT_SIZE = 32
_FORMAT_SUFFIX = "/v2"


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _root(hashes: list[bytes]) -> bytes:
    """RFC 6962 root, folded from the perfect subtrees (as merkle.Frontier does)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    nodes: list[bytes] = []
    for size, value in enumerate(hashes):
        node = value
        while size & 1:
            node = _node(nodes.pop(), node)
            size >>= 1
        nodes.append(node)
    result = nodes[-1]
    for node in reversed(nodes[:-1]):
        result = _node(node, result)
    return result


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def upgrade() -> None:
    with op.batch_alter_table('ledger_leaves', schema=None) as batch_op:
        batch_op.alter_column('entry', existing_type=sa.LargeBinary(), nullable=True)
        batch_op.add_column(sa.Column('salt', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_ledger_leaves_subject_id'), ['subject_id'],
                              unique=False)
    op.create_table('ledger_v1_checkpoints',
    sa.Column('size', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('size')
    )
    bind = op.get_bind()
    bind.execute(sa.text(
        "INSERT INTO ledger_v1_checkpoints (size, note, created_at) "
        "SELECT size, note, created_at FROM ledger_checkpoints"))
    bind.execute(sa.text("DELETE FROM ledger_checkpoints"))

    subjects = dict(bind.execute(sa.text("SELECT pseudonym, id FROM subjects")).all())
    subjects.update(bind.execute(sa.text(
        "SELECT pseudonym, subject_id FROM app_pseudonyms")).all())
    accounts = dict(bind.execute(sa.text(
        "SELECT id, subject_id FROM accounts WHERE subject_id IS NOT NULL")).all())
    rows = bind.execute(sa.text("SELECT seq, entry FROM ledger_leaves ORDER BY seq")).all()
    old_hashes: list[bytes] = []
    updates = []
    for seq, entry in rows:
        entry = bytes(entry)
        old_hashes.append(_leaf(entry))
        fields = json.loads(entry)
        subject = subjects.get(fields.get("subject")) or accounts.get(fields.get("account"))
        salt = os.urandom(_SALT_SIZE)
        commitment = hmac.new(salt, entry, hashlib.sha256).digest()
        updates.append({"seq": seq, "salt": salt, "hash": _leaf(commitment),
                        "subject": subject})
    if updates:
        bind.execute(sa.text(
            "UPDATE ledger_leaves SET salt = :salt, leaf_hash = :hash, subject_id = :subject "
            "WHERE seq = :seq"), updates)
        newest = bind.execute(sa.text(
            "SELECT note FROM ledger_v1_checkpoints ORDER BY size DESC LIMIT 1")).scalar()
        bridge = {
            "action": "ledger.migrate",
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "from_root": base64.b64encode(_root(old_hashes)).decode(),
            "from_size": len(old_hashes),
            "seq": len(old_hashes),
        }
        if newest:
            bridge["from_origin"] = str(newest).split("\n", 1)[0]
        entry = _canonical(bridge)
        salt = os.urandom(_SALT_SIZE)
        bind.execute(sa.text(
            "INSERT INTO ledger_leaves (seq, entry, leaf_hash, salt, subject_id) "
            "VALUES (:seq, :entry, :hash, :salt, NULL)"),
            {"seq": len(old_hashes), "entry": entry, "salt": salt,
             "hash": _leaf(hmac.new(salt, entry, hashlib.sha256).digest())})


def downgrade() -> None:
    bind = op.get_bind()
    erased = bind.execute(sa.text(
        "SELECT count(*) FROM ledger_leaves WHERE entry IS NULL OR salt IS NULL")).scalar()
    if erased:
        msg = (
            f"Cannot downgrade the ledger below revision 0002: {erased} leaves were erased, "
            "and an unsalted leaf cannot be rebuilt without its entry."
        )
        raise RuntimeError(msg)
    rows = bind.execute(sa.text("SELECT seq, entry FROM ledger_leaves ORDER BY seq")).all()
    if rows:
        bind.execute(sa.text("UPDATE ledger_leaves SET leaf_hash = :hash WHERE seq = :seq"),
                     [{"seq": seq, "hash": _leaf(bytes(entry))} for seq, entry in rows])
    bind.execute(sa.text("DELETE FROM ledger_checkpoints"))
    bind.execute(sa.text(
        "INSERT INTO ledger_checkpoints (size, note, created_at) "
        "SELECT size, note, created_at FROM ledger_v1_checkpoints"))
    op.drop_table('ledger_v1_checkpoints')
    with op.batch_alter_table('ledger_leaves', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_leaves_subject_id'))
        batch_op.drop_column('subject_id')
        batch_op.drop_column('salt')
        batch_op.alter_column('entry', existing_type=sa.LargeBinary(), nullable=False)
