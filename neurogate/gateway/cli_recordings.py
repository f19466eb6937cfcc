"""``neurogate keys ...`` (key-encryption keys of recordings), ``neurogate subjects export``
(a subject's recordings, decrypted, with a progress bar) and ``neurogate recordings sweep``.

Each runs where the gateway keeps its data (NEUROGATE_DATA_DIR, NEUROGATE_DATABASE_URL)
with the same recording settings (NEUROGATE_RECORDING_KEK_FILE, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from neurogate.errors import NeurogateError
from neurogate.settings import get_settings

keys_app = typer.Typer(help="Key-encryption keys of recordings: status and rotation.",
                       no_args_is_help=True)
subjects_app = typer.Typer(help="Subject access: export a subject's recordings.",
                           no_args_is_help=True)
recordings_app = typer.Typer(help="Recordings: run the retention sweeper now.",
                             no_args_is_help=True)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _gateway() -> Any:
    from neurogate.gateway.state import build_gateway

    try:
        return build_gateway(get_settings(), migrate=False)
    except NeurogateError as exc:
        err.print(exc.message, markup=False)
        raise typer.Exit(2) from exc


def _keyring(gateway: Any) -> Any:
    from neurogate.gateway.recording import keyring_of

    try:
        keyring = keyring_of(gateway)
    except NeurogateError as exc:
        err.print(exc.message, markup=False)
        raise typer.Exit(2) from exc
    if keyring is None:
        err.print("Recordings are off: set NEUROGATE_RECORDING_KEK_FILE (or "
                  "NEUROGATE_RECORDING_KEK and NEUROGATE_RECORDING_KEY_DIR).", markup=False)
        raise typer.Exit(2)
    return keyring


@keys_app.command("status")
def keys_status() -> None:
    """Show the key-encryption key versions held and how many data keys each wraps."""
    from neurogate.recordings import key_status

    gateway = _gateway()
    keyring = _keyring(gateway)
    with gateway.transaction() as session:
        in_use = key_status(session)
    table = Table("KEK version", "held in the key source", "data keys wrapped")
    for version in sorted(set(keyring.keys) | set(in_use)):
        table.add_row(f"v{version}", "yes" if version in keyring.keys else "NO (destroyed)",
                      str(in_use.get(version, 0)))
    console.print(table)
    console.print(f"Current version: v{keyring.current} ({keyring.source}).")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-wrap every data key under a new key-encryption key, then destroy the old one."""
    from neurogate.recordings import commit_rotation, rotate

    gateway = _gateway()
    keyring = _keyring(gateway)
    try:
        with gateway.transaction() as session:
            grown, count = rotate(session=session, ledger=gateway.ledger, keyring=keyring)
    except NeurogateError as exc:
        err.print(exc.message, markup=False)
        raise typer.Exit(1) from exc
    done = commit_rotation(grown)
    console.print(f"Re-wrapped {count} data keys under v{done.current}; older key-encryption "
                  f"keys were removed from {keyring.path}.")


@subjects_app.command("export")
def subjects_export(
    subject_id: Annotated[str, typer.Argument(help="The subject's id.")],
    out: Annotated[Path, typer.Option("--out", file_okay=False,
                                      help="Directory to write the export into.")],
) -> None:
    """Write a subject's recordings (EDF, JSON), metadata and ledger proofs into OUT."""
    from neurogate.consent.models import Subject
    from neurogate.gateway.recording import segment_store
    from neurogate.recordings import export_files
    from neurogate.recordings.export import recordings_of

    gateway = _gateway()
    keyring = _keyring(gateway)
    out.mkdir(parents=True, exist_ok=True)
    with gateway.transaction() as session:
        subject = session.get(Subject, subject_id)
        if subject is None or subject.erased_at is not None:
            err.print(f"No subject with the id {subject_id!r} exists (or it was erased).",
                      markup=False)
            raise typer.Exit(1)
        total = 2 + len(recordings_of(session, subject_id))
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err) as progress:
            task = progress.add_task("Exporting", total=total)
            written = 0
            for name, data in export_files(session=session, store=segment_store(gateway),
                                           keyring=keyring, ledger=gateway.ledger,
                                           subject_id=subject_id, actor_role="admin"):
                (out / name).write_bytes(data)
                written += 1
                if name.endswith(".edf") or name in ("metadata.json", "ledger-proofs.json"):
                    progress.advance(task)
                progress.update(task, description=f"Exporting {name}")
    console.print(f"Wrote {written} files to {out}.")


@recordings_app.command("sweep")
def recordings_sweep() -> None:
    """Delete every recording whose retention ran out or whose deletion date came."""
    from neurogate.gateway.recording import sweep_retention

    removed = sweep_retention(_gateway())
    console.print(f"Deleted {removed} recordings that were due.")


__all__ = ["keys_app", "recordings_app", "subjects_app"]
