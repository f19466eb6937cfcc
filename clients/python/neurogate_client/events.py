"""What an app receives, as typed events: `Subscribed`, `Data`, `Gap`, `Revoked`, `Notice`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .wire import BINARY_PRODUCTS, decode_header, decode_samples

__all__ = [
    "Data",
    "Event",
    "Gap",
    "Notice",
    "Revoked",
    "Subscribed",
    "event_from_frame",
    "event_from_json",
]


@dataclass(frozen=True)
class Subscribed:
    """The gateway accepted the subscription (again, after a reconnect).

    Attributes
    ----------
    subject, purpose, format : str
        What was subscribed.
    products : dict
        Each allowed product's finest resolution: ``window_s``, ``output_rate_hz``,
        ``channels``.
    valid_until : float
        When the consent ends, seconds since the Unix epoch.
    not_allowed : dict
        ``reasons`` and ``explanations`` for the purpose's withheld products.
    """

    subject: str
    purpose: str
    format: str
    products: dict[str, dict[str, Any]]
    valid_until: float
    not_allowed: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Data:
    """One product frame.

    Attributes
    ----------
    product : str
        ``raw``, ``filtered``, ``band_power``, ``focus_index``, ``relaxation_index`` or
        ``signal_quality``.
    seq : int
        The subscription's message counter.
    t : float
        Time of the first sample the frame covers (device clock, seconds).
    data : ndarray
        ``raw``/``filtered``: shape (n_rows, n_samples) in volts; ``band_power``: (n_rows,
        n_bands) in V²; ``signal_quality``: (n_rows, n_metrics); indices: shape (1,).
    labels, columns : tuple of str
        Row and column names (a binary frame carries none: ``labels`` is empty).
    rate_hz, window_s : float | None
        The delivered resolution (None for a binary frame: see `Subscribed.products`).
    binary : bool
        Whether it came as a binary frame.
    """

    product: str
    seq: int
    t: float
    data: NDArray[np.float64]
    labels: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    rate_hz: float | None = None
    window_s: float | None = None
    binary: bool = False


@dataclass(frozen=True)
class Gap:
    """The app read too slowly: ``dropped`` messages were dropped before this point."""

    dropped: int


@dataclass(frozen=True)
class Revoked:
    """The consent ended (revoked, expired, subject or app deleted); nothing more flows."""

    reason: str
    reasons: tuple[str, ...]
    explanations: tuple[str, ...]


@dataclass(frozen=True)
class Notice:
    """An ``error`` message (the connection usually closes right after it)."""

    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


Event = Subscribed | Data | Gap | Revoked | Notice


def event_from_json(message: dict[str, Any]) -> Event | None:
    """The typed event of a JSON message (None for a type this library does not know)."""
    kind = message.get("type")
    if kind == "subscribed":
        return Subscribed(str(message.get("subject")), str(message.get("purpose")),
                          str(message.get("format", "json")), dict(message.get("products", {})),
                          float(message.get("valid_until", 0.0)),
                          dict(message.get("not_allowed", {})))
    if kind == "data":
        return Data(str(message["product"]), int(message["seq"]), float(message["t"]),
                    np.asarray(message["data"], dtype=np.float64),
                    tuple(message.get("labels", ())), tuple(message.get("columns", ())),
                    message.get("rate_hz"), message.get("window_s"))
    if kind == "gap":
        return Gap(int(message.get("dropped", 0)))
    if kind == "revoked":
        return Revoked(str(message.get("reason", "revoked")), tuple(message.get("reasons", ())),
                       tuple(message.get("explanations", ())))
    if kind in ("error", "refused"):
        extra = {k: v for k, v in message.items() if k not in ("type", "code", "message")}
        return Notice(str(message.get("code", kind)), str(message.get("message", "")), extra)
    return None


def event_from_frame(frame: bytes) -> Data:
    """The `Data` event of a binary frame (kind 1 raw, 2 filtered)."""
    header = decode_header(frame)
    product = BINARY_PRODUCTS.get(header.kind, f"kind_{header.kind}")
    samples = decode_samples(frame, header).astype(np.float64)
    return Data(product, header.sequence, header.timestamp, samples, binary=True)
