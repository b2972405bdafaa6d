"""Runtime leases with fencing tokens, on every backend: a write carrying a
lease that is no longer current fails with FencedOut and writes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from redis_store import (
    FencedOut,
    InMemoryRuntimeStore,
    InputId,
    InputState,
    Lease,
    LeaseHeld,
    LeaseKeeper,
    RunApplyBoundary,
    RunId,
    RuntimeState,
    SessionDelta,
    WriteFailed,
)
from sessions import session_json
from test_conformance import delta, make_receipt

BOTH_APIS = True  # also through redis_store.sync (conftest.SYNC_BACKENDS)


def every_write(store, rid, **kw):
    """One call of each write method (fresh ids each time)."""
    state = InputState.new_accepted(InputId.new())
    return [
        store.persist_input_state(rid, state, **kw),
        store.persist_runtime_state(rid, RuntimeState.RUNNING, **kw),
        store.atomic_lifecycle_commit(rid, RuntimeState.IDLE, [state], **kw),
        store.commit_session_boundary(rid, delta(1), RunId.new(), RunApplyBoundary.RUN_START, [], [state], **kw),
        store.atomic_apply(rid, delta(1), make_receipt(RunId.new(), 0), [state], **kw),
    ]


async def until_expired(store, rid, timeout: float = 10.0) -> None:
    """Wait until the store itself reports the lease gone (its clock, not
    ours): ordering instead of a sleep with little slack."""
    deadline = time.monotonic() + timeout
    while await store.current_lease(rid) is not None:
        assert time.monotonic() < deadline, f"the lease of {rid} did not expire within {timeout} s"
        await asyncio.sleep(0.02)


async def assert_every_write_fenced_out(store, rid, lease):
    before = await store.dump_runtime(rid)
    for call in every_write(store, rid, lease=lease):
        with pytest.raises(FencedOut):
            await call
    assert await store.dump_runtime(rid) == before  # nothing written


async def test_tokens_grow_with_every_new_owner(store):
    a = await store.acquire_lease("rt", "worker-a", 30)
    assert (a.runtime_id, a.owner, a.token) == ("rt", "worker-a", 1)
    with pytest.raises(LeaseHeld) as held:
        await store.acquire_lease("rt", "worker-b", 30)
    assert held.value.holder == "worker-a" and 0 < held.value.remaining_ms <= 30_000
    assert held.value.runtime_id == "rt"
    assert (await store.acquire_lease("rt", "worker-a", 30)).token == 1  # the holder again: same token
    assert await store.release_lease(a)
    assert not await store.release_lease(a)
    b = await store.acquire_lease("rt", "worker-b", 30)
    assert b.token == 2
    assert (await store.current_lease("rt")).owner == "worker-b"
    assert (await store.acquire_lease("other", "worker-a", 30)).token == 1  # per runtime


async def test_fenced_writes_pass_while_the_lease_is_current(store):
    lease = await store.acquire_lease("rt", "w", 30)
    fenced = store.fenced(lease)
    for call in every_write(fenced, "rt"):
        await call
    raw = await store.dump_runtime("rt")
    assert (len(raw.inputs), len(raw.receipts), raw.state is not None) == (1, 2, True)
    for call in every_write(store, "rt"):  # writes without a lease work as before
        await call


async def test_released_lease_fences_out_every_write(store):
    lease = await store.acquire_lease("rt", "w", 30)
    await store.persist_runtime_state("rt", RuntimeState.IDLE, lease=lease)
    await store.release_lease(lease)
    await assert_every_write_fenced_out(store, "rt", lease)
    assert await store.load_runtime_state("rt") == RuntimeState.IDLE


async def test_expired_lease_is_fenced_out_and_tokens_never_go_back(store):
    lease = await store.acquire_lease("rt", "w", 0.15)
    await until_expired(store, "rt")  # runs out on the store's clock
    await assert_every_write_fenced_out(store, "rt", lease)
    with pytest.raises(FencedOut):
        await store.renew_lease(lease)
    assert (await store.acquire_lease("rt", "next", 30)).token == 2


async def test_renew_keeps_a_lease_alive_past_its_ttl(store):
    # Renewed every 50 ms, a 1 s lease survives stalls of up to ~0.9 s; the
    # write comes after the first ttl has certainly run out.
    ttl = 1.0
    lease = await store.acquire_lease("rt", "w", ttl)
    expired_by = time.monotonic() + ttl  # the server started the ttl before we got the reply
    while time.monotonic() < expired_by + 0.1:
        await asyncio.sleep(0.05)
        lease = await store.renew_lease(lease)
    await store.persist_runtime_state("rt", RuntimeState.IDLE, lease=lease)
    current = await store.current_lease("rt")
    assert (current.owner, current.token) == ("w", lease.token)
    assert 0 < current.ttl_ms <= ttl * 1000


async def test_releasing_a_lost_lease_leaves_the_new_holder_alone(store):
    a = await store.acquire_lease("rt", "a", 30)
    b = await store.steal_lease("rt", "b", 30)
    assert await store.release_lease(a) is False
    assert (await store.current_lease("rt")).token == b.token
    assert await store.release_lease(b) is True
    assert await store.current_lease("rt") is None


async def test_steal_and_revoke_fence_out_the_holder_at_once(store):
    a = await store.acquire_lease("rt", "a", 30)
    b = await store.steal_lease("rt", "b", 30)
    assert b.token == a.token + 1
    await assert_every_write_fenced_out(store, "rt", a)
    await store.persist_runtime_state("rt", RuntimeState.RUNNING, lease=b)
    epoch = await store.revoke_lease("rt")
    assert epoch == b.token + 1
    assert await store.current_lease("rt") is None
    await assert_every_write_fenced_out(store, "rt", b)
    assert (await store.acquire_lease("rt", "c", 30)).token == epoch + 1


async def test_lease_arguments_are_checked(store):
    lease = await store.acquire_lease("rt", "w", 30)
    with pytest.raises(ValueError, match="not 'other'"):
        await store.persist_runtime_state("other", RuntimeState.IDLE, lease=lease)
    with pytest.raises(TypeError):
        await store.persist_runtime_state("rt", RuntimeState.IDLE, lease="1")
    for ttl in (0, -1, float("nan"), 10**9):
        with pytest.raises(ValueError):
            await store.acquire_lease("rt", "w", ttl)
    with pytest.raises(TypeError):
        await store.acquire_lease("rt", "", 30)
    forged = Lease("rt", "w", lease.token + 5, 30_000)
    with pytest.raises(FencedOut):
        await store.persist_runtime_state("rt", RuntimeState.IDLE, lease=forged)
    assert isinstance(FencedOut("x"), WriteFailed)


async def test_frozen_worker_never_interleaves_with_the_new_owner(store):
    """Two workers fight over one runtime; A freezes past its lease. Every
    later write of A is rejected and B's history stays intact."""
    rid, run = "contested", RunId.new()
    a = store.fenced(await store.acquire_lease(rid, "worker-a", 1.0))
    await a.commit_session_boundary(rid, SessionDelta(session_json(1)), run, RunApplyBoundary.RUN_START, [], [])
    await until_expired(store, rid)  # A is frozen (GC pause, network stall) past its lease
    b_lease = await store.acquire_lease(rid, "worker-b", 30)
    b = store.fenced(b_lease)
    b_inputs = [InputState.new_accepted(InputId.new()) for _ in range(3)]
    receipts = []
    for turn, state in enumerate(b_inputs, start=2):
        receipts.append(await b.commit_session_boundary(
            rid, SessionDelta(session_json(turn)), run, RunApplyBoundary.RUN_CHECKPOINT, [state.input_id], [state]))
        for call in every_write(a, rid):  # A wakes up and carries on, interleaved with B
            with pytest.raises(FencedOut):
                await call
    await b.atomic_lifecycle_commit(rid, RuntimeState.IDLE, [])
    assert [r.sequence for r in receipts] == [1, 2, 3]
    assert [s.input_id for s in await store.load_input_states(rid)] == [s.input_id for s in b_inputs]
    assert await store.load_session_snapshot(rid) is not None
    assert (await store.load_boundary_receipt(rid, run, 3)) == receipts[-1]
    assert await store.load_boundary_receipt(rid, run, 4) is None
    assert await store.load_runtime_state(rid) == RuntimeState.IDLE


