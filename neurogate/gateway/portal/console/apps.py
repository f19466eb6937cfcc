"""Apps: administrators review child-rights impact assessments and suspend apps; app
owners see how many consents their apps hold (never whose) and submit an assessment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from neurogate.consent import access, registry, reports
from neurogate.consent.schemas import AppUpdate
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal.console._common import (
    CRIA_LABELS,
    DEPLOYMENT_LABELS,
    STATUS_LABELS,
    choice,
    gettext,
    purpose_title,
    require,
)
from neurogate.gateway.portal.web import (
    CsrfFormDep,
    FormErrors,
    PortalUserDep,
    render,
    request_language,
)

router = APIRouter()


def _with_counts(session: Any, user: Any, language: str) -> list[dict[str, Any]]:
    found = []
    for app in registry.list_apps(session=session, principal=user.principal):
        counts = reports.consent_counts(session=session, principal=user.principal,
                                        app_id=app.id)
        found.append({
            "app": app,
            "purposes": [purpose_title(p, language) for p in app.declared_purposes],
            "counts": [(purpose_title(c.purpose_id, language), c.status, c.count)
                       for c in counts],
            "total": sum(c.count for c in counts if c.status == "active"),
        })
    return found


@router.get("/apps")
def read_apps(request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """Every app, its impact assessment and whether it is suspended (administrators)."""
    require(user, "admin")
    with gw.transaction() as session:
        apps = _with_counts(session, user, request_language(request))
    return render(request, "console/apps.html", {"apps": apps, "cria_labels": CRIA_LABELS,
                                                 "status_labels": STATUS_LABELS})


def _app_page(request: Request, gw: Any, user: Any, app_id: str, errors: FormErrors,
              status: int = 200) -> Response:
    language = request_language(request)
    with gw.transaction() as session:
        app = access.get_app(session, user.principal, app_id, manage=True)
        counts = reports.consent_counts(session=session, principal=user.principal,
                                        app_id=app.id)
    return render(request, "console/app.html", {
        "app": app, "purposes": [purpose_title(p, language) for p in app.declared_purposes],
        "counts": [(purpose_title(c.purpose_id, language), c.status, c.count)
                   for c in counts],
        "cria_labels": CRIA_LABELS, "status_labels": STATUS_LABELS, "errors": errors,
        "deployment_labels": DEPLOYMENT_LABELS,
    }, status=status)


@router.get("/apps/{app_id}")
def read_app(app_id: str, request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """One app: its purposes, consent counts, assessment review and suspension."""
    require(user, "admin")
    return _app_page(request, gw, user, app_id, FormErrors())


@router.post("/apps/{app_id}/assessment")
def review_assessment(app_id: str, request: Request, gw: GatewayDep, user: PortalUserDep,
                      form: CsrfFormDep) -> Response:
    """Approve an app's child-rights impact assessment, or send it back."""
    require(user, "admin")
    _ = gettext(request)
    decision = choice(form, "cria_status", ("approved", "none"))
    if decision is None:
        errors = FormErrors()
        errors.add("cria_status", _("Choose approve, or send back to the app's owner."))
        return _app_page(request, gw, user, app_id, errors, status=400)
    with gw.transaction() as session:
        app = registry.update_app(session=session, principal=user.principal, app_id=app_id,
                                  request=AppUpdate(cria_status=decision))
        name = app.name
    message = (_("%(app)s's child-rights impact assessment is approved.", app=name)
               if decision == "approved" else
               _("%(app)s's child-rights impact assessment was sent back; the app receives "
                 "nothing from children until it is approved.", app=name))
    return render(request, "console/done.html", {
        "title": _("Assessment reviewed"), "message": message,
        "links": [(f"/portal/console/apps/{app_id}", _("Go back to the app"))],
    })


@router.post("/apps/{app_id}/suspension")
def change_suspension(app_id: str, request: Request, gw: GatewayDep, user: PortalUserDep,
                      form: CsrfFormDep) -> Response:
    """Suspend an app (its streams stop at once) or reinstate it."""
    require(user, "admin")
    _ = gettext(request)
    wanted = choice(form, "suspended", ("yes", "no"))
    if wanted is None:
        errors = FormErrors()
        errors.add("suspended", _("Choose suspend or reinstate."))
        return _app_page(request, gw, user, app_id, errors, status=400)
    with gw.transaction() as session:
        app = registry.update_app(session=session, principal=user.principal, app_id=app_id,
                                  request=AppUpdate(suspended=wanted == "yes"))
        name = app.name
    return render(request, "console/done.html", {
        "title": _("App suspended") if wanted == "yes" else _("App reinstated"),
        "message": (_("%(app)s is suspended: it receives no data until it is reinstated.",
                      app=name) if wanted == "yes" else
                    _("%(app)s is reinstated: it receives again what its consents allow.",
                      app=name)),
        "links": [(f"/portal/console/apps/{app_id}", _("Go back to the app"))],
    })


@router.get("/my-apps")
def read_my_apps(request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """My apps and how many consents each holds, per purpose and state (no one named)."""
    require(user, "app_owner")
    with gw.transaction() as session:
        apps = _with_counts(session, user, request_language(request))
    return render(request, "console/my_apps.html", {"apps": apps, "cria_labels": CRIA_LABELS,
                                                    "status_labels": STATUS_LABELS,
                                                    "deployment_labels": DEPLOYMENT_LABELS})


@router.post("/my-apps/{app_id}/assessment")
def submit_assessment(app_id: str, request: Request, gw: GatewayDep, user: PortalUserDep,
                      form: CsrfFormDep) -> Response:
    """Submit the app's child-rights impact assessment for an administrator's review."""
    require(user, "app_owner")
    _ = gettext(request)
    with gw.transaction() as session:
        app = registry.update_app(session=session, principal=user.principal, app_id=app_id,
                                  request=AppUpdate(cria_status="submitted"))
        name = app.name
    return render(request, "console/done.html", {
        "title": _("Assessment submitted"),
        "message": _("%(app)s's child-rights impact assessment waits for an administrator's "
                     "review.", app=name),
        "links": [("/portal/console/my-apps", _("Go back to my apps"))],
    })
