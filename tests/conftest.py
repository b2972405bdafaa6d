"""Backends for the conformance suite: memory, fakeredis, and real Redis and
Valkey servers started here. Every test gets its own namespace.

``REDIS_STORE_BACKENDS=memory,fakeredis`` narrows the backends (mutation
testing uses it, with ``-m "not real_server"``, to stay in-process).
"""

from __future__ import annotations

import os
import uuid

import fakeredis
import pytest
import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster

from redis_store import InMemoryRuntimeStore, RedisRuntimeStore

from servers import HOW_TO_ENABLE, REQUIRE_ENV, ServerProcess, redis_binary, servers_required, valkey_binary

def _chosen(names: list[str]) -> list[str]:
    wanted = os.environ.get("REDIS_STORE_BACKENDS")
    return names if not wanted else [name for name in names if name in wanted.split(",")]


BACKENDS = _chosen(["memory", "fakeredis", "redis", "valkey", "cluster"])
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


class Backend:
    """Opens stores that share one backend's data (several clients of one
    server, or the one memory store) under a test's own namespace."""

    def __init__(self, name: str, server: ServerProcess | None) -> None:
        self.name = name
        self.server = server
        self.namespace = f"t{uuid.uuid4().hex[:12]}"
        self._fake_server = fakeredis.FakeServer() if name == "fakeredis" else None
        self._memory = InMemoryRuntimeStore() if name == "memory" else None
        self._opened: list = []

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

    def open(self):
        if self._memory is not None:
            return self._memory
        return RedisRuntimeStore(self.client(), namespace=self.namespace)

    async def close(self) -> None:
        for client in self._opened:
            await client.aclose()


async def _backend(request):
    name = request.param
    server = request.getfixturevalue(f"{name}_server") if name != "memory" and name != "fakeredis" else None
    backend = Backend(name, server)
    yield backend
    await backend.close()


backend = pytest.fixture(params=BACKENDS)(_backend)


@pytest.fixture
async def store(backend):
    return backend.open()


#: Redis-protocol backends only, for tests of Redis behaviour.
redis_backend = pytest.fixture(params=_chosen(["fakeredis", "redis", "valkey", "cluster"]))(_backend)
