"""``redis_store.sync``: the whole store API as blocking calls, for code that
does not run asyncio (thread pools, Celery and RQ tasks, Django views).

    from redis_store.sync import LeaseKeeper, open_store

    with open_store("redis://localhost:6379/0?namespace=prod") as store:
        store.persist_input_state(runtime_id, state)
        lease = store.acquire_lease(runtime_id, "worker-1", ttl=30)
        with LeaseKeeper(store, lease) as keeper:
            store.fenced(keeper.lease).commit_session_boundary(...)

There is one implementation: each ``SyncRuntimeStore`` runs the async store
on a private event loop in its own daemon thread, and every call is handed
to that loop and waited for. Names, arguments, return values and errors are
the async API's, because they are its calls. Any number of threads may share
one store: their calls run concurrently on the loop (one client, one
connection pool). ``close()`` (or leaving ``with``) waits for calls in
flight, closes the async store and its connections, stops the loop and joins
the thread; closing again does nothing, and later calls fail as calls on a
closed async store do (``WriteFailed``/``ReadFailed`` "closed").

A blocking call from a thread that runs an event loop (an ``async def``, or
the store's own loop) would stall that loop, or deadlock; it raises
``InsideEventLoop`` at once, before anything is sent: use the async API there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import itertools
import threading
from typing import Any, Callable, Coroutine, Union

from . import lease as _lease
from . import registry
from .contract import RuntimeStore
from .errors import InsideEventLoop, RuntimeStoreError
from .lease import FencedStore, Lease

__all__ = ["LeaseKeeper", "SyncRuntimeStore", "open_store"]

_numbers = itertools.count(1)


def _refuse_inside_event_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise InsideEventLoop(
        f"{what} is a blocking call of redis_store.sync, made from a running asyncio event loop, "
        "where it would block the loop; use the async API (redis_store.open_store, await store.<method>) there"
    )


class _LoopThread:
    """An event loop running forever in its own daemon thread, until stopped."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            # Stopped: finish whatever is still scheduled, then close the loop.
            leftover = asyncio.all_tasks(self.loop)
            for task in leftover:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()

    def submit(self, coroutine: Coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()


def _run_closed(coroutine: Coroutine) -> Any:
    """Run a call of the closed async store in this thread: every store
    method checks its arguments and then that the store is open before it
    awaits anything, so it raises the async API's own error right here."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeStoreError("the sync store is closed")  # not reached by the store's own methods


class SyncRuntimeStore:
    """Blocking facade over one async ``RuntimeStore`` (any backend).

    ``store`` is an async store this facade takes over (it closes it), or a
    callable returning one, called on the facade's loop thread: use that for
    stores whose clients should be created on the loop that uses them."""

    def __init__(self, store: Union[RuntimeStore, Callable[[], RuntimeStore]]) -> None:
        if not isinstance(store, RuntimeStore) and not callable(store):
            raise TypeError(f"store must be a RuntimeStore or a callable returning one, got {type(store).__name__}")
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future] = set()
        self._closed = False
        self._thread = _LoopThread(f"redis-store-sync-{next(_numbers)}")
        try:
            if isinstance(store, RuntimeStore):
                self._store = store
            else:
                self._store = self._thread.submit(_build(store)).result()
        except BaseException:
            self._thread.stop()
            raise

    @property
    def async_store(self) -> RuntimeStore:
        """The async store underneath; use it only on ``loop``."""
        return self._store

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._thread.loop

    def _run(self, what: str, make: Callable[[], Coroutine]) -> Any:
        _refuse_inside_event_loop(what)
        with self._lock:
            if self._closed:
                return _run_closed(make())
            future = self._thread.submit(make())
            self._pending.add(future)
        try:
            return future.result()
        finally:
            with self._lock:
                self._pending.discard(future)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self._store, name)
        return self._run(name, lambda: method(*args, **kwargs))

    def fenced(self, lease: Lease) -> FencedStore:
        """A view of this store whose every write carries ``lease``."""
        return FencedStore(self, lease)

    def __getattr__(self, name: str) -> Any:
        # Backend extras (check_server, memory_usage, namespace, options...).
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(self._store, name)
        if inspect.iscoroutinefunction(attribute):
            return functools.wraps(attribute)(functools.partial(self._call, name))
        return attribute

    def close(self) -> None:
        """Wait for calls in flight, close the async store (and the
        connections it owns), stop the loop and join its thread. Harmless
        when already closed."""
        _refuse_inside_event_loop("close()")
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._pending)
        concurrent.futures.wait(pending)
        try:
            self._thread.submit(self._store.aclose()).result()
        finally:
            self._thread.stop()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "SyncRuntimeStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SyncRuntimeStore({self._store!r})"


async def _build(factory: Callable[[], RuntimeStore]) -> RuntimeStore:
    store = factory()
    if not isinstance(store, RuntimeStore):
        raise TypeError(f"the store factory returned {type(store).__name__}, not a RuntimeStore")
    return store


def _blocking(name: str, method: Callable) -> Callable:
    @functools.wraps(method)
    def call(self: SyncRuntimeStore, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    call.__doc__ = f"Blocking ``{name}`` (see ``RuntimeStore.{name}``).\n\n{method.__doc__ or ''}"
    return call


# Every public coroutine method of the contract, as a blocking method.
for _name, _member in vars(RuntimeStore).items():
    if not _name.startswith("_") and _name != "aclose" and inspect.iscoroutinefunction(_member):
        setattr(SyncRuntimeStore, _name, _blocking(_name, _member))


def open_store(url: str, **options: Any) -> SyncRuntimeStore:
    """The blocking store a URL names: ``redis_store.open_store``'s URLs and
    options, the async store created on the facade's own loop."""
    return SyncRuntimeStore(lambda: registry.open_store(url, **options))


class LeaseKeeper:
    """``redis_store.LeaseKeeper`` for a ``SyncRuntimeStore``: renews the
    lease in the background, on the store's loop thread, until the ``with``
    block ends (then releases it unless ``release=False``). ``keeper.lease``
    is the latest renewed lease, ``keeper.lost`` an event set once renewing
    failed, ``keeper.check()`` raises ``FencedOut`` after that."""

    def __init__(self, store: SyncRuntimeStore, lease: Lease, *, fraction: float = 1 / 3, release: bool = True) -> None:
        if not isinstance(store, SyncRuntimeStore):
            raise TypeError(f"store must be a SyncRuntimeStore, got {type(store).__name__}")
        self._store = store
        self._keeper = _lease.LeaseKeeper(store.async_store, lease, fraction=fraction, release=release)

    @property
    def lease(self) -> Lease:
        return self._keeper.lease

    @property
    def lost(self) -> asyncio.Event:
        return self._keeper.lost

    @property
    def error(self) -> BaseException | None:
        return self._keeper.error

    def check(self) -> None:
        self._keeper.check()

    def __enter__(self) -> "LeaseKeeper":
        self._store._run("LeaseKeeper", self._keeper.__aenter__)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._store._run("LeaseKeeper", lambda: self._keeper.__aexit__(*exc_info))
