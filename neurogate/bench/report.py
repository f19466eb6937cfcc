"""Markdown tables of ``bench.json`` and ``leakage.json`` (for ``docs/benchmarks.md``).

``python -m neurogate.bench.report DIR`` prints the tables of the results in DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SYSTEMS = (("gateway", "NeuroGate"), ("gateway_recording", "NeuroGate, recording on"),
           ("gateway_repeat", "NeuroGate again (after recording on)"),
           ("gateway_cluster", "NeuroGate cluster"), ("bare_relay", "bare relay"),
           ("lsl", "LSL"))


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}{suffix}" if abs(value) < 100 else f"{value:.0f}{suffix}"
    return f"{value}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def streams_table(bench: dict[str, Any]) -> str:
    """Sustained streams, latency at half of them, server cost per stream, and the limit."""
    rows = []
    for setting in (s["name"] for s in bench["settings"]["streams"]):
        for key, label in SYSTEMS:
            entry = bench.get(key, {}).get(setting)
            if entry is None:
                continue
            if key == "gateway_cluster":
                label = f"NeuroGate, {bench[key]['nodes']} nodes"
            half = entry["latency_at_half_max"] or {}
            last = entry["steps"][-1]
            rows.append([setting, label,
                         ("≥" if entry["capped"] else "") + str(entry["sustained_streams"]),
                         f"{_fmt(half.get('p50_ms'))} / {_fmt(half.get('p99_ms'))} "
                         f"(N={half.get('streams', '–')})",
                         _fmt(entry["cpu_pct_per_stream"], " %"),
                         _fmt(entry["rss_mib_per_stream"], " MiB"),
                         "; ".join(entry["limit"]) + f" (at N={last['streams']})"
                         if not entry["capped"] else "every count tried passed"])
    return _table(["setting", "system", "streams sustained", "latency p50 / p99 ms at half",
                   "server CPU per stream (% of a core)", "server RSS per stream",
                   "what stopped it"], rows)


def recording_table(bench: dict[str, Any]) -> str:
    """Recording on beside the two runs without it, and whether it is within their noise."""
    rows = []
    for setting, e in bench.get("recording_effect", {}).items():
        off, p99 = e["off_streams"], e["off_p99_ms_at_half"]
        rows.append([setting, f"{off[0]}, {off[1]}", str(e["on_streams"]),
                     f"{e['noise_streams']} (one step here: {e['step_streams']})",
                     "yes" if e["within_noise"] else "**no**",
                     f"{_fmt(p99[0])}, {_fmt(p99[1])} / {_fmt(e['on_p99_ms_at_half'])}",
                     " / ".join(_fmt(v, " %") for v in (*e["off_cpu_pct_per_stream"],
                                                        e["on_cpu_pct_per_stream"]))])
    return _table(["setting", "streams, recording off (before, after)",
                   "streams, recording on", "noise (streams)", "on within the noise",
                   "p99 ms at half, off / on", "server CPU per stream, off, off / on"], rows)


def _bound(numerator_capped: bool | None, denominator_capped: bool | None) -> str:
    """What a ratio of sustained streams is when either side passed every count tried."""
    if numerator_capped and denominator_capped:
        return " (both passed every count tried)"
    if numerator_capped:
        return " (lower bound)"
    if denominator_capped:
        return " (upper bound)"
    return ""


def ratios_table(bench: dict[str, Any]) -> str:
    """Gateway / baseline ratios of sustained streams, and of server CPU cost."""
    rows = []
    clustered = "gateway_cluster" in bench
    for setting, r in bench["ratios"].items():
        rows.append([setting, _fmt(r["gateway_over_bare_relay"])
                     + (" (upper bound)" if r["bare_relay_capped"] else ""),
                     _fmt(r["gateway_over_lsl"]) + (" (upper bound)" if r["lsl_capped"] else ""),
                     _fmt(r["bare_relay_over_gateway_cpu_cost"])])
        if clustered:  # several nodes over one: the scale-out
            rows[-1].append(_fmt(r.get("cluster_over_gateway"))
                            + _bound(r.get("cluster_capped"), r.get("gateway_capped")))
    header = ["setting", "gateway / bare relay (streams)", "gateway / LSL (streams)",
              "bare relay / gateway (server CPU per stream)"]
    if clustered:
        header.append(f"{bench['gateway_cluster']['nodes']} nodes / one node (streams)")
    return _table(header, rows)


def steps_table(bench: dict[str, Any], system: str, setting: str) -> str:
    """Every step of one system and setting."""
    rows = []
    for s in bench[system][setting]["steps"]:
        server = s["server"] or {}
        rows.append([str(s["streams"]), "yes" if s["sustained"] else "no",
                     f"{s['samples_in_per_s']:,}", f"{s['samples_out_per_s']:,}",
                     f"{_fmt(s['latency_ms']['p50'])} / {_fmt(s['latency_ms']['p95'])} / "
                     f"{_fmt(s['latency_ms']['p99'])}", str(s["dropped_frames"]),
                     _fmt(server.get("cpu_pct")), _fmt(server.get("rss_mib")),
                     _fmt(s["others_cpu_pct"])])
    return _table(["N", "sustained", "samples in/s", "samples out/s", "latency p50/p95/p99 ms",
                   "dropped", "server CPU %", "server RSS MiB", "other processes CPU %"], rows)


def revocation_rows(rev: dict[str, Any]) -> list[list[str]]:
    """One revocation run's figures (one node's, or across a cluster's nodes)."""
    return [
        ["trials (completed)", f"{rev['trials']} ({rev['completed']})"],
        ["background streams (setting), beside the trials' own devices",
         f"{rev['background_streams']} ({rev.get('background_setting', '8ch-250Hz')})"],
        ["revoke call → app socket closed, p50 / p95 / p99 / max ms",
         f"{rev['closed_ms']['p50']} / {rev['closed_ms']['p95']} / {rev['closed_ms']['p99']} / "
         f"{rev['closed_ms']['max']}"],
        ["revoke call → API answer (commit), p50 / p99 ms",
         f"{rev['ack_ms']['p50']} / {rev['ack_ms']['p99']}"],
        ["API answer → socket closed, p50 / p99 ms",
         f"{rev['closed_after_ack_ms']['p50']} / {rev['closed_after_ack_ms']['p99']}"],
        ["data frames produced after the commit", str(rev["late_frames"])],
        ["'revoked' message and close code 4410", f"{rev['revoked_message_and_4410']}"],
        ["subscribe handshake (full decision), p50 / p99 ms",
         f"{rev['subscribe_ms']['p50']} / {rev['subscribe_ms']['p99']}"],
    ]


