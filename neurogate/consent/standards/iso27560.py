"""ISO/IEC TS 27560 consent records in JSON-LD with W3C DPV terms.

One record per consent (``dpv:ConsentRecord``), holding the record's metadata, the notice
shown, the processing it permits (purposes, personal-data categories, recipient,
retention), the data subject and the controller, and each consent event (given or
renewed, a child's assent or dissent, withdrawn, expired) as a record of its own with its
time and actor. DPV has no neural-data concept: NeuroGate's extension vocabulary
(``neurogate.ttl``, prefix ``ng:``) declares ``ng:NeuralData`` and the data products. The
JSON-LD context is packaged (``context.jsonld``) and written inline into every record, so
that a record parses offline.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from importlib import resources
from typing import Any

from neurogate.consent.purposes import load_catalog
from neurogate.consent.standards import _codes as c
from neurogate.consent.standards._view import Actor, ConsentView, EventView

SCHEMA = "ISO/IEC TS 27560:2023"
CONFORMS_TO = "urn:iso:std:iso-iec:ts:27560:ed-1"  # RFC 5141 URN of the first edition
VOCABULARY = "neurogate.ttl"
_STATUS = {"active": "dpv:ConsentGiven", "revoked": "dpv:ConsentWithdrawn",
           "expired": "dpv:ConsentExpired"}
_EVENT = {"given": "ng:ChildAssent", "dissent": "ng:ChildDissent",
          "revoked": "dpv:ConsentWithdrawn", "expire": "dpv:ConsentExpired"}
# Personal-data categories: neural data, and the health data it is (DPV's pd: extension).
CATEGORIES = ("ng:NeuralData", "pd:Health")


@functools.cache
def context() -> dict[str, Any]:
    """The packaged JSON-LD context of the records."""
    text = resources.files(__package__).joinpath("context.jsonld").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)["@context"]
    return loaded


def vocabulary() -> str:
    """NeuroGate's extension vocabulary for DPV, in Turtle."""
    return resources.files(__package__).joinpath(VOCABULARY).read_text("utf-8")


