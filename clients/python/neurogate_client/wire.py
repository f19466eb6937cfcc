"""NeuroGate streaming protocol, version 1: messages and binary sample frames.

The normative description is ``docs/protocol.md`` (and, machine-readable, the gateway's
AsyncAPI document at ``/asyncapi.json``); this module is its reference implementation, the
one codec both the gateway and this client library import.

A binary sample frame is a 24-byte little-endian header followed by float32 samples::

    offset  size  field
    0       2     magic b"NG"
    2       1     version (1)
    3       1     kind (0 = device samples, 1 = raw, 2 = filtered for app egress)
    4       4     sequence number, uint32, +1 per frame
    8       8     timestamp of the first sample, float64 seconds since the Unix epoch
    16      2     channel count, uint16
    18      2     sample count, uint16
    20      4     reserved, zero
    24      4*c*n samples, float32, sample-major (all channels of sample 0, then sample 1, ...)
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ProtocolError

PROTOCOL_VERSION = 1
MAGIC = b"NG"
HEADER = struct.Struct("<2sBBIdHHI")
HEADER_SIZE = HEADER.size  # 24
MAX_FRAME_BYTES = 1 << 20
MAX_CHANNELS = 512
KIND_DEVICE, KIND_RAW, KIND_FILTERED = 0, 1, 2
UNITS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6, "nV": 1e-9}
MAX_HELLO_BYTES = 65536  # the hello message, UTF-8
MAX_CHANNEL_NAME = 32  # characters
MAX_DEVICE_ID = 64  # characters of the optional, ignored ``device_id``
QUOTE_CHARS = 80  # an error message quotes at most this much of a bad value
CHANNEL_TYPES = ("eeg", "eog", "ecg", "emg", "misc", "stim", "resp", "seeg", "ecog", "dbs")


class CloseCode:
    """WebSocket close codes of the protocol (4000-4999 is the application range)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    TOO_BIG = 1009
    BAD_HELLO = 4400
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    HELLO_TIMEOUT = 4408
    DUPLICATE_STREAM = 4409
    REVOKED = 4410
    BAD_FRAME = 4422
    RATE_EXCEEDED = 4429
    STORE_UNAVAILABLE = 4503


@dataclass(frozen=True)
class CloseMeaning:
    """What a close code means and whether reconnecting can help."""

    name: str
    sent_when: str
    retry: bool


#: Every close code a client can meet: its meaning, and whether a new connection may help
#: (the client library reconnects only after these; see docs/protocol.md section 11).
CLOSE_CODES: dict[int, CloseMeaning] = {
    CloseCode.NORMAL: CloseMeaning("NORMAL", "after the device's bye, or the app closed",
                                   False),
    CloseCode.GOING_AWAY: CloseMeaning("GOING_AWAY", "a proxy or a client went away", True),
    1006: CloseMeaning("ABNORMAL", "the connection ended without a close frame", True),
    CloseCode.TOO_BIG: CloseMeaning("TOO_BIG", "a frame above MAX_FRAME_BYTES", False),
    1011: CloseMeaning("INTERNAL_ERROR", "the gateway failed unexpectedly", True),
    1012: CloseMeaning("SERVICE_RESTART", "the gateway shuts down or restarts", True),
    CloseCode.BAD_HELLO: CloseMeaning(
        "BAD_HELLO", "device: bad hello or one not matching the registration; app: bad "
        "format or purpose", False),
    CloseCode.UNAUTHENTICATED: CloseMeaning(
        "UNAUTHENTICATED", "no token, or an invalid or expired one (fetch a new token once)",
        True),
    CloseCode.FORBIDDEN: CloseMeaning(
        "FORBIDDEN", "wrong token kind or scope, foreign origin, device not paired, app "
        "refused by consent", False),
    CloseCode.NOT_FOUND: CloseMeaning("NOT_FOUND", "app: unknown subject pseudonym", False),
    CloseCode.HELLO_TIMEOUT: CloseMeaning("HELLO_TIMEOUT", "no hello within 10 s", True),
    CloseCode.DUPLICATE_STREAM: CloseMeaning(
        "DUPLICATE_STREAM", "the device already has a live stream", True),
    CloseCode.REVOKED: CloseMeaning(
        "REVOKED", "app: consent revoked or expired, subject or app deleted", False),
    CloseCode.BAD_FRAME: CloseMeaning("BAD_FRAME", "a malformed binary frame", False),
    CloseCode.RATE_EXCEEDED: CloseMeaning(
        "RATE_EXCEEDED", "device: sends faster than allowed; app: too many subscribe "
        "attempts (wait retry_after)", True),
    CloseCode.STORE_UNAVAILABLE: CloseMeaning(
        "STORE_UNAVAILABLE", "the consent store cannot be read", True),
}


