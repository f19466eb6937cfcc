"""What the subject's pages show, assembled from the domain (no rule of its own here).

Each consent becomes a :class:`ConsentView`: the app, the purpose's notice title in the
reader's language, what the app receives in plain words (one phrase per product at the
purpose's resolution), since and until, who granted it, and whether the app is receiving
data right now (the stream hub's live subscriptions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from neurogate.consent import consents as consent_domain
from neurogate.consent.access import Principal
from neurogate.consent.jurisdictions import age_on, get_profile
from neurogate.consent.models import Account, App, AppPseudonym, Consent, Subject, utcnow
from neurogate.consent.policy import explain
from neurogate.consent.purposes import SAMPLE_PRODUCTS, Purpose, Resolution, load_catalog
from neurogate.gateway.portal.web import N_
from neurogate.gateway.streams import StreamHub

Gettext = Callable[..., str]

# What each product is, in the reader's words: (about yourself, about someone you care for).
PRODUCT_WORDS: dict[str, tuple[str, str]] = {
    "raw": (N_("your full brain-wave signal (raw EEG)"),
            N_("their full brain-wave signal (raw EEG)")),
    "filtered": (N_("your cleaned brain-wave signal (filtered EEG)"),
                 N_("their cleaned brain-wave signal (filtered EEG)")),
    "band_power": (N_("the strength of your brain-wave bands"),
                   N_("the strength of their brain-wave bands")),
    "focus_index": (N_("your focus level"), N_("their focus level")),
    "relaxation_index": (N_("your relaxation level"), N_("their relaxation level")),
    "signal_quality": (N_("how well each sensor touches your skin"),
                       N_("how well each sensor touches their skin")),
}
CHANNEL_WORDS = {
    "electrodes": N_("for each sensor"),
    "regions": N_("for each part of the head"),
    "global": N_("for the whole head"),
}
CAPACITY_WORDS = {
    "self": N_("in person"),
    "guardian": N_("as guardian"),
    "legal_representative": N_("as legal representative"),
}


def how_often(resolution: Resolution, gettext: Gettext, format_number: Callable[..., str]
              ) -> str:
    """"once per second", "250 times per second", "once every 2 seconds"."""
    rate = resolution.output_rate_hz
    if rate == 1:
        return gettext("once per second")
    if rate == 2:
        return gettext("twice per second")
    if rate > 1:
        return gettext("%(count)s times per second", count=format_number(rate, 0))
    return gettext("once every %(seconds)s seconds", seconds=format_number(1 / rate, 0))


def receives(products: Sequence[str], purpose: Purpose, *, own: bool, gettext: Gettext,
             format_number: Callable[..., str]) -> tuple[list[str], bool]:
    """Plain phrases of what is received, and whether the brain waves themselves are."""
    phrases = []
    for product in products:
        resolution = purpose.products[product]
        what = gettext(PRODUCT_WORDS[product][0 if own else 1])
        phrases.append(gettext("%(what)s, %(often)s, %(where)s", what=what,
                               often=how_often(resolution, gettext, format_number),
                               where=gettext(CHANNEL_WORDS[resolution.channels])))
    return phrases, any(p in SAMPLE_PRODUCTS for p in products)


@dataclass
class ConsentView:
    """One consent as the subject's pages show it."""

    id: str
    app_id: str
    app_name: str
    purpose_id: str
    purpose_title: str
    notice_text: str
    products: list[str]
    receives: list[str]
    brain_waves: bool
    status: str
    since: datetime
    until: datetime
    ended_at: datetime | None
    granted_by: str
    live: bool
    assent: str
    child_title: str = ""
    child_text: str = ""
    refused_because: list[str] = field(default_factory=list)


def is_live(hub: StreamHub, subject_id: str, app_id: str, purpose_id: str) -> bool:
    """Whether the app has an open subscription to the subject for the purpose now."""
    return any(s.open and s.app_id == app_id and s.purpose_id == purpose_id
               for s in hub.by_subject.get(subject_id, ()))


def _granted_by(session: Session, consent: Consent, viewer: Principal, gettext: Gettext) -> str:
    if consent.granted_by is not None and consent.granted_by == viewer.id:
        who = gettext("You")
    else:
        account = session.get(Account, consent.granted_by) if consent.granted_by else None
        who = account.username if account is not None else gettext("the subject")
    how = gettext(CAPACITY_WORDS.get(consent.granted_capacity, "in person"))
    if consent.recorded_by != consent.granted_by:
        recorder = session.get(Account, consent.recorded_by)
        if recorder is not None:
            return gettext("%(who)s (%(how)s), recorded by %(recorder)s", who=who, how=how,
                           recorder=recorder.username)
    return gettext("%(who)s (%(how)s)", who=who, how=how)


