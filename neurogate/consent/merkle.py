"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

The ledger is an append-only log of entries. Each entry is hashed into a leaf
(``SHA-256(0x00 || entry)``), two subtrees join as ``SHA-256(0x01 || left || right)``,
and the tree over ``n`` leaves splits at the largest power of two below ``n``
(RFC 9162, section 2.1.1). The empty tree hashes to ``SHA-256("")``.

Functions here work on *leaf hashes*, never on entries, so the caller can keep leaf
hashes in a database column and pass them in as any sequence. Verification needs no
leaves at all: it follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step.

Proofs list hashes bottom-up, exactly as RFC 9162 and transparency-dev/merkle do.

A leaf of the ledger is not the entry itself but a commitment to it:
``commitment = HMAC-SHA256(key=salt, msg=entry)`` with a fresh random 32-byte ``salt``
per entry, and the leaf hash is the RFC 6962 leaf hash of that commitment,
``SHA-256(0x00 || commitment)`` (``salted_leaf_hash``). Without the salt the leaf
says nothing about the entry, not even to someone who can guess every field of it
(HMAC under a random key is a pseudorandom function); with the salt anyone can check
that the entry is the one committed (SHA-256 is collision resistant, so no other
entry opens the same leaf). The salt is kept beside the entry, never in the tree.

``Frontier`` is the compact range of a log: the roots of the perfect subtrees that
make up its leaves, one per binary digit of the size. Appending a leaf merges at most
``log2(n)`` of them and the root folds them in ``log2(n)`` hashes, so a log that keeps
its frontier appends and signs in O(log n), whatever its size.

``root``, ``inclusion_proof`` and ``consistency_proof`` accept an optional ``cache``:
a dict the caller keeps for *one* log. It remembers the hashes of complete subtrees at
least ``CACHE_MIN_WIDTH`` leaves wide. Complete subtrees of an append-only log never
change, so after the first call each later root or proof costs a few hundred hashes
instead of a pass over every leaf. Never share a cache between logs, and never use one
while checking leaves you do not trust yet.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import MutableMapping, Sequence
from hashlib import sha256
from typing import Any, TypeGuard

from neurogate.errors import ValidationError

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = sha256(b"").digest()
"""Root hash of the tree with no leaves."""

CACHE_MIN_WIDTH = 256
"""Complete subtrees narrower than this are recomputed rather than cached."""

SubtreeCache = MutableMapping[tuple[int, int], bytes]
"""Hashes of complete subtrees keyed by ``(first leaf index, width)``."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as the canonical JSON bytes stored in ledger entries.

    Keys are sorted, there is no whitespace, text stays UTF-8 (no ``\\u`` escapes
    for non-ASCII) and NaN or infinities are refused. The output never holds a raw
    newline, which keeps it apart from signed-note texts signed by the same key.
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || entry)``."""
    return sha256(_LEAF_PREFIX + entry).digest()


SALT_SIZE = 32
"""Size in bytes of the random salt that hides each ledger entry."""


def entry_commitment(salt: bytes, entry: bytes) -> bytes:
    """Return the commitment ``HMAC-SHA256(key=salt, msg=entry)`` to a ledger entry."""
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        msg = (
            f"Invalid value for the 'salt' parameter. It must be {SALT_SIZE} random bytes, "
            f"but got {type(salt).__name__} of length {len(salt) if isinstance(salt, bytes) else 0}"
            " instead."
        )
        raise ValidationError(msg, field="salt")
    return hmac.new(salt, entry, sha256).digest()


def salted_leaf_hash(salt: bytes, entry: bytes) -> bytes:
    """Return the leaf hash of a salted entry: ``leaf_hash(entry_commitment(salt, entry))``."""
    return leaf_hash(entry_commitment(salt, entry))


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return sha256(_NODE_PREFIX + left + right).digest()


