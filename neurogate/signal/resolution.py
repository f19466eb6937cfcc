"""Reduce products to a coarser resolution: fewer channels, longer windows, lower rates.

Channels are aggregated by averaging rows: electrodes -> scalp regions (by 10-20 name
prefix, see `region_of`) -> one global row. A windowed product's output rate is lowered
by keeping frames on a time grid, and its window lengthened by averaging consecutive
frames (for ``band_power`` this is Welch averaging over the longer span). A sample
product's (``raw``, ``filtered``) rate is lowered by an integer factor after a causal
anti-alias low-pass.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from neurogate.errors import ValidationError

from ._checks import check_option, read_only
from .filters import StreamingFilter
from .frames import CHANNEL_LEVELS, ChannelLevel, Frame, Resolution

__all__ = [
    "REGIONS",
    "ResolutionReducer",
    "aggregate_channels",
    "reduce_frame",
    "region_of",
]

#: Scalp regions, in the order aggregated rows appear.
REGIONS = ("frontal", "central", "parietal", "occipital", "temporal", "other")

# Two-letter prefixes first so that "FC3" is central and not frontal.
_PREFIX_REGIONS = (
    ("FP", "frontal"),
    ("AF", "frontal"),
    ("FC", "central"),
    ("FT", "temporal"),
    ("CP", "parietal"),
    ("TP", "temporal"),
    ("PO", "occipital"),
    ("F", "frontal"),
    ("C", "central"),
    ("P", "parietal"),
    ("O", "occipital"),
    ("T", "temporal"),
)
_SUFFIX = re.compile(r"(?:\d+|z)h?", re.IGNORECASE)
_DEVICE_PREFIX = re.compile(r"^(?:EEG)[\s_:-]*", re.IGNORECASE)
_SAMPLE_PRODUCTS = frozenset({"raw", "filtered"})


def region_of(ch_name: str) -> str:
    """Map a 10-20 / 10-10 electrode name to its scalp region.

    Fp/AF/F -> frontal, FC/C -> central, CP/P -> parietal, PO/O -> occipital,
    FT/T/TP -> temporal; the prefix must be followed by a number or ``z`` (and an optional
    ``h``), case-insensitively. A leading ``"EEG "`` and a reference suffix such as
    ``"-REF"`` are ignored (``"EEG Fp1-REF"`` is frontal). Anything else (``"A1"``,
    ``"Iz"``, ``"EEG 001"``) is ``"other"``.

    Parameters
    ----------
    ch_name : str
        The channel name.

    Returns
    -------
    region : str
        One of `REGIONS`.
    """
    name = _DEVICE_PREFIX.sub("", ch_name.strip()).split("-")[0].strip().upper()
    for prefix, region in _PREFIX_REGIONS:
        if name.startswith(prefix) and _SUFFIX.fullmatch(name[len(prefix) :]):
            return region
    return "other"


def aggregate_channels(
    data: NDArray[np.float64],
    labels: Sequence[str],
    channels: ChannelLevel,
    *,
    current: ChannelLevel = "electrodes",
) -> tuple[NDArray[np.float64], tuple[str, ...]]:
    """Average the rows of ``data`` to a coarser channel level.

    Parameters
    ----------
    data : ndarray, shape (n_rows, ...)
        Values whose first axis follows ``labels``.
    labels : sequence of str
        Row labels: electrode names (``current="electrodes"``) or region names.
    channels : {"electrodes", "regions", "global"}
        The level wanted; it may not be finer than ``current``.
    current : {"electrodes", "regions", "global"}
        The level of ``data``.

    Returns
    -------
    out : ndarray, shape (n_out, ...)
        Row means per region (regions in `REGIONS` order, only those present) or over
        all rows (``n_out = 1``, label ``"global"``); ``data`` itself if the levels match.
    out_labels : tuple of str
        The labels of ``out``'s rows.
    """
    check_option("channels", channels, CHANNEL_LEVELS)
    check_option("current", current, CHANNEL_LEVELS)
    labels = tuple(labels)
    if data.shape[0] != len(labels):
        msg = f"Got {len(labels)} labels for data with {data.shape[0]} rows (shape {data.shape})."
        raise ValidationError(msg, field="labels")
    wanted, have = CHANNEL_LEVELS.index(channels), CHANNEL_LEVELS.index(current)
    if wanted < have:
        msg = f"Cannot refine channels from {current!r} to {channels!r}: aggregation only coarsens."
        raise ValidationError(msg, field="channels")
    if wanted == have:
        return data, labels
    if channels == "global":
        return data.mean(axis=0, keepdims=True), ("global",)
    regions = [region_of(label) for label in labels]
    present = [r for r in REGIONS if r in regions]
    rows = [data[[r == region for r in regions]].mean(axis=0) for region in present]
    return np.stack(rows), tuple(present)


def reduce_frame(frame: Frame, channels: ChannelLevel) -> Frame:
    """Return ``frame`` with its channels aggregated to ``channels`` (time untouched).

    Parameters
    ----------
    frame : Frame
        A frame at its native resolution (or any finer one than ``channels``).
    channels : {"electrodes", "regions", "global"}
        The channel level wanted.

    Returns
    -------
    reduced : Frame
        A new read-only frame (or ``frame`` itself if nothing changes).
    """
    if channels == frame.resolution.channels:
        return frame
    data, labels = aggregate_channels(
        frame.data, frame.labels, channels, current=frame.resolution.channels
    )
    res = Resolution(frame.resolution.window_s, frame.resolution.output_rate_hz, channels)
    return Frame(frame.product, frame.t, read_only(data), labels, frame.columns, res)


class ResolutionReducer:
    """Reduce one product's frames, as they stream, to a coarser resolution.

    Make one per (product, target resolution) and feed it every frame of that product, in
    order. It keeps the state needed across batches (frames to average, the output time
    grid, the anti-alias filter state).

    Parameters
    ----------
    product : str
        The product's name; ``"raw"`` and ``"filtered"`` are sample products.
    native : Resolution
        The resolution frames arrive at (the product's finest, from
        `StreamPipeline.resolutions`).
    target : Resolution
        The resolution wanted; it must be as coarse or coarser than ``native``. For a
        sample product ``native.output_rate_hz / target.output_rate_hz`` must be an
        integer and ``target.window_s`` is not used (a sample's window is its period).

    Attributes
    ----------
    effective : Resolution
        The resolution output frames have: the target, with the window rounded to a whole
        number of native hops.
    """

    def __init__(self, product: str, native: Resolution, target: Resolution) -> None:
        if not target.is_coarser_or_equal(native):
            msg = (
                f"The resolution {target} is finer than the finest resolution at which "
                f"{product!r} may be delivered, {native}. Ask for a window of at least "
                f"{native.window_s:g} s, at most {native.output_rate_hz:g} outputs/s and "
                f"channels at {native.channels!r} level or coarser."
            )
            raise ValidationError(msg, field="resolution")
        self.product, self.native, self.target = product, native, target
        self._sampled = product in _SAMPLE_PRODUCTS
        self._lowpass: StreamingFilter | None = None
        self._count = 0
        if self._sampled:
            ratio = native.output_rate_hz / target.output_rate_hz
            self._q = round(ratio)
            if abs(ratio - self._q) > 1e-6 * ratio:
                rates = ", ".join(f"{native.output_rate_hz / k:g}" for k in range(1, 6))
                msg = (
                    f"The output rate of {product!r} can only be lowered by an integer "
                    f"factor from {native.output_rate_hz:g} Hz (allowed: {rates}, ... Hz), "
                    f"but got output_rate_hz={target.output_rate_hz:g}."
                )
                raise ValidationError(msg, field="output_rate_hz")
            rate = native.output_rate_hz / self._q
            self.effective = Resolution(1.0 / rate, rate, target.channels)
        else:
            hop = 1.0 / native.output_rate_hz
            self._m = 1 + round((target.window_s - native.window_s) / hop)
            window = native.window_s + (self._m - 1) * hop
            self.effective = Resolution(window, target.output_rate_hz, target.channels)
            self._recent: deque[Frame] = deque(maxlen=self._m)
            self._period = 1.0 / target.output_rate_hz
            self._next_t = -math.inf

    def __repr__(self) -> str:
        return f"<ResolutionReducer {self.product!r} {self.native} -> {self.effective}>"

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        """Reduce the next frames of the product.

        Parameters
        ----------
        frames : sequence of Frame
            Consecutive frames at the native resolution (e.g. ``batch[product]``).

        Returns
        -------
        reduced : list of Frame
            Frames at `effective` resolution; possibly fewer than given, or none.
        """
        out: list[Frame] = []
        for frame in frames:
            reduced = reduce_frame(frame, self.target.channels)
            item = self._sample(reduced) if self._sampled else self._window(reduced)
            if item is not None:
                out.append(item)
        return out

    def _sample(self, frame: Frame) -> Frame | None:
        data = frame.data
        if self._q > 1:
            if self._lowpass is None:
                h_freq = 0.4 * self.effective.output_rate_hz  # 80% of the new Nyquist
                self._lowpass = StreamingFilter.lowpass(
                    self.native.output_rate_hz, data.shape[0], h_freq=h_freq
                )
            data = self._lowpass.apply(np.ascontiguousarray(data, dtype=np.float64))
        n_times = data.shape[-1]
        first = (-self._count) % self._q
        self._count += n_times
        if first >= n_times:
            return None
        kept = read_only(np.ascontiguousarray(data[:, first :: self._q]))
        t = frame.t + first / self.native.output_rate_hz
        return Frame(frame.product, t, kept, frame.labels, frame.columns, self.effective)

    def _window(self, frame: Frame) -> Frame | None:
        self._recent.append(frame)
        if len(self._recent) < self._m:
            return None
        tol = 1e-6 * self._period
        if frame.t < self._next_t - tol:
            return None
        self._next_t += self._period
        if self._next_t <= frame.t + tol:  # first frame, or a gap in the stream
            self._next_t = frame.t + self._period
        first = self._recent[0]
        if self._m == 1:
            data = frame.data
        else:
            data = read_only(np.mean([f.data for f in self._recent], axis=0))
        return Frame(frame.product, first.t, data, frame.labels, frame.columns, self.effective)
