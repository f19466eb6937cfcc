"""Tests for neurogate.signal.products: band power, indices and signal quality."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import signal

from neurogate.errors import ValidationError
from neurogate.signal import (
    BANDS,
    PRODUCT_NAMES,
    PRODUCTS,
    QUALITY_COLUMNS,
    QualityThresholds,
    Resolution,
    StreamPipeline,
    WelchEstimator,
    band_edges,
    filter_offline,
    focus_index,
    relaxation_index,
    signal_quality,
)

BAND_NAMES = ("delta", "theta", "alpha", "beta", "gamma")


def _push_all(pipeline: StreamPipeline, data: NDArray[np.float64], chunk: int) -> dict[str, list]:
    """Stream ``data`` through ``pipeline`` in chunks and gather every product's frames."""
    frames: dict[str, list] = {name: [] for name in PRODUCT_NAMES}
    for start in range(0, data.shape[1], chunk):
        batch = pipeline.push(data[:, start : start + chunk], start / pipeline.sfreq)
        for name in PRODUCT_NAMES:
            frames[name].extend(batch[name])
    return frames


def test_product_names_are_exact() -> None:
    """The six product names are exactly those the gateway and purposes refer to."""
    assert PRODUCT_NAMES == (
        "raw",
        "filtered",
        "band_power",
        "focus_index",
        "relaxation_index",
        "signal_quality",
    )
    assert tuple(PRODUCTS) == PRODUCT_NAMES


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("raw", Resolution(1 / 250, 250.0, "electrodes")),
        ("band_power", Resolution(2.0, 2.0, "electrodes")),
        ("focus_index", Resolution(2.0, 2.0, "global")),
        ("signal_quality", Resolution(2.0, 2.0, "electrodes")),
    ],
)
def test_product_finest_resolution(name: str, expected: Resolution) -> None:
    """Each product declares its finest resolution from the stream's settings."""
    assert PRODUCTS[name].finest_resolution(sfreq=250.0, window_s=2.0, hop_s=0.5) == expected


@pytest.mark.parametrize(
    ("sfreq", "expected_gamma", "expected_names"),
    [
        (1000.0, (30.0, 45.0), BAND_NAMES),
        (64.0, (30.0, 32.0), BAND_NAMES),
        (50.0, None, ("delta", "theta", "alpha", "beta")),
    ],
)
def test_band_edges_capped_below_nyquist(
    sfreq: float, expected_gamma: tuple[float, float] | None, expected_names: tuple[str, ...]
) -> None:
    """Bands are capped at Nyquist and dropped when they start above it."""
    edges = band_edges(sfreq)
    assert tuple(edges) == expected_names
    assert edges.get("gamma") == expected_gamma
    assert all(high <= sfreq / 2 for _, high in edges.values())


def test_band_power_sinusoid_in_alpha() -> None:
    """A 10 Hz sinusoid puts over 95% of band power in alpha, at its power A**2/2."""
    sfreq, amplitude = 250.0, 20e-6
    t = np.arange(int(12 * sfreq)) / sfreq
    rng = np.random.default_rng(0)
    data = amplitude * np.sin(2 * np.pi * 10.0 * t) + 0.2e-6 * rng.standard_normal((2, t.size))
    pipeline = StreamPipeline(["O1", "O2"], ["eeg", "eeg"], sfreq)
    frames = _push_all(pipeline, data, chunk=5)["band_power"]
    assert frames[0].columns == BAND_NAMES
    assert len(frames) == 1 + (t.size - 500) // 125
    alpha = BAND_NAMES.index("alpha")
    for frame in frames[4:]:  # after the band-pass has settled
        fractions = frame.data / frame.data.sum(axis=1, keepdims=True)
        assert np.all(fractions[:, alpha] > 0.95)
        np.testing.assert_allclose(frame.data[:, alpha], amplitude**2 / 2, rtol=0.05)