def consent_views(session: Session, *, viewer: Principal, subject_id: str, hub: StreamHub,
                  language: str, gettext: Gettext, format_number: Callable[..., str]
                  ) -> list[ConsentView]:
    """Every consent of the subject the viewer may see, newest first."""
    catalog = load_catalog()
    own = viewer.subject_id == subject_id
    views = []
    for consent in consent_domain.list_consents(session=session, principal=viewer,
                                                subject_id=subject_id):
        app = session.get(App, consent.app_id)
        purpose = catalog.get(consent.purpose_id)
        notice = purpose.notice(language, "plain")
        child = purpose.notice(language, "child")
        phrases, brain_waves = receives(consent.products, purpose, own=own, gettext=gettext,
                                        format_number=format_number)
        views.append(ConsentView(
            id=consent.id, app_id=consent.app_id, app_name=app.name if app else "?",
            purpose_id=purpose.id, purpose_title=notice.title, notice_text=notice.text,
            products=list(consent.products), receives=phrases, brain_waves=brain_waves,
            status=consent.status,
            since=consent.valid_from, until=consent.valid_until,
            ended_at=consent.revoked_at or consent.expired_at,
            granted_by=_granted_by(session, consent, viewer, gettext),
            live=consent.status == "active" and is_live(hub, subject_id, consent.app_id,
                                                         purpose.id),
            assent=consent.assent, child_title=child.title, child_text=child.text,
        ))
    return views


@dataclass
class Regrant:
    """An app and purpose the subject may let receive data again."""

    app_id: str
    app_name: str
    purpose_id: str
    purpose_title: str
    products: list[str]


def regrants(views: Sequence[ConsentView]) -> list[Regrant]:
    """Purposes that once had a consent and have no active one now."""
    active = {(v.app_id, v.purpose_id) for v in views if v.status == "active"}
    seen: dict[tuple[str, str], Regrant] = {}
    for v in views:
        key = (v.app_id, v.purpose_id)
        if key not in active and key not in seen:
            seen[key] = Regrant(app_id=v.app_id, app_name=v.app_name, purpose_id=v.purpose_id,
                                purpose_title=v.purpose_title, products=list(v.products))
    return list(seen.values())


@dataclass
class SubjectFacts:
    """Who a page is about: name, age and whether a child's own assent counts."""

    subject: Subject
    age: int | None
    minor: bool
    assent_age: int
    needs_assent: bool


def subject_facts(subject: Subject) -> SubjectFacts:
    """The subject's age and child status under their jurisdiction's profile, today."""
    profile = get_profile(subject.jurisdiction)
    age = age_on(subject.date_of_birth, utcnow().date()) if subject.date_of_birth else None
    minor = age is not None and profile.is_minor(age)
    return SubjectFacts(subject=subject, age=age, minor=minor, assent_age=profile.assent_age,
                        needs_assent=age is not None and profile.assent_required(age))


@dataclass
class Refusal:
    """An app that asked for a purpose, and the policy's answer in plain words."""

    app_name: str
    purpose_title: str
    reasons: list[str]


def refusals(session: Session, *, gateway_ledger: object, viewer: Principal, subject: Subject,
             language: str, variant: str = "child") -> list[Refusal]:
    """Every app connected to or consented by the subject whose purpose the policy refuses
    now, with the decision's reasons (a fresh decision, as POST /v1/decisions gives)."""
    catalog = load_catalog()
    # (app, purpose) -> the app and the products asked for: those of the newest consent,
    # or every product of the purpose for an app that was only connected.
    pairs: dict[tuple[str, str], tuple[App, list[str]]] = {}
    newest_first = select(Consent).where(Consent.subject_id == subject.id).order_by(
        col(Consent.granted_at).desc())
    for consent in session.exec(newest_first):
        app = session.get(App, consent.app_id)
        if app is not None:
            pairs.setdefault((app.id, consent.purpose_id), (app, list(consent.products)))
    connected = session.exec(
        select(App).join(AppPseudonym, col(AppPseudonym.app_id) == col(App.id))
        .where(AppPseudonym.subject_id == subject.id)
    ).all()
    for app in connected:
        for purpose_id in app.declared_purposes:
            products = list(catalog.get(purpose_id).products)
            pairs.setdefault((app.id, purpose_id), (app, products))
    found = []
    for (app_id, purpose_id), (app, products) in sorted(pairs.items(),
                                                        key=lambda kv: kv[1][0].name):
        purpose = catalog.get(purpose_id)
        decisions = [consent_domain.ask(session=session, ledger=gateway_ledger,  # type: ignore[arg-type]
                                        principal=viewer, app_id=app_id, subject=subject.id,
                                        purpose_id=purpose_id, product=product)
                     for product in products]
        if any(d.allowed for d in decisions):
            continue
        reasons: list[str] = []
        for decision in decisions:
            for text in explain(decision, language):
                if text not in reasons:
                    reasons.append(text)
        found.append(Refusal(app_name=app.name,
                             purpose_title=purpose.notice(language, variant).title,
                             reasons=reasons))
    return found


__all__ = [
    "ConsentView",
    "Refusal",
    "Regrant",
    "SubjectFacts",
    "consent_views",
    "how_often",
    "is_live",
    "receives",
    "refusals",
    "regrants",
    "subject_facts",
]
