"""Streams: step the number of real-time device streams up until a system falls behind.

Three systems carry the same streams to the same apps: the gateway (authenticated
devices, consent-gated apps, per-stream pipeline, ledger), the bare relay (same transport
and frames, nothing else) and Lab Streaming Layer (pylsl outlets and inlets). Each stream
has two subscribing apps: a clinical app (gateway: ``clinical_monitoring`` -> filtered EEG
at the purpose's rate, binary frames) and a neurofeedback app (gateway: ``neurofeedback``
-> focus and relaxation indices, JSON). The relay and LSL have no products: both apps get
every frame.

A step adds streams (those already running keep running), streams for a warm-up, then
measures a window. It is *sustained* when every device streams, the apps receive at least
97 % of real time (no app below 90 %), nothing is dropped or closed, the latency does not
drift upwards and its p99 is at most ``max_p99_ms``.
"""

from __future__ import annotations

import abc
import math
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from neurogate.bench._clients import app_worker, device_worker, hello
from neurogate.bench._procs import Meter, ServerProcess, Worker
from neurogate.bench._seed import BenchClinic
from neurogate.bench._stats import slope, summary
from neurogate.bench.config import BenchConfig, StreamSetting

Say = Callable[[str], None]
CLINICAL_RATE_HZ = 250.0  # clinical_monitoring's highest delivered sample rate


def delivered_rate(rate: float, allowed: float = CLINICAL_RATE_HZ) -> float:
    """The rate the gateway delivers a sample product at (an integer decimation)."""
    return rate / max(1, math.ceil(rate / allowed - 1e-9))


