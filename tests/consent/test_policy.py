"""Tests for the policy decision point (neurogate.consent.policy and policies/*.cedar)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any, cast

import cedarpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurogate.consent import jurisdictions, policy
from neurogate.consent.jurisdictions import add_months, age_on, get_profile, parse_profiles
from neurogate.consent.policy import (
    AppFacts,
    ConsentFacts,
    Decision,
    SubjectFacts,
    decide,
    decide_products,
    explain,
    policy_ids,
    reason_ids,
    reason_source,
)
from neurogate.consent.purposes import PRODUCTS, load_catalog
from neurogate.errors import NeurogateError, ValidationError

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
START = NOW - timedelta(days=1)
PERMIT = "consent.active-covers-product"


CT_START = datetime(2026, 7, 1, tzinfo=UTC)  # Connecticut's teen rule applies from here
CT_EVE = CT_START - timedelta(seconds=1)


def born(age: int, days_later: int = 0, today: date = TODAY) -> date:
    """Birth date of someone whose ``age``-th birthday is ``today``, moved ``days_later`` days."""
    return date(today.year - age, today.month, today.day) + timedelta(days=days_later)


@dataclass(frozen=True)
class Case:
    """One row of the policy table; consents are overrides of a sensible default, oldest first."""

    age: int = 30
    days_later: int = 0
    jurisdiction: str = "CRC"
    lacks_capacity: bool = False
    purpose: str = "neurofeedback"
    product: str = "focus_index"
    commercial: bool = False
    cria: str = "none"
    suspended: bool = False
    declared: tuple[str, ...] | None = None
    context: str = "home"
    now: datetime = NOW
    consents: tuple[dict[str, Any], ...] = ({},)
    expect: tuple[str, ...] = (PERMIT,)
    subject: SubjectFacts = field(init=False)

    def __post_init__(self) -> None:
        dob = born(self.age, self.days_later, self.now.date())
        facts = SubjectFacts(dob, self.jurisdiction, self.lacks_capacity)
        object.__setattr__(self, "subject", facts)


def consent_for(case: Case, index: int, **overrides: Any) -> ConsentFacts:
    """A consent that passes every rule unless ``overrides`` say otherwise."""
    profile = get_profile(case.jurisdiction)
    age = age_on(case.subject.date_of_birth, case.now.date())
    granted_at = case.now - timedelta(days=30 - index)
    values: dict[str, Any] = {
        "consent_id": f"c{index}",
        "purpose_id": case.purpose,
        "products": tuple(load_catalog().get(case.purpose).products),
        "granted_capacity": "guardian" if profile.is_minor(age) else "self",
        "granted_at": granted_at,
        "valid_from": granted_at,
        "valid_until": case.now + timedelta(days=180),
        "assent": "given" if profile.assent_required(age) else "not_required",
    }
    values.update(overrides)
    return ConsentFacts(**values)


def run(case: Case) -> Decision:
    """Decide ``case`` at NOW."""
    app = AppFacts(
        app_id="app-1",
        commercial=case.commercial,
        declared_purposes=case.declared or (case.purpose,),
        cria_status=case.cria,
        suspended=case.suspended,
        deployment_context=case.context,
    )
    consents = [consent_for(case, i, **c) for i, c in enumerate(case.consents)]
    return decide(
        subject=case.subject, app=app, purpose_id=case.purpose, product=case.product,
        consents=consents, now=case.now,
    )


def months(n: int) -> dict[str, Any]:
    """Consent overrides for a consent lasting ``n`` calendar months from START."""
    return {"granted_at": START, "valid_from": START, "valid_until": add_months(START, n)}


CHILD: dict[str, Any] = {"age": 10}
COMMERCIAL_OK: dict[str, Any] = {"commercial": True, "cria": "approved"}
CLINICAL_RAW: dict[str, Any] = {"purpose": "clinical_monitoring", "product": "raw"}
RESEARCH: dict[str, Any] = {"purpose": "research_noncommercial", "product": "band_power"}
MOOD: dict[str, Any] = {"purpose": "mood_tracking", "product": "relaxation_index"}
NEUROMARKETING: dict[str, Any] = {"purpose": "neuromarketing", "product": "band_power",
                                  **COMMERCIAL_OK}
SHARING: dict[str, Any] = {"purpose": "partner_data_sharing", "product": "band_power",
                           **COMMERCIAL_OK}
ART8 = "eu.gdpr-art8-guardian-below-digital-consent-age"
ART9 = "eu.gdpr-art9-explicit-consent-to-current-notice"
AI_ACT = "eu.ai-act-no-emotion-inference-at-work-or-school"
CT = "us.ct-no-sale-or-ads-for-teens"
SELF: dict[str, Any] = {"granted_capacity": "self"}
NOTICE = load_catalog().get("neurofeedback").notice_version  # the current notice version
P = pytest.param

POLICY_TABLE = [
    # -- adults and the consent's own state
    P(Case(), id="adult-self-consent-allowed"),
    P(Case(consents=(), expect=("default-deny",)), id="no-consent-default-deny"),
    P(Case(consents=({"status": "expired"},), expect=("consent.expired",)), id="status-expired"),
    P(Case(consents=({"valid_from": NOW - timedelta(days=200), "valid_until": NOW},),
           expect=("consent.expired",)), id="valid-until-reached-now"),
    P(Case(consents=({"valid_from": NOW + timedelta(days=1)},),
           expect=("consent.not-yet-valid",)), id="not-yet-valid"),
    P(Case(consents=({"status": "revoked"},), expect=("consent.revoked",)), id="revoked"),
    P(Case(consents=({"status": "revoked"}, {})), id="revoked-then-granted-again-allowed"),
    P(Case(consents=({}, {"status": "revoked"}), expect=("consent.revoked",)),
      id="granted-then-revoked"),
    P(Case(consents=(months(24),)), id="crc-lifetime-24-months-allowed"),
    P(Case(consents=(months(25),), expect=("consent.lifetime-exceeds-profile",)),
      id="crc-lifetime-25-months-refused"),
    P(Case(consents=(months(13),)), id="crc-lifetime-13-months-allowed"),
    P(Case(jurisdiction="US-CA", consents=(months(13),),
           expect=("consent.lifetime-exceeds-profile",)), id="us-ca-lifetime-13-months-refused"),
    P(Case(jurisdiction="US-CA", consents=(months(12),)), id="us-ca-lifetime-12-months-allowed"),
    # -- purpose and app
    P(Case(declared=("sleep_wellness",), expect=("purpose.not-declared-by-app",)),
      id="purpose-not-declared-by-app"),
    P(Case(product="relaxation_index", consents=({"products": ("focus_index",)},),
           expect=("purpose.product-outside-consent",)), id="product-outside-consent-scope"),
    P(Case(product="raw",
           expect=("purpose.product-not-in-purpose", "purpose.product-outside-consent")),
      id="product-not-in-purpose"),
    P(Case(suspended=True, expect=("purpose.app-suspended",)), id="app-suspended"),
    P(Case(purpose="neuromarketing", product="band_power", commercial=True),
      id="adult-neuromarketing-allowed-without-cria"),
    P(Case(purpose="commercial_model_training", product="band_power", commercial=True),
      id="adult-commercial-model-training-allowed"),
    P(Case(consents=({"granted_capacity": "guardian"},),
           expect=("child.guardian-consent-ends-at-majority",)), id="adult-guardian-consent"),
    P(Case(consents=({"granted_capacity": "legal_representative"},),
           expect=("capacity.self-consent-required",)), id="adult-with-capacity-represented"),
    # -- lack of capacity
    P(Case(lacks_capacity=True, **CLINICAL_RAW,
           consents=({"granted_capacity": "legal_representative"},)),
      id="lacks-capacity-therapeutic-legal-representative-allowed"),
    P(Case(lacks_capacity=True, consents=({"granted_capacity": "legal_representative"},),
           expect=("capacity.therapeutic-only",)), id="lacks-capacity-non-therapeutic"),
    P(Case(lacks_capacity=True, **CLINICAL_RAW,
           expect=("capacity.legal-representative-required",)), id="lacks-capacity-self-consent"),
    P(Case(lacks_capacity=True, expect=("capacity.legal-representative-required",
                                         "capacity.therapeutic-only")),
      id="lacks-capacity-self-consent-non-therapeutic"),
    P(Case(age=10, lacks_capacity=True, **CLINICAL_RAW),
      id="minor-lacking-capacity-guardian-therapeutic-allowed"),
    # -- children: ages, guardians and assent
    P(Case(age=6), id="age-6-guardian-no-assent-needed"),
    P(Case(age=6, consents=({"assent": "dissent"},),
           expect=("child.dissent-blocks-non-therapeutic",)), id="age-6-dissent-respected"),
    P(Case(age=7, consents=({"assent": "pending"},), expect=("child.assent-required",)),
      id="age-7-assent-pending"),
    P(Case(age=7, consents=({"assent": "not_required"},), expect=("child.assent-required",)),
      id="age-7-assent-not-recorded"),
    P(Case(age=7, consents=({"assent": "given"},)), id="age-7-assent-given"),
    P(Case(age=12, consents=({"assent": "dissent"},),
           expect=("child.dissent-blocks-non-therapeutic",)), id="age-12-dissent-non-therapeutic"),
    P(Case(age=12, **CLINICAL_RAW, consents=({"assent": "dissent"},)),
      id="age-12-dissent-therapeutic-allowed"),
    P(Case(age=17, consents=({"granted_capacity": "self"},),
           expect=("child.guardian-consent-required",)), id="age-17-self-consent"),
    P(Case(age=10, consents=({"granted_capacity": "legal_representative"},)),
      id="minor-legal-representative-allowed"),
    P(Case(age=18, days_later=1), id="18th-birthday-tomorrow-guardian-allowed"),
    P(Case(age=18, days_later=1, consents=({"granted_capacity": "self"},),
           expect=("child.guardian-consent-required",)), id="18th-birthday-tomorrow-self"),
    P(Case(age=18, consents=({"granted_capacity": "guardian"},),
           expect=("child.guardian-consent-ends-at-majority",)), id="18th-birthday-today-guardian"),
    P(Case(age=18), id="18th-birthday-today-self-allowed"),
    P(Case(age=18, days_later=-1, consents=({"granted_capacity": "guardian"},),
           expect=("child.guardian-consent-ends-at-majority",)),
      id="18th-birthday-yesterday-guardian"),
    P(Case(age=18, days_later=-1), id="18th-birthday-yesterday-self-allowed"),
    # -- children: forbidden purposes, whatever the consent
    P(Case(**CHILD, **COMMERCIAL_OK, purpose="neuromarketing", product="band_power",
           expect=("child.no-emotion-inference", "child.no-marketing")), id="child-neuromarketing"),
    P(Case(**CHILD, purpose="mood_tracking", product="relaxation_index",
           expect=("child.no-emotion-inference",)), id="child-emotion-inference"),
    P(Case(**CHILD, **COMMERCIAL_OK, purpose="partner_data_sharing", product="band_power",
           expect=("child.no-sale-or-sharing",)), id="child-sale-or-sharing"),
    P(Case(**CHILD, **COMMERCIAL_OK, purpose="commercial_model_training", product="band_power",
           expect=("child.no-commercial-model-training",)), id="child-commercial-model-training"),
    P(Case(**CHILD, purpose="commercial_model_training", product="band_power",
           expect=("child.no-commercial-model-training",)),
      id="child-commercial-purpose-model-training-noncommercial-app"),
    P(Case(**CHILD, **COMMERCIAL_OK, purpose="neuromarketing", product="band_power", consents=(),
           expect=("child.no-emotion-inference", "child.no-marketing")),
      id="child-forbidden-purpose-without-consent"),
    # -- children: raw and filtered EEG
    P(Case(**CHILD, purpose="research_noncommercial", product="filtered",
           expect=("child.raw-eeg-therapeutic-only",)), id="child-filtered-non-therapeutic"),
    P(Case(**CHILD, purpose="sleep_wellness", product="raw", consents=({"products": ("raw",)},),
           expect=("child.raw-eeg-therapeutic-only", "purpose.product-not-in-purpose")),
      id="child-raw-non-therapeutic"),
    P(Case(**CHILD, **CLINICAL_RAW), id="child-raw-therapeutic-allowed"),
    P(Case(**CHILD, purpose="clinical_monitoring", product="filtered"),
      id="child-filtered-therapeutic-allowed"),
    P(Case(**CHILD, **RESEARCH), id="child-research-band-power-allowed"),
    # -- children: commercial apps and the child-rights impact assessment
    P(Case(**CHILD, commercial=True, expect=("child.commercial-app-needs-cria",)),
      id="child-commercial-app-no-cria"),
    P(Case(**CHILD, commercial=True, cria="submitted", expect=("child.commercial-app-needs-cria",)),
      id="child-commercial-app-cria-submitted"),
    P(Case(**CHILD, **COMMERCIAL_OK), id="child-commercial-app-cria-approved-allowed"),
    P(Case(commercial=True, **CLINICAL_RAW, age=10,
           expect=("child.commercial-app-needs-cria",)), id="child-commercial-clinic-no-cria"),
    # -- jurisdiction profiles differ
    P(Case(age=10, consents=({"assent": "pending"},), expect=("child.assent-required",)),
      id="crc-age-10-assent-pending"),
    P(Case(age=10, jurisdiction="US-CO", consents=({"assent": "pending"},)),
      id="us-co-age-10-assent-not-yet-required"),
    P(Case(age=12, jurisdiction="US-CO", consents=({"assent": "pending"},),
           expect=("child.assent-required",)), id="us-co-age-12-assent-pending"),
    P(Case(**CHILD, **RESEARCH, jurisdiction="US-MT", expect=("child.profile-forbidden-purpose",)),
      id="us-mt-child-research-forbidden"),
    P(Case(**RESEARCH, jurisdiction="US-MT"), id="us-mt-adult-research-allowed"),
    P(Case(**CHILD, **RESEARCH, jurisdiction="US-CA"), id="us-ca-child-research-allowed"),
    # -- GDPR Art. 8: each EU profile at its digital consent age, on the birthday and the day
    # before it (a minor from that age consents for themself; below it a guardian does)
    *[P(Case(age=age, days_later=later, jurisdiction=code, consents=(SELF,),
             expect=(PERMIT,) if later == 0 else (ART8,)),
        id=f"{code.lower()}-age-{age}-birthday-{'today' if later == 0 else 'tomorrow'}-self")
      for code, age in (("EU", 16), ("EU-DE", 16), ("EU-FR", 15), ("EU-ES", 14))
      for later in (0, 1)],
    *[P(Case(age=age, days_later=1, jurisdiction=code),
        id=f"{code.lower()}-age-{age - 1}-guardian")
      for code, age in (("EU", 16), ("EU-DE", 16), ("EU-FR", 15), ("EU-ES", 14))],
    P(Case(age=17, jurisdiction="EU-FR"), id="eu-fr-age-17-guardian-still-allowed"),
    P(Case(age=10, jurisdiction="EU", consents=({"granted_capacity": "self"},), expect=(ART8,)),
      id="eu-age-10-self-refused-by-gdpr-not-crc-rule"),
    P(Case(age=15, jurisdiction="EU-FR", purpose="mood_tracking", product="relaxation_index",
           consents=({"granted_capacity": "self"},), expect=("child.no-emotion-inference",)),
      id="eu-fr-age-15-self-child-rules-still-apply"),
    P(Case(age=16, jurisdiction="CRC", consents=({"granted_capacity": "self"},),
           expect=("child.guardian-consent-required",)), id="crc-age-16-self-refused"),
    P(Case(age=16, jurisdiction="EU-DE", consents=({**SELF, "assent": "pending"},)),
      id="eu-de-age-16-self-needs-no-separate-assent"),
    P(Case(age=18, jurisdiction="EU", consents=({"granted_capacity": "guardian"},),
           expect=("child.guardian-consent-ends-at-majority",)), id="eu-18th-birthday-guardian"),
    # -- GDPR Art. 9: explicit consent to the notice as it now stands
    P(Case(jurisdiction="EU", consents=({"notice_version": NOTICE},)),
      id="eu-notice-current-allowed"),
    P(Case(jurisdiction="EU-ES", consents=({"notice_version": NOTICE + 1},), expect=(ART9,)),
      id="eu-es-notice-version-differs"),
    P(Case(consents=({"notice_version": NOTICE + 1},)), id="crc-notice-version-differs-allowed"),
    # -- EU AI Act Art. 5(1)(f): emotion inference by deployment context
    *[P(Case(jurisdiction="EU", context=ctx, **MOOD,
             expect=(AI_ACT,) if ctx in ("education", "workplace") else (PERMIT,)),
        id=f"eu-mood-tracking-{ctx}")
      for ctx in ("clinical", "home", "education", "workplace", "research")],
    *[P(Case(jurisdiction="EU-DE", context=ctx, purpose="clinical_mood_assessment",
             product="relaxation_index"), id=f"eu-de-clinical-mood-{ctx}-medical-exception")
      for ctx in ("clinical", "education", "workplace")],
    P(Case(jurisdiction="CRC", context="workplace", **MOOD), id="crc-mood-tracking-workplace"),
    P(Case(jurisdiction="EU-FR", context="education", purpose="neuromarketing",
           product="band_power", commercial=True, expect=(AI_ACT,)),
      id="eu-fr-neuromarketing-education"),
    P(Case(age=10, jurisdiction="EU", context="education", purpose="clinical_mood_assessment",
           product="relaxation_index", expect=("child.no-emotion-inference",)),
      id="eu-child-clinical-mood-education"),
    # -- US-CT: no sale or targeted advertising for ages 13-17 from 2026-07-01
    *[P(Case(age=age, now=now, jurisdiction="US-CT", **NEUROMARKETING,
             expect=(PERMIT,) if age >= 18 else tuple(sorted(
                 ("child.no-emotion-inference", "child.no-marketing")
                 + ((CT,) if now >= CT_START and 13 <= age <= 17 else ())))),
        id=f"us-ct-age-{age}-neuromarketing-{'from' if now >= CT_START else 'before'}-2026-07-01")
      for age in (12, 13, 17, 18) for now in (CT_EVE, CT_START)],
    P(Case(age=18, days_later=1, now=CT_START, jurisdiction="US-CT", **NEUROMARKETING,
           expect=("child.no-emotion-inference", "child.no-marketing", CT)),
      id="us-ct-18th-birthday-tomorrow-neuromarketing"),
    P(Case(age=13, now=CT_START, jurisdiction="US-CT", **SHARING,
           expect=("child.no-sale-or-sharing", CT)), id="us-ct-age-13-partner-sharing"),
    P(Case(age=13, now=CT_EVE, jurisdiction="US-CT", **SHARING,
           expect=("child.no-sale-or-sharing",)), id="us-ct-age-13-partner-sharing-before"),
    P(Case(age=13, now=CT_START, jurisdiction="US-CT"), id="us-ct-age-13-neurofeedback-allowed"),
    P(Case(age=13, now=CT_START, **SHARING, expect=("child.no-sale-or-sharing",)),
      id="crc-age-13-partner-sharing-no-ct-rule"),
    # -- US-MT: a separate consent for each third party and each secondary use
    P(Case(jurisdiction="US-MT", **SHARING, consents=(),
           expect=("us.mt-third-party-needs-own-consent",)),
      id="us-mt-partner-sharing-without-own-consent"),
    P(Case(jurisdiction="US-MT", **SHARING), id="us-mt-partner-sharing-with-own-consent"),
    P(Case(jurisdiction="US-MT", **SHARING, consents=({"status": "revoked"},),
           expect=("consent.revoked",)), id="us-mt-partner-sharing-consent-revoked"),
    P(Case(**SHARING, consents=(), expect=("default-deny",)),
      id="crc-partner-sharing-without-consent"),
    P(Case(jurisdiction="US-MT", **RESEARCH, consents=(),
           expect=("us.mt-secondary-use-needs-own-consent",)),
      id="us-mt-research-without-own-consent"),
    P(Case(jurisdiction="US-MT", purpose="commercial_model_training", product="band_power",
           commercial=True, consents=(), expect=("us.mt-secondary-use-needs-own-consent",)),
      id="us-mt-model-training-without-own-consent"),
    P(Case(jurisdiction="US-MT", consents=(), expect=("default-deny",)),
      id="us-mt-primary-use-without-consent-default-deny"),
    # -- UNESCO (2025): restricted purposes, for adults and children
    *[P(Case(**COMMERCIAL_OK, purpose=purpose, product="band_power",
             expect=("unesco.restricted-purpose-refused",)), id=f"adult-{purpose}")
      for purpose in ("political_marketing", "insurance_pricing", "employment_screening")],
    *[P(Case(**CHILD, **COMMERCIAL_OK, purpose=purpose, product="band_power",
             expect=tuple(sorted(("unesco.restricted-purpose-never-for-children",
                                  "unesco.restricted-purpose-refused", *extra)))),
        id=f"child-{purpose}")
      for purpose, extra in (("political_marketing", ("child.no-marketing",)),
                             ("insurance_pricing", ()), ("employment_screening", ()))],
    P(Case(jurisdiction="EU", **COMMERCIAL_OK, purpose="employment_screening",
           product="band_power", consents=(), expect=("unesco.restricted-purpose-refused",)),
      id="eu-adult-employment-screening-without-consent"),
    # -- US-CA and Chile: neural data sensitive; the decision rules are the default ones
    P(Case(jurisdiction="CL"), id="cl-adult-neurofeedback-allowed"),
    P(Case(**CHILD, **RESEARCH, jurisdiction="CL"), id="cl-child-research-allowed"),
    P(Case(**CHILD, jurisdiction="CL", purpose="mood_tracking", product="relaxation_index",
           expect=("child.no-emotion-inference",)), id="cl-child-emotion-inference"),
]


@pytest.mark.parametrize("case", POLICY_TABLE)
def test_decide_policy_table(case: Case) -> None:
    """Each row is allowed or denied for exactly the expected reasons."""
    decision = run(case)
    assert decision.allowed == (case.expect == (PERMIT,))
    assert decision.reasons == case.expect
    assert (decision.constraints is not None) == decision.allowed


@pytest.mark.parametrize("case", POLICY_TABLE)
def test_deciding_every_product_at_once_matches_deciding_each_alone(case: Case) -> None:
    """The stream path decides all of a purpose's products in one Cedar batch; each
    decision equals the one-product decision of the same facts."""
    app = AppFacts(app_id="app-1", commercial=case.commercial,
                   declared_purposes=case.declared or (case.purpose,), cria_status=case.cria,
                   suspended=case.suspended, deployment_context=case.context)
    consents = [consent_for(case, i, **c) for i, c in enumerate(case.consents)]
    products = list(load_catalog().get(case.purpose).products)
    together = decide_products(subject=case.subject, app=app, purpose_id=case.purpose,
                               products=products, consents=consents, now=case.now)
    assert list(together) == products
    for product in products:
        alone = decide(subject=case.subject, app=app, purpose_id=case.purpose,
                       product=product, consents=consents, now=case.now)
        assert together[product] == alone, product


@pytest.mark.parametrize("case", POLICY_TABLE)
def test_every_request_conforms_to_the_schema_and_decides_the_same_validated(
        case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decisions skip Cedar's request validation for speed; each row's requests and
    entities pass it (no error) and are decided exactly as without it."""
    asked: list[tuple[str, list[str], policy.Facts]] = []
    evaluate = policy._evaluate

    def recording(app_id: str, products: Any, facts: policy.Facts) -> Any:
        asked.append((app_id, list(products), facts))
        return evaluate(app_id, products, facts)

    monkeypatch.setattr(policy, "_evaluate", recording)
    run(case)
    assert asked
    book = policy._book()
    for app_id, products, facts in asked:
        requests = policy.requests_for(app_id, products, facts.context)
        validated = cedarpy.is_authorized_batch(requests, book.policies, facts.entities,
                                                schema=book.schema)
        plain = cedarpy.is_authorized_batch(requests, book.policies, facts.entities)
        for product, checked, fast in zip(products, validated, plain, strict=True):
            assert not checked.diagnostics.errors, (product, checked.diagnostics.errors)
            assert checked.decision == fast.decision, product
            assert sorted(checked.diagnostics.reasons) == sorted(fast.diagnostics.reasons)