def _time(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _urn(kind: str, value: str) -> str:
    return f"urn:neurogate:{kind}:{value}"


def _actor(view: ConsentView, actor: Actor | None) -> dict[str, Any]:
    if actor is None or actor.role == "subject":
        return {"@id": _urn("pseudonym", view.patient), "@type": "dpv:DataSubject"}
    kinds = {"guardian": "dpv:GuardianOfDataSubject", "clinician": "ng:Clinician"}
    node: dict[str, Any] = {"@id": _urn("pseudonym", actor.pseudonym),
                            "@type": kinds.get(actor.role, "dpv:Entity"),
                            "dct:identifier": actor.pseudonym}
    if actor.role == "system":
        node = {"@id": _urn("controller", view.controller), "@type": "dpv:DataController"}
    return node


def _grant_actor(view: ConsentView) -> dict[str, Any]:
    if view.consent.granted_capacity == "self":
        return _actor(view, None)
    node = _actor(view, view.grantor)
    node["@type"] = "dpv:GuardianOfDataSubject"
    return node


def _event(view: ConsentView, index: int, event: EventView) -> dict[str, Any]:
    if event.action == "grant":
        kind = "dpv:RenewedConsentGiven" if view.renewed else "dpv:ConsentGiven"
        actor = _grant_actor(view)
    elif event.action in ("given", "dissent"):  # the child's own word
        kind = _EVENT[event.action]
        actor = {"@id": _urn("pseudonym", view.patient), "@type": ["dpv:DataSubject",
                                                                   "dpv:Child"]}
    else:
        kind = _EVENT.get(event.action, "dpv:ConsentStatus")
        actor = _actor(view, event.actor)
    node: dict[str, Any] = {
        "@id": f"{_urn('consent', view.consent.id)}#event-{index}",
        "@type": ["dpv:ConsentRecord", kind],
        "dpv:hasConsentStatus": kind,
        "dpv:isIndicatedAtTime": _time(event.at),
        "dpv:isIndicatedBy": actor,
        "ng:recordedBy": _actor(view, event.actor),
    }
    if event.ledger_index is not None:
        node["ng:ledgerIndex"] = event.ledger_index
    if event.detail:
        node["dct:description"] = event.detail
    return node


def _processing(view: ConsentView) -> dict[str, Any]:
    k = view.consent
    purpose = load_catalog().get(k.purpose_id)
    return {
        "@id": f"{_urn('consent', k.id)}#processing",
        "@type": "dpv:Process",
        "dpv:hasProcessing": ["dpv:Access", "dpv:Use"],
        "dpv:hasPurpose": {
            "@id": _urn("purpose", purpose.id),
            "@type": ["ng:Purpose", *purpose.dpv],
            "rdfs:label": purpose.title,
            "dct:identifier": purpose.id,
            "dct:subject": [{"@id": f"http://purl.obolibrary.org/obo/{code.replace(':', '_')}"}
                            for code in purpose.duo],
        },
        "dpv:hasPersonalData": [{"@id": code} for code in CATEGORIES] + [
            {"@id": f"ng:{product}"} for product in k.products],
        "ng:hasResolution": [
            {"@id": f"{_urn('consent', k.id)}#resolution-{product}",
             "ng:ofProduct": {"@id": f"ng:{product}"},
             "ng:windowSeconds": purpose.products[product].window_s,
             "ng:outputRateHz": purpose.products[product].output_rate_hz,
             "ng:channels": purpose.products[product].channels}
            for product in k.products],
        "dpv:hasRecipient": {"@id": _urn("app", view.app_id), "@type": "dpv:Recipient",
                             "rdfs:label": view.app_name},
        "dpv:hasDataController": {"@id": _urn("controller", view.controller)},
        "ng:retentionDays": purpose.retention_days,
    }


def record(view: ConsentView) -> dict[str, Any]:
    """The consent as an ISO/IEC TS 27560 record (JSON-LD, context inline)."""
    k = view.consent
    events = [_event(view, index, event) for index, event in enumerate(view.events)]
    modified = max([k.granted_at, *(e.at for e in view.events)])
    subject_types = ["dpv:DataSubject", *(["dpv:Child"] if view.child else [])]
    return {
        "@context": context(),
        "@id": _urn("consent", k.id),
        "@type": "dpv:ConsentRecord",
        "dct:identifier": k.id,
        "dct:conformsTo": CONFORMS_TO,
        "dct:description": f"NeuroGate consent record ({SCHEMA} structure, DPV terms)",
        "dct:created": _time(k.granted_at),
        "dct:modified": _time(modified),
        "dpv:hasConsentStatus": _STATUS[k.status],
        "dpv:hasLegalBasis": "dpv:ExplicitlyExpressedConsent",
        "dpv:hasJurisdiction": _urn("jurisdiction", view.jurisdiction),
        "ng:grantCapacity": k.granted_capacity,
        "ng:validFrom": _time(k.valid_from),
        "ng:validUntil": _time(k.valid_until),
        "dpv:hasNotice": {
            "@id": c.notice_uri(k.notice_purpose_id, k.notice_version, k.notice_language,
                                k.notice_variant),
            "@type": "dpv:PrivacyNotice",
            "dct:identifier": k.notice_purpose_id,
            "dct:hasVersion": str(k.notice_version),
            "dct:language": k.notice_language,
            "ng:noticeVariant": k.notice_variant,
            "ng:sha256": k.notice_sha256,
        },
        "dpv:hasDataSubject": {"@id": _urn("pseudonym", view.patient), "@type": subject_types,
                               "dct:identifier": view.patient},
        "dpv:hasDataController": {"@id": _urn("controller", view.controller),
                                  "@type": "dpv:DataController",
                                  "dct:identifier": view.controller},
        "dpv:hasProcess": _processing(view),
        "ng:hasConsentEvent": events,
    }


__all__ = ["CATEGORIES", "CONFORMS_TO", "SCHEMA", "context", "record", "vocabulary"]
