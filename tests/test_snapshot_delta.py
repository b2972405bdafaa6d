"""Snapshot deltas (``redis_store.snapshot_delta``): a growing session is
sent as the bytes after its shared prefix, and what is stored reads back
byte for byte as given, whatever came in between: another writer without a
lease, an ``atomic_apply``, a delete, a replayed commit id, a crash."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_store import RedisRuntimeStore, RunApplyBoundary, RunBoundaryReceipt, RunId, SessionDelta, codec, open_store
from redis_store.codec import SnapshotEnvelope
from redis_store.keys import KeyLayout
from redis_store.snapshot_delta import Base, Bases, plan, shared_prefix
from sessions import session_json

SID = "5b0c4f5e-8f7e-4c1e-9a55-0d4ab1a1c0de"


def _apply(stored: bytes, delta) -> bytes:
    """What the two SETRANGEs of lib.lua's snapshot_write leave."""
    value = bytearray(stored)
    value[0:len(delta.head)] = delta.head
    value[delta.offset:delta.offset + len(delta.tail)] = delta.tail
    return bytes(value)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=300), st.binary(max_size=200), st.binary(max_size=300), st.integers(0, 400))
def test_a_delta_applied_to_its_base_gives_exactly_the_new_bytes(prefix, old_tail, new_tail, cut):
    # Sizes around 256 bytes, where the envelope's header grows a byte.
    old = SnapshotEnvelope(prefix + old_tail)
    new = SnapshotEnvelope((prefix + new_tail)[: max(cut, len(prefix))] if cut < len(prefix) else prefix + new_tail)
    delta = plan(Base("ab", old), new)
    if delta is None:
        return
    assert len(new) >= len(old) and len(new.header) == len(old.header)
    assert _apply(old.encoded(), delta) == new.encoded()
    assert delta.head == new.header and new.encoded()[:delta.offset].startswith(new.header)
    assert new.encoded()[len(new.header):delta.offset] == old.encoded()[len(old.header):delta.offset]
    assert delta.spec == f"ab {len(old)} {delta.offset} - -"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=400), st.binary(max_size=100), st.binary(max_size=200), st.data())
def test_what_the_digest_cache_compared_is_not_compared_again(prefix, old_tail, new_tail, data):
    old = SnapshotEnvelope(prefix + old_tail)
    new_bytes = prefix + new_tail
    known = data.draw(st.integers(0, len(prefix)))  # a true hint: new_bytes[:known] == old.snapshot[:known]
    hinted = SnapshotEnvelope(new_bytes, (old.snapshot, known))
    assert plan(Base("ab", old), hinted) == plan(Base("ab", old), SnapshotEnvelope(new_bytes))
    # A hint about another object (an equal one too) is not taken.
    elsewhere = SnapshotEnvelope(new_bytes, (bytes(bytearray(old.snapshot)) + b"", len(new_bytes) + 50))
    assert plan(Base("ab", old), elsewhere) == plan(Base("ab", old), SnapshotEnvelope(new_bytes))


def test_a_growing_snapshot_is_sent_as_its_new_bytes_only():
    old = session_json(3, SID)
    new = session_json(4, SID)
    delta = plan(Base("ab", SnapshotEnvelope(old)), SnapshotEnvelope(new))
    assert delta is not None and _apply(SnapshotEnvelope(old).encoded(), delta) == SnapshotEnvelope(new).encoded()
    assert len(delta.tail) < len(new) - len(old) + 300  # the new turn and the session's tail
    assert plan(Base("ab", SnapshotEnvelope(new)), SnapshotEnvelope(old)) is None  # shorter: sent whole
    grown = SnapshotEnvelope(new + b" " * (65536 - len(new)))  # a header of 5 bytes, not 3: every byte shifts
    assert len(grown.header) != len(SnapshotEnvelope(new).header)
    assert plan(Base("ab", SnapshotEnvelope(new)), grown) is None


