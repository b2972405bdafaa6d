"""Redis behaviour of RedisRuntimeStore, proven on fakeredis and on real
Redis and Valkey servers: key layout, cluster slots, NOSCRIPT recovery,
error mapping, and values written by something else."""

from __future__ import annotations

import re
import time
from pathlib import Path

import msgspec
import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from redis_store import (
    InputId,
    InputState,
    InternalError,
    ReadFailed,
    RedisRuntimeStore,
    RunApplyBoundary,
    RunId,
    RuntimeState,
    SessionDelta,
    WriteFailed,
)
from redis_store.keys import KeyLayout
from redis_store.scripts import SCRIPT_NAMES, sha1, source
from servers import ServerProcess, free_port, redis_binary
from sessions import session_json
from test_conformance import TRICKY_IDS, commit, keyed, make_receipt


async def _all_writes(store, rid):
    """Every script, fenced and with commit ids where they take them."""
    run_id = RunId.new()
    state = msgspec.structs.replace(InputState.new_accepted(InputId.new()), idempotency_key="webhook-1")
    lease = await store.acquire_lease(rid, "worker-1", 30)
    await store.commit_session_boundary(
        rid, SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], [state], lease=lease, commit_id="c-1"
    )
    await store.renew_lease(lease)
    assert await store.current_lease(rid) is not None
    await store.dump_runtime(rid)
    await store.atomic_apply(rid, SessionDelta(session_json(1)), make_receipt(run_id, 5), [state])
    await store.commit_session_snapshot(rid, SessionDelta(session_json(2)), lease=lease, commit_id="s-1")
    assert await store.load_input_state_by_idempotency_key(rid, "webhook-1") is not None
    assert await store.load_input_states_by_ids(rid, [state.input_id]) != [None]
    await store.atomic_lifecycle_commit(rid, RuntimeState.RUNNING, [state])
    await store.persist_input_state(rid, state)
    await store.persist_runtime_state(rid, RuntimeState.IDLE)
    await store.load_input_states(rid)
    await store.release_lease(lease)
    await store.revoke_lease(rid)
    return run_id, state


async def test_keys_are_exactly_the_documented_layout(redis_backend):
    store, raw = redis_backend.open(), redis_backend.client()
    await _all_writes(store, "rt-1")
    keys = KeyLayout(redis_backend.namespace).runtime("rt-1")
    found = {k.decode() async for k in raw.scan_iter(match=f"{redis_backend.namespace}:*")}
    assert found | {keys.lease} == set(keys)  # the lease was released at the end
    assert keys.inputs == f"{redis_backend.namespace}:rt:{{rt-1}}:inputs"


def test_key_names_are_a_stable_format():
    # Stored data outlives releases: every key name is pinned here literally
    # (README, "How it is stored in Redis"), not derived from KeyLayout.
    from redis_store.keys import RuntimeKeys, check_namespace

    base = "prod:eu:rt:{a%7Bb%7D%25c}:"
    assert KeyLayout("prod:eu").runtime("a{b}%c") == RuntimeKeys(
        state=base + "state", snapshot=base + "snapshot", inputs=base + "inputs", input_order=base + "input_order",
        receipts=base + "receipts", run_seqs=base + "run_seqs", meta=base + "meta", lease=base + "lease",
        commits=base + "commits", commit_log=base + "commit_log", fence=base + "fence",
        idempotency=base + "idempotency",
    )
    assert KeyLayout().runtime("x").meta == "meerkat:rt:{x}:meta"
    assert KeyLayout("p*").meta_pattern() == "p\\*:rt:{*}:meta"
    assert KeyLayout("prod:eu").runtime_of_meta(base + "meta") == "a{b}%c"
    with pytest.raises(TypeError, match="namespace must be a str, got int"):
        check_namespace(1)
    with pytest.raises(ValueError) as caught:
        check_namespace("")
    assert str(caught.value) == "namespace must not be empty"
    for bad in ("a{b", "a}b"):
        with pytest.raises(ValueError) as caught:
            check_namespace(bad)
        assert str(caught.value) == (
            f"namespace {bad!r} must not contain '{{' or '}}': braces would change the Redis Cluster hash tag of every key")


