"""``/metrics``: Prometheus text, loopback only unless a bearer token is set."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from neurogate.gateway.app import create_app
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.gateway.conftest import BASE_URL, FAST_HASHING

FORBIDDEN = {"error": {
    "code": "forbidden",
    "message": "The metrics are answered on loopback only, or with the bearer token set in "
               "NEUROGATE_METRICS_TOKEN."}}


def _client(tmp_path: Path, host: str, **settings: object) -> TestClient:
    gateway = build_gateway(Settings(data_dir=tmp_path, environment="test", node_id="node-m",
                                     **FAST_HASHING, **settings))  # type: ignore[arg-type]
    return TestClient(create_app(gateway=gateway), base_url=BASE_URL, client=(host, 40000))


def _samples(text: str) -> dict[str, tuple[dict[str, str], float]]:
    return {sample.name: (sample.labels, sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_on_loopback_without_a_token(tmp_path: Path) -> None:
    """A loopback client reads every figure, labelled with the node; no NATS figure
    without a cluster; the healthz has no cluster section either."""
    with _client(tmp_path, "127.0.0.1") as client:
        response = client.get("/metrics")
        health = client.get("/healthz").json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = _samples(response.text)
    assert samples["neurogate_store_up"] == ({"node": "node-m"}, 1.0)
    assert samples["neurogate_delivering"] == ({"node": "node-m"}, 1.0)
    for name in ("neurogate_streams", "neurogate_subscribers", "neurogate_frames_in",
                 "neurogate_frames_out", "neurogate_drops", "neurogate_frames_rejected"):
        assert samples[name] == ({"node": "node-m"}, 0.0), name
    assert "neurogate_nats_up" not in samples
    assert "cluster" not in health


def test_metrics_refused_off_loopback_without_a_token(tmp_path: Path) -> None:
    """A client elsewhere gets 403 and the stable error body when no token is set."""
    with _client(tmp_path, "192.0.2.7") as client:
        response = client.get("/metrics")
    assert response.status_code == 403
    assert response.json() == FORBIDDEN


def test_metrics_with_a_token_need_it_from_everyone(tmp_path: Path) -> None:
    """With NEUROGATE_METRICS_TOKEN set, only that bearer token reads them, loopback too."""
    with _client(tmp_path, "127.0.0.1", metrics_token="s3cret-metrics") as client:
        allowed = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
        wrong = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        missing = client.get("/metrics")
    assert allowed.status_code == 200
    assert "neurogate_streams" in allowed.text
    for refused in (wrong, missing):
        assert refused.status_code == 403
        assert refused.json() == FORBIDDEN
