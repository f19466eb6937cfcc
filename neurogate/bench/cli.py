"""``neurogate bench``: the benchmark commands (a typer sub-app).

``neurogate bench [--quick] --out DIR`` runs the throughput, latency, revocation, policy
and processing benchmarks; ``neurogate bench leakage --out DIR`` the leakage attack;
``neurogate bench profile --out DIR`` samples a loaded gateway with py-spy;
``neurogate bench ledger`` measures ledger appends and roots at 1k, 10k and 100k leaves;
``neurogate bench revocation --out DIR`` runs only the revocation trials.
Heavy imports happen inside the commands, so that the rest of the CLI starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

bench_app = typer.Typer(
    help="Benchmarks: gateway vs a bare relay and LSL, revocation, policy, leakage.",
    invoke_without_command=True, add_completion=False)


def _say(text: str) -> None:
    from rich.console import Console

    Console(highlight=False).print(text, soft_wrap=True)


@bench_app.callback()
def bench(
    ctx: typer.Context,
    quick: Annotated[bool, typer.Option(
        "--quick", help="Coarser steps and shorter windows (under 5 minutes).")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", file_okay=False, help="Folder for bench.json and bench.png.")] = None,
    nodes: Annotated[int, typer.Option(
        "--nodes", min=1, help="Also run the throughput steps on a cluster of this many "
                               "nodes (needs PostgreSQL and NATS; see docs/benchmarks.md).")
                     ] = 1,
) -> None:
    """Throughput, latency, revocation and policy, beside a bare relay and LSL."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        _say("Missing option '--out DIR': the folder to write bench.json and bench.png to.")
        raise typer.Exit(2)
    from neurogate.bench.config import FULL, QUICK
    from neurogate.bench.run import run_bench
    from neurogate.errors import NeurogateError

    try:
        run_bench(QUICK if quick else FULL, out, _say, nodes=nodes)
    except NeurogateError as exc:  # --nodes without PostgreSQL or NATS
        _say(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc


@bench_app.command("leakage")
def leakage(
    out: Annotated[Path, typer.Option(
        "--out", file_okay=False, help="Folder for leakage.json and leakage.png.")],
    recording: Annotated[Path | None, typer.Option(
        "--recording", dir_okay=False,
        help="EEGLAB recording with 'square' events (default: ../shared/data/eeg/"
             "test_raw.set from the repository root).")] = None,
    repeats: Annotated[int, typer.Option(
        min=1, help="Repetitions of the 5-fold cross-validation.")] = 3,
) -> None:
    """Can an app tell stimulus-locked windows apart, from what it receives?"""
    from neurogate.bench.leakage import default_recording, run_leakage
    from neurogate.errors import NeurogateError

    try:
        run_leakage(recording or default_recording(), out, repeats=repeats, say=_say)
    except NeurogateError as exc:
        _say(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc


@bench_app.command("ledger")
def ledger(
    sizes: Annotated[list[int] | None, typer.Option(
        "--size", min=1, help="A log size to measure at (repeatable; default 1000, 10000, "
                              "100000).")] = None,
    samples: Annotated[int, typer.Option(min=10, help="Appends timed at each size.")] = 200,
    out: Annotated[Path | None, typer.Option(
        "--out", file_okay=False, help="Folder for ledger.json.")] = None,
) -> None:
    """Append and root cost of the ledger at 1k, 10k and 100k leaves (SQLite)."""
    from neurogate.bench.ledger import DEFAULT_SIZES, run_ledger_bench

    try:
        run_ledger_bench(sorted(sizes) if sizes else DEFAULT_SIZES, samples=samples, out=out,
                         say=_say)
    except ValueError as exc:
        _say(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


@bench_app.command("profile")
def profile(
    out: Annotated[Path, typer.Option(
        "--out", file_okay=False, help="Folder for the py-spy stacks and their summary.")],
    setting: Annotated[str, typer.Option(
        help="Stream setting: '8ch-250Hz' or '64ch-1kHz'.")] = "64ch-1kHz",
    streams: Annotated[int, typer.Option(min=1, help="Streams to carry.")] = 16,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds to sample.")] = 20.0,
    recording: Annotated[bool, typer.Option(
        "--recording", help="Profile a gateway with recording on (docs/recordings.md).")] = False,
) -> None:
    """Sample the gateway with py-spy while it carries N streams."""
    from neurogate.bench.profile import run_profile
    from neurogate.errors import NeurogateError

    try:
        run_profile(setting, streams, seconds, out, _say, recording=recording)
    except NeurogateError as exc:
        _say(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc


@bench_app.command("revocation")
def revocation(
    out: Annotated[Path, typer.Option(
        "--out", file_okay=False, help="Folder for revocation.json and the gateway's log.")],
    trials: Annotated[int, typer.Option(min=1, help="Revocations to time.")] = 200,
    background: Annotated[int, typer.Option(
        min=0, help="Streams that run beside the trials, each with its two apps.")] = 0,
    setting: Annotated[str, typer.Option(
        help="Setting of the background streams: '8ch-250Hz' or '64ch-1kHz'.")
                       ] = "64ch-1kHz",
) -> None:
    """Only the revocation trials of the full run, against a gateway of their own."""
    import json

    from neurogate.bench.config import SETTINGS
    from neurogate.bench.revocation import run_revocation_alone

    if setting not in SETTINGS:
        _say(f"Invalid value for '--setting': {setting!r}; allowed: "
             f"{', '.join(sorted(SETTINGS))}.")
        raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    result = run_revocation_alone(trials, background, SETTINGS[setting], _say,
                                  out / "gateway.log")
    (out / "revocation.json").write_text(json.dumps(result, indent=1) + "\n")
    closed, ack = result["closed_ms"], result["ack_ms"]
    _say(f"{result['completed']}/{trials} trials beside {background} streams of {setting}: "
         f"call -> socket closed p50 {closed['p50']} / p95 {closed['p95']} / p99 "
         f"{closed['p99']} ms; call -> answer p50 {ack['p50']} / p99 {ack['p99']} ms; "
         f"{result['late_frames']} frames after the commit; gateway CPU p50 "
         f"{result['gateway_cpu_pct']['p50']} % of a core.")


__all__ = ["bench_app"]
