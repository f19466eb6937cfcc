"""Kantara Initiative Consent Receipt v1.1 of a consent, beside the signed ledger receipt.

The Kantara receipt is the human-and-machine-readable summary the specification defines;
the proof stays the signed ledger receipt (``GET /v1/consents/{id}/receipt``), whose
Ed25519 key is this receipt's ``publicKey``. NeuroGate knows its controller only by the
gateway's ledger origin: ``piiControllers`` names it so, with ``contact``, ``address``,
``email`` and ``phone`` empty (NeuroGate has no setting for them).
"""

from __future__ import annotations

from typing import Any

from neurogate.consent.purposes import load_catalog
from neurogate.consent.standards import _codes as c
from neurogate.consent.standards._view import ConsentView

VERSION = "KI-CR-v1.1.0"
REQUIRED = ("version", "jurisdiction", "consentTimestamp", "collectionMethod",
            "consentReceiptID", "publicKey", "language", "piiPrincipalId", "piiControllers",
            "policyUrl", "services", "sensitive", "spiCat")
SENSITIVE_CATEGORIES = ("neural data (ng:NeuralData)", "health data (pd:Health)")
_METHOD = {
    "self": "given by the subject through NeuroGate (portal or API)",
    "guardian": "given by a verified guardian for the subject through NeuroGate",
    "legal_representative": "given by the subject's legal representative through NeuroGate",
}


def _method(view: ConsentView) -> str:
    method = _METHOD[view.consent.granted_capacity]
    if view.recorder.role == "clinician":
        method += ", recorded in person by a clinician"
    if any(e.action == "grant" and e.detail == "fhir_import" for e in view.events):
        method += ", imported from an EHR's FHIR Consent"
    return method


def _termination(view: ConsentView) -> str:
    k = view.consent
    if k.status == "revoked" and k.revoked_at is not None:
        return f"withdrawn at {k.revoked_at.isoformat(timespec='seconds')}"
    if k.status == "expired" and k.expired_at is not None:
        return f"expired at {k.expired_at.isoformat(timespec='seconds')}"
    return (f"ends at {k.valid_until.isoformat(timespec='seconds')}, or when withdrawn "
            "(at any time, in one step)")


def receipt(view: ConsentView) -> dict[str, Any]:
    """The consent as a Kantara Consent Receipt v1.1 (JSON)."""
    k = view.consent
    purpose = load_catalog().get(k.purpose_id)
    flags = purpose.flags
    return {
        "version": VERSION,
        "jurisdiction": view.jurisdiction,
        "consentTimestamp": int(k.granted_at.timestamp()),
        "collectionMethod": _method(view),
        "consentReceiptID": k.id,
        "publicKey": view.public_key,
        "language": k.notice_language,
        "piiPrincipalId": view.patient,
        "piiControllers": [{
            "piiController": f"NeuroGate gateway {view.controller}",
            "onBehalf": False,
            "contact": "",
            "address": "",
            "email": "",
            "phone": "",
        }],
        "policyUrl": c.notice_uri(k.notice_purpose_id, k.notice_version, k.notice_language,
                                  k.notice_variant),
        "services": [{
            "service": view.app_name,
            "purposes": [{
                "purpose": purpose.title,
                "purposeCategory": [*purpose.dpv, *purpose.duo],
                "consentType": "EXPLICIT",
                "piiCategory": [f"neural data: {product}" for product in k.products],
                "primaryPurpose": True,
                "termination": _termination(view),
                "thirdPartyDisclosure": flags.sale_or_sharing,
                "thirdPartyName": view.app_name,
            }],
        }],
        "sensitive": True,
        "spiCat": list(SENSITIVE_CATEGORIES),
    }


__all__ = ["REQUIRED", "SENSITIVE_CATEGORIES", "VERSION", "receipt"]
