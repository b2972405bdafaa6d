"""``RuntimeStore``: the contract every backend implements.

The public methods are meerkat's 10 ``RuntimeStore`` methods, same names and
argument order. They live here, once: each checks its arguments (raising
``TypeError``/``ValueError`` before anything is written), computes the
receipt digest, encodes values (``codec``) and decodes what comes back. A
backend only supplies the atomic byte-level primitives at the bottom
(``_commit_boundary`` ...), so every backend behaves identically.

Invariants (where meerkat's backends disagree, this contract decides):

* The next receipt sequence of (runtime, run) is the largest existing one
  + 1, from 0, counting receipts written by ``atomic_apply``; O(1).
* ``commit_session_boundary`` stores snapshot, minted receipt and stamped
  input states as one atomic unit, or nothing.
* ``atomic_apply`` stores the caller's receipt unchanged; an existing receipt
  key raises ``ReceiptConflict`` and nothing of the call is written.
* An invalid snapshot raises ``WriteFailed`` and nothing is written; a
  ``session_store_key`` other than the snapshot's id raises
  ``SessionKeyMismatch`` and nothing is written.
* ``load_input_states`` returns inputs in the order their ids were first
  stored for the runtime; an update keeps its place.
* Runtimes are isolated; a runtime id is any non-empty string.
* Sequences are integers in [0, 2**53 - 1]: Redis's Lua numbers are doubles.
* An idempotency key belongs to at most one input of a runtime: a write
  giving it to a second input raises ``IdempotencyKeyConflict`` naming both,
  and nothing is written. Each write updates the key index atomically.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from typing import Any, NamedTuple, cast
from collections.abc import Iterable, Sequence

import msgspec

from . import codec, jsonwire, telemetry
from .digest import DigestCache, inspect_session
from .errors import (
    IdempotencyKeyConflict,
    IndexMissing,
    InternalError,
    InvalidSessionSnapshot,
    ReadFailed,
    SessionKeyMismatch,
    WriteFailed,
)
from .keys import index_input_field, index_key_field
from .lease import FencedStore, Lease, ttl_ms
from .ids import InputId, LogicalRuntimeId, RunId, SessionId
from .types import (
    InputState,
    surely_storable,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RuntimeState,
    SessionDelta,
)

#: Largest receipt sequence: 2**53 - 1, the largest integer a double holds exactly.
MAX_SEQUENCE = 2**53 - 1

class EncodedInput(NamedTuple):
    """One input state handed to a backend: its id, its encoded value, and
    the idempotency key it claims (None: none), which the backend indexes."""

    input_id: str
    value: bytes
    idempotency_key: str | None = None


EncodedInputs = list[EncodedInput]

#: How long commit ids are remembered by default: a day.
DEFAULT_COMMIT_ID_TTL = 24 * 3600.0
#: Longest commit-id retention: ten years, in seconds (PEXPIRE takes integer ms).
MAX_COMMIT_ID_TTL = 10 * 365 * 24 * 3600.0
#: Longest runtime id, in UTF-8 bytes (meerkat uses 36-character UUIDs).
MAX_RUNTIME_ID_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class StoreOptions:
    """What every backend is configured with (keyword arguments of the
    backends' constructors and ``open_store``, or ``?name=`` in the URL).

    Size limits are checked before anything is sent: a too-large snapshot or
    batch gets a ValueError naming the limit instead of a Redis call that
    would block the server for everyone."""

    commit_id_ttl: float = DEFAULT_COMMIT_ID_TTL  # seconds a commit id is remembered
    max_snapshot_bytes: int = 32 * 1024 * 1024
    max_inputs_per_call: int = 10_000
    #: Bytes of validated session prefixes remembered so that the digest of a
    #: growing session reads only its new messages (digest.DigestCache); 0: off.
    digest_cache_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("commit_id_ttl", "max_snapshot_bytes", "max_inputs_per_call"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        cache = self.digest_cache_bytes
        if not isinstance(cache, int) or isinstance(cache, bool) or cache < 0:
            raise ValueError(f"digest_cache_bytes must be an int >= 0 (0: no cache), got {cache!r}")
        if not self.commit_id_ttl <= MAX_COMMIT_ID_TTL:  # also refuses inf and nan
            raise ValueError(f"commit_id_ttl must be at most {MAX_COMMIT_ID_TTL:.0f} s (ten years), got {self.commit_id_ttl!r}")

    @property
    def commit_id_ttl_ms(self) -> int:
        return max(1, int(self.commit_id_ttl * 1000))


class CommitTag(NamedTuple):
    """An idempotent commit: its id and a fingerprint of its content."""

    commit_id: str
    fingerprint: str


@dataclasses.dataclass(frozen=True)
class PruneReport:
    commit_ids_forgotten: int
    receipts_removed: int


@dataclasses.dataclass
class RawRuntime:
    """Everything stored for one runtime, undecoded, read in one consistent
    step: what ``redis-store inspect`` and ``check`` look at."""

    state: bytes | None
    snapshot: bytes | None
    input_order: list[str]  # input ids in first-stored order
    inputs: dict[str, bytes]  # input id -> envelope
    receipts: dict[str, bytes]  # "<run_id>:<sequence>" -> envelope
    run_seqs: dict[str, str]  # run id -> largest sequence, as stored
    meta: dict[str, str]  # "layout", "snapshot_receipt" (see keys.py)
    #: The idempotency index as stored: "key:<key>" -> input id and
    #: "input:<input id>" -> key (see keys.py).
    index: dict[str, str] = dataclasses.field(default_factory=dict)


# -- argument checks ---------------------------------------------------------

def _type_error(name: str, expected: str, value: object) -> TypeError:
    return TypeError(f"{name} must be {expected}, got {type(value).__name__}")


def runtime_key(runtime_id: object) -> str:
    """The runtime id as the text the backends key by."""
    if isinstance(runtime_id, LogicalRuntimeId):
        text = str(runtime_id)
    elif isinstance(runtime_id, str):
        text = runtime_id
    else:
        raise _type_error("runtime_id", "a LogicalRuntimeId or str", runtime_id)
    if not text:
        raise ValueError("runtime_id must not be empty")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"runtime_id is not valid Unicode text: {exc}") from exc
    if size > MAX_RUNTIME_ID_BYTES:
        raise ValueError(f"runtime_id is {size} bytes of UTF-8; at most {MAX_RUNTIME_ID_BYTES} are allowed")
    return text


def _check(name: str, value: object, cls: type) -> None:
    if not isinstance(value, cls):
        raise _type_error(name, f"a {cls.__name__}", value)


def check_sequence(name: str, sequence: object) -> int:
    if not isinstance(sequence, int) or isinstance(sequence, bool):
        raise _type_error(name, "an int", sequence)
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(
            f"{name} must be in [0, 2**53 - 1], got {sequence}: sequences are "
            "exact integers in Redis's Lua only up to 2**53 - 1"
        )
    return sequence


def sequence_exhausted(run_id: str) -> WriteFailed:
    return WriteFailed(
        f"run {run_id} has used every receipt sequence up to 2**53 - 1; start a new run"
    )


def _storable(name: str, value: Any, cls: type[Any]) -> Any:
    """``value``, or its equal of exact types, refused (TypeError/ValueError)
    unless it reads back as an equal value: a str where a RunId belongs, an
    uppercase uuid, a datetime for a Timestamp, a negative count would
    otherwise be stored and then be unreadable, or keyed under the wrong
    text. What it returns encodes as its wire form (``codec``)."""
    _check(name, value, cls)
    if surely_storable(value):  # exact types: no round trip needed
        return value
    try:
        wire = value.to_dict()
        back = cls.from_dict(wire)
        same = back == value
    except (AttributeError, TypeError) as exc:
        raise TypeError(f"{name} cannot be stored: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{name} cannot be stored: {exc}") from exc
    if not same:
        raise TypeError(
            f"{name} cannot be stored: a field holds a value of the wrong type or form "
            "(ids must be RunId/InputId, times Timestamp, enums their enum type)"
        )
    free_form = wire.get("persisted_input")
    if free_form is not None:
        _check_plain_json(f"{name}.persisted_input", free_form)
    return back


def _storable_wire(name: str, value: object, cls: type) -> dict:
    """The wire dict of ``value``, refused as ``_storable`` refuses."""
    return _storable(name, value, cls).to_dict()


def _check_plain_json(name: str, value: object) -> None:
    """Free-form JSON must survive a JSON round trip unchanged (str keys,
    finite numbers, lists not tuples, no bytes)."""
    try:
        same = jsonwire.loads(jsonwire.dumps(value)) == value
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{name} is not plain JSON: {exc}") from exc
    if not same:
        raise ValueError(f"{name} is not plain JSON: it changes in a JSON round trip (non-str keys? tuples?)")


def _input_ids(name: str, ids: Iterable[object]) -> list[InputId]:
    ids = list(ids)
    for i, input_id in enumerate(ids):
        if type(input_id) is not InputId:  # (the name is formatted only for the error)
            _check(f"{name}[{i}]", input_id, InputId)
    return ids  # type: ignore[return-value]


def _input_wires(name: str, states: object) -> list[InputState]:
    """The states, checked storable; encoded (``_encode_inputs``) before the next await."""
    if isinstance(states, (str, bytes)) or not isinstance(states, Iterable):
        raise _type_error(name, "a list of InputState", states)
    return [
        state if type(state) is InputState and surely_storable(state) else _storable(f"{name}[{i}]", state, InputState)
        for i, state in enumerate(states)
    ]


def _encode_inputs(name: str, wires: list[InputState], encode) -> EncodedInputs:
    try:
        return [EncodedInput(str(s.input_id), encode(s), s.idempotency_key) for s in wires]
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. ints beyond 64 bits
        raise ValueError(f"{name} cannot be encoded: {exc}") from exc


def _receipt_wire(receipt: RunBoundaryReceipt) -> dict:
    _check("receipt", receipt, RunBoundaryReceipt)
    check_sequence("receipt.sequence", receipt.sequence)
    return _storable_wire("receipt", receipt, RunBoundaryReceipt)


def _fence(rid: str, lease: Lease | None) -> str:
    """The token a fenced write carries ("" without a lease)."""
    if lease is None:
        return ""
    _check("lease", lease, Lease)
    if lease.runtime_id != rid:
        raise ValueError(f"lease is for runtime {lease.runtime_id!r}, not {rid!r}")
    return str(lease.token)


def _commit_tag(commit_id: object, *parts: bytes | codec.SnapshotEnvelope | None) -> CommitTag | None:
    if commit_id is None:
        return None
    if not isinstance(commit_id, str):
        raise _type_error("commit_id", "a str", commit_id)
    if not commit_id or len(commit_id) > 200 or " " in commit_id:
        raise ValueError("commit_id must be 1 to 200 characters without spaces (a UUID is ideal)")
    digest = hashlib.sha1()
    for part in parts:  # each one's length, then its bytes (a snapshot's envelope: uncopied)
        if part is None:
            digest.update(b"-")
        elif isinstance(part, codec.SnapshotEnvelope):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part.header)
            digest.update(part.snapshot)
        else:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return CommitTag(commit_id, digest.hexdigest())


def _session_summary(delta: SessionDelta, cache: DigestCache | None = None):
    try:
        return inspect_session(delta.session_snapshot, cache)
    except InvalidSessionSnapshot as exc:
        raise WriteFailed(f"session snapshot is not a meerkat Session: {exc}") from exc


# -- the contract ----------------------------------------------------------------

class RuntimeStore(abc.ABC):
    """Durable control-plane state of meerkat runtimes (see module doc)."""

    _closed = False
    options = StoreOptions()

    @property
    def commit_id_ttl_ms(self) -> int:
        return self.options.commit_id_ttl_ms

    def _check_batch(self, name: str, wires: list[InputState]) -> None:
        if len(wires) > self.options.max_inputs_per_call:
            raise ValueError(
                f"{name} holds {len(wires)} input states; this store takes at most "
                f"{self.options.max_inputs_per_call} per call (max_inputs_per_call)"
            )
        seen: set[str] = set()
        claimed: dict[str, str] = {}
        for state in wires:
            input_id = str(state.input_id)
            if input_id in seen:
                raise ValueError(f"{name} names input {input_id} twice; send each input once per call")
            seen.add(input_id)
            key = state.idempotency_key
            if key is not None:
                if key in claimed:
                    raise IdempotencyKeyConflict(key, claimed[key], input_id)
                claimed[key] = input_id

    def _summary(self, delta: SessionDelta):
        size = len(delta.session_snapshot)
        if size > self.options.max_snapshot_bytes:
            raise ValueError(
                f"session snapshot is {size} bytes; this store takes at most "
                f"{self.options.max_snapshot_bytes} (max_snapshot_bytes)"
            )
        cache = self.__dict__.get("_digest_cache")
        if cache is None:  # one per store: what it remembers is this store's sessions
            cache = self._digest_cache = DigestCache(self.options.digest_cache_bytes)
        return _session_summary(delta, cache)

    def _envelope(self, delta: SessionDelta) -> codec.SnapshotEnvelope:
        """The snapshot's envelope, after ``_summary``: with what the digest
        cache found it to share with the session's snapshot before."""
        snapshot = delta.session_snapshot
        cache = self.__dict__.get("_digest_cache")
        return codec.SnapshotEnvelope(snapshot, cache.shared_with(snapshot) if cache is not None else None)

    # ---- writes ----

    async def commit_session_boundary(
        self,
        runtime_id: LogicalRuntimeId | str,
        session_delta: SessionDelta,
        run_id: RunId,
        boundary: RunApplyBoundary,
        contributing_input_ids: Sequence[InputId],
        input_updates: Sequence[InputState],
        *,
        lease: Lease | None = None,
        commit_id: str | None = None,
    ) -> RunBoundaryReceipt:
        """Mint the run's next receipt from the snapshot's digest, stamp
        ``last_run_id``/``last_boundary_sequence`` on the input updates, and
        store snapshot, receipt and inputs atomically. Returns the receipt,
        equal to what ``load_boundary_receipt`` returns later.

        With ``lease``, the write happens only while that lease is current
        (else ``FencedOut``). With ``commit_id``, a retry of the same commit
        returns the receipt minted the first time and writes nothing;
        the id used for another commit raises ``CommitIdReused``."""
        rid = runtime_key(runtime_id)
        _check("session_delta", session_delta, SessionDelta)
        _check("run_id", run_id, RunId)
        _check("boundary", boundary, RunApplyBoundary)
        contributing = _input_ids("contributing_input_ids", contributing_input_ids)
        wires = _input_wires("input_updates", input_updates)
        self._check_batch("input_updates", wires)
        # Copies (the caller's states stay as they are); the backend appends last_boundary_sequence.
        wires = [msgspec.structs.replace(s, last_run_id=run_id, last_boundary_sequence=None) for s in wires]
        fence = _fence(rid, lease)
        summary = self._summary(session_delta)
        receipt = RunBoundaryReceipt(
            run_id=run_id,
            boundary=boundary,
            contributing_input_ids=contributing,
            conversation_digest=summary.conversation_digest,
            message_count=summary.message_count,
            sequence=0,
        )
        snapshot = self._envelope(session_delta)
        prefix = codec.receipt_prefix(receipt)  # built here from checked values
        inputs = _encode_inputs("input_updates", wires, codec.input_state_prefix)
        tag = _commit_tag(commit_id, b"commit", snapshot, prefix, *(entry.value for entry in inputs))
        self._ensure_open(WriteFailed)
        receipt.sequence = await self._indexed(
            rid, lambda: self._commit_boundary(rid, str(run_id), snapshot, prefix, inputs, fence, tag)
        )
        return receipt

    async def atomic_apply(
        self,
        runtime_id: LogicalRuntimeId | str,
        session_delta: SessionDelta | None,
        receipt: RunBoundaryReceipt,
        input_updates: Sequence[InputState],
        session_store_key: SessionId | None = None,
        *,
        lease: Lease | None = None,
        commit_id: str | None = None,
    ) -> None:
        """Store a caller-minted receipt unchanged, with an optional snapshot
        and input upserts, atomically. Raises ``ReceiptConflict`` if the
        receipt key exists, ``SessionKeyMismatch`` if ``session_store_key``
        is not the snapshot's session id; nothing is written then.
        ``lease`` and ``commit_id`` as for ``commit_session_boundary``: a
        retried commit id returns quietly instead of a ``ReceiptConflict``."""
        rid = runtime_key(runtime_id)
        if session_delta is not None:
            _check("session_delta", session_delta, SessionDelta)
        if session_store_key is not None:
            _check("session_store_key", session_store_key, SessionId)
        receipt_wire = _receipt_wire(receipt)
        wires = _input_wires("input_updates", input_updates)
        self._check_batch("input_updates", wires)
        fence = _fence(rid, lease)
        snapshot = None
        if session_delta is not None:
            summary = self._summary(session_delta)
            if session_store_key is not None and summary.session_id != str(session_store_key):
                raise SessionKeyMismatch(str(session_store_key), summary.session_id)
            snapshot = self._envelope(session_delta)
        encoded = codec.encode_receipt(receipt_wire)
        inputs = _encode_inputs("input_updates", wires, codec.encode_input_state)
        tag = _commit_tag(commit_id, b"apply", snapshot, encoded, *(entry.value for entry in inputs))
        self._ensure_open(WriteFailed)
        await self._indexed(
            rid, lambda: self._apply(rid, str(receipt.run_id), receipt.sequence, snapshot, encoded, inputs, fence, tag)
        )

    async def commit_session_snapshot(
        self,
        runtime_id: LogicalRuntimeId | str,
        session_delta: SessionDelta,
        *,
        lease: Lease | None = None,
        commit_id: str | None = None,
    ) -> None:
        """Store a snapshot mid-run without minting a receipt (meerkat 0.6.1).
        It is validated as ``commit_session_boundary`` validates it (invalid:
        ``WriteFailed``, nothing written) and replaces the stored snapshot
        atomically; the runtime's meta records that the stored snapshot
        belongs to no receipt, so ``check`` compares it with none and
        ``prune_runtime`` no longer keeps the previous snapshot's receipt.
        ``lease`` and ``commit_id`` as for ``commit_session_boundary``."""
        rid = runtime_key(runtime_id)
        _check("session_delta", session_delta, SessionDelta)
        fence = _fence(rid, lease)
        self._summary(session_delta)
        snapshot = self._envelope(session_delta)
        tag = _commit_tag(commit_id, b"snapshot", snapshot)
        self._ensure_open(WriteFailed)
        await self._commit_snapshot(rid, snapshot, fence, tag)

    async def persist_input_state(
        self, runtime_id: LogicalRuntimeId | str, state: InputState, *, lease: Lease | None = None
    ) -> None:
        """Upsert one input state (the whole record is replaced)."""
        rid = runtime_key(runtime_id)
        _check("state", state, InputState)
        inputs = _encode_inputs("state", _input_wires("state", [state]), codec.encode_input_state)
        fence = _fence(rid, lease)
        self._ensure_open(WriteFailed)
        await self._indexed(rid, lambda: self._lifecycle_commit(rid, None, inputs, fence))

    async def persist_runtime_state(
        self, runtime_id: LogicalRuntimeId | str, state: RuntimeState, *, lease: Lease | None = None
    ) -> None:
        """Set the runtime state. Transitions are not checked (as in meerkat)."""
        rid = runtime_key(runtime_id)
        _check("state", state, RuntimeState)
        fence = _fence(rid, lease)
        self._ensure_open(WriteFailed)
        await self._lifecycle_commit(rid, codec.encode_runtime_state(state), [], fence)

    async def atomic_lifecycle_commit(
        self,
        runtime_id: LogicalRuntimeId | str,
        runtime_state: RuntimeState,
        input_states: Sequence[InputState],
        *,
        lease: Lease | None = None,
    ) -> None:
        """Set the runtime state and upsert the input states atomically."""
        rid = runtime_key(runtime_id)
        _check("runtime_state", runtime_state, RuntimeState)
        wires = _input_wires("input_states", input_states)
        self._check_batch("input_states", wires)
        inputs = _encode_inputs("input_states", wires, codec.encode_input_state)
        fence = _fence(rid, lease)
        self._ensure_open(WriteFailed)
        state = codec.encode_runtime_state(runtime_state)
        await self._indexed(rid, lambda: self._lifecycle_commit(rid, state, inputs, fence))

    # ---- leases ----

    async def acquire_lease(self, runtime_id: LogicalRuntimeId | str, owner: str, ttl: float) -> Lease:
        """Take the runtime's lease for ``ttl`` seconds (server clock). A new
        owner gets the next fencing token; the current holder acquiring again
        keeps its token. Raises ``LeaseHeld`` if another owner holds it."""
        return await self._take_lease(runtime_id, owner, ttl, steal=False)

    async def steal_lease(self, runtime_id: LogicalRuntimeId | str, owner: str, ttl: float) -> Lease:
        """Operator: take the lease from whoever holds it; the old holder is
        fenced out at once."""
        return await self._take_lease(runtime_id, owner, ttl, steal=True)

    async def _take_lease(self, runtime_id, owner: object, ttl: object, steal: bool) -> Lease:
        rid = runtime_key(runtime_id)
        if not isinstance(owner, str) or not owner:
            raise TypeError("owner must be a non-empty str naming this worker")
        ms = ttl_ms(ttl)
        self._ensure_open(WriteFailed)
        token, granted = await self._lease_acquire(rid, owner, ms, steal)
        return Lease(rid, owner, token, granted)

    async def renew_lease(self, lease: Lease, ttl: float | None = None) -> Lease:
        """Extend a held lease (by its own ttl unless given). Raises
        ``FencedOut`` if it is no longer held."""
        _check("lease", lease, Lease)
        ms = ttl_ms(lease.ttl_ms / 1000 if ttl is None else ttl)
        self._ensure_open(WriteFailed)
        await self._lease_renew(lease.runtime_id, str(lease.token), ms)
        return dataclasses.replace(lease, ttl_ms=ms)

    async def release_lease(self, lease: Lease) -> bool:
        """Give the lease up; False if it was no longer held. The epoch stays."""
        _check("lease", lease, Lease)
        self._ensure_open(WriteFailed)
        return await self._lease_release(lease.runtime_id, str(lease.token))

    async def revoke_lease(self, runtime_id: LogicalRuntimeId | str) -> int:
        """Operator: fence out the current holder at once (its writes fail from
        now on) and leave the runtime unleased. Returns the new epoch."""
        rid = runtime_key(runtime_id)
        self._ensure_open(WriteFailed)
        return await self._lease_revoke(rid)

    async def current_lease(self, runtime_id: LogicalRuntimeId | str) -> Lease | None:
        """The live lease, or None. Its ``ttl_ms`` is the time left, so pass
        ``ttl=`` when renewing a lease read this way."""
        rid = runtime_key(runtime_id)
        self._ensure_open(ReadFailed)
        held = await self._lease_read(rid)
        return None if held is None else Lease(rid, *held)

    def fenced(self, lease: Lease) -> FencedStore:
        """A view of this store whose every write carries ``lease``."""
        return FencedStore(self, lease)

    # ---- reads ----

    async def load_input_states(self, runtime_id: LogicalRuntimeId | str) -> list[InputState]:
        """All input states of the runtime, in first-stored order. A row that
        cannot be read fails the call with ``ReadFailed`` naming the runtime
        and the input; ``load_readable_input_states`` returns the others."""
        states, unreadable = await self.load_readable_input_states(runtime_id)
        if unreadable:
            raise unreadable[0]
        return states

    async def load_readable_input_states(
        self, runtime_id: LogicalRuntimeId | str
    ) -> tuple[list[InputState], list[ReadFailed]]:
        """Every readable input state (first-stored order), and a ``ReadFailed``
        naming each row that could not be read."""
        rid = runtime_key(runtime_id)
        self._ensure_open(ReadFailed)
        states: list[InputState] = []
        unreadable: list[ReadFailed] = []
        rows = await self._load_input_states(rid)
        with jsonwire.paused_gc():  # thousands of small objects: the cyclic GC would rescan them all
            self._decode_rows(rid, rows, states, unreadable)
        return states, unreadable

    @staticmethod
    def _decode_rows(rid: str, rows, states: list[InputState], unreadable: list[ReadFailed]) -> None:
        for input_id, value in rows:
            if value is None:
                unreadable.append(ReadFailed(f"runtime {rid!r}: input {input_id} is listed in input_order but has no state"))
                continue
            try:
                states.append(codec.decode_input_state(value))
            except codec.DecodeError as exc:
                unreadable.append(ReadFailed(f"runtime {rid!r}: input {input_id}: stored input state is unreadable: {exc}"))

    async def load_input_state(
        self, runtime_id: LogicalRuntimeId | str, input_id: InputId
    ) -> InputState | None:
        rid = runtime_key(runtime_id)
        _check("input_id", input_id, InputId)
        self._ensure_open(ReadFailed)
        value = await self._load_input_state(rid, str(input_id))
        return _decode(rid, "input state", codec.decode_input_state, value)

    async def load_input_states_by_ids(
        self, runtime_id: LogicalRuntimeId | str, input_ids: Sequence[InputId]
    ) -> list[InputState | None]:
        """The input states of these ids, in the order asked, ``None`` where
        the runtime has none; one round trip. A row that cannot be read
        fails the call with ``ReadFailed`` naming it."""
        rid = runtime_key(runtime_id)
        if isinstance(input_ids, (str, bytes)) or not isinstance(input_ids, Iterable):
            raise _type_error("input_ids", "a list of InputId", input_ids)
        ids = _input_ids("input_ids", input_ids)
        if len(ids) > self.options.max_inputs_per_call:
            raise ValueError(
                f"input_ids holds {len(ids)} ids; this store takes at most "
                f"{self.options.max_inputs_per_call} per call (max_inputs_per_call)"
            )
        self._ensure_open(ReadFailed)
        if not ids:
            return []
        values = await self._load_inputs_by_ids(rid, [str(i) for i in ids])
        return [
            _decode(rid, f"input state of {input_id}", codec.decode_input_state, value)
            for input_id, value in zip(ids, values)
        ]

    async def load_input_state_by_idempotency_key(
        self, runtime_id: LogicalRuntimeId | str, key: str
    ) -> InputState | None:
        """The input state that holds this idempotency key, or None; O(1),
        through the runtime's key index (built on first use for a runtime
        stored by an earlier release, see ``ensure_index``)."""
        rid = runtime_key(runtime_id)
        if not isinstance(key, str):
            raise _type_error("key", "a str", key)
        try:
            key.encode("utf-8")
        except UnicodeEncodeError as exc:  # no stored input can hold it
            raise ValueError(f"key is not valid Unicode text: {exc}") from exc
        self._ensure_open(ReadFailed)
        found = await self._load_by_idempotency_key(rid, key)
        if found is None:  # a runtime from before the index
            await self.ensure_index(rid)
            found = await self._load_by_idempotency_key(rid, key)
            if found is None:
                raise InternalError(f"runtime {rid!r}: the idempotency index was built but the lookup still finds none")
        input_id, value = found
        if input_id is None:
            return None
        if value is None:
            raise ReadFailed(f"runtime {rid!r}: the idempotency index names input {input_id} for key {key!r}, "
                             "which has no state (redis-store check)")
        state = _decode(rid, f"input state of {input_id}", codec.decode_input_state, value)
        if state.idempotency_key != key or str(state.input_id) != input_id:
            raise ReadFailed(f"runtime {rid!r}: the idempotency index names input {input_id} for key {key!r}, "
                             f"but the state stored there is input {state.input_id} with key "
                             f"{state.idempotency_key!r} (redis-store check)")
        return state

    async def ensure_index(self, runtime_id: LogicalRuntimeId | str) -> bool:
        """Build the idempotency-key index of a runtime stored by a release
        without one, atomically (one script, checked against the inputs it
        was computed from). Lookups and input writes do it on first use;
        ``prune_runtime`` (``redis-store prune``) does it too. True if it
        built one, False if the runtime had it already. Two inputs already
        holding one key raise ``IdempotencyKeyConflict`` and nothing is
        written; an unreadable input raises ``ReadFailed`` naming it."""
        rid = runtime_key(runtime_id)
        self._ensure_open(WriteFailed)
        if await self._load_by_idempotency_key(rid, "") is not None:
            return False  # one cheap probe: the runtime has its index (or stores no inputs)
        for _ in range(5):
            rows = await self._load_input_states(rid)
            states: list[InputState] = []
            unreadable: list[ReadFailed] = []
            self._decode_rows(rid, rows, states, unreadable)
            if unreadable:
                raise unreadable[0]
            entries = [  # every value is bytes: a None one is in unreadable, raised above
                EncodedInput(input_id, cast(bytes, value), state.idempotency_key)
                for (input_id, value), state in zip(rows, states)
            ]
            claimed: dict[str, str] = {}
            for entry in entries:
                key = entry.idempotency_key
                if key is not None and claimed.setdefault(key, entry.input_id) != entry.input_id:
                    raise IdempotencyKeyConflict(key, claimed[key], entry.input_id)
            built = await self._build_index(rid, entries)
            if built is not None:
                return built
            # An older release's worker changed the inputs meanwhile: read them again.
        raise WriteFailed(f"runtime {rid!r}: its inputs kept changing while the idempotency index was built; retry")

    async def _indexed(self, rid: str, write):
        """``await write()``; a runtime stored before the index gets it built
        first (the backend refused the write before writing anything)."""
        try:
            return await write()
        except IndexMissing:
            await self.ensure_index(rid)
            return await write()

    async def load_boundary_receipt(
        self, runtime_id: LogicalRuntimeId | str, run_id: RunId, sequence: int
    ) -> RunBoundaryReceipt | None:
        rid = runtime_key(runtime_id)
        _check("run_id", run_id, RunId)
        check_sequence("sequence", sequence)
        self._ensure_open(ReadFailed)
        value = await self._load_receipt(rid, str(run_id), sequence)
        return _decode(rid, "receipt", codec.decode_receipt, value)

    async def load_session_snapshot(self, runtime_id: LogicalRuntimeId | str) -> bytes | None:
        """The latest snapshot's bytes, exactly as they were given."""
        rid = runtime_key(runtime_id)
        self._ensure_open(ReadFailed)
        value = await self._load_snapshot(rid)
        return _decode(rid, "snapshot", codec.decode_snapshot, value)

    async def load_runtime_state(self, runtime_id: LogicalRuntimeId | str) -> RuntimeState | None:
        rid = runtime_key(runtime_id)
        self._ensure_open(ReadFailed)
        value = await self._load_runtime_state(rid)
        return _decode(rid, "runtime state", codec.decode_runtime_state, value)

    # ---- operating ----

    async def list_runtimes(self, cursor: int = 0, count: int = 100) -> tuple[int, list[str]]:
        """One page of the ids of runtimes that have stored anything, and the
        cursor of the next page (0 when done). Like SCAN, a full pass lists
        every runtime that existed throughout it, and may repeat an id."""
        if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
            raise ValueError(f"cursor must be a non-negative int, got {cursor!r}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        self._ensure_open(ReadFailed)
        return await self._list_runtimes(cursor, count)

    async def delete_runtime(self, runtime_id: LogicalRuntimeId | str, *, lease: Lease | None = None) -> bool:
        """Remove everything stored for a runtime in one atomic step (on
        Redis: a few O(1) UNLINKs, large values freed in the background).
        Its fencing epoch is kept, so lease tokens never repeat. With
        ``lease``, only while that lease is current. False if nothing was
        stored."""
        rid = runtime_key(runtime_id)
        fence = _fence(rid, lease)
        self._ensure_open(WriteFailed)
        return await self._delete_runtime(rid, fence)

    async def prune_runtime(
        self, runtime_id: LogicalRuntimeId | str, *, keep_runs: int | None = None, batch: int = 256
    ) -> PruneReport:
        """The retention policy, applied in bounded steps (each one script of
        at most ``batch`` deletions), never inside a commit:

        * commit ids older than ``commit_id_ttl`` are forgotten;
        * with ``keep_runs=N``, the receipts of all but the N newest runs
          (run ids are UUIDv7: newest = latest created) are removed, except
          runs an input state points at (``last_run_id``) and the receipt
          stored with the snapshot. Each run's sequence counter stays, so no
          sequence is ever minted twice; an ``atomic_apply`` of a removed
          receipt's key is no longer a ``ReceiptConflict``.

        Run it from a periodic job (``redis-store prune``)."""
        rid = runtime_key(runtime_id)
        if keep_runs is not None and (not isinstance(keep_runs, int) or isinstance(keep_runs, bool) or keep_runs < 0):
            raise ValueError(f"keep_runs must be a non-negative int, got {keep_runs!r}")
        if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 10_000:
            raise ValueError(f"batch must be an int in [1, 10000], got {batch!r}")
        self._ensure_open(WriteFailed)
        await self.ensure_index(rid)  # the periodic job also upgrades runtimes stored before the index
        forgotten = 0
        while (step := await self._prune_commit_ids(rid, batch)) > 0:
            forgotten += step
        removed = 0
        if keep_runs is not None:
            raw = await self._dump_runtime(rid)
            states = await self.load_input_states(rid)  # an unreadable row stops pruning: it may point at a run
            referenced = {str(s.last_run_id) for s in states if s.last_run_id is not None}
            runs = sorted(raw.run_seqs)  # UUIDv7 text sorts by creation time
            finished = [run for run in runs[: max(0, len(runs) - keep_runs)] if run not in referenced]
            fields = [field for field in raw.receipts if field.rpartition(":")[0] in set(finished)]
            for start in range(0, len(fields), batch):
                removed += await self._drop_receipts(rid, fields[start : start + batch])
        return PruneReport(commit_ids_forgotten=forgotten, receipts_removed=removed)

    async def dump_runtime(self, runtime_id: LogicalRuntimeId | str) -> RawRuntime:
        """Everything stored for a runtime, undecoded (for operators)."""
        rid = runtime_key(runtime_id)
        self._ensure_open(ReadFailed)
        return await self._dump_runtime(rid)

    async def memory_usage(self, runtime_id: LogicalRuntimeId | str) -> int:
        """Bytes the backend uses for everything of a runtime (Redis: MEMORY
        USAGE of its keys; memory://: the stored values' lengths)."""
        rid = runtime_key(runtime_id)
        self._ensure_open(ReadFailed)
        return await self._memory_usage(rid)

    # ---- backup: redis-store export / import / copy (backup.py) ----

    async def fencing_epoch(self, runtime_id: LogicalRuntimeId | str) -> int:
        """The runtime's fencing epoch: the newest lease token (0: never leased)."""
        rid = runtime_key(runtime_id)
        self._ensure_open(ReadFailed)
        return await self._fencing_epoch(rid)

    async def restore_runtime(
        self, runtime_id: LogicalRuntimeId | str, raw: RawRuntime, *, epoch: int = 0, replace: bool = False
    ) -> bool:
        """Store everything of a runtime as ``raw`` holds it (what
        ``dump_runtime`` returned, here or on another store), in one atomic
        step. The fencing epoch becomes the larger of the runtime's own and
        ``epoch``: it never goes back. Commit ids and leases are not part of
        ``raw``. If the runtime already holds data, nothing is written and
        False is returned, unless ``replace``: then what it held goes first,
        its commit ids with it, and a live lease is revoked (its holder is
        fenced out). Every value is checked to decode before anything is
        sent (``ValueError``)."""
        rid = runtime_key(runtime_id)
        _check("raw", raw, RawRuntime)
        if not isinstance(replace, bool):
            raise _type_error("replace", "a bool", replace)
        check_sequence("epoch", epoch)
        raw = dataclasses.replace(raw, index=_check_raw(rid, raw))
        self._ensure_open(WriteFailed)
        return await self._restore_runtime(rid, raw, epoch, replace)

    # ---- lifetime ----

    async def aclose(self) -> None:
        """Release the backend's resources; later calls fail."""
        if not self._closed:
            self._closed = True
            await self._close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    def _ensure_open(self, error: type) -> None:
        if self._closed:
            raise error(f"{type(self).__name__} is closed")

    # ---- what a backend supplies ----
    # Each write primitive is one atomic unit: all of it happens or none.

    @abc.abstractmethod
    async def _commit_boundary(
        self,
        rid: str,
        run_id: str,
        snapshot: codec.SnapshotEnvelope,
        receipt_prefix: bytes,
        inputs: EncodedInputs,
        fence: str,
        commit: CommitTag | None,
    ) -> int:
        """Mint the next sequence S of (rid, run_id); store the snapshot, the
        receipt ``receipt_prefix + seq_suffix(S)`` and each input value
        ``prefix + seq_suffix(S)``; return S. Checked first, in this order:
        a known commit id (same fingerprint: return its S, write nothing;
        else ``CommitIdReused``), the fence (``FencedOut``), the idempotency
        keys the inputs claim (``IdempotencyKeyConflict``; ``IndexMissing``
        for a runtime stored before the index)."""

    @abc.abstractmethod
    async def _apply(
        self,
        rid: str,
        run_id: str,
        sequence: int,
        snapshot: codec.SnapshotEnvelope | None,
        receipt: bytes,
        inputs: EncodedInputs,
        fence: str,
        commit: CommitTag | None,
    ) -> None:
        """Store receipt (and snapshot, inputs); checks as ``_commit_boundary``,
        then ``ReceiptConflict`` if the receipt key exists."""

    @abc.abstractmethod
    async def _lifecycle_commit(self, rid: str, state: bytes | None, inputs: EncodedInputs, fence: str) -> None:
        """Set the runtime state (unless None) and upsert the inputs."""

    @abc.abstractmethod
    async def _commit_snapshot(self, rid: str, snapshot: codec.SnapshotEnvelope, fence: str, commit: CommitTag | None) -> None:
        """Store the snapshot and record in meta that it belongs to no
        receipt. Checked first: a known commit id (same fingerprint: write
        nothing; else ``CommitIdReused``), then the fence."""

    @abc.abstractmethod
    async def _lease_acquire(self, rid: str, owner: str, ttl_ms: int, steal: bool) -> tuple[int, int]:
        """(token, ttl_ms) of the lease now held by owner; ``LeaseHeld``."""

    @abc.abstractmethod
    async def _lease_renew(self, rid: str, token: str, ttl_ms: int) -> None:
        """``FencedOut`` unless token is the live lease's."""

    @abc.abstractmethod
    async def _lease_release(self, rid: str, token: str) -> bool: ...

    @abc.abstractmethod
    async def _lease_revoke(self, rid: str) -> int: ...

    @abc.abstractmethod
    async def _lease_read(self, rid: str) -> tuple[str, int, int] | None:
        """(owner, token, remaining ms) of the live lease, or None."""

    @abc.abstractmethod
    async def _load_input_states(self, rid: str) -> list[tuple[str, bytes | None]]:
        """(input id, stored value or None) in first-stored order."""

    @abc.abstractmethod
    async def _load_input_state(self, rid: str, input_id: str) -> bytes | None: ...

    @abc.abstractmethod
    async def _load_inputs_by_ids(self, rid: str, input_ids: list[str]) -> list[bytes | None]:
        """The stored values of these ids, in order (None where absent): one round trip."""

    @abc.abstractmethod
    async def _load_by_idempotency_key(self, rid: str, key: str) -> tuple[str | None, bytes | None] | None:
        """(input id, its stored value) the index names for key ((None, None)
        if none), or None if the runtime has no index yet."""

    @abc.abstractmethod
    async def _build_index(self, rid: str, entries: EncodedInputs) -> bool | None:
        """Index ``entries`` (every input of the runtime, as just read) unless
        the runtime has its index: True if built, False if it had one, None
        if the inputs are no longer exactly ``entries`` (nothing written)."""

    @abc.abstractmethod
    async def _load_receipt(self, rid: str, run_id: str, sequence: int) -> bytes | None: ...

    @abc.abstractmethod
    async def _load_snapshot(self, rid: str) -> bytes | None: ...

    @abc.abstractmethod
    async def _load_runtime_state(self, rid: str) -> bytes | None: ...

    @abc.abstractmethod
    async def _list_runtimes(self, cursor: int, count: int) -> tuple[int, list[str]]: ...

    @abc.abstractmethod
    async def _dump_runtime(self, rid: str) -> RawRuntime: ...

    @abc.abstractmethod
    async def _delete_runtime(self, rid: str, fence: str) -> bool: ...

    @abc.abstractmethod
    async def _prune_commit_ids(self, rid: str, batch: int) -> int:
        """Forget up to ``batch`` commit ids older than the retention."""

    @abc.abstractmethod
    async def _drop_receipts(self, rid: str, fields: list[str]) -> int:
        """Remove these receipts, but never the one minted with the stored snapshot."""

    @abc.abstractmethod
    async def _fencing_epoch(self, rid: str) -> int: ...

    @abc.abstractmethod
    async def _restore_runtime(self, rid: str, raw: RawRuntime, epoch: int, replace: bool) -> bool:
        """As ``restore_runtime``, arguments checked."""

    async def _memory_usage(self, rid: str) -> int:
        raw = await self._dump_runtime(rid)
        values = [raw.state, raw.snapshot, *raw.inputs.values(), *raw.receipts.values()]
        return sum(len(value) for value in values if value)

    async def _close(self) -> None:
        """Release resources; backends that hold none keep this."""


telemetry.instrument(RuntimeStore)  # a span and metrics per public operation (telemetry.py)


#: Meta fields a restored runtime may carry (keys.py): which receipt the snapshot belongs to.
SNAPSHOT_RECEIPT_FIELDS = ("snapshot_receipt", "snapshot_applied", "snapshot_without_receipt")


def _check_raw(rid: str, raw: RawRuntime) -> dict[str, str]:
    """A ``RawRuntime`` is consistent and every value decodes (ValueError).
    Returns its idempotency index as the inputs' keys make it (``raw.index``,
    if given, must agree)."""
    def decodes(what: str, decode, value: object) -> None:
        if not isinstance(value, bytes):
            raise ValueError(f"runtime {rid!r}: {what} must be bytes, got {type(value).__name__}")
        try:
            decode(value)
        except codec.DecodeError as exc:
            raise ValueError(f"runtime {rid!r}: {what} does not decode: {exc}") from exc

    if raw.state is not None:
        decodes("runtime state", codec.decode_runtime_state, raw.state)
    if raw.snapshot is not None:
        decodes("snapshot", codec.decode_snapshot, raw.snapshot)
    if len(set(raw.input_order)) != len(raw.input_order) or set(raw.input_order) != set(raw.inputs):
        raise ValueError(f"runtime {rid!r}: input_order must name every input once")
    index: dict[str, str] = {}
    for input_id, value in raw.inputs.items():
        decodes(f"input {input_id}", codec.decode_input_state, value)
        key = codec.decode_input_state(value).idempotency_key
        if key is not None:
            holder = index.setdefault(index_key_field(key), input_id)
            if holder != input_id:
                raise ValueError(f"runtime {rid!r}: inputs {holder} and {input_id} both claim idempotency key {key!r}")
            index[index_input_field(input_id)] = key
    if raw.index and raw.index != index:
        raise ValueError(f"runtime {rid!r}: the idempotency index does not agree with the inputs' keys")
    for field, value in raw.receipts.items():
        decodes(f"receipt {field}", codec.decode_receipt, value)
        receipt = codec.decode_receipt(value)
        if field != f"{receipt.run_id}:{receipt.sequence}":  # the field a store would have written it under
            raise ValueError(f"runtime {rid!r}: receipt {field!r} is of run {receipt.run_id}, sequence {receipt.sequence}")
    for run, counter in raw.run_seqs.items():
        if not isinstance(counter, str) or not counter.isdigit() or int(counter) > MAX_SEQUENCE:
            raise ValueError(f"runtime {rid!r}: run counter of {run} must be a sequence, got {counter!r}")
    extra = set(raw.meta) - {"layout", *SNAPSHOT_RECEIPT_FIELDS}
    named = [name for name in SNAPSHOT_RECEIPT_FIELDS if name in raw.meta]
    if extra or len(named) > 1 or (named and raw.snapshot is None):
        raise ValueError(f"runtime {rid!r}: meta may name one snapshot receipt, with a snapshot; got {sorted(raw.meta)}")
    return index


def _decode(rid: str, what: str, decode, value):
    if value is None:
        return None
    try:
        return decode(value)
    except codec.DecodeError as exc:
        raise ReadFailed(f"runtime {rid!r}: stored {what} is unreadable: {exc}") from exc
