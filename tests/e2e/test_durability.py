"""A revocation, once acknowledged, survives the gateway being killed."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from neurogate.gateway.demo import DEMO_PASSWORD
from tests.e2e.conftest import ServerProcess, neurogate

pytestmark = pytest.mark.e2e


def _login(base: str, username: str) -> dict[str, str]:
    response = httpx.post(f"{base}/v1/auth/login",
                          json={"username": username, "password": DEMO_PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['session_token']}"}


def test_revocation_survives_sigkill_right_after_ack(server: ServerProcess, tmp_path: Path
                                                     ) -> None:
    """SIGKILL right after the revoke answers: on restart the consent is revoked and the
    ledger verifies."""
    seeded = neurogate("demo", "--script", env=server.env)
    assert seeded.returncode == 0, seeded.stderr
    server.start()
    alex = _login(server.url, "alex")
    consents = httpx.get(f"{server.url}/v1/consents", headers=alex).json()
    active = [c for c in consents if c["status"] == "active"]
    assert len(active) == 1
    response = httpx.post(f"{server.url}/v1/consents/{active[0]['id']}/revoke", headers=alex,
                          json={"reason": "changed my mind"})
    server.kill(signal.SIGKILL)  # no graceful shutdown: only what is on disk counts
    assert response.status_code == 200, response.text
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(json.dumps(response.json()["receipt"]), encoding="utf-8")

    server.start()
    alex = _login(server.url, "alex")
    after = httpx.get(f"{server.url}/v1/consents/{active[0]['id']}", headers=alex).json()
    assert after["status"] == "revoked"
    assert after["revocation_reason"] == "changed my mind"
    server.stop()

    verified = neurogate("audit", "verify", env=server.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Ledger verified" in verified.stdout
    receipt = neurogate("audit", "verify-receipt", str(receipt_file), env=server.env)
    assert receipt.returncode == 0, receipt.stdout + receipt.stderr
