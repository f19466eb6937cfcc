"""Full ledger audit: an untouched log passes and every kind of tampering is reported."""

from __future__ import annotations

import json

import pytest

from neurogate.consent.audit import verify_checkpoints, verify_log
from neurogate.consent.checkpoint import Signer, generate_signer, sign_checkpoint
from neurogate.consent.merkle import EMPTY_ROOT, canonical_json, leaf_hash, root, salted_leaf_hash
from neurogate.errors import LedgerError

ORIGIN = "clinic.example/ledger"
SIGNER = generate_signer(ORIGIN)
OTHER = generate_signer(ORIGIN)
SIZES = (4, 9, 12)


def _entry(seq: int, subject: int | None = None) -> bytes:
    subject = seq if subject is None else subject
    return canonical_json(
        {
            "seq": seq,
            "action": "consent.grant" if seq % 3 else "consent.revoke",
            "subject": f"ps_{subject:04x}",
            "at": f"2026-01-0{1 + seq % 9}T10:00:00.000+00:00",
        }
    )


ENTRIES = [_entry(i) for i in range(12)]
HASHES = [leaf_hash(e) for e in ENTRIES]


def _checkpoints(
    hashes: list[bytes] = HASHES, signer: Signer = SIGNER, sizes: tuple[int, ...] = SIZES
) -> list[str]:
    return [sign_checkpoint(signer, ORIGIN, size, root(hashes, size)) for size in sizes]


