"""The consent standards over HTTP: FHIR Consent (REST and the read-only FHIR endpoint)
with the REST API's object-level access, TS 27560 records and Kantara receipts, and the
import of every exported consent into a fresh gateway process (uvicorn on loopback),
which reproduces the same decision for the same app, purpose and product."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import rdflib
from fastapi.testclient import TestClient
from fhir.resources.bundle import Bundle
from fhir.resources.consent import Consent as ConsentR5
from fhir.resources.R4B.consent import Consent as ConsentR4B

from neurogate.consent.accounts import create_account
from neurogate.consent.consents import expire_due
from neurogate.consent.models import utcnow
from neurogate.consent.purposes import load_catalog
from neurogate.consent.standards import kantara
from neurogate.gateway.app import create_app
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.consent.test_iso27560 import parse_jsonld
from tests.e2e.conftest import ServerProcess, free_port, gateway_env
from tests.gateway.conftest import BASE_URL, FAST_HASHING, PASSWORD, Clinic, build_clinic, notice

FHIR_JSON = "application/fhir+json"
# label -> (clinician in care, subject, app, purpose) of each consent the source holds.
CONSENTS = {
    "c_adult1_clinic": ("clin1", "adult1", "clinic_app", "clinical_monitoring"),
    "c_child1_focus": ("clin1", "child1", "focus_app", "neurofeedback"),
    "c_child2_research": ("clin2", "child2", "research_app", "clinical_monitoring"),
    "child1_assented": ("clin1", "child1", "research_app", "clinical_monitoring"),
    "ward3_rep": ("clin1", "ward3", "clinic_app", "clinical_monitoring"),
    "adult1_revoked": ("clin1", "adult1", "research_app", "research_noncommercial"),
    "adult1_expired": ("clin1", "adult1", "research_app", "clinical_monitoring"),
}


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@dataclass
class Source:
    """The exporting gateway (in process) and its clinic."""

    client: TestClient
    clinic: Clinic
    gateway: Gateway

    def get(self, url: str, who: str, **headers: str) -> httpx.Response:
        return self.client.get(url, headers={**self.clinic.as_(who), **headers})


@pytest.fixture(scope="module")
def booting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The second gateway's process, starting in the background while the source is built
    (a process takes seconds to import the gateway)."""
    data = tmp_path_factory.mktemp("fhir-target")
    gateway = build_gateway(Settings(data_dir=data, environment="test", **FAST_HASHING))
    with gateway.transaction() as session:
        create_account(session=session, username="admin", password=PASSWORD, role="admin")
    gateway.engine.dispose()
    server = ServerProcess(env=gateway_env(data), port=free_port())
    failed: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:  # raised again at teardown
            failed.append(exc)

    thread = threading.Thread(target=start, name="fhir-target-start")
    thread.start()
    try:
        yield server
    finally:
        thread.join()
        server.stop()
        if failed:
            raise failed[0]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, booting: ServerProcess) -> Iterator[Source]:
    """The test clinic, with a child's assent, a legal representative's consent, a
    revoked one and an expired one besides its own three."""
    tmp: Path = tmp_path_factory.mktemp("fhir-source")
    gateway = build_gateway(Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                     environment="test", **FAST_HASHING))
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        clinic = build_clinic(client, gateway)
        ids = clinic.ids

        def grant(label: str, who: str, **extra: Any) -> None:
            _, subject, app, purpose = CONSENTS[label]
            body = {"subject_id": ids[subject], "app_id": ids[app], "purpose_id": purpose,
                    "notice": notice(purpose), **extra}
            ids[label] = _ok(client.post("/v1/consents", headers=clinic.as_(who), json=body),
                             201)["consent"]["id"]

        grant("child1_assented", "guard1", products=["band_power"])
        _ok(client.post(f"/v1/consents/{ids['child1_assented']}/assent",
                        headers=clinic.as_("clin1"), json={"assent": "given"}))
        grant("ward3_rep", "rep1")
        grant("adult1_revoked", "adult1", products=["band_power"])
        _ok(client.post(f"/v1/consents/{ids['adult1_revoked']}/revoke",
                        headers=clinic.as_("adult1"), json={}))
        grant("adult1_expired", "adult1",
              valid_until=(utcnow() + timedelta(days=1)).isoformat())
        with gateway.transaction() as session:
            expire_due(session=session, ledger=gateway.ledger, now=utcnow() + timedelta(days=2))
        yield Source(client=client, clinic=clinic, gateway=gateway)
    gateway.engine.dispose()


