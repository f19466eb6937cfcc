"""The database-backed transparency ledger.

Entries are canonical JSON holding no personal or signal data: an action, a time,
pseudonymous ids and hashes. Each append happens inside the caller's transaction, so
a consent change and its leaf commit together or not at all, and is followed by a new
signed checkpoint of the whole log.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, text
from sqlmodel import Session, col, func, select

from neurogate.consent.audit import AuditReport, verify_log
from neurogate.consent.checkpoint import Signer, Verifier, open_checkpoint, sign_checkpoint
from neurogate.consent.merkle import (
    canonical_json,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
)
from neurogate.consent.models import LedgerCheckpoint, LedgerLeaf, utcnow
from neurogate.consent.receipts import build_receipt
from neurogate.errors import LedgerError, ValidationError

# Every kind of leaf the ledger holds; anything else is a programming error.
ACTIONS = frozenset(
    {
        "consent.grant",
        "consent.assent",
        "consent.dissent",
        "consent.revoke",
        "consent.expire",
        "decision.deny",
        "auth.login_failed",
        "subject.export",
        "subject.erase",
        "device.pair",
        "device.unpair",
        "stream.start",
        "stream.stop",
        "stream.deny",
        "abuse.aggregate",
    }
)
# Fields a leaf may carry: pseudonymous ids, codes, counts, times and hashes only.
_ALLOWED_FIELDS = frozenset(
    {
        "action", "at", "seq", "subject", "account", "app", "consent", "device", "purpose",
        "product", "reasons", "actor_role", "capacity", "record_sha256", "notice_sha256",
        "frames", "samples", "dropped", "stream", "reason_code",
        "kind", "key", "count", "window",
    }
)


@dataclass(frozen=True)
class Appended:
    """Where an entry landed: its index, its bytes and the checkpoint that covers it."""

    seq: int
    entry: bytes
    size: int
    checkpoint: str


class Ledger:
    """Append, prove and verify over the project's own database."""

    def __init__(self, *, signer: Signer, origin: str) -> None:
        self.signer = signer
        self.origin = origin
        self.verifier = Verifier(signer.verifier_key)
        self._lock = threading.Lock()
        self._hashes: list[bytes] = []  # committed leaf hashes, in order

    # -- reading -------------------------------------------------------------------
    def _committed_hashes(self, session: Session) -> list[bytes]:
        """All leaf hashes visible to ``session``, using the cache for the prefix."""
        with self._lock:
            known = list(self._hashes)
        rows = session.exec(
            select(LedgerLeaf.seq, LedgerLeaf.leaf_hash)
            .where(LedgerLeaf.seq >= len(known))
            .order_by(col(LedgerLeaf.seq))
        ).all()
        for seq, value in rows:
            if seq != len(known):
                msg = f"The ledger has a gap at index {len(known)}; run 'neurogate audit verify'."
                raise LedgerError(msg)
            known.append(bytes(value))
        return known

    def size(self, session: Session) -> int:
        """The number of leaves."""
        return int(session.exec(select(func.count()).select_from(LedgerLeaf)).one())

    def latest_checkpoint(self, session: Session) -> str:
        """The newest signed checkpoint (a fresh one is signed if none is stored)."""
        stored = session.exec(
            select(LedgerCheckpoint).order_by(col(LedgerCheckpoint.size).desc()).limit(1)
        ).first()
        if stored is not None:
            return stored.note
        return sign_checkpoint(self.signer, self.origin, 0, root([]))

    def inclusion(self, session: Session, index: int, size: int | None = None) -> dict[str, Any]:
        """An inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        hashes = self._committed_hashes(session)
        size = len(hashes) if size is None else size
        if not 0 < size <= len(hashes):
            msg = (
                f"Invalid value for the 'tree_size' parameter. Allowed values are 1 to "
                f"{len(hashes)}, but got {size} instead."
            )
            raise ValidationError(msg, field="tree_size")
        if not 0 <= index < size:
            msg = (
                f"Invalid value for the 'index' parameter. Allowed values are 0 to {size - 1} "
                f"for a tree of {size} leaves, but got {index} instead."
            )
            raise ValidationError(msg, field="index")
        entry = session.get(LedgerLeaf, index)
        assert entry is not None  # the hash list above proves the row exists
        return {
            "leaf_index": index,
            "tree_size": size,
            "leaf": entry.entry.decode(),
            "leaf_hash": hashes[index].hex(),
            "root": root(hashes[:size]).hex(),
            "proof": [h.hex() for h in inclusion_proof(hashes, index, size)],
        }

    def consistency(self, session: Session, first: int, second: int) -> dict[str, Any]:
        """A consistency proof between the trees of ``first`` and ``second`` leaves."""
        hashes = self._committed_hashes(session)
        if not 0 < first <= second <= len(hashes):
            msg = (
                f"Invalid values for the 'first' and 'second' parameters. They must satisfy "
                f"1 <= first <= second <= {len(hashes)}, but got first={first} and "
                f"second={second} instead."
            )
            raise ValidationError(msg, field="first")
        return {
            "first": first,
            "second": second,
            "first_root": root(hashes[:first]).hex(),
            "second_root": root(hashes[:second]).hex(),
            "proof": [h.hex() for h in consistency_proof(hashes, first, second)],
        }

    # -- writing -------------------------------------------------------------------
    def append(self, session: Session, *, action: str, at: datetime | None = None,
               **fields: Any) -> Appended:
        """Append one entry inside ``session``'s transaction and sign a new checkpoint."""
        if action not in ACTIONS:
            msg = f"Unknown ledger action {action!r}."
            raise LedgerError(msg)
        unknown = set(fields) - _ALLOWED_FIELDS
        if unknown:
            msg = f"Ledger entries may not carry the fields {sorted(unknown)}."
            raise LedgerError(msg)
        if session.get_bind().dialect.name == "postgresql":
            # One appender at a time across every gateway node sharing the database.
            session.exec(text("SELECT pg_advisory_xact_lock(6962)"))  # type: ignore[call-overload]
        hashes = self._committed_hashes(session)
        seq = len(hashes)
        record = {k: v for k, v in fields.items() if v is not None}
        record.update(
            action=action, seq=seq, at=(at or utcnow()).isoformat(timespec="milliseconds")
        )
        entry = canonical_json(record)
        hashes.append(leaf_hash(entry))
        session.add(LedgerLeaf(seq=seq, entry=entry, leaf_hash=hashes[-1]))
        note = sign_checkpoint(self.signer, self.origin, len(hashes), root(hashes))
        session.add(LedgerCheckpoint(size=len(hashes), note=note))
        session.flush()
        # Remember the longer log only once this transaction has committed.
        session.info["ledger_hashes"] = hashes
        if not session.info.get("ledger_hooked"):
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_rollback", self._after_rollback)
            session.info["ledger_hooked"] = True
        return Appended(seq=seq, entry=entry, size=len(hashes), checkpoint=note)

    def _after_commit(self, session: Session) -> None:
        hashes = session.info.pop("ledger_hashes", None)
        if hashes is not None:
            with self._lock:
                if len(hashes) > len(self._hashes):
                    self._hashes = hashes

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop("ledger_hashes", None)

    def receipt(self, session: Session, appended: Appended) -> dict[str, Any]:
        """A signed consent receipt for an entry appended in this transaction."""
        hashes = self._committed_hashes(session)
        proof = inclusion_proof(hashes, appended.seq, appended.size)
        return build_receipt(
            entry=appended.entry,
            index=appended.seq,
            size=appended.size,
            proof=proof,
            checkpoint=appended.checkpoint,
            signer=self.signer,
        )

    def receipt_for(self, session: Session, seq: int) -> dict[str, Any]:
        """A receipt for an earlier leaf, proven against the newest checkpoint."""
        leaf = session.get(LedgerLeaf, seq)
        if leaf is None:
            msg = f"No ledger leaf with index {seq} exists."
            raise LedgerError(msg)
        note = self.latest_checkpoint(session)
        size = self.open(note).size
        return self.receipt(
            session, Appended(seq=seq, entry=bytes(leaf.entry), size=size, checkpoint=note)
        )

    # -- auditing ------------------------------------------------------------------
    def verify(self, session: Session, external: Sequence[str] = ()) -> AuditReport:
        """Recompute every leaf, root and checkpoint from the stored rows.

        ``external`` are checkpoints kept outside the database (by a witness, an auditor, a
        receipt holder): a log truncated or rewritten behind them fails against them.
        """
        leaves = session.exec(select(LedgerLeaf).order_by(col(LedgerLeaf.seq))).all()
        notes = session.exec(
            select(LedgerCheckpoint.note).order_by(col(LedgerCheckpoint.size))
        ).all()
        entries = [bytes(leaf.entry) for leaf in leaves]
        report = verify_log(
            entries, [bytes(leaf.leaf_hash) for leaf in leaves], list(notes), self.verifier
        )
        if external:
            outside = verify_log(entries, None, list(external), self.verifier)
            report.problems += [f"External {p[0].lower()}{p[1:]}" for p in outside.problems]
        return report

    def open(self, note: str) -> Any:
        """Open a checkpoint note signed by this gateway."""
        return open_checkpoint(note, self.verifier)


__all__ = ["ACTIONS", "Appended", "Ledger"]
