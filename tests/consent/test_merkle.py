"""RFC 6962 / RFC 9162 Merkle functions: known answers, pymerkle cross-checks, tampering."""

from __future__ import annotations

import hashlib

import pymerkle
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurogate.consent.merkle import (
    CACHE_MIN_WIDTH,
    EMPTY_ROOT,
    SALT_SIZE,
    Frontier,
    canonical_json,
    consistency_proof,
    entry_commitment,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    salted_leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from neurogate.errors import ValidationError

# transparency-dev/merkle testonly/constants.go: LeafInputs() and RootHashes().
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
# testonly NodeHashes(): level, index within level, hash.
NODE_HASHES = [
    (0, 1, "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
    (0, 3, "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
    (0, 7, "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    (1, 1, "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
    (1, 2, "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
    (1, 3, "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    (2, 1, "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
]
HASHES = [leaf_hash(x) for x in LEAF_INPUTS]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# transparency-dev/merkle proof/verify_test.go: (0-based leaf index, size, proof).
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]
# transparency-dev/merkle proof/verify_test.go: (old size, new size, proof).
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

leaf_lists = st.lists(st.binary(max_size=24), min_size=1, max_size=70)
# Distinct leaves, so that no two subtrees share a hash and every tampering must show.
unique_leaf_lists = st.lists(st.binary(max_size=24), min_size=1, max_size=70, unique=True)


def _pymerkle_tree(entries: list[bytes]) -> pymerkle.InmemoryTree:
    """A pymerkle tree with RFC 6962 hashing: SHA-256, 0x00/0x01 prefixes kept on."""
    tree = pymerkle.InmemoryTree(algorithm="sha256", disable_security=False)
    for entry in entries:
        tree.append_entry(entry)
    return tree


def _flip(value: bytes, bit: int = 3) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


def _corrupt_inclusion(index: int, size: int, proof: list[bytes], root_: bytes, leaf: bytes):
    """The corrupted probes of transparency-dev's corruptInclusionProof."""
    probes = [
        (index - 1, size, root_, leaf, proof),
        (index + 1, size, root_, leaf, proof),
        (index ^ 2, size, root_, leaf, proof),
        (index, size * 2, root_, leaf, proof),
        (index, size // 2, root_, leaf, proof),
        (index, size, root_, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root_, leaf, [*proof, b""]),
        (index, size, root_, leaf, [*proof, root_]),
        (index, size, root_, leaf, [b"", *proof]),
        (index, size, root_, leaf, [root_, *proof]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = _flip(wrong[i])
        probes.append((index, size, root_, leaf, wrong))
    if proof:
        probes.append((index, size, root_, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root_, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


def _corrupt_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]):
    """The corrupted probes of transparency-dev's corruptConsistencyProof."""
    probes = [
        (old - 1, new, old_root, new_root, proof),
        (old + 1, new, old_root, new_root, proof),
        (old ^ 2, new, old_root, new_root, proof),
        (old, new * 2, old_root, new_root, proof),
        (old, new // 2, old_root, new_root, proof),
        (old, new, b"WrongRoot", new_root, proof),
        (old, new, old_root, b"WrongRoot", proof),
        (old, new, SOME_HASH, new_root, proof),
        (old, new, old_root, SOME_HASH, proof),
        (old, new, new_root, old_root, proof),
        (old, new, old_root, new_root, []),
        (old, new, old_root, new_root, [*proof, b""]),
        (old, new, old_root, new_root, [*proof, old_root]),
        (old, new, old_root, new_root, [*proof, new_root]),
        (old, new, old_root, new_root, [b"", *proof]),
        (old, new, old_root, new_root, [old_root, *proof]),
        (old, new, old_root, new_root, [new_root, *proof]),
        (old, new, old_root, new_root, [proof[0], *proof]),
        (old, new, old_root, new_root, proof[:-1]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = _flip(wrong[i], 4)
        probes.append((old, new, old_root, new_root, wrong))
    return probes


def test_leaf_hash_matches_rfc6962_vectors() -> None:
    """Leaf hashes prefix 0x00, as in transparency-dev's rfc6962 hasher tests."""
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )


def test_node_hash_matches_rfc6962_vector() -> None:
    """Node hashes prefix 0x01 and keep the children in order."""
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )
    assert node_hash(b"N456", b"N123") != node_hash(b"N123", b"N456")


def test_root_empty_tree_is_sha256_of_nothing() -> None:
    """The empty tree hashes to SHA-256 of the empty string."""
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(9))
def test_root_matches_known_answer_at_every_size(size: int) -> None:
    """Roots over the transparency-dev 8-leaf vector match at sizes 0 to 8."""
    assert root(HASHES[:size]) == ROOTS[size]
    assert root(HASHES, size) == ROOTS[size]


def test_root_of_eight_leaves_is_the_published_value() -> None:
    """The full 8-leaf root is 5dc9da79...4328."""
    value = root(HASHES).hex()
    assert value.startswith("5dc9da79")
    assert value.endswith("4328")


@pytest.mark.parametrize(("level", "index", "expected"), NODE_HASHES)
def test_root_of_complete_subtree_matches_known_node_hash(
    level: int, index: int, expected: str
) -> None:
    """Every complete subtree hashes to transparency-dev's NodeHashes value."""
    width = 1 << level
    assert root(HASHES[index * width : (index + 1) * width]).hex() == expected


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_inclusion_proof_matches_known_answer(
    index: int, size: int, expected: list[bytes]
) -> None:
    """Inclusion proofs equal transparency-dev's vectors and verify against their roots."""
    proof = inclusion_proof(HASHES, index, size)
    assert proof == expected
    assert verify_inclusion(HASHES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY_VECTORS)
def test_consistency_proof_matches_known_answer(old: int, new: int, expected: list[bytes]) -> None:
    """Consistency proofs equal transparency-dev's vectors and verify against their roots."""
    proof = consistency_proof(HASHES, old, new)
    assert proof == expected
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS[1:])
def test_verify_inclusion_rejects_every_corrupted_probe(
    index: int, size: int, proof: list[bytes]
) -> None:
    """Wrong index, size, leaf, root, or an edited proof never verifies."""
    probes = _corrupt_inclusion(index, size, proof, ROOTS[size], HASHES[index])
    accepted = [p for p in probes if verify_inclusion(p[3], p[0], p[1], p[4], p[2])]
    assert accepted == []


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS[1:])
def test_verify_consistency_rejects_every_corrupted_probe(
    old: int, new: int, proof: list[bytes]
) -> None:
    """Wrong sizes, roots, or an edited proof never verify."""
    probes = _corrupt_consistency(old, new, ROOTS[old], ROOTS[new], proof)
    accepted = [p for p in probes if verify_consistency(*p)]
    assert accepted == []


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof", "valid"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 3, EMPTY_ROOT, ROOTS[3], [], True),
        (3, 3, ROOTS[3], ROOTS[3], [], True),
        (0, 3, ROOTS[1], ROOTS[3], [], False),
        (3, 3, ROOTS[3], ROOTS[4], [], False),
        (3, 3, ROOTS[3], ROOTS[3], [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, ROOTS[1], [EMPTY_ROOT], False),
        (1, 0, ROOTS[1], EMPTY_ROOT, [], False),
        (2, 1, ROOTS[2], ROOTS[1], [], False),
        (1, 2, ROOTS[1], ROOTS[2], [], False),
        (-1, 2, ROOTS[1], ROOTS[2], [HASHES[1]], False),
    ],
)
def test_verify_consistency_handles_edge_sizes(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes], valid: bool
) -> None:
    """Empty and equal trees need empty proofs and matching roots; time never runs back."""
    assert verify_consistency(old, new, old_root, new_root, proof) is valid


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 1)])
def test_verify_inclusion_rejects_index_outside_tree(index: int, size: int) -> None:
    """An index outside the tree never verifies, whatever the hashes."""
    assert not verify_inclusion(HASHES[0], index, size, [], ROOTS[1])
    assert not verify_inclusion(HASHES[0], index, size, [], EMPTY_ROOT)


def test_verify_inclusion_single_leaf_needs_matching_hash() -> None:
    """In a one-leaf tree the root is the leaf hash and the proof is empty."""
    assert verify_inclusion(HASHES[3], 0, 1, [], HASHES[3])
    assert not verify_inclusion(HASHES[3], 0, 1, [], HASHES[4])
    assert not verify_inclusion(b"", 0, 1, [], b"")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: inclusion_proof(HASHES, 8, 8), "index"),
        (lambda: inclusion_proof(HASHES, -1, 8), "index"),
        (lambda: inclusion_proof(HASHES, 0, 9), "size"),
        (lambda: consistency_proof(HASHES, 5, 4), "old_size"),
        (lambda: consistency_proof(HASHES, 1, 9), "new_size"),
        (lambda: root(HASHES, 9), "size"),
    ],
)
def test_proof_builders_reject_out_of_range_arguments(call, field: str) -> None:
    """Proof builders name the bad parameter and the allowed range."""
    with pytest.raises(ValidationError, match=f"Invalid value for the '{field}' parameter"):
        call()


