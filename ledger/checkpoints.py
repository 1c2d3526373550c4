"""The verifiable log: a Merkle tree over each partition, signed checkpoints
stored beside the log, proofs, and the auditor's checks.

The tree
--------
Each partition of the log has its own RFC 9162 tree (:mod:`ledger.merkle`) whose
leaves are the exact stored bytes of every record of the partition, in log order
(the embedded log has one partition; on Kafka every committed record of the
partition, ledger-written or not, is a leaf: leaf *i* is the *i*-th record a
``read_committed`` reader sees, not offset *i*, because transaction markers take
offsets). A tree of size N therefore commits to the first N records' bytes and
order: altering, removing, inserting or reordering any of them changes its root.

Checkpoints
-----------
A checkpoint is a C2SP tlog-checkpoint signed note (:mod:`ledger.notes`) whose
origin is ``<key name>/<partition>``: the log's key names the log, and the suffix
names the partition the tree covers. They are stored beside the log
(:class:`SqliteCheckpoints`: a ``checkpoints`` table in the embedded log's file;
``ledger.backends.kafka_checkpoints``: the ``<topic>.checkpoints`` topic) and can be
written to a file. Before signing, :class:`Checkpointer` checks that the new tree
is consistent with the latest checkpoint already stored for the origin (the log
must never sign two inconsistent views): if it is not, it refuses loudly. Signing
only reads the log, so appends are never held up by it.

What an auditor keeps
---------------------
The log's public key (and the witnesses') and the latest checkpoint. With them,
:func:`verify_log` proves that the log still extends that checkpoint: it rebuilds
the partition's tree from the records, and checks the RFC 9162 consistency proof
from the saved checkpoint to the current tree — which fails if a single record it
covers changed, disappeared or moved.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ledger import merkle, notes
from ledger.checkpoint_store import CheckpointStore, SqliteCheckpoints
from ledger.errors import InputError, LedgerError, NotFound
from ledger.log import EventLog, StoredRecord
from ledger.notes import ALG_ED25519, Checkpoint, NoteError, Receipt, SignedCheckpoint, Signer, Verifier

log = logging.getLogger(__name__)

_ORIGIN = re.compile(r"(?P<name>\S+)/(?P<partition>0|[1-9][0-9]*)")


class VerificationFailed(LedgerError):
    """A checkpoint, receipt or proof does not hold: the log was rewritten, or
    what was presented is forged."""

    exit_code = 1


class Inconsistent(VerificationFailed):
    """A new view of the log is not an append-only extension of one already signed."""


def origin_for(name: str, partition: int) -> str:
    return f"{name}/{partition}"


def partition_of(origin: str) -> int:
    match = _ORIGIN.fullmatch(origin)
    if match is None:
        raise InputError(f"checkpoint origin {origin!r} does not end with /<partition>")
    return int(match["partition"])


def load_signer(path: str | Path) -> Signer:
    try:
        return Signer.parse(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the signing key {path}: {exc}") from exc
    except (NoteError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} holds no signing key: {exc}") from exc


def load_verifier(text_or_path: str | Path) -> Verifier:
    """A verifier key given as its text (``name+id+base64``) or a file holding it."""
    text = str(text_or_path)
    if "+" not in text or Path(text).exists():
        try:
            text = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the public key {text_or_path}: {exc}") from exc
    try:
        return Verifier.parse(text)
    except NoteError as exc:
        raise InputError(f"{text_or_path} is no public key: {exc}") from exc


def require_log_key(key: Verifier | Signer, option: str = "--key", given: str | None = None) -> None:
    """The log signs its checkpoints with a plain Ed25519 signed-note key (type
    0x01); witnesses cosign with c2sp.org/tlog-cosignature keys (type 0x04). A
    cosignature key taken for the log's would make a checkpoint carrying nothing
    but a witness's cosignature pass as the log's, so it is refused outright."""
    if key.algorithm != ALG_ED25519:
        shown = given if given is not None else f"{key.name}+{key.key_id:08x}"
        hint = ": give it as --witness-key" if option == "--key" and isinstance(key, Verifier) else ""
        raise InputError(f"{option} must be the log's Ed25519 key; {shown} is a witness key{hint}")


def load_log_verifier(text_or_path: str | Path, option: str = "--key") -> Verifier:
    """The log's public key (see :func:`load_verifier`), never a witness's."""
    verifier = load_verifier(text_or_path)
    require_log_key(verifier, option, str(text_or_path))
    return verifier


def load_log_signer(path: str | Path, option: str = "--key") -> Signer:
    """The log's private key (see :func:`load_signer`), never a witness's."""
    signer = load_signer(path)
    require_log_key(signer, option, str(path))
    return signer


def parse_signed(text: str | bytes, where: str = "the checkpoint") -> SignedCheckpoint:
    try:
        return SignedCheckpoint.parse(text)
    except NoteError as exc:
        raise InputError(f"{where} is malformed: {exc}") from exc


def read_checkpoint_file(path: str | Path) -> SignedCheckpoint:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    return parse_signed(raw, str(path))


def require_signatures(
    signed: SignedCheckpoint, log_key: Verifier, witness_keys: Iterable[Verifier] = (), min_witnesses: int = 0
) -> None:
    """The checkpoint is signed by the log's key and co-signed by at least
    ``min_witnesses`` distinct keys of ``witness_keys``."""
    require_log_key(log_key)
    origin = signed.checkpoint.origin
    match = _ORIGIN.fullmatch(origin)
    if match is None or match["name"] != log_key.name:
        # The origin is <log key name>/<partition> (origin_for): a key of another
        # name (a witness's plain Ed25519 key, say) may have signed the text, but
        # it is not this log's signature.
        raise VerificationFailed(
            f"checkpoint {origin}@{signed.checkpoint.size} is not a checkpoint of the log key "
            f"{log_key.name}+{log_key.key_id:08x} (its origin names another log)"
        )
    if not signed.note.signed_by(log_key):
        raise VerificationFailed(
            f"checkpoint {origin}@{signed.checkpoint.size} carries no valid signature of the log key "
            f"{log_key.name}+{log_key.key_id:08x}"
        )
    witness_keys = list(witness_keys)
    witnesses = [w for w in witness_keys if (w.name, w.key_id) != (log_key.name, log_key.key_id)]
    distinct = {(w.name, w.key_id) for w in witnesses}
    if min_witnesses > len(distinct):
        repeated = sorted({f"{n}+{k:08x}" for n, k in distinct if sum((w.name, w.key_id) == (n, k) for w in witnesses) > 1})
        why = f" ({', '.join(repeated)} given more than once: the same key counts once)" if repeated else ""
        if len(witnesses) < len(witness_keys):
            why += " (the log's own key is no witness)"
        raise InputError(
            f"--min-witnesses {min_witnesses} is more than the {len(distinct)} distinct witness key(s) given{why}"
        )
    have = signed.note.signed_by_count(witnesses)
    if have < min_witnesses:
        raise VerificationFailed(
            f"checkpoint {origin}@{signed.checkpoint.size} has {have} valid witness signature(s), "
            f"{min_witnesses} required"
        )


# --------------------------------------------------------------- storage

__all__ = ["CheckpointStore", "SqliteCheckpoints"]  # kept here for callers; they live in checkpoint_store


def store_for(log_: EventLog) -> CheckpointStore:
    from ledger.backends.sqlite import SqliteLog

    if isinstance(log_, SqliteLog):
        return SqliteCheckpoints(log_.path)
    from ledger.backends.kafka import KafkaLog

    if isinstance(log_, KafkaLog):
        from ledger.backends.kafka_checkpoints import KafkaCheckpoints

        return KafkaCheckpoints(log_)
    raise InputError(f"no checkpoint store for {log_.url}")


def latest_texts(log_: EventLog) -> list[str]:
    """The latest stored checkpoint of every origin (with its co-signatures), as
    texts: what an evidence file carries. Empty when none was ever signed."""
    store = store_for(log_)
    try:
        return [str(store.latest(origin)) for origin in store.origins()]
    finally:
        store.close()


# --------------------------------------------------------------- trees


@dataclass
class PartitionTree:
    tree: merkle.Tree = field(default_factory=merkle.Tree)
    last_offset: int = -1


class Leaf(NamedTuple):
    """What the tree needs of a record, without building a StoredRecord."""

    partition: int
    offset: int
    model: str | None
    data: bytes


def _leaves(log_: EventLog, after: dict[int, int]) -> Iterator[Leaf]:
    fast = getattr(log_, "read_leaves", None)
    if fast is not None and log_.partitions() == [0]:
        for offset, model, data in fast(after.get(0, -1)):
            yield Leaf(0, offset, model, data)
        return
    for record in log_.read(after=after):
        yield Leaf(record.position.partition, record.position.offset, record.model, record.data)


class LogTrees:
    """The trees of every partition of a log, extended by reading only the
    records appended since the last call."""

    BATCH = 50_000

    def __init__(self, log_: EventLog, *, on_leaf: Callable[[int, Leaf], None] | None = None):
        self.log = log_
        self.partitions: dict[int, PartitionTree] = {p: PartitionTree() for p in log_.partitions()}
        self.on_leaf = on_leaf
        """Called with each new leaf's index in its partition's tree, and the leaf."""

    def update(self) -> dict[int, int]:
        """Read what was appended; return the new size of each partition's tree."""
        after = {p: t.last_offset for p, t in self.partitions.items()}
        pending: dict[int, list[bytes]] = {}
        for leaf in _leaves(self.log, after):
            part = self.partitions.setdefault(leaf.partition, PartitionTree())
            batch = pending.setdefault(leaf.partition, [])
            if self.on_leaf is not None:
                self.on_leaf(part.tree.size + len(batch), leaf)
            batch.append(leaf.data)
            part.last_offset = leaf.offset
            if len(batch) >= self.BATCH:
                part.tree.append_data(batch)
                batch.clear()
        for partition, batch in pending.items():
            self.partitions[partition].tree.append_data(batch)
        return {p: t.tree.size for p, t in self.partitions.items()}

    def tree(self, partition: int) -> merkle.Tree:
        part = self.partitions.get(partition)
        if part is None:
            raise NotFound(f"the log has no partition {partition}")
        return part.tree


