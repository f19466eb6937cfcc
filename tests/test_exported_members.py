"""Each package re-exports its public names with a sorted ``__all__`` that resolves."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["neurogate", "neurogate.consent", "neurogate.signal", "neurogate.devices",
            "neurogate.gateway", "neurogate.errors", "neurogate.recordings"]


@pytest.mark.parametrize("name", PACKAGES)
def test_exported_members_are_sorted_and_resolve(name: str) -> None:
    """``__all__`` is sorted, has no duplicates, and every name exists."""
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    assert len(set(exported)) == len(exported)
    for member in exported:
        assert hasattr(module, member), f"{name} exports {member!r} but lacks it"
