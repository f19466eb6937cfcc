"""Tests for neurogate.signal.pipeline and the package surface."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neurogate.signal
from neurogate.errors import SignalError, ValidationError
from neurogate.signal import (
    PRODUCT_NAMES,
    Resolution,
    StreamPipeline,
    WelchEstimator,
    band_edges,
    filter_offline,
)

SIGNAL_DIR = Path(neurogate.signal.__file__).parent
FORBIDDEN = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "sqlmodel",
    "neurogate.consent",
    "neurogate.gateway",
    "neurogate.devices",
)
NAMES = ["Fz", "Cz", "Pz", "STI 014"]
TYPES = ["eeg", "eeg", "eeg", "stim"]


def _pipeline(**kwargs: object) -> StreamPipeline:
    return StreamPipeline(NAMES, TYPES, 250.0, **kwargs)  # type: ignore[arg-type]  # test kwargs


def _data(n_times: int, seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).standard_normal((4, n_times)) * 20e-6
    data[3] = 0.0
    data[3, ::100] = 5.0  # trigger codes: not volts, and not a neural channel
    return data


def test_push_returns_every_product() -> None:
    """A push returns a batch keyed by every product name, raw and filtered once each."""
    batch = _pipeline().push(_data(100), t0=12.5)
    assert tuple(batch) == PRODUCT_NAMES
    assert (batch.t0, batch.n_times, len(batch)) == (12.5, 100, 6)
    assert len(batch["raw"]) == len(batch["filtered"]) == 1
    assert batch["band_power"] == []  # no 2 s window has ended yet


@pytest.mark.parametrize(
    ("taken", "computed"),
    [
        (set(), set()),
        ({"filtered"}, set()),
        ({"signal_quality"}, {"signal_quality"}),
        ({"focus_index"}, {"band_power", "focus_index", "relaxation_index"}),
        (None, {"band_power", "focus_index", "relaxation_index", "signal_quality"}),
    ],
)
def test_push_computes_only_taken_windowed_products(
    taken: set[str] | None, computed: set[str]
) -> None:
    """Windowed products nobody takes are not computed; those computed equal a full run."""
    data = _data(1500, seed=3)
    full, partial = _pipeline(), _pipeline()
    windows = 0
    for start in range(0, 1500, 50):
        want = full.push(data[:, start : start + 50], start / 250.0)
        got = partial.push(data[:, start : start + 50], start / 250.0, products=taken)
        for name in PRODUCT_NAMES:
            if name in ("raw", "filtered") or name in computed:
                assert len(got[name]) == len(want[name])
                for a, b in zip(got[name], want[name], strict=True):
                    np.testing.assert_array_equal(a.data, b.data)
            else:
                assert got[name] == []
        windows += len(want["band_power"])
    assert windows == 9  # windows did end


def test_push_drops_non_neural_channels() -> None:
    """Stim channels are checked but never reach a product."""
    pipeline = _pipeline()
    raw = pipeline.push(_data(50), t0=0.0)["raw"][0]
    assert pipeline.labels == raw.labels == ("Fz", "Cz", "Pz")
    np.testing.assert_array_equal(raw.data, _data(50)[:3])


def test_frames_are_read_only_and_shared() -> None:
    """Frames are computed once and shared, so their arrays cannot be written."""
    batch = _pipeline(hop_s=0.2).push(_data(600), t0=0.0)
    for name in PRODUCT_NAMES:
        assert batch[name], name
        assert all(not frame.data.flags.writeable for frame in batch[name])


def test_window_times_follow_chunk_clock() -> None:
    """Windowed frames start every hop from the first sample, on the t0 clock."""
    pipeline, data, t = _pipeline(), _data(1500), []
    for start in range(0, 1500, 40):
        t += [
            f.t
            for f in pipeline.push(data[:, start : start + 40], 100.0 + start / 250)["band_power"]
        ]
    np.testing.assert_allclose(t, 100.0 + 0.5 * np.arange(9))


def test_window_phase_moves_every_window_by_a_fraction_of_the_hop() -> None:
    """With a phase, windows end that fraction of a hop later, every hop, and each one is
    still Welch over its whole window of the filtered signal."""
    data = _data(2000, seed=3)
    filtered = _filtered(data, 0, 2000)
    welch = WelchEstimator(250.0, 500, 250)
    masks = np.array([welch.mask(lo, hi) for lo, hi in band_edges(250.0).values()])
    pipeline, t = _pipeline(window_phase=0.5), []
    for start in range(0, 2000, 40):
        for frame in pipeline.push(data[:, start:start + 40], 100.0 + start / 250)["band_power"]:
            t.append(frame.t)
            first = round((frame.t - 100.0) * 250)
            want = welch.band_power(welch.psd(filtered[:, first:first + 500]), masks)
            np.testing.assert_allclose(frame.data, want, rtol=1e-10, atol=0)
    # 0.5 of a 125-sample hop is 62 samples: windows start at 62, 187, ... samples
    np.testing.assert_allclose(t, 100.0 + (62 + 125 * np.arange(len(t))) / 250)
    assert len(t) == 12


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=30))
def test_pipeline_products_independent_of_chunking(sizes: list[int]) -> None:
    """Filtered data and band power are the same for any chunking of the stream."""
    data = _data(sum(sizes), seed=7)
    pipeline = _pipeline(reference="average")
    filtered, power, start = [], [], 0
    for size in sizes:
        batch = pipeline.push(data[:, start : start + size], start / 250.0)
        filtered.append(batch["filtered"][0].data)
        power += batch["band_power"]
        start += size
    neural = data[:3] - data[:3].mean(axis=0)
    whole = filter_offline(pipeline.chain.sos, neural)
    np.testing.assert_allclose(np.concatenate(filtered, axis=1), whole, rtol=0, atol=1e-18)
    assert len(power) == max(0, 1 + (sum(sizes) - 500) // 125)
    welch = WelchEstimator(250.0, 500, 250)
    masks = np.array([welch.mask(lo, hi) for lo, hi in band_edges(250.0).values()])
    for k, frame in enumerate(power):
        window = whole[:, k * 125 : k * 125 + 500]
        assert frame.t == pytest.approx(k * 0.5)
        expected = welch.band_power(welch.psd(window), masks)
        np.testing.assert_allclose(frame.data, expected, rtol=1e-9, atol=1e-30)


@pytest.mark.parametrize(
    ("chunk", "match"),
    [
        (np.zeros((3, 10)), r"must have 4 channels \(rows\), but got shape \(3, 10\)"),
        (np.zeros((10, 4)), r"must have 4 channels \(rows\), but got shape \(10, 4\)"),
        (np.zeros((4, 10, 1)), r"must be 2-D .* but got shape \(4, 10, 1\) \(3-D\)"),
        (np.zeros((4, 10), dtype=bool), r"real integer or floating dtype, but got dtype bool"),
        (np.full((4, 10), "x"), r"real integer or floating dtype, but got dtype <U1"),
        (
            np.where(np.arange(40).reshape(4, 10) % 7 == 3, np.nan, 0.0),
            r"6 non-finite value\(s\) \(NaN or inf\); the first is nan at channel 'Fz' "
            r"\(index 0\), sample 3",
        ),
        (
            np.where(np.arange(40).reshape(4, 10) == 25, -np.inf, 0.0),
            r"1 non-finite value\(s\) .* -inf at channel 'Pz' \(index 2\), sample 5",
        ),
        (np.full((4, 10), 20.0), r"\|value\| 20 on channel 'Fz', above max_abs_v=1 V.*microvolts"),
    ],
)
def test_push_rejects_bad_chunks(chunk: np.ndarray, match: str) -> None:
    """Bad chunks raise SignalError that says what was found and what is allowed."""
    with pytest.raises(SignalError, match=match):
        _pipeline().push(chunk, t0=0.0)


def test_push_checked_gives_what_push_gives() -> None:
    """The gateway's path for chunks it checked itself yields the same frames as `push`,
    and still refuses values that are not volts, naming the channel."""
    data = _data(1000, seed=3)
    checked, unchecked = _pipeline(), _pipeline()
    windows = 0
    for start in range(0, 1000, 40):
        chunk = data[:, start:start + 40]
        a = unchecked.push(chunk.astype(np.float32), t0=start / 250.0)
        b = checked.push_checked(np.array(chunk.astype(np.float32), dtype=np.float64),
                                 start / 250.0)
        for name in PRODUCT_NAMES:
            assert len(a[name]) == len(b[name])
            for x, y in zip(a[name], b[name], strict=True):
                assert (x.t, x.labels, x.columns) == (y.t, y.labels, y.columns)
                np.testing.assert_array_equal(x.data, y.data)
        windows += len(b["band_power"]) + len(b["signal_quality"])
    assert windows > 0
    with pytest.raises(SignalError, match=r"\|value\| 20 on channel 'Cz', above max_abs_v"):
        checked.push_checked(np.where(np.arange(40).reshape(4, 10) == 13, 20.0, 0.0), 10.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((NAMES, TYPES[:3], 250.0), {}, "Got 4 channel names but 3 channel types"),
        ((["Fz", "Fz"], ["eeg", "eeg"], 250.0), {}, r"\['Fz'\] appear more than once"),
        ((["STI"], ["stim"], 250.0), {}, r"at least one neural channel .* got types \['stim'\]"),
        ((NAMES, TYPES, 32.0), {}, r"'sfreq' parameter must be finite and in \[64, inf\] Hz"),
        ((NAMES, TYPES, 250.0), {"window_s": 0.5}, r"'window_s' .* \[1, inf\] s, but got 0.5"),
        ((NAMES, TYPES, 250.0), {"reference": "M1"}, r"unknown: \['M1'\]"),
        ((NAMES, TYPES, 250.0), {"window_phase": 1.0},
         r"'window_phase' .* \[0, 1\), but got 1.0"),
        ((NAMES, TYPES, 250.0), {"window_phase": -0.1},
         r"'window_phase' .* \[0, 1\), but got -0.1"),
    ],
)
def test_pipeline_rejects_bad_settings(args: tuple, kwargs: dict, match: str) -> None:
    """Bad stream settings raise ValidationError naming the parameter and the value."""
    with pytest.raises(ValidationError, match=match):
        StreamPipeline(*args, **kwargs)


def test_pipeline_resolutions_and_notes() -> None:
    """The pipeline reports each product's finest resolution and why filters changed."""
    pipeline = StreamPipeline(["Fz"], ["eeg"], 64.0, line_freq=50.0)
    assert pipeline.resolutions["raw"] == Resolution(1 / 64, 64.0, "electrodes")
    assert pipeline.resolutions["relaxation_index"] == Resolution(2.0, 2.0, "global")
    assert "Notch at 50 Hz skipped" in pipeline.notes["notch"]
    assert "lowered from 40 Hz" in pipeline.notes["bandpass"]


