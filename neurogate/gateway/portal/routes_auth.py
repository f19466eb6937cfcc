"""Signing in and out of the portal, and choosing its language."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from neurogate.consent.accounts import close_session
from neurogate.consent.accounts import open_session as start_session
from neurogate.consent.preferences import set_language
from neurogate.errors import AuthenticationError, RateLimitedError
from neurogate.gateway.deps import SESSION_COOKIE, GatewayDep
from neurogate.gateway.login import attempt_login
from neurogate.gateway.portal import web
from neurogate.gateway.portal.web import (
    CsrfFormDep,
    FormErrors,
    OptionalPortalUserDep,
    form_text,
    render,
)

router = APIRouter(prefix="/portal", tags=["portal"])


def _hospital(request: Request) -> str:
    """The hospital identity provider's name for the sign-in button ('' when none)."""
    client = getattr(request.app.state, "hospital_sign_in", None)
    return str(client.display_name) if client is not None else ""


def _safe_next(value: str, fallback: str) -> str:
    """Only a path on this site under /portal (no scheme, no host, no //)."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/portal") or "\\" in value:
        return fallback
    return value


@router.get("/login")
def read_login(request: Request, user: OptionalPortalUserDep, next: str = "") -> Response:
    """The sign-in form."""
    if user is not None:
        return RedirectResponse(_safe_next(next, web.HOME.get(user.role, "/portal")), 303)
    return render(request, "login.html", {"next": _safe_next(next, ""), "username": "",
                                          "hospital": _hospital(request)})


@router.post("/login")
def login(request: Request, gw: GatewayDep, form: CsrfFormDep) -> Response:
    """Check the username and password; start a session."""
    gettext = web.gettext_for(web.request_language(request))
    username = form_text(form, "username")
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    errors = FormErrors()
    if not username:
        errors.add("username", gettext("Enter your username."))
    if not password:
        errors.add("password", gettext("Enter your password."))
    account = None
    retry_after = 0
    if not errors:
        try:
            account = attempt_login(
                gw, username=username, password=password,
                client_address=request.client.host if request.client is not None else None)
        except RateLimitedError as exc:
            retry_after = exc.retry_after
            errors.add("username", gettext(
                "Too many tries went wrong. Wait %(seconds)s seconds, then try again.",
                seconds=exc.retry_after))
        except AuthenticationError:
            errors.add("username", gettext(
                "The username or password is wrong. Check both and try again."))
        if account is not None:
            with gw.transaction() as session:
                token = start_session(session=session, account=account)
    next_path = _safe_next(form_text(form, "next"), "")
    if errors or account is None:
        response = render(request, "login.html",
                          {"errors": errors, "username": username, "next": next_path,
                           "hospital": _hospital(request)},
                          status=429 if retry_after else 400)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        return response
    response = RedirectResponse(next_path or web.HOME.get(account.role, "/portal"),
                                status_code=303)
    web.set_session_cookie(response, gw, token)
    response.delete_cookie(web.PRESESSION_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, gw: GatewayDep, form: CsrfFormDep) -> Response:
    """End the session."""
    token = web.session_token(request)
    if token is not None:
        with gw.transaction() as session:
            close_session(session=session, token=token)
    response = RedirectResponse("/portal/login?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language")
def choose_language(request: Request, gw: GatewayDep, form: CsrfFormDep,
                    user: OptionalPortalUserDep) -> Response:
    """Switch the portal's language (kept on the account when signed in)."""
    language = web.check_language(form_text(form, "language"))
    back = _safe_next(form_text(form, "next"), "/portal")
    if language is None:
        gettext = web.gettext_for(web.request_language(request))
        errors = FormErrors()
        errors.add("language", gettext("Choose English, 中文（简体） or Español."))
        return render(request, "language.html", {"errors": errors, "next": back}, status=400)
    if user is not None:
        with gw.transaction() as session:
            set_language(session=session, account_id=user.account_id, language=language)
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(web.LANGUAGE_COOKIE, language, httponly=True, samesite="strict",
                        secure=gw.settings.environment != "development",
                        max_age=365 * 24 * 3600, path="/")
    return response


@router.get("/language")
def read_language(request: Request, user: OptionalPortalUserDep, next: str = "") -> Response:
    """The language chooser as a page of its own."""
    return render(request, "language.html", {"next": _safe_next(next, "/portal")})
