"""Looking inside stored runtimes: what ``redis-store inspect`` shows and
the invariants ``redis-store check`` verifies.

Works on ``RawRuntime`` (everything stored for one runtime, undecoded), so a
value that does not decode is reported, not raised.

Invariants of one runtime:

* every stored value decodes and has a known schema version;
* the input order list and the inputs hash hold the same ids, once each,
  and each input is stored under its own id;
* every receipt is stored under its own (run_id, sequence), and each run's
  sequence counter is at least the run's largest receipt sequence (so the
  next one minted is new; pruned runs keep their counter);
* every input's ``last_run_id``/``last_boundary_sequence`` names a receipt;
* the snapshot's digest equals that of the receipt minted with it (a
  snapshot stored by ``commit_session_snapshot`` belongs to no receipt);
* the idempotency index and the inputs agree: each input's key names it,
  every index entry names an input holding that key, no key is held twice
  (a runtime stored before the index, layout 1, has none yet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from . import codec
from .contract import RawRuntime, RuntimeStore
from .digest import inspect_session
from .errors import InvalidSessionSnapshot
from .keys import index_input_field, index_key_field, receipt_field
from .types import InputState, RunBoundaryReceipt, RuntimeState

#: ``decode(what, decoder, value)``: the decoded value, or None after reporting why not.
_Decode = Callable[[str, Callable[[bytes], Any], bytes], Any]
#: ``violate(invariant, detail)``: report a broken invariant.
_Violate = Callable[[str, str], None]


@dataclass(frozen=True)
class Violation:
    runtime: str
    invariant: str  # short name, e.g. "decodes", "sequence-counter"
    detail: str

    def __str__(self) -> str:
        return f"{self.runtime!r}: [{self.invariant}] {self.detail}"


@dataclass
class RuntimeReport:
    """A decoded runtime, with its violations."""

    runtime: str
    state: RuntimeState | None = None
    inputs: list[InputState] = field(default_factory=list)
    receipts: dict[str, list[RunBoundaryReceipt]] = field(default_factory=dict)  # run -> by sequence
    snapshot_bytes: int | None = None
    snapshot_messages: int | None = None
    snapshot_digest_matches: bool | None = None  # None: no minted receipt to compare with
    #: "minted <run>:<seq>", "applied <run>:<seq>", "no receipt", or None (no snapshot, or not recorded)
    snapshot_owner: str | None = None
    idempotency_keys: int | None = None  # indexed keys; None: not indexed yet (layout 1)
    violations: list[Violation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "state": None if self.state is None else self.state.value,
            "inputs": [
                {
                    "input_id": str(s.input_id),
                    "state": s.current_state.value,
                    "attempts": s.attempt_count,
                    "last_run_id": None if s.last_run_id is None else str(s.last_run_id),
                    "last_boundary_sequence": s.last_boundary_sequence,
                }
                for s in self.inputs
            ],
            "receipts": {run: [r.sequence for r in rs] for run, rs in self.receipts.items()},
            "snapshot_bytes": self.snapshot_bytes,
            "snapshot_messages": self.snapshot_messages,
            "snapshot_digest_matches": self.snapshot_digest_matches,
            "snapshot_owner": self.snapshot_owner,
            "idempotency_keys": self.idempotency_keys,
            "violations": [{"invariant": v.invariant, "detail": v.detail} for v in self.violations],
        }


def stored_nothing(raw: RawRuntime) -> bool:
    """True when nothing at all is stored for the runtime."""
    return not (raw.state or raw.snapshot or raw.input_order or raw.inputs or raw.receipts or raw.run_seqs or raw.meta)


def examine(runtime: str, raw: RawRuntime) -> RuntimeReport:
    """Decode everything stored for a runtime and check its invariants."""
    report = RuntimeReport(runtime)

    def violate(invariant: str, detail: str) -> None:
        report.violations.append(Violation(runtime, invariant, detail))

    def decode(what: str, decoder: Callable[[bytes], Any], value: bytes) -> Any:
        try:
            return decoder(value)
        except codec.DecodeError as exc:
            violate("decodes", f"{what}: {exc}")
            return None

    if raw.state is not None:
        report.state = decode("runtime state", codec.decode_runtime_state, raw.state)
    _check_inputs(raw, report, decode, violate)
    _check_receipts(raw, report, decode, violate)
    _check_stamps(report, violate)
    _check_index(raw, report, violate)
    _check_snapshot(raw, report, decode, violate)
    return report


def _check_inputs(raw: RawRuntime, report: RuntimeReport, decode: _Decode, violate: _Violate) -> None:
    if len(set(raw.input_order)) != len(raw.input_order):
        violate("input-order", "an input id appears more than once in input_order")
    listed, stored = set(raw.input_order), set(raw.inputs)
    for missing in sorted(listed - stored):
        violate("input-order", f"input {missing} is listed in input_order but has no state")
    for unlisted in sorted(stored - listed):
        violate("input-order", f"input {unlisted} has a state but is missing from input_order")
    for input_id in dict.fromkeys(raw.input_order):
        if input_id not in raw.inputs:
            continue
        state = decode(f"input {input_id}", codec.decode_input_state, raw.inputs[input_id])
        if state is None:
            continue
        if str(state.input_id) != input_id:
            violate("input-key", f"input stored under {input_id} has input_id {state.input_id}")
        report.inputs.append(state)


def _check_receipts(raw: RawRuntime, report: RuntimeReport, decode: _Decode, violate: _Violate) -> None:
    largest: dict[str, int] = {}
    by_run: dict[str, list[RunBoundaryReceipt]] = defaultdict(list)
    for key, value in raw.receipts.items():
        receipt = decode(f"receipt {key}", codec.decode_receipt, value)
        if receipt is None:
            continue
        if receipt_field(str(receipt.run_id), receipt.sequence) != key:
            violate("receipt-key", f"receipt stored under {key} is ({receipt.run_id}, {receipt.sequence})")
        run = str(receipt.run_id)
        by_run[run].append(receipt)
        largest[run] = max(largest.get(run, -1), receipt.sequence)
    # Runs in creation order: run ids are UUIDv7, whose text sorts by time.
    report.receipts = {run: sorted(by_run[run], key=lambda r: r.sequence) for run in sorted(by_run)}
    for run in sorted(set(largest) | set(raw.run_seqs)):
        counter = raw.run_seqs.get(run)
        if counter is None:
            violate("sequence-counter", f"run {run} has receipts but no sequence counter")
        elif not counter.isdigit() or int(counter) < largest.get(run, -1):
            # Greater is fine: prune_runtime removes old receipts, not counters.
            violate(
                "sequence-counter",
                f"run {run}: counter {counter!r} but the largest receipt sequence is {largest.get(run)}",
            )


def _check_stamps(report: RuntimeReport, violate: _Violate) -> None:
    for state in report.inputs:
        if state.last_run_id is None and state.last_boundary_sequence is None:
            continue
        if state.last_run_id is None or state.last_boundary_sequence is None:
            violate("input-stamp", f"input {state.input_id} has only one of last_run_id/last_boundary_sequence")
            continue
        sequences = {r.sequence for r in report.receipts.get(str(state.last_run_id), [])}
        if state.last_boundary_sequence not in sequences:
            violate(
                "input-stamp",
                f"input {state.input_id} points at receipt ({state.last_run_id}, "
                f"{state.last_boundary_sequence}), which does not exist",
            )


def _check_snapshot(raw: RawRuntime, report: RuntimeReport, decode: _Decode, violate: _Violate) -> None:
    if raw.snapshot is None:
        return
    snapshot = decode("snapshot", codec.decode_snapshot, raw.snapshot)
    if snapshot is None:
        return
    report.snapshot_bytes = len(snapshot)
    try:
        summary = inspect_session(snapshot)
    except InvalidSessionSnapshot as exc:
        violate("snapshot", f"stored snapshot is not a meerkat Session: {exc}")
        return
    report.snapshot_messages = summary.message_count
    minted = raw.meta.get("snapshot_receipt")
    if raw.meta.get("snapshot_applied"):
        report.snapshot_owner = f"applied {raw.meta['snapshot_applied']}"
    elif raw.meta.get("snapshot_without_receipt"):
        report.snapshot_owner = "no receipt"
    if minted is None:
        return
    report.snapshot_owner = f"minted {minted}"
    run, _, sequence = minted.rpartition(":")
    receipt = next((r for r in report.receipts.get(run, []) if str(r.sequence) == sequence), None)
    if receipt is None:
        violate("snapshot-digest", f"the receipt minted with the snapshot ({minted}) does not exist")
        return
    report.snapshot_digest_matches = (
        receipt.conversation_digest == summary.conversation_digest
        and receipt.message_count == summary.message_count
    )
    if not report.snapshot_digest_matches:
        violate(
            "snapshot-digest",
            f"snapshot digest {summary.conversation_digest} ({summary.message_count} messages) differs "
            f"from receipt {minted}: {receipt.conversation_digest} ({receipt.message_count})",
        )


def _check_index(raw: RawRuntime, report: RuntimeReport, violate: _Violate) -> None:
    if raw.meta.get("layout") == "1" and raw.inputs:
        return  # stored before the index: built on first use (RuntimeStore.ensure_index)
    holders: dict[str, list[str]] = defaultdict(list)
    for state in report.inputs:
        if state.idempotency_key is not None:
            holders[state.idempotency_key].append(str(state.input_id))
    for key, ids in sorted(holders.items()):
        if len(ids) > 1:
            violate("idempotency-index", f"idempotency key {key!r} is held by inputs {', '.join(ids)}")
        for input_id in ids:
            if raw.index.get(index_key_field(key)) != input_id or raw.index.get(index_input_field(input_id)) != key:
                violate("idempotency-index", f"input {input_id} holds key {key!r}, but the index does not say so")
    keys = {state.idempotency_key: str(state.input_id) for state in report.inputs}
    of_input = {str(state.input_id): state.idempotency_key for state in report.inputs}
    for field_name, value in sorted(raw.index.items()):
        kind, _, name = field_name.partition(":")
        if kind == "key" and (name not in keys or value not in holders.get(name, [])):
            violate("idempotency-index", f"the index names input {value} for key {name!r}, which no such input holds")
        elif kind == "input" and of_input.get(name) != value:
            violate("idempotency-index", f"the index says input {name} holds key {value!r}; it holds {of_input.get(name)!r}")
        elif kind not in ("key", "input"):
            violate("idempotency-index", f"unknown index field {field_name!r}")
    report.idempotency_keys = sum(1 for field_name in raw.index if field_name.startswith("key:"))


async def runtime_ids(store: RuntimeStore, page_size: int = 500) -> AsyncIterator[str]:
    """Every runtime id, once, paging through ``list_runtimes``."""
    seen: set[str] = set()
    cursor = 0
    while True:
        cursor, page = await store.list_runtimes(cursor, page_size)
        for runtime in page:
            if runtime not in seen:
                seen.add(runtime)
                yield runtime
        if cursor == 0:
            return


async def check_store(store: RuntimeStore, runtimes: list[str] | None = None) -> AsyncIterator[RuntimeReport]:
    """Examine the given runtimes (default: all); yields one report each."""
    if runtimes is None:
        async for runtime in runtime_ids(store):
            yield examine(runtime, await store.dump_runtime(runtime))
    else:
        for runtime in runtimes:
            yield examine(runtime, await store.dump_runtime(runtime))
