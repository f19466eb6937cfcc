"""The public ledger, read as a stranger with no login: every checkpoint and proof
verifies, and nothing in any answer names a person, an app, a purpose or a capacity."""

from __future__ import annotations

import base64
import json
from typing import Any

from neurogate.consent.checkpoint import Verifier, open_checkpoint
from neurogate.consent.merkle import root, salted_leaf_hash, verify_consistency, verify_inclusion
from neurogate.consent.receipts import verify_receipt
from neurogate.gateway.state import Gateway
from tests.gateway.conftest import PASSWORD, Clinic, notice


def _public(clinic: Clinic, path: str, texts: list[str], **params: Any) -> Any:
    """GET a public ledger path with no credentials at all, keeping the answer's text."""
    clinic.client.cookies.clear()
    response = clinic.client.get(f"/v1/ledger/{path}", params=params)
    texts.append(response.text)
    assert response.status_code == 200, response.text
    return response.text if path == "checkpoint" else response.json()


def _read_everything_public(clinic: Clinic) -> tuple[list[str], int]:
    """Verify the whole public ledger as a stranger; return every answer's text and the
    number of leaves."""
    texts: list[str] = []
    verifier = Verifier(_public(clinic, "key", texts)["verifier_key"])
    newest = open_checkpoint(_public(clinic, "checkpoint", texts), verifier)
    hashes: list[bytes] = []
    while True:
        page = _public(clinic, "leaves", texts, start=len(hashes), limit=50)
        hashes += [bytes.fromhex(h) for h in page["leaf_hashes"]]
        if len(hashes) >= page["tree_size"]:
            break
    assert len(hashes) == newest.size and root(hashes) == newest.root
    notes: list[dict[str, Any]] = []
    while True:
        page = _public(clinic, "checkpoints", texts,
                       from_size=notes[-1]["size"] + 1 if notes else 0, limit=7)
        notes += page
        if len(page) < 7:
            break
    previous = None
    for item in notes:  # every checkpoint: signed, right root, extends the one before
        checkpoint = open_checkpoint(item["note"], verifier)
        assert checkpoint.size == item["size"]
        assert root(hashes, checkpoint.size) == checkpoint.root
        if previous is not None:
            proof = _public(clinic, "consistency", texts, first=previous.size,
                            second=checkpoint.size)
            assert verify_consistency(previous.size, checkpoint.size, previous.root,
                                      checkpoint.root, [bytes.fromhex(h) for h in proof["proof"]])
        previous = checkpoint
    assert notes[-1]["size"] == newest.size
    for index in range(newest.size):  # every leaf: proven under a signed checkpoint
        proof = _public(clinic, "inclusion", texts, index=index)
        checkpoint = open_checkpoint(proof["checkpoint"], verifier)
        assert verify_inclusion(hashes[index], index, checkpoint.size,
                                [bytes.fromhex(h) for h in proof["proof"]], checkpoint.root)
    return texts, newest.size


def _auditor(clinic: Clinic) -> dict[str, str]:
    response = clinic.client.post("/v1/accounts", headers=clinic.as_("admin"), json={
        "username": "audit1", "password": PASSWORD, "role": "auditor"})
    assert response.status_code == 201, response.text
    return clinic.login("audit1")


