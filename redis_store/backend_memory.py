"""``InMemoryRuntimeStore``: the contract in one process, for tests and
single-process use. Nothing survives the process.

It holds the same encoded values the Redis backend stores, so both decode
through one path and behave identically. Each primitive runs under one lock
and awaits nothing inside it, so every call is atomic, also across threads.
"""

from __future__ import annotations

import threading

from .codec import seq_suffix
from .keys import receipt_field
from .contract import MAX_SEQUENCE, EncodedInputs, RawRuntime, RuntimeStore, sequence_exhausted
from .errors import ReceiptConflict


class _Runtime:
    __slots__ = ("state", "snapshot", "inputs", "receipts", "run_seqs", "snapshot_receipt")

    def __init__(self) -> None:
        self.state: bytes | None = None
        self.snapshot: bytes | None = None
        self.inputs: dict[str, bytes] = {}  # dicts keep first-insertion order
        self.receipts: dict[tuple[str, int], bytes] = {}
        self.run_seqs: dict[str, int] = {}  # largest sequence per run: O(1) minting
        self.snapshot_receipt: str | None = None  # receipt minted with the stored snapshot

    def upsert(self, inputs: EncodedInputs, suffix: bytes = b"") -> None:
        for input_id, value in inputs:
            self.inputs[input_id] = value + suffix


class InMemoryRuntimeStore(RuntimeStore):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runtimes: dict[str, _Runtime] = {}

    def __repr__(self) -> str:
        return f"InMemoryRuntimeStore(runtimes={len(self._runtimes)})"

    def _runtime(self, rid: str) -> _Runtime:
        runtime = self._runtimes.get(rid)
        if runtime is None:
            runtime = self._runtimes[rid] = _Runtime()
        return runtime

    async def _commit_boundary(
        self, rid: str, run_id: str, snapshot: bytes, receipt_prefix: bytes, inputs: EncodedInputs
    ) -> int:
        with self._lock:
            runtime = self._runtime(rid)
            sequence = runtime.run_seqs.get(run_id, -1) + 1
            if sequence > MAX_SEQUENCE:
                raise sequence_exhausted(run_id)
            suffix = seq_suffix(sequence)
            runtime.snapshot = snapshot
            runtime.receipts[(run_id, sequence)] = receipt_prefix + suffix
            runtime.run_seqs[run_id] = sequence
            runtime.snapshot_receipt = receipt_field(run_id, sequence)
            runtime.upsert(inputs, suffix)
            return sequence

    async def _apply(
        self,
        rid: str,
        run_id: str,
        sequence: int,
        snapshot: bytes | None,
        receipt: bytes,
        inputs: EncodedInputs,
    ) -> None:
        with self._lock:
            existing = self._runtimes.get(rid)
            if existing is not None and (run_id, sequence) in existing.receipts:
                raise ReceiptConflict(run_id, sequence)
            runtime = self._runtime(rid)
            if snapshot is not None:
                runtime.snapshot = snapshot
                runtime.snapshot_receipt = None
            runtime.receipts[(run_id, sequence)] = receipt
            if sequence > runtime.run_seqs.get(run_id, -1):
                runtime.run_seqs[run_id] = sequence
            runtime.upsert(inputs)

    async def _lifecycle_commit(self, rid: str, state: bytes | None, inputs: EncodedInputs) -> None:
        with self._lock:
            runtime = self._runtime(rid)
            if state is not None:
                runtime.state = state
            runtime.upsert(inputs)

    # Reads take the lock too: a dict must not be iterated while another
    # thread resizes it.

    async def _load_input_states(self, rid: str) -> list[bytes]:
        with self._lock:
            runtime = self._runtimes.get(rid)
            return list(runtime.inputs.values()) if runtime else []

    async def _load_input_state(self, rid: str, input_id: str) -> bytes | None:
        with self._lock:
            runtime = self._runtimes.get(rid)
            return runtime.inputs.get(input_id) if runtime else None

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

    async def _list_runtimes(self, cursor: int, count: int) -> tuple[int, list[str]]:
        with self._lock:
            ids = sorted(self._runtimes)
        page = ids[cursor : cursor + count]
        return (cursor + count if cursor + count < len(ids) else 0), page

    async def _dump_runtime(self, rid: str) -> RawRuntime:
        with self._lock:
            runtime = self._runtimes.get(rid) or _Runtime()
            meta = {"layout": "1"} if rid in self._runtimes else {}
            if runtime.snapshot_receipt is not None:
                meta["snapshot_receipt"] = runtime.snapshot_receipt
            return RawRuntime(
                state=runtime.state,
                snapshot=runtime.snapshot,
                input_order=list(runtime.inputs),
                inputs=dict(runtime.inputs),
                receipts={receipt_field(run, seq): value for (run, seq), value in runtime.receipts.items()},
                run_seqs={run: str(seq) for run, seq in runtime.run_seqs.items()},
                meta=meta,
            )
