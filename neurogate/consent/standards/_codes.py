"""Code systems, identifier systems and extensions NeuroGate uses in standard forms.

NeuroGate's own terms live under one namespace of its own, :data:`NS`; the published
systems (LOINC, HL7 terminology, the GA4GH Data Use Ontology, W3C DPV) keep theirs.
"""

from __future__ import annotations

NS = "https://w3id.org/neurogate"

# FHIR: NeuroGate's code systems, identifier systems and extensions.
PURPOSE_SYSTEM = f"{NS}/fhir/CodeSystem/purpose"
PRODUCT_SYSTEM = f"{NS}/fhir/CodeSystem/data-product"
VERIFICATION_SYSTEM = f"{NS}/fhir/CodeSystem/verification-type"
CONSENT_ID_SYSTEM = f"{NS}/fhir/sid/consent"
PSEUDONYM_SYSTEM = f"{NS}/fhir/sid/pseudonym"
APP_SYSTEM = f"{NS}/fhir/sid/app"
CONTROLLER_SYSTEM = f"{NS}/fhir/sid/controller"
EXT_CAPACITY = f"{NS}/fhir/StructureDefinition/grantor-capacity"
EXT_NOTICE = f"{NS}/fhir/StructureDefinition/notice"
EXT_RESOLUTION = f"{NS}/fhir/StructureDefinition/resolution"
EXT_STATE = f"{NS}/fhir/StructureDefinition/consent-state"

# Published systems.
LOINC = "http://loinc.org"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
DUO_SYSTEM = "http://purl.obolibrary.org/obo/duo"
DPV_SYSTEM = "https://w3id.org/dpv"

# NeuroGate's grant capacities as HL7 v3 RoleCode (who the grantor is to the subject).
CAPACITY_ROLE = {"self": "SELF", "guardian": "GUARD", "legal_representative": "HPOWATT"}


def notice_uri(purpose_id: str, version: int, language: str, variant: str) -> str:
    """The URN naming one notice text of the purposes catalog."""
    return f"urn:neurogate:notice:{purpose_id}:{version}:{language}:{variant}"
