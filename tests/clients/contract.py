"""Every JSON message a test client receives is checked against the gateway's AsyncAPI
document (the schemas `neurogate.gateway.asyncapi.build_document` builds, which the gateway
serves at /asyncapi.json; tests/gateway/test_asyncapi.py checks the two are the same).

`install` makes the check apply to every test client at once: it wraps the ``recv`` of
websockets' synchronous client connection (which the client library and the raw sockets
of the tests alike read with), so each text message received on ``/v1/stream/ingest`` or
``/v1/stream/subscribe`` is validated as it is read; what it returns is unchanged. A
failure is recorded in `FAILURES` (many messages are read in background threads, where an
exception would go unnoticed) and tests/e2e/conftest.py and tests/clients/conftest.py fail
any test after which `FAILURES` is not empty. `check` validates and raises, for a message
at hand.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

import jsonschema
from websockets.sync.client import ClientConnection

from neurogate.gateway.asyncapi import build_document

FAILURES: list[str] = []
_LOCK = threading.Lock()
# What the gateway sends on each endpoint (operations with action "send", and replies).
_SENT_BY_GATEWAY = {"ingest": ("welcome", "error"),
                    "subscribe": ("subscribed", "refused", "data", "gap", "revoked", "error")}


@functools.cache
def _validators() -> dict[str, list[tuple[str, jsonschema.Draft7Validator]]]:
    messages = build_document()["components"]["messages"]
    out: dict[str, list[tuple[str, jsonschema.Draft7Validator]]] = {}
    for endpoint, names in _SENT_BY_GATEWAY.items():
        out[endpoint] = []
        for name in names:
            schema = messages[name]["payload"]
            jsonschema.Draft7Validator.check_schema(schema)
            out[endpoint].append((schema["properties"]["type"]["const"],
                                  jsonschema.Draft7Validator(schema)))
    return out


def problems(endpoint: str, message: Any) -> list[str]:
    """Why ``message`` does not match any message the document lets the gateway send on
    ``endpoint`` (empty if it matches one)."""
    if not isinstance(message, dict):
        return [f"{endpoint}: a JSON message must be an object, got {type(message).__name__}"]
    candidates = [v for kind, v in _validators()[endpoint] if kind == message.get("type")]
    if not candidates:
        return [f"{endpoint}: the AsyncAPI document has no message of type "
                f"{message.get('type')!r}: {message}"]
    found: list[str] = []
    for validator in candidates:
        errors = sorted(validator.iter_errors(message), key=str)
        if not errors:
            return []
        found += [f"{endpoint}: {e.message} at {list(e.absolute_path)} in {message}"
                  for e in errors]
    return found


def record(endpoint: str, message: Any) -> list[str]:
    """Record (without raising) why ``message`` does not validate; returns the problems."""
    found = problems(endpoint, message)
    if found:
        with _LOCK:
            FAILURES.extend(found)
    return found


def check(endpoint: str, message: Any) -> None:
    """Record and raise if ``message`` does not validate against the document."""
    found = record(endpoint, message)
    if found:
        raise AssertionError("; ".join(found))


def take_failures() -> list[str]:
    """The failures recorded so far (and forget them)."""
    with _LOCK:
        found = list(FAILURES)
        FAILURES.clear()
    return found


def _endpoint(connection: ClientConnection) -> str | None:
    path = connection.request.path if connection.request is not None else ""
    for endpoint in _SENT_BY_GATEWAY:
        if path.startswith(f"/v1/stream/{endpoint}"):
            return endpoint
    return None


def install() -> None:
    """Validate every text message a websockets client reads from a stream endpoint, from
    now on (idempotent)."""
    original = ClientConnection.recv
    if getattr(original, "_contract", False):
        return

    @functools.wraps(original)
    def recv(self: ClientConnection, *args: Any, **kwargs: Any) -> Any:
        message = original(self, *args, **kwargs)
        endpoint = _endpoint(self)
        if endpoint is not None and isinstance(message, str):
            try:
                decoded = json.loads(message)
            except ValueError:
                decoded = message
            record(endpoint, decoded)
        return message

    recv._contract = True  # type: ignore[attr-defined]
    ClientConnection.recv = recv  # type: ignore[method-assign]


install()
