"""Smoke test of ``neurogate bench`` at a tiny size: the JSON has the documented shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from neurogate.bench.cli import bench_app
from neurogate.bench.config import CYTON, tiny
from neurogate.bench.run import TOP_KEYS, run_bench

pytestmark = pytest.mark.e2e

SUMMARY_KEYS = {"n", "p50", "p95", "p99", "max"}
STEP_KEYS = {"streams", "sustained", "reasons", "samples_in_per_s", "samples_out_per_s",
             "latency_ms", "dropped_frames", "server", "clients_cpu_pct", "coverage",
             "device_send_lag_ms", "machine_busy_pct", "others_cpu_pct"}
SYSTEM_KEYS = {"sustained_streams", "capped", "limit", "latency_at_half_max",
               "rss_mib_per_stream", "cpu_pct_per_stream", "steps"}


def _is_summary(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == SUMMARY_KEYS and isinstance(value["n"], int)


def _check_system(entry: dict[str, Any], *, has_server: bool) -> None:
    assert SYSTEM_KEYS <= set(entry)
    assert isinstance(entry["sustained_streams"], int)
    assert isinstance(entry["capped"], bool)
    assert entry["steps"] and all(STEP_KEYS <= set(step) for step in entry["steps"])
    step = entry["steps"][0]
    assert step["streams"] == 1
    assert isinstance(step["sustained"], bool)
    assert isinstance(step["samples_in_per_s"], int)
    assert _is_summary(step["latency_ms"])
    assert _is_summary(step["device_send_lag_ms"])
    if has_server:
        assert set(step["server"]) == {"cpu_pct", "rss_mib", "rss_peak_mib"}
    else:
        assert step["server"] is None


def test_bench_tiny_run_writes_the_documented_json_and_a_png(tmp_path: Path) -> None:
    """One stream per system, three revocations: bench.json has every key, typed."""
    returned = run_bench(tiny(settings=(CYTON,)), tmp_path, say=lambda _: None)
    result = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert list(returned) == list(TOP_KEYS)
    assert set(TOP_KEYS) <= set(result)
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    machine = result["machine"]
    assert isinstance(machine["cpu_model"], str) and isinstance(machine["logical_cpus"], int)
    assert isinstance(machine["runtime_s"], float)
    assert result["settings"]["streams"][0]["name"] == CYTON.name
    _check_system(result["gateway"][CYTON.name], has_server=True)
    _check_system(result["bare_relay"][CYTON.name], has_server=True)
    if result["lsl"].get("available") is False:
        assert isinstance(result["lsl"]["reason"], str)
    else:
        _check_system(result["lsl"][CYTON.name], has_server=False)

    pipeline = result["pipeline"][CYTON.name]
    for variant in ("sosfilt_whole", "sosfilt_chunked", "pipeline", "hub_ingest"):
        assert isinstance(pipeline[variant]["cpu_s_per_stream_s"], float)

    revocation = result["revocation"]
    assert revocation["trials"] == 3
    assert isinstance(revocation["completed"], int)
    assert _is_summary(revocation["closed_ms"]) and _is_summary(revocation["ack_ms"])
    # Not a timing: a frame produced after the revocation committed is a correctness bug.
    assert revocation["late_frames"] == 0

    policy = result["policy"]
    assert _is_summary(policy["cold"]["allow_ms"]) and _is_summary(policy["cold"]["deny_ms"])
    assert _is_summary(policy["warm"]["ns_per_call"])
    ratios = result["ratios"][CYTON.name]
    for key in ("gateway_over_bare_relay", "gateway_over_lsl"):
        assert ratios[key] is None or isinstance(ratios[key], float | int)


def test_bench_revocation_alone_writes_its_trials_and_the_gateways_cpu(tmp_path: Path) -> None:
    """``neurogate bench revocation``: the trials against a gateway of their own, beside
    one background stream; every trial closes with 4410 and nothing after the commit."""
    result = CliRunner().invoke(bench_app, ["revocation", "--out", str(tmp_path), "--trials",
                                            "3", "--background", "1", "--setting",
                                            "8ch-250Hz"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "revocation.json").read_text(encoding="utf-8"))
    assert written["completed"] == 3 and written["revoked_message_and_4410"] == 3
    assert written["late_frames"] == 0 and written["background_streams"] == 1
    assert written["closed_ms"]["n"] == 3
    assert set(written["gateway_cpu_pct"]) == {"n", "p50", "p95", "p99", "max"}
    assert "3/3 trials beside 1 streams of 8ch-250Hz" in result.output


def test_bench_revocation_refuses_an_unknown_setting(tmp_path: Path) -> None:
    result = CliRunner().invoke(bench_app, ["revocation", "--out", str(tmp_path),
                                            "--setting", "16ch"])
    assert result.exit_code == 2
    assert "'--setting'" in result.output and "64ch-1kHz, 8ch-250Hz" in result.output
    assert not (tmp_path / "revocation.json").exists()


def test_bench_with_recording_runs_the_gateway_before_and_after_it(tmp_path: Path) -> None:
    """Recording on is bracketed by two runs without it; the effect names both counts."""
    config = tiny(settings=(CYTON,), systems=("gateway", "gateway_recording"))
    run_bench(config, tmp_path, say=lambda _: None)
    result = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    for system in ("gateway", "gateway_recording", "gateway_repeat"):
        _check_system(result[system][CYTON.name], has_server=True)
    effect = result["recording_effect"][CYTON.name]
    assert effect["off_streams"] == [result["gateway"][CYTON.name]["sustained_streams"],
                                     result["gateway_repeat"][CYTON.name]["sustained_streams"]]
    assert effect["on_streams"] == result["gateway_recording"][CYTON.name]["sustained_streams"]
    assert isinstance(effect["within_noise"], bool) and effect["step_streams"] == 1
    from neurogate.bench.report import recording_table

    assert f"| {CYTON.name} | " in recording_table(result)


def _run(count: int, p99: float = 5.0) -> dict[str, Any]:
    return {"sustained_streams": count, "cpu_pct_per_stream": 1.0,
            "latency_at_half_max": {"p99_ms": p99}}


@pytest.mark.parametrize(("off", "again", "on", "within"), [
    (48, 56, 48, True), (48, 56, 56, True), (56, 56, 56, True), (48, 56, 40, False),
    (56, 56, 48, False), (48, 48, 56, False)])
def test_recording_is_within_the_noise_only_between_the_runs_without_it(
        off: int, again: int, on: int, within: bool) -> None:
    """The count with recording on must lie between the two counts without it."""
    from neurogate.bench.run import recording_effect

    steps = {"s": (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64)}
    effect = recording_effect({"s": _run(off)}, {"s": _run(again)}, {"s": _run(on)},
                              steps)["s"]
    assert effect["within_noise"] is within
    assert effect["noise_streams"] == abs(off - again) and effect["step_streams"] == 8
