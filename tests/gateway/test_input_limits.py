"""REST input: strict types, bounded sizes, short error quotes, clean identifiers, honest
filters, and pairing that tells nothing about other people's devices."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from neurogate.gateway.app import create_app
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING, PASSWORD, Clinic, build_clinic, notice

MB = 1_000_000  # a 1 MB value, inside the 1 MiB body the API reads (NEUROGATE_MAX_BODY_BYTES)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    """One clinic for the module (SQLite)."""
    tmp: Path = tmp_path_factory.mktemp("limits")
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                        environment="test", **FAST_HASHING)
    gateway = build_gateway(settings)
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        yield build_clinic(client, gateway)


def _error(response: object, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error: dict[str, str] = response.json()["error"]  # type: ignore[attr-defined]
    return error


def _new_device(world: Clinic, **changes: object) -> dict[str, object]:
    body = {"model": "Cap", "serial": f"SN-{uuid.uuid4().hex[:8]}", "channel_names": ["C3"],
            "channel_types": ["eeg"], "sampling_rate": 250, **changes}
    return world.client.post("/v1/devices", headers=world.as_("vendor1"), json=body)


# -- nulls and lax coercion --------------------------------------------------------
@pytest.mark.parametrize(("body", "field", "message"), [
    ({"declared_purposes": None}, "declared_purposes",
     "Invalid value for the 'declared_purposes' field. It must be a list, but got null."),
    ({"name": None}, "name", "Invalid value for the 'name' field. It must be a string, but "
                             "got null."),
    ({"cria_status": None}, "cria_status",
     "Invalid value for the 'cria_status' field: Input should be 'none', 'submitted' or "
     "'approved', but got null."),
])
def test_input_update_app_refuses_null(world: Clinic, body: dict[str, object], field: str,
                                       message: str) -> None:
    """A field of an update may be left out, but null is a 422 (it was a 500)."""
    response = world.client.patch(f"/v1/apps/{world.ids['focus_app']}",
                                  headers=world.as_("owner1"), json=body)
    error = _error(response)
    assert error["message"] == message
    assert error["field"] == field


def test_input_strict_boolean_does_not_suspend_app(world: Clinic) -> None:
    """'"suspended": "yes"' is refused, and the app stays as it was."""
    path = f"/v1/apps/{world.ids['research_app']}"
    error = _error(world.client.patch(path, headers=world.as_("admin"),
                                      json={"suspended": "yes"}))
    assert error["message"] == ("Invalid value for the 'suspended' field. It must be true or "
                                "false (a JSON boolean), but got 'yes'.")
    assert error["field"] == "suspended"
    assert world.client.get(path, headers=world.as_("admin")).json()["suspended"] is False


def test_input_strict_boolean_does_not_make_app_commercial(world: Clinic) -> None:
    """'"commercial": "yes"' is refused: nothing is registered."""
    before = len(world.client.get("/v1/apps", headers=world.as_("owner2")).json())
    error = _error(world.client.post("/v1/apps", headers=world.as_("owner2"), json={
        "name": "Yes app", "commercial": "yes", "declared_purposes": ["neurofeedback"]}))
    assert error["message"] == ("Invalid value for the 'commercial' field. It must be true or "
                                "false (a JSON boolean), but got 'yes'.")
    assert len(world.client.get("/v1/apps", headers=world.as_("owner2")).json()) == before


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"sampling_rate": "250"}, "sampling_rate",
     "Invalid value for the 'sampling_rate' field. It must be a number (a JSON number, not a "
     "string), but got '250'."),
    ({"sampling_rate": True}, "sampling_rate",
     "Invalid value for the 'sampling_rate' field. It must be a number (a JSON number, not a "
     "string), but got true."),
    ({"channel_names": "C3"}, "channel_names",
     "Invalid value for the 'channel_names' field. It must be a list, but got 'C3'."),
    ({"channel_names": [3]}, "channel_names.0",
     "Invalid value for the 'channel_names.0' field. It must be a string, but got 3."),
])
def test_input_strict_numbers_and_lists(world: Clinic, changes: dict[str, object], field: str,
                                        message: str) -> None:
    """A number is a JSON number and a list a JSON list: no coercion from strings."""
    error = _error(_new_device(world, **changes))
    assert error["message"] == message
    assert error["field"] == field


def test_input_strict_integer_in_nested_notice(world: Clinic) -> None:
    """The notice version "1" is a string, not the integer 1."""
    body = {"subject_id": world.ids["adult1"], "app_id": world.ids["research_app"],
            "purpose_id": "research_noncommercial",
            "notice": {**notice("research_noncommercial"), "version": "1"}}
    error = _error(world.client.post("/v1/consents", headers=world.as_("adult1"), json=body))
    assert error["message"] == ("Invalid value for the 'notice.version' field. It must be a "
                                "whole number (a JSON number, not a string), but got '1'.")
    assert error["field"] == "notice.version"


def test_input_dates_are_iso_strings_not_numbers(world: Clinic) -> None:
    """A birth date given as a number of seconds is refused, an ISO date accepted."""
    error = _error(world.client.post("/v1/subjects", headers=world.as_("clin1"),
                                     json={"date_of_birth": 946684800}))
    assert error["message"] == ("Invalid value for the 'date_of_birth' field. It must be an "
                                "ISO 8601 date or date-time string, but got int.")
    created = world.client.post("/v1/subjects", headers=world.as_("clin1"),
                                json={"date_of_birth": "2000-01-01"})
    assert created.status_code == 201, created.text


# -- sizes and quotes --------------------------------------------------------------
def test_input_megabyte_string_is_not_echoed(world: Clinic) -> None:
    """A 1 MB name is refused with a message quoting 80 characters of it."""
    response = world.client.post("/v1/subjects", headers=world.as_("clin1"),
                                 json={"display_name": "a" * MB, "date_of_birth": "2000-01-01"})
    error = _error(response)
    assert error["message"] == (
        "Invalid value for the 'display_name' field. It must have at most 200 characters, "
        f"but got '{'a' * 80}'... ({MB} characters).")
    assert len(response.content) < 1000


def test_input_megabyte_channel_name_is_not_stored(world: Clinic) -> None:
    """A 1 MB channel name is refused and no device is registered."""
    before = len(world.client.get("/v1/devices", headers=world.as_("vendor1")).json())
    response = _new_device(world, channel_names=["C" * MB])
    error = _error(response)
    assert error["message"] == (
        "Invalid value for the 'channel_names.0' field. It must have at most 32 characters, "
        f"but got '{'C' * 80}'... ({MB} characters).")
    assert len(response.content) < 1000
    assert len(world.client.get("/v1/devices", headers=world.as_("vendor1")).json()) == before


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"serial": "S" * 101}, "serial",
     f"Invalid value for the 'serial' field. It must have at most 100 characters, but got "
     f"'{'S' * 80}'... (101 characters)."),
    ({"model": "M" * 101}, "model",
     f"Invalid value for the 'model' field. It must have at most 100 characters, but got "
     f"'{'M' * 80}'... (101 characters)."),
    ({"channel_names": ["Cz"] * 513, "channel_types": ["eeg"] * 513}, "channel_names",
     "Invalid value for the 'channel_names' field. It must have at most 512 items, but got "
     "513."),
    ({"channel_names": ["Fp1-very-long-name-of-33-chars-xy"]}, "channel_names.0",
     "Invalid value for the 'channel_names.0' field. It must have at most 32 characters, but "
     "got 'Fp1-very-long-name-of-33-chars-xy' (33)."),
])
def test_input_device_maximums(world: Clinic, changes: dict[str, object], field: str,
                               message: str) -> None:
    """Serials and models 100 characters, channel names 32, at most 512 channels."""
    error = _error(_new_device(world, **changes))
    assert error["message"] == message
    assert error["field"] == field


def test_input_purpose_list_and_reason_maximums(world: Clinic) -> None:
    """At most 20 declared purposes; a revocation reason of at most 1000 characters."""
    error = _error(world.client.post("/v1/apps", headers=world.as_("owner1"), json={
        "name": "Many", "commercial": False, "declared_purposes": ["neurofeedback"] * 21}))
    assert error["message"] == ("Invalid value for the 'declared_purposes' field. It must have "
                                "at most 20 items, but got 21.")
    error = _error(world.client.post(f"/v1/consents/{world.ids['c_adult1_clinic']}/revoke",
                                     headers=world.as_("adult1"), json={"reason": "r" * 1001}))
    assert error["field"] == "reason"
    assert error["message"].startswith("Invalid value for the 'reason' field. It must have at "
                                       "most 1000 characters, but got 'rrr")


def test_input_long_path_id_is_refused_not_echoed(world: Clinic) -> None:
    """An id longer than any id is a 422 quoting 80 characters, not a 404 echoing it all."""
    error = _error(world.client.get("/v1/apps/" + "x" * 5000, headers=world.as_("admin")))
    assert error["message"] == ("Invalid value for the 'app_id' field. It must have at most 64 "
                                f"characters, but got '{'x' * 80}'... (5000 characters).")


def test_input_body_that_is_not_utf8_is_a_422(world: Clinic) -> None:
    """Bytes that are not UTF-8 are answered like any body that is not JSON."""
    response = world.client.post("/v1/accounts", headers={**world.as_("admin"),
                                                          "Content-Type": "application/json"},
                                 content=b"t\xe9")
    error = _error(response)
    assert error == {"code": "invalid_request", "message": "The request body is not valid JSON.",
                     "field": "body"}


# -- identifiers -------------------------------------------------------------------
@pytest.mark.parametrize(("username", "shown"), [
    ("ad\u200bmin2", "U+200B (ZERO WIDTH SPACE)"),
    ("\u202etxt.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("clin\u00001", "U+0000 (unnamed)"),
    ("clin\u31641", "U+3164 (HANGUL FILLER)"),
])
def test_input_username_with_invisible_character_is_refused(world: Clinic, username: str,
                                                           shown: str) -> None:
    """Zero-width, bidirectional, control and filler characters make no account."""
    error = _error(world.client.post("/v1/accounts", headers=world.as_("admin"), json={
        "username": username, "password": PASSWORD, "role": "clinician"}))
    assert error["message"] == (
        f"Invalid value for the 'username' field. It contains the character {shown}, which is "
        "invisible or controls how text is drawn; use letters, digits, punctuation and plain "
        "spaces only.")
    assert error["field"] == "username"


def test_input_username_is_normalised_at_creation_and_login(world: Clinic) -> None:
    """A full-width username is stored in NFKC, and found by its full-width form at login."""
    created = world.client.post("/v1/accounts", headers=world.as_("admin"), json={
        "username": "ｎｕｒｓｅ９", "password": PASSWORD, "role": "clinician"})
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "nurse9"
    again = world.client.post("/v1/accounts", headers=world.as_("admin"), json={
        "username": "nurse9", "password": PASSWORD, "role": "clinician"})
    assert again.status_code == 409, again.text
    for typed in ("ｎｕｒｓｅ９", "nurse9"):
        login = world.client.post("/v1/auth/login",
                                  json={"username": typed, "password": PASSWORD})
        assert login.status_code == 200, login.text
    world.client.cookies.clear()


def test_input_serial_with_invisible_character_is_refused(world: Clinic) -> None:
    """Serials go through the same identifier check as usernames."""
    error = _error(_new_device(world, serial="SN-\u200d42"))
    assert error["message"] == (
        "Invalid value for the 'serial' field. It contains the character U+200D (ZERO WIDTH "
        "JOINER), which is invisible or controls how text is drawn; use letters, digits, "
        "punctuation and plain spaces only.")


# -- filters and unknown parameters ------------------------------------------------
def test_input_app_may_not_filter_consents_by_subject(world: Clinic) -> None:
    """An app's subject_id filter is refused rather than ignored."""
    response = world.client.get("/v1/consents", headers=world.as_("clinic_app"),
                                params={"subject_id": world.ids["adult1"]})
    error = _error(response)
    assert error["message"] == ("The 'subject_id' filter is not available to apps: an app "
                                "knows subjects only by its own pseudonyms. Remove it.")
    assert error["field"] == "subject_id"


