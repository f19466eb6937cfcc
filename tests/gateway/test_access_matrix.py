"""Every role against every resource and verb: no leak, and forbidden looks like unknown.

For each operation the table names the callers allowed to perform it. Every other caller
must get exactly what a request for a made-up id gets (same status, same body once the id
is swapped), or, for operations closed to their whole role, 401/403 that reveal nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from neurogate.gateway.app import create_app
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING, Clinic, build_clinic, notice

PEOPLE = ["admin", "clin1", "clin2", "guard1", "guard2", "rep1", "adult1", "child1", "child2",
          "vendor1", "vendor2", "owner1", "owner2"]
MACHINES = ["clinic_app", "focus_app", "ad_app", "research_app", "dev1", "dev2"]
CALLERS = PEOPLE + MACHINES


@dataclass(frozen=True)
class Op:
    """One verb on one object: who may do it, and how to ask for an unknown object."""

    name: str
    method: str
    path: str  # with {id} for the object
    target: str  # label of the object in the clinic
    allowed: frozenset[str]
    body: Callable[[Clinic], dict[str, Any]] | None = None
    first_allowed_only: bool = False  # the first allowed call ends the object (erasure)


def _consent_body(subject: str, app: str, purpose: str) -> Callable[[Clinic], dict[str, Any]]:
    return lambda c: {"subject_id": c.ids[subject], "app_id": c.ids[app], "purpose_id": purpose,
                      "notice": notice(purpose)}


A = frozenset
OPS = [
    # subjects
    Op("read adult", "GET", "/v1/subjects/{id}", "adult1", A({"clin1", "adult1"})),
    Op("read child1", "GET", "/v1/subjects/{id}", "child1", A({"clin1", "guard1", "child1"})),
    Op("read child2", "GET", "/v1/subjects/{id}", "child2", A({"clin2", "guard2", "child2"})),
    Op("read ward", "GET", "/v1/subjects/{id}", "ward3", A({"clin1", "rep1"})),
    Op("update child1", "PATCH", "/v1/subjects/{id}", "child1", A({"clin1"}),
       body=lambda c: {"preferred_language": "es"}),
    Op("guardians of child1", "GET", "/v1/subjects/{id}/guardians", "child1",
       A({"clin1", "guard1", "child1"})),
    Op("link guardian to child2", "POST", "/v1/subjects/{id}/guardians", "child2", A({"clin2"}),
       body=lambda c: {"guardian_username": "guard3"}),
    Op("account for ward", "POST", "/v1/subjects/{id}/account", "ward3", A({"clin1"}),
       body=lambda c: {"username": f"w-{uuid.uuid4().hex[:6]}", "password": "long-password-1"}),
    Op("export child2", "GET", "/v1/subjects/{id}/export", "child2",
       A({"clin2", "guard2", "child2"})),
    # subjects' requests with a legal deadline
    Op("requests of adult1", "GET", "/v1/subjects/{id}/requests", "adult1",
       A({"clin1", "adult1", "admin"})),
    Op("file a request for child1", "POST", "/v1/subjects/{id}/requests", "child1",
       A({"clin1", "guard1", "child1"}), body=lambda c: {"kind": "access"}),
    # consents
    Op("read consent adult1", "GET", "/v1/consents/{id}", "c_adult1_clinic",
       A({"clin1", "adult1", "clinic_app"})),
    Op("read consent child2", "GET", "/v1/consents/{id}", "c_child2_research",
       A({"clin2", "guard2", "child2", "research_app"})),
    Op("history child1", "GET", "/v1/consents/{id}/history", "c_child1_focus",
       A({"clin1", "guard1", "child1", "focus_app"})),
    Op("receipt child1", "GET", "/v1/consents/{id}/receipt", "c_child1_focus",
       A({"clin1", "guard1", "child1", "focus_app"})),
    Op("assent child1", "POST", "/v1/consents/{id}/assent", "c_child1_focus",
       A({"clin1", "child1"}), body=lambda c: {"assent": "given"}),
    Op("grant for child2", "POST", "/v1/consents", "child2", A({"clin2", "guard2", "child2"}),
       body=_consent_body("child2", "focus_app", "neurofeedback")),
    Op("grant for adult1", "POST", "/v1/consents", "adult1", A({"clin1", "adult1"}),
       body=_consent_body("adult1", "research_app", "research_noncommercial")),
    Op("revoke child2", "POST", "/v1/consents/{id}/revoke", "c_child2_research",
       A({"clin2", "guard2", "child2"})),
    Op("decide for child1", "POST", "/v1/decisions", "child1", A({"clin1", "guard1", "child1"}),
       body=lambda c: {"app_id": c.ids["focus_app"], "subject": c.ids["child1"],
                       "purpose_id": "neurofeedback", "product": "focus_index"}),
    # apps and devices
    Op("manage focus_app", "PATCH", "/v1/apps/{id}", "focus_app", A({"owner1", "admin"}),
       body=lambda c: {"name": "Focus renamed"}),
    Op("read ad_app", "GET", "/v1/apps/{id}", "ad_app",
       A(set(PEOPLE) | {"ad_app"})),
    Op("read dev1", "GET", "/v1/devices/{id}", "dev1", A({"vendor1", "admin", "dev1"})),
    Op("erase child2", "POST", "/v1/subjects/{id}/erasure", "child2", A({"guard2", "child2"}),
       first_allowed_only=True),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    """One clinic for the whole matrix (SQLite)."""
    tmp: Path = tmp_path_factory.mktemp("matrix")
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                        environment="test",
                        **FAST_HASHING)
    gateway = build_gateway(settings)
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        yield build_clinic(client, gateway)


def _call(c: Clinic, op: Op, caller: str, object_id: str) -> Any:
    body = op.body(c) if op.body else None
    path = op.path.replace("{id}", object_id)
    if op.body and "subject" in (body or {}) and op.path == "/v1/decisions":
        body = {**body, "subject": object_id}
    if op.body and "subject_id" in (body or {}) and op.path == "/v1/consents":
        body = {**body, "subject_id": object_id}
    return c.client.request(op.method, path, headers=c.as_(caller), json=body)


def _same_as_unknown(c: Clinic, op: Op, caller: str, response: Any) -> None:
    real = c.ids[op.target]
    fake = str(uuid.uuid4())
    unknown = _call(c, op, caller, fake)
    assert response.status_code == unknown.status_code, (op.name, caller, response.text)
    assert response.text.replace(real, "<id>") == unknown.text.replace(fake, "<id>"), (
        op.name, caller)


LISTS = {
    "/v1/subjects": {
        "clin1": {"adult1", "child1", "ward3"}, "clin2": {"child2"}, "guard1": {"child1"},
        "guard2": {"child2"}, "rep1": {"ward3"}, "adult1": {"adult1"}, "child1": {"child1"},
        "child2": {"child2"},
    },
    "/v1/consents": {
        "clin1": {"c_adult1_clinic", "c_child1_focus"}, "clin2": {"c_child2_research"},
        "guard1": {"c_child1_focus"}, "guard2": {"c_child2_research"},
        "adult1": {"c_adult1_clinic"}, "child1": {"c_child1_focus"},
        "child2": {"c_child2_research"}, "clinic_app": {"c_adult1_clinic"},
        "focus_app": {"c_child1_focus"}, "research_app": {"c_child2_research"},
    },
}


@pytest.mark.parametrize("path", list(LISTS))
@pytest.mark.parametrize("caller", CALLERS)
def test_matrix_lists_hold_only_what_the_caller_may_see(world: Clinic, path: str,
                                                         caller: str) -> None:
    """Collections never include another clinician's patient, guardian's child or app's
    subject."""
    response = world.client.get(path, headers=world.as_(caller))
    assert response.status_code == 200, response.text
    by_id = {ident: label for label, ident in world.ids.items()}
    labels = {by_id.get(row["id"], row["id"]) for row in response.json()}
    assert labels == LISTS[path].get(caller, set())
    if caller.endswith("_app"):
        for row in response.json():
            assert "subject_id" not in row
            assert row["subject"].startswith("p_")
            assert row["subject"] not in world.ids.values()


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_matrix_operation_reaches_only_allowed_callers(world: Clinic, op: Op) -> None:
    """Each caller outside the allowed set sees the object exactly as if it did not exist."""
    outcomes = {}
    # Refused callers first, so that allowed writes cannot change what they would see.
    allowed_seen = False
    for caller in sorted(CALLERS, key=lambda c: c in op.allowed):
        if caller in op.allowed and allowed_seen and op.first_allowed_only:
            continue
        allowed_seen = allowed_seen or caller in op.allowed
        response = _call(world, op, caller, world.ids[op.target])
        outcomes[caller] = response.status_code
        if caller in op.allowed:
            assert response.status_code not in (401, 403, 404), (op.name, caller, response.text)
        else:
            assert response.status_code in (403, 404), (op.name, caller, response.text)
            # 404 for an object out of reach, 403 for a role closed to the operation:
            # either way the answer must not depend on whether the object exists.
            _same_as_unknown(world, op, caller, response)
    assert any(code < 400 for caller, code in outcomes.items() if caller in op.allowed), outcomes


def test_matrix_apps_see_only_themselves(world: Clinic) -> None:
    """An app lists only itself; a device lists nothing."""
    for app in ("clinic_app", "focus_app", "ad_app", "research_app"):
        rows = world.client.get("/v1/apps", headers=world.as_(app)).json()
        assert [r["id"] for r in rows] == [world.ids[app]]
    assert world.client.get("/v1/apps", headers=world.as_("dev1")).json() == []


def test_matrix_unauthenticated_gets_401_everywhere(world: Clinic) -> None:
    """Without credentials every protected route answers 401 with the same body."""
    bodies = set()
    for op in OPS:
        path = op.path.replace("{id}", world.ids[op.target])
        response = world.client.request(op.method, path, json=op.body(world) if op.body else None)
        assert response.status_code == 401, (op.name, response.text)
        bodies.add(response.text)
    assert len(bodies) == 1
