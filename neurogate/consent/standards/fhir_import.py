"""Importing a FHIR ``Consent`` recorded in an EHR: map it, then grant it like any other.

The resource is first validated with ``fhir.resources`` (R5, or R4 through R4B's models),
then mapped to a :class:`~neurogate.consent.schemas.ConsentCreate` and run through
:func:`~neurogate.consent.consents.grant_consent`: the same checks, the same policy, the
same ledger leaf (marked ``reason_code`` ``fhir_import``). Whatever NeuroGate cannot honour
is refused with a ValidationError whose ``field`` is the FHIR element at fault, e.g.
``provision[0].data`` for a data product the purpose does not allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlmodel import Session, select

from neurogate.consent import access, consents
from neurogate.consent.access import Principal
from neurogate.consent.ledger import Ledger
from neurogate.consent.models import Account, Consent, GuardianLink, Subject
from neurogate.consent.purposes import PRODUCTS, load_catalog
from neurogate.consent.schemas import ConsentCreate, NoticeShown
from neurogate.consent.standards import _codes as c
from neurogate.consent.standards.fhir import element_path, validate
from neurogate.errors import ConsentError, NotFoundError, ValidationError

SOURCE = "fhir_import"
_CAPACITY = {role: capacity for capacity, role in c.CAPACITY_ROLE.items()}


@dataclass(frozen=True)
class FhirTerms:
    """What a FHIR Consent says, in NeuroGate's terms, with the element each came from."""

    version: str
    patient: str | None
    app: str | None
    purpose_id: str
    products: list[str]
    notice: dict[str, Any]
    valid_until: datetime | None
    capacity: str
    grantor: str | None  # a RelatedPerson's pseudonym
    assent: str | None
    paths: dict[str, str]  # NeuroGate field -> FHIR element


def _invalid(path: str, problem: str) -> ValidationError:
    return ValidationError(f"Invalid FHIR Consent element '{path}': {problem}", field=path)


def _identifier(ref: Any, system: str) -> str | None:
    if not isinstance(ref, dict):
        return None
    ident = ref.get("identifier") or {}
    if ident.get("system") == system and ident.get("value"):
        return str(ident["value"])
    return None


