"""Full audit of a ledger: entries, salts, stored leaf hashes and signed checkpoints.

``verify_log`` trusts nothing but the verifier key. It recomputes every leaf hash it
can open from its entry and salt (``salted_leaf_hash``), checks each entry is canonical
JSON numbered by ``"seq"`` in log order, opens every checkpoint, checks each
checkpoint's root against the log's first ``size`` leaves, and checks that consecutive
checkpoints are consistent. It reads no database: the caller passes what it stored.

A leaf whose entry and salt were both erased is *opaque*: nothing can open it any more,
so its stored hash stands for it in the tree. Opaque leaves are listed in the report,
not counted as problems; every root and checkpoint is still recomputed over them, and
an entry kept without its salt (or a salt without its entry) is a problem. Called
without ``salts``, ``verify_log`` audits an unsalted log (the retired version 1 format,
whose leaf is ``leaf_hash(entry)``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from neurogate.consent.checkpoint import Checkpoint, Verifier, open_checkpoint
from neurogate.consent.merkle import (
    SubtreeCache,
    canonical_json,
    consistency_proof,
    leaf_hash,
    root,
    salted_leaf_hash,
    verify_consistency,
)
from neurogate.errors import LedgerError, ValidationError


@dataclass
class AuditReport:
    """The result of ``verify_log``: ``ok`` when ``problems`` is empty.

    ``size`` is the number of entries audited and ``root`` the root hash recomputed
    from them; each problem is a plain sentence. ``opaque`` lists the indices of erased
    leaves (no entry, no salt) and ``notes`` what could not be rechecked because of them.
    """

    size: int
    root: bytes
    problems: list[str] = field(default_factory=list)
    opaque: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the audit found no problem."""
        return not self.problems


def verify_log(
    entries: Sequence[bytes | None],
    stored_hashes: Sequence[bytes] | None,
    checkpoints: Sequence[str],
    verifier: Verifier | str,
    *,
    salts: Sequence[bytes | None] | None = None,
) -> AuditReport:
    """Audit a whole ledger and report every problem found.

    Parameters
    ----------
    entries : sequence of bytes or None
        The canonical JSON entries in log order; entry ``i`` carries ``"seq": i``. None
        marks an erased entry (allowed only with ``salts``).
    stored_hashes : sequence of bytes, optional
        The leaf hashes the ledger stored beside its entries, or None to skip that check
        (then no entry may be erased: an opaque leaf is known by its stored hash only).
    checkpoints : sequence of str
        Signed checkpoint notes in the order they were issued.
    verifier : Verifier or str
        The log's trusted verifier (or its key string).
    salts : sequence of bytes or None, optional
        Each entry's salt (None where erased). Omitted: the log is unsalted (version 1).
    """
    if isinstance(verifier, str):
        verifier = Verifier(verifier)
    problems: list[str] = []
    opaque: list[int] = []
    if salts is None:
        hashes = [leaf_hash(_require_entry(index, entry)) for index, entry in enumerate(entries)]
        if stored_hashes is not None:
            problems += _check_stored_hashes(hashes, stored_hashes)
    else:
        hashes, opaque, found = _open_salted(entries, salts, stored_hashes)
        problems += found
    for index, entry in enumerate(entries):
        problem = None if entry is None else _check_entry(index, entry)
        if problem:
            problems.append(problem)
    # Only hashes recomputed from the entries (or the opaque leaves themselves) fill it.
    cache: SubtreeCache = {}
    problems += verify_checkpoints(hashes, checkpoints, verifier, cache=cache)
    return AuditReport(size=len(hashes), root=root(hashes, cache=cache), problems=problems,
                       opaque=opaque)


def verify_checkpoints(
    hashes: Sequence[bytes],
    checkpoints: Sequence[str],
    verifier: Verifier,
    *,
    label: str = "Checkpoint",
    cache: SubtreeCache | None = None,
) -> list[str]:
    """Check signed ``checkpoints`` (in issue order) against a log's leaf ``hashes``.

    Each checkpoint must be signed by ``verifier``, have the root of the first ``size``
    leaves, and extend the one before it. Returns the problems, each naming the
    checkpoint as ``label`` and its position.
    """
    cache = {} if cache is None else cache
    problems: list[str] = []
    previous: tuple[int, Checkpoint] | None = None
    leaves = list(hashes)
    for number, note in enumerate(checkpoints):
        try:
            checkpoint = open_checkpoint(note, verifier)
        except LedgerError as exc:
            problems.append(f"{label} {number}: {exc}")
            continue
        problems += _check_checkpoint(label, number, checkpoint, leaves, cache)
        if previous is not None:
            problems += _check_consistency(label, previous, (number, checkpoint), leaves, cache)
        previous = (number, checkpoint)
    return problems


def tree_hashes(
    entries: Sequence[bytes | None],
    salts: Sequence[bytes | None],
    stored: Sequence[bytes],
) -> list[bytes]:
    """The leaf hashes a salted log's tree is built from: recomputed from each entry and
    salt that are kept, and the stored hash of each opaque leaf."""
    return _open_salted(entries, salts, stored)[0]


