"""ISO/IEC TS 27560 records: every consent of the world parses as JSON-LD with rdflib,
offline, and holds every part of the record structure, in W3C DPV terms and NeuroGate's
declared extension vocabulary."""

from __future__ import annotations

import json
import socket
import warnings
from typing import Any

import pytest
import rdflib
from rdflib import RDF, Literal, Namespace, URIRef

from neurogate.consent.purposes import load_catalog
from neurogate.consent.standards import iso27560
from tests.consent.test_fhir import World, world  # noqa: F401  (the shared fixture)

DPV = Namespace("https://w3id.org/dpv#")
PD = Namespace("https://w3id.org/dpv/pd#")
NG = Namespace("https://w3id.org/neurogate/vocab#")
DCT = Namespace("http://purl.org/dc/terms/")


def parse_jsonld(text: str) -> rdflib.Graph:
    """Parse JSON-LD with rdflib (whose own parser warns that it uses ConjunctiveGraph)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated",
                                DeprecationWarning)
        return rdflib.Graph().parse(data=text, format="json-ld")


@pytest.fixture(scope="module")
def records(world: World) -> list[tuple[Any, dict[str, Any], rdflib.Graph]]:  # noqa: F811
    """Each consent's view, record and parsed graph."""
    return [(view, record, parse_jsonld(json.dumps(record)))
            for view in world.views() for record in [iso27560.record(view)]]


def _one(graph: rdflib.Graph, subject: Any, predicate: Any) -> Any:
    values = list(graph.objects(subject, predicate))
    assert len(values) == 1, (subject, predicate, values)
    return values[0]


