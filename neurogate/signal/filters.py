"""Causal streaming filters designed with MNE and applied chunk by chunk.

Every filter here is a causal IIR filter in second-order sections (SOS), designed once with
:func:`mne.filter.create_filter` (``method='iir'``, Butterworth, ``output='sos'``,
``phase='forward'``) and applied with :func:`scipy.signal.sosfilt`, carrying the filter
state ``zi`` from one chunk to the next.

A filter starts from the steady state for its first sample (``scipy.signal.sosfilt_zi``
scaled by that sample, per channel, as MNE-LSL does), as if the signal had held that value
forever: a stream with a large DC offset then has no start-up transient. Streaming a
recording through a filter in chunks of any sizes therefore gives the same output (to
rounding) as `filter_offline`: ``sosfilt(sos, data, axis=-1, zi=...)`` over the whole
recording from that same start. For a filter that blocks DC (a band-pass), this equals
``mne.filter.filter_data(data - data[:, :1], ..., method='iir', phase='forward')``.

All filters are linear and act on each channel separately, and re-referencing is a linear
combination of channels at one instant, so a `Reference` may sit anywhere in a
`FilterChain` with the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from scipy import signal as sp_signal

from neurogate.errors import ValidationError

from ._checks import check_chunk, check_range
from ._design import centred_stop_band, design_iir_sos
from .reference import Reference

__all__ = [
    "ChunkStep",
    "FilterChain",
    "Reference",
    "StreamingFilter",
    "design_iir_sos",
    "filter_offline",
    "steady_state",
]

try:  # the compiled cascade behind sosfilt, without its per-call argument handling
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_inplace
except ImportError:  # pragma: no cover - a SciPy that moved it: use the public path
    _sosfilt_inplace = None


def steady_state(sos: NDArray[np.float64], first: NDArray[np.float64]) -> NDArray[np.float64]:
    """The filter state of a signal that held ``first`` forever.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
        Second-order sections.
    first : ndarray, shape (n_channels,)
        The first sample of each channel.

    Returns
    -------
    zi : ndarray, shape (n_sections, n_channels, 2)
        ``sosfilt_zi(sos)`` scaled by each channel's first sample, for
        ``sosfilt(sos, data, axis=-1, zi=zi)``.
    """
    unit = sp_signal.sosfilt_zi(sos)  # shape (n_sections, 2)
    return unit[:, None, :] * np.asarray(first, dtype=np.float64)[None, :, None]


def filter_offline(sos: NDArray[np.float64], data: NDArray[np.float64]) -> NDArray[np.float64]:
    """Filter a whole recording at once, from the steady state for its first sample.

    This is what a `StreamingFilter` (or a `FilterChain` of filters, with ``chain.sos``)
    streams chunk by chunk.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
        Second-order sections.
    data : ndarray, shape (n_channels, n_times)
        The recording.

    Returns
    -------
    out : ndarray, shape (n_channels, n_times)
        The causally filtered recording.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.shape[-1] == 0 or len(sos) == 0:
        return data
    out, _ = sp_signal.sosfilt(sos, data, axis=-1, zi=steady_state(sos, data[:, 0]))
    return np.asarray(out, dtype=np.float64)

#: Fraction of the Nyquist frequency the upper band-pass edge may reach.
_MAX_EDGE_OF_NYQUIST = 0.9


@runtime_checkable
class ChunkStep(Protocol):
    """One step of a `FilterChain`: a stateful map from chunk to chunk."""

    name: str
    n_channels: int

    def apply(self, data: NDArray[np.float64]) -> NDArray[np.float64]:
        """Process a checked float64 chunk, shape (n_channels, n_times)."""
        ...

    def reset(self) -> None:
        """Forget the state carried across chunks."""
        ...