class _System(abc.ABC):
    """A system under test: its server (if any) and two client worker processes."""

    name = ""

    def __init__(self, setting: StreamSetting, devices: Worker, apps: Worker,
                 server: ServerProcess | None) -> None:
        self.setting, self.devices, self.apps, self.server = setting, devices, apps, server
        self.n = 0

    def pids(self) -> dict[str, int]:
        pids = {"devices": self.devices.pid, "apps": self.apps.pid, "bench": os.getpid()}
        if self.server is not None:
            pids["server"] = self.server.pid
        return pids

    @abc.abstractmethod
    def specs(self, i: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The device and app specifications of stream ``i``."""

    def grow(self, n: int) -> dict[str, Any]:
        """Connect apps, then devices, for streams ``self.n .. n - 1``."""
        pairs = [self.specs(i) for i in range(self.n, n)]
        apps = self.apps.call("add", [a for _, subs in pairs for a in subs], timeout=300)
        devices = self.devices.call("add", [d for d, _ in pairs], timeout=300)
        self.n = n
        return {"apps": apps, "devices": devices}

    def start(self, t0: float) -> None:
        self.devices.call("start", t0)

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """A window's CPU and memory figures, as the step reports them (a cluster sums its
        nodes into ``server``)."""
        return usage

    def window(self, a: float, b: float) -> tuple[dict[str, Any], dict[str, Any]]:
        # Both workers wait for the window to end; ask both before reading either answer.
        self.devices.conn.send(("window", (a, b)))
        self.apps.conn.send(("window", (a, b)))
        out = []
        for worker in (self.devices, self.apps):
            if not worker.conn.poll(b - time.time() + 60):
                msg = f"The {worker.name} worker did not report its window."
                raise RuntimeError(msg)
            status, value = worker.conn.recv()
            if status != "ok":
                msg = f"The {worker.name} worker failed: {value}"
                raise RuntimeError(msg)
            out.append(value)
        return out[0], out[1]

    def close(self) -> None:
        self.devices.close()
        self.apps.close()


class GatewaySystem(_System):
    name = "gateway"

    def __init__(self, setting: StreamSetting, server: ServerProcess, clinic: BenchClinic,
                 clinical_format: str = "binary") -> None:
        super().__init__(setting, Worker(device_worker, "gateway devices"),
                         Worker(app_worker, "gateway apps"), server)
        self.clinic, self.format = clinic, clinical_format
        self._app_tokens: dict[str, str] = {}

    def grow(self, n: int) -> dict[str, Any]:
        self.clinic.ensure_streams(self.setting, n)
        self._app_tokens = {label: self.clinic.token(creds)
                            for label, creds in self.clinic.apps.items()}
        return super().grow(n)

    def specs(self, i: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        s, clinic = self.setting, self.clinic
        ws = self.server.url.replace("http://", "ws://") if self.server else ""
        subject = clinic.subjects[i]
        device = {"url": f"{ws}/v1/stream/ingest", "n_channels": s.n_channels, "rate": s.rate,
                  "chunk": s.chunk, "hello": hello(list(s.channel_names), s.rate),
                  "headers": clinic.bearer(clinic.devices[(s.name, i)])}
        apps = []
        for label, purpose, fmt in (("clinical", "clinical_monitoring", self.format),
                                    ("feedback", "neurofeedback", "json")):
            apps.append({"label": label, "rate_out": delivered_rate(s.rate),
                         "headers": {"Authorization": f"Bearer {self._app_tokens[label]}"},
                         "url": f"{ws}/v1/stream/subscribe?subject="
                                f"{clinic.pseudonym(label, subject)}&purpose={purpose}"
                                f"&format={fmt}"})
        return device, apps


class RelaySystem(_System):
    name = "bare_relay"

    def __init__(self, setting: StreamSetting, server: ServerProcess) -> None:
        super().__init__(setting, Worker(device_worker, "relay devices"),
                         Worker(app_worker, "relay apps"), server)

    def specs(self, i: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        s = self.setting
        ws = self.server.url.replace("http://", "ws://") if self.server else ""
        key = f"{s.name}-{i}"
        device = {"url": f"{ws}/ingest/{key}", "n_channels": s.n_channels, "rate": s.rate,
                  "chunk": s.chunk, "hello": hello(list(s.channel_names), s.rate)}
        apps = [{"label": label, "rate_out": s.rate, "url": f"{ws}/subscribe/{key}"}
                for label in ("clinical", "feedback")]
        return device, apps


class LslSystem(_System):
    name = "lsl"

    def __init__(self, setting: StreamSetting) -> None:
        from neurogate.bench._lsl import inlet_worker, outlet_worker

        super().__init__(setting, Worker(outlet_worker, "LSL outlets"),
                         Worker(inlet_worker, "LSL inlets"), None)
        self.type = f"NGBench-{uuid.uuid4().hex[:8]}-{setting.name}"

    def close(self) -> None:
        self.apps.close()  # inlets first, so that no inlet sees its outlet vanish
        self.devices.close()

    def grow(self, n: int) -> dict[str, Any]:
        # Outlets must exist before inlets can resolve them (they push only from ``start``).
        pairs = [self.specs(i) for i in range(self.n, n)]
        devices = self.devices.call("add", [d for d, _ in pairs], timeout=300)
        apps = self.apps.call("add", [a for _, subs in pairs for a in subs], timeout=300)
        self.n = n
        return {"apps": apps, "devices": devices}

    def specs(self, i: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        s = self.setting
        common = {"n_channels": s.n_channels, "rate": s.rate, "chunk": s.chunk,
                  "type": self.type, "source_id": f"{self.type}-{i}"}
        return ({**common, "key": f"bench-{i}"},
                [{**common, "label": label} for label in ("clinical", "feedback")])


def _trend(report: dict[str, Any], window: float) -> float | None:
    """Median latency in the window's last quarter minus its first, per second (ms/s)."""
    t, lat = report["recv_t"], report["latency_ms"]
    early, late = lat[t < window / 4], lat[t > 3 * window / 4]
    if early.size < 3 or late.size < 3:
        return None
    return round(float(np.median(late) - np.median(early)) / (0.75 * window), 2)


