"""The stored decision path: ``evaluate_products`` reads only the latest consent and
decides exactly as the policy does over the subject's whole history with the app."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from neurogate.consent import consents
from neurogate.consent.access import Principal
from neurogate.consent.consents import (
    app_facts,
    consent_facts,
    evaluate_products,
    subject_facts,
)
from neurogate.consent.models import Account, App, Consent, Subject, utcnow
from neurogate.consent.policy import Decision, decide
from neurogate.consent.purposes import load_catalog
from neurogate.consent.schemas import ConsentCreate, NoticeShown
from neurogate.gateway.demo import DemoWorld, seed
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings

PURPOSE = "clinical_monitoring"


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Gateway, DemoWorld]:
    gateway = build_gateway(Settings(data_dir=tmp_path, environment="test",
                                     password_hash_time_cost=1, password_hash_memory_kib=1024))
    return gateway, seed(gateway)


def _clinician(session: Session) -> Principal:
    account = session.exec(select(Account).where(Account.role == "clinician")).first()
    assert account is not None
    return Principal(kind="account", id=account.id, role=account.role)


def _whole_history(session: Session, subject: Subject, app: App, now: datetime
                   ) -> dict[str, Decision]:
    """What the policy decides, product by product, given every consent ever recorded."""
    history = session.exec(select(Consent).where(
        Consent.subject_id == subject.id, Consent.app_id == app.id,
        Consent.purpose_id == PURPOSE)).all()
    return {product: decide(subject=subject_facts(subject), app=app_facts(app),
                            purpose_id=PURPOSE, product=product,
                            consents=[consent_facts(c) for c in history], now=now)
            for product in load_catalog().get(PURPOSE).products}


def test_the_latest_consent_decides_as_the_whole_history_does(
        demo: tuple[Gateway, DemoWorld]) -> None:
    gateway, world = demo
    notice = load_catalog().get(PURPOSE).notice("en", "plain")
    shown = NoticeShown(version=notice.version, language="en", variant="plain",
                        sha256=notice.sha256)
    products = list(load_catalog().get(PURPOSE).products)
    start = utcnow()  # after the demo's own consent, which is revoked first
    with gateway.transaction() as session:
        subject = session.get(Subject, world.subjects["alex"])
        app = session.get(App, world.apps["clinic"])
        assert subject is not None and app is not None
        clinician = _clinician(session)
        consents.revoke_consent(session=session, ledger=gateway.ledger, principal=clinician,
                                consent_id=world.consents["alex-clinic"])
        seen = []
        # Thirty grants and revocations, each grant naming another set of products; the
        # last one stays active. Two revoked ones share one instant.
        for day in range(30):
            when = start + timedelta(days=day - (day == 28), hours=1)
            request = ConsentCreate(subject_id=subject.id, app_id=app.id, purpose_id=PURPOSE,
                                    products=products[: 1 + day % len(products)], notice=shown)
            consent, _ = consents.grant_consent(session=session, ledger=gateway.ledger,
                                                principal=clinician, request=request, now=when)
            if day < 29:
                consents.revoke_consent(session=session, ledger=gateway.ledger,
                                        principal=clinician, consent_id=consent.id, now=when)
            if day in (0, 13, 28, 29):
                session.flush()
                at = when + timedelta(minutes=1)
                stored = evaluate_products(session=session, subject=subject, app=app,
                                           purpose_id=PURPOSE, products=products, now=at)
                assert stored == _whole_history(session, subject, app, at)
                seen.append(stored[products[0]].allowed)
    assert seen == [False, False, False, True]  # the revoked ones deny; the active last allows
