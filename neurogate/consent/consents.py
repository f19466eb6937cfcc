"""Granting, assenting to, revoking and expiring consents, and asking the policy.

Each change happens in the caller's transaction together with its history event and
its ledger leaf, so a change is either complete (and provable) or absent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from neurogate.consent import access
from neurogate.consent.access import CLINICIAN, GUARDIAN, SELF, Principal
from neurogate.consent.accounts import pseudonym
from neurogate.consent.duties import file_deletion_after_revocation
from neurogate.consent.jurisdictions import add_months, age_on, get_profile
from neurogate.consent.ledger import Appended, Ledger
from neurogate.consent.merkle import canonical_json
from neurogate.consent.models import (
    Account,
    App,
    AppPseudonym,
    Consent,
    ConsentEvent,
    GuardianLink,
    Subject,
    utcnow,
)
from neurogate.consent.policy import (
    AppFacts,
    ConsentFacts,
    Decision,
    SubjectFacts,
    decide,
    decide_products,
)
from neurogate.consent.purposes import load_catalog
from neurogate.consent.schemas import ConsentCreate
from neurogate.errors import (
    ConflictError,
    ConsentError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)

CHANGES_KEY = "consent_changes"
# Beside the changes, the consents the transaction revoked. A grant supersedes the active
# consent of its subject, app and purpose, so none of theirs is active after a revocation:
# once it commits, whatever rested on it is refused, with no need to decide again.
REVOKED_KEY = "revoked_consents"


def mark_changed(session: Session, kind: str, ident: str) -> None:
    """Note, for whoever commits ``session``, that what may flow for a subject or an app
    changes with this transaction (the gateway pauses their streams before the commit)."""
    session.info.setdefault(CHANGES_KEY, set()).add((kind, ident))


def subject_facts(subject: Subject) -> SubjectFacts:
    """What the policy needs to know of a subject."""
    if subject.date_of_birth is None:
        msg = "This subject has no date of birth on record; nothing may flow for them."
        raise ConsentError(msg)
    return SubjectFacts(
        date_of_birth=subject.date_of_birth,
        jurisdiction=subject.jurisdiction,
        lacks_capacity=subject.capacity == "lacking",
    )


def app_facts(app: App) -> AppFacts:
    """What the policy needs to know of an app."""
    return AppFacts(
        app_id=app.id,
        commercial=app.commercial,
        declared_purposes=tuple(app.declared_purposes),
        cria_status=app.cria_status,
        suspended=app.suspended,
        deployment_context=app.deployment_context,
    )


def consent_facts(consent: Consent) -> ConsentFacts:
    """What the policy needs to know of a consent."""
    return ConsentFacts(
        consent_id=consent.id,
        purpose_id=consent.purpose_id,
        products=tuple(consent.products),
        granted_capacity=consent.granted_capacity,
        granted_at=consent.granted_at,
        valid_from=consent.valid_from,
        valid_until=consent.valid_until,
        status=consent.status,
        assent=consent.assent,
        notice_version=consent.notice_version,
    )


def record_digest(consent: Consent) -> str:
    """SHA-256 of a consent's terms: lets a receipt holder prove what was agreed."""
    terms = {
        "id": consent.id,
        "subject": consent.subject_id,
        "app": consent.app_id,
        "purpose": consent.purpose_id,
        "products": sorted(consent.products),
        "capacity": consent.granted_capacity,
        "granted_by": consent.granted_by,
        "notice": [consent.notice_version, consent.notice_language, consent.notice_sha256],
        "valid_from": consent.valid_from.isoformat(),
        "valid_until": consent.valid_until.isoformat(),
    }
    return hashlib.sha256(canonical_json(terms)).hexdigest()


def _event(session: Session, consent: Consent, action: str, actor: str | None,
           appended: Appended, detail: str | None = None) -> None:
    session.add(
        ConsentEvent(
            consent_id=consent.id,
            action=action,
            actor_account_id=actor,
            detail=detail,
            ledger_index=appended.seq,
        )
    )


def connect_app(*, session: Session, principal: Principal, subject_id: str, app_id: str
                ) -> str:
    """Introduce a subject to an app (the subject, a guardian or a clinician in care):
    the app learns only its own pseudonym of the subject, and may then ask for data,
    which the policy decides."""
    access.require_role(principal, "subject", "guardian", "clinician")
    subject = access.get_subject(session, principal, subject_id)
    app = access.get_app(session, principal, app_id)
    return _app_pseudonym(session, app.id, subject.id)


