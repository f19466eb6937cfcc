"""Consent receipts: issued with proofs, verified offline, every alteration refused."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from neurogate.consent.checkpoint import Signer, generate_signer, sign_checkpoint
from neurogate.consent.merkle import inclusion_proof, leaf_hash, root, salted_leaf_hash
from neurogate.consent.receipts import build_receipt, canonical_json, verify_receipt
from neurogate.errors import LedgerError

ORIGIN = "clinic.example/ledger"
SIGNER = generate_signer(ORIGIN)
OTHER = generate_signer(ORIGIN)
ENTRIES = [
    canonical_json(
        {"seq": i, "action": "consent.grant", "subject": f"ps_{i:04x}", "purpose": "research"}
    )
    for i in range(7)
]
SALTS = [bytes([i]) * 32 for i in range(7)]
HASHES = [salted_leaf_hash(salt, e) for salt, e in zip(SALTS, ENTRIES, strict=True)]
INDEX = 4


def _issue(signer: Signer = SIGNER, index: int = INDEX, size: int = len(ENTRIES)) -> dict[str, Any]:
    """A receipt for entry ``index`` under a checkpoint of ``size`` leaves."""
    checkpoint = sign_checkpoint(signer, ORIGIN, size, root(HASHES, size))
    return build_receipt(
        entry=ENTRIES[index],
        salt=SALTS[index],
        index=index,
        size=size,
        proof=inclusion_proof(HASHES, index, size),
        checkpoint=checkpoint,
        signer=signer,
    )


def _issue_v1(index: int = INDEX) -> dict[str, Any]:
    """A version 1 receipt, as issued before leaves were salted (unsalted leaf hashes)."""
    hashes = [leaf_hash(e) for e in ENTRIES]
    body: dict[str, Any] = {
        "version": 1,
        "leaf": json.loads(ENTRIES[index]),
        "leaf_index": index,
        "tree_size": len(ENTRIES),
        "inclusion_proof": [base64.b64encode(h).decode()
                            for h in inclusion_proof(hashes, index, len(ENTRIES))],
        "checkpoint": sign_checkpoint(SIGNER, ORIGIN, len(ENTRIES), root(hashes)),
        "key": SIGNER.verifier_key,
    }
    signature = base64.b64encode(SIGNER.sign(canonical_json(body))).decode()
    return {**body, "signature": signature}


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_build_receipt_writes_version_two_fields() -> None:
    """A receipt carries the decoded leaf, its salt, position, proof, checkpoint, key and
    signature."""
    receipt = _issue()
    assert sorted(receipt) == [
        "checkpoint",
        "inclusion_proof",
        "key",
        "leaf",
        "leaf_index",
        "salt",
        "signature",
        "tree_size",
        "version",
    ]
    assert receipt["version"] == 2
    assert base64.b64decode(receipt["salt"]) == SALTS[INDEX]
    assert receipt["leaf"] == json.loads(ENTRIES[INDEX])
    assert (receipt["leaf_index"], receipt["tree_size"]) == (INDEX, len(ENTRIES))
    assert receipt["key"] == SIGNER.verifier_key
    assert len(base64.b64decode(receipt["signature"])) == 64


def test_verify_receipt_accepts_valid_receipt() -> None:
    """An untouched receipt verifies and reports what it proves."""
    check = verify_receipt(_issue(), SIGNER.verifier_key)
    assert check.leaf == json.loads(ENTRIES[INDEX])
    assert (check.leaf_index, check.tree_size) == (INDEX, len(ENTRIES))
    assert check.leaf_hash == HASHES[INDEX]
    assert check.checkpoint.root == root(HASHES)
    assert check.key == SIGNER.verifier_key


@pytest.mark.parametrize(("index", "size"), [(0, 1), (0, 7), (6, 7), (3, 4), (2, 5)])
def test_verify_receipt_accepts_every_position_after_json_round_trip(index: int, size: int) -> None:
    """Receipts survive being saved as JSON text and still verify offline."""
    receipt = json.loads(json.dumps(_issue(index=index, size=size)))
    assert verify_receipt(receipt, SIGNER.verifier).leaf_index == index


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "consent.revoke"),
        ("purpose", "marketing"),
        ("seq", 5),
        ("extra", True),
    ],
)
def test_verify_receipt_rejects_altered_leaf(field: str, value: object) -> None:
    """Changing or adding any leaf field breaks its inclusion proof."""
    receipt = _issue()
    receipt["leaf"][field] = value
    with pytest.raises(LedgerError, match="inclusion proof does not place its leaf"):
        verify_receipt(receipt, SIGNER.verifier_key)


@pytest.mark.parametrize("position", range(3))
def test_verify_receipt_rejects_altered_proof(position: int) -> None:
    """Flipping a bit in any proof hash breaks the proof."""
    receipt = _issue()
    receipt["inclusion_proof"][position] = _flip_b64(receipt["inclusion_proof"][position])
    with pytest.raises(LedgerError, match="inclusion proof does not place its leaf"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_verify_receipt_rejects_truncated_proof() -> None:
    """Dropping a proof hash breaks the proof."""
    receipt = _issue()
    receipt["inclusion_proof"].pop()
    with pytest.raises(LedgerError, match="inclusion proof does not place its leaf"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_verify_receipt_rejects_altered_leaf_index() -> None:
    """Claiming another position for the leaf breaks the proof."""
    receipt = _issue()
    receipt["leaf_index"] = INDEX + 1
    with pytest.raises(LedgerError, match="inclusion proof does not place its leaf at index 5"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_verify_receipt_rejects_altered_checkpoint() -> None:
    """Editing the checkpoint text breaks its signature."""
    receipt = _issue()
    receipt["checkpoint"] = receipt["checkpoint"].replace(f"\n{len(ENTRIES)}\n", "\n8\n", 1)
    with pytest.raises(LedgerError, match="checkpoint failed verification.*does not verify"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_verify_receipt_rejects_checkpoint_of_another_tree() -> None:
    """A genuine checkpoint of a different tree of the same size does not hold the leaf."""
    receipt = _issue()
    other_root = root([leaf_hash(b"x"), *HASHES[1:]])
    receipt["checkpoint"] = sign_checkpoint(SIGNER, ORIGIN, len(ENTRIES), other_root)
    with pytest.raises(LedgerError, match="inclusion proof does not place its leaf"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_verify_receipt_rejects_tree_size_unlike_checkpoint() -> None:
    """The receipt's tree size must be the checkpoint's."""
    receipt = _issue()
    receipt["tree_size"] = len(ENTRIES) + 1
    with pytest.raises(LedgerError, match="tree size 8 differs from the size 7"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_verify_receipt_rejects_wrong_key() -> None:
    """A receipt checked against another ledger's key is refused."""
    with pytest.raises(LedgerError, match="not the trusted key"):
        verify_receipt(_issue(), OTHER.verifier_key)


