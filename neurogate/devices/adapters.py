"""The adapter model: what a source streams (`DeviceInfo`), and its lifecycle (`Adapter`).

A source is a BrainFlow board, an LSL outlet, a recorded file or a vendor's own code. Its
per-device facts (channels, types, units, rate) are data in a `DeviceInfo`, never a
subclass per device. Every adapter goes through one lifecycle, used through context
managers::

    with BrainFlowAdapter("synthetic") as board:      # prepare() ... release()
        with board.streaming():                       # start() ... stop()
            chunk = board.read(timeout=1.0)           # volts, (n_channels, n_times)

Units are converted in one place, `to_volts`, called by `Adapter.read`: BrainFlow gives
microvolts, MNE gives volts, an LSL outlet says what it sends; what `read` returns is
always in volts (the MNE convention), and the hello a device sends declares ``"V"``.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self

import numpy as np
from neurogate_client.wire import CHANNEL_TYPES, MAX_CHANNELS, PROTOCOL_VERSION, UNITS
from numpy.typing import NDArray

from neurogate.errors import DeviceError

from ._checks import check_range, fmt_allowed

__all__ = [
    "Adapter",
    "AdapterState",
    "Chunk",
    "DeviceInfo",
    "normalize_unit",
    "to_volts",
]

AdapterState = Literal["new", "prepared", "started", "stopped", "released"]

#: Spellings of units found in files and LSL metadata, mapped to the protocol's names.
_UNIT_ALIASES = {
    "v": "V", "volt": "V", "volts": "V",
    "mv": "mV", "millivolt": "mV", "millivolts": "mV",
    "uv": "uV", "µv": "uV", "μv": "uV", "microvolt": "uV", "microvolts": "uV",
    "nv": "nV", "nanovolt": "nV", "nanovolts": "nV",
}


def normalize_unit(unit: str) -> str:
    """The protocol's name of a unit of voltage.

    Parameters
    ----------
    unit : str
        A unit as a file, a library or an LSL outlet spells it: ``"microvolts"``,
        ``"µV"`` (micro sign or Greek mu), ``"uV"``, ``"V"``, ``"millivolts"``, ...

    Returns
    -------
    unit : str
        One of ``"V"``, ``"mV"``, ``"uV"`` and ``"nV"``.

    Raises
    ------
    DeviceError
        If ``unit`` is not a unit of voltage.
    """
    key = str(unit).strip().lower()
    if key not in _UNIT_ALIASES:
        msg = (
            f"Invalid value for the 'unit' parameter. Allowed values are units of voltage "
            f"({fmt_allowed(sorted(set(_UNIT_ALIASES.values())))}, or spelled out such as "
            f"'microvolts'), but got {unit!r} instead."
        )
        raise DeviceError(msg, field="unit")
    return _UNIT_ALIASES[key]


def to_volts(data: NDArray[np.generic], units: Sequence[str]) -> NDArray[np.float64]:
    """Convert samples from their source units to volts: the one place units change.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        Samples, one row per channel, in ``units``.
    units : sequence of str
        The unit of each row (names accepted by `normalize_unit`).

    Returns
    -------
    volts : ndarray, shape (n_channels, n_times), dtype float64
        A new array in volts.
    """
    array = np.asarray(data)
    if array.ndim != 2 or array.shape[0] != len(units):
        msg = (
            f"The 'data' parameter must have shape (n_channels, n_times) with "
            f"{len(units)} channels, but got shape {array.shape}."
        )
        raise DeviceError(msg, field="data")
    scale = np.array([UNITS[normalize_unit(u)] for u in units], dtype=np.float64)
    return array.astype(np.float64) * scale[:, None]


@dataclass(frozen=True)
class DeviceInfo:
    """What a source streams: its channels, their types and units, and its rate.

    Only ``channel_names``, ``channel_types``, ``sfreq`` and the samples ever go on the
    wire (see `hello`); ``source_id``, ``model`` and ``identifying`` stay on the machine
    that reads the source.

    Parameters
    ----------
    channel_names : sequence of str
        One unique, non-empty name per channel.
    channel_types : sequence of str
        One protocol channel type per channel (``"eeg"``, ``"eog"``, ``"stim"``, ...).
    units : sequence of str
        The unit the source gives each channel in (``"uV"`` for BrainFlow, ``"V"`` for
        MNE); `Adapter.read` converts them to volts.
    sfreq : float
        Sampling rate in Hz, in (0, 100000].
    source_id : str
        A local name of the source (board id, LSL source id, file name). Never sent.
    model : str
        A human name of the device model, suggested for its registration.
    identifying : mapping of str to str
        Facts that could identify a person or a unit of equipment (serial numbers,
        patient fields of a file header, recording dates). Kept for the local operator
        only: never sent, never in ``repr``.
    """

    channel_names: tuple[str, ...]
    channel_types: tuple[str, ...]
    units: tuple[str, ...]
    sfreq: float
    source_id: str = ""
    model: str = ""
    identifying: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.channel_names)
        types = tuple(str(t) for t in self.channel_types)
        units = tuple(normalize_unit(u) for u in self.units)
        if not 1 <= len(names) <= MAX_CHANNELS:
            msg = (f"A device must have 1 to {MAX_CHANNELS} channels, but got {len(names)} "
                   "channel names.")
            raise DeviceError(msg, field="channel_names")
        if len(types) != len(names) or len(units) != len(names):
            msg = (f"Got {len(names)} channel names, {len(types)} channel types and "
                   f"{len(units)} units; give one type and one unit per channel.")
            raise DeviceError(msg, field="channel_types")
        empty = [i for i, n in enumerate(names) if not n.strip()]
        if empty:
            msg = f"Channel names must be non-empty, but the channels at {empty} have none."
            raise DeviceError(msg, field="channel_names")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            msg = f"Channel names must be unique, but {dupes!r} appear more than once."
            raise DeviceError(msg, field="channel_names")
        bad = sorted({t for t in types if t not in CHANNEL_TYPES})
        if bad:
            msg = (f"Invalid channel types {bad!r}. Allowed values are "
                   f"{fmt_allowed(CHANNEL_TYPES)}; drop those channels or map them to one "
                   "of these types.")
            raise DeviceError(msg, field="channel_types")
        sfreq = check_range("sfreq", self.sfreq, low=0.0, high=100_000.0, low_inclusive=False,
                            unit=" Hz")
        object.__setattr__(self, "channel_names", names)
        object.__setattr__(self, "channel_types", types)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "sfreq", sfreq)
        object.__setattr__(self, "identifying",
                           MappingProxyType({str(k): str(v) for k, v in self.identifying.items()}))

    def __repr__(self) -> str:
        kinds = ", ".join(sorted(set(self.channel_types)))
        return (f"<DeviceInfo | {len(self.channel_names)} channels ({kinds}), {self.sfreq:g} Hz, "
                f"{len(self.identifying)} identifying fields withheld>")

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return len(self.channel_names)

    def hello(self) -> dict[str, Any]:
        """The protocol's hello for this stream: names, types, ``"V"``, rate; nothing else.

        Returns
        -------
        hello : dict
            ``{"type": "hello", "protocol": 1, "sampling_rate": ..., "channels": [...]}``
            with each channel's unit ``"V"``, because `Adapter.read` yields volts.
        """
        return {
            "type": "hello", "protocol": PROTOCOL_VERSION, "sampling_rate": self.sfreq,
            "channels": [{"name": n, "type": t, "unit": "V"}
                         for n, t in zip(self.channel_names, self.channel_types, strict=True)],
        }

    def registration(self, *, model: str | None = None, serial: str = "<serial number>"
                     ) -> dict[str, Any]:
        """The body of ``POST /v1/devices`` that registers this stream layout.

        Parameters
        ----------
        model : str | None
            The device model (default: `model`, or ``"device"``).
        serial : str
            The serial the vendor registers (the placeholder tells a person to fill it).

        Returns
        -------
        body : dict
            ``model``, ``serial``, ``channel_names``, ``channel_types``, ``sampling_rate``.
        """
        return {"model": model or self.model or "device", "serial": serial,
                "channel_names": list(self.channel_names),
                "channel_types": list(self.channel_types), "sampling_rate": self.sfreq}

    def select(self, keep: Sequence[int]) -> DeviceInfo:
        """The same source with only the channels at the indices ``keep``."""
        keep = list(keep)
        return DeviceInfo(tuple(self.channel_names[i] for i in keep),
                          tuple(self.channel_types[i] for i in keep),
                          tuple(self.units[i] for i in keep), self.sfreq,
                          source_id=self.source_id, model=self.model,
                          identifying=self.identifying)


@dataclass(frozen=True)
class Chunk:
    """Consecutive samples read from a source.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        Samples in volts, float64.
    timestamps : ndarray, shape (n_times,)
        Time of each sample in seconds since the Unix epoch, float64.
    """

    data: NDArray[np.float64]
    timestamps: NDArray[np.float64]

    @property
    def n_times(self) -> int:
        """Number of samples (columns of ``data``)."""
        return int(self.data.shape[1])


class Adapter(abc.ABC):
    """Lifecycle of a source: prepare -> start -> read ... -> stop -> release.

    Use it through context managers: ``with adapter:`` prepares and finally releases;
    ``with adapter.streaming():`` starts and finally stops. A stopped adapter may start
    again; a released one may not be used. Subclasses implement ``_prepare`` (returning
    the `DeviceInfo`), ``_start``, ``_read``, ``_stop`` and ``_release``; they never
    convert units (`read` does, with `to_volts`).
    """

    def __init__(self) -> None:
        self._state: AdapterState = "new"
        self._info: DeviceInfo | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} | {self._state}>"

    # -- lifecycle -------------------------------------------------------------------
    @property
    def state(self) -> AdapterState:
        """Where the adapter is in its lifecycle."""
        return self._state

    @property
    def info(self) -> DeviceInfo:
        """What the source streams (after `prepare`)."""
        if self._info is None:
            msg = f"The {type(self).__name__} is {self._state}; call prepare() before reading info."
            raise DeviceError(msg, field="state")
        return self._info

    def _require(self, action: str, *allowed: AdapterState) -> None:
        if self._state not in allowed:
            msg = (f"Cannot {action} a {type(self).__name__} that is {self._state}; it must "
                   f"be {' or '.join(allowed)}. Use the lifecycle prepare -> start -> read -> "
                   "stop -> release, e.g. through 'with adapter, adapter.streaming():'.")
            raise DeviceError(msg, field="state")

    def prepare(self) -> DeviceInfo:
        """Open the source and learn what it streams.

        Returns
        -------
        info : DeviceInfo
            The source's channels, units and rate.
        """
        self._require("prepare", "new")
        self._info = self._prepare()
        self._state = "prepared"
        return self._info

    def start(self) -> None:
        """Start acquiring samples."""
        self._require("start", "prepared", "stopped")
        self._start()
        self._state = "started"

    def read(self, timeout: float = 1.0) -> Chunk | None:
        """The samples acquired since the last read, in volts.

        Parameters
        ----------
        timeout : float
            Longest time in seconds to wait for at least one sample.

        Returns
        -------
        chunk : Chunk | None
            Samples, shape (n_channels, n_times) in volts with their timestamps; an empty
            chunk (``n_times == 0``) if none came within ``timeout``; ``None`` when a
            finite source (a file) has nothing more.
        """
        self._require("read", "started")
        timeout = check_range("timeout", timeout, low=0.0, unit=" s")
        got = self._read(timeout)
        if got is None:
            return None
        data, timestamps = got
        info = self.info
        volts = to_volts(data, info.units)
        stamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if stamps.shape[0] != volts.shape[1]:
            msg = (f"The source gave {volts.shape[1]} samples but {stamps.shape[0]} "
                   "timestamps; each sample needs one timestamp.")
            raise DeviceError(msg, field="timestamps")
        return Chunk(volts, stamps)

    def stop(self) -> None:
        """Stop acquiring samples (the source stays open)."""
        self._require("stop", "started")
        try:
            self._stop()
        finally:
            self._state = "stopped"

    def release(self) -> None:
        """Close the source; stops it first if needed. Safe to call more than once."""
        if self._state == "released":
            return
        try:
            if self._state == "started":
                self.stop()
        finally:
            try:
                if self._state != "new":
                    self._release()
            finally:
                self._state = "released"

    # -- context managers ------------------------------------------------------------
    def __enter__(self) -> Self:
        self.prepare()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    @contextlib.contextmanager
    def streaming(self) -> Iterator[Self]:
        """Start on entry and stop on exit (inside ``with adapter:``)."""
        self.start()
        try:
            yield self
        finally:
            if self._state == "started":
                self.stop()

    # -- to implement ----------------------------------------------------------------
    @abc.abstractmethod
    def _prepare(self) -> DeviceInfo:
        """Implemented by each adapter."""

    @abc.abstractmethod
    def _start(self) -> None:
        """Implemented by each adapter."""

    @abc.abstractmethod
    def _read(self, timeout: float) -> tuple[NDArray[np.generic], NDArray[np.float64]] | None:
        """Samples in the source's units, shape (n_channels, n_times), and timestamps."""

    @abc.abstractmethod
    def _stop(self) -> None:
        """Implemented by each adapter."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Implemented by each adapter."""
