"""The PNG figures of ``bench.json`` and ``leakage.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"gateway": "#1f77b4", "bare_relay": "#7f7f7f", "lsl": "#2ca02c"}
LABELS = {"gateway": "NeuroGate", "bare_relay": "bare relay", "lsl": "LSL"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _settings(result: dict[str, Any]) -> list[str]:
    return [s["name"] for s in result["settings"]["streams"]]


def plot_bench(result: dict[str, Any], path: Path) -> None:
    """Sustained streams, latency and gateway cost per stream count, revocation times."""
    plt = _pyplot()
    names = _settings(result)
    systems = [s for s in ("gateway", "bare_relay", "lsl")
               if any(n in result.get(s, {}) for n in names)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0][0]
    width = 0.8 / max(1, len(systems))
    for j, system in enumerate(systems):
        for i, name in enumerate(names):
            entry = result[system].get(name)
            if entry is None:
                continue
            x = i + (j - (len(systems) - 1) / 2) * width
            ax.bar(x, entry["sustained_streams"], width, color=COLORS[system],
                   label=LABELS[system] if i == 0 else None)
            mark = ("≥" if entry["capped"] else "") + str(entry["sustained_streams"])
            ax.text(x, entry["sustained_streams"], mark, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("real-time streams sustained")
    ax.set_title("Streams sustained (≥: every count tried passed)")
    ax.legend()

    ax = axes[0][1]
    styles = ["-o", "--s", ":^"]
    for system in systems:
        for i, name in enumerate(names):
            entry = result[system].get(name)
            if entry is None:
                continue
            steps = [s for s in entry["steps"] if s["latency_ms"]["p99"] is not None]
            ax.plot([s["streams"] for s in steps], [s["latency_ms"]["p99"] for s in steps],
                    styles[i % 3], color=COLORS[system], label=f"{LABELS[system]} {name}")
    ax.axhline(result["settings"]["max_p99_ms"], color="red", lw=0.8, ls="--")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("streams (N)")
    ax.set_ylabel("p99 added latency (ms)")
    ax.set_title("Device-to-app latency beyond the chunk, p99")
    ax.legend(fontsize=7)

    ax = axes[1][0]
    twin = ax.twinx()
    for i, name in enumerate(names):
        entry = result.get("gateway", {}).get(name)
        if entry is None:
            continue
        steps = [s for s in entry["steps"] if s["server"]]
        xs = [s["streams"] for s in steps]
        ax.plot(xs, [s["server"]["cpu_pct"] for s in steps], styles[i % 3],
                color=COLORS["gateway"], label=f"CPU {name}")
        twin.plot(xs, [s["server"]["rss_mib"] for s in steps], styles[i % 3], color="#d62728",
                  label=f"RSS {name}")
        relay = result.get("bare_relay", {}).get(name)
        if relay is not None:
            rsteps = [s for s in relay["steps"] if s["server"]]
            ax.plot([s["streams"] for s in rsteps], [s["server"]["cpu_pct"] for s in rsteps],
                    styles[i % 3], color=COLORS["bare_relay"], label=f"relay CPU {name}")
    ax.set_xlabel("streams (N)")
    ax.set_ylabel("server CPU (% of one core)")
    twin.set_ylabel("gateway resident memory (MiB)", color="#d62728")
    ax.set_title("Server cost per stream count")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=6, loc="upper left",
              framealpha=0.6)

    ax = axes[1][1]
    rev = result.get("revocation") or {}
    values = sorted(rev.get("closed_ms_values") or [])
    if values:
        ys = [(k + 1) / len(values) for k in range(len(values))]
        ax.step(values, ys, where="post", color=COLORS["gateway"])
        ax.axvline(50, color="red", lw=0.8, ls="--", label="target p99 50 ms")
        ax.axvline(rev["closed_ms"]["p99"], color="black", lw=0.8,
                   label=f"p99 {rev['closed_ms']['p99']:.1f} ms")
        ax.legend(fontsize=8)
    ax.set_xlabel("revoke call to app socket closed (ms)")
    ax.set_ylabel("fraction of trials")
    ax.set_title(f"Revocation: {rev.get('completed', 0)} trials, "
                 f"{rev.get('late_frames', 0)} frames after commit")
    machine = result["machine"]
    outside = machine.get("outside_load", {}).get("median_pct_of_a_core")
    fig.suptitle(f"neurogate bench ({result['settings']['name']}) on {machine['cpu_model']}, "
                 f"{machine['logical_cpus']} CPUs; load average {machine['load_avg_at_start'][0]}"
                 + (f"; other processes used a median {outside:g}% of a core" if outside
                    is not None else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_leakage(result: dict[str, Any], path: Path) -> None:
    """Attacker AUC with its confidence interval, and the purpose's utility, per product."""
    plt = _pyplot()
    entries = [e for e in result["by_purpose"] if e["auc"] is not None]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"{e['product']}\n{e['purpose']}" for e in entries]
    aucs = [e["auc"] for e in entries]
    low = [e["auc"] - e["auc_ci"][0] for e in entries]
    high = [e["auc_ci"][1] - e["auc"] for e in entries]
    colors = ["#d62728" if e["product"] == "raw" else "#1f77b4" for e in entries]
    ax.bar(range(len(entries)), aucs, yerr=[low, high], color=colors, capsize=3)
    ax.axhline(0.5, color="black", lw=0.8, label="chance")
    ax.axhline(0.6, color="red", lw=0.8, ls="--", label="target for non-raw products")
    ax.set_xticks(range(len(entries)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0.3, 1.0)
    ax.set_ylabel("attacker ROC AUC (95% CI)")
    ax.set_title("Stimulus-locked vs other windows, from what the app receives")
    ax.legend(fontsize=8)
    with_utility = [e for e in result["by_purpose"]
                    if e.get("utility") and e["utility"]["r"] == e["utility"]["r"]]  # not NaN
    bx.barh(range(len(with_utility)), [e["utility"]["r"] for e in with_utility],
            color="#1f77b4")
    bx.set_yticks(range(len(with_utility)),
                  [f"{e['product']} / {e['purpose']}" for e in with_utility], fontsize=7)
    bx.axvline(0.99, color="red", lw=0.8, ls="--", label="target r = 0.99")
    lo = min([0.9] + [e["utility"]["r"] for e in with_utility])
    bx.set_xlim(max(0.0, lo - 0.02), 1.0)
    bx.set_xlabel("correlation with the offline MNE reference")
    bx.set_title("Utility kept for the purpose")
    bx.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Leakage on {result['recording']['file']} "
                 f"({result['recording']['n_stimulus']} stimulus and "
                 f"{result['recording']['n_other']} other windows)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["plot_bench", "plot_leakage"]