def test_the_schema_check_catches_facts_of_the_wrong_shape() -> None:
    """The check above can fail: an entity attribute of the wrong type is an error."""
    case = Case()
    facts = policy._facts(now=case.now, age=30, subject=case.subject,
                          profile=get_profile(case.subject.jurisdiction),
                          app=AppFacts("app-1", False, (case.purpose,)),
                          purpose=load_catalog().get(case.purpose), consent=None)
    subject = next(e for e in facts.entities if e["uid"]["type"] == "Subject")
    subject["attrs"]["age"] = "thirty"
    requests = policy.requests_for("app-1", ["filtered"], facts.context)
    book = policy._book()
    [checked] = cedarpy.is_authorized_batch(requests, book.policies, facts.entities,
                                            schema=book.schema)
    assert checked.decision == cedarpy.Decision.NoDecision
    assert "in attribute `age`" in " ".join(checked.diagnostics.errors)


def test_decide_table_is_large_and_unique() -> None:
    """The table holds at least 100 distinct cases and uses every policy id."""
    ids = [p.id for p in POLICY_TABLE]
    assert len(ids) >= 100
    assert len(set(ids)) == len(ids)
    used = {r for p in POLICY_TABLE for r in cast(Case, p.values[0]).expect}
    assert used == set(reason_ids()) - {"policy-error"}


