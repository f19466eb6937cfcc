"""The ``neurogate`` command line: serve, migrate, audit, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from neurogate.bench.cli import bench_app
from neurogate.gateway.cli_cluster import cluster_app
from neurogate.gateway.cli_devices import devices_app
from neurogate.gateway.cli_recordings import keys_app, recordings_app, subjects_app
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
app.add_typer(keys_app, name="keys")
app.add_typer(subjects_app, name="subjects")
app.add_typer(recordings_app, name="recordings")
app.add_typer(cluster_app, name="cluster")
console = Console()
err = Console(stderr=True)


def _serve(host: str | None, port: int | None, nats: str | None = None, *,
           workers: int = 1, reuse_port: bool = False) -> None:
    import uvicorn

    from neurogate.gateway._server import uvicorn_options
    from neurogate.gateway.app import create_app
    from neurogate.settings import Settings

    settings = get_settings()
    if nats is not None or settings.nats_url:  # a node announces the address it serves
        given = {"host": host, "port": port, "nats_url": nats}
        try:
            settings = Settings.model_validate(
                {**settings.model_dump(), **{k: v for k, v in given.items() if v is not None}})
        except ValueError as exc:  # pydantic's ValidationError: print its sentence only
            err.print(str(exc).splitlines()[2].strip().removeprefix("Value error, ")
                      .split(" [type=")[0], markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from exc
    if workers != 1 or reuse_port:
        _serve_workers(settings, host or settings.host, port or settings.port,
                       workers=workers, reuse_port=reuse_port)
        return
    # No Server header; WebSocket messages above the protocol's size refused unread; request
    # heads and bodies read within NEUROGATE_HEADER/BODY_TIMEOUT_SECONDS (_server.py).
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level="info", **uvicorn_options(settings))


def _serve_workers(settings: Any, host: str, port: int, *, workers: int,
                   reuse_port: bool) -> None:
    """``--workers N``: N nodes on one port; ``--reuse-port``: one of them."""
    import uvicorn

    from neurogate.gateway._server import uvicorn_options
    from neurogate.gateway.app import create_app
    from neurogate.gateway.cluster.workers import (
        WorkersRefused,
        check_workers,
        reuse_port_socket,
        run_workers,
    )

    try:
        check_workers(settings, workers)
    except WorkersRefused as exc:
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    if not reuse_port:
        raise typer.Exit(run_workers(settings, workers, host=host, port=port))
    sock = reuse_port_socket(host, port)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="info",
                            **uvicorn_options(settings))
    uvicorn.Server(config).run(sockets=[sock])


@app.command()
def serve(host: str = typer.Option(None, help="Address to listen on (default from settings)."),
          port: int = typer.Option(None, help="Port to listen on (default from settings)."),
          nats: str = typer.Option(None, help="Join the cluster at this NATS server, e.g. "
                                   "nats://127.0.0.1:4222 (default: NEUROGATE_NATS_URL)."),
          workers: int = typer.Option(1, help="Start this many nodes on this machine, on "
                                      "the same port (node ids <node id>-1 ...); more than "
                                      "1 needs NATS and a PostgreSQL database."),
          reuse_port: bool = typer.Option(False, "--reuse-port", hidden=True,
                                          help="Bind with SO_REUSEPORT (one of --workers)."),
          ) -> None:
    """Run the gateway (migrates the database first)."""
    _serve(host, port, nats, workers=workers, reuse_port=reuse_port)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Bring the database schema up to date."""
    from neurogate.consent.db import upgrade

    url = get_settings().resolved_database_url
    upgrade(url, revision)
    console.print(f"Database is at revision [bold]{revision}[/bold].")


