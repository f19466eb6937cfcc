"""neurogate_client's public surface: a sorted ``__all__`` whose names all exist, in the
package and in each public module."""

from __future__ import annotations

import importlib

import pytest

MODULES = ["neurogate_client", "neurogate_client.auth", "neurogate_client.device",
           "neurogate_client.errors", "neurogate_client.events", "neurogate_client.layout",
           "neurogate_client.listeners", "neurogate_client.subscriber", "neurogate_client.wire"]


@pytest.mark.parametrize("name", MODULES)
def test_exports_are_listed_and_exist(name: str) -> None:
    """Every name in ``__all__`` resolves; the package's ``__all__`` is sorted."""
    module = importlib.import_module(name)
    assert module.__all__, name
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []
    if name == "neurogate_client":
        assert module.__all__ == sorted(module.__all__)


def test_exports_errors_share_one_root() -> None:
    """Every exception the package exports derives from ClientError."""
    import neurogate_client as nc

    errors = [getattr(nc, n) for n in nc.__all__
              if isinstance(getattr(nc, n), type) and issubclass(getattr(nc, n), Exception)]
    assert len(errors) == 6
    assert all(issubclass(e, nc.ClientError) for e in errors)
