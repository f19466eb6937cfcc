"""What a device streams: channel names, channel types and sampling rate.

`StreamInfo` is the layout a device declares in its hello; it must equal the device's
registration exactly. Any object with ``channel_names``, ``channel_types`` and ``sfreq``
(such as the gateway's own adapters' ``DeviceInfo``) can stand in for it (`StreamLayout`).
Samples are always pushed in volts, so the hello declares ``"V"`` for every channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._checks import check_range, fmt_allowed
from .errors import ClientError
from .wire import CHANNEL_TYPES, MAX_CHANNEL_NAME, MAX_CHANNELS, PROTOCOL_VERSION

__all__ = ["StreamInfo", "StreamLayout", "hello_message", "registration_body"]


class StreamLayout(Protocol):
    """Anything that says what a device streams."""

    @property
    def channel_names(self) -> Sequence[str]: ...

    @property
    def channel_types(self) -> Sequence[str]: ...

    @property
    def sfreq(self) -> float: ...


@dataclass(frozen=True)
class StreamInfo:
    """A device's stream layout, as registered with ``POST /v1/devices``.

    Parameters
    ----------
    channel_names : sequence of str
        One unique, non-empty name of at most 32 characters per channel.
    channel_types : sequence of str
        One protocol channel type per channel (``"eeg"``, ``"eog"``, ``"stim"``, ...).
    sfreq : float
        Sampling rate in Hz, in (0, 100000].
    """

    channel_names: tuple[str, ...]
    channel_types: tuple[str, ...]
    sfreq: float

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.channel_names)
        types = tuple(str(t) for t in self.channel_types)
        if not 1 <= len(names) <= MAX_CHANNELS:
            msg = (f"A device must have 1 to {MAX_CHANNELS} channels, but got {len(names)} "
                   "channel names.")
            raise ClientError(msg, field="channel_names")
        if len(types) != len(names):
            msg = (f"Got {len(names)} channel names and {len(types)} channel types; give one "
                   "type per channel.")
            raise ClientError(msg, field="channel_types")
        bad_names = [n for n in names if not n.strip() or len(n) > MAX_CHANNEL_NAME]
        if bad_names:
            msg = (f"Channel names must be non-empty and at most {MAX_CHANNEL_NAME} "
                   f"characters, but got {bad_names!r}.")
            raise ClientError(msg, field="channel_names")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            msg = f"Channel names must be unique, but {dupes!r} appear more than once."
            raise ClientError(msg, field="channel_names")
        bad = sorted({t for t in types if t not in CHANNEL_TYPES})
        if bad:
            msg = (f"Invalid channel types {bad!r}. Allowed values are "
                   f"{fmt_allowed(CHANNEL_TYPES)}.")
            raise ClientError(msg, field="channel_types")
        sfreq = check_range("sfreq", self.sfreq, low=0.0, high=100_000.0, low_inclusive=False,
                            unit=" Hz")
        object.__setattr__(self, "channel_names", names)
        object.__setattr__(self, "channel_types", types)
        object.__setattr__(self, "sfreq", sfreq)

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return len(self.channel_names)

    def hello(self) -> dict[str, Any]:
        """The protocol's hello for this layout (see `hello_message`)."""
        return hello_message(self)

    def registration(self, *, model: str = "device", serial: str = "<serial number>"
                     ) -> dict[str, Any]:
        """The body of ``POST /v1/devices`` for this layout (see `registration_body`)."""
        return registration_body(self, model=model, serial=serial)


def hello_message(layout: StreamLayout) -> dict[str, Any]:
    """The hello a device sends first: names, types, ``"V"`` for each channel, rate.

    Parameters
    ----------
    layout : StreamLayout
        What the device streams.

    Returns
    -------
    hello : dict
        ``{"type": "hello", "protocol": 1, "sampling_rate": ..., "channels": [...]}``.
    """
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "sampling_rate": float(layout.sfreq),
            "channels": [{"name": n, "type": t, "unit": "V"}
                         for n, t in zip(layout.channel_names, layout.channel_types,
                                         strict=True)]}


def registration_body(layout: StreamLayout, *, model: str = "device",
                      serial: str = "<serial number>") -> dict[str, Any]:
    """The body of ``POST /v1/devices`` that registers ``layout``.

    Returns
    -------
    body : dict
        ``model``, ``serial``, ``channel_names``, ``channel_types``, ``sampling_rate``.
    """
    return {"model": model, "serial": serial, "channel_names": list(layout.channel_names),
            "channel_types": list(layout.channel_types), "sampling_rate": float(layout.sfreq)}
