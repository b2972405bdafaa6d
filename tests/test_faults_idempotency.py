"""A commit whose reply is lost after Redis ran it: retrying its commit id
returns the original receipt and mints nothing new (real server, real TCP
connection cut by a proxy)."""

from __future__ import annotations

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from redis_store import RedisRuntimeStore, RunApplyBoundary, RunId, SessionDelta, WriteFailed
from faultproxy import FaultProxy
from sessions import session_json


@pytest.fixture
async def proxied(redis_server):
    proxy = await FaultProxy(redis_server.port).start()
    clients = []

    def client(retries: int):
        c = redis.asyncio.Redis(port=proxy.port, retry=Retry(NoBackoff(), retries))
        clients.append(c)
        return c

    yield proxy, client
    for c in clients:
        await c.aclose()
    await proxy.close()


async def _warm(store) -> None:
    # Scripts load on first use (NOSCRIPT, SCRIPT LOAD): do that before arming the fault.
    await store.commit_session_boundary("warm", SessionDelta(session_json(1)), RunId.new(), RunApplyBoundary.RUN_START, [], [])


# README, Guarantees: "a retry with the same commit_id returns the original receipt and mints nothing".
async def test_retry_after_a_lost_reply_returns_the_original_receipt(proxied):
    proxy, client = proxied
    store = RedisRuntimeStore(client(retries=0), namespace="fault-idem-1")
    await _warm(store)
    run_id, snapshot = RunId.new(), SessionDelta(session_json(3))
    args = ("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [])

    proxy.cut_reply_to_next(b"EVALSHA")
    with pytest.raises(WriteFailed, match="outcome is unknown"):
        await store.commit_session_boundary(*args, commit_id="c-42")
    assert proxy.cuts == 1
    committed = await store.load_boundary_receipt("rt", run_id, 0)
    assert committed is not None  # Redis did run it

    retried = await store.commit_session_boundary(*args, commit_id="c-42")
    assert retried == committed
    assert await store.load_boundary_receipt("rt", run_id, 1) is None  # no second sequence
    assert (await store.commit_session_boundary(*args, commit_id="c-43")).sequence == 1


# README, Running a fleet: "redis-py's own client retries ... without one it can commit twice".
async def test_client_retries_are_safe_with_a_commit_id_and_duplicate_without(proxied):
    proxy, client = proxied
    store = RedisRuntimeStore(client(retries=3), namespace="fault-idem-2")
    await _warm(store)
    run_id, snapshot = RunId.new(), SessionDelta(session_json(3))
    args = ("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [])

    proxy.cut_reply_to_next(b"EVALSHA")
    receipt = await store.commit_session_boundary(*args, commit_id="c-1")  # redis-py re-sends it
    assert proxy.cuts == 1 and receipt.sequence == 0
    assert await store.load_boundary_receipt("rt", run_id, 1) is None

    proxy.cut_reply_to_next(b"EVALSHA")
    duplicate = await store.commit_session_boundary(*args)  # no commit id: the re-send commits again
    assert proxy.cuts == 2
    assert duplicate.sequence == 2 and await store.load_boundary_receipt("rt", run_id, 1) is not None