def test_iso27560_records_parse_offline(world: World, monkeypatch: pytest.MonkeyPatch  # noqa: F811
                                        ) -> None:
    """The context is inline: a record parses with every network connection refused."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        msg = "no network at run time"
        raise OSError(msg)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for view in world.views():
        record = iso27560.record(view)
        assert isinstance(record["@context"], dict)
        assert len(parse_jsonld(json.dumps(record))) > 40


def test_iso27560_record_has_every_required_part(
    records: list[tuple[Any, dict[str, Any], rdflib.Graph]],
) -> None:
    """Record metadata, the notice, processing with purposes and data categories, the data
    subject and the controller, and each consent event with its time and actor."""
    for view, _, graph in records:
        k = view.consent
        rec = URIRef(f"urn:neurogate:consent:{k.id}")
        # record metadata
        assert (rec, RDF.type, DPV.ConsentRecord) in graph
        assert _one(graph, rec, DCT.identifier) == Literal(k.id)
        assert _one(graph, rec, DCT.conformsTo) == URIRef("urn:iso:std:iso-iec:ts:27560:ed-1")
        assert _one(graph, rec, DCT.created).toPython() == k.granted_at.replace(microsecond=0)
        assert _one(graph, rec, DCT.modified).toPython() >= _one(
            graph, rec, DCT.created).toPython()
        status = {"active": DPV.ConsentGiven, "revoked": DPV.ConsentWithdrawn,
                  "expired": DPV.ConsentExpired}[k.status]
        assert _one(graph, rec, DPV.hasConsentStatus) == status
        assert _one(graph, rec, DPV.hasLegalBasis) == DPV.ExplicitlyExpressedConsent
        assert _one(graph, rec, DPV.hasJurisdiction) == URIRef(
            f"urn:neurogate:jurisdiction:{view.jurisdiction}")
        # notice
        notice = _one(graph, rec, DPV.hasNotice)
        assert (notice, RDF.type, DPV.PrivacyNotice) in graph
        assert _one(graph, notice, DCT.identifier) == Literal(k.notice_purpose_id)
        assert _one(graph, notice, DCT.hasVersion) == Literal(str(k.notice_version))
        assert _one(graph, notice, DCT.language) == Literal(k.notice_language)
        assert _one(graph, notice, NG.sha256) == Literal(k.notice_sha256)
        # processing: purposes and personal-data categories
        process = _one(graph, rec, DPV.hasProcess)
        purpose_node = _one(graph, process, DPV.hasPurpose)
        purpose = load_catalog().get(k.purpose_id)
        types = set(graph.objects(purpose_node, RDF.type))
        assert {NG.Purpose} | {DPV[d.removeprefix("dpv:")] for d in purpose.dpv} == types
        data = set(graph.objects(process, DPV.hasPersonalData))
        assert data == {NG.NeuralData, PD.Health} | {NG[p] for p in k.products}
        assert len(list(graph.objects(process, NG.hasResolution))) == len(k.products)
        assert _one(graph, process, NG.retentionDays).toPython() == purpose.retention_days
        assert (_one(graph, process, DPV.hasRecipient), RDF.type, DPV.Recipient) in graph
        # data subject and controller
        subject = _one(graph, rec, DPV.hasDataSubject)
        assert (subject, RDF.type, DPV.DataSubject) in graph
        assert ((subject, RDF.type, DPV.Child) in graph) == view.child
        assert _one(graph, subject, DCT.identifier) == Literal(view.patient)
        controller = _one(graph, rec, DPV.hasDataController)
        assert (controller, RDF.type, DPV.DataController) in graph
        # each event with its time and actor
        events = list(graph.objects(rec, NG.hasConsentEvent))
        assert len(events) == len(view.events) >= 1
        for event in events:
            assert (event, RDF.type, DPV.ConsentRecord) in graph
            assert _one(graph, event, DPV.hasConsentStatus) is not None
            assert _one(graph, event, DPV.isIndicatedAtTime).datatype == rdflib.XSD.dateTime
            actor = _one(graph, event, DPV.isIndicatedBy)
            assert list(graph.objects(actor, RDF.type)), actor
            assert _one(graph, event, NG.recordedBy) is not None


def test_iso27560_events_cover_every_kind(
    records: list[tuple[Any, dict[str, Any], rdflib.Graph]],
) -> None:
    """Given, given again, a child's assent and dissent, withdrawn and expired all occur,
    with the guardian as the actor of a guardian's grant."""
    kinds = set()
    guardian_grants = 0
    for view, _, graph in records:
        for event in graph.objects(URIRef(f"urn:neurogate:consent:{view.consent.id}"),
                                   NG.hasConsentEvent):
            kind = _one(graph, event, DPV.hasConsentStatus)
            kinds.add(kind)
            actor = _one(graph, event, DPV.isIndicatedBy)
            if kind in (DPV.ConsentGiven, DPV.RenewedConsentGiven) and (
                    view.consent.granted_capacity != "self"):
                assert (actor, RDF.type, DPV.GuardianOfDataSubject) in graph
                guardian_grants += 1
            if kind in (NG.ChildAssent, NG.ChildDissent):
                assert (actor, RDF.type, DPV.Child) in graph
    assert kinds == {DPV.ConsentGiven, DPV.RenewedConsentGiven, NG.ChildAssent,
                     NG.ChildDissent, DPV.ConsentWithdrawn, DPV.ConsentExpired}
    assert guardian_grants >= 3


def test_iso27560_vocabulary_declares_every_neurogate_term(
    records: list[tuple[Any, dict[str, Any], rdflib.Graph]],
) -> None:
    """Each ng: term a record uses is declared in the packaged vocabulary (Turtle), which
    declares neural data as special-category personal data."""
    vocabulary = rdflib.Graph().parse(data=iso27560.vocabulary(), format="turtle")
    declared = set(vocabulary.subjects())
    used = {term for _, _, graph in records for triple in graph for term in triple
            if isinstance(term, URIRef) and str(term).startswith(str(NG))}
    assert used and used <= declared, sorted(used - declared)
    assert (NG.NeuralData, rdflib.RDFS.subClassOf, DPV.SpecialCategoryPersonalData) in (
        vocabulary)
    assert (NG.NeuralData, rdflib.SKOS.broader, PD.Health) in vocabulary
