"""The REST API end to end (in process), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from neurogate.consent.models import LedgerLeaf
from neurogate.consent.receipts import verify_receipt
from neurogate.gateway.app import flush_abuse
from neurogate.gateway.state import Gateway
from tests.gateway.conftest import Clinic, notice


def _grant(c: Clinic, who: str, subject: str, app: str, purpose: str, **extra: Any) -> Any:
    return c.client.post("/v1/consents", headers=c.as_(who), json={
        "subject_id": c.ids[subject], "app_id": c.ids[app], "purpose_id": purpose,
        "notice": notice(purpose), **extra})


def _decide(c: Clinic, who: str, app: str, subject: str, purpose: str, product: str,
            language: str = "en") -> Any:
    response = c.client.post("/v1/decisions", headers=c.as_(who), json={
        "app_id": c.ids[app], "subject": subject, "purpose_id": purpose, "product": product,
        "language": language})
    assert response.status_code == 200, response.text
    return response.json()


def test_api_grant_returns_receipt_that_verifies_offline(clinic: Clinic) -> None:
    """Granting returns a signed receipt that checks against the published key."""
    response = _grant(clinic, "adult1", "adult1", "research_app", "research_noncommercial")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["consent"]["granted_capacity"] == "self"
    assert body["consent"]["notice_sha256"] == notice("research_noncommercial")["sha256"]
    key = clinic.client.get("/v1/ledger/key").json()["verifier_key"]
    check = verify_receipt(body["receipt"], key)
    assert check.leaf["action"] == "consent.grant"
    assert check.leaf["consent"] == body["consent"]["id"]


def test_api_ledger_leaves_hold_no_personal_data(clinic: Clinic) -> None:
    """No name, birth date, username or internal subject id appears in any entry, even as
    an auditor reads them."""
    size = int(clinic.client.get("/v1/ledger/checkpoint").text.splitlines()[1])
    assert size >= 3
    forbidden = ["Adult1", "Child1", "1990-04-02", "2016-01-10", "guard1", "clin1",
                 clinic.ids["adult1"], clinic.ids["child1"]]
    page = clinic.client.get("/v1/ledger/entries", params={"limit": 1000},
                             headers=clinic.as_("admin")).json()
    assert len(page["entries"]) == page["tree_size"] >= size
    for row in page["entries"]:
        leaf = json.dumps(row["entry"], ensure_ascii=False)
        for word in forbidden:
            assert word not in leaf


def test_api_wrong_notice_hash_is_refused_with_the_current_one(clinic: Clinic) -> None:
    """A notice hash that is not the current text's is refused, naming the right one."""
    shown = {**notice("research_noncommercial"), "sha256": "0" * 64}
    response = _grant(clinic, "adult1", "adult1", "research_app", "research_noncommercial",
                      notice=shown)
    assert response.status_code == 422
    current = notice("research_noncommercial")
    assert response.json() == {"error": {
        "code": "invalid_request", "field": "notice",
        "message": (
            f"Invalid value for the 'notice' field. The current en plain notice of "
            f"'research_noncommercial' is version {current['version']} with SHA-256 "
            f"{current['sha256']}; show that text and send its version and hash."),
    }}


def test_api_undeclared_purpose_names_the_allowed_ones(clinic: Clinic) -> None:
    """A purpose the app did not declare is refused with the app's declared purposes."""
    response = _grant(clinic, "adult1", "adult1", "clinic_app", "neurofeedback")
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        "Invalid value for the 'purpose_id' field. This app declared the purposes "
        "'clinical_monitoring', but got 'neurofeedback' instead.")


