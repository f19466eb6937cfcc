"""The policy decision point: may this app receive this product of this subject, and why?

Python computes facts (age on the decision date, whether the subject is a minor under their
jurisdiction profile, whether assent is required, how long a consent lasts) and hands them
to Cedar as entities that the request context names (``context.subject``, ``.profile``,
``.app``, ``.purpose``, ``.consent``, beside ``context.now``); the rules themselves live
in ``policies/*.cedar``, one file per family, each policy named by an ``@id`` that becomes
the reason of a decision. Cedar denies by default and a matching ``forbid`` beats every ``permit``.

Fail closed: if Cedar reports any evaluation error (a forbid that errors is skipped by Cedar,
which could let a permit through), the decision is a denial with reason ``policy-error``.
"""

from __future__ import annotations

import functools
import json
import logging
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from importlib import resources
from types import MappingProxyType
from typing import Any, NoReturn

import cedarpy

from neurogate.consent.jurisdictions import (
    Profile,
    age_on,
    anniversary,
    get_profile,
    lifetime_months,
    restricted_purposes,
)
from neurogate.consent.purposes import (
    LANGUAGES,
    PRODUCTS,
    Purpose,
    Resolution,
    _check_option,
    load_catalog,
)
from neurogate.errors import NeurogateError, ValidationError

logger = logging.getLogger(__name__)

PERMIT = "consent.active-covers-product"
DEFAULT_DENY = "default-deny"
POLICY_ERROR = "policy-error"
CAPACITIES = ("self", "guardian", "legal_representative")
CONSENT_STATUSES = ("active", "revoked", "expired")
ASSENTS = ("not_required", "pending", "given", "dissent")
CRIA_STATUSES = ("none", "submitted", "approved")
# Where an app is used, declared when it is registered (EU AI Act Art. 5(1)(f) reads it).
DEPLOYMENT_CONTEXTS = ("clinical", "home", "education", "workplace", "research")

# The shape of every request; policies are validated against it when loaded, and each
# request is checked against it too (a context of the wrong shape is an error, not a miss).
# The facts are entities that the context refers to (policies read ``context.subject.age``
# all the same): Cedar converts a request's context once per request but the entities
# once per batch, so a decision over four products pays for the facts once, not four times.
_SCHEMA = """
entity Product;
entity App {
  commercial: Bool, suspended: Bool, cria_status: String, declared_purposes: Set<String>,
  deployment_context: String,
};
entity Subject { age: Long, is_minor: Bool, assent_required: Bool, lacks_capacity: Bool };
entity Profile {
  code: String,
  consent_lifetime_months: Long,
  extra_forbidden_for_minors: Set<String>,
  laws: Set<String>,
  self_consent_age: Long,
  teen_protection: { active: Bool, lowest: Long, highest: Long, since: datetime },
  allowed_restricted_purposes: Set<String>,
};
entity Purpose {
  id: String, flags: Set<String>, products: Set<Product>,
  therapeutic: Bool, commercial: Bool, marketing: Bool, emotion_inference: Bool,
  model_training: Bool, research: Bool, sale_or_sharing: Bool,
  restricted: Bool, notice_version: Long,
};
entity Consent {
  present: Bool, status: String, capacity: String, assent: String,
  products: Set<Product>, valid_from: datetime, valid_until: datetime,
  lifetime_months: Long, notice_version: Long,
};
action receive appliesTo {
  principal: [App],
  resource: [Product],
  context: { now: datetime, subject: Subject, profile: Profile, app: App, purpose: Purpose,
             consent: Consent },
};
"""


@dataclass(frozen=True)
class SubjectFacts:
    """What the policy needs to know of the person whose brain data would flow."""

    date_of_birth: date
    jurisdiction: str = "CRC"
    lacks_capacity: bool = False


@dataclass(frozen=True)
class AppFacts:
    """What the policy needs to know of the app that would receive the data."""

    app_id: str
    commercial: bool
    declared_purposes: tuple[str, ...]
    cria_status: str = "none"  # "none" | "submitted" | "approved"
    suspended: bool = False
    deployment_context: str = "home"  # one of DEPLOYMENT_CONTEXTS


