"""Subjects, guardians, care relationships, apps and devices: who and what is known."""

from __future__ import annotations

import secrets
from datetime import date

from sqlmodel import Session, col, select

from neurogate.consent import access
from neurogate.consent.access import CLINICIAN, GUARDIAN, SELF, Principal
from neurogate.consent.accounts import (
    create_account,
    create_client,
    find_account,
    pseudonym,
    token_digest,
)
from neurogate.consent.consents import mark_changed
from neurogate.consent.jurisdictions import age_on, get_profile
from neurogate.consent.ledger import Ledger
from neurogate.consent.models import (
    App,
    CareRelationship,
    Device,
    GuardianLink,
    OAuthClient,
    Subject,
    utcnow,
)
from neurogate.consent.purposes import load_catalog
from neurogate.consent.schemas import (
    AppCreate,
    AppUpdate,
    CareRelationshipCreate,
    DeviceCreate,
    GuardianLinkCreate,
    SubjectAccountCreate,
    SubjectCreate,
    SubjectPublic,
    SubjectUpdate,
)
from neurogate.errors import (
    ConflictError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
    not_found,
)


def _check_birth_date(value: date, today: date) -> None:
    if value > today:
        msg = (
            f"Invalid value for the 'date_of_birth' field. It must not be in the future, "
            f"but got {value.isoformat()} (today is {today.isoformat()})."
        )
        raise ValidationError(msg, field="date_of_birth")
    if today.year - value.year > 130:
        msg = (
            f"Invalid value for the 'date_of_birth' field. It must be within the last 130 "
            f"years, but got {value.isoformat()}."
        )
        raise ValidationError(msg, field="date_of_birth")


def subject_public(subject: Subject, today: date | None = None) -> SubjectPublic:
    """The caller's view of a subject, with age and minority computed today."""
    today = today or utcnow().date()
    view = SubjectPublic.model_validate(subject)
    if subject.date_of_birth is not None:
        view.age = age_on(subject.date_of_birth, today)
        view.minor = view.age < get_profile(subject.jurisdiction).age_of_majority
    return view


# -- subjects ----------------------------------------------------------------------
def create_subject(*, session: Session, principal: Principal, request: SubjectCreate) -> Subject:
    """Register a patient; the registering clinician is in their care from then on."""
    access.require_role(principal, "clinician")
    get_profile(request.jurisdiction)
    _check_birth_date(request.date_of_birth, utcnow().date())
    subject = Subject(pseudonym=pseudonym("sub"), **request.model_dump())
    session.add(subject)
    session.flush()
    session.add(CareRelationship(clinician_account_id=principal.id, subject_id=subject.id))
    session.flush()
    return subject


def update_subject(
    *, session: Session, principal: Principal, subject_id: str, request: SubjectUpdate
) -> Subject:
    """Correct a patient's record (clinician in care)."""
    subject = access.get_subject(session, principal, subject_id, (CLINICIAN,))
    changes = request.model_dump(exclude_unset=True)
    if "jurisdiction" in changes and changes["jurisdiction"] is not None:
        get_profile(changes["jurisdiction"])
    if changes.get("date_of_birth") is not None:
        _check_birth_date(changes["date_of_birth"], utcnow().date())
    for key, value in changes.items():
        if value is None and key != "display_name":
            msg = f"Invalid value for the '{key}' field. It may be left out, but not null."
            raise ValidationError(msg, field=key)
        setattr(subject, key, value)
    session.add(subject)
    mark_changed(session, "subject", subject.id)
    return subject


def list_subjects(*, session: Session, principal: Principal) -> list[Subject]:
    """The subjects the caller may see."""
    ids = access.visible_subject_ids(session, principal)
    if not ids:
        return []
    rows = session.exec(
        select(Subject).where(col(Subject.id).in_(ids), col(Subject.erased_at).is_(None))
    ).all()
    return sorted(rows, key=lambda s: s.created_at)


