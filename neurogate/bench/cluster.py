"""``neurogate bench --nodes N``: the throughput steps on an N-node cluster.

The nodes are ``neurogate serve`` processes on loopback, each its own node id, sharing
one PostgreSQL database and one NATS: the PostgreSQL server of
``NEUROGATE_BENCH_POSTGRES_URL`` (else ``NEUROGATE_TEST_POSTGRES_URL``, else the test
default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), on which a throw-away
database is created and dropped afterwards (so the URL's role needs CREATEDB), and the NATS
of ``NEUROGATE_BENCH_NATS_URL`` (default ``nats://127.0.0.1:4222``, JetStream on), with a
node bucket of the run's own.

Placement: stream ``i``'s device connects to node ``i mod N``; its clinical app
(``clinical_monitoring``, filtered EEG) to the next node, so that product crosses the
stream bus; its neurofeedback app (indices) to the device's own node. The server figures
of a step are those of every node together.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from neurogate.bench._procs import ServerProcess, free_port, gateway_env
from neurogate.bench._seed import BenchClinic
from neurogate.bench.config import StreamSetting
from neurogate.bench.throughput import GatewaySystem
from neurogate.errors import NeurogateError

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
PLACEMENT = ("device on node i mod N; clinical app (filtered) on the next node, across the "
             "stream bus; neurofeedback app (indices) on the device's node")


class ClusterUnavailable(NeurogateError):
    """The PostgreSQL server or the NATS server a cluster benchmark needs is not there."""

    code = "cluster_unavailable"


def postgres_url() -> str:
    return (os.environ.get("NEUROGATE_BENCH_POSTGRES_URL")
            or os.environ.get("NEUROGATE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL)


def nats_url() -> str:
    return os.environ.get("NEUROGATE_BENCH_NATS_URL") or DEFAULT_NATS_URL


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url``, dropped afterwards."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"neurogate_bench_{uuid.uuid4().hex[:10]}"
    shown = sa.engine.make_url(server_url).render_as_string(hide_password=True)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach or use the server
        admin.dispose()
        msg = (f"The cluster benchmark cannot create a database on {shown} "
               f"({type(exc).__name__}); set NEUROGATE_BENCH_POSTGRES_URL to a PostgreSQL "
               "server whose role may create databases.")
        raise ClusterUnavailable(msg) from exc
    try:
        yield sa.engine.make_url(server_url).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with contextlib.suppress(Exception), admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def check_nats(url: str) -> None:
    """Raise ClusterUnavailable unless something answers at the NATS URL."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 4222), timeout=2):
            return
    except OSError as exc:
        msg = (f"The cluster benchmark needs NATS (JetStream on) at {url} "
               f"({type(exc).__name__}); start 'nats-server -js' or set "
               "NEUROGATE_BENCH_NATS_URL.")
        raise ClusterUnavailable(msg) from exc


def start_nodes(n: int, data_dir: Path, database_url: str, logs: Path) -> list[ServerProcess]:
    """``n`` gateway nodes of one cluster on free loopback ports (node 1 first)."""
    check_nats(nats_url())
    bucket = f"neurogate_bench_{uuid.uuid4().hex[:8]}"
    nodes: list[ServerProcess] = []
    try:
        for k in range(1, n + 1):
            port = free_port()
            env = {**gateway_env(data_dir), "NEUROGATE_DATABASE_URL": database_url,
                   "NEUROGATE_NATS_URL": nats_url(), "NEUROGATE_NODE_ID": f"bench-{k}",
                   "NEUROGATE_CLUSTER_BUCKET": bucket}
            argv = [sys.executable, "-m", "neurogate", "serve", "--host", "127.0.0.1",
                    "--port", str(port)]
            nodes.append(ServerProcess(argv, port=port, env=env,
                                       log=logs / f"node-{k}.log").start())
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


class ClusterSystem(GatewaySystem):
    """The gateway's throughput system with devices and apps spread over the nodes."""

    name = "gateway_cluster"

    def __init__(self, setting: StreamSetting, nodes: list[ServerProcess],
                 clinic: BenchClinic, clinical_format: str = "binary") -> None:
        super().__init__(setting, nodes[0], clinic, clinical_format)
        self.nodes = nodes

    def pids(self) -> dict[str, int]:
        pids = super().pids()
        del pids["server"]
        pids.update({f"node-{k}": node.pid for k, node in enumerate(self.nodes, 1)})
        return pids

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """Every node's CPU and memory together, as the step's ``server``."""
        per_node = [usage[f"node-{k}"] for k in range(1, len(self.nodes) + 1)]
        usage["server"] = {key: round(sum(node[key] for node in per_node), 2)
                           for key in ("cpu_pct", "rss_mib", "rss_peak_mib")}
        return usage

    def specs(self, i: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        device, apps = super().specs(i)
        first = self.nodes[0].url.replace("http://", "ws://")

        def on(k: int, url: str) -> str:
            return url.replace(first, self.nodes[k % len(self.nodes)].url.replace(
                "http://", "ws://"), 1)

        device["url"] = on(i, device["url"])
        for app in apps:
            app["url"] = on(i + 1 if app["label"] == "clinical" else i, app["url"])
        return device, apps




@contextlib.contextmanager
def running_cluster(n: int, tmp: Path, say: Any) -> Iterator[tuple[list[ServerProcess],
                                                                 BenchClinic]]:
    """A scratch database, ``n`` nodes on it and the benchmark clinic, seeded via node 1."""
    from neurogate.bench._seed import create_admin, open_clinic

    with scratch_database(postgres_url()) as database:
        data = tmp / "cluster-var"
        create_admin(data, database)
        say(f"Starting a {n}-node cluster (PostgreSQL, NATS at {nats_url()})...")
        nodes = start_nodes(n, data, database, tmp)
        clinic = None
        try:
            clinic = open_clinic(nodes[0].url)
            yield nodes, clinic
        finally:
            if clinic is not None:
                clinic.http.close()
            for node in nodes:
                node.stop()


__all__ = ["PLACEMENT", "ClusterSystem", "ClusterUnavailable", "check_nats", "nats_url",
           "postgres_url", "running_cluster", "scratch_database", "start_nodes"]