async def test_every_script_call_stays_in_one_cluster_slot(redis_backend):
    store, raw = redis_backend.open(), redis_backend.client()
    calls = []
    original = raw.evalsha

    async def recording_evalsha(sha, numkeys, *keys_and_args):
        calls.append(keys_and_args[:numkeys])
        return await original(sha, numkeys, *keys_and_args)

    raw.evalsha = recording_evalsha
    store = RedisRuntimeStore(raw, namespace=redis_backend.namespace)
    if store._route is not None:  # on Cluster, writes go to the slot's node directly
        route_run = store._route.run

        async def recording_run(script, keys, args, wait):
            calls.append(keys)
            return await route_run(script, keys, args, wait)

        store._route.run = recording_run
    slots = set()
    for rid in TRICKY_IDS:
        calls.clear()
        await _all_writes(store, rid)
        assert len(calls) >= 12  # one per script call (+ retries after NOSCRIPT)
        for keys in calls:
            key_slots = {key_slot(k.encode() if isinstance(k, str) else k) for k in keys}
            assert len(key_slots) == 1, (rid, keys)
            slots |= key_slots
    assert len(slots) > len(TRICKY_IDS) // 2  # runtimes spread over slots


async def test_noscript_after_script_flush_is_reloaded(redis_backend):
    store, raw = redis_backend.open(), redis_backend.client()
    run_id = RunId.new()
    assert (await commit(store, "rt", run_id)).sequence == 0
    await raw.script_flush()
    assert await raw.script_exists(sha1("commit_boundary")) == [False]
    assert (await commit(store, "rt", run_id)).sequence == 1
    assert await store.load_input_states("rt") == []
    if redis_backend.name == "cluster":  # reloaded where it ran: on the node that owns the runtime's slot
        node = raw.get_node_from_key(KeyLayout(redis_backend.namespace).runtime("rt").receipts)
        raw = redis.asyncio.Redis(host=node.host, port=node.port)
    assert await raw.script_exists(sha1("commit_boundary"), sha1("load_inputs")) == [True, True]
    if redis_backend.name == "cluster":
        await raw.aclose()


def test_scripts_are_plain_lua_and_touch_only_their_keys():
    for name in SCRIPT_NAMES:
        text = source(name)
        assert not text.startswith("#!")
        code = "\n".join(line.split("--")[0] for line in text.splitlines())
        for banned in ("cmsgpack", "cjson", "bit.", "struct."):
            assert banned not in code, (name, banned)
        # Every key a command names comes from KEYS (or a lib parameter
        # holding a KEYS entry): no key names are built inside Lua.
        for key in re.findall(r"redis\.call\('\w+',\s*([^,)]+)", code):
            assert key.startswith("KEYS[") or key in ("inputs_key", "order_key", "seqs_key", "meta_key", "lease_key", "commits_key", "log_key", "fence_key", "snapshot_key", "index_key", "unpack(KEYS"), (name, key)


async def test_foreign_value_of_wrong_type_fails_before_any_write(redis_backend):
    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    await raw.set(keys.input_order, b"not a list")
    state = InputState.new_accepted(InputId.new())
    with pytest.raises(WriteFailed, match="WRONGTYPE"):
        await commit(store, "rt", RunId.new(), [state], turns=1)
    assert await raw.exists(keys.snapshot, keys.receipts, keys.run_seqs, keys.inputs) == 0


#: A value of another type for each key the commit scripts touch, and what
#: the commit then does. The scripts TYPE-check only the keys a wrong type
#: could otherwise make fail half-way (lib.lua commit_checks); every other
#: key is read with a typed command, or written first, before anything else.
_FOREIGN = ["receipts", "run_seqs", "inputs", "input_order", "meta", "lease", "commits", "commit_log", "fence",
            "idempotency"]


