"""``neurogate demo --script``: the demo clinic's story, told over real sockets.

A gateway runs on a loopback port; two synthetic EEG devices stream into it; three apps
ask for data; a consent is revoked. Everything goes through the public interfaces (OAuth2
token endpoint, REST API, WebSocket protocol), exactly as a vendor's or an app's code would.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import uvicorn
from neurogate_client.wire import encode_frame
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from neurogate.consent.accounts import create_client
from neurogate.consent.models import Device
from neurogate.gateway.app import create_app
from neurogate.gateway.demo import DEMO_PASSWORD, DEMO_RATE, DemoWorld
from neurogate.gateway.state import Gateway

Say = Callable[[str], None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def synthetic_eeg_uv(n_channels: int, start: int, n: int, rate: float, focus: float
                     ) -> np.ndarray:
    """EEG-like microvolts: alpha (10 Hz), beta (20 Hz) weighted by ``focus``, and noise."""
    t = (start + np.arange(n)) / rate
    rng = np.random.default_rng(start)
    alpha = (1.0 - focus) * 30 * np.sin(2 * np.pi * 10 * t)
    beta = focus * 15 * np.sin(2 * np.pi * 20 * t)
    return np.vstack([alpha + beta + rng.normal(0, 3, n) for _ in range(n_channels)])


class _Device(threading.Thread):
    """A synthetic device streaming in real time over the protocol."""

    def __init__(self, url: str, token: str, channels: list[str], focus: float) -> None:
        super().__init__(daemon=True)
        self.sock = connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                            legacy=True)
        self.sock.send(json.dumps({
            "type": "hello", "protocol": 1, "sampling_rate": DEMO_RATE,
            "channels": [{"name": n, "type": "eeg", "unit": "uV"} for n in channels]}))
        self.welcome = json.loads(self.sock.recv(timeout=10))
        self.n_channels = len(channels)
        self.focus = focus
        self.stop_event = threading.Event()
        self.samples = 0

    def run(self) -> None:
        chunk, seq, start = 10, 0, time.time()
        while not self.stop_event.is_set():
            data = synthetic_eeg_uv(self.n_channels, self.samples, chunk, DEMO_RATE, self.focus)
            try:
                self.sock.send(encode_frame(data, sequence=seq,
                                            timestamp=start + self.samples / DEMO_RATE))
            except ConnectionClosed:
                return
            seq += 1
            self.samples += chunk
            time.sleep(max(0.0, start + self.samples / DEMO_RATE - time.time()))

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        try:
            self.sock.send(json.dumps({"type": "bye"}))
        except ConnectionClosed:
            pass
        self.sock.close()


class _App(threading.Thread):
    """An app subscribed over the protocol, collecting what it receives."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.sock: ClientConnection = connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, legacy=True)
        self.first: dict[str, Any] = json.loads(self.sock.recv(timeout=10))
        self.messages: list[dict[str, Any]] = []
        self.closed_at: float | None = None
        self.close_code: int | None = None

    def run(self) -> None:
        try:
            while True:
                self.messages.append(json.loads(self.sock.recv()))
        except ConnectionClosed as exc:
            self.closed_at = time.perf_counter()
            self.close_code = exc.rcvd.code if exc.rcvd is not None else None

    def data(self, product: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "data" and m["product"] == product]


def _credentials(gateway: Gateway, kind: str, owner_id: str) -> tuple[str, str]:
    with gateway.transaction() as session:
        return create_client(session=session, kind=kind, owner_id=owner_id)


