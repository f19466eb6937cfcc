"""``neurogate demo --script`` tells the whole story and exits 0 on a fresh data directory."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import neurogate

pytestmark = pytest.mark.e2e


def test_demo_script_runs_the_story_and_exits_zero(server_env: dict[str, str]) -> None:
    """The scripted demo streams, refuses AdLab for the child, revokes, and verifies."""
    result = neurogate("demo", "--script", env=server_env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "receives only a focus index for Mia" in out
    assert "products seen: focus_index." in out
    assert "child.no-marketing" in out
    assert "FocusQuest got 'consent.revoked'" in out
    assert "verifies: True" in out
    again = neurogate("demo", "--script", env=server_env, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr  # re-runnable
    assert "parent.chen granted it again" in " ".join(again.stdout.split())