@pytest.mark.parametrize("key", _FOREIGN)
@pytest.mark.parametrize("script", ["commit_session_boundary", "atomic_apply"])
async def test_a_foreign_type_on_any_key_fails_the_commit_before_any_write(redis_backend, key, script):
    from redis_store import Lease

    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    foreign = getattr(keys, key)
    if key == "fence":
        await raw.hset(foreign, "f", "v")  # a hash where a string belongs
    else:
        await raw.set(foreign, b"not a " + key.encode())
    before = {k: await raw.dump(k) for k in keys}
    state = keyed("hook")  # with an idempotency key: the index is read and written too
    lease = Lease("rt", "w", 1, 30_000) if key in ("lease", "fence") else None
    with pytest.raises(WriteFailed, match="WRONGTYPE") as caught:
        if script == "commit_session_boundary":
            await store.commit_session_boundary("rt", SessionDelta(session_json(2)), RunId.new(),
                                                RunApplyBoundary.RUN_START, [], [state], lease=lease, commit_id="c")
        else:
            await store.atomic_apply("rt", SessionDelta(session_json(2)), make_receipt(RunId.new(), 0), [state],
                                     lease=lease, commit_id="c")
    assert "nothing was written" in str(caught.value)
    assert {k: await raw.dump(k) for k in keys} == before  # nothing written, nothing touched


@pytest.mark.parametrize(("script", "key"), [
    ("lifecycle", "inputs"), ("lifecycle", "input_order"), ("lifecycle", "meta"), ("lifecycle", "idempotency"),
    ("snapshot", "meta"), ("snapshot_delta", "meta"),
])
async def test_a_foreign_type_fails_the_other_commit_scripts_before_any_write(redis_backend, script, key):
    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    sid = "019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b"
    if script == "snapshot_delta":  # this store's last snapshot is the delta's base
        await store.commit_session_snapshot("rt", SessionDelta(session_json(2, sid)))
        await raw.delete(getattr(keys, key))
        await raw.set(getattr(keys, key), b"x")
    else:
        await raw.set(getattr(keys, key), b"not a " + key.encode())
    before = {k: await raw.dump(k) for k in keys}
    with pytest.raises(WriteFailed, match="WRONGTYPE") as caught:
        if script == "lifecycle":
            await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, [keyed("hook")])
        else:
            await store.commit_session_snapshot("rt", SessionDelta(session_json(3, sid)))
    assert "nothing was written" in str(caught.value)
    assert {k: await raw.dump(k) for k in keys} == before


async def test_a_foreign_type_where_a_delta_would_go_fails_then_the_whole_snapshot_replaces_it(redis_backend):
    """The delta's base check (STRLEN) meets the foreign value: the commit
    fails with nothing written; the next one is sent whole, and SET replaces
    the foreign value."""
    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    sid = "019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b"
    await store.commit_session_snapshot("rt", SessionDelta(session_json(2, sid)))
    await raw.delete(keys.snapshot)
    await raw.hset(keys.snapshot, "f", "v")
    before = {k: await raw.dump(k) for k in keys}
    snapshot = session_json(3, sid)
    with pytest.raises(WriteFailed, match="WRONGTYPE.*nothing was written"):
        await store.commit_session_snapshot("rt", SessionDelta(snapshot))
    assert {k: await raw.dump(k) for k in keys} == before
    await store.commit_session_snapshot("rt", SessionDelta(snapshot))
    assert await store.load_session_snapshot("rt") == snapshot
    assert store.snapshot_deltas["whole"] == 2  # the first and the one after the failure


async def test_a_receipt_minted_by_someone_else_is_restamped(redis_backend):
    """Python stamps the sequence it expects; an atomic_apply or another
    store minting in between makes the script restamp receipt and inputs, and
    a commit-id replay still returns the first receipt."""
    store, other = redis_backend.open(), redis_backend.open()
    run, state = RunId.new(), InputState.new_accepted(InputId.new())
    await commit(store, "rt", run, [state])
    await store.atomic_apply("rt", None, make_receipt(run, 1), [])
    second = await commit(store, "rt", run, [state])
    assert second.sequence == 2 and await store.load_boundary_receipt("rt", run, 2) == second
    assert (await store.load_input_state("rt", state.input_id)).last_boundary_sequence == 2
    snapshot = SessionDelta(session_json(1))
    first = await store.commit_session_boundary("rt", snapshot, run, RunApplyBoundary.RUN_CHECKPOINT, [], [state],
                                                commit_id="c1")
    await commit(other, "rt", run, [state])
    again = await store.commit_session_boundary("rt", snapshot, run, RunApplyBoundary.RUN_CHECKPOINT, [], [state],
                                                commit_id="c1")
    assert again == first and first.sequence == 3
    fifth = await commit(store, "rt", run, [state])
    assert fifth.sequence == 5 and await store.load_boundary_receipt("rt", run, 5) == fifth
    assert (await store.load_input_state("rt", state.input_id)).last_boundary_sequence == 5


