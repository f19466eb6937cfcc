"""``neurogate devices ...`` without a gateway: what each command says when it cannot go on
(the commands streaming through a real gateway are in tests/e2e/test_devices_*.py)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pylsl
from typer.testing import CliRunner

from neurogate.devices import destroy_outlet
from neurogate.gateway.cli_devices import devices_app

runner = CliRunner()


def _dead_gateway() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_cli_stream_without_credentials_prints_the_registration_body() -> None:
    """No credentials: exit 2 with the exact POST /v1/devices body for this board."""
    result = runner.invoke(devices_app, ["stream", "--board", "synthetic"])
    assert result.exit_code == 2
    text = _flat(result.stderr)
    assert "BrainFlow board SYNTHETIC_BOARD is not registered with the gateway" in text
    body = json.loads(re.search(r"POST /v1/devices (\{.*?\})", text).group(1))  # type: ignore[union-attr]
    assert body["channel_names"][:3] == ["Fz", "C3", "Cz"] and body["sampling_rate"] == 250.0
    assert "POST /v1/devices/{id}/pairing" in text


def test_cli_lsl_in_of_an_unregistered_outlet_says_how_to_register() -> None:
    """A real LSL outlet without credentials: exit 2 with the body that registers it."""
    info = pylsl.StreamInfo("ng-cli-unregistered", "EEG", 2, 500.0, pylsl.cf_float32, "u1")
    channels = info.desc().append_child("channels")
    for label in ("O1", "O2"):
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        channel.append_child_value("unit", "microvolts")
    outlet = pylsl.StreamOutlet(info)
    try:
        result = runner.invoke(devices_app, ["lsl-in", "--name", "ng-cli-unregistered",
                                             "--gateway", _dead_gateway()])
    finally:
        destroy_outlet(outlet)
    assert result.exit_code == 2
    text = _flat(result.stderr)
    assert "This LSL outlet is not registered with the gateway" in text
    body = json.loads(re.search(r"POST /v1/devices (\{.*?\})", text).group(1))  # type: ignore[union-attr]
    assert body["channel_names"] == ["O1", "O2"]
    assert body["channel_types"] == ["eeg", "eeg"] and body["sampling_rate"] == 500.0


def test_cli_stream_refuses_an_unknown_board() -> None:
    """An unknown board exits 1 with the allowed names."""
    result = runner.invoke(devices_app, ["stream", "--board", "toaster"])
    assert result.exit_code == 1
    assert "Invalid value for the 'board' parameter" in _flat(result.stderr)


def test_cli_replay_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    """A missing recording is named, and nothing is streamed."""
    result = runner.invoke(devices_app, ["replay", str(tmp_path / "absent.edf"),
                                         "--client-id", "a", "--client-secret", "b"])
    assert result.exit_code == 1
    assert "does not exist or is not a file" in _flat(result.stderr)


def test_cli_lsl_out_reports_an_unreachable_gateway() -> None:
    """lsl-out against a gateway that is not there exits 1 and says so."""
    result = runner.invoke(devices_app, ["lsl-out", "--subject", "s", "--purpose",
                                         "clinical_monitoring", "--gateway", _dead_gateway(),
                                         "--client-id", "a", "--client-secret", "b"])
    assert result.exit_code == 1
    assert "cannot be reached for a token" in _flat(result.stderr)
