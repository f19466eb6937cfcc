"""``neurogate bench leakage``: what an app can infer from what it receives.

The recording (EEGLAB ``test_raw.set``: 32 EEG channels at 128 Hz, a visual stimulus
``square`` every 3 s) is streamed through NeuroGate's own `StreamPipeline` in chunks, and
each product is reduced to each purpose's delivered resolution exactly as the gateway
does (`target_resolution` + `ResolutionReducer`). An attacker holding one app's stream
then tries to tell *stimulus-locked* windows (0 to 0.8 s after a ``square`` onset) from
*other* windows (the same span 1.6 s after the onset, mid-way to the next stimulus):

- sample products (``raw``, ``filtered``): the samples of the span minus the mean of
  the 0.2 s before it, averaged in 50 ms bins, per row;
- windowed products (``band_power``, indices, ``signal_quality``): the first delivered
  frame whose window ends at or after the span's end, with the frames before and after
  it (log10 of band power).

A second attack tells the recording's two event types apart: windows locked to a
``square`` onset against windows locked to an ``rt`` onset (the subject's response).

A standardized L2 logistic regression (its strength chosen by an inner 3-fold CV) is
scored by repeated stratified 5-fold cross-validation over 15 s blocks of the recording
(a trial's two windows in the same block): the ROC AUC of the out-of-fold scores, with a
95 % bootstrap interval. Each non-raw product but ``signal_quality`` (a check of the
headset, not a measure of the subject) also reports how well its
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
from neurogate.bench._latency import feedback_latency
from neurogate.bench._offline import utility
from neurogate.errors import SignalError, ValidationError

Say = Callable[[str], None]
PRODUCTS = ("raw", "filtered", "band_power", "focus_index", "relaxation_index",
            "signal_quality")
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
    responses = (events[events[:, 2] == ids["rt"], 0] / raw.info["sfreq"] if "rt" in ids
                 else np.zeros(0))
    return raw.get_data(), float(raw.info["sfreq"]), list(raw.ch_names), onsets, responses


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
    return {key: {"frames": value, "resolution": reducers[key].effective,
                  "native": reducers[key].native}
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


def type_windows(square: np.ndarray, rt: np.ndarray, duration: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Onsets of ``square`` and of ``rt`` events whose span fits and holds no other of its type."""
    def clean(onsets: np.ndarray) -> np.ndarray:
        keep = [e for e in onsets
                if e - BASELINE_S >= 0 and e + SPAN_S < duration
                and np.count_nonzero((onsets >= e - BASELINE_S) & (onsets < e + SPAN_S)) == 1]
        return np.array(keep)

    return clean(square), clean(rt)


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


def _attack(product: str, streamed: dict[str, Any], pos: np.ndarray, neg: np.ndarray,
            neg_shift: float, repeats: int, seed: int, n_boot: int) -> dict[str, Any]:
    """One attack: windows at ``pos`` (label 1) against windows at ``neg`` (label 0)."""
    x_pos, ok_pos = features(product, streamed, pos)
    x_neg, ok_neg = features(product, streamed, neg)
    x = np.vstack([part for part in (x_pos, x_neg) if part.size]) if (
        x_pos.size or x_neg.size) else np.zeros((0, 0))
    y = np.r_[np.ones(len(x_pos)), np.zeros(len(x_neg))]
    # Folds are blocks of BLOCK_S of the recording (an "other" window goes with its trial's
    # onset), so that windows sharing delivered frames rarely straddle a split.
    groups = np.floor(np.r_[pos[ok_pos], neg[ok_neg] - neg_shift] / BLOCK_S)
    scored = attack_auc(x, y, groups, repeats=repeats, seed=seed, n_boot=n_boot)
    return {"n_pos": int(ok_pos.sum()), "n_neg": int(ok_neg.sum()),
            "n_features": int(x.shape[1]) if x.ndim == 2 else 0, **scored}


