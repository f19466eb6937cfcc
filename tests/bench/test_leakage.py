"""Leakage benchmark on a slice of the shared recording, and its attacker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurogate.bench._attack import attack_auc
from neurogate.bench.leakage import HEADLINE, run_leakage, windows
from neurogate.errors import ValidationError
from tests.conftest import leakage_recording


@pytest.mark.data
def test_leakage_slice_writes_every_product_with_auc_and_utility(tmp_path: Path) -> None:
    """On 60 s of test_raw.set, leakage.json has an entry per product, typed."""
    result = run_leakage(leakage_recording(), tmp_path, repeats=1, tmax=60.0, n_boot=50,
                         purposes=("clinical_monitoring", "neurofeedback"), say=lambda _: None)
    written = json.loads((tmp_path / "leakage.json").read_text(encoding="utf-8"))
    assert (tmp_path / "leakage.png").read_bytes()[:4] == b"\x89PNG"
    assert {"recording", "products"} <= set(written)
    assert written["recording"]["file"] == "test_raw.set"
    assert set(written["products"]) == set(HEADLINE)
    for name, entry in written["products"].items():
        assert entry["product"] == name
        assert isinstance(entry["auc"], float)
        assert len(entry["auc_ci"]) == 2 and entry["auc_ci"][0] <= entry["auc_ci"][1]
        if name == "raw":
            assert entry["utility"] is None
        else:
            assert isinstance(entry["utility"]["r"], float)
    assert result["products"].keys() == written["products"].keys()
    for entry in written["by_purpose"]:  # the second attack: square against rt events
        assert isinstance(entry["event_type"]["auc"], float)
        assert entry["event_type"]["n_pos"] > 0 and entry["event_type"]["n_neg"] > 0
    assert set(written["budgets"]) == {"clinical_monitoring", "neurofeedback"}
    feedback = written["budgets"]["neurofeedback"]
    assert feedback["needs_event_timing"] is False and feedback["leakage_auc_max"] == 0.55
    assert feedback["feedback_latency_s"]["added_s"] == 1.0  # 4 s windows instead of 2 s
    assert "none are at hand" in written["attack"]["not_measured"]


def test_leakage_missing_recording_fails_with_a_clear_message(tmp_path: Path) -> None:
    """A recording that does not exist is refused, naming the path and the fix."""
    missing = tmp_path / "nope.set"
    with pytest.raises(ValidationError, match="nope.set, which does not exist"):
        run_leakage(missing, tmp_path / "out", say=lambda _: None)


def test_leakage_windows_exclude_spans_holding_another_onset() -> None:
    """Stimulus spans hold exactly their own onset; other spans hold none; both fit."""
    onsets = np.array([0.1, 2.0, 2.5, 6.0])
    stim, other = windows(onsets, duration=12.0)
    # 0.1: the baseline starts before the recording; 2.0: its span holds 2.5 as well.
    assert stim.tolist() == pytest.approx([2.5, 6.0])
    # 0.1 + 1.6: its span holds the onset at 2.0.
    assert other.tolist() == pytest.approx([3.6, 4.1, 7.6])


def test_attack_auc_separates_separable_data_and_not_noise() -> None:
    """A shifted class is found (AUC near 1); pure noise stays near chance."""
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(30), np.zeros(30)]
    groups = np.tile(np.arange(6), 10)
    noise = rng.normal(size=(60, 4))
    found = attack_auc(noise + 3 * y[:, None], y, groups, repeats=1, n_boot=100)
    chance = attack_auc(noise, y, groups, repeats=1, n_boot=100)
    assert found["auc"] > 0.95
    assert 0.25 < chance["auc"] < 0.75
    assert chance["auc_ci"][0] < 0.5 < chance["auc_ci"][1]
