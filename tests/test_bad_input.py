"""Bad input, on every backend: adversarial runtime ids work and stay
isolated; wrong types, out-of-range values, non-Session snapshots, too-large
snapshots and batches, and an input twice in a batch each get a precise
error and leave the store exactly as it was (read back in full)."""

from __future__ import annotations

import asyncio
import uuid

import fakeredis
import msgspec
import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_store import (
    InMemoryRuntimeStore,
    InputId,
    InputState,
    RedisRuntimeStore,
    RunApplyBoundary,
    RunId,
    RuntimeState,
    SessionDelta,
    StoreOptions,
    WriteFailed,
)
from redis_store.contract import MAX_RUNTIME_ID_BYTES
from sessions import session_json
from redis_store.audit import runtime_ids as runtime_ids_of
from test_conformance import make_receipt, walk_runtimes

ADVERSARIAL_IDS = [
    "{", "}", "{}", "}{", "{a}", "a{b}c", "%7B", "%", "%%", ":", "::", "a:rt:{b}:meta",
    "*", "?", "[", "]", "[a-z]*", "\\", "\\*", "\x00", "a\x00b", "\n\r\t",
    "x" * MAX_RUNTIME_ID_BYTES, "é" * (MAX_RUNTIME_ID_BYTES // 2),
    "\uffff", "\U0001f99c\U00010000\U0010ffff", "\u202e\u200d", "名前", " ",
]


async def test_adversarial_runtime_ids_work_and_stay_isolated(store):
    for i, rid in enumerate(ADVERSARIAL_IDS):
        await store.persist_runtime_state(rid, list(RuntimeState)[i % 7])
        await store.commit_session_boundary(
            rid, SessionDelta(session_json(1)), RunId.new(), RunApplyBoundary.RUN_START, [], [InputState.new_accepted(InputId.new())]
        )
    for i, rid in enumerate(ADVERSARIAL_IDS):
        assert await store.load_runtime_state(rid) == list(RuntimeState)[i % 7]
        assert len(await store.load_input_states(rid)) == 1
    listed, _ = await walk_runtimes(store, 500)
    assert set(listed) == set(ADVERSARIAL_IDS)


async def test_too_long_runtime_id_is_refused(store):
    for rid in ("x" * (MAX_RUNTIME_ID_BYTES + 1), "é" * (MAX_RUNTIME_ID_BYTES // 2 + 1)):
        with pytest.raises(ValueError, match=f"at most {MAX_RUNTIME_ID_BYTES}"):
            await store.persist_runtime_state(rid, RuntimeState.IDLE)
    assert [rid async for rid in runtime_ids_of(store)] == []  # nothing was written


async def test_limits_are_refused_before_anything_is_sent(store):
    store.options = StoreOptions(max_snapshot_bytes=10_000, max_inputs_per_call=4)
    await store.persist_runtime_state("rt", RuntimeState.IDLE)
    before = await store.dump_runtime("rt")
    big = SessionDelta(session_json(40))
    assert len(big.session_snapshot) > 10_000
    many = [InputState.new_accepted(InputId.new()) for _ in range(5)]
    state = InputState.new_accepted(InputId.new())
    calls = [
        (r"session snapshot is \d+ bytes; this store takes at most 10000 \(max_snapshot_bytes\)",
         lambda: store.commit_session_boundary("rt", big, RunId.new(), RunApplyBoundary.RUN_START, [], [])),
        ("max_snapshot_bytes", lambda: store.atomic_apply("rt", big, make_receipt(RunId.new(), 0), [])),
        (r"holds 5 input states; this store takes at most 4 per call \(max_inputs_per_call\)",
         lambda: store.atomic_lifecycle_commit("rt", RuntimeState.RUNNING, many)),
        ("max_inputs_per_call", lambda: store.commit_session_boundary("rt", SessionDelta(session_json(1)), RunId.new(), RunApplyBoundary.RUN_START, [], many)),
        ("twice", lambda: store.atomic_apply("rt", None, make_receipt(RunId.new(), 0), [state, msgspec.structs.replace(state)])),
        ("not a meerkat Session", lambda: store.commit_session_boundary("rt", SessionDelta(b'{"id":1}'), RunId.new(), RunApplyBoundary.RUN_START, [], [state])),
    ]
    for message, call in calls:
        with pytest.raises((ValueError, WriteFailed), match=message):
            await call()
    assert await store.dump_runtime("rt") == before  # exactly as it was


# -- property: any two distinct runtime ids never share data ---------------------------------

runtime_ids = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30) | st.sampled_from(ADVERSARIAL_IDS)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _isolated(make_store, a: str, b: str) -> None:
    async def check():
        store = make_store()
        try:
            state = InputState.new_accepted(InputId.new())
            await store.persist_input_state(a, state)
            await store.commit_session_boundary(a, SessionDelta(session_json(1)), RunId.new(), RunApplyBoundary.RUN_START, [], [])
            assert await store.load_input_states(a) == [state]
            assert await store.load_input_states(b) == []
            assert await store.load_session_snapshot(b) is None
        finally:
            await store.aclose()

    asyncio.run(check())


@PROPERTY
@given(a=runtime_ids, b=runtime_ids)
def test_distinct_runtime_ids_never_share_data_in_memory_and_fakeredis(a, b):
    if a != b:
        _isolated(InMemoryRuntimeStore, a, b)
        server = fakeredis.FakeServer()
        _isolated(lambda: RedisRuntimeStore(fakeredis.FakeAsyncRedis(server=server), close_client=True), a, b)


@pytest.fixture(scope="module")
def real_port(redis_server):
    return redis_server.port


@PROPERTY
@given(a=runtime_ids, b=runtime_ids)
def test_distinct_runtime_ids_never_share_data_on_a_real_server(real_port, a, b):
    if a != b:
        namespace = f"prop{uuid.uuid4().hex[:8]}"
        _isolated(lambda: RedisRuntimeStore(redis.asyncio.Redis(port=real_port), namespace, close_client=True, guard="off"), a, b)
