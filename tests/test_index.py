"""The idempotency-key index on Redis (fakeredis, Redis, Valkey, Cluster):
runtimes stored by the release before it (key layout 1, no index) keep
working and get their index built atomically on first use; unreadable rows
and a damaged index are reported, never served. The contract itself is in
test_conformance.py (every backend, both APIs)."""

from __future__ import annotations


import msgspec
import pytest

from redis_store import IdempotencyKeyConflict, InputId, InputState, ReadFailed, RuntimeState
from redis_store.audit import examine
from redis_store.keys import KeyLayout


def keyed(key, input_id=None):
    return msgspec.structs.replace(InputState.new_accepted(input_id or InputId.new()), idempotency_key=key)


async def _as_stored_before_the_index(raw, keys):
    """What the previous release leaves: the same inputs, layout 1, no index
    (its scripts wrote neither)."""
    await raw.delete(keys.idempotency)
    await raw.hset(keys.meta, "layout", "1")


async def _old_runtime(redis_backend, *states):
    """(store, raw client, keys) of runtime "old" holding ``states`` as the
    previous release stored them."""
    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("old")
    await store.atomic_lifecycle_commit("old", RuntimeState.IDLE, list(states))
    await _as_stored_before_the_index(raw, keys)
    return store, raw, keys


async def test_a_runtime_from_before_the_index_is_indexed_on_first_lookup(redis_backend):
    a, b, c = keyed("hook-a"), keyed("hook-b"), keyed(None)
    store, _, _ = await _old_runtime(redis_backend, a, b, c)
    legacy = await store.dump_runtime("old")
    assert legacy.index == {} and examine("old", legacy).violations == []  # not indexed yet is not a violation
    assert examine("old", legacy).idempotency_keys is None
    assert await store.load_input_state_by_idempotency_key("old", "hook-b") == b
    upgraded = await store.dump_runtime("old")
    assert upgraded.meta["layout"] == "2"
    assert upgraded.index == {"key:hook-a": str(a.input_id), f"input:{a.input_id}": "hook-a",
                              "key:hook-b": str(b.input_id), f"input:{b.input_id}": "hook-b"}
    assert examine("old", upgraded).idempotency_keys == 2
    assert await store.ensure_index("old") is False  # built once


async def test_a_write_to_a_runtime_from_before_the_index_builds_it_first(redis_backend):
    a = keyed("hook-a")
    store, _, _ = await _old_runtime(redis_backend, a)
    before = await store.dump_runtime("old")
    b = keyed("hook-a")  # the key an unindexed input holds: still found
    with pytest.raises(IdempotencyKeyConflict, match=str(a.input_id)):
        await store.persist_input_state("old", b)
    after = await store.dump_runtime("old")
    assert after.inputs == before.inputs and after.meta["layout"] == "2"  # indexed, nothing else written
    await store.persist_runtime_state("old", RuntimeState.RUNNING)  # no inputs: no index needed
    await store.persist_input_state("old", keyed("hook-c"))
    assert examine("old", await store.dump_runtime("old")).violations == []


async def test_prune_builds_the_index_and_an_empty_old_runtime_moves_up_on_its_first_input(redis_backend):
    store, raw = redis_backend.open(), redis_backend.client()
    layout = KeyLayout(redis_backend.namespace)
    await store.persist_input_state("old", keyed("k"))
    await _as_stored_before_the_index(raw, layout.runtime("old"))
    await store.prune_runtime("old")  # redis-store prune upgrades every runtime it visits
    assert (await store.dump_runtime("old")).meta["layout"] == "2"
    await store.acquire_lease("leased", "w", ttl=5)  # the old release marked runtimes with layout 1
    await raw.hset(layout.runtime("leased").meta, "layout", "1")
    await store.persist_input_state("leased", keyed("k"))
    assert (await store.dump_runtime("leased")).meta["layout"] == "2"


async def test_old_inputs_sharing_a_key_are_reported_naming_both(redis_backend):
    store, raw = redis_backend.open(), redis_backend.client()
    layout = KeyLayout(redis_backend.namespace)
    a, b = keyed("dup"), keyed("dup")
    await store.persist_input_state("old", a)
    await store.persist_input_state("elsewhere", b)
    old = layout.runtime("old")
    await raw.hset(old.inputs, str(b.input_id), await raw.hget(layout.runtime("elsewhere").inputs, str(b.input_id)))
    await raw.rpush(old.input_order, str(b.input_id))
    await _as_stored_before_the_index(raw, old)
    with pytest.raises(IdempotencyKeyConflict) as caught:
        await store.load_input_state_by_idempotency_key("old", "dup")
    assert {caught.value.holder, caught.value.claimant} == {str(a.input_id), str(b.input_id)}
    assert (await store.dump_runtime("old")).meta["layout"] == "1"  # nothing written


async def test_index_build_refuses_inputs_that_changed_since_they_were_read(redis_backend):
    store, _, _ = await _old_runtime(redis_backend, keyed("k"))
    (input_id, value), = await store._load_input_states("old")
    from redis_store.contract import EncodedInput

    await store.persist_input_state("elsewhere", keyed("x"))
    assert await store._build_index("old", [EncodedInput(input_id, value + b"x", "k")]) is None  # an older worker wrote
    assert await store._build_index("old", []) is None
    assert (await store.dump_runtime("old")).index == {}
    assert await store._build_index("old", [EncodedInput(input_id, value, "k")]) is True


async def test_unreadable_rows_and_a_damaged_index_are_read_failed(redis_backend):
    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    a, b = keyed("hook-a"), keyed("hook-b")
    await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, [a, b])
    await raw.hset(keys.inputs, str(b.input_id), msgspec.msgpack.encode([1, {"input_id": "nope"}, None]))
    with pytest.raises(ReadFailed, match=f"input state of {b.input_id} is unreadable"):
        await store.load_input_states_by_ids("rt", [a.input_id, b.input_id])
    assert await store.load_input_states_by_ids("rt", [a.input_id]) == [a]
    with pytest.raises(ReadFailed, match=str(b.input_id)):
        await store.load_input_state_by_idempotency_key("rt", "hook-b")
    await raw.hset(keys.idempotency, "key:hook-a", str(b.input_id))  # a damaged index is caught, not served
    await raw.hset(keys.inputs, str(b.input_id), await raw.hget(keys.inputs, str(a.input_id)))
    with pytest.raises(ReadFailed, match="but the state stored there is input"):
        await store.load_input_state_by_idempotency_key("rt", "hook-a")
    found = {v.invariant for v in examine("rt", await store.dump_runtime("rt")).violations}
    assert "idempotency-index" in found
    await raw.hset(keys.idempotency, "key:ghost", str(InputId.new()))
    with pytest.raises(ReadFailed, match="no state"):
        await store.load_input_state_by_idempotency_key("rt", "ghost")


async def test_an_unreadable_old_row_stops_the_index_build(redis_backend):
    a = keyed("k")
    store, raw, keys = await _old_runtime(redis_backend, a)
    await raw.hset(keys.inputs, str(a.input_id), b"\xc1")
    with pytest.raises(ReadFailed, match=str(a.input_id)):
        await store.load_input_state_by_idempotency_key("old", "k")
    assert (await store.dump_runtime("old")).meta["layout"] == "1"