def list_connections(*, session: Session, principal: Principal) -> list[str]:
    """The pseudonyms of the subjects introduced to the calling app."""
    if principal.kind != "app":
        msg = "Only apps list their connections."
        raise PermissionDenied(msg)
    live = select(Subject.id).where(col(Subject.erased_at).is_(None))
    return list(session.exec(
        select(AppPseudonym.pseudonym).where(
            AppPseudonym.app_id == principal.id, col(AppPseudonym.subject_id).in_(live))
    ).all())


def _app_pseudonym(session: Session, app_id: str, subject_id: str) -> str:
    row = session.exec(
        select(AppPseudonym).where(
            AppPseudonym.app_id == app_id, AppPseudonym.subject_id == subject_id
        )
    ).first()
    if row is None:
        row = AppPseudonym(pseudonym=pseudonym("p"), app_id=app_id, subject_id=subject_id)
        session.add(row)
    return row.pseudonym


def app_pseudonym_of(session: Session, app_id: str, subject_id: str) -> str | None:
    """The name under which ``app_id`` knows ``subject_id``, if it has one."""
    row = session.exec(
        select(AppPseudonym).where(
            AppPseudonym.app_id == app_id, AppPseudonym.subject_id == subject_id
        )
    ).first()
    return row.pseudonym if row is not None else None


def _grantor(
    session: Session, principal: Principal, subject: Subject, request: ConsentCreate
) -> tuple[str | None, str]:
    """Who grants (account id or None for the subject in person) and in what capacity."""
    rel = access.relations(session, principal, subject.id)
    if SELF in rel:
        return principal.id, "self"
    if GUARDIAN in rel:
        link = session.exec(
            select(GuardianLink).where(
                GuardianLink.guardian_account_id == principal.id,
                GuardianLink.subject_id == subject.id,
            )
        ).one()
        capacity = "legal_representative" if link.relationship == "legal_representative" else (
            "guardian"
        )
        return principal.id, capacity
    # A clinician records a consent given in person.
    capacity = request.capacity or "self"
    if capacity == "self":
        if request.guardian_account_id is not None:
            msg = (
                "Invalid value for the 'guardian_account_id' field. Leave it out when the "
                "capacity is 'self'."
            )
            raise ValidationError(msg, field="guardian_account_id")
        own = session.exec(select(Account).where(Account.subject_id == subject.id)).first()
        return (own.id if own is not None else None), "self"
    link = session.exec(
        select(GuardianLink).where(
            GuardianLink.guardian_account_id == (request.guardian_account_id or ""),
            GuardianLink.subject_id == subject.id,
        )
    ).first()
    if link is None:
        msg = (
            f"Invalid value for the 'guardian_account_id' field. With the capacity "
            f"{capacity!r} it must name a verified guardian of this subject, but got "
            f"{request.guardian_account_id!r}."
        )
        raise ValidationError(msg, field="guardian_account_id")
    return link.guardian_account_id, capacity


