"""Lab Streaming Layer in and out.

**In** (`LslInletAdapter`): an LSL outlet found on the network by name, type or source id
becomes a source like any device; its channel labels, types and units come from the
stream's ``desc/channels`` metadata (the XDF convention), its rate from the stream info.
It enters the gateway through `DeviceClient`, registered and paired first.

**Out** (`LslOutBridge`): an app's governed products republished as local LSL outlets,
one per product, so that LSL viewers and recorders work unchanged. An outlet carries only
what the gateway delivered to the app, and is destroyed as soon as the subscription ends
(a revocation closes it with 4410), so it disappears from ``pylsl.resolve_streams``.
"""

from __future__ import annotations

import collections
import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np
import pylsl
from neurogate_client import AppSubscription
from neurogate_client.wire import CHANNEL_TYPES
from numpy.typing import NDArray

from neurogate.errors import DeviceError

from ._checks import check_option, check_range, fmt_allowed
from .adapters import Adapter, DeviceInfo, normalize_unit

__all__ = ["BridgeResult", "LslInletAdapter", "LslOutBridge", "destroy_outlet",
           "lsl_predicate"]

_NUMERIC = {pylsl.cf_float32, pylsl.cf_double64, pylsl.cf_int8, pylsl.cf_int16,
            pylsl.cf_int32, pylsl.cf_int64}
_LSL_TYPES = {"raw": "EEG", "filtered": "EEG", "band_power": "BandPower",
              "signal_quality": "SignalQuality", "focus_index": "Index",
              "relaxation_index": "Index"}
_LSL_UNITS = {"raw": "volts", "filtered": "volts", "band_power": "volts^2"}


def lsl_predicate(*, name: str | None = None, type: str | None = None,
                  source_id: str | None = None) -> str:
    """An LSL XPath predicate matching the given stream properties.

    Parameters
    ----------
    name, type, source_id : str | None
        Stream properties to match exactly; at least one.

    Returns
    -------
    predicate : str
        E.g. ``"name='EEG amp' and type='EEG'"``.
    """
    parts = {"name": name, "type": type, "source_id": source_id}
    given = {k: v for k, v in parts.items() if v}
    if not given:
        msg = ("Give at least one of 'name', 'type' and 'source_id' to find an LSL outlet, "
               "e.g. --name 'EEG amp'.")
        raise DeviceError(msg, field="name")
    for key, value in given.items():
        if "'" in value:
            msg = f"The '{key}' parameter may not contain a quote ('), but got {value!r}."
            raise DeviceError(msg, field=key)
    return " and ".join(f"{k}='{v}'" for k, v in given.items())


def _channels(info: pylsl.StreamInfo) -> list[dict[str, str]]:
    found = []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty():
        found.append({key: channel.child_value(key) for key in ("label", "type", "unit")})
        channel = channel.next_sibling()
    return found


