"""``InMemoryRuntimeStore``: the contract in one process, for tests and
single-process use. Nothing survives the process.

It holds the same encoded values the Redis backend stores, so both decode
through one path and behave identically, leases and commit ids included
(lease time runs on this process's monotonic clock). Each primitive runs
under one lock and awaits nothing inside it, so every call is atomic, also
across threads.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .codec import SnapshotEnvelope, seq_suffix
from .contract import (
    MAX_SEQUENCE,
    CommitTag,
    EncodedInputs,
    RawRuntime,
    RuntimeStore,
    StoreOptions,
    sequence_exhausted,
)
from .errors import CommitIdReused, FencedOut, IdempotencyKeyConflict, LeaseHeld, ReceiptConflict
from .keys import LAYOUT_VERSION, index_input_field, index_key_field, receipt_field
from .telemetry import note_replay


def _now_ms() -> float:
    return time.monotonic() * 1000


class _Runtime:
    __slots__ = (
        "state", "snapshot", "inputs", "receipts", "run_seqs", "snapshot_receipt", "snapshot_applied",
        "epoch", "lease", "commits", "commits_at", "marked", "key_holder", "key_of", "snapshot_free",
    )

    def __init__(self) -> None:
        self.state: bytes | None = None
        self.snapshot: bytes | None = None
        self.inputs: dict[str, bytes] = {}  # dicts keep first-insertion order
        self.receipts: dict[tuple[str, int], bytes] = {}
        self.run_seqs: dict[str, int] = {}  # largest sequence per run: O(1) minting
        self.snapshot_receipt: str | None = None  # receipt minted with the stored snapshot
        self.snapshot_applied: str | None = None  # or the receipt atomic_apply stored it with
        self.snapshot_free = False  # or none: commit_session_snapshot stored it
        self.epoch = 0  # fencing epoch: never goes back
        self.lease: tuple[str, int, float] | None = None  # owner, token, expiry (ms, monotonic)
        self.commits: dict[str, tuple[str, int, float]] = {}  # commit id -> fingerprint, sequence, time
        self.commits_at = 0.0  # when the last commit id was remembered
        self.marked = False  # anything stored (Redis: the meta key exists)
        self.key_holder: dict[str, str] = {}  # idempotency key -> input id
        self.key_of: dict[str, str] = {}  # input id -> its idempotency key

    def check_claims(self, inputs: EncodedInputs) -> None:
        """IdempotencyKeyConflict if an input claims a key another input
        keeps holding after this batch (as index_error in lib.lua)."""
        batch = {entry.input_id: entry.idempotency_key for entry in inputs}
        for entry in inputs:
            key = entry.idempotency_key
            if key is None:
                continue
            holder = self.key_holder.get(key)
            if holder is not None and holder != entry.input_id and batch.get(holder, key) == key:
                raise IdempotencyKeyConflict(key, holder, entry.input_id)

    def upsert(self, inputs: EncodedInputs, suffix: bytes = b"") -> None:
        for input_id, value, key in inputs:
            self.inputs[input_id] = value + suffix
            old = self.key_of.get(input_id)
            if old is not None and old != key and self.key_holder.get(old) == input_id:
                del self.key_holder[old]
            if key is None:
                self.key_of.pop(input_id, None)
            else:
                self.key_holder[key] = input_id
                self.key_of[input_id] = key

    def set_snapshot(self, snapshot: bytes, minted: str | None = None, applied: str | None = None) -> None:
        """Store the snapshot and which receipt it belongs to (at most one)."""
        self.snapshot = snapshot
        self.snapshot_receipt, self.snapshot_applied = minted, applied
        self.snapshot_free = minted is None and applied is None

    def live_lease(self) -> tuple[str, int, float] | None:
        # As Redis expires a key: once the clock is past its expiry, not at it.
        if self.lease is not None and self.lease[2] < _now_ms():
            self.lease = None
        return self.lease

    def check_fence(self, fence: str) -> None:
        if not fence:
            return
        lease = self.live_lease()
        if lease is None or str(lease[1]) != fence or str(self.epoch) != fence:
            raise FencedOut(f"lease token {fence} is not current (epoch {self.epoch}); another worker may own the runtime now")

    def earlier_commit(self, commit: CommitTag | None, retention_ms: int) -> int | None:
        if commit is None:
            return None
        earlier = self.commits.get(commit.commit_id)
        if earlier is None or _now_ms() - earlier[2] >= retention_ms:
            return None  # an id older than the retention counts as new
        if earlier[0] != commit.fingerprint:
            raise CommitIdReused(f"commit id {commit.commit_id} was used for a different commit")
        note_replay()
        return earlier[1]

    def remember(self, commit: CommitTag | None, sequence: int, retention_ms: int) -> None:
        if commit is None:
            return
        now = _now_ms()
        if self.commits and self.commits_at < now - retention_ms:
            self.commits.clear()  # as Redis expires both keys: once past retention_ms after the last commit
        self.commits[commit.commit_id] = (commit.fingerprint, sequence, now)
        self.commits_at = now


class InMemoryRuntimeStore(RuntimeStore):
    def __init__(self, **options: Any) -> None:
        """``options``: the ``StoreOptions`` fields (commit_id_ttl, size limits)."""
        self.options = StoreOptions(**options)
        self._lock = threading.Lock()
        self._runtimes: dict[str, _Runtime] = {}

    def __repr__(self) -> str:
        return f"InMemoryRuntimeStore(runtimes={len(self._runtimes)})"

    def _runtime(self, rid: str) -> _Runtime:
        """The runtime, about to be written: it counts as existing from now on."""
        runtime = self._runtimes.get(rid)
        if runtime is None:
            runtime = self._runtimes[rid] = _Runtime()
        runtime.marked = True
        return runtime

    async def _commit_boundary(
        self,
        rid: str,
        run_id: str,
        snapshot: SnapshotEnvelope,
        receipt_prefix: bytes,
        inputs: EncodedInputs,
        fence: str,
        commit: CommitTag | None,
    ) -> int:
        with self._lock:
            existing = self._runtimes.get(rid) or _Runtime()
            earlier = existing.earlier_commit(commit, self.commit_id_ttl_ms)
            if earlier is not None:
                return earlier
            existing.check_fence(fence)
            sequence = existing.run_seqs.get(run_id, -1) + 1
            if sequence > MAX_SEQUENCE:
                raise sequence_exhausted(run_id)
            existing.check_claims(inputs)
            # All checks passed: write.
            runtime = self._runtime(rid)
            suffix = seq_suffix(sequence)
            runtime.set_snapshot(snapshot.encoded(), minted=receipt_field(run_id, sequence))
            runtime.receipts[(run_id, sequence)] = receipt_prefix + suffix
            runtime.run_seqs[run_id] = sequence
            runtime.upsert(inputs, suffix)
            runtime.remember(commit, sequence, self.commit_id_ttl_ms)
            return sequence

    async def _apply(
        self,
        rid: str,
        run_id: str,
        sequence: int,
        snapshot: SnapshotEnvelope | None,
        receipt: bytes,
        inputs: EncodedInputs,
        fence: str,
        commit: CommitTag | None,
    ) -> None:
        with self._lock:
            existing = self._runtimes.get(rid) or _Runtime()
            if existing.earlier_commit(commit, self.commit_id_ttl_ms) is not None:
                return
            existing.check_fence(fence)
            existing.check_claims(inputs)
            if (run_id, sequence) in existing.receipts:
                raise ReceiptConflict(run_id, sequence)
            # All checks passed: write.
            runtime = self._runtime(rid)
            if snapshot is not None:
                runtime.set_snapshot(snapshot.encoded(), applied=receipt_field(run_id, sequence))
            runtime.receipts[(run_id, sequence)] = receipt
            if sequence > runtime.run_seqs.get(run_id, -1):
                runtime.run_seqs[run_id] = sequence
            runtime.upsert(inputs)
            runtime.remember(commit, sequence, self.commit_id_ttl_ms)

    async def _lifecycle_commit(self, rid: str, state: bytes | None, inputs: EncodedInputs, fence: str) -> None:
        with self._lock:
            existing = self._runtimes.get(rid) or _Runtime()
            existing.check_fence(fence)
            existing.check_claims(inputs)
            runtime = self._runtime(rid)
            if state is not None:
                runtime.state = state
            runtime.upsert(inputs)

    async def _commit_snapshot(self, rid: str, snapshot: SnapshotEnvelope, fence: str, commit: CommitTag | None) -> None:
        with self._lock:
            existing = self._runtimes.get(rid) or _Runtime()
            if existing.earlier_commit(commit, self.commit_id_ttl_ms) is not None:
                return
            existing.check_fence(fence)
            # All checks passed: write.
            runtime = self._runtime(rid)
            runtime.set_snapshot(snapshot.encoded())
            runtime.remember(commit, 0, self.commit_id_ttl_ms)

    # -- leases --

    async def _lease_acquire(self, rid: str, owner: str, ttl_ms: int, steal: bool) -> tuple[int, int]:
        with self._lock:
            runtime = self._runtime(rid)
            lease = runtime.live_lease()
            if lease is not None and lease[0] != owner and not steal:
                raise LeaseHeld(rid, lease[0], int(lease[2] - _now_ms()))
            if lease is not None and lease[0] == owner and not steal:
                token = lease[1]
            else:
                runtime.epoch += 1
                token = runtime.epoch
            runtime.lease = (owner, token, _now_ms() + ttl_ms)
            return token, ttl_ms

    async def _lease_renew(self, rid: str, token: str, ttl_ms: int) -> None:
        with self._lock:
            runtime = self._runtimes.get(rid)
            lease = runtime.live_lease() if runtime else None
            if runtime is None or lease is None or str(lease[1]) != token:
                raise FencedOut(f"lease token {token} expired or was taken over")
            runtime.lease = (lease[0], lease[1], _now_ms() + ttl_ms)

    async def _lease_release(self, rid: str, token: str) -> bool:
        with self._lock:
            runtime = self._runtimes.get(rid)
            lease = runtime.live_lease() if runtime else None
            if runtime is None or lease is None or str(lease[1]) != token:
                return False
            runtime.lease = None
            return True

    async def _lease_revoke(self, rid: str) -> int:
        with self._lock:
            runtime = self._runtime(rid)
            runtime.epoch += 1
            runtime.lease = None
            return runtime.epoch

    async def _lease_read(self, rid: str) -> tuple[str, int, int] | None:
        with self._lock:
            runtime = self._runtimes.get(rid)
            lease = runtime.live_lease() if runtime else None
            return None if lease is None else (lease[0], lease[1], int(lease[2] - _now_ms()))

    # Reads take the lock too: a dict must not be iterated while another
    # thread resizes it.

    async def _load_input_states(self, rid: str) -> list[tuple[str, bytes | None]]:
        with self._lock:
            runtime = self._runtimes.get(rid)
            return list(runtime.inputs.items()) if runtime else []

    async def _load_input_state(self, rid: str, input_id: str) -> bytes | None:
        with self._lock:
            runtime = self._runtimes.get(rid)
            return runtime.inputs.get(input_id) if runtime else None

    async def _load_inputs_by_ids(self, rid: str, input_ids: list[str]) -> list[bytes | None]:
        with self._lock:
            runtime = self._runtimes.get(rid) or _Runtime()
            return [runtime.inputs.get(input_id) for input_id in input_ids]

    async def _load_by_idempotency_key(self, rid: str, key: str) -> tuple[str | None, bytes | None]:
        with self._lock:
            runtime = self._runtimes.get(rid) or _Runtime()
            input_id = runtime.key_holder.get(key)
            return input_id, None if input_id is None else runtime.inputs.get(input_id)

    async def _build_index(self, rid: str, entries: EncodedInputs) -> bool:
        return False  # a memory store indexes every input from the start

    async def _load_receipt(self, rid: str, run_id: str, sequence: int) -> bytes | None:
        with self._lock:
            runtime = self._runtimes.get(rid)
            return runtime.receipts.get((run_id, sequence)) if runtime else None

    async def _load_snapshot(self, rid: str) -> bytes | None:
        with self._lock:
            runtime = self._runtimes.get(rid)
            return runtime.snapshot if runtime else None

    async def _load_runtime_state(self, rid: str) -> bytes | None:
        with self._lock:
            runtime = self._runtimes.get(rid)
            return runtime.state if runtime else None

    async def _delete_runtime(self, rid: str, fence: str) -> bool:
        with self._lock:
            runtime = self._runtimes.get(rid)
            if runtime is None:
                (_Runtime()).check_fence(fence)
                return False
            runtime.check_fence(fence)
            existed = runtime.marked
            fresh = _Runtime()
            fresh.epoch = runtime.epoch  # tokens never repeat
            self._runtimes[rid] = fresh
            return existed

    async def _prune_commit_ids(self, rid: str, batch: int) -> int:
        with self._lock:
            runtime = self._runtimes.get(rid)
            if runtime is None:
                return 0
            cutoff = _now_ms() - self.commit_id_ttl_ms
            if runtime.commits_at < cutoff:  # expired as a whole (past it, as Redis expires keys): none left to forget
                runtime.commits.clear()
                return 0
            expired = [c for c, (_, _, at) in runtime.commits.items() if at <= cutoff][:batch]
            for commit_id in expired:
                del runtime.commits[commit_id]
            return len(expired)

    async def _drop_receipts(self, rid: str, fields: list[str]) -> int:
        with self._lock:
            runtime = self._runtimes.get(rid)
            removed = 0
            for field in fields:
                run, _, seq = field.rpartition(":")
                kept = (runtime.snapshot_receipt, runtime.snapshot_applied) if runtime else ()
                if runtime is not None and field not in kept and runtime.receipts.pop((run, int(seq)), None) is not None:
                    removed += 1
            return removed

    async def _list_runtimes(self, cursor: int, count: int) -> tuple[int, list[str]]:
        with self._lock:
            ids = sorted(rid for rid, runtime in self._runtimes.items() if runtime.marked)
        page = ids[cursor : cursor + count]
        return (cursor + count if cursor + count < len(ids) else 0), page

    async def _dump_runtime(self, rid: str) -> RawRuntime:
        with self._lock:
            runtime = self._runtimes.get(rid) or _Runtime()
            meta = {"layout": str(LAYOUT_VERSION)} if runtime.marked else {}
            if runtime.snapshot_receipt is not None:
                meta["snapshot_receipt"] = runtime.snapshot_receipt
            if runtime.snapshot_applied is not None:
                meta["snapshot_applied"] = runtime.snapshot_applied
            if runtime.snapshot_free and runtime.snapshot is not None:
                meta["snapshot_without_receipt"] = "1"
            index = {index_key_field(key): input_id for key, input_id in runtime.key_holder.items()}
            index.update({index_input_field(input_id): key for input_id, key in runtime.key_of.items()})
            return RawRuntime(
                state=runtime.state,
                snapshot=runtime.snapshot,
                input_order=list(runtime.inputs),
                inputs=dict(runtime.inputs),
                receipts={receipt_field(run, seq): value for (run, seq), value in runtime.receipts.items()},
                run_seqs={run: str(seq) for run, seq in runtime.run_seqs.items()},
                meta=meta,
                index=index,
            )

    async def _fencing_epoch(self, rid: str) -> int:
        with self._lock:
            runtime = self._runtimes.get(rid)
            return runtime.epoch if runtime else 0

    async def _restore_runtime(self, rid: str, raw: RawRuntime, epoch: int, replace: bool) -> bool:
        with self._lock:
            old = self._runtimes.get(rid) or _Runtime()
            if old.marked and not replace:
                return False
            runtime = _Runtime()  # commit ids and the lease are not restored
            runtime.epoch = max(old.epoch + (1 if old.live_lease() else 0), epoch)
            runtime.marked = True
            runtime.state, runtime.snapshot = raw.state, raw.snapshot
            runtime.inputs = {input_id: raw.inputs[input_id] for input_id in raw.input_order}
            for field, value in raw.receipts.items():
                run, _, seq = field.rpartition(":")
                runtime.receipts[(run, int(seq))] = value
            runtime.run_seqs = {run: int(seq) for run, seq in raw.run_seqs.items()}
            runtime.snapshot_receipt = raw.meta.get("snapshot_receipt")
            runtime.snapshot_applied = raw.meta.get("snapshot_applied")
            runtime.snapshot_free = "snapshot_without_receipt" in raw.meta
            for field, held in raw.index.items():
                kind, _, name = field.partition(":")
                (runtime.key_holder if kind == "key" else runtime.key_of)[name] = held
            self._runtimes[rid] = runtime
            return True
