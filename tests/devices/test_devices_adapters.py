"""The adapter model: DeviceInfo as data, one unit conversion, the lifecycle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from neurogate_client.wire import parse_hello
from numpy.typing import NDArray

from neurogate.devices import Adapter, DeviceInfo, normalize_unit, to_volts
from neurogate.errors import DeviceError


def _info(**changes: Any) -> DeviceInfo:
    fields: dict[str, Any] = {"channel_names": ("C3", "C4"), "channel_types": ("eeg", "eeg"),
                              "units": ("uV", "uV"), "sfreq": 250.0}
    fields.update(changes)
    return DeviceInfo(**fields)


@pytest.mark.parametrize(("unit", "expected"), [
    ("V", "V"), ("volts", "V"), ("mV", "mV"), ("millivolts", "mV"), ("uV", "uV"),
    ("µV", "uV"), ("μV", "uV"), ("microvolts", "uV"), (" Microvolts ", "uV"), ("nV", "nV"),
])
def test_normalize_unit_accepts_common_spellings(unit: str, expected: str) -> None:
    """Units as files and LSL spell them map to the protocol's names."""
    assert normalize_unit(unit) == expected


def test_normalize_unit_refuses_non_voltage() -> None:
    """A unit that is not a voltage is refused with the allowed values."""
    with pytest.raises(DeviceError, match=r"'unit' parameter\. Allowed values .* got 'degC'"):
        normalize_unit("degC")


def test_to_volts_scales_each_channel_by_its_unit() -> None:
    """Microvolts, millivolts and volts rows all come out in volts, as float64."""
    data = np.array([[10, -20], [1, 2], [0.5, 0.25]], dtype=np.float32)
    volts = to_volts(data, ["uV", "mV", "V"])
    assert volts.dtype == np.float64
    np.testing.assert_allclose(volts, [[10e-6, -20e-6], [1e-3, 2e-3], [0.5, 0.25]], rtol=1e-7)


def test_to_volts_refuses_a_shape_that_does_not_match_the_units() -> None:
    """Rows must match the units given (channels first, not transposed)."""
    with pytest.raises(DeviceError, match=r"shape \(n_channels, n_times\) with 2 channels, "
                                          r"but got shape \(3, 2\)"):
        to_volts(np.zeros((3, 2)), ["uV", "uV"])


@pytest.mark.parametrize(("changes", "match"), [
    ({"channel_names": ("C3", "C3")}, r"unique, but \['C3'\] appear more than once"),
    ({"channel_names": ("C3", " ")}, r"non-empty, but the channels at \[1\]"),
    ({"channel_types": ("eeg",)}, r"2 channel names, 1 channel types"),
    ({"channel_types": ("eeg", "meg")}, r"Invalid channel types \['meg'\]"),
    ({"units": ("uV", "furlong")}, r"got 'furlong'"),
    ({"sfreq": 0}, r"'sfreq' parameter must be finite and in \(0, 100000\] Hz"),
    ({"channel_names": (), "channel_types": (), "units": ()}, r"1 to 512 channels"),
])
def test_device_info_refuses_bad_layouts(changes: dict[str, Any], match: str) -> None:
    """A layout the protocol could not carry is refused with a whole-sentence message."""
    with pytest.raises(DeviceError, match=match):
        _info(**changes)


def test_device_info_hello_carries_layout_and_nothing_identifying() -> None:
    """The hello has names, types, volts and the rate; serials and source ids stay home."""
    info = _info(source_id="usb:SN-123", model="Cap",
                 identifying={"serial_number": "SN-123", "patient": "Jane Roe"})
    hello = info.hello()
    assert parse_hello(hello).channel_names == ("C3", "C4")
    assert parse_hello(hello).units == ("V", "V")
    text = repr(hello) + repr(info)
    for secret in ("SN-123", "Jane Roe", "usb:"):
        assert secret not in text
    assert "2 identifying fields withheld" in repr(info)
    assert info.registration(serial="S1") == {
        "model": "Cap", "serial": "S1", "channel_names": ["C3", "C4"],
        "channel_types": ["eeg", "eeg"], "sampling_rate": 250.0}


def test_device_info_identifying_facts_are_read_only() -> None:
    """Identifying facts cannot be changed after the fact (or leak through a shared dict)."""
    source = {"serial_number": "SN-1"}
    info = _info(identifying=source)
    source["serial_number"] = "changed"
    assert info.identifying["serial_number"] == "SN-1"
    with pytest.raises(TypeError):
        info.identifying["serial_number"] = "x"  # type: ignore[index]


class _Counter(Adapter):
    """A test double: a source that counts in microvolts and records its lifecycle."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.n = 0

    def _prepare(self) -> DeviceInfo:
        self.calls.append("prepare")
        return _info()

    def _start(self) -> None:
        self.calls.append("start")

    def _read(self, timeout: float) -> tuple[NDArray[np.generic], NDArray[np.float64]] | None:
        if self.n >= 3:
            return None
        self.n += 1
        return np.full((2, 4), float(self.n)), 100.0 + np.arange(4) / 250

    def _stop(self) -> None:
        self.calls.append("stop")

    def _release(self) -> None:
        self.calls.append("release")


def test_adapter_lifecycle_runs_through_context_managers() -> None:
    """prepare -> start -> read -> stop -> release, and read converts to volts."""
    adapter = _Counter()
    with adapter, adapter.streaming():
        assert adapter.state == "started"
        chunk = adapter.read()
        assert chunk is not None
        np.testing.assert_array_equal(chunk.data, np.full((2, 4), 1e-6))
        assert chunk.timestamps.shape == (4,)
        assert adapter.read() is not None and adapter.read() is not None
        assert adapter.read() is None
    assert adapter.calls == ["prepare", "start", "stop", "release"]
    assert adapter.state == "released"


def test_adapter_releases_after_an_error_inside_the_block() -> None:
    """An exception while streaming still stops and releases the source."""
    adapter = _Counter()
    boom = "boom"
    with pytest.raises(RuntimeError, match=boom), adapter, adapter.streaming():
        raise RuntimeError(boom)
    assert adapter.calls == ["prepare", "start", "stop", "release"]


@pytest.mark.parametrize(("steps", "match"), [
    ([], r"Cannot read a _Counter that is new; it must be started"),
    (["prepare"], r"Cannot read a _Counter that is prepared"),
    (["prepare", "prepare"], r"Cannot prepare a _Counter that is prepared; it must be new"),
    (["prepare", "release", "start"], r"Cannot start a _Counter that is released"),
])
def test_adapter_refuses_steps_out_of_order(steps: list[str], match: str) -> None:
    """Each lifecycle step names the state it needs and the state it found."""
    adapter = _Counter()
    with pytest.raises(DeviceError, match=match):
        for step in steps:
            getattr(adapter, step)()
        if steps[-1:] != ["start"] and steps.count("prepare") < 2:
            adapter.read()


def test_adapter_info_before_prepare_says_what_to_do() -> None:
    """Reading info before prepare() explains the order."""
    with pytest.raises(DeviceError, match=r"call prepare\(\) before reading info"):
        _ = _Counter().info
