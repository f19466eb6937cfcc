"""Where the demo keeps its client credentials (the database holds only their digests):
``demo-credentials.json`` in the data directory, readable by its owner only. A module of
its own so that ``neurogate demo credentials`` reads them without loading the gateway."""

from __future__ import annotations

import json
import os
from pathlib import Path

CREDENTIALS_FILE = "demo-credentials.json"


def save_credentials(data_dir: Path, credentials: dict[str, tuple[str, str]]) -> None:
    """Write the demo's client credentials beside its data (mode 0600)."""
    path = data_dir / CREDENTIALS_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({label: {"client_id": cid, "client_secret": secret}
                   for label, (cid, secret) in credentials.items()}, handle, indent=1)


def load_credentials(data_dir: Path) -> dict[str, tuple[str, str]]:
    """The demo's client credentials (label to client_id and secret), as seeded in
    ``data_dir``; empty if this data directory holds none."""
    path = data_dir / CREDENTIALS_FILE
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text(encoding="utf-8"))
    return {label: (c["client_id"], c["client_secret"]) for label, c in stored.items()}


__all__ = ["CREDENTIALS_FILE", "load_credentials", "save_credentials"]