def test_input_subject_filter_out_of_reach_equals_unknown(world: Clinic) -> None:
    """Another clinician's patient as a filter answers exactly like a made-up id."""
    real, fake = world.ids["adult1"], str(uuid.uuid4())
    seen = world.client.get("/v1/consents", headers=world.as_("clin2"),
                            params={"subject_id": real})
    unknown = world.client.get("/v1/consents", headers=world.as_("clin2"),
                               params={"subject_id": fake})
    assert _error(seen)["message"] == (f"Invalid value for the 'subject_id' filter. No subject "
                                       f"with id '{real}' exists, or you may not access it.")
    assert seen.text.replace(real, "<id>") == unknown.text.replace(fake, "<id>")
    mine = world.client.get("/v1/consents", headers=world.as_("clin1"),
                            params={"subject_id": real})
    assert [c["id"] for c in mine.json()] == [world.ids["c_adult1_clinic"]]


@pytest.mark.parametrize(("path", "allowed"), [
    ("/v1/subjects", "none"), ("/v1/apps", "none"), ("/v1/devices", "none"),
    ("/v1/care-relationships", "none"), ("/v1/consents", "'subject_id'"),
    ("/v1/connections", "none"), ("/v1/purposes", "none"), ("/v1/accounts", "none"),
    ("/v1/ledger/leaves", "'limit', 'start'"), ("/v1/ledger/checkpoints", "'from_size', 'limit'"),
])
def test_input_unknown_query_parameter_is_refused(world: Clinic, path: str,
                                                  allowed: str) -> None:
    """Every list refuses a filter it does not have, naming it and the ones it has."""
    error = _error(world.client.get(path, headers=world.as_("admin"),
                                    params={"status": "active"}))
    assert error["message"] == (f"The 'status' query parameter is not known on GET {path}; "
                                f"the parameters allowed here are: {allowed}. Remove it.")
    assert error["field"] == "status"


# -- pairing -----------------------------------------------------------------------
def test_input_pairing_someone_elses_device_equals_unknown(world: Clinic) -> None:
    """A device paired with another subject answers exactly like an unknown device."""
    device = world.ids["dev2"]
    paired = world.client.post(f"/v1/devices/{device}/pairing", headers=world.as_("clin2"),
                               json={"subject_id": world.ids["child2"]})
    assert paired.status_code == 200, paired.text
    fake = str(uuid.uuid4())
    for caller, subject in (("adult1", "adult1"), ("clin1", "child1")):
        taken = world.client.post(f"/v1/devices/{device}/pairing", headers=world.as_(caller),
                                  json={"subject_id": world.ids[subject]})
        unknown = world.client.post(f"/v1/devices/{fake}/pairing", headers=world.as_(caller),
                                    json={"subject_id": world.ids[subject]})
        assert taken.status_code == unknown.status_code == 404, taken.text
        assert taken.text.replace(device, "<id>") == unknown.text.replace(fake, "<id>")
    again = world.client.post(f"/v1/devices/{device}/pairing", headers=world.as_("clin2"),
                              json={"subject_id": world.ids["child2"]})
    assert _error(again, 409)["message"] == "This device is already paired with this subject."
