"""What the standard forms of a consent are made from: the consent, and pseudonyms only.

Every exporter (FHIR, ISO/IEC TS 27560, Kantara) reads a :class:`ConsentView`, never the
database: it carries the subject under a pseudonym (the gateway's own, or the calling
app's), the people who acted under their account pseudonyms and roles, and no name,
username or date of birth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from neurogate.consent.jurisdictions import age_on, get_profile
from neurogate.consent.models import Account, App, Consent, ConsentEvent, Subject


@dataclass(frozen=True)
class Actor:
    """Someone who acted on a consent, by pseudonym and role (never by name)."""

    pseudonym: str
    role: str  # account role, or "system" for the gateway itself


@dataclass(frozen=True)
class EventView:
    """One change of a consent: grant, given, dissent, revoked or expire."""

    action: str
    at: datetime
    actor: Actor
    ledger_index: int | None
    detail: str | None


@dataclass(frozen=True)
class ConsentView:
    """A consent ready to be written in a standard form."""

    consent: Consent
    patient: str  # the subject's pseudonym, as the caller knows them
    app_id: str
    app_name: str
    app_commercial: bool
    grantor: Actor | None  # None: the subject in person, without an account
    recorder: Actor
    assent_recorder: Actor | None
    child: bool  # a child under the subject's profile when the consent was given
    jurisdiction: str
    controller: str  # the gateway deployment that keeps the consent (its ledger origin)
    public_key: str  # the ledger's verifier key, which signs the consent's receipts
    events: tuple[EventView, ...]
    renewed: bool = False  # an earlier consent of the same subject, app and purpose exists


SYSTEM = Actor(pseudonym="gateway", role="system")


def _actor(session: Session, account_id: str | None) -> Actor | None:
    if account_id is None:
        return None
    account = session.get(Account, account_id)
    if account is None:
        return None
    return Actor(pseudonym=account.pseudonym, role=account.role)


def consent_view(*, session: Session, consent: Consent, patient: str, controller: str,
                 public_key: str) -> ConsentView:
    """Gather what the standard forms of ``consent`` need (``patient``: the caller's
    pseudonym for the subject)."""
    subject = session.get(Subject, consent.subject_id)
    app = session.get(App, consent.app_id)
    assert subject is not None and app is not None  # consents reference both
    child = False
    if subject.date_of_birth is not None:
        profile = get_profile(subject.jurisdiction)
        child = profile.is_minor(age_on(subject.date_of_birth, consent.granted_at.date()))
    rows = session.exec(
        select(ConsentEvent).where(ConsentEvent.consent_id == consent.id)
        .order_by(col(ConsentEvent.at), col(ConsentEvent.ledger_index))
    ).all()
    events = tuple(
        EventView(action=row.action, at=row.at,
                  actor=_actor(session, row.actor_account_id) or SYSTEM,
                  ledger_index=row.ledger_index, detail=row.detail)
        for row in rows
    )
    recorder = _actor(session, consent.recorded_by) or SYSTEM
    earlier = session.exec(select(Consent.id).where(
        Consent.subject_id == consent.subject_id, Consent.app_id == consent.app_id,
        Consent.purpose_id == consent.purpose_id, Consent.id != consent.id,
        col(Consent.granted_at) <= consent.granted_at)).first()
    return ConsentView(
        consent=consent, patient=patient, app_id=app.id, app_name=app.name,
        app_commercial=app.commercial, grantor=_actor(session, consent.granted_by),
        recorder=recorder, assent_recorder=_actor(session, consent.assent_recorded_by),
        child=child, jurisdiction=subject.jurisdiction, controller=controller,
        public_key=public_key, events=events, renewed=earlier is not None,
    )
