"""The REST API against its own OpenAPI contract, fuzzed by schemathesis as every kind of
caller: no server error, no status the document does not list, no body off its schema.

The gateway is the real application (in process, over ASGI) on a real SQLite database
seeded with the demo clinic. Each caller gets every operation, with valid and with
invalid input, paths naming the demo's real objects. Generation has a fixed seed per
caller, operation and mode (and no example database), so a run repeats exactly and CI
does not flake. The budget is small (2 cases per operation, caller and mode, about 1400
cases) so that the whole file stays within about a minute. Logout gets a fresh session
each time, so that it does not end the caller's.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from neurogate.consent.accounts import find_account, open_session
from neurogate.gateway import demo
from neurogate.gateway.app import create_app
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING

# Callers: a person's username, or the demo's label of an app's or a device's credentials.
PEOPLE = {"admin": "admin", "clinician": "dr.rivera", "guardian": "parent.chen",
          "vendor": "acme.devices", "app_owner": "apps.owner", "subject": "alex"}
MACHINES = {"app": "clinic", "device": "cap"}
CALLERS = [*PEOPLE, *MACHINES]  # without credentials: the access matrix's business
EXAMPLES = 2  # per operation, caller and generation mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


LOGOUT = "POST /v1/auth/logout"


def _session(gateway: Gateway, username: str) -> dict[str, str]:
    """A fresh session for ``username``, opened without the (throttled) login door."""
    with gateway.transaction() as session:
        account = find_account(session=session, username=username)
        assert account is not None, username
        token = open_session(session=session, account=account)
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Fuzz:
    """The seeded app, its contract and each caller's credentials."""

    gateway: Gateway
    schema: Any
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # path parameter -> a real object's id
    cases: int = 0
    serving: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    """The demo clinic behind the real app, logged in as every kind of caller."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    gateway = build_gateway(Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                     environment="test", **FAST_HASHING))
    world = demo.seed(gateway)
    app = create_app(gateway=gateway)
    with asgi.get_client(app) as client:
        client.base_url = BASE_URL
        contract = client.get("/openapi.json").json()
        headers: dict[str, dict[str, str]] = {}
        for role, username in PEOPLE.items():
            login = client.post("/v1/auth/login",
                                json={"username": username, "password": demo.DEMO_PASSWORD})
            assert login.status_code == 200, login.text
            headers[role] = {"Authorization": f"Bearer {login.json()['session_token']}"}
        client.cookies.clear()
        for role, label in MACHINES.items():
            token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=world.credentials[label])
            assert token.status_code == 200, token.text
            headers[role] = {"Authorization": f"Bearer {token.json()['access_token']}"}
        care = client.get("/v1/care-relationships", headers=headers["admin"]).json()
        ids = {"app_id": world.apps["focus"], "subject_id": world.subjects["alex"],
               "device_id": world.devices["cap"], "consent_id": world.consents["alex-clinic"],
               "purpose_id": "neurofeedback", "care_id": care[0]["id"]}
        schema = schemathesis.openapi.from_dict(contract)
        schema.app = app
        started = time.perf_counter()
        result = Fuzz(gateway=gateway, schema=schema, headers=headers, ids=ids)
        yield result
    asgi.shutdown_lifespans()
    print(f"\nschemathesis: {len(list(schema.get_all_operations()))} operations, "
          f"{result.cases} cases, {time.perf_counter() - started:.1f} s "
          f"({result.serving:.1f} s in the app); statuses {sorted(result.statuses.items())}")


def _run(fuzz: Fuzz, caller: str, operation: Any, mode: GenerationMode) -> list[str]:
    failures: list[str] = []
    # Paths name the demo's real objects, so that bodies get past the lookup (unknown ids
    # are the access matrix's business).
    names = {p.name for p in operation.path_parameters}
    fixed = {k: v for k, v in fuzz.ids.items() if k in names}

    @seed(zlib.crc32(f"{caller} {operation.label} {mode.value}".encode()))
    @settings(max_examples=EXAMPLES, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
    def exercise(case: Any) -> None:
        fuzz.cases += 1
        headers = fuzz.headers[caller]
        if operation.label == LOGOUT and caller in PEOPLE:  # would end the caller's session
            headers = _session(fuzz.gateway, PEOPLE[caller])
        started = time.perf_counter()
        response = case.call(base_url=BASE_URL, headers=headers)
        fuzz.serving += time.perf_counter() - started
        fuzz.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as exc:
            failures.append(f"{caller} {operation.label}: {exc}\n"
                            f"{case.as_curl_command(headers=headers)}")

    try:
        exercise()
    except Unsatisfiable:  # an operation without input has no invalid form to send
        assert mode is GenerationMode.NEGATIVE
    return failures


@pytest.mark.parametrize("caller", CALLERS)
def test_schemathesis_contract_holds_for_caller(fuzz: Fuzz, caller: str) -> None:
    """Every operation, valid and invalid input: no 5xx, every status and body as documented."""
    failures: list[str] = []
    operations = [result.ok() for result in fuzz.schema.get_all_operations()]
    assert len(operations) >= 40
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _run(fuzz, caller, operation, mode)
    assert not failures, "\n\n".join(failures[:10])