def create_subject_account(
    *, session: Session, principal: Principal, subject_id: str, request: SubjectAccountCreate
) -> str:
    """Give a patient a login of their own (clinician in care); returns the account id."""
    subject = access.get_subject(session, principal, subject_id, (CLINICIAN,))
    account = create_account(
        session=session,
        username=request.username,
        password=request.password,
        role="subject",
        subject_id=subject.id,
    )
    return account.id


# -- guardians and care ------------------------------------------------------------
def link_guardian(
    *, session: Session, principal: Principal, subject_id: str, request: GuardianLinkCreate
) -> GuardianLink:
    """Link a guardian account to a patient; the clinician's act is the verification."""
    subject = access.get_subject(session, principal, subject_id, (CLINICIAN,))
    guardian = find_account(session=session, username=request.guardian_username)
    if guardian is None or guardian.role != "guardian":
        msg = (
            f"No guardian account with the username {request.guardian_username!r} exists; "
            f"an administrator creates it with the role 'guardian' first."
        )
        raise NotFoundError(msg, field="guardian_username")
    existing = session.exec(
        select(GuardianLink).where(
            GuardianLink.guardian_account_id == guardian.id,
            GuardianLink.subject_id == subject.id,
        )
    ).first()
    if existing is not None:
        msg = "This guardian is already linked to this subject."
        raise ConflictError(msg, field="guardian_username")
    link = GuardianLink(
        guardian_account_id=guardian.id,
        subject_id=subject.id,
        relationship=request.relationship,
        verified_by=principal.id,
    )
    session.add(link)
    session.flush()
    return link


def list_guardians(
    *, session: Session, principal: Principal, subject_id: str
) -> list[GuardianLink]:
    """The verified guardians of a subject."""
    subject = access.get_subject(session, principal, subject_id, (SELF, GUARDIAN, CLINICIAN))
    return list(
        session.exec(select(GuardianLink).where(GuardianLink.subject_id == subject.id)).all()
    )


def create_care_relationship(
    *, session: Session, principal: Principal, request: CareRelationshipCreate
) -> CareRelationship:
    """Put a patient in a clinician's care (administrator)."""
    access.require_role(principal, "admin")
    clinician = find_account(session=session, username=request.clinician_username)
    if clinician is None or clinician.role != "clinician":
        msg = f"No clinician account with the username {request.clinician_username!r} exists."
        raise NotFoundError(msg, field="clinician_username")
    subject = session.get(Subject, request.subject_id)
    if subject is None or subject.erased_at is not None:
        msg_0 = "subject"
        raise not_found(msg_0, request.subject_id)
    existing = session.exec(
        select(CareRelationship).where(
            CareRelationship.clinician_account_id == clinician.id,
            CareRelationship.subject_id == subject.id,
        )
    ).first()
    if existing is not None:
        msg = "This patient is already in this clinician's care."
        raise ConflictError(msg, field="subject_id")
    care = CareRelationship(clinician_account_id=clinician.id, subject_id=subject.id)
    session.add(care)
    session.flush()
    return care


def list_care_relationships(*, session: Session, principal: Principal) -> list[CareRelationship]:
    """All care relationships (administrator) or one's own (clinician)."""
    access.require_role(principal, "admin", "clinician")
    query = select(CareRelationship)
    if principal.role == "clinician":
        query = query.where(CareRelationship.clinician_account_id == principal.id)
    return list(session.exec(query).all())


def end_care_relationship(*, session: Session, principal: Principal, care_id: str) -> None:
    """End a care relationship (administrator)."""
    access.require_role(principal, "admin")
    care = session.get(CareRelationship, care_id)
    if care is None:
        msg = "care relationship"
        raise not_found(msg, care_id)
    session.delete(care)


# -- apps --------------------------------------------------------------------------
def _check_purposes(purposes: list[str]) -> list[str]:
    catalog = load_catalog()
    for purpose_id in purposes:
        catalog.get(purpose_id)
    if len(set(purposes)) != len(purposes):
        msg = "Invalid value for the 'declared_purposes' field. Each purpose may appear once."
        raise ValidationError(msg, field="declared_purposes")
    return purposes


