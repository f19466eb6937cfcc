"""``neurogate bench``: every section in one run, written to ``bench.json`` and ``bench.png``.

Order: policy and processing in this process first (no servers running), then for each
stream setting the gateway, the bare relay and LSL back to back (so that all three see
about the same background load), then revocation trials against the gateway. With
recording selected, each setting runs the gateway, then a gateway with recording on, then
the first gateway again: the two runs without recording bracket the one with it, and
their difference is the run-to-run noise that recording's effect is judged against.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from neurogate import __version__
from neurogate.bench._procs import ServerProcess, start_gateway, start_relay
from neurogate.bench._seed import create_admin, open_clinic
from neurogate.bench._stats import ratio
from neurogate.bench.config import CYTON, BenchConfig, StreamSetting
from neurogate.bench.policy import run_policy
from neurogate.bench.processing import run_processing
from neurogate.bench.revocation import run_revocation
from neurogate.bench.throughput import (
    GatewaySystem,
    LslSystem,
    RelaySystem,
    run_system,
    wait_idle,
)
from neurogate.gateway.recording_bench import RecordingGateway

Say = Callable[[str], None]
TOP_KEYS = ("machine", "settings", "gateway", "bare_relay", "lsl", "pipeline", "revocation",
            "policy", "ratios")


def machine_info() -> dict[str, Any]:
    """The machine and software the figures come from."""
    import scipy

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    try:
        import pylsl

        lsl = f"pylsl {pylsl.__version__}, liblsl {pylsl.library_version()}"
    except Exception:  # pylsl missing or liblsl not loadable
        lsl = None
    return {
        "cpu_model": model, "logical_cpus": os.cpu_count(),
        "physical_cpus": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(), "python": sys.version.split()[0],
        "numpy": np.__version__, "scipy": scipy.__version__, "lsl": lsl,
        "neurogate": __version__, "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _ratios(names: list[str], gateway: dict[str, Any], relay: dict[str, Any],
            lsl: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        gw, rl, ls = gateway.get(name), relay.get(name, {}), lsl.get(name, {})
        if gw is None:
            continue
        out[name] = {
            "gateway_streams": gw["sustained_streams"],
            "bare_relay_streams": rl.get("sustained_streams"),
            "lsl_streams": ls.get("sustained_streams"),
            "gateway_over_bare_relay": ratio(gw["sustained_streams"], rl.get("sustained_streams")),
            "gateway_over_lsl": ratio(gw["sustained_streams"], ls.get("sustained_streams")),
            # A capped baseline sustained every count tried: its ratio is an upper bound.
            "bare_relay_capped": rl.get("capped"), "lsl_capped": ls.get("capped"),
            "gateway_capped": gw["capped"],
            # Server CPU per added stream: the cost ratio, independent of background load.
            "server_cpu_pct_per_stream": {"gateway": gw["cpu_pct_per_stream"],
                                          "bare_relay": rl.get("cpu_pct_per_stream")},
            "bare_relay_over_gateway_cpu_cost": ratio(rl.get("cpu_pct_per_stream"),
                                                      gw["cpu_pct_per_stream"]),
        }
    return out


def _step_below(steps: tuple[int, ...], count: int) -> int:
    """How many streams the step up to ``count`` adds (the resolution of a count)."""
    lower = [n for n in steps if n < count]
    return count - lower[-1] if lower else count


def recording_effect(off: dict[str, Any], off_again: dict[str, Any], on: dict[str, Any],
                     steps: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Per setting: streams sustained and latency at half load with recording off (twice:
    before and after), and on. Recording is *within the noise* when the count with it on
    lies between the two counts without it: they differ only by run-to-run noise."""
    out: dict[str, Any] = {}
    for name, entry in on.items():
        runs = [run for run in (off.get(name), off_again.get(name)) if run is not None]
        if len(runs) < 2:
            continue
        counts = [run["sustained_streams"] for run in runs]
        with_it = entry["sustained_streams"]
        half = [(run["latency_at_half_max"] or {}).get("p99_ms") for run in (*runs, entry)]
        out[name] = {
            "off_streams": counts, "on_streams": with_it,
            "noise_streams": abs(counts[0] - counts[1]),
            "step_streams": _step_below(steps[name], max(counts + [with_it])),
            "within_noise": min(counts) <= with_it <= max(counts),
            "off_cpu_pct_per_stream": [run["cpu_pct_per_stream"] for run in runs],
            "on_cpu_pct_per_stream": entry["cpu_pct_per_stream"],
            "off_p99_ms_at_half": half[:2], "on_p99_ms_at_half": half[2],
        }
    return out


