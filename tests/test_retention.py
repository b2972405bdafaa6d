"""Retention, on every backend: prune_runtime forgets old commit ids and the
receipts of finished runs in bounded steps, outside the commit path, and
keeps whatever is still pointed at."""

from __future__ import annotations

import asyncio
import time

import pytest

from redis_store import InputId, InputState, RunApplyBoundary, RunId, SessionDelta
from redis_store.audit import examine
from redis_store.contract import StoreOptions
from sessions import session_json

BOTH_APIS = True  # also through redis_store.sync (conftest.SYNC_BACKENDS)


async def test_old_commit_ids_are_forgotten_in_batches(backend):
    store = backend.open(commit_id_ttl=1.0)
    run_id, snapshot = RunId.new(), SessionDelta(session_json(1))
    for n in range(7):
        await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [], commit_id=f"c{n}")
    last_old = time.monotonic()  # c0..c6 were remembered (server clock) before this
    report = await store.prune_runtime("rt")
    assert report.commit_ids_forgotten == 0  # all still within the retention
    await asyncio.sleep(last_old + 0.7 - time.monotonic())
    # The runtime keeps committing, so its commit-id keys never expire as a whole:
    await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [], commit_id="c7")
    # Timed from when the commits finished, not from when they started, so a
    # slow commit (a loaded machine, the sync API's thread hop) cannot shift
    # the windows: c0..c6 are now past the retention; c7 is 0.7 s younger and
    # stays remembered for the prune steps and the retry below.
    await asyncio.sleep(last_old + 1.05 - time.monotonic())
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
    for kwargs in ({"keep_runs": -1}, {"batch": 0}, {"batch": 10**6}, {"keep_runs": True}):
        with pytest.raises(ValueError):
            await store.prune_runtime("rt", **kwargs)


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