def grant_consent(
    *, session: Session, ledger: Ledger, principal: Principal, request: ConsentCreate,
    now: datetime | None = None, source: str | None = None,
) -> tuple[Consent, dict[str, Any]]:
    """Record a consent with the notice shown; returns it and its signed receipt.

    ``source`` marks a consent recorded elsewhere and imported (e.g. ``fhir_import``): it
    becomes the ``reason_code`` of the ledger leaf and the detail of the grant event.
    """
    now = now or utcnow()
    access.require_role(principal, "subject", "guardian", "clinician")
    subject = access.get_subject(session, principal, request.subject_id)
    if request.capacity is not None and CLINICIAN not in access.relations(
        session, principal, subject.id
    ):
        msg = "Only a clinician recording a consent given in person sets 'capacity'."
        raise ValidationError(msg, field="capacity")
    app = access.get_app(session, principal, request.app_id)
    purpose = load_catalog().get(request.purpose_id)
    if purpose.id not in app.declared_purposes:
        allowed = ", ".join(repr(p) for p in app.declared_purposes)
        msg = (
            f"Invalid value for the 'purpose_id' field. This app declared the purposes "
            f"{allowed}, but got {request.purpose_id!r} instead."
        )
        raise ValidationError(msg, field="purpose_id")
    products = list(request.products or purpose.products)
    outside = [p for p in products if p not in purpose.products]
    if outside:
        allowed = ", ".join(repr(p) for p in purpose.products)
        msg = (
            f"Invalid value for the 'products' field. The purpose {purpose.id!r} allows "
            f"{allowed}, but got {outside[0]!r}."
        )
        raise ValidationError(msg, field="products")
    notice = purpose.notice(request.notice.language, request.notice.variant)
    if request.notice.version != notice.version or request.notice.sha256 != notice.sha256:
        msg = (
            f"Invalid value for the 'notice' field. The current {request.notice.language} "
            f"{request.notice.variant} notice of {purpose.id!r} is version {notice.version} "
            f"with SHA-256 {notice.sha256}; show that text and send its version and hash."
        )
        raise ValidationError(msg, field="notice")
    profile = get_profile(subject.jurisdiction)
    longest = add_months(now, profile.consent_lifetime_months)
    valid_until = request.valid_until or longest
    if valid_until.tzinfo is None:
        msg = "Invalid value for the 'valid_until' field. Give a time with a timezone."
        raise ValidationError(msg, field="valid_until")
    if not now < valid_until <= longest:
        msg = (
            f"Invalid value for the 'valid_until' field. It must be after now and at most "
            f"{profile.consent_lifetime_months} months ahead (until {longest.isoformat()}), "
            f"but got {valid_until.isoformat()}."
        )
        raise ValidationError(msg, field="valid_until")
    granted_by, capacity = _grantor(session, principal, subject, request)
    facts = subject_facts(subject)
    age = age_on(subject.date_of_birth or now.date(), now.date())
    minor = age < profile.age_of_majority
    assent = "not_required"
    if minor and age >= profile.assent_age:
        assent = "pending"
        if request.assent is not None:
            if CLINICIAN not in access.relations(session, principal, subject.id):
                msg = "Only a clinician records a child's assent together with a consent."
                raise ValidationError(msg, field="assent")
            assent = request.assent
    elif request.assent is not None:
        msg = (
            f"Invalid value for the 'assent' field. Assent is recorded for children from "
            f"{profile.assent_age} to {profile.age_of_majority - 1}; this subject is {age}."
        )
        raise ValidationError(msg, field="assent")
    consent = Consent(
        subject_id=subject.id,
        app_id=app.id,
        purpose_id=purpose.id,
        products=products,
        granted_by=granted_by,
        granted_capacity=capacity,
        recorded_by=principal.id,
        assent=assent,
        assent_recorded_by=principal.id if request.assent else None,
        assent_recorded_at=now if request.assent else None,
        notice_purpose_id=purpose.id,
        notice_version=notice.version,
        notice_language=notice.language,
        notice_variant=notice.variant,
        notice_sha256=notice.sha256,
        granted_at=now,
        valid_from=now,
        valid_until=valid_until,
    )
    # Refuse what the policy would never let flow (assent may still come later).
    prospective = consent_facts(consent)
    if prospective.assent == "pending":
        prospective = ConsentFacts(**{**prospective.__dict__, "assent": "given"})
    for product in products:
        decision = decide(
            subject=facts, app=app_facts(app), purpose_id=purpose.id, product=product,
            consents=[prospective], now=now,
        )
        if not decision.allowed:
            msg = (
                f"This consent cannot be recorded: the policy refuses {product!r} for "
                f"{purpose.id!r} ({', '.join(decision.reasons)})."
            )
            raise ConsentError(msg)
    for old in _active(session, subject.id, app.id, purpose.id):
        _close(session, ledger, old, principal, "revoked", now, reason="superseded")
    session.add(consent)
    session.flush()
    mark_changed(session, "subject", subject.id)
    _app_pseudonym(session, app.id, subject.id)
    appended = ledger.append(
        session,
        action="consent.grant",
        at=now,
        subject=subject.pseudonym,
        app=app.id,
        purpose=purpose.id,
        consent=consent.id,
        capacity=capacity,
        actor_role=principal.role,
        notice_sha256=notice.sha256,
        record_sha256=record_digest(consent),
        reason_code=source,
        concerns=subject.id,
    )
    _event(session, consent, "grant", principal.id, appended, detail=source)
    if request.assent:
        assent_leaf = ledger.append(
            session, action=f"consent.{'assent' if request.assent == 'given' else 'dissent'}",
            at=now, subject=subject.pseudonym, consent=consent.id, actor_role=principal.role,
            concerns=subject.id,
        )
        _event(session, consent, request.assent, principal.id, assent_leaf)
    return consent, ledger.receipt(session, appended)


def _active(session: Session, subject_id: str, app_id: str, purpose_id: str) -> list[Consent]:
    return list(
        session.exec(
            select(Consent).where(
                Consent.subject_id == subject_id,
                Consent.app_id == app_id,
                Consent.purpose_id == purpose_id,
                Consent.status == "active",
            )
        ).all()
    )