def _require_entry(index: int, entry: bytes | None) -> bytes:
    """Return ``entry``; an unsalted log cannot hold an erased one."""
    if entry is None:
        msg = f"Leaf {index} has no entry, but an unsalted log has no opaque leaves."
        raise LedgerError(msg, field="entries")
    return entry


def _open_salted(
    entries: Sequence[bytes | None],
    salts: Sequence[bytes | None],
    stored: Sequence[bytes] | None,
) -> tuple[list[bytes], list[int], list[str]]:
    """Recompute salted leaf hashes; return them, the opaque indices and the problems."""
    hashes: list[bytes] = []
    opaque: list[int] = []
    problems: list[str] = []
    if len(salts) != len(entries):
        problems.append(
            f"The ledger stores {len(salts)} salts for {len(entries)} entries; they must "
            "pair up one to one."
        )
    if stored is not None and len(stored) != len(entries):
        problems.append(
            f"The ledger stores {len(stored)} leaf hashes for {len(entries)} entries; "
            "they must pair up one to one."
        )
    for index, entry in enumerate(entries):
        salt = salts[index] if index < len(salts) else None
        kept = stored[index] if stored is not None and index < len(stored) else None
        if entry is None or salt is None:
            if entry is None and salt is None:
                opaque.append(index)
            else:
                what = "entry without its salt" if salt is None else "salt without its entry"
                problems.append(
                    f"Leaf {index}: it keeps its {what}; erasure removes both, so the "
                    "other was deleted or altered."
                )
            if kept is None:
                problems.append(
                    f"Leaf {index}: it cannot be opened and no stored hash stands for it."
                )
                kept = b"\x00" * 32
            hashes.append(kept)
            continue
        try:
            computed = salted_leaf_hash(salt, entry)
        except ValidationError:
            problems.append(f"Leaf {index}: its salt is not 32 bytes long.")
            computed = kept if kept is not None else b"\x00" * 32
        else:
            if kept is not None and computed != kept:
                problems.append(f"Leaf {index}: its hash does not match its entry.")
        hashes.append(computed)
    return hashes, opaque, problems


def _check_stored_hashes(hashes: list[bytes], stored: Sequence[bytes]) -> list[str]:
    """Compare recomputed leaf hashes with the stored ones."""
    problems = [
        f"Leaf {index}: its hash does not match its entry."
        for index, (computed, kept) in enumerate(zip(hashes, stored, strict=False))
        if computed != kept
    ]
    if len(stored) != len(hashes):
        problems.append(
            f"The ledger stores {len(stored)} leaf hashes for {len(hashes)} entries; "
            "they must pair up one to one."
        )
    return problems


def _check_entry(index: int, entry: bytes) -> str | None:
    """Return the problem with entry ``index``, or None if it is well formed."""
    try:
        value = json.loads(entry)
    except (TypeError, ValueError):
        return f"Leaf {index}: its entry is not valid JSON."
    if not isinstance(value, dict):
        return f"Leaf {index}: its entry is not a JSON object."
    try:
        canonical = canonical_json(value)
    except ValueError:
        canonical = b""
    if canonical != entry:
        return f"Leaf {index}: its entry is not in canonical JSON form."
    seq = value.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return f"Leaf {index}: its entry has no whole-number 'seq' field."
    if seq != index:
        return (
            f"Leaf {index}: its entry says seq {seq}, so entries were removed, inserted "
            "or reordered before it."
        )
    return None


def _check_checkpoint(
    label: str, number: int, checkpoint: Checkpoint, hashes: list[bytes], cache: SubtreeCache
) -> list[str]:
    """Check one opened checkpoint against the log's leaf hashes."""
    if checkpoint.size > len(hashes):
        return [
            f"{label} {number} covers {checkpoint.size} leaves, but the log holds only "
            f"{len(hashes)}: leaves signed into the log are missing."
        ]
    if root(hashes, checkpoint.size, cache=cache) != checkpoint.root:
        return [
            f"{label} {number}: its root does not match the root of the first "
            f"{checkpoint.size} leaves."
        ]
    return []


def _check_consistency(
    label: str,
    earlier: tuple[int, Checkpoint],
    later: tuple[int, Checkpoint],
    hashes: list[bytes],
    cache: SubtreeCache,
) -> list[str]:
    """Check that checkpoint ``later`` extends checkpoint ``earlier``."""
    (first, old), (second, new) = earlier, later
    lower = label[0].lower() + label[1:]
    if old.origin != new.origin:
        return [
            f"{label} {second} is for the log {new.origin!r}, but {lower} {first} "
            f"is for {old.origin!r}."
        ]
    if new.size < old.size:
        return [
            f"{label} {second} has {new.size} leaves, fewer than the {old.size} of "
            f"{lower} {first} issued before it."
        ]
    if new.size > len(hashes):
        return []  # Already reported: the log lacks the leaves to build a proof.
    proof = consistency_proof(hashes, old.size, new.size, cache=cache)
    if not verify_consistency(old.size, new.size, old.root, new.root, proof):
        return [
            f"{label} {second} is not consistent with {lower} {first}: the log's "
            f"leaves give no valid consistency proof from size {old.size} to {new.size}."
        ]
    return []


__all__ = ["AuditReport", "tree_hashes", "verify_checkpoints", "verify_log"]
