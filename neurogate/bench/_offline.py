"""Offline MNE references for the leakage benchmark's utility measures.

- filtered EEG: ``mne.filter.filter_data`` on the whole recording with the pipeline's
  filter design (Butterworth band-pass 1-40 Hz order 4, then the 50 Hz band-stop, both
  IIR, causal), and for information MNE's default zero-phase FIR band-pass;
- band power and indices: ``mne.time_frequency.psd_array_welch`` (1 s Hann segments,
  50 % overlap) on the *unfiltered* recording over each delivered frame's window, then
  the band sums and the channel aggregation of the frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IIR_BANDPASS = {"order": 4, "ftype": "butter", "output": "sos"}
IIR_NOTCH = {"order": 2, "ftype": "butter", "output": "sos"}


def reference_for(data: np.ndarray, sfreq: float) -> dict[str, Any]:
    """The offline filtered signals of ``data`` (volts, shape (n_channels, n_times))."""
    import mne

    from neurogate.signal import StreamingFilter

    kwargs = {"method": "iir", "phase": "forward", "verbose": False}
    filtered = mne.filter.filter_data(data, sfreq, 1.0, 40.0, iir_params=IIR_BANDPASS, **kwargs)
    notch = StreamingFilter.notch(sfreq, data.shape[0], line_freq=50.0, width=4.0)
    if notch.active:
        filtered = mne.filter.filter_data(filtered, sfreq, notch.h_freq, notch.l_freq,
                                          iir_params=IIR_NOTCH, **kwargs)
    fir = mne.filter.filter_data(data, sfreq, 1.0, 40.0, verbose=False)
    return {"data": data, "sfreq": sfreq, "filtered": filtered, "filtered_fir": fir}


def _rows(values: np.ndarray, labels: tuple[str, ...], channels: str,
          ch_labels: tuple[str, ...]) -> np.ndarray:
    from neurogate.signal import aggregate_channels

    out, _ = aggregate_channels(values, ch_labels, channels)  # type: ignore[arg-type]
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _sample_utility(streamed: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    frames, res = streamed["frames"], streamed["resolution"]
    sfreq = ref["sfreq"]
    q = round(sfreq / res.output_rate_hz)
    got = np.concatenate([f.data for f in frames], axis=1)
    first = round(frames[0].t * sfreq)
    labels = tuple(f"ch{i}" for i in range(ref["data"].shape[0]))
    out = {}
    for key in ("filtered", "filtered_fir"):
        want = _rows(ref[key][:, first::q][:, : got.shape[1]], labels, res.channels, labels)
        per_row = [_pearson(g, w) for g, w in zip(got, want, strict=True)]
        out[key] = (float(np.nanmean(per_row)), float(np.nanmin(per_row)))
    return {"measure": "per-channel correlation of the delivered samples with MNE "
                       "filter_data (same IIR design, causal)",
            "r": round(out["filtered"][0], 6), "r_min": round(out["filtered"][1], 6),
            "r_vs_zero_phase_fir": round(out["filtered_fir"][0], 4),
            "n": int(got.size)}


def _band_powers(ref: dict[str, Any], t: float, window_s: float, bands: dict[str, Any]
                 ) -> np.ndarray | None:
    from mne.time_frequency import psd_array_welch

    sfreq, data = ref["sfreq"], ref["data"]
    i0 = round(t * sfreq)
    i1 = i0 + round(window_s * sfreq)
    if i0 < 0 or i1 > data.shape[1]:
        return None
    n_seg = round(sfreq)
    psd, freqs = psd_array_welch(data[:, i0:i1], sfreq, fmin=0.0, fmax=sfreq / 2, n_fft=n_seg,
                                 n_per_seg=n_seg, n_overlap=n_seg // 2, window="hann",
                                 average="mean", verbose=False)
    df = freqs[1] - freqs[0]
    return np.stack([psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) * df
                     for lo, hi in bands.values()], axis=1)


def _window_utility(product: str, streamed: dict[str, Any], ref: dict[str, Any]
                    ) -> dict[str, Any]:
    from neurogate.signal import band_edges

    frames = streamed["frames"]
    bands = band_edges(ref["sfreq"])
    names = tuple(bands)
    labels = tuple(f"ch{i}" for i in range(ref["data"].shape[0]))
    got, want = [], []
    for frame in frames:
        power = _band_powers(ref, frame.t, frame.resolution.window_s, bands)
        if power is None:
            continue
        if product == "band_power":
            rows = _rows(power, labels, frame.resolution.channels, labels)
            got.append(frame.data[:, names.index("alpha")])
            want.append(rows[:, names.index("alpha")])
            continue
        mean = power.mean(axis=0)
        theta, alpha, beta = (mean[names.index(b)] for b in ("theta", "alpha", "beta"))
        offline = beta / (alpha + theta) if product == "focus_index" else alpha / (beta + theta)
        got.append(np.ravel(frame.data)[:1])
        want.append(np.array([offline]))
    g = np.concatenate(got) if got else np.zeros(0)
    w = np.concatenate(want) if want else np.zeros(0)
    measure = ("alpha band power per delivered row" if product == "band_power"
               else f"{product} per delivered frame")
    return {"measure": f"correlation of the streamed {measure} with MNE psd_array_welch on "
                       "the same window of the unfiltered recording",
            "r": round(_pearson(g, w), 6), "r_log": round(_pearson(np.log(g), np.log(w)), 6)
            if g.size and (g > 0).all() and (w > 0).all() else None,
            "n": int(g.size)}


def utility(product: str, streamed: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """How well the delivered product still serves its purpose (see module docstring)."""
    if product == "filtered":
        return _sample_utility(streamed, ref)
    return _window_utility(product, streamed, ref)


__all__ = ["reference_for", "utility"]
