"""Demo data: a small clinic with an adult patient, a child with a guardian, and apps.

Seeding goes through the same domain functions as the API, so the demo shows what a
real deployment does (consents with notices, receipts, ledger leaves).

The database keeps only digests of client secrets, so the demo's client credentials are
also written, once, to ``demo-credentials.json`` in the data directory (readable by its
owner only): `neurogate demo` prints them every time it starts, and `neurogate demo
credentials` prints them on their own. The demo refuses production, where no secret is
ever written to a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlmodel import Session, select

from neurogate.consent import consents, registry
from neurogate.consent.access import Principal
from neurogate.consent.accounts import create_account
from neurogate.consent.models import Account, App, Device, Subject, utcnow
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
from neurogate.gateway._demo_credentials import (
    CREDENTIALS_FILE,
    load_credentials,
    save_credentials,
)
from neurogate.gateway.state import Gateway

DEMO_PASSWORD = "demo-password"
DEMO_RATE = 250.0
CAP_CHANNELS = ["Fp1", "Fp2", "C3", "C4", "P3", "P4", "O1", "O2"]
BAND_CHANNELS = ["AF7", "AF8", "TP9", "TP10"]
APP_NAMES = {"clinic": "Ward EEG Monitor", "focus": "FocusQuest Neurofeedback",
             "adlab": "AdLab Neuromarketing"}
DEVICE_SERIALS = {"cap": "ACME-0001", "band": "ACME-0002"}
SUBJECT_NAMES = {"alex": "Alex Adult", "mia": "Mia Child"}


@dataclass
class DemoWorld:
    """Ids and credentials of what the demo created."""

    accounts: dict[str, str] = field(default_factory=dict)  # username -> role
    subjects: dict[str, str] = field(default_factory=dict)  # label -> subject id
    apps: dict[str, str] = field(default_factory=dict)  # label -> app id
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (id, secret)
    consents: dict[str, str] = field(default_factory=dict)  # label -> consent id
    devices: dict[str, str] = field(default_factory=dict)  # label -> device id
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
            return load_world(session, gateway.settings.data_dir)
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
            display_name=SUBJECT_NAMES["alex"], date_of_birth=_years_ago(34, 3),
            preferred_language="en"))
        child = registry.create_subject(session=session, principal=clinician, request=SubjectCreate(
            display_name=SUBJECT_NAMES["mia"], date_of_birth=_years_ago(10, 5),
            preferred_language="zh-Hans"))
        registry.link_guardian(session=session, principal=clinician, subject_id=child.id,
                               request=GuardianLinkCreate(guardian_username="parent.chen"))
        for label, subject in (("alex", adult), ("mia", child)):
            registry.create_subject_account(
                session=session, principal=clinician, subject_id=subject.id,
                request=SubjectAccountCreate(username=label, password=DEMO_PASSWORD))
        apps = {}
        for label, commercial, purposes in [
            ("clinic", False, ["clinical_monitoring"]),
            ("focus", True, ["neurofeedback"]),
            ("adlab", True, ["neuromarketing"]),
        ]:
            name = APP_NAMES[label]
            app, client_id, secret = registry.create_app(
                session=session, principal=owner,
                request=AppCreate(name=name, commercial=commercial, declared_purposes=purposes))
            apps[label] = app
            world.credentials[label] = (client_id, secret)
        admin = _principal(made["admin"])
        registry.update_app(session=session, principal=admin, app_id=apps["focus"].id,
                            request=AppUpdate(cria_status="approved"))
        vendor = _principal(made["acme.devices"])
        for label, model, names, subject in [
            ("cap", "Acme Cap 8", CAP_CHANNELS, adult),
            ("band", "Acme Band 4", BAND_CHANNELS, child),
        ]:
            serial = DEVICE_SERIALS[label]
            device, client_id, secret = registry.create_device(
                session=session, principal=vendor,
                request=DeviceCreate(model=model, serial=serial, channel_names=names,
                                     channel_types=["eeg"] * len(names),
                                     sampling_rate=DEMO_RATE))
            registry.pair_device(session=session, ledger=gateway.ledger, principal=clinician,
                                 device_id=device.id, subject_id=subject.id)
            world.credentials[label] = (client_id, secret)
            world.devices[label] = device.id
        consent, _ = consents.grant_consent(
            session=session, ledger=gateway.ledger, principal=clinician,
            request=ConsentCreate(subject_id=adult.id, app_id=apps["clinic"].id,
                                  purpose_id="clinical_monitoring",
                                  notice=_notice("clinical_monitoring")))
        world.consents["alex-clinic"] = consent.id
        consent, _ = consents.grant_consent(
            session=session, ledger=gateway.ledger, principal=_principal(made["parent.chen"]),
            request=ConsentCreate(subject_id=child.id, app_id=apps["focus"].id,
                                  purpose_id="neurofeedback", products=["focus_index"],
                                  notice=_notice("neurofeedback", "zh-Hans", "plain")))
        world.consents["mia-focus"] = consent.id
        mia = session.exec(select(Account).where(Account.username == "mia")).one()
        consents.record_assent(session=session, ledger=gateway.ledger, principal=_principal(mia),
                               consent_id=consent.id, assent="given")
        # Mia's parent installed AdLab on the family tablet: the app may ask, the policy
        # decides.
        consents.connect_app(session=session, principal=_principal(made["parent.chen"]),
                             subject_id=child.id, app_id=apps["adlab"].id)
        world.subjects = {"alex": adult.id, "mia": child.id}
        world.apps = {label: app.id for label, app in apps.items()}
        world.accounts = {a.username: a.role for a in session.exec(select(Account)).all()}
        world.created = True
    save_credentials(gateway.settings.data_dir, world.credentials)
    return world


def load_world(session: Session, data_dir: Path | None = None) -> DemoWorld:
    """Find the demo's objects in an already seeded database (and the client
    credentials kept beside it in ``data_dir``)."""
    world = DemoWorld()
    if data_dir is not None:
        world.credentials = load_credentials(data_dir)
    world.accounts = {a.username: a.role for a in session.exec(select(Account)).all()}
    for label, name in APP_NAMES.items():
        app = session.exec(select(App).where(App.name == name)).first()
        if app is not None:
            world.apps[label] = app.id
    for label, serial in DEVICE_SERIALS.items():
        device = session.exec(select(Device).where(Device.serial == serial)).first()
        if device is not None:
            world.devices[label] = device.id
    for label, name in SUBJECT_NAMES.items():
        subject = session.exec(select(Subject).where(Subject.display_name == name)).first()
        if subject is not None:
            world.subjects[label] = subject.id
    return world


__all__ = ["CREDENTIALS_FILE", "DEMO_PASSWORD", "DemoWorld", "load_credentials", "load_world",
           "seed"]
