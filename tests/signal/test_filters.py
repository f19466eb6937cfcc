"""Tests for neurogate.signal.filters: streamed causal filtering equals filtering at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import mne
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy import signal

from neurogate.errors import SignalError, ValidationError
from neurogate.signal import (
    FilterChain,
    Reference,
    StreamingFilter,
    design_iir_sos,
    filter_offline,
)

IIR_BANDPASS = {"order": 4, "ftype": "butter", "output": "sos"}
IIR_NOTCH = {"order": 2, "ftype": "butter", "output": "sos"}


def _chunk_sizes(spec: int | str, n_times: int, seed: int = 0) -> Iterator[int]:
    """Yield chunk sizes covering ``n_times``: a fixed size, or random sizes from 1 to 300."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_times:
        size = int(rng.integers(1, 301)) if spec == "random" else int(spec)
        yield size
        done += size


def _stream(
    process: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    data: NDArray[np.float64],
    sizes: Iterator[int] | list[int],
) -> NDArray[np.float64]:
    """Feed ``data`` to ``process`` in chunks of ``sizes`` and join the outputs."""
    out, start = [], 0
    for size in sizes:
        if start >= data.shape[1]:
            break
        out.append(process(data[:, start : start + size]))
        start += size
    return np.concatenate(out, axis=1)


def _max_rel_error(streamed: NDArray[np.float64], whole: NDArray[np.float64]) -> float:
    return float(np.max(np.abs(streamed - whole)) / np.max(np.abs(whole)))


@pytest.mark.data
@pytest.mark.parametrize("chunk", [1, 7, 32, 128, 1000, "random"])
def test_chain_streamed_equals_whole_recording(eeg_raw: mne.io.BaseRaw, chunk: int | str) -> None:
    """Band-pass + notch streamed in chunks equals sosfilt over the whole test_raw.set, both
    from the steady state for the first sample."""
    data, sfreq = eeg_raw.get_data(), eeg_raw.info["sfreq"]
    n_channels = data.shape[0]
    chain = FilterChain(
        [StreamingFilter.bandpass(sfreq, n_channels), StreamingFilter.notch(sfreq, n_channels)]
    )
    whole = filter_offline(chain.sos, data)
    streamed = _stream(chain.process, data, _chunk_sizes(chunk, data.shape[1]))
    # Measured: max |streamed - whole| / max |whole| = 0.0 (bit-identical) for every chunking.
    assert streamed.shape == data.shape
    assert _max_rel_error(streamed, whole) < 1e-6


@pytest.mark.data
def test_filters_match_mne_filter_data(eeg_raw: mne.io.BaseRaw) -> None:
    """Streamed output equals mne.filter.filter_data(method='iir', phase='forward') in turn,
    run on the recording minus its first sample (MNE starts from zero state; the stream
    from the steady state, which for a band-pass is the same thing)."""
    data, sfreq = eeg_raw.get_data(), eeg_raw.info["sfreq"]
    n_channels = data.shape[0]
    bandpass = StreamingFilter.bandpass(sfreq, n_channels, l_freq=1.0, h_freq=40.0, order=4)
    notch = StreamingFilter.notch(sfreq, n_channels, line_freq=50.0, width=4.0, order=2)
    kwargs = {"method": "iir", "phase": "forward", "verbose": False}
    by_mne = mne.filter.filter_data(
        data - data[:, :1], sfreq, 1.0, 40.0, iir_params=IIR_BANDPASS, **kwargs
    )
    # The notch's edges (about 47.9 and 51.9 Hz) put its null exactly on 50 Hz.
    stop = (notch.h_freq, notch.l_freq)
    by_mne = mne.filter.filter_data(by_mne, sfreq, *stop, iir_params=IIR_NOTCH, **kwargs)
    streamed = _stream(FilterChain([bandpass, notch]).process, data, _chunk_sizes(7, data.shape[1]))
    # Measured: 0.0 -- MNE designs the same SOS and runs the same sosfilt.
    assert _max_rel_error(streamed, by_mne) < 1e-6


@pytest.mark.parametrize(
    ("l_freq", "h_freq", "order"),
    [(1.0, 40.0, 4), (52.0, 48.0, 2), (None, 30.0, 8)],
)
def test_design_iir_sos_equals_mne_create_filter(
    l_freq: float | None, h_freq: float | None, order: int
) -> None:
    """design_iir_sos returns exactly the SOS of mne.filter.create_filter(phase='forward')."""
    params = mne.filter.create_filter(
        None,
        250.0,
        l_freq,
        h_freq,
        method="iir",
        iir_params={"order": order, "ftype": "butter", "output": "sos"},
        phase="forward",
        verbose=False,
    )
    np.testing.assert_array_equal(design_iir_sos(250.0, l_freq, h_freq, order=order), params["sos"])


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=40),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_streaming_filter_any_partition_equals_whole(sizes: list[int], seed: int) -> None:
    """For any partition into chunks, streamed filtering equals filtering at once."""
    rng = np.random.default_rng(seed)
    sfreq, n_channels, n_times = 250.0, 3, sum(sizes)
    t = np.arange(n_times) / sfreq
    data = 20e-6 * rng.standard_normal((n_channels, n_times)) + 50e-6 * np.sin(2 * np.pi * 10 * t)
    chain = FilterChain(
        [StreamingFilter.bandpass(sfreq, n_channels), StreamingFilter.notch(sfreq, n_channels)]
    )
    whole = filter_offline(chain.sos, data)
    assert _max_rel_error(_stream(chain.process, data, sizes), whole) < 1e-9


