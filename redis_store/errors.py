"""The store's error hierarchy.

Mirrors meerkat's ``RuntimeStoreError`` (SPEC §0): every failure of a store
call is a ``RuntimeStoreError``; Redis/connection errors are chained as
``__cause__`` and never escape bare.
"""

from __future__ import annotations


class RuntimeStoreError(Exception):
    """Base of every error a store method raises (besides TypeError/ValueError
    for bad arguments, which are raised before anything is sent)."""

    prefix = "Store error"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.prefix}: {detail}")
        self.detail = detail


class WriteFailed(RuntimeStoreError):
    """A write failed. When the store refused it (a conflict, a bad snapshot,
    a check in a script), nothing of the call was written. When the
    connection failed or timed out mid-call, the message says the outcome
    is unknown: the commit may have been applied."""

    prefix = "Store write failed"


class ReadFailed(RuntimeStoreError):
    """A read could not be served (connection, server, or undecodable value)."""

    prefix = "Store read failed"


class NotFound(RuntimeStoreError):
    """Kept for parity with meerkat; no store method raises it today (absent
    values load as ``None`` or an empty list)."""

    prefix = "Not found"


class InternalError(RuntimeStoreError):
    """A bug or an impossible state inside the store itself."""

    prefix = "Internal error"


class ReceiptConflict(WriteFailed):
    """``atomic_apply`` was given a receipt whose (runtime, run_id, sequence)
    already exists. Nothing of that call was written."""

    def __init__(self, run_id: str, sequence: int) -> None:
        super().__init__(
            f"receipt ({run_id}, sequence {sequence}) already exists for this runtime; "
            "receipts are immutable: load it with load_boundary_receipt instead of re-applying"
        )
        self.run_id = run_id
        self.sequence = sequence


class SessionKeyMismatch(WriteFailed):
    """``atomic_apply``'s ``session_store_key`` differs from the snapshot's own
    session id. Nothing was written."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            f"session_store_key {expected} does not match the snapshot's session id {actual}"
        )
        self.expected = expected
        self.actual = actual


class FencedOut(WriteFailed):
    """The write carried a lease that is no longer current (expired, released,
    revoked or taken over). Nothing was written: another worker may own the
    runtime now; stop working on it."""


class CommitIdReused(WriteFailed):
    """A commit id was sent again with a different commit. Nothing was written."""


class LeaseHeld(RuntimeStoreError):
    """Another owner holds the runtime's lease."""

    prefix = "Lease held"

    def __init__(self, runtime_id: str, holder: str, remaining_ms: int) -> None:
        super().__init__(
            f"runtime {runtime_id!r} is leased to {holder!r} for {remaining_ms} ms more; "
            "wait, or have an operator steal_lease/revoke_lease it"
        )
        self.runtime_id = runtime_id
        self.holder = holder
        self.remaining_ms = remaining_ms


class UnsafeServer(RuntimeStoreError):
    """The store was opened with ``guard="refuse"`` and the server could lose
    or evict its state (persistence off, an evicting maxmemory-policy) or is
    too old for its scripts. Nothing was sent."""

    prefix = "Unsafe server"


class InvalidSessionSnapshot(ValueError):
    """The bytes are not a meerkat Session (SPEC §5). The message says what is
    wrong and where."""


class RuntimeStateTransitionError(ValueError):
    """``RuntimeState.transition`` was asked for a move the table forbids."""

    def __init__(self, from_state: object, to_state: object) -> None:
        super().__init__(f"Invalid runtime state transition: {from_state} -> {to_state}")
        self.from_state = from_state
        self.to_state = to_state


class IdempotencyKeyConflict(WriteFailed):
    """Two different inputs of one runtime claim the same idempotency key.
    Raised before anything of the call is written."""

    def __init__(self, key: str, holder: str, claimant: str) -> None:
        super().__init__(
            f"idempotency key {key!r} already belongs to input {holder}; input {claimant} "
            "cannot claim it too (nothing was written)"
        )
        self.key = key
        self.holder = holder
        self.claimant = claimant


class InsideEventLoop(RuntimeStoreError, RuntimeError):
    """A blocking (``redis_store.sync``) call was made from a thread running
    an asyncio event loop, where it would block that loop (or deadlock on
    the store's own loop). Nothing was sent: use the async API there."""

    prefix = "Wrong API"


class IndexMissing(WriteFailed):
    """Internal: a write of input states reached a runtime stored before the
    idempotency index existed and was refused before writing anything; the
    store builds the index and sends the write again, so callers never see it."""