def evaluate(n: int, setting: StreamSetting, dev: dict[str, Any], apps: dict[str, Any],
             usage: dict[str, Any], grown: dict[str, Any], config: BenchConfig) -> dict[str, Any]:
    """One step's figures and whether it was sustained (with the reasons if not)."""
    window = config.measure_s
    clinical, feedback = apps.get("clinical"), apps.get("feedback")
    expected_in = n * setting.n_channels * setting.rate
    lat = summary(clinical["latency_ms"]) if clinical else summary([])
    cover = clinical["coverage"] if clinical else np.zeros(0)
    fb_cover = feedback["coverage"] if feedback else np.zeros(0)
    dropped = sum(int(apps[k]["dropped"]) for k in ("clinical", "feedback") if k in apps)
    trend = _trend(clinical, window) if clinical else None
    handshakes = grown["apps"]["handshake_ms"]
    step: dict[str, Any] = {
        "streams": n,
        "samples_in_per_s": round(dev["values"] / window),
        "expected_in_per_s": round(expected_in),
        "samples_out_per_s": round(sum(apps[k]["values"] for k in ("clinical", "feedback")
                                       if k in apps) / window),
        "messages_out_per_s": round(sum(apps[k]["messages"] for k in ("clinical", "feedback")
                                        if k in apps) / window),
        "latency_ms": lat,
        "feedback_latency_ms": summary(feedback["latency_ms"]) if feedback else summary([]),
        "latency_trend_ms_per_s": trend,
        "coverage": {"mean": round(float(cover.mean()), 4) if cover.size else 0.0,
                     "min": round(float(cover.min()), 4) if cover.size else 0.0},
        "feedback_coverage_min": round(float(fb_cover.min()), 4) if fb_cover.size else 0.0,
        "dropped_frames": dropped,
        "closed_connections": int(dev["closed"]) + int(apps["closed"]),
        "closed_reasons": (dev["closed_reasons"] + apps["closed_reasons"])[:5],
        "device_send_lag_ms": summary(dev["lag_ms"]),
        "connect_failures": grown["apps"]["failed"] + grown["devices"]["failed"],
        "subscribe_ms": summary(handshakes),
        "server": usage.get("server"),
        "clients_cpu_pct": {k: usage[k]["cpu_pct"] for k in ("devices", "apps")},
        "machine_busy_pct": usage["machine_busy_pct"],
        "others_cpu_pct": usage["others_cpu_pct"],
        "load_avg_1m": usage["load_avg_1m"],
    }
    reasons = []
    if dev["streaming"] < n or step["connect_failures"]:
        reasons.append(f"only {dev['streaming']} of {n} devices streaming")
    if dev["values"] < 0.97 * expected_in * window:
        reasons.append(f"devices sent {dev['values'] / (expected_in * window):.1%} of real time")
    if step["coverage"]["mean"] < 0.97 or step["coverage"]["min"] < 0.9:
        reasons.append(f"apps received {step['coverage']['mean']:.1%} of real time "
                       f"(lowest {step['coverage']['min']:.1%})")
    if lat["p99"] is None or lat["p99"] > config.max_p99_ms:
        reasons.append(f"p99 latency {lat['p99']} ms > {config.max_p99_ms:g} ms")
    if trend is not None and trend > 10.0:
        reasons.append(f"latency grows {trend} ms per s (falling behind)")
    if dropped:
        reasons.append(f"{dropped} frames dropped")
    if step["closed_connections"]:
        reasons.append(f"{step['closed_connections']} connections closed")
    step["sustained"] = not reasons
    step["reasons"] = reasons
    step["client_limited"] = any(v > 90.0 for v in step["clients_cpu_pct"].values())
    return step


def _measure(system: _System, meter: Meter, a: float, config: BenchConfig, n: int,
             grown: dict[str, Any]) -> dict[str, Any]:
    b = a + config.measure_s
    time.sleep(max(0.0, a - time.time()))
    meter.begin()
    time.sleep(max(0.0, b - time.time()))
    usage = system.usage(meter.end())
    dev, apps = system.window(a, b)
    return evaluate(n, system.setting, dev, apps, usage, grown, config)


