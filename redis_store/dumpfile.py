"""The dump format of ``redis-store export`` / ``import``: JSON lines.

Line 1 is the header, then one line per runtime, then the trailer::

    {"format":"redis-store-dump","version":1,"created_at":"2026-12-01T21:00:00Z"}
    {"runtime_id":"rt-1","state":"idle","inputs":[...],"receipts":[...],
     "run_counters":{"<run_id>":3},"snapshot":{...}|null,"fencing_epoch":7}
    {"end":"redis-store-dump","runtimes":1}

A runtime line holds every value in meerkat's JSON wire form (``to_dict``):

* ``state``: the runtime state (``"idle"``), or null;
* ``inputs``: the input states, in the order they were first stored;
* ``receipts``: every receipt with its ``sequence``, by run, then sequence;
* ``run_counters``: each run's largest sequence ever minted (pruned receipts
  keep their counter, so no sequence is ever minted twice);
* ``snapshot``: ``{"session": <the snapshot's text, byte for byte>,
  "receipt": "<run_id>:<seq>" | null, "stored_by": "commit_session_boundary"
  | "atomic_apply" | "commit_session_snapshot" (receipt null)}`` (``session_base64`` instead of ``session`` for bytes
  that are not UTF-8), or null;
* ``fencing_epoch``: the newest lease token. The target's is never lowered;
* ``idempotency_keys``: the idempotency index, key -> input id (it must
  agree with the inputs' own keys); optional.

Not in the file: commit-id memory (a commit retried after a move is a new
commit) and leases (the target runtime starts unleased). The trailer tells
a complete file from one cut at a line boundary.
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

import msgspec

from . import codec, jsonwire
from .audit import examine
from .contract import RawRuntime, check_sequence, runtime_key
from .keys import LAYOUT_VERSION, index_input_field, index_key_field, receipt_field
from .types import InputState, RunBoundaryReceipt, RuntimeState

_T = TypeVar("_T")

FORMAT = "redis-store-dump"
#: Version of the format this release writes; it reads this one and older.
VERSION = 1

_LINE_FIELDS = ("runtime_id", "state", "inputs", "receipts", "run_counters", "snapshot", "fencing_epoch")
_STORED_BY = {"commit_session_boundary": "snapshot_receipt", "atomic_apply": "snapshot_applied",
              "commit_session_snapshot": "snapshot_without_receipt"}  # the last with no receipt


class DumpError(ValueError):
    """A dump line that cannot be imported; the message names the line."""


@dataclasses.dataclass
class RuntimeDump:
    """One runtime line, as stored values: what ``restore_runtime`` takes."""

    runtime_id: str
    raw: RawRuntime
    epoch: int


def header() -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION,
            "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def trailer(runtimes: int) -> dict[str, Any]:
    return {"end": FORMAT, "runtimes": runtimes}


def encode_line(value: dict[str, Any]) -> bytes:
    return jsonwire.dumps_bytes(value) + b"\n"


# -- stored values -> line ---------------------------------------------------

def runtime_line(runtime_id: str, raw: RawRuntime, epoch: int) -> dict[str, Any]:
    """The line of a runtime as ``dump_runtime`` and ``fencing_epoch`` read
    it. Raises ``DumpError`` if a stored value does not decode."""
    def decoded(what: str, decode: Callable[[bytes], _T], value: bytes) -> _T:
        try:
            return decode(value)
        except codec.DecodeError as exc:
            raise DumpError(f"runtime {runtime_id!r}: stored {what} is unreadable: {exc}") from exc

    receipts = [decoded(f"receipt {field}", codec.decode_receipt, value) for field, value in raw.receipts.items()]
    receipts.sort(key=lambda r: (str(r.run_id), r.sequence))  # run ids are UUIDv7: creation order
    snapshot: dict[str, str | None] | None = None
    if raw.snapshot is not None:
        data = decoded("snapshot", codec.decode_snapshot, raw.snapshot)
        stored_by = next((op for op, name in _STORED_BY.items() if name in raw.meta), None)
        try:
            snapshot = {"session": data.decode("utf-8")}
        except UnicodeDecodeError:
            snapshot = {"session_base64": base64.b64encode(data).decode("ascii")}
        snapshot["receipt"] = None if stored_by in (None, "commit_session_snapshot") else raw.meta[_STORED_BY[stored_by]]
        snapshot["stored_by"] = stored_by
    line = {
        "runtime_id": runtime_id,
        "state": None if raw.state is None else decoded("runtime state", codec.decode_runtime_state, raw.state).value,
        "inputs": [_stored_order(decoded(f"input {i}", codec.decode_input_state, raw.inputs[i]).to_dict(), raw.inputs[i])
                   for i in raw.input_order],
        "receipts": [_stored_order(r.to_dict(), raw.receipts[receipt_field(str(r.run_id), r.sequence)]) for r in receipts],
        "run_counters": {run: int(seq) for run, seq in sorted(raw.run_seqs.items())},
        "snapshot": snapshot,
        "fencing_epoch": epoch,
        # key -> input id; derivable from the inputs, so an import checks it against them
        "idempotency_keys": {f[4:]: v for f, v in sorted(raw.index.items()) if f.startswith("key:")},
    }
    return line


def _stored_order(wire: dict[str, Any], value: bytes) -> dict[str, Any]:
    """``wire`` with its fields in the order the stored value holds them, so
    that an import re-encodes the very same bytes (a commit appends
    ``last_run_id`` to an input's fields; JSON objects keep any order)."""
    envelope = msgspec.msgpack.decode(value)
    if envelope[0] != codec.SCHEMA_VERSION:  # upgraded on reading: the new form's order
        return wire
    ordered = {name: wire[name] for name in envelope[1] if name in wire}
    return {**ordered, **wire}


# -- line -> stored values ---------------------------------------------------

def parse_header(text: bytes, number: int = 1) -> dict[str, Any]:
    value = _json(text, number)
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise DumpError(f"line {number}: not a redis-store dump (its first line must be the {FORMAT} header)")
    version = value.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise DumpError(f"line {number}: dump format version {version!r}; this redis-store reads up to {VERSION}")
    return value


def is_trailer(value: Any) -> bool:
    return isinstance(value, dict) and value.get("end") == FORMAT


def _json(text: bytes, number: int) -> Any:
    if not text.endswith(b"\n"):
        raise DumpError(f"line {number}: ends without a newline: the file is truncated")
    try:
        return jsonwire.loads(text)
    except ValueError as exc:
        raise DumpError(f"line {number}: not valid JSON ({exc}); the file is corrupt") from None


def read_line(text: bytes, number: int) -> dict[str, Any]:
    """A line's JSON (runtime or trailer); ``DumpError`` names the line."""
    value = _json(text, number)
    if not isinstance(value, dict):
        raise DumpError(f"line {number}: not a JSON object")
    return value


def parse_runtime(value: dict[str, Any], number: int) -> RuntimeDump:
    """The stored values of a runtime line, checked: every value reads back
    as an equal one and the runtime keeps the store's invariants."""
    try:
        return _parse(value)
    except DumpError as exc:
        raise DumpError(f"line {number}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        rid = value.get("runtime_id")
        raise DumpError(f"line {number} (runtime {rid!r}): {type(exc).__name__}: {exc}") from None


def _parse(value: dict[str, Any]) -> RuntimeDump:
    missing = [name for name in _LINE_FIELDS if name not in value]
    unknown = sorted(set(value) - set(_LINE_FIELDS) - {"idempotency_keys"})
    if missing or unknown:
        raise DumpError(f"runtime line lacks {missing} or has unknown fields {unknown}")
    rid = runtime_key(value["runtime_id"])
    epoch = check_sequence("fencing_epoch", value["fencing_epoch"])
    state = None if value["state"] is None else codec.encode_runtime_state(RuntimeState(value["state"]))
    inputs: dict[str, bytes] = {}
    for wire in _list(value, "inputs"):
        _same(InputState, wire)
        if wire["input_id"] in inputs:
            raise DumpError(f"runtime {rid!r}: input {wire['input_id']} appears twice")
        inputs[wire["input_id"]] = codec.encode_input_state(wire)
    receipts: dict[str, bytes] = {}
    for wire in _list(value, "receipts"):
        receipt = _same(RunBoundaryReceipt, wire)
        check_sequence("sequence", receipt.sequence)
        receipts[receipt_field(str(receipt.run_id), receipt.sequence)] = codec.encode_receipt(wire)
    counters = value["run_counters"]
    if not isinstance(counters, dict):
        raise DumpError("run_counters must be an object")
    run_seqs = {str(run): str(check_sequence(f"run_counters[{run}]", seq)) for run, seq in counters.items()}
    snapshot, meta = None, {"layout": str(LAYOUT_VERSION)}
    if value["snapshot"] is not None:
        snapshot, meta = _snapshot(value["snapshot"], meta)
    keys = value.get("idempotency_keys", {})
    if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
        raise DumpError("idempotency_keys must be an object of key -> input id")
    index = {index_key_field(k): v for k, v in keys.items()}
    for k, v in keys.items():
        index[index_input_field(v)] = k
    raw = RawRuntime(state=state, snapshot=snapshot, input_order=list(inputs), inputs=inputs,
                     receipts=receipts, run_seqs=run_seqs, meta=meta, index=index)
    violations = examine(rid, raw).violations
    if violations:
        raise DumpError(f"runtime {rid!r} breaks the store's invariants: " + "; ".join(str(v) for v in violations))
    return RuntimeDump(rid, raw, epoch)


def _list(value: dict, name: str) -> list:
    if not isinstance(value[name], list):
        raise DumpError(f"{name} must be a list")
    return value[name]


def _same(cls: Any, wire: Any) -> Any:
    """``cls.from_dict(wire)``, refused unless it writes back as ``wire``."""
    if not isinstance(wire, dict):
        raise DumpError(f"a {cls.__name__} must be a JSON object")
    decoded = cls.from_dict(wire)
    if decoded.to_dict() != wire:
        raise DumpError(f"a {cls.__name__} does not read back unchanged: {jsonwire.dumps(wire)[:200]}")
    return decoded


def _snapshot(snapshot: Any, meta: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    if not isinstance(snapshot, dict) or set(snapshot) - {"session", "session_base64", "receipt", "stored_by"}:
        raise DumpError("snapshot must be an object of session (or session_base64), receipt and stored_by")
    if isinstance(snapshot.get("session"), str):
        data = snapshot["session"].encode("utf-8")
    elif isinstance(snapshot.get("session_base64"), str):
        data = base64.b64decode(snapshot["session_base64"], validate=True)
    else:
        raise DumpError("snapshot holds neither session nor session_base64")
    stored_by, receipt = snapshot.get("stored_by"), snapshot.get("receipt")
    if stored_by == "commit_session_snapshot":
        if receipt is not None:
            raise DumpError("a snapshot stored by commit_session_snapshot belongs to no receipt")
        return codec.encode_snapshot(data), {**meta, "snapshot_without_receipt": "1"}
    if (stored_by is None) != (receipt is None) or (stored_by is not None and stored_by not in _STORED_BY):
        raise DumpError(f"snapshot stored_by must be one of {sorted(_STORED_BY)} with a receipt, or both null")
    if stored_by is not None:
        meta = {**meta, _STORED_BY[stored_by]: str(receipt)}
    return codec.encode_snapshot(data), meta
