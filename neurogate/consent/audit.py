"""Full audit of a ledger: entries, stored leaf hashes and signed checkpoints.

``verify_log`` trusts nothing but the verifier key. It recomputes every leaf hash from
its entry, checks each entry is canonical JSON numbered by ``"seq"`` in log order,
opens every checkpoint, checks each checkpoint's root against the log's first ``size``
leaves, and checks that consecutive checkpoints are consistent. It reads no database:
the caller passes what it stored.
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
    verify_consistency,
)
from neurogate.errors import LedgerError


@dataclass
class AuditReport:
    """The result of ``verify_log``: ``ok`` when ``problems`` is empty.

    ``size`` is the number of entries audited and ``root`` the root hash recomputed
    from them; each problem is a plain sentence.
    """

    size: int
    root: bytes
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the audit found no problem."""
        return not self.problems


def verify_log(
    entries: Sequence[bytes],
    stored_hashes: Sequence[bytes] | None,
    checkpoints: Sequence[str],
    verifier: Verifier | str,
) -> AuditReport:
    """Audit a whole ledger and report every problem found.

    Parameters
    ----------
    entries : sequence of bytes
        The canonical JSON entries in log order; entry ``i`` carries ``"seq": i``.
    stored_hashes : sequence of bytes, optional
        The leaf hashes the ledger stored beside its entries, or None to skip that check.
    checkpoints : sequence of str
        Signed checkpoint notes in the order they were issued.
    verifier : Verifier or str
        The log's trusted verifier (or its key string).
    """
    if isinstance(verifier, str):
        verifier = Verifier(verifier)
    problems: list[str] = []
    hashes = [leaf_hash(entry) for entry in entries]
    if stored_hashes is not None:
        problems += _check_stored_hashes(hashes, stored_hashes)
    for index, entry in enumerate(entries):
        problem = _check_entry(index, entry)
        if problem:
            problems.append(problem)

    # Only hashes recomputed from the entries fill the cache, so it is safe here.
    cache: SubtreeCache = {}
    previous: tuple[int, Checkpoint] | None = None
    for number, note in enumerate(checkpoints):
        try:
            checkpoint = open_checkpoint(note, verifier)
        except LedgerError as exc:
            problems.append(f"Checkpoint {number}: {exc}")
            continue
        problems += _check_checkpoint(number, checkpoint, hashes, cache)
        if previous is not None:
            problems += _check_consistency(previous, (number, checkpoint), hashes, cache)
        previous = (number, checkpoint)
    return AuditReport(size=len(hashes), root=root(hashes, cache=cache), problems=problems)


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
    number: int, checkpoint: Checkpoint, hashes: list[bytes], cache: SubtreeCache
) -> list[str]:
    """Check one opened checkpoint against the log's leaf hashes."""
    if checkpoint.size > len(hashes):
        return [
            f"Checkpoint {number} covers {checkpoint.size} leaves, but the log holds only "
            f"{len(hashes)}: leaves signed into the log are missing."
        ]
    if root(hashes, checkpoint.size, cache=cache) != checkpoint.root:
        return [
            f"Checkpoint {number}: its root does not match the root of the first "
            f"{checkpoint.size} leaves."
        ]
    return []


def _check_consistency(
    earlier: tuple[int, Checkpoint],
    later: tuple[int, Checkpoint],
    hashes: list[bytes],
    cache: SubtreeCache,
) -> list[str]:
    """Check that checkpoint ``later`` extends checkpoint ``earlier``."""
    (first, old), (second, new) = earlier, later
    if old.origin != new.origin:
        return [
            f"Checkpoint {second} is for the log {new.origin!r}, but checkpoint {first} "
            f"is for {old.origin!r}."
        ]
    if new.size < old.size:
        return [
            f"Checkpoint {second} has {new.size} leaves, fewer than the {old.size} of "
            f"checkpoint {first} issued before it."
        ]
    if new.size > len(hashes):
        return []  # Already reported: the log lacks the leaves to build a proof.
    proof = consistency_proof(hashes, old.size, new.size, cache=cache)
    if not verify_consistency(old.size, new.size, old.root, new.root, proof):
        return [
            f"Checkpoint {second} is not consistent with checkpoint {first}: the log's "
            f"leaves give no valid consistency proof from size {old.size} to {new.size}."
        ]
    return []


__all__ = ["AuditReport", "verify_log"]