def create_app(
    *, session: Session, principal: Principal, request: AppCreate
) -> tuple[App, str, str]:
    """Register an app with its declared purposes; returns it and its client credentials."""
    access.require_role(principal, "app_owner")
    app = App(
        name=request.name,
        owner_account_id=principal.id,
        commercial=request.commercial,
        declared_purposes=_check_purposes(request.declared_purposes),
        deployment_context=request.deployment_context,
    )
    session.add(app)
    session.flush()
    client_id, secret = create_client(session=session, kind="app", owner_id=app.id)
    return app, client_id, secret


def list_apps(*, session: Session, principal: Principal) -> list[App]:
    """Apps: every app's public facts for people; only itself for an app."""
    if principal.kind == "device":
        return []
    query = select(App)
    if principal.kind == "app":
        query = query.where(App.id == principal.id)
    elif principal.role == "app_owner":
        query = query.where(App.owner_account_id == principal.id)
    return sorted(session.exec(query).all(), key=lambda a: a.created_at)


def update_app(*, session: Session, principal: Principal, app_id: str, request: AppUpdate) -> App:
    """Change an app: its owner edits name and purposes and submits an impact assessment;
    an administrator approves assessments and suspends apps."""
    app = access.get_app(session, principal, app_id, manage=True)
    changes = request.model_dump(exclude_unset=True)
    if principal.role != "admin":
        if "suspended" in changes:
            msg = "Only an administrator may suspend or reinstate an app."
            raise PermissionDenied(msg)
        if changes.get("cria_status") not in (None, "submitted"):
            msg = (
                "Invalid value for the 'cria_status' field. An app owner may set only "
                f"'submitted', but got {changes['cria_status']!r} instead."
            )
            raise ValidationError(msg, field="cria_status")
    for key, value in changes.items():
        if value is None:
            msg = f"Invalid value for the '{key}' field. It may be left out, but not null."
            raise ValidationError(msg, field=key)
    if "declared_purposes" in changes:
        changes["declared_purposes"] = _check_purposes(changes["declared_purposes"])
    for key, value in changes.items():
        setattr(app, key, value)
    session.add(app)
    mark_changed(session, "app", app.id)
    return app


# -- devices -----------------------------------------------------------------------
def create_device(
    *, session: Session, principal: Principal, request: DeviceCreate
) -> tuple[Device, str, str]:
    """Register a device model and serial with its stream layout (vendor)."""
    access.require_role(principal, "vendor")
    if len(request.channel_names) != len(request.channel_types):
        msg = (
            f"Invalid value for the 'channel_types' field. It must have one entry per channel "
            f"name ({len(request.channel_names)}), but has {len(request.channel_types)}."
        )
        raise ValidationError(msg, field="channel_types")
    if not {"eeg", "seeg", "ecog", "dbs"} & set(request.channel_types):
        msg = ("Invalid value for the 'channel_types' field. At least one channel must be "
               "'eeg', 'seeg', 'ecog' or 'dbs': the gateway processes neural channels only.")
        raise ValidationError(msg, field="channel_types")
    if len(set(request.channel_names)) != len(request.channel_names):
        msg = "Invalid value for the 'channel_names' field. Channel names must be unique."
        raise ValidationError(msg, field="channel_names")
    device = Device(vendor_account_id=principal.id, **request.model_dump())
    session.add(device)
    session.flush()
    client_id, secret = create_client(session=session, kind="device", owner_id=device.id)
    return device, client_id, secret


def list_devices(*, session: Session, principal: Principal) -> list[Device]:
    """The vendor's own devices (all for an administrator)."""
    access.require_role(principal, "vendor", "admin")
    query = select(Device)
    if principal.role == "vendor":
        query = query.where(Device.vendor_account_id == principal.id)
    return sorted(session.exec(query).all(), key=lambda d: d.created_at)


