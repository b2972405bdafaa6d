"""Backends for the conformance suite: memory, fakeredis, and real Redis and
Valkey servers started here. Every test gets its own namespace.

``sync-<name>`` backends run the same tests through ``redis_store.sync``:
each store call is made, blocking, from a worker thread (as a thread-pool
worker would) and awaited by the test, so every test body serves both APIs.

``REDIS_STORE_BACKENDS=memory,fakeredis`` narrows the backends (mutation
testing uses it, with ``-m "not real_server"``, to stay in-process).
"""

from __future__ import annotations

import asyncio
import os
import uuid

import fakeredis
import pytest
import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster

from redis_store import InMemoryRuntimeStore, RedisRuntimeStore, StoreOptions
from redis_store.sync import SyncRuntimeStore

from servers import HOW_TO_ENABLE, REQUIRE_ENV, ServerProcess, redis_binary, servers_required, valkey_binary

def _chosen(names: list[str]) -> list[str]:
    wanted = os.environ.get("REDIS_STORE_BACKENDS")
    return names if not wanted else [name for name in names if name in wanted.split(",")]


BACKENDS = _chosen(["memory", "fakeredis", "redis", "valkey", "cluster"])
#: The conformance suite also runs through the blocking API on these.
SYNC_BACKENDS = _chosen(["sync-memory", "sync-fakeredis", "sync-redis"])
REAL = {"redis": redis_binary, "valkey": valkey_binary}


def _server(kind: str):
    if not _chosen([kind]):
        pytest.skip(f"REDIS_STORE_BACKENDS leaves out {kind}")
    binary = REAL[kind]()
    if binary is None:
        message = f"no {kind} server binary: {HOW_TO_ENABLE[kind]}"
        if servers_required():
            pytest.fail(f"{message} ({REQUIRE_ENV} is set, so real-server tests may not skip)")
        pytest.skip(f"{message}; or set {REQUIRE_ENV}=1 to make this a failure")
    server = ServerProcess(binary).start()
    return server


@pytest.fixture(scope="session")
def redis_server():
    server = _server("redis")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster_server():
    """A real three-master Redis Cluster shared by the session."""
    from topologies import require_topology_binaries, start_cluster

    require_topology_binaries()
    cluster = start_cluster(masters=3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def valkey_server():
    server = _server("valkey")
    yield server
    server.stop()


class AwaitedSync:
    """A ``SyncRuntimeStore`` (or a fenced view of one) seen through the async
    API: each call runs blocking in a worker thread and is awaited."""

    def __init__(self, sync) -> None:
        self.sync = sync

    def __getattr__(self, name: str):
        attribute = getattr(self.sync, name)
        if name == "fenced":
            return lambda lease: AwaitedSync(attribute(lease))
        if not callable(attribute):
            return attribute

        async def call(*args, **kwargs):
            return await asyncio.to_thread(attribute, *args, **kwargs)

        return call

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


class Backend:
    """Opens stores that share one backend's data (several clients of one
    server, or the one memory store) under a test's own namespace."""

    def __init__(self, name: str, server: ServerProcess | None) -> None:
        self.sync = name.startswith("sync-")
        name = name.removeprefix("sync-")
        self.name = name
        self.server = server
        self.namespace = f"t{uuid.uuid4().hex[:12]}"
        self._fake_server = fakeredis.FakeServer() if name == "fakeredis" else None
        self._memory = InMemoryRuntimeStore() if name == "memory" else None
        self._opened: list = []
        self._syncs: list[SyncRuntimeStore] = []

    @property
    def is_redis(self) -> bool:
        return self.name != "memory"

    def client(self):
        if self._fake_server is not None:
            client = fakeredis.FakeAsyncRedis(server=self._fake_server)
        elif self.name == "cluster":
            client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in self.server.ports])
        else:
            client = redis.asyncio.Redis(host="127.0.0.1", port=self.server.port)
        self._opened.append(client)
        return client

    def open(self, **options):
        """A store over this backend's data; ``options``: the StoreOptions
        fields (on memory they apply to the one shared store)."""
        if self._memory is not None and options:
            self._memory.options = StoreOptions(**options)
        if self.sync:
            return AwaitedSync(self.open_sync(**options))
        if self._memory is not None:
            return self._memory
        return RedisRuntimeStore(self.client(), namespace=self.namespace, **options)

    def open_sync(self, **options) -> SyncRuntimeStore:
        """A blocking store over this backend's data (memory: the one store)."""
        if self._memory is not None:
            store = SyncRuntimeStore(self._memory)
        else:
            store = SyncRuntimeStore(
                lambda: RedisRuntimeStore(self._client_here(), namespace=self.namespace, close_client=True, **options)
            )
        self._syncs.append(store)
        return store

    def _client_here(self):
        """A client created on the calling thread's loop, owned by its store."""
        if self._fake_server is not None:
            return fakeredis.FakeAsyncRedis(server=self._fake_server)
        if self.name == "cluster":
            return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in self.server.ports])
        return redis.asyncio.Redis(host="127.0.0.1", port=self.server.port)

    async def close(self) -> None:
        for store in self._syncs:
            await asyncio.to_thread(store.close)
        for client in self._opened:
            await client.aclose()


