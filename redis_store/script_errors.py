"""The error codes the Lua scripts reply with (the reply's first word), and
the store error each becomes: the one table. ``tests/test_script_errors.py``
checks that every code a script in ``lua/`` can raise is here."""

from __future__ import annotations

from typing import Callable

from .contract import sequence_exhausted
from .snapshot_delta import StaleBase
from .errors import (
    CommitIdReused,
    FencedOut,
    IdempotencyKeyConflict,
    IndexMissing,
    InternalError,
    LeaseHeld,
    ReceiptConflict,
    RuntimeStoreError,
    WriteFailed,
)


def _lease_held(operation: str, where: str, rid: str, detail: str) -> RuntimeStoreError:
    remaining, _, holder = detail.partition(" ")
    return LeaseHeld(rid, holder, int(remaining))


def _key_conflict(operation: str, where: str, rid: str, detail: str) -> RuntimeStoreError:
    holder, claimant, key = detail.split(" ")  # the key in hex: error replies lose newlines and NULs
    return IdempotencyKeyConflict(bytes.fromhex(key).decode("utf-8", "replace"), holder, claimant)


def _receipt_conflict(operation: str, where: str, rid: str, detail: str) -> RuntimeStoreError:
    run_id, _, sequence = detail.rpartition(":")
    return ReceiptConflict(run_id, int(sequence))


#: code -> (operation, where, runtime id, the reply after the code) -> error.
SCRIPT_ERRORS: dict[str, Callable[[str, str, str, str], RuntimeStoreError]] = {
    "FENCED_OUT": lambda op, where, rid, detail: FencedOut(f"{op}: {detail}; another worker may own the runtime now"),
    "COMMIT_ID_REUSED": lambda op, where, rid, detail: CommitIdReused(f"{op}: commit id {detail}"),
    "LEASE_HELD": _lease_held,
    "RECEIPT_CONFLICT": _receipt_conflict,
    "IDEMPOTENCY_CONFLICT": _key_conflict,
    # A runtime stored before the index: the contract builds it and sends the write again.
    "INDEX_MISSING": lambda op, where, rid, detail: IndexMissing(f"{op}: the runtime was stored before the idempotency index"),
    "SEQUENCE_EXHAUSTED": lambda op, where, rid, detail: sequence_exhausted(detail.split()[1]),
    # The Python side built a malformed call: a bug in the store.
    "BAD_ARGS": lambda op, where, rid, detail: InternalError(f"{op}: script refused its input: BAD_ARGS {detail}"),
    # A key of the runtime holds something the store did not write; nothing was written.
    "WRONGTYPE": lambda op, where, rid, detail: WriteFailed(f"{op} on {where}: WRONGTYPE {detail}; nothing was written"),
    # A snapshot delta met another writer's snapshot: sent again whole (snapshot_delta).
    "STALE_BASE": lambda op, where, rid, detail: StaleBase(f"{op} on {where}: {detail}"),
    "CORRUPT": lambda op, where, rid, detail: WriteFailed(f"{op} on {where}: CORRUPT {detail}; nothing was written"),
}


def script_error(operation: str, where: str, rid: str, reply: str) -> RuntimeStoreError | None:
    """The store error for a script's error reply, or None for a reply that
    is not one of the scripts' own codes."""
    code, _, detail = reply.partition(" ")
    make = SCRIPT_ERRORS.get(code)
    return None if make is None else make(operation, where, rid, detail)