@dataclass
class Target:
    """A fresh gateway process: the same people, patients and apps, and no consent."""

    http: httpx.Client
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]


def _populate(http: httpx.Client) -> Target:
    login = {}

    def sign_in(username: str) -> None:
        body = _ok(http.post("/v1/auth/login", json={"username": username,
                                                     "password": PASSWORD}))
        login[username] = {"Authorization": f"Bearer {body['session_token']}"}
        http.cookies.clear()

    sign_in("admin")
    for username, role in [("clin1", "clinician"), ("clin2", "clinician"),
                           ("guard1", "guardian"), ("guard2", "guardian"),
                           ("rep1", "guardian"), ("owner1", "app_owner"),
                           ("owner2", "app_owner")]:
        _ok(http.post("/v1/accounts", headers=login["admin"],
                      json={"username": username, "password": PASSWORD, "role": role}), 201)
        sign_in(username)
    ids: dict[str, str] = {}
    for label, clinician, dob in [("adult1", "clin1", "1990-04-02"),
                                  ("child1", "clin1", "2016-01-10"),
                                  ("child2", "clin2", "2015-07-07"),
                                  ("ward3", "clin1", "1970-01-01")]:
        body = {"date_of_birth": dob, **({"capacity": "lacking"} if label == "ward3" else {})}
        ids[label] = _ok(http.post("/v1/subjects", headers=login[clinician], json=body),
                         201)["id"]
    for subject, clinician, guardian, relationship in [
        ("child1", "clin1", "guard1", "parent"), ("child2", "clin2", "guard2", "parent"),
        ("ward3", "clin1", "rep1", "legal_representative"),
    ]:
        _ok(http.post(f"/v1/subjects/{ids[subject]}/guardians", headers=login[clinician],
                      json={"guardian_username": guardian, "relationship": relationship}), 201)
    for label, owner, commercial, purposes in [
        ("clinic_app", "owner1", False, ["clinical_monitoring"]),
        ("focus_app", "owner1", True, ["neurofeedback"]),
        ("research_app", "owner2", False, ["research_noncommercial", "clinical_monitoring"]),
    ]:
        ids[label] = _ok(http.post("/v1/apps", headers=login[owner], json={
            "name": label, "commercial": commercial, "declared_purposes": purposes}),
            201)["app"]["id"]
    _ok(http.patch(f"/v1/apps/{ids['focus_app']}", headers=login["admin"],
                   json={"cria_status": "approved"}))
    return Target(http=http, headers=login, ids=ids)


