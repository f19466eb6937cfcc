"""What an app actually sees, beside the raw signal of the same seconds.

The picture runs the gateway's own code: a `StreamPipeline` over a few seconds of signal,
then, per product the consent allows, a `ResolutionReducer` to the resolution the
gateway would deliver (`target_resolution`). The signal is a deterministic reference
(alpha fading while beta grows, as when someone settles into a task), never the
subject's recording: the picture is computed per request, shown, and not kept. It takes
the shape (sensors, sampling rate) of the subject's device streaming now, else of their
paired device, else of an 8-sensor cap (`signal_shape`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sqlmodel import Session, col, select

from neurogate.consent.models import Device
from neurogate.consent.purposes import load_catalog
from neurogate.gateway.streams import StreamHub, target_resolution
from neurogate.signal import PRODUCTS, Frame, Resolution, ResolutionReducer, StreamPipeline

REFERENCE_CHANNELS = ("Fp1", "Fp2", "C3", "C4", "P3", "P4", "O1", "O2")
REFERENCE_RATE = 250.0
SHOWN_SECONDS = 10.0
WARM_UP_SECONDS = 2.0  # the windowed products need one window before their first value
CHUNK_SECONDS = 0.1
_SEED = 20261201
_NEURAL = ("eeg", "seeg", "ecog", "dbs")
MAX_DRAWN_ROWS = 16  # a 64-sensor cap is computed whole but drawn in part


@dataclass(frozen=True)
class SignalShape:
    """The sensors and rate the picture is drawn with, and whose they are."""

    ch_names: tuple[str, ...]
    sfreq: float
    source: str  # "live" | "paired" | "reference"
    model: str | None = None


def signal_shape(session: Session, hub: StreamHub, subject_id: str) -> SignalShape:
    """The shape of the subject's live device stream, else of a device paired with them,
    else the reference cap's."""
    for stream in list(hub.streams.values()):
        if stream.subject_id == subject_id:
            hello = stream.hello
            names = tuple(n for n, t in zip(hello.channel_names, hello.channel_types,
                                            strict=True) if t in _NEURAL)
            device = session.get(Device, stream.device_id)
            if names and hello.sampling_rate >= 64:
                return SignalShape(names, float(hello.sampling_rate), "live",
                                   device.model if device else None)
    for device in session.exec(select(Device).where(Device.paired_subject_id == subject_id)
                               .order_by(col(Device.created_at))).all():
        names = tuple(n for n, t in zip(device.channel_names, device.channel_types,
                                        strict=True) if t in _NEURAL)
        if names and device.sampling_rate >= 64:
            return SignalShape(names, float(device.sampling_rate), "paired", device.model)
    return SignalShape(REFERENCE_CHANNELS, REFERENCE_RATE, "reference")


@dataclass(frozen=True)
class ProductPicture:
    """One product as the app receives it over the shown seconds."""

    product: str
    resolution: Resolution
    t: NDArray[np.float64]  # seconds from the start of the shown span
    rows: list[tuple[str, NDArray[np.float64]]]  # what is drawn, one line per row
    values_per_second: float  # numbers the app receives per second of signal
    sampled: bool  # raw or filtered samples (drawn like the raw signal)
    points: list[tuple[float, float]] = field(default_factory=list)  # (t, value), indices


@dataclass(frozen=True)
class Picture:
    """The raw signal of the shown seconds and what each allowed product makes of it."""

    illustration: bool
    seconds: float
    sfreq: float
    channels: tuple[str, ...]
    raw_t: NDArray[np.float64]
    raw_rows: list[tuple[str, NDArray[np.float64]]]  # microvolts
    raw_values_per_second: float
    products: list[ProductPicture]


def reference_signal(ch_names: Sequence[str], sfreq: float, seconds: float
                     ) -> NDArray[np.float64]:
    """A deterministic EEG-like signal in volts, shape (n_channels, n_times).

    Per channel: theta (6 Hz), alpha (10 Hz) fading from 20 to 5 µV, beta (20 Hz) growing
    from 3 to 10 µV, a little 50 Hz mains, and seeded noise, with channel-specific phases.
    """
    n = round(seconds * sfreq)
    t = np.arange(n) / sfreq
    ramp = t / max(seconds, 1e-9)
    rng = np.random.default_rng(_SEED)
    rows = []
    for k in range(len(ch_names)):
        phase = rng.uniform(0, 2 * np.pi, size=4)
        gain = 1.0 + 0.15 * np.sin(k)
        alpha = (20 - 15 * ramp) * np.sin(2 * np.pi * 10 * t + phase[0])
        beta = (3 + 7 * ramp) * np.sin(2 * np.pi * 20 * t + phase[1])
        theta = 5 * np.sin(2 * np.pi * 6 * t + phase[2])
        mains = 1.0 * np.sin(2 * np.pi * 50 * t + phase[3])
        noise = 3 * rng.standard_normal(n)
        rows.append(gain * (alpha + beta + theta + mains + noise))
    return np.asarray(rows) * 1e-6


