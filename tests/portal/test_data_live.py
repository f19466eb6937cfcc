"""A real stream over loopback: what the app received shows up on the activity page."""

from __future__ import annotations

import json
import re
import time

import httpx
from neurogate_client.wire import encode_frame
from sqlmodel import select

from neurogate.consent.models import AppPseudonym, Delivery
from neurogate.gateway.demo import BAND_CHANNELS, DEMO_PASSWORD, DEMO_RATE
from tests.e2e.live import app_token, hello, open_device, subscribe, synthetic_uv
from tests.portal.conftest import PortalServer

CHUNK = 10
STREAM_SECONDS = 5.0  # a focus index covers 4 s, and a stream's windows end up to 0.5 s later


def _pseudonym(server: PortalServer, app_id: str, subject_id: str) -> str:
    gateway = server.gateway()
    try:
        with gateway.transaction() as session:
            row = session.exec(select(AppPseudonym).where(
                AppPseudonym.app_id == app_id, AppPseudonym.subject_id == subject_id)).one()
            return row.pseudonym
    finally:
        gateway.engine.dispose()


def _delivered(server: PortalServer, app_id: str, subject_id: str) -> int:
    gateway = server.gateway()
    try:
        with gateway.transaction() as session:
            rows = session.exec(select(Delivery).where(
                Delivery.app_id == app_id, Delivery.subject_id == subject_id)).all()
            return sum(r.messages for r in rows)
    finally:
        gateway.engine.dispose()


def _stream(server: PortalServer) -> int:
    """Mia's band streams a few seconds to FocusQuest; returns the data messages it read."""
    world = server.world
    device, welcome = open_device(server.url, app_token(server.url, world.credentials["band"]),
                                  hello(BAND_CHANNELS, DEMO_RATE))
    assert welcome["type"] == "welcome", welcome
    app = subscribe(server.url, app_token(server.url, world.credentials["focus"]),
                    _pseudonym(server, world.apps["focus"], world.subjects["mia"]),
                    "neurofeedback")
    assert app.first["type"] == "subscribed", app.first
    t0 = time.time()
    sent = 0
    while sent < STREAM_SECONDS * DEMO_RATE:
        data = synthetic_uv(CHUNK, sent, DEMO_RATE, n_channels=len(BAND_CHANNELS))
        device.send(encode_frame(data, sequence=sent // CHUNK, timestamp=t0 + sent / DEMO_RATE))
        sent += CHUNK
        time.sleep(max(0.0, t0 + sent / DEMO_RATE - time.time()))
    device.send(json.dumps({"type": "bye"}))
    device.close()
    app.close()
    return len(app.data())


def test_a_real_subscription_is_counted_and_shown_on_the_activity_page(
        portal_server: PortalServer) -> None:
    """After the app leaves, its delivered messages are in the day's count and the chart."""
    world = portal_server.world
    received = _stream(portal_server)
    assert received > 0
    # Live counts land every few seconds, the rest once the watcher sees the app gone.
    deadline = time.monotonic() + 30
    counted = 0
    while time.monotonic() < deadline:
        counted = _delivered(portal_server, world.apps["focus"], world.subjects["mia"])
        if counted >= received:
            break
        time.sleep(0.2)
    assert counted >= received  # all it read, and any sent as it hung up
    with httpx.Client(base_url=portal_server.url) as client:
        page = client.get("/portal/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        signed_in = client.post("/portal/login", data={
            "username": "parent.chen", "password": DEMO_PASSWORD,
            "csrf_token": token.group(1)})
        assert signed_in.status_code == 303, signed_in.text
        html = client.get("/portal/activity").text
    bars = re.findall(r'data-series="FocusQuest Neurofeedback">(.*?)</g>', html)
    assert bars, "the chart has no FocusQuest series"
    values = [int(v) for v in re.findall(r'data-value="(\d+)"', bars[0])]
    # The page shows what was stored when it was drawn: no less than before, no more than now.
    assert counted <= sum(values) <= _delivered(portal_server, world.apps["focus"],
                                                world.subjects["mia"])
    connections = html[html.index("Each connection, from the gateway"):]
    assert "FocusQuest Neurofeedback" in connections[:connections.index("</table>")]