CHECKPOINTS = _checkpoints()
POSITIONS = [(leaf, offset) for leaf in range(12) for offset in (0, len(ENTRIES[leaf]) // 2, -2)]


def _flip_byte(entry: bytes, offset: int) -> bytes:
    raw = bytearray(entry)
    raw[offset] ^= 0x01
    return bytes(raw)


def test_verify_log_accepts_untampered_log() -> None:
    """An untouched log with its checkpoints passes with no problems."""
    report = verify_log(ENTRIES, HASHES, CHECKPOINTS, SIGNER.verifier)
    assert report.problems == []
    assert report.ok
    assert (report.size, report.root) == (12, root(HASHES))


def test_verify_log_accepts_verifier_key_string_and_no_stored_hashes() -> None:
    """The verifier may be given as its key string, and stored hashes may be omitted."""
    report = verify_log(ENTRIES, None, CHECKPOINTS, SIGNER.verifier_key)
    assert report.ok, report.problems


def test_verify_log_accepts_empty_log() -> None:
    """An empty log with an empty checkpoint passes."""
    report = verify_log([], [], [sign_checkpoint(SIGNER, ORIGIN, 0, EMPTY_ROOT)], SIGNER.verifier)
    assert report.ok, report.problems
    assert (report.size, report.root) == (0, EMPTY_ROOT)


@pytest.mark.parametrize(("leaf", "offset"), POSITIONS)
def test_verify_log_rejects_changed_byte_against_stored_hash(leaf: int, offset: int) -> None:
    """One changed byte in any entry no longer matches its stored hash."""
    entries = list(ENTRIES)
    entries[leaf] = _flip_byte(entries[leaf], offset)
    report = verify_log(entries, HASHES, CHECKPOINTS, SIGNER.verifier)
    assert not report.ok
    assert f"Leaf {leaf}: its hash does not match its entry." in report.problems


@pytest.mark.parametrize(("leaf", "offset"), POSITIONS)
def test_verify_log_rejects_changed_byte_with_rehashed_leaf(leaf: int, offset: int) -> None:
    """One changed byte with a recomputed stored hash still breaks the signed roots."""
    entries = list(ENTRIES)
    entries[leaf] = _flip_byte(entries[leaf], offset)
    stored = [leaf_hash(e) for e in entries]
    report = verify_log(entries, stored, CHECKPOINTS, SIGNER.verifier)
    assert not report.ok
    assert "Checkpoint 2: its root does not match the root of the first 12 leaves." in (
        report.problems
    )
    first_bad = next(n for n, size in enumerate(SIZES) if leaf < size)
    assert all(f"Checkpoint {n}:" not in " ".join(report.problems) for n in range(first_bad))


@pytest.mark.parametrize("leaf", range(12))
def test_verify_log_rejects_removed_leaf(leaf: int) -> None:
    """Removing any leaf leaves too few leaves for the last checkpoint."""
    entries = ENTRIES[:leaf] + ENTRIES[leaf + 1 :]
    stored = HASHES[:leaf] + HASHES[leaf + 1 :]
    report = verify_log(entries, stored, CHECKPOINTS, SIGNER.verifier)
    assert not report.ok
    assert (
        "Checkpoint 2 covers 12 leaves, but the log holds only 11: leaves signed into the log "
        "are missing." in report.problems
    )
    if leaf < 11:
        assert report.problems[0] == (
            f"Leaf {leaf}: its entry says seq {leaf + 1}, so entries were removed, inserted "
            "or reordered before it."
        )


@pytest.mark.parametrize(("first", "second"), [(0, 1), (3, 8), (10, 11), (0, 11), (4, 5)])
def test_verify_log_rejects_swapped_leaves(first: int, second: int) -> None:
    """Swapping two leaves breaks their sequence numbers and the signed roots."""
    entries, stored = list(ENTRIES), list(HASHES)
    entries[first], entries[second] = entries[second], entries[first]
    stored[first], stored[second] = stored[second], stored[first]
    report = verify_log(entries, stored, CHECKPOINTS, SIGNER.verifier)
    assert not report.ok
    assert report.problems[0].startswith(f"Leaf {first}: its entry says seq {second},")
    assert "Checkpoint 2: its root does not match the root of the first 12 leaves." in (
        report.problems
    )


def test_verify_log_rejects_swap_with_renumbered_seq() -> None:
    """Swapping two leaves' contents and fixing their seq still breaks the signed roots."""
    entries = list(ENTRIES)
    entries[2], entries[7] = _entry(2, subject=7), _entry(7, subject=2)
    report = verify_log(entries, [leaf_hash(e) for e in entries], CHECKPOINTS, SIGNER.verifier)
    assert report.problems == [
        "Checkpoint 0: its root does not match the root of the first 4 leaves.",
        "Checkpoint 1: its root does not match the root of the first 9 leaves.",
        "Checkpoint 1 is not consistent with checkpoint 0: the log's leaves give no valid "
        "consistency proof from size 4 to 9.",
        "Checkpoint 2: its root does not match the root of the first 12 leaves.",
        "Checkpoint 2 is not consistent with checkpoint 1: the log's leaves give no valid "
        "consistency proof from size 9 to 12.",
    ]


@pytest.mark.parametrize("number", range(3))
def test_verify_log_rejects_checkpoint_signed_by_another_key(number: int) -> None:
    """A checkpoint signed by any key but the log's is reported."""
    checkpoints = list(CHECKPOINTS)
    checkpoints[number] = _checkpoints(signer=OTHER)[number]
    report = verify_log(ENTRIES, HASHES, checkpoints, SIGNER.verifier)
    assert not report.ok
    assert report.problems[0].startswith(
        f"Checkpoint {number}: The note is not signed by the trusted key {ORIGIN}+"
    )


def test_verify_log_rejects_checkpoint_with_altered_size() -> None:
    """A checkpoint whose text was edited fails its signature."""
    checkpoints = list(CHECKPOINTS)
    checkpoints[2] = checkpoints[2].replace("\n12\n", "\n11\n", 1)
    report = verify_log(ENTRIES[:11], HASHES[:11], checkpoints, SIGNER.verifier)
    assert not report.ok
    assert "does not verify" in report.problems[0]


@pytest.mark.parametrize("length", [0, 3, 4, 8, 11])
def test_verify_log_rejects_truncated_log(length: int) -> None:
    """A log cut short of an earlier, larger checkpoint fails."""
    report = verify_log(ENTRIES[:length], HASHES[:length], CHECKPOINTS, SIGNER.verifier)
    assert not report.ok
    for number, size in enumerate(SIZES):
        message = (
            f"Checkpoint {number} covers {size} leaves, but the log holds only {length}: "
            "leaves signed into the log are missing."
        )
        assert (message in report.problems) is (size > length)


def test_verify_log_rejects_rewritten_log_resigned_with_log_key() -> None:
    """A log rewritten and re-signed at its end forks from the earlier checkpoints.

    The two old checkpoints still prove consistent with each other (the proof from 4 to
    9 leaves does not involve leaf 2), so only the fork to the re-signed head shows.
    """
    entries = list(ENTRIES)
    entries[2] = _entry(2, subject=0xBEEF)
    hashes = [leaf_hash(e) for e in entries]
    checkpoints = [*CHECKPOINTS[:2], _checkpoints(hashes)[2]]
    report = verify_log(entries, hashes, checkpoints, SIGNER.verifier)
    assert report.problems == [
        "Checkpoint 0: its root does not match the root of the first 4 leaves.",
        "Checkpoint 1: its root does not match the root of the first 9 leaves.",
        "Checkpoint 2 is not consistent with checkpoint 1: the log's leaves give no valid "
        "consistency proof from size 9 to 12.",
    ]


def test_verify_log_rejects_checkpoints_going_back_in_size() -> None:
    """A checkpoint smaller than the one before it is reported."""
    checkpoints = [CHECKPOINTS[2], CHECKPOINTS[1]]
    report = verify_log(ENTRIES, HASHES, checkpoints, SIGNER.verifier)
    assert report.problems == [
        "Checkpoint 1 has 9 leaves, fewer than the 12 of checkpoint 0 issued before it."
    ]


def test_verify_log_rejects_checkpoint_of_another_origin() -> None:
    """Every checkpoint must name the same log."""
    checkpoints = [*CHECKPOINTS[:2], sign_checkpoint(SIGNER, "other.example/log", 12, root(HASHES))]
    report = verify_log(ENTRIES, HASHES, checkpoints, SIGNER.verifier)
    assert report.problems == [
        f"Checkpoint 2 is for the log 'other.example/log', but checkpoint 1 is for {ORIGIN!r}."
    ]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (b"not json", "Leaf 3: its entry is not valid JSON."),
        (b"[3]", "Leaf 3: its entry is not a JSON object."),
        (b'{"seq": 3}', "Leaf 3: its entry is not in canonical JSON form."),
        (b'{"seq":"3"}', "Leaf 3: its entry has no whole-number 'seq' field."),
        (b'{"action":"x"}', "Leaf 3: its entry has no whole-number 'seq' field."),
    ],
)
def test_verify_log_reports_malformed_entry(entry: bytes, problem: str) -> None:
    """Entries must be canonical JSON objects carrying their index as 'seq'."""
    entries = list(ENTRIES)
    entries[3] = entry
    report = verify_log(entries, None, [], SIGNER.verifier)
    assert report.problems == [problem]


