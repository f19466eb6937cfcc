"""The FastAPI application: REST API under /v1, OAuth2 token endpoint, health."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from neurogate import __version__
from neurogate.consent.abuse import FLUSH_BATCH as ABUSE_FLUSH_BATCH
from neurogate.consent.abuse import flush as flush_abuse_counts
from neurogate.consent.consents import expire_due
from neurogate.consent.duties import sweep_overdue
from neurogate.errors import NeurogateError
from neurogate.gateway import (
    docs_ui,
    egress,
    errors,
    oidc,
    openapi,
    portal,
    security,
    stream_records,
)
from neurogate.gateway import metrics as metrics_routes
from neurogate.gateway.cluster import connect as connect_nats
from neurogate.gateway.cluster.bus import start_bus
from neurogate.gateway.cluster.control import start_control_plane
from neurogate.gateway.oauth import TokenServer
from neurogate.gateway.recording import keep as keep_recordings
from neurogate.gateway.routes import (
    apps,
    auth,
    care,
    consent_records,
    consents,
    decisions,
    devices,
    fhir,
    ledger,
    purposes,
    streams,
    subjects,
)
from neurogate.gateway.routes import recordings as recordings_routes
from neurogate.gateway.routes import requests as requests_routes
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.gateway.streams import Subscription
from neurogate.settings import Settings, get_settings

log = logging.getLogger("neurogate.gateway")
EXPIRY_SWEEP_SECONDS = 30.0


def sweep_expired(gateway: Gateway) -> int:
    """Close consents that ran out or whose guardian's authority ended; returns the count."""
    with gateway.transaction() as session:
        return len(expire_due(session=session, ledger=gateway.ledger))


def sweep_overdue_requests(gateway: Gateway) -> int:
    """Flag subjects' requests whose legal deadline passed; returns how many were flagged."""
    with gateway.transaction() as session:
        return len(sweep_overdue(session=session))


async def _sweep_forever(gateway: Gateway) -> None:
    while True:
        try:
            changed = await run_in_threadpool(sweep_expired, gateway)
            if changed:
                log.info("expired %d consents", changed)
            late = await run_in_threadpool(sweep_overdue_requests, gateway)
            if late:
                log.warning("%d subject requests are past their legal deadline", late)
        except NeurogateError as exc:
            log.warning("consent expiry sweep failed: %s", exc.code)
        await asyncio.sleep(EXPIRY_SWEEP_SECONDS)


def flush_abuse(gateway: Gateway, *, everything: bool = False) -> int:
    """Write the closed windows of abuse counts to the ledger (all of them at shutdown);
    returns the number of leaves written."""
    written = 0
    while True:
        with gateway.transaction() as session:
            batch = flush_abuse_counts(session=session, ledger=gateway.ledger,
                                       everything=everything)
        written += batch
        if batch < ABUSE_FLUSH_BATCH:
            return written


async def _flush_abuse_forever(gateway: Gateway) -> None:
    while True:
        await asyncio.sleep(gateway.settings.abuse_flush_seconds)
        try:
            written = await run_in_threadpool(flush_abuse, gateway)
            if written:
                log.info("flushed %d abuse windows to the ledger", written)
        except NeurogateError as exc:
            log.warning("abuse flush failed: %s", exc.code)


def _on_change(gateway: Gateway, keys: set[tuple[str, str]],
               paused: list[tuple[Subscription, int]], revoked: set[str]) -> None:
    """After a commit changed consent: end unpaired devices' streams, decide again for
    the paused subscriptions. Those resting on a consent the commit revoked are refused at
    once: deciding again could only say so, later."""
    for kind, ident in keys:
        stream = gateway.hub.streams.get(ident) if kind == "device" else None
        if stream is not None:
            stream.ended = "The device was unpaired from its subject; the stream ends."
    for sub, generation in paused:
        if (sub.grant.consent_id in revoked and sub.generation == generation
                and sub.closing is None):
            refusal = egress.revoked_refusal()
            gateway.hub.revoke(sub, refusal.reasons, refusal.explanations)
        else:
            egress.spawn_reevaluation(gateway, sub, generation)


