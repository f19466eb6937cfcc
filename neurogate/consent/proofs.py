"""Proof that a consent's records are in the public log, checked against its newest checkpoint.

For each ledger entry of a consent's history (grant, assent, revocation, expiry) a fresh
receipt is issued against the newest signed checkpoint and verified at once, exactly as
``neurogate audit verify-receipt`` verifies it offline: the checkpoint's signature, the
tree size, and the inclusion of the entry's leaf under the checkpoint's root.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from neurogate.consent import access
from neurogate.consent.access import Principal
from neurogate.consent.consents import history
from neurogate.consent.ledger import Ledger
from neurogate.consent.models import Consent, LedgerCheckpoint
from neurogate.consent.receipts import verify_receipt
from neurogate.errors import LedgerError, not_found


@dataclass(frozen=True)
class ProofCheck:
    """One entry of a consent's history, checked against the newest checkpoint."""

    ledger_index: int
    action: str  # the history action: grant, given, dissent, revoked, expire
    at: datetime
    included: bool
    problem: str | None  # why the check failed, when it did
    receipt: dict[str, Any] | None


@dataclass(frozen=True)
class ConsentProofs:
    """Every check of one consent, and the checkpoint they were made against."""

    consent: Consent
    checks: list[ProofCheck]
    tree_size: int
    checkpoint: str
    checkpoint_at: datetime | None

    @property
    def all_included(self) -> bool:
        return bool(self.checks) and all(c.included for c in self.checks)


def _checkpoint_time(session: Session, size: int) -> datetime | None:
    row = session.exec(
        select(LedgerCheckpoint.created_at).where(col(LedgerCheckpoint.size) == size)
    ).first()
    return row


def check_consent(*, session: Session, ledger: Ledger, principal: Principal, consent_id: str
                  ) -> ConsentProofs:
    """Check every ledger entry of a consent against the gateway's newest checkpoint
    (the consent's subject, a guardian or a clinician in care)."""
    consent = access.get_consent(session, principal, consent_id)
    note = ledger.latest_checkpoint(session)
    size = ledger.open(note).size
    checks = []
    for event in history(session=session, principal=principal, consent_id=consent.id):
        if event.ledger_index is None:
            continue
        try:
            receipt = ledger.receipt_for(session, event.ledger_index)
            verify_receipt(receipt, ledger.verifier)
        except LedgerError as exc:
            checks.append(ProofCheck(event.ledger_index, event.action, event.at, False,
                                     exc.message, None))
            continue
        checks.append(ProofCheck(event.ledger_index, event.action, event.at, True, None,
                                 receipt))
    return ConsentProofs(consent=consent, checks=checks, tree_size=size, checkpoint=note,
                         checkpoint_at=_checkpoint_time(session, size))


def receipt_of(*, session: Session, ledger: Ledger, principal: Principal, consent_id: str,
               ledger_index: int) -> dict[str, Any]:
    """A fresh signed receipt for one entry of a consent's history, proven against the
    newest checkpoint; an index outside the consent's history is unknown."""
    consent = access.get_consent(session, principal, consent_id)
    indices = {e.ledger_index for e in history(session=session, principal=principal,
                                                consent_id=consent.id)}
    if ledger_index not in indices:
        msg = "receipt"
        raise not_found(msg, ledger_index)
    return ledger.receipt_for(session, ledger_index)


__all__ = ["ConsentProofs", "ProofCheck", "check_consent", "receipt_of"]