def test_api_validation_errors_name_field_and_allowed_values(clinic: Clinic) -> None:
    """Schema errors name the field, what is allowed and what was sent; nothing is written."""
    before = clinic.client.get("/v1/ledger/checkpoint").text
    response = clinic.client.post("/v1/subjects", headers=clinic.as_("clin1"), json={
        "date_of_birth": "2010-01-01", "preferred_language": "fr"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "preferred_language"
    assert error["message"] == (
        "Invalid value for the 'preferred_language' field: Input should be 'en', 'zh-Hans' "
        "or 'es', but got 'fr'.")
    response = clinic.client.post("/v1/subjects", headers=clinic.as_("clin1"), json={
        "date_of_birth": "2999-01-01"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "date_of_birth"
    assert clinic.client.get("/v1/ledger/checkpoint").text == before


def test_api_revoke_is_one_call_and_stops_the_decision(clinic: Clinic) -> None:
    """After one revoke call the app is refused, with the reason."""
    pseudonym = clinic.client.get("/v1/consents", headers=clinic.as_("clinic_app")).json()[0][
        "subject"]
    allowed = _decide(clinic, "clinic_app", "clinic_app", pseudonym, "clinical_monitoring",
                      "filtered")
    assert allowed["allowed"] is True
    assert "filtered" in allowed["constraints"]["products"]
    response = clinic.client.post(f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke",
                                  headers=clinic.as_("adult1"))
    assert response.status_code == 200, response.text
    assert response.json()["consent"]["status"] == "revoked"
    denied = _decide(clinic, "clinic_app", "clinic_app", pseudonym, "clinical_monitoring",
                     "filtered")
    assert denied["allowed"] is False
    assert denied["reasons"] == ["consent.revoked"]
    again = clinic.client.post(f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke",
                               headers=clinic.as_("adult1"))
    assert again.status_code == 409
    assert again.json()["error"]["message"] == (
        "This consent is already revoked; there is nothing left to revoke.")


def test_api_child_assent_then_dissent_flow(clinic: Clinic) -> None:
    """A child's pending assent blocks; given assent allows; dissent blocks non-therapeutic."""
    who = clinic.ids["child1"]
    first = _decide(clinic, "guard1", "focus_app", who, "neurofeedback", "focus_index")
    assert first["allowed"] is False
    assert first["reasons"] == ["child.assent-required"]
    consent = clinic.ids["c_child1_focus"]
    given = clinic.client.post(f"/v1/consents/{consent}/assent", headers=clinic.as_("child1"),
                               json={"assent": "given"})
    assert given.status_code == 200, given.text
    assert _decide(clinic, "guard1", "focus_app", who, "neurofeedback", "focus_index")[
        "allowed"] is True
    raw = _decide(clinic, "guard1", "focus_app", who, "neurofeedback", "relaxation_index")
    assert raw["allowed"] is True
    clinic.client.post(f"/v1/consents/{consent}/assent", headers=clinic.as_("child1"),
                       json={"assent": "dissent"})
    after = _decide(clinic, "guard1", "focus_app", who, "neurofeedback", "focus_index", "es")
    assert after["allowed"] is False
    assert after["reasons"] == ["child.dissent-blocks-non-therapeutic"]
    assert after["explanations"] and all(isinstance(e, str) for e in after["explanations"])
    history = clinic.client.get(f"/v1/consents/{consent}/history",
                                headers=clinic.as_("guard1")).json()
    assert [e["action"] for e in history] == ["grant", "given", "dissent"]


def test_api_neuromarketing_for_a_child_is_refused_with_reasons(clinic: Clinic) -> None:
    """A guardian cannot consent to neuromarketing for a child; the policy says why."""
    response = _grant(clinic, "guard1", "child1", "ad_app", "neuromarketing")
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert "child.no-marketing" in message or "child.no-emotion-inference" in message


def test_api_app_sees_only_pseudonyms_and_denials_are_logged(clinic: Clinic) -> None:
    """An app's view never holds internal ids; a denial it meets lands in the ledger."""
    rows = clinic.client.get("/v1/consents", headers=clinic.as_("focus_app")).json()
    assert len(rows) == 1
    assert rows[0]["subject"].startswith("p_")
    assert set(rows[0]) == {"id", "subject", "purpose_id", "products", "status", "valid_until"}
    size_before = int(clinic.client.get("/v1/ledger/checkpoint").text.splitlines()[1])
    denied = _decide(clinic, "focus_app", "focus_app", rows[0]["subject"], "neurofeedback",
                     "focus_index")
    assert denied["allowed"] is False
    assert denied["consent_id"] is None and denied["age"] is None
    size_after = int(clinic.client.get("/v1/ledger/checkpoint").text.splitlines()[1])
    assert size_after == size_before + 1
    page = clinic.client.get("/v1/ledger/entries", params={"start": size_before, "limit": 1},
                             headers=clinic.as_("admin")).json()
    assert page["entries"][0]["entry"]["action"] == "decision.deny"


def test_api_login_failure_is_logged_without_the_username(clinic: Clinic,
                                                          gateway: Gateway) -> None:
    """A wrong password answers 401 like an unknown user; the failures reach the ledger
    as aggregated leaves with no name in them."""
    size = int(clinic.client.get("/v1/ledger/checkpoint").text.splitlines()[1])
    wrong = clinic.client.post("/v1/auth/login", json={"username": "guard1", "password": "x"})
    unknown = clinic.client.post("/v1/auth/login", json={"username": "nobody", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": {
        "code": "unauthenticated", "message": "The username or password is wrong."}}
    assert int(clinic.client.get("/v1/ledger/checkpoint").text.splitlines()[1]) == size
    assert flush_abuse(gateway, everything=True) == 2
    with gateway.transaction() as session:
        leaves = [bytes(leaf.entry).decode() for leaf in session.exec(
            select(LedgerLeaf).where(LedgerLeaf.seq >= size)).all()]
    assert len(leaves) == 2
    assert all('"action":"abuse.aggregate"' in leaf for leaf in leaves)
    assert all('"kind":"auth.login_failed"' in leaf for leaf in leaves)
    assert all("guard1" not in leaf and "nobody" not in leaf for leaf in leaves)


def test_api_logout_revokes_the_session(clinic: Clinic) -> None:
    """After logout the session token no longer works."""
    headers = clinic.login("clin2")
    assert clinic.client.get("/v1/auth/me", headers=headers).status_code == 200
    assert clinic.client.post("/v1/auth/logout", headers=headers).status_code == 204
    assert clinic.client.get("/v1/auth/me", headers=headers).status_code == 401


def test_api_export_and_erasure(clinic: Clinic) -> None:
    """Export returns the subject's data; erasure revokes consents and hides the subject."""
    export = clinic.client.get(f"/v1/subjects/{clinic.ids['child2']}/export",
                               headers=clinic.as_("guard2"))
    assert export.status_code == 200
    assert export.json()["subject"]["display_name"] == "Child2"
    assert len(export.json()["consents"]) == 1
    erased = clinic.client.post(f"/v1/subjects/{clinic.ids['child2']}/erasure",
                                headers=clinic.as_("guard2"))
    assert erased.status_code == 200, erased.text
    gone = clinic.client.get(f"/v1/subjects/{clinic.ids['child2']}",
                             headers=clinic.as_("clin2"))
    assert gone.status_code == 404
    rows = clinic.client.get("/v1/consents", headers=clinic.as_("research_app")).json()
    assert rows == []


def test_api_ledger_proofs_are_consistent(clinic: Clinic) -> None:
    """Inclusion and consistency proofs from the API verify."""
    from neurogate.consent.merkle import verify_consistency, verify_inclusion

    size = int(clinic.client.get("/v1/ledger/checkpoint").text.splitlines()[1])
    proof = clinic.client.get("/v1/ledger/inclusion", params={"index": 2}).json()
    assert verify_inclusion(bytes.fromhex(proof["leaf_hash"]), 2, size,
                            [bytes.fromhex(h) for h in proof["proof"]],
                            bytes.fromhex(proof["root"]))
    cons = clinic.client.get("/v1/ledger/consistency", params={"first": 3, "second": size})
    body = cons.json()
    assert verify_consistency(3, size, bytes.fromhex(body["first_root"]),
                              bytes.fromhex(body["second_root"]),
                              [bytes.fromhex(h) for h in body["proof"]])
    bad = clinic.client.get("/v1/ledger/inclusion", params={"index": size + 5})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "index"


def test_api_expiry_sweep_closes_guardian_consent_at_majority(clinic: Clinic,
                                                              gateway: Gateway) -> None:
    """When a ward comes of age, the sweep ends the guardian's consent and logs it."""
    from datetime import timedelta

    from neurogate.consent.consents import expire_due
    from neurogate.consent.models import utcnow

    later = utcnow() + timedelta(days=365 * 9)  # child1 (born 2016) is an adult by then
    with gateway.transaction() as session:
        changed = expire_due(session=session, ledger=gateway.ledger, now=later)
    assert clinic.ids["child1"] in changed
    consent = clinic.client.get(f"/v1/consents/{clinic.ids['c_child1_focus']}",
                                headers=clinic.as_("guard1")).json()
    assert consent["status"] == "expired"


def test_api_unknown_route_uses_the_error_shape(client: Any) -> None:
    """Unknown routes answer in the same error shape."""
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/v1/purposes", "/healthz"])
def test_api_public_pages_answer(client: Any, path: str) -> None:
    """Docs, the OpenAPI schema, the purposes catalog and health need no login."""
    assert client.get(path).status_code == 200
