"""Retention, on every backend: prune_runtime forgets old commit ids and the
receipts of finished runs in bounded steps, outside the commit path, and
keeps whatever is still pointed at."""

from __future__ import annotations

import asyncio
import time

import pytest

from redis_store import InMemoryRuntimeStore, InputId, InputState, ReadFailed, RunApplyBoundary, RunId, SessionDelta
from redis_store.audit import examine
from redis_store.contract import PruneReport, StoreOptions
from redis_store.keys import KeyLayout
from sessions import session_json
from test_conformance import make_receipt

BOTH_APIS = True  # also through redis_store.sync (conftest.SYNC_BACKENDS)


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


# README, Retention: "It forgets commit ids older than commit_id_ttl ... in steps of at most batch".
async def test_old_commit_ids_are_forgotten_in_batches(backend):
    # Ordering, not sleeps: c7 is committed half a ttl after c6, and the
    # prune runs just after c6's ttl ran out, half a ttl before c7's does.
    # Each step has ~0.7 s of slack for a stalled process.
    ttl = 1.5
    store = backend.open(commit_id_ttl=ttl)
    run_id, snapshot = RunId.new(), SessionDelta(session_json(1))
    for n in range(7):
        await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [], commit_id=f"c{n}")
    last_old = time.monotonic()  # c0..c6 were recorded before this
    report = await store.prune_runtime("rt")
    assert report.commit_ids_forgotten == 0  # all still within the retention
    await _sleep_until(last_old + ttl / 2)
    # The runtime keeps committing, so its commit-id keys never expire as a whole:
    await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [], commit_id="c7")
    await _sleep_until(last_old + ttl + 0.05)  # c0..c6 are now past the retention, c7 is not
    report = await store.prune_runtime("rt", batch=3)  # three script calls of at most 3
    assert (report.commit_ids_forgotten, report.receipts_removed) == (7, 0)
    assert await store.prune_runtime("rt") == type(report)(0, 0)
    again = await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [], commit_id="c7")
    assert again.sequence == 7  # the recent id is still remembered


async def test_receipts_of_finished_runs_go_and_what_is_pointed_at_stays(store):
    runs = [RunId.new() for _ in range(5)]  # UUIDv7: in creation order
    pinned = InputState.new_accepted(InputId.new())
    for i, run_id in enumerate(runs):
        updates = [pinned] if i == 1 else []  # run 1 stays: an input points at it
        for _ in range(3):
            await store.commit_session_boundary("rt", SessionDelta(session_json(i + 1)), run_id, RunApplyBoundary.RUN_CHECKPOINT, [], updates)
    report = await store.prune_runtime("rt", keep_runs=2, batch=2)
    assert report.receipts_removed == 6  # runs 0 and 2, three receipts each
    for i, run_id in enumerate(runs):
        present = [await store.load_boundary_receipt("rt", run_id, seq) is not None for seq in range(3)]
        assert present == [i not in (0, 2)] * 3
    raw = await store.dump_runtime("rt")
    assert examine("rt", raw).violations == []  # counters stay; stamps and the snapshot's receipt exist
    receipt = await store.commit_session_boundary("rt", SessionDelta(session_json(1)), runs[0], RunApplyBoundary.RUN_CHECKPOINT, [], [])
    assert receipt.sequence == 3  # a pruned run never reuses a sequence


async def test_the_snapshot_receipt_is_never_dropped(store):
    run_id = RunId.new()
    await store.commit_session_boundary("rt", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], [])
    assert (await store.prune_runtime("rt", keep_runs=0)).receipts_removed == 0
    assert examine("rt", await store.dump_runtime("rt")).violations == []


async def test_prune_arguments_are_checked(store):
    for kwargs in ({"keep_runs": -1}, {"batch": 0}, {"batch": 10_001}, {"batch": True}, {"batch": 2.0}, {"keep_runs": True}):
        with pytest.raises(ValueError, match="keep_runs must be a non-negative int|batch must be an int in \\[1, 10000\\]"):
            await store.prune_runtime("rt", **kwargs)
    run_id = RunId.new()
    for _ in range(3):
        await store.commit_session_boundary("rt", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], [])
    other = RunId.new()
    await store.commit_session_boundary("rt", SessionDelta(session_json(1)), other, RunApplyBoundary.RUN_START, [], [])
    assert (await store.prune_runtime("rt", keep_runs=2, batch=10_000)).receipts_removed == 0  # fewer runs than kept
    assert (await store.prune_runtime("rt", keep_runs=1, batch=1)).receipts_removed == 3  # in batches of one


