"""Deadlines in the console and the portal: administrators see each request's deadline and
what is overdue and mark it done; the subject's My data page says by when it is answered;
the console's app pages show where an app is used."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import delete, select

from neurogate.consent import duties
from neurogate.consent.access import Principal
from neurogate.consent.models import Account, Subject, SubjectRequest
from neurogate.gateway.app import sweep_overdue_requests
from neurogate.gateway.demo import DemoWorld
from neurogate.gateway.state import Gateway
from tests.portal.conftest import CSRF_TOKEN


def _file(gateway: Gateway, world: DemoWorld, username: str, subject: str, kind: str,
          jurisdiction: str = "US-CA") -> SubjectRequest:
    with gateway.transaction() as session:
        row = session.get(Subject, world.subjects[subject])
        assert row is not None
        row.jurisdiction = jurisdiction
        session.add(row)
        account = session.exec(select(Account).where(Account.username == username)).one()
        principal = Principal(kind="account", id=account.id, role=account.role,
                              subject_id=account.subject_id)
        request = duties.file_request(session=session, principal=principal,
                                      subject_id=world.subjects[subject], kind=kind)
        session.expunge(request)
        return request


def test_my_data_shows_the_deadline_of_an_open_request(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """The subject reads by when their request is answered (California: 45 days)."""
    gateway, world = demo
    filed = _file(gateway, world, "alex", "alex", "limit_use")
    assert filed.due_at - filed.filed_at == timedelta(days=45)
    page = signed_in("alex").get("/portal/my-data").text
    day = f"{filed.due_at:%B} {filed.due_at.day}, {filed.due_at.year}"
    assert (f"Your request to limit the use of your data will be answered by {day} at the "
            "latest.") in page


def test_console_lists_deadlines_flags_overdue_and_marks_done(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """The admin's Requests page shows the deadline, 'overdue' once the sweeper ran, and
    a button that marks the request done."""
    gateway, world = demo
    filed = _file(gateway, world, "parent.chen", "mia", "delete", jurisdiction="CRC")
    with gateway.transaction() as session:  # the deadline passes
        row = session.get(SubjectRequest, filed.id)
        assert row is not None
        row.due_at = row.filed_at - timedelta(days=1)
        session.add(row)
    assert sweep_overdue_requests(gateway) >= 1
    admin = signed_in("admin")
    page = admin.get("/portal/console/requests").text
    assert 'href="/portal/console/requests"' in page  # in the navigation
    assert "Requests past their deadline: 1. Answer them first." in page
    row_html = page[page.index(f"/portal/console/requests/{filed.id}/complete") - 900:]
    assert "delete their data" in row_html and "overdue" in row_html
    token = CSRF_TOKEN.search(page)
    assert token is not None
    done = admin.post(f"/portal/console/requests/{filed.id}/complete",
                      data={"csrf_token": token.group(1)})
    assert done.status_code == 200, done.text
    assert "The request (delete their data) is marked as done." in done.text
    after = admin.get("/portal/console/requests").text
    assert f"/portal/console/requests/{filed.id}/complete" not in after
    assert "Requests past their deadline" not in after


def test_console_requests_page_is_for_admins_only(
    signed_in: Callable[[str], TestClient],
) -> None:
    """A clinician is refused the admins' page."""
    assert signed_in("dr.rivera").get("/portal/console/requests").status_code == 403


def test_console_app_page_shows_where_the_app_is_used(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """The admin's app page and the owner's apps page show the deployment context."""
    _, world = demo
    page = signed_in("admin").get(f"/portal/console/apps/{world.apps['focus']}").text
    assert re.search(r"<dt>Used in</dt><dd>at home</dd>", page)
    mine = signed_in("apps.owner").get("/portal/console/my-apps").text
    assert mine.count("<dt>Used in</dt><dd>at home</dd>") == 3


def test_my_data_form_files_a_request_and_says_by_when(
    demo: tuple[Gateway, DemoWorld], signed_in: Callable[[str], TestClient],
) -> None:
    """A guardian asks for a copy for their child: the confirmation names the day; asking
    again, or for nothing, is refused next to the field; without the CSRF token, nothing."""
    gateway, world = demo
    guardian = signed_in("parent.chen")
    mia = world.subjects["mia"]
    with gateway.transaction() as session:
        session.exec(delete(SubjectRequest).where(  # type: ignore[call-overload]
            SubjectRequest.subject_id == mia))
    page = guardian.get(f"/portal/my-data?subject={mia}").text
    token = CSRF_TOKEN.search(page)
    assert token is not None
    assert guardian.post("/portal/my-data/requests",
                         data={"subject": mia, "kind": "access"}).status_code == 403
    sent = guardian.post("/portal/my-data/requests", data={
        "subject": mia, "kind": "access", "csrf_token": token.group(1)})
    assert sent.status_code == 200, sent.text
    with gateway.transaction() as session:
        [filed] = session.exec(select(SubjectRequest).where(
            SubjectRequest.subject_id == mia)).all()
    day = f"{filed.due_at:%B} {filed.due_at.day}, {filed.due_at.year}"
    assert ("Your request for a copy of your data will be answered by "
            f"{day} at the latest.") in sent.text
    again = guardian.post("/portal/my-data/requests", data={
        "subject": mia, "kind": "access", "csrf_token": token.group(1)})
    assert again.status_code == 400
    assert "You already asked for this. The answer is on its way by the date shown" in again.text
    nothing = guardian.post("/portal/my-data/requests", data={
        "subject": mia, "csrf_token": token.group(1)})
    assert nothing.status_code == 400
    assert 'href="#field-kind"' in nothing.text
    assert ("Choose what you ask for: to limit the use of your data, or a copy of it."
            in nothing.text)
