"""The portal's rendering: Jinja2 templates, Babel translations, languages, CSRF, forms.

Three Babel domains share one catalog per language at render time: ``portal`` (the
shell and the subject's pages), ``console`` (clinician, admin and app-owner pages) and
``data`` (activity, proof, my data). Each lives in
``locales/<babel locale>/LC_MESSAGES/<domain>.mo``; ``make messages`` extracts and
updates them, the venv step of the Makefile compiles them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import jinja2
from babel import Locale
from babel.dates import format_date as _babel_date
from babel.dates import format_datetime as _babel_datetime
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from neurogate.consent.access import Principal
from neurogate.consent.accounts import token_digest
from neurogate.errors import AuthenticationError, NeurogateError, PermissionDenied
from neurogate.gateway.deps import SESSION_COOKIE, GatewayDep, principal_for_token
from neurogate.gateway.state import Gateway

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
LOCALES = HERE / "locales"
DOMAINS = ("portal", "console", "data")
# Portal language tag -> Babel locale (directory name under locales/).
LANGUAGES = {"en": "en", "zh-Hans": "zh_Hans", "es": "es"}
LANGUAGE_NAMES = {"en": "English", "zh-Hans": "中文（简体）", "es": "Español"}
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "ngs_lang"
PRESESSION_COOKIE = "ngs_pre"
CSRF_FIELD = "csrf_token"


class LoginRequired(NeurogateError):
    """A portal page was asked for without a live session (answered with a redirect)."""

    code = "login_required"


class CsrfRefused(PermissionDenied):
    """A portal form came without a valid CSRF token, or from another site."""

    code = "csrf_refused"


# -- languages -------------------------------------------------------------------------


def _match_language(tag: str) -> str | None:
    """The portal language for a BCP 47 tag such as ``zh-CN``, ``es-MX`` or ``zh-Hans``."""
    tag = tag.strip().replace("_", "-")
    if not tag:
        return None
    lowered = tag.lower()
    for language in LANGUAGES:
        if lowered == language.lower():
            return language
    primary = lowered.split("-")[0]
    if primary == "zh":
        # Traditional-script tags (zh-Hant, zh-TW, zh-HK) are not Simplified Chinese.
        if any(part in ("hant", "tw", "hk", "mo") for part in lowered.split("-")[1:]):
            return None
        return "zh-Hans"
    return primary if primary in LANGUAGES else None


def parse_accept_language(header: str) -> list[str]:
    """Portal languages named by an ``Accept-Language`` header, best first."""
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")):
        tag, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = _match_language(tag)
        if language is not None and quality > 0:
            weighted.append((-quality, index, language))
    seen: list[str] = []
    for _, _, language in sorted(weighted):
        if language not in seen:
            seen.append(language)
    return seen


def check_language(value: str) -> str | None:
    """``value`` if it is a portal language, else None."""
    return value if value in LANGUAGES else None


def choose_language(request: Request, preference: str | None = None) -> str:
    """The account's preference, then the language cookie, then Accept-Language, then en."""
    for candidate in (preference, request.cookies.get(LANGUAGE_COOKIE)):
        if candidate and candidate in LANGUAGES:
            return candidate
    for language in parse_accept_language(request.headers.get("accept-language", "")):
        return language
    return DEFAULT_LANGUAGE


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> NullTranslations:
    """The merged catalogs of every domain for ``language``.

    Merged last to first, so that where two domains translate the same English message
    differently, the earlier domain's wording wins (the shell's "portal" first).
    """
    merged: NullTranslations | None = None
    for domain in reversed(DOMAINS):
        loaded = Translations.load(str(LOCALES), [LANGUAGES[language]], domain=domain)
        if not isinstance(loaded, Translations):
            continue
        if merged is None:
            merged = loaded
        else:
            merged.merge(loaded)  # type: ignore[attr-defined]
    return merged if merged is not None else NullTranslations()


def gettext_for(language: str) -> Any:
    """A ``gettext(message, **params)`` callable for ``language`` (new-style formatting)."""
    catalog = translations(language)

    def gettext(message: str, **params: Any) -> str:
        text = catalog.gettext(message)
        return text % params if params else text

    return gettext


def _formatters(language: str) -> dict[str, Any]:
    locale = Locale.parse(LANGUAGES[language])

    def format_date(value: date | datetime | None, format: str = "medium") -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return _babel_datetime(value, format=format, locale=locale, tzinfo=None)
        return _babel_date(value, format=format, locale=locale)

    def format_day(value: date | datetime | None, format: str = "long") -> str:
        if value is None:
            return ""
        day = value.date() if isinstance(value, datetime) else value
        return _babel_date(day, format=format, locale=locale)

    def format_number(value: float | int, digits: int | None = None) -> str:
        if digits is None:
            return format_decimal(value, locale=locale)
        return format_decimal(value, format=f"#,##0.{'0' * digits}" if digits else "#,##0",
                              locale=locale)

    return {"format_date": format_date, "format_day": format_day,
            "format_number": format_number}