@dataclass(frozen=True)
class ConsentFacts:
    """One consent of the subject to the app for the purpose."""

    consent_id: str
    purpose_id: str
    products: tuple[str, ...]
    granted_capacity: str  # "self" | "guardian" | "legal_representative"
    granted_at: datetime  # tz-aware
    valid_from: datetime
    valid_until: datetime
    status: str = "active"  # "active" | "revoked" | "expired"
    assent: str = "not_required"  # "not_required" | "pending" | "given" | "dissent"
    notice_version: int | None = None  # version of the notice shown; None: the current one


@dataclass(frozen=True)
class Constraints:
    """What an allowed flow may carry, and until when."""

    products: tuple[str, ...]  # every product this consent and purpose allow now
    resolution: Mapping[str, Resolution]  # per allowed product
    retention_days: int
    valid_until: datetime  # consent end, or the day of majority for a guardian's consent

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "products": list(self.products),
            "resolution": {p: r.as_dict() for p, r in self.resolution.items()},
            "retention_days": self.retention_days,
            "valid_until": self.valid_until.isoformat(),
        }


@dataclass(frozen=True)
class Decision:
    """The answer, its reasons (policy ``@id`` values) and, when allowed, its constraints."""

    allowed: bool
    reasons: tuple[str, ...]  # sorted; permits when allowed, forbids (or default-deny) if not
    constraints: Constraints | None
    consent_id: str | None  # the consent the decision rests on (None when there was none)
    age: int  # whole years on the decision date (UTC)
    profile: str  # jurisdiction profile code


# -- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Book:
    policies: cedarpy.PolicySet
    schema: cedarpy.Schema
    ids: tuple[str, ...]


def _broken(problem: str) -> NoReturn:
    msg = f"The Cedar policies cannot be loaded: {problem}"
    raise NeurogateError(msg)


@functools.cache
def _book() -> _Book:
    """Parse, check and index the policies once per process.

    Each policy is given its ``@id`` as its Cedar id, so Cedar's reasons are the ``@id``s.
    """
    folder = resources.files("neurogate.consent").joinpath("policies")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".cedar")), key=lambda f: f.name)
    schema = cedarpy.Schema.from_str(_SCHEMA)
    static: dict[str, Any] = {}
    texts = []
    for file in files:
        family, text = file.name.removesuffix(".cedar"), file.read_text(encoding="utf-8")
        texts.append(text)
        try:
            parsed = json.loads(cedarpy.policies_to_json_str(text))
        except ValueError as exc:
            msg = f"The Cedar policies cannot be loaded: {file.name} does not parse ({exc})."
            raise NeurogateError(msg) from exc
        if parsed["templates"]:
            _broken(f"{file.name} holds templates; only static policies are used.")
        for policy in parsed["staticPolicies"].values():
            ident = policy.get("annotations", {}).get("id")
            if not ident or not ident.startswith(f"{family}.") or ident in static:
                msg = f"every policy in {file.name} needs a unique @id starting with {family!r}."
                _broken(msg)
            static[ident] = policy
    checked = cedarpy.validate_policies("\n".join(texts), schema)
    if not checked.validation_passed:
        _broken("; ".join(str(e) for e in checked.errors))
    unknown = [p for p in restricted_purposes() if p not in load_catalog().purposes]
    if unknown:
        _broken(f"jurisdictions.toml restricts purposes the catalog lacks: {unknown}.")
    missing = [i for i in (*static, DEFAULT_DENY, POLICY_ERROR) if i not in _reason_texts()]
    if missing or PERMIT not in static:
        _broken(f"reasons.toml lacks {missing} or {PERMIT!r} is not defined.")
    document = {"staticPolicies": static, "templates": {}, "templateLinks": []}
    policies = cedarpy.PolicySet.from_json_str(json.dumps(document))
    return _Book(policies=policies, schema=schema, ids=tuple(static))


# Families whose rules come from the project's own design; every other family is derived
# from a law and its reasons carry a "source" (instrument, article and year).
_OWN_FAMILIES = ("consent", "purpose", "child", "capacity")


