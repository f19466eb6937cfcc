"""File replay never passes on what a recording's header says about a person, a unit of
equipment or a session: checked on ../shared/data/eeg/test_reduced.edf, on a copy whose
EDF header carries a realistic identity, and on a FIF file with every identifying field
MNE knows, against everything an app and the public ledger receive."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pytest
from neurogate_client import DeviceClient

from neurogate.devices import FileAdapter, stream_adapter
from tests.devices.live_gateway import LiveClinic, live_clinic, shared_recording, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.data]

PLANTED_PATIENT = "MCH-0234567 F 02-MAY-1951 Haagse_Harry"
PLANTED_RECORDING = "Startdate 02-MAR-2002 EMR7654 Dr._Jones BioSemi_ActiveTwo_SN4711"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveClinic]:
    """A gateway with a clinic."""
    with live_clinic(tmp_path_factory.mktemp("privacy")) as clinic:
        yield clinic


def _edf_field(text: str, size: int) -> bytes:
    data = text.encode("ascii")
    assert len(data) <= size
    return data + b" " * (size - len(data))


def _planted_edf(source: Path, target: Path) -> Path:
    """A copy of the EDF whose fixed header names a patient, a technician and a serial."""
    shutil.copyfile(source, target)
    with target.open("r+b") as handle:
        handle.seek(8)
        handle.write(_edf_field(PLANTED_PATIENT, 80) + _edf_field(PLANTED_RECORDING, 80)
                     + _edf_field("02.03.02", 8) + _edf_field("14.53.07", 8))
    return target


def _planted_fif(source: Path, target: Path) -> Path:
    """A FIF file with subject, device, experimenter and free-text annotations."""
    raw = mne.io.read_raw(source, verbose="error").crop(0, 3.0, include_tmax=False)
    raw.load_data(verbose="error")
    raw.set_meas_date(dt.datetime(2019, 8, 17, 9, 41, 26, tzinfo=dt.UTC))
    raw.info["subject_info"] = {"his_id": "PAT-99812", "first_name": "Ingrid",
                                "last_name": "Bergstrom", "birthday": dt.date(1987, 11, 23),
                                "sex": 2}
    raw.info["device_info"] = {"type": "EEG amplifier", "model": "ActiChamp-Plus",
                               "serial": "AMP-SN-55501", "site": "Ward 7 Oslo"}
    raw.info["experimenter"] = "Olav Nyhus"
    raw.info["description"] = "Follow-up of Ingrid after surgery"
    raw.set_annotations(mne.Annotations([0.5], [0.1],
                                        ["nurse Margarethe Vollstedt saw a seizure"]))
    raw.save(target, verbose="error")
    return target


def _needles(path: Path) -> set[str]:
    """Identifying text of a recording, read with MNE and from its raw EDF header."""
    raw = mne.io.read_raw(path, verbose="error")
    info = raw.info
    found: set[str] = set()
    for value in (info.get("subject_info") or {}).values():
        found.add(str(value))
    for key in ("device_info",):
        found.update(str(v) for v in (info.get(key) or {}).values())
    for key in ("experimenter", "description"):
        if info.get(key):
            found.add(str(info[key]))
    # Free-text annotations may name people; short ones ("start", "type A") are codes.
    found.update(str(d) for d in raw.annotations.description if len(d) >= 12)
    meas = info["meas_date"]
    if meas is not None:
        found.update({meas.strftime("%Y-%m-%d"), meas.strftime("%Y-%m-%dT%H:%M:%S"),
                      meas.strftime("%Y-%m-%d %H:%M:%S"),
                      meas.strftime("%d-%b-%Y").upper(), meas.strftime("%d.%m.%y"),
                      meas.strftime("%H.%M.%S"), str(int(meas.timestamp()))})
    if path.suffix.lower() == ".edf":
        header = path.read_bytes()[:256].decode("latin-1")
        for offset, size in ((8, 80), (88, 80), (168, 8), (176, 8)):
            text = header[offset:offset + size].strip()
            found.add(text)
            found.update(text.split())
    # One-letter placeholders ("X") and sex codes cannot be searched for meaningfully;
    # the planted copies carry realistic values of the same fields.
    return {n for n in found if len(n) >= 4 and not n.isdigit() or n.isdigit() and len(n) > 6}


def _replay(live: LiveClinic, path: Path, seconds: float) -> tuple[list[Any], float]:
    """Replay ``path`` to the clinical app; return every message it got, and the start."""
    adapter = FileAdapter(path, duration_s=seconds, speed=4.0)
    with adapter:
        _, creds = live.register(adapter.info)
        hello = json.dumps(adapter.info.hello())
        app = live.subscribe()
        began = time.time()
        with DeviceClient(live.url, client_id=creds[0], client_secret=creds[1],
                          info=adapter.info) as client, adapter.streaming():
            assert client.wait_connected(10)
            stream_adapter(adapter, client, block=True)
    assert wait_until(lambda: {m["product"] for m in app.data()} >= {
        "raw", "filtered", "band_power", "signal_quality"}, 10)
    time.sleep(0.3)
    app.close()
    return [hello, app.first, *[m for _, m in app.messages]], began


def test_replay_leaks_no_identifying_header_field_to_apps_or_the_ledger(
        live: LiveClinic, tmp_path: Path) -> None:
    """Patient name, id and birth date, recording date and time, technician, equipment
    serials and annotation text of three recordings appear nowhere an app or the public
    ledger can read; the samples' timestamps are the replay's, not the recording's."""
    edf = shared_recording("test_reduced.edf")
    files = [edf, _planted_edf(edf, tmp_path / "planted.edf"),
             _planted_fif(edf, tmp_path / "planted_raw.fif")]
    needles = {path.name: _needles(path) for path in files}
    assert {"29-APR-2014", "2014-04-29", "22.19.44"} <= needles["test_reduced.edf"]
    assert {"MCH-0234567", "Haagse", "1951-05-02", "EMR7654", "BioSemi_ActiveTwo_SN4711",
            "2002-03-02"} <= needles["planted.edf"]
    assert {"PAT-99812", "Ingrid", "AMP-SN-55501", "Olav Nyhus",
            "nurse Margarethe Vollstedt saw a seizure", "2019-08-17"} <= needles[
        "planted_raw.fif"]
    received: list[Any] = []
    for path in files:
        messages, began = _replay(live, path, 3.0)
        received += messages
        times = [m["t"] for m in messages[2:] if isinstance(m, dict) and m.get("type") == "data"]
        assert times and min(times) > began - 5.0, "timestamps are the replay's own"
    assert wait_until(lambda: sum(leaf["action"] == "stream.stop" and "device" in leaf
                                  for leaf in live.ledger()) == 3, 10)
    ledger = live.ledger()
    assert len(ledger) > 10
    app_text = json.dumps(received, ensure_ascii=False)
    ledger_text = json.dumps([leaf["raw"] for leaf in ledger], ensure_ascii=False)
    for name, found in needles.items():
        leaked = sorted(n for n in found if n in app_text or n in ledger_text)
        assert leaked == [], f"{name}: {leaked} reached an app or the ledger"
    # The samples themselves did arrive: this is a real stream, not an empty one.
    raw_values = [np.asarray(m["data"]) for m in received
                  if isinstance(m, dict) and m.get("product") == "raw"]
    assert sum(v.shape[1] for v in raw_values) >= 3 * 170