def _entry(product: str, purpose: str, streamed: dict[str, Any], spans: dict[str, Any],
           reference: dict[str, Any], repeats: int, seed: int, n_boot: int) -> dict[str, Any]:
    stim, other, square, rt = spans["stimulus"], spans["other"], spans["square"], spans["rt"]
    first = _attack(product, streamed, stim, other, OTHER_OFFSET_S, repeats, seed, n_boot)
    second = _attack(product, streamed, square, rt, 0.0, repeats, seed + 1000, n_boot)
    res = streamed["resolution"]
    return {"product": product, "purpose": purpose,
            "resolution": {"window_s": round(res.window_s, 4),
                           "output_rate_hz": round(res.output_rate_hz, 4),
                           "channels": res.channels},
            "n_stimulus": first["n_pos"], "n_other": first["n_neg"],
            "n_features": first["n_features"],
            "auc": first["auc"], "auc_ci": first["auc_ci"], "auc_cv_sd": first["auc_cv_sd"],
            "n_splits": first["n_splits"],
            "event_type": {key: second[key] for key in
                           ("n_pos", "n_neg", "auc", "auc_ci", "auc_cv_sd", "n_splits")},
            "feedback_latency_s": feedback_latency(product, res, streamed["native"]),
            # signal_quality checks the headset, it measures nothing of the subject's own
            "utility": None if product in ("raw", "signal_quality")
            else utility(product, streamed, reference)}


def _say_entry(say: Say, entry: dict[str, Any]) -> None:
    def auc(scored: dict[str, Any]) -> str:
        if scored["auc"] is None:
            return "n/a (too few windows)"
        return f"{scored['auc']:.3f} [{scored['auc_ci'][0]:.3f}, {scored['auc_ci'][1]:.3f}]"

    util = entry["utility"]
    say(f"  {entry['product']:>16} / {entry['purpose']:<26} stimulus AUC {auc(entry)}; "
        f"square vs rt AUC {auc(entry['event_type'])}"
        + (f"; utility r = {util['r']:.4f}" if util else ""))


