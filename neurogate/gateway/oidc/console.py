"""The console page of hospital sign-in: administrators approve and withdraw the mappings
of ID-token claims to staff roles, and see which identities signed in as whom.

The page calls the same functions as ``/v1/oidc/role-mappings``. Its visible words live
in its template (``console/sign_in.html``, Babel domain "console"); this module passes
problem codes, which the template words.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from neurogate.consent.models import OIDC_ROLES, Account
from neurogate.errors import ConflictError
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.oidc import mappings
from neurogate.gateway.portal.console._common import require
from neurogate.gateway.portal.web import CsrfFormDep, PortalUserDep, form_text, render
from neurogate.gateway.state import Gateway

PAGE = "/portal/console/sign-in"
router = APIRouter(include_in_schema=False)


def _page(request: Request, gw: Gateway, user: Any, *, problems: dict[str, str] | None = None,
          entered: dict[str, str] | None = None, status: int = 200) -> Response:
    issuer = gw.settings.oidc_issuer if gw.settings.oidc_enabled else None
    with gw.transaction() as session:
        found = mappings.list_mappings(session=session, principal=user.principal,
                                       issuer=issuer or "")
        identities = _identities(session, user)
    return render(request, "console/sign_in.html", {
        "configured": issuer is not None, "issuer": issuer or "",
        "provider": gw.settings.oidc_display_name or issuer or "",
        "mappings": found, "identities": identities, "roles": OIDC_ROLES,
        "problems": problems or {}, "entered": entered or {"claim": "groups"},
    }, status=status)


def _identities(session: Session, user: Any) -> list[tuple[str, str, str]]:
    rows = []
    for link in mappings.list_identities(session=session, principal=user.principal):
        account = session.get(Account, link.account_id)
        if account is not None:
            rows.append((account.username, account.role, link.issuer))
    return rows


@router.get(PAGE)
def read_sign_in(request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """The approved mappings, a form to add one, and the linked identities."""
    require(user, "admin")
    return _page(request, gw, user)


@router.post(PAGE)
def create_sign_in_mapping(request: Request, gw: GatewayDep, user: PortalUserDep,
                           form: CsrfFormDep) -> Response:
    """Approve a mapping from the form; the page again, with what went wrong if anything."""
    require(user, "admin")
    entered = {name: form_text(form, name) for name in ("claim", "value", "role")}
    if not gw.settings.oidc_enabled or gw.settings.oidc_issuer is None:
        return _page(request, gw, user, problems={"claim": "not_configured"},
                     entered=entered, status=409)
    problems = {exc.field or "claim": exc.field or "claim"
                for exc in mappings.mapping_problems(**entered)}
    if problems:
        return _page(request, gw, user, problems=problems, entered=entered, status=400)
    try:
        with gw.transaction() as session:
            mappings.create_mapping(session=session, principal=user.principal,
                                    issuer=gw.settings.oidc_issuer, **entered)
    except ConflictError:
        return _page(request, gw, user, problems={"value": "duplicate"}, entered=entered,
                     status=409)
    return RedirectResponse(f"{PAGE}?added=1", status_code=303)


@router.post(PAGE + "/{mapping_id}/delete")
def delete_sign_in_mapping(mapping_id: str, gw: GatewayDep, user: PortalUserDep,
                           form: CsrfFormDep) -> Response:
    """Withdraw a mapping."""
    require(user, "admin")
    with gw.transaction() as session:
        mappings.delete_mapping(session=session, principal=user.principal,
                                mapping_id=mapping_id[:64])
    return RedirectResponse(f"{PAGE}?deleted=1", status_code=303)


__all__ = ["PAGE", "router"]
