"""The database-backed transparency ledger.

Entries are canonical JSON holding no personal or signal data: an action, a time,
pseudonymous ids and hashes. Pseudonymous data is still personal data, so the public
log never shows an entry. Each leaf is a commitment to its entry under a fresh random
32-byte salt, ``leaf_hash(HMAC-SHA256(key=salt, msg=entry))`` (see
``neurogate.consent.merkle``); the entry, its salt and the internal id of the subject
it concerns are kept beside the leaf in the database, never in the tree.

Who reads what:

- anyone: leaf hashes, checkpoints, inclusion and consistency proofs (``leaves``,
  ``checkpoints``, ``inclusion``, ``consistency``), enough to verify every checkpoint
  and proof, and nothing about any person;
- the person an entry concerns: the entry and its salt, in their receipt
  (``receipt``, ``receipt_for``) and their export (``entries_for_subject``);
- the ``auditor`` role (and admins): every entry and salt (``entries``).

Erasure (``erase_subject``) deletes a subject's entries and salts: their leaves become
opaque, and the tree, its checkpoints and every other entry still verify.

Appends happen inside the caller's transaction, so a consent change and its leaf commit
together or not at all. Appenders are serialised by the database (SQLite's write lock,
taken at ``BEGIN IMMEDIATE``; ``pg_advisory_xact_lock(6962)`` on PostgreSQL). Each
process keeps the log's frontier (``merkle.Frontier``) and its leaf hashes in memory,
so an append costs O(log n) hashes; a process whose copy is behind (another gateway
node appended) reads the missing leaves from the database when it next takes the lock,
and one whose copy is *ahead* of the database (the log was cut back) refuses to append.
Checkpoints are signed per batch: once per committing transaction that appended, just
before it commits, and at once when a receipt is asked for inside the transaction, so
a receipt always carries a stored checkpoint that covers its leaf.

This is log format 2. Its checkpoints name the origin ``<configured origin>/v2``: the
unsalted version 1 log was re-committed leaf by leaf into this one (migration 0002), and
a new origin keeps the two trees from ever looking like a fork of one log. The version 1
checkpoints are kept (``LedgerV1Checkpoint``) and ``verify`` rechecks them against the
entries that are still held.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

from sqlalchemy import event, insert, text, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from neurogate.consent import access
from neurogate.consent.access import Principal
from neurogate.consent.audit import AuditReport, tree_hashes, verify_checkpoints, verify_log
from neurogate.consent.checkpoint import (
    Checkpoint,
    Signer,
    Verifier,
    open_checkpoint,
    sign_checkpoint,
)
from neurogate.consent.merkle import (
    SALT_SIZE,
    Frontier,
    SubtreeCache,
    canonical_json,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    salted_leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from neurogate.consent.models import (
    Account,
    AppPseudonym,
    LedgerCheckpoint,
    LedgerLeaf,
    LedgerV1Checkpoint,
    Subject,
    utcnow,
)
from neurogate.consent.receipts import build_receipt, verify_receipt
from neurogate.errors import ErasedEntryError, LedgerError, ValidationError

LOG_FORMAT = 2
"""Format of the log this module writes (2: salted leaves)."""

PAGE_LIMIT = 1000
"""Most leaves, entries or checkpoints one page of a listing returns."""

# Every kind of leaf the ledger holds; anything else is a programming error.
ACTIONS = frozenset(
    {
        "consent.grant",
        "consent.assent",
        "consent.dissent",
        "consent.revoke",
        "consent.expire",
        "decision.deny",
        "auth.login_failed",
        "subject.export",
        "subject.erase",
        "device.pair",
        "device.unpair",
        "stream.start",
        "stream.stop",
        "stream.deny",
        "abuse.aggregate",
        "ledger.migrate",
        "recording.start",
        "recording.stop",
        "recording.read",
        "recording.delete",
        "recording.export",
        "keys.rotate",
    }
)
# Fields a leaf may carry: pseudonymous ids, codes, counts, times and hashes only.
_ALLOWED_FIELDS = frozenset(
    {
        "action", "at", "seq", "subject", "account", "app", "consent", "device", "purpose",
        "product", "reasons", "actor_role", "capacity", "record_sha256", "notice_sha256",
        "frames", "samples", "dropped", "stream", "reason_code",
        "kind", "key", "count", "window",
        "from_origin", "from_size", "from_root", "erased",
        "recording", "segments", "key_version",
    }
)
_LOCK_ID = 6962
_BATCHES = "neurogate.ledger.batches"  # session.info key: {id(ledger): _Batch}
# The hot path runs Core statements built once (an ORM flush per append costs far more).
_LEAVES = LedgerLeaf.__table__  # type: ignore[attr-defined]
_CHECKPOINTS = LedgerCheckpoint.__table__  # type: ignore[attr-defined]
_LAST_LEAF = core_select(_LEAVES.c.seq, _LEAVES.c.leaf_hash).order_by(
    _LEAVES.c.seq.desc()).limit(1)
_INSERT_LEAF = insert(_LEAVES)
_INSERT_CHECKPOINT = insert(_CHECKPOINTS)


def log_origin(configured: str) -> str:
    """The origin the format-2 log signs its checkpoints under: ``<configured>/v2``."""
    suffix = f"/v{LOG_FORMAT}"
    return configured if configured.endswith(suffix) else configured + suffix


@dataclass(frozen=True)
class Appended:
    """Where an entry landed: its index, its bytes, its salt and leaf hash, and the
    number of leaves in the tree once it is in (within its transaction)."""

    seq: int
    entry: bytes
    salt: bytes
    leaf_hash: bytes
    size: int


@dataclass(frozen=True)
class LedgerEntry:
    """One leaf with its opening: ``entry`` and ``salt`` are None once erased."""

    seq: int
    leaf_hash: bytes
    entry: bytes | None
    salt: bytes | None

    @property
    def opaque(self) -> bool:
        """True when the entry and its salt were erased."""
        return self.entry is None or self.salt is None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form: the entry as an object, the salt and hash in base64."""
        return {
            "seq": self.seq,
            "leaf_hash": base64.b64encode(self.leaf_hash).decode(),
            "entry": None if self.entry is None else json.loads(self.entry),
            "salt": None if self.salt is None else base64.b64encode(self.salt).decode(),
            "opaque": self.opaque,
        }


