"""``neurogate bench leakage``: what an app can infer from what it receives.

The recording (EEGLAB ``test_raw.set``: 32 EEG channels at 128 Hz, a visual stimulus
``square`` every 3 s) is streamed through NeuroGate's own `StreamPipeline` in chunks, and
each product is reduced to each purpose's delivered resolution exactly as the gateway
does (`target_resolution` + `ResolutionReducer`). An attacker holding one app's stream
then tries to tell *stimulus-locked* windows (0 to 0.8 s after a ``square`` onset) from
*other* windows (the same span 1.6 s after the onset, mid-way to the next stimulus):

- sample products (``raw``, ``filtered``): the samples of the span minus the mean of
  the 0.2 s before it, averaged in 50 ms bins, per row;
- windowed products (``band_power``, indices): the first delivered frame whose window
  ends at or after the span's end, with the frames before and after it (log10 of band
  power).

A standardized L2 logistic regression (its strength chosen by an inner 3-fold CV) is
scored by repeated stratified 5-fold cross-validation over 15 s blocks of the recording
(a trial's two windows in the same block): the ROC AUC of the out-of-fold scores, with a
95 % bootstrap interval. Each non-raw product also reports how well its
purpose is still served: the correlation of what was streamed with an offline MNE
computation on the same data and windows (``psd_array_welch`` band power and indices;
``filter_data`` with the pipeline's filter design for filtered EEG).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from neurogate.bench._attack import attack_auc
from neurogate.bench._offline import utility
from neurogate.errors import SignalError, ValidationError

Say = Callable[[str], None]
PRODUCTS = ("raw", "filtered", "band_power", "focus_index", "relaxation_index")
HEADLINE = ("raw", "filtered", "band_power", "focus_index")
SPAN_S = 0.8  # the stimulus-locked span
BASELINE_S = 0.2
OTHER_OFFSET_S = 1.6  # where an "other" window starts, after the onset
BIN_S = 0.05
CHUNK_S = 0.125  # how the recording is streamed
BLOCK_S = 15.0  # cross-validation groups: blocks of the recording


def default_recording() -> Path:
    """``../shared/data/eeg/test_raw.set``, relative to the repository root."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "eeg" / "test_raw.set"


def load_recording(path: Path, tmax: float | None = None
                   ) -> tuple[np.ndarray, float, list[str], np.ndarray]:
    """Data in volts (n_channels, n_times), sfreq, channel names and ``square`` onsets (s)."""
    if not path.is_file():
        msg = (f"The leakage benchmark needs the recording {path}, which does not exist. "
               "Put the shared data folder beside the repository (../shared/data/eeg) or "
               "give --recording PATH.")
        raise ValidationError(msg, field="recording")
    import mne

    try:
        raw = mne.io.read_raw(path, preload=True, verbose="error")
        if tmax is not None:
            raw.crop(tmax=min(tmax, raw.times[-1]))
        events, ids = mne.events_from_annotations(raw, verbose="error")
    except (ValueError, OSError, RuntimeError) as exc:
        msg = f"MNE could not read the recording {path}: {exc}"
        raise SignalError(msg, field="recording") from exc
    if "square" not in ids:
        msg = (f"The recording {path} has no 'square' events (it has {sorted(ids)}); the "
               "attack needs stimulus onsets named 'square'.")
        raise ValidationError(msg, field="recording")
    raw.pick("eeg")
    onsets = events[events[:, 2] == ids["square"], 0] / raw.info["sfreq"]
    return raw.get_data(), float(raw.info["sfreq"]), list(raw.ch_names), onsets


def stream(data: np.ndarray, sfreq: float, ch_names: list[str],
           purposes: tuple[str, ...] | None = None) -> dict[tuple[str, str], Any]:
    """Every (product, purpose) pair's frames, at the purpose's delivered resolution."""
    from neurogate.consent.purposes import load_catalog
    from neurogate.gateway.streams import target_resolution
    from neurogate.signal import Resolution, ResolutionReducer, StreamPipeline

    pipeline = StreamPipeline(ch_names, ["eeg"] * len(ch_names), sfreq)  # as LiveStream
    reducers: dict[tuple[str, str], Any] = {}
    for purpose in load_catalog().all():
        if purposes is not None and purpose.id not in purposes:
            continue
        for product, allowed in purpose.products.items():
            if product in PRODUCTS:
                native = pipeline.resolutions[product]
                wanted = Resolution(allowed.window_s, allowed.output_rate_hz, allowed.channels)
                reducers[(product, purpose.id)] = ResolutionReducer(
                    product, native, target_resolution(wanted, native))
    frames: dict[tuple[str, str], list[Any]] = {key: [] for key in reducers}
    chunk = max(1, round(CHUNK_S * sfreq))
    for start in range(0, data.shape[1], chunk):
        batch = pipeline.push(data[:, start:start + chunk], start / sfreq)
        for (product, purpose), reducer in reducers.items():
            frames[(product, purpose)].extend(reducer.process(batch[product]))
    return {key: {"frames": value, "resolution": reducers[key].effective}
            for key, value in frames.items()}