def create_app(settings: Settings | None = None, gateway: Gateway | None = None) -> FastAPI:
    """Build the gateway application (opens the database and keys)."""
    gateway = gateway or build_gateway(settings or get_settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway.loop = asyncio.get_running_loop()
        # Everything loaded so far lives as long as the process: keep it out of the
        # collector's full passes (118 ms pauses measured at ~177k objects).
        gc.freeze()
        gateway.on_change = functools.partial(_on_change, gateway)
        leased = asyncio.Event()
        tasks = [asyncio.create_task(_sweep_forever(gateway)),
                 asyncio.create_task(_flush_abuse_forever(gateway)),
                 asyncio.create_task(egress.watch(gateway, leased)),
                 asyncio.create_task(stream_records.keep(gateway))]
        tasks.insert(0, asyncio.create_task(keep_recordings(gateway)))  # recorders, retention
        # Serve once the store lease holds (or the first probe failed).
        await asyncio.wait({asyncio.ensure_future(leased.wait()), tasks[-2]},
                           return_when=asyncio.FIRST_COMPLETED)
        control = bus = bus_client = None
        try:
            # With NEUROGATE_NATS_URL: join the cluster (heartbeat into its node bucket,
            # pauses across nodes, the NATS delivery lease), on the control plane's thread.
            control = app.state.control = await start_control_plane(gateway,
                                                                    version=__version__)
            app.state.membership = control.membership if control is not None else None
            if control is not None:
                # Streams across nodes: this node's apps get other nodes' devices. The bus
                # runs on this loop, so it has a NATS connection of its own.
                bus_client = await connect_nats(gateway.settings)
                bus = app.state.bus = await start_bus(gateway.hub, bus_client,
                                                      gateway.settings)
            yield
        finally:
            if bus is not None:
                await bus.stop()
            if bus_client is not None:
                with contextlib.suppress(Exception):
                    await bus_client.close()
            if control is not None:
                await control.stop()
            gateway.on_change = None
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:  # count what is still open, so no attempt goes unrecorded
                await run_in_threadpool(flush_abuse, gateway, everything=True)
            except NeurogateError as exc:
                log.warning("abuse flush at shutdown failed: %s", exc.code)

    app = FastAPI(
        title="NeuroGate",
        version=__version__,
        description=(
            "Consent and neural-data governance gateway. People log in at /v1/auth/login; "
            "apps and devices get access tokens at /oauth/token (client credentials). "
            "Errors come as {\"error\": {\"code\", \"message\"}}."
        ),
        lifespan=lifespan,
        docs_url=None,  # served by docs_ui from the package, not from a CDN
        redoc_url=None,
    )
    app.state.gateway = gateway
    app.state.membership = None  # a cluster.Membership once joined (NEUROGATE_NATS_URL)
    app.state.control = None  # its cluster.control.ControlPlane
    app.state.bus = None  # the cluster's stream bus (cluster.bus.StreamBus) once joined
    errors.install(app)
    openapi.install(app)
    security.install(app, gateway.settings)
    docs_ui.install(app, gateway.settings)
    for module in (auth, subjects, care, apps, devices, purposes, consents, decisions, ledger,
                   streams, consent_records, fhir):
        app.include_router(module.router)
    app.include_router(consents.connections)
    app.include_router(requests_routes.subject_router)
    app.include_router(requests_routes.router)
    app.include_router(recordings_routes.router)
    app.include_router(metrics_routes.router)
    oidc.install(app, gateway)
    portal.install(app)
    token_server = TokenServer(gateway)

    @app.post("/oauth/token", tags=["auth"])
    async def issue_token(request: Request) -> Response:
        """OAuth2 client-credentials grant for apps and devices (RFC 6749 section 4.4)."""
        body = (await request.body()).decode("utf-8", errors="replace")
        form = parse_qs(body, keep_blank_values=True)
        return await run_in_threadpool(
            token_server.token_response,
            method=request.method,
            uri=str(request.url),
            headers=request.headers,
            form=form,
            client_address=request.client.host if request.client is not None else None,
        )

    @app.get("/healthz", tags=["health"])
    async def health() -> dict[str, Any]:
        """Liveness: the process answers (with this node's cluster, when clustered: its
        nodes, and whether this one delivers, or why not)."""
        body: dict[str, Any] = {"status": "ok", "version": __version__}
        if app.state.control is not None:
            body["cluster"] = await app.state.control.health()
            if app.state.bus is not None:  # streams across nodes
                body["cluster"]["bus"] = app.state.bus.health()
        return body

    return app


__all__ = ["create_app", "flush_abuse", "sweep_expired"]