@given(leaf_lists)
def test_root_agrees_with_pymerkle(entries: list[bytes]) -> None:
    """Our root equals pymerkle's RFC 6962 root at every size."""
    tree = _pymerkle_tree(entries)
    hashes = [leaf_hash(e) for e in entries]
    assert [tree.get_leaf(i + 1) for i in range(len(entries))] == hashes
    for size in range(len(entries) + 1):
        assert root(hashes, size) == tree.get_root(size)


@given(leaf_lists, st.data())
def test_inclusion_proof_agrees_with_pymerkle(entries: list[bytes], data: st.DataObject) -> None:
    """Our inclusion proof is pymerkle's path without its leading leaf hash."""
    tree = _pymerkle_tree(entries)
    hashes = [leaf_hash(e) for e in entries]
    size = data.draw(st.integers(1, len(entries)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    theirs = tree.prove_inclusion(index + 1, size)
    ours = inclusion_proof(hashes, index, size)
    assert theirs.path == [hashes[index], *ours]
    assert verify_inclusion(hashes[index], index, size, ours, tree.get_root(size))
    pymerkle.verify_inclusion(hashes[index], root(hashes, size), theirs, index + 1, size)


@given(leaf_lists, st.data())
def test_consistency_proof_verifies_against_pymerkle_roots(
    entries: list[bytes], data: st.DataObject
) -> None:
    """Our consistency proof links pymerkle's roots, and pymerkle's proof links ours."""
    tree = _pymerkle_tree(entries)
    hashes = [leaf_hash(e) for e in entries]
    new = data.draw(st.integers(1, len(entries)), label="new")
    old = data.draw(st.integers(1, new), label="old")
    proof = consistency_proof(hashes, old, new)
    assert verify_consistency(old, new, tree.get_root(old), tree.get_root(new), proof)
    theirs = tree.prove_consistency(old, new)
    pymerkle.verify_consistency(root(hashes, old), root(hashes, new), theirs, old, new)


@given(unique_leaf_lists, st.data())
def test_every_inclusion_proof_verifies_and_wrong_inputs_fail(
    entries: list[bytes], data: st.DataObject
) -> None:
    """A fresh proof verifies; another index, root or flipped proof hash does not."""
    hashes = [leaf_hash(e) for e in entries]
    size = data.draw(st.integers(1, len(entries)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(hashes, index, size)
    tree_root = root(hashes, size)
    assert verify_inclusion(hashes[index], index, size, proof, tree_root)
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
        assert not verify_inclusion(hashes[other], index, size, proof, tree_root)
        assert not verify_inclusion(hashes[index], other, size, proof, tree_root)
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        broken = list(proof)
        broken[position] = _flip(broken[position], 0)
        assert not verify_inclusion(hashes[index], index, size, broken, tree_root)
    assert not verify_inclusion(hashes[index], index, size, proof, _flip(tree_root))


@given(unique_leaf_lists, st.data())
def test_every_consistency_proof_verifies_and_wrong_inputs_fail(
    entries: list[bytes], data: st.DataObject
) -> None:
    """A fresh proof verifies; a flipped root or proof hash does not."""
    hashes = [leaf_hash(e) for e in entries]
    new = data.draw(st.integers(1, len(entries)), label="new")
    old = data.draw(st.integers(1, new), label="old")
    proof = consistency_proof(hashes, old, new)
    old_root, new_root = root(hashes, old), root(hashes, new)
    assert verify_consistency(old, new, old_root, new_root, proof)
    assert not verify_consistency(old, new, _flip(old_root), new_root, proof)
    assert not verify_consistency(old, new, old_root, _flip(new_root), proof)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        broken = list(proof)
        broken[position] = _flip(broken[position], 0)
        assert not verify_consistency(old, new, old_root, new_root, broken)


def test_root_over_large_tree_agrees_with_pymerkle() -> None:
    """A tree wider than the cache threshold gets pymerkle's roots."""
    entries = [i.to_bytes(4, "big") for i in range(3 * CACHE_MIN_WIDTH + 77)]
    tree = _pymerkle_tree(entries)
    hashes = [leaf_hash(e) for e in entries]
    for size in (CACHE_MIN_WIDTH, 2 * CACHE_MIN_WIDTH + 1, len(entries)):
        assert root(hashes, size) == tree.get_root(size)


def test_cache_gives_the_same_roots_and_proofs_as_no_cache() -> None:
    """A cache kept across a growing log changes no root or proof, and fills up."""
    entries = [i.to_bytes(4, "big") for i in range(4 * CACHE_MIN_WIDTH + 3)]
    hashes = [leaf_hash(e) for e in entries]
    cache: dict[tuple[int, int], bytes] = {}
    for size in range(CACHE_MIN_WIDTH - 2, len(hashes) + 1, 37):
        assert root(hashes, size, cache=cache) == root(hashes, size)
        index = size // 3
        assert inclusion_proof(hashes, index, size, cache=cache) == inclusion_proof(
            hashes, index, size
        )
        old = size // 2 + 1
        assert consistency_proof(hashes, old, size, cache=cache) == consistency_proof(
            hashes, old, size
        )
    assert root(hashes, cache=cache) == root(hashes)
    assert (0, 4 * CACHE_MIN_WIDTH) in cache
    assert all(width >= CACHE_MIN_WIDTH for _, width in cache)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, None]}, b'{"a":[true,null],"b":1}'),
        ({"subject": "sü"}, '{"subject":"sü"}'.encode()),
        ({"line": "a\nb"}, b'{"line":"a\\nb"}'),
    ],
)
def test_canonical_json_sorts_keys_without_spaces(value: object, expected: bytes) -> None:
    """Canonical JSON sorts keys, drops whitespace, keeps UTF-8 and escapes newlines."""
    assert canonical_json(value) == expected