async def _backend(request):
    name = request.param.removeprefix("sync-")
    server = request.getfixturevalue(f"{name}_server") if name != "memory" and name != "fakeredis" else None
    backend = Backend(request.param, server)
    yield backend
    await backend.close()


backend = pytest.fixture(_backend)  # parametrised by pytest_generate_tests


def pytest_generate_tests(metafunc):
    """``backend`` is every backend; in modules of the conformance suite
    (``BOTH_APIS = True``) also the blocking API on ``SYNC_BACKENDS``."""
    if "backend" in metafunc.fixturenames:
        both = getattr(metafunc.module, "BOTH_APIS", False)
        metafunc.parametrize("backend", BACKENDS + SYNC_BACKENDS if both else BACKENDS, indirect=True)


@pytest.fixture
async def store(backend):
    return backend.open()


#: The async backends only, in modules with ``BOTH_APIS``: for a test that
#: injects into the async store what the blocking API cannot reach.
async_backend = pytest.fixture(params=BACKENDS)(_backend)

#: Redis-protocol backends only, for tests of Redis behaviour.
redis_backend = pytest.fixture(params=_chosen(["fakeredis", "redis", "valkey", "cluster"]))(_backend)


class ManualClock:
    """A monotonic clock that stands still until a test moves it (seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


#: Most pages of one list_runtimes walk over a memory store, and most prune
#: steps of one memory store, before a test fails (see memory_loops_end).
MEMORY_LOOP_LIMIT = 10_000


@pytest.fixture(autouse=True)
def memory_loops_end(monkeypatch):
    """A list_runtimes walk or a prune over the memory store that never ends
    fails instead of hanging the suite: the memory store's pages and prune
    steps never await, so no timeout could stop such a loop, in a test or in
    the library (audit.runtime_ids, prune_runtime). A walk starts at cursor 0;
    a prune's steps are counted per store. See tests/mutmut/backend_memory.md."""
    page, step = InMemoryRuntimeStore._list_runtimes, InMemoryRuntimeStore._prune_commit_ids
    pages: dict[int, int] = {}
    steps: dict[int, int] = {}

    async def bounded_page(self, cursor, count):
        pages[id(self)] = 1 if cursor == 0 else pages.get(id(self), 0) + 1
        assert pages[id(self)] <= MEMORY_LOOP_LIMIT, f"a list_runtimes walk did not end within {MEMORY_LOOP_LIMIT} pages"
        return await page(self, cursor, count)

    async def bounded_step(self, rid, batch):
        steps[id(self)] = steps.get(id(self), 0) + 1
        assert steps[id(self)] <= MEMORY_LOOP_LIMIT, "prune_runtime keeps stepping: a step that forgets nothing must say 0"
        return await step(self, rid, batch)

    monkeypatch.setattr(InMemoryRuntimeStore, "_list_runtimes", bounded_page)
    monkeypatch.setattr(InMemoryRuntimeStore, "_prune_commit_ids", bounded_step)


@pytest.fixture
def memory_clock(monkeypatch) -> ManualClock:
    """The memory backend's clock (lease and commit-id time), held at 1000.0 s
    and moved by hand: boundaries are tested exactly, and CPU load cannot
    make time pass."""
    from redis_store import backend_memory

    clock = ManualClock(1000.0)
    monkeypatch.setattr(backend_memory, "time", clock)
    return clock
