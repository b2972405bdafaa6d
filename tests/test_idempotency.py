"""Idempotent commits, on every backend: a retried commit id returns what the
first attempt did and writes nothing new."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from redis_store import (
    CommitIdReused,
    InputId,
    InputState,
    RunApplyBoundary,
    RunId,
    SessionDelta,
    WriteFailed,
)
from redis_store.audit import runtime_ids
from sessions import session_json
from test_conformance import make_receipt

BOTH_APIS = True  # also through redis_store.sync (conftest.SYNC_BACKENDS)


async def test_retried_commit_returns_the_first_receipt_and_writes_nothing(store):
    run_id, state = RunId.new(), InputState.new_accepted(InputId.new())
    snapshot = SessionDelta(session_json(2))
    args = ("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [state.input_id], [state])
    first = await store.commit_session_boundary(*args, commit_id="commit-1")
    before = await store.dump_runtime("rt")
    again = await store.commit_session_boundary(*args, commit_id="commit-1")
    assert again == first
    assert await store.dump_runtime("rt") == before
    nxt = await store.commit_session_boundary(*args, commit_id="commit-2")
    assert nxt.sequence == first.sequence + 1


async def test_a_commit_id_reused_for_another_commit_is_refused(store):
    run_id = RunId.new()
    await store.commit_session_boundary("rt", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], [], commit_id="c")
    before = await store.dump_runtime("rt")
    with pytest.raises(CommitIdReused) as caught:
        await store.commit_session_boundary("rt", SessionDelta(session_json(2)), run_id, RunApplyBoundary.RUN_START, [], [], commit_id="c")
    assert isinstance(caught.value, WriteFailed)
    with pytest.raises(CommitIdReused):  # the same id on atomic_apply is another commit too
        await store.atomic_apply("rt", None, make_receipt(run_id, 9), [], commit_id="c")
    assert await store.dump_runtime("rt") == before


async def test_retried_apply_is_quiet_instead_of_a_receipt_conflict(store):
    run_id, state = RunId.new(), InputState.new_accepted(InputId.new())
    snapshot = SessionDelta(session_json(1))
    await store.atomic_apply("rt", snapshot, make_receipt(run_id, 0), [state], commit_id="a-1")
    before = await store.dump_runtime("rt")
    await store.atomic_apply("rt", snapshot, make_receipt(run_id, 0), [state], commit_id="a-1")
    assert await store.dump_runtime("rt") == before
    changed = msgspec.structs.replace(state, attempt_count=3)
    with pytest.raises(CommitIdReused):
        await store.atomic_apply("rt", None, make_receipt(run_id, 0), [changed], commit_id="a-1")


# README, Running a fleet: "The same id with a different commit raises CommitIdReused"
# -- the input updates are part of what makes a commit the same.
async def test_the_same_commit_id_with_other_input_updates_is_refused(store):
    run_id, state = RunId.new(), InputState.new_accepted(InputId.new())
    snapshot = SessionDelta(session_json(1))
    await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [state], commit_id="c")
    receipt = make_receipt(run_id, 5)
    await store.atomic_apply("rt", snapshot, receipt, [state], commit_id="a")
    before = await store.dump_runtime("rt")
    changed = msgspec.structs.replace(state, attempt_count=state.attempt_count + 1)
    with pytest.raises(CommitIdReused):  # only the input updates differ
        await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [changed], commit_id="c")
    with pytest.raises(CommitIdReused):
        await store.commit_session_boundary("rt", snapshot, run_id, RunApplyBoundary.RUN_START, [], [], commit_id="c")
    with pytest.raises(CommitIdReused):
        await store.atomic_apply("rt", snapshot, receipt, [changed], commit_id="a")
    with pytest.raises(CommitIdReused):
        await store.atomic_apply("rt", snapshot, receipt, [], commit_id="a")
    assert await store.dump_runtime("rt") == before


async def test_every_part_of_a_commit_is_in_its_fingerprint(store):
    run_id, state = RunId.new(), InputState.new_accepted(InputId.new())
    one, two = SessionDelta(session_json(1)), SessionDelta(session_json(2))
    await store.commit_session_boundary("rt", one, run_id, RunApplyBoundary.RUN_START, [state.input_id], [state], commit_id="c")
    await store.atomic_apply("rt", one, make_receipt(run_id, 7), [state], commit_id="a")
    before = await store.dump_runtime("rt")
    others = [  # each differs from the first commit in one part only
        lambda: store.commit_session_boundary("rt", two, run_id, RunApplyBoundary.RUN_START, [state.input_id], [state], commit_id="c"),
        lambda: store.commit_session_boundary("rt", one, RunId.new(), RunApplyBoundary.RUN_START, [state.input_id], [state], commit_id="c"),
        lambda: store.commit_session_boundary("rt", one, run_id, RunApplyBoundary.IMMEDIATE, [state.input_id], [state], commit_id="c"),
        lambda: store.commit_session_boundary("rt", one, run_id, RunApplyBoundary.RUN_START, [], [state], commit_id="c"),
        lambda: store.atomic_apply("rt", two, make_receipt(run_id, 7), [state], commit_id="a"),
        lambda: store.atomic_apply("rt", None, make_receipt(run_id, 7), [state], commit_id="a"),
        lambda: store.atomic_apply("rt", one, make_receipt(run_id, 7, message_count=1), [state], commit_id="a"),
        lambda: store.atomic_apply("rt", one, make_receipt(run_id, 7), [state], commit_id="c"),  # a commit's id
    ]
    for call in others:
        with pytest.raises(CommitIdReused):
            await call()
    assert await store.dump_runtime("rt") == before


# README, Running a fleet: "Ids are kept for commit_id_ttl seconds ... on the server's clock".
async def test_commit_ids_are_kept_for_a_bounded_time(backend):
    # Ordering, not sleeps: the retry comes well inside the ttl (a stall of
    # up to ~1 s is harmless), and the last call comes after the ttl has
    # certainly run out (the id was recorded before the first call returned).
    # Another commit half-way keeps the runtime's commit-id keys alive, so
    # "short" is forgotten for its own age, not because its keys expired.
    ttl = 1.5
    store = backend.open(commit_id_ttl=ttl)
    run_id = RunId.new()
    args = ("rt", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], [])
    assert (await store.commit_session_boundary(*args, commit_id="short")).sequence == 0
    recorded_by = time.monotonic()
    assert (await store.commit_session_boundary(*args, commit_id="short")).sequence == 0
    await asyncio.sleep(max(0.0, recorded_by + ttl / 2 - time.monotonic()))
    assert (await store.commit_session_boundary(*args, commit_id="other")).sequence == 1
    assert time.monotonic() - recorded_by < ttl, "the retries came too late to mean anything"
    await asyncio.sleep(max(0.0, recorded_by + ttl + 0.05 - time.monotonic()))
    assert (await store.commit_session_boundary(*args, commit_id="short")).sequence == 2  # forgotten: a new commit
    assert (await store.commit_session_boundary(*args, commit_id="other")).sequence == 1  # still within its ttl


async def test_commit_id_arguments_are_checked(store):
    args = ("rt", SessionDelta(session_json(1)), RunId.new(), RunApplyBoundary.RUN_START, [], [])
    for bad in ("", "a b", "x" * 201):
        with pytest.raises(ValueError):
            await store.commit_session_boundary(*args, commit_id=bad)
    with pytest.raises(TypeError):
        await store.commit_session_boundary(*args, commit_id=7)
    assert [rid async for rid in runtime_ids(store)] == []  # nothing was written