def _shown_url(settings: Any) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def _require_data(settings: Any) -> None:
    """Exit 2, creating nothing, unless the database and the ledger key are where the
    settings say (NEUROGATE_DATA_DIR, NEUROGATE_DATABASE_URL)."""
    data_dir = settings.data_dir.resolve()
    key = data_dir / "keys" / "ledger-ed25519.pem"
    missing = [] if key.is_file() else [f"ledger key at {key}"]
    database = data_dir / "neurogate.db"
    if settings.database_url is None and not database.is_file():
        missing.insert(0, f"database at {database}")
    if not missing:
        return
    err.print(f"Nothing to verify: there is no {' and no '.join(missing)}. NeuroGate looks "
              f"in the data directory {data_dir} (NEUROGATE_DATA_DIR) for its keys and, "
              f"unless NEUROGATE_DATABASE_URL names another, its database "
              f"({_shown_url(settings)}). Run this where the gateway keeps its data, or set "
              "NEUROGATE_DATA_DIR (and NEUROGATE_DATABASE_URL). Nothing was created.",
              markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@audit_app.command("verify")
def audit_verify(
    checkpoint: list[Path] = typer.Option(
        [], "--checkpoint", exists=True, dir_okay=False,
        help="A checkpoint kept outside the database (repeatable); the log must extend it."),
) -> None:
    """Recompute every leaf, root and checkpoint; exit 1 on any difference."""
    from neurogate.gateway.state import build_gateway

    settings = get_settings()
    _require_data(settings)
    try:
        gateway = build_gateway(settings, migrate=False)
    except Exception as exc:  # the database cannot be opened: say which, no traceback
        err.print(f"Cannot open the database {_shown_url(settings)} "
                  f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Check "
                  "NEUROGATE_DATABASE_URL and that the database answers.", markup=False,
                  highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
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


demo_app = typer.Typer(help="Seed a demo clinic and run the gateway (or, with --script, "
                       "tell its story); `neurogate demo credentials` prints its client "
                       "credentials.", add_completion=False)
app.add_typer(demo_app, name="demo")


def _print_credentials(credentials: dict[str, tuple[str, str]]) -> None:
    for label, (client_id, secret) in credentials.items():
        console.print(f"client credentials ({label}): {client_id} {secret}", soft_wrap=True,
                      markup=False, highlight=False)


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    script: bool = typer.Option(False, "--script", help="Run the story and exit."),
    host: str = typer.Option(None, help="Address to listen on."),
    port: int = typer.Option(None, help="Port to listen on."),
) -> None:
    """Seed a demo clinic and run the gateway (or, with --script, tell its story)."""
    if ctx.invoked_subcommand is not None:
        return
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
    _print_credentials(world.credentials)
    console.print(f"Data directory: {settings.data_dir.resolve()}")
    if script:
        from neurogate.gateway.story import run_story

        raise typer.Exit(run_story(gateway, world, console.print))
    console.print(f"API docs: http://{host or settings.host}:{port or settings.port}/docs")
    _serve(host, port)


@demo_app.command("credentials")
def demo_credentials(
    shell: bool = typer.Option(False, "--shell", help="Print them as shell export lines "
                               "(CLINIC_CLIENT_ID=..., CLINIC_CLIENT_SECRET=..., ...)."),
) -> None:
    """Print the demo's client credentials (apps clinic, focus, adlab; devices cap, band)."""
    import shlex

    from neurogate.gateway._demo_credentials import CREDENTIALS_FILE, load_credentials

    settings = get_settings()
    credentials = load_credentials(settings.data_dir)
    if not credentials:
        err.print(f"No demo credentials in {settings.data_dir.resolve() / CREDENTIALS_FILE}: "
                  "run `neurogate demo` (or `make demo`) with this NEUROGATE_DATA_DIR first.",
                  markup=False, highlight=False)
        raise typer.Exit(1)
    if not shell:
        _print_credentials(credentials)
        return
    for label, (client_id, secret) in credentials.items():
        name = label.upper()
        print(f"export {name}_CLIENT_ID={shlex.quote(client_id)} "
              f"{name}_CLIENT_SECRET={shlex.quote(secret)}")


def main() -> None:
    """Entry point for ``python -m neurogate``."""
    sys.exit(app())


__all__ = ["app", "main"]
