"""Property: random operation sequences give identical results on the Redis
backend (fakeredis and a real server) and on the in-memory backend."""

from __future__ import annotations

import asyncio
import uuid

import fakeredis
import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_store import (
    InMemoryRuntimeStore,
    InputId,
    InputLifecycleState,
    InputState,
    RedisRuntimeStore,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RunId,
    RuntimeState,
    RuntimeStoreError,
    SessionDelta,
    Timestamp,
)
from sessions import session_json

RUNTIMES = ["a", "b{x}", "c:d"]
RUN_IDS = [RunId(uuid.UUID(int=(0x0190_0000_0000_7000_8000_0000_0000_0000 + i))) for i in range(2)]
INPUT_IDS = [InputId(uuid.UUID(int=(0x0190_0000_0000_7000_8000_0000_0000_1000 + i))) for i in range(4)]
T0 = Timestamp.parse("2025-10-09T08:53:20.123456789Z")
SNAPSHOTS = [session_json(n, "019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b").decode() for n in range(3)]

rid = st.sampled_from(RUNTIMES)
KEYS = [None, "k0", "k1"]  # idempotency keys: few, so inputs meet, hand them over and conflict
input_state = st.builds(
    lambda i, s, n, k: _state(i, s, n, k),
    st.integers(0, len(INPUT_IDS) - 1),
    st.sampled_from(list(InputLifecycleState)),
    st.integers(0, 3),
    st.sampled_from(KEYS),
)
inputs = st.lists(input_state, max_size=3)
snapshot = st.one_of(st.sampled_from(SNAPSHOTS), st.just("not a session"))

operations = st.one_of(
    st.tuples(st.just("persist_input"), rid, input_state),
    st.tuples(st.just("persist_runtime"), rid, st.sampled_from(list(RuntimeState))),
    st.tuples(st.just("lifecycle"), rid, st.sampled_from(list(RuntimeState)), inputs),
    st.tuples(st.just("commit"), rid, st.integers(0, 1), snapshot, inputs),
    st.tuples(st.just("apply"), rid, st.integers(0, 1), st.integers(0, 4), st.none() | snapshot, inputs),
    st.tuples(st.just("load_inputs"), rid),
    st.tuples(st.just("load_input"), rid, st.integers(0, len(INPUT_IDS) - 1)),
    st.tuples(st.just("load_receipt"), rid, st.integers(0, 1), st.integers(0, 4)),
    st.tuples(st.just("load_snapshot"), rid),
    st.tuples(st.just("load_runtime"), rid),
    st.tuples(st.just("snapshot"), rid, snapshot),
    st.tuples(st.just("load_by_key"), rid, st.sampled_from(KEYS[1:])),
    st.tuples(st.just("load_by_ids"), rid, st.lists(st.integers(0, len(INPUT_IDS) - 1), max_size=3)),
    st.tuples(st.just("meta_and_index"), rid),
)


def _state(index: int, lifecycle: InputLifecycleState, attempts: int, key: str | None = None) -> InputState:
    state = InputState.new_accepted(INPUT_IDS[index])
    state.current_state, state.attempt_count, state.idempotency_key = lifecycle, attempts, key
    state.created_at = state.updated_at = T0
    return state


async def _run(store, op):
    name, runtime, *rest = op
    if name == "persist_input":
        return await store.persist_input_state(runtime, rest[0])
    if name == "persist_runtime":
        return await store.persist_runtime_state(runtime, rest[0])
    if name == "lifecycle":
        return await store.atomic_lifecycle_commit(runtime, rest[0], rest[1])
    if name == "commit":
        run, snap, states = rest
        return await store.commit_session_boundary(
            runtime, SessionDelta(snap.encode()), RUN_IDS[run], RunApplyBoundary.RUN_START,
            [s.input_id for s in states], states,
        )
    if name == "apply":
        run, seq, snap, states = rest
        receipt = RunBoundaryReceipt(RUN_IDS[run], RunApplyBoundary.IMMEDIATE, [], None, seq, seq)
        delta = None if snap is None else SessionDelta(snap.encode())
        return await store.atomic_apply(runtime, delta, receipt, states)
    if name == "load_inputs":
        return await store.load_input_states(runtime)
    if name == "load_input":
        return await store.load_input_state(runtime, INPUT_IDS[rest[0]])
    if name == "load_receipt":
        return await store.load_boundary_receipt(runtime, RUN_IDS[rest[0]], rest[1])
    if name == "load_snapshot":
        return await store.load_session_snapshot(runtime)
    if name == "snapshot":
        return await store.commit_session_snapshot(runtime, SessionDelta(rest[0].encode()))
    if name == "load_by_key":
        return await store.load_input_state_by_idempotency_key(runtime, rest[0])
    if name == "load_by_ids":
        return await store.load_input_states_by_ids(runtime, [INPUT_IDS[i] for i in rest[0]])
    if name == "meta_and_index":
        raw = await store.dump_runtime(runtime)
        return raw.meta, raw.index
    return await store.load_runtime_state(runtime)


async def _trace(store, ops) -> list:
    results = []
    for op in ops:
        try:
            results.append(("ok", await _run(store, op)))
        except (RuntimeStoreError, ValueError, TypeError) as exc:  # e.g. an input twice in a batch
            results.append(("error", type(exc).__name__))
    return results


def _compare(make_client, ops) -> None:
    async def both():
        memory = await _trace(InMemoryRuntimeStore(), ops)
        client = make_client()
        try:
            store = RedisRuntimeStore(client, namespace=f"prop{uuid.uuid4().hex[:10]}")
            return memory, await _trace(store, ops)
        finally:
            await client.aclose()

    memory, redis_results = asyncio.run(both())
    assert redis_results == memory


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.lists(operations, max_size=25))
def test_fakeredis_matches_memory(ops):
    server = fakeredis.FakeServer()
    _compare(lambda: fakeredis.FakeAsyncRedis(server=server), ops)


@pytest.fixture(scope="module")
def real_port(redis_server):
    return redis_server.port


@PROPERTY
@given(ops=st.lists(operations, max_size=25))
def test_real_redis_matches_memory(real_port, ops):
    _compare(lambda: redis.asyncio.Redis(host="127.0.0.1", port=real_port), ops)
