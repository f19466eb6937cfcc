"""Consents in standard forms: HL7 FHIR Consent (R5, R4), ISO/IEC TS 27560 records in
JSON-LD with W3C DPV terms, and Kantara Consent Receipts v1.1."""

from __future__ import annotations

from neurogate.consent.standards import fhir, iso27560, kantara
from neurogate.consent.standards._view import Actor, ConsentView, EventView, consent_view
from neurogate.consent.standards.fhir import to_fhir, validate
from neurogate.consent.standards.fhir_import import FhirTerms, import_consent, read_terms

__all__ = ["Actor", "ConsentView", "EventView", "FhirTerms", "consent_view", "fhir",
           "import_consent", "iso27560", "kantara", "read_terms", "to_fhir", "validate"]