def budgets(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per purpose: its budget, the worst measured figures, and whether it keeps the budget.

    The worst AUC is the highest point estimate over the purpose's products and both
    attacks (with the upper end of its 95 % interval); the worst utility the lowest r.
    """
    from neurogate.consent.purposes import load_catalog

    out: dict[str, dict[str, Any]] = {}
    for purpose in load_catalog().all():
        mine = [e for e in entries if e["purpose"] == purpose.id]
        if not mine:
            continue
        scored = [(e[key]["auc"] if key else e["auc"], e[key]["auc_ci"][1] if key
                   else e["auc_ci"][1], e["product"], key or "stimulus")
                  for e in mine for key in ("", "event_type")
                  if (e[key]["auc"] if key else e["auc"]) is not None]
        worst = max(scored, default=None)
        utils = [e["utility"]["r"] for e in mine if e["utility"] is not None]
        stimulus = [e["auc"] for e in mine if e["auc"] is not None]
        event_type = [e["event_type"]["auc"] for e in mine if e["event_type"]["auc"] is not None]
        budget = purpose.budget
        r_min = min(utils) if utils else None
        keeps_leak = worst is None or worst[0] <= budget.leakage_auc_max
        keeps_util = r_min is None or r_min >= budget.utility_r_min
        out[purpose.id] = {
            "needs_event_timing": budget.needs_event_timing,
            "leakage_auc_max": budget.leakage_auc_max, "utility_r_min": budget.utility_r_min,
            "stimulus_auc": max(stimulus, default=None),
            "event_type_auc": max(event_type, default=None),
            "worst_auc": None if worst is None else worst[0],
            "worst_auc_ci_high": None if worst is None else worst[1],
            "worst_auc_product": None if worst is None else worst[2],
            "worst_auc_attack": None if worst is None else worst[3],
            "utility_r": r_min, "keeps_leakage_budget": keeps_leak,
            "keeps_utility_floor": keeps_util,
            "feedback_latency_s": max((e["feedback_latency_s"] for e in mine
                                       if e["feedback_latency_s"] is not None
                                       and e["feedback_latency_s"]["added_s"] is not None),
                                      key=lambda lat: lat["added_s"], default=None),
        }
    return out


def run_leakage(path: Path, out: Path, *, repeats: int = 3, tmax: float | None = None,
                n_boot: int = 1000, purposes: tuple[str, ...] | None = None,
                figures: Path | bool = True, say: Say = print) -> dict[str, Any]:
    """Attack every (product, purpose) pair; write ``leakage.json`` and ``leakage.png``.

    ``tmax`` keeps only the recording's first seconds and ``purposes`` only some
    purposes (both for quick checks). Each purpose's measured figures (`budgets`) also go
    to ``figures``: by default (True), for a run over the whole recording and every
    purpose, to ``leakage_figures.json`` beside ``purposes.toml``, the file notices and
    the portal read (see `neurogate.consent.disclosure`); False writes none.
    """
    from neurogate.consent.disclosure import shipped_figures_path, write_figures

    if figures is True:
        figures = shipped_figures_path() if purposes is None and tmax is None else False
    from neurogate.bench._offline import reference_for
    from neurogate.bench.plots import plot_leakage
    from neurogate.bench.run import write_json

    began = time.monotonic()
    data, sfreq, ch_names, onsets, rt = load_recording(path, tmax)
    out.mkdir(parents=True, exist_ok=True)
    duration = data.shape[1] / sfreq
    stim, other = windows(onsets, duration)
    square, response = type_windows(onsets, rt, duration)
    spans = {"stimulus": stim, "other": other, "square": square, "rt": response}
    say(f"Streaming {path.name} ({len(ch_names)} channels, {sfreq:g} Hz, {duration:.0f} s) "
        f"through the pipeline; {len(stim)} stimulus and {len(other)} other windows, "
        f"{len(square)} square and {len(response)} rt windows.")
    streamed = stream(data, sfreq, ch_names, purposes)
    reference = reference_for(data, sfreq)
    entries = []
    for i, ((product, purpose), frames) in enumerate(sorted(streamed.items())):
        entry = _entry(product, purpose, frames, spans, reference, repeats, seed=i,
                       n_boot=n_boot)
        entries.append(entry)
        _say_entry(say, entry)
    order = {name: i for i, name in enumerate(PRODUCTS)}
    entries.sort(key=lambda e: (order[e["product"]], e["purpose"]))
    headline = {}
    for product in HEADLINE:
        mine = [e for e in entries if e["product"] == product]
        if mine:  # the purpose that leaks most is the product's worst case
            headline[product] = max(mine, key=lambda e: -1.0 if e["auc"] is None else e["auc"])
    by_budget = budgets(entries)
    result = {
        "recording": {"file": path.name, "path": str(path), "sfreq": sfreq,
                      "n_channels": len(ch_names), "duration_s": round(duration, 1),
                      "n_square": len(onsets), "n_rt": len(rt), "n_stimulus": len(stim),
                      "n_other": len(other), "n_square_windows": len(square),
                      "n_rt_windows": len(response),
                      "stimulus_window": f"[onset, onset + {SPAN_S:g} s]",
                      "other_window": f"[onset + {OTHER_OFFSET_S:g} s, onset + "
                                      f"{OTHER_OFFSET_S + SPAN_S:g} s]",
                      "event_type_windows": f"[square onset, + {SPAN_S:g} s] against "
                                            f"[rt onset, + {SPAN_S:g} s]",
                      "streamed_in_chunks_s": CHUNK_S},
        "attack": {"classifier": "StandardScaler + LogisticRegression (L2; C in 1e-4..1e1 by an "
                                 "inner 3-fold GridSearchCV on ROC AUC)",
                   "attacks": {"stimulus": "stimulus-locked against other windows",
                               "event_type": "square-locked against rt-locked windows"},
                   "cv": f"StratifiedGroupKFold over {BLOCK_S:g} s blocks of the recording "
                         f"(5 folds) x {repeats}",
                   "auc_ci": f"95% percentile bootstrap ({n_boot}) of the out-of-fold scores",
                   "sample_features": f"{BIN_S * 1e3:g} ms bin means of the span minus the "
                                      f"{BASELINE_S:g} s baseline, per row",
                   "window_features": "frames k-1, k, k+1 (k: first frame ending after the "
                                      "span), log10 for band power",
                   "not_measured": "re-identification across people: it needs recordings of "
                                   "many subjects, and none are at hand"},
        "products": headline,
        "by_purpose": entries,
        "budgets": by_budget,
        "targets": {"non_raw_auc_max": 0.55, "utility_r_min": 0.99,
                    "raw_auc_well_above_chance": headline.get("raw", {}).get("auc_ci", [0])[0]
                    > 0.8},
        "runtime_s": round(time.monotonic() - began, 1),
    }
    write_json(result, out / "leakage.json")
    plot_leakage(result, out / "leakage.png")
    if isinstance(figures, Path):
        write_figures(figures, by_budget, recording=path.name, duration_s=round(duration, 1))
        say(f"Wrote each purpose's measured figures, which its notices and the portal state, "
            f"to {figures}.")
    say(f"Wrote {out / 'leakage.json'} and {out / 'leakage.png'} in {result['runtime_s']:.0f} s.")
    return result


__all__ = ["budgets", "default_recording", "features", "load_recording", "run_leakage",
           "stream", "type_windows", "windows"]