def step_up(system: _System, steps: tuple[int, ...], config: BenchConfig, say: Say
            ) -> dict[str, Any]:
    """Add streams step by step until the system does not sustain them.

    A step that fails while other processes on the machine used more than half a core
    is measured once more (same streams, a fresh window): a burst of someone else's
    work should not end the search, a saturated system fails twice.
    """
    meter = Meter(system.pids())
    results: list[dict[str, Any]] = []
    for n in steps:
        grown = system.grow(n)
        t0 = time.time() + 0.2
        system.start(t0)
        step = _measure(system, meter, t0 + config.warmup_s, config, n, grown)
        if not step["sustained"] and step["others_cpu_pct"] > 50.0:
            say(f"  {system.name} {system.setting.name} N={n}: failed under outside load "
                f"({step['others_cpu_pct']}% of a core): {'; '.join(step['reasons'])}; "
                "measuring again")
            first = step
            step = _measure(system, meter, time.time() + 0.5, config, n, grown)
            step["first_attempt"] = {k: first[k] for k in (
                "reasons", "latency_ms", "others_cpu_pct", "machine_busy_pct")}
        results.append(step)
        server = step["server"] or {}
        say(f"  {system.name} {system.setting.name} N={n}: "
            f"{'ok' if step['sustained'] else 'NOT sustained'}; p50/p99 "
            f"{step['latency_ms']['p50']}/{step['latency_ms']['p99']} ms; server CPU "
            f"{server.get('cpu_pct', '-')}%; clients {step['clients_cpu_pct']}; "
            f"others {step['others_cpu_pct']}% "
            + ("; ".join(step["reasons"]) if step["reasons"] else ""))
        if not step["sustained"]:
            break
    return summarize(results, steps)


def summarize(results: list[dict[str, Any]], steps: tuple[int, ...]) -> dict[str, Any]:
    """Sustained maximum, latency at half of it, memory and CPU per added stream."""
    ok = [s for s in results if s["sustained"]]
    best = max((s["streams"] for s in ok), default=0)
    half = [s for s in ok if s["streams"] <= max(1, best // 2)]
    at_half = half[-1] if half else None
    with_server = [s for s in ok if s["server"]]
    failed = next((s for s in results if not s["sustained"]), None)
    return {
        "sustained_streams": best,
        "capped": bool(results) and failed is None and best == max(steps),
        "limit": failed["reasons"] if failed else ["every step tried was sustained"],
        "limit_client_limited": failed["client_limited"] if failed else None,
        "latency_at_half_max": None if at_half is None else {
            "streams": at_half["streams"], "p50_ms": at_half["latency_ms"]["p50"],
            "p99_ms": at_half["latency_ms"]["p99"]},
        "rss_mib_per_stream": slope([s["streams"] for s in with_server],
                                    [s["server"]["rss_mib"] for s in with_server]),
        "cpu_pct_per_stream": slope([s["streams"] for s in with_server],
                                    [s["server"]["cpu_pct"] for s in with_server]),
        "steps": results,
    }


def wait_idle(pids: list[int], *, below_pct: float = 10.0, timeout: float = 30.0) -> float:
    """Wait until each process uses less than ``below_pct`` of a core; returns the wait."""
    import psutil

    procs = [psutil.Process(pid) for pid in pids]
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        before = [sum(p.cpu_times()[:2]) for p in procs]
        time.sleep(0.5)
        used = [100.0 * (sum(p.cpu_times()[:2]) - b) / 0.5 for p, b in zip(procs, before,
                                                                           strict=True)]
        if max(used) < below_pct:
            break
    return round(time.monotonic() - began, 1)


def run_system(make: Callable[[], _System], steps: tuple[int, ...], config: BenchConfig,
               say: Say, servers: list[int] | None = None) -> dict[str, Any]:
    """Build a system, step it up, and always close its workers.

    ``servers`` (pids) must be idle first: a server that fell behind in the previous run
    may still be working off its backlog, which would load this run.
    """
    settled = wait_idle(servers) if servers else 0.0
    system = make()
    try:
        result = step_up(system, steps, config, say)
    finally:
        system.close()
    result["waited_for_idle_servers_s"] = settled
    return result


__all__ = ["GatewaySystem", "LslSystem", "RelaySystem", "delivered_rate", "evaluate",
           "run_system", "step_up", "summarize"]