def test_verify_log_reports_stored_hash_count_mismatch() -> None:
    """Stored hashes must pair up one to one with entries."""
    report = verify_log(ENTRIES, HASHES[:-1], CHECKPOINTS, SIGNER.verifier)
    assert report.problems == [
        "The ledger stores 11 leaf hashes for 12 entries; they must pair up one to one."
    ]


def test_verify_log_rejects_malformed_verifier_key() -> None:
    """A verifier key string that does not parse is an error, not a report."""
    with pytest.raises(LedgerError, match="verifier key 'nope' is malformed"):
        verify_log(ENTRIES, HASHES, CHECKPOINTS, "nope")


def test_entries_in_fixture_carry_their_index() -> None:
    """The fixture log numbers its entries by position, as the ledger does."""
    assert [json.loads(e)["seq"] for e in ENTRIES] == list(range(12))


# -- the salted log (format 2): leaves commit to entries under secret salts -----------
SALTS = [bytes([0x40 + i]) * 32 for i in range(12)]
SALTED = [salted_leaf_hash(s, e) for s, e in zip(SALTS, ENTRIES, strict=True)]
SALTED_CHECKPOINTS = _checkpoints(SALTED)


def _salted(erase: tuple[int, ...] = ()) -> tuple[list[bytes | None], list[bytes | None]]:
    entries: list[bytes | None] = list(ENTRIES)
    salts: list[bytes | None] = list(SALTS)
    for index in erase:
        entries[index] = salts[index] = None
    return entries, salts


def test_verify_log_accepts_salted_log() -> None:
    """A salted log verifies from its entries, salts and checkpoints."""
    entries, salts = _salted()
    report = verify_log(entries, SALTED, SALTED_CHECKPOINTS, SIGNER.verifier, salts=salts)
    assert report.problems == [] and report.opaque == []
    assert report.root == root(SALTED)


@pytest.mark.parametrize("erase", [(0,), (3, 4), (11,), tuple(range(12))])
def test_verify_log_reports_erased_leaves_as_opaque_not_tampering(erase: tuple[int, ...]) -> None:
    """Leaves whose entry and salt were both erased are opaque; every root still checks."""
    entries, salts = _salted(erase)
    report = verify_log(entries, SALTED, SALTED_CHECKPOINTS, SIGNER.verifier, salts=salts)
    assert report.problems == []
    assert report.opaque == list(erase)
    assert report.root == root(SALTED)


