"""Gateway fixtures: an in-process app over a real database, and a populated clinic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from neurogate.consent.purposes import load_catalog
from neurogate.gateway.app import create_app
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings

PASSWORD = "correct-horse-battery"
# OAuth2 requires TLS except on loopback; the in-process client pretends to be behind TLS.
BASE_URL = "https://testserver"
# Cheap argon2 parameters: the tests exercise the logic, not the hash cost.
FAST_HASHING = {"password_hash_time_cost": 1, "password_hash_memory_kib": 1024}


@pytest.fixture
def gateway(db_url: str, tmp_path: Path) -> Gateway:
    """A gateway over an empty, migrated database."""
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, environment="test",
                        **FAST_HASHING)
    return build_gateway(settings)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[TestClient]:
    """An HTTP client for the gateway (in process)."""
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as test_client:
        yield test_client


def notice(purpose_id: str, language: str = "en", variant: str = "plain") -> dict[str, Any]:
    """The notice fields a client sends after showing the current text."""
    n = load_catalog().get(purpose_id).notice(language, variant)
    return {"version": n.version, "language": language, "variant": variant, "sha256": n.sha256}


@dataclass
class Clinic:
    """Two of everything, so that tests can reach for what is *not* theirs."""

    client: TestClient
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # username -> auth
    ids: dict[str, str] = field(default_factory=dict)  # label -> id
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)

    def login(self, username: str) -> dict[str, str]:
        response = self.client.post(
            "/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        self.client.cookies.clear()
        return {"Authorization": f"Bearer {response.json()['session_token']}"}

    def token(self, label: str) -> dict[str, str]:
        client_id, secret = self.secrets[label]
        response = self.client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def as_(self, who: str) -> dict[str, str]:
        return self.headers[who]


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def build_clinic(client: TestClient, gateway: Gateway) -> Clinic:
    """Populate a clinic through the API itself."""
    from neurogate.consent.accounts import create_account

    clinic = Clinic(client=client)
    with gateway.transaction() as session:
        create_account(session=session, username="admin", password=PASSWORD, role="admin")
    clinic.headers["admin"] = clinic.login("admin")
    for username, role in [
        ("clin1", "clinician"), ("clin2", "clinician"), ("guard1", "guardian"),
        ("guard2", "guardian"), ("vendor1", "vendor"), ("vendor2", "vendor"),
        ("owner1", "app_owner"), ("owner2", "app_owner"), ("rep1", "guardian"),
        ("guard3", "guardian"),
    ]:
        _ok(client.post("/v1/accounts", headers=clinic.as_("admin"),
                        json={"username": username, "password": PASSWORD, "role": role}), 201)
        clinic.headers[username] = clinic.login(username)
    # Patients: an adult and a child for clin1; another child for clin2.
    for label, clinician, dob in [("adult1", "clin1", "1990-04-02"),
                                  ("child1", "clin1", "2016-01-10"),
                                  ("child2", "clin2", "2015-07-07"),
                                  ("ward3", "clin1", "1970-01-01")]:
        body = {"display_name": label.title(), "date_of_birth": dob}
        if label == "ward3":
            body["capacity"] = "lacking"
        subject = _ok(client.post("/v1/subjects", headers=clinic.as_(clinician), json=body), 201)
        clinic.ids[label] = subject["id"]
    for label, username in [("adult1", "adult1"), ("child1", "child1"), ("child2", "child2")]:
        clinician = "clin2" if label == "child2" else "clin1"
        _ok(client.post(f"/v1/subjects/{clinic.ids[label]}/account",
                        headers=clinic.as_(clinician),
                        json={"username": username, "password": PASSWORD}), 201)
        clinic.headers[username] = clinic.login(username)
    _ok(client.post(f"/v1/subjects/{clinic.ids['child1']}/guardians", headers=clinic.as_("clin1"),
                    json={"guardian_username": "guard1"}), 201)
    _ok(client.post(f"/v1/subjects/{clinic.ids['child2']}/guardians", headers=clinic.as_("clin2"),
                    json={"guardian_username": "guard2"}), 201)
    _ok(client.post(f"/v1/subjects/{clinic.ids['ward3']}/guardians", headers=clinic.as_("clin1"),
                    json={"guardian_username": "rep1",
                          "relationship": "legal_representative"}), 201)
    for label, owner, commercial, purposes in [
        ("clinic_app", "owner1", False, ["clinical_monitoring"]),
        ("focus_app", "owner1", True, ["neurofeedback"]),
        ("ad_app", "owner2", True, ["neuromarketing"]),
        ("research_app", "owner2", False, ["research_noncommercial", "clinical_monitoring"]),
    ]:
        created = _ok(client.post("/v1/apps", headers=clinic.as_(owner), json={
            "name": label, "commercial": commercial, "declared_purposes": purposes}), 201)
        clinic.ids[label] = created["app"]["id"]
        creds = created["credentials"]
        clinic.secrets[label] = (creds["client_id"], creds["client_secret"])
    _ok(client.patch(f"/v1/apps/{clinic.ids['focus_app']}", headers=clinic.as_("admin"),
                     json={"cria_status": "approved"}))
    for label, vendor in [("dev1", "vendor1"), ("dev2", "vendor2")]:
        created = _ok(client.post("/v1/devices", headers=clinic.as_(vendor), json={
            "model": "Cap", "serial": f"SN-{label}", "channel_names": ["C3", "C4"],
            "channel_types": ["eeg", "eeg"], "sampling_rate": 250}), 201)
        clinic.ids[label] = created["device"]["id"]
        creds = created["credentials"]
        clinic.secrets[label] = (creds["client_id"], creds["client_secret"])
    grants = [
        ("c_adult1_clinic", "adult1", "adult1", "clinic_app", "clinical_monitoring"),
        ("c_child1_focus", "guard1", "child1", "focus_app", "neurofeedback"),
        ("c_child2_research", "guard2", "child2", "research_app", "clinical_monitoring"),
    ]
    for label, who, subject, app, purpose in grants:
        granted = _ok(client.post("/v1/consents", headers=clinic.as_(who), json={
            "subject_id": clinic.ids[subject], "app_id": clinic.ids[app],
            "purpose_id": purpose, "notice": notice(purpose)}), 201)
        clinic.ids[label] = granted["consent"]["id"]
    for app in ("clinic_app", "focus_app", "ad_app", "research_app", "dev1", "dev2"):
        clinic.headers[app] = clinic.token(app)
    return clinic


@pytest.fixture
def clinic(client: TestClient, gateway: Gateway) -> Clinic:
    """A populated clinic (see ``build_clinic``)."""
    return build_clinic(client, gateway)