def test_canonical_json_rejects_nan() -> None:
    """NaN has no JSON form, so it is refused."""
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json({"x": float("nan")})


def test_frontier_root_matches_known_answers() -> None:
    """The frontier's root is the transparency-dev root after every append."""
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT
    for size, data in enumerate(LEAF_INPUTS, start=1):
        frontier.append(leaf_hash(data))
        assert frontier.root() == ROOTS[size]
        assert (frontier.size, len(frontier.nodes)) == (size, size.bit_count())


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=300))
def test_frontier_root_matches_full_root(hashes: list[bytes]) -> None:
    """Built leaf by leaf or all at once, the frontier gives the full tree's root."""
    assert Frontier.of(hashes).root() == root(hashes)


def test_frontier_copy_is_independent() -> None:
    """Appending to a copy leaves the original untouched (a rolled-back batch)."""
    frontier = Frontier.of([leaf_hash(bytes([i])) for i in range(5)])
    before = frontier.root()
    copy = frontier.copy()
    copy.append(leaf_hash(b"x"))
    assert (frontier.size, frontier.root()) == (5, before)
    assert copy.root() == root([*[leaf_hash(bytes([i])) for i in range(5)], leaf_hash(b"x")])


def test_frontier_refuses_nodes_unlike_its_size() -> None:
    """A frontier of n leaves has one subtree root per binary digit of n."""
    with pytest.raises(ValidationError, match="needs one subtree root per binary digit"):
        Frontier(3, [EMPTY_ROOT])


