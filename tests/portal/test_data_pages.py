"""The data pages over a real gateway in process: activity, proof, my data (no browser)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from neurogate.consent.activity import record_delivery
from neurogate.consent.disclosure import load_figures, measured_sentence
from neurogate.consent.merkle import canonical_json, salted_leaf_hash, verify_inclusion
from neurogate.consent.models import Account, Consent, Delivery, LedgerLeaf, Subject
from neurogate.gateway.app import create_app
from neurogate.gateway.demo import BAND_CHANNELS, DEMO_PASSWORD, DemoWorld, seed
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.settings import Settings
from tests.e2e.conftest import neurogate

BASE_URL = "https://testserver"
FAST_HASHING = {"password_hash_time_cost": 1, "password_hash_memory_kib": 1024}
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture
def gateway(sqlite_url: str, tmp_path: Path) -> Gateway:
    """A gateway over a fresh SQLite store."""
    return build_gateway(Settings(data_dir=tmp_path / "data", database_url=sqlite_url,
                                  environment="test", **FAST_HASHING))


@pytest.fixture
def world(gateway: Gateway) -> DemoWorld:
    """The demo clinic: Alex (adult), Mia (child) and her guardian parent.chen."""
    return seed(gateway)


@pytest.fixture
def client(gateway: Gateway, world: DemoWorld) -> Iterator[TestClient]:
    """An HTTP client of the whole gateway application, in process."""
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no CSRF token"
    return found.group(1)


def sign_in(client: TestClient, username: str) -> None:
    page = client.get("/portal/login")
    response = client.post("/portal/login", data={
        "username": username, "password": DEMO_PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False)
    assert response.status_code == 303, response.text


def _svg_bars(html: str) -> dict[str, dict[str, int]]:
    """series name -> day -> value, read from the activity chart's SVG."""
    chart = html[html.index('<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-bars"'):]
    chart = chart[:chart.index("</svg>")]
    series = {}
    for name, body in re.findall(r'<g class="series series-\d+" data-series="([^"]*)">(.*?)</g>',
                                 chart):
        series[name] = {day: int(value) for day, value in
                        re.findall(r'data-day="([^"]+)" data-value="(\d+)"', body)}
    return series


def test_activity_chart_has_one_series_per_app_matching_its_table(
        client: TestClient, gateway: Gateway, world: DemoWorld) -> None:
    """Two apps' deliveries become two series whose bars equal the table's figures."""
    today = datetime.now(UTC).date()
    mia = world.subjects["mia"]
    with gateway.transaction() as session:
        record_delivery(session=session, subject_id=mia, app_id=world.apps["focus"],
                        purpose_id="neurofeedback", day=today, messages=1200, seconds=600)
        record_delivery(session=session, subject_id=mia, app_id=world.apps["focus"],
                        purpose_id="neurofeedback", day=today - timedelta(days=2),
                        messages=300, seconds=150)
        record_delivery(session=session, subject_id=mia, app_id=world.apps["adlab"],
                        purpose_id="neuromarketing", day=today - timedelta(days=1),
                        messages=7)
    sign_in(client, "parent.chen")
    response = client.get("/portal/activity")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    series = _svg_bars(response.text)
    assert set(series) == {"FocusQuest Neurofeedback", "AdLab Neuromarketing"}
    focus = series["FocusQuest Neurofeedback"]
    assert focus[today.isoformat()] == 1200
    assert focus[(today - timedelta(days=2)).isoformat()] == 300
    assert sum(focus.values()) == 1500
    assert sum(series["AdLab Neuromarketing"].values()) == 7
    assert len(focus) == 14
    table = response.text[response.text.index("The same figures as a table"):]
    table = table[:table.index("</table>")]
    header = re.findall(r'<th scope="col">([^<]*)</th>', table)
    assert header == ["Day", "AdLab Neuromarketing", "FocusQuest Neurofeedback"]
    cells = [re.findall(r"<td>([^<]*)</td>", row) for row in
             re.findall(r"<tr><th scope=\"row\">.*?</tr>", table)]
    assert [int(c[1].replace(",", "")) for c in cells] == list(focus.values())
    assert [int(c[0].replace(",", "")) for c in cells] == list(
        series["AdLab Neuromarketing"].values())
    assert "<desc" in response.text and "FocusQuest Neurofeedback received 1,500 messages" in (
        response.text)


