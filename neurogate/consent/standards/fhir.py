"""Consents as HL7 FHIR ``Consent`` resources, R5 and R4 (validated with ``fhir.resources``).

``fhir.resources`` 8.3 carries R5 models (``fhir.resources.consent``) and R4B models
(``fhir.resources.R4B.consent``), no separate R4 package: R4B's ``Consent`` is R4's
unchanged, so the R4 form is validated against R4B. Subjects, grantors and the people who
verified a child's assent appear by pseudonym only, as logical references (an identifier,
no resource URL), and the app as the grantee.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from neurogate.consent.purposes import PRODUCTS, load_catalog
from neurogate.consent.standards import _codes as c
from neurogate.consent.standards._view import Actor, ConsentView
from neurogate.errors import ValidationError

VERSIONS = ("R5", "R4")
_STATUS = {"active": "active", "revoked": "inactive", "expired": "inactive"}
_FHIR_ROLE = {"subject": "Patient", "guardian": "RelatedPerson", "clinician": "Practitioner"}


def _time(value: datetime) -> str:
    """FHIR dateTime, to the microsecond the store keeps (an import keeps the same end)."""
    return value.isoformat()


def _ref(kind: str, system: str, value: str, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"type": kind, "identifier": {"system": system, "value": value}}
    if display:
        ref["display"] = display
    return ref


def patient_ref(view: ConsentView) -> dict[str, Any]:
    """The subject, by the caller's pseudonym for them."""
    return _ref("Patient", c.PSEUDONYM_SYSTEM, view.patient)


def _person(view: ConsentView, actor: Actor | None) -> dict[str, Any]:
    if actor is None or actor.role == "subject":
        return patient_ref(view)
    return _ref(_FHIR_ROLE.get(actor.role, "Organization"), c.PSEUDONYM_SYSTEM, actor.pseudonym)


def _grantor(view: ConsentView) -> dict[str, Any]:
    capacity = view.consent.granted_capacity
    ref = patient_ref(view) if capacity == "self" else _person(view, view.grantor)
    if capacity != "self" and view.grantor is not None:
        ref["type"] = "RelatedPerson"
    ref["extension"] = [{"url": c.EXT_CAPACITY, "valueCoding": {
        "system": c.ROLE_CODE, "code": c.CAPACITY_ROLE[capacity], "display": capacity}}]
    return ref


def _grantee(view: ConsentView) -> dict[str, Any]:
    return _ref("Organization", c.APP_SYSTEM, view.app_id, view.app_name)


def _controller(view: ConsentView) -> dict[str, Any]:
    return _ref("Organization", c.CONTROLLER_SYSTEM, view.controller, "NeuroGate gateway")


def _notice_extension(view: ConsentView) -> list[dict[str, Any]]:
    k = view.consent
    return [{"url": c.EXT_NOTICE, "extension": [
        {"url": "purpose", "valueCode": k.notice_purpose_id},
        {"url": "version", "valueInteger": k.notice_version},
        {"url": "language", "valueCode": k.notice_language},
        {"url": "variant", "valueCode": k.notice_variant},
        {"url": "sha256", "valueString": k.notice_sha256},
    ]}]


def _notice_url(view: ConsentView) -> str:
    k = view.consent
    return c.notice_uri(k.notice_purpose_id, k.notice_version, k.notice_language,
                        k.notice_variant)


def purpose_codings(purpose_id: str) -> list[dict[str, Any]]:
    """The purpose as NeuroGate's code, then its DUO and DPV codes from the catalog."""
    purpose = load_catalog().get(purpose_id)
    codings = [{"system": c.PURPOSE_SYSTEM, "code": purpose.id, "display": purpose.title}]
    codings += [{"system": c.DUO_SYSTEM, "code": code} for code in purpose.duo]
    codings += [{"system": c.DPV_SYSTEM, "code": code.removeprefix("dpv:")}
                for code in purpose.dpv]
    return codings


def _data(purpose_id: str, products: list[str], *, resolution: bool) -> list[dict[str, Any]]:
    purpose = load_catalog().get(purpose_id)
    items = []
    for product in products:
        item: dict[str, Any] = {"meaning": "instance", "reference": {
            "identifier": {"system": c.PRODUCT_SYSTEM, "value": product}, "display": product}}
        if resolution and product in purpose.products:
            res = purpose.products[product]
            item["extension"] = [{"url": c.EXT_RESOLUTION, "extension": [
                {"url": "window_s", "valueDecimal": res.window_s},
                {"url": "output_rate_hz", "valueDecimal": res.output_rate_hz},
                {"url": "channels", "valueCode": res.channels},
            ]}]
        items.append(item)
    return items


def excluded_products(purpose_id: str, products: list[str]) -> list[str]:
    """Every data product the consent does not cover (what its denial provision names)."""
    return [p for p in PRODUCTS if p not in products]


