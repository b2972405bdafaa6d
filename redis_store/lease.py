"""Runtime leases with fencing tokens.

A worker that owns a runtime takes its lease (``store.acquire_lease``); the
lease's ``token`` is the runtime's fencing epoch, which grows with every new
owner and never goes back. Writes that carry the lease (``lease=``, or every
write of ``store.fenced(lease)``) are checked inside the store's own atomic
step, before anything is written: once the lease expired, was released,
revoked or stolen, they fail with ``FencedOut`` and write nothing. Lease
time runs on the server's clock.

``LeaseKeeper`` renews a lease in the background during long runs.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import FencedOut, RuntimeStoreError

if TYPE_CHECKING:
    from .contract import RuntimeStore
    from .sync import SyncRuntimeStore

#: Longest lease: PEXPIRE takes 64-bit ms, but a day is a sane ceiling.
MAX_TTL_MS = 24 * 3600 * 1000


def ttl_ms(ttl: object) -> int:
    """A lease ttl in seconds as whole milliseconds (rounded up)."""
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool):
        raise TypeError(f"ttl must be a number of seconds, got {type(ttl).__name__}")
    if not 0 < ttl * 1000 <= MAX_TTL_MS or math.isnan(ttl):
        raise ValueError(f"ttl must be in (0, {MAX_TTL_MS // 1000}] seconds, got {ttl}")
    return max(1, math.ceil(ttl * 1000))


@dataclass(frozen=True)
class Lease:
    """A held lease. ``token`` is the fencing epoch every fenced write carries."""

    runtime_id: str
    owner: str
    token: int
    ttl_ms: int


class FencedStore:
    """A store view whose every write carries one lease (``store.fenced(lease)``).

    Reads and everything else pass through unchanged. Works over an async
    store and over a ``redis_store.sync`` one (its writes stay blocking)."""

    _WRITES = frozenset(
        {
            "commit_session_boundary",
            "atomic_apply",
            "persist_input_state",
            "persist_runtime_state",
            "atomic_lifecycle_commit",
            "commit_session_snapshot",
            "delete_runtime",
        }
    )

    def __init__(self, store: RuntimeStore | SyncRuntimeStore, lease: Lease) -> None:
        if not isinstance(lease, Lease):
            raise TypeError(f"lease must be a Lease, got {type(lease).__name__}")
        self.store = store
        self.lease = lease

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if name not in self._WRITES:
            return attribute

        def fenced_write(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("lease", self.lease)
            return attribute(*args, **kwargs)  # the coroutine, or the blocking call's result

        return fenced_write

    def __repr__(self) -> str:
        return f"FencedStore({self.store!r}, token={self.lease.token})"


class LeaseKeeper:
    """Renews a lease every ``fraction`` of its ttl until stopped.

    ``async with LeaseKeeper(store, lease) as keeper:`` ... When a renewal
    fails (the lease was lost, or the store stayed unreachable until the
    lease ran out) the keeper stops, sets ``keeper.lost`` and keeps the cause
    in ``keeper.error``; fenced writes fail on their own by then. Call
    ``keeper.check()`` between steps to stop early. Leaving the block stops
    renewing and, with ``release=True``, releases the lease."""

    def __init__(self, store: "RuntimeStore", lease: Lease, *, fraction: float = 1 / 3, release: bool = True) -> None:
        if not 0 < fraction < 1:
            raise ValueError("fraction must be between 0 and 1")
        self.store = store
        self.lease = lease
        self.interval = lease.ttl_ms / 1000 * fraction
        self.release = release
        self.lost = asyncio.Event()
        self.error: BaseException | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "LeaseKeeper":
        self._task = asyncio.create_task(self._run(), name=f"lease-keeper:{self.lease.runtime_id}")
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.release and not self.lost.is_set():
            try:
                await self.store.release_lease(self.lease)
            except RuntimeStoreError:
                pass  # it runs out on its own; a failing store must not mask the block's outcome

    def check(self) -> None:
        """Raise ``FencedOut`` if the lease was lost."""
        if self.lost.is_set():
            raise FencedOut(f"lease of runtime {self.lease.runtime_id!r} was lost: {self.error}") from self.error

    async def _run(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.lease.ttl_ms / 1000
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.lease = await self.store.renew_lease(self.lease)
                deadline = asyncio.get_running_loop().time() + self.lease.ttl_ms / 1000
            except FencedOut as exc:
                self.error = exc
                self.lost.set()
                return
            except RuntimeStoreError as exc:  # unreachable: retry until the lease would have run out
                if asyncio.get_running_loop().time() + self.interval >= deadline:
                    self.error = exc
                    self.lost.set()
                    return
