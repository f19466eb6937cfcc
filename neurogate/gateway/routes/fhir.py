"""A read-only FHIR endpoint for consents: ``/fhir/Consent/{id}`` and a search by patient.

The same object-level access as the REST API: a caller reads only the consents
``GET /v1/consents`` would list for them. Patients are named by pseudonym (an app's own
for an app). Resources are R5; send ``Accept: application/fhir+json; fhirVersion=4.0``
for R4. ``/fhir/metadata`` (public) is the server's CapabilityStatement.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from sqlmodel import select

from neurogate import __version__
from neurogate.consent import access, consents
from neurogate.consent.models import Subject, utcnow
from neurogate.consent.standards import to_fhir
from neurogate.consent.standards._codes import PSEUDONYM_SYSTEM
from neurogate.errors import NotFoundError
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath
from neurogate.gateway.routes.consent_records import (
    FHIR_JSON,
    RESOURCE_SCHEMA,
    FhirResponse,
    view_for,
)

router = APIRouter(prefix="/fhir", tags=["fhir"], dependencies=[STRICT_QUERY])
_FHIR_RESPONSE = {200: {"description": "A FHIR resource.",
                        "content": {FHIR_JSON: {"schema": RESOURCE_SCHEMA}}}}


def fhir_version(request: Request) -> str:
    """R4 when the Accept header asks for FHIR 4.0 (``fhirVersion=4.0``), else R5."""
    accept = request.headers.get("accept", "").replace(" ", "")
    return "R4" if "fhirVersion=4.0" in accept else "R5"


def _patient_pseudonym(patient: str) -> str:
    """``Patient/x``, ``system|x`` or ``x`` -> ``x``."""
    if patient.startswith("Patient/"):
        return patient.removeprefix("Patient/")
    if "|" in patient:
        system, _, value = patient.partition("|")
        return value if system in ("", PSEUDONYM_SYSTEM) else ""
    return patient


@router.get("/Consent/{consent_id}", response_class=FhirResponse, responses=_FHIR_RESPONSE)
def read_fhir_consent(consent_id: IdPath, request: Request, gw: GatewayDep,
                      principal: CurrentPrincipal) -> FhirResponse:
    """Read one consent as a FHIR Consent."""
    with gw.transaction() as session:
        consent = access.get_consent(session, principal, consent_id)
        resource = to_fhir(view_for(session, gw, principal, consent), fhir_version(request))
    return FhirResponse(resource)


@router.get("/Consent", response_class=FhirResponse, responses=_FHIR_RESPONSE)
def search_fhir_consents(request: Request, gw: GatewayDep, principal: CurrentPrincipal,
                         patient: str | None = Query(default=None, max_length=200)
                         ) -> FhirResponse:
    """Search consents (optionally of one patient, by pseudonym) as a searchset Bundle."""
    version = fhir_version(request)
    entries: list[dict[str, Any]] = []
    with gw.transaction() as session:
        rows = consents.list_consents(session=session, principal=principal)
        if patient is not None:
            wanted = _patient_pseudonym(patient)
            try:
                if principal.kind == "app":
                    subject_id = access.subject_for_app(session, principal.id, wanted).id
                else:
                    found = session.exec(select(Subject).where(Subject.pseudonym == wanted))
                    row = found.first()
                    subject_id = row.id if row is not None else ""
            except NotFoundError:
                subject_id = ""
            rows = [c for c in rows if c.subject_id == subject_id]
        for consent in rows:
            resource = to_fhir(view_for(session, gw, principal, consent), version)
            entries.append({"fullUrl": f"{str(request.base_url).rstrip('/')}/fhir/Consent/"
                                       f"{consent.id}",
                            "resource": resource, "search": {"mode": "match"}})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
              "timestamp": utcnow().isoformat(timespec="seconds"),
              "link": [{"relation": "self", "url": str(request.url)}]}
    if entries:  # FHIR JSON has no empty arrays
        bundle["entry"] = entries
    return FhirResponse(bundle)


@router.get("/metadata", response_class=FhirResponse, responses=_FHIR_RESPONSE)
def read_fhir_capabilities(request: Request, gw: GatewayDep) -> FhirResponse:
    """The FHIR CapabilityStatement: read and search Consent, R5 JSON, bearer tokens."""
    base = str(request.base_url).rstrip("/")
    return FhirResponse({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": utcnow().date().isoformat(),
        "kind": "instance",
        "software": {"name": "NeuroGate", "version": __version__},
        "implementation": {"description": f"NeuroGate gateway {gw.ledger.origin}",
                           "url": f"{base}/fhir"},
        "fhirVersion": "5.0.0",
        "format": [FHIR_JSON],
        "rest": [{
            "mode": "server",
            "security": {"description": "Send 'Authorization: Bearer <token>': a person's "
                                        "session token or an app's access token. Each "
                                        "caller reads only the consents it may see."},
            "resource": [{
                "type": "Consent",
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [{"name": "patient", "type": "reference",
                                 "documentation": "The patient's pseudonym: p, Patient/p "
                                                  f"or {PSEUDONYM_SYSTEM}|p."}],
            }],
        }],
    })