def test_activity_shows_what_the_app_sees_beside_raw(client: TestClient) -> None:
    """Mia's focus app: raw lines of her band's 4 sensors beside one focus value per
    update."""
    sign_in(client, "parent.chen")
    html = client.get("/portal/activity").text
    assert "This is an illustration" in html
    assert "What FocusQuest Neurofeedback receives: their focus level" in html
    traces = re.findall(r'<svg[^>]*class="chart chart-traces".*?</svg>', html, re.S)
    assert len(traces) == 2  # the raw signal, and the one product of Mia's consent
    raw_rows = re.findall(r'data-series="([^"]+)" data-points="(\d+)"', traces[0])
    assert [name for name, _ in raw_rows] == BAND_CHANNELS  # Mia's paired band
    assert "It has the shape of the paired device, Acme Band 4: 4 sensors at 250 Hz." in html
    assert all(int(points) == 2500 for _, points in raw_rows)
    focus_rows = re.findall(r'data-series="([^"]+)" data-points="(\d+)"', traces[1])
    # neurofeedback's focus index: a 4 s window twice per second, over the 12 s shown
    assert focus_rows == [("global", "17")]
    assert html.count('class="dot"') == 17
    figures = load_figures()["neurofeedback"]
    assert f"What we measured:</strong> {measured_sentence(figures, 'en')}" in html


def test_activity_of_a_subject_without_deliveries_says_nothing_shared(
        client: TestClient) -> None:
    """No delivery yet: the chart and the page say so."""
    sign_in(client, "alex")
    html = client.get("/portal/activity").text
    assert '<text class="chart-empty"' in html
    assert "Nothing shared yet." in html


def test_activity_counts_a_real_stream_from_the_ledger(
        client: TestClient, gateway: Gateway, world: DemoWorld) -> None:
    """A subscription's ledger leaves appear as a connection with its message count."""
    with gateway.transaction() as session:
        mia = session.get(Subject, world.subjects["mia"])
        assert mia is not None
        for action, extra in (("stream.start", {}), ("stream.stop", {"frames": 42,
                                                                      "dropped": 0})):
            gateway.ledger.append(session, action=action, app=world.apps["focus"],
                                  subject=mia.pseudonym, purpose="neurofeedback",
                                  stream="s-1", **extra)
    sign_in(client, "parent.chen")
    html = client.get("/portal/activity").text
    section = html[html.index("Each connection, from the gateway"):]
    section = section[:section.index("</table>")]
    assert "FocusQuest Neurofeedback" in section
    assert "<td>42</td>" in section