@lru_cache(maxsize=len(LANGUAGES))
def environment(language: str) -> jinja2.Environment:
    """The Jinja2 environment of one language (autoescaped, gettext installed)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(_formatters(language))
    env.globals.update(languages=LANGUAGE_NAMES, csrf_field=CSRF_FIELD, nav_for=nav_for)
    return env


# -- navigation ------------------------------------------------------------------------


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


# (roles that see it, path, label). One line per page; the page's owner edits its line.
NAV: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("subject", "guardian"), "/portal", N_("Your consents")),
    (("subject", "guardian"), "/portal/activity", N_("Activity")),
    (("subject", "guardian"), "/portal/proof", N_("Proof")),
    (("subject", "guardian"), "/portal/my-data", N_("My data")),
    (("subject", "guardian"), "/portal/concerns", N_("Report a concern")),
    (("clinician",), "/portal/console", N_("Patients")),
    (("clinician", "admin"), "/portal/console/concerns", N_("Concerns")),
    (("admin",), "/portal/console/apps", N_("Apps")),
    (("admin",), "/portal/console/requests", N_("Requests")),
    (("admin",), "/portal/console/sign-in", N_("Hospital sign-in")),
    (("app_owner",), "/portal/console/my-apps", N_("My apps")),
)
# Where each role lands after signing in.
HOME = {"subject": "/portal", "guardian": "/portal", "clinician": "/portal/console",
        "admin": "/portal/console/apps", "app_owner": "/portal/console/my-apps",
        "vendor": "/portal/account"}


def nav_for(role: str | None) -> list[tuple[str, str]]:
    """(path, label msgid) of the navigation a role sees."""
    return [(path, label) for roles, path, label in NAV if role in roles]


# -- who is signed in ------------------------------------------------------------------


@dataclass(frozen=True)
class Ward:
    """A subject a guardian may act for."""

    subject_id: str
    name: str


@dataclass(frozen=True)
class PortalUser:
    """The signed-in account as the portal sees it."""

    principal: Principal
    username: str
    role: str
    language: str | None
    subject_id: str | None
    wards: tuple[Ward, ...] = field(default_factory=tuple)

    @property
    def account_id(self) -> str:
        return self.principal.id


def session_token(request: Request) -> str | None:
    """The portal session token from the cookie, if any."""
    return request.cookies.get(SESSION_COOKIE)


def load_portal_user(gateway: Gateway, token: str) -> PortalUser:
    """The account behind a session token, with its wards; AuthenticationError if none."""
    from sqlmodel import select

    from neurogate.consent.models import Account, GuardianLink, Subject

    principal = principal_for_token(gateway, token)
    if principal.kind != "account":
        msg = "The portal is for people; sign in with a username and password."
        raise AuthenticationError(msg)
    with gateway.transaction() as session:
        account = session.get(Account, principal.id)
        if account is None:
            msg = "The session token is unknown, revoked or expired; log in again."
            raise AuthenticationError(msg)
        wards: list[Ward] = []
        if account.role == "guardian":
            rows = session.exec(
                select(Subject)
                .join(GuardianLink, GuardianLink.subject_id == Subject.id)  # type: ignore[arg-type]
                .where(GuardianLink.guardian_account_id == account.id)
                .order_by(Subject.display_name)  # type: ignore[arg-type]
            ).all()
            wards = [Ward(subject_id=s.id, name=s.display_name or s.pseudonym)
                     for s in rows if s.erased_at is None]
        return PortalUser(principal=principal, username=account.username, role=account.role,
                          language=account.language,
                          subject_id=account.subject_id, wards=tuple(wards))


def get_portal_user(request: Request, gw: GatewayDep) -> PortalUser:
    """The signed-in account; a redirect to /portal/login when there is none."""
    token = session_token(request)
    if token is None:
        msg = "Sign in to see this page."
        raise LoginRequired(msg)
    try:
        user = load_portal_user(gw, token)
    except AuthenticationError as exc:
        raise LoginRequired(exc.message) from exc
    request.state.portal_user = user
    return user


PortalUserDep = Annotated[PortalUser, Depends(get_portal_user)]


def optional_portal_user(request: Request, gw: GatewayDep) -> PortalUser | None:
    """The signed-in account, or None (for pages open to everyone, e.g. sign-in)."""
    token = session_token(request)
    if token is None:
        return None
    try:
        user = load_portal_user(gw, token)
    except AuthenticationError:
        return None
    request.state.portal_user = user
    return user


OptionalPortalUserDep = Annotated[PortalUser | None, Depends(optional_portal_user)]


# -- CSRF ------------------------------------------------------------------------------


def _secret(gateway: Gateway) -> bytes:
    return gateway.settings.secret_key.get_secret_value().encode()


def csrf_token_for(gateway: Gateway, request: Request) -> str:
    """The CSRF token of the caller's session (or pre-session cookie before sign-in).

    HMAC-SHA256 under the gateway's secret key of the SHA-256 of the session token: it
    changes with every session and is never stored.
    """
    token = session_token(request) or request.cookies.get(PRESESSION_COOKIE)
    if token is None:
        token = getattr(request.state, "presession", None)
    if token is None:
        return ""
    return hmac.new(_secret(gateway), token_digest(token).encode(), hashlib.sha256).hexdigest()


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form (browsers send Origin on POST)
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def verify_csrf(request: Request, form: FormData) -> None:
    """Refuse (403, nothing changed) a form without the session's CSRF token or from
    another site's page."""
    gateway: Gateway = request.app.state.gateway
    if not _same_origin(request):
        msg = "This form was sent from another site; it was refused and nothing changed."
        raise CsrfRefused(msg)
    expected = csrf_token_for(gateway, request)
    given = form.get(CSRF_FIELD)
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
        msg = ("This form has expired or did not come from this site; nothing changed. "
               "Go back, reload the page and try again.")
        raise CsrfRefused(msg)