# -- pairing -----------------------------------------------------------------------
def pair_device(*, session: Session, ledger: Ledger, principal: Principal, device_id: str,
                subject_id: str) -> Device:
    """Bind a device's stream to a subject (the subject, or a clinician in care)."""
    access.require_role(principal, "subject", "clinician")
    subject = access.get_subject(session, principal, subject_id, (SELF, CLINICIAN))
    device = session.get(Device, device_id)
    # A device paired with someone else looks exactly like one that does not exist:
    # otherwise the answer would tell who has a device.
    if device is None or device.paired_subject_id not in (None, subject.id):
        raise not_found(kind="device", ident=device_id)
    if device.paired_subject_id == subject.id:
        msg = "This device is already paired with this subject."
        raise ConflictError(msg, field="device_id")
    device.paired_subject_id = subject.id
    session.add(device)
    mark_changed(session, "device", device.id)
    ledger.append(session, action="device.pair", device=device.id, subject=subject.pseudonym,
                  actor_role=principal.role, concerns=subject.id)
    return device


def unpair_device(*, session: Session, ledger: Ledger, principal: Principal,
                  device_id: str) -> Device:
    """Unbind a device (its subject, a clinician in care, or its vendor); its live stream
    ends."""
    device = session.get(Device, device_id)
    if device is None or device.paired_subject_id is None:
        raise not_found(kind="device pairing", ident=device_id)
    subject = session.get(Subject, device.paired_subject_id)
    assert subject is not None  # paired_subject_id is a foreign key
    vendor = principal.role == "vendor" and device.vendor_account_id == principal.id
    if not vendor and not access.relations(session, principal, subject.id) & {SELF, CLINICIAN}:
        raise not_found(kind="device pairing", ident=device_id)
    device.paired_subject_id = None
    session.add(device)
    mark_changed(session, "device", device.id)
    ledger.append(session, action="device.unpair", device=device.id,
                  subject=subject.pseudonym, actor_role=principal.role, concerns=subject.id)
    return device


# -- client credentials ------------------------------------------------------------
def _new_secret(session: Session, kind: str, owner_id: str) -> tuple[str, str]:
    """Replace the client secret of an app's or device's OAuth2 client; the client_id
    stays. The old secret is refused from this transaction's commit on."""
    client = session.exec(select(OAuthClient).where(
        OAuthClient.kind == kind, OAuthClient.owner_id == owner_id)).first()
    if client is None:
        raise not_found(kind=f"{kind} client", ident=owner_id)
    secret = secrets.token_urlsafe(32)
    client.secret_hash = token_digest(secret)
    session.add(client)
    return client.client_id, secret


def rotate_app_secret(*, session: Session, principal: Principal, app_id: str
                      ) -> tuple[App, str, str]:
    """A new client secret for an app (its owner or an administrator); returns the app,
    its unchanged client_id and the new secret, shown once."""
    app = access.get_app(session, principal, app_id, manage=True)
    client_id, secret = _new_secret(session, "app", app.id)
    return app, client_id, secret


def rotate_device_secret(*, session: Session, principal: Principal, device_id: str
                         ) -> tuple[Device, str, str]:
    """A new client secret for a device (its vendor or an administrator); returns the
    device, its unchanged client_id and the new secret, shown once."""
    if principal.kind != "account":
        raise not_found(kind="device", ident=device_id)
    device = access.get_device(session, principal, device_id)
    client_id, secret = _new_secret(session, "device", device.id)
    return device, client_id, secret


__all__ = [
    "create_app",
    "create_care_relationship",
    "create_device",
    "create_subject",
    "create_subject_account",
    "end_care_relationship",
    "link_guardian",
    "list_apps",
    "list_care_relationships",
    "list_devices",
    "list_guardians",
    "list_subjects",
    "pair_device",
    "rotate_app_secret",
    "rotate_device_secret",
    "subject_public",
    "unpair_device",
    "update_app",
    "update_subject",
]
