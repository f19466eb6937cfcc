"""A subject's recordings: the list, the subject-access export (free of charge), and a
clinician's read, which passes the same consent check as a live stream."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from neurogate.consent import access
from neurogate.consent.access import CLINICIAN, GUARDIAN, SELF, Principal
from neurogate.consent.models import Recording
from neurogate.errors import ConflictError, ConsentError, not_found
from neurogate.gateway import egress, recording
from neurogate.gateway.deps import CurrentPrincipal, GatewayDep
from neurogate.gateway.routes._params import STRICT_QUERY, IdPath
from neurogate.gateway.state import Gateway
from neurogate.gateway.streams import Grant
from neurogate.recordings import export_files, read_segment, recording_edf, segments_of
from neurogate.recordings.export import recordings_metadata, recordings_of
from neurogate.recordings.keys import data_key

router = APIRouter(prefix="/v1/subjects", tags=["recordings"], dependencies=[STRICT_QUERY])


def _keyring(gw: Gateway) -> Any:
    keyring = recording.keyring_of(gw)
    if keyring is None:
        msg = ("Recordings are off on this gateway: no key-encryption key is configured "
               "(NEUROGATE_RECORDING_KEK_FILE or NEUROGATE_RECORDING_KEK).")
        raise ConflictError(msg)
    return keyring


@router.get("/{subject_id}/recordings")
def read_recordings(subject_id: IdPath, gw: GatewayDep,
                    principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """List what is recorded of a subject (no signal data): purpose, app, kept until."""
    with gw.transaction() as session:
        subject = access.get_subject(session, principal, subject_id)
        return recordings_metadata(session, recordings_of(session, subject.id))


def build_export(gw: Gateway, principal: Principal, subject_id: str) -> bytes:
    """The zip of a subject's decrypted recordings, metadata and ledger proofs."""
    keyring = _keyring(gw)
    buffer = io.BytesIO()
    with gw.transaction() as session:
        subject = access.get_subject(session, principal, subject_id, (SELF, GUARDIAN))
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in export_files(session=session, store=recording.segment_store(gw),
                                           keyring=keyring, ledger=gw.ledger,
                                           subject_id=subject.id,
                                           actor_role=principal.role):
                archive.writestr(name, data)
    return buffer.getvalue()


@router.get("/{subject_id}/recordings/export")
async def export_recordings(subject_id: IdPath, gw: GatewayDep,
                            principal: CurrentPrincipal) -> Response:
    """Download your recordings decrypted (EDF and JSON) with ledger proofs, as a zip."""
    data = await run_in_threadpool(build_export, gw, principal, subject_id)
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": 'attachment; filename="recordings.zip"',
        "Cache-Control": "no-store"})


def read_edf(gw: Gateway, principal: Principal, subject_id: str, recording_id: str,
             product: str = "raw") -> bytes:
    """A clinician's read of one recording: care relationship, then the same policy
    decision as a stream for the recording's app and purpose; logged in the ledger."""
    keyring = _keyring(gw)
    with gw.transaction() as session:
        subject = access.get_subject(session, principal, subject_id, (CLINICIAN,))
        found = session.get(Recording, recording_id)
        if found is None or found.subject_id != subject.id:
            raise not_found(kind="recording", ident=recording_id)
        app_id, purpose_id = found.app_id, found.purpose_id
    outcome = egress.decide_grant(gw, app_id=app_id, subject_id=subject_id,
                                  purpose_id=purpose_id)
    if not isinstance(outcome, Grant) or product not in outcome.products:
        reasons = ", ".join(getattr(outcome, "reasons", ())) or "no consent"
        msg = (f"The subject's consent for the purpose {purpose_id!r} does not cover "
               f"reading {product!r} now ({reasons}); the recording was not read.")
        raise ConsentError(msg)
    with gw.transaction() as session:
        found = session.get(Recording, recording_id)
        if found is None:
            raise not_found(kind="recording", ident=recording_id)
        data_key(session, keyring, subject_id)  # shredded: RecordingError, nothing logged
        segments = [read_segment(session=session, store=recording.segment_store(gw),
                                 keyring=keyring, row=row)
                    for row in segments_of(session, recording_id) if row.product == product]
        if not segments:
            raise not_found(kind="recording", ident=recording_id)
        segments.sort(key=lambda s: float(s.t[0]))
        gw.ledger.append(session, action="recording.read", concerns=subject_id,
                         recording=recording_id, product=product, actor_role=principal.role,
                         account=principal.id, purpose=purpose_id)
        return recording_edf(found, segments)


@router.get("/{subject_id}/recordings/{recording_id}/edf")
async def read_recording_edf(subject_id: IdPath, recording_id: IdPath, gw: GatewayDep,
                             principal: CurrentPrincipal) -> Response:
    """Read a patient's recording as EDF (clinician in care, while consent allows it)."""
    data = await run_in_threadpool(read_edf, gw, principal, subject_id, recording_id)
    return Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{recording_id}.edf"',
        "Cache-Control": "no-store"})


__all__ = ["build_export", "read_edf", "router"]
