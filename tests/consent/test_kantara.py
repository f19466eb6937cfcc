"""Kantara Initiative Consent Receipt v1.1 of every consent of the world: each required
field present with its type, pseudonyms only, and the ledger's key as the public key."""

from __future__ import annotations

import jsonschema

from neurogate.consent.purposes import load_catalog
from neurogate.consent.standards import kantara
from tests.consent.test_fhir import World, world  # noqa: F401  (the shared fixture)

_TEXT = {"type": "string"}
# The required fields of the v1.1 specification, with their types.
RECEIPT_SCHEMA = {
    "type": "object",
    "required": list(kantara.REQUIRED),
    "properties": {
        "version": {"const": "KI-CR-v1.1.0"},
        "jurisdiction": {"type": "string", "minLength": 1},
        "consentTimestamp": {"type": "integer", "minimum": 0},
        "collectionMethod": {"type": "string", "minLength": 1},
        "consentReceiptID": {"type": "string", "minLength": 1},
        "publicKey": {"type": "string", "minLength": 1},
        "language": {"type": "string", "minLength": 2},
        "piiPrincipalId": {"type": "string", "minLength": 1},
        "piiControllers": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["piiController", "contact", "address", "email", "phone"],
            "properties": {"piiController": {"type": "string", "minLength": 1},
                           "contact": _TEXT, "address": _TEXT, "email": _TEXT,
                           "phone": _TEXT, "onBehalf": {"type": "boolean"}}}},
        "policyUrl": {"type": "string", "minLength": 1},
        "services": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["service", "purposes"],
            "properties": {"service": _TEXT, "purposes": {
                "type": "array", "minItems": 1, "items": {
                    "type": "object",
                    "required": ["purpose", "purposeCategory", "consentType", "piiCategory",
                                 "primaryPurpose", "termination", "thirdPartyDisclosure"],
                    "properties": {
                        "purpose": _TEXT,
                        "purposeCategory": {"type": "array", "items": _TEXT, "minItems": 1},
                        "consentType": {"enum": ["EXPLICIT", "IMPLICIT"]},
                        "piiCategory": {"type": "array", "items": _TEXT, "minItems": 1},
                        "primaryPurpose": {"type": "boolean"},
                        "termination": _TEXT,
                        "thirdPartyDisclosure": {"type": "boolean"},
                        "thirdPartyName": _TEXT}}}}}},
        "sensitive": {"type": "boolean"},
        "spiCat": {"type": "array", "items": _TEXT, "minItems": 1},
    },
}


def test_kantara_every_receipt_has_the_required_fields(world: World) -> None:  # noqa: F811
    """Every receipt validates against the v1.1 required fields and their types."""
    views = world.views()
    assert len(views) >= 15
    for view in views:
        jsonschema.validate(kantara.receipt(view), RECEIPT_SCHEMA)


def test_kantara_receipt_maps_the_consent(world: World) -> None:  # noqa: F811
    """Pseudonym, notice, purpose and its DPV and DUO codes, products, neural data as
    sensitive, the ledger key, and how the consent ended."""
    key = world.gateway.ledger.signer.verifier_key
    for view in world.views():
        k = view.consent
        receipt = kantara.receipt(view)
        assert receipt["piiPrincipalId"] == view.patient
        assert receipt["consentReceiptID"] == k.id
        assert receipt["consentTimestamp"] == int(k.granted_at.timestamp())
        assert receipt["language"] == k.notice_language
        assert receipt["publicKey"] == key
        assert receipt["policyUrl"] == (f"urn:neurogate:notice:{k.notice_purpose_id}:"
                                        f"{k.notice_version}:{k.notice_language}:"
                                        f"{k.notice_variant}")
        purpose = load_catalog().get(k.purpose_id)
        entry = receipt["services"][0]["purposes"][0]
        assert entry["purposeCategory"] == [*purpose.dpv, *purpose.duo]
        assert entry["piiCategory"] == [f"neural data: {p}" for p in k.products]
        assert entry["thirdPartyDisclosure"] == purpose.flags.sale_or_sharing
        assert receipt["sensitive"] is True
        ended = {"revoked": "withdrawn at ", "expired": "expired at "}.get(k.status, "ends at ")
        assert entry["termination"].startswith(ended)
        assert ("guardian" in receipt["collectionMethod"]) == (k.granted_capacity == "guardian")