async def test_lease_scripts_refuse_foreign_key_types(redis_backend):
    # A meta key of the wrong type would fail the scripts' last command,
    # after the epoch moved on: the check up front keeps them all-or-nothing.
    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    await raw.set(keys.meta, b"not a hash")
    with pytest.raises(WriteFailed, match="WRONGTYPE"):
        await store.acquire_lease("rt", "w", 30)
    with pytest.raises(WriteFailed, match="WRONGTYPE"):
        await store.revoke_lease("rt")
    assert await raw.exists(keys.lease, keys.fence) == 0


async def test_corrupt_values_are_read_failed(redis_backend):
    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    await raw.set(keys.state, b"\xc1garbage")
    with pytest.raises(ReadFailed, match="runtime state is unreadable"):
        await store.load_runtime_state("rt")
    await raw.set(keys.snapshot, msgspec.msgpack.encode([99, b"{}"]))
    with pytest.raises(ReadFailed, match="schema version 99.*upgrade redis-store"):
        await store.load_session_snapshot("rt")
    state = InputState.new_accepted(InputId.new())
    await store.persist_input_state("rt", state)
    await raw.hset(keys.inputs, str(state.input_id), msgspec.msgpack.encode([1, {"input_id": "nope"}, None]))
    with pytest.raises(ReadFailed, match="input state is unreadable"):
        await store.load_input_states("rt")
    await raw.hdel(keys.inputs, str(state.input_id))
    with pytest.raises(ReadFailed, match="input_order"):
        await store.load_input_states("rt")


@pytest.mark.parametrize("counter", [b"x", b"-5", b"1.5", b"9007199254740992", b""])
async def test_corrupt_sequence_counter_refuses_every_write(redis_backend, counter):
    store, raw = redis_backend.open(), redis_backend.client()
    run_id = RunId.new()
    await raw.hset(KeyLayout(redis_backend.namespace).runtime("rt").run_seqs, str(run_id), counter)
    with pytest.raises(WriteFailed, match="not a sequence"):
        await commit(store, "rt", run_id, turns=1)
    with pytest.raises(WriteFailed, match="not a sequence"):
        await store.atomic_apply("rt", SessionDelta(session_json(1)), make_receipt(run_id, 3), [])
    assert await store.load_session_snapshot("rt") is None
    assert await store.load_boundary_receipt("rt", run_id, 3) is None


async def test_script_refuses_malformed_arguments(redis_backend):
    store = redis_backend.open()
    k = store._keys.runtime("rt")
    keys = [k.state, k.inputs, k.input_order, k.meta, k.lease, k.fence, k.idempotency]
    for args, why in (
        (["", "", "only-an-id", b"v"], "triples"),  # a bug in the caller, not user input
        (["", "", "an-id", b"v", "key-without-its-marker"], "claim"),
    ):
        with pytest.raises(InternalError, match=why):
            await store._write("lifecycle_commit", store._scripts.lifecycle_commit, keys, args)
    assert await store.load_input_states("rt") == []


async def test_unreachable_server_is_write_failed_and_read_failed():
    client = redis.asyncio.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    store = RedisRuntimeStore(client)
    with pytest.raises(WriteFailed, match="outcome is unknown") as caught:
        await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    with pytest.raises(ReadFailed) as caught:
        await store.load_runtime_state("rt")
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    await client.aclose()


def test_decoding_client_is_refused():
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisRuntimeStore(redis.asyncio.Redis(decode_responses=True))


def test_namespace_rules():
    for bad in ["", "a{b", "}"]:
        with pytest.raises(ValueError):
            KeyLayout(bad)
    with pytest.raises(TypeError):
        KeyLayout(b"ns")


async def test_namespaces_are_isolated(redis_backend):
    a = redis_backend.open()
    b = RedisRuntimeStore(redis_backend.client(), namespace=redis_backend.namespace + "-other")
    await a.persist_runtime_state("rt", RuntimeState.IDLE)
    assert await b.load_runtime_state("rt") is None
    await commit(b, "rt", RunId.new())
    assert await a.load_session_snapshot("rt") is None