class MessageType:
    """The ``type`` of every JSON message of the protocol."""

    HELLO = "hello"
    WELCOME = "welcome"
    BYE = "bye"
    ERROR = "error"
    SUBSCRIBED = "subscribed"
    REFUSED = "refused"
    DATA = "data"
    GAP = "gap"
    REVOKED = "revoked"


#: ``code`` of an ``error`` notice after which the device's stream goes on.
NOTICE_CODES = ("bad_samples", "non_finite", "sequence_backwards", "sequence_gap",
                "time_backwards", "unknown_message")
#: ``code`` of an ``error`` message that the gateway sends just before it closes.
CLOSING_CODES = ("bad_frame", "bad_hello", "bad_request", "duplicate_stream", "forbidden",
                 "forbidden_origin", "hello_timeout", "rate_limited", "store_unavailable",
                 "unauthenticated", "unpaired")
#: Data products an app may receive (``data.product``), and the binary frame kinds of those
#: that may travel as binary frames.
PRODUCTS = ("band_power", "filtered", "focus_index", "raw", "relaxation_index",
            "signal_quality")
BINARY_PRODUCTS = {KIND_RAW: "raw", KIND_FILTERED: "filtered"}


@dataclass(frozen=True)
class FrameHeader:
    """The fixed header of a binary frame."""

    kind: int
    sequence: int
    timestamp: float
    n_channels: int
    n_samples: int


@dataclass(frozen=True)
class Hello:
    """A device's first message: what it will send."""

    channel_names: tuple[str, ...]
    channel_types: tuple[str, ...]
    units: tuple[str, ...]
    sampling_rate: float
    device_id: str | None = None

    def scale_to_volts(self) -> np.ndarray:
        """Per-channel factors from the device's units to volts, shape (n_channels, 1)."""
        return np.array([UNITS[u] for u in self.units], dtype=np.float64)[:, None]


def encode_frame(samples: np.ndarray, *, sequence: int, timestamp: float,
                 kind: int = KIND_DEVICE) -> bytes:
    """Encode samples, shape (n_channels, n_samples), as one binary frame."""
    data = np.asarray(samples)
    if data.ndim != 2:
        msg = f"samples must be 2-D (n_channels, n_samples), got shape {data.shape}."
        raise ValueError(msg)
    n_channels, n_samples = data.shape
    if not (0 <= n_channels <= 0xFFFF and 0 <= n_samples <= 0xFFFF):
        msg = (f"samples has shape {data.shape}; a frame holds at most 65535 channels and "
               f"65535 samples. Split it into several frames.")
        raise ValueError(msg)
    header = HEADER.pack(MAGIC, PROTOCOL_VERSION, kind, sequence & 0xFFFFFFFF, timestamp,
                         n_channels, n_samples, 0)
    return header + np.ascontiguousarray(data.T, dtype="<f4").tobytes()


def decode_header(frame: bytes) -> FrameHeader:
    """Read and check the header of a binary frame."""
    if len(frame) > MAX_FRAME_BYTES:
        msg = f"The frame has {len(frame)} bytes; the maximum is {MAX_FRAME_BYTES}."
        raise ProtocolError(msg, close_code=CloseCode.TOO_BIG)
    if len(frame) < HEADER_SIZE:
        msg = f"The frame has {len(frame)} bytes, fewer than the {HEADER_SIZE}-byte header."
        raise ProtocolError(msg, close_code=CloseCode.BAD_FRAME)
    magic, version, kind, sequence, timestamp, n_channels, n_samples, _ = HEADER.unpack_from(
        frame)
    if magic != MAGIC or version != PROTOCOL_VERSION:
        msg = (f"The frame starts with {magic!r} version {version}; expected b'NG' version "
               f"{PROTOCOL_VERSION}.")
        raise ProtocolError(msg, close_code=CloseCode.BAD_FRAME)
    expected = HEADER_SIZE + 4 * n_channels * n_samples
    if len(frame) != expected:
        msg = (f"The frame declares {n_channels} channels x {n_samples} samples "
               f"({expected} bytes with the header) but has {len(frame)} bytes.")
        raise ProtocolError(msg, close_code=CloseCode.BAD_FRAME)
    if n_samples == 0 or n_channels == 0:
        msg = (f"The frame declares {n_channels} channels x {n_samples} samples, so it holds "
               f"no samples; send at least one.")
        raise ProtocolError(msg, close_code=CloseCode.BAD_FRAME)
    if not math.isfinite(timestamp):
        msg = f"The frame's timestamp is {timestamp}; it must be a finite number of seconds."
        raise ProtocolError(msg, close_code=CloseCode.BAD_FRAME)
    return FrameHeader(kind, sequence, timestamp, n_channels, n_samples)


