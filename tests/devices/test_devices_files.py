"""File replay: any recording MNE reads, its layout as data, its header kept home, paced."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pytest

from neurogate.devices import FileAdapter, identifying_fields
from neurogate.errors import DeviceError
from tests.devices.live_gateway import shared_recording

pytestmark = pytest.mark.data


class FakeClock:
    """A wall clock that only moves when the adapter sleeps."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@pytest.mark.parametrize(("name", "n_channels", "sfreq"), [
    ("test_raw.set", 32, 128.0), ("test_reduced.edf", 138, 512.0),
    ("test_generator_2.bdf", 11, 200.0),
])
def test_file_adapter_reads_each_shared_recording(name: str, n_channels: int,
                                                  sfreq: float) -> None:
    """Layout and samples come from MNE: EEG channels, the file's rate, volts."""
    path = shared_recording(name)
    raw = mne.io.read_raw(path, verbose="error")
    adapter = FileAdapter(path, start_s=1.0, duration_s=0.5, speed=100.0)
    with adapter, adapter.streaming():
        info = adapter.info
        chunks = []
        while (chunk := adapter.read(timeout=1.0)) is not None:
            chunks.append(chunk)
    assert info.n_channels == n_channels and info.sfreq == sfreq
    assert set(info.channel_types) == {"eeg"} and set(info.units) == {"V"}
    data = np.concatenate([c.data for c in chunks], axis=1)
    picks = [raw.ch_names.index(n) for n in info.channel_names]
    start = round(1.0 * sfreq)
    expected = raw.get_data(picks=picks, start=start, stop=start + round(0.5 * sfreq),
                            verbose="error")
    np.testing.assert_array_equal(data, expected)
    stamps = np.concatenate([c.timestamps for c in chunks])
    np.testing.assert_allclose(np.diff(stamps), 1 / sfreq, rtol=0, atol=1e-6)


def test_file_adapter_keeps_the_edf_header_out_of_what_it_hands_on() -> None:
    """The EDF's patient and recording fields and its date are listed as identifying and
    appear in neither the hello, the registration, nor the timestamps."""
    path = shared_recording("test_reduced.edf")
    clock = FakeClock()
    adapter = FileAdapter(path, duration_s=0.2, clock=clock.time, sleep=clock.sleep)
    with adapter, adapter.streaming():
        info = adapter.info
        first = adapter.read(timeout=1.0)
    assert first is not None
    assert info.identifying["header.recording identification"].startswith(
        "Startdate 29-APR-2014")
    assert info.identifying["meas_date"].startswith("2014-04-29 22:19:44")
    assert "subject_info.his_id" in info.identifying
    shared = json.dumps([info.hello(), info.registration()]) + repr(info)
    for value in ("29-APR-2014", "2014-04-29", "22.19.44", "X X X X", "Startdate"):
        assert value not in shared
    assert abs(first.timestamps[0] - 1_800_000_000.0) < 1.0


def test_file_adapter_identifying_fields_cover_fif_subject_and_device() -> None:
    """Subject, device, experimenter and annotations of a FIF file are found (annotations
    counted, not copied)."""
    path = shared_recording("test_raw.set")
    raw = mne.io.read_raw(path, verbose="error")
    raw.info["subject_info"] = {"his_id": "P-77", "last_name": "Roe"}
    raw.info["device_info"] = {"serial": "AMP-1"}
    raw.info["experimenter"] = "Dr Who"
    found = identifying_fields(raw)
    assert found["subject_info.his_id"] == "P-77"
    assert found["device_info.serial"] == "AMP-1"
    assert found["experimenter"] == "Dr Who"
    assert found["annotations"] == "154 annotations (descriptions not read)"
    assert "square" not in json.dumps(found)


def test_file_adapter_paces_replay_by_speed() -> None:
    """At speed 4, one second of recording takes a quarter of a second of wall clock."""
    path = shared_recording("test_generator_2.bdf")
    clock = FakeClock()
    adapter = FileAdapter(path, duration_s=1.0, speed=4.0, clock=clock.time,
                          sleep=clock.sleep)
    with adapter, adapter.streaming():
        total = 0
        while (chunk := adapter.read(timeout=1.0)) is not None:
            total += chunk.n_times
    assert total == 200
    assert clock.slept == pytest.approx(0.25, abs=1e-9)
    assert adapter.position == adapter.n_times == 200


def test_file_adapter_sends_stim_only_when_asked() -> None:
    """Stim channels are dropped unless their type is asked for, then declared as stim."""
    path = shared_recording("test_reduced.edf")
    with FileAdapter(path, types=("eeg", "stim")) as adapter:
        assert adapter.info.n_channels == 139
        assert adapter.info.channel_types[-1] == "stim"
        assert adapter.info.channel_names[-1] == "Status"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"types": ("eeg", "bio")}, r"'types' parameter\. Allowed values are 'eeg', 'eog'"),
    ({"types": ("ecog",)}, r"has no channels of the types \['ecog'\]; it has \['eeg'\]"),
    ({"start_s": 1000.0}, r"'start_s' parameter is 1000 s but the recording lasts 238.3"),
    ({"speed": 0}, r"'speed' parameter must be finite and in \(0, 1000\]"),
])
def test_file_adapter_refuses_bad_requests(kwargs: dict[str, object], match: str) -> None:
    """Bad types, slices and speeds are refused with what is allowed."""
    path = shared_recording("test_raw.set")
    with pytest.raises(DeviceError, match=match):
        FileAdapter(path, **kwargs).prepare()  # type: ignore[arg-type]