def _close(session: Session, ledger: Ledger, consent: Consent, principal: Principal | None,
           status: str, now: datetime, *, reason: str | None = None,
           reason_code: str | None = None) -> Appended:
    subject = session.get(Subject, consent.subject_id)
    assert subject is not None  # consents reference existing subjects
    consent.status = status
    mark_changed(session, "subject", consent.subject_id)
    if status == "revoked":
        consent.revoked_at = now
        consent.revoked_by = principal.id if principal else None
        consent.revocation_reason = reason
    else:
        consent.expired_at = now
    session.add(consent)
    action = "consent.revoke" if status == "revoked" else "consent.expire"
    appended = ledger.append(
        session, action=action, at=now, subject=subject.pseudonym, app=consent.app_id,
        purpose=consent.purpose_id, consent=consent.id,
        actor_role=principal.role if principal else "system", reason_code=reason_code,
        concerns=subject.id,
    )
    _event(session, consent, status if status == "revoked" else "expire",
           principal.id if principal else None, appended, detail=reason or reason_code)
    return appended


def revoke_consent(
    *, session: Session, ledger: Ledger, principal: Principal, consent_id: str,
    reason: str | None = None, now: datetime | None = None,
) -> tuple[Consent, dict[str, Any]]:
    """Withdraw a consent (the subject, a guardian, or a clinician in care)."""
    now = now or utcnow()
    access.require_role(principal, "subject", "guardian", "clinician")
    consent = access.get_consent(session, principal, consent_id)
    if consent.status != "active":
        msg = f"This consent is already {consent.status}; there is nothing left to revoke."
        raise ConflictError(msg)
    appended = _close(session, ledger, consent, principal, "revoked", now, reason=reason,
                      reason_code="withdrawn")
    session.info.setdefault(REVOKED_KEY, set()).add(consent.id)
    file_deletion_after_revocation(session=session, consent=consent, principal=principal,
                                   now=now)
    return consent, ledger.receipt(session, appended)


def record_assent(
    *, session: Session, ledger: Ledger, principal: Principal, consent_id: str, assent: str,
    now: datetime | None = None,
) -> Consent:
    """Record a child's own assent or dissent (the child, or a clinician in care)."""
    now = now or utcnow()
    access.require_role(principal, "subject", "clinician")
    consent = access.get_consent(session, principal, consent_id, (SELF, CLINICIAN))
    if consent.assent == "not_required":
        msg = "This consent needs no assent: the subject was not of assent age when it was given."
        raise ConflictError(msg)
    if consent.status != "active":
        msg = f"This consent is {consent.status}; assent can no longer change it."
        raise ConflictError(msg)
    if consent.assent == assent:
        msg = f"The assent is already recorded as {assent!r}."
        raise ConflictError(msg)
    subject = session.get(Subject, consent.subject_id)
    assert subject is not None
    consent.assent = assent
    mark_changed(session, "subject", consent.subject_id)
    consent.assent_recorded_by = principal.id
    consent.assent_recorded_at = now
    session.add(consent)
    appended = ledger.append(
        session, action=f"consent.{'assent' if assent == 'given' else 'dissent'}", at=now,
        subject=subject.pseudonym, consent=consent.id, actor_role=principal.role,
        concerns=subject.id,
    )
    _event(session, consent, assent, principal.id, appended)
    return consent


def expire_due(*, session: Session, ledger: Ledger, now: datetime | None = None) -> list[str]:
    """Close consents past their end, and guardians' consents of subjects now adult.

    Returns the ids of the subjects whose consents changed.
    """
    now = now or utcnow()
    changed: list[str] = []
    due = session.exec(
        select(Consent).where(Consent.status == "active", col(Consent.valid_until) <= now)
    ).all()
    for consent in due:
        _close(session, ledger, consent, None, "expired", now, reason_code="lifetime")
        changed.append(consent.subject_id)
    by_guardian = session.exec(
        select(Consent, Subject)
        .join(Subject, col(Subject.id) == col(Consent.subject_id))
        .where(Consent.status == "active", Consent.granted_capacity == "guardian")
    ).all()
    for consent, subject in by_guardian:
        if subject.date_of_birth is None:
            continue
        profile = get_profile(subject.jurisdiction)
        if age_on(subject.date_of_birth, now.date()) >= profile.age_of_majority:
            _close(session, ledger, consent, None, "expired", now, reason_code="majority")
            changed.append(consent.subject_id)
    return changed


