"""The database-backed ledger: appends, and ``neurogate audit verify`` against tampering."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from neurogate.consent.checkpoint import generate_signer, sign_checkpoint
from neurogate.consent.merkle import root
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings


@pytest.fixture
def ledger_gateway(tmp_path: Path) -> Gateway:
    """A gateway with eight ledger leaves on SQLite."""
    settings = Settings(data_dir=tmp_path, environment="test")
    gateway = build_gateway(settings)
    for number in range(8):
        with gateway.transaction() as session:
            gateway.ledger.append(session, action="consent.grant", subject=f"sub_{number}",
                                  app="app_x", purpose="neurofeedback")
    return gateway


def _audit(gateway: Gateway, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env["NEUROGATE_DATA_DIR"] = str(gateway.settings.data_dir)
    return subprocess.run([sys.executable, "-m", "neurogate", "audit", "verify", *extra],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def _sql(gateway: Gateway, *statements: str, **params: object) -> None:
    with gateway.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)


def test_ledger_store_untampered_log_verifies(ledger_gateway: Gateway) -> None:
    """An untouched ledger passes the command-line audit."""
    result = _audit(ledger_gateway)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ledger verified: 8 leaves" in result.stdout


def _flip_byte(gateway: Gateway) -> None:
    with gateway.engine.begin() as conn:
        entry = bytearray(conn.execute(sa.text("SELECT entry FROM ledger_leaves WHERE seq=3"))
                          .scalar_one())
        entry[10] ^= 0x01
        conn.execute(sa.text("UPDATE ledger_leaves SET entry=:e WHERE seq=3"), {"e": bytes(entry)})


def _remove_leaf(gateway: Gateway) -> None:
    _sql(gateway, "DELETE FROM ledger_leaves WHERE seq=5")


def _swap_leaves(gateway: Gateway) -> None:
    with gateway.engine.begin() as conn:
        rows = dict(conn.execute(sa.text(
            "SELECT seq, entry FROM ledger_leaves WHERE seq IN (1, 2)")).all())
        for seq, other in ((1, 2), (2, 1)):
            conn.execute(sa.text("UPDATE ledger_leaves SET entry=:e WHERE seq=:s"),
                         {"e": rows[other], "s": seq})


def _foreign_checkpoint(gateway: Gateway) -> None:
    with gateway.engine.begin() as conn:
        hashes = [bytes(h) for h in conn.execute(sa.text(
            "SELECT leaf_hash FROM ledger_leaves ORDER BY seq")).scalars()]
        impostor = generate_signer(gateway.ledger.origin)
        note = sign_checkpoint(impostor, gateway.ledger.origin, len(hashes), root(hashes))
        conn.execute(sa.text("UPDATE ledger_checkpoints SET note=:n WHERE size=8"), {"n": note})


def _change_salt(gateway: Gateway) -> None:
    _sql(gateway, "UPDATE ledger_leaves SET salt=:s WHERE seq=4", s=b"\x07" * 32)


def _drop_salt_only(gateway: Gateway) -> None:
    _sql(gateway, "UPDATE ledger_leaves SET salt=NULL WHERE seq=2")


def _rewrite_and_recommit(gateway: Gateway) -> None:
    """Change an entry and store a fresh salted leaf for it: the signed roots break."""
    from neurogate.consent.merkle import salted_leaf_hash

    with gateway.engine.begin() as conn:
        entry = json.loads(conn.execute(sa.text(
            "SELECT entry FROM ledger_leaves WHERE seq=6")).scalar_one())
        entry["purpose"] = "neuromarketing"
        raw = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        salt = b"\x05" * 32
        conn.execute(sa.text("UPDATE ledger_leaves SET entry=:e, salt=:s, leaf_hash=:h "
                             "WHERE seq=6"),
                     {"e": raw, "s": salt, "h": salted_leaf_hash(salt, raw)})


def _replace_opaque_leaf(gateway: Gateway) -> None:
    """Erase a leaf, then swap in another hash: an opaque leaf is still bound by the roots."""
    _sql(gateway, "UPDATE ledger_leaves SET entry=NULL, salt=NULL, leaf_hash=:h WHERE seq=1",
         h=b"\x09" * 32)


TAMPERINGS: dict[str, Callable[[Gateway], None]] = {
    "one byte of a leaf changed": _flip_byte,
    "a leaf removed": _remove_leaf,
    "two leaves swapped": _swap_leaves,
    "checkpoint signed by another key": _foreign_checkpoint,
    "the salt of a leaf changed": _change_salt,
    "a salt deleted without its entry": _drop_salt_only,
    "an entry rewritten and re-committed": _rewrite_and_recommit,
    "an opaque leaf's hash replaced": _replace_opaque_leaf,
}


@pytest.mark.parametrize("tamper", list(TAMPERINGS))
def test_ledger_store_audit_rejects_tampering(ledger_gateway: Gateway, tamper: str) -> None:
    """Each tampering makes ``neurogate audit verify`` exit 1 and say what is wrong."""
    TAMPERINGS[tamper](ledger_gateway)
    result = _audit(ledger_gateway)
    assert result.returncode == 1, result.stdout
    assert "Ledger verification FAILED" in result.stderr


def test_ledger_store_truncated_log_fails_against_earlier_checkpoint(
        ledger_gateway: Gateway, tmp_path: Path) -> None:
    """A log cut back (leaves and their checkpoints deleted) fails against a checkpoint an
    auditor kept."""
    kept = tmp_path / "checkpoint.txt"
    with ledger_gateway.transaction() as session:
        kept.write_text(ledger_gateway.ledger.latest_checkpoint(session), encoding="utf-8")
    _sql(ledger_gateway, "DELETE FROM ledger_leaves WHERE seq >= 6",
         "DELETE FROM ledger_checkpoints WHERE size > 6")
    assert _audit(ledger_gateway).returncode == 0  # self-consistent once cut...
    result = _audit(ledger_gateway, "--checkpoint", str(kept))
    assert result.returncode == 1  # ...but not against what was published before
    assert "External checkpoint" in result.stderr


def test_ledger_store_refuses_personal_fields(ledger_gateway: Gateway) -> None:
    """A leaf may not carry fields outside the pseudonymous allow-list."""
    from neurogate.errors import LedgerError

    with pytest.raises(LedgerError, match="may not carry the fields"), \
            ledger_gateway.transaction() as session:
        ledger_gateway.ledger.append(session, action="consent.grant", display_name="Alex")


def test_ledger_store_rolled_back_append_leaves_no_trace(ledger_gateway: Gateway) -> None:
    """A failed transaction appends nothing, and the next append takes its index."""
    with pytest.raises(RuntimeError), ledger_gateway.transaction() as session:
        ledger_gateway.ledger.append(session, action="consent.revoke", subject="sub_x")
        msg = "boom"
        raise RuntimeError(msg)
    with ledger_gateway.transaction() as session:
        appended = ledger_gateway.ledger.append(session, action="consent.revoke",
                                                subject="sub_y")
    assert appended.seq == 8
    assert json.loads(appended.entry)["subject"] == "sub_y"
    with ledger_gateway.transaction() as session:
        assert ledger_gateway.ledger.verify(session).ok


def test_ledger_store_erased_leaves_verify_as_opaque(ledger_gateway: Gateway) -> None:
    """After an erasure the audit passes, counting the erased leaves as opaque."""
    with ledger_gateway.transaction() as session:
        for _ in range(3):
            ledger_gateway.ledger.append(session, action="consent.revoke", concerns="subj-9")
    with ledger_gateway.transaction() as session:
        assert ledger_gateway.ledger.erase_subject(session, "subj-9") == 3
    result = _audit(ledger_gateway)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ledger verified: 11 leaves (3 opaque: their entries were erased)" in result.stdout


def _verify_receipt_cli(gateway: Gateway, path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env["NEUROGATE_DATA_DIR"] = str(gateway.settings.data_dir)
    return subprocess.run([sys.executable, "-m", "neurogate", "audit", "verify-receipt",
                           str(path)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_ledger_store_receipt_verifies_offline_and_altered_salt_fails(
        ledger_gateway: Gateway, tmp_path: Path) -> None:
    """``neurogate audit verify-receipt`` accepts a salted receipt and refuses it once its
    salt is altered."""
    with ledger_gateway.transaction() as session:
        appended = ledger_gateway.ledger.append(session, action="consent.grant", app="app_r")
        receipt = ledger_gateway.ledger.receipt(session, appended)
    good = tmp_path / "receipt.json"
    good.write_text(json.dumps(receipt), encoding="utf-8")
    result = _verify_receipt_cli(ledger_gateway, good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Receipt valid" in result.stdout
    salt = bytearray(base64.b64decode(receipt["salt"]))
    salt[0] ^= 1
    receipt["salt"] = base64.b64encode(bytes(salt)).decode()
    bad = tmp_path / "altered.json"
    bad.write_text(json.dumps(receipt), encoding="utf-8")
    result = _verify_receipt_cli(ledger_gateway, bad)
    assert result.returncode == 1
    assert "inclusion proof does not place its leaf" in result.stderr