def _entries(clinic: Clinic, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = clinic.client.get("/v1/ledger/entries", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["entries"]
    return rows


def _strings(value: Any) -> set[str]:
    """Every string inside a JSON value, keys excluded."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def test_ledger_public_client_verifies_every_checkpoint_and_proof(clinic: Clinic) -> None:
    """With no login, a client checks every checkpoint's signature and root, their
    consistency, and every leaf's inclusion proof."""
    revoked = clinic.client.post(f"/v1/consents/{clinic.ids['c_adult1_clinic']}/revoke",
                                 headers=clinic.as_("adult1"), json={})
    assert revoked.status_code == 200, revoked.text
    for label in ("child1", "adult1"):
        clinic.client.get(f"/v1/subjects/{clinic.ids[label]}/export",
                          headers=clinic.as_("clin1"))
    _, size = _read_everything_public(clinic)
    assert size >= 6


def test_ledger_public_answers_name_no_person_app_purpose_or_capacity(clinic: Clinic) -> None:
    """No id, pseudonym, app, purpose, capacity or any other entry value the clinic made
    appears in any public ledger answer."""
    clinic.client.post("/v1/auth/login", json={"username": "guard1", "password": "wrong"})
    rows = clinic.client.get("/v1/consents", headers=clinic.as_("focus_app")).json()
    app_pseudonym = rows[0]["subject"]
    clinic.client.post("/v1/decisions", headers=clinic.as_("focus_app"), json={
        "app_id": clinic.ids["focus_app"], "subject": app_pseudonym,
        "purpose_id": "neurofeedback", "product": "focus_index", "language": "en"})
    texts, _ = _read_everything_public(clinic)
    everything = "\n".join(texts)
    secrets = set(clinic.ids.values()) | {app_pseudonym}
    for label in ("adult1", "child1", "child2", "ward3"):
        subject = clinic.client.get(f"/v1/subjects/{clinic.ids[label]}",
                                    headers=clinic.as_("clin2" if label == "child2" else "clin1"))
        secrets.add(subject.json()["pseudonym"])
    for who in ("admin", "guard1", "clin1", "owner1", "vendor1", "adult1"):
        secrets.add(clinic.client.get("/v1/auth/me", headers=clinic.as_(who)).json()["id"])
    secrets |= {"clinical_monitoring", "neurofeedback", "research_noncommercial",
                "neuromarketing", "guardian", "legal_representative", "focus_index"}
    entries = _entries(clinic, clinic.as_("admin"))
    assert len(entries) >= 4  # three grants and the denial at least
    for row in entries:
        secrets |= {s for k, s in row["entry"].items() if k != "at" and isinstance(s, str)}
        secrets |= _strings(row["entry"].get("reasons", []))
    assert len(secrets) > 20
    leaked = sorted(s for s in secrets if s in everything)
    assert leaked == []
    for key in ('"subject"', '"app"', '"purpose"', '"capacity"', '"self"', '"entry"',
                '"leaf"', '"salt"', '"consent"', '"at"', "consent.grant"):
        assert key not in everything


def test_ledger_entries_open_to_auditors_with_salts_that_open_public_leaves(
        clinic: Clinic) -> None:
    """An auditor reads whole entries whose salts open the public leaf hashes."""
    rows = _entries(clinic, _auditor(clinic))
    hashes = clinic.client.get("/v1/ledger/leaves", params={"limit": 1000}).json()
    assert [r["seq"] for r in rows] == list(range(len(hashes["leaf_hashes"])))
    for row, public in zip(rows, hashes["leaf_hashes"], strict=True):
        entry = json.dumps(row["entry"], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode()
        assert salted_leaf_hash(base64.b64decode(row["salt"]), entry).hex() == public
        assert base64.b64decode(row["leaf_hash"]).hex() == public


def test_ledger_entries_refused_to_everyone_else(clinic: Clinic) -> None:
    """Subjects, clinicians, apps and strangers cannot read entries; bad bounds name the
    parameter."""
    clinic.client.cookies.clear()
    assert clinic.client.get("/v1/ledger/entries").status_code == 401
    for who in ("adult1", "clin1", "guard1", "owner1", "focus_app", "dev1"):
        response = clinic.client.get("/v1/ledger/entries", headers=clinic.as_(who))
        assert response.status_code == 403, (who, response.text)
    for limit in (0, 1001):
        response = clinic.client.get("/v1/ledger/entries", params={"limit": limit},
                                     headers=clinic.as_("admin"))
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "limit"


def test_ledger_export_carries_the_subjects_entries_and_salts(clinic: Clinic) -> None:
    """A subject's export holds their own entries with salts that open the public leaves."""
    export = clinic.client.get(f"/v1/subjects/{clinic.ids['adult1']}/export",
                               headers=clinic.as_("adult1")).json()
    leaves = clinic.client.get("/v1/ledger/leaves", params={"limit": 1000}).json()["leaf_hashes"]
    mine = export["ledger"]
    assert {e["entry"]["action"] for e in mine} >= {"consent.grant", "subject.export"}
    for item in mine:
        entry = json.dumps(item["entry"], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode()
        assert salted_leaf_hash(base64.b64decode(item["salt"]), entry).hex() == leaves[item["seq"]]


def test_ledger_erasure_leaves_opaque_leaves_and_the_receipt_still_verifies(
        clinic: Clinic, gateway: Gateway) -> None:
    """After erasure the subject's leaves are opaque to the auditor, the public log still
    verifies with the same hashes, and the subject's receipt still verifies."""
    granted = clinic.client.post("/v1/consents", headers=clinic.as_("adult1"), json={
        "subject_id": clinic.ids["adult1"], "app_id": clinic.ids["research_app"],
        "purpose_id": "research_noncommercial", "notice": notice("research_noncommercial")})
    assert granted.status_code == 201, granted.text
    receipt = granted.json()["receipt"]
    export = clinic.client.get(f"/v1/subjects/{clinic.ids['adult1']}/export",
                               headers=clinic.as_("adult1")).json()
    theirs = {item["seq"] for item in export["ledger"]}
    assert receipt["leaf_index"] in theirs
    before = clinic.client.get("/v1/ledger/leaves", params={"limit": 1000}).json()["leaf_hashes"]
    erased = clinic.client.post(f"/v1/subjects/{clinic.ids['adult1']}/erasure",
                                headers=clinic.as_("adult1"))
    assert erased.status_code == 200, erased.text
    rows = _entries(clinic, clinic.as_("admin"))
    opaque = {r["seq"] for r in rows if r["opaque"]}
    assert theirs <= opaque
    assert all(r["entry"] is None and r["salt"] is None for r in rows if r["seq"] in theirs)
    erase_leaf = rows[-1]["entry"]
    assert erase_leaf["action"] == "subject.erase" and "subject" not in erase_leaf
    _, size = _read_everything_public(clinic)
    after = clinic.client.get("/v1/ledger/leaves", params={"limit": 1000}).json()["leaf_hashes"]
    assert after[: len(before)] == before and size == len(after)
    key = clinic.client.get("/v1/ledger/key").json()["verifier_key"]
    assert verify_receipt(receipt, key).leaf["subject"]
    with gateway.transaction() as session:
        status = gateway.ledger.check_receipt(session, receipt)
        report = gateway.ledger.verify(session)
    assert status.included and status.tree_size == size
    assert report.problems == [] and set(report.opaque) >= theirs
