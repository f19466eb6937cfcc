"""REST: subjects' time-bound requests, and apps' declared deployment context."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import delete

from neurogate.consent.models import Subject, SubjectRequest
from neurogate.gateway.app import create_app, sweep_overdue_requests
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING, Clinic, build_clinic, notice


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Clinic, Gateway]]:
    """One clinic for the module (built through the API)."""
    tmp: Path = tmp_path_factory.mktemp("requests")
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                        environment="test", **FAST_HASHING)
    gateway = build_gateway(settings)
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        yield build_clinic(client, gateway), gateway


@pytest.fixture
def clinic(world: tuple[Clinic, Gateway]) -> Clinic:
    """The shared clinic with no requests filed."""
    c, gateway = world
    with gateway.transaction() as session:
        session.exec(delete(SubjectRequest))  # type: ignore[call-overload]
    return c


def test_subject_files_a_request_and_sees_its_deadline(world: tuple[Clinic, Gateway],
                                                       clinic: Clinic) -> None:
    """POST /v1/subjects/{id}/requests answers 201 with the profile's deadline (US-CA: 45 days)."""
    _, gateway = world
    with gateway.transaction() as session:
        subject = session.get(Subject, clinic.ids["adult1"])
        assert subject is not None
        subject.jurisdiction = "US-CA"
        session.add(subject)
    try:
        response = clinic.client.post(f"/v1/subjects/{clinic.ids['adult1']}/requests",
                                      headers=clinic.as_("adult1"), json={"kind": "limit_use"})
        assert response.status_code == 201, response.text
        body = response.json()
        filed, due = (datetime.fromisoformat(body[k]) for k in ("filed_at", "due_at"))
        assert due - filed == timedelta(days=45)
        assert (body["kind"], body["status"], body["jurisdiction"], body["overdue"]) == (
            "limit_use", "open", "US-CA", False)
        listed = clinic.client.get(f"/v1/subjects/{clinic.ids['adult1']}/requests",
                                   headers=clinic.as_("clin1")).json()
        assert [r["id"] for r in listed] == [body["id"]]
    finally:
        with gateway.transaction() as session:
            subject = session.get(Subject, clinic.ids["adult1"])
            assert subject is not None
            subject.jurisdiction = "CRC"
            session.add(subject)