def test_the_shared_prefix_is_found_near_its_end():
    old = bytes(range(256)) * 4000
    new = old[:-100] + b"x" * 500
    assert shared_prefix(old, new) == len(old) - 100
    for at in (10, len(old) - 600, len(old) - 512, len(old) - 511, len(old) - 1):  # before, at and past the near end
        assert shared_prefix(old, old[:at] + bytes([old[at] ^ 1]) + old[at + 1:]) == at
    assert shared_prefix(old, old) == len(old)
    assert shared_prefix(b"abc", b"xbc", 1) == 3


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=40), st.binary(max_size=40), st.integers(0, 50))
def test_the_shared_prefix_is_the_longest_one(prefix, old_tail, new_tail, start):
    old, new = prefix + old_tail, prefix + new_tail
    start = min(start, len(old), len(new))
    expected = start
    while expected < min(len(old), len(new)) and old[expected] == new[expected]:
        expected += 1
    assert shared_prefix(old, new, start) == expected


def test_bases_are_bounded_by_bytes_least_recently_used_first():
    bases = Bases(max_bytes=100)  # each envelope of 40 bytes: 44 with its header
    bases.put("a", Base("1", SnapshotEnvelope(b"a" * 40)))
    bases.put("b", Base("2", SnapshotEnvelope(b"b" * 40)))
    assert bases.get("a") is not None  # a is now the most recent
    bases.put("c", Base("3", SnapshotEnvelope(b"c" * 40)))
    assert (bases.get("a") is not None, bases.get("b"), bases.get("c") is not None) == (True, None, True)
    assert bases.bytes == 88
    bases.put("huge", Base("4", SnapshotEnvelope(b"h" * 97)))  # larger than the bound: never kept
    assert bases.get("huge") is None and bases.bytes <= 100
    off = Bases(max_bytes=0)
    off.put("a", Base("1", SnapshotEnvelope(b"a")))
    assert off.get("a") is None


async def _commit(store, turns: int, run_id, commit_id=None, session_id=SID) -> bytes:
    snapshot = session_json(turns, session_id)
    await store.commit_session_boundary(
        "rt", SessionDelta(snapshot), run_id, RunApplyBoundary.RUN_CHECKPOINT, [], [], commit_id=commit_id)
    return snapshot


async def test_a_growing_session_is_sent_as_deltas_and_reads_back_exactly(redis_backend):
    store = redis_backend.open()
    run_id = RunId.new()
    for turns in range(1, 25):
        snapshot = await _commit(store, turns, run_id)
        assert await store.load_session_snapshot("rt") == snapshot
    assert store.snapshot_deltas["sent"] >= 20
    raw = redis_backend.client()
    stored = await raw.get(KeyLayout(redis_backend.namespace).runtime("rt").snapshot)
    assert stored.endswith(snapshot)


def _session_of(sizes: list[int]) -> bytes:
    """A session of one user message per size, each that many x's long."""
    messages = ",".join(f'{{"role":"user","content":"{"x" * n}"}}' for n in sizes)
    return (f'{{"version":1,"id":"{SID}","messages":[{messages}],'
            '"created_at":{"secs_since_epoch":1760000000,"nanos_since_epoch":0},'
            '"updated_at":{"secs_since_epoch":1760000000,"nanos_since_epoch":0},"metadata":{},'
            '"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_tokens":null,"cache_read_tokens":null}}').encode()


def _across_the_header_sizes() -> list[bytes]:
    """A session growing across msgpack's header sizes (256 B, 64 KiB), then
    shrinking and growing again."""
    sizes: list[int] = []
    out = []
    for target in (200, 250, 253, 256, 300, 400, 60_000, 65_000, 65_530, 65_536, 65_540, 70_000, 70_001):
        need = target - len(_session_of(sizes)) - len(',{"role":"user","content":""}')
        if need >= 0:
            sizes = [*sizes, need]
        out.append(_session_of(sizes))
    return [*out, _session_of(sizes[:-3]), _session_of(sizes[:-2]), _session_of([*sizes[:-2], 5])]