def test_file_adapter_refuses_missing_and_unreadable_files(tmp_path: Path) -> None:
    """A missing file and a file MNE cannot read both raise DeviceError with advice."""
    with pytest.raises(DeviceError, match=r"does not exist or is not a file"):
        FileAdapter(tmp_path / "absent.edf").prepare()
    junk = tmp_path / "notes.txt"
    junk.write_text("not a recording")
    with pytest.raises(DeviceError, match=r"MNE could not read 'notes.txt'.*mne.io.read_raw"):
        FileAdapter(junk).prepare()


def test_file_adapter_reads_ant_neuro_cnt_and_keeps_its_subject_home() -> None:
    """An ANT Neuro .cnt (MNE's antio reader) replays; its subject and birth date stay in
    ``identifying``, out of the registration and the hello."""
    adapter = FileAdapter(shared_recording("test-na-271.cnt"))
    with adapter:
        info = adapter.info
        wire = json.dumps([info.registration(), info.hello()])
    assert (len(info.channel_names), info.sfreq, adapter.n_times) == (128, 500.0, 2295)
    assert set(info.channel_types) == {"eeg"}
    assert info.identifying["subject_info.first_name"] == "antio test"
    assert info.identifying["subject_info.birthday"] == "2024-08-14"
    for value in ("antio test", "2024-08-14", "2024-09-06", "eego", "EE_226"):
        assert value not in wire


def test_file_adapter_passes_reader_options_to_neuroscan_cnt() -> None:
    """A Neuroscan .cnt replays with data_format='int16' passed through to MNE."""
    adapter = FileAdapter(shared_recording("test_CNT_events_mne_JWoess_clipped.cnt"),
                          reader_options={"data_format": "int16"}, duration_s=2.0)
    with adapter:
        assert adapter.info.channel_names == ("F8", "FCz")
        assert (adapter.info.sfreq, adapter.n_times) == (1000.0, 2000)
        assert adapter.warnings  # MNE says it dropped annotations outside the data


def test_file_adapter_isolated_reader_crash_is_a_device_error() -> None:
    """MNE's Neuroscan reader crashes the process on this file without data_format; read
    in a child process, that is a DeviceError saying what to try."""
    adapter = FileAdapter(shared_recording("test_CNT_events_mne_JWoess_clipped.cnt"),
                          isolate=True)
    with pytest.raises(DeviceError, match=r"MNE's reader crashed while reading "
                                          r"'test_CNT_events_mne_JWoess_clipped\.cnt' \(signal "
                                          r"11 \(SIGSEGV\)\).*data_format='int16'"):
        adapter.prepare()


def test_file_adapter_isolated_reads_what_in_process_reads() -> None:
    """The child process hands back the same samples, layout and warnings."""
    path = shared_recording("test_CNT_events_mne_JWoess_clipped.cnt")
    kwargs = {"reader_options": {"data_format": "int16"}, "duration_s": 1.0}
    with FileAdapter(path, **kwargs) as here, FileAdapter(path, isolate=True, **kwargs) as there:
        assert here.info == there.info and here.warnings == there.warnings
        assert here._data is not None and there._data is not None
        np.testing.assert_array_equal(here._data, there._data)


def _truncated_edf(tmp_path: Path) -> Path:
    """test_reduced.edf with its last 100000 bytes cut: the header promises more records."""
    source = shared_recording("test_reduced.edf").read_bytes()
    path = tmp_path / "truncated.edf"
    path.write_bytes(source[:-100_000])
    return path


def test_file_adapter_keeps_mne_warnings_about_a_truncated_edf(tmp_path: Path) -> None:
    """MNE's warning about a truncated EDF is kept for the caller; strict refuses it."""
    path = _truncated_edf(tmp_path)
    with FileAdapter(path) as adapter:
        assert adapter.n_times > 0
        assert any("Number of records from the header does not match the file size" in w
                   for w in adapter.warnings), adapter.warnings
    with pytest.raises(DeviceError, match=r"MNE warned about 'truncated\.edf' and strict "
                                          r"reading refuses warnings: Number of records"):
        FileAdapter(path, strict=True).prepare()


def test_file_adapter_refuses_an_option_its_reader_does_not_take() -> None:
    """An unknown reader option is named in the error."""
    path = shared_recording("test_reduced.edf")
    with pytest.raises(DeviceError, match=r"reader for 'test_reduced\.edf' does not take the "
                                          r"reader option\(s\) 'data_fmt'") as info:
        FileAdapter(path, reader_options={"data_fmt": "int16"}).prepare()
    assert info.value.field == "reader_options"