@pytest.mark.data
def test_band_power_alpha_matches_mne_welch(eeg_raw: mne.io.BaseRaw) -> None:
    """Streamed alpha power equals psd_array_welch on the same windows (correlation >= 0.99)."""
    data, sfreq = eeg_raw.get_data(), eeg_raw.info["sfreq"]
    pipeline = StreamPipeline(eeg_raw.ch_names, eeg_raw.get_channel_types(), sfreq)
    frames = _push_all(pipeline, data, chunk=37)["band_power"]
    filtered = filter_offline(pipeline.chain.sos, data)
    n_window, n_hop, n_seg = int(2 * sfreq), int(0.5 * sfreq), int(sfreq)
    starts = np.arange(len(frames)) * n_hop
    windows = np.stack([filtered[:, s : s + n_window] for s in starts])
    psd, freqs = mne.time_frequency.psd_array_welch(
        windows,
        sfreq,
        fmin=8.0,
        fmax=12.5,  # MNE's fmax is inclusive; the band is [8, 13) Hz
        n_fft=n_seg,
        n_per_seg=n_seg,
        n_overlap=n_seg // 2,
        window="hann",
        verbose=False,
    )
    offline = psd.sum(axis=-1) * (freqs[1] - freqs[0])
    streamed = np.stack([f.data[:, BAND_NAMES.index("alpha")] for f in frames])
    np.testing.assert_allclose([f.t for f in frames], starts / sfreq)
    corr = np.corrcoef(streamed.ravel(), offline.ravel())[0, 1]
    # Measured: correlation 1.0 and relative differences below 1e-12.
    assert corr >= 0.99
    np.testing.assert_allclose(streamed, offline, rtol=1e-9)


def test_welch_estimator_matches_scipy_welch() -> None:
    """WelchEstimator.psd equals scipy.signal.welch with Hann segments and mean removal."""
    x = np.random.default_rng(1).standard_normal((3, 500)) + 5.0
    est = WelchEstimator(250.0, 500, 250)
    freqs, expected = signal.welch(x, 250.0, window="hann", nperseg=250, detrend="constant")
    np.testing.assert_allclose(est.freqs, freqs)
    np.testing.assert_allclose(est.psd(x), expected, rtol=1e-10)


def test_indices_follow_documented_formulas() -> None:
    """focus = beta / (alpha + theta) and relaxation = alpha / (beta + theta) of channel means."""
    # columns: delta, theta, alpha, beta, gamma; rows: two channels
    power = np.array([[9.0, 1.0, 2.0, 3.0, 9.0], [9.0, 3.0, 4.0, 5.0, 9.0]])
    theta, alpha, beta = 2.0, 3.0, 4.0
    assert focus_index(power, BAND_NAMES) == pytest.approx(beta / (alpha + theta))
    assert relaxation_index(power, BAND_NAMES) == pytest.approx(alpha / (beta + theta))
    assert focus_index(np.zeros((2, 5)), BAND_NAMES) == 0.0


def test_pipeline_indices_come_from_band_power() -> None:
    """Each index frame is a single global scalar computed from that window's band power."""
    data = np.random.default_rng(2).standard_normal((3, 1000)) * 10e-6
    frames = _push_all(StreamPipeline(["Fz", "Cz", "Pz"], ["eeg"] * 3, 250.0), data, 50)
    assert len(frames["focus_index"]) == len(frames["band_power"]) == 5
    for power, focus, relax in zip(
        frames["band_power"], frames["focus_index"], frames["relaxation_index"], strict=True
    ):
        assert focus.data.shape == (1,)
        assert focus.labels == ("global",)
        assert focus.t == power.t
        assert focus.data[0] == pytest.approx(focus_index(power.data, power.columns))
        assert relax.data[0] == pytest.approx(relaxation_index(power.data, power.columns))