def test_decide_uses_most_recently_granted_consent() -> None:
    """List order does not matter: the latest granted_at wins."""
    case = Case()
    newer = consent_for(case, 5)
    older = consent_for(case, 1, status="revoked")
    app = AppFacts("app-1", False, ("neurofeedback",))
    decision = decide(subject=case.subject, app=app, purpose_id="neurofeedback",
                      product="focus_index", consents=[newer, older], now=NOW)
    assert decision.allowed
    assert decision.consent_id == "c5"


def test_decide_constraints_for_child_drop_raw_products() -> None:
    """A child's research consent yields features only, until the 18th birthday."""
    case = Case(age=18, days_later=100, **RESEARCH)
    decision = run(case)
    assert decision.allowed
    assert decision.age == 17
    assert decision.profile == "CRC"
    assert decision.consent_id == "c0"
    constraints = decision.constraints
    assert constraints is not None
    assert constraints.products == ("band_power", "signal_quality")
    purpose = load_catalog().get("research_noncommercial")
    assert dict(constraints.resolution) == {
        "band_power": purpose.products["band_power"],
        "signal_quality": purpose.products["signal_quality"],
    }
    assert constraints.resolution["band_power"].channels == "electrodes"
    assert constraints.retention_days == 730
    birthday = TODAY + timedelta(days=100)  # the 18th birthday
    assert constraints.valid_until == datetime.combine(birthday, time(0), tzinfo=UTC)
    assert constraints.as_dict()["valid_until"] == f"{birthday.isoformat()}T00:00:00+00:00"