@pytest.mark.parametrize("digest_cache_bytes", [0, 300, 64 << 20])
@pytest.mark.parametrize("how", ["boundary", "snapshot", "apply", "mixed"])
async def test_what_is_stored_is_the_envelope_of_the_snapshot_given(redis_backend, digest_cache_bytes, how):
    """Whatever the digest cache holds, across header sizes, shrinking,
    replays and every script that writes the snapshot (raw bytes compared)."""
    store = redis_backend.open(digest_cache_bytes=digest_cache_bytes)
    raw, key = redis_backend.client(), KeyLayout(redis_backend.namespace).runtime("rt").snapshot
    run_id = RunId.new()
    for i, snapshot in enumerate(_across_the_header_sizes()):
        kind = how if how != "mixed" else ("boundary", "snapshot", "apply")[i % 3]
        receipt = RunBoundaryReceipt(RunId.new(), RunApplyBoundary.RUN_START, [], None, 0, 0)
        for _ in range(2):  # the second time a replay of the commit id: nothing written
            if kind == "boundary":
                await store.commit_session_boundary("rt", SessionDelta(snapshot), run_id, RunApplyBoundary.RUN_CHECKPOINT,
                                                    [], [], commit_id=f"c{i}")
            elif kind == "snapshot":
                await store.commit_session_snapshot("rt", SessionDelta(bytearray(snapshot)), commit_id=f"c{i}")
            else:
                await store.atomic_apply("rt", SessionDelta(snapshot), receipt, [], commit_id=f"c{i}")
        await store.atomic_apply("rt", None, RunBoundaryReceipt(RunId.new(), RunApplyBoundary.RUN_START, [], None, 0, 0), [])
        assert await raw.get(key) == codec.encode_snapshot(snapshot), (i, len(snapshot))
    if how == "boundary" and digest_cache_bytes:
        assert store.snapshot_deltas["sent"] >= 8  # the test is about deltas


async def test_the_delta_cache_keeps_only_the_last_snapshot(redis_backend):
    """What it counts is what it keeps: not also the snapshot before (the
    digest cache's hint is spent once the delta is planned)."""
    store = redis_backend.open()
    run_id = RunId.new()
    second = _session_of([100_000, 10])
    for snapshot in (_session_of([100_000]), second):
        await store.commit_session_boundary("rt", SessionDelta(snapshot), run_id, RunApplyBoundary.RUN_CHECKPOINT, [], [])
    base = store._bases.get("rt")
    assert base.envelope.snapshot is not None and base.envelope.shared is None
    assert store._bases.bytes == len(codec.encode_snapshot(second)) and store.snapshot_deltas["sent"] == 1


async def test_another_writer_in_between_makes_the_next_delta_whole(redis_backend):
    a, b = redis_backend.open(), RedisRuntimeStore(redis_backend.client(), namespace=redis_backend.namespace)
    run_id = RunId.new()
    await _commit(a, 10, run_id)
    theirs = await _commit(b, 11, run_id)  # b knows nothing of a's base
    assert await a.load_session_snapshot("rt") == theirs
    ours = await _commit(a, 12, run_id)  # a's delta over 10 turns meets b's 11: refused, sent whole
    assert await a.load_session_snapshot("rt") == ours
    assert a.snapshot_deltas["stale"] == 1
    assert (await _commit(a, 13, run_id)) == await a.load_session_snapshot("rt")
    assert a.snapshot_deltas["sent"] == 1  # and from there on, deltas again


async def test_a_same_length_snapshot_by_another_writer_is_not_mistaken_for_the_base(redis_backend):
    a, b = redis_backend.open(), RedisRuntimeStore(redis_backend.client(), namespace=redis_backend.namespace)
    run_id = RunId.new()
    mine = await _commit(a, 4, run_id)
    other_id = SID[:-1] + "f"  # the same length, other bytes
    theirs = await _commit(b, 4, run_id, session_id=other_id)
    assert len(theirs) == len(mine) and theirs != mine
    grown = await _commit(a, 5, run_id)
    assert await a.load_session_snapshot("rt") == grown
    assert a.snapshot_deltas["stale"] == 1


async def test_atomic_apply_and_delete_in_between(redis_backend):
    store = redis_backend.open()
    other = RedisRuntimeStore(redis_backend.client(), namespace=redis_backend.namespace)
    run_id = RunId.new()
    await _commit(store, 3, run_id)
    applied = session_json(4, SID)
    receipt = RunBoundaryReceipt(RunId.new(), RunApplyBoundary.RUN_START, [], None, 0, 0)
    await other.atomic_apply("rt", SessionDelta(applied), receipt, [])
    assert await store.load_session_snapshot("rt") == applied
    grown = await _commit(store, 5, run_id)
    assert await store.load_session_snapshot("rt") == grown
    assert await other.delete_runtime("rt")
    again = await _commit(store, 6, RunId.new())  # the base was deleted with the runtime
    assert await store.load_session_snapshot("rt") == again
    assert store.snapshot_deltas["stale"] == 2


