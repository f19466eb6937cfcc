"""``/metrics``: this node's figures in the Prometheus text format (``prometheus_client``).

Who may read it: when ``NEUROGATE_METRICS_TOKEN`` is set, a caller presenting
``Authorization: Bearer <that token>``; when it is not, clients on loopback only
(a Prometheus server or agent on the same host). Every sample carries the ``node``
label (``NEUROGATE_NODE_ID``). The figures hold no personal or signal data.

The stream figures are read from the stream hub as it stands: ``neurogate_streams`` and
``neurogate_subscribers`` count what is open now, and the frame and drop figures add up
the counters of the streams and subscriptions open now (a closed stream's counts leave
with it), so they are gauges, not counters.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import JSONResponse, Response

from neurogate.gateway.state import Gateway

router = APIRouter(tags=["health"])

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_FORBIDDEN = {"error": {
    "code": "forbidden",
    "message": "The metrics are answered on loopback only, or with the bearer token set in "
               "NEUROGATE_METRICS_TOKEN."}}


def _sum(items: list[Any], name: str) -> int:
    return sum(int(getattr(item, name, 0)) for item in items)


class GatewayCollector(Collector):
    """Reads the hub, the store lease and the cluster membership at each scrape."""

    def __init__(self, gateway: Gateway, membership: Any = None) -> None:
        self.gateway = gateway
        self.membership = membership

    def collect(self) -> Iterator[Metric]:
        node = self.gateway.settings.node_id
        hub = self.gateway.hub
        streams = list(hub.streams.values())
        subscriptions = list(hub.subscriptions.values())

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["node"])
            family.add_metric([node], value)
            return family

        yield gauge("neurogate_streams", "Device streams open on this node.", len(streams))
        yield gauge("neurogate_subscribers", "App subscriptions open on this node.",
                    len(subscriptions))
        yield gauge("neurogate_frames_in", "Frames received by the streams open now.",
                    _sum(streams, "frames"))
        yield gauge("neurogate_frames_rejected", "Frames refused by the streams open now.",
                    _sum(streams, "rejected"))
        yield gauge("neurogate_frames_out", "Messages delivered to the subscriptions open now.",
                    _sum(subscriptions, "delivered"))
        yield gauge("neurogate_drops", "Messages dropped for slow subscriptions open now.",
                    _sum(subscriptions, "dropped"))
        yield gauge("neurogate_store_up", "1 while the consent store lease holds, else 0.",
                    1.0 if hub.store_ok() else 0.0)
        if self.membership is not None:
            yield gauge("neurogate_nats_up",
                        "1 while NATS accepted this node's heartbeat within its lease.",
                        1.0 if self.membership.healthy() else 0.0)
        cluster_open = time.monotonic() < hub.cluster_until
        yield gauge("neurogate_delivering",
                    "1 while this node may deliver data: its store lease (and, in a "
                    "cluster, its NATS lease) holds.",
                    1.0 if hub.store_ok() and cluster_open else 0.0)


def _allowed(request: Request, gateway: Gateway) -> bool:
    token = gateway.settings.metrics_token
    if token is not None and token.get_secret_value():
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        return hmac.compare_digest(given.encode(), expected.encode())
    return request.client is not None and request.client.host in _LOOPBACK


@router.get("/metrics", include_in_schema=False)
def read_metrics(request: Request) -> Response:
    """This node's figures in the Prometheus text format."""
    gateway: Gateway = request.app.state.gateway
    if not _allowed(request, gateway):
        return JSONResponse(_FORBIDDEN, status_code=403)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(gateway, getattr(request.app.state, "membership", None)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


__all__ = ["GatewayCollector", "read_metrics", "router"]