def test_decide_constraints_for_adult_keep_consent_scope() -> None:
    """An adult's clinical consent to two products yields exactly those two."""
    case = Case(**CLINICAL_RAW, consents=({"products": ("raw", "signal_quality")},))
    constraints = run(case).constraints
    assert constraints is not None
    assert constraints.products == ("raw", "signal_quality")
    assert constraints.resolution["raw"].output_rate_hz == 250.0
    assert constraints.retention_days == 30
    assert constraints.valid_until == NOW + timedelta(days=180)
    assert constraints.as_dict()["resolution"]["raw"] == {
        "window_s": 0.004, "output_rate_hz": 250.0, "channels": "electrodes",
    }


def test_decide_denial_carries_facts_not_constraints() -> None:
    """A denial names the consent, age and profile it rests on."""
    decision = run(Case(age=12, jurisdiction="US-CO", consents=({"status": "revoked"},),
                        expect=("consent.revoked",)))
    assert decision == Decision(False, ("consent.revoked",), None, "c0", 12, "US-CO")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"purpose_id": "mind_reading"},
         "Invalid value for the 'purpose_id' parameter. Allowed values are "
         "'clinical_monitoring', 'neurofeedback', 'sleep_wellness', 'research_noncommercial', "
         "'commercial_model_training', 'neuromarketing', 'mood_tracking', "
         "'partner_data_sharing', 'clinical_mood_assessment', 'political_marketing', "
         "'insurance_pricing', and 'employment_screening', but got 'mind_reading' instead."),
        ({"product": "p300"},
         "Invalid value for the 'product' parameter. Allowed values are 'raw', 'filtered', "
         "'band_power', 'focus_index', 'relaxation_index', and 'signal_quality', "
         "but got 'p300' instead."),
        ({"now": datetime(2026, 6, 15, 12)},
         "Invalid value for the 'now' parameter. It must be a timezone-aware datetime (UTC), "
         "but got datetime.datetime(2026, 6, 15, 12, 0) instead."),
        ({"subject": SubjectFacts(date(2010, 1, 1), "FR")},
         "Invalid value for the 'jurisdiction' parameter. Allowed values are 'CRC', 'US-CA', "
         "'US-CO', 'US-MT', 'US-CT', 'EU', 'EU-DE', 'EU-FR', 'EU-ES', and 'CL', "
         "but got 'FR' instead."),
        ({"consents": [consent_for(Case(purpose="sleep_wellness"), 0)]},
         "Invalid value for the 'consents[].purpose_id' parameter. The only allowed value is "
         "'neurofeedback', but got 'sleep_wellness' instead."),
        ({"app": AppFacts("app-1", True, ("neurofeedback",), cria_status="yes")},
         "Invalid value for the 'cria_status' parameter. Allowed values are 'none', "
         "'submitted', and 'approved', but got 'yes' instead."),
        ({"app": AppFacts("app-1", False, ("neurofeedback",), deployment_context="school")},
         "Invalid value for the 'deployment_context' parameter. Allowed values are 'clinical', "
         "'home', 'education', 'workplace', and 'research', but got 'school' instead."),
        ({"consents": [consent_for(Case(), 0, notice_version=0)]},
         "Invalid value for the 'consents[].notice_version' parameter. It must be a whole "
         "number from 1, but got 0 instead."),
    ],
    ids=["purpose", "product", "naive-now", "jurisdiction", "consent-purpose", "cria",
         "deployment-context", "notice-version"],
)
def test_decide_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    """Bad input raises ValidationError with the documented sentence."""
    arguments: dict[str, Any] = {
        "subject": SubjectFacts(date(1990, 1, 1)),
        "app": AppFacts("app-1", False, ("neurofeedback",)),
        "purpose_id": "neurofeedback",
        "product": "focus_index",
        "consents": [],
        "now": NOW,
        **kwargs,
    }
    with pytest.raises(ValidationError) as caught:
        decide(**arguments)
    assert caught.value.message == message


