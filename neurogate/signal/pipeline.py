"""The per-stream pipeline: filter once, compute every product once, per chunk."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from neurogate.errors import SignalError, ValidationError

from ._checks import NEURAL_TYPES, check_chunk, check_range, read_only
from .filters import ChunkStep, FilterChain, Reference, StreamingFilter
from .frames import Frame
from .products import (
    PRODUCT_NAMES,
    PRODUCTS,
    QUALITY_COLUMNS,
    QualityThresholds,
    WelchEstimator,
    band_edges,
    focus_index,
    relaxation_index,
    signal_quality,
)

__all__ = ["ProductBatch", "StreamPipeline"]

_MIN_SFREQ = 64.0  # Nyquist must exceed the top of the beta band (30 Hz) with margin
_POWER_PRODUCTS = frozenset({"band_power", "focus_index", "relaxation_index"})


@dataclass(frozen=True, slots=True)
class ProductBatch(Mapping[str, list[Frame]]):
    """The frames one `StreamPipeline.push` produced, by product name.

    Every name in `PRODUCT_NAMES` is a key; windowed products have an empty list when no
    window ended in the chunk.

    Parameters
    ----------
    t0 : float
        Time in seconds of the chunk's first sample.
    n_times : int
        Samples in the chunk.
    frames : dict of str to list of Frame
        Frames per product, oldest first.
    """

    t0: float
    n_times: int
    frames: dict[str, list[Frame]]

    def __getitem__(self, name: str) -> list[Frame]:
        return self.frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.frames)

    def __len__(self) -> int:
        return len(self.frames)


class _Ring:
    """The last ``n`` samples of ``n_rows`` rows, in a bounded ring of a given dtype.

    `window` copies them, oldest first, into a scratch buffer shared by the rings of one
    thread with the same shape (a window is read, used and dropped before the next read).
    """

    def __init__(self, n_rows: int, n: int, dtype: type[np.floating] = np.float64) -> None:
        self.n = n
        self.buf = np.zeros((n_rows, n), dtype=dtype)
        self.pos = 0

    def write(self, x: NDArray[np.float64]) -> None:
        n, k = self.n, x.shape[-1]
        if k >= n:
            x, k = x[:, -n:], n
        p = self.pos
        first = min(k, n - p)
        self.buf[:, p : p + first] = x[:, :first]
        if k > first:
            self.buf[:, : k - first] = x[:, first:]
        self.pos = (p + k) % n

    def window(self) -> NDArray[np.float64]:
        """The last ``n`` samples, oldest first, as float64 (scratch: use before the next
        `window` call of this thread, copy to keep)."""
        out = _scratch(self.buf.shape)
        tail = self.n - self.pos
        out[:, :tail] = self.buf[:, self.pos :]
        out[:, tail:] = self.buf[:, : self.pos]
        return out


_local = threading.local()


def _scratch(shape: tuple[int, ...]) -> NDArray[np.float64]:
    """A float64 buffer of ``shape`` reused by every pipeline of this thread."""
    cache: dict[tuple[int, ...], NDArray[np.float64]] = _local.__dict__.setdefault("scratch", {})
    if shape not in cache:
        cache[shape] = np.empty(shape)
    return cache[shape]


def _welch(sfreq: float, n_window: int, n_per_seg: int, n_channels: int) -> WelchEstimator:
    """One Welch estimator (and workspace) per layout and thread, shared by its pipelines."""
    cache: dict[tuple[float, int, int, int], WelchEstimator] = _local.__dict__.setdefault(
        "welch", {}
    )
    key = (sfreq, n_window, n_per_seg, n_channels)
    if key not in cache:
        cache[key] = WelchEstimator(sfreq, n_window, n_per_seg)
    return cache[key]


class StreamPipeline:
    """Filters and products for one device stream, each computed once per chunk.

    Only neural channels (types ``eeg``, ``seeg``, ``ecog``, ``dbs``) go into products;
    others (``stim``, ``eog``, ``misc``, ...) are checked and dropped. Filters are
    designed once here, with MNE; `push` calls no MNE code.

    Parameters
    ----------
    ch_names : sequence of str
        Channel names, one per row of every chunk, unique.
    ch_types : sequence of str
        MNE channel types, one per channel.
    sfreq : float
        Sampling frequency in Hz (at least 64).
    line_freq : float
        Power-line frequency in Hz (50 or 60), notched and checked by ``signal_quality``.
    l_freq, h_freq : float
        Band-pass edges in Hz (``h_freq`` is lowered to 90 % of Nyquist if needed).
    filter_order : int
        Butterworth order of each band-pass edge.
    notch_width : float
        Width of the notch's stop band in Hz.
    reference : None | "average" | str | sequence of str
        Re-reference for ``filtered`` (and products made from it): ``None`` keeps the
        device's reference.
    window_s : float
        Sliding window of the windowed products in seconds (at least 1).
    hop_s : float
        Time between windowed outputs in seconds.
    segment_s : float
        Welch segment length in seconds (at least 1, at most ``window_s``).
    window_phase : float
        Fraction of a hop, at least 0 and below 1, by which every window ends later: the
        windows end ``window_s + window_phase * hop_s + k * hop_s`` after the first sample
        (rounded to samples). A gateway gives each stream its own phase, so that streams
        started together do not all compute their windows in the same instant.
    quality : QualityThresholds
        Thresholds of ``signal_quality``.
    max_abs_v : float
        Largest plausible magnitude in volts; larger values mean the chunk is not in volts.

    Attributes
    ----------
    labels : tuple of str
        Names of the neural channels, the rows of electrode-level frames.
    bands : tuple of str
        The ``band_power`` columns.
    resolutions : dict of str to Resolution
        The finest resolution of each product for this stream.
    notes : dict of str to str
        Why a filter was skipped or adjusted, by filter name.
    """

    def __init__(
        self,
        ch_names: Sequence[str],
        ch_types: Sequence[str],
        sfreq: float,
        line_freq: float = 50.0,
        *,
        l_freq: float = 1.0,
        h_freq: float = 40.0,
        filter_order: int = 4,
        notch_width: float = 4.0,
        reference: str | Sequence[str] | None = None,
        window_s: float = 2.0,
        hop_s: float = 0.5,
        segment_s: float = 1.0,
        window_phase: float = 0.0,
        quality: QualityThresholds | None = None,
        max_abs_v: float = 1.0,
    ) -> None:
        self.ch_names = tuple(str(name) for name in ch_names)
        self.ch_types = tuple(str(kind) for kind in ch_types)
        if len(self.ch_types) != len(self.ch_names):
            msg = (
                f"Got {len(self.ch_names)} channel names but {len(self.ch_types)} channel "
                "types; give one type per channel."
            )
            raise ValidationError(msg, field="ch_types")
        dupes = sorted({n for n in self.ch_names if self.ch_names.count(n) > 1})
        if dupes:
            msg = f"Channel names must be unique, but {dupes!r} appear more than once."
            raise ValidationError(msg, field="ch_names")
        self.n_channels = len(self.ch_names)
        self._neural = np.array([k in NEURAL_TYPES for k in self.ch_types], dtype=bool)
        if not self._neural.any():
            msg = (
                f"The stream needs at least one neural channel (types {list(NEURAL_TYPES)}), "
                f"but got types {sorted(set(self.ch_types))}."
            )
            raise ValidationError(msg, field="ch_types")
        self._all_neural = bool(self._neural.all())
        self._neural_idx = np.flatnonzero(self._neural)
        self.labels = tuple(n for n, keep in zip(self.ch_names, self._neural, strict=True) if keep)
        self.sfreq = check_range("sfreq", sfreq, low=_MIN_SFREQ, unit=" Hz")
        self.line_freq = check_range("line_freq", line_freq, low=0.0, low_inclusive=False)
        window_s = check_range("window_s", window_s, low=1.0, unit=" s")
        hop_s = check_range("hop_s", hop_s, low=1.0 / self.sfreq, unit=" s")
        segment_s = check_range("segment_s", segment_s, low=1.0, high=window_s, unit=" s")
        window_phase = check_range("window_phase", window_phase, low=0.0, high=1.0,
                                   high_inclusive=False)
        self.max_abs_v = check_range("max_abs_v", max_abs_v, low=0.0, low_inclusive=False)
        self.quality = quality if quality is not None else QualityThresholds()

        n = len(self.labels)
        steps: list[ChunkStep] = []
        if reference is not None:
            steps.append(Reference(self.labels, reference))
        steps.append(
            StreamingFilter.bandpass(
                self.sfreq, n, l_freq=l_freq, h_freq=h_freq, order=filter_order
            )
        )
        steps.append(
            StreamingFilter.notch(self.sfreq, n, line_freq=self.line_freq, width=notch_width)
        )
        self.chain = FilterChain(steps)
        self.notes = {
            s.name: note
            for s in self.chain.steps
            if isinstance(s, StreamingFilter)
            for note in (s.skipped_reason, s.adjustment)
            if note is not None
        }

        self._n_window = round(window_s * self.sfreq)
        self._n_hop = round(hop_s * self.sfreq)
        self._n_seg = round(segment_s * self.sfreq)
        self._n_first = self._n_window + int(window_phase * self._n_hop)
        edges = band_edges(self.sfreq)
        self.bands = tuple(edges)
        self._masks = np.array([self._welch.mask(lo, hi) for lo, hi in edges.values()])
        self.resolutions = {
            name: PRODUCTS[name].finest_resolution(
                sfreq=self.sfreq,
                window_s=self._n_window / self.sfreq,
                hop_s=self._n_hop / self.sfreq,
            )
            for name in PRODUCT_NAMES
        }
        self._raw_ring = _Ring(n, self._n_window, np.float32)  # raw came as float32
        self._filt_ring = _Ring(n, self._n_window)
        self._until_emit = self._n_first
        self._reset_segments()

    def _reset_segments(self) -> None:
        # Band power of each Welch segment of the filtered signal, by the index of the
        # segment's first sample in the stream: consecutive windows share all but their
        # last segments (2 s windows, 1 s segments, 0.5 s hop: 2 of 3), and each is
        # computed once.
        self._written = 0  # filtered samples written to the ring since the start
        self._segment_power: dict[int, NDArray[np.float64]] = {}

    @property
    def _welch(self) -> WelchEstimator:
        return _welch(self.sfreq, self._n_window, self._n_seg, len(self.labels))

    def __repr__(self) -> str:
        return (
            f"<StreamPipeline | {len(self.labels)} neural of {self.n_channels} channels, "
            f"{self.sfreq:g} Hz, line {self.line_freq:g} Hz>"
        )

    def reset(self) -> None:
        """Forget filter states and buffered windows, as for a new stream."""
        self.chain.reset()
        self._raw_ring = _Ring(len(self.labels), self._n_window, np.float32)
        self._filt_ring = _Ring(len(self.labels), self._n_window)
        self._until_emit = self._n_first
        self._reset_segments()

    def push(
        self, chunk: NDArray[np.generic], t0: float, products: Collection[str] | None = None
    ) -> ProductBatch:
        """Process the next chunk of the stream and return every product's new frames.

        Parameters
        ----------
        chunk : ndarray, shape (n_channels, n_times)
            The next samples of all channels, in volts, real numeric dtype, finite.
        t0 : float
            Time in seconds of the chunk's first sample.
        products : collection of str | None
            The products someone takes (``None``: all). The filters and the windows always
            advance, so a product taken later continues the stream exactly; windowed
            products nobody takes are not computed (their lists stay empty).

        Returns
        -------
        batch : ProductBatch
            One ``raw`` and one ``filtered`` frame covering the chunk, and a
            ``band_power``, ``focus_index``, ``relaxation_index`` and ``signal_quality``
            frame for each window that ended in the chunk (of those in ``products``).

        Raises
        ------
        SignalError
            If the chunk has the wrong type, dtype, shape or channel count, holds NaN or
            inf, or has magnitudes above ``max_abs_v`` (not in volts).
        """
        t0 = check_range("t0", t0, unit=" s")
        data = check_chunk(chunk, self.n_channels, ch_names=self.ch_names)
        return self.push_checked(data, t0, products)

    def push_checked(
        self, data: NDArray[np.float64], t0: float, products: Collection[str] | None = None
    ) -> ProductBatch:
        """`push` for a chunk its caller has already checked (the gateway checks each
        frame as it decodes it): the same result, without a second copy and scan.

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times), dtype float64
            The next samples, in volts, all finite, in an array the pipeline may keep.
        t0 : float
            Time in seconds of the chunk's first sample, finite.
        products : collection of str | None
            As for `push`.

        Returns
        -------
        batch : ProductBatch
            As for `push`.

        Raises
        ------
        SignalError
            If the chunk has magnitudes above ``max_abs_v`` (not in volts).
        """
        neural = data if self._all_neural else data[self._neural_idx]
        n_times = neural.shape[-1]
        if n_times and np.abs(neural).max() > self.max_abs_v:
            peak = np.abs(neural).max(axis=-1)
            row = int(np.argmax(peak))
            msg = (
                f"The chunk holds |value| {peak[row]:.4g} on channel "
                f"{self.labels[row]!r}, above max_abs_v={self.max_abs_v:g} V. Samples "
                "must be in volts (MNE convention); multiply microvolts by 1e-6."
            )
            raise SignalError(msg, field="chunk")
        raw = read_only(neural)
        filtered = read_only(self.chain.apply(neural))
        res = self.resolutions
        frames: dict[str, list[Frame]] = {name: [] for name in PRODUCT_NAMES}
        frames["raw"].append(Frame("raw", t0, raw, self.labels, (), res["raw"]))
        frames["filtered"].append(Frame("filtered", t0, filtered, self.labels, (), res["filtered"]))
        start = 0
        while start < n_times:
            take = min(n_times - start, self._until_emit)
            self._raw_ring.write(raw[:, start : start + take])
            self._filt_ring.write(filtered[:, start : start + take])
            self._written += take
            start += take
            self._until_emit -= take
            if self._until_emit == 0:
                self._until_emit = self._n_hop
                self._emit(frames, t0 + (start - self._n_window) / self.sfreq, products)
        return ProductBatch(t0, n_times, frames)

    def _emit(
        self, frames: dict[str, list[Frame]], t: float, products: Collection[str] | None
    ) -> None:
        res, labels = self.resolutions, self.labels
        if products is not None and not _POWER_PRODUCTS.intersection(products):
            if "signal_quality" in products:
                self._emit_quality(frames, t)
            return
        power = self._window_band_power()
        frames["band_power"].append(
            Frame("band_power", t, read_only(power), labels, self.bands, res["band_power"])
        )
        for name, func in (("focus_index", focus_index), ("relaxation_index", relaxation_index)):
            value = read_only(np.array([func(power, self.bands)]))
            frames[name].append(Frame(name, t, value, ("global",), (), res[name]))
        if products is None or "signal_quality" in products:
            self._emit_quality(frames, t)

    def _window_band_power(self) -> NDArray[np.float64]:
        """Band power of the current window: the mean of its segments' band powers."""
        welch = self._welch
        first = self._written - self._n_window
        starts = [first + k * welch.step for k in range(welch.n_segments)]
        known = self._segment_power
        missing = sum(1 for start in starts if start not in known)
        if missing and any(start in known for start in starts[-missing:]):
            missing = len(starts)  # not a run of new segments at the end: do them all
        if missing:
            computed = welch.segment_band_power(self._filt_ring.window(), missing, self._masks)
            for start, power in zip(starts[-missing:], computed, strict=True):
                known[start] = power
        for start in [s for s in known if s < first]:
            del known[start]
        return np.mean([known[start] for start in starts], axis=0)

    def _emit_quality(self, frames: dict[str, list[Frame]], t: float) -> None:
        res, labels = self.resolutions, self.labels
        raw_window = self._raw_ring.window()
        quality = signal_quality(
            raw_window,
            self._welch.psd(raw_window),
            self._welch.freqs,
            line_freq=self.line_freq,
            thresholds=self.quality,
        )
        frames["signal_quality"].append(
            Frame(
                "signal_quality",
                t,
                read_only(quality),
                labels,
                QUALITY_COLUMNS,
                res["signal_quality"],
            )
        )
