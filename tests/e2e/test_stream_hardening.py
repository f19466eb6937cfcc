"""Stream hardening against a real gateway process: restarts after kill -9, subscribe
floods, cross-site handshakes, oversized hellos."""

from __future__ import annotations

import collections
import contextlib
import json
import math
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from neurogate.consent.db import get_engine
from neurogate.consent.models import LedgerLeaf, LiveStreamRecord
from neurogate.settings import Settings
from tests.e2e.conftest import ServerProcess, clinic_server, neurogate
from tests.e2e.live import DeviceThread, app_token, open_device, subscribe, ws_url
from tests.gateway.conftest import Clinic

pytestmark = pytest.mark.e2e


@dataclass
class Live:
    server: ServerProcess
    clinic: Clinic
    gateway_settings: Settings

    def token(self, who: str) -> str:
        return app_token(self.server.url, self.clinic.secrets[who])

    def pseudonym(self, app: str) -> str:
        rows = self.clinic.client.get("/v1/consents", headers=self.clinic.as_(app)).json()
        return str(rows[0]["subject"])

    def entries(self) -> list[dict[str, Any]]:
        """Every ledger entry that is still readable, in order (read from the database)."""
        with Session(get_engine(self.gateway_settings.resolved_database_url)) as session:
            leaves = session.exec(select(LedgerLeaf).order_by(LedgerLeaf.seq)).all()
            return [json.loads(leaf.entry) for leaf in leaves if leaf.entry is not None]

    def live_rows(self) -> list[LiveStreamRecord]:
        with Session(get_engine(self.gateway_settings.resolved_database_url)) as session:
            return list(session.exec(select(LiveStreamRecord)).all())


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """A gateway process (SQLite) with a clinic; dev1 is paired with adult1."""
    with clinic_server(tmp_path / "var", log=tmp_path / "server.log") as (
            server, clinic, _, gateway):
        yield Live(server, clinic, gateway.settings)


def _stream_leaves(entries: list[dict[str, Any]], action: str) -> dict[str, dict[str, Any]]:
    return {e["stream"]: e for e in entries if e.get("action") == action}


def test_streams_live_at_a_sigkill_are_closed_in_the_ledger_on_restart(live: Live) -> None:
    """kill -9 leaves a device stream and a subscription with a start leaf and no stop
    leaf; the restarted gateway appends their stop leaves (reason_code gateway_restart),
    forgets them, and the ledger still verifies."""
    sock, welcome = open_device(live.server.url, live.token("dev1"))
    assert welcome["type"] == "welcome", welcome
    device = DeviceThread(sock).start()
    app = subscribe(live.server.url, live.token("clinic_app"), live.pseudonym("clinic_app"),
                    "clinical_monitoring")
    assert app.first["type"] == "subscribed", app.first
    time.sleep(1.0)
    live.server.kill(signal.SIGKILL)
    device.stop()
    app.close()
    started = _stream_leaves(live.entries(), "stream.start")
    assert welcome["stream"] in started and len(started) == 2, started
    assert _stream_leaves(live.entries(), "stream.stop") == {}, "nothing stopped them"
    assert {row.stream for row in live.live_rows()} == set(started)

    live.server.start()
    deadline = time.monotonic() + 30
    while set(_stream_leaves(live.entries(), "stream.stop")) != set(started):
        assert time.monotonic() < deadline, "the restarted gateway never closed the streams"
        time.sleep(0.2)
    stops = _stream_leaves(live.entries(), "stream.stop")
    verified = neurogate("audit", "verify", env=live.server.env)

    for stream, start in started.items():
        stop = stops[stream]
        assert stop["reason_code"] == "gateway_restart", stop
        assert {k: v for k, v in stop.items() if k in ("device", "app", "subject", "purpose")} == {
            k: v for k, v in start.items() if k in ("device", "app", "subject", "purpose")}
    assert live.live_rows() == []
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _first_and_close(url: str, headers: dict[str, str]) -> tuple[dict[str, Any], int | None]:
    """Open a socket, read the gateway's first message and the close code that follows."""
    with connect(url, additional_headers=headers) as sock:
        first = json.loads(sock.recv(timeout=30))
        try:
            while True:
                sock.recv(timeout=30)
        except ConnectionClosed as exc:
            return first, exc.rcvd.code if exc.rcvd is not None else None
        except TimeoutError:
            return first, None


def _subscribe_once(url: str, token: str) -> tuple[dict[str, Any], int | None]:
    """One subscribe attempt: the first message and, unless the app was subscribed (then
    the app closes at once), the gateway's close code."""
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as sock:
        first = json.loads(sock.recv(timeout=30))
        if first["type"] == "subscribed":
            return first, None
        with contextlib.suppress(ConnectionClosed):
            sock.recv(timeout=30)
        return first, sock.close_code


