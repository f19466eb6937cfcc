"""Consents in standard forms: HL7 FHIR Consent (R5, R4), ISO/IEC TS 27560 records in
JSON-LD with W3C DPV terms, and Kantara Consent Receipts v1.1."""

from __future__ import annotations

from neurogate.consent.standards._view import Actor, ConsentView, EventView, consent_view
from neurogate.consent.standards.fhir import to_fhir, validate

__all__ = ["Actor", "ConsentView", "EventView", "consent_view", "to_fhir", "validate"]
