"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519 keys.

A checkpoint commits the log to its size and root hash::

    neurogate.example/ledger
    42
    0lHq+tQKdP7ZfvJ2SdHGT2I7U3o5c8m1Vz0xZL5Hn7U=

    — neurogate.example/ledger p0aDOZ2l...base64(key id || signature)...

The note text (the three lines, each ending in a newline) is signed with Ed25519; the
signature line carries the key name and ``base64(key id || signature)`` where the key id
is ``SHA-256(name || "\\n" || 0x01 || public key)[:4]``. Verifier keys are written as
``name+<key id in hex>+base64(0x01 || public key)``, the format of Go's
``golang.org/x/mod/sumdb/note`` package, so Go and Python tools read each other's keys,
notes and checkpoints.

Specifications: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from neurogate.consent.merkle import HASH_SIZE
from neurogate.errors import LedgerError

ALG_ED25519 = 0x01
"""Signature type byte of Ed25519 in the C2SP signed-note specification."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (the limit of Go's note package)."""

_SIG_PREFIX = "— "
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    """A verified tree head: the log ``origin``, its ``size`` and ``root`` hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


class Verifier:
    """Ed25519 note verifier built from a key string ``name+keyid+base64(0x01||key)``."""

    def __init__(self, key_string: str) -> None:
        if not isinstance(key_string, str):
            msg = f"A verifier key must be text, but got {type(key_string).__name__}."
            raise LedgerError(msg, field="verifier_key")
        name, _, rest = key_string.partition("+")
        hex_id, _, key_b64 = rest.partition("+")
        key = _b64decode(key_b64)
        if not (_is_valid_name(name) and _HEX8.fullmatch(hex_id) and key):
            msg = (
                f"The verifier key {key_string!r} is malformed. It must read "
                "'<name>+<8 hex digits>+<base64 key>', as written by Signer.verifier_key."
            )
            raise LedgerError(msg, field="verifier_key")
        if key[0] != ALG_ED25519 or len(key) != 1 + 32:
            msg = (
                f"The verifier key {key_string!r} is not an Ed25519 key. Only signature "
                f"type 0x01 with a 32-byte public key is supported."
            )
            raise LedgerError(msg, field="verifier_key")
        key_id = _key_id(name, key[1:])
        if key_id != bytes.fromhex(hex_id):
            msg = (
                f"The verifier key {key_string!r} is corrupt: its key id {hex_id} does not "
                f"match its name and public key (expected {key_id.hex()})."
            )
            raise LedgerError(msg, field="verifier_key")
        self.name = name
        self.key_id = key_id
        self._public_key = Ed25519PublicKey.from_public_bytes(key[1:])
        self.key_string = f"{name}+{key_id.hex()}+{base64.b64encode(key).decode()}"

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> Verifier:
        """Build the verifier for ``public_key`` under the key ``name``."""
        return cls(_verifier_key_string(name, _raw_public(public_key)))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Tell whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            self._public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and other.key_string == self.key_string

    def __hash__(self) -> int:
        return hash(self.key_string)

    def __repr__(self) -> str:
        return f"Verifier({self.key_string!r})"


class Signer:
    """Ed25519 note signer: a private key and the key name written in signature lines."""

    def __init__(self, private_key: Ed25519PrivateKey, name: str) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            msg = (
                "Invalid value for the 'private_key' parameter. It must be an "
                f"Ed25519PrivateKey, but got {type(private_key).__name__} instead."
            )
            raise LedgerError(msg, field="private_key")
        if not _is_valid_name(name):
            msg = (
                "Invalid value for the 'name' parameter. A key name must be non-empty "
                f"and hold no spaces or '+', like 'clinic.example/ledger', but got {name!r} "
                "instead."
            )
            raise LedgerError(msg, field="name")
        self.name = name
        self._private_key = private_key
        public = _raw_public(private_key.public_key())
        self.key_id = _key_id(name, public)
        self.verifier_key = _verifier_key_string(name, public)

    @property
    def verifier(self) -> Verifier:
        """The verifier matching this signer."""
        return Verifier(self.verifier_key)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, verifier_key={self.verifier_key!r})"


def generate_signer(name: str) -> Signer:
    """Return a signer with a fresh Ed25519 key under the key ``name``."""
    return Signer(Ed25519PrivateKey.generate(), name)


def load_or_create_signer(path: Path, name: str) -> Signer:
    """Load the Ed25519 signing key stored at ``path``, creating it on first use.

    The key is kept as an unencrypted PKCS#8 PEM file readable by its owner only
    (mode 0600); missing parent folders are created with mode 0700. Creation is atomic,
    so concurrent first starts end up sharing one key. A key file that other users may
    read is refused.
    """
    path = Path(path)
    if not path.exists():
        _create_key_file(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        msg = f"The ledger signing key file {str(path)!r} cannot be read: {exc.strerror}."
        raise LedgerError(msg) from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        msg = (
            f"The ledger signing key file {str(path)!r} is open to other users (mode "
            f"{stat.S_IMODE(mode):04o}); run 'chmod 600 {path}' so that only its owner "
            "can read it."
        )
        raise LedgerError(msg)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        msg = (
            f"The ledger signing key file {str(path)!r} does not hold an unencrypted PEM "
            "private key. Restore it from backup, or move it away to create a new key."
        )
        raise LedgerError(msg) from exc
    if not isinstance(key, Ed25519PrivateKey):
        msg = (
            f"The ledger signing key file {str(path)!r} holds a {type(key).__name__}, "
            "but the ledger signs with Ed25519 keys only."
        )
        raise LedgerError(msg)
    return Signer(key, name)


def sign_note(signer: Signer, text: str) -> str:
    """Return ``text`` signed by ``signer`` as a C2SP signed note."""
    _check_note_text(text)
    signature = signer.sign(text.encode())
    encoded = base64.b64encode(signer.key_id + signature).decode()
    return f"{text}\n{_SIG_PREFIX}{signer.name} {encoded}\n"


def open_note(note: str, verifier: Verifier) -> str:
    """Verify the signed ``note`` against ``verifier`` and return its text.

    Signatures by other keys are ignored, as the specification requires; the note
    must carry a valid signature by ``verifier`` and no invalid one.
    """
    text, lines = _split_note(note)
    found = False
    unknown: list[str] = []
    for line in lines:
        name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        raw = _b64decode(encoded)
        if not _is_valid_name(name) or len(raw) < 5:
            msg = f"The signed note is malformed: the signature line {line!r} is not valid."
            raise LedgerError(msg)
        key_id, signature = raw[:4], raw[4:]
        if name != verifier.name or key_id != verifier.key_id:
            unknown.append(f"{name}+{key_id.hex()}")
            continue
        if not verifier.verify(text.encode(), signature):
            msg = (
                f"The signature by key {name}+{key_id.hex()} does not verify: the note was "
                "altered after it was signed, or the signature is corrupt."
            )
            raise LedgerError(msg)
        found = True
    if not found:
        others = ", ".join(unknown)
        msg = (
            f"The note is not signed by the trusted key {verifier.name}+"
            f"{verifier.key_id.hex()}; it carries signatures only by unknown keys: {others}."
        )
        raise LedgerError(msg)
    return text


def format_checkpoint(origin: str, size: int, root: bytes) -> str:
    """Return the tlog-checkpoint note text for ``origin``, ``size`` and ``root``."""
    if not isinstance(origin, str) or not origin or any(ord(c) < 0x20 for c in origin):
        msg = (
            "Invalid value for the 'origin' parameter. It must be a non-empty line of "
            f"text, like 'clinic.example/ledger', but got {origin!r} instead."
        )
        raise LedgerError(msg, field="origin")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        msg = f"Invalid value for the 'size' parameter. It must be 0 or more, but got {size!r}."
        raise LedgerError(msg, field="size")
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        msg = f"Invalid value for the 'root' parameter. It must be {HASH_SIZE} bytes, got {root!r}."
        raise LedgerError(msg, field="root")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_checkpoint(signer: Signer, origin: str, size: int, root: bytes) -> str:
    """Return the checkpoint for the tree of ``size`` leaves and ``root``, signed."""
    return sign_note(signer, format_checkpoint(origin, size, root))


def open_checkpoint(text: str, verifier: Verifier, *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint and return its contents.

    Raises LedgerError when the note is malformed, not signed by ``verifier``, its
    signature fails, its body is not a checkpoint, or its origin differs from
    ``origin`` when one is given.
    """
    checkpoint = _parse_checkpoint(open_note(text, verifier))
    if origin is not None and checkpoint.origin != origin:
        msg = f"The checkpoint is for the log {checkpoint.origin!r}, but {origin!r} was expected."
        raise LedgerError(msg)
    return checkpoint


