"""What flows right now: live device streams and the apps receiving them, and each
decision of the policy for a patient with its reasons."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from neurogate.consent import access, activity, consents, registry, reports
from neurogate.consent.access import CLINICIAN
from neurogate.consent.models import App, Device, Subject
from neurogate.consent.policy import explain, explain_reasons
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal.console._common import (
    EVENT_LABELS,
    PRODUCT_LABELS,
    purpose_title,
    require,
    subject_name,
)
from neurogate.gateway.portal.web import PortalUserDep, render, request_language

router = APIRouter()


@router.get("/streams")
def read_streams(request: Request, gw: GatewayDep, user: PortalUserDep) -> Response:
    """Live streams of my patients (every stream for admins) and who receives what."""
    require(user, "clinician", "admin")
    hub = gw.hub
    live_streams = list(hub.streams.values())
    subscriptions = list(hub.subscriptions.values())
    language = request_language(request)
    with gw.transaction() as session:
        if user.role == "admin":
            visible = {s.subject_id for s in live_streams} | {s.subject_id for s in subscriptions}
        else:
            visible = {s.id for s in registry.list_subjects(session=session,
                                                           principal=user.principal)}
        names = {}
        for subject_id in visible:
            subject = session.get(Subject, subject_id)
            if subject is not None and subject.erased_at is None:
                names[subject_id] = subject_name(subject)
        streams = []
        for stream in live_streams:
            if stream.subject_id not in names:
                continue
            device = session.get(Device, stream.device_id)
            streams.append({
                "patient": names[stream.subject_id],
                "device": f"{device.model} ({device.serial})" if device else stream.device_id,
                "rate": stream.hello.sampling_rate, "frames": stream.frames,
                "channels": len(stream.hello.channel_names), "ended": stream.ended,
            })
        receiving = []
        for sub in subscriptions:
            if sub.subject_id not in names:
                continue
            app = session.get(App, sub.app_id)
            receiving.append({
                "patient": names[sub.subject_id], "app": app.name if app else sub.app_id,
                "purpose": purpose_title(sub.purpose_id, language),
                "products": sorted(sub.grant.products), "delivered": sub.delivered,
                "dropped": sub.dropped, "flowing": hub.may_deliver(sub),
            })
    return render(request, "console/streams.html", {
        "streams": sorted(streams, key=lambda s: (s["patient"], s["device"])),
        "receiving": sorted(receiving, key=lambda s: (s["patient"], s["app"])),
        "product_labels": PRODUCT_LABELS,
    })


@router.get("/patients/{subject_id}/decisions")
def read_decisions(subject_id: str, request: Request, gw: GatewayDep,
                   user: PortalUserDep) -> Response:
    """What the policy decides now for each app that knows the patient, and why; and every
    recorded change of the patient's consents."""
    require(user, "clinician")
    language = request_language(request)
    with gw.transaction() as session:
        subject = access.get_subject(session, user.principal, subject_id, (CLINICIAN,))
        decisions = [
            {"app": d.app.name, "purpose": purpose_title(d.purpose_id, language),
             "product": d.product, "allowed": d.decision.allowed,
             "reasons": list(zip(d.decision.reasons, explain(d.decision, language),
                                 strict=True))}
            for d in reports.current_decisions(session=session, principal=user.principal,
                                               subject_id=subject.id)
        ]
        history = []
        for consent in consents.list_consents(session=session, principal=user.principal,
                                              subject_id=subject.id):
            app = access.get_app(session, user.principal, consent.app_id)
            for event in consents.history(session=session, principal=user.principal,
                                          consent_id=consent.id):
                history.append({"at": event.at, "action": event.action, "app": app.name,
                                "purpose": purpose_title(consent.purpose_id, language),
                                "detail": event.detail, "index": event.ledger_index})
        seen = activity.activity_for(session=session, ledger=gw.ledger,
                                     principal=user.principal, subject_id=subject.id,
                                     days=activity.MAX_DAYS)
        refused = [
            {"at": r.at, "app": seen.app_names.get(r.app_id or "", r.app_id or ""),
             "purpose": purpose_title(r.purpose_id, language) if r.purpose_id else "",
             "reasons": list(zip(r.reasons, explain_reasons(r.reasons, language), strict=True)),
             "index": r.ledger_index}
            for r in seen.refusals
        ]
    history.sort(key=lambda e: e["at"], reverse=True)
    return render(request, "console/decisions.html", {
        "subject": subject, "name": subject_name(subject), "decisions": decisions,
        "history": history, "refused": refused, "product_labels": PRODUCT_LABELS,
        "event_labels": EVENT_LABELS,
    })
