"""The OpenID Connect client of hospital sign-in, built on authlib's Starlette integration.

authlib does the protocol: discovery (``<issuer>/.well-known/openid-configuration``),
the authorization request with ``state``, ``nonce`` and a PKCE S256 challenge, the code
exchange with the client secret and the verifier, and the ID token's validation (its
signature against the provider's JWKS and the algorithms it announces; ``iss``, ``aud``,
``exp``, ``iat``, ``nonce`` and ``at_hash``). NeuroGate keeps what a sign-in under way
needs (state, nonce, PKCE verifier, redirect URI) in the store (:class:`FlowStore`, the
``oidc_flows`` table, so every node and worker can finish a sign-in another began), and
only a marker naming the state in the browser: a cookie, ``ngs_oidc``. A callback whose
``state`` is not the one of that browser's cookie finds no flow and is refused.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
import httpx2  # authlib's HTTP client runs on httpx2 (a dependency), else on httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi.concurrency import run_in_threadpool
from joserfc.errors import JoseError
from sqlmodel import delete
from starlette.requests import Request
from starlette.responses import Response

from neurogate.consent.models import OidcFlow, utcnow
from neurogate.errors import AuthenticationError
from neurogate.gateway.oidc.mappings import Identity
from neurogate.gateway.state import Gateway

NAME = "hospital"
FLOW_COOKIE = "ngs_oidc"
CALLBACK_PATH = "/portal/oidc/callback"
FLOW_SECONDS = 600
DISCOVERY = "/.well-known/openid-configuration"
REFUSED = "The identity provider's answer did not pass validation; sign in again."
log = logging.getLogger("neurogate.gateway.oidc")


class SignInFailed(AuthenticationError):
    """The provider's answer failed validation (state, code, ID token), or never came."""

    code = "oidc_refused"


class FlowStore:
    """authlib's cache interface (async get, set, delete) over the ``oidc_flows`` table."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @staticmethod
    def _key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def _get(self, key: str) -> str | None:
        with self.gateway.transaction() as session:
            row = session.get(OidcFlow, self._key(key))
            if row is None or row.expires_at < utcnow():
                return None
            return row.data

    def _set(self, key: str, value: str, expires_in: int | None) -> None:
        now = utcnow()
        with self.gateway.transaction() as session:
            session.exec(delete(OidcFlow).where(OidcFlow.expires_at < now))  # type: ignore[call-overload, arg-type]
            session.merge(OidcFlow(key=self._key(key), data=value, expires_at=now + timedelta(
                seconds=min(expires_in or FLOW_SECONDS, FLOW_SECONDS))))

    def _delete(self, key: str) -> None:
        with self.gateway.transaction() as session:
            row = session.get(OidcFlow, self._key(key))
            if row is not None:
                session.delete(row)

    async def get(self, key: str) -> str | None:
        return await run_in_threadpool(self._get, key)

    async def set(self, key: str, value: str, expires_in: int | None = None) -> None:
        await run_in_threadpool(self._set, key, value, expires_in)

    async def delete(self, key: str) -> None:
        await run_in_threadpool(self._delete, key)


def _state_key(state: str) -> str:
    return f"_state_{NAME}_{state}"


class HospitalSignIn:
    """One configured provider: starts sign-ins and validates their callbacks."""

    def __init__(self, gateway: Gateway) -> None:
        settings = gateway.settings
        if not settings.oidc_enabled:
            msg = "Hospital sign-in is not configured (NEUROGATE_OIDC_* settings)."
            raise RuntimeError(msg)
        assert settings.oidc_issuer and settings.oidc_client_secret and settings.oidc_redirect_base
        self.issuer = settings.oidc_issuer
        self.display_name = settings.oidc_display_name or settings.oidc_issuer
        self.redirect_uri = settings.oidc_redirect_base + CALLBACK_PATH
        self.client_id = settings.oidc_client_id
        self.secure_cookie = settings.environment != "development"
        self.oauth = OAuth(cache=FlowStore(gateway))
        self.client = self.oauth.register(
            name=NAME,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value(),
            server_metadata_url=self.issuer.rstrip("/") + DISCOVERY,
            client_kwargs={"scope": settings.oidc_scope, "code_challenge_method": "S256",
                           "token_endpoint_auth_method": "client_secret_basic",
                           "timeout": 10.0},
        )

    async def start(self, request: Request) -> Response:
        """Redirect to the provider; the browser keeps the state in ``ngs_oidc``."""
        session: dict[str, Any] = {}
        request.scope["session"] = session
        try:
            response = await self.client.authorize_redirect(request, self.redirect_uri)
        except (httpx2.HTTPError, httpx.HTTPError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("hospital sign-in: the provider's discovery failed (%s)",
                        type(exc).__name__)
            msg = "The identity provider cannot be reached; try again later."
            raise SignInFailed(msg) from exc
        state = next(key for key in session)[len(_state_key("")):]
        response.status_code = 303
        response.set_cookie(FLOW_COOKIE, state, max_age=FLOW_SECONDS, httponly=True,
                            samesite="lax", secure=self.secure_cookie, path=CALLBACK_PATH)
        return response

    async def finish(self, request: Request) -> Identity:
        """The identity of a callback whose state, code and ID token all validate."""
        state = request.cookies.get(FLOW_COOKIE, "")
        session: dict[str, Any] = {}
        if state:
            session[_state_key(state)] = {"exp": utcnow().timestamp() + FLOW_SECONDS}
        request.scope["session"] = session
        try:
            metadata = await self.client.load_server_metadata()
            if metadata.get("issuer") != self.issuer:
                # OpenID Connect Discovery 1.0 section 4.3: the issuer must be the one asked.
                msg = "The provider's metadata names another issuer."
                raise ValueError(msg)
            token = await self.client.authorize_access_token(request, claims_options={
                "iss": {"essential": True, "values": [self.issuer]},
                "aud": {"essential": True, "values": [self.client_id]},
            })
        except (OAuthError, JoseError, httpx2.HTTPError, httpx.HTTPError, ValueError, KeyError,
                TypeError) as exc:
            # The kind of failure and the claim's name only: no token, claim value or
            # personal data reaches the log.
            claim = getattr(exc, "claim", None)
            log.warning("hospital sign-in refused: %s%s", type(exc).__name__,
                        f" (claim {claim})" if isinstance(claim, str) else "")
            raise SignInFailed(REFUSED) from exc
        userinfo: Mapping[str, Any] | None = token.get("userinfo")
        if not userinfo or not isinstance(userinfo.get("sub"), str) \
                or not isinstance(userinfo.get("iss"), str):
            log.warning("hospital sign-in refused: no validated ID token")
            raise SignInFailed(REFUSED)
        return Identity(issuer=userinfo["iss"], subject=userinfo["sub"], claims=dict(userinfo))


def end_flow(response: Response) -> None:
    """Forget the browser's marker of a finished (or refused) sign-in."""
    response.delete_cookie(FLOW_COOKIE, path=CALLBACK_PATH)


__all__ = ["CALLBACK_PATH", "FLOW_COOKIE", "FlowStore", "HospitalSignIn", "SignInFailed",
           "end_flow"]
