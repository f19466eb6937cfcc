"""Filter design with MNE: causal Butterworth second-order sections."""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq

from neurogate.errors import SignalError

__all__ = ["design_iir_sos"]


def design_iir_sos(
    sfreq: float, l_freq: float | None, h_freq: float | None, *, order: int
) -> NDArray[np.float64]:
    """Design a causal Butterworth filter with MNE and return its second-order sections.

    Designs are cached per (sfreq, l_freq, h_freq, order): a new stream of a known layout
    costs no MNE call. The result is a fresh writeable copy.

    Parameters
    ----------
    sfreq : float
        Sampling frequency in Hz.
    l_freq, h_freq : float | None
        Edges in Hz, with MNE's meaning: ``l_freq < h_freq`` band-pass, ``l_freq > h_freq``
        band-stop, ``l_freq=None`` low-pass, ``h_freq=None`` high-pass.
    order : int
        Butterworth order per edge (SciPy's ``N``).

    Returns
    -------
    sos : ndarray, shape (n_sections, 6)
        Second-order sections, as ``create_filter(...)['sos']``.

    Raises
    ------
    SignalError
        If MNE refuses the design (for example an edge at or above Nyquist).
    """
    return _design(float(sfreq), l_freq, h_freq, int(order)).copy()


@functools.lru_cache(maxsize=256)
def _design(
    sfreq: float, l_freq: float | None, h_freq: float | None, order: int
) -> NDArray[np.float64]:
    import mne  # deferred: importing MNE is slow and only needed while designing

    iir_params = {"order": int(order), "ftype": "butter", "output": "sos"}
    try:
        params = mne.filter.create_filter(
            None,
            float(sfreq),
            l_freq,
            h_freq,
            method="iir",
            iir_params=iir_params,
            phase="forward",
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        msg = (
            f"MNE could not design a Butterworth filter of order {order} with "
            f"l_freq={l_freq!r} Hz and h_freq={h_freq!r} Hz at sfreq={sfreq!r} Hz: {exc}"
        )
        raise SignalError(msg) from exc
    sos = np.ascontiguousarray(params["sos"], dtype=np.float64)
    sos.flags.writeable = False
    return sos


def centred_stop_band(sfreq: float, centre: float, width: float) -> tuple[float, float] | None:
    """Return band-stop edges ``(low, low + width)`` in Hz whose notch null is at ``centre``.

    A Butterworth band-stop made by the bilinear transform has its null where
    ``tan(pi f / sfreq) ** 2 == tan(pi low / sfreq) * tan(pi high / sfreq)``. Returns
    ``None`` if no such band lies below the Nyquist frequency.
    """
    scale = np.pi / sfreq
    target = np.tan(scale * centre) ** 2

    def excess(low: float) -> float:
        return float(np.tan(scale * low) * np.tan(scale * (low + width)) - target)

    lowest = max(centre - width, 1e-9)
    highest = min(centre, sfreq / 2.0 - width - 1e-6)
    if highest <= lowest or excess(highest) < 0.0:
        return None
    low = float(brentq(excess, lowest, highest, xtol=1e-12))
    return low, low + width
