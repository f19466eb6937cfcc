"""The ``neurogate`` command line: serve, migrate, audit, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neurogate.bench.cli import bench_app
from neurogate.gateway.cli_devices import devices_app
from neurogate.settings import get_settings

app = typer.Typer(help="NeuroGate: consent and neural-data governance gateway.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify the transparency ledger and consent receipts.",
                        no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(devices_app, name="devices")
app.add_typer(bench_app, name="bench")
console = Console()
err = Console(stderr=True)


def _serve(host: str | None, port: int | None) -> None:
    import uvicorn

    from neurogate.gateway._server import uvicorn_options
    from neurogate.gateway.app import create_app

    settings = get_settings()
    # No Server header; WebSocket messages above the protocol's size refused unread; request
    # heads and bodies read within NEUROGATE_HEADER/BODY_TIMEOUT_SECONDS (_server.py).
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level="info", **uvicorn_options(settings))


@app.command()
def serve(host: str = typer.Option(None, help="Address to listen on (default from settings)."),
          port: int = typer.Option(None, help="Port to listen on (default from settings).")
          ) -> None:
    """Run the gateway (migrates the database first)."""
    _serve(host, port)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Bring the database schema up to date."""
    from neurogate.consent.db import upgrade

    url = get_settings().resolved_database_url
    upgrade(url, revision)
    console.print(f"Database is at revision [bold]{revision}[/bold].")


@audit_app.command("verify")
def audit_verify(
    checkpoint: list[Path] = typer.Option(
        [], "--checkpoint", exists=True, dir_okay=False,
        help="A checkpoint kept outside the database (repeatable); the log must extend it."),
) -> None:
    """Recompute every leaf, root and checkpoint; exit 1 on any difference."""
    from neurogate.gateway.state import build_gateway

    gateway = build_gateway(get_settings(), migrate=False)
    external = [path.read_text(encoding="utf-8") for path in checkpoint]
    with gateway.transaction() as session:
        report = gateway.ledger.verify(session, external)
    for note in report.notes:
        console.print(f"Note: {note}")
    if report.ok:
        opaque = (f" ({len(report.opaque)} opaque: their entries were erased)"
                  if report.opaque else "")
        console.print(
            f"Ledger verified: {report.size} leaves{opaque}, root {report.root.hex()}.")
        return
    err.print(f"Ledger verification FAILED ({len(report.problems)} problems):")
    for problem in report.problems:
        err.print(f"  - {problem}")
    raise typer.Exit(1)


@audit_app.command("verify-receipt")
def audit_verify_receipt(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Receipt JSON file."),
    key: str = typer.Option(None, help="The gateway's verifier key (from /v1/ledger/key); "
                            "default: the key in the data directory."),
) -> None:
    """Check a consent receipt offline against the gateway's public key."""
    from neurogate.consent.receipts import verify_receipt
    from neurogate.errors import LedgerError

    if key is None:
        from neurogate.consent.checkpoint import load_or_create_signer

        settings = get_settings()
        path = settings.data_dir / "keys" / "ledger-ed25519.pem"
        if not path.exists():
            err.print("No --key given and no ledger key in the data directory.")
            raise typer.Exit(2)
        key = load_or_create_signer(path, settings.ledger_origin).verifier_key
    try:
        receipt = json.loads(file.read_text(encoding="utf-8"))
        check = verify_receipt(receipt, key)
    except (ValueError, LedgerError) as exc:
        err.print(f"Receipt INVALID: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"Receipt valid: {check}")


@app.command()
def demo(
    script: bool = typer.Option(False, "--script", help="Run the story and exit."),
    host: str = typer.Option(None, help="Address to listen on."),
    port: int = typer.Option(None, help="Port to listen on."),
) -> None:
    """Seed a demo clinic and run the gateway (or, with --script, tell its story)."""
    from neurogate.gateway.demo import DEMO_PASSWORD, seed
    from neurogate.gateway.state import build_gateway

    settings = get_settings()
    if not script:
        base = f"http://{host or settings.host}:{port or settings.port}"
        console.print(f"Portal: {base}/portal", soft_wrap=True)
        console.print(f"Sign in as parent.chen (guardian), mia (child), dr.rivera (clinician) "
                      f"or admin, password {DEMO_PASSWORD}", soft_wrap=True)
    gateway = build_gateway(settings)
    world = seed(gateway)
    table = Table(title="NeuroGate demo accounts (password: " + DEMO_PASSWORD + ")")
    table.add_column("username")
    table.add_column("role")
    for username, role in sorted(world.accounts.items()):
        table.add_row(username, role)
    console.print(table)
    if world.created:
        for label, (client_id, secret) in world.credentials.items():
            console.print(f"client credentials ({label}): {client_id} {secret}", soft_wrap=True)
    console.print(f"Data directory: {settings.data_dir.resolve()}")
    if script:
        from neurogate.gateway.story import run_story

        raise typer.Exit(run_story(gateway, world, console.print))
    console.print(f"API docs: http://{host or settings.host}:{port or settings.port}/docs")
    _serve(host, port)


def main() -> None:
    """Entry point for ``python -m neurogate``."""
    sys.exit(app())


__all__ = ["app", "main"]