def test_decide_rejects_consent_ending_before_it_starts() -> None:
    """A consent whose window is empty is bad input, not a quiet denial."""
    with pytest.raises(ValidationError, match="'consents\\[\\].valid_until' parameter"):
        run(Case(consents=({"valid_until": NOW - timedelta(days=40)},)))


def test_decide_fails_closed_on_policy_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forbid that cannot be evaluated denies instead of letting the permit win."""
    broken = cedarpy.PolicySet.from_str(
        '@id("consent.active-covers-product") permit (principal, action, resource);\n'
        '@id("child.overflow") forbid (principal, action, resource)\n'
        "when { context.subject.age * 9223372036854775807 > 0 };"
    )
    book = policy._Book(policies=broken, schema=policy._book().schema, ids=("x",))
    monkeypatch.setattr(policy, "_book", lambda: book)
    decision = run(Case())
    assert decision.allowed is False
    assert decision.reasons == ("policy-error",)


def test_policy_ids_are_the_documented_reasons() -> None:
    """Every Cedar policy has a family-prefixed @id, and the set is the documented one."""
    families = {"consent", "purpose", "child", "capacity", "eu", "us", "unesco"}
    assert all(i.split(".", 1)[0] in families for i in policy_ids())
    assert set(policy_ids()) == {
        "consent.active-covers-product", "consent.revoked", "consent.expired",
        "consent.not-yet-valid", "consent.lifetime-exceeds-profile",
        "purpose.not-declared-by-app", "purpose.product-not-in-purpose",
        "purpose.product-outside-consent", "purpose.app-suspended",
        "child.guardian-consent-required", "child.assent-required",
        "child.dissent-blocks-non-therapeutic", "child.no-marketing",
        "child.no-emotion-inference", "child.no-sale-or-sharing",
        "child.no-commercial-model-training", "child.profile-forbidden-purpose",
        "child.raw-eeg-therapeutic-only", "child.commercial-app-needs-cria",
        "child.guardian-consent-ends-at-majority", "capacity.therapeutic-only",
        "capacity.legal-representative-required", "capacity.self-consent-required",
        "eu.gdpr-art8-guardian-below-digital-consent-age",
        "eu.gdpr-art9-explicit-consent-to-current-notice",
        "eu.ai-act-no-emotion-inference-at-work-or-school", "us.ct-no-sale-or-ads-for-teens",
        "us.mt-third-party-needs-own-consent", "us.mt-secondary-use-needs-own-consent",
        "unesco.restricted-purpose-refused", "unesco.restricted-purpose-never-for-children",
    }
    assert reason_ids()[-2:] == ("default-deny", "policy-error")


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", ["The child said no. Their no is respected: only care for their health may "
                "continue."]),
        ("zh-Hans", ["孩子说了不愿意。我们尊重孩子的决定：只有为孩子健康所做的治疗可以继续。"]),
        ("es", ["El niño o la niña dijo que no. Se respeta su decisión: solo puede seguir lo "
                "que es para cuidar su salud."]),
    ],
)
def test_explain_gives_a_sentence_per_reason(language: str, expected: list[str]) -> None:
    """explain() turns reason ids into plain sentences in each language."""
    decision = run(Case(age=9, consents=({"assent": "dissent"},),
                        expect=("child.dissent-blocks-non-therapeutic",)))
    assert explain(decision, language) == expected


@pytest.mark.parametrize("language", ["en", "zh-Hans", "es"])
def test_explain_covers_every_reason(language: str) -> None:
    """Every possible reason has its own non-empty sentence in every language."""
    decision = Decision(False, reason_ids(), None, None, 30, "CRC")
    sentences = explain(decision, language)
    assert len(sentences) == len(reason_ids())
    assert all(s.strip() for s in sentences)
    assert len(set(sentences)) == len(sentences)


@pytest.mark.parametrize(
    ("reason", "source"),
    [
        ("eu.gdpr-art8-guardian-below-digital-consent-age", "GDPR Art. 8(1), 2016"),
        ("eu.gdpr-art9-explicit-consent-to-current-notice", "GDPR Art. 9(2)(a), 2016"),
        ("eu.ai-act-no-emotion-inference-at-work-or-school", "EU AI Act Art. 5(1)(f), 2024"),
        ("us.ct-no-sale-or-ads-for-teens", "Connecticut SB 1295, 2025; in force 2026-07-01"),
        ("us.mt-third-party-needs-own-consent", "Montana SB 163, 2025"),
        ("us.mt-secondary-use-needs-own-consent", "Montana SB 163, 2025"),
        ("unesco.restricted-purpose-refused",
         "UNESCO Recommendation on the Ethics of Neurotechnology, 2025"),
        ("unesco.restricted-purpose-never-for-children",
         "UNESCO Recommendation on the Ethics of Neurotechnology, 2025"),
    ],
)
def test_explain_cites_the_law_of_each_law_derived_reason(reason: str, source: str) -> None:
    """A law-derived reason names its instrument, article and year in every language."""
    assert reason_source(reason) == source
    decision = Decision(False, (reason,), None, None, 30, "EU")
    english, chinese, spanish = (explain(decision, lang)[0] for lang in ("en", "zh-Hans", "es"))
    assert english.endswith(f" ({source})")
    assert spanish.endswith(f" ({source})")
    assert chinese.endswith(f"（{source}）")


def test_own_rules_cite_no_law() -> None:
    """Rules of NeuroGate's own design carry no source; every other family does."""
    for reason in reason_ids():
        own = reason.split(".", 1)[0] in ("consent", "purpose", "child", "capacity") or (
            "." not in reason)
        assert (reason_source(reason) is None) == own, reason