def test_proof_page_says_included_and_its_download_passes_the_cli(
        client: TestClient, gateway: Gateway, world: DemoWorld, tmp_path: Path) -> None:
    """Every record of Alex's consent is included; its proof verifies with the CLI."""
    sign_in(client, "alex")
    consent_id = world.consents["alex-clinic"]
    listing = client.get("/portal/proof").text
    assert f'href="/portal/proof/{consent_id}"' in listing
    response = client.get(f"/portal/proof/{consent_id}")
    assert response.status_code == 200, response.text
    html = response.text
    assert "Every record of this consent is part of the gateway's public log" in html
    with gateway.transaction() as session:
        size = gateway.ledger.size(session)
    assert f"covering {size} entries" in html
    assert "Included" in html
    link = re.search(rf'href="(/portal/proof/{consent_id}/receipts/(\d+))"', html)
    assert link is not None
    download = client.get(link.group(1))
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    receipt = download.json()
    assert receipt["leaf"]["consent"] == consent_id
    assert receipt["tree_size"] == size
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    result = neurogate("audit", "verify-receipt", str(path), "--key",
                       gateway.ledger.verifier.key_string, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Receipt valid" in result.stdout


def test_proof_of_another_subjects_consent_is_not_found(
        client: TestClient, world: DemoWorld) -> None:
    """Alex cannot open the proof of Mia's consent, nor download its receipt."""
    sign_in(client, "alex")
    consent_id = world.consents["mia-focus"]
    assert client.get(f"/portal/proof/{consent_id}").status_code == 404
    assert client.get(f"/portal/proof/{consent_id}/receipts/0").status_code == 404


def test_export_archive_holds_consents_receipts_ledger_and_activity(
        client: TestClient, gateway: Gateway, world: DemoWorld) -> None:
    """The archive has each part, its receipts verify, and the request is in the ledger."""
    sign_in(client, "parent.chen")
    with gateway.transaction() as session:
        before = gateway.ledger.size(session)
        record_delivery(session=session, subject_id=world.subjects["mia"],
                        app_id=world.apps["focus"], purpose_id="neurofeedback",
                        day=datetime.now(UTC).date(), messages=9)
    page = client.get("/portal/my-data")
    assert page.status_code == 200
    response = client.post("/portal/my-data/export", data={
        "csrf_token": csrf_of(page.text), "subject": world.subjects["mia"]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    assert {"README.txt", "subject.json", "ledger.json", "activity.json", "checkpoint.txt",
            "key.txt"} <= names
    subject = json.loads(archive.read("subject.json"))
    assert [c["id"] for c in subject["consents"]] == [world.consents["mia-focus"]]
    receipts = sorted(n for n in names if n.startswith("receipts/"))
    assert len(receipts) == len({e["ledger_index"] for e in subject["history"]}) >= 2
    from neurogate.consent.receipts import verify_receipt

    for name in receipts:
        verify_receipt(json.loads(archive.read(name)), gateway.ledger.verifier)
    ledger = json.loads(archive.read("ledger.json"))["entries"]
    assert ledger[-1]["entry"]["action"] == "subject.export"
    checkpoint = gateway.ledger.open(archive.read("checkpoint.txt").decode())
    assert {e["tree_size"] for e in ledger} == {checkpoint.size}  # every proof against it
    assert {e["root"] for e in ledger} == {checkpoint.root.hex()}
    for e in ledger:  # each entry, opened with its salt, is in the checkpoint's tree
        hashed = salted_leaf_hash(base64.b64decode(e["salt"]), canonical_json(e["entry"]))
        assert hashed == base64.b64decode(e["leaf_hash"])
        assert verify_inclusion(hashed, e["seq"], checkpoint.size,
                                [bytes.fromhex(h) for h in e["inclusion_proof"]],
                                checkpoint.root)
    activity = json.loads(archive.read("activity.json"))
    assert [d["messages"] for d in activity["deliveries"]] == [9]
    with gateway.transaction() as session:
        assert gateway.ledger.size(session) == before + 1
        leaf = session.get(LedgerLeaf, before)
        assert leaf is not None and json.loads(leaf.entry)["action"] == "subject.export"


def test_erasure_needs_the_confirmation_then_erases(
        client: TestClient, gateway: Gateway, world: DemoWorld) -> None:
    """Unticked: 400 with the message by the field, nothing erased; ticked: erased."""
    mia = world.subjects["mia"]
    with gateway.transaction() as session:
        record_delivery(session=session, subject_id=mia, app_id=world.apps["focus"],
                        purpose_id="neurofeedback", day=datetime.now(UTC).date(), messages=3)
    sign_in(client, "parent.chen")
    page = client.get(f"/portal/my-data/erase?subject={mia}")
    assert page.status_code == 200
    assert "What will not be deleted" in page.text
    assert "FocusQuest Neurofeedback" in page.text  # named as holding copies outside
    token = csrf_of(page.text)
    refused = client.post("/portal/my-data/erase", data={"csrf_token": token, "subject": mia})
    assert refused.status_code == 400
    assert 'id="field-confirm-error"' in refused.text
    assert 'href="#field-confirm"' in refused.text
    assert "Only a ticked box is accepted" in refused.text
    with gateway.transaction() as session:
        subject = session.get(Subject, mia)
        assert subject is not None and subject.erased_at is None
    done = client.post("/portal/my-data/erase",
                       data={"csrf_token": token, "subject": mia, "confirm": "yes"})
    assert done.status_code == 200, done.text
    assert "Your data was erased" in done.text
    with gateway.transaction() as session:
        subject = session.get(Subject, mia)
        assert subject is not None and subject.erased_at is not None
        assert session.exec(select(Consent).where(Consent.subject_id == mia,
                                                  Consent.status == "active")).all() == []
        assert session.exec(select(Delivery).where(Delivery.subject_id == mia)).all() == []
        last = session.get(LedgerLeaf, gateway.ledger.size(session) - 1)
        assert last is not None and last.entry is not None
        assert json.loads(last.entry)["action"] == "subject.erase"
        assert all(e.opaque for e in gateway.ledger.entries_for_subject(session, mia))


@pytest.mark.parametrize("path", ["/portal/my-data/erase", "/portal/my-data/export"])
def test_form_without_csrf_token_is_refused_and_changes_nothing(
        client: TestClient, gateway: Gateway, world: DemoWorld, path: str) -> None:
    """No token: 403, no ledger leaf, the subject untouched."""
    sign_in(client, "alex")
    with gateway.transaction() as session:
        before = gateway.ledger.size(session)
    response = client.post(path, data={"subject": world.subjects["alex"], "confirm": "yes"})
    assert response.status_code == 403
    with gateway.transaction() as session:
        assert gateway.ledger.size(session) == before
        subject = session.get(Subject, world.subjects["alex"])
        assert subject is not None and subject.erased_at is None
        account = session.exec(select(Account).where(Account.username == "alex")).one()
        assert not account.disabled


def test_data_pages_need_a_signed_in_account(client: TestClient) -> None:
    """Not signed in: every data page redirects to the sign-in page."""
    for path in ("/portal/activity", "/portal/proof", "/portal/my-data"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/portal/login?next=")


@pytest.mark.parametrize(("language", "expected"), [
    ("zh-CN", ["应用收到了什么", "每个应用每天获得的数据", "这是一个示意图", "TA 的专注程度"]),
    ("es", ["Lo que recibieron las aplicaciones", "Datos compartidos por aplicación y día",
            "Esto es una ilustración", "su nivel de concentración"]),
])
def test_activity_page_is_in_the_readers_language(client: TestClient, language: str,
                                                  expected: list[str]) -> None:
    """Accept-Language chooses the page's language; none of the English text is left."""
    sign_in(client, "parent.chen")
    html = client.get("/portal/activity", headers={"Accept-Language": language}).text
    for text in expected:
        assert text in html
    for english in ("What apps received", "Data shared per app per day",
                    "This is an illustration", "their focus level", "Nothing shared yet"):
        assert english not in html


@pytest.mark.parametrize(("path", "chinese", "english"), [
    ("/portal/proof", "你的同意的证明", "Proof of your consents"),
    ("/portal/my-data", "下载与你有关的全部数据", "Download everything held about you"),
    ("/portal/my-data/erase", "不会删除的内容", "What will not be deleted"),
])
def test_proof_and_my_data_pages_are_in_chinese(client: TestClient, path: str, chinese: str,
                                                english: str) -> None:
    """zh-CN readers get the page in Simplified Chinese, not its English text."""
    sign_in(client, "alex")
    html = client.get(path, headers={"Accept-Language": "zh-CN"}).text
    assert '<html lang="zh-Hans">' in html
    assert chinese in html and english not in html


def test_proof_detail_is_in_chinese(client: TestClient, world: DemoWorld) -> None:
    """The check's result reads in Chinese too."""
    sign_in(client, "alex")
    html = client.get(f"/portal/proof/{world.consents['alex-clinic']}",
                      headers={"Accept-Language": "zh-CN"}).text
    assert "这项同意的每一条记录都在网关的公开日志中" in html and "已包含" in html
    assert "Every record of this consent" not in html
