"""``neurogate bench --nodes 2`` at a tiny size: the cluster's figures sit beside one node
and the bare relay in one bench.json, and the report states the streams each sustained.
Shape only: no figure is asserted."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from neurogate.bench.cluster import nats_url, postgres_url
from neurogate.bench.config import CYTON, tiny
from neurogate.bench.report import other_tables, ratios_table, streams_table
from neurogate.bench.run import TOP_KEYS, run_bench
from tests.bench.test_run import _check_system
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.e2e, pytest.mark.nats, pytest.mark.postgres]


def _services() -> None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(postgres_url())
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any connection failure means "no server here"
        skip_or_fail(f"PostgreSQL is not reachable at {postgres_url()}: {type(exc).__name__}")
    host, port = nats_url().removeprefix("nats://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            pass
    except OSError as exc:
        skip_or_fail(f"NATS is not reachable at {nats_url()} ({type(exc).__name__})")


def test_bench_with_two_nodes_reports_the_cluster_beside_one_node(tmp_path: Path) -> None:
    _services()
    config = tiny(settings=(CYTON,), systems=("gateway", "bare_relay"))
    returned = run_bench(config, tmp_path, say=lambda _: None, nodes=2)
    result = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert list(returned) == [*TOP_KEYS, "gateway_cluster"]

    cluster = result["gateway_cluster"]
    assert cluster["nodes"] == 2
    assert "next node" in cluster["placement"]
    _check_system(cluster[CYTON.name], has_server=True)
    _check_system(result["gateway"][CYTON.name], has_server=True)
    _check_system(result["bare_relay"][CYTON.name], has_server=True)
    ratios = result["ratios"][CYTON.name]
    assert isinstance(ratios["cluster_streams"], int)
    assert ratios["cluster_over_gateway"] is None or isinstance(
        ratios["cluster_over_gateway"], float)

    across = cluster["revocation"]
    assert across["trials"] == config.revocation_trials
    assert across["app_node"].startswith("http://127.0.0.1:")  # node 2, not the devices' node
    assert isinstance(across["closed_ms"], dict) and isinstance(across["late_frames"], int)
    assert "revocation across nodes" in other_tables(result)

    table = streams_table(result)
    for label in ("NeuroGate, 2 nodes", "NeuroGate", "bare relay"):
        assert f"| {CYTON.name} | {label} |" in table
    assert "2 nodes / one node (streams)" in ratios_table(result)


def test_bench_without_nodes_has_no_cluster_section() -> None:
    """The flow without --nodes is as before: no cluster key, no cluster column."""
    bench = {"settings": {"streams": [{"name": CYTON.name}]},
             "ratios": {CYTON.name: {"gateway_over_bare_relay": 1.0, "bare_relay_capped": False,
                                     "gateway_over_lsl": None, "lsl_capped": None,
                                     "bare_relay_over_gateway_cpu_cost": 1.0}}}
    assert "nodes" not in ratios_table(bench)
    assert "NeuroGate, " not in streams_table(bench)