async def test_the_receipt_atomic_apply_stored_the_snapshot_with_stays(store):
    run_id, other = RunId.new(), RunId.new()
    await store.commit_session_boundary("rt", SessionDelta(session_json(1)), other, RunApplyBoundary.RUN_START, [], [])
    from test_conformance import make_receipt

    await store.atomic_apply("rt", SessionDelta(session_json(2)), make_receipt(run_id, 0), [])
    report = await store.prune_runtime("rt", keep_runs=0)
    assert report.receipts_removed == 1  # the commit's; the applied one stays with its snapshot
    assert await store.load_boundary_receipt("rt", run_id, 0) is not None


def test_commit_id_ttl_is_bounded():
    for bad in (float("inf"), float("nan"), 1e15, 0, -1):
        with pytest.raises(ValueError):
            StoreOptions(commit_id_ttl=bad)
    assert StoreOptions(commit_id_ttl=3650 * 24 * 3600).commit_id_ttl_ms == 315_360_000_000


# README, Retention: "a pruned receipt's key no longer conflicts in atomic_apply".
async def test_a_pruned_receipt_no_longer_conflicts(store):
    old, new = RunId.new(), RunId.new()
    await store.atomic_apply("rt", None, make_receipt(old, 0), [])
    await store.commit_session_boundary("rt", SessionDelta(session_json(1)), new, RunApplyBoundary.RUN_START, [], [])
    assert (await store.prune_runtime("rt", keep_runs=1)).receipts_removed == 1
    assert await store.load_boundary_receipt("rt", old, 0) is None
    again = make_receipt(old, 0, message_count=3)
    await store.atomic_apply("rt", None, again, [])  # no ReceiptConflict: the key is free again
    assert await store.load_boundary_receipt("rt", old, 0) == again


# README, Retention: "An input row that cannot be read stops pruning, since it might point at a run".
async def test_an_unreadable_input_row_stops_pruning(redis_backend):
    store = redis_backend.open()
    pinned_run, other_run = RunId.new(), RunId.new()
    pinned = InputState.new_accepted(InputId.new())
    await store.commit_session_boundary("rt", SessionDelta(session_json(1)), pinned_run, RunApplyBoundary.RUN_START, [], [pinned])
    for turn in range(2):
        await store.commit_session_boundary("rt", SessionDelta(session_json(2 + turn)), other_run, RunApplyBoundary.RUN_START, [], [])
    # The row that points at pinned_run becomes unreadable (a schema from the future).
    keys = KeyLayout(redis_backend.namespace).runtime("rt")
    await redis_backend.client().hset(keys.inputs, str(pinned.input_id), b"\x92\x09\x80")
    before = await store.dump_runtime("rt")
    with pytest.raises(ReadFailed, match=str(pinned.input_id)):
        await store.prune_runtime("rt", keep_runs=0)
    assert await store.dump_runtime("rt") == before  # pinned_run's receipt is still there


# README, Retention: "A runtime's commit-id keys also expire as a whole commit_id_ttl after its last commit".
async def test_commit_ids_expire_as_a_whole_after_the_last_commit(backend):
    ttl = 1.0
    store = backend.open(commit_id_ttl=ttl)
    run_id, snapshot = RunId.new(), SessionDelta(session_json(1))
    for n in range(3):
        await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [], commit_id=f"c{n}")
    last = time.monotonic()
    if backend.is_redis:  # both keys carry the ttl, set by the last commit
        keys = KeyLayout(backend.namespace).runtime("rt")
        client = backend.client()
        for key in (keys.commits, keys.commit_log):
            assert 0 < await client.pttl(key) <= ttl * 1000
    await _sleep_until(last + ttl + 0.05)
    if backend.is_redis:
        assert await client.exists(keys.commits, keys.commit_log) == 0
    # Gone with their keys: pruning finds nothing left to forget.
    assert (await store.prune_runtime("rt")).commit_ids_forgotten == 0
    again = await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [], commit_id="c0")
    assert again.sequence == 3


async def test_pruning_a_runtime_that_stores_nothing(store):
    assert await store.prune_runtime("never-seen", keep_runs=0) == PruneReport(0, 0)
    assert await store.dump_runtime("never-seen") == await store.dump_runtime("never-seen-either")