@pytest.fixture(scope="module")
def target(booting: ServerProcess) -> Iterator[Target]:
    """A second gateway, a real process on loopback, that has never seen the consents."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if booting.process is not None and booting.process.poll() is not None:
            break
        try:
            if httpx.get(f"{booting.url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    with httpx.Client(base_url=booting.url, timeout=30) as http:
        try:
            http.get("/healthz").raise_for_status()
        except httpx.HTTPError as exc:
            pytest.fail(f"The second gateway did not start: {exc}")
        yield _populate(http)


def _decisions(http: Any, headers: dict[str, str], subject: str, app: str,
               purpose: str) -> list[tuple[str, bool, list[str]]]:
    found = []
    for product in load_catalog().get(purpose).products:
        body = _ok(http.post("/v1/decisions", headers=headers, json={
            "app_id": app, "subject": subject, "purpose_id": purpose, "product": product}))
        found.append((product, body["allowed"], body["reasons"]))
    return found


@pytest.mark.parametrize("version", ["R5", "R4"])
def test_fhir_import_into_a_fresh_gateway_reproduces_each_decision(
    source: Source, target: Target, version: str,
) -> None:
    """Each exported consent, imported into a gateway that never saw it, gives the same
    decision for every product of its purpose; an inactive one is refused (naming
    ``status``), and nothing flows in either gateway."""
    imported = 0
    for label, (clinician, subject, app, purpose) in CONSENTS.items():
        response = source.get(f"/v1/consents/{source.clinic.ids[label]}/fhir?version={version}",
                              clinician)
        resource = _ok(response)
        assert response.headers["content-type"].startswith(FHIR_JSON)
        answer = target.http.post(
            "/v1/consents/import", headers=target.headers[clinician], json=resource,
            params={"subject_id": target.ids[subject], "app_id": target.ids[app]})
        before = _decisions(source.client, source.clinic.as_(clinician),
                            source.clinic.ids[subject], source.clinic.ids[app], purpose)
        after = _decisions(target.http, target.headers[clinician], target.ids[subject],
                           target.ids[app], purpose)
        if resource["status"] == "active":
            consent = _ok(answer, 201)["consent"]
            assert (consent["purpose_id"], consent["assent"]) == (
                purpose, _ok(source.get(f"/v1/consents/{source.clinic.ids[label]}",
                                        clinician))["assent"])
            assert after == before, label
            imported += 1
        else:
            error = _ok(answer, 422)["error"]
            assert error["field"] == "status"
            assert [allowed for _, allowed, _ in after] == [
                allowed for _, allowed, _ in before] == [False] * len(before)
    assert imported == 5
    assert any(allowed for label in ("c_adult1_clinic",) for _, allowed, _ in _decisions(
        target.http, target.headers["clin1"], target.ids["adult1"], target.ids["clinic_app"],
        "clinical_monitoring"))


def test_fhir_import_refuses_a_product_the_purpose_does_not_allow(
    source: Source, target: Target,
) -> None:
    """422 naming provision[0].data, word for word; nothing is recorded."""
    resource = _ok(source.get(f"/v1/consents/{source.clinic.ids['c_child1_focus']}/fhir",
                              "clin1"))
    resource["provision"][0]["data"][0]["reference"]["identifier"]["value"] = "raw"
    answer = target.http.post(
        "/v1/consents/import", headers=target.headers["clin1"], json=resource,
        params={"subject_id": target.ids["child1"], "app_id": target.ids["focus_app"]})
    assert _ok(answer, 422) == {"error": {
        "code": "invalid_request", "field": "provision[0].data",
        "message": "Invalid FHIR Consent element 'provision[0].data': data[0] names 'raw', "
                   "which the purpose 'neurofeedback' does not allow; it allows "
                   "'focus_index', 'relaxation_index', 'signal_quality'."}}


def test_fhir_import_is_for_clinicians_in_care(source: Source, target: Target) -> None:
    """A guardian may not import (403); a clinician not caring for the patient meets the
    patient as unknown (422 naming ``subject``)."""
    resource = _ok(source.get(f"/v1/consents/{source.clinic.ids['c_adult1_clinic']}/fhir",
                              "clin1"))
    params = {"subject_id": target.ids["adult1"], "app_id": target.ids["clinic_app"]}
    assert target.http.post("/v1/consents/import", headers=target.headers["guard1"],
                            json=resource, params=params).status_code == 403
    error = _ok(target.http.post("/v1/consents/import", headers=target.headers["clin2"],
                                 json=resource, params=params), 422)["error"]
    assert error["field"] == "subject"


def test_fhir_endpoint_reads_with_the_rest_api_access(source: Source) -> None:
    """/fhir/Consent/{id} answers whoever GET /v1/consents/{id} answers, and 404 to the
    others; an app sees the subject under its own pseudonym."""
    ids = source.clinic.ids
    consent_id = ids["c_child1_focus"]
    for who in ("clin1", "guard1", "child1", "focus_app", "clin2", "guard2", "adult1",
                "clinic_app"):
        rest = source.get(f"/v1/consents/{consent_id}", who)
        fhir = source.get(f"/fhir/Consent/{consent_id}", who)
        assert fhir.status_code == rest.status_code, who
        if rest.status_code == 200:
            assert fhir.headers["content-type"].startswith(FHIR_JSON)
            assert ConsentR5.model_validate(fhir.json()).id == consent_id
    by_app = source.get(f"/fhir/Consent/{consent_id}", "focus_app").json()
    by_clinician = source.get(f"/fhir/Consent/{consent_id}", "clin1").json()
    app_view = _ok(source.get(f"/v1/consents/{consent_id}", "focus_app"))
    assert by_app["subject"]["identifier"]["value"] == app_view["subject"]
    assert by_clinician["subject"]["identifier"]["value"] != app_view["subject"]
    r4 = source.get(f"/fhir/Consent/{consent_id}", "clin1",
                    accept="application/fhir+json; fhirVersion=4.0").json()
    assert ConsentR4B.model_validate(r4).patient.identifier.value == (
        by_clinician["subject"]["identifier"]["value"])


def test_fhir_search_by_patient_is_a_searchset_bundle(source: Source) -> None:
    """?patient= (pseudonym, Patient/..., or system|value) finds that patient's consents
    the caller may see; someone out of reach gets an empty Bundle, like an unknown one."""
    ids = source.clinic.ids
    resource = _ok(source.get(f"/fhir/Consent/{ids['c_child1_focus']}", "clin1"))
    pseudonym = resource["subject"]["identifier"]["value"]
    system = resource["subject"]["identifier"]["system"]
    expected = {ids["c_child1_focus"], ids["child1_assented"]}
    for query in (pseudonym, f"Patient/{pseudonym}", f"{system}|{pseudonym}"):
        for who in ("clin1", "guard1"):
            response = source.client.get("/fhir/Consent", params={"patient": query},
                                         headers=source.clinic.as_(who))
            bundle = _ok(response)
            assert response.headers["content-type"].startswith(FHIR_JSON)
            parsed = Bundle.model_validate(bundle)
            assert parsed.type == "searchset"
            assert {e.resource.id for e in parsed.entry} == expected, (who, query)
            assert bundle["total"] == len(expected)
    for who in ("clin2", "guard2"):
        bundle = _ok(source.client.get("/fhir/Consent", params={"patient": pseudonym},
                                       headers=source.clinic.as_(who)))
        assert bundle["total"] == 0 and "entry" not in bundle
        Bundle.model_validate(bundle)
    everything = _ok(source.get("/fhir/Consent", "clin1"))
    assert everything["total"] == len(_ok(source.get("/v1/consents", "clin1")))


def test_consent_record_endpoint_serves_iso27560_and_kantara(source: Source) -> None:
    """format=iso27560 is JSON-LD that rdflib parses offline; format=kantara has every
    field Kantara v1.1 requires; another format is refused naming it."""
    consent_id = source.clinic.ids["child1_assented"]
    response = source.get(f"/v1/consents/{consent_id}/record", "guard1")
    assert response.headers["content-type"].startswith("application/ld+json")
    graph = parse_jsonld(response.text)
    dpv = rdflib.Namespace("https://w3id.org/dpv#")
    assert (None, rdflib.RDF.type, dpv.ConsentRecord) in graph
    receipt = _ok(source.get(f"/v1/consents/{consent_id}/record?format=kantara", "guard1"))
    assert set(kantara.REQUIRED) <= set(receipt)
    assert receipt["publicKey"] == source.gateway.ledger.signer.verifier_key
    bad = source.get(f"/v1/consents/{consent_id}/record?format=pdf", "guard1")
    assert _ok(bad, 422)["error"]["field"] == "format"
    assert source.get(f"/v1/consents/{consent_id}/record", "clin2").status_code == 404
    mine = _ok(source.get(f"/v1/consents/{consent_id}", "research_app"))["subject"]
    by_app = _ok(source.get(f"/v1/consents/{consent_id}/record?format=kantara",
                            "research_app"))
    assert by_app["piiPrincipalId"] == mine != receipt["piiPrincipalId"]
    assert json.loads(response.text)["@context"]["dpv"] == "https://w3id.org/dpv#"


def test_fhir_import_finds_patient_app_and_guardian_by_identifier(source: Source) -> None:
    """Without query parameters the patient is found by pseudonym, the app by id and the
    guardian by account pseudonym; the grant is marked fhir_import in the ledger leaf and
    the history."""
    ids = source.clinic.ids
    body = {"subject_id": ids["child1"], "app_id": ids["research_app"],
            "purpose_id": "research_noncommercial", "products": ["band_power"],
            "notice": notice("research_noncommercial")}
    original = _ok(source.client.post("/v1/consents", headers=source.clinic.as_("guard1"),
                                      json=body), 201)["consent"]
    resource = _ok(source.get(f"/v1/consents/{original['id']}/fhir", "clin1"))
    answer = _ok(source.client.post("/v1/consents/import", headers=source.clinic.as_("clin1"),
                                    json=resource), 201)
    imported = answer["consent"]
    assert (imported["subject_id"], imported["app_id"], imported["granted_by"],
            imported["granted_capacity"]) == (ids["child1"], ids["research_app"],
                                              original["granted_by"], "guardian")
    assert answer["receipt"]["leaf"]["action"] == "consent.grant"
    assert answer["receipt"]["leaf"]["reason_code"] == "fhir_import"
    history = _ok(source.get(f"/v1/consents/{imported['id']}/history", "clin1"))
    assert history[0]["detail"] == "fhir_import"
    superseded = _ok(source.get(f"/v1/consents/{original['id']}", "clin1"))
    assert superseded["status"] == "revoked"
    receipt = _ok(source.get(f"/v1/consents/{imported['id']}/record?format=kantara",
                             "guard1"))
    assert receipt["collectionMethod"] == (
        "given by a verified guardian for the subject through NeuroGate, recorded in person "
        "by a clinician, imported from an EHR's FHIR Consent")


def test_fhir_import_refuses_what_the_policy_refuses(source: Source) -> None:
    """A child's consent to neuromarketing is refused as the grant refuses it, naming
    provision[0]."""
    ids = source.clinic.ids
    resource = _ok(source.get(f"/v1/consents/{ids['c_child1_focus']}/fhir", "clin1"))
    shown = load_catalog().get("neuromarketing").notice("en")
    provision = resource["provision"][0]
    provision["purpose"] = [{"system": provision["purpose"][0]["system"],
                             "code": "neuromarketing"}]
    provision["data"] = [{"meaning": "instance", "reference": {"identifier": {
        "system": provision["data"][0]["reference"]["identifier"]["system"],
        "value": "band_power"}}}]
    resource["policyBasis"]["extension"][0]["extension"] = [
        {"url": "purpose", "valueCode": "neuromarketing"},
        {"url": "version", "valueInteger": shown.version},
        {"url": "language", "valueCode": "en"}, {"url": "variant", "valueCode": "plain"},
        {"url": "sha256", "valueString": shown.sha256}]
    answer = source.client.post("/v1/consents/import", headers=source.clinic.as_("clin1"),
                                json=resource, params={"app_id": ids["ad_app"]})
    error = _ok(answer, 422)["error"]
    assert error["field"] == "provision[0]"
    assert error["message"].startswith(
        "Invalid FHIR Consent element 'provision[0]': This consent cannot be recorded: the "
        "policy refuses 'band_power' for 'neuromarketing' (")


def test_fhir_search_by_an_apps_pseudonym(source: Source) -> None:
    """An app searches by its own pseudonym of a patient; the gateway's pseudonym finds
    nothing for it; unknown search parameters are refused naming them."""
    ids = source.clinic.ids
    mine = _ok(source.get(f"/v1/consents/{ids['c_child1_focus']}", "focus_app"))["subject"]
    gateway_name = _ok(source.get(f"/fhir/Consent/{ids['c_child1_focus']}",
                                  "clin1"))["subject"]["identifier"]["value"]
    found = _ok(source.client.get("/fhir/Consent", params={"patient": mine},
                                  headers=source.clinic.as_("focus_app")))
    assert [e["resource"]["id"] for e in found["entry"]] == [ids["c_child1_focus"]]
    assert found["entry"][0]["resource"]["subject"]["identifier"]["value"] == mine
    none = _ok(source.client.get("/fhir/Consent", params={"patient": gateway_name},
                                 headers=source.clinic.as_("focus_app")))
    assert none["total"] == 0
    refused = source.client.get("/fhir/Consent", params={"_count": "5"},
                                headers=source.clinic.as_("clin1"))
    assert _ok(refused, 422)["error"]["field"] == "_count"


def test_fhir_metadata_is_a_public_capability_statement(source: Source) -> None:
    """/fhir/metadata answers without credentials: R5 JSON, Consent read and search by
    patient, bearer tokens."""
    from fhir.resources.capabilitystatement import CapabilityStatement

    response = source.client.get("/fhir/metadata")
    assert response.headers["content-type"].startswith(FHIR_JSON)
    statement = CapabilityStatement.model_validate(_ok(response))
    assert statement.fhirVersion == "5.0.0"
    (resource,) = statement.rest[0].resource
    assert resource.type == "Consent"
    assert [i.code for i in resource.interaction] == ["read", "search-type"]
    assert [p.name for p in resource.searchParam] == ["patient"]
