"""Tests for neurogate.signal.resolution: regions, channel aggregation, coarser resolutions."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from neurogate.errors import ValidationError
from neurogate.signal import (
    Frame,
    Resolution,
    ResolutionReducer,
    StreamingFilter,
    aggregate_channels,
    filter_offline,
    reduce_frame,
    region_of,
)

NAMES = ("Fp1", "F3", "FC1", "C3", "CP1", "P3", "PO3", "O1", "T7", "A1")


@pytest.mark.parametrize(
    ("name", "region"),
    [
        ("Fp1", "frontal"),
        ("FPz", "frontal"),
        ("AF4", "frontal"),
        ("Fz", "frontal"),
        ("FC5", "central"),
        ("Cz", "central"),
        ("C4", "central"),
        ("CP2", "parietal"),
        ("Pz", "parietal"),
        ("PO8", "occipital"),
        ("Oz", "occipital"),
        ("FT9", "temporal"),
        ("T7", "temporal"),
        ("T3", "temporal"),
        ("TP10", "temporal"),
        ("C3h", "central"),
        ("EEG Fp1-REF", "frontal"),
        ("A1", "other"),
        ("Iz", "other"),
        ("EEG 001", "other"),
        ("STI 014", "other"),
        ("Fpx", "other"),
    ],
)
def test_region_of_by_prefix(name: str, region: str) -> None:
    """10-20 names map to regions by prefix; unknown names map to 'other'."""
    assert region_of(name) == region


def test_aggregate_channels_to_regions_and_global() -> None:
    """Electrodes average into regions in a fixed order, and into one global row."""
    data = np.arange(len(NAMES) * 2, dtype=float).reshape(len(NAMES), 2)
    regions, labels = aggregate_channels(data, NAMES, "regions")
    assert labels == ("frontal", "central", "parietal", "occipital", "temporal", "other")
    np.testing.assert_array_equal(regions[0], data[[0, 1]].mean(axis=0))  # Fp1, F3
    np.testing.assert_array_equal(regions[1], data[[2, 3]].mean(axis=0))  # FC1, C3
    np.testing.assert_array_equal(regions[4], data[8])  # T7
    whole, labels = aggregate_channels(data, NAMES, "global")
    assert labels == ("global",)
    np.testing.assert_array_equal(whole, data.mean(axis=0, keepdims=True))


def test_aggregate_channels_refuses_to_refine() -> None:
    """Going from regions back to electrodes is refused."""
    with pytest.raises(ValidationError, match="Cannot refine channels from 'regions'"):
        aggregate_channels(
            np.zeros((2, 3)), ("frontal", "central"), "electrodes", current="regions"
        )


def _frames(n: int, *, hop: float = 0.5, window: float = 2.0, rows: int = 3) -> list[Frame]:
    """``n`` band-power-like frames whose values equal their index."""
    res = Resolution(window, 1 / hop, "electrodes")
    labels = ("Fz", "Cz", "Oz")[:rows]
    return [
        Frame("band_power", k * hop, np.full((rows, 2), float(k)), labels, ("a", "b"), res)
        for k in range(n)
    ]


def test_reduce_frame_to_regions() -> None:
    """reduce_frame aggregates rows and keeps the frame's time and columns."""
    frame = _frames(1)[0]
    reduced = reduce_frame(frame, "regions")
    assert reduced.labels == ("frontal", "central", "occipital")
    assert reduced.resolution == Resolution(2.0, 2.0, "regions")
    assert (reduced.t, reduced.columns) == (frame.t, frame.columns)
    assert not reduced.data.flags.writeable


@pytest.mark.parametrize(
    ("native", "target", "match"),
    [
        (Resolution(2.0, 2.0), Resolution(1.0, 2.0), "window of at least 2 s"),
        (Resolution(2.0, 2.0), Resolution(2.0, 4.0), "at most 2 outputs/s"),
        (Resolution(2.0, 2.0, "global"), Resolution(2.0, 2.0), "'global' level or coarser"),
    ],
)
def test_reducer_refuses_finer_than_finest(
    native: Resolution, target: Resolution, match: str
) -> None:
    """A resolution finer than the product's finest on any axis is refused."""
    with pytest.raises(ValidationError, match=match):
        ResolutionReducer("focus_index", native, target)


def test_reducer_lowers_rate_of_windowed_product() -> None:
    """Lowering 2 -> 0.5 outputs/s keeps every fourth frame, even across batches."""
    frames = _frames(17)
    native = frames[0].resolution
    reducer = ResolutionReducer("band_power", native, Resolution(2.0, 0.5, "global"))
    out = reducer.process(frames[:6]) + reducer.process(frames[6:7]) + reducer.process(frames[7:])
    assert [f.t for f in out] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert all(f.data.shape == (1, 2) and f.labels == ("global",) for f in out)
    assert reducer.effective == Resolution(2.0, 0.5, "global")


def test_reducer_lengthens_window_by_averaging_frames() -> None:
    """A 3 s window from 2 s windows every 0.5 s averages three consecutive frames."""
    frames = _frames(6)
    reducer = ResolutionReducer("band_power", frames[0].resolution, Resolution(3.0, 2.0))
    out = reducer.process(frames)
    assert [f.t for f in out] == [0.0, 0.5, 1.0, 1.5]  # each starts at its first frame
    np.testing.assert_array_equal([f.data[0, 0] for f in out], [1.0, 2.0, 3.0, 4.0])
    assert reducer.effective.window_s == 3.0


def _stream_raw(
    data: NDArray[np.float64], sfreq: float, reducer: ResolutionReducer, sizes: list[int]
) -> list[Frame]:
    """Feed ``data`` as raw frames of the given sizes and gather the reduced frames."""
    native = Resolution(1 / sfreq, sfreq, "electrodes")
    out, start = [], 0
    for size in sizes:
        chunk = data[:, start : start + size]
        frame = Frame("raw", start / sfreq, chunk, ("Fz", "Cz"), (), native)
        out.extend(reducer.process([frame]))
        start += size
    return out


def test_reducer_decimates_sample_product_causally() -> None:
    """250 -> 125 Hz equals a causal anti-alias low-pass then every second sample."""
    sfreq = 250.0
    data = np.random.default_rng(5).standard_normal((2, 600))
    native = Resolution(1 / sfreq, sfreq)
    reducer = ResolutionReducer("raw", native, Resolution(1 / 125, 125.0))
    out = _stream_raw(data, sfreq, reducer, [1, 3, 7, 64, 25, 500])
    lowpass = StreamingFilter.lowpass(sfreq, 2, h_freq=0.4 * 125.0)
    expected = filter_offline(lowpass.sos, data)[:, ::2]
    np.testing.assert_allclose(np.concatenate([f.data for f in out], axis=1), expected)
    starts = np.cumsum([0] + [f.data.shape[1] for f in out[:-1]]) / 125.0
    np.testing.assert_allclose([f.t for f in out], starts)


def test_reducer_refuses_non_integer_sample_rate_factor() -> None:
    """A sample product's rate can only drop by an integer factor; the message lists rates."""
    native = Resolution(1 / 250, 250.0)
    with pytest.raises(ValidationError, match=r"allowed: 250, 125, 83.3333, 62.5, 50"):
        ResolutionReducer("filtered", native, Resolution(0.01, 100.0))
