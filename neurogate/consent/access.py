"""Object-level access: who may reach which subject, consent, app and device.

A clinician reaches only patients in their care, a guardian only their wards, a subject
only themselves, an app only the subjects it holds consent for (under its own pseudonym
for them). Whatever a caller may not reach looks exactly like something that does not
exist: the same error, the same message.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from neurogate.consent.db import hold
from neurogate.consent.models import (
    Account,
    App,
    AppPseudonym,
    CareRelationship,
    Consent,
    Device,
    GuardianLink,
    OAuthClient,
    Subject,
)
from neurogate.errors import PermissionDenied, not_found

# The relations an account can have to a subject.
SELF, GUARDIAN, CLINICIAN = "self", "guardian", "clinician"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a logged-in account, or an app or device with an access token."""

    kind: str  # "account" | "app" | "device"
    id: str  # account id, app id or device id
    role: str  # account role, or "app" / "device"
    subject_id: str | None = None  # for a subject's own account
    scopes: frozenset[str] = field(default_factory=frozenset)
    pseudonym: str | None = None


def require_role(principal: Principal, *roles: str) -> None:
    """Refuse a caller whose role may not use this operation at all."""
    if principal.role not in roles:
        allowed = ", ".join(repr(r) for r in roles)
        msg = f"This operation is open to the roles {allowed} only; you are {principal.role!r}."
        raise PermissionDenied(msg)


def relations(session: Session, principal: Principal, subject_id: str) -> set[str]:
    """How ``principal`` relates to the subject: any of self, guardian, clinician."""
    found: set[str] = set()
    if principal.kind != "account":
        return found
    if principal.role == "subject" and principal.subject_id == subject_id:
        found.add(SELF)
    if principal.role == "guardian":
        link = session.exec(
            select(GuardianLink).where(
                GuardianLink.guardian_account_id == principal.id,
                GuardianLink.subject_id == subject_id,
            )
        ).first()
        if link is not None:
            found.add(GUARDIAN)
    if principal.role == "clinician":
        care = session.exec(
            select(CareRelationship).where(
                CareRelationship.clinician_account_id == principal.id,
                CareRelationship.subject_id == subject_id,
            )
        ).first()
        if care is not None:
            found.add(CLINICIAN)
    return found


def get_subject(
    session: Session,
    principal: Principal,
    subject_id: str,
    allowed: Collection[str] = (SELF, GUARDIAN, CLINICIAN),
) -> Subject:
    """The subject if ``principal`` has one of the ``allowed`` relations to it."""
    subject = session.get(Subject, subject_id)
    if subject is None or subject.erased_at is not None:
        msg = "subject"
        raise not_found(msg, subject_id)
    hold(session, subject)
    if not relations(session, principal, subject_id) & set(allowed):
        msg = "subject"
        raise not_found(msg, subject_id)
    return subject


def visible_subject_ids(session: Session, principal: Principal) -> list[str]:
    """Every subject id the account may see (empty for apps, devices, admins, vendors)."""
    ids: set[str] = set()
    if principal.kind != "account":
        return []
    if principal.role == "subject" and principal.subject_id:
        ids.add(principal.subject_id)
    if principal.role == "guardian":
        ids.update(
            session.exec(
                select(GuardianLink.subject_id).where(
                    GuardianLink.guardian_account_id == principal.id
                )
            ).all()
        )
    if principal.role == "clinician":
        ids.update(
            session.exec(
                select(CareRelationship.subject_id).where(
                    CareRelationship.clinician_account_id == principal.id
                )
            ).all()
        )
    return sorted(ids)


def get_consent(session: Session, principal: Principal, consent_id: str,
                allowed: Collection[str] = (SELF, GUARDIAN, CLINICIAN)) -> Consent:
    """A consent the caller may see: its subject's own people, or the app it names."""
    consent = session.get(Consent, consent_id)
    if consent is None:
        msg = "consent"
        raise not_found(msg, consent_id)
    subject = session.get(Subject, consent.subject_id)
    if subject is None or subject.erased_at is not None:
        msg = "consent"
        raise not_found(msg, consent_id)
    hold(session, subject)  # the caller's next steps read it again
    if principal.kind == "app":
        if consent.app_id != principal.id:
            msg = "consent"
            raise not_found(msg, consent_id)
        return consent
    if not relations(session, principal, consent.subject_id) & set(allowed):
        msg = "consent"
        raise not_found(msg, consent_id)
    return consent


def get_app(session: Session, principal: Principal, app_id: str, *, manage: bool = False) -> App:
    """An app: any account may read an app's public facts; only its owner or an admin
    may manage it; an app sees only itself. ``app_id`` may also be the app's OAuth2
    ``client_id``."""
    app = session.get(App, app_id)
    if app is None and app_id.startswith("app_"):
        client = session.get(OAuthClient, app_id)
        app = session.get(App, client.owner_id) if client and client.kind == "app" else None
    if app is None:
        msg = "app"
        raise not_found(msg, app_id)
    if principal.kind == "app" and principal.id != app.id:
        msg = "app"
        raise not_found(msg, app_id)
    if principal.kind == "device":
        msg = "app"
        raise not_found(msg, app_id)
    if manage and not (
        principal.role == "admin"
        or (principal.role == "app_owner" and app.owner_account_id == principal.id)
    ):
        msg = "app"
        raise not_found(msg, app_id)
    return app


def get_device(session: Session, principal: Principal, device_id: str) -> Device:
    """A device: its vendor, an admin, or the device itself."""
    device = session.get(Device, device_id)
    if device is None:
        msg = "device"
        raise not_found(msg, device_id)
    owner = principal.role == "vendor" and device.vendor_account_id == principal.id
    itself = principal.kind == "device" and principal.id == device_id
    if not (owner or itself or principal.role == "admin"):
        msg = "device"
        raise not_found(msg, device_id)
    return device


def subject_for_app(session: Session, app_id: str, pseudonym: str) -> Subject:
    """The subject an app knows under ``pseudonym`` (unknown to other apps)."""
    row = session.exec(
        select(AppPseudonym).where(
            AppPseudonym.app_id == app_id, col(AppPseudonym.pseudonym) == pseudonym
        )
    ).first()
    subject = session.get(Subject, row.subject_id) if row is not None else None
    if subject is None or subject.erased_at is not None:
        msg = "subject"
        raise not_found(msg, pseudonym)
    return subject


def account_of(session: Session, account_id: str) -> Account | None:
    """An account by id."""
    return session.get(Account, account_id)


__all__ = [
    "CLINICIAN",
    "GUARDIAN",
    "SELF",
    "Principal",
    "account_of",
    "get_app",
    "get_consent",
    "get_device",
    "get_subject",
    "relations",
    "require_role",
    "subject_for_app",
    "visible_subject_ids",
]