def root(
    hashes: Sequence[bytes], size: int | None = None, *, cache: SubtreeCache | None = None
) -> bytes:
    """Return the Merkle tree hash of the first ``size`` leaf hashes (all by default).

    Parameters
    ----------
    hashes : sequence of bytes
        Leaf hashes in log order, as made by ``leaf_hash``.
    size : int, optional
        Number of leading leaves the tree covers; defaults to ``len(hashes)``.
    cache : dict, optional
        Subtree cache kept by the caller for this log (see the module docstring).
    """
    if size is None:
        size = len(hashes)
    _check_size("size", size, len(hashes))
    return _range_root(hashes, 0, size, cache)


def inclusion_proof(
    hashes: Sequence[bytes], index: int, size: int, *, cache: SubtreeCache | None = None
) -> list[bytes]:
    """Return the RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    The proof lists sibling subtree hashes from the leaf up to the root.
    """
    _check_size("size", size, len(hashes))
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        msg = (
            f"Invalid value for the 'index' parameter. It must be a leaf index from 0 to "
            f"{size - 1} for a tree of {size} leaves, but got {index!r} instead."
        )
        raise ValidationError(msg, field="index")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(_range_root(hashes, start + k, end, cache))
            end = start + k
        else:
            path.append(_range_root(hashes, start, start + k, cache))
            start += k
    path.reverse()
    return path


def consistency_proof(
    hashes: Sequence[bytes],
    old_size: int,
    new_size: int,
    *,
    cache: SubtreeCache | None = None,
) -> list[bytes]:
    """Return the RFC 9162 consistency proof between trees of ``old_size`` and ``new_size``.

    The proof is empty when ``old_size`` is 0 or equals ``new_size``.
    """
    _check_size("new_size", new_size, len(hashes))
    _check_size("old_size", old_size, new_size)
    if old_size in (0, new_size):
        return []
    # SUBPROOF(m, D[start:start+n], b) of RFC 9162 section 2.1.4.1, unrolled.
    path: list[bytes] = []
    start, m, n, whole_old_tree = 0, old_size, new_size, True
    while m != n:
        k = _split(n)
        if m <= k:
            path.append(_range_root(hashes, start + k, start + n, cache))
            n = k
        else:
            path.append(_range_root(hashes, start, start + k, cache))
            start, m, n, whole_old_tree = start + k, m - k, n - k, False
    if not whole_old_tree:
        path.append(_range_root(hashes, start, start + m, cache))
    path.reverse()
    return path


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof as in RFC 9162 section 2.1.3.2.

    Returns True only if ``proof`` shows that ``leaf_hash`` sits at ``index`` in the
    tree of ``size`` leaves whose hash is ``root``. Malformed input gives False.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and _are_hashes(proof)):
        return False
    if not (_is_count(index) and _is_count(size)) or index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check a consistency proof as in RFC 9162 section 2.1.4.2.

    Returns True only if ``proof`` shows that the tree of ``old_size`` leaves with hash
    ``old_root`` is a prefix of the tree of ``new_size`` leaves with hash ``new_root``.
    Equal sizes need equal roots and an empty proof; an old size of 0 needs the empty
    tree hash as ``old_root`` and an empty proof. Malformed input gives False.
    """
    if not (_is_hash(old_root) and _is_hash(new_root) and _are_hashes(proof)):
        return False
    if not (_is_count(old_size) and _is_count(new_size)) or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and hmac.compare_digest(old_root, new_root)
    if old_size == 0:
        return not proof and hmac.compare_digest(old_root, EMPTY_ROOT)
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return (
        sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)
    )


class Frontier:
    """The compact range of a log: its size and the roots of its perfect subtrees.

    ``nodes`` hold the subtree roots widest first; their widths are the binary digits
    of ``size``. ``append`` and ``root`` cost O(log n) hashes.
    """

    __slots__ = ("nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if not _is_count(size) or len(nodes) != size.bit_count():
            msg = (
                f"A frontier of {size!r} leaves needs one subtree root per binary digit "
                f"of its size, but got {len(nodes)} roots."
            )
            raise ValidationError(msg, field="nodes")
        self.size = size
        self.nodes = list(nodes)

    @classmethod
    def of(cls, hashes: Sequence[bytes]) -> Frontier:
        """Build the frontier of the log of ``hashes`` (O(n) once)."""
        frontier = cls()
        for value in hashes:
            frontier.append(value)
        return frontier

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash, merging the equal-width subtrees it completes."""
        node, size = leaf, self.size
        while size & 1:  # each trailing 1 bit is a subtree of the new leaf's width
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        """Return the Merkle tree hash of the log (folding the subtrees from the right)."""
        if not self.nodes:
            return EMPTY_ROOT
        result = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            result = node_hash(node, result)
        return result

    def copy(self) -> Frontier:
        """Return an independent copy (O(log n))."""
        return Frontier(self.size, self.nodes)

    def __repr__(self) -> str:
        return f"Frontier(size={self.size}, root={self.root().hex()[:16]}...)"


