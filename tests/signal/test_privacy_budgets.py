"""Every purpose that needs no event timing keeps its leakage budget and its utility floor.

The leakage measurement of ``neurogate bench leakage`` runs at a small size (one
cross-validation repeat, 200 bootstrap resamples, fixed seeds) on the whole shared
recording, over exactly what the catalog delivers for those purposes: a catalog change
that lets an app tell when the subject reacted to something, or to which kind of event,
better than its purpose's ``leakage_auc_max``, or that brings a product below its
``utility_r_min`` against the offline MNE computation, fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from neurogate.bench.leakage import run_leakage
from neurogate.consent.purposes import load_catalog
from tests.conftest import leakage_recording


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small leakage run over the purposes that need no event timing."""
    ids = tuple(p.id for p in load_catalog().all() if not p.budget.needs_event_timing)
    return run_leakage(leakage_recording(), tmp_path_factory.mktemp("leakage"), repeats=1,
                       n_boot=200, purposes=ids, say=lambda _: None)


def _timing_free() -> list[str]:
    return [p.id for p in load_catalog().all() if not p.budget.needs_event_timing]


@pytest.mark.data
@pytest.mark.parametrize("purpose_id", _timing_free())
def test_purpose_keeps_its_leakage_budget(measured: dict[str, Any], purpose_id: str) -> None:
    """Neither attack beats the purpose's AUC budget on any product it delivers."""
    budget = load_catalog().get(purpose_id).budget
    entries = [e for e in measured["by_purpose"] if e["purpose"] == purpose_id]
    assert entries, f"{purpose_id} delivers no product the leakage measurement attacks"
    for entry in entries:
        for attack, scored in (("stimulus", entry), ("square vs rt", entry["event_type"])):
            assert scored["auc"] is not None, f"{entry['product']}: too few windows"
            assert scored["auc"] <= budget.leakage_auc_max, (
                f"{purpose_id} / {entry['product']}: the {attack} attacker reaches AUC "
                f"{scored['auc']} {scored['auc_ci']}, above the budget "
                f"{budget.leakage_auc_max}")
    assert measured["budgets"][purpose_id]["keeps_leakage_budget"]


@pytest.mark.data
@pytest.mark.parametrize("purpose_id", _timing_free())
def test_purpose_keeps_its_utility_floor(measured: dict[str, Any], purpose_id: str) -> None:
    """Each delivered product still tracks the offline MNE computation of its measure."""
    floor = load_catalog().get(purpose_id).budget.utility_r_min
    for entry in (e for e in measured["by_purpose"] if e["purpose"] == purpose_id):
        if entry["product"] == "signal_quality":  # a headset check, no measure of the subject
            assert entry["utility"] is None
            continue
        assert entry["utility"]["n"] >= 5
        assert entry["utility"]["r"] >= floor, (
            f"{purpose_id} / {entry['product']}: r = {entry['utility']['r']} against MNE, "
            f"below the floor {floor}")
    assert measured["budgets"][purpose_id]["keeps_utility_floor"]
