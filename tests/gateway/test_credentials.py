"""Client credentials: rotating a secret, naming an app by its client_id, a device's
stream status as its vendor sees it."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import Clinic


def _token_status(clinic: Clinic, client_id: str, secret: str) -> int:
    response = clinic.client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=(client_id, secret))
    return response.status_code


@pytest.mark.parametrize(("label", "owner", "path"), [
    pytest.param("clinic_app", "owner1", "/v1/apps/{id}/credentials", id="app"),
    pytest.param("dev1", "vendor1", "/v1/devices/{id}/credentials", id="device"),
])
def test_rotate_credentials_refuses_old_secret_at_once(clinic: Clinic, label: str, owner: str,
                                                       path: str) -> None:
    """A rotated secret works, the old one is refused at once, the client_id stays."""
    client_id, old = clinic.secrets[label]

    response = clinic.client.post(path.format(id=clinic.ids[label]), headers=clinic.as_(owner))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == client_id
    assert body["token_endpoint"] == "/oauth/token"
    assert body["client_secret"] != old
    assert _token_status(clinic, client_id, old) == 401
    assert _token_status(clinic, client_id, body["client_secret"]) == 200


@pytest.mark.parametrize(("label", "who", "path"), [
    pytest.param("clinic_app", "owner2", "/v1/apps/{id}/credentials", id="other-owner"),
    pytest.param("clinic_app", "clinic_app", "/v1/apps/{id}/credentials", id="the-app-itself"),
    pytest.param("clinic_app", "clin1", "/v1/apps/{id}/credentials", id="clinician"),
    pytest.param("dev1", "vendor2", "/v1/devices/{id}/credentials", id="other-vendor"),
    pytest.param("dev1", "dev1", "/v1/devices/{id}/credentials", id="the-device-itself"),
])
def test_rotate_credentials_only_by_owner_or_admin(clinic: Clinic, label: str, who: str,
                                                   path: str) -> None:
    """Anyone but the owner or an administrator gets 404, and the secret keeps working."""
    response = clinic.client.post(path.format(id=clinic.ids[label]), headers=clinic.as_(who))

    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert _token_status(clinic, *clinic.secrets[label]) == 200


def test_admin_rotates_any_device_secret(clinic: Clinic) -> None:
    """An administrator may rotate a device's secret."""
    response = clinic.client.post(f"/v1/devices/{clinic.ids['dev2']}/credentials",
                                  headers=clinic.as_("admin"))

    assert response.status_code == 200, response.text
    assert _token_status(clinic, *clinic.secrets["dev2"]) == 401


def test_app_names_itself_by_client_id(clinic: Clinic) -> None:
    """An app may use its client_id where its app id is asked for (read, decisions)."""
    client_id, _ = clinic.secrets["clinic_app"]
    pseudonym = clinic.client.get("/v1/consents", headers=clinic.as_("clinic_app")).json()[0][
        "subject"]

    read = clinic.client.get(f"/v1/apps/{client_id}", headers=clinic.as_("clinic_app"))
    decision = clinic.client.post("/v1/decisions", headers=clinic.as_("clinic_app"), json={
        "app_id": client_id, "subject": pseudonym, "purpose_id": "clinical_monitoring",
        "product": "band_power"})
    other = clinic.client.get(f"/v1/apps/{clinic.secrets['focus_app'][0]}",
                              headers=clinic.as_("clinic_app"))

    assert read.status_code == 200, read.text
    assert read.json()["id"] == clinic.ids["clinic_app"]
    assert decision.status_code == 200, decision.text
    assert decision.json()["allowed"] is True
    assert other.status_code == 404


def test_consent_names_app_by_client_id(clinic: Clinic) -> None:
    """A subject's consent may name the app by its client_id; it is stored under its id."""
    from tests.gateway.conftest import notice

    response = clinic.client.post("/v1/consents", headers=clinic.as_("adult1"), json={
        "subject_id": clinic.ids["adult1"], "app_id": clinic.secrets["research_app"][0],
        "purpose_id": "clinical_monitoring", "notice": notice("clinical_monitoring")})

    assert response.status_code == 201, response.text
    assert response.json()["consent"]["app_id"] == clinic.ids["research_app"]


def test_device_stream_status_without_a_stream(clinic: Clinic) -> None:
    """A vendor reads its device's stream status; nothing names the subject."""
    response = clinic.client.get(f"/v1/devices/{clinic.ids['dev1']}/stream",
                                 headers=clinic.as_("vendor1"))
    other = clinic.client.get(f"/v1/devices/{clinic.ids['dev1']}/stream",
                              headers=clinic.as_("vendor2"))

    assert response.status_code == 200, response.text
    assert response.json() == {"live": False, "stream": None, "frames": None,
                               "samples": None, "dropped": None}
    assert other.status_code == 404