def _state_extension(view: ConsentView) -> list[dict[str, Any]]:
    k = view.consent
    ext: list[dict[str, Any]] = [{"url": "status", "valueCode": k.status}]
    ended = k.revoked_at if k.status == "revoked" else k.expired_at
    if ended is not None:
        ext.append({"url": "ended", "valueDateTime": _time(ended)})
    return [{"url": c.EXT_STATE, "extension": ext}]


def _provision(view: ConsentView, version: str) -> dict[str, Any]:
    k = view.consent
    actor = {"role": {"coding": [{"system": c.PARTICIPATION, "code": "IRCP",
                                  "display": "information recipient"}]},
             "reference": _grantee(view)}
    provision: dict[str, Any] = {
        "period": {"start": _time(k.valid_from), "end": _time(k.valid_until)},
        "actor": [actor],
        "action": [{"coding": [{"system": c.CONSENT_ACTION, "code": "access"}]}],
        "purpose": purpose_codings(k.purpose_id),
        "data": _data(k.purpose_id, list(k.products), resolution=True),
    }
    denied = excluded_products(k.purpose_id, list(k.products))
    if denied:
        deny: dict[str, Any] = {"data": _data(k.purpose_id, denied, resolution=False)}
        if version == "R4":
            deny = {"type": "deny", **deny}
        provision["provision"] = [deny]
    if version == "R4":
        provision = {"type": "permit", **provision}
    return provision


def _verification(view: ConsentView, version: str) -> list[dict[str, Any]]:
    k = view.consent
    if k.assent == "not_required":
        return []
    item: dict[str, Any] = {"verified": k.assent == "given", "verifiedWith": patient_ref(view)}
    if version == "R5":
        item["verificationType"] = {"coding": [{"system": c.VERIFICATION_SYSTEM,
                                                "code": "child-assent",
                                                "display": "the child's own assent"}]}
        if k.assent_recorded_at is not None:
            item["verifiedBy"] = _person(view, view.assent_recorder)
            item["verificationDate"] = [_time(k.assent_recorded_at)]
    elif k.assent_recorded_at is not None:
        item["verificationDate"] = _time(k.assent_recorded_at)
    return [item]


def _category() -> list[dict[str, Any]]:
    return [{"coding": [{"system": c.LOINC, "code": "59284-0", "display": "Patient Consent"}]}]


def _scope(purpose_id: str) -> dict[str, Any]:
    flags = load_catalog().get(purpose_id).flags
    code = "treatment" if flags.therapeutic else "research" if flags.research else (
        "patient-privacy")
    return {"coding": [{"system": c.CONSENT_SCOPE, "code": code}]}


def to_fhir(view: ConsentView, version: str = "R5") -> dict[str, Any]:
    """The consent as a FHIR ``Consent`` resource (JSON) in ``version`` "R5" or "R4"."""
    if version not in VERSIONS:
        msg = (f"Invalid value for the 'version' parameter. Allowed values are 'R5' and "
               f"'R4', but got {version!r} instead.")
        raise ValidationError(msg, field="version")
    k = view.consent
    common: dict[str, Any] = {
        "resourceType": "Consent",
        "id": k.id,
        "extension": _state_extension(view),
        "identifier": [{"system": c.CONSENT_ID_SYSTEM, "value": k.id}],
        "status": _STATUS[k.status],
        "category": _category(),
    }
    verification = _verification(view, version)
    if version == "R5":
        resource = {
            **common,
            "subject": patient_ref(view),
            "date": k.granted_at.date().isoformat(),
            "period": {"start": _time(k.valid_from), "end": _time(k.valid_until)},
            "grantor": [_grantor(view)],
            "grantee": [_grantee(view)],
            "controller": [_controller(view)],
            "policyBasis": {"url": _notice_url(view), "extension": _notice_extension(view)},
            "decision": "permit",
            "provision": [_provision(view, version)],
        }
    else:
        resource = {
            **common,
            "scope": _scope(k.purpose_id),
            "patient": patient_ref(view),
            "dateTime": _time(k.granted_at),
            "performer": [_grantor(view)],
            "organization": [_controller(view)],
            "policy": [{"uri": _notice_url(view), "extension": _notice_extension(view)}],
            "provision": _provision(view, version),
        }
    if verification:
        resource["verification"] = verification
    return resource


def element_path(loc: tuple[Any, ...]) -> str:
    """A FHIR element path such as ``provision[0].data[1]`` from a pydantic location."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "Consent"


def validate(resource: dict[str, Any], version: str = "R5") -> Any:
    """Parse ``resource`` with the ``fhir.resources`` model of ``version``; a bad resource
    raises a ValidationError naming the first element at fault."""
    if version == "R5":
        from fhir.resources.consent import Consent
    else:
        from fhir.resources.R4B.consent import Consent
    try:
        return Consent.model_validate(resource)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = element_path(tuple(first["loc"]))
        msg = (f"Invalid FHIR {version} Consent: the element '{where}' is not valid "
               f"({first['msg']}).")
        raise ValidationError(msg, field=where) from exc


__all__ = ["VERSIONS", "element_path", "excluded_products", "patient_ref", "purpose_codings",
           "to_fhir", "validate"]