class StreamingFilter:
    """A causal SOS filter whose state carries across chunks.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6) | None
        Second-order sections (e.g. from `design_iir_sos`). ``None`` makes a pass-through
        filter; give ``skipped_reason`` to say why.
    n_channels : int
        Number of channels (rows) of every chunk.
    name : str
        Short name shown in `FilterChain.skipped` and logs.
    skipped_reason : str | None
        Why the filter does nothing, if ``sos`` is ``None``.
    adjustment : str | None
        A note on how the requested design was changed (e.g. an edge lowered below Nyquist).

    Attributes
    ----------
    zi : ndarray, shape (n_sections, n_channels, 2)
        The filter state after the last chunk (zeros before the first, which sets it to
        the steady state for its first sample).
    started : bool
        Whether a chunk has set the state since construction or `reset`.
    l_freq, h_freq : float | None
        The design's edges in Hz, when made by a constructor method.
    """

    def __init__(
        self,
        sos: NDArray[np.float64] | None,
        n_channels: int,
        *,
        name: str = "filter",
        skipped_reason: str | None = None,
        adjustment: str | None = None,
    ) -> None:
        n_channels = int(check_range("n_channels", n_channels, low=1))
        if sos is not None:
            sos = np.ascontiguousarray(sos, dtype=np.float64)
            if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
                msg = (
                    "The 'sos' parameter must have shape (n_sections, 6), but got shape "
                    f"{sos.shape}."
                )
                raise ValidationError(msg, field="sos")
        elif skipped_reason is None:
            skipped_reason = "No coefficients were given (sos=None)."
        self.sos = sos
        self.n_channels = n_channels
        self.name = name
        self.skipped_reason = None if sos is not None else skipped_reason
        self.adjustment = adjustment
        self.l_freq: float | None = None
        self.h_freq: float | None = None
        n_sections = 0 if sos is None else sos.shape[0]
        # Kept as (n_channels, n_sections, 2), the compiled cascade's layout; `zi` is the
        # (n_sections, n_channels, 2) view SciPy's sosfilt uses.
        self._state = np.zeros((n_channels, n_sections, 2))
        self._unit = None if sos is None else sp_signal.sosfilt_zi(sos)
        self.started = False

    @property
    def zi(self) -> NDArray[np.float64]:
        """The state as ``sosfilt``'s ``zi``, shape (n_sections, n_channels, 2) (a view)."""
        return self._state.transpose(1, 0, 2)

    @zi.setter
    def zi(self, value: NDArray[np.float64]) -> None:
        self._state = value.transpose(1, 0, 2)

    def __repr__(self) -> str:
        state = "skipped" if self.sos is None else f"{self.sos.shape[0]} sections"
        return f"<StreamingFilter {self.name!r} | {self.n_channels} channels, {state}>"

    @property
    def active(self) -> bool:
        """Whether the filter changes the data (``False`` when skipped)."""
        return self.sos is not None

    @classmethod
    def bandpass(
        cls,
        sfreq: float,
        n_channels: int,
        *,
        l_freq: float = 1.0,
        h_freq: float = 40.0,
        order: int = 4,
    ) -> StreamingFilter:
        """Make a causal Butterworth band-pass filter.

        An ``h_freq`` above 90 % of the Nyquist frequency is lowered to it (see
        ``adjustment``). The effective order is ``2 * order`` (two edges).

        Parameters
        ----------
        sfreq : float
            Sampling frequency in Hz.
        n_channels : int
            Number of channels.
        l_freq, h_freq : float
            Pass-band edges in Hz (-3 dB points).
        order : int
            Butterworth order per edge.

        Returns
        -------
        filt : StreamingFilter
            The band-pass filter, named ``"bandpass"``.
        """
        sfreq = check_range("sfreq", sfreq, low=0.0, low_inclusive=False, unit=" Hz")
        nyquist = sfreq / 2.0
        l_freq = check_range("l_freq", l_freq, low=0.0, low_inclusive=False, unit=" Hz")
        h_freq = check_range("h_freq", h_freq, low=0.0, low_inclusive=False, unit=" Hz")
        adjustment = None
        h_max = _MAX_EDGE_OF_NYQUIST * nyquist
        if h_freq > h_max:
            adjustment = (
                f"h_freq lowered from {h_freq:g} Hz to {h_max:g} Hz (90% of the Nyquist "
                f"frequency {nyquist:g} Hz at sfreq={sfreq:g} Hz)."
            )
            h_freq = h_max
        if l_freq >= h_freq:
            msg = (
                f"The band-pass needs l_freq < h_freq, but got l_freq={l_freq:g} Hz and "
                f"h_freq={h_freq:g} Hz (after capping below Nyquist {nyquist:g} Hz)."
            )
            raise ValidationError(msg, field="l_freq")
        sos = design_iir_sos(sfreq, l_freq, h_freq, order=order)
        filt = cls(sos, n_channels, name="bandpass", adjustment=adjustment)
        filt.l_freq, filt.h_freq = l_freq, h_freq
        return filt

    @classmethod
    def notch(
        cls,
        sfreq: float,
        n_channels: int,
        *,
        line_freq: float = 50.0,
        width: float = 4.0,
        order: int = 2,
    ) -> StreamingFilter:
        """Make a causal Butterworth band-stop filter at the power-line frequency.

        The stop band is ``width`` Hz wide (between its -3 dB points), its edges placed so
        that the null falls exactly on ``line_freq`` (symmetric in the bilinear transform's
        warped frequency; a band centred in Hz would put the null up to 0.5 Hz off near
        Nyquist). If that band does not fit below the Nyquist frequency the filter is
        skipped: it passes data through unchanged and ``skipped_reason`` says why.

        Parameters
        ----------
        sfreq : float
            Sampling frequency in Hz.
        n_channels : int
            Number of channels.
        line_freq : float
            Power-line frequency in Hz (50 or 60).
        width : float
            Width of the stop band in Hz (-3 dB points).
        order : int
            Butterworth order per edge.

        Returns
        -------
        filt : StreamingFilter
            The notch filter, named ``"notch"``.
        """
        sfreq = check_range("sfreq", sfreq, low=0.0, low_inclusive=False, unit=" Hz")
        line_freq = check_range("line_freq", line_freq, low=0.0, low_inclusive=False, unit=" Hz")
        width = check_range("width", width, low=0.0, low_inclusive=False, unit=" Hz")
        if width >= line_freq:
            msg = f"The notch 'width' ({width:g} Hz) must be below line_freq ({line_freq:g} Hz)."
            raise ValidationError(msg, field="width")
        nyquist = sfreq / 2.0
        band = centred_stop_band(sfreq, line_freq, width)
        if band is None:
            low, high = line_freq - width / 2.0, line_freq + width / 2.0
            reason = (
                f"Notch at {line_freq:g} Hz skipped: a {width:g} Hz wide stop band around it "
                f"does not fit below the Nyquist frequency {nyquist:g} Hz at sfreq={sfreq:g} Hz."
            )
            filt = cls(None, n_channels, name="notch", skipped_reason=reason)
        else:
            low, high = band
            # MNE's convention: l_freq > h_freq designs a band-stop filter.
            sos = design_iir_sos(sfreq, high, low, order=order)
            filt = cls(sos, n_channels, name="notch")
        filt.l_freq, filt.h_freq = low, high
        return filt

    @classmethod
    def lowpass(
        cls, sfreq: float, n_channels: int, *, h_freq: float, order: int = 8
    ) -> StreamingFilter:
        """Make a causal Butterworth low-pass filter (e.g. an anti-alias filter).

        Parameters
        ----------
        sfreq : float
            Sampling frequency in Hz.
        n_channels : int
            Number of channels.
        h_freq : float
            Cut-off in Hz (-3 dB point), below the Nyquist frequency.
        order : int
            Butterworth order.

        Returns
        -------
        filt : StreamingFilter
            The low-pass filter, named ``"lowpass"``.
        """
        sfreq = check_range("sfreq", sfreq, low=0.0, low_inclusive=False, unit=" Hz")
        h_freq = check_range(
            "h_freq", h_freq, low=0.0, high=sfreq / 2.0, low_inclusive=False, unit=" Hz"
        )
        filt = cls(design_iir_sos(sfreq, None, h_freq, order=order), n_channels, name="lowpass")
        filt.h_freq = h_freq
        return filt

    def process(self, chunk: NDArray[np.generic]) -> NDArray[np.float64]:
        """Filter one chunk, continuing from the previous one.

        Parameters
        ----------
        chunk : ndarray, shape (n_channels, n_times)
            Samples in any real numeric dtype (volts for EEG).

        Returns
        -------
        out : ndarray, shape (n_channels, n_times), dtype float64
            The filtered chunk, in the input's units.
        """
        return self.apply(check_chunk(chunk, self.n_channels))

    def apply(self, data: NDArray[np.float64]) -> NDArray[np.float64]:
        """Filter a chunk already checked by the caller (float64, right shape, finite).

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times), dtype float64
            The chunk; it is not modified.

        Returns
        -------
        out : ndarray, shape (n_channels, n_times), dtype float64
            The filtered chunk (``data`` itself when the filter is skipped).
        """
        if self.sos is None or data.shape[-1] == 0:
            return data
        if not self.started:
            assert self._unit is not None
            self._state[...] = data[:, 0, None, None] * self._unit[None]
            self.started = True
        if _sosfilt_inplace is not None and self._state.flags.c_contiguous:
            out = np.array(data, dtype=np.float64, order="C")  # filtered in place
            _sosfilt_inplace(self.sos, out, self._state)
            return out
        out, zf = sp_signal.sosfilt(self.sos, data, axis=-1, zi=self.zi)
        self.zi[...] = zf  # in place: a FilterChain may share this state
        return np.asarray(out, dtype=np.float64)

    def reset(self) -> None:
        """Forget the state: the next chunk starts from the steady state for its first
        sample, as the first chunk did."""
        self._state[...] = 0.0
        self.started = False