def _split(n: int) -> int:
    """Return the largest power of two strictly below ``n`` (``n`` >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(
    hashes: Sequence[bytes], start: int, end: int, cache: SubtreeCache | None
) -> bytes:
    """Return the Merkle tree hash of leaves ``start`` to ``end`` (exclusive).

    The range splits into complete subtrees whose widths are the binary digits of
    its length, widest first; they join from the right. Ranges reached from RFC 9162
    proofs are aligned, so every complete subtree here is a node of the full tree.
    """
    if start == end:
        return EMPTY_ROOT
    subroots: list[bytes] = []
    width = 1 << ((end - start).bit_length() - 1)
    while start < end:
        if end - start >= width:
            subroots.append(_subtree_root(hashes, start, width, cache))
            start += width
        width >>= 1
    result = subroots.pop()
    while subroots:
        result = node_hash(subroots.pop(), result)
    return result


def _subtree_root(
    hashes: Sequence[bytes], start: int, width: int, cache: SubtreeCache | None
) -> bytes:
    """Return the hash of the complete subtree of ``width`` (a power of two) leaves."""
    if cache is not None and width >= CACHE_MIN_WIDTH:
        key = (start, width)
        value = cache.get(key)
        if value is None:
            half = width >> 1
            value = node_hash(
                _subtree_root(hashes, start, half, cache),
                _subtree_root(hashes, start + half, half, cache),
            )
            cache[key] = value
        return value
    level = list(hashes[start : start + width])
    while len(level) > 1:  # The width is a power of two, so every level pairs up.
        level = [
            sha256(_NODE_PREFIX + left + right).digest()
            for left, right in zip(level[::2], level[1::2], strict=True)
        ]
    return level[0]


def _check_size(name: str, size: object, limit: int) -> None:
    """Raise ValidationError unless ``size`` is an integer from 0 to ``limit``."""
    if not (_is_count(size) and size <= limit):
        msg = (
            f"Invalid value for the '{name}' parameter. It must be a whole number from 0 "
            f"to {limit} (the leaves available), but got {size!r} instead."
        )
        raise ValidationError(msg, field=name)


def _is_count(value: object) -> TypeGuard[int]:
    """Tell whether ``value`` is a non-negative int (bools excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hash(value: object) -> bool:
    """Tell whether ``value`` is a 32-byte hash."""
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _are_hashes(values: object) -> bool:
    """Tell whether ``values`` is a sequence of 32-byte hashes."""
    return isinstance(values, Sequence) and not isinstance(values, bytes | str) and all(
        _is_hash(v) for v in values
    )


__all__ = [
    "CACHE_MIN_WIDTH",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "SALT_SIZE",
    "Frontier",
    "SubtreeCache",
    "canonical_json",
    "consistency_proof",
    "entry_commitment",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "salted_leaf_hash",
    "verify_consistency",
    "verify_inclusion",
]