@functools.cache
def _reason_entries() -> Mapping[str, Mapping[str, str]]:
    text = resources.files("neurogate.consent").joinpath("reasons.toml").read_text("utf-8")
    data = tomllib.loads(text)
    for reason, entry in data.items():
        own = reason.split(".", 1)[0] in _OWN_FAMILIES or "." not in reason
        keys = set(LANGUAGES) if own else {*LANGUAGES, "source"}
        if not isinstance(entry, dict) or set(entry) != keys:
            msg = (f"reasons.toml: {reason!r} needs exactly one sentence per language "
                   f"{LANGUAGES}{'' if own else ' and a source'}.")
            _broken(msg)
    return MappingProxyType({k: MappingProxyType(v) for k, v in data.items()})


@functools.cache
def _reason_texts() -> Mapping[str, Mapping[str, str]]:
    """Per reason and language, the sentence shown, with its source cited where it has one."""
    texts: dict[str, Mapping[str, str]] = {}
    for reason, entry in _reason_entries().items():
        source = entry.get("source")
        texts[reason] = MappingProxyType({
            language: entry[language] if source is None
            else f"{entry[language]}{'（' if language == 'zh-Hans' else ' ('}{source}"
                 f"{'）' if language == 'zh-Hans' else ')'}"
            for language in LANGUAGES
        })
    return MappingProxyType(texts)


def reason_source(reason: str) -> str | None:
    """The law a reason comes from (instrument, article and year), or None for own rules."""
    entry = _reason_entries().get(reason)
    return entry.get("source") if entry else None


def policy_ids() -> tuple[str, ...]:
    """The ``@id`` of every loaded policy, family by family, in file order."""
    return _book().ids


def reason_ids() -> tuple[str, ...]:
    """Every reason a decision can give: the policy ids, ``default-deny`` and ``policy-error``."""
    return (*policy_ids(), DEFAULT_DENY, POLICY_ERROR)


# -- facts ---------------------------------------------------------------------------------


def _aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        msg = (
            f"Invalid value for the {name!r} parameter. It must be a timezone-aware datetime "
            f"(UTC), but got {value!r} instead."
        )
        raise ValidationError(msg, field=name)
    return value.astimezone(UTC)


def _check_consent(consent: ConsentFacts, purpose_id: str) -> None:
    _check_option("consents[].purpose_id", consent.purpose_id, (purpose_id,))
    for product in consent.products:
        _check_option("consents[].products", product, PRODUCTS)
    _check_option("consents[].granted_capacity", consent.granted_capacity, CAPACITIES)
    _check_option("consents[].status", consent.status, CONSENT_STATUSES)
    _check_option("consents[].assent", consent.assent, ASSENTS)
    version = consent.notice_version
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or version < 1):
        msg = (
            "Invalid value for the 'consents[].notice_version' parameter. It must be a whole "
            f"number from 1, but got {version!r} instead."
        )
        raise ValidationError(msg, field="consents[].notice_version")
    _aware("consents[].granted_at", consent.granted_at)
    if _aware("consents[].valid_until", consent.valid_until) <= _aware(
        "consents[].valid_from", consent.valid_from
    ):
        msg = (
            f"Invalid value for the 'consents[].valid_until' parameter. It must be after "
            f"valid_from ({consent.valid_from.isoformat()}), but got "
            f"{consent.valid_until.isoformat()!r} instead."
        )
        raise ValidationError(msg, field="consents[].valid_until")


def _entity(kind: str, ident: str) -> dict[str, Any]:
    return {"__entity": {"type": kind, "id": ident}}


