"""``neurogate cluster ...``: the gateway nodes of a cluster, read from NATS."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from neurogate.settings import Settings, get_settings

cluster_app = typer.Typer(help="Gateway nodes sharing one database and one NATS.",
                          no_args_is_help=True)
console = Console()
err = Console(stderr=True)


async def _read(settings: Settings) -> list:  # type: ignore[type-arg]
    from nats.js.errors import BucketNotFoundError

    from neurogate.gateway.cluster import connect, read_nodes

    client = await connect(settings)
    try:
        try:
            bucket = await client.jetstream().key_value(settings.cluster_bucket)
        except BucketNotFoundError:
            return []
        return await read_nodes(bucket)
    finally:
        await client.close()


@cluster_app.command("status")
def cluster_status(
    nats: str = typer.Option(None, help="The cluster's NATS server (default: "
                             "NEUROGATE_NATS_URL)."),
) -> None:
    """List the live nodes: address, lease left, whether each delivers (its store and NATS
    leases hold), streams and subscribers."""
    from neurogate.gateway.cluster import ClusterError

    settings = get_settings()
    url = nats or settings.nats_url
    if not url:
        err.print("No cluster to show: give --nats nats://host:port or set NEUROGATE_NATS_URL "
                  "(a gateway without NATS runs as one node).", markup=False, soft_wrap=True)
        raise typer.Exit(2)
    try:
        settings = Settings.model_validate({**settings.model_dump(), "nats_url": url})
        nodes = asyncio.run(_read(settings))
    except ValueError as exc:  # pydantic's ValidationError: its sentence only
        err.print(str(exc).splitlines()[2].strip().removeprefix("Value error, ")
                  .split(" [type=")[0], markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    except ClusterError as exc:
        err.print(exc.message, markup=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    now = time.time()
    table = Table(title=f"NeuroGate cluster at {url}: {len(nodes)} live nodes")
    for column in ("node", "address", "lease left (s)", "delivering", "streams",
                   "subscribers", "version", "up since (UTC)"):
        table.add_column(column)
    for node in nodes:
        started = datetime.fromtimestamp(node.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(node.node_id, node.address, f"{node.lease_until - now:.1f}",
                      "yes" if node.delivering else "no", str(node.streams),
                      str(node.subscribers), node.version, started)
    console.print(table)


__all__ = ["cluster_app", "cluster_status"]
