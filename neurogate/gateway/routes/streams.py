"""WebSocket streams: device ingest and governed app egress (see docs/protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from neurogate_client.wire import (
    MAX_HELLO_BYTES,
    PROTOCOL_VERSION,
    CloseCode,
    ProtocolError,
    parse_hello,
)

from neurogate.consent import abuse
from neurogate.consent.access import Principal
from neurogate.consent.models import Device, Subject
from neurogate.consent.purposes import load_catalog
from neurogate.errors import AuthenticationError, NeurogateError, StorageError
from neurogate.gateway import stream_records
from neurogate.gateway.deps import bearer_token, principal_for_token
from neurogate.gateway.egress import (
    Refusal,
    decide_grant,
    resolve_pseudonym,
    spawn_reevaluation,
)
from neurogate.gateway.security import ForbiddenOrigin, check_origin
from neurogate.gateway.state import Gateway
from neurogate.gateway.streams import (
    MAX_QUEUE_AGE_SECONDS,
    STORE_UNAVAILABLE,
    LiveStream,
    Subscription,
)

router = APIRouter(tags=["streams"])
log = logging.getLogger("neurogate.streams")
HELLO_TIMEOUT_SECONDS = 10.0
WRITE_BUFFER_BYTES = 16 * 1024  # an app's transport pauses the sender above this
SEND_BUFFER_BYTES = 16 * 1024  # SO_SNDBUF of an app's socket (Linux doubles it)
CLOSE_TIMEOUT_SECONDS = 1.0  # a closing message an app does not take in time: connection cut
_HELLO_CODES = {CloseCode.FORBIDDEN: "unpaired", CloseCode.DUPLICATE_STREAM: "duplicate_stream"}


async def _close(ws: WebSocket, code: int, message: dict[str, Any] | None = None) -> None:
    with contextlib.suppress(Exception):
        if message is not None:
            await ws.send_text(json.dumps(message))
        await ws.close(code)


def _fails_closed(handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Close with 4503 ``store_unavailable`` when the consent store cannot be read, at
    whatever step of either endpoint it fails (authentication, decisions, the ledger)."""

    @functools.wraps(handler)
    async def endpoint(ws: WebSocket, **params: Any) -> None:
        try:
            await handler(ws, **params)
        except StorageError:
            await _close(ws, CloseCode.STORE_UNAVAILABLE, STORE_UNAVAILABLE)

    return endpoint


async def _authenticate(ws: WebSocket, gateway: Gateway, kind: str, scope: str
                        ) -> Principal | None:
    """The caller of a handshake, or None after closing the socket.

    A cross-site handshake that the portal's session cookie would authenticate is refused
    first (4403 ``forbidden_origin``). Raises StorageError without reading the store
    while the store lease has lapsed."""
    try:
        check_origin(ws)
    except ForbiddenOrigin as exc:
        await _close(ws, CloseCode.FORBIDDEN,
                     {"type": "error", "code": exc.code, "message": exc.message})
        return None
    if not gateway.hub.store_ok():
        msg = "The consent store has not answered within its lease."
        raise StorageError(msg)
    token = bearer_token(ws)
    try:
        if token is None:
            msg = "Send 'Authorization: Bearer <access token>' from /oauth/token."
            raise AuthenticationError(msg)
        principal = await run_in_threadpool(principal_for_token, gateway, token)
    except AuthenticationError as exc:
        await _close(ws, CloseCode.UNAUTHENTICATED,
                     {"type": "error", "code": exc.code, "message": exc.message})
        return None
    if principal.kind != kind or scope not in principal.scopes:
        await _close(ws, CloseCode.FORBIDDEN, {
            "type": "error", "code": "forbidden",
            "message": f"This endpoint needs a {kind} access token with the scope {scope!r}."})
        return None
    return principal


def _count_abuse(gateway: Gateway, kind: str, app_id: str) -> None:
    """Count a refused or throttled subscribe attempt (aggregated, one leaf per window)."""
    with gateway.transaction() as session:
        abuse.record(session=session, kind=kind, key=app_id,
                     window_seconds=gateway.settings.abuse_window_seconds)


