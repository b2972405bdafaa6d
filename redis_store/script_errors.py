"""The error codes the Lua scripts reply with (the reply's first word), and
the store error each becomes: the one table. ``tests/test_script_errors.py``
checks that every code a script in ``lua/`` can raise is here."""

from __future__ import annotations

from typing import Callable

from .contract import sequence_exhausted
from .errors import CommitIdReused, FencedOut, InternalError, LeaseHeld, ReceiptConflict, RuntimeStoreError, WriteFailed


def _lease_held(operation: str, where: str, rid: str, detail: str) -> RuntimeStoreError:
    remaining, _, holder = detail.partition(" ")
    return LeaseHeld(rid, holder, int(remaining))


def _receipt_conflict(operation: str, where: str, rid: str, detail: str) -> RuntimeStoreError:
    run_id, _, sequence = detail.rpartition(":")
    return ReceiptConflict(run_id, int(sequence))


#: code -> (operation, where, runtime id, the reply after the code) -> error.
SCRIPT_ERRORS: dict[str, Callable[[str, str, str, str], RuntimeStoreError]] = {
    "FENCED_OUT": lambda op, where, rid, detail: FencedOut(f"{op}: {detail}; another worker may own the runtime now"),
    "COMMIT_ID_REUSED": lambda op, where, rid, detail: CommitIdReused(f"{op}: commit id {detail}"),
    "LEASE_HELD": _lease_held,
    "RECEIPT_CONFLICT": _receipt_conflict,
    "SEQUENCE_EXHAUSTED": lambda op, where, rid, detail: sequence_exhausted(detail.split()[1]),
    # The Python side built a malformed call: a bug in the store.
    "BAD_ARGS": lambda op, where, rid, detail: InternalError(f"{op}: script refused its input: BAD_ARGS {detail}"),
    # A key of the runtime holds something the store did not write; nothing was written.
    "WRONGTYPE": lambda op, where, rid, detail: WriteFailed(f"{op} on {where}: WRONGTYPE {detail}; nothing was written"),
    "CORRUPT": lambda op, where, rid, detail: WriteFailed(f"{op} on {where}: CORRUPT {detail}; nothing was written"),
}


def script_error(operation: str, where: str, rid: str, reply: str) -> RuntimeStoreError | None:
    """The store error for a script's error reply, or None for a reply that
    is not one of the scripts' own codes."""
    code, _, detail = reply.partition(" ")
    make = SCRIPT_ERRORS.get(code)
    return None if make is None else make(operation, where, rid, detail)