def test_pipeline_reset_starts_over() -> None:
    """After reset, the same input gives the same output as a fresh pipeline."""
    pipeline, data = _pipeline(), _data(700)
    first = pipeline.push(data, 0.0)
    pipeline.reset()
    again = pipeline.push(data, 0.0)
    np.testing.assert_array_equal(first["filtered"][0].data, again["filtered"][0].data)
    np.testing.assert_array_equal(first["band_power"][0].data, again["band_power"][0].data)


def test_all_is_sorted_and_complete() -> None:
    """The package re-exports its public names in a sorted __all__."""
    assert neurogate.signal.__all__ == sorted(neurogate.signal.__all__)
    for name in neurogate.signal.__all__:
        assert hasattr(neurogate.signal, name), name


def test_signal_does_not_import_web_db_or_other_components() -> None:
    """Importing neurogate.signal loads no web framework, database or sibling component."""
    code = (
        "import sys, neurogate.signal\n"
        f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN!r})]\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("path", sorted(SIGNAL_DIR.glob("*.py")), ids=lambda p: p.name)
def test_signal_sources_name_no_forbidden_import(path: Path) -> None:
    """No module of neurogate.signal imports a forbidden package, even lazily."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        assert not [m for m in modules if m.startswith(FORBIDDEN)], (path.name, modules)


def _filtered(data: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The filtered signal of a fresh pipeline fed ``data[:, start:stop]`` in 25-sample chunks."""
    pipeline = _pipeline()
    return np.concatenate([pipeline.push(data[:, s:s + 25], s / 250.0)["filtered"][0].data
                           for s in range(start, stop, 25)], axis=1)