def list_consents(*, session: Session, principal: Principal, subject_id: str | None = None
                  ) -> list[Consent]:
    """Consents the caller may see, newest first (optionally of one subject).

    A filter is never dropped silently: an app (which knows subjects only by its own
    pseudonyms) may not filter by ``subject_id``, and a subject id the caller cannot see
    is refused exactly like one that does not exist.
    """
    query = select(Consent).order_by(col(Consent.granted_at).desc())
    if principal.kind == "app":
        if subject_id is not None:
            msg = ("The 'subject_id' filter is not available to apps: an app knows subjects "
                   "only by its own pseudonyms. Remove it.")
            raise ValidationError(msg, field="subject_id")
        live = select(Subject.id).where(col(Subject.erased_at).is_(None))
        return list(session.exec(
            query.where(Consent.app_id == principal.id, col(Consent.subject_id).in_(live))
        ).all())
    if subject_id is not None:
        try:
            access.get_subject(session, principal, subject_id)
        except NotFoundError:
            shown = subject_id if len(subject_id) <= 64 else subject_id[:64] + "..."
            msg = (f"Invalid value for the 'subject_id' filter. No subject with id "
                   f"'{shown}' exists, or you may not access it.")
            raise ValidationError(msg, field="subject_id") from None
        ids = [subject_id]
    else:
        ids = access.visible_subject_ids(session, principal)
    if not ids:
        return []
    return list(session.exec(query.where(col(Consent.subject_id).in_(ids))).all())


def history(*, session: Session, principal: Principal, consent_id: str) -> list[ConsentEvent]:
    """Every recorded change of a consent, oldest first."""
    consent = access.get_consent(session, principal, consent_id)
    return list(
        session.exec(
            select(ConsentEvent)
            .where(ConsentEvent.consent_id == consent.id)
            .order_by(col(ConsentEvent.at), col(ConsentEvent.ledger_index))
        ).all()
    )


def evaluate(*, session: Session, subject: Subject, app: App, purpose_id: str, product: str,
             now: datetime | None = None) -> Decision:
    """The full policy decision for one app, subject, purpose and product."""
    return evaluate_products(session=session, subject=subject, app=app, purpose_id=purpose_id,
                             products=[product], now=now)[product]


def evaluate_products(*, session: Session, subject: Subject, app: App, purpose_id: str,
                      products: Sequence[str], now: datetime | None = None
                      ) -> dict[str, Decision]:
    """``evaluate`` for several products of one purpose, reading the consents once.

    The decision counts the most recently granted consent only, so only the latest (all
    of them, should two share that instant) is read: the cost stays the same however long
    the subject's history with the app grows."""
    now = now or utcnow()
    load_catalog().get(purpose_id)
    same = (Consent.subject_id == subject.id, Consent.app_id == app.id,
            Consent.purpose_id == purpose_id)
    latest = select(func.max(Consent.granted_at)).where(*same).scalar_subquery()
    consents = session.exec(select(Consent).where(*same, Consent.granted_at == latest)).all()
    return decide_products(
        subject=subject_facts(subject), app=app_facts(app), purpose_id=purpose_id,
        products=products, consents=[consent_facts(c) for c in consents], now=now,
    )


def ask(*, session: Session, ledger: Ledger, principal: Principal, app_id: str, subject: str,
        purpose_id: str, product: str, now: datetime | None = None) -> Decision:
    """Answer "may app X receive product P for subject S, and why not?".

    An app asks about itself, naming the subject by its own pseudonym; a denial it meets
    is written to the ledger. People ask about the subjects they may see.
    """
    now = now or utcnow()
    if principal.kind == "device":
        msg = "Devices do not ask for decisions."
        raise PermissionDenied(msg)
    if principal.kind == "app":
        app = access.get_app(session, principal, app_id)
        target = access.subject_for_app(session, app.id, subject)
    else:
        target = access.get_subject(session, principal, subject)
        app = access.get_app(session, principal, app_id)
    decision = evaluate(session=session, subject=target, app=app, purpose_id=purpose_id,
                        product=product, now=now)
    if principal.kind == "app" and not decision.allowed:
        ledger.append(
            session, action="decision.deny", at=now, subject=target.pseudonym, app=app.id,
            purpose=purpose_id, product=product, reasons=list(decision.reasons),
            concerns=target.id,
        )
    return decision


__all__ = [
    "CHANGES_KEY",
    "REVOKED_KEY",
    "app_facts",
    "app_pseudonym_of",
    "ask",
    "connect_app",
    "consent_facts",
    "evaluate",
    "evaluate_products",
    "expire_due",
    "grant_consent",
    "history",
    "list_connections",
    "list_consents",
    "mark_changed",
    "record_assent",
    "record_digest",
    "revoke_consent",
    "subject_facts",
]
