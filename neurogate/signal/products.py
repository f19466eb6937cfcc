"""Data products: what each one is, its finest resolution, and how it is computed.

Six products exist, named exactly:

``raw``
    The neural channels as received, in volts, shape (n_channels, n_times).
``filtered``
    The same after the stream's `FilterChain` (band-pass, notch, optional reference).
``band_power``
    Absolute power per channel and band in V**2, shape (n_channels, n_bands), from the
    filtered signal over a sliding window (Welch: Hann segments of ``segment_s`` with 50 %
    overlap, mean removed per segment, PSD summed over the band's bins times the bin
    width). Bands (`BANDS`) are half-open ``[low, high)`` in Hz; each is capped at the
    Nyquist frequency and dropped if it starts at or above it.
``focus_index``
    ``P_beta / (P_alpha + P_theta)``, one scalar per window, shape (1,).
``relaxation_index``
    ``P_alpha / (P_beta + P_theta)``, one scalar per window, shape (1,).
    In both indices ``P_b`` is band ``b``'s power averaged over all neural channels
    (global aggregation: a ratio of means, not a mean of ratios); an index is 0.0 when its
    denominator is 0 (a flat recording).
``signal_quality``
    Per channel, over the same window of the *unfiltered* signal, shape (n_channels, 6),
    columns `QUALITY_COLUMNS`: standard deviation (V); ``flat`` (1.0 if it is below
    ``flat_std_v``); the fraction of samples at the window's maximum or minimum value, or at
    the device rail; ``clipped`` (1.0 if that is at least ``clip_fraction`` and three samples,
    on a channel that is not flat); the ratio of power within 1 Hz of the line frequency to
    the power from 1 Hz to Nyquist; ``line_noise`` (1.0 if that ratio exceeds
    ``line_noise_threshold``).

The windowed products above are computed on the stream's own windows (2 s, every 0.5 s by
default). A purpose that asks for a longer window receives the mean of the stream's frames
across it (`ResolutionReducer`): overlapping windows averaged, a smoothing that hides when
within the window an event happened. The offline reference of ``neurogate bench leakage``
computes exactly that with MNE. Purposes that need no event timing use windows of 4 s or
more, which keeps an attacker telling stimulus-locked windows, or ``square`` from ``rt``
events, at chance on the shared recording (see ``docs/benchmarks.md``, Leakage).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy.signal import get_window

from ._checks import check_range
from .frames import ChannelLevel, Resolution

__all__ = [
    "BANDS",
    "PRODUCTS",
    "PRODUCT_NAMES",
    "QUALITY_COLUMNS",
    "ProductSpec",
    "QualityThresholds",
    "WelchEstimator",
    "band_edges",
    "focus_index",
    "relaxation_index",
    "signal_quality",
]

PRODUCT_NAMES = (
    "raw",
    "filtered",
    "band_power",
    "focus_index",
    "relaxation_index",
    "signal_quality",
)

#: Frequency bands in Hz, half-open ``[low, high)``.
BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}

_FFT_HAS_OUT = "out" in inspect.signature(np.fft.rfft).parameters

QUALITY_COLUMNS = ("std", "flat", "clipped_fraction", "clipped", "line_noise_ratio", "line_noise")


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """What a product is and the finest resolution it may be delivered at.

    Parameters
    ----------
    name : str
        One of `PRODUCT_NAMES`.
    description : str
        One sentence, shown to people deciding on consent.
    unit : str
        Unit of the values.
    sampled : bool
        ``True`` for sample products (one value per input sample), ``False`` for
        products computed over sliding windows.
    channels : {"electrodes", "regions", "global"}
        The finest channel level the product exists at.
    """

    name: str
    description: str
    unit: str
    sampled: bool
    channels: ChannelLevel

    def finest_resolution(self, *, sfreq: float, window_s: float, hop_s: float) -> Resolution:
        """Return the finest resolution of this product for a stream's settings.

        Parameters
        ----------
        sfreq : float
            Sampling frequency in Hz.
        window_s, hop_s : float
            The sliding window's length and hop in seconds.

        Returns
        -------
        resolution : Resolution
            ``(1 / sfreq, sfreq)`` for sample products, ``(window_s, 1 / hop_s)`` otherwise,
            at the product's channel level.
        """
        if self.sampled:
            return Resolution(1.0 / sfreq, sfreq, self.channels)
        return Resolution(window_s, 1.0 / hop_s, self.channels)


PRODUCTS: dict[str, ProductSpec] = {
    spec.name: spec
    for spec in (
        ProductSpec(
            name="raw",
            description="Unfiltered EEG samples of every electrode.",
            unit="V",
            sampled=True,
            channels="electrodes",
        ),
        ProductSpec(
            name="filtered",
            description="Band-pass and notch filtered EEG samples of every electrode.",
            unit="V",
            sampled=True,
            channels="electrodes",
        ),
        ProductSpec(
            name="band_power",
            description="Power in the delta, theta, alpha, beta and gamma bands per window.",
            unit="V**2",
            sampled=False,
            channels="electrodes",
        ),
        ProductSpec(
            name="focus_index",
            description="Beta / (alpha + theta) power over all electrodes, one number per window.",
            unit="1",
            sampled=False,
            channels="global",
        ),
        ProductSpec(
            name="relaxation_index",
            description="Alpha / (beta + theta) power over all electrodes, one number per window.",
            unit="1",
            sampled=False,
            channels="global",
        ),
        ProductSpec(
            name="signal_quality",
            description="Flat, clipped and line-noise checks per electrode and window.",
            unit="mixed",
            sampled=False,
            channels="electrodes",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    """Thresholds of the ``signal_quality`` product.

    Parameters
    ----------
    flat_std_v : float
        A channel whose standard deviation over the window is below this (volts) is flat.
    clip_fraction : float
        A channel with at least this fraction (and three) of its samples at the window's
        extreme values, or at the rail, is clipped.
    rail_v : float | None
        The amplifier's input range in volts, if known; samples with ``|x| >= rail_v``
        count as clipped.
    line_noise_threshold : float
        A channel whose line-noise ratio exceeds this has line noise.
    """

    flat_std_v: float = 0.5e-6
    clip_fraction: float = 0.01
    rail_v: float | None = None
    line_noise_threshold: float = 0.2

    def __post_init__(self) -> None:
        check_range("flat_std_v", self.flat_std_v, low=0.0, unit=" V")
        check_range("clip_fraction", self.clip_fraction, low=0.0, high=1.0, low_inclusive=False)
        if self.rail_v is not None:
            check_range("rail_v", self.rail_v, low=0.0, low_inclusive=False, unit=" V")
        check_range("line_noise_threshold", self.line_noise_threshold, low=0.0, high=1.0)


def band_edges(sfreq: float) -> dict[str, tuple[float, float]]:
    """Return `BANDS` capped below the Nyquist frequency of ``sfreq``.

    Parameters
    ----------
    sfreq : float
        Sampling frequency in Hz.

    Returns
    -------
    bands : dict of str to (float, float)
        Band name to ``[low, high)`` in Hz with ``high <= sfreq / 2``; bands whose low
        edge is at or above Nyquist are left out.
    """
    nyquist = sfreq / 2.0
    return {name: (lo, min(hi, nyquist)) for name, (lo, hi) in BANDS.items() if lo < nyquist}


class WelchEstimator:
    """Welch power spectral density of fixed-length windows, with precomputed tapers.

    Matches ``mne.time_frequency.psd_array_welch(x, sfreq, n_fft=n_per_seg,
    n_per_seg=n_per_seg, n_overlap=n_per_seg // 2, window='hann')`` (mean removed per
    segment, density scaling, one-sided).

    Parameters
    ----------
    sfreq : float
        Sampling frequency in Hz.
    n_window : int
        Samples per window.
    n_per_seg : int
        Samples per Welch segment (at most ``n_window``).
    """

    def __init__(self, sfreq: float, n_window: int, n_per_seg: int) -> None:
        self.sfreq, self.n_window, self.n_per_seg = float(sfreq), int(n_window), int(n_per_seg)
        self.step = self.n_per_seg - self.n_per_seg // 2
        self.n_segments = 1 + (self.n_window - self.n_per_seg) // self.step
        self.taper = get_window("hann", self.n_per_seg)
        self.freqs = np.fft.rfftfreq(self.n_per_seg, 1.0 / self.sfreq)
        scale = np.full(self.freqs.size, 2.0 / (self.sfreq * np.sum(self.taper**2)))
        scale[0] /= 2.0
        if self.n_per_seg % 2 == 0:
            scale[-1] /= 2.0
        self._scale = scale
        self.df = self.sfreq / self.n_per_seg
        self._buffers: dict[
            tuple[int, int],
            tuple[NDArray[np.float64], NDArray[np.complex128], NDArray[np.float64]],
        ] = {}

    def psd(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return the PSD of each row of ``x``.

        Parameters
        ----------
        x : ndarray, shape (n_channels, n_window)
            One window of signal in volts.

        Returns
        -------
        psd : ndarray, shape (n_channels, n_freqs)
            Power spectral density in V**2/Hz at `freqs`.
        """
        return self._periodograms(x, self.n_segments).mean(axis=1) * self._scale

    def segment_band_power(self, x: NDArray[np.float64], last: int,
                           masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Band power of each of the window's ``last`` segments on its own.

        The window's band power is the mean of its segments' (band power is linear in
        the PSD), so a stream whose windows overlap by whole segments computes each
        segment once and averages (``StreamPipeline``).

        Returns
        -------
        power : ndarray, shape (last, n_channels, n_bands)
            In V**2, oldest segment first.
        """
        periodograms = self._periodograms(x, last)
        power = periodograms * self._scale @ masks.T.astype(np.float64) * self.df
        return np.ascontiguousarray(power.transpose(1, 0, 2))

    def _periodograms(self, x: NDArray[np.float64], count: int) -> NDArray[np.float64]:
        """|FFT|**2 of the tapered, demeaned segments of ``x``, shape (n_channels, count,
        n_freqs), unscaled; computes only the last ``count`` segments (a view of the
        workspace: use before the next call)."""
        segs = sliding_window_view(x, self.n_per_seg, axis=-1)[:, :: self.step]
        segs = segs[:, self.n_segments - count : self.n_segments]
        work, spec, power = self._workspace(x.shape[0], count)
        np.subtract(segs, segs.mean(axis=-1, keepdims=True), out=work)
        work *= self.taper
        if _FFT_HAS_OUT:
            np.fft.rfft(work, axis=-1, out=spec)
        else:  # numpy < 2.0
            spec[...] = np.fft.rfft(work, axis=-1)
        np.square(spec.real, out=power)
        np.square(spec.imag, out=work[..., : power.shape[-1]])
        power += work[..., : power.shape[-1]]
        return power

    def _workspace(
        self, n_channels: int, count: int
    ) -> tuple[NDArray[np.float64], NDArray[np.complex128], NDArray[np.float64]]:
        # Reused buffers: fresh large temporaries cost more in page faults than the FFT.
        key = (n_channels, count)
        if key not in self._buffers:
            shape = (n_channels, count, self.n_per_seg)
            n_freqs = self.freqs.size
            self._buffers[key] = (
                np.empty(shape),
                np.empty((*shape[:2], n_freqs), dtype=np.complex128),
                np.empty((*shape[:2], n_freqs)),
            )
        return self._buffers[key]

    def mask(self, low: float, high: float) -> NDArray[np.bool_]:
        """Return which `freqs` lie in ``[low, high)`` Hz, shape (n_freqs,)."""
        return (self.freqs >= low) & (self.freqs < high)

    def band_power(self, psd: NDArray[np.float64], masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Integrate ``psd`` (n_channels, n_freqs) over band ``masks`` (n_bands, n_freqs).

        Returns
        -------
        power : ndarray, shape (n_channels, n_bands)
            Band power in V**2 (PSD summed over the band's bins times the bin width).
        """
        return (psd @ masks.T.astype(np.float64)) * self.df


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0.0 else 0.0


def focus_index(band_power: NDArray[np.float64], bands: tuple[str, ...]) -> float:
    """Return ``P_beta / (P_alpha + P_theta)`` with ``P`` averaged over channels.

    Parameters
    ----------
    band_power : ndarray, shape (n_channels, n_bands)
        Band power in V**2, columns named by ``bands``.
    bands : tuple of str
        Band names; must include theta, alpha and beta.

    Returns
    -------
    index : float
        Unitless; 0.0 if alpha and theta power are both 0.
    """
    mean = band_power.mean(axis=0)
    theta, alpha, beta = (mean[bands.index(b)] for b in ("theta", "alpha", "beta"))
    return _ratio(beta, alpha + theta)


def relaxation_index(band_power: NDArray[np.float64], bands: tuple[str, ...]) -> float:
    """Return ``P_alpha / (P_beta + P_theta)`` with ``P`` averaged over channels.

    Parameters
    ----------
    band_power : ndarray, shape (n_channels, n_bands)
        Band power in V**2, columns named by ``bands``.
    bands : tuple of str
        Band names; must include theta, alpha and beta.

    Returns
    -------
    index : float
        Unitless; 0.0 if beta and theta power are both 0.
    """
    mean = band_power.mean(axis=0)
    theta, alpha, beta = (mean[bands.index(b)] for b in ("theta", "alpha", "beta"))
    return _ratio(alpha, beta + theta)


def signal_quality(
    x: NDArray[np.float64],
    psd: NDArray[np.float64] | None,
    freqs: NDArray[np.float64] | None,
    *,
    line_freq: float,
    thresholds: QualityThresholds,
) -> NDArray[np.float64]:
    """Assess each channel of one window of unfiltered signal.

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_times)
        The window, in volts.
    psd : ndarray, shape (n_channels, n_freqs) | None
        Its power spectral density in V**2/Hz (e.g. `WelchEstimator.psd`); ``None`` to skip
        the line-noise check (its columns are then 0).
    freqs : ndarray, shape (n_freqs,) | None
        The frequencies of ``psd`` in Hz.
    line_freq : float
        Power-line frequency in Hz. If ``line_freq + 1`` is not below Nyquist, the
        line-noise columns are 0.
    thresholds : QualityThresholds
        The thresholds to flag channels with.

    Returns
    -------
    quality : ndarray, shape (n_channels, 6)
        Columns `QUALITY_COLUMNS`; the flags are 0.0 or 1.0.
    """
    n_channels, n_times = x.shape
    out = np.zeros((n_channels, len(QUALITY_COLUMNS)))
    std = x.std(axis=-1)
    flat = std < thresholds.flat_std_v
    at_extreme = (x == x.max(axis=-1, keepdims=True)) | (x == x.min(axis=-1, keepdims=True))
    if thresholds.rail_v is not None:
        at_extreme |= np.abs(x) >= thresholds.rail_v
    clipped_frac = np.count_nonzero(at_extreme, axis=-1) / n_times
    min_count = max(3, thresholds.clip_fraction * n_times)
    clipped = ~flat & (clipped_frac * n_times >= min_count)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = std, flat, clipped_frac, clipped
    if psd is not None and freqs is not None and line_freq + 1.0 < freqs[-1]:
        line = np.abs(freqs - line_freq) <= 1.0
        broad = freqs >= 1.0
        total = psd[:, broad].sum(axis=-1)
        ratio = np.divide(
            psd[:, line].sum(axis=-1), total, out=np.zeros(n_channels), where=total > 0
        )
        out[:, 4], out[:, 5] = ratio, ratio > thresholds.line_noise_threshold
    return out