async def test_a_prune_racing_another_counts_only_what_it_removed(async_backend):
    """Two prune jobs at once: the other one removes the receipts between
    this one's dump and its drop. This one removes nothing and says so.
    (The race is injected into the async store: async backends only.)"""
    store = async_backend.open()
    old, new = RunId.new(), RunId.new()
    await store.atomic_apply("rt", None, make_receipt(old, 0), [])
    await store.commit_session_boundary("rt", SessionDelta(session_json(1)), new, RunApplyBoundary.RUN_START, [], [])
    reads = store.load_input_states

    async def meanwhile_the_other_job(rid):  # prune_runtime reads the inputs between its dump and its drop
        store.load_input_states = reads
        assert (await store.prune_runtime("rt", keep_runs=1)).receipts_removed == 1
        return await reads(rid)

    store.load_input_states = meanwhile_the_other_job
    assert (await store.prune_runtime("rt", keep_runs=1)).receipts_removed == 0
    assert await store.load_boundary_receipt("rt", old, 0) is None


async def _commit(store, commit_id: str) -> int:
    receipt = await store.commit_session_boundary(
        "rt", _SNAPSHOT, _RUN, RunApplyBoundary.RUN_START, [], [], commit_id=commit_id
    )
    return receipt.sequence


_RUN, _SNAPSHOT = RunId.new(), SessionDelta(session_json(1))  # one commit's content, retried


# Controlled time (conftest.memory_clock) on the memory store, at the exact
# boundaries the Lua scripts draw: an id commit_id_ttl old counts as new
# (lib.lua earlier_commit: now - at >= retention) and is forgotten by a prune
# (prune_commit_ids.lua: ZRANGEBYSCORE up to now - retention, inclusive); the
# keys themselves expire once Redis's clock is past their expiry, not at it.

async def test_memory_a_commit_id_exactly_commit_id_ttl_old_counts_as_new(memory_clock):
    store = InMemoryRuntimeStore(commit_id_ttl=10)
    assert await _commit(store, "c0") == 0
    memory_clock.now = 1009.999
    assert await _commit(store, "c0") == 0  # a retry: remembered
    memory_clock.now = 1010.0
    assert await _commit(store, "c0") == 1  # exactly 10 s old: new


async def test_memory_prune_forgets_an_id_exactly_commit_id_ttl_old(memory_clock):
    store = InMemoryRuntimeStore(commit_id_ttl=10)
    await _commit(store, "c0")
    memory_clock.now = 1005.0
    await _commit(store, "c1")
    memory_clock.now = 1010.0
    assert (await store.prune_runtime("rt")).commit_ids_forgotten == 1  # c0; c1 is 5 s old
    assert await _commit(store, "c1") == 1  # still remembered


async def test_memory_commit_ids_expire_as_a_whole_only_once_past_the_ttl(memory_clock):
    store = InMemoryRuntimeStore(commit_id_ttl=10)
    await _commit(store, "c0")
    await _commit(store, "c1")
    memory_clock.now = 1010.0  # the keys' expiry: on Redis they are still there, both ids old
    assert (await store.prune_runtime("rt")).commit_ids_forgotten == 2
    memory_clock.now = 1020.0
    await _commit(store, "c2")
    memory_clock.now = 1030.0
    await _commit(store, "c3")  # at the keys' expiry: c2 stays in them, renewed
    memory_clock.now = 1035.0
    assert (await store.prune_runtime("rt")).commit_ids_forgotten == 1  # c2
    memory_clock.now = 1040.001  # past c3's ttl: the keys expired as a whole
    assert (await store.prune_runtime("rt")).commit_ids_forgotten == 0
    assert await _commit(store, "c3") == 4  # new again


async def test_memory_a_prune_after_the_ids_expired_as_a_whole_takes_one_step(memory_clock):
    store = InMemoryRuntimeStore(commit_id_ttl=10)
    await _commit(store, "c0")
    memory_clock.now = 1010.001  # past the keys' expiry: nothing is left to forget
    step, steps = store._prune_commit_ids, []

    async def counted(rid, batch):
        steps.append(await step(rid, batch))
        assert len(steps) <= 3, f"prune_runtime keeps stepping: {steps}"
        return steps[-1]

    store._prune_commit_ids = counted
    assert (await store.prune_runtime("rt")).commit_ids_forgotten == 0
    assert steps == [0]  # the loop ends on the first step that forgets nothing
