"""Read-only summaries for people who look after others' consent: clinicians, admins, app owners.

An app owner sees how many consents each of its apps holds, per purpose and state, and
never whose they are. A clinician sees, for a patient in care, what the policy decides
right now for every app that knows the patient, with the reasons the decision names.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, func, select

from neurogate.consent import access
from neurogate.consent.access import CLINICIAN, GUARDIAN, SELF, Principal
from neurogate.consent.consents import evaluate_products
from neurogate.consent.models import App, AppPseudonym, Consent, Device
from neurogate.consent.policy import Decision
from neurogate.consent.purposes import load_catalog


@dataclass(frozen=True)
class ConsentCount:
    """How many consents an app holds for one purpose in one state."""

    purpose_id: str
    status: str
    count: int


@dataclass(frozen=True)
class CurrentDecision:
    """What the policy decides now for one app, purpose and product of one subject."""

    app: App
    purpose_id: str
    product: str
    decision: Decision


def consent_counts(*, session: Session, principal: Principal, app_id: str
                   ) -> list[ConsentCount]:
    """Counts of an app's consents by purpose and state (its owner or an administrator)."""
    app = access.get_app(session, principal, app_id, manage=True)
    rows = session.exec(
        select(Consent.purpose_id, Consent.status, func.count())
        .where(Consent.app_id == app.id)
        .group_by(col(Consent.purpose_id), col(Consent.status))
        .order_by(col(Consent.purpose_id), col(Consent.status))
    ).all()
    return [ConsentCount(purpose_id=p, status=s, count=int(n)) for p, s, n in rows]


def apps_of_subject(*, session: Session, principal: Principal, subject_id: str) -> list[App]:
    """The apps that know a subject (introduced, or holding a consent), oldest first."""
    subject = access.get_subject(session, principal, subject_id, (SELF, GUARDIAN, CLINICIAN))
    known = select(AppPseudonym.app_id).where(AppPseudonym.subject_id == subject.id)
    consented = select(Consent.app_id).where(Consent.subject_id == subject.id)
    rows = session.exec(
        select(App).where(col(App.id).in_(known) | col(App.id).in_(consented))
    ).all()
    return sorted(rows, key=lambda a: a.created_at)


def devices_of_subject(*, session: Session, principal: Principal, subject_id: str
                       ) -> list[Device]:
    """The devices paired with a subject (their own people and clinicians in care)."""
    subject = access.get_subject(session, principal, subject_id, (SELF, GUARDIAN, CLINICIAN))
    rows = session.exec(select(Device).where(Device.paired_subject_id == subject.id)).all()
    return sorted(rows, key=lambda d: d.created_at)


def current_decisions(*, session: Session, principal: Principal, subject_id: str
                      ) -> list[CurrentDecision]:
    """The policy's decision now for each app that knows the subject, for every product of
    every purpose the app declared."""
    subject = access.get_subject(session, principal, subject_id, (SELF, GUARDIAN, CLINICIAN))
    catalog = load_catalog()
    found = []
    for app in apps_of_subject(session=session, principal=principal, subject_id=subject.id):
        for purpose_id in app.declared_purposes:
            decisions = evaluate_products(session=session, subject=subject, app=app,
                                          purpose_id=purpose_id,
                                          products=list(catalog.get(purpose_id).products))
            found += [CurrentDecision(app=app, purpose_id=purpose_id, product=product,
                                      decision=decision)
                      for product, decision in decisions.items()]
    return found


__all__ = [
    "ConsentCount",
    "CurrentDecision",
    "apps_of_subject",
    "consent_counts",
    "current_decisions",
    "devices_of_subject",
]