def _quality_fixture(sfreq: float = 250.0) -> tuple[NDArray[np.float64], list[str]]:
    """Four channels, 4 s: clean, flat, clipped, and with strong 50 Hz line noise."""
    rng = np.random.default_rng(3)
    t = np.arange(int(4 * sfreq)) / sfreq
    clean = 10e-6 * rng.standard_normal(t.size)
    flat = np.full(t.size, 3e-3) + 1e-9 * rng.standard_normal(t.size)
    clipped = np.clip(40e-6 * np.sin(2 * np.pi * 7.0 * t) + clean, -25e-6, 25e-6)
    line = clean + 30e-6 * np.sin(2 * np.pi * 50.0 * t)
    return np.stack([clean, flat, clipped, line]), ["clean", "flat", "clipped", "line"]


def test_signal_quality_flags_flat_clipped_and_line_noise() -> None:
    """signal_quality flags exactly the flat, the clipped and the line-noise channel."""
    data, _ = _quality_fixture()
    est = WelchEstimator(250.0, data.shape[1], 250)
    quality = signal_quality(
        data, est.psd(data), est.freqs, line_freq=50.0, thresholds=QualityThresholds()
    )
    col = {name: i for i, name in enumerate(QUALITY_COLUMNS)}
    np.testing.assert_array_equal(quality[:, col["flat"]], [0, 1, 0, 0])
    np.testing.assert_array_equal(quality[:, col["clipped"]], [0, 0, 1, 0])
    np.testing.assert_array_equal(quality[:, col["line_noise"]], [0, 0, 0, 1])
    assert quality[3, col["line_noise_ratio"]] > 0.5
    assert quality[0, col["line_noise_ratio"]] < 0.05
    assert quality[2, col["clipped_fraction"]] > 0.1
    assert quality[1, col["std"]] < 1e-8


def test_signal_quality_rail_counts_as_clipped() -> None:
    """With rail_v set, samples at the amplifier's rail count as clipped."""
    x = np.random.default_rng(4).standard_normal((1, 500)) * 10e-6
    x[0, ::50] = 0.2  # ten spikes at the rail, none repeated exactly otherwise
    x[0, 1::50] = -0.2
    thresholds = QualityThresholds(rail_v=0.15)
    quality = signal_quality(x, None, None, line_freq=50.0, thresholds=thresholds)
    assert quality[0, QUALITY_COLUMNS.index("clipped")] == 1.0
    assert quality[0, QUALITY_COLUMNS.index("clipped_fraction")] == pytest.approx(20 / 500)


def test_pipeline_signal_quality_frames() -> None:
    """The pipeline's signal_quality frames flag the same channels on the unfiltered signal."""
    data, names = _quality_fixture()
    pipeline = StreamPipeline(names, ["eeg"] * 4, 250.0)
    frames = _push_all(pipeline, data, chunk=25)["signal_quality"]
    assert len(frames) == 5
    assert frames[-1].columns == QUALITY_COLUMNS
    flags = np.stack([f.data[:, [1, 3, 5]] for f in frames])
    np.testing.assert_array_equal(flags, np.broadcast_to(np.eye(4)[:, 1:], flags.shape))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"flat_std_v": -1.0}, r"'flat_std_v' parameter must be finite and in \[0, inf\] V"),
        ({"clip_fraction": 0.0}, r"'clip_fraction' parameter must be finite and in \(0, 1\]"),
        ({"rail_v": 0.0}, r"'rail_v' parameter must be finite and in \(0, inf\] V"),
    ],
)
def test_quality_thresholds_validated(kwargs: dict[str, float], match: str) -> None:
    """Out-of-range quality thresholds raise ValidationError naming the parameter."""
    with pytest.raises(ValidationError, match=match):
        QualityThresholds(**kwargs)


def test_bands_are_the_documented_ones() -> None:
    """The bands are delta 1-4, theta 4-8, alpha 8-13, beta 13-30 and gamma 30-45 Hz."""
    assert BANDS == {
        "delta": (1.0, 4.0),
        "theta": (4.0, 8.0),
        "alpha": (8.0, 13.0),
        "beta": (13.0, 30.0),
        "gamma": (30.0, 45.0),
    }