def decode_samples(frame: bytes, header: FrameHeader) -> np.ndarray:
    """The samples of a frame as float32, shape (n_channels, n_samples) (a view)."""
    flat = np.frombuffer(frame, dtype="<f4", offset=HEADER_SIZE)
    return flat.reshape(header.n_samples, header.n_channels).T


def quote(value: Any) -> str:
    """``repr(value)``, cut to ``QUOTE_CHARS`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS - 1] + "…"


def _check_string(value: Any, field: str, *, max_chars: int) -> str:
    """A non-empty string of at most ``max_chars`` characters, or a ProtocolError."""
    if isinstance(value, str) and 1 <= len(value) <= max_chars:
        return value
    found = (f"a string of {len(value)} characters" if isinstance(value, str)
             else f"{type(value).__name__} {quote(value)}")
    if isinstance(value, str) and value:
        found += f" starting {quote(value[:QUOTE_CHARS])}"
    msg = (f"Invalid value for '{field}'. It must be a string of 1 to {max_chars} "
           f"characters, but got {found} instead.")
    raise ProtocolError(msg, close_code=CloseCode.BAD_HELLO, field=field)


def parse_hello(message: Any) -> Hello:
    """Check a device's hello message and return what it declares."""
    def bad(text: str, field: str) -> ProtocolError:
        return ProtocolError(text, close_code=CloseCode.BAD_HELLO, field=field)

    if not isinstance(message, dict) or message.get("type") != "hello":
        msg = 'The first message must be a JSON object with "type": "hello".'
        raise bad(msg, "type")
    protocol = message.get("protocol")
    if isinstance(protocol, bool) or protocol != PROTOCOL_VERSION:
        msg = (f"Invalid value for the 'protocol' field. Allowed values are "
               f"{PROTOCOL_VERSION}, but got {quote(protocol)} instead.")
        raise bad(msg, "protocol")
    channels = message.get("channels")
    if not isinstance(channels, list) or not 1 <= len(channels) <= MAX_CHANNELS:
        msg = (f"Invalid value for the 'channels' field. It must be a list of 1 to "
               f"{MAX_CHANNELS} objects with name, type and unit.")
        raise bad(msg, "channels")
    names, types, units = [], [], []
    for index, channel in enumerate(channels):
        if not isinstance(channel, dict):
            msg = f"Invalid value for 'channels[{index}]'. It must be an object."
            raise bad(msg, f"channels[{index}]")
        name, kind, unit = channel.get("name"), channel.get("type"), channel.get("unit", "uV")
        _check_string(name, f"channels[{index}].name", max_chars=MAX_CHANNEL_NAME)
        if kind not in CHANNEL_TYPES:
            msg = (f"Invalid value for 'channels[{index}].type'. Allowed values are "
                   f"{', '.join(repr(t) for t in CHANNEL_TYPES)}, but got {quote(kind)} "
                   f"instead.")
            raise bad(msg, f"channels[{index}].type")
        if unit not in UNITS:
            msg = (f"Invalid value for 'channels[{index}].unit'. Allowed values are "
                   f"{', '.join(repr(u) for u in UNITS)}, but got {quote(unit)} instead.")
            raise bad(msg, f"channels[{index}].unit")
        names.append(name)
        types.append(kind)
        units.append(unit)
    rate = message.get("sampling_rate")
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 < rate <= 100_000:
        msg = (f"Invalid value for the 'sampling_rate' field. It must be a number of Hz "
               f"above 0 and at most 100000, but got {quote(rate)} instead.")
        raise bad(msg, "sampling_rate")
    device_id = message.get("device_id")
    if isinstance(device_id, str) and len(device_id) > MAX_DEVICE_ID:
        _check_string(device_id, "device_id", max_chars=MAX_DEVICE_ID)
    return Hello(tuple(names), tuple(types), tuple(units), float(rate),
                 device_id if isinstance(device_id, str) else None)


__all__ = [
    "BINARY_PRODUCTS",
    "CHANNEL_TYPES",
    "CLOSE_CODES",
    "CLOSING_CODES",
    "HEADER",
    "HEADER_SIZE",
    "KIND_DEVICE",
    "KIND_FILTERED",
    "KIND_RAW",
    "MAGIC",
    "MAX_CHANNELS",
    "MAX_CHANNEL_NAME",
    "MAX_DEVICE_ID",
    "MAX_FRAME_BYTES",
    "MAX_HELLO_BYTES",
    "NOTICE_CODES",
    "PRODUCTS",
    "PROTOCOL_VERSION",
    "QUOTE_CHARS",
    "UNITS",
    "CloseCode",
    "CloseMeaning",
    "FrameHeader",
    "Hello",
    "MessageType",
    "ProtocolError",
    "decode_header",
    "decode_samples",
    "encode_frame",
    "parse_hello",
    "quote",
]
