"""Access tokens for devices and apps: OAuth2 client credentials at ``/oauth/token``.

`TokenSource` fetches a token, keeps it, and fetches a new one shortly before it expires
(a token is only checked when a WebSocket opens, so a client asks for one per connection
attempt and gets the cached one while it is fresh).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ._checks import check_range
from .errors import ClientError, CredentialsRejected, GatewayUnavailable

__all__ = ["REGISTER_HINT", "TokenSource", "websocket_url"]

REGISTER_HINT = (
    "A vendor registers a device with POST /v1/devices (its channel names, channel types "
    "and sampling rate), which returns its client_id and client_secret once; a clinician "
    "or the subject then pairs it with POST /v1/devices/{id}/pairing."
)


def websocket_url(gateway_url: str, path: str) -> str:
    """The ``ws://`` (or ``wss://``) address of ``path`` on the gateway at ``gateway_url``.

    Parameters
    ----------
    gateway_url : str
        The gateway's base address, ``http://host:port`` or ``https://host``.
    path : str
        A path such as ``/v1/stream/ingest``.

    Returns
    -------
    url : str
        The WebSocket address.
    """
    base = gateway_url.rstrip("/")
    for scheme, ws_scheme in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(scheme):
            return ws_scheme + base[len(scheme):] + path
    msg = (f"Invalid value for the 'gateway_url' parameter. It must start with 'http://' or "
           f"'https://', but got {gateway_url!r} instead.")
    raise ClientError(msg, field="gateway_url")


class TokenSource:
    """Client-credentials access tokens for one device or app, refreshed before expiry.

    Parameters
    ----------
    gateway_url : str
        The gateway's base address (``http://127.0.0.1:8000``).
    client_id, client_secret : str
        The credentials the registration returned.
    margin_s : float
        Fetch a new token when less than ``min(margin_s, 20 % of its lifetime)`` is left.
    timeout : float
        HTTP timeout in seconds.
    clock : callable
        Monotonic clock in seconds, replaceable in tests.
    http : httpx.Client | None
        The HTTP client to use (default: a new request each time, with ``timeout``).

    Attributes
    ----------
    fetches : int
        How many tokens were fetched so far.
    """

    def __init__(self, gateway_url: str, client_id: str, client_secret: str, *,
                 margin_s: float = 30.0, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 http: httpx.Client | None = None) -> None:
        websocket_url(gateway_url, "")  # checks the scheme
        if not client_id or not client_secret:
            msg = ("Both 'client_id' and 'client_secret' are needed to stream, but at least "
                   f"one is empty. {REGISTER_HINT}")
            raise CredentialsRejected(msg, field="client_id")
        self.gateway_url = gateway_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.margin_s = check_range("margin_s", margin_s, low=0.0, unit=" s")
        self.timeout = check_range("timeout", timeout, low=0.0, low_inclusive=False, unit=" s")
        self._clock = clock
        self._http = http
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"<TokenSource {self.client_id} at {self.gateway_url} | secret '**********'>"

    def token(self) -> str:
        """A valid access token (cached while fresh).

        Raises
        ------
        CredentialsRejected
            If the gateway refuses the credentials.
        GatewayUnavailable
            If the gateway cannot be reached or fails; retry later.
        """
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the gateway refused it); the next call fetches one."""
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        url = f"{self.gateway_url}/oauth/token"
        post = self._http.post if self._http is not None else httpx.post
        try:
            response = post(url, data={"grant_type": "client_credentials"},
                            auth=(self.client_id, self._secret), timeout=self.timeout)
        except httpx.HTTPError as exc:
            msg = (f"The gateway at {self.gateway_url} cannot be reached for a token "
                   f"({type(exc).__name__}); it will be retried.")
            raise GatewayUnavailable(msg) from exc
        body: dict[str, Any] = {}
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code in (400, 401, 403):
            code = body.get("error", response.status_code)
            msg = (f"The gateway refused the client credentials of {self.client_id!r} "
                   f"({code}): the client_id or client_secret is wrong, or the device or app "
                   f"was removed. {REGISTER_HINT}")
            raise CredentialsRejected(msg, field="client_id")
        if response.status_code != 200 or "access_token" not in body:
            msg = (f"The gateway's token endpoint answered {response.status_code} without a "
                   "token; it will be retried.")
            raise GatewayUnavailable(msg)
        lifetime = float(body.get("expires_in", 300))
        now = self._clock()
        self._token = str(body["access_token"])
        self._refresh_at = now + lifetime - min(self.margin_s, 0.2 * lifetime)
        self.fetches += 1