def test_band_power_reuses_segments_yet_equals_welch_on_each_whole_window() -> None:
    """Consecutive windows share Welch segments, each computed once; every window's band
    power still equals Welch over that whole window of the filtered signal, also when
    band power is taken only now and then, and after a reset."""
    data = _data(3000, seed=5)
    before, after = _filtered(data, 0, 1500), _filtered(data, 1500, 3000)
    welch = WelchEstimator(250.0, 500, 250)
    masks = np.array([welch.mask(lo, hi) for lo, hi in band_edges(250.0).values()])
    pipeline = _pipeline()
    compared = {"before": 0, "after": 0}
    for start in range(0, 3000, 25):
        if start == 1500:
            pipeline.reset()
        taken = {"filtered"} if (start // 250) % 3 == 1 else {"band_power"}
        for frame in pipeline.push(data[:, start:start + 25], start / 250.0,
                                   products=taken)["band_power"]:
            first = round(frame.t * 250.0)
            part, offset = ("before", 0) if first < 1500 else ("after", 1500)
            window = (before if part == "before" else after)[:, first - offset:
                                                               first - offset + 500]
            want = welch.band_power(welch.psd(window), masks)
            np.testing.assert_allclose(frame.data, want, rtol=1e-10, atol=0)
            compared[part] += 1
    assert compared["before"] >= 4 and compared["after"] >= 4