def _parse_checkpoint(text: str) -> Checkpoint:
    """Parse verified checkpoint note text into a Checkpoint."""
    lines = text.split("\n")[:-1]  # The text ends in a newline.
    if len(lines) < 3 or not all(lines):
        msg = (
            "The checkpoint is malformed: its text must have at least three non-empty "
            "lines (origin, tree size, root hash)."
        )
        raise LedgerError(msg)
    origin, size_text, root_text, *extensions = lines
    if not _SIZE.fullmatch(size_text):
        msg = (
            f"The checkpoint is malformed: its tree size {size_text!r} is not a decimal "
            "number without leading zeros."
        )
        raise LedgerError(msg)
    root = _b64decode(root_text)
    if len(root) != HASH_SIZE:
        msg = (
            f"The checkpoint is malformed: its root hash {root_text!r} is not the base64 "
            f"encoding of {HASH_SIZE} bytes."
        )
        raise LedgerError(msg)
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def _split_note(note: str) -> tuple[str, list[str]]:
    """Split a signed note into its text and its signature lines."""
    if not isinstance(note, str):
        msg = f"The signed note must be text, but got {type(note).__name__}."
        raise LedgerError(msg)
    if any(ord(c) < 0x20 and c != "\n" for c in note) or not _is_utf8(note):
        msg = "The signed note is malformed: it holds control characters or invalid text."
        raise LedgerError(msg)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n") or split + 2 == len(note):
        msg = (
            "The signed note is malformed: it must be text ending in a newline, a blank "
            "line, then signature lines."
        )
        raise LedgerError(msg)
    text = note[: split + 1]
    lines = note[split + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        msg = f"The signed note is malformed: it has more than {MAX_SIGNATURES} signatures."
        raise LedgerError(msg)
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            msg = (
                f"The signed note is malformed: the line {line!r} after the blank line is "
                "not a signature line starting with '— '."
            )
            raise LedgerError(msg)
    return text, lines


def _check_note_text(text: str) -> None:
    """Raise LedgerError unless ``text`` may be signed as a note."""
    if (
        not isinstance(text, str)
        or not text.endswith("\n")
        or any(ord(c) < 0x20 and c != "\n" for c in text)
    ):
        msg = (
            "Invalid value for the 'text' parameter. Note text must end in a newline "
            f"and hold no control characters other than newlines, but got {text!r}."
        )
        raise LedgerError(msg, field="text")


def _is_valid_name(name: str) -> bool:
    """Tell whether ``name`` is a key name: non-empty, no Unicode spaces, no '+'."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _is_utf8(text: str) -> bool:
    """Tell whether ``text`` encodes to UTF-8 (it holds no lone surrogates)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _key_id(name: str, public_key: bytes) -> bytes:
    """Return the 4-byte key id of an Ed25519 ``public_key`` under ``name``."""
    return sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _verifier_key_string(name: str, public_key: bytes) -> str:
    """Return the verifier key string ``name+keyid+base64(0x01||key)``."""
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode()
    return f"{name}+{_key_id(name, public_key).hex()}+{encoded}"


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    """Return the 32 raw bytes of an Ed25519 public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64decode(text: str) -> bytes:
    """Decode strict standard base64, returning b'' when ``text`` is not valid."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return b""


def _create_key_file(path: Path) -> None:
    """Write a new Ed25519 key to ``path`` unless another process got there first."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:  # mkstemp opens it with mode 0600.
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)  # Fails if the key exists: never replace a key.
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    except OSError as exc:
        msg = f"The ledger signing key file {str(path)!r} cannot be created: {exc.strerror}."
        raise LedgerError(msg) from exc


__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "Signer",
    "Verifier",
    "format_checkpoint",
    "generate_signer",
    "load_or_create_signer",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
]