@dataclass(frozen=True)
class ReceiptStatus:
    """Whether a receipt's leaf is in this ledger's newest checkpoint, in plain terms.

    ``included`` is True when the receipt verifies and its leaf is proven to be in the
    tree of ``tree_size`` leaves signed at ``checkpoint_at``; otherwise ``problem``
    says why not, in one sentence.
    """

    included: bool
    tree_size: int
    checkpoint_at: datetime | None
    leaf_index: int | None = None
    problem: str | None = None


class _Tree:
    """The committed log as this process knows it: leaf hashes, frontier, subtree cache.

    ``hashes`` only ever grows; a reader that noted ``frontier.size`` may index it up
    to that size while others append.
    """

    __slots__ = ("cache", "frontier", "hashes")

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.frontier = Frontier()
        self.cache: dict[tuple[int, int], bytes] = {}


class _View(Sequence[bytes]):
    """The first ``base`` committed leaf hashes followed by a transaction's new ones."""

    def __init__(self, committed: list[bytes], base: int, extra: Sequence[bytes] = ()) -> None:
        self._committed, self._base, self._extra = committed, base, extra

    def __len__(self) -> int:
        return self._base + len(self._extra)

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            if stop <= self._base:
                return self._committed[start:stop]
            head = self._committed[start : self._base] if start < self._base else []
            tail = self._extra[max(start - self._base, 0) : stop - self._base]
            return [*head, *tail]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._committed[index] if index < self._base else self._extra[index - self._base]


class _PrefixCache(MutableMapping[tuple[int, int], bytes]):
    """A subtree cache that remembers only subtrees inside the committed prefix.

    A transaction's own leaves may still roll back, so their subtrees go to a private
    dict that dies with the call.
    """

    def __init__(self, shared: dict[tuple[int, int], bytes], bound: int) -> None:
        self._shared, self._bound = shared, bound
        self._local: dict[tuple[int, int], bytes] = {}

    def _store(self, key: tuple[int, int]) -> dict[tuple[int, int], bytes]:
        return self._shared if key[0] + key[1] <= self._bound else self._local

    def __getitem__(self, key: tuple[int, int]) -> bytes:
        return self._store(key)[key]

    def __setitem__(self, key: tuple[int, int], value: bytes) -> None:
        self._store(key)[key] = value

    def __delitem__(self, key: tuple[int, int]) -> None:
        del self._store(key)[key]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter({**self._shared, **self._local})

    def __len__(self) -> int:
        return len(self._shared) + len(self._local)