def _fuse(steps: Sequence[ChunkStep]) -> tuple[ChunkStep, ...]:
    """Merge runs of consecutive filters into one filter, for one ``sosfilt`` call per run.

    Cascading second-order sections is what ``sosfilt`` does inside one call, so the output
    is the same; each original filter's ``zi`` becomes a view of the merged state.
    """
    out: list[ChunkStep] = []
    run: list[StreamingFilter] = []
    for step in [*steps, None]:
        if isinstance(step, StreamingFilter) and step.sos is not None:
            run.append(step)
            continue
        if len(run) == 1:
            out.append(run[0])
        elif run:
            sos = np.vstack([f.sos for f in run if f.sos is not None])
            merged = StreamingFilter(sos, run[0].n_channels, name="+".join(f.name for f in run))
            merged.zi[...] = np.concatenate([f.zi for f in run])
            merged.started = all(f.started for f in run)
            start = 0
            for f in run:
                f.zi = merged.zi[start : start + f.zi.shape[0]]
                start += f.zi.shape[0]
            out.append(merged)
        run = []
        if step is not None:
            out.append(step)
    return tuple(out)


class FilterChain:
    """Steps (filters, references) applied in order to each chunk.

    Parameters
    ----------
    steps : sequence of ChunkStep
        `StreamingFilter` and `Reference` objects (or anything with ``name``,
        ``n_channels``, ``apply`` and ``reset``), all for the same number of channels.
    """

    def __init__(self, steps: Sequence[ChunkStep]) -> None:
        self.steps = tuple(steps)
        if not self.steps:
            msg = "A FilterChain needs at least one step, but got none."
            raise ValidationError(msg, field="steps")
        counts = {step.n_channels for step in self.steps}
        if len(counts) != 1:
            found = [(step.name, step.n_channels) for step in self.steps]
            msg = f"All steps of a FilterChain must have the same n_channels, but got {found}."
            raise ValidationError(msg, field="steps")
        self.n_channels = counts.pop()
        self._active = _fuse(
            [s for s in self.steps if not isinstance(s, StreamingFilter) or s.active]
        )

    def __repr__(self) -> str:
        names = ", ".join(step.name for step in self.steps)
        return f"<FilterChain [{names}] | {self.n_channels} channels>"

    @property
    def skipped(self) -> dict[str, str]:
        """Names of skipped filters mapped to the reason each was skipped."""
        return {
            step.name: step.skipped_reason
            for step in self.steps
            if isinstance(step, StreamingFilter) and step.skipped_reason is not None
        }

    @property
    def sos(self) -> NDArray[np.float64]:
        """All active filters' sections stacked in order, shape (n_sections, 6).

        Filtering with it at once equals running the chain's filters (references apart).
        """
        parts = [s.sos for s in self.steps if isinstance(s, StreamingFilter) and s.sos is not None]
        return np.vstack(parts) if parts else np.empty((0, 6))

    def process(self, chunk: NDArray[np.generic]) -> NDArray[np.float64]:
        """Check and process one chunk, shape (n_channels, n_times); returns float64."""
        return self.apply(check_chunk(chunk, self.n_channels))

    def apply(self, data: NDArray[np.float64]) -> NDArray[np.float64]:
        """Process a checked float64 chunk, shape (n_channels, n_times), through every step."""
        for step in self._active:
            data = step.apply(data)
        return data

    def reset(self) -> None:
        """Reset every step's state (filters start again from a steady state)."""
        for step in self.steps:
            step.reset()
        for step in self._active:
            step.reset()