def run_story(gateway: Gateway, world: DemoWorld, say: Say) -> int:
    """Tell the story; returns the process exit code (0 when everything happened as told)."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(gateway=gateway), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    try:
        return _tell(gateway, world, say, base, ws)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _token(base: str, creds: tuple[str, str]) -> str:
    response = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=creds)
    response.raise_for_status()
    return str(response.json()["access_token"])


def _login(http: httpx.Client, username: str) -> dict[str, str]:
    body = http.post("/v1/auth/login", json={"username": username,
                                             "password": DEMO_PASSWORD}).json()
    return {"Authorization": f"Bearer {body['session_token']}"}


def _ensure_consents(http: httpx.Client, world: DemoWorld, say: Say) -> dict[str, str]:
    """The story's two consents, granted again through the API if an earlier run (or a
    person) ended them. Returns app label -> active consent id."""
    wanted = {"clinic": ("dr.rivera", "alex", "clinical_monitoring", None),
              "focus": ("parent.chen", "mia", "neurofeedback", ["focus_index"])}
    found: dict[str, str] = {}
    for label, (who, subject, purpose, products) in wanted.items():
        headers = _login(http, who)
        rows = http.get("/v1/consents", headers=headers,
                        params={"subject_id": world.subjects[subject]}).json()
        live = [r for r in rows if r["app_id"] == world.apps[label] and r["status"] == "active"]
        if live:
            found[label] = live[0]["id"]
            continue
        notice = next(n for n in http.get(f"/v1/purposes/{purpose}").json()["notices"]
                      if n["language"] == "en" and n["variant"] == "plain")
        body: dict[str, Any] = {
            "subject_id": world.subjects[subject], "app_id": world.apps[label],
            "purpose_id": purpose, "notice": {k: notice[k] for k in
                                              ("version", "language", "variant", "sha256")}}
        if products:
            body["products"] = products
        granted = http.post("/v1/consents", headers=headers, json=body)
        granted.raise_for_status()
        found[label] = granted.json()["consent"]["id"]
        if subject == "mia":
            http.post(f"/v1/consents/{found[label]}/assent", headers=_login(http, "mia"),
                      json={"assent": "given"}).raise_for_status()
        say(f"   (An earlier run had ended the {purpose} consent; {who} granted it again.)")
    return found


def _tell(gateway: Gateway, world: DemoWorld, say: Say, base: str, ws: str) -> int:
    http = httpx.Client(base_url=base, timeout=30)
    with gateway.transaction() as session:
        devices = {label: session.get(Device, ident) for label, ident in world.devices.items()}
    consent_ids = _ensure_consents(http, world, say)
    say(f"1. NeuroGate is running at {base} with the demo clinic (password "
        f"'{DEMO_PASSWORD}'). Two synthetic EEG devices connect.")
    cap = _Device(f"{ws}/v1/stream/ingest",
                  _token(base, _credentials(gateway, "device", world.devices["cap"])),
                  list(devices["cap"].channel_names), focus=0.3)  # type: ignore[union-attr]
    band = _Device(f"{ws}/v1/stream/ingest",
                   _token(base, _credentials(gateway, "device", world.devices["band"])),
                   list(devices["band"].channel_names), focus=0.8)  # type: ignore[union-attr]
    cap.start()
    band.start()
    say(f"   Alex's 8-channel cap and Mia's 4-channel headband stream at {DEMO_RATE:g} Hz.")

    tokens = {label: _token(base, _credentials(gateway, "app", world.apps[label]))
              for label in ("clinic", "focus", "adlab")}

    def pseudonym(label: str) -> str:
        rows = http.get("/v1/connections",
                        headers={"Authorization": f"Bearer {tokens[label]}"}).json()
        return str(rows[0]["subject"])

    clinic = _App(f"{ws}/v1/stream/subscribe?subject={pseudonym('clinic')}"
                  f"&purpose=clinical_monitoring", tokens["clinic"])
    focus = _App(f"{ws}/v1/stream/subscribe?subject={pseudonym('focus')}"
                 f"&purpose=neurofeedback", tokens["focus"])
    adlab = _App(f"{ws}/v1/stream/subscribe?subject={pseudonym('adlab')}"
                 f"&purpose=neuromarketing&", tokens["adlab"])
    for app in (clinic, focus, adlab):
        app.start()
    # A focus index covers 4 s of signal and the stream's windows end at a phase of their
    # own (up to half a second later): wait for the first, within a deadline.
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not (
            clinic.data("filtered") and focus.data("focus_index")):
        time.sleep(0.1)

    ok = True
    filtered = clinic.data("filtered")
    say(f"2. The ward monitor (clinical monitoring) receives Alex's filtered EEG: "
        f"{sum(len(m['data'][0]) for m in filtered)} samples on "
        f"{len(filtered[0]['labels']) if filtered else 0} electrodes, plus "
        f"{', '.join(sorted(set(clinic.first.get('products', {})) - {'filtered'}))}.")
    ok &= bool(filtered)
    indices = focus.data("focus_index")
    kinds = {m["product"] for m in focus.messages if m.get("type") == "data"}
    values = ", ".join(f"{m['data'] if isinstance(m['data'], float) else m['data'][0]:.2f}"
                       for m in indices[:4])
    say(f"3. FocusQuest (neurofeedback) receives only a focus index for Mia, under its own "
        f"pseudonym: {len(indices)} values ({values}, ...); products seen: "
        f"{', '.join(sorted(kinds)) or 'none'}.")
    ok &= kinds == {"focus_index"}
    say("4. AdLab (neuromarketing) asks for Mia's data and is refused:")
    for reason, sentence in zip(adlab.first.get("reasons", []),
                                adlab.first.get("explanations", []), strict=False):
        say(f"   - {reason}: {sentence}")
    ok &= adlab.first.get("type") == "refused"

    say("5. Mia's parent revokes FocusQuest's consent in one call.")
    parent = _login(http, "parent.chen")
    started = time.perf_counter()
    revoked = http.post(f"/v1/consents/{consent_ids['focus']}/revoke", headers=parent,
                        json={"reason": "We decided to stop for now."})
    acked = time.perf_counter()
    focus.join(timeout=5)
    ok &= revoked.status_code == 200 and focus.close_code == 4410
    notice = next((m for m in focus.messages if m.get("type") == "revoked"), {})
    closed_ms = ((focus.closed_at or acked) - started) * 1000
    say(f"   The revocation was on disk after {(acked - started) * 1000:.0f} ms; FocusQuest "
        f"got '{notice.get('reason')}' and its socket closed {closed_ms:.0f} ms after the "
        f"call. The ward monitor keeps receiving Alex's data.")
    time.sleep(1.0)
    ok &= bool(clinic.data("filtered")) and clinic.close_code is None

    for app in (clinic, adlab):
        app.sock.close()
    cap.finish()
    band.finish()
    with gateway.transaction() as session:
        report = gateway.ledger.verify(session)
    say(f"6. The ledger holds {report.size} leaves (grants, assent, pairing, stream start, "
        f"stop and denial, the revocation) and verifies: {report.ok}.")
    ok &= report.ok
    say("Done." if ok else "Something did not happen as told; see above.")
    return 0 if ok else 1


__all__ = ["run_story", "synthetic_eeg_uv"]
