"""The app side of the protocol: receive one subject's governed products for one purpose.

`AppSubscription` opens ``/v1/stream/subscribe`` with an app's access token. It yields the
gateway's messages as typed events (`next_event`, `events`: `Subscribed`, `Data`, `Gap`,
`Revoked`, `Notice`) or as decoded JSON (`receive`), in the JSON or the binary format. It
carries only what the gateway delivers; the gateway alone decides what that is.

With ``reconnect=True`` a subscription whose connection breaks (network failure, gateway
restart, consent store unavailable, throttling) connects again with backoff and yields a
new `Subscribed`; it never retries after a refusal or a revocation (close codes 4400,
4403, 4404, 4410, see `neurogate_client.wire.CLOSE_CODES`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from . import listeners
from ._checks import check_range, fmt_allowed
from .auth import TokenSource, websocket_url
from .errors import ClientError, GatewayUnavailable, SubscriptionRefused
from .events import Data, Event, Revoked, event_from_frame, event_from_json
from .wire import CLOSE_CODES, MAX_FRAME_BYTES, CloseCode

__all__ = ["AppSubscription"]

FORMATS = ("json", "binary")


class AppSubscription:
    """One app's subscription to one subject's products for one purpose.

    Parameters
    ----------
    gateway_url : str | sequence of str
        The gateway's base address, or several addresses of one gateway cluster (a
        reconnect moves to the next).
    client_id, client_secret : str
        The app's credentials.
    subject : str
        The subject's pseudonym as this app knows it.
    purpose : str
        The purpose id the app's consent names (``"clinical_monitoring"``, ...).
    format : {"json", "binary"}
        ``binary``: ``raw`` and ``filtered`` arrive as binary frames.
    reconnect : bool
        Connect again after a break that a new connection may fix (never after a refusal
        or a revocation).
    max_reconnects : int | None
        Give up after this many reconnects in a row without a `Subscribed` (None: never).
    backoff_initial_s, backoff_max_s : float
        First and longest wait between attempts (doubling in between).
    connect_timeout_s : float
        Longest wait for the handshake and the gateway's first message.
    tokens : TokenSource | None
        Where access tokens come from (default: client credentials at each address).

    Attributes
    ----------
    subscribed : dict | None
        The gateway's last ``subscribed`` message (products, resolutions, validity).
    close_code : int | None
        How the stream ended for good (4410 after a revocation), None while it lives.
    revoked : dict | None
        The ``revoked`` message, if the consent ended.
    connections : int
        Connections the gateway accepted (1 + reconnects).
    """

    def __init__(self, gateway_url: str | Sequence[str], *, client_id: str,
                 client_secret: str, subject: str, purpose: str, format: str = "json",
                 reconnect: bool = False, max_reconnects: int | None = None,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 10.0,
                 connect_timeout_s: float = 10.0, tokens: TokenSource | None = None) -> None:
        if format not in FORMATS:
            msg = (f"Invalid value for the 'format' parameter. Allowed values are "
                   f"{fmt_allowed(FORMATS)}, but got {format!r} instead.")
            raise ClientError(msg, field="format")
        bases = [gateway_url] if isinstance(gateway_url, str) else list(gateway_url)
        if not bases:
            msg = ("The 'gateway_url' parameter is an empty list; give at least one address "
                   "such as 'http://127.0.0.1:8000'.")
            raise ClientError(msg, field="gateway_url")
        query = urlencode({"subject": subject, "purpose": purpose, "format": format})
        self.urls = [websocket_url(b, f"/v1/stream/subscribe?{query}") for b in bases]
        self._token_sources = [tokens or TokenSource(b, client_id, client_secret)
                               for b in bases]
        self._at = 0
        self.subject, self.purpose, self.format = subject, purpose, format
        self.reconnect, self.max_reconnects = reconnect, max_reconnects
        self.backoff_initial = check_range("backoff_initial_s", backoff_initial_s, low=0.001,
                                           unit=" s")
        self.backoff_max = check_range("backoff_max_s", backoff_max_s,
                                       low=self.backoff_initial, unit=" s")
        self.connect_timeout = check_range("connect_timeout_s", connect_timeout_s, low=0.1,
                                           unit=" s")
        self.subscribed: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.revoked: dict[str, Any] | None = None
        self.connections = 0
        self._ws: ClientConnection | None = None
        self._resubscribed: dict[str, Any] | None = None  # to yield after a reconnect

    def __repr__(self) -> str:
        state = "open" if self._ws is not None and self.close_code is None else "closed"
        return f"<AppSubscription {self.purpose} of {self.subject} | {state}>"

    @property
    def url(self) -> str:
        """The subscribe address in use now."""
        return self.urls[self._at]

    @property
    def tokens(self) -> TokenSource:
        """The token source of the address in use now."""
        return self._token_sources[self._at]

    def open(self) -> dict[str, Any]:
        """Subscribe; returns the ``subscribed`` message.

        Raises
        ------
        SubscriptionRefused
            If the gateway refuses (no consent, unknown subject or purpose, ...).
        GatewayUnavailable
            If the gateway cannot be reached.
        """
        first = self._connect()
        self.subscribed = first
        return first

    def _connect(self) -> dict[str, Any]:
        token = self.tokens.token()
        try:
            ws = connect(self.url, additional_headers={"Authorization": f"Bearer {token}"},
                         open_timeout=self.connect_timeout, close_timeout=2,
                         max_size=MAX_FRAME_BYTES, legacy=True)
            first = json.loads(ws.recv(timeout=self.connect_timeout))
        except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed, ValueError) as exc:
            msg = (f"Could not subscribe at {self.url} ({type(exc).__name__}: {exc}); check "
                   "the gateway runs and retry.")
            raise GatewayUnavailable(msg) from exc
        listeners.notify("subscribe", first)
        if first.get("type") != "subscribed":
            with contextlib.suppress(ConnectionClosed, TimeoutError, OSError):
                ws.recv(timeout=2)
            ws.close()
            code = int(ws.close_code) if ws.close_code is not None else CloseCode.FORBIDDEN
            reasons = tuple(first.get("reasons", ()))
            why = "; ".join(first.get("explanations", ())) or first.get("message", "")
            msg = (f"The gateway refused the subscription to {self.purpose!r} for "
                   f"{self.subject!r} (close code {code}, reasons {list(reasons)}): {why}")
            raise SubscriptionRefused(msg, close_code=code, reasons=reasons,
                                      retry_after=first.get("retry_after"))
        self._ws = ws
        self.close_code = None
        self.connections += 1
        return first

    def _raw(self, timeout: float | None) -> dict[str, Any] | bytes | None:
        """The next message (reconnecting if allowed); None on timeout or at the end."""
        if self._ws is None:
            msg = "This AppSubscription is not open; call open() (or use 'with') first."
            raise ClientError(msg, field="subscription")
        if self._resubscribed is not None:
            first, self._resubscribed = self._resubscribed, None
            return first
        while self.close_code is None:
            try:
                raw = self._ws.recv(timeout=timeout)
            except TimeoutError:
                return None
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                if not self._reconnect(code):
                    self.close_code = code
                    return None
                first, self._resubscribed = self._resubscribed, None
                return first
            if isinstance(raw, bytes):
                return raw
            message: dict[str, Any] = json.loads(raw)
            listeners.notify("subscribe", message)
            if message.get("type") == "revoked":
                self.revoked = message
            return message
        return None

    def _reconnect(self, code: int) -> bool:
        """Connect again after close ``code`` if that may help; False to end for good."""
        meaning = CLOSE_CODES.get(code)
        if not self.reconnect or self.revoked is not None or meaning is None or \
                not meaning.retry:
            return False
        backoff, attempts = self.backoff_initial, 0
        while self.max_reconnects is None or attempts < self.max_reconnects:
            attempts += 1
            if code == CloseCode.UNAUTHENTICATED:
                self.tokens.invalidate()
            self._at = (self._at + 1) % len(self.urls)
            try:
                self._resubscribed = self.subscribed = self._connect()
                return True
            except SubscriptionRefused as exc:
                code = exc.close_code
                if not CLOSE_CODES.get(code, CLOSE_CODES[CloseCode.FORBIDDEN]).retry:
                    self.close_code = code
                    raise
                wait = exc.retry_after or backoff
            except GatewayUnavailable:
                wait = backoff
            time.sleep(min(float(wait), self.backoff_max))
            backoff = min(backoff * 2, self.backoff_max)
        return False

    def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message as a dict, or ``None`` on timeout or once the stream has closed.

        A binary frame is decoded into the shape of a JSON ``data`` message whose
        ``data`` is an array of shape (n_rows, n_samples) and ``"binary": True``.

        Parameters
        ----------
        timeout : float | None
            Longest wait in seconds (``None``: until a message comes or the stream ends).

        Returns
        -------
        message : dict | None
            A message; see `closed` to tell a timeout from the end.
        """
        raw = self._raw(timeout)
        if isinstance(raw, bytes):
            data = event_from_frame(raw)
            return {"type": "data", "product": data.product, "seq": data.seq, "t": data.t,
                    "data": data.data, "binary": True}
        return raw

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next typed event, or ``None`` on timeout or once the stream has closed.

        Raises
        ------
        SubscriptionRefused
            If a reconnect was refused for good (e.g. the consent ended meanwhile).
        """
        while True:
            raw = self._raw(timeout)
            if raw is None:
                return None
            event = event_from_frame(raw) if isinstance(raw, bytes) else event_from_json(raw)
            if event is not None:
                return event

    def events(self) -> Iterator[Event]:
        """Every event until the stream ends (a `Revoked` is the last one it yields; the
        gateway's close that follows it is read, so `close_code` is 4410 after it)."""
        while (event := self.next_event()) is not None:
            yield event
            if isinstance(event, Revoked):
                while self.close_code is None and self._raw(timeout=2.0) is not None:
                    pass
                return

    def samples(self) -> Iterator[Data]:
        """Only the `Data` events, until the stream ends."""
        for event in self.events():
            if isinstance(event, Data):
                yield event

    @property
    def closed(self) -> bool:
        """Whether the gateway (or `close`) has ended the stream."""
        return self.close_code is not None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (message := self.receive()) is not None:
            yield message

    def close(self) -> None:
        """Close the subscription (idempotent)."""
        if self._ws is not None:
            self._ws.close()
            if self.close_code is None:
                self.close_code = CloseCode.NORMAL

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
