"""Hospital sign-in: the portal's redirect and callback, and the administrators' API for
claim-to-role mappings and linked identities.

The callback opens the same server-side session as the password form
(``neurogate.consent.accounts.open_session``, the ``ngs_session`` cookie), so everything
after it (console pages, the REST API with that session) asks "who is this account" the
one way it always does (``neurogate.gateway.deps.principal_for_token``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, StringConstraints

from neurogate.consent.abuse import account_key
from neurogate.consent.accounts import open_session
from neurogate.consent.models import Account
from neurogate.errors import ConflictError, NotFoundError
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.oidc import mappings
from neurogate.gateway.oidc.client import HospitalSignIn, SignInFailed, end_flow
from neurogate.gateway.portal import web
from neurogate.gateway.portal.web import CsrfFormDep, render
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath
from neurogate.gateway.state import Gateway

portal = APIRouter(prefix="/portal/oidc", include_in_schema=False)
api = APIRouter(prefix="/v1/oidc", tags=["hospital sign-in"], dependencies=[STRICT_QUERY])
START_THROTTLE = "oidc.start"
NOT_CONFIGURED = (
    "Hospital sign-in is not configured; set NEUROGATE_OIDC_ISSUER, NEUROGATE_OIDC_CLIENT_ID, "
    "NEUROGATE_OIDC_CLIENT_SECRET and NEUROGATE_OIDC_REDIRECT_BASE first."
)


def sign_in_for(request: Request) -> HospitalSignIn | None:
    """The configured provider of this gateway, or None."""
    client: HospitalSignIn | None = getattr(request.app.state, "hospital_sign_in", None)
    return client


# -- portal ----------------------------------------------------------------------------


@portal.post("/start")
async def start_sign_in(request: Request, form: CsrfFormDep) -> Response:
    """Send the browser to the hospital's identity provider."""
    client = sign_in_for(request)
    if client is None:
        raise NotFoundError(NOT_CONFIGURED)
    gw: Gateway = request.app.state.gateway
    throttle = gw.throttles.get(START_THROTTLE,
                                limit=gw.settings.oidc_starts_per_address_per_minute)
    address = account_key(gw.settings.secret_key.get_secret_value(),
                          f"address:{request.client.host if request.client else 'unknown'}")
    if not throttle.hit(address):
        wait = max(throttle.retry_after(address), 1)
        response = render(request, "oidc.html", {"outcome": "busy", "seconds": wait,
                                                 "provider": client.display_name}, status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        return await client.start(request)
    except SignInFailed:
        return render(request, "oidc.html", {"outcome": "unreachable",
                                             "provider": client.display_name}, status=502)


def _open(gw: Gateway, client: HospitalSignIn, identity: mappings.Identity) -> tuple[str, str]:
    with gw.transaction() as session:
        account = mappings.sign_in(session=session, issuer=client.issuer, identity=identity)
        return open_session(session=session, account=account), account.role


@portal.get("/callback")
async def finish_sign_in(request: Request, gw: GatewayDep) -> Response:
    """Validate the provider's answer and start a portal session for the mapped account."""
    client = sign_in_for(request)
    if client is None:
        raise NotFoundError(NOT_CONFIGURED)
    outcome, status, token, role = "refused", 400, None, ""
    try:
        identity = await client.finish(request)
        token, role = await run_in_threadpool(_open, gw, client, identity)
        outcome, status = "signed_in", 200
    except mappings.NoMappingError:
        outcome, status = "no_role", 403
    except SignInFailed:
        pass
    # A page, not a redirect: the session cookie is SameSite=Strict, and a browser would
    # not send it on a redirect chain that began at the provider's site.
    response = render(request, "oidc.html", {"outcome": outcome, "provider": client.display_name,
                                             "home": web.HOME.get(role, "/portal")},
                      status=status)
    end_flow(response)
    if token is not None:
        web.set_session_cookie(response, gw, token)
        response.delete_cookie(web.PRESESSION_COOKIE)
    return response


# -- API -------------------------------------------------------------------------------


class RoleMappingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    claim: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    value: Annotated[str, StringConstraints(min_length=1, max_length=mappings.MAX_VALUE_LENGTH)]
    role: Annotated[str, StringConstraints(min_length=1, max_length=40)]


class RoleMappingPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    issuer: str
    claim: str
    value: str
    role: str
    created_at: datetime


class IdentityPublic(BaseModel):
    id: str
    issuer: str
    subject: str
    account_id: str
    username: str
    role: str
    created_at: datetime
    last_login_at: datetime | None


def _issuer(gw: Gateway) -> str:
    if not gw.settings.oidc_enabled or gw.settings.oidc_issuer is None:
        raise ConflictError(NOT_CONFIGURED)
    return gw.settings.oidc_issuer


@api.get("/role-mappings")
def read_role_mappings(gw: GatewayDep, principal: CurrentPrincipal) -> list[RoleMappingPublic]:
    """List the approved mappings of ID-token claims to staff roles (administrators)."""
    with gw.transaction() as session:
        found = mappings.list_mappings(session=session, principal=principal,
                                       issuer=gw.settings.oidc_issuer or "")
        return [RoleMappingPublic.model_validate(m) for m in found]


@api.post("/role-mappings", status_code=201)
def create_role_mapping(body: RoleMappingCreate, gw: GatewayDep,
                        principal: CurrentPrincipal) -> RoleMappingPublic:
    """Approve a mapping: an ID token whose claim holds the value signs in with the role
    ('clinician' or 'admin'; never a subject's or guardian's role) (administrators)."""
    with gw.transaction() as session:
        mappings.check_mapping(claim=body.claim, value=body.value, role=body.role)
        mapping = mappings.create_mapping(session=session, principal=principal,
                                          issuer=_issuer(gw), claim=body.claim,
                                          value=body.value, role=body.role)
        return RoleMappingPublic.model_validate(mapping)


@api.delete("/role-mappings/{mapping_id}", status_code=204)
def delete_role_mapping(mapping_id: IdPath, gw: GatewayDep,
                        principal: CurrentPrincipal) -> Response:
    """Withdraw a mapping; identities it alone mapped are refused from then on
    (administrators)."""
    with gw.transaction() as session:
        mappings.delete_mapping(session=session, principal=principal, mapping_id=mapping_id)
    return Response(status_code=204)


@api.get("/identities")
def read_identities(gw: GatewayDep, principal: CurrentPrincipal) -> list[IdentityPublic]:
    """List hospital identities (issuer and subject) and the accounts they sign in as
    (administrators)."""
    with gw.transaction() as session:
        found = []
        for link in mappings.list_identities(session=session, principal=principal):
            account = session.get(Account, link.account_id)
            if account is None:
                continue
            found.append(IdentityPublic(
                id=link.id, issuer=link.issuer, subject=link.subject, account_id=account.id,
                username=account.username, role=account.role, created_at=link.created_at,
                last_login_at=link.last_login_at))
        return found


__all__ = ["IdentityPublic", "RoleMappingCreate", "RoleMappingPublic", "api", "portal",
           "sign_in_for"]
