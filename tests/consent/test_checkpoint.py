"""Signed notes and checkpoints: Go sumdb/note known answers, C2SP format, key files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from neurogate.consent.checkpoint import (
    Checkpoint,
    Signer,
    Verifier,
    format_checkpoint,
    generate_signer,
    load_or_create_signer,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from neurogate.consent.merkle import EMPTY_ROOT
from neurogate.errors import LedgerError

# golang.org/x/mod/sumdb/note note_test.go.
PETER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpR"
    "Zb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33"
    "WWd1RvMc+QQ=\n"
)
ROOT = bytes(range(32))
ORIGIN = "clinic.example/ledger"


def _peter_signer() -> Signer:
    """The Go test's signer, rebuilt from its private key seed."""
    seed = base64.b64decode(PETER_SIGNER_KEY.split("+", 4)[4])[1:]
    return Signer(Ed25519PrivateKey.from_private_bytes(seed), "PeterNeumann")


def _replace_body(note: str, body: str) -> str:
    """Keep the signature lines of ``note`` but swap its text for ``body``."""
    return body + note[note.rindex("\n\n") + 1 :]


def test_verifier_parses_go_key_string() -> None:
    """A Go note verifier key parses to its name, key id and same string."""
    verifier = Verifier(PETER_KEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.key_id.hex() == "c74f20a3"
    assert verifier.key_string == PETER_KEY


def test_signer_matches_go_verifier_key() -> None:
    """The key id and verifier key string are computed exactly as Go's note package does."""
    signer = _peter_signer()
    assert signer.verifier_key == PETER_KEY
    assert signer.verifier == Verifier(PETER_KEY)


def test_sign_note_matches_go_signature() -> None:
    """Ed25519 is deterministic, so the signed note equals Go's byte for byte."""
    assert sign_note(_peter_signer(), TEXT) == TEXT + "\n" + PETER_SIG


def test_open_note_accepts_go_signed_note() -> None:
    """A note signed by Go opens and returns its text."""
    assert open_note(TEXT + "\n" + PETER_SIG, Verifier(PETER_KEY)) == TEXT


@pytest.mark.parametrize("key", [PETER_KEY, ENOCH_KEY])
def test_open_note_ignores_signatures_by_other_keys(key: str) -> None:
    """With two signatures, each key's verifier accepts its own and skips the other."""
    assert open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, Verifier(key)) == TEXT


def test_open_note_rejects_note_signed_only_by_unknown_key() -> None:
    """A note without a signature by the trusted key is refused, naming the keys seen."""
    with pytest.raises(LedgerError, match=r"not signed by the trusted key PeterNeumann\+c74f20a3"):
        open_note(TEXT + "\n" + ENOCH_SIG, Verifier(PETER_KEY))


def test_open_note_rejects_corrupt_signature_by_known_key() -> None:
    """A known key's signature that fails to verify rejects the whole note."""
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(LedgerError, match=r"signature by key PeterNeumann\+c74f20a3 does not"):
        open_note(TEXT + "\n" + bad, Verifier(PETER_KEY))


def test_open_note_rejects_altered_text() -> None:
    """Changing one character of the signed text breaks the signature."""
    with pytest.raises(LedgerError, match="altered after it was signed"):
        open_note(TEXT.replace("answer", "Answer") + "\n" + PETER_SIG, Verifier(PETER_KEY))


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        "\ud800" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
        "Sb6KE6RyyBwJnAM=\n",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101,
    ],
)
def test_open_note_rejects_malformed_notes(note: str) -> None:
    """The malformed notes of Go's TestOpen are refused as malformed."""
    with pytest.raises(LedgerError, match="The signed note is malformed"):
        open_note(note, Verifier(PETER_KEY))


def _manglings(key: str) -> list[str]:
    """Every proper substring of ``key`` and every one-character bump, as in Go's tests."""
    out = {key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)}
    out |= {key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))}
    out.discard(key)
    return sorted(out)


def test_verifier_rejects_every_mangled_key_string() -> None:
    """No truncation or one-character change of a key string is accepted."""
    accepted = []
    for mangled in _manglings(PETER_KEY):
        try:
            Verifier(mangled)
        except LedgerError:
            continue
        accepted.append(mangled)
    assert accepted == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", "Ed25519"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "Ed25519"),
        ("PeterNeumann+c74f_20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "malformed"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "corrupt"),
    ],
)
def test_verifier_rejects_wrong_algorithm_length_or_key_id(key: str, message: str) -> None:
    """Keys of another algorithm, wrong length or wrong key id are refused with a reason."""
    with pytest.raises(LedgerError, match=message):
        Verifier(key)


def test_signer_rejects_invalid_key_name() -> None:
    """Key names may not hold spaces or '+'."""
    with pytest.raises(LedgerError, match="Invalid value for the 'name' parameter"):
        Signer(Ed25519PrivateKey.generate(), "bad name")
    with pytest.raises(LedgerError, match="Invalid value for the 'name' parameter"):
        generate_signer("a+b")


