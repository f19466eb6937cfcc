"""AES-256-GCM segments: associated data binds each to its place; any change fails."""

from __future__ import annotations

import base64

import pytest

from neurogate.errors import ValidationError
from neurogate.recordings import (
    RecordingError,
    decrypt,
    encrypt,
    generate_key,
    load_keyring,
    parse_keyring,
    segment_aad,
)

KEY = generate_key()


def _sealed(index: int, product: str = "raw") -> tuple[bytes, bytes, bytes]:
    aad = segment_aad("rec-1", index, product, 1)
    nonce, ciphertext = encrypt(KEY, f"segment {index} of {product}".encode(), aad)
    return nonce, ciphertext, aad


def test_segment_decrypts_with_its_own_associated_data() -> None:
    """The round trip works (so the failures below are not failures of everything)."""
    nonce, ciphertext, aad = _sealed(3)
    assert decrypt(KEY, nonce, ciphertext, aad, what="segment") == b"segment 3 of raw"


@pytest.mark.parametrize("other", [
    ("rec-2", 3, "raw", 1), ("rec-1", 4, "raw", 1), ("rec-1", 3, "filtered", 1),
    ("rec-1", 3, "raw", 2)])
def test_segment_fails_under_another_segments_associated_data(
        other: tuple[str, int, str, int]) -> None:
    """Another recording id, index, product or key version: the segment does not open."""
    nonce, ciphertext, _ = _sealed(3)
    with pytest.raises(RecordingError, match="does not decrypt"):
        decrypt(KEY, nonce, ciphertext, segment_aad(*other), what="segment")


def test_swapping_two_ciphertexts_fails() -> None:
    """Each segment's ciphertext under the other's nonce and place fails both ways."""
    a, b = _sealed(0), _sealed(1)
    with pytest.raises(RecordingError):
        decrypt(KEY, a[0], b[1], a[2], what="segment")
    with pytest.raises(RecordingError):
        decrypt(KEY, b[0], a[1], b[2], what="segment")
    with pytest.raises(RecordingError):  # even keeping each nonce with its ciphertext
        decrypt(KEY, b[0], b[1], a[2], what="segment")


@pytest.mark.parametrize("part", ["nonce", "ciphertext", "tag"])
@pytest.mark.parametrize("position", [0, -1])
def test_one_byte_change_fails(part: str, position: int) -> None:
    """Flipping one bit of the nonce, the ciphertext body or the tag fails."""
    nonce, ciphertext, aad = _sealed(5)
    body, tag = bytearray(ciphertext[:-16]), bytearray(ciphertext[-16:])
    target = {"nonce": bytearray(nonce), "ciphertext": body, "tag": tag}[part]
    target[position] ^= 0x01
    changed_nonce = bytes(target) if part == "nonce" else nonce
    with pytest.raises(RecordingError, match="does not decrypt"):
        decrypt(KEY, changed_nonce, bytes(body) + bytes(tag), aad, what="segment")


def test_nonces_are_96_bits_and_fresh() -> None:
    """Every encryption draws a new 12-byte nonce."""
    nonces = {encrypt(KEY, b"x", b"aad")[0] for _ in range(2000)}
    assert len(nonces) == 2000
    assert {len(n) for n in nonces} == {12}


def test_keyring_refuses_a_key_file_inside_the_data_directory(tmp_path) -> None:
    """The key-encryption key may not sit beside the data."""
    with pytest.raises(ValidationError, match="inside NEUROGATE_DATA_DIR"):
        load_keyring(kek_file=tmp_path / "data" / "kek", kek=None, data_dir=tmp_path / "data")


def test_keyring_line_errors_name_the_line() -> None:
    """A bad keyring line is refused with the expected format."""
    with pytest.raises(ValidationError, match="line 2 must be 'v<version> <base64 key>'"):
        parse_keyring(f"v1 {base64.b64encode(KEY).decode()}\nbogus\n", "NEUROGATE_RECORDING_KEK")
    with pytest.raises(ValidationError, match="32-byte key, but got version 1 and 3 bytes"):
        parse_keyring("v1 AAAA\n", "NEUROGATE_RECORDING_KEK")


@pytest.mark.parametrize("name", ["recording_segment_seconds", "retention_sweep_seconds"])
def test_recording_settings_name_the_field_and_the_range(name: str) -> None:
    """A zero segment length or sweep interval is refused with the variable's name."""
    from pydantic import ValidationError as SettingsError

    from neurogate.settings import Settings

    with pytest.raises(SettingsError, match=f"NEUROGATE_{name.upper()}. Allowed values are "
                                            "greater than 0 and at most 86400 seconds, but "
                                            "got 0.0 instead"):
        Settings(**{name: 0.0})
