"""``neurogate serve --workers N``: N nodes on one port, each its own node id, refused
without NATS and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port, gateway_env, neurogate

pytestmark = [pytest.mark.e2e]


@pytest.mark.nats
@pytest.mark.postgres
def test_two_workers_answer_on_one_port_with_their_own_node_ids(
        postgres_database: str, nats_url: str, bucket: str, tmp_path: Path) -> None:
    port = free_port()
    env = gateway_env(tmp_path, NEUROGATE_DATABASE_URL=postgres_database,
                      NEUROGATE_CLUSTER_BUCKET=bucket, NEUROGATE_NODE_ID="box",
                      NEUROGATE_CLUSTER_LEASE_SECONDS="2")
    log = tmp_path / "workers.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "neurogate", "serve", "--host", "127.0.0.1", "--port",
             str(port), "--nats", nats_url, "--workers", "2"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    seen: set[str] = set()
    listed: set[str] = set()
    try:
        deadline = time.monotonic() + 90
        while (seen != {"box-1", "box-2"} or listed != seen) and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-2000:]
            try:  # a new connection each time: the kernel picks a worker per connection
                with httpx.Client(timeout=2) as client:
                    cluster = client.get(f"http://127.0.0.1:{port}/healthz").json()["cluster"]
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            seen.add(cluster["node_id"])
            listed = {node["node_id"] for node in cluster["nodes"] or []}
        assert seen == {"box-1", "box-2"}
        assert listed == {"box-1", "box-2"}, "each worker lists both in the cluster"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert process.returncode == 0


def test_several_workers_are_refused_without_nats_and_postgresql(tmp_path: Path) -> None:
    result = neurogate("serve", "--port", str(free_port()), "--workers", "2",
                       env=gateway_env(tmp_path))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "'--workers 2' needs NATS" in message
    assert "PostgreSQL" in message
    assert not (tmp_path / "neurogate.db").exists(), "nothing was started"

    with_nats = neurogate("serve", "--port", str(free_port()), "--workers", "2",
                          "--nats", "nats://127.0.0.1:4222", env=gateway_env(tmp_path))
    assert with_nats.returncode == 2
    message = " ".join(with_nats.stderr.split())
    assert "needs a PostgreSQL database" in message
    assert "NATS (" not in message

    bad = neurogate("serve", "--workers", "0", env=gateway_env(tmp_path))
    assert bad.returncode == 2
    assert "'--workers': 0. It must be 1 or more" in " ".join(bad.stderr.split())