class LslInletAdapter(Adapter):
    """An LSL outlet on the network as a source.

    Parameters
    ----------
    name, type, source_id : str | None
        Properties of the outlet to attach to (at least one; all given must match).
    resolve_timeout : float
        Seconds to look for the outlet.
    unit : str | None
        The unit of every channel, for outlets whose metadata has none (the stream's own
        ``unit`` entries win).
    channel_type : str | None
        The protocol type of every channel without one in the metadata (default: the
        stream's type, lower-cased, if it is a protocol type, e.g. ``EEG`` -> ``eeg``).
    max_chunk : int
        Most samples returned by one `read`.

    Notes
    -----
    Timestamps are LSL's (clock-synchronised and de-jittered by liblsl), moved to the
    Unix epoch with the offset between ``time.time()`` and ``pylsl.local_clock()``.
    """

    def __init__(self, *, name: str | None = None, type: str | None = None,
                 source_id: str | None = None, resolve_timeout: float = 5.0,
                 unit: str | None = None, channel_type: str | None = None,
                 max_chunk: int = 4096) -> None:
        super().__init__()
        self.predicate = lsl_predicate(name=name, type=type, source_id=source_id)
        self.resolve_timeout = check_range("resolve_timeout", resolve_timeout, low=0.0,
                                           unit=" s")
        self.unit = None if unit is None else normalize_unit(unit)
        if channel_type is not None:
            check_option("channel_type", channel_type, CHANNEL_TYPES)
        self.channel_type = channel_type
        self.max_chunk = int(check_range("max_chunk", max_chunk, low=1))
        self._inlet: pylsl.StreamInlet | None = None
        self._buffer: NDArray[Any] | None = None
        self._offset = 0.0

    def _resolve(self) -> pylsl.StreamInfo:
        found = pylsl.resolve_bypred(self.predicate, 1, self.resolve_timeout)
        if not found:
            msg = (f"No LSL outlet matching {self.predicate} was found within "
                   f"{self.resolve_timeout:g} s. Check that the outlet runs and is visible "
                   "from this machine (pylsl.resolve_streams() lists the visible ones), and "
                   "that name, type and source id are spelled exactly.")
            raise DeviceError(msg, field="name")
        if len(found) > 1:
            seen = ", ".join(f"{s.name()!r} (type {s.type()!r}, source id {s.source_id()!r})"
                             for s in found)
            msg = (f"{len(found)} LSL outlets match {self.predicate}: {seen}. Add the "
                   "source id (or a type) to choose one.")
            raise DeviceError(msg, field="source_id")
        return found[0]

    def _prepare(self) -> DeviceInfo:
        info = self._resolve()
        if info.channel_format() not in _NUMERIC:
            msg = (f"The LSL outlet {info.name()!r} sends non-numeric samples (format "
                   f"{info.channel_format()}); only numeric streams can be devices.")
            raise DeviceError(msg, field="channel_format")
        rate = info.nominal_srate()
        if rate <= 0:
            msg = (f"The LSL outlet {info.name()!r} has an irregular rate (nominal rate "
                   f"{rate:g}); a device stream needs a fixed sampling rate.")
            raise DeviceError(msg, field="nominal_srate")
        flags = pylsl.proc_clocksync | pylsl.proc_dejitter | pylsl.proc_monotonize
        inlet = pylsl.StreamInlet(info, max_buflen=60, processing_flags=flags)
        try:
            full = inlet.info(timeout=max(self.resolve_timeout, 1.0))
        except pylsl.util.TimeoutError as exc:
            msg = f"The LSL outlet {info.name()!r} did not send its metadata in time; retry."
            raise DeviceError(msg, field="name") from exc
        n = full.channel_count()
        meta = _channels(full)
        if len(meta) != n:
            meta = [{"label": "", "type": "", "unit": ""} for _ in range(n)]
        names = tuple(m["label"] or f"ch{i + 1}" for i, m in enumerate(meta))
        stream_type = full.type().strip().lower()
        default_type = self.channel_type or (stream_type if stream_type in CHANNEL_TYPES
                                             else None)
        types = []
        for channel_name, m in zip(names, meta, strict=True):
            kind = m["type"].strip().lower() or default_type
            if kind not in CHANNEL_TYPES:
                msg = (f"The LSL channel {channel_name!r} has type {kind or 'none'!r}; give "
                       f"one of {fmt_allowed(CHANNEL_TYPES)} in the outlet's metadata or "
                       "with channel_type (--channel-type).")
                raise DeviceError(msg, field="channel_type")
            types.append(kind)
        units = []
        for channel_name, m in zip(names, meta, strict=True):
            unit = m["unit"].strip() or self.unit
            if unit is None:
                msg = (f"The LSL channel {channel_name!r} declares no unit; give the unit of "
                       "the stream with unit (--unit), e.g. 'microvolts'.")
                raise DeviceError(msg, field="unit")
            units.append(normalize_unit(unit))
        self._inlet = inlet
        self._buffer = np.empty((self.max_chunk, n), dtype=inlet.np_dtype or np.float64)
        identifying = {k: v for k, v in (("source_id", full.source_id()),
                                         ("hostname", full.hostname()), ("uid", full.uid()))
                       if v}
        return DeviceInfo(names, tuple(types), tuple(units), float(rate),
                          source_id=full.source_id() or full.name(),
                          model=f"LSL {full.name()}", identifying=identifying)

    def _start(self) -> None:
        assert self._inlet is not None
        try:
            self._inlet.open_stream(timeout=max(self.resolve_timeout, 1.0))
        except (pylsl.util.TimeoutError, pylsl.util.LostError) as exc:
            msg = "The LSL outlet did not open its stream in time; check it still runs."
            raise DeviceError(msg, field="name") from exc
        self._offset = time.time() - pylsl.local_clock()

    def _read(self, timeout: float) -> tuple[NDArray[np.generic], NDArray[np.float64]]:
        assert self._inlet is not None and self._buffer is not None
        try:
            _, stamps = self._inlet.pull_chunk(timeout=timeout, max_samples=self.max_chunk,
                                               dest_obj=self._buffer)
        except pylsl.util.LostError as exc:
            msg = "The LSL outlet was lost (it stopped or its host went away)."
            raise DeviceError(msg, field="name") from exc
        n = len(stamps)
        data = self._buffer[:n].T.copy()
        return data, np.asarray(stamps, dtype=np.float64) + self._offset

    def _stop(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()

    def _release(self) -> None:
        self._inlet = None  # pylsl closes the inlet when its last reference goes
        self._buffer = None


def destroy_outlet(outlet: pylsl.StreamOutlet) -> None:
    """Destroy an LSL outlet now, so it stops being discoverable at once.

    pylsl only destroys outlets when the Python object is collected; this does it
    explicitly and leaves a null handle behind (destroying a null outlet is a no-op in
    liblsl, so pylsl's own finaliser stays harmless).
    """
    handle = outlet.obj
    if handle:
        outlet.obj = ctypes.c_void_p()
        pylsl.lib.lib.lsl_destroy_outlet(handle)


@dataclass(frozen=True)
class BridgeResult:
    """How an `LslOutBridge` run ended.

    Attributes
    ----------
    close_code : int | None
        How the gateway closed the subscription (4410: consent revoked).
    reason : str | None
        The revocation's reason, if revoked.
    published : dict of str to int
        Samples pushed to each product's outlet.
    skipped : int
        Data messages not published (a shape that changed mid-stream).
    gaps : int
        Messages the gateway reported dropped for this app (slow consumer).
    """

    close_code: int | None
    reason: str | None
    published: dict[str, int]
    skipped: int
    gaps: int


class LslOutBridge:
    """Republish an app's governed products as local LSL outlets, one per product.

    Parameters
    ----------
    subscription : AppSubscription
        An open subscription (the bridge reads it; it never widens it).
    name_prefix : str
        Outlet names are ``"<prefix> <product>"``.
    on_message : callable | None
        Called with each message received (for logs and tests).

    Notes
    -----
    Each outlet is created when its product's first data message arrives: its channel
    count is that message's rows (times columns for windowed products), its nominal rate
    the message's ``rate_hz``. Sample products (``raw``, ``filtered``) carry their
    timestamps; windowed products push one sample per window, stamped with its start.
    """

    def __init__(self, subscription: AppSubscription, *, name_prefix: str = "NeuroGate",
                 on_message: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.subscription = subscription
        self.name_prefix = name_prefix
        self.on_message = on_message
        self.outlets: dict[str, pylsl.StreamOutlet] = {}
        self._shapes: dict[str, int] = {}
        self.published: collections.Counter[str] = collections.Counter()
        self.skipped = 0
        self.gaps = 0
        self._offset = time.time() - pylsl.local_clock()

    def __repr__(self) -> str:
        return f"<LslOutBridge {sorted(self.outlets)} | published {dict(self.published)}>"

    def source_id(self, product: str) -> str:
        """The LSL source id of a product's outlet."""
        sub = self.subscription
        return f"neurogate:{sub.subject}:{sub.purpose}:{product}"

    def _outlet(self, product: str, message: dict[str, Any]) -> pylsl.StreamOutlet:
        labels = [str(label) for label in message["labels"]]
        columns = [str(c) for c in message.get("columns", [])]
        names = [f"{lab}:{col}" for lab in labels for col in columns] if columns else (
            labels if product in ("raw", "filtered") or len(labels) > 1 else [product])
        info = pylsl.StreamInfo(f"{self.name_prefix} {product}",
                                _LSL_TYPES.get(product, "NeuroGate"), len(names),
                                float(message["rate_hz"]), pylsl.cf_float32,
                                self.source_id(product))
        channels = info.desc().append_child("channels")
        for channel_name in names:
            channel = channels.append_child("channel")
            channel.append_child_value("label", channel_name)
            channel.append_child_value("unit", _LSL_UNITS.get(product, ""))
        outlet = pylsl.StreamOutlet(info)
        self.outlets[product] = outlet
        self._shapes[product] = len(names)
        return outlet

    def publish(self, message: dict[str, Any]) -> None:
        """Push one ``data`` message to its product's outlet (created on first use)."""
        product = str(message["product"])
        data = np.asarray(message["data"], dtype=np.float64)
        sampled = product in ("raw", "filtered")
        outlet = self.outlets.get(product) or self._outlet(product, message)
        n_channels = data.shape[0] if sampled else data.size
        if n_channels != self._shapes[product]:
            self.skipped += 1
            return
        t = float(message["t"]) - self._offset
        if sampled:
            samples = data.T
            last = t + (samples.shape[0] - 1) / float(message["rate_hz"])
            outlet.push_chunk(np.ascontiguousarray(samples, dtype=np.float32), last)
            self.published[product] += samples.shape[0]
        else:
            outlet.push_sample(data.reshape(-1).astype(np.float32), t)
            self.published[product] += 1

    def run(self, stop: threading.Event | None = None, *, poll_s: float = 0.2) -> BridgeResult:
        """Publish until the subscription ends (or ``stop`` is set); then destroy outlets.

        Returns
        -------
        result : BridgeResult
            Close code, revocation reason and counts.
        """
        sub = self.subscription
        try:
            while not (stop is not None and stop.is_set()):
                message = sub.receive(timeout=poll_s)
                if message is None:
                    if sub.closed:
                        break
                    continue
                if self.on_message is not None:
                    self.on_message(message)
                kind = message.get("type")
                if kind == "data":
                    self.publish(message)
                elif kind == "gap":
                    self.gaps += int(message.get("dropped", 0))
        finally:
            self.destroy()
        revoked = sub.revoked
        return BridgeResult(sub.close_code, None if revoked is None else revoked.get("reason"),
                            dict(self.published), self.skipped, self.gaps)

    def destroy(self) -> None:
        """Destroy every outlet (they vanish from LSL resolution at once)."""
        while self.outlets:
            _, outlet = self.outlets.popitem()
            destroy_outlet(outlet)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()
        self.subscription.close()