def test_verify_receipt_rejects_receipt_issued_by_another_key() -> None:
    """A receipt issued by another key fails even if it claims the trusted key."""
    receipt = _issue(signer=OTHER)
    receipt["key"] = SIGNER.verifier_key
    with pytest.raises(LedgerError, match="checkpoint failed verification.*not signed by"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_verify_receipt_rejects_forged_receipt_signature() -> None:
    """Re-signing a genuine receipt body with another key breaks the receipt signature."""
    receipt = _issue()
    body = {k: v for k, v in receipt.items() if k != "signature"}
    receipt["signature"] = base64.b64encode(OTHER.sign(canonical_json(body))).decode()
    with pytest.raises(LedgerError, match="receipt signature does not verify"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_verify_receipt_rejects_altered_signature() -> None:
    """Flipping a bit of the receipt signature is detected."""
    receipt = _issue()
    receipt["signature"] = _flip_b64(receipt["signature"])
    with pytest.raises(LedgerError, match="receipt signature does not verify"):
        verify_receipt(receipt, SIGNER.verifier_key)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("signature"), r"missing fields \['signature'\]"),
        (lambda r: r.update(note="hi"), r"unexpected fields \['note'\]"),
        (lambda r: r.update(version=3), r"only versions \[1, 2\] are supported"),
        (lambda r: r.update(version=True), r"only versions \[1, 2\] are supported"),
        (lambda r: r.pop("salt"), r"missing fields \['salt'\]"),
        (lambda r: r.update(salt=7), "'salt' must be of type str"),
        (lambda r: r.update(salt="c2hvcnQ="), "salt 'c2hvcnQ=' is not the base64 encoding"),
        (lambda r: r.update(leaf_index="4"), "'leaf_index' must be of type int"),
        (lambda r: r.update(leaf=[1]), "'leaf' must be of type dict"),
        (lambda r: r["inclusion_proof"].__setitem__(0, "??"), "not the base64 encoding"),
    ],
)
def test_verify_receipt_rejects_malformed_receipt(change: Any, message: str) -> None:
    """Missing, extra or mistyped fields are refused, naming the field."""
    receipt = copy.deepcopy(_issue())
    change(receipt)
    with pytest.raises(LedgerError, match=message):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_build_receipt_refuses_non_canonical_entry() -> None:
    """Entries must be canonical JSON objects, or verifiers could not rehash them."""
    with pytest.raises(LedgerError, match="canonical JSON of an object"):
        build_receipt(
            entry=b'{"seq": 0}',
            salt=SALTS[0],
            index=0,
            size=1,
            proof=[],
            checkpoint=sign_checkpoint(SIGNER, ORIGIN, 1, leaf_hash(b'{"seq": 0}')),
            signer=SIGNER,
        )