def _claimed_app(gateway: Gateway, ws: WebSocket) -> str | None:
    """The app a handshake's access token was issued to, by its signature alone (no
    store read); None without a valid app token."""
    token = bearer_token(ws)
    if token is None:
        return None
    try:
        claims = gateway.tokens.verify(token)
    except NeurogateError:
        return None
    return claims.subject if claims.kind == "app" else None


def _refused(gateway: Gateway, *, app_id: str, subject_id: str, purpose: str,
             reasons: list[str]) -> None:
    """Record a subscription the policy refused, in aggregate.

    Every refusal is counted (one ``abuse.aggregate`` leaf per app and window); only the
    first refusal of an app for a subject and purpose within a window also gets its own
    ``stream.deny`` leaf, which names the subject, the purpose and the policy's reasons,
    so the subject's own ledger shows who was refused and why, however often it asked."""
    window = gateway.settings.abuse_window_seconds
    first = gateway.throttles.get("stream.deny", limit=1, period_seconds=window).hit(
        f"{app_id}:{subject_id}:{purpose}")
    with gateway.transaction() as session:
        abuse.record(session=session, kind="stream.deny", key=app_id, window_seconds=window)
        if first:
            subject = session.get(Subject, subject_id)
            gateway.ledger.append(session, action="stream.deny", app=app_id,
                                  subject=subject.pseudonym if subject else None,
                                  purpose=purpose, reasons=reasons)


def _throttled(gateway: Gateway, app_id: str) -> int | None:
    """Count a subscribe attempt of an app: None if allowed, else seconds to wait."""
    if not gateway.hub.store_ok():
        msg = "The consent store has not answered within its lease."
        raise StorageError(msg)
    limit = gateway.settings.subscribe_attempts_per_minute
    throttle = gateway.throttles.get("stream.subscribe", limit=limit)
    if throttle.hit(app_id):
        return None
    _count_abuse(gateway, "stream.throttled", app_id)
    return throttle.retry_after(app_id)


def _device_and_subject(gateway: Gateway, device_id: str) -> tuple[Device, Subject | None]:
    with gateway.transaction() as session:
        device = session.get(Device, device_id)
        assert device is not None  # the token was issued for it and checked just now
        subject = session.get(Subject, device.paired_subject_id) if (
            device.paired_subject_id) else None
        return device, subject


def _first_difference(hello: Any, device: Device) -> str | None:
    """The hello field that first differs from the registration, in the order
    checked: channel count, then each channel's name and type, then the rate."""
    names, types = list(hello.channel_names), list(hello.channel_types)
    if len(names) != len(device.channel_names):
        return "channels"
    for i, (name, kind) in enumerate(zip(names, types, strict=True)):
        if name != device.channel_names[i]:
            return f"channels[{i}].name"
        if kind != device.channel_types[i]:
            return f"channels[{i}].type"
    if abs(hello.sampling_rate - device.sampling_rate) > 1e-9:
        return "sampling_rate"
    return None


def _check_registration(device: Device, hello: Any) -> None:
    field = _first_difference(hello, device)
    if field is None:
        return
    problems = []
    if list(hello.channel_names) != list(device.channel_names):
        problems.append(f"channel names {list(hello.channel_names)} differ from the "
                        f"registered {device.channel_names}")
    if list(hello.channel_types) != list(device.channel_types):
        problems.append(f"channel types {list(hello.channel_types)} differ from the "
                        f"registered {device.channel_types}")
    if abs(hello.sampling_rate - device.sampling_rate) > 1e-9:
        problems.append(f"sampling rate {hello.sampling_rate:g} Hz differs from the "
                        f"registered {device.sampling_rate:g} Hz")
    if problems:
        msg = ("The hello does not match this device's registration: " + "; ".join(problems)
               + ". Send what was registered, or register the device again.")
        raise ProtocolError(msg, close_code=CloseCode.BAD_HELLO, field=field)


