"""The bare relay: the gateway's transport and framing with nothing else.

Same server stack as the gateway (uvicorn with its default event loop and WebSocket
implementation, Starlette WebSocket routes) and the same binary frames, but no
authentication, consent, signal processing or ledger: every binary frame a device sends
to ``/ingest/{stream}`` goes unchanged to every app on ``/subscribe/{stream}``. Each app has
the same bounded drop-oldest queue as in the gateway, so one slow app cannot stall the
others. Run it with ``python -m neurogate.bench.relay --port PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

QUEUE_LIMIT = 256  # as the gateway's per-app queue


class _Subscriber:
    def __init__(self) -> None:
        self.queue: collections.deque[bytes] = collections.deque(maxlen=QUEUE_LIMIT)
        self.wakeup = asyncio.Event()
        self.dropped = 0

    def put(self, frame: bytes) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(frame)
        self.wakeup.set()


SUBSCRIBERS: dict[str, list[_Subscriber]] = collections.defaultdict(list)


async def ingest(ws: WebSocket) -> None:
    """A device sends a hello, then binary frames; each goes to every subscriber."""
    stream = ws.path_params["stream"]
    await ws.accept()
    try:
        await ws.receive_text()  # the hello, unchecked
        await ws.send_text(json.dumps({"type": "welcome", "stream": stream}))
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("bytes")
            if frame is not None:
                for sub in SUBSCRIBERS.get(stream, ()):
                    sub.put(frame)
    except (WebSocketDisconnect, RuntimeError):
        return


async def subscribe(ws: WebSocket) -> None:
    """An app receives every frame of one stream."""
    stream = ws.path_params["stream"]
    await ws.accept()
    sub = _Subscriber()
    SUBSCRIBERS[stream].append(sub)
    await ws.send_text(json.dumps({"type": "subscribed", "stream": stream}))

    async def send() -> None:
        while True:
            await sub.wakeup.wait()
            sub.wakeup.clear()
            if sub.dropped:
                lost, sub.dropped = sub.dropped, 0
                await ws.send_text(json.dumps({"type": "gap", "dropped": lost}))
            while sub.queue:
                await ws.send_bytes(sub.queue.popleft())

    async def drain() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass

    tasks = [asyncio.create_task(send()), asyncio.create_task(drain())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        SUBSCRIBERS[stream].remove(sub)


async def health(_: object) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/healthz", health),
                        WebSocketRoute("/ingest/{stream}", ingest),
                        WebSocketRoute("/subscribe/{stream}", subscribe)])


def main(argv: list[str] | None = None) -> None:
    """Serve the relay on loopback (uvicorn defaults, as ``neurogate serve``)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info")


if __name__ == "__main__":
    main()


__all__ = ["app", "main"]