async def test_lease_keeper_renews_and_reports_loss(store):
    # The keeper renews every ttl/3: a stall of up to ~0.6 s is harmless, and
    # the check comes after the first ttl has certainly run out.
    ttl = 1.0
    lease = await store.acquire_lease("rt", "w", ttl)
    expired_by = time.monotonic() + ttl
    async with LeaseKeeper(store, lease) as keeper:
        await asyncio.sleep(expired_by + 0.2 - time.monotonic())
        keeper.check()
        assert keeper.lease.token == lease.token
        await store.persist_runtime_state("rt", RuntimeState.RUNNING, lease=keeper.lease)
        await store.steal_lease("rt", "operator", 30)
        await asyncio.wait_for(keeper.lost.wait(), timeout=2)
        with pytest.raises(FencedOut, match="was lost"):
            keeper.check()
    assert (await store.current_lease("rt")).owner == "operator"  # not released by the loser
    lease = await store.acquire_lease("rt2", "w", 5)
    async with LeaseKeeper(store, lease):
        pass
    assert await store.current_lease("rt2") is None  # released on exit


async def test_delete_runtime_removes_everything_but_the_epoch(store):
    lease = await store.acquire_lease("rt", "w", 30)
    for call in every_write(store.fenced(lease), "rt"):
        await call
    await store.commit_session_boundary("rt", delta(1), RunId.new(), RunApplyBoundary.RUN_START, [], [], commit_id="c1")
    stale = await store.steal_lease("rt", "operator", 30)
    await store.revoke_lease("rt")
    with pytest.raises(FencedOut):  # a fenced delete needs a current lease
        await store.delete_runtime("rt", lease=stale)
    assert await store.load_runtime_state("rt") is not None
    assert await store.delete_runtime("rt") is True
    assert await store.delete_runtime("rt") is False  # nothing stored any more: a bool, as documented
    assert await store.load_input_states("rt") == []
    assert await store.load_session_snapshot("rt") is None
    assert await store.load_runtime_state("rt") is None
    assert await store.current_lease("rt") is None
    raw = await store.dump_runtime("rt")
    assert (raw.inputs, raw.receipts, raw.run_seqs, raw.meta) == ({}, {}, {}, {})
    assert "rt" not in (await store.list_runtimes(0, 1000))[1]
    assert (await store.acquire_lease("rt", "next", 30)).token == stale.token + 2  # never repeats
    assert await store.delete_runtime("never-was") is False
    # the commit id was forgotten with the runtime: it commits anew
    receipt = await store.commit_session_boundary("rt", delta(1), RunId.new(), RunApplyBoundary.RUN_START, [], [], commit_id="c1")
    assert receipt.sequence == 0


