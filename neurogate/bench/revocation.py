"""Revocation: grant, subscribe, receive, revoke through the API; time the socket's close.

A few subjects' devices stream throughout (8 channels at 250 Hz), beside a few background
streams with their apps; trials take turns over these subjects. Each trial:

1. a clinician grants the clinical app a consent (``POST /v1/consents``);
2. the app subscribes (JSON format) and waits for its first data message;
3. the clinician revokes it (``POST /v1/consents/{id}/revoke``): ``call`` is when the
   request is sent, ``ack`` when its answer arrives (the revocation committed before);
4. the app's socket closes: ``closed`` is when the close frame arrives.

Reported: ``closed - call`` (p50/p99), ``ack - call``, and the data messages whose
production time (their ``t``, the first sample's device time) is after ``ack``: they were
produced after the commit, so the target is zero. Messages with ``t`` between ``call``
and ``ack`` are counted apart: the commit happens somewhere in that interval.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurogate.bench._clients import device_worker, hello
from neurogate.bench._procs import ServerProcess, Worker
from neurogate.bench._seed import BenchClinic
from neurogate.bench._stats import summary
from neurogate.bench.config import CYTON, StreamSetting
from neurogate.bench.throughput import GatewaySystem

Say = Callable[[str], None]


@dataclass
class _TrialApp:
    """The app side of one trial, reading its socket in a thread."""

    url: str
    token: str
    subscribed: threading.Event = field(default_factory=threading.Event)
    first_data: threading.Event = field(default_factory=threading.Event)
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    first: dict[str, Any] = field(default_factory=dict)
    subscribe_ms: float | None = None
    closed_at: float | None = None
    close_code: int | None = None
    error: str | None = None

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        began = time.perf_counter()
        try:
            with connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                         compression=None, proxy=None, open_timeout=10) as sock:
                self.first = json.loads(sock.recv(timeout=10))
                self.subscribe_ms = (time.perf_counter() - began) * 1e3
                self.subscribed.set()
                try:
                    while True:
                        raw = sock.recv()
                        now = time.time()
                        message = json.loads(raw)
                        self.messages.append((now, message))
                        if message.get("type") == "data":
                            self.first_data.set()
                except ConnectionClosed as exc:
                    self.closed_at = time.time()
                    self.close_code = exc.rcvd.code if exc.rcvd is not None else None
        except Exception as exc:  # a failed trial is counted, not raised
            self.error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            self.subscribed.set()
            self.first_data.set()


def _trial(clinic: BenchClinic, subject: str, base_ws: str, token: str) -> dict[str, Any]:
    """One revocation: the app subscribes at ``base_ws``, the clinic (whose REST API may be
    another node's) grants and revokes."""
    consent = clinic.grant("clinical", subject)
    url = (f"{base_ws}/v1/stream/subscribe?subject={clinic.pseudonym('clinical', subject)}"
           f"&purpose=clinical_monitoring&format=json")
    app = _TrialApp(url, token)
    thread = app.start()
    app.first_data.wait(10)
    if app.error or app.first.get("type") != "subscribed" or not app.messages:
        clinic.revoke(consent)
        thread.join(5)
        return {"ok": False, "error": app.error or json.dumps(app.first)[:200]}
    call = time.time()
    response = clinic.revoke(consent)
    ack = time.time()
    thread.join(5)
    data = [(at, m) for at, m in app.messages if m.get("type") == "data"]
    revoked_at = next((at for at, m in app.messages if m.get("type") == "revoked"), None)
    return {
        "ok": response.status_code == 200 and app.closed_at is not None,
        "status": response.status_code,
        "close_code": app.close_code,
        "revoked_message": revoked_at is not None,
        "subscribe_ms": app.subscribe_ms,
        "ack_ms": (ack - call) * 1e3,
        "closed_ms": None if app.closed_at is None else (app.closed_at - call) * 1e3,
        "closed_after_ack_ms": None if app.closed_at is None else (app.closed_at - ack) * 1e3,
        "late_frames": sum(m["t"] > ack for _, m in data),
        "frames_produced_during_call": sum(call < m["t"] <= ack for _, m in data),
        "frames_received_after_call": sum(at > call for at, _ in data),
        "frames_received": len(data),
    }


def run_revocation(server: ServerProcess, clinic: BenchClinic, trials: int, background: int,
                   say: Say, subjects: int = 8,
                   background_setting: StreamSetting = CYTON,
                   app_server: ServerProcess | None = None) -> dict[str, Any]:
    """``trials`` revocations during streaming; their timing and any late frames.

    Trials take turns over ``subjects`` subjects, each with its own streaming device, so
    that no subject's consent history grows unrealistically long (the gateway's decision
    reads the whole history; see ``docs/benchmarks.md``). ``background`` more streams
    run with their two apps each, of ``background_setting``. The devices connect to
    ``server`` and the revocations go through ``clinic`` (its REST API); with
    ``app_server`` (another node of a cluster) the trial apps subscribe there, so each
    revocation crosses nodes.
    """
    ws = server.url.replace("http://", "ws://")
    app_ws = (app_server or server).url.replace("http://", "ws://")
    streamer = Worker(device_worker, "revocation devices")
    rest = GatewaySystem(background_setting, server, clinic) if background else None
    people = []
    results: list[dict[str, Any]] = []
    try:
        specs = []
        for k in range(max(1, subjects)):
            subject = clinic.add_subject(f"Bench revocation subject {k}")
            device = clinic.add_device(CYTON, f"revocation-{k}", subject)
            people.append(subject)
            specs.append({"url": f"{ws}/v1/stream/ingest", "n_channels": CYTON.n_channels,
                          "rate": CYTON.rate, "chunk": CYTON.chunk,
                          "hello": hello(list(CYTON.channel_names), CYTON.rate),
                          "headers": clinic.bearer(device)})
        streamer.call("add", specs)
        streamer.call("start", time.time() + 0.1)
        if rest is not None:
            rest.grow(background)
            rest.start(time.time() + 0.1)
        time.sleep(1.0)
        token, token_at = clinic.token(clinic.apps["clinical"]), time.monotonic()
        for i in range(trials):
            if time.monotonic() - token_at > 300:
                token, token_at = clinic.token(clinic.apps["clinical"]), time.monotonic()
            results.append(_trial(clinic, people[i % len(people)], app_ws, token))
            if (i + 1) % 50 == 0:
                say(f"  revocation: {i + 1}/{trials} trials")
    finally:
        streamer.close()
        if rest is not None:
            rest.close()
    done = [r for r in results if r["ok"]]
    quarter = max(1, len(done) // 4)
    closed = [r["closed_ms"] for r in done]
    return {
        "trials": trials,
        "completed": len(done),
        "failed": [r.get("error") or f"status {r.get('status')}, code {r.get('close_code')}"
                   for r in results if not r["ok"]][:5],
        "subjects": len(people),
        "background_streams": background,
        "background_setting": background_setting.name,
        "app_node": app_server.url if app_server is not None else None,
        "streaming_devices": len(people) + background,
        "closed_ms": summary(closed),
        "ack_ms": summary([r["ack_ms"] for r in done]),
        "closed_after_ack_ms": summary([r["closed_after_ack_ms"] for r in done]),
        "subscribe_ms": summary([r["subscribe_ms"] for r in done]),
        "closed_ms_p50_first_quarter": summary(closed[:quarter])["p50"],
        "closed_ms_p50_last_quarter": summary(closed[-quarter:])["p50"],
        "late_frames": sum(r["late_frames"] for r in done),
        "frames_produced_during_call": sum(r["frames_produced_during_call"] for r in done),
        "frames_received_after_call": sum(r["frames_received_after_call"] for r in done),
        "revoked_message_and_4410": sum(r["revoked_message"] and r["close_code"] == 4410
                                        for r in done),
        "closed_ms_values": [round(r["closed_ms"], 3) for r in done],
    }


def run_revocation_alone(trials: int, background: int, background_setting: StreamSetting,
                         say: Say, log: Path) -> dict[str, Any]:
    """``run_revocation`` against a fresh gateway of its own (``neurogate bench
    revocation``), with the gateway's CPU sampled during the trials."""
    import tempfile

    import psutil

    from neurogate.bench._procs import start_gateway
    from neurogate.bench._seed import create_admin, open_clinic

    with tempfile.TemporaryDirectory(prefix="neurogate-revocation-") as tmp:
        data = Path(tmp) / "var"
        create_admin(data)
        server = start_gateway(data, log)
        stop, cpu = threading.Event(), []
        process = psutil.Process(server.pid)

        def sample() -> None:
            process.cpu_percent()
            while not stop.wait(2.0):
                cpu.append(process.cpu_percent())

        sampler = threading.Thread(target=sample, name="gateway cpu", daemon=True)
        clinic = None
        try:
            clinic = open_clinic(server.url)
            sampler.start()
            result = run_revocation(server, clinic, trials, background, say,
                                    background_setting=background_setting)
        finally:
            stop.set()
            if clinic is not None:
                clinic.http.close()
            server.stop()
    result["gateway_cpu_pct"] = summary(cpu[len(cpu) // 3:])  # past the streams' start
    return result


__all__ = ["run_revocation", "run_revocation_alone"]
