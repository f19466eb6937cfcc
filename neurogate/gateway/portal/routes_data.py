"""The subject's data pages: activity, proof of each consent's records, and my data.

Thin routes: they pick whose data is shown (the subject themselves, or a guardian's
chosen ward), call the same domain functions as the REST API (``activity_for``,
``check_consent``, ``subject_archive``, ``rights.erase_subject``) and render.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from babel.dates import format_skeleton
from babel.numbers import format_decimal
from fastapi import APIRouter, Request
from fastapi.responses import Response

from neurogate.consent import access, duties, rights
from neurogate.consent.activity import activity_for
from neurogate.consent.archive import subject_archive
from neurogate.consent.consents import list_consents
from neurogate.consent.disclosure import load_figures, measured_sentence
from neurogate.consent.proofs import check_consent, receipt_of
from neurogate.consent.purposes import load_catalog
from neurogate.errors import ConflictError, not_found
from neurogate.gateway import recording
from neurogate.gateway.deps import GatewayDep
from neurogate.gateway.portal import charts, preview, web
from neurogate.gateway.portal._views import PRODUCT_WORDS
from neurogate.gateway.portal.web import N_, CsrfFormDep, FormErrors, PortalUserDep, render
from neurogate.gateway.state import Gateway

router = APIRouter(prefix="/portal", tags=["portal"])
ACTIVITY_DAYS = 14
_SUBJECT = "subject"

CHANNEL_WORDS = {
    "electrodes": N_("for each sensor"),
    "regions": N_("averaged over areas of the head"),
    "global": N_("one value for the whole head"),
}
ACTION_WORDS = {
    "grant": N_("Consent given"),
    "given": N_("Assent given"),
    "dissent": N_("Assent refused"),
    "revoked": N_("Consent withdrawn"),
    "expire": N_("Consent ended"),
}


def _subject_id(user: web.PortalUser, requested: str) -> str:
    """Whose data the page shows: a guardian's chosen ward, else the signed-in subject."""
    if user.role == "guardian":
        ids = [w.subject_id for w in user.wards]
        if requested in ids:
            return requested
        if requested or not ids:
            raise not_found(_SUBJECT, requested)
        return ids[0]
    if user.subject_id and requested in ("", user.subject_id):
        return user.subject_id
    if requested:
        return requested  # a clinician: the domain checks the care relationship
    raise not_found(_SUBJECT, requested)


def _words(request: Request) -> tuple[str, Any]:
    language = web.request_language(request)
    return language, web.gettext_for(language)


def _number(language: str, value: float, digits: int = 0) -> str:
    """``value`` for the locale, with up to ``digits`` decimals (none for whole numbers)."""
    pattern = "#,##0" + ("." + "#" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=web.LANGUAGES[language])


def _rate(gettext: Any, language: str, rate_hz: float) -> str:
    if rate_hz >= 1.0:
        return str(gettext("%(n)s times per second", n=_number(language, rate_hz)))
    return str(gettext("once every %(n)s seconds", n=_number(language, 1.0 / rate_hz)))


def _purpose_title(purpose_id: str, language: str) -> str:
    return load_catalog().get(purpose_id).notice(language).title


def _activity_chart(activity: Any, language: str, gettext: Any) -> dict[str, Any]:
    locale = web.LANGUAGES[language]
    by_app = activity.messages_by_app()
    names = [activity.app_names.get(a, a) for a in by_app]
    days = activity.days

    def day_label(day: date) -> str:
        return format_skeleton("MMMd", day, locale=locale)

    def value_label(name: str, day: date, value: int) -> str:
        return str(gettext("%(app)s: %(count)s messages on %(day)s", app=name,
                           count=_number(language, value), day=day_label(day)))

    totals = {activity.app_names.get(a, a): sum(v.values()) for a, v in by_app.items()}
    desc = "; ".join(str(gettext("%(app)s received %(count)s messages", app=name,
                                 count=_number(language, total)))
                     for name, total in totals.items())
    svg = charts.daily_bars(
        days=days, series=[(name, list(v.values())) for name, v in zip(names, by_app.values(),
                                                                       strict=True)],
        title=gettext("Messages each app received per day"),
        desc=desc or gettext("Nothing shared yet."),
        empty_message=gettext("Nothing shared yet."), day_label=day_label,
        value_label=value_label, number=lambda n: _number(language, n))
    rows = [[day_label(day)] + [_number(language, v[day]) for v in by_app.values()]
            for day in days]
    return {"svg": svg, "head": [gettext("Day"), *names], "rows": rows, "names": names}