def other_tables(bench: dict[str, Any]) -> str:
    """Revocation (on one node, and across nodes with --nodes), policy and the
    processing limit."""
    rev, pol = bench["revocation"], bench["policy"]
    parts = [_table(["revocation", "value"], revocation_rows(rev))]
    across = bench.get("gateway_cluster", {}).get("revocation")
    if across is not None:
        parts.append(_table(["revocation across nodes (REST and devices on node 1, apps on "
                             "node 2)", "value"], revocation_rows(across)))
    cold, warm = pol["cold"], pol["warm"]
    parts.append(_table(["policy", "p50", "p99"], [
        ["cold: `decide`, allowed (Cedar) ms", _fmt(cold["allow_ms"]["p50"]),
         _fmt(cold["allow_ms"]["p99"])],
        ["cold: `decide`, denied (Cedar) ms", _fmt(cold["deny_ms"]["p50"]),
         _fmt(cold["deny_ms"]["p99"])],
        ["first call (loads the policies) ms", _fmt(cold["first_call_ms"]), ""],
        ["warm: `StreamHub.may_deliver` ns", _fmt(warm["ns_per_call"]["p50"]),
         _fmt(warm["ns_per_call"]["p99"])],
    ]))
    rows = []
    for setting, p in bench["pipeline"].items():
        for variant in ("sosfilt_whole", "sosfilt_chunked", "pipeline", "hub_ingest"):
            v = p[variant]
            per_chunk = "one call" if variant == "sosfilt_whole" else _fmt(v["us_per_chunk"])
            rows.append([setting, variant, per_chunk,
                         _fmt(v["cpu_s_per_stream_s"] * 100, " %"), _fmt(v["streams_per_core"])])
    parts.append(_table(["setting", "in process", "µs per chunk", "CPU per stream",
                         "streams per core"], rows))
    return "\n\n".join(parts)


def leakage_table(leakage: dict[str, Any]) -> str:
    """AUC with its interval and utility, per (product, purpose)."""
    rows = []
    for e in leakage["by_purpose"]:
        util = e["utility"]
        res = e["resolution"]
        rows.append([e["product"], e["purpose"],
                     f"{res['window_s']:g} s, {res['output_rate_hz']:g} Hz, {res['channels']}",
                     _fmt(e["auc"]),
                     f"[{_fmt(e['auc_ci'][0])}, {_fmt(e['auc_ci'][1])}]",
                     "–" if util is None else f"{util['r']:.4f}"])
    return _table(["product", "purpose", "delivered resolution", "attacker AUC", "95% CI",
                   "utility r"], rows)


def main(argv: list[str] | None = None) -> None:
    """Print the tables of the results in a folder."""
    folder = Path((argv or sys.argv[1:] or ["."])[0])
    out = []
    bench_path, leak_path = folder / "bench.json", folder / "leakage.json"
    if bench_path.is_file():
        bench = json.loads(bench_path.read_text(encoding="utf-8"))
        out += [streams_table(bench), ratios_table(bench), other_tables(bench)]
        if bench.get("recording_effect"):
            out.insert(2, recording_table(bench))
    if leak_path.is_file():
        out.append(leakage_table(json.loads(leak_path.read_text(encoding="utf-8"))))
    print("\n\n".join(out))


if __name__ == "__main__":
    main()


__all__ = ["leakage_table", "main", "other_tables", "ratios_table", "recording_table",
           "steps_table", "streams_table"]
