"""Feedback latency of a windowed product at a delivered resolution, measured on a step.

A synthetic stream (8 channels at 128 Hz, 60 s or longer for long windows: 1 µV of 20 Hz
beta throughout, and 10 Hz alpha that steps from 0.2 µV to 2 µV at ``STEP_S``) goes
through `StreamPipeline` and a `ResolutionReducer` to the resolution. The latency is the
time from the step until the first delivered frame (available when its window ends) has
moved half-way from the value before the step to the value after it. It is measured at
the stream's own resolution too, so a purpose's coarser windows report what they *add*
to the feedback delay.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

STEP_S = 20.0
DURATION_S = 60.0
SFREQ = 128.0
N_CHANNELS = 8


@functools.cache
def _step_latency(product: str, window_s: float, rate_hz: float, channels: str) -> float | None:
    from neurogate.gateway.streams import target_resolution
    from neurogate.signal import Resolution, ResolutionReducer, StreamPipeline

    names = [f"EEG {i:03d}" for i in range(N_CHANNELS)]
    pipeline = StreamPipeline(names, ["eeg"] * N_CHANNELS, SFREQ)
    native = pipeline.resolutions[product]
    reducer = ResolutionReducer(
        product, native, target_resolution(Resolution(window_s, rate_hz, channels), native))
    duration = max(DURATION_S, STEP_S + 3 * window_s + 10.0)
    t = np.arange(round(duration * SFREQ)) / SFREQ
    alpha = np.where(t >= STEP_S, 2e-6, 0.2e-6) * np.sin(2 * np.pi * 10 * t)
    data = np.tile(alpha + 1e-6 * np.sin(2 * np.pi * 20 * t + 0.3), (N_CHANNELS, 1))
    frames = []
    chunk = 16
    for start in range(0, t.size, chunk):
        batch = pipeline.push(data[:, start:start + chunk], start / SFREQ)
        frames.extend(reducer.process(batch[product]))
    res = reducer.effective
    ready = np.array([f.t + res.window_s for f in frames])
    column = pipeline.bands.index("alpha") if product == "band_power" else 0
    values = np.array([np.ravel(f.data[:, column] if f.data.ndim == 2 else f.data)[0]
                       for f in frames])
    before = values[ready < STEP_S]
    after = values[ready > STEP_S + res.window_s + 2.0]
    if not before.size or not after.size:
        return None
    half = (before[-1] + after[-1]) / 2
    rising = after[-1] > before[-1]
    moved = (values >= half) if rising else (values <= half)
    late = np.flatnonzero(moved & (ready >= STEP_S))
    return None if not late.size else round(float(ready[late[0]] - STEP_S), 3)


def feedback_latency(product: str, delivered: Any, native: Any) -> dict[str, Any] | None:
    """``{"latency_s", "stream_latency_s", "added_s"}`` for a windowed product, else None.

    Parameters
    ----------
    product : str
        A windowed product (``band_power``, ``focus_index``, ``relaxation_index``).
    delivered, native : Resolution
        The resolution the app receives and the stream's own.
    """
    if product in ("raw", "filtered", "signal_quality"):
        return None
    mine = _step_latency(product, delivered.window_s, delivered.output_rate_hz,
                         delivered.channels)
    base = _step_latency(product, native.window_s, native.output_rate_hz, delivered.channels)
    added = None if mine is None or base is None else round(mine - base, 3)
    return {"latency_s": mine, "stream_latency_s": base, "added_s": added}


__all__ = ["feedback_latency"]