def test_signer_repr_hides_private_key() -> None:
    """The repr shows the public verifier key only."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    text = repr(Signer(key, ORIGIN))
    assert base64.b64encode(raw).decode() not in text
    assert raw.hex() not in text
    assert "verifier_key=" in text


def test_format_checkpoint_writes_c2sp_body() -> None:
    """The body is origin, decimal size and base64 root, each on its own line."""
    assert format_checkpoint(ORIGIN, 20852163, ROOT) == (
        f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    )


def test_sign_checkpoint_round_trips() -> None:
    """A signed checkpoint opens to the same origin, size and root."""
    signer = generate_signer(ORIGIN)
    note = sign_checkpoint(signer, ORIGIN, 42, ROOT)
    assert note.startswith(format_checkpoint(ORIGIN, 42, ROOT) + "\n— " + ORIGIN + " ")
    assert open_checkpoint(note, signer.verifier) == Checkpoint(ORIGIN, 42, ROOT)


def test_open_checkpoint_of_empty_tree() -> None:
    """The empty log has size 0 and the empty root."""
    signer = generate_signer(ORIGIN)
    note = sign_checkpoint(signer, ORIGIN, 0, EMPTY_ROOT)
    assert open_checkpoint(note, signer.verifier) == Checkpoint(ORIGIN, 0, EMPTY_ROOT)


def test_open_checkpoint_rejects_other_key() -> None:
    """A checkpoint signed by another key is not trusted."""
    note = sign_checkpoint(generate_signer(ORIGIN), ORIGIN, 3, ROOT)
    with pytest.raises(LedgerError, match="not signed by the trusted key"):
        open_checkpoint(note, generate_signer(ORIGIN).verifier)


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n43\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n42\n{base64.b64encode(EMPTY_ROOT).decode()}\n",
        f"other.example/log\n42\n{base64.b64encode(ROOT).decode()}\n",
    ],
)
def test_open_checkpoint_rejects_altered_body(body: str) -> None:
    """Changing the size, root or origin under an existing signature is detected."""
    signer = generate_signer(ORIGIN)
    note = _replace_body(sign_checkpoint(signer, ORIGIN, 42, ROOT), body)
    with pytest.raises(LedgerError, match="does not verify"):
        open_checkpoint(note, signer.verifier)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{ORIGIN}\n42\n", "at least three non-empty lines"),
        (f"{ORIGIN}\n042\n{base64.b64encode(ROOT).decode()}\n", "without leading zeros"),
        (f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n", "without leading zeros"),
        (f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n", "base64 encoding of 32"),
        (f"{ORIGIN}\n42\nnot base64!\n", "base64 encoding of 32"),
    ],
)
def test_open_checkpoint_rejects_malformed_body(body: str, message: str) -> None:
    """A validly signed note that is no checkpoint is refused, saying why."""
    signer = generate_signer(ORIGIN)
    with pytest.raises(LedgerError, match=message):
        open_checkpoint(sign_note(signer, body), signer.verifier)


def test_open_checkpoint_keeps_extension_lines() -> None:
    """Extension lines after the root are signed and returned."""
    signer = generate_signer(ORIGIN)
    body = format_checkpoint(ORIGIN, 1, ROOT) + "ext one\n"
    opened = open_checkpoint(sign_note(signer, body), signer.verifier)
    assert opened.extensions == ("ext one",)


def test_open_checkpoint_checks_expected_origin() -> None:
    """Given an expected origin, a checkpoint of another log is refused."""
    signer = generate_signer(ORIGIN)
    note = sign_checkpoint(signer, "other.example/log", 1, ROOT)
    with pytest.raises(LedgerError, match="but 'clinic.example/ledger' was expected"):
        open_checkpoint(note, signer.verifier, origin=ORIGIN)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", 1, ROOT), "origin"),
        (("a\nb", 1, ROOT), "origin"),
        ((ORIGIN, -1, ROOT), "size"),
        ((ORIGIN, 1, ROOT[:5]), "root"),
    ],
)
def test_format_checkpoint_rejects_bad_arguments(args: tuple, field: str) -> None:
    """Origin, size and root are validated before signing."""
    with pytest.raises(LedgerError, match=f"Invalid value for the '{field}' parameter"):
        format_checkpoint(*args)


def test_load_or_create_signer_creates_private_key_file(tmp_path: Path) -> None:
    """A missing key is created with mode 0600 in new parent folders."""
    path = tmp_path / "keys" / "nested" / "ledger.pem"
    signer = load_or_create_signer(path, ORIGIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert signer.name == ORIGIN
    assert [p.name for p in path.parent.iterdir()] == ["ledger.pem"]


def test_load_or_create_signer_reads_back_same_key(tmp_path: Path) -> None:
    """The second call loads the stored key instead of making a new one."""
    path = tmp_path / "ledger.pem"
    first = load_or_create_signer(path, ORIGIN)
    second = load_or_create_signer(path, ORIGIN)
    assert first.verifier_key == second.verifier_key
    note = sign_checkpoint(first, ORIGIN, 1, ROOT)
    assert open_checkpoint(note, second.verifier).size == 1


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX only")
def test_load_or_create_signer_refuses_key_readable_by_others(tmp_path: Path) -> None:
    """A key file open to group or others is refused with the chmod fix."""
    path = tmp_path / "ledger.pem"
    load_or_create_signer(path, ORIGIN)
    path.chmod(0o644)
    with pytest.raises(LedgerError, match="run 'chmod 600"):
        load_or_create_signer(path, ORIGIN)


def test_load_or_create_signer_refuses_non_ed25519_key(tmp_path: Path) -> None:
    """A PEM key of another algorithm is refused."""
    path = tmp_path / "ledger.pem"
    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(LedgerError, match="Ed25519 keys only"):
        load_or_create_signer(path, ORIGIN)


def test_load_or_create_signer_refuses_garbage_file(tmp_path: Path) -> None:
    """A key file that is not PEM is refused, not overwritten."""
    path = tmp_path / "ledger.pem"
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(LedgerError, match="does not hold an unencrypted PEM private key"):
        load_or_create_signer(path, ORIGIN)
    assert path.read_bytes() == b"not a key"
