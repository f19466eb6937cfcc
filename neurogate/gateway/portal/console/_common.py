"""What every console page shares: who may open it, labels, and parsing of form values."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData

from neurogate.consent.models import Subject
from neurogate.consent.purposes import LANGUAGES, load_catalog
from neurogate.errors import PermissionDenied
from neurogate.gateway.portal import web
from neurogate.gateway.portal.web import N_, PortalUser, form_text

# Plain labels of what an app may receive, the purposes' products.
PRODUCT_LABELS = {
    "raw": N_("raw brain waves"),
    "filtered": N_("filtered brain waves"),
    "band_power": N_("strength of each brain-wave band"),
    "focus_index": N_("focus level"),
    "relaxation_index": N_("relaxation level"),
    "signal_quality": N_("signal quality"),
}
STATUS_LABELS = {
    "active": N_("active"),
    "revoked": N_("stopped"),
    "expired": N_("ended"),
}
ASSENT_LABELS = {
    "not_required": N_("not needed"),
    "pending": N_("not asked yet"),
    "given": N_("agreed"),
    "dissent": N_("said no"),
}
CAPACITY_LABELS = {
    "self": N_("the patient"),
    "guardian": N_("a guardian"),
    "legal_representative": N_("a legal representative"),
}
RELATIONSHIP_LABELS = {
    "parent": N_("Parent"),
    "legal_guardian": N_("Legal guardian"),
    "legal_representative": N_("Legal representative"),
}
CRIA_LABELS = {
    "none": N_("not submitted"),
    "submitted": N_("waiting for review"),
    "approved": N_("approved"),
}
EVENT_LABELS = {
    "grant": N_("consent given"),
    "given": N_("child agreed"),
    "dissent": N_("child said no"),
    "revoked": N_("consent stopped"),
    "expire": N_("consent ended"),
}
CONCERN_LABELS = {"open": N_("waiting for an answer"), "answered": N_("answered")}
# Where an app is used (declared at registration; the EU AI Act rule reads it).
DEPLOYMENT_LABELS = {
    "clinical": N_("a clinic or hospital"),
    "home": N_("at home"),
    "education": N_("a school or other place of education"),
    "workplace": N_("a workplace"),
    "research": N_("a research study"),
}
STAFF = ("clinician", "admin", "app_owner")


def require(user: PortalUser, *roles: str) -> None:
    """Refuse (403 page) an account whose role may not open this console page."""
    if user.role not in roles:
        msg = f"This page is open to the roles {', '.join(roles)} only."
        raise PermissionDenied(msg)


def gettext(request: Request) -> Any:
    """``gettext(message, **params)`` in the caller's language."""
    return web.gettext_for(web.request_language(request))


def options(request: Request, labels: dict[str, str]) -> list[tuple[str, str]]:
    """(value, translated label) pairs for a select or radios macro."""
    _ = gettext(request)
    return [(value, _(label)) for value, label in labels.items()]


def subject_name(subject: Subject) -> str:
    """How staff see a patient: their name, or their pseudonym when none was given."""
    return subject.display_name or subject.pseudonym


def purpose_title(purpose_id: str, language: str) -> str:
    """A purpose's title in ``language`` (from the catalog's notice)."""
    return load_catalog().get(purpose_id).notice(language).title


def notice_language(value: str, fallback: str) -> str:
    """A notice language of the catalog: ``value`` if it is one, else ``fallback``."""
    return value if value in LANGUAGES else fallback


def parse_date(text: str) -> date | None:
    """An ISO date ``YYYY-MM-DD``, or None if ``text`` is not one."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def choice(form: FormData, name: str, allowed: tuple[str, ...] | dict[str, Any]) -> str | None:
    """The form's value of ``name`` if it is one of ``allowed``, else None."""
    value = form_text(form, name)
    return value if value in allowed else None


__all__ = [
    "ASSENT_LABELS",
    "CAPACITY_LABELS",
    "CONCERN_LABELS",
    "CRIA_LABELS",
    "EVENT_LABELS",
    "PRODUCT_LABELS",
    "RELATIONSHIP_LABELS",
    "STAFF",
    "STATUS_LABELS",
    "choice",
    "gettext",
    "notice_language",
    "options",
    "parse_date",
    "purpose_title",
    "require",
    "subject_name",
]