@router.websocket("/v1/stream/ingest")
@_fails_closed
async def ingest_stream(ws: WebSocket) -> None:
    """A device streams samples (hello, then binary frames)."""
    gateway: Gateway = ws.app.state.gateway
    await ws.accept()
    principal = await _authenticate(ws, gateway, "device", "stream:ingest")
    if principal is None:
        return
    try:
        first = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT_SECONDS)
    except TimeoutError:
        await _close(ws, CloseCode.HELLO_TIMEOUT, {
            "type": "error", "code": "hello_timeout",
            "message": f"No hello within {HELLO_TIMEOUT_SECONDS:g} s."})
        return
    if first["type"] == "websocket.disconnect":
        return
    device, subject = await run_in_threadpool(_device_and_subject, gateway, principal.id)
    stream: LiveStream | None = None
    try:
        if first.get("text") is None:
            msg = "The first message must be the JSON hello, sent as a text message."
            raise ProtocolError(msg, close_code=CloseCode.BAD_HELLO)
        size = len(first["text"].encode("utf-8"))
        if size > MAX_HELLO_BYTES:
            msg = (f"The hello has {size} bytes; at most {MAX_HELLO_BYTES} are accepted. "
                   f"Channel names have at most 32 characters.")
            raise ProtocolError(msg, close_code=CloseCode.BAD_HELLO)
        try:
            hello = parse_hello(json.loads(first["text"]))
        except json.JSONDecodeError as exc:
            msg = "The hello is not valid JSON."
            raise ProtocolError(msg, close_code=CloseCode.BAD_HELLO) from exc
        _check_registration(device, hello)
        if subject is None:
            msg = ("This device is not paired with a subject. A clinician or the subject "
                   f"pairs it with POST /v1/devices/{device.id}/pairing.")
            raise ProtocolError(msg, close_code=CloseCode.FORBIDDEN)
        try:
            stream = await run_in_threadpool(functools.partial(  # filter design: off the loop
                LiveStream, device_id=device.id, subject_id=subject.id, hello=hello))
        except NeurogateError as exc:  # the pipeline cannot process this layout
            raise ProtocolError(exc.message, close_code=CloseCode.BAD_HELLO) from exc
        gateway.hub.open_stream(stream)
    except ProtocolError as exc:
        await _close(ws, exc.close_code, {"type": "error", "code": _HELLO_CODES.get(
            exc.close_code, "bad_hello"), "message": exc.message, "field": exc.field})
        return
    try:
        await run_in_threadpool(functools.partial(
            stream_records.start, gateway, stream=stream.id, device=device.id,
            subject=subject.pseudonym))
    except BaseException:
        gateway.hub.close_stream(stream)
        raise
    await ws.send_text(json.dumps({
        "type": "welcome", "protocol": PROTOCOL_VERSION, "stream": stream.id,
        "max_frame_bytes": 1 << 20, "notes": dict(stream.pipeline.notes)}))
    try:
        await asyncio.create_task(_receive_frames(ws, gateway, stream))  # cancelled with us
    except ProtocolError as exc:
        await _close(ws, exc.close_code, {"type": "error", "code": "bad_frame",
                                          "message": exc.message})
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        gateway.hub.close_stream(stream)
        await run_in_threadpool(functools.partial(
            stream_records.stop, gateway, stream=stream.id, device=device.id,
            subject=subject.pseudonym, frames=stream.frames, samples=stream.samples,
            dropped=stream.rejected))


