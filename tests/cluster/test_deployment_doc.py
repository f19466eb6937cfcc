"""docs/deployment.md says only what is so: its settings exist, its commands behave."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from neurogate.gateway.app import create_app
from neurogate.gateway.cluster import ClusterError
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.e2e.conftest import free_port, gateway_env, neurogate
from tests.gateway.conftest import FAST_HASHING

DOC = Path(__file__).parents[2] / "docs" / "deployment.md"


def test_deployment_doc_names_only_real_settings() -> None:
    """Every NEUROGATE_ variable the page names is a setting, with the default it states."""
    named = set(re.findall(r"NEUROGATE_([A-Z_]+)", DOC.read_text()))
    assert {"NATS_URL", "NODE_ID", "CLUSTER_LEASE_SECONDS", "METRICS_TOKEN"} <= named
    assert {name.lower() for name in named} <= set(Settings.model_fields)
    settings = Settings()
    assert (settings.cluster_bucket, settings.cluster_lease_seconds,
            settings.store_lease_seconds, settings.rate_limit_storage_uri) == (
        "neurogate_nodes", 6.0, 0.5, "memory://")


def test_deployment_doc_node_without_nats_does_not_start(tmp_path: Path) -> None:
    """A node whose NATS does not answer within one lease fails its start-up."""
    settings = Settings(data_dir=tmp_path, environment="test", cluster_lease_seconds=1,
                        nats_url=f"nats://127.0.0.1:{free_port()}", **FAST_HASHING)
    app = create_app(gateway=build_gateway(settings))
    with pytest.raises(ClusterError, match=r"NATS cannot be reached at nats://127\.0\.0\.1:"):
        with TestClient(app):
            pass


def test_deployment_doc_cluster_status_needs_a_nats_url(tmp_path: Path) -> None:
    """``neurogate cluster status`` exits 2 without a NATS URL, and refuses credentials
    inside the URL, naming the settings to use instead."""
    env = gateway_env(tmp_path)
    missing = neurogate("cluster", "status", env=env)
    inline = neurogate("cluster", "status", "--nats", "nats://gw:secret@127.0.0.1:4222",
                       env=env)
    assert missing.returncode == 2
    assert "give --nats nats://host:port or set NEUROGATE_NATS_URL" in missing.stderr
    assert inline.returncode == 2
    assert "NEUROGATE_NATS_USER and NEUROGATE_NATS_PASSWORD" in inline.stderr
    assert "secret" not in inline.stderr