def _pictures(consents: list[Any], language: str, gettext: Any, names: dict[str, str],
              *, own: bool, shape: preview.SignalShape) -> list[dict[str, Any]]:
    shown = []
    for consent in consents:
        picture = preview.app_view(purpose_id=consent.purpose_id, products=consent.products,
                                   ch_names=shape.ch_names, sfreq=shape.sfreq)
        app = names.get(consent.app_id, consent.app_id)
        raw = charts.traces(
            t=picture.raw_t, rows=picture.raw_rows, t_range=(0.0, picture.seconds),
            title=gettext("Raw brain waves from %(n)s sensors", n=len(picture.channels)),
            desc=gettext("%(n)s numbers per second, over %(s)s seconds.",
                         n=_number(language, picture.raw_values_per_second),
                         s=_number(language, picture.seconds)),
            empty_message=gettext("Nothing shared yet."), x_label=gettext("seconds"))
        products = []
        for item in picture.products:
            words = gettext(PRODUCT_WORDS[item.product][0 if own else 1])
            how = gettext("%(rate)s, %(channels)s",
                          rate=_rate(gettext, language, item.resolution.output_rate_hz),
                          channels=gettext(CHANNEL_WORDS[item.resolution.channels]))
            svg = charts.traces(
                t=item.t, rows=item.rows, t_range=(0.0, picture.seconds),
                title=gettext("What %(app)s receives: %(what)s", app=app, what=words),
                desc=gettext("%(n)s numbers per second (%(how)s).",
                             n=_number(language, item.values_per_second, 1), how=how),
                empty_message=gettext("No value in these seconds: this comes %(how)s.",
                                      how=how),
                stacked=item.sampled, markers=not item.sampled, x_label=gettext("seconds"))
            points = [[_number(language, t, 1), _number(language, v, 3)] for t, v in item.points]
            products.append({"product": item.product, "words": words, "how": how,
                             "svg": svg, "points": points,
                             "per_second": _number(language, item.values_per_second, 1)})
        figures = load_figures().get(consent.purpose_id)
        shown.append({"app": app, "purpose": _purpose_title(consent.purpose_id, language),
                      "raw": raw, "products": products,
                      "measured": measured_sentence(figures, language) if figures else None,
                      "raw_per_second": _number(language, picture.raw_values_per_second)})
    return shown


@router.get("/activity")
def read_activity(request: Request, gw: GatewayDep, user: PortalUserDep,
                  subject: str = "") -> Response:
    """What each app received, per day, and what an app sees beside the raw signal."""
    language, gettext = _words(request)
    subject_id = _subject_id(user, subject)
    with gw.transaction() as session:
        activity = activity_for(session=session, ledger=gw.ledger, principal=user.principal,
                                subject_id=subject_id, days=ACTIVITY_DAYS)
        consents = [c for c in list_consents(session=session, principal=user.principal,
                                             subject_id=subject_id) if c.status == "active"]
        shape = preview.signal_shape(session, gw.hub, subject_id)
        names = dict(activity.app_names)
        for consent in consents:
            if consent.app_id not in names:
                names[consent.app_id] = access.get_app(session, user.principal,
                                                       consent.app_id).name
    return render(request, "data/activity.html", {
        "subject_id": subject_id, "chart": _activity_chart(activity, language, gettext),
        "activity": activity, "names": names, "days": ACTIVITY_DAYS,
        "pictures": _pictures(consents, language, gettext, names,
                              own=user.subject_id == subject_id, shape=shape),
        "shape": shape, "sfreq": _number(language, shape.sfreq),
        "purpose_title": lambda pid: _purpose_title(pid, language) if pid else "",
    })


@router.get("/proof")
def read_proofs(request: Request, gw: GatewayDep, user: PortalUserDep,
                subject: str = "") -> Response:
    """Every consent, each linking to the check of its records in the public log."""
    language, _ = _words(request)
    subject_id = _subject_id(user, subject)
    with gw.transaction() as session:
        consents = list_consents(session=session, principal=user.principal,
                                 subject_id=subject_id)
        names = {c.app_id: access.get_app(session, user.principal, c.app_id).name
                 for c in consents}
    return render(request, "data/proofs.html", {
        "subject_id": subject_id, "consents": consents, "names": names,
        "purpose_title": lambda pid: _purpose_title(pid, language)})


@router.get("/proof/{consent_id}")
def read_proof(consent_id: str, request: Request, gw: GatewayDep,
               user: PortalUserDep) -> Response:
    """Check each record of a consent against the gateway's newest signed checkpoint."""
    language, _ = _words(request)
    with gw.transaction() as session:
        proofs = check_consent(session=session, ledger=gw.ledger, principal=user.principal,
                               consent_id=consent_id)
        app = access.get_app(session, user.principal, proofs.consent.app_id).name
    return render(request, "data/proof.html", {
        "proofs": proofs, "app": app, "actions": ACTION_WORDS,
        "key": gw.ledger.verifier.key_string,
        "purpose": _purpose_title(proofs.consent.purpose_id, language)})


@router.get("/proof/{consent_id}/receipts/{ledger_index}")
def download_receipt(consent_id: str, ledger_index: int, gw: GatewayDep,
                     user: PortalUserDep) -> Response:
    """A signed receipt of one record, for ``neurogate audit verify-receipt``."""
    with gw.transaction() as session:
        receipt = receipt_of(session=session, ledger=gw.ledger, principal=user.principal,
                             consent_id=consent_id, ledger_index=ledger_index)
    return Response(json.dumps(receipt, indent=2, sort_keys=True), media_type="application/json",
                    headers={"Content-Disposition":
                             f'attachment; filename="receipt-{ledger_index}.json"',
                             "Cache-Control": "no-store"})