def test_ct_rule_explained_in_decision_with_its_date() -> None:
    """A 13-year-old in Connecticut on 2026-07-01 is refused sale with the law cited."""
    decision = run(Case(age=13, now=CT_START, jurisdiction="US-CT", **SHARING,
                        expect=("child.no-sale-or-sharing", CT)))
    assert decision.reasons == ("child.no-sale-or-sharing", CT)
    assert explain(decision, "en")[1] == (
        "The brain data of someone aged 13 to 17 are never sold or used for targeted "
        "advertising here, even with consent. (Connecticut SB 1295, 2025; in force 2026-07-01)"
    )


def test_profile_may_allow_restricted_purpose_for_adults_never_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A profile that allows insurance pricing lets an adult consent, never a child."""
    shipped = resources.files("neurogate.consent").joinpath("jurisdictions.toml").read_text(
        "utf-8")
    text = shipped.replace('[profile.CL]\n', '[profile.CL]\n'
                           'allowed_restricted_purposes = ["insurance_pricing"]\n', 1)
    profiles = parse_profiles(text)
    assert profiles["CL"].allowed_restricted_purposes == frozenset({"insurance_pricing"})
    monkeypatch.setattr(jurisdictions, "load_profiles", lambda: profiles)
    adult = run(Case(jurisdiction="CL", **COMMERCIAL_OK, purpose="insurance_pricing",
                     product="band_power"))
    assert adult.allowed
    child = run(Case(**CHILD, jurisdiction="CL", **COMMERCIAL_OK, purpose="insurance_pricing",
                     product="band_power"))
    assert child.reasons == ("unesco.restricted-purpose-never-for-children",)
    elsewhere = run(Case(jurisdiction="CRC", **COMMERCIAL_OK, purpose="insurance_pricing",
                         product="band_power"))
    assert elsewhere.reasons == ("unesco.restricted-purpose-refused",)


def test_explain_rejects_unknown_language() -> None:
    """An unsupported language names the supported ones."""
    decision = run(Case())
    with pytest.raises(ValidationError) as caught:
        explain(decision, "fr")
    assert caught.value.message == (
        "Invalid value for the 'language' parameter. Allowed values are 'en', 'zh-Hans', "
        "and 'es', but got 'fr' instead."
    )


@settings(max_examples=60, deadline=None)
@given(
    age=st.integers(min_value=0, max_value=17),
    purpose_id=st.sampled_from(load_catalog().ids()),
    product=st.sampled_from(PRODUCTS),
    capacity=st.sampled_from(policy.CAPACITIES),
    assent=st.sampled_from(policy.ASSENTS),
    commercial=st.booleans(),
)
def test_decide_child_raw_eeg_only_for_therapy(
    age: int, purpose_id: str, product: str, capacity: str, assent: str, commercial: bool
) -> None:
    """Whatever the consent, a child's raw or filtered EEG never reaches a non-therapeutic use."""
    case = Case(age=age, purpose=purpose_id, product=product, commercial=commercial,
                cria="approved", consents=({"granted_capacity": capacity, "assent": assent,
                                            "products": PRODUCTS},))
    decision = run(case)
    purpose = load_catalog().get(purpose_id)
    if product in ("raw", "filtered") and not purpose.flags.therapeutic:
        assert not decision.allowed
        assert "child.raw-eeg-therapeutic-only" in decision.reasons
    if decision.allowed:
        assert capacity in ("guardian", "legal_representative")
        assert not purpose.flags.as_set() & {"marketing", "emotion_inference", "sale_or_sharing"}


def test_consent_modules_do_not_import_web_or_signal_layers() -> None:
    """The consent modules load without FastAPI, Starlette, the gateway or the signal package."""
    code = (
        "import sys\n"
        "import neurogate.consent.policy, neurogate.consent.purposes\n"
        "import neurogate.consent.jurisdictions\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')\n"
        "             or m.startswith(('neurogate.gateway', 'neurogate.signal')))\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_policies_refuse_to_load_when_a_restricted_purpose_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restricted purpose missing from the catalog stops the policies from loading."""
    monkeypatch.setattr(policy, "restricted_purposes", lambda: ("mind_reading",))
    policy._book.cache_clear()
    try:
        with pytest.raises(NeurogateError, match="restricts purposes the catalog lacks"):
            policy._book()
    finally:
        monkeypatch.undo()
        policy._book.cache_clear()
    assert "unesco.restricted-purpose-refused" in policy_ids()
