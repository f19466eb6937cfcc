"""The app side of the protocol: receive one subject's governed products for one purpose.

`AppSubscription` opens ``/v1/stream/subscribe`` with an app's access token and yields
the gateway's JSON messages (``data``, ``gap``, ``revoked``, ``error``). It carries only
what the gateway delivers; the gateway alone decides what that is.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from neurogate.errors import DeviceError

from ._checks import check_range
from .auth import GatewayUnavailable, TokenSource, websocket_url
from .protocol import CloseCode

__all__ = ["AppSubscription", "SubscriptionRefused"]


class SubscriptionRefused(DeviceError):
    """The gateway refused the subscription; ``reasons`` are the policy's ids."""

    def __init__(self, message: str, *, close_code: int, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message, field="subscription")
        self.close_code = close_code
        self.reasons = reasons


class AppSubscription:
    """One app's subscription to one subject's products for one purpose.

    Parameters
    ----------
    gateway_url : str
        The gateway's base address.
    client_id, client_secret : str
        The app's credentials.
    subject : str
        The subject's pseudonym as this app knows it.
    purpose : str
        The purpose id the app's consent names (``"clinical_monitoring"``, ...).
    connect_timeout_s : float
        Longest wait for the handshake and the gateway's first message.

    Attributes
    ----------
    subscribed : dict | None
        The gateway's ``subscribed`` message (products, resolutions, validity).
    close_code : int | None
        How the gateway closed the stream (4410 after a revocation).
    revoked : dict | None
        The ``revoked`` message, if the consent ended.
    """

    def __init__(self, gateway_url: str, *, client_id: str, client_secret: str, subject: str,
                 purpose: str, connect_timeout_s: float = 10.0) -> None:
        query = urlencode({"subject": subject, "purpose": purpose, "format": "json"})
        self.url = websocket_url(gateway_url, f"/v1/stream/subscribe?{query}")
        self.tokens = TokenSource(gateway_url, client_id, client_secret)
        self.subject, self.purpose = subject, purpose
        self.connect_timeout = check_range("connect_timeout_s", connect_timeout_s, low=0.1,
                                           unit=" s")
        self.subscribed: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.revoked: dict[str, Any] | None = None
        self._ws: ClientConnection | None = None

    def __repr__(self) -> str:
        state = "open" if self._ws is not None and self.close_code is None else "closed"
        return f"<AppSubscription {self.purpose} of {self.subject} | {state}>"

    def open(self) -> dict[str, Any]:
        """Subscribe; returns the ``subscribed`` message.

        Raises
        ------
        SubscriptionRefused
            If the gateway refuses (no consent, unknown subject or purpose, ...).
        GatewayUnavailable
            If the gateway cannot be reached.
        """
        token = self.tokens.token()
        try:
            ws = connect(self.url, additional_headers={"Authorization": f"Bearer {token}"},
                         open_timeout=self.connect_timeout, close_timeout=2, legacy=True)
            first = json.loads(ws.recv(timeout=self.connect_timeout))
        except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
            msg = (f"Could not subscribe at {self.url} ({type(exc).__name__}: {exc}); check "
                   "the gateway runs and retry.")
            raise GatewayUnavailable(msg) from exc
        if first.get("type") != "subscribed":
            with contextlib.suppress(ConnectionClosed, TimeoutError, OSError):
                ws.recv(timeout=2)
            ws.close()
            code = int(ws.close_code) if ws.close_code is not None else CloseCode.FORBIDDEN
            reasons = tuple(first.get("reasons", ()))
            why = "; ".join(first.get("explanations", ())) or first.get("message", "")
            msg = (f"The gateway refused the subscription to {self.purpose!r} for "
                   f"{self.subject!r} (close code {code}, reasons {list(reasons)}): {why}")
            raise SubscriptionRefused(msg, close_code=code, reasons=reasons)
        self._ws = ws
        self.subscribed = first
        return first

    def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, or ``None`` on timeout or once the stream has closed.

        Parameters
        ----------
        timeout : float | None
            Longest wait in seconds (``None``: until a message comes or the stream ends).

        Returns
        -------
        message : dict | None
            A JSON message; see `closed` to tell a timeout from the end.
        """
        if self._ws is None:
            msg = "This AppSubscription is not open; call open() (or use 'with') first."
            raise DeviceError(msg, field="subscription")
        if self.close_code is not None:
            return None
        try:
            text = self._ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
            return None
        message: dict[str, Any] = json.loads(text)
        if message.get("type") == "revoked":
            self.revoked = message
        return message

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