def _erasure_context(gw: Gateway, user: web.PortalUser, subject_id: str) -> dict[str, Any]:
    with gw.transaction() as session:
        subject = access.get_subject(session, user.principal, subject_id)
        consents = list_consents(session=session, principal=user.principal,
                                 subject_id=subject.id)
        apps = sorted({access.get_app(session, user.principal, c.app_id).name
                       for c in consents})
    return {"subject_id": subject.id, "apps": apps,
            "active": sum(1 for c in consents if c.status == "active"),
            "self": user.subject_id == subject.id}


@router.get("/my-data")
def read_my_data(request: Request, gw: GatewayDep, user: PortalUserDep,
                 subject: str = "") -> Response:
    """Download everything held about me, or ask for erasure."""
    subject_id = _subject_id(user, subject)
    with gw.transaction() as session:  # open requests and the day each is answered by
        requests = duties.list_requests(session=session, principal=user.principal,
                                        subject_id=subject_id, status="open")
    return render(request, "data/my_data.html",
                  {**_erasure_context(gw, user, subject_id), "requests": requests})


# What My data lets a person ask for with a deadline (erasure has its own page: it is done
# at once).
OFFERED_REQUESTS = ("limit_use", "access")


@router.post("/my-data/requests")
def file_my_request(request: Request, gw: GatewayDep, user: PortalUserDep,
                    form: CsrfFormDep) -> Response:
    """Ask to limit the use of one's data, or for a copy; says by when it is answered."""
    _, gettext = _words(request)
    subject_id = _subject_id(user, web.form_text(form, "subject"))
    kind = web.form_text(form, "kind")
    errors = FormErrors()
    if kind not in OFFERED_REQUESTS:
        errors.add("kind", gettext("Choose what you ask for: to limit the use of your data, "
                                   "or a copy of it."))
    else:
        try:
            with gw.transaction() as session:
                filed = duties.file_request(session=session, principal=user.principal,
                                            subject_id=subject_id, kind=kind)
                due_at = filed.due_at
            return render(request, "data/requested.html", {"kind": kind, "due_at": due_at,
                                                           "subject_id": subject_id})
        except ConflictError:
            errors.add("kind", gettext("You already asked for this. The answer is on its way "
                                       "by the date shown on this page."))
    with gw.transaction() as session:
        requests = duties.list_requests(session=session, principal=user.principal,
                                        subject_id=subject_id, status="open")
    return render(request, "data/my_data.html", {
        **_erasure_context(gw, user, subject_id), "requests": requests, "errors": errors,
        "kind": kind}, status=400)


@router.post("/my-data/export")
def export_my_data(request: Request, gw: GatewayDep, user: PortalUserDep,
                   form: CsrfFormDep) -> Response:
    """Build the archive of everything held about the subject (the request is logged)."""
    _, gettext = _words(request)
    subject_id = _subject_id(user, web.form_text(form, "subject"))
    readme = gettext(
        "Everything NeuroGate holds about you. subject.json: you, your guardians, your "
        "consents and their history. receipts/: a signed receipt for each consent event; "
        "check one with: neurogate audit verify-receipt receipts/<number>.json. "
        "ledger.json: every entry about you in the gateway's public log, with its proof. "
        "activity.json: what each app received, per day. checkpoint.txt and key.txt: what "
        "the proofs are checked against.")
    with gw.transaction() as session:
        name, data = subject_archive(session=session, ledger=gw.ledger,
                                     principal=user.principal, subject_id=subject_id,
                                     readme=readme + "\n")
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@router.get("/my-data/erase")
def read_erasure(request: Request, gw: GatewayDep, user: PortalUserDep,
                 subject: str = "") -> Response:
    """What erasure will and will not delete, and the button that asks for it."""
    subject_id = _subject_id(user, subject)
    return render(request, "data/erase.html", _erasure_context(gw, user, subject_id))


@router.post("/my-data/erase")
def erase_my_data(request: Request, gw: GatewayDep, user: PortalUserDep,
                  form: CsrfFormDep) -> Response:
    """Erase the subject, once the box confirming it is ticked."""
    _, gettext = _words(request)
    subject_id = _subject_id(user, web.form_text(form, "subject"))
    context = _erasure_context(gw, user, subject_id)
    if web.form_text(form, "confirm") != "yes":
        errors = FormErrors()
        errors.add("confirm", gettext(
            "Tick the box to confirm the erasure. Only a ticked box is accepted; "
            "nothing was erased."))
        return render(request, "data/erase.html", {**context, "errors": errors}, status=400)
    with gw.transaction() as session:
        erasure = rights.erase(session=session, ledger=gw.ledger, principal=user.principal,
                               subject_id=subject_id, shred=recording.shredder(gw))
    recording.remove_files(gw, list(erasure.recording_ids))
    return render(request, "data/erased.html", {
        **context, "ledger_index": erasure.ledger_index,
        "recordings_deleted": len(erasure.recording_ids), "copies": erasure.copies,
        "receipt": json.dumps(erasure.receipt, indent=2, ensure_ascii=False)})


__all__ = ["router"]