@dataclass
class _Batch:
    """What one transaction appended: its leaves' hashes on top of the committed tree."""

    ledger: Ledger
    tree: _Tree
    base: int
    frontier: Frontier
    hashes: list[bytes] = field(default_factory=list)
    signed: int = -1  # tree size of the newest checkpoint signed in this transaction
    note: str = ""
    stale: bool = False  # a SAVEPOINT rolled back: reread this batch's leaves

    @property
    def size(self) -> int:
        return self.frontier.size

    def view(self) -> _View:
        return _View(self.tree.hashes, self.base, self.hashes)

    def cache(self) -> SubtreeCache:
        return _PrefixCache(self.tree.cache, self.base)


class Ledger:
    """Append, prove and verify over the project's own database."""

    def __init__(self, *, signer: Signer, origin: str) -> None:
        self.signer = signer
        self.legacy_origin = origin
        self.origin = log_origin(origin)
        self.verifier = Verifier(signer.verifier_key)
        self._lock = threading.Lock()
        self._tree = _Tree()

    # -- the committed tree ----------------------------------------------------------
    def _sync(self, session: Session) -> tuple[_Tree, int]:
        """Bring this process's copy of the committed tree up to the database's.

        Returns the tree and the committed size. Raises LedgerError when the database
        holds fewer leaves than this process has already seen committed, or a different
        newest leaf: the log was cut back or rewritten.
        """
        last = session.connection().execute(_LAST_LEAF).first()
        db_size = 0 if last is None else last[0] + 1
        while True:
            with self._lock:
                tree = self._tree
                size = tree.frontier.size
            if size > db_size:
                msg = (
                    f"The ledger in the database holds {db_size} leaves, but this gateway "
                    f"has already seen {size} committed: the log was cut back or restored "
                    "from an older copy. Nothing is appended until 'neurogate audit verify' "
                    "has been run and the gateway restarted."
                )
                raise LedgerError(msg)
            if size == db_size:
                if last is not None and tree.hashes[size - 1] != bytes(last[1]):
                    msg = (
                        f"The newest ledger leaf in the database (index {size - 1}) differs "
                        "from the one this gateway committed: the log was rewritten. Run "
                        "'neurogate audit verify'."
                    )
                    raise LedgerError(msg)
                return tree, size
            rows = session.exec(
                select(LedgerLeaf.seq, LedgerLeaf.leaf_hash)
                .where(LedgerLeaf.seq >= size, LedgerLeaf.seq < db_size)
                .order_by(col(LedgerLeaf.seq))
            ).all()
            new: list[bytes] = []
            for seq, value in rows:
                if seq != size + len(new):
                    msg = (
                        f"The ledger has a gap at index {size + len(new)}; run "
                        "'neurogate audit verify'."
                    )
                    raise LedgerError(msg)
                new.append(bytes(value))
            if len(new) != db_size - size:
                msg = (f"The ledger has a gap at index {size + len(new)}; run "
                       "'neurogate audit verify'.")
                raise LedgerError(msg)
            with self._lock:
                if self._tree is tree and tree.frontier.size == size:
                    frontier = tree.frontier.copy()
                    for value in new:
                        frontier.append(value)
                    tree.hashes.extend(new)
                    tree.frontier = frontier
            # Loop: another thread may have extended the tree meanwhile; check again.

    def _view(self, session: Session) -> tuple[_View, SubtreeCache]:
        """The leaf hashes ``session`` sees (its own uncommitted ones included)."""
        batch = self._batch(session)
        if batch is not None:
            return batch.view(), batch.cache()
        tree, size = self._sync(session)
        return _View(tree.hashes, size), _PrefixCache(tree.cache, size)

    def size(self, session: Session) -> int:
        """The number of leaves."""
        return len(self._view(session)[0])

    def frontier(self) -> Frontier:
        """A copy of the committed frontier this process holds (size and subtree roots),
        as of its last append or read; for monitoring and benchmarks."""
        with self._lock:
            return self._tree.frontier.copy()

    # -- batches (one per transaction) ---------------------------------------------
    def _batch(self, session: Session) -> _Batch | None:
        batch: _Batch | None = session.info.get(_BATCHES, {}).get(id(self))
        if batch is not None and batch.stale:
            self._reload(session, batch)
        return batch

    def _reload(self, session: Session, batch: _Batch) -> None:
        """Rebuild a batch from the rows its transaction still holds (after a SAVEPOINT
        that appended was rolled back)."""
        rows = session.connection().execute(
            core_select(_LEAVES.c.seq, _LEAVES.c.leaf_hash)
            .where(_LEAVES.c.seq >= batch.base).order_by(_LEAVES.c.seq)
        ).all()
        with self._lock:
            frontier = batch.tree.frontier.copy()
        assert frontier.size == batch.base  # this transaction still holds the log's lock
        batch.hashes = [bytes(value) for _, value in rows]
        for value in batch.hashes:
            frontier.append(value)
        batch.frontier, batch.signed, batch.note, batch.stale = frontier, -1, "", False

    def _lock_log(self, session: Session) -> None:
        """Become the only appender (SQLite: the writer holds its lock from BEGIN)."""
        if session.get_bind().dialect.name == "postgresql":
            session.exec(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))  # type: ignore[call-overload]

    def _open_batch(self, session: Session) -> _Batch:
        batch = self._batch(session)
        if batch is not None:
            return batch
        self._lock_log(session)
        tree, size = self._sync(session)
        with self._lock:
            frontier = tree.frontier.copy()
        assert frontier.size == size  # appenders are serialised by the lock just taken
        batch = _Batch(ledger=self, tree=tree, base=size, frontier=frontier)
        session.info.setdefault(_BATCHES, {})[id(self)] = batch
        return batch

    def _sign(self, session: Session, batch: _Batch) -> str:
        """Sign (once) and store the checkpoint of the batch's tree as it stands."""
        if batch.signed == batch.size:
            return batch.note
        connection = session.connection()
        # The first signing of a transaction with leaves of its own is at a size that no
        # committed checkpoint has (appenders are serialised), so there is nothing to find.
        first_own = batch.hashes and batch.signed == -1
        existing = None if first_own else connection.execute(
            core_select(_CHECKPOINTS.c.note).where(_CHECKPOINTS.c.size == batch.size)
        ).scalar()
        if existing is not None:  # signed earlier at this size (no leaf appended since)
            note = str(existing)
        else:
            note = sign_checkpoint(self.signer, self.origin, batch.size, batch.frontier.root())
            connection.execute(_INSERT_CHECKPOINT,
                               {"size": batch.size, "note": note, "created_at": utcnow()})
        batch.signed, batch.note = batch.size, note
        return note

    def _committed(self, batch: _Batch) -> None:
        """Adopt a committed batch's leaves into this process's tree."""
        if not batch.hashes:
            return
        with self._lock:
            tree = batch.tree
            if self._tree is tree and tree.frontier.size == batch.base:
                tree.hashes.extend(batch.hashes)
                tree.frontier = batch.frontier
            # Otherwise another thread already read these leaves back from the database.

    # -- writing -------------------------------------------------------------------
    def append(self, session: Session, *, action: str, at: datetime | None = None,
               concerns: str | None = None, **fields: Any) -> Appended:
        """Append one entry inside ``session``'s transaction.

        ``concerns`` is the internal id of the subject the entry is about (kept beside
        the leaf, never in it, so that their export finds it and their erasure deletes
        it). When omitted it is looked up from a ``subject`` pseudonym (global or an
        app's) or a subject's ``account`` id among ``fields``. The transaction's
        checkpoint is signed when it commits.
        """
        if action not in ACTIONS:
            msg = f"Unknown ledger action {action!r}."
            raise LedgerError(msg)
        unknown = set(fields) - _ALLOWED_FIELDS
        if unknown:
            msg = f"Ledger entries may not carry the fields {sorted(unknown)}."
            raise LedgerError(msg)
        batch = self._open_batch(session)
        seq = batch.size
        record = {k: v for k, v in fields.items() if v is not None}
        record.update(
            action=action, seq=seq, at=(at or utcnow()).isoformat(timespec="milliseconds")
        )
        entry = canonical_json(record)
        salt = secrets.token_bytes(SALT_SIZE)
        hashed = salted_leaf_hash(salt, entry)
        if concerns is None:
            concerns = _subject_of(session, record)
        session.connection().execute(_INSERT_LEAF, {
            "seq": seq, "entry": entry, "leaf_hash": hashed, "salt": salt,
            "subject_id": concerns})
        batch.hashes.append(hashed)
        batch.frontier.append(hashed)
        return Appended(seq=seq, entry=entry, salt=salt, leaf_hash=hashed, size=batch.size)

    def erase_subject(self, session: Session, subject_id: str) -> int:
        """Delete the entries and salts of every leaf concerning ``subject_id``.

        Their leaves stay in the tree, opaque: checkpoints and proofs still verify, and
        nothing can open those leaves again. Returns how many leaves were made opaque.
        """
        session.flush()
        result = session.exec(  # type: ignore[call-overload]
            update(LedgerLeaf)
            .where(col(LedgerLeaf.subject_id) == subject_id)
            .values(entry=None, salt=None, subject_id=None)
            .execution_options(synchronize_session=False)
        )
        for obj in list(session.identity_map.values()):
            if isinstance(obj, LedgerLeaf):
                session.expire(obj)
        return int(result.rowcount or 0)

    # -- reading (public) ------------------------------------------------------------
    def latest_checkpoint(self, session: Session) -> str:
        """The newest signed checkpoint; one is signed now if none covers the tree yet
        (a new log, or one just migrated)."""
        batch = self._batch(session)
        if batch is not None:
            return self._sign(session, batch)
        stored = session.exec(
            select(LedgerCheckpoint).order_by(col(LedgerCheckpoint.size).desc()).limit(1)
        ).first()
        if stored is not None and stored.size >= self.size(session):
            return stored.note
        return self._sign(session, self._open_batch(session))

    def checkpoint_at(self, session: Session, size: int) -> LedgerCheckpoint | None:
        """The stored checkpoint of the tree of ``size`` leaves, if one was signed."""
        return session.get(LedgerCheckpoint, size)

    def checkpoints(self, session: Session, from_size: int = 0,
                    limit: int = 100) -> list[dict[str, Any]]:
        """Stored checkpoints of at least ``from_size`` leaves, smallest first (size and
        signed note; not the time each was signed, which would time each append)."""
        _check_page("from_size", from_size, "limit", limit)
        rows = session.exec(
            select(LedgerCheckpoint).where(LedgerCheckpoint.size >= from_size)
            .order_by(col(LedgerCheckpoint.size)).limit(limit)
        ).all()
        return [{"size": r.size, "note": r.note} for r in rows]

    def leaves(self, session: Session, start: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of leaf hashes (hex), from index ``start``: all a verifier needs to
        recompute every root, and nothing about any entry."""
        _check_page("start", start, "limit", limit)
        hashes, _ = self._view(session)
        return {
            "start": start,
            "tree_size": len(hashes),
            "leaf_hashes": [h.hex() for h in hashes[start : start + limit]],
        }

    def inclusion(self, session: Session, index: int, size: int | None = None) -> dict[str, Any]:
        """An inclusion proof of leaf ``index`` in the tree of ``size`` leaves, with that
        tree's signed checkpoint when one was stored. No entry: only hashes."""
        hashes, cache = self._view(session)
        size = len(hashes) if size is None else size
        if not 0 < size <= len(hashes):
            msg = (
                f"Invalid value for the 'tree_size' parameter. Allowed values are 1 to "
                f"{len(hashes)}, but got {size} instead."
            )
            raise ValidationError(msg, field="tree_size")
        if not 0 <= index < size:
            msg = (
                f"Invalid value for the 'index' parameter. Allowed values are 0 to {size - 1} "
                f"for a tree of {size} leaves, but got {index} instead."
            )
            raise ValidationError(msg, field="index")
        stored = self.checkpoint_at(session, size)
        return {
            "leaf_index": index,
            "tree_size": size,
            "leaf_hash": hashes[index].hex(),
            "root": root(hashes, size, cache=cache).hex(),
            "proof": [h.hex() for h in inclusion_proof(hashes, index, size, cache=cache)],
            "checkpoint": None if stored is None else stored.note,
        }

    def consistency(self, session: Session, first: int, second: int) -> dict[str, Any]:
        """A consistency proof between the trees of ``first`` and ``second`` leaves."""
        hashes, cache = self._view(session)
        if not 0 < first <= second <= len(hashes):
            msg = (
                f"Invalid values for the 'first' and 'second' parameters. They must satisfy "
                f"1 <= first <= second <= {len(hashes)}, but got first={first} and "
                f"second={second} instead."
            )
            raise ValidationError(msg, field="first")
        return {
            "first": first,
            "second": second,
            "first_root": root(hashes, first, cache=cache).hex(),
            "second_root": root(hashes, second, cache=cache).hex(),
            "proof": [h.hex() for h in consistency_proof(hashes, first, second, cache=cache)],
        }

    # -- reading (the people concerned, auditors) ------------------------------------
    def entries(self, session: Session, principal: Principal, start: int = 0,
                limit: int = 100) -> dict[str, Any]:
        """A page of whole entries with their salts, for the ``auditor`` role and admins.

        Erased leaves come back opaque (``entry`` and ``salt`` null).
        """
        access.require_role(principal, "auditor", "admin")
        _check_page("start", start, "limit", limit)
        rows = session.exec(
            select(LedgerLeaf).where(LedgerLeaf.seq >= start)
            .order_by(col(LedgerLeaf.seq)).limit(limit)
        ).all()
        return {
            "start": start,
            "tree_size": self.size(session),
            "entries": [_entry_of(row).as_json() for row in rows],
        }

    def entries_for_subject(self, session: Session, subject_id: str) -> list[LedgerEntry]:
        """Every entry concerning the subject ``subject_id`` (internal id), in log order,
        each with its ``seq``, canonical JSON ``entry`` and ``salt``.

        For the subject's own export and portal: the caller checks that the person
        asking may see this subject. ``LedgerEntry.as_json()`` gives a JSON-ready form.
        """
        rows = session.exec(
            select(LedgerLeaf).where(LedgerLeaf.subject_id == subject_id)
            .order_by(col(LedgerLeaf.seq))
        ).all()
        return [_entry_of(row) for row in rows]

    def receipt(self, session: Session, appended: Appended) -> dict[str, Any]:
        """A signed consent receipt (entry, salt, inclusion proof, checkpoint) for an
        entry appended in this transaction; its checkpoint is signed and stored now."""
        batch = self._batch(session)
        if batch is not None and appended.seq >= batch.base:
            note = self._sign(session, batch)
            hashes, cache, size = batch.view(), batch.cache(), batch.size
        else:
            note = self.latest_checkpoint(session)
            hashes, cache = self._view(session)
            size = self.open(note).size
        return build_receipt(
            entry=appended.entry,
            salt=appended.salt,
            index=appended.seq,
            size=size,
            proof=inclusion_proof(hashes, appended.seq, size, cache=cache),
            checkpoint=note,
            signer=self.signer,
        )

    def receipt_for(self, session: Session, seq: int) -> dict[str, Any]:
        """A receipt for an earlier leaf (entry and salt), proven against the newest
        checkpoint. Raises LedgerError for an unknown leaf, and ErasedEntryError (a
        LedgerError and a NotFoundError) for an erased one."""
        leaf = session.get(LedgerLeaf, seq)
        if leaf is None:
            msg = f"No ledger leaf with index {seq} exists."
            raise LedgerError(msg)
        if leaf.entry is None or leaf.salt is None:
            msg = f"The ledger leaf {seq} was erased; no receipt can open it any more."
            raise ErasedEntryError(msg)
        return self.receipt(session, Appended(
            seq=seq, entry=bytes(leaf.entry), salt=bytes(leaf.salt),
            leaf_hash=bytes(leaf.leaf_hash), size=self.size(session),
        ))

    def check_receipt(self, session: Session, receipt: object) -> ReceiptStatus:
        """Check a receipt against this ledger's newest checkpoint, in plain terms.

        The receipt must verify offline (signature, checkpoint, inclusion), and its leaf
        must be in the newest tree: same leaf hash at its index, and its checkpoint
        consistent with the newest one. A version 1 receipt (issued before leaves were
        salted) counts as included when the re-committed log holds its entry at its
        index. Never raises for a bad receipt: the result says what is wrong.
        """
        note = self.latest_checkpoint(session)
        newest = self.open(note)
        stored = self.checkpoint_at(session, newest.size)
        at = None if stored is None else stored.created_at

        def refuse(problem: str, index: int | None = None) -> ReceiptStatus:
            return ReceiptStatus(False, newest.size, at, index, problem)

        try:
            check = verify_receipt(receipt, self.verifier)  # type: ignore[arg-type]
        except LedgerError as exc:
            return refuse(exc.message)
        index = check.leaf_index
        if check.checkpoint.origin == self.legacy_origin and check.version == 1:
            leaf = session.get(LedgerLeaf, index)
            if leaf is None or leaf.entry is None or bytes(leaf.entry) != canonical_json(
                    check.leaf):
                return refuse("The ledger no longer holds the entry of this version 1 "
                              "receipt at its index (it was erased, or never was there).",
                              index)
            return ReceiptStatus(True, newest.size, at, index)
        if check.checkpoint.origin != self.origin:
            return refuse(f"The receipt is for the log {check.checkpoint.origin!r}, not "
                          f"{self.origin!r}.", index)
        if check.tree_size > newest.size:
            return refuse(f"The receipt's checkpoint covers {check.tree_size} leaves, more "
                          f"than this ledger's newest checkpoint ({newest.size}).", index)
        hashes, cache = self._view(session)
        if newest.size > len(hashes):
            return refuse("The ledger's newest checkpoint covers leaves it does not hold; "
                          "run 'neurogate audit verify'.", index)
        proof = inclusion_proof(hashes, index, newest.size, cache=cache)
        consistent = verify_consistency(
            check.tree_size, newest.size, check.checkpoint.root, newest.root,
            consistency_proof(hashes, check.tree_size, newest.size, cache=cache))
        if not (verify_inclusion(check.leaf_hash, index, newest.size, proof, newest.root)
                and consistent):
            return refuse("The receipt's leaf is not in this ledger's newest tree at its "
                          "index: the receipt or the ledger was altered.", index)
        return ReceiptStatus(True, newest.size, at, index)

    # -- auditing ------------------------------------------------------------------
    def verify(self, session: Session, external: Sequence[str] = ()) -> AuditReport:
        """Recompute every leaf, root and checkpoint from the stored rows.

        Erased leaves are reported as opaque, not as tampering; every other entry is
        checked against its leaf. ``external`` are checkpoints kept outside the database
        (by a witness, an auditor, a receipt holder): a log truncated or rewritten
        behind them fails against them. Version 1 checkpoints (kept by the migration,
        or given as external ones) are rechecked against the entries still held.
        """
        leaves = session.exec(select(LedgerLeaf).order_by(col(LedgerLeaf.seq))).all()
        notes = session.exec(
            select(LedgerCheckpoint.note).order_by(col(LedgerCheckpoint.size))
        ).all()
        entries = [None if leaf.entry is None else bytes(leaf.entry) for leaf in leaves]
        salts = [None if leaf.salt is None else bytes(leaf.salt) for leaf in leaves]
        stored = [bytes(leaf.leaf_hash) for leaf in leaves]
        report = verify_log(entries, stored, list(notes), self.verifier, salts=salts)
        tree = tree_hashes(entries, salts, stored)
        legacy = list(session.exec(
            select(LedgerV1Checkpoint.note).order_by(col(LedgerV1Checkpoint.size))
        ).all())
        mine = [n for n in external if _origin_of(n) != self.legacy_origin]
        legacy += [n for n in external if _origin_of(n) == self.legacy_origin]
        if mine:
            outside = verify_checkpoints(tree, mine, self.verifier, label="External checkpoint")
            report.problems += outside
        if legacy:
            self._verify_v1(entries, legacy, report)
        return report

    def _verify_v1(self, entries: list[bytes | None], notes: list[str],
                   report: AuditReport) -> None:
        """Recheck version 1 checkpoints against the unsalted hashes of the entries."""
        prefix: list[bytes] = []
        for entry in entries:
            if entry is None:
                break
            prefix.append(leaf_hash(entry))
        checkable, skipped = [], []
        for note in notes:
            try:
                size = open_checkpoint(note, self.verifier).size
            except LedgerError:
                size = 0  # a bad signature is reported by verify_checkpoints
            (checkable if size <= len(prefix) else skipped).append(note)
        report.problems += verify_checkpoints(prefix, checkable, self.verifier,
                                              label="Version 1 checkpoint")
        if skipped:
            report.notes.append(
                f"{len(skipped)} version 1 checkpoints cover leaf {len(prefix)}, which was "
                "erased, so their roots cannot be recomputed any more (their signatures "
                "were checked)."
            )

    def open(self, note: str) -> Checkpoint:
        """Open a checkpoint note signed by this gateway."""
        return open_checkpoint(note, self.verifier)


@event.listens_for(Session, "before_commit")
def _sign_batches(session: Session) -> None:
    """Sign each ledger batch of a committing transaction once, just before it commits."""
    for ledger in [batch.ledger for batch in session.info.get(_BATCHES, {}).values()]:
        batch = ledger._batch(session)  # reread first if a SAVEPOINT rolled back
        if batch is not None and batch.hashes:
            ledger._sign(session, batch)


@event.listens_for(Session, "after_commit")
def _adopt_batches(session: Session) -> None:
    for batch in session.info.pop(_BATCHES, {}).values():
        if not batch.stale:  # a stale one is read back from the database when next needed
            batch.ledger._committed(batch)


@event.listens_for(Session, "after_rollback")
def _drop_batches(session: Session) -> None:
    session.info.pop(_BATCHES, None)


@event.listens_for(Session, "after_soft_rollback")
def _recheck_batches(session: Session, previous_transaction: Any) -> None:
    """A rolled-back SAVEPOINT may have held appends: reread the batches before use."""
    if previous_transaction.nested:
        for batch in session.info.get(_BATCHES, {}).values():
            batch.stale = True


def _entry_of(row: LedgerLeaf) -> LedgerEntry:
    return LedgerEntry(
        seq=row.seq,
        leaf_hash=bytes(row.leaf_hash),
        entry=None if row.entry is None else bytes(row.entry),
        salt=None if row.salt is None else bytes(row.salt),
    )


def _subject_of(session: Session, record: dict[str, Any]) -> str | None:
    """The internal id of the subject an entry names by pseudonym or account, if any."""
    pseudonym = record.get("subject")
    if isinstance(pseudonym, str):
        found = session.exec(select(Subject.id).where(Subject.pseudonym == pseudonym)).first()
        if found is None:
            found = session.exec(
                select(AppPseudonym.subject_id).where(AppPseudonym.pseudonym == pseudonym)
            ).first()
        if found is not None:
            return found
    account = record.get("account")
    if isinstance(account, str):
        return session.exec(select(Account.subject_id).where(Account.id == account)).first()
    return None


def _origin_of(note: str) -> str:
    """The first line of a checkpoint note (its origin), unverified."""
    return note.split("\n", 1)[0] if isinstance(note, str) else ""


def _check_page(start_name: str, start: object, limit_name: str, limit: object) -> None:
    """Raise ValidationError unless ``start`` >= 0 and 1 <= ``limit`` <= PAGE_LIMIT."""
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        msg = (
            f"Invalid value for the '{start_name}' parameter. It must be a whole number of "
            f"0 or more, but got {start!r} instead."
        )
        raise ValidationError(msg, field=start_name)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= PAGE_LIMIT:
        msg = (
            f"Invalid value for the '{limit_name}' parameter. Allowed values are 1 to "
            f"{PAGE_LIMIT}, but got {limit!r} instead."
        )
        raise ValidationError(msg, field=limit_name)


__all__ = [
    "ACTIONS",
    "LOG_FORMAT",
    "PAGE_LIMIT",
    "Appended",
    "Ledger",
    "LedgerEntry",
    "ReceiptStatus",
    "log_origin",
]