def windows(onsets: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Starts of stimulus-locked and of other spans, neither holding another onset."""
    def clean(starts: np.ndarray, own: bool) -> np.ndarray:
        keep = []
        for e in starts:
            lo, hi = e - BASELINE_S, e + SPAN_S
            others = onsets[(onsets >= lo) & (onsets < hi)]
            if lo >= 0 and hi < duration and len(others) == (1 if own else 0):
                keep.append(e)
        return np.array(keep)

    return clean(onsets, True), clean(onsets + OTHER_OFFSET_S, False)


def _sample_features(frames: list[Any], starts: np.ndarray, sfreq_out: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    data = np.concatenate([f.data for f in frames], axis=1)
    t0 = frames[0].t
    n_bin = max(1, round(BIN_S * sfreq_out))
    n_span = (round(SPAN_S * sfreq_out) // n_bin) * n_bin
    n_base = max(1, round(BASELINE_S * sfreq_out))
    rows, ok = [], []
    for e in starts:
        i = round((e - t0) * sfreq_out)
        if i - n_base < 0 or i + n_span > data.shape[1]:
            ok.append(False)
            continue
        span = data[:, i:i + n_span] - data[:, i - n_base:i].mean(axis=1, keepdims=True)
        rows.append(span.reshape(data.shape[0], -1, n_bin).mean(axis=2).ravel())
        ok.append(True)
    return np.array(rows), np.array(ok, dtype=bool)


def _window_features(frames: list[Any], starts: np.ndarray, product: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    ends = np.array([f.t + f.resolution.window_s for f in frames])
    values = [np.log10(np.maximum(f.data, 1e-30)).ravel() if product == "band_power"
              else np.ravel(f.data) for f in frames]
    rows, ok = [], []
    for e in starts:
        k = int(np.searchsorted(ends, e + SPAN_S - 1e-9))
        if k < 1 or k + 1 >= len(frames):
            ok.append(False)
            continue
        rows.append(np.concatenate([values[k - 1], values[k], values[k + 1]]))
        ok.append(True)
    return np.array(rows), np.array(ok, dtype=bool)


def features(product: str, streamed: dict[str, Any], starts: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """The attacker's features for windows starting at ``starts`` (and which had data)."""
    frames, res = streamed["frames"], streamed["resolution"]
    if product in ("raw", "filtered"):
        return _sample_features(frames, starts, res.output_rate_hz)
    return _window_features(frames, starts, product)


def _entry(product: str, purpose: str, streamed: dict[str, Any], stim: np.ndarray,
           other: np.ndarray, reference: dict[str, Any], repeats: int, seed: int,
           n_boot: int) -> dict[str, Any]:
    x_pos, ok_pos = features(product, streamed, stim)
    x_neg, ok_neg = features(product, streamed, other)
    x = np.vstack([part for part in (x_pos, x_neg) if part.size]) if (
        x_pos.size or x_neg.size) else np.zeros((0, 0))
    y = np.r_[np.ones(len(x_pos)), np.zeros(len(x_neg))]
    # Folds are blocks of BLOCK_S of the recording (an "other" window goes with its trial's
    # onset), so that windows sharing delivered frames rarely straddle a split.
    groups = np.floor(np.r_[stim[ok_pos], other[ok_neg] - OTHER_OFFSET_S] / BLOCK_S)
    scored = attack_auc(x, y, groups, repeats=repeats, seed=seed, n_boot=n_boot)
    res = streamed["resolution"]
    return {"product": product, "purpose": purpose,
            "resolution": {"window_s": round(res.window_s, 4),
                           "output_rate_hz": round(res.output_rate_hz, 4),
                           "channels": res.channels},
            "n_stimulus": int(ok_pos.sum()), "n_other": int(ok_neg.sum()),
            "n_features": int(x.shape[1]) if x.ndim == 2 else 0, **scored,
            "utility": None if product == "raw" else utility(product, streamed, reference)}


def run_leakage(path: Path, out: Path, *, repeats: int = 3, tmax: float | None = None,
                n_boot: int = 1000, purposes: tuple[str, ...] | None = None,
                say: Say = print) -> dict[str, Any]:
    """Attack every (product, purpose) pair; write ``leakage.json`` and ``leakage.png``.

    ``tmax`` keeps only the recording's first seconds and ``purposes`` only some
    purposes (both for quick checks).
    """
    from neurogate.bench._offline import reference_for
    from neurogate.bench.plots import plot_leakage
    from neurogate.bench.run import write_json

    began = time.monotonic()
    data, sfreq, ch_names, onsets = load_recording(path, tmax)
    out.mkdir(parents=True, exist_ok=True)
    duration = data.shape[1] / sfreq
    stim, other = windows(onsets, duration)
    say(f"Streaming {path.name} ({len(ch_names)} channels, {sfreq:g} Hz, {duration:.0f} s) "
        f"through the pipeline; {len(stim)} stimulus and {len(other)} other windows.")
    streamed = stream(data, sfreq, ch_names, purposes)
    reference = reference_for(data, sfreq)
    entries = []
    for i, ((product, purpose), frames) in enumerate(sorted(streamed.items())):
        entry = _entry(product, purpose, frames, stim, other, reference, repeats, seed=i,
                       n_boot=n_boot)
        entries.append(entry)
        util = entry["utility"]
        auc = ("AUC n/a (too few windows)" if entry["auc"] is None else
               f"AUC {entry['auc']:.3f} [{entry['auc_ci'][0]:.3f}, {entry['auc_ci'][1]:.3f}]")
        say(f"  {product:>16} / {purpose:<26} {auc}"
            + (f"; utility r = {util['r']:.4f}" if util else ""))
    order = {name: i for i, name in enumerate(PRODUCTS)}
    entries.sort(key=lambda e: (order[e["product"]], e["purpose"]))
    headline = {}
    for product in HEADLINE:
        mine = [e for e in entries if e["product"] == product]
        if mine:  # the purpose that leaks most is the product's worst case
            headline[product] = max(mine, key=lambda e: -1.0 if e["auc"] is None else e["auc"])
    result = {
        "recording": {"file": path.name, "path": str(path), "sfreq": sfreq,
                      "n_channels": len(ch_names), "duration_s": round(duration, 1),
                      "n_square": len(onsets), "n_stimulus": len(stim), "n_other": len(other),
                      "stimulus_window": f"[onset, onset + {SPAN_S:g} s]",
                      "other_window": f"[onset + {OTHER_OFFSET_S:g} s, onset + "
                                      f"{OTHER_OFFSET_S + SPAN_S:g} s]",
                      "streamed_in_chunks_s": CHUNK_S},
        "attack": {"classifier": "StandardScaler + LogisticRegression (L2; C in 1e-4..1e1 by an "
                                 "inner 3-fold GridSearchCV on ROC AUC)",
                   "cv": f"StratifiedGroupKFold over {BLOCK_S:g} s blocks of the recording "
                         f"(5 folds) x {repeats}",
                   "auc_ci": f"95% percentile bootstrap ({n_boot}) of the out-of-fold scores",
                   "sample_features": f"{BIN_S * 1e3:g} ms bin means of the span minus the "
                                      f"{BASELINE_S:g} s baseline, per row",
                   "window_features": "frames k-1, k, k+1 (k: first frame ending after the "
                                      "span), log10 for band power"},
        "products": headline,
        "by_purpose": entries,
        "targets": {"non_raw_auc_max": 0.6, "utility_r_min": 0.99,
                    "raw_auc_well_above_chance": headline.get("raw", {}).get("auc_ci", [0])[0]
                    > 0.6},
        "runtime_s": round(time.monotonic() - began, 1),
    }
    write_json(result, out / "leakage.json")
    plot_leakage(result, out / "leakage.png")
    say(f"Wrote {out / 'leakage.json'} and {out / 'leakage.png'} in {result['runtime_s']:.0f} s.")
    return result


__all__ = ["default_recording", "features", "load_recording", "run_leakage", "stream",
           "windows"]
