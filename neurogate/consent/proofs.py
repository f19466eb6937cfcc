"""Proof that a consent's records are in the public log, checked against its newest checkpoint.

For each ledger entry of a consent's history (grant, assent, revocation, expiry) a fresh
receipt is issued against the newest signed checkpoint and checked at once with
``Ledger.check_receipt``: what ``neurogate audit verify-receipt`` verifies offline (the
signatures, the salted leaf's inclusion under the checkpoint's root), and that the leaf
is in the newest tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from neurogate.consent import access
from neurogate.consent.access import Principal
from neurogate.consent.consents import history
from neurogate.consent.ledger import Ledger
from neurogate.consent.models import Consent
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


def check_consent(*, session: Session, ledger: Ledger, principal: Principal, consent_id: str
                  ) -> ConsentProofs:
    """Check every ledger entry of a consent against the gateway's newest checkpoint
    (the consent's subject, a guardian or a clinician in care)."""
    consent = access.get_consent(session, principal, consent_id)
    note = ledger.latest_checkpoint(session)
    size = ledger.open(note).size
    stored = ledger.checkpoint_at(session, size)
    checks = []
    for event in history(session=session, principal=principal, consent_id=consent.id):
        if event.ledger_index is None:
            continue
        try:
            receipt = ledger.receipt_for(session, event.ledger_index)
        except LedgerError as exc:  # an erased leaf has no receipt any more
            checks.append(ProofCheck(event.ledger_index, event.action, event.at, False,
                                     exc.message, None))
            continue
        status = ledger.check_receipt(session, receipt)
        checks.append(ProofCheck(event.ledger_index, event.action, event.at, status.included,
                                 status.problem, receipt if status.included else None))
    return ConsentProofs(consent=consent, checks=checks, tree_size=size, checkpoint=note,
                         checkpoint_at=None if stored is None else stored.created_at)


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