def test_verify_log_rejects_opaque_leaf_with_replaced_hash() -> None:
    """An opaque leaf is known by its stored hash; replacing it breaks the signed roots."""
    entries, salts = _salted((5,))
    stored = list(SALTED)
    stored[5] = leaf_hash(b"forged")
    report = verify_log(entries, stored, SALTED_CHECKPOINTS, SIGNER.verifier, salts=salts)
    assert "Checkpoint 1: its root does not match the root of the first 9 leaves." in (
        report.problems
    )
    assert "Checkpoint 0:" not in " ".join(report.problems)


@pytest.mark.parametrize(("leaf", "offset"), POSITIONS)
def test_verify_log_rejects_changed_byte_in_salted_entry(leaf: int, offset: int) -> None:
    """One changed byte in any salted entry no longer opens its stored leaf."""
    entries, salts = _salted()
    entries[leaf] = _flip_byte(ENTRIES[leaf], offset)
    report = verify_log(entries, SALTED, SALTED_CHECKPOINTS, SIGNER.verifier, salts=salts)
    assert f"Leaf {leaf}: its hash does not match its entry." in report.problems


@pytest.mark.parametrize("leaf", [0, 6, 11])
def test_verify_log_rejects_changed_salt(leaf: int) -> None:
    """Another salt opens no leaf: the entry no longer matches its hash."""
    entries, salts = _salted()
    salts[leaf] = b"\x00" * 32
    report = verify_log(entries, SALTED, SALTED_CHECKPOINTS, SIGNER.verifier, salts=salts)
    assert f"Leaf {leaf}: its hash does not match its entry." in report.problems


@pytest.mark.parametrize(
    ("keep", "problem"),
    [
        ("entry", "Leaf 2: it keeps its entry without its salt; erasure removes both, so "
                  "the other was deleted or altered."),
        ("salt", "Leaf 2: it keeps its salt without its entry; erasure removes both, so "
                 "the other was deleted or altered."),
    ],
)
def test_verify_log_rejects_half_erased_leaf(keep: str, problem: str) -> None:
    """Erasure removes an entry and its salt together; one without the other is reported."""
    entries, salts = _salted()
    if keep == "entry":
        salts[2] = None
    else:
        entries[2] = None
    report = verify_log(entries, SALTED, SALTED_CHECKPOINTS, SIGNER.verifier, salts=salts)
    assert report.problems == [problem]


def test_verify_log_rejects_salted_swap_with_renumbered_seq() -> None:
    """Two entries swapped, renumbered and re-committed under new salts still break the
    signed roots."""
    entries, salts = _salted()
    entries[2], entries[7] = _entry(2, subject=7), _entry(7, subject=2)
    stored = [salted_leaf_hash(s, e) for s, e in zip(salts, entries, strict=True)]  # type: ignore[arg-type]
    report = verify_log(entries, stored, SALTED_CHECKPOINTS, SIGNER.verifier, salts=salts)
    assert "Checkpoint 0: its root does not match the root of the first 4 leaves." in (
        report.problems
    )


def test_verify_log_rejects_short_salt() -> None:
    """A stored salt that is not 32 bytes is reported, not raised."""
    entries, salts = _salted()
    salts[1] = b"short"
    report = verify_log(entries, SALTED, SALTED_CHECKPOINTS, SIGNER.verifier, salts=salts)
    assert "Leaf 1: its salt is not 32 bytes long." in report.problems


def test_verify_log_refuses_erased_entry_in_unsalted_log() -> None:
    """An unsalted log has no opaque leaves: an entry missing there is an error."""
    entries: list[bytes | None] = list(ENTRIES)
    entries[0] = None
    with pytest.raises(LedgerError, match="Leaf 0 has no entry"):
        verify_log(entries, HASHES, CHECKPOINTS, SIGNER.verifier)


def test_verify_checkpoints_names_its_label() -> None:
    """Checkpoint problems carry the label given (external, version 1)."""
    problems = verify_checkpoints(HASHES[:3], CHECKPOINTS[:1], SIGNER.verifier,
                                  label="External checkpoint")
    assert problems == [
        "External checkpoint 0 covers 4 leaves, but the log holds only 3: leaves signed "
        "into the log are missing."
    ]
