"""Data-subject rights: export everything held about a subject, and erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, delete, select

from neurogate.consent import access
from neurogate.consent.access import GUARDIAN, SELF, Principal
from neurogate.consent.concerns import concern_json
from neurogate.consent.consents import _close, list_consents
from neurogate.consent.ledger import Ledger
from neurogate.consent.models import (
    Account,
    AppPseudonym,
    CareRelationship,
    Concern,
    Consent,
    ConsentEvent,
    Delivery,
    GuardianLink,
    utcnow,
)
from neurogate.consent.registry import subject_public
from neurogate.consent.schemas import ConsentEventPublic, ConsentPublic


def export_subject(*, session: Session, ledger: Ledger, principal: Principal, subject_id: str,
                   now: datetime | None = None) -> dict[str, Any]:
    """Everything held about a subject, as JSON-ready data (the subject, a guardian or a
    clinician in care); the export itself is written to the ledger."""
    now = now or utcnow()
    subject = access.get_subject(session, principal, subject_id)
    consents = list_consents(session=session, principal=principal, subject_id=subject.id)
    events = session.exec(
        select(ConsentEvent)
        .where(col(ConsentEvent.consent_id).in_([c.id for c in consents]))
        .order_by(col(ConsentEvent.at))
    ).all()
    guardians = session.exec(
        select(GuardianLink).where(GuardianLink.subject_id == subject.id)
    ).all()
    appended = ledger.append(
        session, action="subject.export", at=now, subject=subject.pseudonym,
        actor_role=principal.role, concerns=subject.id,
    )
    return {
        "exported_at": now.isoformat(),
        "ledger_index": appended.seq,
        "subject": subject_public(subject, now.date()).model_dump(mode="json"),
        "guardians": [
            {"relationship": g.relationship, "verified_at": g.verified_at.isoformat()}
            for g in guardians
        ],
        "consents": [ConsentPublic.model_validate(c).model_dump(mode="json") for c in consents],
        "history": [
            {
                "consent_id": e.consent_id,
                **ConsentEventPublic.model_validate(e).model_dump(mode="json"),
            }
            for e in events
        ],
        "recordings": [],
        "concerns": [concern_json(c) for c in session.exec(
            select(Concern).where(Concern.subject_id == subject.id)
            .order_by(col(Concern.created_at))
        ).all()],
        # The subject's own ledger entries with the salts that open their public leaves.
        "ledger": [e.as_json() for e in ledger.entries_for_subject(session, subject.id)],
    }


def erase_subject(*, session: Session, ledger: Ledger, principal: Principal, subject_id: str,
                  now: datetime | None = None) -> int:
    """Erase a subject (themselves, or a guardian): revoke every active consent, delete
    personal data, links and pseudonyms, and delete the entries and salts of every ledger
    leaf about them (the leaves stay in the tree, opaque). Returns the ledger index of the
    erasure.

    Consent history stays, keyed by a now-meaningless id, as the record of what was agreed.
    The erasure's own leaf names no one; it counts the leaves made opaque.
    """
    now = now or utcnow()
    access.require_role(principal, "subject", "guardian")
    subject = access.get_subject(session, principal, subject_id, (SELF, GUARDIAN))
    active = session.exec(
        select(Consent).where(Consent.subject_id == subject.id, Consent.status == "active")
    ).all()
    for consent in active:
        _close(session, ledger, consent, principal, "revoked", now, reason="erasure",
               reason_code="erasure")
    subject.display_name = None
    subject.date_of_birth = None
    subject.erased_at = now
    session.add(subject)
    for model in (AppPseudonym, GuardianLink, CareRelationship, Concern, Delivery):
        session.exec(delete(model).where(model.subject_id == subject.id))  # type: ignore[call-overload]
    for account in session.exec(select(Account).where(Account.subject_id == subject.id)).all():
        account.disabled = True
        session.add(account)
    erased = ledger.erase_subject(session, subject.id)
    appended = ledger.append(
        session, action="subject.erase", at=now, actor_role=principal.role, erased=erased,
    )
    return appended.seq


__all__ = ["erase_subject", "export_subject"]
