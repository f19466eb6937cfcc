"""Everything held about a subject, as one .zip archive they can keep.

The archive holds the subject's export (``rights.export_subject``, which writes the
request to the ledger), a signed receipt for every entry of their consents' histories,
every ledger entry about them with its salt and inclusion proof, their concerns, what
each app received (``activity``), and the checkpoint and key the proofs verify against::

    README.txt
    subject.json            the subject, guardians, consents and their history
    receipts/<index>.json   one receipt per consent event: neurogate audit verify-receipt
    ledger.json             every ledger entry about the subject, with its salt and proof
    concerns.json           the concerns reported and their answers
    activity.json           per-day delivery counts and the streams from the ledger
    checkpoint.txt          the newest signed checkpoint the proofs are against
    key.txt                 the gateway's verifier key
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from typing import Any

from sqlmodel import Session

from neurogate.consent import access, rights
from neurogate.consent.access import Principal
from neurogate.consent.activity import MAX_DAYS, activity_for
from neurogate.consent.ledger import Ledger
from neurogate.consent.models import utcnow


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")


def subject_archive(*, session: Session, ledger: Ledger, principal: Principal,
                    subject_id: str, readme: str, now: datetime | None = None
                    ) -> tuple[str, bytes]:
    """The archive's file name and bytes (the subject, a guardian or a clinician in care).

    ``readme`` is the text of README.txt, in the reader's language.
    """
    now = now or utcnow()
    subject = access.get_subject(session, principal, subject_id)
    export = rights.export_subject(session=session, ledger=ledger, principal=principal,
                                   subject_id=subject.id, now=now)
    # Signed now, so that it covers the export's own leaf: every proof below is against it.
    note = ledger.latest_checkpoint(session)
    size = ledger.open(note).size
    files: dict[str, bytes] = {"README.txt": readme.encode("utf-8"),
                               "subject.json": _json(export)}
    for seq in sorted({e["ledger_index"] for e in export["history"]
                       if e.get("ledger_index") is not None}):
        files[f"receipts/{seq}.json"] = _json(ledger.receipt_for(session, seq))
    entries = []
    for item in ledger.entries_for_subject(session, subject.id):
        opened = item.as_json()
        proof = ledger.inclusion(session, item.seq, size)
        entries.append({**opened, "tree_size": proof["tree_size"], "root": proof["root"],
                        "inclusion_proof": proof["proof"]})
    files["ledger.json"] = _json({"entries": entries})
    files["concerns.json"] = _json(export.get("concerns", []))
    activity = activity_for(session=session, ledger=ledger, principal=principal,
                            subject_id=subject.id, days=MAX_DAYS, today=now.date())
    files["activity.json"] = _json(activity.as_json())
    files["checkpoint.txt"] = note.encode("utf-8")
    files["key.txt"] = (ledger.verifier.key_string + "\n").encode("utf-8")
    buffer = io.BytesIO()
    stamp = now.timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    name = f"neurogate-{subject.pseudonym}-{now.strftime('%Y%m%d-%H%M%S')}.zip"
    return name, buffer.getvalue()


__all__ = ["subject_archive"]