def test_a_subscribe_flood_writes_few_leaves_and_a_device_still_gets_its_welcome(
        live: Live) -> None:
    """300 subscribe attempts from one app: past the per-app limit they are refused with
    rate_limited (then 4429) and counted in aggregate, so the ledger grows by two leaves per
    accepted subscription plus one per kind and window; a device's hello during the flood
    still gets its welcome. Subscriptions the policy refuses are counted the same way, with
one stream.deny leaf (subject, purpose, reasons) per app, subject and purpose and window."""
    limit = live.gateway_settings.subscribe_attempts_per_minute
    token = live.token("clinic_app")
    url = ws_url(live.server.url, f"/v1/stream/subscribe?subject={live.pseudonym('clinic_app')}"
                                  f"&purpose=clinical_monitoring")
    device_token = live.token("dev1")
    connected = live.clinic.client.post(f"/v1/subjects/{live.clinic.ids['adult1']}/connections",
                                        headers=live.clinic.as_("adult1"),
                                        json={"app_id": live.clinic.ids["ad_app"]})
    assert connected.status_code in (200, 201), connected.text
    refused_url = ws_url(live.server.url, f"/v1/stream/subscribe?subject="
                                          f"{connected.json()['subject']}&purpose=neuromarketing")
    ad_token = live.token("ad_app")
    before = len(live.entries())
    refusals = [_subscribe_once(refused_url, ad_token) for _ in range(5)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        attempts = [pool.submit(_subscribe_once, url, token) for _ in range(300)]
        time.sleep(1.0)  # the flood is under way
        hello_at = time.monotonic()
        sock, welcome = open_device(live.server.url, device_token)
        welcome_latency = time.monotonic() - hello_at
        answers = [a.result() for a in attempts]
    elapsed = time.monotonic() - started
    outcomes = collections.Counter(str(first.get("code") or first["type"])
                                   for first, _ in answers)
    sock.send(json.dumps({"type": "bye"}))
    with contextlib.suppress(ConnectionClosed):
        sock.recv(timeout=10)
    live.server.stop()  # a graceful stop flushes the open abuse windows to the ledger
    added = live.entries()[before:]
    kinds = collections.Counter(e["action"] for e in added)
    denied = [e for e in added if e["action"] == "abuse.aggregate" and e["kind"] == "stream.deny"]
    aggregates = [e for e in added if e["action"] == "abuse.aggregate"
                  and e["kind"] != "stream.deny"]
    print(f"\n300 subscribe attempts in {elapsed:.1f} s: {dict(outcomes)}; "
          f"{len(added)} ledger leaves ({dict(kinds)}); device welcome after "
          f"{welcome_latency * 1000:.0f} ms during the flood")

    assert welcome["type"] == "welcome", welcome
    assert [(first["type"], code) for first, code in refusals] == [("refused", 4403)] * 5
    deny_leaves = [e for e in added if e["action"] == "stream.deny"]
    assert len(deny_leaves) == 1, deny_leaves
    assert deny_leaves[0]["app"] == live.clinic.ids["ad_app"]
    assert deny_leaves[0]["purpose"] == "neuromarketing" and deny_leaves[0]["reasons"]
    assert [e["key"] for e in denied] in ([live.clinic.ids["ad_app"]],
                                         [live.clinic.ids["ad_app"]] * 2)  # 1 or 2 windows
    assert sum(int(e["count"]) for e in denied) == 5
    windows = 1 + math.ceil(elapsed / 60)  # moving-window throttle, fixed abuse windows
    assert outcomes["subscribed"] <= limit * windows
    assert outcomes["rate_limited"] >= 300 - limit * windows
    assert set(outcomes) <= {"subscribed", "rate_limited"}
    assert kinds["stream.start"] == kinds["stream.stop"] == outcomes["subscribed"] + 1
    assert all(e["kind"] == "stream.throttled" and e["key"] == live.clinic.ids["clinic_app"]
               for e in aggregates), aggregates
    assert sum(int(e["count"]) for e in aggregates) == outcomes["rate_limited"]
    assert len(aggregates) <= windows
    assert len(added) == 2 * (outcomes["subscribed"] + 1) + len(aggregates) + len(denied) + 1
    for first, code in answers:
        if first["type"] == "subscribed":
            continue
        assert code == 4429
        assert first["type"] == "error" and first["code"] == "rate_limited", first
        assert 1 <= first["retry_after"] <= 60
        assert first["message"] == (
            f"This app tried to subscribe more than {limit} times within a minute. Try "
            f"again in {first['retry_after']} s, and back off between attempts.")


@pytest.mark.parametrize("path", ["/v1/stream/ingest", "/v1/stream/subscribe"])
def test_a_cross_site_handshake_with_the_session_cookie_is_refused(live: Live,
                                                                   path: str) -> None:
    """A handshake that the portal's session cookie authenticates closes with 4403
    forbidden_origin from another site's Origin, before the cookie is looked at."""
    session = live.clinic.as_("adult1")["Authorization"].removeprefix("Bearer ")
    url = ws_url(live.server.url, path)
    cookie = {"Cookie": f"ngs_session={session}"}

    cross, cross_code = _first_and_close(url, {**cookie, "Origin": "https://evil.example"})
    same, same_code = _first_and_close(url, {**cookie, "Origin": live.server.url})

    assert cross_code == 4403
    assert cross["code"] == "forbidden_origin", cross
    assert "https://evil.example" in cross["message"]
    # From the gateway's own origin the cookie is read: a person's session is no device
    # or app token, so the handshake is refused for that reason instead.
    assert same_code == 4403
    assert same["code"] == "forbidden", same


@pytest.mark.parametrize(("name", "field", "match"), [
    pytest.param("C" * 33, "channels[0].name", "string of 1 to 32 characters", id="33-chars"),
    pytest.param("C" * 100_000, None, "The hello has 100", id="100kB"),
])
def test_a_hello_with_an_oversized_channel_name_is_refused(live: Live, name: str,
                                                           field: str | None,
                                                           match: str) -> None:
    """A channel name above 32 characters (or a hello above 64 KiB) closes with 4400,
    naming the field, and the error quotes at most 80 characters of the value."""
    message = {"type": "hello", "protocol": 1, "sampling_rate": 250.0,
               "channels": [{"name": name, "type": "eeg"}, {"name": "C4", "type": "eeg"}]}
    sock, answer = open_device(live.server.url, live.token("dev1"), message)
    with contextlib.suppress(ConnectionClosed):
        sock.recv(timeout=10)

    assert sock.close_code == 4400
    assert answer["code"] == "bad_hello" and answer["field"] == field, answer
    assert match in answer["message"]
    assert len(answer["message"]) < 400