async def test_a_stale_lease_cannot_delete_the_runtime(store):
    stale = await store.acquire_lease("rt", "w1", 30)
    await store.steal_lease("rt", "w2", 30)
    await store.persist_runtime_state("rt", RuntimeState.IDLE)
    with pytest.raises(FencedOut):
        await store.fenced(stale).delete_runtime("rt")
    assert await store.load_runtime_state("rt") == RuntimeState.IDLE


async def test_renew_checks_the_ttl_it_is_given(store):
    lease = await store.acquire_lease("rt", "w", 30)
    for bad in (dataclasses.replace(lease, ttl_ms=0),):
        with pytest.raises(ValueError):
            await store.renew_lease(bad)
    assert (await store.current_lease("rt")) is not None


async def test_a_lease_for_a_runtime_the_store_holds_nothing_of(store):
    """A lease this store never granted (another store's, or from before a
    restart) for a runtime it has never seen is simply not current."""
    ghost = Lease("never-seen", "w", 1, 30_000)
    with pytest.raises(FencedOut, match="lease token 1 expired or was taken over"):
        await store.renew_lease(ghost)
    assert await store.release_lease(ghost) is False
    assert await store.current_lease("never-seen") is None
    assert await store.fencing_epoch("never-seen") == 0  # never leased
    with pytest.raises(FencedOut, match="lease token 1 is not current"):
        await store.delete_runtime("never-seen", lease=ghost)
    assert "never-seen" not in (await store.list_runtimes(0, 1000))[1]


async def test_memory_lease_time_is_the_monotonic_clock_in_ms(memory_clock):
    """Controlled time (conftest.memory_clock): a lease lasts exactly its ttl
    on the memory store's clock, and, as Redis expires a key, it is gone
    once the clock is past its expiry, not at it."""
    store = InMemoryRuntimeStore()
    lease = await store.acquire_lease("rt", "w", 10)
    memory_clock.now = 1004.0
    assert (await store.current_lease("rt")).ttl_ms == 6000
    with pytest.raises(LeaseHeld) as held:
        await store.acquire_lease("rt", "other", 10)
    assert held.value.remaining_ms == 6000
    lease = await store.renew_lease(lease)  # 10 s from now
    memory_clock.now = 1014.0  # exactly at its expiry: still held, 0 ms left (Redis: PTTL 0)
    assert (await store.current_lease("rt")).ttl_ms == 0
    await store.persist_runtime_state("rt", RuntimeState.IDLE, lease=lease)
    memory_clock.now = 1014.001
    assert await store.current_lease("rt") is None
    with pytest.raises(FencedOut):
        await store.persist_runtime_state("rt", RuntimeState.RUNNING, lease=lease)
    assert await store.load_runtime_state("rt") == RuntimeState.IDLE
