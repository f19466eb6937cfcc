"""The processing limit: the signal pipeline alone, in process, against scipy's ``sosfilt``.

For each stream setting the same synthetic recording (volts) is pushed chunk by chunk
through:

- ``sosfilt_whole``: ``scipy.signal.sosfilt`` with the pipeline's own sections over the
  whole recording at once (the floor: no chunking at all);
- ``sosfilt_chunked``: the same, chunk by chunk with the filter state carried over;
- ``pipeline``: `neurogate.signal.StreamPipeline.push` (checks, band-pass and notch, and
  every windowed product: Welch band power, indices, signal quality);
- ``hub_ingest``: the gateway's whole per-frame path without a network,
  `StreamHub.ingest` on encoded frames with the benchmark's two subscriptions (decode and
  checks, pipeline, resolution reducers, rendering of a binary and a JSON message).

Each reports CPU seconds per second of signal and the streams one core could carry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.signal import sosfilt

from neurogate.bench.config import StreamSetting


def _recording(setting: StreamSetting, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = round(seconds * setting.rate)
    t = np.arange(n) / setting.rate
    alpha = 20e-6 * np.sin(2 * np.pi * 10 * t)
    return alpha + rng.normal(0, 5e-6, (setting.n_channels, n))


def _cpu(func: Callable[[], Any]) -> float:
    began = time.process_time()
    func()
    return time.process_time() - began


def _entry(cpu: float, seconds: float, n_chunks: int, setting: StreamSetting
           ) -> dict[str, Any]:
    per_stream_s = cpu / seconds
    return {"cpu_s_per_stream_s": round(per_stream_s, 6),
            "us_per_chunk": round(cpu / max(1, n_chunks) * 1e6, 2),
            "streams_per_core": round(1.0 / per_stream_s, 1) if per_stream_s else None,
            "channel_samples_per_cpu_s": round(setting.n_channels * setting.rate / per_stream_s)
            if per_stream_s else None}


def _hub(setting: StreamSetting) -> tuple[Any, Any, list[Any]]:
    from neurogate_client.wire import Hello

    from neurogate.gateway.streams import Grant, LiveStream, StreamHub, Subscription
    from neurogate.signal import Resolution

    hub = StreamHub()
    hello = Hello(setting.channel_names, ("eeg",) * setting.n_channels,
                  ("uV",) * setting.n_channels, setting.rate)
    stream = LiveStream(device_id="bench", subject_id="subject", hello=hello)
    until = time.time() + 3600
    subs = [
        Subscription(id="clinical", app_id="a1", subject_id="subject", pseudonym="p1",
                     purpose_id="clinical_monitoring", binary=True,
                     grant=Grant({"filtered": Resolution(0.004, 250.0)}, until)),
        Subscription(id="feedback", app_id="a2", subject_id="subject", pseudonym="p2",
                     purpose_id="neurofeedback", binary=False,
                     grant=Grant({"focus_index": Resolution(2.0, 2.0, "global"),
                                  "relaxation_index": Resolution(2.0, 2.0, "global")}, until)),
    ]
    for sub in subs:
        hub.subscribe(sub)
    return hub, stream, subs


def run_setting(setting: StreamSetting, seconds: float) -> dict[str, Any]:
    """Every variant on ``seconds`` of synthetic signal of ``setting``."""
    from neurogate_client.wire import encode_frame

    from neurogate.signal import StreamPipeline

    data = _recording(setting, seconds)
    chunk = setting.chunk
    starts = range(0, data.shape[1] - chunk + 1, chunk)
    n_chunks = len(starts)
    pipeline = StreamPipeline(setting.channel_names, ["eeg"] * setting.n_channels, setting.rate)
    sos = pipeline.chain.sos
    out: dict[str, Any] = {"seconds": seconds, "chunk_samples": chunk,
                           "sections": int(sos.shape[0])}
    # (per chunk: the whole recording's cost spread over as many chunks as the others)
    out["sosfilt_whole"] = _entry(_cpu(lambda: sosfilt(sos, data, axis=-1)), seconds, n_chunks,
                                  setting)

    def chunked() -> None:
        zi = np.zeros((sos.shape[0], data.shape[0], 2))
        for s in starts:
            _, zi = sosfilt(sos, data[:, s:s + chunk], axis=-1, zi=zi)

    out["sosfilt_chunked"] = _entry(_cpu(chunked), seconds, n_chunks, setting)

    def pipe() -> None:
        for s in starts:
            pipeline.push(data[:, s:s + chunk], s / setting.rate)

    out["pipeline"] = _entry(_cpu(pipe), seconds, n_chunks, setting)
    hub, stream, subs = _hub(setting)
    hub.renew_lease()
    micro = data * 1e6
    frames = [encode_frame(micro[:, s:s + chunk], sequence=i, timestamp=1e9 + s / setting.rate)
              for i, s in enumerate(starts)]

    def ingest() -> None:
        for i, frame in enumerate(frames):
            if i % 100 == 0:
                hub.renew_lease()
                for sub in subs:
                    sub.queue.clear()
            stream._budget = float("inf")  # frames come faster than real time here
            hub.ingest(stream, frame)

    out["hub_ingest"] = _entry(_cpu(ingest), seconds, n_chunks, setting)
    out["pipeline_over_sosfilt_chunked"] = round(
        out["pipeline"]["cpu_s_per_stream_s"] / out["sosfilt_chunked"]["cpu_s_per_stream_s"], 2)
    out["hub_ingest_over_pipeline"] = round(
        out["hub_ingest"]["cpu_s_per_stream_s"] / out["pipeline"]["cpu_s_per_stream_s"], 2)
    return out


def run_processing(settings: tuple[StreamSetting, ...], seconds: float) -> dict[str, Any]:
    """The processing limit per stream setting."""
    return {s.name: run_setting(s, seconds) for s in settings}


__all__ = ["run_processing", "run_setting"]