def revocation_background(config: BenchConfig, gateway: dict[str, Any]
                          ) -> tuple[int, StreamSetting]:
    """How many background streams, of which setting, the revocation trials run beside:
    half what the gateway sustained at ``revocation_half_load_of`` where that was
    measured, else ``revocation_background`` streams of 8 ch / 250 Hz."""
    name = config.revocation_half_load_of
    measured = gateway.get(name or "", {}).get("sustained_streams")
    setting = next((s for s in config.settings if s.name == name), None)
    if setting is None or not measured:
        return config.revocation_background, CYTON
    return measured // 2, setting


def run_bench(config: BenchConfig, out: Path, say: Say = print, *, nodes: int = 1
              ) -> dict[str, Any]:
    """Run every section of ``config``; write ``out/bench.json`` and ``out/bench.png``.

    With ``nodes`` above 1, the gateway's throughput steps also run on a cluster of that
    many nodes (``neurogate.bench.cluster``), beside the one node: ``gateway_cluster``."""
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    result: dict[str, Any] = {"machine": machine_info(), "settings": config.as_dict()}
    say("Policy decision latency (in process)...")
    result["policy"] = run_policy(config.policy_iterations)
    say("Signal pipeline alone vs scipy sosfilt (in process)...")
    result["pipeline"] = run_processing(config.settings, config.pipeline_seconds)
    gateway: dict[str, Any] = {}
    relay_out: dict[str, Any] = {}
    lsl_out: dict[str, Any] = {}
    recording_out: dict[str, Any] = {}  # NeuroGate with recording on (docs/recordings.md)
    repeat_out: dict[str, Any] = {}  # the gateway again, after the recording-on run
    cluster_out: dict[str, Any] = {}  # NeuroGate on several nodes (--nodes)
    cluster_stack = contextlib.ExitStack()
    with tempfile.TemporaryDirectory(prefix="neurogate-bench-") as tmp:
        data = Path(tmp) / "var"
        create_admin(data)
        say("Starting the gateway (python -m neurogate serve) and the bare relay...")
        server = start_gateway(data, Path(tmp) / "gateway.log")
        relay: ServerProcess | None = None
        recorder: RecordingGateway | None = None  # the same gateway with recording on
        try:
            relay = start_relay(Path(tmp) / "relay.log")
            clinic = open_clinic(server.url)
            if "gateway_recording" in config.systems:
                say("Starting a second gateway with recording on...")
                recorder = RecordingGateway.start(Path(tmp))
            nodes_up: list[ServerProcess] = []
            if nodes > 1:
                from neurogate.bench.cluster import PLACEMENT, ClusterSystem, running_cluster

                nodes_up, cluster_clinic = cluster_stack.enter_context(
                    running_cluster(nodes, Path(tmp), say))
                cluster_out.update({"nodes": nodes, "placement": PLACEMENT})
            process = psutil.Process(server.pid)
            gateway["process"] = {"pid_rss_idle_mib": round(process.memory_info().rss / 2**20, 1)}
            lsl_reason = _lsl_reason() if "lsl" in config.systems else "not selected"
            for setting in config.settings:
                steps = config.steps_for(setting)
                say(f"Streams {setting.name} ({setting.chunk_ms:g} ms chunks), N = {steps}:")
                servers = [server.pid, relay.pid, *(node.pid for node in nodes_up)]
                if "gateway" in config.systems:
                    gateway[setting.name] = run_system(
                        lambda s=setting: GatewaySystem(s, server, clinic, config.clinical_format),
                        steps, config, say, servers)
                if nodes_up:
                    cluster_out[setting.name] = run_system(
                        lambda s=setting: ClusterSystem(s, nodes_up, cluster_clinic,
                                                        config.clinical_format),
                        steps, config, say, servers)
                if recorder is not None:
                    recording_out[setting.name] = run_system(
                        lambda s=setting, r=recorder: GatewaySystem(
                            s, r.server, r.clinic, config.clinical_format),
                        steps, config, say, [*servers, recorder.server.pid])
                    if "gateway" in config.systems:
                        repeat_out[setting.name] = run_system(
                            lambda s=setting: GatewaySystem(s, server, clinic,
                                                            config.clinical_format),
                            steps, config, say, [*servers, recorder.server.pid])
                if "bare_relay" in config.systems:
                    relay_out[setting.name] = run_system(
                        lambda s=setting: RelaySystem(s, relay), steps, config, say, servers)
                if lsl_reason is None:
                    lsl_out[setting.name] = run_system(lambda s=setting: LslSystem(s), steps,
                                                       config, say, servers)
            if lsl_reason is not None:
                lsl_out = {"available": False, "reason": lsl_reason}
            background, background_setting = revocation_background(config, gateway)
            say(f"Revocation: {config.revocation_trials} trials during streaming "
                f"({background} background streams of {background_setting.name})...")
            wait_idle([server.pid, relay.pid])
            result["revocation"] = run_revocation(
                server, clinic, config.revocation_trials, background, say,
                subjects=config.revocation_subjects, background_setting=background_setting)
            gateway["process"]["pid_rss_end_mib"] = round(process.memory_info().rss / 2**20, 1)
            clinic.http.close()
            if nodes_up:
                say(f"Revocation across nodes: {config.revocation_trials} trials (devices "
                    "and REST on node 1, the apps on node 2)...")
                cluster_out["revocation"] = run_revocation(
                    nodes_up[0], cluster_clinic, config.revocation_trials, 0, say,
                    subjects=config.revocation_subjects, app_server=nodes_up[1])
        finally:
            cluster_stack.close()
            if recorder is not None:
                recorder.stop()
            server.stop()
            if relay is not None:
                relay.stop()
    result["gateway"] = gateway
    result["gateway_recording"] = recording_out
    result["gateway_repeat"] = repeat_out
    result["recording_effect"] = recording_effect(gateway, repeat_out, recording_out,
                                                  {s.name: config.steps_for(s)
                                                   for s in config.settings})
    result["bare_relay"] = relay_out
    result["lsl"] = lsl_out
    names = [s.name for s in config.settings]
    lsl_by_setting = {k: v for k, v in lsl_out.items() if k in names}
    result["ratios"] = _ratios(names, gateway, relay_out, lsl_by_setting)
    if cluster_out:
        result["gateway_cluster"] = cluster_out
        for name, entry in result["ratios"].items():
            streams = cluster_out.get(name, {}).get("sustained_streams")
            entry["cluster_streams"] = streams
            entry["cluster_over_gateway"] = ratio(streams, entry["gateway_streams"])
            entry["cluster_capped"] = cluster_out.get(name, {}).get("capped")
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["machine"]["outside_load"] = _outside_load(result, names)
    result["machine"]["runtime_s"] = round(time.monotonic() - began, 1)
    write_json(result, out / "bench.json")
    from neurogate.bench.plots import plot_bench

    plot_bench(result, out / "bench.png")
    say(f"Wrote {out / 'bench.json'} and {out / 'bench.png'} "
        f"in {result['machine']['runtime_s']:.0f} s.")
    keys = (*TOP_KEYS, "gateway_cluster") if cluster_out else TOP_KEYS
    return {key: result[key] for key in keys}


def _outside_load(result: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """CPU that processes other than the benchmark's used during the windows (% of a core)."""
    values = [step["others_cpu_pct"] for system in ("gateway", "bare_relay", "lsl")
              for name in names for step in result[system].get(name, {}).get("steps", [])]
    if not values:
        return {"windows": 0, "median_pct_of_a_core": None, "max_pct_of_a_core": None}
    return {"windows": len(values),
            "median_pct_of_a_core": round(float(np.median(values)), 1),
            "max_pct_of_a_core": round(float(np.max(values)), 1)}


def _lsl_reason() -> str | None:
    from neurogate.bench._lsl import lsl_available

    return lsl_available()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(result: dict[str, Any], path: Path) -> None:
    """Write ``result`` as indented JSON (numpy values converted)."""
    path.write_text(json.dumps(_jsonable(result), indent=1) + "\n", encoding="utf-8")


__all__ = ["TOP_KEYS", "machine_info", "run_bench", "write_json"]
