"""The device client: push a device's samples to a NeuroGate gateway.

`DeviceClient` is what a vendor embeds. The device's code calls `DeviceClient.push` with
samples in volts, from any thread; a background thread does the rest:

- **tokens**: OAuth2 client credentials at ``/oauth/token``, fetched again shortly before
  they expire (`TokenSource`);
- **reconnects** across a list of gateway addresses (the next one after each failure,
  with exponential backoff once every address has failed), and says hello again (a
  hello the gateway refuses, e.g. a layout that differs from the registration,
  is fatal: retrying would not help);
- **a bounded buffer** with explicit loss accounting: frames wait in the buffer until the
  gateway confirms them; when it is full the oldest frames are dropped and counted;
- **confirmation**: after sending frames the client sends a WebSocket ping; the pong
  proves the gateway received every frame before it (RFC 6455 keeps order). A frame sent
  but unconfirmed when the connection breaks is sent again on the next connection, so
  a frame is counted lost only if it certainly never reached the gateway;
- **sequence numbers and timestamps**: each frame gets the next sequence number when it is
  pushed, so numbers continue across reconnects and frames dropped from the buffer leave
  gaps the gateway reports (``sequence_gap`` notices); timestamps are kept consistent with
  the declared rate as the protocol requires;
- **pacing**: frames leave at most ``max_speed`` times faster than real time (plus a
  burst of ``burst_s`` seconds), below the gateway's limit of 1.5 x the declared rate
  plus 2 s, so a backlog after a reconnect drains without being refused.

At every moment ``pushed == delivered + lost + buffered`` (in samples and in frames), see
`ClientStats`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from . import listeners
from ._checks import check_range
from .auth import REGISTER_HINT, TokenSource, websocket_url
from .errors import ClientError, CredentialsRejected, GatewayUnavailable, StreamRefused
from .layout import StreamLayout, hello_message, registration_body
from .wire import HEADER_SIZE, MAX_FRAME_BYTES, CloseCode, encode_frame

__all__ = ["ClientStats", "DeviceClient"]

#: Close codes after which reconnecting cannot help.
_FATAL_CODES = {CloseCode.BAD_HELLO, CloseCode.FORBIDDEN, CloseCode.NOT_FOUND,
                CloseCode.BAD_FRAME, CloseCode.TOO_BIG}
_IDLE_S = 0.02
_BYE_WAIT_S = 5.0  # how long a closing client waits for the gateway to close after its bye
log = logging.getLogger("neurogate_client")


class _Retry(Exception):
    """The connection ended in a way that a new connection may fix."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ClientStats:
    """A consistent snapshot of a `DeviceClient`'s counters.

    ``pushed_* == delivered_* + lost_* + buffered_*`` always holds.

    Attributes
    ----------
    pushed_frames, pushed_samples : int
        Frames and samples (per channel) given to `DeviceClient.push`.
    delivered_frames, delivered_samples : int
        Confirmed received by the gateway (a pong came back after them).
    lost_frames, lost_samples : int
        Dropped because the buffer was full, or still buffered when the client closed.
    buffered_frames, buffered_samples : int
        Waiting to be sent, or sent and not yet confirmed.
    sent_frames : int
        Frames written to a socket, counting each resend.
    resent_frames : int
        Frames sent again because a connection broke before confirming them.
    retimed_frames : int
        Frames whose timestamp was moved forward to keep time consistent with the rate.
    connections : int
        Connections the gateway welcomed (1 + the number of reconnects).
    token_fetches : int
        Access tokens fetched.
    connected : bool
        Whether a connection is open now.
    last_error : str | None
        Why the last connection ended or failed, if it did.
    gateway_url : str
        The gateway address in use now (or tried last).
    """

    pushed_frames: int
    pushed_samples: int
    delivered_frames: int
    delivered_samples: int
    lost_frames: int
    lost_samples: int
    buffered_frames: int
    buffered_samples: int
    sent_frames: int
    resent_frames: int
    retimed_frames: int
    connections: int
    token_fetches: int
    connected: bool
    last_error: str | None
    gateway_url: str = ""


