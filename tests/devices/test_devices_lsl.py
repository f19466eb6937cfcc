"""LSL in and out with real pylsl outlets and inlets on this host."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pylsl
import pytest

from neurogate.devices import LslInletAdapter, LslOutBridge, destroy_outlet, lsl_predicate
from neurogate.errors import DeviceError


def _name() -> str:
    return f"ng-unit-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def outlet_factory() -> Iterator[Any]:
    """Make outlets that are destroyed at the end of the test."""
    made: list[pylsl.StreamOutlet] = []

    def make(name: str, *, n: int = 2, rate: float = 100.0, kind: str = "EEG",
             labels: list[str] | None = None, unit: str | None = "microvolts",
             fmt: int = pylsl.cf_float32, source_id: str = "") -> pylsl.StreamOutlet:
        info = pylsl.StreamInfo(name, kind, n, rate, fmt, source_id or f"{name}-src")
        if labels is not None:
            channels = info.desc().append_child("channels")
            for label in labels:
                channel = channels.append_child("channel")
                channel.append_child_value("label", label)
                if unit is not None:
                    channel.append_child_value("unit", unit)
        outlet = pylsl.StreamOutlet(info)
        made.append(outlet)
        return outlet

    yield make
    for outlet in made:
        destroy_outlet(outlet)


@pytest.mark.parametrize(("props", "expected"), [
    ({"name": "Amp"}, "name='Amp'"),
    ({"type": "EEG", "source_id": "SN1"}, "type='EEG' and source_id='SN1'"),
    ({"name": "A", "type": "EEG", "source_id": "S"}, "name='A' and type='EEG' and source_id='S'"),
])
def test_lsl_predicate_matches_the_given_properties(props: dict[str, str], expected: str
                                                    ) -> None:
    """Given properties become an exact-match XPath predicate."""
    assert lsl_predicate(**props) == expected


def test_lsl_predicate_needs_a_property_and_no_quotes() -> None:
    """Nothing to match, or a quote that would break the predicate, is refused."""
    with pytest.raises(DeviceError, match=r"Give at least one of 'name', 'type' and"):
        lsl_predicate()
    with pytest.raises(DeviceError, match=r"'name' parameter may not contain a quote"):
        lsl_predicate(name="O'Neil")


def test_lsl_inlet_reads_an_outlet_in_volts_with_epoch_times(outlet_factory: Any) -> None:
    """Labels, types and units come from the outlet's metadata; samples arrive in volts."""
    name = _name()
    outlet = outlet_factory(name, labels=["C3", "C4"], source_id=f"{name}-SN42")
    adapter = LslInletAdapter(name=name, resolve_timeout=5)
    with adapter, adapter.streaming():
        info = adapter.info
        assert info.channel_names == ("C3", "C4")
        assert info.channel_types == ("eeg", "eeg") and info.units == ("uV", "uV")
        assert info.sfreq == 100.0
        assert info.identifying["source_id"] == f"{name}-SN42"
        assert f"{name}-SN42" not in repr(info.hello())
        sent = np.arange(40, dtype=np.float32).reshape(20, 2)
        outlet.push_chunk(sent)
        got = []
        deadline = time.monotonic() + 5
        while sum(c.shape[1] for c in got) < 20 and time.monotonic() < deadline:
            chunk = adapter.read(timeout=0.5)
            assert chunk is not None
            got.append(chunk.data)
            stamps = chunk.timestamps
            if chunk.n_times:
                assert abs(stamps[-1] - time.time()) < 2.0
    np.testing.assert_allclose(np.concatenate(got, axis=1), sent.T * 1e-6, rtol=1e-7)


def test_lsl_inlet_finds_an_outlet_by_type_and_source_id(outlet_factory: Any) -> None:
    """Type and source id select one outlet among several of the same name."""
    name = _name()
    outlet_factory(name, labels=["A", "B"], source_id=f"{name}-1")
    outlet_factory(name, labels=["X", "Y"], source_id=f"{name}-2")
    with LslInletAdapter(type="EEG", source_id=f"{name}-2") as adapter:
        assert adapter.info.channel_names == ("X", "Y")


def test_lsl_inlet_without_a_matching_outlet_says_how_to_look() -> None:
    """No outlet within the timeout: a DeviceError names the predicate and the remedy."""
    with pytest.raises(DeviceError, match=r"No LSL outlet matching name='ng-absent' was "
                                          r"found within 0.3 s.*resolve_streams"):
        LslInletAdapter(name="ng-absent", resolve_timeout=0.3).prepare()