def test_salted_leaf_hash_is_the_leaf_hash_of_an_hmac() -> None:
    """The leaf is SHA-256(0x00 || HMAC-SHA256(salt, entry)), as the docstring says."""
    import hmac

    salt, entry = bytes(range(SALT_SIZE)), b'{"seq":0}'
    commitment = hmac.new(salt, entry, hashlib.sha256).digest()
    assert entry_commitment(salt, entry) == commitment
    assert salted_leaf_hash(salt, entry) == hashlib.sha256(b"\x00" + commitment).digest()


def test_salted_leaf_hash_hides_equal_entries_under_different_salts() -> None:
    """The same entry under two salts gives unrelated leaves; one salt binds one entry."""
    entry = b'{"seq":0}'
    assert salted_leaf_hash(b"a" * 32, entry) != salted_leaf_hash(b"b" * 32, entry)
    assert salted_leaf_hash(b"a" * 32, entry) != salted_leaf_hash(b"a" * 32, b'{"seq":1}')
    assert salted_leaf_hash(b"a" * 32, entry) != leaf_hash(entry)


@pytest.mark.parametrize("salt", [b"", b"short", b"x" * 33])
def test_entry_commitment_refuses_salt_of_wrong_size(salt: bytes) -> None:
    """A salt must be exactly 32 bytes."""
    with pytest.raises(ValidationError, match="It must be 32 random bytes"):
        entry_commitment(salt, b"{}")
