"""``neurogate devices ...``: what each command says when it cannot go on (no gateway,
no credentials, a file MNE warns about or crashes on), and replays of ANT Neuro and
Neuroscan .cnt files through a real gateway process (the other commands streaming through
a gateway are in tests/e2e/test_devices_*.py)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pylsl
import pytest
from typer.testing import CliRunner

from neurogate.devices import FileAdapter, destroy_outlet
from neurogate.gateway.cli_devices import devices_app
from tests.devices.live_gateway import (
    GateProxy,
    LiveClinic,
    app_sample_count,
    assert_delivered,
    expected_raw,
    live_clinic,
    raw_samples,
    shared_recording,
    wait_until,
)

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


# -- replay: what it says before anything streams ----------------------------------
def _replay(*args: str) -> tuple[int, str]:
    result = runner.invoke(devices_app, ["replay", *args, "--client-id", "a",
                                         "--client-secret", "b"])
    return result.exit_code, _flat(result.stderr)


def test_cli_replay_fails_fast_when_the_gateway_cannot_be_reached() -> None:
    """No gateway at the address: exit 1 at once, with what to do, no traceback."""
    dead = _dead_gateway()
    code, text = _replay(str(shared_recording("test_reduced.edf")), "--length", "1",
                         "--gateway", dead)
    assert code == 1
    assert f"Error: the gateway at {dead} cannot be reached (ConnectError" in text
    assert "Start it with `neurogate serve`, or give its address with --gateway" in text
    assert "Traceback" not in text


def test_cli_replay_defaults_to_the_address_serve_listens_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --gateway the address comes from NEUROGATE_HOST and NEUROGATE_PORT."""
    from neurogate.settings import get_settings

    port = _dead_gateway().rsplit(":", 1)[1]
    monkeypatch.delenv("NEUROGATE_GATEWAY_URL", raising=False)
    monkeypatch.setenv("NEUROGATE_HOST", "0.0.0.0")
    monkeypatch.setenv("NEUROGATE_PORT", port)
    get_settings.cache_clear()
    try:
        code, text = _replay(str(shared_recording("test_reduced.edf")), "--length", "1")
    finally:
        get_settings.cache_clear()
    assert code == 1
    assert f"the gateway at http://127.0.0.1:{port} cannot be reached" in text


def test_cli_replay_of_a_crashing_reader_says_what_to_try() -> None:
    """MNE's Neuroscan reader crashes on this file without data_format: a sentence, exit 1."""
    code, text = _replay(str(shared_recording("test_CNT_events_mne_JWoess_clipped.cnt")),
                         "--gateway", _dead_gateway())
    assert code == 1
    assert "Error: MNE's reader crashed while reading" in text
    assert "data_format='int16'" in text and "Traceback" not in text


def test_cli_replay_shows_mne_warnings_and_strict_refuses_them(tmp_path: Path) -> None:
    """A truncated EDF: MNE's warning is shown; with --strict the replay refuses it."""
    source = shared_recording("test_reduced.edf").read_bytes()
    truncated = tmp_path / "cut.edf"
    truncated.write_bytes(source[:-100_000])
    dead = _dead_gateway()

    code, text = _replay(str(truncated), "--gateway", dead)
    strict_code, strict_text = _replay(str(truncated), "--strict", "--gateway", dead)

    assert code == 1  # it went on to the (absent) gateway
    assert ("Warning: MNE: Number of records from the header does not match the file size"
            in text)
    assert "cannot be reached" in text
    assert strict_code == 1
    assert "Error: MNE warned about 'cut.edf' and strict reading refuses warnings" in (
        strict_text)
    assert "cannot be reached" not in strict_text


@pytest.mark.parametrize(("option", "match"), [
    ("data_format", "It must be NAME=VALUE, e.g. data_format=int16, but got 'data_format'"),
    ("data-format=int16", "It must be NAME=VALUE"),
    ("data_fmt=int16", "does not take the reader option(s) 'data_fmt'"),
])
def test_cli_replay_refuses_bad_reader_options(option: str, match: str) -> None:
    """A reader option that is not NAME=VALUE, or not the reader's, is named; exit 1."""
    code, text = _replay(str(shared_recording("test_reduced.edf")), "--reader-option", option,
                         "--gateway", _dead_gateway())
    assert code == 1
    assert match in text


def test_reader_options_parse_numbers_booleans_and_strings() -> None:
    """NAME=VALUE strings become MNE keyword arguments of the right type."""
    from neurogate.gateway.cli_devices import reader_options

    assert reader_options(["data_format=int16", "n_samples=100", "scale=0.5",
                           "preload=true", "eog=none"]) == {
        "data_format": "int16", "n_samples": 100, "scale": 0.5, "preload": True, "eog": None}