def check_extends(tree: merkle.Tree, saved: Checkpoint, *, what: str = "the log") -> None:
    """Prove, with an RFC 9162 consistency proof from ``tree``, that ``tree``
    extends ``saved``; :class:`Inconsistent` names how it does not."""
    if tree.size < saved.size:
        older = " (or the file was exported before that checkpoint was signed)" if what == "the file" else ""
        raise Inconsistent(
            f"{what} holds {tree.size} record(s) in partition {partition_of(saved.origin)}, "
            f"but checkpoint {saved.origin}@{saved.size} covers {saved.size}: records were deleted "
            f"or the log was truncated{older}"
        )
    proof = tree.consistency_proof(saved.size, tree.size)
    try:
        merkle.verify_consistency(saved.size, tree.size, proof, saved.root, tree.root())
    except merkle.ProofError as exc:
        raise Inconsistent(
            f"{what} is not an append-only extension of checkpoint {saved.origin}@{saved.size}: "
            f"the first {saved.size} record(s) of partition {partition_of(saved.origin)} no longer hash to "
            f"its root ({exc}); records it covers were altered, removed, inserted or reordered"
        ) from exc


@dataclass
class StoredCheck:
    """The latest checkpoint stored for one origin, and whether the log still
    extends it and every other one stored for the origin."""

    latest: SignedCheckpoint
    size: int
    """Records of its partition now."""
    stored: int
    """Checkpoints stored for the origin (co-signed copies count), all checked."""
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_stored(log_: EventLog, store: CheckpointStore | None = None) -> list[StoredCheck]:
    """Whether the log is still an append-only extension of the checkpoints
    stored beside it: the tree of each partition is rebuilt from the records and
    a consistency proof checked from every stored checkpoint to it. Without the
    keys, signatures are not checked here (``verify --checkpoint --key`` does):
    this answers "was the log rewritten since it signed?", not "who signed?"."""
    own = store is None
    store = store_for(log_) if own else store
    try:
        stored = store.all()
        latest = {origin: store.latest(origin) for origin in store.origins()}
    finally:
        if own:
            store.close()
    if not stored:
        return []
    trees = LogTrees(log_)
    trees.update()
    checks = []
    for origin, newest in sorted(latest.items()):
        partition = _partition_or_none(origin)
        part = trees.partitions.get(partition, PartitionTree()) if partition is not None else PartitionTree()
        mine = [s for s in stored if s.checkpoint.origin == origin]
        check = StoredCheck(newest, part.tree.size, len(mine))
        if partition is None:
            check.problem = f"checkpoint origin {origin!r} does not end with /<partition>"
        else:
            # Newest first: its problem is the one to name; one proof per tree size.
            views = {(s.checkpoint.size, s.checkpoint.root): s.checkpoint for s in mine}
            for saved in [newest.checkpoint, *sorted(views.values(), key=lambda c: -c.size)]:
                try:
                    check_extends(part.tree, saved)
                except Inconsistent as exc:
                    check.problem = str(exc)
                    break
        checks.append(check)
    return checks


