"""Client credentials: rotating a secret, naming an app by its client_id, a device's
stream status as its vendor sees it."""

from __future__ import annotations

from tests.gateway.conftest import Clinic, notice


def _token_status(clinic: Clinic, client_id: str, secret: str) -> int:
    response = clinic.client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=(client_id, secret))
    return response.status_code


ROTATE = {"app": "/v1/apps/{id}/credentials", "device": "/v1/devices/{id}/credentials"}


def test_rotate_credentials_only_by_owner_or_admin_refuses_old_secret_at_once(
        clinic: Clinic) -> None:
    """Anyone but the owner or an administrator gets 404 and the secret keeps working; a
    rotation by the owner (or an admin) keeps the client_id, and the old secret is refused
    at once while the new one works."""
    for label, path, others in [
        ("clinic_app", ROTATE["app"], ("owner2", "clinic_app", "clin1", "vendor1")),
        ("dev1", ROTATE["device"], ("vendor2", "dev1", "owner1", "clin1")),
    ]:
        for who in others:
            refused = clinic.client.post(path.format(id=clinic.ids[label]),
                                         headers=clinic.as_(who))
            assert refused.status_code == 404, (label, who, refused.text)
            assert refused.json()["error"]["code"] == "not_found"
            assert _token_status(clinic, *clinic.secrets[label]) == 200
    for label, path, owner in [("clinic_app", ROTATE["app"], "owner1"),
                               ("dev1", ROTATE["device"], "vendor1"),
                               ("dev2", ROTATE["device"], "admin")]:
        client_id, old = clinic.secrets[label]

        response = clinic.client.post(path.format(id=clinic.ids[label]),
                                      headers=clinic.as_(owner))

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["client_id"] == client_id
        assert body["token_endpoint"] == "/oauth/token"
        assert body["client_secret"] != old
        assert _token_status(clinic, client_id, old) == 401
        assert _token_status(clinic, client_id, body["client_secret"]) == 200


def test_app_named_by_client_id(clinic: Clinic) -> None:
    """An app may use its client_id where its app id is asked for (read, decisions), and
    so may a subject granting it consent."""
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
    # A subject's consent may name the app by its client_id; it is stored under its id.
    granted = clinic.client.post("/v1/consents", headers=clinic.as_("adult1"), json={
        "subject_id": clinic.ids["adult1"], "app_id": clinic.secrets["research_app"][0],
        "purpose_id": "clinical_monitoring", "notice": notice("clinical_monitoring")})
    assert granted.status_code == 201, granted.text
    assert granted.json()["consent"]["app_id"] == clinic.ids["research_app"]


def test_device_stream_status_without_a_stream(clinic: Clinic) -> None:
    """A vendor reads its device's stream status; nothing names the subject."""
    response = clinic.client.get(f"/v1/devices/{clinic.ids['dev1']}/stream",
                                 headers=clinic.as_("vendor1"))
    other = clinic.client.get(f"/v1/devices/{clinic.ids['dev1']}/stream",
                              headers=clinic.as_("vendor2"))

    assert response.status_code == 200, response.text
    assert response.json() == {"live": False, "stream": None, "frames": None,
                               "samples": None, "dropped": None, "missing": None}
    assert other.status_code == 404
