"""redis-store: meerkat's RuntimeStore for Python, shared through Redis.

    store = open_store("redis://localhost:6379/0?namespace=prod")
    receipt = await store.commit_session_boundary(runtime_id, SessionDelta(snapshot), run_id,
                                                  RunApplyBoundary.RUN_START, [input_id], [state])
"""

from .backend_memory import InMemoryRuntimeStore
from .backend_redis import RedisRuntimeStore
from .contract import MAX_SEQUENCE, PruneReport, RawRuntime, RuntimeStore, StoreOptions
from .digest import session_digest
from .errors import (
    CommitIdReused,
    FencedOut,
    IdempotencyKeyConflict,
    InsideEventLoop,
    InternalError,
    InvalidSessionSnapshot,
    LeaseHeld,
    NotFound,
    ReadFailed,
    ReceiptConflict,
    RuntimeStateTransitionError,
    RuntimeStoreError,
    SessionKeyMismatch,
    UnsafeServer,
    WriteFailed,
)
from .ids import InputId, LogicalRuntimeId, RunId, SessionId
from .lease import FencedStore, Lease, LeaseKeeper
from .registry import open_store
from .timestamps import Timestamp
from .types import *  # noqa: F401,F403  (the domain types; see types.__all__)
from .types import __all__ as _types_all

__all__ = [
    "InMemoryRuntimeStore",
    "RedisRuntimeStore",
    "RuntimeStore",
    "StoreOptions",
    "RawRuntime",
    "PruneReport",
    "MAX_SEQUENCE",
    "open_store",
    "session_digest",
    "RuntimeStoreError",
    "WriteFailed",
    "ReadFailed",
    "NotFound",
    "InternalError",
    "ReceiptConflict",
    "SessionKeyMismatch",
    "UnsafeServer",
    "InvalidSessionSnapshot",
    "FencedOut",
    "CommitIdReused",
    "LeaseHeld",
    "IdempotencyKeyConflict",
    "InsideEventLoop",
    "Lease",
    "FencedStore",
    "LeaseKeeper",
    "RuntimeStateTransitionError",
    "LogicalRuntimeId",
    "RunId",
    "InputId",
    "SessionId",
    "Timestamp",
    *_types_all,
]
