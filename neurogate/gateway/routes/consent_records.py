"""A consent in standard forms: FHIR Consent (R5, R4), ISO/IEC TS 27560 record (JSON-LD),
Kantara Consent Receipt v1.1; and the import of a FHIR Consent recorded in an EHR."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query
from sqlmodel import Session
from starlette.responses import JSONResponse

from neurogate.consent import consents
from neurogate.consent.access import Principal, get_consent
from neurogate.consent.models import Consent, Subject
from neurogate.consent.schemas import ConsentPublic, ConsentWithReceipt
from neurogate.consent.standards import (
    ConsentView,
    consent_view,
    import_consent,
    iso27560,
    kantara,
    to_fhir,
)
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath
from neurogate.gateway.state import Gateway

FHIR_JSON = "application/fhir+json"
FHIR_BODY = Body(description="A FHIR Consent resource, R5 or R4 (JSON).")
LD_JSON = "application/ld+json"
RESOURCE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}},
    "description": "A FHIR resource (JSON).",
}


class FhirResponse(JSONResponse):
    """A FHIR resource in FHIR's JSON media type."""

    media_type = FHIR_JSON


def view_for(session: Session, gw: Gateway, principal: Principal,
             consent: Consent) -> ConsentView:
    """The consent as the caller may see it: an app sees the subject under its own
    pseudonym, people under the gateway's."""
    if principal.kind == "app":
        patient = consents.app_pseudonym_of(session, consent.app_id, consent.subject_id) or ""
    else:
        subject = session.get(Subject, consent.subject_id)
        patient = subject.pseudonym if subject is not None else ""
    return consent_view(session=session, consent=consent, patient=patient,
                        controller=gw.ledger.origin, public_key=gw.ledger.signer.verifier_key)


router = APIRouter(prefix="/v1/consents", tags=["consents"], dependencies=[STRICT_QUERY])


@router.get("/{consent_id}/fhir", response_class=FhirResponse, responses={200: {
    "description": "The consent as a FHIR Consent resource.",
    "content": {FHIR_JSON: {"schema": RESOURCE_SCHEMA}}}})
def read_consent_fhir(consent_id: IdPath, gw: GatewayDep, principal: CurrentPrincipal,
                      version: Literal["R5", "R4"] = Query(default="R5")) -> FhirResponse:
    """The consent as an HL7 FHIR Consent, R5 (default) or R4."""
    with gw.transaction() as session:
        consent = get_consent(session, principal, consent_id)
        return FhirResponse(to_fhir(view_for(session, gw, principal, consent), version))


@router.get("/{consent_id}/record", response_class=JSONResponse, responses={200: {
    "description": "An ISO/IEC TS 27560 record (JSON-LD) or a Kantara Consent Receipt v1.1.",
    "content": {LD_JSON: {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}}}}})
def read_consent_record(
    consent_id: IdPath, gw: GatewayDep, principal: CurrentPrincipal,
    format: Literal["iso27560", "kantara"] = Query(default="iso27560"),
) -> JSONResponse:
    """The consent as an ISO/IEC TS 27560 record (JSON-LD, DPV terms) or a Kantara receipt."""
    with gw.transaction() as session:
        consent = get_consent(session, principal, consent_id)
        view = view_for(session, gw, principal, consent)
    if format == "kantara":
        return JSONResponse(kantara.receipt(view))
    return JSONResponse(iso27560.record(view), media_type=LD_JSON)


@router.post("/import", status_code=201)
def import_fhir_consent(
    gw: GatewayDep, principal: CurrentPrincipal,
    resource: dict[str, Any] = FHIR_BODY,
    subject_id: str | None = Query(default=None, max_length=64),
    app_id: str | None = Query(default=None, max_length=64),
) -> ConsentWithReceipt:
    """Import a FHIR Consent recorded in an EHR: mapped, then granted like any consent."""
    with gw.transaction() as session:
        consent, receipt = import_consent(
            session=session, ledger=gw.ledger, principal=principal, resource=resource,
            subject_id=subject_id, app_id=app_id)
    return ConsentWithReceipt(consent=ConsentPublic.model_validate(consent), receipt=receipt)
