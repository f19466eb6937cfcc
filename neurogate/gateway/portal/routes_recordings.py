"""Portal: "My recordings", what the gateway keeps of a subject's streams, and the free
download of them decrypted (the same export as ``GET /v1/subjects/{id}/recordings/export``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from neurogate.consent import access
from neurogate.consent.purposes import load_catalog
from neurogate.errors import not_found
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal import web
from neurogate.gateway.portal.web import CsrfFormDep, PortalUserDep, render
from neurogate.gateway.routes.recordings import build_export
from neurogate.recordings import recordings_metadata
from neurogate.recordings.export import recordings_of

router = APIRouter(prefix="/portal", tags=["portal"])


def _subject_id(user: web.PortalUser, requested: str) -> str:
    """The signed-in subject, or a guardian's ward (the first unless one is chosen)."""
    if user.role == "guardian":
        ids = [w.subject_id for w in user.wards]
        if requested in ids or (not requested and ids):
            return requested or ids[0]
    elif user.subject_id and requested in ("", user.subject_id):
        return user.subject_id
    raise not_found(kind="subject", ident=requested)


@router.get("/my-data/recordings")
def read_my_recordings(request: Request, gw: GatewayDep, user: PortalUserDep,
                       subject: str = "") -> Response:
    """What is recorded of me, for which purpose, kept until when; and the download."""
    subject_id = _subject_id(user, subject)
    catalog = load_catalog()
    with gw.transaction() as session:
        access.get_subject(session, user.principal, subject_id, (access.SELF, access.GUARDIAN))
        rows = recordings_metadata(session, recordings_of(session, subject_id))
    for row in rows:
        row["purpose_title"] = catalog.get(row["purpose"]).title
    return render(request, "recordings/my_recordings.html",
                  {"subject_id": subject_id, "recordings": rows})


@router.post("/my-data/recordings/export")
async def export_my_recordings(request: Request, gw: GatewayDep, user: PortalUserDep,
                               form: CsrfFormDep) -> Response:
    """Download my recordings, decrypted (EDF and JSON) with their ledger proofs."""
    subject_id = _subject_id(user, web.form_text(form, "subject"))
    data = await run_in_threadpool(build_export, gw, user.principal, subject_id)
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": 'attachment; filename="recordings.zip"',
        "Cache-Control": "no-store"})


__all__ = ["router"]
