"""Tests for the measured-figure sentences and leakage_figures.json (consent.disclosure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurogate.consent import disclosure
from neurogate.consent.disclosure import measured_sentence, write_figures
from neurogate.errors import ValidationError

FIGURES = {"needs_event_timing": False, "worst_auc": 0.4961, "worst_auc_ci_high": 0.59,
           "leakage_auc_max": 0.55, "utility_r": 0.9999, "utility_r_min": 0.99,
           "stimulus_auc": 0.4961, "event_type_auc": 0.48, "worst_auc_product": "band_power",
           "worst_auc_attack": "stimulus", "keeps_leakage_budget": True,
           "keeps_utility_floor": True, "feedback_latency_s": None}


@pytest.mark.parametrize(
    ("changes", "language", "variant", "expected"),
    [
        ({}, "en", "plain", "no better than a coin toss (a score of 0.50, where 0.50"),
        ({}, "es", "plain", "una puntuación de 0,50, donde 0,50 es lanzar una moneda"),
        ({}, "zh-Hans", "plain", "并不比抛硬币更准（得分 0.50"),
        ({"worst_auc": 0.58}, "en", "plain", "a little better than a coin toss (a score of 0.58"),
        ({"needs_event_timing": True, "worst_auc": 0.99, "leakage_auc_max": 1.0}, "en",
         "child", "The app can tell when you reacted to something on a screen."),
    ],
    ids=["chance", "es-decimal-comma", "zh", "above-budget", "timing-child"],
)
def test_measured_sentence_states_the_figure(changes: dict[str, object], language: str,
                                             variant: str, expected: str) -> None:
    """The sentence says coin toss, a little better, or the timing use, with the figure."""
    assert expected in measured_sentence({**FIGURES, **changes}, language, variant)


def test_measured_sentence_refuses_an_unknown_language() -> None:
    """A language without a sentence is refused, naming what is allowed."""
    with pytest.raises(ValidationError, match="allowed are 'en', 'zh-Hans' and 'es'"):
        measured_sentence(FIGURES, "fr")


def test_write_figures_round_trips_and_refuses_incomplete_entries(tmp_path: Path) -> None:
    """Written figures read back per purpose; an entry lacking a field is refused."""
    path = tmp_path / "figures.json"
    write_figures(path, {"sleep_wellness": FIGURES, "unmeasured": {"worst_auc": None}},
                  recording="test_raw.set", duration_s=238.3)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["measured_on"]["recording"] == "test_raw.set"
    assert set(written["purposes"]) == {"sleep_wellness"}
    assert written["purposes"]["sleep_wellness"]["worst_auc"] == 0.4961
    with pytest.raises(ValidationError) as caught:
        disclosure._check({"purposes": {"sleep_wellness": {"worst_auc": 0.5}}}, "figures.json")
    assert caught.value.message.startswith(
        "Invalid figures.json: purpose 'sleep_wellness' lacks ['needs_event_timing', ")