async def test_a_replayed_commit_id_keeps_the_base(redis_backend):
    store = redis_backend.open()
    run_id = RunId.new()
    await _commit(store, 3, run_id, commit_id="c3")
    await _commit(store, 3, run_id, commit_id="c3")  # a retry: nothing written
    grown = await _commit(store, 4, run_id, commit_id="c4")
    assert await store.load_session_snapshot("rt") == grown
    assert store.snapshot_deltas == {"whole": 1, "sent": 1}


async def test_deltas_off(redis_backend):
    store = RedisRuntimeStore(redis_backend.client(), namespace=redis_backend.namespace, delta_cache_bytes=0)
    run_id = RunId.new()
    for turns in range(1, 5):
        assert await _commit(store, turns, run_id) == await store.load_session_snapshot("rt")
    assert store.snapshot_deltas == {"whole": 4}


@pytest.mark.real_server
async def test_a_crash_between_deltas_leaves_an_acknowledged_snapshot(redis_server):
    """AOF always, SIGKILL while deltas stream in: after the restart the
    snapshot is byte for byte the last acknowledged one (or the one in
    flight), never a mix."""
    from topologies import NodeProcess

    server = NodeProcess(redis_server.binary, "--appendonly", "yes", "--appendfsync", "always").start()
    try:
        written: list[bytes] = []
        async with open_store(f"{server.url}?namespace=crash&guard=off") as store:
            run_id = RunId.new()

            async def stream():
                for turns in range(1, 400):
                    snapshot = session_json(turns, SID)
                    await store.commit_session_boundary(
                        "rt", SessionDelta(snapshot), run_id, RunApplyBoundary.RUN_CHECKPOINT, [], [])
                    written.append(snapshot)

            task = asyncio.create_task(stream())
            while len(written) < 30:
                await asyncio.sleep(0.01)
            server.kill()
            with pytest.raises(Exception):
                await task
            deltas = store.snapshot_deltas["sent"]
        server.restart()
        async with open_store(f"{server.url}?namespace=crash&guard=off") as store:
            stored = await store.load_session_snapshot("rt")
        assert deltas >= 20
        in_flight = session_json(len(written) + 1, SID)
        assert stored in (written[-1], in_flight)
    finally:
        server.stop()


def test_every_script_that_writes_the_snapshot_goes_through_snapshot_write():
    """A delta lands only on the bytes it was computed from because every
    snapshot write also sets (or, deleting the runtime, drops) meta's
    snapshot_tag: no script writes the snapshot key any other way."""
    import re

    from redis_store.scripts import SCRIPT_NAMES, _script_dir

    writers = []
    for name in SCRIPT_NAMES:
        body = _script_dir().joinpath(f"{name}.lua").read_text(encoding="utf-8")
        declared = re.search(r"--\s*KEYS\[(\d+)\]\s+snapshot\b", body)
        if declared is None:
            continue
        index = declared.group(1)
        assert not re.search(rf"redis\.call\('\w+',\s*KEYS\[{index}\]", body), name
        if "snapshot_write(" in body:
            writers.append(name)
            meta = re.search(r"--\s*KEYS\[(\d+)\]\s+meta\b", body).group(1)
            # sets the new tag, or unlinks meta (tag and all) in the same script
            assert "'snapshot_tag', ARGV[" in body or re.search(rf"'UNLINK',[^)]*KEYS\[{meta}\]", body), name
    assert {"commit_boundary", "apply_receipt"} <= set(writers)


async def test_a_worker_of_the_release_before_deltas_is_seen_by_its_receipt(redis_backend):
    """Such a worker writes snapshots without a tag, but moves
    snapshot_receipt as every snapshot write does: the delta is refused."""
    from redis_store import codec

    store, raw = redis_backend.open(), redis_backend.client()
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    run_id = RunId.new()
    mine = await _commit(store, 4, run_id)
    theirs = session_json(4, SID[:-1] + "f")  # same length, other bytes
    assert len(theirs) == len(mine)
    await raw.set(keys.snapshot, codec.encode_snapshot(theirs))  # what the old commit script wrote
    await raw.hset(keys.meta, "snapshot_receipt", f"{RunId.new()}:0")
    grown = await _commit(store, 5, run_id)
    assert await store.load_session_snapshot("rt") == grown
    assert store.snapshot_deltas["stale"] == 1
