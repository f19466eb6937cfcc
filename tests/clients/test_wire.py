"""The protocol codec: binary frames, hello messages, and docs/protocol.md kept in step."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from neurogate_client.wire import (
    CHANNEL_TYPES,
    HEADER,
    HEADER_SIZE,
    KIND_DEVICE,
    KIND_FILTERED,
    KIND_RAW,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    QUOTE_CHARS,
    UNITS,
    CloseCode,
    FrameHeader,
    ProtocolError,
    decode_header,
    decode_samples,
    encode_frame,
    parse_hello,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
# The worked example of docs/protocol.md, section 7.
EXAMPLE_SAMPLES = np.array([[12.5, -3.25, 0.5], [100.0, 0.0, -7.75]])
EXAMPLE_SEQUENCE = 7
EXAMPLE_TIMESTAMP = 1700000000.0


def _header(*, magic: bytes = b"NG", version: int = 1, kind: int = 0, sequence: int = 0,
            timestamp: float = 0.0, n_channels: int = 2, n_samples: int = 3) -> bytes:
    return struct.pack("<2sBBIdHHI", magic, version, kind, sequence, timestamp, n_channels,
                       n_samples, 0)


def _hello(**fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "hello", "protocol": 1, "sampling_rate": 250,
        "channels": [{"name": "C3", "type": "eeg", "unit": "uV"},
                     {"name": "C4", "type": "eeg", "unit": "uV"}]}
    message.update(fields)
    return message


def _doc_block(info: str) -> str:
    blocks = re.findall(rf"^```{info}\n(.*?)^```$", DOC.read_text(encoding="utf-8"),
                        flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"docs/protocol.md must hold one ```{info} block"
    return str(blocks[0])


def test_frame_round_trip_keeps_samples_and_header() -> None:
    """Decoding an encoded frame gives back its header and its samples as float32."""
    rng = np.random.default_rng(0)
    samples = rng.normal(scale=50.0, size=(4, 25))
    frame = encode_frame(samples, sequence=41, timestamp=1712345678.125, kind=KIND_FILTERED)

    header = decode_header(frame)
    decoded = decode_samples(frame, header)

    assert header == FrameHeader(kind=KIND_FILTERED, sequence=41, timestamp=1712345678.125,
                                 n_channels=4, n_samples=25)
    assert decoded.shape == (4, 25)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, samples.astype(np.float32))


def test_frame_header_has_documented_layout() -> None:
    """Each header field sits at its documented offset, little-endian, samples sample-major."""
    samples = np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]])
    frame = encode_frame(samples, sequence=0x01020304, timestamp=1.5, kind=KIND_RAW)

    assert HEADER_SIZE == 24
    assert len(frame) == 24 + 4 * 2 * 3
    assert frame[0:2] == b"NG"
    assert frame[2] == PROTOCOL_VERSION == 1
    assert frame[3] == KIND_RAW == 1
    assert frame[4:8] == bytes([0x04, 0x03, 0x02, 0x01])
    assert struct.unpack_from("<d", frame, 8) == (1.5,)
    assert struct.unpack_from("<HH", frame, 16) == (2, 3)
    assert frame[20:24] == bytes(4)
    assert struct.unpack_from("<6f", frame, 24) == (1.0, -1.0, 2.0, -2.0, 3.0, -3.0)


def test_frame_kinds_have_documented_values() -> None:
    """Kind 0 is device samples, 1 raw and 2 filtered egress."""
    assert (KIND_DEVICE, KIND_RAW, KIND_FILTERED) == (0, 1, 2)


def test_frame_sequence_is_written_modulo_two_to_the_32() -> None:
    """A sequence number past uint32 is written modulo 2**32."""
    frame = encode_frame(np.zeros((1, 1)), sequence=2**32 + 5, timestamp=0.0)

    assert decode_header(frame).sequence == 5


@pytest.mark.parametrize(("shape", "match"), [
    ((3,), r"must be 2-D \(n_channels, n_samples\), got shape \(3,\)"),
    ((1, 2, 3), r"must be 2-D .* got shape \(1, 2, 3\)"),
    ((1, 65536), r"shape \(1, 65536\); a frame holds at most 65535 channels and 65535 samples"),
])
def test_encode_frame_bad_shape_raises(shape: tuple[int, ...], match: str) -> None:
    """Samples that do not fit one frame are refused with a ValueError naming the shape."""
    with pytest.raises(ValueError, match=match):
        encode_frame(np.zeros(shape), sequence=0, timestamp=0.0)


@pytest.mark.parametrize(("frame", "close_code", "match"), [
    pytest.param(b"NG\x01\x00" + bytes(6), CloseCode.BAD_FRAME,
                 r"has 10 bytes, fewer than the 24-byte header", id="short"),
    pytest.param(b"", CloseCode.BAD_FRAME, r"has 0 bytes, fewer than the 24-byte header",
                 id="empty"),
    pytest.param(_header(magic=b"XX", n_samples=1) + bytes(8), CloseCode.BAD_FRAME,
                 r"starts with b'XX' version 1; expected b'NG' version 1", id="bad-magic"),
    pytest.param(_header(version=2, n_samples=1) + bytes(8), CloseCode.BAD_FRAME,
                 r"starts with b'NG' version 2; expected b'NG' version 1", id="bad-version"),
    pytest.param(_header(n_channels=2, n_samples=3) + bytes(20), CloseCode.BAD_FRAME,
                 r"declares 2 channels x 3 samples \(48 bytes with the header\) but has 44",
                 id="size-mismatch"),
    pytest.param(_header(n_channels=2, n_samples=0), CloseCode.BAD_FRAME,
                 r"declares 2 channels x 0 samples, so it holds no samples", id="no-samples"),
    pytest.param(_header(n_channels=0, n_samples=5), CloseCode.BAD_FRAME,
                 r"declares 0 channels x 5 samples, so it holds no samples", id="no-channels"),
    pytest.param(_header(timestamp=float("nan"), n_samples=1) + bytes(8), CloseCode.BAD_FRAME,
                 r"timestamp is nan; it must be a finite number of seconds", id="nan-time"),
    pytest.param(_header(timestamp=float("inf"), n_samples=1) + bytes(8), CloseCode.BAD_FRAME,
                 r"timestamp is inf; it must be a finite number of seconds", id="inf-time"),
    pytest.param(bytes(MAX_FRAME_BYTES + 1), CloseCode.TOO_BIG,
                 r"has 1048577 bytes; the maximum is 1048576", id="too-big"),
])
def test_decode_header_bad_frame_raises(frame: bytes, close_code: int, match: str) -> None:
    """Each malformed frame raises a ProtocolError carrying the close code to use."""
    with pytest.raises(ProtocolError, match=match) as info:
        decode_header(frame)

    assert info.value.close_code == close_code


def test_decode_header_accepts_frame_just_under_max_size() -> None:
    """A frame 8 bytes under MAX_FRAME_BYTES (4 x 65534 samples) is accepted."""
    frame = encode_frame(np.zeros((4, 65534)), sequence=0, timestamp=0.0)

    assert len(frame) == MAX_FRAME_BYTES - 8
    assert decode_header(frame).n_samples == 65534


def test_parse_hello_returns_declared_stream() -> None:
    """A valid hello gives names, types, units, rate and the optional device id."""
    hello = parse_hello(_hello(sampling_rate=500.0, device_id="dev-1", channels=[
        {"name": "Cz", "type": "eeg", "unit": "µV"},
        {"name": "EOG", "type": "eog", "unit": "mV"},
        {"name": "Trig", "type": "stim"}]))

    assert hello.channel_names == ("Cz", "EOG", "Trig")
    assert hello.channel_types == ("eeg", "eog", "stim")
    assert hello.units == ("µV", "mV", "uV")  # "uV" when the unit is left out
    assert hello.sampling_rate == 500.0
    assert hello.device_id == "dev-1"


@pytest.mark.parametrize(("unit", "factor"), [
    ("V", 1.0), ("mV", 1e-3), ("uV", 1e-6), ("µV", 1e-6), ("nV", 1e-9)])
def test_hello_scale_to_volts_per_unit(unit: str, factor: float) -> None:
    """Each unit converts to volts by its documented factor."""
    hello = parse_hello(_hello(channels=[{"name": "C3", "type": "eeg", "unit": unit}]))

    scale = hello.scale_to_volts()

    assert scale.shape == (1, 1)
    assert scale[0, 0] == pytest.approx(factor, rel=1e-15)
    assert UNITS[unit] == factor


def test_parse_hello_accepts_every_channel_type() -> None:
    """Every documented channel type is accepted."""
    channels = [{"name": f"X{i}", "type": kind} for i, kind in enumerate(CHANNEL_TYPES)]

    hello = parse_hello(_hello(channels=channels))

    assert hello.channel_types == CHANNEL_TYPES
    assert set(CHANNEL_TYPES) == {"eeg", "eog", "ecg", "emg", "misc", "stim", "resp", "seeg",
                                  "ecog", "dbs"}


def test_parse_hello_accepts_512_channels() -> None:
    """The channel limit is 512, inclusive."""
    channels = [{"name": f"E{i}", "type": "eeg"} for i in range(512)]

    assert len(parse_hello(_hello(channels=channels)).channel_names) == 512


def test_parse_hello_accepts_names_of_32_characters() -> None:
    """Channel names of up to 32 characters and device ids of up to 64 pass."""
    hello = parse_hello(_hello(device_id="d" * 64,
                               channels=[{"name": "N" * 32, "type": "eeg"}]))

    assert hello.channel_names == ("N" * 32,)
    assert hello.device_id == "d" * 64


@pytest.mark.parametrize(("message", "field"), [
    pytest.param(_hello(channels=[{"name": "x" * (1 << 20), "type": "eeg"}]),
                 "channels[0].name", id="1MB-name"),
    pytest.param(_hello(channels=[{"name": "C3", "type": "t" * (1 << 20)}]),
                 "channels[0].type", id="1MB-type"),
    pytest.param(_hello(channels=[{"name": "C3", "type": "eeg", "unit": "u" * (1 << 20)}]),
                 "channels[0].unit", id="1MB-unit"),
    pytest.param(_hello(protocol="p" * (1 << 20)), "protocol", id="1MB-protocol"),
    pytest.param(_hello(sampling_rate=["r" * 1000] * 1000), "sampling_rate", id="1MB-rate"),
    pytest.param(_hello(device_id="d" * (1 << 20)), "device_id", id="1MB-device-id"),
])
def test_parse_hello_quotes_at_most_80_characters_of_a_bad_value(message: Any,
                                                                 field: str) -> None:
    """A huge bad value is refused naming its field; the message quotes 80 characters of it
    at most, so a 1 MB string does not come back in the error."""
    with pytest.raises(ProtocolError) as info:
        parse_hello(message)

    assert info.value.field == field
    assert f"'{field}'" in info.value.message
    quoted = re.findall(r"([a-z'\[\]]{20,}…?)", info.value.message)
    assert quoted and max(len(q) for q in quoted) <= QUOTE_CHARS
    assert len(info.value.message) < 400, info.value.message


@pytest.mark.parametrize(("message", "field", "match"), [
    pytest.param([1, 2], "type", r'must be a JSON object with "type": "hello"', id="list"),
    pytest.param("hello", "type", r'must be a JSON object with "type": "hello"', id="string"),
    pytest.param(_hello(type="bye"), "type", r'"type": "hello"', id="wrong-type"),
    pytest.param({k: v for k, v in _hello().items() if k != "type"}, "type", r'"type": "hello"',
                 id="no-type"),
    pytest.param(_hello(protocol=2), "protocol",
                 r"'protocol' field. Allowed values are 1, but got 2 instead", id="protocol-2"),
    pytest.param(_hello(protocol="1"), "protocol", r"but got '1' instead", id="protocol-str"),
    pytest.param(_hello(protocol=True), "protocol", r"but got True instead", id="protocol-bool"),
    pytest.param(_hello(protocol=None), "protocol", r"but got None instead", id="no-protocol"),
    pytest.param(_hello(channels="C3,C4"), "channels",
                 r"'channels' field. It must be a list of 1 to 512 objects", id="not-list"),
    pytest.param(_hello(channels=[]), "channels", r"list of 1 to 512", id="no-channels"),
    pytest.param(_hello(channels=[{"name": f"E{i}", "type": "eeg"} for i in range(513)]),
                 "channels", r"list of 1 to 512", id="513-channels"),
    pytest.param(_hello(channels=[{"name": "C3", "type": "eeg"}, "C4"]), "channels[1]",
                 r"'channels\[1\]'. It must be an object", id="channel-not-object"),
    pytest.param(_hello(channels=[{"type": "eeg"}]), "channels[0].name",
                 r"'channels\[0\].name'. It must be a string of 1 to 32 characters, but got "
                 r"NoneType None instead", id="no-name"),
    pytest.param(_hello(channels=[{"name": "", "type": "eeg"}]), "channels[0].name",
                 r"string of 1 to 32 characters, but got a string of 0 characters instead",
                 id="empty-name"),
    pytest.param(_hello(channels=[{"name": 3, "type": "eeg"}]), "channels[0].name",
                 r"string of 1 to 32 characters, but got int 3 instead", id="name-not-string"),
    pytest.param(_hello(channels=[{"name": "C" * 33, "type": "eeg"}]), "channels[0].name",
                 r"string of 1 to 32 characters, but got a string of 33 characters starting "
                 r"'CCC", id="name-33-chars"),
    pytest.param(_hello(device_id="d" * 65), "device_id",
                 r"'device_id'. It must be a string of 1 to 64 characters, but got a string of "
                 r"65 characters", id="device-id-65-chars"),
    pytest.param(_hello(channels=[{"name": "C3", "type": "EEG"}]), "channels[0].type",
                 r"'channels\[0\].type'. Allowed values are 'eeg', 'eog', .*, but got 'EEG'",
                 id="unknown-type"),
    pytest.param(_hello(channels=[{"name": "C3"}]), "channels[0].type", r"but got None",
                 id="no-type"),
    pytest.param(_hello(channels=[{"name": "C3", "type": "eeg", "unit": "μV"}]),
                 "channels[0].unit",
                 r"'channels\[0\].unit'. Allowed values are 'V', 'mV', 'uV', 'µV', 'nV', "
                 r"but got 'μV' instead", id="greek-mu-unit"),
    pytest.param(_hello(channels=[{"name": "C3", "type": "eeg", "unit": "volts"}]),
                 "channels[0].unit", r"but got 'volts' instead", id="unknown-unit"),
    pytest.param(_hello(sampling_rate=0), "sampling_rate",
                 r"'sampling_rate' field. It must be a number of Hz above 0 and at most 100000, "
                 r"but got 0 instead", id="rate-zero"),
    pytest.param(_hello(sampling_rate=-250), "sampling_rate", r"but got -250 instead",
                 id="rate-negative"),
    pytest.param(_hello(sampling_rate=100_001), "sampling_rate", r"but got 100001 instead",
                 id="rate-too-high"),
    pytest.param(_hello(sampling_rate="250"), "sampling_rate", r"but got '250' instead",
                 id="rate-string"),
    pytest.param(_hello(sampling_rate=True), "sampling_rate", r"but got True instead",
                 id="rate-bool"),
    pytest.param(_hello(sampling_rate=float("nan")), "sampling_rate", r"but got nan instead",
                 id="rate-nan"),
    pytest.param({k: v for k, v in _hello().items() if k != "sampling_rate"}, "sampling_rate",
                 r"but got None instead", id="no-rate"),
])
def test_parse_hello_bad_field_raises(message: Any, field: str, match: str) -> None:
    """Each bad hello raises a ProtocolError naming its field, closing with 4400."""
    with pytest.raises(ProtocolError, match=match) as info:
        parse_hello(message)

    assert info.value.field == field
    assert info.value.close_code == CloseCode.BAD_HELLO == 4400


def test_close_codes_have_documented_values() -> None:
    """The close codes keep their protocol-version-1 numbers."""
    assert {name: getattr(CloseCode, name) for name in dir(CloseCode)
            if name.isupper()} == {
        "NORMAL": 1000, "GOING_AWAY": 1001, "TOO_BIG": 1009, "BAD_HELLO": 4400,
        "UNAUTHENTICATED": 4401, "FORBIDDEN": 4403, "NOT_FOUND": 4404, "HELLO_TIMEOUT": 4408,
        "DUPLICATE_STREAM": 4409, "REVOKED": 4410, "BAD_FRAME": 4422, "RATE_EXCEEDED": 4429,
        "STORE_UNAVAILABLE": 4503}


def test_doc_worked_example_hex_equals_encoded_frame() -> None:
    """The hex dump in docs/protocol.md is exactly what encode_frame produces."""
    documented = bytearray()
    for line in _doc_block("hex").splitlines():
        offset, *octets = line.split()
        assert int(offset, 16) == len(documented), f"offset {offset} out of step"
        documented.extend(int(octet, 16) for octet in octets)

    frame = encode_frame(EXAMPLE_SAMPLES, sequence=EXAMPLE_SEQUENCE,
                         timestamp=EXAMPLE_TIMESTAMP)

    assert bytes(documented) == frame
    header = decode_header(bytes(documented))
    assert (header.sequence, header.timestamp) == (EXAMPLE_SEQUENCE, EXAMPLE_TIMESTAMP)
    np.testing.assert_array_equal(decode_samples(frame, header), EXAMPLE_SAMPLES)


def test_doc_close_code_table_lists_every_close_code() -> None:
    """Section 11 of docs/protocol.md has one row per CloseCode, with its name."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## 11. Close codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d{4}) \| `([A-Z_]+)` \|", section, flags=re.MULTILINE))

    expected = {str(getattr(CloseCode, name)): name for name in dir(CloseCode)
                if name.isupper()}
    assert rows == expected


def test_doc_header_format_matches_codec() -> None:
    """The struct format in docs/protocol.md (section 6 and the client) is the codec's."""
    text = DOC.read_text(encoding="utf-8")
    section_6 = text.split("## 6. Binary sample frame", 1)[1].split("\n## ", 1)[0]
    client = text.split("<!-- device-client -->", 1)[1]

    assert HEADER.format == "<2sBBIdHHI"
    assert '`"<2sBBIdHHI"`' in section_6
    assert 'struct.pack("<2sBBIdHHI"' in client
