"""Dependencies point one way: gateway -> (consent, signal, devices); devices -> signal.

``consent`` and ``signal`` import neither each other nor any web framework.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "neurogate"
CLIENT = Path(__file__).resolve().parents[1] / "clients" / "python" / "neurogate_client"
FORBIDDEN = {
    "consent": ("neurogate.gateway", "neurogate.signal", "neurogate.devices", "fastapi",
                "starlette", "uvicorn", "neurogate.recordings"),
    "signal": ("neurogate.gateway", "neurogate.consent", "neurogate.devices", "fastapi",
               "starlette", "uvicorn", "sqlalchemy", "sqlmodel"),
    "devices": ("neurogate.gateway", "neurogate.consent", "fastapi", "starlette", "sqlalchemy",
                "sqlmodel"),
    "recordings": ("neurogate.gateway", "neurogate.devices", "fastapi", "starlette", "uvicorn"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_rules_hold_for_package(package: str) -> None:
    """No module of the package imports what the layering forbids."""
    offenders = []
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files, f"neurogate/{package} has no modules"
    for path in files:
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package]):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_import_rules_client_library_stands_alone() -> None:
    """neurogate_client imports nothing from neurogate and no server dependency."""
    allowed = {"websockets", "httpx", "numpy", "neurogate_client"}
    offenders = []
    files = sorted(CLIENT.rglob("*.py"))
    assert files, "clients/python/neurogate_client has no modules"
    for path in files:
        for name in _imports(path):
            root = name.split(".")[0]
            if root not in allowed and root not in sys.stdlib_module_names:
                offenders.append(f"{path.name} imports {name}")
    assert offenders == []


def test_import_rules_detect_a_violation(tmp_path: Path) -> None:
    """The checker itself finds a forbidden import (so the rule cannot pass vacuously)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from neurogate.gateway.app import create_app\nimport fastapi\n")
    assert {"neurogate.gateway.app", "fastapi"} <= _imports(bad)