async def csrf_form(request: Request) -> FormData:
    """The submitted form, after its CSRF token was checked."""
    form = await request.form()
    verify_csrf(request, form)
    return form


CsrfFormDep = Annotated[FormData, Depends(csrf_form)]


# -- forms -----------------------------------------------------------------------------


class FormErrors(dict[str, str]):
    """Field name -> message (already translated), in the order the fields appear.

    Templates show them as an error summary at the top of the page linking to each field
    (``#field-<name>``) and as a message next to the field.
    """

    def add(self, field_name: str, message: str) -> None:
        self.setdefault(field_name, message)


def form_text(form: FormData, name: str) -> str:
    """A text field of a form, stripped ('' when absent or a file)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# -- rendering -------------------------------------------------------------------------


def request_language(request: Request) -> str:
    """The language a response to ``request`` is written in."""
    user: PortalUser | None = getattr(request.state, "portal_user", None)
    return choose_language(request, user.language if user else None)


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status: int = 200) -> HTMLResponse:
    """Render a portal template in the caller's language, uncached (``no-store``)."""
    gateway: Gateway = request.app.state.gateway
    language = request_language(request)
    user: PortalUser | None = getattr(request.state, "portal_user", None)
    set_presession = None
    if session_token(request) is None and request.cookies.get(PRESESSION_COOKIE) is None:
        set_presession = getattr(request.state, "presession", None) or secrets.token_urlsafe(32)
        request.state.presession = set_presession
    values: dict[str, Any] = {
        "request": request,
        "lang": language,
        "user": user,
        "csrf_token": csrf_token_for(gateway, request),
        "errors": FormErrors(),
        "idle_seconds": gateway.settings.session_idle_seconds,
        "path": request.url.path,
    }
    values.update(context or {})
    html = environment(language).get_template(template).render(values)
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = language
    if set_presession is not None:
        response.set_cookie(PRESESSION_COOKIE, set_presession, httponly=True,
                            samesite="strict", secure=_secure(gateway))
    return response


def error_page(request: Request, exc: NeurogateError) -> HTMLResponse:
    """A domain error that reached a portal page, as a page (never a stack trace)."""
    from neurogate.gateway.errors import STATUS

    status = next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 500)
    if isinstance(exc, CsrfRefused):
        status = 403
    return render(request, "error.html", {"status": status, "error_code": exc.code},
                  status=status)


def _secure(gateway: Gateway) -> bool:
    return gateway.settings.environment != "development"


def set_session_cookie(response: Any, gateway: Gateway, token: str) -> None:
    """Set the portal's session cookie (HttpOnly, SameSite=Strict, Secure outside dev)."""
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=_secure(gateway),
                        max_age=gateway.settings.session_absolute_seconds, path="/")


__all__ = [
    "CSRF_FIELD",
    "DOMAINS",
    "LANGUAGES",
    "CsrfFormDep",
    "CsrfRefused",
    "HOME",
    "NAV",
    "FormErrors",
    "LoginRequired",
    "N_",
    "OptionalPortalUserDep",
    "PortalUser",
    "PortalUserDep",
    "Ward",
    "choose_language",
    "csrf_form",
    "environment",
    "error_page",
    "form_text",
    "gettext_for",
    "nav_for",
    "parse_accept_language",
    "render",
    "request_language",
    "set_session_cookie",
    "translations",
    "verify_csrf",
]
