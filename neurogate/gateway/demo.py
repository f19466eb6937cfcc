"""Demo data: a small clinic with an adult patient, a child with a guardian, and apps.

Seeding goes through the same domain functions as the API, so the demo shows what a
real deployment does (consents with notices, receipts, ledger leaves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlmodel import select

from neurogate.consent import consents, registry
from neurogate.consent.access import Principal
from neurogate.consent.accounts import create_account
from neurogate.consent.models import Account, utcnow
from neurogate.consent.purposes import load_catalog
from neurogate.consent.schemas import (
    AppCreate,
    AppUpdate,
    ConsentCreate,
    DeviceCreate,
    GuardianLinkCreate,
    NoticeShown,
    SubjectAccountCreate,
    SubjectCreate,
)
from neurogate.gateway.state import Gateway

DEMO_PASSWORD = "demo-password"


@dataclass
class DemoWorld:
    """Ids and credentials of what the demo created."""

    accounts: dict[str, str] = field(default_factory=dict)  # username -> role
    subjects: dict[str, str] = field(default_factory=dict)  # label -> subject id
    apps: dict[str, str] = field(default_factory=dict)  # label -> app id
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (id, secret)
    consents: dict[str, str] = field(default_factory=dict)  # label -> consent id
    created: bool = False


def _principal(account: Account) -> Principal:
    return Principal(kind="account", id=account.id, role=account.role,
                     subject_id=account.subject_id)


def _years_ago(years: int, months: int = 0) -> date:
    today = utcnow().date()
    month0 = today.month - 1 - months
    year = today.year - years + month0 // 12
    return date(year, month0 % 12 + 1, min(today.day, 28))


def _notice(purpose_id: str, language: str = "en", variant: str = "plain") -> NoticeShown:
    notice = load_catalog().get(purpose_id).notice(language, variant)
    return NoticeShown(version=notice.version, language=language, variant=variant,
                       sha256=notice.sha256)


def seed(gateway: Gateway) -> DemoWorld:
    """Create the demo clinic once; later calls find it and return what they can."""
    if gateway.settings.environment == "production":
        msg = "The demo data is refused with NEUROGATE_ENVIRONMENT=production."
        raise RuntimeError(msg)
    world = DemoWorld()
    with gateway.transaction() as session:
        if session.exec(select(Account).where(Account.username == "admin")).first():
            for account in session.exec(select(Account)).all():
                world.accounts[account.username] = account.role
            return world
        made = {
            name: create_account(session=session, username=name, password=DEMO_PASSWORD,
                                 role=role)
            for name, role in [
                ("admin", "admin"), ("dr.rivera", "clinician"), ("parent.chen", "guardian"),
                ("acme.devices", "vendor"), ("apps.owner", "app_owner"),
            ]
        }
        clinician = _principal(made["dr.rivera"])
        owner = _principal(made["apps.owner"])
        adult = registry.create_subject(session=session, principal=clinician, request=SubjectCreate(
            display_name="Alex Adult", date_of_birth=_years_ago(34, 3), preferred_language="en"))
        child = registry.create_subject(session=session, principal=clinician, request=SubjectCreate(
            display_name="Mia Child", date_of_birth=_years_ago(10, 5),
            preferred_language="zh-Hans"))
        registry.link_guardian(session=session, principal=clinician, subject_id=child.id,
                               request=GuardianLinkCreate(guardian_username="parent.chen"))
        for label, subject in (("alex", adult), ("mia", child)):
            registry.create_subject_account(
                session=session, principal=clinician, subject_id=subject.id,
                request=SubjectAccountCreate(username=label, password=DEMO_PASSWORD))
        apps = {}
        for label, name, commercial, purposes in [
            ("clinic", "Ward EEG Monitor", False, ["clinical_monitoring"]),
            ("focus", "FocusQuest Neurofeedback", True, ["neurofeedback"]),
            ("adlab", "AdLab Neuromarketing", True, ["neuromarketing"]),
        ]:
            app, client_id, secret = registry.create_app(
                session=session, principal=owner,
                request=AppCreate(name=name, commercial=commercial, declared_purposes=purposes))
            apps[label] = app
            world.credentials[label] = (client_id, secret)
        admin = _principal(made["admin"])
        registry.update_app(session=session, principal=admin, app_id=apps["focus"].id,
                            request=AppUpdate(cria_status="approved"))
        device, client_id, secret = registry.create_device(
            session=session, principal=_principal(made["acme.devices"]),
            request=DeviceCreate(model="Acme Cap 8", serial="ACME-0001",
                                 channel_names=["Fp1", "Fp2", "C3", "C4", "P3", "P4", "O1", "O2"],
                                 channel_types=["eeg"] * 8, sampling_rate=250.0))
        world.credentials["device"] = (client_id, secret)
        consent, _ = consents.grant_consent(
            session=session, ledger=gateway.ledger, principal=clinician,
            request=ConsentCreate(subject_id=adult.id, app_id=apps["clinic"].id,
                                  purpose_id="clinical_monitoring",
                                  notice=_notice("clinical_monitoring")))
        world.consents["alex-clinic"] = consent.id
        consent, _ = consents.grant_consent(
            session=session, ledger=gateway.ledger, principal=_principal(made["parent.chen"]),
            request=ConsentCreate(subject_id=child.id, app_id=apps["focus"].id,
                                  purpose_id="neurofeedback",
                                  notice=_notice("neurofeedback", "zh-Hans", "plain")))
        world.consents["mia-focus"] = consent.id
        mia = session.exec(select(Account).where(Account.username == "mia")).one()
        consents.record_assent(session=session, ledger=gateway.ledger, principal=_principal(mia),
                               consent_id=consent.id, assent="given")
        world.subjects = {"alex": adult.id, "mia": child.id}
        world.apps = {label: app.id for label, app in apps.items()}
        world.accounts = {a.username: a.role for a in session.exec(select(Account)).all()}
        world.created = True
    return world


__all__ = ["DEMO_PASSWORD", "DemoWorld", "seed"]