def test_request_kind_is_validated_by_name(clinic: Clinic) -> None:
    """An unknown kind is a 422 naming the field and the allowed kinds."""
    response = clinic.client.post(f"/v1/subjects/{clinic.ids['child1']}/requests",
                                  headers=clinic.as_("guard1"), json={"kind": "erase"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "kind"
    assert error["message"] == (
        "Invalid value for the 'kind' field: Input should be 'delete', 'limit_use' or "
        "'access', but got 'erase'.")


def test_request_of_another_subject_looks_unknown(clinic: Clinic) -> None:
    """A guardian filing for someone else's child gets what an unknown id gets."""
    real = clinic.client.post(f"/v1/subjects/{clinic.ids['child2']}/requests",
                              headers=clinic.as_("guard1"), json={"kind": "delete"})
    fake_id = "00000000-0000-4000-8000-000000000000"
    fake = clinic.client.post(f"/v1/subjects/{fake_id}/requests",
                              headers=clinic.as_("guard1"), json={"kind": "delete"})
    assert real.status_code == fake.status_code == 404
    assert real.text.replace(clinic.ids["child2"], "<id>") == fake.text.replace(fake_id, "<id>")


def test_admin_lists_overdue_after_the_sweeper_and_completes(world: tuple[Clinic, Gateway],
                                                              clinic: Clinic) -> None:
    """GET /v1/requests?overdue=true shows what the sweeper flagged; complete closes it."""
    _, gateway = world
    filed = clinic.client.post(f"/v1/subjects/{clinic.ids['child1']}/requests",
                               headers=clinic.as_("guard1"), json={"kind": "access"}).json()
    admin = clinic.as_("admin")
    assert clinic.client.get("/v1/requests?overdue=true", headers=admin).json() == []
    with gateway.transaction() as session:  # the deadline passes
        request = session.get(SubjectRequest, filed["id"])
        assert request is not None
        request.due_at = request.filed_at - timedelta(seconds=1)
        session.add(request)
    assert sweep_overdue_requests(gateway) == 1
    late = clinic.client.get("/v1/requests?overdue=true", headers=admin).json()
    assert [(r["id"], r["overdue"]) for r in late] == [(filed["id"], True)]
    assert late[0]["overdue_since"] is not None
    refused = clinic.client.get("/v1/requests", headers=clinic.as_("guard1"))
    assert refused.status_code == 403
    done = clinic.client.post(f"/v1/requests/{filed['id']}/complete", headers=admin)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["overdue"]) == ("done", False)
    assert clinic.client.get("/v1/requests?overdue=true", headers=admin).json() == []


def test_app_registration_takes_a_deployment_context(clinic: Clinic) -> None:
    """deployment_context defaults to home, is stored and shown, and a bad one is a 422."""
    owner = clinic.as_("owner1")
    body = {"name": "Classroom calm", "commercial": True, "declared_purposes": ["mood_tracking"]}
    default = clinic.client.post("/v1/apps", headers=owner, json=body)
    assert default.status_code == 201, default.text
    assert default.json()["app"]["deployment_context"] == "home"
    school = clinic.client.post("/v1/apps", headers=owner,
                                json={**body, "deployment_context": "education"})
    assert school.json()["app"]["deployment_context"] == "education"
    bad = clinic.client.post("/v1/apps", headers=owner,
                             json={**body, "deployment_context": "school"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "deployment_context"
    assert bad.json()["error"]["message"] == (
        "Invalid value for the 'deployment_context' field: Input should be 'clinical', 'home', "
        "'education', 'workplace' or 'research', but got 'school'.")


def test_ai_act_refuses_emotion_inference_for_a_school_app_in_the_eu(
    world: tuple[Clinic, Gateway], clinic: Clinic,
) -> None:
    """A decision for an EU adult names the AI Act rule, with its source, for a school app."""
    _, gateway = world
    owner = clinic.as_("owner1")
    app = clinic.client.post("/v1/apps", headers=owner, json={
        "name": "Study mood", "commercial": False, "declared_purposes": ["mood_tracking"],
        "deployment_context": "education"}).json()["app"]
    with gateway.transaction() as session:
        subject = session.get(Subject, clinic.ids["adult1"])
        assert subject is not None
        subject.jurisdiction = "EU"
        session.add(subject)
    try:
        grant = {"subject_id": clinic.ids["adult1"], "app_id": app["id"],
                 "purpose_id": "mood_tracking", "notice": notice("mood_tracking")}
        refused = clinic.client.post("/v1/consents", headers=clinic.as_("adult1"), json=grant)
        assert refused.status_code == 409
        assert refused.json()["error"]["message"] == (
            "This consent cannot be recorded: the policy refuses 'band_power' for "
            "'mood_tracking' (eu.ai-act-no-emotion-inference-at-work-or-school).")
        moved = clinic.client.patch(f"/v1/apps/{app['id']}", headers=owner,
                                    json={"deployment_context": "home"})
        assert moved.json()["deployment_context"] == "home"
        granted = clinic.client.post("/v1/consents", headers=clinic.as_("adult1"), json=grant)
        assert granted.status_code == 201, granted.text
        ask = {"app_id": app["id"], "subject": clinic.ids["adult1"],
               "purpose_id": "mood_tracking", "product": "relaxation_index"}
        allowed = clinic.client.post("/v1/decisions", headers=clinic.as_("clin1"), json=ask)
        assert allowed.json()["allowed"] is True
        clinic.client.patch(f"/v1/apps/{app['id']}", headers=owner,
                            json={"deployment_context": "education"})
        decided = clinic.client.post("/v1/decisions", headers=clinic.as_("clin1"), json=ask)
        assert decided.status_code == 200, decided.text
        assert decided.json()["allowed"] is False
        assert decided.json()["reasons"] == ["eu.ai-act-no-emotion-inference-at-work-or-school"]
        assert decided.json()["explanations"][0].endswith(" (EU AI Act Art. 5(1)(f), 2024)")
    finally:
        with gateway.transaction() as session:
            subject = session.get(Subject, clinic.ids["adult1"])
            assert subject is not None
            subject.jurisdiction = "CRC"
            session.add(subject)