# --------------------------------------------------------------- signing


class Checkpointer:
    """Extends the trees and signs checkpoints, never one inconsistent with a
    checkpoint already stored for its origin."""

    def __init__(self, log_: EventLog, signer: Signer, store: CheckpointStore | None = None):
        require_log_key(signer)
        self.log = log_
        self.signer = signer
        self.store = store if store is not None else store_for(log_)
        self.trees = LogTrees(log_)
        self.signed_sizes: dict[int, int] = {}

    def origin(self, partition: int) -> str:
        return origin_for(self.signer.name, partition)

    def pending(self) -> int:
        """Records not yet covered by a checkpoint this checkpointer signed."""
        return sum(t.tree.size - self.signed_sizes.get(p, 0) for p, t in self.trees.partitions.items())

    def sign(self, *, force: bool = False) -> list[SignedCheckpoint]:
        """Sign a checkpoint of every partition that grew since its latest stored
        one (every partition with ``force``); return the new checkpoints."""
        self.trees.update()
        return self.sign_current(force=force)

    def sign_current(self, *, force: bool = False) -> list[SignedCheckpoint]:
        signed_now = []
        for partition, part in sorted(self.trees.partitions.items()):
            tree, origin = part.tree, self.origin(partition)
            latest = self.store.latest(origin)
            if latest is not None:
                if not latest.note.signed_by(self.signer.verifier()):
                    raise Inconsistent(
                        f"the latest stored checkpoint of {origin} is not signed by this key "
                        f"({self.signer.name}+{self.signer.key_id:08x}): refusing to sign beside it"
                    )
                try:
                    check_extends(tree, latest.checkpoint)
                except Inconsistent as exc:
                    # Raised, not also logged: the caller says it once (the CLI as its one error line).
                    raise Inconsistent(f"refusing to sign a checkpoint of {origin}: {exc}") from exc
                if latest.checkpoint.size == tree.size and not force:
                    self.signed_sizes[partition] = tree.size
                    continue
            elif tree.size == 0 and not force:
                continue
            signed = notes.sign_checkpoint(Checkpoint(origin, tree.size, tree.root()), self.signer)
            self.store.add(signed)
            self.signed_sizes[partition] = tree.size
            signed_now.append(signed)
        return signed_now

    def follow(
        self,
        *,
        every: int | None = None,
        interval: float | None = None,
        poll: float = 0.5,
        on_signed: Callable[[SignedCheckpoint], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        """Sign whenever ``every`` records arrived or ``interval`` seconds passed
        with new records, until ``stop()`` says so (or forever)."""
        last = time.monotonic()
        self.trees.update()
        for signed in self.sign_current():
            if on_signed:
                on_signed(signed)
        while stop is None or not stop():
            time.sleep(poll)
            self.trees.update()
            waiting = self.pending()
            due = (every is not None and waiting >= every) or (
                interval is not None and waiting and time.monotonic() - last >= interval
            )
            if every is None and interval is None:
                due = waiting > 0
            if due:
                for signed in self.sign_current():
                    if on_signed:
                        on_signed(signed)
                last = time.monotonic()


# --------------------------------------------------------------- proofs


def find_record(log_: EventLog, event_id: str) -> tuple[int, int, Leaf, LogTrees]:
    """Build the trees and find the record of ``event_id``: (partition, leaf
    index, the record, trees)."""
    from ledger import codec
    from ledger.errors import DecodeError

    needle = event_id.encode("ascii", "replace")
    found: list = []

    def look(index: int, leaf: Leaf) -> None:
        # The id's text is in the Avro bytes: decode only the few that hold it.
        if found or needle not in leaf.data:
            return
        try:
            event = codec.decode(leaf.data)
        except DecodeError:
            return
        if str(event.event_id) == event_id:
            found.append((leaf.partition, index, leaf))

    trees = LogTrees(log_, on_leaf=look)
    trees.update()
    if not found:
        raise NotFound(f"no event {event_id} in {log_.url}")
    partition, index, leaf = found[0]
    return partition, index, leaf, trees


def prove(log_: EventLog, event_id: str, store: CheckpointStore | None = None) -> Receipt:
    """An inclusion receipt for ``event_id`` against the latest stored checkpoint
    of its partition that covers it (the one with most co-signatures)."""
    store = store if store is not None else store_for(log_)
    partition, index, record, trees = find_record(log_, event_id)
    candidates = [s for s in store.all() if _partition_or_none(s.checkpoint.origin) == partition]
    covering = [s for s in candidates if s.checkpoint.size > index]
    if not covering:
        raise NotFound(
            f"event {event_id} (leaf {index} of partition {partition}) is not covered by a signed checkpoint yet: "
            "run `ledger checkpoint` first"
        )
    best = max(covering, key=lambda s: (s.checkpoint.size, len(s.note.signatures)))
    tree = trees.tree(partition)
    check_extends(tree, best.checkpoint, what="the log")
    path = tree.inclusion_proof(index, best.checkpoint.size)
    # The record's bytes ride along as the receipt's extra data: the receipt
    # alone then shows which event it proves, offline.
    return Receipt(index, tuple(path), best, record.data)


def _partition_or_none(origin: str) -> int | None:
    match = _ORIGIN.fullmatch(origin)
    return int(match["partition"]) if match else None


@dataclass
class ReceiptResult:
    index: int
    origin: str
    size: int
    event_id: str | None


def verify_receipt(
    receipt_text: str | bytes,
    log_key: Verifier,
    *,
    data: bytes | None = None,
    leaf_hash: bytes | None = None,
    witness_keys: Iterable[Verifier] = (),
    min_witnesses: int = 0,
) -> ReceiptResult:
    """Check a receipt offline: the checkpoint's signatures and the inclusion
    path, element by element. The record is ``data`` (its exact bytes) or its
    ``leaf_hash``; with neither, the receipt's ``extra`` data is the record."""
    try:
        receipt = Receipt.parse(receipt_text)
    except NoteError as exc:
        raise InputError(f"the receipt is malformed: {exc}") from exc
    require_signatures(receipt.checkpoint, log_key, witness_keys, min_witnesses)
    if data is None and leaf_hash is None:
        if receipt.extra is None:
            raise InputError("the receipt carries no record bytes: give the record to check")
        data = receipt.extra
    leaf = leaf_hash if leaf_hash is not None else merkle.leaf_hash(data)
    checkpoint = receipt.checkpoint.checkpoint
    try:
        merkle.verify_inclusion(receipt.index, checkpoint.size, leaf, list(receipt.path), checkpoint.root)
    except merkle.ProofError as exc:
        raise VerificationFailed(
            f"the receipt does not prove the record is leaf {receipt.index} of {checkpoint.origin}@{checkpoint.size}: {exc}"
        ) from exc
    event_id = None
    if data is not None:
        from ledger import codec
        from ledger.errors import DecodeError

        try:
            event_id = str(codec.decode(data).event_id)
        except DecodeError:
            event_id = None
    return ReceiptResult(receipt.index, checkpoint.origin, checkpoint.size, event_id)


# --------------------------------------------------------------- the auditor's check


@dataclass
class LogCheck:
    """What ``verify --checkpoint`` found."""

    saved: Checkpoint
    size: int
    """Records of the partition now."""
    problems: list[str] = field(default_factory=list)
    chain_problems: list = field(default_factory=list)
    latest: Checkpoint | None = None

    @property
    def ok(self) -> bool:
        """Consistent with the checkpoint, and every chain intact (records
        after the checkpoint are only covered by the chains)."""
        return not self.problems and not self.chain_problems

    def summary(self) -> str:
        status = "consistent" if self.ok else f"{len(self.problems) + len(self.chain_problems)} problem(s)"
        return (
            f"partition {partition_of(self.saved.origin)}: {self.size} record(s); checkpoint "
            f"{self.saved.origin}@{self.saved.size}: {status}"
        )


_MAX_OFFSET = 2**63 - 1


def _read_partitions(log_: EventLog, starts: dict[int, int]) -> list[StoredRecord]:
    """The records of the partitions in ``starts``, each after its given offset."""
    after = {p: _MAX_OFFSET for p in log_.partitions()}
    after.update(starts)
    return [r for r in log_.read(after=after) if r.position.partition in starts]


def _walk_after(log_: EventLog, boundary: dict[int, int], last_covered: dict[str, Leaf], home):
    """Walk the chains of the records no checkpoint covers (those after offset
    ``boundary[p]``), each stream anchored at its last covered event. The covered
    ones are proven by the tree already: decoding a million of them again would
    cost minutes and prove nothing more (``ledger verify`` walks every chain with
    the rules, when that is wanted)."""
    import hashlib

    from ledger import codec
    from ledger.errors import DecodeError
    from ledger.verify import verify as walk_chains

    anchors = {}
    for model, leaf in last_covered.items():
        try:
            anchors[model] = (codec.decode(leaf.data).sequence, hashlib.sha256(leaf.data).hexdigest())
        except DecodeError:
            continue  # an unreadable last record: the stream's next event is checked from scratch
    return walk_chains(_read_partitions(log_, boundary), anchors=anchors, home=home)


def verify_log(
    log_: EventLog,
    saved_texts: Iterable[str | bytes],
    log_key: Verifier,
    *,
    witness_keys: Iterable[Verifier] = (),
    min_witnesses: int = 0,
    store: CheckpointStore | None = None,
) -> list[LogCheck]:
    """Prove the log is an append-only extension of the checkpoints an auditor
    saved (one per partition): their signatures first, then a consistency proof
    from each to the tree rebuilt from the records, then the same from it to the
    log's own latest stored checkpoint. The per-model chains of the records
    after the checkpoints are walked (anchored at the last covered event of each
    stream); when the tree shows a rewrite, every chain is walked to name it."""
    from ledger.verify import verify as walk_chains

    witness_keys = list(witness_keys)
    saved_list = [parse_signed(text, "the saved checkpoint") for text in saved_texts]
    if not saved_list:
        raise InputError("no checkpoint to verify against")
    for saved in saved_list:
        require_signatures(saved, log_key, witness_keys, min_witnesses)
    covered: dict[int, int] = {}
    for saved in saved_list:
        partition = partition_of(saved.checkpoint.origin)
        covered[partition] = max(covered.get(partition, 0), saved.checkpoint.size)
    boundary = dict.fromkeys(covered, -1)
    last_covered: dict[str, Leaf] = {}

    def note(index: int, leaf: Leaf) -> None:
        size = covered.get(leaf.partition)
        if size is None or index >= size:
            return
        boundary[leaf.partition] = leaf.offset
        if leaf.model:
            last_covered[leaf.model] = leaf

    trees = LogTrees(log_, on_leaf=note)
    trees.update()
    try:
        store = store if store is not None else store_for(log_)
        stored = store.all()
    except LedgerError as exc:
        stored = []
        log.warning("cannot read the log's stored checkpoints: %s", exc)
    checks = []
    for saved in saved_list:
        tree = trees.partitions.get(partition_of(saved.checkpoint.origin), PartitionTree()).tree
        check = LogCheck(saved.checkpoint, tree.size)
        checks.append(check)
        try:
            check_extends(tree, saved.checkpoint)
        except Inconsistent as exc:
            check.problems.append(str(exc))
            continue
        own = [s for s in stored if s.checkpoint.origin == saved.checkpoint.origin and s.note.signed_by(log_key)]
        if own:
            latest = max(own, key=lambda s: s.checkpoint.size).checkpoint
            check.latest = latest
            problem = None
            if latest.size < saved.checkpoint.size:
                problem = f"it covers fewer records than the saved one ({saved.checkpoint.size})"
            elif latest.size > tree.size:
                problem = f"it covers {latest.size} records, the partition now holds {tree.size}"
            else:
                proof = tree.consistency_proof(saved.checkpoint.size, latest.size)
                try:
                    merkle.verify_consistency(saved.checkpoint.size, latest.size, proof, saved.checkpoint.root, latest.root)
                except merkle.ProofError as exc:
                    problem = str(exc)
            if problem is not None:
                check.problems.append(
                    f"the log's own latest checkpoint {latest.origin}@{latest.size} is not consistent with "
                    f"the saved one and the records: {problem}"
                )
    home = getattr(log_, "partition_for", None)
    if all(not check.problems for check in checks):
        report = _walk_after(log_, boundary, last_covered, home)
    else:
        # Something it covers changed: the chains of the whole partition name what.
        report = walk_chains(_read_partitions(log_, dict.fromkeys(covered, -1)), home=home)
    for check in checks:
        partition = partition_of(check.saved.origin)
        check.chain_problems = [p for p in report.problems if p.position == "-" or p.position.startswith(f"{partition}:")]
    return checks