def _rows(product: str, frames: list[Frame], bands: tuple[str, ...]
          ) -> list[tuple[str, NDArray[np.float64]]]:
    data = np.stack([f.data for f in frames])
    if product in ("focus_index", "relaxation_index"):
        return [("global", data.reshape(len(frames)))]
    if product == "band_power":  # each band's share of the power, averaged over rows
        mean = data.mean(axis=1)
        total = mean.sum(axis=1, keepdims=True)
        share = np.divide(mean, total, out=np.zeros_like(mean), where=total > 0)
        return [(band, share[:, i]) for i, band in enumerate(bands)]
    if product == "signal_quality":  # the standard deviation column, in microvolts
        return [(label, data[:, i, 0] * 1e6)
                for i, label in enumerate(frames[0].labels[:MAX_DRAWN_ROWS])]
    return []


def app_view(*, purpose_id: str, products: Sequence[str],
             ch_names: Sequence[str] = REFERENCE_CHANNELS, sfreq: float = REFERENCE_RATE,
             seconds: float = SHOWN_SECONDS) -> Picture:
    """Run the gateway's pipeline over the reference signal and reduce each of
    ``products`` to the resolution the purpose ``purpose_id`` allows."""
    purpose = load_catalog().get(purpose_id)
    names = tuple(ch_names)
    pipeline = StreamPipeline(names, ["eeg"] * len(names), sfreq)
    total = WARM_UP_SECONDS + seconds
    signal = reference_signal(names, sfreq, total)
    allowed = [p for p in products if p in purpose.products]
    reducers = {}
    for product in allowed:
        res = purpose.products[product]
        wanted = Resolution(res.window_s, res.output_rate_hz, res.channels)  # type: ignore[arg-type]
        native = pipeline.resolutions[product]
        reducers[product] = ResolutionReducer(product, native, target_resolution(wanted, native))
    out: dict[str, list[Frame]] = {p: [] for p in allowed}
    step = round(CHUNK_SECONDS * sfreq)
    for start in range(0, signal.shape[1], step):
        batch = pipeline.push(signal[:, start:start + step], start / sfreq)
        for product, reducer in reducers.items():
            out[product].extend(reducer.process(batch[product]))
    first = round(WARM_UP_SECONDS * sfreq)
    raw = signal[:, first:]
    raw_t = np.arange(raw.shape[1]) / sfreq
    pictures = []
    for product in allowed:
        reducer = reducers[product]
        frames = out[product]
        spec = PRODUCTS[product]
        if spec.sampled:
            data = np.concatenate([f.data for f in frames], axis=1)
            times = frames[0].t + np.arange(data.shape[1]) / reducer.effective.output_rate_hz
            keep = times >= WARM_UP_SECONDS - 1e-9
            rows = [(label, data[i, keep] * 1e6)
                    for i, label in enumerate(frames[0].labels[:MAX_DRAWN_ROWS])]
            t = times[keep] - WARM_UP_SECONDS
            per_second = data.shape[0] * reducer.effective.output_rate_hz
            pictures.append(ProductPicture(product, reducer.effective, t, rows, per_second,
                                           True))
            continue
        ends = np.array([f.t + f.resolution.window_s for f in frames])
        keep = [i for i, end in enumerate(ends) if WARM_UP_SECONDS - 1e-9 <= end <= total]
        kept = [frames[i] for i in keep]
        t = ends[keep] - WARM_UP_SECONDS
        rows = _rows(product, kept, pipeline.bands) if kept else []
        per_second = (kept[0].data.size if kept else 0) * reducer.effective.output_rate_hz
        points = []
        if product in ("focus_index", "relaxation_index") and rows:
            points = [(float(a), float(b)) for a, b in zip(t, rows[0][1], strict=True)]
        pictures.append(ProductPicture(product, reducer.effective, t, rows, per_second,
                                       False, points))
    return Picture(
        illustration=True, seconds=seconds, sfreq=sfreq, channels=names, raw_t=raw_t,
        raw_rows=[(label, raw[i] * 1e6) for i, label in enumerate(names[:MAX_DRAWN_ROWS])],
        raw_values_per_second=len(names) * sfreq, products=pictures,
    )


__all__ = ["MAX_DRAWN_ROWS", "REFERENCE_CHANNELS", "Picture", "ProductPicture", "SignalShape",
           "app_view", "reference_signal", "signal_shape"]