def _when(moment: datetime) -> dict[str, Any]:
    stamp = moment.astimezone(UTC)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{stamp.microsecond // 1000:03d}Z"
    return {"__extn": {"fn": "datetime", "arg": text}}


def _products(names: Sequence[str]) -> list[dict[str, Any]]:
    return [_entity("Product", name) for name in names]


@dataclass(frozen=True)
class Facts:
    """One decision's request context and the entities it refers to."""

    context: dict[str, Any]
    entities: list[dict[str, Any]]


def _facts(
    *,
    now: datetime,
    age: int,
    subject: SubjectFacts,
    profile: Profile,
    app: AppFacts,
    purpose: Purpose,
    consent: ConsentFacts | None,
) -> Facts:
    flags = purpose.flags
    teen, since = profile.teen_protection_ages, profile.teen_protection_from
    notice_version = purpose.notice_version
    if consent is not None and consent.notice_version is not None:
        notice_version = consent.notice_version
    attributes: dict[str, dict[str, Any]] = {
        "subject": {
            "age": age,
            "is_minor": profile.is_minor(age),
            "assent_required": profile.assent_required(age),
            "lacks_capacity": bool(subject.lacks_capacity),
        },
        "profile": {
            "code": profile.code,
            "consent_lifetime_months": profile.consent_lifetime_months,
            "extra_forbidden_for_minors": sorted(profile.extra_forbidden_for_minors),
            "laws": sorted(profile.laws),
            "self_consent_age": profile.self_consent_age,
            "teen_protection": {
                "active": teen is not None,
                "lowest": teen[0] if teen else 0,
                "highest": teen[1] if teen else -1,
                "since": _when(datetime.combine(since, time(0), tzinfo=UTC) if since else now),
            },
            "allowed_restricted_purposes": sorted(profile.allowed_restricted_purposes),
        },
        "app": {
            "commercial": bool(app.commercial),
            "suspended": bool(app.suspended),
            "cria_status": app.cria_status,
            "declared_purposes": list(app.declared_purposes),
            "deployment_context": app.deployment_context,
        },
        "purpose": {
            "id": purpose.id,
            "flags": sorted(flags.as_set()),
            "products": _products(list(purpose.products)),
            **{name: getattr(flags, name) for name in flags.__dataclass_fields__},
            "restricted": purpose.id in restricted_purposes(),
            "notice_version": purpose.notice_version,
        },
        "consent": {
            "present": consent is not None,
            "status": consent.status if consent else "none",
            "capacity": consent.granted_capacity if consent else "none",
            "assent": consent.assent if consent else "not_required",
            "products": _products(consent.products if consent else ()),
            "valid_from": _when(consent.valid_from if consent else now),
            "valid_until": _when(consent.valid_until if consent else now),
            "lifetime_months": (
                lifetime_months(consent.valid_from, consent.valid_until) if consent else 0
            ),
            "notice_version": notice_version,
        },
    }
    # Entity ids only tell the entities apart within one request; none is a personal datum.
    ids = {"subject": ("Subject", "subject"), "profile": ("Profile", profile.code),
           "app": ("App", app.app_id), "purpose": ("Purpose", purpose.id),
           "consent": ("Consent", consent.consent_id if consent else "none")}
    context: dict[str, Any] = {"now": _when(now)}
    entities = []
    for part, (kind, ident) in ids.items():
        context[part] = _entity(kind, ident)
        entities.append({"uid": {"type": kind, "id": ident}, "attrs": attributes[part],
                         "parents": []})
    return Facts(context, entities)


def requests_for(app_id: str, products: Sequence[str], context: dict[str, Any]
                 ) -> list[dict[str, Any]]:
    """Cedar's requests: may ``app_id`` receive each of ``products`` in ``context``."""
    return [
        {
            "principal": {"type": "App", "id": app_id},
            "action": {"type": "Action", "id": "receive"},
            "resource": {"type": "Product", "id": product},
            "context": context,
        }
        for product in products
    ]


def _evaluate(
    app_id: str, products: Sequence[str], facts: Facts
) -> list[tuple[bool, tuple[str, ...]]]:
    """Ask Cedar once per product (in one batch); ``(allowed, reasons)`` for each.

    The requests are not validated against the schema here: the policies are, when
    loaded, and the tests check that all facts this module builds conform to it
    (validating each request cost as much again as deciding it). A request that did
    not conform would fail to evaluate, and a failure denies."""
    book = _book()
    results = cedarpy.is_authorized_batch(requests_for(app_id, products, facts.context),
                                          book.policies, facts.entities)
    answers: list[tuple[bool, tuple[str, ...]]] = []
    for product, result in zip(products, results, strict=True):
        errors = result.diagnostics.errors
        if errors or result.decision not in (cedarpy.Decision.Allow, cedarpy.Decision.Deny):
            logger.error("Policy evaluation failed for %r, denying: %s", product, errors)
            answers.append((False, (POLICY_ERROR,)))
        elif result.allowed:
            answers.append((True, tuple(sorted(result.diagnostics.reasons))))
        else:
            answers.append((False, tuple(sorted(result.diagnostics.reasons)) or (DEFAULT_DENY,)))
    return answers


# -- the decision --------------------------------------------------------------------------


def decide(
    *,
    subject: SubjectFacts,
    app: AppFacts,
    purpose_id: str,
    product: str,
    consents: Sequence[ConsentFacts],
    now: datetime,
) -> Decision:
    """Decide whether ``app`` may receive ``product`` of ``subject`` for ``purpose_id`` now.

    ``consents`` is the subject's consent history to this app for this purpose; the most
    recently granted one counts. Unknown purposes, products, codes or naive datetimes raise
    ValidationError.
    """
    return decide_products(subject=subject, app=app, purpose_id=purpose_id,
                           products=[product], consents=consents, now=now)[product]


def decide_products(
    *,
    subject: SubjectFacts,
    app: AppFacts,
    purpose_id: str,
    products: Sequence[str],
    consents: Sequence[ConsentFacts],
    now: datetime,
) -> dict[str, Decision]:
    """``decide`` for several products of one purpose at once, each decided exactly as
    alone: the context is the same for all of them, so Cedar is asked once, in one batch,
    for these products and for the others a permit grants beside them."""
    purpose = load_catalog().get(purpose_id)
    for product in products:
        _check_option("product", product, PRODUCTS)
    now = _aware("now", now)
    profile = get_profile(subject.jurisdiction)
    _check_option("cria_status", app.cria_status, CRIA_STATUSES)
    _check_option("deployment_context", app.deployment_context, DEPLOYMENT_CONTEXTS)
    for each in consents:
        _check_consent(each, purpose.id)
    age = age_on(subject.date_of_birth, now.date())
    latest = max(enumerate(consents), key=lambda ic: (ic[1].granted_at, ic[0]), default=None)
    consent = latest[1] if latest else None
    facts = _facts(
        now=now,
        age=age,
        subject=subject,
        profile=profile,
        app=app,
        purpose=purpose,
        consent=consent,
    )
    consented = [p for p in purpose.products if consent and p in consent.products]
    asked = list(dict.fromkeys([*products, *consented]))
    answers = dict(zip(asked, _evaluate(app.app_id, asked, facts), strict=True))
    valid_until = consent.valid_until.astimezone(UTC) if consent else now
    if consent and consent.granted_capacity == "guardian":  # it ends at majority
        majority = anniversary(subject.date_of_birth, profile.age_of_majority)
        valid_until = min(valid_until, datetime.combine(majority, time(0), tzinfo=UTC))
    decisions: dict[str, Decision] = {}
    for product in products:
        allowed, reasons = answers[product]
        if not allowed or consent is None:  # (the permit needs a consent: the second is for typing)
            consent_id = consent.consent_id if consent else None
            decisions[product] = Decision(False, reasons, None, consent_id, age, profile.code)
            continue
        granted = {product} | {p for p in consented if p != product and answers[p][0]}
        kept = tuple(p for p in PRODUCTS if p in granted)
        constraints = Constraints(
            products=kept,
            resolution=MappingProxyType({p: purpose.products[p] for p in kept}),
            retention_days=purpose.retention_days,
            valid_until=valid_until,
        )
        decisions[product] = Decision(True, reasons, constraints, consent.consent_id, age,
                                      profile.code)
    return decisions


def explain(decision: Decision, language: str = "en") -> list[str]:
    """One plain-language sentence per reason of ``decision``, in ``language``."""
    return explain_reasons(decision.reasons, language)


def explain_reasons(reasons: Sequence[str], language: str = "en") -> list[str]:
    """One plain-language sentence per reason (policy ``@id``), in ``language``."""
    _check_option("language", language, LANGUAGES)
    texts = _reason_texts()
    return [texts[reason][language] for reason in reasons]


__all__ = [
    "ASSENTS",
    "CAPACITIES",
    "CONSENT_STATUSES",
    "CRIA_STATUSES",
    "DEFAULT_DENY",
    "DEPLOYMENT_CONTEXTS",
    "PERMIT",
    "POLICY_ERROR",
    "AppFacts",
    "ConsentFacts",
    "Constraints",
    "Decision",
    "Facts",
    "SubjectFacts",
    "decide",
    "decide_products",
    "explain",
    "explain_reasons",
    "policy_ids",
    "reason_ids",
    "reason_source",
    "requests_for",
]
