"""The blocking API (``redis_store.sync``) beyond the conformance suite, which
runs through it too (conftest.SYNC_BACKENDS): its lifetime (no thread, loop
or connection left behind), sharing one store between threads, the lease
keeper, and refusing calls from inside an event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest
import redis

from redis_store import (
    FencedOut,
    InputId,
    InputState,
    InMemoryRuntimeStore,
    RedisRuntimeStore,
    ReadFailed,
    RunApplyBoundary,
    RunId,
    RuntimeState,
    SessionDelta,
    WriteFailed,
)
from redis_store.errors import InsideEventLoop, RuntimeStoreError
from redis_store.sync import LeaseKeeper, SyncRuntimeStore, open_store
from sessions import session_json


def _sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("redis-store-sync-")]


def _clients(port: int, name: str) -> int:
    """Connections the server has open under this client name."""
    with redis.Redis(host="127.0.0.1", port=port) as admin:
        return sum(1 for client in admin.client_list() if client["name"] == name)


def _settled_clients(port: int, name: str) -> int:
    """``_clients`` once none are left (or after 5 s): the server sees a
    closed socket on its next event-loop pass, which may come after ours."""
    deadline = time.monotonic() + 5
    while (count := _clients(port, name)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


def _commit(store, rid, run_id, inputs=()):
    return store.commit_session_boundary(
        rid, SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_CHECKPOINT, [s.input_id for s in inputs], list(inputs)
    )


def test_close_leaves_no_thread_loop_or_connection(redis_server):
    before_threads, name = set(_sync_threads()), f"synclife{time.time_ns()}"
    store = open_store(f"redis://127.0.0.1:{redis_server.port}/0?namespace=synclife&client_name={name}")
    thread, loop = store._thread.thread, store.loop
    assert thread.is_alive() and thread.daemon
    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # open several pooled connections
        list(pool.map(lambda n: store.persist_runtime_state(f"rt{n}", RuntimeState.IDLE), range(32)))
    assert _clients(redis_server.port, name) > 1
    store.close()
    assert not thread.is_alive() and loop.is_closed()
    assert set(_sync_threads()) == before_threads
    assert _settled_clients(redis_server.port, name) == 0
    store.close()  # harmless
    with pytest.raises(WriteFailed, match="closed"):
        store.persist_runtime_state("rt0", RuntimeState.IDLE)
    with pytest.raises(ReadFailed, match="closed"):
        store.load_runtime_state("rt0")
    with pytest.raises(TypeError):  # bad arguments are still bad arguments
        store.load_runtime_state(7)


def test_context_manager_closes_and_a_bad_url_leaves_no_thread():
    before = set(_sync_threads())
    with open_store("memory://") as store:
        store.persist_runtime_state("rt", RuntimeState.RUNNING)
        assert store.load_runtime_state("rt") is RuntimeState.RUNNING
    assert store.closed and set(_sync_threads()) == before
    with pytest.raises(ValueError, match="unknown store URL scheme"):
        open_store("nope://x")
    with pytest.raises(TypeError):
        SyncRuntimeStore("memory://")
    assert set(_sync_threads()) == before


async def test_blocking_call_inside_an_event_loop_is_refused_not_deadlocked():
    store = SyncRuntimeStore(InMemoryRuntimeStore())
    try:
        with pytest.raises(InsideEventLoop, match="use the async API") as caught:
            store.persist_runtime_state("rt", RuntimeState.IDLE)
        assert isinstance(caught.value, RuntimeStoreError)
        with pytest.raises(InsideEventLoop):
            store.close()
        # From the store's own loop thread too: the call is refused, not queued behind itself.
        refused = asyncio.wrap_future(store._thread.submit(_call_sync(store)))
        with pytest.raises(InsideEventLoop):
            await asyncio.wait_for(refused, 5)
        assert await asyncio.to_thread(store.load_runtime_state, "rt") is None  # nothing was written
    finally:
        await asyncio.to_thread(store.close)


async def _call_sync(store):
    return store.load_runtime_state("rt")


@pytest.mark.parametrize("backend_name", ["memory", "fakeredis", "redis"])
def test_many_threads_share_one_store(backend_name, request):
    if backend_name == "redis":
        url = f"redis://127.0.0.1:{request.getfixturevalue('redis_server').port}/0?namespace=syncshare{time.time_ns()}"
    else:
        url = f"{backend_name}://syncshare{time.time_ns()}"
    run_id = RunId.new()
    with open_store(url) as store:
        def work(n: int):
            state = InputState.new_accepted(InputId.new())
            store.persist_input_state(f"own-{n}", state)
            assert store.load_input_state(f"own-{n}", state.input_id) == state
            return [_commit(store, "shared", run_id, [InputState.new_accepted(InputId.new())]).sequence for _ in range(10)]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            sequences = [seq for seqs in pool.map(work, range(8)) for seq in seqs]
        assert sorted(sequences) == list(range(80))  # every commit minted its own sequence
        assert len(store.load_input_states("shared")) == 80


def test_lease_keeper_renews_in_the_background_and_reports_loss():
    with open_store("memory://") as store:
        lease = store.acquire_lease("rt", "worker", ttl=0.3)
        with LeaseKeeper(store, lease) as keeper:
            time.sleep(0.7)  # past the ttl: only renewals keep it
            keeper.check()
            store.fenced(keeper.lease).persist_runtime_state("rt", RuntimeState.RUNNING)
        assert store.current_lease("rt") is None  # released on exit

        lease = store.acquire_lease("rt", "worker", ttl=0.3)
        with LeaseKeeper(store, lease) as keeper:
            store.steal_lease("rt", "operator", ttl=5)
            deadline = time.monotonic() + 5
            while not keeper.lost.is_set() and time.monotonic() < deadline:
                time.sleep(0.02)
            with pytest.raises(FencedOut):
                keeper.check()
            with pytest.raises(FencedOut):
                store.fenced(lease).persist_runtime_state("rt", RuntimeState.IDLE)
        assert store.current_lease("rt").owner == "operator"
    with pytest.raises(TypeError):
        LeaseKeeper(InMemoryRuntimeStore(), lease)


def test_backend_extras_are_blocking_too(redis_server):
    with open_store(f"redis://127.0.0.1:{redis_server.port}/0?namespace=extras{time.time_ns()}") as store:
        assert store.namespace.startswith("extras")
        store.persist_runtime_state("rt", RuntimeState.IDLE)
        assert store.memory_usage("rt") > 0
        assert {f.topic for f in store.check_server()} >= {"server", "persistence", "eviction"}


def test_wrapping_a_redis_store_built_outside_any_loop(redis_server):
    name = f"wrapped{time.time_ns()}"
    store = SyncRuntimeStore(RedisRuntimeStore.from_url(redis_server.url, namespace=name, client_name=name))
    with store:
        run_id = RunId.new()
        assert [_commit(store, "rt", run_id).sequence for _ in range(3)] == [0, 1, 2]
        assert repr(store).startswith("SyncRuntimeStore(RedisRuntimeStore(")
        assert _clients(redis_server.port, name) >= 1
    assert _settled_clients(redis_server.port, name) == 0
