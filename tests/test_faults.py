"""Faults while running, each against a real server: restarts, pauses,
SCRIPT FLUSH under load, maxmemory, corrupt rows, and a busy pool. Calls
fail with a clear RuntimeStoreError within the configured timeout, or
succeed; none hangs; the store recovers by itself."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
import redis

from redis_store import (
    InputId,
    InputState,
    ReadFailed,
    RunApplyBoundary,
    RunId,
    RuntimeState,
    RuntimeStoreError,
    SessionDelta,
    WriteFailed,
    open_store,
)
from redis_store.audit import check_store
from redis_store.keys import KeyLayout
from sessions import session_json
from topologies import NodeProcess

pytestmark = [pytest.mark.real_server, pytest.mark.slow]

FAST = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}


@pytest.fixture
def node(redis_server):
    """A private server that a test may kill, restart and pause."""
    server = NodeProcess(redis_server.binary, "--appendonly", "yes", "--appendfsync", "always",
                         "--enable-debug-command", "yes").start()
    yield server
    server.stop()


def commit(store, rid, run_id, turns=1, **kw):
    return store.commit_session_boundary(rid, SessionDelta(session_json(turns)), run_id, RunApplyBoundary.RUN_START, [], [], **kw)


async def violations(store):
    return [v async for report in check_store(store) for v in report.violations]


# README, Timeouts and connections: "No call hangs ... recovers by itself when the server is back".
async def test_dead_server_fails_fast_and_the_store_recovers_when_it_returns(node):
    async with open_store(f"redis://127.0.0.1:{node.port}/0?namespace=restart", **FAST) as store:
        run_id = RunId.new()
        await commit(store, "rt", run_id)
        node.kill()
        started = time.monotonic()
        with pytest.raises(WriteFailed) as failed:
            await commit(store, "rt", run_id)
        with pytest.raises(ReadFailed):
            await store.load_boundary_receipt("rt", run_id, 0)
        assert time.monotonic() - started < 15  # redis-py's 3 retries with backoff, each bounded
        assert isinstance(failed.value.__cause__, redis.exceptions.ConnectionError)
        await asyncio.to_thread(node.restart)
        assert (await commit(store, "rt", run_id)).sequence == 1  # same store, same client: it reconnects
        assert await store.load_boundary_receipt("rt", run_id, 0) is not None  # AOF kept the first


async def test_paused_server_times_out_then_a_commit_id_retry_settles_it(node):
    admin = redis.Redis(port=node.port)
    async with open_store(f"redis://127.0.0.1:{node.port}/0?namespace=pause", **FAST) as store:
        run_id = RunId.new()
        await commit(store, "rt", run_id)
        admin.execute_command("CLIENT", "PAUSE", 2500, "ALL")
        started = time.monotonic()
        with pytest.raises(WriteFailed, match="outcome is unknown"):
            await commit(store, "rt", run_id, commit_id="paused-1")
        assert time.monotonic() - started < 2.5  # failed within the timeout, did not hang
        await asyncio.sleep(2.7)  # the pause ends; the queued command(s) run now
        receipt = await commit(store, "rt", run_id, commit_id="paused-1")
        assert receipt.sequence == 1  # exactly once, however many copies the client sent
        assert await store.load_boundary_receipt("rt", run_id, 2) is None

        admin.execute_command("DEBUG", "SLEEP", 0)  # allowed on this server
        sleeper = asyncio.create_task(asyncio.to_thread(admin.execute_command, "DEBUG", "SLEEP", 2))
        await asyncio.sleep(0.2)
        with pytest.raises(ReadFailed):
            await store.load_boundary_receipt("rt", run_id, 1)
        await sleeper
        assert await store.load_boundary_receipt("rt", run_id, 1) == receipt
    admin.close()


# README, How it is stored: "a NOSCRIPT reply ... reloads them transparently".
async def test_script_flush_during_commits_is_transparent(node):
    admin = redis.asyncio.Redis(port=node.port)
    async with open_store(f"redis://127.0.0.1:{node.port}/0?namespace=flush") as store:
        run_id, done = RunId.new(), asyncio.Event()

        async def flusher():
            while not done.is_set():
                await admin.script_flush()
                await asyncio.sleep(0.003)

        async def committer():
            return [(await commit(store, "rt", run_id)).sequence for _ in range(40)]

        flushing = asyncio.create_task(flusher())
        results = await asyncio.gather(*(committer() for _ in range(4)))
        done.set()
        await flushing
        assert sorted(s for r in results for s in r) == list(range(160))
        assert await violations(store) == []
    await admin.aclose()


# README, Timeouts and connections: "Redis out of memory is reported as such (nothing was written)".
async def test_maxmemory_gives_a_clear_error_writes_nothing_partial_and_recovers(redis_server):
    server = NodeProcess(redis_server.binary, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction").start()
    try:
        async with open_store(f"{server.url}?namespace=oom") as store:
            run_id, acknowledged, error = RunId.new(), [], None
            big = SessionDelta(session_json(120))  # ~60 KB, a new runtime each time: memory fills up
            states = [InputState.new_accepted(InputId.new()) for _ in range(3)]
            for i in range(400):
                try:
                    acknowledged.append((f"rt-{i}", await store.commit_session_boundary(
                        f"rt-{i}", big, run_id, RunApplyBoundary.RUN_START, [], states)))
                except WriteFailed as exc:
                    error = exc
                    break
            assert error is not None, "maxmemory was never reached"
            assert "out of memory" in str(error) and "maxmemory" in str(error)
            assert "nothing was written" in str(error)
            assert await violations(store) == []  # every runtime, the refused one included
            refused = f"rt-{len(acknowledged)}"
            assert (await store.dump_runtime(refused)).meta == {}  # nothing of it was written
            for rid, receipt in acknowledged:
                assert await store.load_boundary_receipt(rid, run_id, receipt.sequence) == receipt
                assert len(await store.load_input_states(rid)) == 3
            redis.Redis(port=server.port).config_set("maxmemory", "64mb")
            assert (await store.commit_session_boundary(
                refused, big, run_id, RunApplyBoundary.RUN_START, [], states)).sequence == 0
    finally:
        server.stop()


# README, Unreadable rows: "load_readable_input_states returns every readable row".
async def test_a_corrupt_row_does_not_hide_the_others(redis_server):
    async with open_store(f"{redis_server.url}?namespace=corrupt-rows") as store:
        states = [InputState.new_accepted(InputId.new()) for _ in range(4)]
        await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, states)
        await store.persist_input_state("healthy", states[0])
        raw = redis.Redis.from_url(redis_server.url)
        keys = KeyLayout("corrupt-rows").runtime("rt")
        raw.hset(keys.inputs, str(states[1].input_id), b"\xc1 not msgpack")
        raw.hset(keys.inputs, str(states[2].input_id), msgspec.msgpack.encode([9, {}, None]))
        raw.close()
        with pytest.raises(ReadFailed, match=f"'rt': input {states[1].input_id}"):
            await store.load_input_states("rt")
        readable, unreadable = await store.load_readable_input_states("rt")
        assert readable == [states[0], states[3]]
        assert [str(states[1].input_id) in str(e) for e in unreadable] == [True, False]
        assert "schema version 9" in str(unreadable[1]) and str(states[2].input_id) in str(unreadable[1])
        assert await store.load_input_state("rt", states[3].input_id) == states[3]  # other rows load
        assert await store.load_input_states("healthy") == [states[0]]  # other runtimes too


# README, Timeouts and connections: "callers wait up to 10 s for (pool_timeout)".
async def test_a_busy_pool_waits_for_a_free_connection(node, redis_server):
    admin = redis.Redis(port=node.port)
    async with open_store(f"redis://127.0.0.1:{node.port}/0?namespace=pool", max_connections=3, pool_timeout=30) as store:
        run_id = RunId.new()
        receipts = await asyncio.gather(*(commit(store, "rt", run_id) for _ in range(300)))
        assert sorted(r.sequence for r in receipts) == list(range(300))
        assert admin.info("clients")["connected_clients"] <= 3 + 1  # the pool's, and this admin
    admin.close()
    async with open_store(f"{redis_server.url}?namespace=pool2", max_connections=1, pool_timeout=0.001) as store:
        outcomes = await asyncio.gather(*(commit(store, "rt", RunId.new()) for _ in range(50)), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert errors and all(isinstance(e, RuntimeStoreError) for e in errors)  # bounded, and said clearly
        assert "No connection available" in str(errors[0])
