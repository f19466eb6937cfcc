"""The benchmark's pieces that need no servers: presets, step verdicts, CLI, profiles."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from neurogate.bench._procs import Meter
from neurogate.bench.cli import bench_app
from neurogate.bench.config import CHANNELS_64, CLINICAL_CAP, CYTON, FULL, QUICK
from neurogate.bench.profile import summarize_stacks
from neurogate.bench.throughput import delivered_rate, evaluate, summarize


@pytest.mark.parametrize("config", [QUICK, FULL])
def test_presets_stream_realistic_settings_in_ascending_steps(config: Any) -> None:
    """Steps ascend, chunks are 10 to 40 ms, the full run tries 200 revocations."""
    for setting in config.settings:
        steps = config.steps_for(setting)
        assert list(steps) == sorted(set(steps)) and steps[0] == 1
        assert 0.010 <= setting.chunk_s <= 0.040
        assert len(setting.channel_names) == len(set(setting.channel_names)) == setting.n_channels
    assert FULL.revocation_trials >= 200
    assert len(CHANNELS_64) == 64


def test_delivered_rate_is_the_clinical_purpose_rate_by_integer_decimation() -> None:
    """1 kHz is delivered at 250 Hz (factor 4); 250 Hz unchanged; 300 Hz at 150 Hz."""
    assert delivered_rate(1000.0) == 250.0
    assert delivered_rate(250.0) == 250.0
    assert delivered_rate(300.0) == 150.0


def _reports(latency_ms: float, coverage: float, dropped: int = 0
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    n, window = 2, QUICK.measure_s
    frames = int(n * window / CYTON.chunk_s)
    dev = {"values": frames * CYTON.chunk * CYTON.n_channels, "streaming": n, "closed": 0,
           "closed_reasons": [], "lag_ms": np.full(frames, 0.5, np.float32)}
    lat = np.full(frames, latency_ms, np.float32)
    label = {"messages": frames, "values": frames * 40, "latency_ms": lat, "dropped": dropped,
             "recv_t": np.linspace(0, window, frames).astype(np.float32),
             "coverage": np.full(n, coverage, np.float32)}
    return dev, {"clinical": label, "feedback": {**label, "dropped": 0}, "closed": 0,
                 "closed_reasons": []}


USAGE = {"server": {"cpu_pct": 10.0, "rss_mib": 100.0, "rss_peak_mib": 101.0},
         "devices": {"cpu_pct": 1.0}, "apps": {"cpu_pct": 1.0}, "machine_busy_pct": 20.0,
         "others_cpu_pct": 5.0, "load_avg_1m": 0.5}
GROWN = {"apps": {"failed": [], "handshake_ms": [10.0]}, "devices": {"failed": []}}


@pytest.mark.parametrize(("latency", "coverage", "dropped", "reason"), [
    (3.0, 1.0, 0, None),
    (150.0, 1.0, 0, "p99 latency"),
    (3.0, 0.8, 0, "apps received"),
    (3.0, 1.0, 4, "4 frames dropped"),
])
def test_evaluate_sustains_a_step_only_in_real_time(latency: float, coverage: float,
                                                    dropped: int, reason: str | None) -> None:
    """A step fails on p99 latency, missing real time or dropped frames, and says why."""
    dev, apps = _reports(latency, coverage, dropped)
    step = evaluate(2, CYTON, dev, apps, USAGE, GROWN, QUICK)
    assert step["sustained"] is (reason is None)
    if reason is not None:
        assert any(reason in r for r in step["reasons"])


def test_summarize_reports_the_last_sustained_count_and_memory_per_stream() -> None:
    """The maximum is the last sustained step; RSS slope is per added stream."""
    steps = []
    for n, ok, rss in ((1, True, 100.0), (4, True, 106.0), (8, False, 120.0)):
        steps.append({"streams": n, "sustained": ok, "reasons": [] if ok else ["slow"],
                      "client_limited": False, "latency_ms": {"p50": 1.0, "p99": 5.0},
                      "server": {"cpu_pct": 5.0 * n, "rss_mib": rss}})
    result = summarize(steps, (1, 4, 8, 16))
    assert result["sustained_streams"] == 4
    assert result["capped"] is False
    assert result["limit"] == ["slow"]
    assert result["rss_mib_per_stream"] == pytest.approx(2.0)
    assert result["latency_at_half_max"]["streams"] == 1


def test_cli_without_out_explains_what_is_missing() -> None:
    """``neurogate bench`` with no --out exits 2 and names the option."""
    result = CliRunner().invoke(bench_app, [])
    assert result.exit_code == 2
    assert "--out DIR" in result.output


def test_cli_leakage_with_a_missing_recording_exits_2(tmp_path: Path) -> None:
    """``neurogate bench leakage`` fails clearly when the recording is not there."""
    result = CliRunner().invoke(bench_app, ["leakage", "--out", str(tmp_path),
                                            "--recording", str(tmp_path / "none.set")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_summarize_stacks_shares_samples_by_self_and_inclusive_time() -> None:
    """py-spy raw stacks become per-function shares of the samples."""
    text = ("process 1;main (app.py:1);work (lib/x.py:5);sosfilt (scipy/signal/s.py:9) 30\n"
            "process 1;main (app.py:1);work (lib/x.py:6) 10\n")
    result = summarize_stacks(text)
    assert result["samples"] == 40
    self_pct = {row["function"]: row["pct"] for row in result["self"]}
    inclusive = {row["function"]: row["pct"] for row in result["inclusive"]}
    assert self_pct["scipy/signal/s.py:sosfilt"] == 75.0
    assert inclusive["lib/x.py:work"] == 100.0
    assert CLINICAL_CAP.chunk == 20


def test_full_run_revokes_beside_half_the_gateways_own_64_channel_maximum() -> None:
    """The full run's revocation background is half what the gateway sustained at 64 ch /
    1 kHz in the same run; without that figure (quick runs, a failed step) it falls back
    to the configured count of 8-channel streams."""
    from neurogate.bench.run import revocation_background

    assert FULL.revocation_half_load_of == CLINICAL_CAP.name
    measured = {CLINICAL_CAP.name: {"sustained_streams": 56}, CYTON.name: {"sustained_streams": 80}}
    assert revocation_background(FULL, measured) == (28, CLINICAL_CAP)
    assert revocation_background(FULL, {}) == (FULL.revocation_background, CYTON)
    assert revocation_background(FULL, {CLINICAL_CAP.name: {"sustained_streams": 0}}) == (
        FULL.revocation_background, CYTON)
    assert revocation_background(QUICK, measured) == (QUICK.revocation_background, CYTON)


def test_meter_counts_a_servers_child_processes_but_not_the_benchs(tmp_path: Path) -> None:
    """A server whose work runs in a child process (a gateway that records) is measured
    with that child: the same core budget. The bench's own children are not its cost."""
    burned = tmp_path / "burned"
    child = ("import time, pathlib\n"
             "end = time.process_time() + 0.4\n"
             "while time.process_time() < end: pass\n"
             f"pathlib.Path({str(burned)!r}).write_text('done')\n"
             "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time\n"
                               f"subprocess.Popen([sys.executable, '-c', {child!r}])\n"
                               "time.sleep(60)\n"])
    try:
        meter = Meter({"server": parent.pid, "bench": os.getpid()})
        meter.begin()
        deadline = time.monotonic() + 30
        while not burned.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        usage = meter.end()
        assert burned.exists()
        server_cpu_s = usage["server"]["cpu_pct"] / 100 * usage["wall_s"]
        assert server_cpu_s >= 0.35  # the child's 0.4 s of CPU, less the rounding
        assert usage["bench"]["cpu_pct"] / 100 * usage["wall_s"] < server_cpu_s
    finally:
        for proc in psutil.Process(parent.pid).children(recursive=True):
            proc.kill()
        parent.kill()
        parent.wait()