@dataclass
class _Frame:
    seq: int
    n: int
    payload: bytes
    sent: bool = False


class _Pacer:
    """A token bucket in samples: ``rate`` per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def wait(self, n: int) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        need = min(float(n), self.burst)
        return 0.0 if self.tokens >= need else (need - self.tokens) / self.rate

    def spend(self, n: int) -> None:
        self.tokens -= n


class DeviceClient:
    """Stream a device's samples to a NeuroGate gateway (see the module docstring).

    Parameters
    ----------
    gateway_url : str | sequence of str
        The gateway's base address, e.g. ``http://127.0.0.1:8000``, or several addresses
        of one gateway cluster: the client connects to the first, and moves to the next
        whenever a connection fails or breaks.
    client_id, client_secret : str
        The device's credentials from ``POST /v1/devices``.
    info : StreamLayout
        The stream's layout (a `StreamInfo`, or any object with ``channel_names``,
        ``channel_types`` and ``sfreq``); it must match the registration exactly.
    buffer_s : float
        Buffer capacity in seconds of samples (pending plus unconfirmed).
    max_speed : float
        Fastest sending rate as a multiple of real time, below the gateway's 1.5.
    burst_s : float
        Seconds of samples that may leave at once, below the gateway's 2.
    max_frame_s : float
        Longest frame in seconds; longer pushes are split.
    confirm_interval_s : float
        How often to ask the gateway to confirm what it received.
    backoff_initial_s, backoff_max_s : float
        First and longest wait between connection attempts (doubling in between).
    connect_timeout_s : float
        Longest wait for the WebSocket handshake and the gateway's welcome.
    on_notice : callable | None
        Called (from the client's thread) with each notice the gateway sends, such as
        ``{"type": "error", "code": "sequence_gap", "missing": 3, ...}``.
    tokens : TokenSource | None
        Where access tokens come from (default: client credentials at each address).

    Notes
    -----
    Use it as a context manager: entering starts the background thread, leaving calls
    `close`, which sends what is buffered (up to its timeout) and says bye.
    """

    def __init__(self, gateway_url: str | Sequence[str], *, client_id: str,
                 client_secret: str, info: StreamLayout, buffer_s: float = 2.0,
                 max_speed: float = 1.4,
                 burst_s: float = 1.5, max_frame_s: float = 0.25,
                 confirm_interval_s: float = 0.1, backoff_initial_s: float = 0.25,
                 backoff_max_s: float = 5.0, connect_timeout_s: float = 10.0,
                 on_notice: Callable[[dict[str, Any]], None] | None = None,
                 tokens: TokenSource | None = None) -> None:
        bases = [gateway_url] if isinstance(gateway_url, str) else list(gateway_url)
        if not bases:
            msg = ("The 'gateway_url' parameter is an empty list; give at least one address "
                   "such as 'http://127.0.0.1:8000'.")
            raise ClientError(msg, field="gateway_url")
        self.urls = [websocket_url(base, "/v1/stream/ingest") for base in bases]
        self.gateway_urls = [base.rstrip("/") for base in bases]
        self._token_sources = [tokens or TokenSource(base, client_id, client_secret)
                               for base in bases]
        self._at = 0  # index of the address in use
        self.info = info
        self.n_channels = len(info.channel_names)
        rate = float(info.sfreq)
        self.capacity = max(1, round(check_range("buffer_s", buffer_s, low=0.0,
                                                 low_inclusive=False, unit=" s") * rate))
        self.max_speed = check_range("max_speed", max_speed, low=1.0, high=1.5, unit="x")
        self.burst = max(1.0, check_range("burst_s", burst_s, low=0.0, high=2.0,
                                          low_inclusive=False, unit=" s") * rate)
        by_bytes = (MAX_FRAME_BYTES - HEADER_SIZE) // (4 * self.n_channels)
        self.max_frame = max(1, min(65535, by_bytes, math.floor(
            check_range("max_frame_s", max_frame_s, low=0.0, low_inclusive=False, unit=" s")
            * rate)))
        self.confirm_interval = check_range("confirm_interval_s", confirm_interval_s, low=0.001,
                                            unit=" s")
        self.backoff_initial = check_range("backoff_initial_s", backoff_initial_s, low=0.001,
                                           unit=" s")
        self.backoff_max = check_range("backoff_max_s", backoff_max_s,
                                       low=self.backoff_initial, unit=" s")
        self.connect_timeout = check_range("connect_timeout_s", connect_timeout_s, low=0.1,
                                           unit=" s")
        self.on_notice = on_notice
        self.notices: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self._hello = json.dumps(hello_message(info))
        self._cond = threading.Condition()
        self._pending: collections.deque[_Frame] = collections.deque()
        self._unconfirmed: collections.deque[_Frame] = collections.deque()
        self._pings: collections.deque[tuple[threading.Event, int]] = collections.deque()
        self._seq = 0
        self._next_t: float | None = None
        self._counts = collections.Counter[str]()
        self._connected = False
        self._last_error: str | None = None
        self._failure: ClientError | None = None
        self._last_notice: dict[str, Any] | None = None
        self._closing = False  # no more pushes; drain then say bye
        self._abandon = threading.Event()  # stop now, whatever is buffered
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        s = self.stats()
        state = "connected" if s.connected else "disconnected"
        return (f"<DeviceClient {self.url} | {state}, pushed {s.pushed_samples}, delivered "
                f"{s.delivered_samples}, lost {s.lost_samples} samples>")

    @property
    def url(self) -> str:
        """The ingest address in use now (or tried last)."""
        return self.urls[self._at]

    @property
    def tokens(self) -> TokenSource:
        """The token source of the address in use now."""
        return self._token_sources[self._at]

    # -- public API --------------------------------------------------------------------
    def start(self) -> Self:
        """Start the background thread that connects and sends (idempotent)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="neurogate-client",
                                                daemon=True)
                self._thread.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def push(self, samples: NDArray[np.generic], timestamp: float, *, block: bool = False,
             timeout: float | None = None) -> int:
        """Queue samples for the gateway (thread-safe).

        Parameters
        ----------
        samples : ndarray, shape (n_channels, n_times)
            Samples in volts (|value| at most 1 V), real dtype, finite.
        timestamp : float
            Time of the first sample in seconds since the Unix epoch.
        block : bool
            Wait for room in the buffer instead of dropping its oldest frames.
        timeout : float | None
            With ``block``, the longest wait in seconds (then the oldest frames are
            dropped as usual).

        Returns
        -------
        sequence : int
            The sequence number of the last frame queued (-1 if ``n_times`` is 0).

        Raises
        ------
        ClientError
            If the samples are malformed, the client is closed, or the gateway refused the
            stream for good (`StreamRefused`).
        """
        data = self._check_samples(samples)
        t0 = check_range("timestamp", timestamp, low=0.0, unit=" s")
        n_times = data.shape[1]
        if n_times == 0:
            return -1
        rate = float(self.info.sfreq)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._raise_if_unusable()
            if block:
                while 0 < self._buffered() and self._buffered() + n_times > self.capacity \
                        and self._failure is None and not self._closing:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._cond.wait(_IDLE_S if left is None else min(left, _IDLE_S))
                self._raise_if_unusable()
            if self._next_t is not None and t0 < self._next_t - 0.5 / rate:
                t0 = self._next_t
                self._counts["retimed_frames"] += 1
            for start in range(0, n_times, self.max_frame):
                part = data[:, start:start + self.max_frame]
                frame = _Frame(self._seq, part.shape[1], encode_frame(
                    part, sequence=self._seq, timestamp=t0 + start / rate))
                self._seq += 1
                self._pending.append(frame)
                self._counts["pushed_frames"] += 1
                self._counts["pushed_samples"] += frame.n
            self._next_t = t0 + n_times / rate
            self._drop_overflow()
            self._cond.notify_all()
            return self._seq - 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the gateway has confirmed everything pushed so far.

        Parameters
        ----------
        timeout : float
            Longest wait in seconds.

        Returns
        -------
        done : bool
            Whether the buffer is empty (``False`` on timeout or failure).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._buffered() and self._failure is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _IDLE_S))
            return not self._buffered()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Wait until the gateway has welcomed the stream; raise if it refused it for good."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._connected and self._failure is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _IDLE_S))
            if self._failure is not None:
                raise self._failure
            return True

    def close(self, timeout: float = 10.0) -> ClientStats:
        """Send what is buffered (up to ``timeout`` s), say bye and stop.

        Frames still buffered after ``timeout`` are counted lost.

        Returns
        -------
        stats : ClientStats
            The final counters.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None and self._failure is None:
            self.flush(timeout)
        self._abandon.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.connect_timeout))
        with self._cond:
            for queue in (self._unconfirmed, self._pending):
                while queue:
                    self._lose(queue.popleft())
            self._cond.notify_all()
        return self.stats()

    def stats(self) -> ClientStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            c = self._counts
            frames = [*self._unconfirmed, *self._pending]
            return ClientStats(
                pushed_frames=c["pushed_frames"], pushed_samples=c["pushed_samples"],
                delivered_frames=c["delivered_frames"],
                delivered_samples=c["delivered_samples"],
                lost_frames=c["lost_frames"], lost_samples=c["lost_samples"],
                buffered_frames=len(frames), buffered_samples=sum(f.n for f in frames),
                sent_frames=c["sent_frames"], resent_frames=c["resent_frames"],
                retimed_frames=c["retimed_frames"], connections=c["connections"],
                token_fetches=sum(t.fetches for t in {id(s): s for s in
                                                       self._token_sources}.values()),
                connected=self._connected, last_error=self._last_error,
                gateway_url=self.gateway_urls[self._at])

    @property
    def failure(self) -> ClientError | None:
        """Why the gateway refused the stream for good, if it did."""
        return self._failure

    # -- buffer (call with the lock held) ---------------------------------------------
    def _check_samples(self, samples: NDArray[np.generic]) -> NDArray[np.float64]:
        if not isinstance(samples, np.ndarray) or samples.dtype.kind not in "iuf":
            what = samples.dtype if isinstance(samples, np.ndarray) else type(samples).__name__
            msg = ("The 'samples' parameter must be a real numeric numpy array of shape "
                   f"(n_channels, n_times), but got {what}.")
            raise ClientError(msg, field="samples")
        n = self.n_channels
        if samples.ndim != 2 or samples.shape[0] != n:
            msg = (f"The 'samples' parameter must have shape ({n}, n_times) for the "
                   f"{n} declared channels, but got shape {samples.shape}; samples are "
                   "(n_channels, n_times), not transposed.")
            raise ClientError(msg, field="samples")
        data = samples.astype(np.float64, copy=False)
        if not np.isfinite(data).all():
            msg = ("The 'samples' parameter holds NaN or infinite values; send only finite "
                   "samples (drop or interpolate the bad ones first).")
            raise ClientError(msg, field="samples")
        peak = float(np.abs(data).max()) if data.size else 0.0
        if peak > 1.0:
            msg = (f"The 'samples' parameter holds |value| {peak:.4g}, above 1 V: samples "
                   "must be in volts. Multiply microvolts by 1e-6.")
            raise ClientError(msg, field="samples")
        return data

    def _raise_if_unusable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closing:
            msg = "This DeviceClient is closed; create a new one to stream again."
            raise ClientError(msg, field="client")

    def _buffered(self) -> int:
        return sum(f.n for f in self._pending) + sum(f.n for f in self._unconfirmed)

    def _lose(self, frame: _Frame) -> None:
        self._counts["lost_frames"] += 1
        self._counts["lost_samples"] += frame.n

    def _drop_overflow(self) -> None:
        """Drop the oldest unsent frames until the buffer fits (keep the newest one)."""
        total = self._buffered()
        while total > self.capacity and len(self._pending) > 1:
            frame = self._pending.popleft()
            total -= frame.n
            self._lose(frame)

    # -- background thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug must not leave push() waiting for a dead thread
            msg = (f"The DeviceClient's thread stopped on an unexpected error "
                   f"({type(exc).__name__}: {exc}); nothing more will be sent.")
            log.exception(msg)
            self._fail(ClientError(msg, field="client"))

    def _loop(self) -> None:
        backoff = self.backoff_initial
        refused_tokens = 0
        tried = 0  # failed attempts since the last welcome
        while not self._abandon.is_set():
            with self._cond:
                if self._closing and not self._buffered():
                    return
            try:
                ws = self._connect()
            except (CredentialsRejected, StreamRefused) as exc:
                self._fail(exc)
                return
            except _Retry as exc:
                if exc.code == CloseCode.UNAUTHENTICATED and refused_tokens == 0:
                    refused_tokens += 1
                    self.tokens.invalidate()
                    continue
                self._note_error(str(exc))
            except (GatewayUnavailable, OSError, InvalidHandshake, TimeoutError,
                    ConnectionClosed, EOFError) as exc:
                self._note_error(f"connecting to {self.gateway_urls[self._at]} failed: "
                                 f"{type(exc).__name__}: {exc}")
            else:
                backoff, refused_tokens, tried = self.backoff_initial, 0, 0
                try:
                    self._pump(ws)
                    return
                except (CredentialsRejected, StreamRefused) as exc:
                    self._fail(exc)
                    return
                except _Retry as exc:
                    self._note_error(str(exc))  # then wait backoff_initial_s, reconnect
                finally:
                    self._disconnected(ws)
            with self._cond:  # the next address; back off once all have failed in turn
                self._at = (self._at + 1) % len(self.urls)
                tried += 1
            if tried % len(self.urls):
                continue
            if self._abandon.wait(backoff):
                return
            backoff = min(backoff * 2, self.backoff_max)

    def _connect(self) -> ClientConnection:
        token = self.tokens.token()
        try:
            ws = connect(self.url, additional_headers={"Authorization": f"Bearer {token}"},
                         open_timeout=self.connect_timeout, close_timeout=2,
                         max_size=MAX_FRAME_BYTES, ping_interval=10, ping_timeout=10,
                         legacy=True)
        except InvalidURI as exc:
            msg = f"The gateway address {self.url!r} is not a valid WebSocket URL."
            raise StreamRefused(msg, close_code=CloseCode.BAD_HELLO) from exc
        try:
            ws.send(self._hello)
            answer = json.loads(ws.recv(timeout=self.connect_timeout))
        except (ConnectionClosed, TimeoutError, ValueError, OSError) as exc:
            ws.close()
            msg = f"no welcome: {type(exc).__name__}: {exc}"
            raise _Retry(msg) from exc
        if isinstance(answer, dict):
            listeners.notify("ingest", answer)
        else:
            answer = {}
        if answer.get("type") == "welcome":
            with self._cond:
                self._connected = True
                self._counts["connections"] += 1
                self._cond.notify_all()
            return ws
        raise self._ended_by_gateway(self._close_code(ws), answer)

    @staticmethod
    def _close_code(ws: ClientConnection) -> int:
        with contextlib.suppress(ConnectionClosed, TimeoutError, OSError):
            ws.recv(timeout=2)
        ws.close()
        code = ws.close_code
        return int(code) if code is not None else CloseCode.GOING_AWAY

    def _ended_by_gateway(self, code: int, message: dict[str, Any] | None) -> Exception:
        """The error for a stream the gateway closed: fatal, or worth a new connection."""
        text = (message or {}).get("message") or f"closed with code {code}"
        if code in _FATAL_CODES:
            hint = ""
            if code == CloseCode.BAD_HELLO:
                body = json.dumps(registration_body(self.info))
                hint = f" This stream declares {body}. {REGISTER_HINT}"
            msg = f"The gateway refused the stream (close code {code}): {text}{hint}"
            return StreamRefused(msg, close_code=code)
        return _Retry(f"the gateway closed the stream (code {code}): {text}", code)

    def _pump(self, ws: ClientConnection) -> None:
        """Send, confirm and read notices until closing and drained; raise to reconnect."""
        pacer = _Pacer(self.info.sfreq * self.max_speed, self.burst)
        last_ping = 0.0
        covered = -1  # the last sequence number a ping was sent after
        self._last_notice = None
        try:
            while True:
                self._read_notices(ws)
                self._confirm()
                frame: _Frame | None = None
                wait = _IDLE_S
                with self._cond:
                    if self._abandon.is_set() or self._closing and not self._buffered():
                        break
                    if self._pending:
                        wait = pacer.wait(self._pending[0].n)
                        if wait <= 0:
                            frame = self._pending.popleft()
                            self._unconfirmed.append(frame)
                if frame is not None:
                    ws.send(frame.payload)
                    pacer.spend(frame.n)
                    with self._cond:
                        self._counts["sent_frames"] += 1
                        self._counts["resent_frames"] += int(frame.sent)
                        frame.sent = True
                with self._cond:
                    newest = self._unconfirmed[-1].seq if self._unconfirmed else -1
                    draining = self._closing and not self._pending
                    if newest > covered and (
                            time.monotonic() - last_ping >= self.confirm_interval or draining):
                        self._pings.append((ws.ping(), newest))
                        covered, last_ping = newest, time.monotonic()
                    elif frame is None:
                        self._cond.wait(min(wait, _IDLE_S))
            with contextlib.suppress(ConnectionClosed, OSError):
                ws.send(json.dumps({"type": "bye"}))
                # The gateway answers a ping before it has handled the frames ahead of it;
                # it closes after the bye only once it has: read its notices until then.
                self._read_notices(ws, until_closed=_BYE_WAIT_S)
            ws.close()
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            code = rcvd.code if rcvd is not None else 1006
            raise self._ended_by_gateway(code, self._last_notice) from exc

    def _read_notices(self, ws: ClientConnection, until_closed: float = 0.0) -> None:
        """Take the notices that have arrived; with ``until_closed``, wait up to that many
        seconds for the gateway to close the connection (ConnectionClosed then)."""
        deadline = time.monotonic() + until_closed
        while True:
            try:
                text = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return
            try:
                message = json.loads(text)
            except (TypeError, ValueError):
                continue
            if not isinstance(message, dict):
                continue
            self._last_notice = message
            self.notices.append(message)
            listeners.notify("ingest", message)
            if self.on_notice is not None:
                self.on_notice(message)

    def _confirm(self) -> None:
        with self._cond:
            changed = False
            while self._pings and self._pings[0][0].is_set():
                _, last_seq = self._pings.popleft()
                while self._unconfirmed and self._unconfirmed[0].seq <= last_seq:
                    frame = self._unconfirmed.popleft()
                    self._counts["delivered_frames"] += 1
                    self._counts["delivered_samples"] += frame.n
                    changed = True
            if changed:
                self._cond.notify_all()

    def _disconnected(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            ws.close()
        self._confirm()  # a pong may have come just before the end
        with self._cond:
            self._connected = False
            self._pings.clear()
            # Unconfirmed frames go back, in order, ahead of the pending ones.
            while self._unconfirmed:
                self._pending.appendleft(self._unconfirmed.pop())
            self._drop_overflow()
            self._cond.notify_all()

    def _note_error(self, text: str) -> None:
        with self._cond:
            self._last_error = text

    def _fail(self, exc: ClientError) -> None:
        with self._cond:
            self._failure = exc
            self._last_error = exc.message
            self._cond.notify_all()
