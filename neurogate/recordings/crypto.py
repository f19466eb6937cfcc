"""AES-256-GCM for recordings: per-subject data keys wrapped by a key-encryption key.

Every segment is encrypted under its subject's data key with a fresh 96-bit random
nonce, and with associated data that binds it to its recording id, segment index,
product and key version: a ciphertext moved to another place, another recording or
another product no longer decrypts. Data keys are wrapped (AES-256-GCM again) under the
key-encryption key (KEK) of a numbered version, with associated data naming the subject
and the version. The KEK comes from a key file or from a setting, and the wrapped data
keys live in a key directory (``NEUROGATE_RECORDING_KEY_DIR``, by default ``data-keys``
beside the key file), never in the data directory: a copy of the database and the
segment files decrypts nothing, and once erasure has deleted a subject's wrapped key, not
even a copy taken before the erasure does.

A keyring (file or ``NEUROGATE_RECORDING_KEK``) holds one line per KEK version::

    v1 <base64 of 32 random bytes>

The highest version wraps new data keys; rotation adds a version, re-wraps every data
key under it and then removes the older lines.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from neurogate.consent.merkle import canonical_json
from neurogate.errors import ConflictError, ValidationError

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit GCM nonce
TAG_BYTES = 16


class RecordingError(ConflictError):
    """A recording cannot be read or written: a key is missing or a ciphertext fails."""

    code = "recording_unavailable"


@dataclass(frozen=True)
class Keyring:
    """Key-encryption keys by version; ``source`` names where they came from."""

    keys: dict[int, bytes]
    source: str
    path: Path | None = None
    key_dir: Path | None = None  # the wrapped data keys, one file per subject

    @property
    def current(self) -> int:
        """The version that wraps new data keys (the highest)."""
        return max(self.keys)

    def key(self, version: int) -> bytes:
        if version not in self.keys:
            msg = (f"The key-encryption key version {version} is not in {self.source} "
                   f"(it holds {sorted(self.keys)}); it was destroyed after a rotation or "
                   f"the wrong key file is configured.")
            raise RecordingError(msg, field="kek_version")
        return self.keys[version]


def generate_key() -> bytes:
    """A new random 256-bit key."""
    return AESGCM.generate_key(bit_length=256)


def parse_keyring(text: str, source: str, path: Path | None = None,
                  key_dir: Path | None = None) -> Keyring:
    """Read ``v<N> <base64 key>`` lines (blank lines and ``#`` comments skipped)."""
    keys: dict[int, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 2 or not parts[0].startswith("v"):
                raise ValueError
            version = int(parts[0][1:])
            key = base64.b64decode(parts[1], validate=True)
        except (ValueError, binascii.Error):
            msg = (f"Invalid {source}: line {number} must be 'v<version> <base64 key>', "
                   f"e.g. 'v1 {base64.b64encode(bytes(KEY_BYTES)).decode()}'.")
            raise ValidationError(msg, field=source) from None
        if len(key) != KEY_BYTES or version < 1 or version in keys:
            msg = (f"Invalid {source}: line {number} must hold a new version >= 1 and a "
                   f"{KEY_BYTES}-byte key, but got version {version} and {len(key)} bytes.")
            raise ValidationError(msg, field=source)
        keys[version] = key
    if not keys:
        msg = f"Invalid {source}: it holds no key-encryption key."
        raise ValidationError(msg, field=source)
    return Keyring(keys, source, path, key_dir)


def format_keyring(keys: dict[int, bytes]) -> str:
    return "".join(f"v{v} {base64.b64encode(k).decode()}\n" for v, k in sorted(keys.items()))


def write_keyring(path: Path, keys: dict[int, bytes]) -> None:
    """Write a keyring file readable by its owner only (replacing it atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(format_keyring(keys))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def _outside(path: Path, data_dir: Path, setting: str) -> None:
    resolved, data = path.resolve(), data_dir.resolve()
    if resolved == data or data in resolved.parents:
        msg = (f"Invalid value for {setting}: {str(path)!r} is inside NEUROGATE_DATA_DIR "
               f"({str(data_dir)!r}); keep recording keys outside the data they protect.")
        raise ValidationError(msg, field=setting.removeprefix("NEUROGATE_").lower())


def load_keyring(*, kek_file: Path | None, kek: str | None, data_dir: Path,
                 key_dir: Path | None = None) -> Keyring | None:
    """The configured keyring, or None when no key-encryption key is configured.

    A key file or key directory inside ``data_dir`` is refused: the keys would sit
    beside the data. A missing key file is created with a new random KEK (version 1)."""
    if kek_file is not None:
        _outside(kek_file, data_dir, "NEUROGATE_RECORDING_KEK_FILE")
        key_dir = key_dir or kek_file.parent / "data-keys"
        _outside(key_dir, data_dir, "NEUROGATE_RECORDING_KEY_DIR")
        if not kek_file.exists():
            write_keyring(kek_file, {1: generate_key()})
        return parse_keyring(kek_file.read_text(encoding="ascii"),
                             "NEUROGATE_RECORDING_KEK_FILE", kek_file, key_dir)
    if kek:
        if key_dir is None:
            msg = ("NEUROGATE_RECORDING_KEK is set but NEUROGATE_RECORDING_KEY_DIR is not: "
                   "name a directory outside NEUROGATE_DATA_DIR for the wrapped data keys.")
            raise ValidationError(msg, field="recording_key_dir")
        _outside(key_dir, data_dir, "NEUROGATE_RECORDING_KEY_DIR")
        return parse_keyring(kek, "NEUROGATE_RECORDING_KEK", None, key_dir)
    return None


def _aead(key: bytes) -> AESGCM:
    return AESGCM(key)


def segment_aad(recording_id: str, index: int, product: str, key_version: int) -> bytes:
    """The associated data of one segment: what it is, and under which key version."""
    return canonical_json({"kind": "neurogate.segment", "recording": recording_id,
                           "index": index, "product": product, "key_version": key_version})


def _key_aad(subject_id: str, kek_version: int) -> bytes:
    return canonical_json({"kind": "neurogate.data_key", "subject": subject_id,
                           "kek_version": kek_version})


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """(nonce, ciphertext with its 16-byte tag) under a fresh random 96-bit nonce."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, _aead(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes, *, what: str) -> bytes:
    """The plaintext, or RecordingError if anything (nonce, data, tag, aad) was changed."""
    try:
        return _aead(key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        msg = (f"The {what} does not decrypt: its ciphertext, nonce, tag or place was "
               f"changed, or its key is gone.")
        raise RecordingError(msg) from exc


def wrap_data_key(keyring: Keyring, subject_id: str, data_key: bytes,
                  version: int | None = None) -> tuple[int, bytes]:
    """(KEK version, nonce || wrapped key) of ``data_key`` under the current KEK."""
    version = keyring.current if version is None else version
    nonce, sealed = encrypt(keyring.key(version), data_key, _key_aad(subject_id, version))
    return version, nonce + sealed


def unwrap_data_key(keyring: Keyring, subject_id: str, kek_version: int,
                    wrapped: bytes) -> bytes:
    """The subject's data key (RecordingError if its KEK is gone or it was altered)."""
    key = keyring.key(kek_version)
    return decrypt(key, wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                   _key_aad(subject_id, kek_version), what="data key")


__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "Keyring",
    "RecordingError",
    "decrypt",
    "encrypt",
    "format_keyring",
    "generate_key",
    "load_keyring",
    "parse_keyring",
    "segment_aad",
    "unwrap_data_key",
    "wrap_data_key",
    "write_keyring",
]