async def _receive_frames(ws: WebSocket, gateway: Gateway, stream: LiveStream) -> None:
    """A device's frames, until it leaves: each into the hub, each notice back.

    Run as a task of its own: a task resumes every coroutine between it and the await
    that is waiting, and under the endpoint lie some twenty frames of ASGI middleware
    and routing, which each received frame would otherwise wake in turn."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            break
        if stream.ended:
            await _close(ws, CloseCode.FORBIDDEN, {"type": "error", "code": "unpaired",
                                                   "message": stream.ended})
            break
        if message.get("bytes") is not None:
            for notice in gateway.hub.ingest(stream, message["bytes"]):
                await ws.send_text(json.dumps(notice))
        elif message.get("text") is not None:
            try:
                control = json.loads(message["text"])
            except json.JSONDecodeError:
                control = None
            if isinstance(control, dict) and control.get("type") == "bye":
                await _close(ws, CloseCode.NORMAL)
                break
            await ws.send_text(json.dumps({
                "type": "error", "code": "unknown_message",
                "message": "Text messages after the hello may only be {\"type\": \"bye\"}; "
                           "samples go in binary frames."}))


def _transport(ws: WebSocket) -> asyncio.WriteTransport | None:
    """The server's transport under a WebSocket (uvicorn's protocol holds it), or None."""
    todo: list[Any] = [getattr(ws, "_send", None)]
    for _ in range(8):  # through any ASGI wrappers of ``send`` (closures)
        if not todo:
            break
        send = todo.pop()
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if hasattr(transport, "set_write_buffer_limits"):  # asyncio's or uvloop's
            return transport  # type: ignore[no-any-return]
        todo += [c.cell_contents for c in getattr(send, "__closure__", None) or ()
                 if callable(c.cell_contents)]
    return None


def _bound_buffers(ws: WebSocket) -> asyncio.WriteTransport | None:
    """Keep what waits for a slow app in its queue (where it ages out and is reported as a
    ``gap``), not in socket buffers: a small write buffer and kernel send buffer."""
    transport = _transport(ws)
    if transport is None:
        return None
    with contextlib.suppress(Exception):
        transport.set_write_buffer_limits(high=WRITE_BUFFER_BYTES)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    return transport


async def _send_item(ws: WebSocket, item: str | bytes, transport: Any, deadline: float
                     ) -> bool:
    """Send one message unless the app's socket stays full past ``deadline`` (monotonic);
    False if it was not sent (nothing of it was written)."""
    send = ws.send_bytes(item) if isinstance(item, bytes) else ws.send_text(item)
    if transport is None or (
            transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[0]):
        await send  # at or below the low-water mark the transport is not paused: no timer
        return True
    try:  # the send waits for room first: cancelled then, it has written nothing
        await asyncio.wait_for(send, max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return False
    return True


async def _send_loop(ws: WebSocket, sub: Subscription, gateway: Gateway,
                     transport: Any = None) -> None:
    """Send the queued messages, oldest first, each within `MAX_QUEUE_AGE_SECONDS` of
    being queued (else it is dropped); report losses with a ``gap`` before the next
    message that is delivered."""
    hub = gateway.hub
    while True:  # until cancelled: `_close_when_ended` closes
        await sub.wakeup.wait()
        sub.wakeup.clear()
        while sub.closing is None:
            item = sub.take()
            if item is None:
                break
            if not hub.may_deliver(sub):  # checked again at the last moment
                sub.withhold()
                sub.dropped += 1
                sub.unreported_drops += 1
                break
            if sub.unreported_drops:
                lost, sub.unreported_drops = sub.unreported_drops, 0
                await ws.send_text(json.dumps({"type": "gap", "dropped": lost}))
            if await _send_item(ws, item, transport, sub.taken_at + MAX_QUEUE_AGE_SECONDS):
                sub.delivered += 1
            else:
                sub.dropped += 1
                sub.unreported_drops += 1


async def _close_when_ended(ws: WebSocket, sub: Subscription, sender: asyncio.Task[None],
                            transport: asyncio.WriteTransport | None) -> None:
    """Once the subscription ends (revoked, expired, store lost), stop sending data and
    close at once, ahead of anything queued; an app that does not take the close within
    ``CLOSE_TIMEOUT_SECONDS`` (its socket full) loses the connection."""
    await sub.ending.wait()
    sender.cancel()  # a send waiting for a full socket has written nothing yet
    assert sub.closing is not None
    code, message = sub.closing
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):  # no task of its own: no turn lost
            await _close(ws, code, message)
    except TimeoutError:
        if transport is not None:
            transport.abort()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await sender


@router.websocket("/v1/stream/subscribe")
@_fails_closed
async def subscribe_stream(ws: WebSocket, subject: str = "", purpose: str = "",
                           format: str = "json") -> None:
    """An app receives the products its consent allows, for one subject and purpose."""
    gateway: Gateway = ws.app.state.gateway
    await ws.accept()
    # Throttled before anything else reads the store, so a flood costs little.
    claimed = _claimed_app(gateway, ws)
    retry_after = None if claimed is None else await run_in_threadpool(
        _throttled, gateway, claimed)
    if retry_after is not None:
        limit = gateway.settings.subscribe_attempts_per_minute
        await _close(ws, CloseCode.RATE_EXCEEDED, {
            "type": "error", "code": "rate_limited", "retry_after": retry_after,
            "message": f"This app tried to subscribe more than {limit} times within a "
                       f"minute. Try again in {retry_after} s, and back off between "
                       f"attempts."})
        return
    principal = await _authenticate(ws, gateway, "app", "stream:subscribe")
    if principal is None:
        return
    try:
        if format not in ("json", "binary"):
            msg = (f"Invalid value for the 'format' parameter. Allowed values are 'json' and "
                   f"'binary', but got {format!r} instead.")
            raise ProtocolError(msg, close_code=CloseCode.BAD_HELLO, field="format")
        load_catalog().get(purpose)
        subject_id = await run_in_threadpool(resolve_pseudonym, gateway, app_id=principal.id,
                                             pseudonym=subject)
        mark = gateway.hub.change_mark(subject_id, principal.id)
        outcome = await run_in_threadpool(decide_grant, gateway, app_id=principal.id,
                                          subject_id=subject_id, purpose_id=purpose)
    except ProtocolError as exc:
        await _close(ws, exc.close_code, {"type": "error", "code": "bad_request",
                                          "message": exc.message, "field": exc.field})
        return
    except StorageError:
        raise
    except NeurogateError as exc:
        code = CloseCode.NOT_FOUND if exc.code == "not_found" else CloseCode.BAD_HELLO
        await _close(ws, code, {"type": "error", "code": exc.code, "message": exc.message,
                                "field": exc.field})
        return
    if isinstance(outcome, Refusal):
        await run_in_threadpool(functools.partial(
            _refused, gateway, app_id=principal.id, subject_id=subject_id, purpose=purpose,
            reasons=list(outcome.reasons)))
        await _close(ws, CloseCode.FORBIDDEN, {
            "type": "refused", "subject": subject, "purpose": purpose,
            "reasons": list(outcome.reasons), "explanations": list(outcome.explanations)})
        return
    pseudonym_of_subject = await run_in_threadpool(_subject_pseudonym, gateway, subject_id)
    sub = Subscription(id=_new_id(), app_id=principal.id, subject_id=subject_id,
                       pseudonym=subject, purpose_id=purpose, binary=format == "binary",
                       grant=outcome)
    stale = gateway.hub.subscribe(sub, mark)
    if stale is not None:
        # Consent changed while we decided: decide again before anything flows.
        spawn_reevaluation(gateway, sub, stale)
    try:
        await run_in_threadpool(functools.partial(
            stream_records.start, gateway, stream=sub.id, app=principal.id,
            subject=pseudonym_of_subject, purpose=purpose))
    except BaseException:
        gateway.hub.unsubscribe(sub)
        raise
    await ws.send_text(json.dumps({
        "type": "subscribed", "subject": subject, "purpose": purpose, "format": format,
        "products": {name: {"window_s": r.window_s, "output_rate_hz": r.output_rate_hz,
                            "channels": r.channels} for name, r in outcome.products.items()},
        "valid_until": outcome.valid_until,
        "not_allowed": {"reasons": list(outcome.reasons),
                        "explanations": list(outcome.explanations)}}))
    transport = _bound_buffers(ws)
    sender = asyncio.create_task(_send_loop(ws, sub, gateway, transport))
    receiver = asyncio.create_task(_drain(ws))
    closer = asyncio.create_task(_close_when_ended(ws, sub, sender, transport))
    try:
        await asyncio.wait({closer, sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (closer, sender, receiver):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        gateway.hub.unsubscribe(sub)
        await run_in_threadpool(functools.partial(
            stream_records.stop, gateway, stream=sub.id, app=principal.id,
            subject=pseudonym_of_subject, purpose=purpose, frames=sub.delivered,
            dropped=sub.dropped))


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what the app sends, to notice when it goes away."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


def _subject_pseudonym(gateway: Gateway, subject_id: str) -> str:
    with gateway.transaction() as session:
        subject = session.get(Subject, subject_id)
        return subject.pseudonym if subject is not None else "unknown"


def _new_id() -> str:
    return uuid.uuid4().hex