# -- replay through a gateway -------------------------------------------------------
IDENTITY = ("antio test", "2024-08-14", "2024-09-06", "eego", "EE_226", "2018-01-03")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveClinic]:
    """A gateway process with the test clinic."""
    with live_clinic(tmp_path_factory.mktemp("cli-replay")) as clinic:
        yield clinic


@pytest.mark.parametrize(("name", "options", "length"), [
    pytest.param("test-na-271.cnt", [], None, id="ant"),
    pytest.param("test_CNT_events_mne_JWoess_clipped.cnt",
                 ["--reader-option", "data_format=int16"], 2.0, id="neuroscan"),
])
def test_cli_replay_of_cnt_delivers_every_sample_and_no_identity(
        live: LiveClinic, name: str, options: list[str], length: float | None) -> None:
    """`neurogate devices replay` of an ANT and a Neuroscan .cnt: the gateway confirms every
    sample, the app receives all of them (at the purpose's rate), and nothing of the file's
    header (the ANT file names a subject and a birth date) reaches the app."""
    path = shared_recording(name)
    reader = {"data_format": "int16"} if options else {}
    with FileAdapter(path, reader_options=reader, duration_s=length) as adapter:
        info, source = adapter.info, adapter._data
        assert "subject_info.first_name" in info.identifying or name.endswith("clipped.cnt")
    assert source is not None
    _, (client_id, secret) = live.register(info, serial=f"SN-{name}")
    app = live.subscribe()
    limit = ["--length", str(length)] if length else []

    result = runner.invoke(devices_app, [
        "replay", str(path), *options, *limit, "--speed", "1.4", "--gateway", live.url,
        "--client-id", client_id, "--client-secret", secret, "--json", "--max-loss", "0"])

    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["lost_samples"] == 0
    assert summary["delivered_samples"] == summary["pushed_samples"] == source.shape[1]
    expected, rate = expected_raw(source, info.sfreq)
    assert wait_until(lambda: app_sample_count(app) >= expected.shape[1], 15)
    app.close()
    _, data, labels = raw_samples(app)
    assert labels == list(info.channel_names)
    assert_delivered(data, expected, atol=1e-15)
    received = json.dumps([m for _, m in app.messages if not isinstance(m, bytes)])
    for value in IDENTITY:
        assert value not in received


@pytest.mark.parametrize(("lost", "max_loss", "exits"), [
    (0, 0.0, False), (1, 0.01, False), (2, 0.01, True), (100, 1.0, False)])
def test_loss_beyond_max_loss_exits_3(lost: int, max_loss: float, exits: bool,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """More lost than --max-loss of the pushed samples: the counts, and exit code 3."""
    import dataclasses

    import typer
    from neurogate_client import ClientStats

    from neurogate.gateway.cli_devices import _check_loss

    zero = {f.name: 0 for f in dataclasses.fields(ClientStats)}
    stats = ClientStats(**{**zero, "connected": False, "pushed_samples": 100,
                           "lost_samples": lost})
    if not exits:
        _check_loss(stats, max_loss)
        return
    with pytest.raises(typer.Exit) as info:
        _check_loss(stats, max_loss)
    assert info.value.exit_code == 3
    assert (f"Error: {lost} of 100 samples were lost ({lost}.00%), more than --max-loss "
            f"{max_loss:g} allows.") in _flat(capsys.readouterr().err)


def test_cli_stream_exits_3_when_the_gateway_goes_away_and_samples_are_lost(
        live: LiveClinic) -> None:
    """The synthetic board streams through a proxy that then drops every connection and
    refuses new ones: the tiny buffer overflows, and beyond --max-loss the command prints
    the counts and exits 3."""
    import threading

    from neurogate.devices import BrainFlowAdapter

    with BrainFlowAdapter("synthetic") as board:
        info = board.info
    _, (client_id, secret) = live.register(info, serial="SN-gone")
    gate = GateProxy(live.server.port)
    app = live.subscribe()
    stop = threading.Event()

    def cut_once_data_flows() -> None:
        if wait_until(lambda: stop.is_set() or app_sample_count(app) > 0, 60):
            gate.is_open.clear()  # any connection still accepted is dropped at once
            gate.close()

    cutter = threading.Thread(target=cut_once_data_flows, daemon=True)
    cutter.start()
    try:
        done = runner.invoke(devices_app, [
            "stream", "--board", "synthetic", "--duration", "3", "--buffer-seconds", "0.1",
            "--gateway", gate.url, "--client-id", client_id, "--client-secret", secret,
            "--json", "--max-loss", "0.05"])
    finally:
        stop.set()
        cutter.join(5)
        gate.close()
        app.close()

    assert done.exit_code == 3, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["connections"] >= 1  # it streamed before the gateway went away
    assert summary["lost_samples"] / summary["pushed_samples"] > 0.05
    text = _flat(done.stderr)
    assert f"Error: {summary['lost_samples']} of {summary['pushed_samples']} samples" in text
    assert "more than --max-loss 0.05 allows" in text