async def test_boundary_in_receipt_survives_real_server(redis_backend):
    store = redis_backend.open()
    run_id = RunId.new()
    for boundary in RunApplyBoundary:
        receipt = await store.commit_session_boundary("rt", SessionDelta(session_json(2)), run_id, boundary, [], [])
        assert (await store.load_boundary_receipt("rt", run_id, receipt.sequence)).boundary == boundary


@pytest.fixture(scope="module")
def cluster_node(request, tmp_path_factory):
    """A real redis-server in cluster mode owning every slot: it refuses any
    script whose KEYS span more than one slot (CROSSSLOT)."""
    request.getfixturevalue("redis_server")  # skips, or fails in CI, without a binary
    conf = tmp_path_factory.mktemp("cluster") / "nodes.conf"
    server = ServerProcess(redis_binary(), "--cluster-enabled", "yes", "--cluster-config-file", str(conf)).start()
    admin = redis.Redis(port=server.port)
    admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    for _ in range(100):
        if admin.cluster("info")["cluster_state"] == "ok":
            break
        time.sleep(0.05)
    admin.close()
    yield server
    server.stop()


async def test_real_cluster_node_accepts_every_script_call(cluster_node):
    client = redis.asyncio.Redis(port=cluster_node.port)
    with pytest.raises(redis.exceptions.ResponseError, match="same slot"):
        await client.eval("return 1", 2, "{a}1", "{b}2")  # the node does check
    store = RedisRuntimeStore(client, namespace="cluster-test")
    for rid in TRICKY_IDS:
        run_id, state = await _all_writes(store, rid)
        assert await store.load_input_state(rid, state.input_id) is not None
    await client.aclose()


async def test_older_schema_versions_are_upgraded_on_read(redis_backend, monkeypatch):
    from redis_store import codec

    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    # Pretend version 2 renamed states to upper case: a v1 value must read as v2.
    monkeypatch.setitem(codec.UPGRADES, "runtime_state", [lambda env: [2, env[1].upper()]])
    monkeypatch.setattr(codec, "decode_runtime_state", _upper_state_decoder(codec))
    await raw.set(keys.state, msgspec.msgpack.encode([1, "idle"]))
    assert await store.load_runtime_state("rt") == RuntimeState.IDLE
    await raw.set(keys.state, msgspec.msgpack.encode([3, "IDLE"]))
    with pytest.raises(ReadFailed, match="schema version 3"):
        await store.load_runtime_state("rt")


def _upper_state_decoder(codec):
    def decode(value):
        version, text = codec._open("runtime_state", value, 2)
        assert version == 2
        return RuntimeState(text.lower())

    return decode


def test_every_script_file_is_registered_and_every_registered_script_is_used():
    """Scripts come from their files (no hand-kept list); the backend calls
    each by the name of its file, and calls no script that has no file."""
    lua = Path(__file__).resolve().parent.parent / "lua"
    assert set(SCRIPT_NAMES) == {path.stem for path in lua.glob("*.lua")} - {"lib"}
    backend = (Path(__file__).resolve().parent.parent / "redis_store" / "backend_redis.py").read_text()
    called = set(re.findall(r"self\._scripts\.(\w+)", backend)) - {"loaded", "preload"}
    assert called == set(SCRIPT_NAMES)


async def test_two_stores_taking_turns_on_one_run_store_each_commit_s_own_sequence(redis_backend):
    # Each store stamps the envelopes with the sequence it expects next
    # (backend_redis._LastSequences); another store's commits make it miss,
    # and the script restamps them: every receipt and input reads back with
    # the sequence actually minted.
    first, second = redis_backend.open(), redis_backend.open()
    run_id, state = RunId.new(), InputState.new_accepted(InputId.new())
    minted = []
    for store in (first, first, second, first, second, second, first):
        receipt = await commit(store, "rt", run_id, [state])
        minted.append(receipt.sequence)
        assert await first.load_boundary_receipt("rt", run_id, receipt.sequence) == receipt
        assert (await second.load_input_state("rt", state.input_id)).last_boundary_sequence == receipt.sequence
    assert minted == list(range(7))
