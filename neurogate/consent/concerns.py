"""Concerns: "Something feels wrong?" reports from subjects, guardians and children.

A concern is personal data of the subject it is about: the subject (or their guardian)
files it, the clinicians caring for the subject and the admins read and answer it, the
reporter sees its state and the answer, and the subject's export and erasure include it.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from neurogate.consent import access
from neurogate.consent.access import CLINICIAN, GUARDIAN, SELF, Principal
from neurogate.consent.models import App, Concern, Consent, utcnow
from neurogate.errors import ConflictError, NotFoundError, ValidationError

MAX_TEXT = 2000
MAX_CONTACT = 200


def _text(value: str | None, field: str, limit: int, *, required: bool) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            msg = (f"Invalid value for the '{field}' field. Write what happened, in 1 to "
                   f"{limit} characters.")
            raise ValidationError(msg, field=field)
        return None
    if len(text) > limit:
        msg = (f"Invalid value for the '{field}' field. It may have at most {limit} "
               f"characters, but has {len(text)}.")
        raise ValidationError(msg, field=field)
    return text


def apps_of_subject(*, session: Session, subject_id: str) -> list[App]:
    """The apps that hold or held a consent of the subject (what a concern may name)."""
    ids = session.exec(select(Consent.app_id).where(Consent.subject_id == subject_id)).all()
    if not ids:
        return []
    return list(session.exec(
        select(App).where(col(App.id).in_(set(ids))).order_by(col(App.name))
    ).all())


def file_concern(
    *, session: Session, principal: Principal, subject_id: str, what_happened: str,
    app_id: str | None = None, contact: str | None = None, now: datetime | None = None,
) -> Concern:
    """Report a concern about a subject's data (the subject, or their guardian)."""
    access.require_role(principal, "subject", "guardian")
    subject = access.get_subject(session, principal, subject_id, (SELF, GUARDIAN))
    text = _text(what_happened, "what_happened", MAX_TEXT, required=True)
    contact_text = _text(contact, "contact", MAX_CONTACT, required=False)
    if app_id:
        allowed = {a.id: a.name for a in apps_of_subject(session=session,
                                                         subject_id=subject.id)}
        if app_id not in allowed:
            names = ", ".join(repr(n) for n in allowed.values()) or "none"
            msg = (f"Invalid value for the 'app_id' field. Name one of the apps this subject "
                   f"has dealt with ({names}), or none, but got {app_id!r}.")
            raise ValidationError(msg, field="app_id")
    concern = Concern(
        subject_id=subject.id, reporter_account_id=principal.id, app_id=app_id or None,
        what_happened=text or "", contact=contact_text, created_at=now or utcnow(),
    )
    session.add(concern)
    session.flush()
    return concern


def list_concerns_for(*, session: Session, principal: Principal) -> list[Concern]:
    """Concerns the caller may read, newest first: a subject's or guardian's own subjects',
    a clinician's patients', every one for an admin."""
    access.require_role(principal, "subject", "guardian", "clinician", "admin")
    query = select(Concern).order_by(col(Concern.created_at).desc())
    if principal.role == "admin":
        return list(session.exec(query).all())
    ids = access.visible_subject_ids(session, principal)
    if not ids:
        return []
    return list(session.exec(query.where(col(Concern.subject_id).in_(ids))).all())


def get_concern(*, session: Session, principal: Principal, concern_id: str) -> Concern:
    """One concern the caller may read (unknown and out of reach look the same)."""
    concern = session.get(Concern, concern_id)
    if concern is None or not _may_read(session, principal, concern):
        msg = f"No concern has the id {concern_id!r}."
        raise NotFoundError(msg)
    return concern


def _may_read(session: Session, principal: Principal, concern: Concern) -> bool:
    if principal.kind != "account":
        return False
    if principal.role == "admin":
        return True
    return bool(access.relations(session, principal, concern.subject_id)
                & {SELF, GUARDIAN, CLINICIAN})


def answer_concern(*, session: Session, principal: Principal, concern_id: str, answer: str,
                   now: datetime | None = None) -> Concern:
    """Answer a concern (a clinician caring for the subject, or an admin)."""
    access.require_role(principal, "clinician", "admin")
    concern = get_concern(session=session, principal=principal, concern_id=concern_id)
    text = _text(answer, "answer", MAX_TEXT, required=True)
    if concern.status == "answered":
        msg = "This concern was already answered; its answer stays as it was given."
        raise ConflictError(msg)
    concern.answer = text
    concern.answered_by = principal.id
    concern.answered_at = now or utcnow()
    concern.status = "answered"
    session.add(concern)
    session.flush()
    return concern


def concern_json(concern: Concern) -> dict[str, object]:
    """A concern as JSON-ready data (for the subject's export)."""
    return {
        "id": concern.id,
        "app_id": concern.app_id,
        "what_happened": concern.what_happened,
        "contact": concern.contact,
        "status": concern.status,
        "created_at": concern.created_at.isoformat(),
        "answer": concern.answer,
        "answered_at": concern.answered_at.isoformat() if concern.answered_at else None,
    }


__all__ = [
    "MAX_CONTACT",
    "MAX_TEXT",
    "answer_concern",
    "apps_of_subject",
    "concern_json",
    "file_concern",
    "get_concern",
    "list_concerns_for",
]
