"""A 1 kHz recording reduced to 250 Hz is right from its first delivered sample.

A stream with a large DC offset used to start its anti-alias filter from zero state: the
first ~40 ms of ``raw`` at 250 Hz started near 0 V and overshot before settling. Every
filter now starts from the steady state for its first sample, so what is streamed equals
the same causal filters run offline from that same start, from the first sample on.
"""

from __future__ import annotations

import mne
import numpy as np
import pytest
from numpy.typing import NDArray

from neurogate.signal import (
    Frame,
    Resolution,
    ResolutionReducer,
    StreamingFilter,
    StreamPipeline,
    filter_offline,
)

SFREQ, TARGET = 1000.0, 250.0
NAMES = ["Fp1", "Fp2", "C3", "C4", "P3", "P4", "O1", "O2"]


def _recording(seconds: float = 3.0) -> mne.io.RawArray:
    """An 8-channel 1 kHz recording: 10 Hz alpha and noise on DC offsets of 5 to 40 mV."""
    rng = np.random.default_rng(10)
    t = np.arange(round(seconds * SFREQ)) / SFREQ
    offsets = np.linspace(5e-3, 40e-3, len(NAMES))[:, None] * np.array([1, -1] * 4)[:, None]
    data = offsets + 30e-6 * np.sin(2 * np.pi * 10 * t) + 10e-6 * rng.standard_normal(
        (len(NAMES), t.size))
    info = mne.create_info(NAMES, SFREQ, "eeg")
    return mne.io.RawArray(data, info, verbose=False)


def _stream(data: NDArray[np.float64], chunk: int, channels: str
            ) -> dict[str, tuple[NDArray[np.float64], float]]:
    """Stream through the pipeline and a 250 Hz reducer per sample product."""
    pipeline = StreamPipeline(NAMES, ["eeg"] * len(NAMES), SFREQ)
    reducers = {
        name: ResolutionReducer(name, pipeline.resolutions[name],
                                Resolution(1 / TARGET, TARGET, channels))  # type: ignore[arg-type]
        for name in ("raw", "filtered")
    }
    out: dict[str, list[Frame]] = {name: [] for name in reducers}
    for start in range(0, data.shape[1], chunk):
        batch = pipeline.push(data[:, start : start + chunk], start / SFREQ)
        for name, reducer in reducers.items():
            out[name] += reducer.process(batch[name])
    return {name: (np.concatenate([f.data for f in frames], axis=1), frames[0].t)
            for name, frames in out.items()}


@pytest.mark.parametrize("channels", ["electrodes", "global"])
@pytest.mark.parametrize("chunk", [20, 7])
def test_reduced_products_match_offline_from_first_sample(chunk: int, channels: str) -> None:
    """raw and filtered at 250 Hz are within 1 % of each channel's range of the offline
    result from the first output sample on (and bit-close over the whole recording)."""
    raw = _recording()
    data = raw.get_data()
    streamed = _stream(data, chunk, channels)
    pipeline = StreamPipeline(NAMES, ["eeg"] * len(NAMES), SFREQ)
    sources = {"raw": data, "filtered": filter_offline(pipeline.chain.sos, data)}
    for name, (got, t_first) in streamed.items():
        source = sources[name]
        if channels == "global":
            source = source.mean(axis=0, keepdims=True)
        lowpass = StreamingFilter.lowpass(SFREQ, source.shape[0], h_freq=0.4 * TARGET)
        offline = filter_offline(lowpass.sos, source)[:, ::4]
        assert t_first == 0.0
        assert got.shape == offline.shape
        span = np.ptp(offline, axis=1, keepdims=True)
        first = slice(0, 10)  # the first 40 ms at 250 Hz
        error = np.abs(got[:, first] - offline[:, first]) / span
        assert error.max() < 0.01, (name, error.max())
        np.testing.assert_allclose(got, offline, rtol=0, atol=1e-9 * float(span.max()))


def test_first_raw_sample_holds_the_dc_offset() -> None:
    """The first reduced raw sample is the recording's first value, not 0 V."""
    data = _recording(1.0).get_data()
    got, _ = _stream(data, 20, "electrodes")["raw"]
    np.testing.assert_allclose(got[:, 0], data[:, 0], rtol=1e-9)
    # The band-pass blocks DC: filtered starts at the signal's scale (alpha and noise,
    # tens of microvolts), not with a swing of the 5-40 mV offset.
    filtered, _ = _stream(data, 20, "electrodes")["filtered"]
    assert np.abs(filtered[:, :10]).max() < 100e-6