def test_notch_above_nyquist_is_skipped_with_reason() -> None:
    """A 50 Hz notch at 100 Hz sampling passes data through and says why."""
    notch = StreamingFilter.notch(100.0, 2, line_freq=50.0)
    data = np.random.default_rng(0).standard_normal((2, 50))
    assert not notch.active
    assert notch.skipped_reason is not None
    assert "Nyquist frequency 50 Hz" in notch.skipped_reason
    np.testing.assert_array_equal(notch.process(data), data)
    chain = FilterChain([StreamingFilter.bandpass(100.0, 2), notch])
    assert chain.skipped == {"notch": notch.skipped_reason}


@pytest.mark.parametrize(("line_freq", "sfreq"), [(50.0, 128.0), (60.0, 128.0), (60.0, 1000.0)])
def test_notch_attenuates_line_frequency(line_freq: float, sfreq: float) -> None:
    """The notch removes at least 30 dB at the line frequency and little 10 Hz below it."""
    notch = StreamingFilter.notch(sfreq, 1, line_freq=line_freq)
    assert notch.sos is not None
    _, gain = signal.sosfreqz(notch.sos, worN=[line_freq, line_freq - 10.0], fs=sfreq)
    gain_db = 20 * np.log10(np.abs(gain))
    assert gain_db[0] < -30.0
    assert gain_db[1] > -0.5


def test_bandpass_high_edge_lowered_below_nyquist() -> None:
    """A 40 Hz upper edge at 64 Hz sampling is lowered to 90% of Nyquist, with a note."""
    bandpass = StreamingFilter.bandpass(64.0, 1, l_freq=1.0, h_freq=40.0)
    assert bandpass.h_freq == pytest.approx(28.8)
    assert bandpass.adjustment is not None
    assert "lowered from 40 Hz to 28.8 Hz" in bandpass.adjustment


def test_filter_reset_restores_initial_state() -> None:
    """After reset, a filter gives the same output as a new one."""
    data = np.random.default_rng(1).standard_normal((2, 100))
    filt = StreamingFilter.bandpass(200.0, 2)
    first = filt.process(data)
    filt.process(data)
    filt.reset()
    np.testing.assert_array_equal(filt.process(data), first)


def test_reference_average_zeroes_channel_mean() -> None:
    """The average reference makes the mean over channels zero at every sample."""
    data = np.random.default_rng(2).standard_normal((4, 30))
    out = Reference(["Fz", "Cz", "Pz", "Oz"]).process(data)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(out - data, np.broadcast_to(-data.mean(axis=0), data.shape))


def test_reference_named_channel_subtracts_it() -> None:
    """Referencing to a named channel subtracts it from all and leaves it at zero."""
    data = np.random.default_rng(3).standard_normal((3, 20))
    out = Reference(["Fz", "Cz", "M1"], "M1").process(data)
    np.testing.assert_array_equal(out[2], 0.0)
    np.testing.assert_allclose(out[0], data[0] - data[2])


def test_reference_unknown_channel_is_refused() -> None:
    """A reference channel missing from the stream is a ValidationError naming it."""
    with pytest.raises(ValidationError, match=r"unknown: \['M2'\]"):
        Reference(["Fz", "Cz"], ["M2"])


def test_chain_with_reference_streams_like_whole() -> None:
    """Reference then filters, streamed, equals reference then sosfilt on the whole array."""
    data = np.random.default_rng(4).standard_normal((5, 900)) * 1e-5
    names = ["Fp1", "Fp2", "C3", "C4", "Oz"]
    chain = FilterChain(
        [Reference(names), StreamingFilter.bandpass(250.0, 5), StreamingFilter.notch(250.0, 5)]
    )
    whole = filter_offline(chain.sos, data - data.mean(axis=0))
    assert _max_rel_error(_stream(chain.process, data, _chunk_sizes(13, 900)), whole) < 1e-9


@pytest.mark.parametrize(
    ("chunk", "match"),
    [
        (np.zeros((3, 10)), r"must have 2 channels \(rows\), but got shape \(3, 10\)"),
        (np.zeros(10), r"must be 2-D .* but got shape \(10,\) \(1-D\)"),
        (
            np.zeros((2, 10), dtype=complex),
            r"real integer or floating dtype, but got dtype complex128",
        ),
        (np.array([[0.0, np.nan], [np.inf, 0.0]]), r"2 non-finite value\(s\).*index 0, sample 1"),
        ([[0.0, 1.0], [0.0, 1.0]], r"must be a numpy ndarray .* but got list"),
    ],
)
def test_filter_process_rejects_bad_chunks(chunk: object, match: str) -> None:
    """Bad chunks raise SignalError saying what was found and what is allowed."""
    with pytest.raises(SignalError, match=match):
        StreamingFilter.bandpass(250.0, 2).process(chunk)  # type: ignore[arg-type]  # bad on purpose


def test_design_refused_by_mne_is_signal_error() -> None:
    """An impossible design (edge above Nyquist) is wrapped in SignalError."""
    with pytest.raises(SignalError, match="MNE could not design"):
        design_iir_sos(100.0, None, 60.0, order=4)


def test_locate_eeg_dir_skips_or_fails(
    locate_eeg_dir: Callable[[Path], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing data folder skips, unless NEUROGATE_REQUIRE_SERVICES=1 makes it fail."""
    monkeypatch.delenv("NEUROGATE_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="shared EEG recordings are missing"):
        locate_eeg_dir(tmp_path)
    monkeypatch.setenv("NEUROGATE_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="NEUROGATE_REQUIRE_SERVICES=1"):
        locate_eeg_dir(tmp_path)
