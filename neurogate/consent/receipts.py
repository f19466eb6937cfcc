"""Consent receipts: signed JSON a data subject keeps and anyone can verify offline.

A receipt carries a ledger entry, the secret salt that opens its leaf, its inclusion
proof and a signed checkpoint::

    {
      "version": 2,
      "leaf": {...the entry...},
      "salt": "<base64 of the entry's 32-byte salt>",
      "leaf_index": 41,
      "tree_size": 42,
      "inclusion_proof": ["base64 hash", ...],
      "checkpoint": "<signed note text>",
      "key": "<verifier key string>",
      "signature": "<base64 Ed25519 signature>"
    }

The public log holds only the leaf hash ``salted_leaf_hash(salt, canonical_json(leaf))``
(see ``neurogate.consent.merkle``); the receipt is what lets its holder, and only its
holder, show which entry that leaf commits to. Keep it as private as the consent itself.

``signature`` is the log key's Ed25519 signature over the canonical JSON of every other
field. Canonical JSON never holds a raw newline while every signed note text does, so
the one key can sign both without one ever passing for the other.

Verifying needs only the receipt and the log's verifier key: the checkpoint signature,
the tree size, the inclusion of the salted leaf hash under the checkpoint's root, and
the receipt signature. Version 1 receipts, issued before leaves were salted (no
``salt``; the leaf hash was ``leaf_hash(canonical_json(leaf))``), still verify.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from neurogate.consent.checkpoint import (
    Checkpoint,
    Signer,
    Verifier,
    _b64decode,
    open_checkpoint,
)
from neurogate.consent.merkle import (
    HASH_SIZE,
    SALT_SIZE,
    canonical_json,
    leaf_hash,
    salted_leaf_hash,
    verify_inclusion,
)
from neurogate.errors import LedgerError

RECEIPT_VERSION = 2
"""Version of the receipt format written by ``build_receipt`` (2: salted leaves)."""

_V1_FIELDS = frozenset(
    {
        "checkpoint",
        "inclusion_proof",
        "key",
        "leaf",
        "leaf_index",
        "signature",
        "tree_size",
        "version",
    }
)
_FIELDS_BY_VERSION = {1: _V1_FIELDS, 2: _V1_FIELDS | {"salt"}}


@dataclass(frozen=True)
class ReceiptCheck:
    """What a verified receipt proves: ``leaf`` sits at ``leaf_index`` under ``checkpoint``."""

    leaf: dict[str, Any]
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    checkpoint: Checkpoint
    key: str
    version: int = RECEIPT_VERSION


def build_receipt(
    *,
    entry: bytes,
    salt: bytes,
    index: int,
    size: int,
    proof: list[bytes],
    checkpoint: str,
    signer: Signer,
) -> dict[str, Any]:
    """Return the signed receipt for ledger ``entry`` at ``index`` under ``checkpoint``.

    ``entry`` must be canonical JSON of an object, ``salt`` the salt its leaf commits
    with, ``proof`` its inclusion proof in the
    tree of ``size`` leaves, and ``checkpoint`` that tree's checkpoint signed by
    ``signer``. Every part is checked before signing, so a receipt that would not
    verify is never issued: LedgerError says which part is wrong.
    """
    leaf = _decode_entry(entry)
    try:
        opened = open_checkpoint(checkpoint, signer.verifier)
    except LedgerError as exc:
        msg = f"Cannot issue a receipt: its checkpoint is not signed by this signer. {exc}"
        raise LedgerError(msg) from exc
    if opened.size != size:
        msg = (
            f"Cannot issue a receipt: the tree size {size} differs from the checkpoint's "
            f"size {opened.size}."
        )
        raise LedgerError(msg, field="size")
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        msg = f"Cannot issue a receipt: the salt must be {SALT_SIZE} bytes."
        raise LedgerError(msg, field="salt")
    if not verify_inclusion(salted_leaf_hash(salt, entry), index, size, proof, opened.root):
        msg = (
            f"Cannot issue a receipt: the inclusion proof does not place the entry at "
            f"index {index} under the checkpoint's root for {size} leaves."
        )
        raise LedgerError(msg, field="proof")
    body: dict[str, Any] = {
        "version": RECEIPT_VERSION,
        "leaf": leaf,
        "salt": base64.b64encode(salt).decode(),
        "leaf_index": index,
        "tree_size": size,
        "inclusion_proof": [base64.b64encode(h).decode() for h in proof],
        "checkpoint": checkpoint,
        "key": signer.verifier_key,
    }
    signature = signer.sign(canonical_json(body))
    return {**body, "signature": base64.b64encode(signature).decode()}


def verify_receipt(
    receipt: dict[str, Any], verifier_key: str | Verifier, *, origin: str | None = None
) -> ReceiptCheck:
    """Verify ``receipt`` offline against the log's trusted ``verifier_key``.

    Checks, in order: the receipt's shape, that it names the trusted key, the
    checkpoint signature (and ``origin`` when given), the tree size, the inclusion
    proof of the leaf under the checkpoint root, and the receipt signature. Raises
    LedgerError naming the first check that failed.
    """
    verifier = verifier_key if isinstance(verifier_key, Verifier) else Verifier(verifier_key)
    _check_shape(receipt)
    if receipt["key"] != verifier.key_string:
        msg = (
            f"The receipt names the key {receipt['key']!r}, not the trusted key "
            f"{verifier.key_string!r}: it was not issued by this ledger."
        )
        raise LedgerError(msg, field="key")
    try:
        checkpoint = open_checkpoint(receipt["checkpoint"], verifier, origin=origin)
    except LedgerError as exc:
        msg = f"The receipt's checkpoint failed verification. {exc}"
        raise LedgerError(msg, field="checkpoint") from exc
    size, index = receipt["tree_size"], receipt["leaf_index"]
    if size != checkpoint.size:
        msg = (
            f"The receipt's tree size {size} differs from the size {checkpoint.size} in "
            "its checkpoint."
        )
        raise LedgerError(msg, field="tree_size")
    proof = [_decode_hash(item) for item in receipt["inclusion_proof"]]
    entry = _canonical(receipt["leaf"], "leaf")
    if receipt["version"] == 1:
        hashed = leaf_hash(entry)
    else:
        hashed = salted_leaf_hash(_decode_salt(receipt["salt"]), entry)
    if not verify_inclusion(hashed, index, size, proof, checkpoint.root):
        msg = (
            f"The receipt's inclusion proof does not place its leaf at index {index} under "
            f"the checkpoint's root for {size} leaves: the leaf, the index or the proof "
            "was altered."
        )
        raise LedgerError(msg, field="inclusion_proof")
    body = {k: v for k, v in receipt.items() if k != "signature"}
    signature = _b64decode(receipt["signature"])
    if not verifier.verify(_canonical(body, "receipt"), signature):
        msg = "The receipt signature does not verify: the receipt was altered after it was issued."
        raise LedgerError(msg, field="signature")
    return ReceiptCheck(
        leaf=receipt["leaf"],
        leaf_index=index,
        tree_size=size,
        leaf_hash=hashed,
        checkpoint=checkpoint,
        key=verifier.key_string,
        version=receipt["version"],
    )


def _decode_entry(entry: bytes) -> dict[str, Any]:
    """Return the JSON object held by ``entry``, which must be canonical JSON."""
    try:
        leaf = json.loads(entry)
    except (TypeError, ValueError) as exc:
        msg = "Cannot issue a receipt: the entry is not JSON."
        raise LedgerError(msg, field="entry") from exc
    if not isinstance(leaf, dict) or canonical_json(leaf) != entry:
        msg = "Cannot issue a receipt: the entry must be the canonical JSON of an object."
        raise LedgerError(msg, field="entry")
    return leaf


def _canonical(value: object, what: str) -> bytes:
    """Return the canonical JSON of ``value``, raising LedgerError if it has none."""
    try:
        return canonical_json(value)
    except (TypeError, ValueError) as exc:
        msg = f"The receipt is malformed: its {what} holds values JSON cannot represent."
        raise LedgerError(msg, field=what) from exc


def _check_shape(receipt: object) -> None:
    """Raise LedgerError unless ``receipt`` has the fields and types of its version."""
    if not isinstance(receipt, dict):
        msg = f"A receipt must be a JSON object, but got {type(receipt).__name__}."
        raise LedgerError(msg)
    version = receipt.get("version")
    if isinstance(version, bool) or version not in _FIELDS_BY_VERSION:
        msg = (
            f"The receipt has version {version!r}, but only versions "
            f"{sorted(_FIELDS_BY_VERSION)} are supported."
        )
        raise LedgerError(msg, field="version")
    fields = _FIELDS_BY_VERSION[version]
    missing = sorted(fields - receipt.keys())
    extra = sorted(receipt.keys() - fields)
    if missing or extra:
        msg = (
            f"The receipt is malformed: missing fields {missing}, unexpected fields {extra}. "
            f"A version {version} receipt has exactly {sorted(fields)}."
        )
        raise LedgerError(msg)
    expected = {
        "leaf": dict,
        "leaf_index": int,
        "tree_size": int,
        "inclusion_proof": list,
        "checkpoint": str,
        "key": str,
        "signature": str,
    }
    if version >= 2:
        expected["salt"] = str
    for name, kind in expected.items():
        value = receipt[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            msg = (
                f"The receipt is malformed: its field {name!r} must be of type "
                f"{kind.__name__}, but holds {value!r}."
            )
            raise LedgerError(msg, field=name)


def _decode_hash(item: object) -> bytes:
    """Decode one base64 proof hash, raising LedgerError if it is not 32 bytes."""
    raw = _b64decode(item) if isinstance(item, str) else b""
    if len(raw) != HASH_SIZE:
        msg = (
            f"The receipt is malformed: the inclusion proof item {item!r} is not the base64 "
            f"encoding of a {HASH_SIZE}-byte hash."
        )
        raise LedgerError(msg, field="inclusion_proof")
    return raw


def _decode_salt(item: str) -> bytes:
    """Decode the base64 salt, raising LedgerError if it is not ``SALT_SIZE`` bytes."""
    raw = _b64decode(item)
    if len(raw) != SALT_SIZE:
        msg = (
            f"The receipt is malformed: its salt {item[:80]!r} is not the base64 encoding "
            f"of {SALT_SIZE} bytes."
        )
        raise LedgerError(msg, field="salt")
    return raw


__all__ = [
    "RECEIPT_VERSION",
    "ReceiptCheck",
    "build_receipt",
    "canonical_json",
    "verify_receipt",
]
