"""The ledger across gateway nodes: appends from several processes on one PostgreSQL
database make one RFC 6962 log with one sequence, no gaps, and it verifies."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from neurogate.consent.db import get_engine
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings

pytestmark = pytest.mark.postgres

NODES = 3
TRANSACTIONS = 8  # per node; every third transaction appends two leaves


def _node(data_dir: str, url: str, node: int, start: object) -> None:
    """One gateway node's ledger: wait for the others, then append as fast as it can.

    Only the consent package is loaded (what the gateway's ledger uses), so that each
    process starts quickly."""
    from neurogate.consent.checkpoint import load_or_create_signer
    from neurogate.consent.db import get_engine, session_scope
    from neurogate.consent.ledger import Ledger

    settings = Settings(data_dir=Path(data_dir), database_url=url, environment="test")
    signer = load_or_create_signer(Path(data_dir) / "keys" / "ledger-ed25519.pem",
                                   settings.ledger_origin)
    ledger = Ledger(signer=signer, origin=settings.ledger_origin)
    engine = get_engine(url)
    with session_scope(engine) as session:  # read the log once: this copy soon falls behind
        ledger.size(session)
    start.wait(timeout=60)  # type: ignore[attr-defined]
    for number in range(TRANSACTIONS):
        with session_scope(engine) as session:
            for part in range(2 if number % 3 == 0 else 1):
                ledger.append(session, action="stream.start", app=f"app_{node}",
                              stream=f"n{node}-{number}-{part}", frames=number)
    engine.dispose()


def test_ledger_nodes_concurrent_appends_make_one_log(postgres_database: str,
                                                      tmp_path: Path) -> None:
    """Three gateway processes appending at once on one PostgreSQL database leave one log:
    sequence 0..n-1 without gaps, every leaf at the index its entry names, and
    ``neurogate audit verify`` passes."""
    with get_engine(postgres_database).begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    settings = Settings(data_dir=tmp_path, database_url=postgres_database, environment="test")
    gateway = build_gateway(settings)  # migrates, and creates the shared signing key
    with gateway.transaction() as session:
        gateway.ledger.append(session, action="stream.start", stream="parent", app="app_p")

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(NODES)
    processes = [context.Process(target=_node, args=(str(tmp_path), postgres_database, n,
                                                     start)) for n in range(NODES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * NODES
    total = 1 + NODES * (TRANSACTIONS + (TRANSACTIONS + 2) // 3)

    with gateway.transaction() as session:
        rows = session.execute(sa.text("SELECT seq, entry FROM ledger_leaves ORDER BY seq")).all()
        report = gateway.ledger.verify(session)
        checkpoint = gateway.ledger.open(gateway.ledger.latest_checkpoint(session))
    assert [seq for seq, _ in rows] == list(range(total))
    assert all(json.loads(entry)["seq"] == seq for seq, entry in rows)
    streams = {json.loads(entry)["stream"] for _, entry in rows}
    assert len(streams) == total  # no entry lost, none written twice
    assert report.ok, report.problems
    assert checkpoint.size == total

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env.update(NEUROGATE_DATA_DIR=str(tmp_path), NEUROGATE_DATABASE_URL=postgres_database)
    result = subprocess.run([sys.executable, "-m", "neurogate", "audit", "verify"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Ledger verified: {total} leaves" in result.stdout