def test_build_receipt_refuses_proof_that_does_not_verify() -> None:
    """A receipt whose proof would fail is never issued."""
    checkpoint = sign_checkpoint(SIGNER, ORIGIN, len(ENTRIES), root(HASHES))
    with pytest.raises(LedgerError, match="Cannot issue a receipt: the inclusion proof"):
        build_receipt(
            entry=ENTRIES[INDEX],
            salt=SALTS[INDEX],
            index=INDEX,
            size=len(ENTRIES),
            proof=inclusion_proof(HASHES, INDEX - 1, len(ENTRIES)),
            checkpoint=checkpoint,
            signer=SIGNER,
        )


def test_build_receipt_refuses_checkpoint_of_other_size_or_key() -> None:
    """The checkpoint must be this signer's and cover exactly ``size`` leaves."""
    proof = inclusion_proof(HASHES, INDEX, len(ENTRIES))
    smaller = sign_checkpoint(SIGNER, ORIGIN, 6, root(HASHES, 6))
    with pytest.raises(LedgerError, match="tree size 7 differs from the checkpoint's size 6"):
        build_receipt(
            entry=ENTRIES[INDEX], salt=SALTS[INDEX], index=INDEX, size=7, proof=proof,
            checkpoint=smaller,
            signer=SIGNER,
        )
    foreign = sign_checkpoint(OTHER, ORIGIN, 7, root(HASHES))
    with pytest.raises(LedgerError, match="not signed by this signer"):
        build_receipt(
            entry=ENTRIES[INDEX], salt=SALTS[INDEX], index=INDEX, size=7, proof=proof,
            checkpoint=foreign,
            signer=SIGNER,
        )


def test_verify_receipt_rejects_altered_salt() -> None:
    """Another salt opens no leaf of the tree: the proof fails."""
    receipt = _issue()
    receipt["salt"] = _flip_b64(receipt["salt"])
    with pytest.raises(LedgerError, match="inclusion proof does not place its leaf"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_verify_receipt_accepts_version_one_receipt() -> None:
    """A receipt issued before leaves were salted still verifies offline."""
    check = verify_receipt(_issue_v1(), SIGNER.verifier_key)
    assert (check.version, check.leaf_index) == (1, INDEX)
    assert check.leaf_hash == leaf_hash(ENTRIES[INDEX])


def test_verify_receipt_refuses_version_one_receipt_with_a_salt() -> None:
    """A version 1 receipt has no salt field: adding one is a malformed receipt."""
    receipt = {**_issue_v1(), "salt": base64.b64encode(SALTS[INDEX]).decode()}
    with pytest.raises(LedgerError, match=r"unexpected fields \['salt'\]"):
        verify_receipt(receipt, SIGNER.verifier_key)


def test_build_receipt_refuses_short_salt() -> None:
    """A salt that is not 32 bytes is refused before anything is signed."""
    checkpoint = sign_checkpoint(SIGNER, ORIGIN, len(ENTRIES), root(HASHES))
    with pytest.raises(LedgerError, match="the salt must be 32 bytes"):
        build_receipt(entry=ENTRIES[INDEX], salt=b"short", index=INDEX, size=len(ENTRIES),
                      proof=inclusion_proof(HASHES, INDEX, len(ENTRIES)),
                      checkpoint=checkpoint, signer=SIGNER)