def test_lsl_inlet_needs_units_when_the_outlet_has_none(outlet_factory: Any) -> None:
    """An outlet without channel metadata needs --unit; its names default to ch1, ch2."""
    name = _name()
    outlet_factory(name, labels=None)
    with pytest.raises(DeviceError, match=r"channel 'ch1' declares no unit.*--unit"):
        LslInletAdapter(name=name).prepare()
    with LslInletAdapter(name=name, unit="millivolts") as adapter:
        assert adapter.info.channel_names == ("ch1", "ch2")
        assert adapter.info.units == ("mV", "mV")
        assert adapter.info.channel_types == ("eeg", "eeg")


@pytest.mark.parametrize(("options", "match"), [
    ({"rate": pylsl.IRREGULAR_RATE}, r"irregular rate"),
    ({"fmt": pylsl.cf_string}, r"non-numeric samples"),
    ({"kind": "Markers"}, r"channel 'C3' has type 'none'.*--channel-type"),
])
def test_lsl_inlet_refuses_streams_that_cannot_be_devices(outlet_factory: Any,
                                                          options: dict[str, Any],
                                                          match: str) -> None:
    """Irregular, text and untyped streams are refused with the reason."""
    name = _name()
    outlet_factory(name, labels=["C3", "C4"], **options)
    with pytest.raises(DeviceError, match=match):
        LslInletAdapter(name=name).prepare()


def test_destroy_outlet_makes_it_vanish_at_once(outlet_factory: Any) -> None:
    """A destroyed outlet is no longer found; destroying twice is harmless."""
    name = _name()
    outlet = outlet_factory(name, labels=["C3", "C4"])
    assert pylsl.resolve_byprop("name", name, 1, 5)
    destroy_outlet(outlet)
    destroy_outlet(outlet)
    assert pylsl.resolve_byprop("name", name, 1, 1.0) == []


@dataclass
class _Subscription:
    """Just what LslOutBridge.publish reads of a subscription."""

    subject: str
    purpose: str


def test_lsl_out_bridge_publishes_each_product_as_its_own_outlet() -> None:
    """Raw becomes a multi-channel outlet at its rate; band power one sample per window
    with row x column channels; a message whose shape changed is skipped."""
    prefix = _name()
    bridge = LslOutBridge(_Subscription("s-1", "clinical_monitoring"),  # type: ignore[arg-type]
                          name_prefix=prefix)
    raw = {"type": "data", "product": "raw", "t": time.time(), "labels": ["C3", "C4"],
           "columns": [], "rate_hz": 250.0, "data": [[1e-6, 2e-6, 3e-6], [4e-6, 5e-6, 6e-6]]}
    power = {"type": "data", "product": "band_power", "t": time.time(), "labels": ["C3", "C4"],
             "columns": ["alpha", "beta"], "rate_hz": 1.0, "data": [[1e-12, 2e-12],
                                                                     [3e-12, 4e-12]]}
    try:
        bridge.publish(raw)
        bridge.publish(power)
        found = {s.name(): s for s in pylsl.resolve_bypred(f"starts-with(name,'{prefix} ')",
                                                           2, 5)}
        assert sorted(found) == [f"{prefix} band_power", f"{prefix} raw"]
        raw_info = found[f"{prefix} raw"]
        assert raw_info.channel_count() == 2 and raw_info.nominal_srate() == 250.0
        assert raw_info.source_id() == "neurogate:s-1:clinical_monitoring:raw"
        inlet = pylsl.StreamInlet(found[f"{prefix} band_power"])
        inlet.open_stream(5)
        time.sleep(0.2)
        bridge.publish(power)
        sample, _ = inlet.pull_sample(timeout=5)
        np.testing.assert_allclose(sample, [1e-12, 2e-12, 3e-12, 4e-12], rtol=1e-6)
        bridge.publish({**raw, "labels": ["C3"], "data": [[1e-6]]})
        assert bridge.skipped == 1
        assert bridge.published == {"raw": 3, "band_power": 2}
    finally:
        bridge.destroy()
    assert pylsl.resolve_bypred(f"starts-with(name,'{prefix} ')", 1, 1.0) == []