def _extension(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    for ext in element.get("extension", []):
        if ext.get("url") == url:
            return dict(ext)
    return None


def _version_of(resource: dict[str, Any]) -> str:
    r4 = {"patient", "scope", "performer", "policy", "organization", "dateTime"}
    return "R4" if r4 & set(resource) else "R5"


def _paths(version: str) -> dict[str, str]:
    if version == "R5":
        return {"subject_id": "subject", "capacity": "grantor[0]",
                "guardian_account_id": "grantor[0]", "app_id": "grantee[0]",
                "notice": "policyBasis", "purpose_id": "provision[0].purpose",
                "products": "provision[0].data", "valid_until": "period.end",
                "assent": "verification[0]", "provision": "provision[0]"}
    return {"subject_id": "patient", "capacity": "performer[0]",
            "guardian_account_id": "performer[0]", "app_id": "provision.actor[0].reference",
            "notice": "policy[0]", "purpose_id": "provision.purpose",
            "products": "provision.data", "valid_until": "provision.period.end",
            "assent": "verification[0]", "provision": "provision"}


def _provision(resource: dict[str, Any], version: str, paths: dict[str, str]) -> dict[str, Any]:
    if version == "R5":
        if resource.get("decision", "permit") != "permit":
            where = "decision"
            raise _invalid(where, "NeuroGate imports consents that permit a use; "
                           f"this one has decision {resource.get('decision')!r}.")
        provisions = resource.get("provision") or []
        if len(provisions) != 1:
            where = "provision"
            raise _invalid(where, "give exactly one provision (one purpose for one "
                           f"app), but got {len(provisions)}.")
        provision = dict(provisions[0])
    else:
        provision = dict(resource.get("provision") or {})
        if provision.get("type") != "permit":
            where = "provision.type"
            raise _invalid(where, "the top provision must be 'permit', but got "
                           f"{provision.get('type')!r}.")
    for index, nested in enumerate(provision.get("provision") or []):
        if version == "R4" and nested.get("type") != "deny":
            where = f"{paths['provision']}.provision[{index}].type"
            raise _invalid(where,
                           "nested provisions may only deny (NeuroGate denies everything "
                           f"a consent does not permit), but got {nested.get('type')!r}.")
        if nested.get("provision"):
            where = f"{paths['provision']}.provision[{index}].provision"
            raise _invalid(where,
                           "provisions nest one level deep only.")
    return provision


def _purpose(provision: dict[str, Any], path: str) -> str:
    catalog = load_catalog()
    codes = [coding.get("code") for coding in provision.get("purpose") or []
             if coding.get("system") == c.PURPOSE_SYSTEM]
    allowed = ", ".join(repr(p) for p in catalog.ids())
    if len(codes) != 1 or codes[0] not in catalog.ids():
        raise _invalid(path, f"it must hold one coding of the system {c.PURPOSE_SYSTEM} "
                       f"with one of the codes {allowed}, but got {codes!r}.")
    return str(codes[0])


def _products(provision: dict[str, Any], purpose_id: str, path: str) -> list[str]:
    purpose = load_catalog().get(purpose_id)
    products: list[str] = []
    for index, item in enumerate(provision.get("data") or []):
        value = _identifier(item.get("reference"), c.PRODUCT_SYSTEM)
        if value not in PRODUCTS:
            raise _invalid(path, f"data[{index}] must name a data product of the system "
                           f"{c.PRODUCT_SYSTEM} (one of {', '.join(PRODUCTS)}), but got "
                           f"{value!r}.")
        if value not in purpose.products:
            allowed = ", ".join(repr(p) for p in purpose.products)
            raise _invalid(path, f"data[{index}] names {value!r}, which the purpose "
                           f"{purpose_id!r} does not allow; it allows {allowed}.")
        products.append(value)
    if not products:
        raise _invalid(path, "name at least one data product the consent permits.")
    return products


def _notice(basis: Any, path: str) -> dict[str, Any]:
    ext = _extension(basis, c.EXT_NOTICE) if isinstance(basis, dict) else None
    if ext is None:
        raise _invalid(path, f"it must carry the extension {c.EXT_NOTICE} naming the notice "
                       "shown (purpose, version, language, variant, sha256).")
    values = {}
    for part in ext.get("extension", []):
        for key in ("valueCode", "valueInteger", "valueString"):
            if key in part:
                values[part.get("url")] = part[key]
    return {k: values.get(k) for k in ("purpose", "version", "language", "variant", "sha256")}


def _grantor(ref: Any, path: str) -> tuple[str, str | None]:
    if not isinstance(ref, dict):
        raise _invalid(path, "name who granted the consent.")
    ext = _extension(ref, c.EXT_CAPACITY)
    role = ((ext or {}).get("valueCoding") or {}).get("code")
    if ext is None and ref.get("type") == "Patient":
        role = "SELF"
    if role not in _CAPACITY:
        allowed = ", ".join(repr(r) for r in _CAPACITY)
        raise _invalid(path, f"its extension {c.EXT_CAPACITY} must hold a v3 RoleCode "
                       f"coding, one of {allowed}, but got {role!r}.")
    capacity = _CAPACITY[role]
    return capacity, None if capacity == "self" else _identifier(ref, c.PSEUDONYM_SYSTEM)


def _assent(resource: dict[str, Any]) -> str | None:
    for item in resource.get("verification") or []:
        dated = item.get("verificationDate")
        if dated:
            return "given" if item.get("verified") else "dissent"
    return None


def _end(resource: dict[str, Any], provision: dict[str, Any], path: str) -> datetime | None:
    text = (resource.get("period") or {}).get("end") or (provision.get("period") or {}).get(
        "end")
    if text is None:
        return None
    try:
        end = datetime.fromisoformat(str(text))
    except ValueError:
        raise _invalid(path, f"give a date and time, but got {text!r}.") from None
    if end.tzinfo is None:
        raise _invalid(path, f"give a time with a timezone, but got {text!r}.")
    return end


def read_terms(resource: Any) -> FhirTerms:
    """Validate a FHIR Consent and read it in NeuroGate's terms."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Consent":
        got = resource.get("resourceType") if isinstance(resource, dict) else type(resource)
        where = "resourceType"
        raise _invalid(where, f"it must be 'Consent', but got {str(got)[:40]!r}.")
    version = _version_of(resource)
    validate(resource, version)
    paths = _paths(version)
    if resource.get("status") != "active":
        where = "status"
        raise _invalid(where, "NeuroGate imports active consents only, but got "
                       f"{resource.get('status')!r}.")
    provision = _provision(resource, version, paths)
    purpose_id = _purpose(provision, paths["purpose_id"])
    if version == "R5":
        patient = resource.get("subject")
        grantor = (resource.get("grantor") or [None])[0]
        grantee = (resource.get("grantee") or [None])[0]
        basis = resource.get("policyBasis")
    else:
        patient = resource.get("patient")
        grantor = (resource.get("performer") or [None])[0]
        grantee = ((provision.get("actor") or [{}])[0]).get("reference")
        basis = (resource.get("policy") or [None])[0]
    capacity, grantor_pseudonym = _grantor(grantor, paths["capacity"])
    return FhirTerms(
        version=version,
        patient=_identifier(patient, c.PSEUDONYM_SYSTEM),
        app=_identifier(grantee, c.APP_SYSTEM),
        purpose_id=purpose_id,
        products=_products(provision, purpose_id, paths["products"]),
        notice=_notice(basis, paths["notice"]),
        valid_until=_end(resource, provision, paths["valid_until"]),
        capacity=capacity,
        grantor=grantor_pseudonym,
        assent=_assent(resource),
        paths=paths,
    )


def _subject(session: Session, principal: Principal, terms: FhirTerms,
             subject_id: str | None) -> Subject:
    path = terms.paths["subject_id"]
    try:
        if subject_id is not None:
            return access.get_subject(session, principal, subject_id)
        found = session.exec(select(Subject).where(Subject.pseudonym == (terms.patient or "")))
        row = found.first()
        return access.get_subject(session, principal, row.id if row else "")
    except NotFoundError:
        raise _invalid(path, "no patient of yours has this pseudonym here; name the subject "
                       "with the 'subject_id' query parameter.") from None


def _guardian(session: Session, subject: Subject, terms: FhirTerms) -> str | None:
    if terms.capacity == "self":
        return None
    links = session.exec(select(GuardianLink).where(GuardianLink.subject_id == subject.id)).all()
    if terms.grantor:
        account = session.exec(
            select(Account).where(Account.pseudonym == terms.grantor)).first()
        for link in links:
            if account is not None and link.guardian_account_id == account.id:
                return link.guardian_account_id
    legal = terms.capacity == "legal_representative"
    fitting = [ln for ln in links if (ln.relationship == "legal_representative") == legal]
    if len(fitting) == 1:
        return fitting[0].guardian_account_id
    raise _invalid(terms.paths["capacity"], f"it must name a verified {terms.capacity} of "
                   f"this subject; {len(fitting)} are on record and none has this pseudonym.")


def import_consent(
    *, session: Session, ledger: Ledger, principal: Principal, resource: Any,
    subject_id: str | None = None, app_id: str | None = None, now: datetime | None = None,
) -> tuple[Consent, dict[str, Any]]:
    """Grant the consent a FHIR ``Consent`` records (a clinician in care imports it);
    returns it and its signed receipt."""
    access.require_role(principal, "clinician")
    terms = read_terms(resource)
    subject = _subject(session, principal, terms, subject_id)
    app_ident = app_id or terms.app or ""
    try:
        app = access.get_app(session, principal, app_ident)
    except NotFoundError:
        raise _invalid(terms.paths["app_id"], "no app has this identifier here; name the "
                       "app with the 'app_id' query parameter.") from None
    guardian = _guardian(session, subject, terms)
    notice = terms.notice
    try:
        shown = NoticeShown(version=notice["version"], language=notice["language"],
                            variant=notice["variant"] or "plain", sha256=notice["sha256"])
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        raise _invalid(terms.paths["notice"], f"its notice {first['loc'][0]} is not valid "
                       f"({first['msg']}).") from exc
    try:
        request = ConsentCreate(
            subject_id=subject.id, app_id=app.id, purpose_id=terms.purpose_id,
            products=terms.products, notice=shown,
            valid_until=terms.valid_until, capacity=terms.capacity,
            guardian_account_id=guardian, assent=terms.assent,
        )
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        field = terms.paths.get(str(first["loc"][0]), element_path(tuple(first["loc"])))
        raise _invalid(field, f"{first['msg']}.") from exc
    if notice["purpose"] != terms.purpose_id:
        raise _invalid(terms.paths["notice"], f"the notice is of the purpose "
                       f"{notice['purpose']!r}, not of {terms.purpose_id!r}.")
    try:
        return consents.grant_consent(session=session, ledger=ledger, principal=principal,
                                      request=request, now=now, source=SOURCE)
    except ValidationError as exc:
        raise _invalid(terms.paths.get(exc.field or "", "Consent"), exc.message) from exc
    except ConsentError as exc:
        raise _invalid(terms.paths["provision"], exc.message) from exc


__all__ = ["SOURCE", "FhirTerms", "import_consent", "read_terms"]
