"""The OAuth2 token endpoint (client credentials) on authlib's AuthorizationServer core.

authlib ships no async FastAPI server, so this module adapts the request and the
response itself: the form body is read by FastAPI and handed to authlib as its payload.

Unknown and refused look the same: a client id that does not exist, an app that is
suspended, a device or app that was deleted, a wrong secret and an authentication
method the client may not use all take the same path (the presented secret is still
compared, in constant time, against a stored or a dummy digest) and get the same
answer: 401, ``{"error": "invalid_client", "error_description": CLIENT_REFUSED}`` and
the same ``WWW-Authenticate`` header.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from starlette.responses import Response

from neurogate.consent.abuse import account_key
from neurogate.consent.accounts import token_digest
from neurogate.consent.models import App, Device, OAuthClient
from neurogate.errors import RateLimitedError
from neurogate.gateway.deps import client_owner_active
from neurogate.gateway.state import Gateway

CLIENT_REFUSED = (
    "The client credentials were refused: the client_id and client_secret must belong to "
    "a registered, active app or device, sent by HTTP Basic or in the form body."
)
TOKEN_RATE_LIMITED = (
    "Too many refused token requests from this address; wait the number of seconds given "
    "in the Retry-After header, then try again."
)
TOKEN_THROTTLE = "token.address"
_REFUSED_HEADERS = [("WWW-Authenticate", 'Basic realm="neurogate", error="invalid_client"')]
# Compared against when there is no stored secret, so that an unknown client costs what a
# known one with a wrong secret costs.
_DUMMY_DIGEST = token_digest(secrets.token_urlsafe(32))


class _Client(ClientMixin):
    """authlib's view of an app's or device's client credentials.

    ``row`` is None for a client id that does not exist: it then behaves as a client
    whose every secret is wrong.
    """

    def __init__(self, row: OAuthClient | None, active: bool, client_id: str = "") -> None:
        self.row = row
        self.active = active and row is not None
        self.client_id = row.client_id if row is not None else client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.row.scopes.split() if self.row is not None and self.active else []
        if not scope:
            return " ".join(allowed)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        stored = self.row.secret_hash if self.row is not None else _DUMMY_DIGEST
        matches = hmac.compare_digest(stored, token_digest(client_secret))
        return self.active and matches

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials, authenticated by HTTP Basic or in the form body."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _FormPayload(OAuth2Payload):
    def __init__(self, form: dict[str, list[str]]) -> None:
        self._form = form

    @property
    def data(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._form.items() if v}

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return defaultdict(list, self._form)


class _Request(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: Mapping[str, str],
                 form: dict[str, list[str]]) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = _FormPayload(form)
        self._form = {k: v[0] for k, v in form.items() if v}

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class TokenServer(AuthorizationServer):  # type: ignore[misc]
    """Client-credentials token issuance for apps and devices."""

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(scopes_supported=None)
        self.gateway = gateway
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", self._generate)

    def query_client(self, client_id: str) -> _Client:
        """The client, or a stand-in that refuses every secret (never None: see above)."""
        with self.gateway.transaction() as session:
            row = session.get(OAuthClient, client_id)
            # An unknown client looks up an owner too (none), as a known one does.
            kind = row.kind if row is not None else "app"
            owner = session.get(App if kind == "app" else Device,
                                row.owner_id if row is not None else client_id)
            if row is None:
                return _Client(None, active=False, client_id=client_id)
            return _Client(row, active=client_owner_active(owner))

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """JWT access tokens are self-contained; nothing to store."""

    def _generate(self, grant_type: str, client: _Client, user: object = None,
                  scope: str | None = None, expires_in: int | None = None,
                  include_refresh_token: bool = False) -> dict[str, Any]:
        scopes = client.get_allowed_scope(scope)
        assert client.row is not None and client.active  # authenticated just now
        return {
            "access_token": self.gateway.tokens.issue(
                kind=client.row.kind, subject=client.row.owner_id,
                client_id=client.row.client_id, scope=scopes,
            ),
            "token_type": "Bearer",
            "expires_in": self.gateway.tokens.ttl_seconds,
            "scope": scopes,
        }

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]
                        ) -> Response:
        if isinstance(body, dict) and body.get("error") == "invalid_client":
            # One answer for every refused client, whatever authlib found wrong.
            status, headers = 401, _REFUSED_HEADERS
            body = {"error": "invalid_client", "error_description": CLIENT_REFUSED}
        elif isinstance(body, dict) and "error" in body:
            body = {
                "error": body["error"],
                "error_description": body.get("error_description", ""),
            }
        payload = json.dumps(body) if isinstance(body, dict) else body
        out = Response(payload, status_code=status, media_type="application/json")
        for name, value in headers:
            if name.lower() != "content-type":
                out.headers[name] = value
        return out

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No listeners: authlib's signals are for framework integrations."""

    def token_response(self, *, method: str, uri: str, headers: Mapping[str, str],
                       form: dict[str, list[str]],
                       client_address: str | None = None) -> Response:
        """Run authlib's token endpoint over an already-read form body.

        Refused clients are counted per client address: past
        ``NEUROGATE_TOKEN_ATTEMPTS_PER_ADDRESS_PER_MINUTE`` the address gets
        :class:`~neurogate.errors.RateLimitedError` (429, ``Retry-After``) until the
        window has passed, whatever it sends.
        """
        settings = self.gateway.settings
        throttle = self.gateway.throttles.get(
            TOKEN_THROTTLE, limit=settings.token_attempts_per_address_per_minute
        )
        key = account_key(settings.secret_key.get_secret_value(),
                          f"address:{client_address or 'unknown'}")
        if not throttle.allowed(key):
            raise RateLimitedError(TOKEN_RATE_LIMITED, retry_after=throttle.retry_after(key))
        try:
            request = _Request(method, uri, headers, form)
        except OAuth2Error as exc:  # e.g. plain http to a non-loopback address
            return self.handle_error_response(None, exc)  # type: ignore[no-any-return]
        response: Response = self.create_token_response(request)
        if response.status_code == 401:
            throttle.hit(key)
        return response


__all__ = ["CLIENT_REFUSED", "TOKEN_RATE_LIMITED", "TokenServer"]
