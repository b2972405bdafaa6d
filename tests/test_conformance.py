"""The contract, run unchanged against every backend (memory, fakeredis, a
real Redis and a real Valkey). Ports of meerkat's store tests (SPEC §6) come
first, then one test per rule of the contract."""

from __future__ import annotations


import msgspec
import pytest

from redis_store import (
    MAX_SEQUENCE,
    CommitIdReused,
    FencedOut,
    IdempotencyKeyConflict,
    InputId,
    InputLifecycleState,
    InputState,
    LogicalRuntimeId,
    ReceiptConflict,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RunId,
    RuntimeState,
    SessionDelta,
    SessionId,
    SessionKeyMismatch,
    WriteFailed,
    session_digest,
)
from sessions import EMPTY_DIGEST, session_json

BOTH_APIS = True  # also through redis_store.sync (conftest.SYNC_BACKENDS)


def make_receipt(run_id: RunId, seq: int, **changes) -> RunBoundaryReceipt:
    receipt = RunBoundaryReceipt(
        run_id=run_id,
        boundary=RunApplyBoundary.RUN_START,
        contributing_input_ids=[],
        conversation_digest=None,
        message_count=0,
        sequence=seq,
    )
    return msgspec.structs.replace(receipt, **changes)


async def walk_runtimes(store, count: int, max_pages: int = 1000) -> tuple[list[str], int]:
    """The ids a whole list_runtimes walk returns, and its number of pages:
    a walk that ends. A cursor that never comes back to 0 fails here instead
    of hanging the suite (the memory store's pages never await, so no
    timeout could stop the loop)."""
    listed, cursor = [], 0
    for pages in range(1, max_pages + 1):
        cursor, page = await store.list_runtimes(cursor, count)
        listed += page
        if cursor == 0:
            return listed, pages
    raise AssertionError(f"a list_runtimes walk did not end within {max_pages} pages (cursor {cursor})")


def delta(turns: int = 0, session_id: str | None = None) -> SessionDelta:
    return SessionDelta(session_json(turns, session_id))


async def commit(store, rid, run_id, inputs=(), turns=0):
    return await store.commit_session_boundary(
        rid, delta(turns), run_id, RunApplyBoundary.RUN_CHECKPOINT, [s.input_id for s in inputs], list(inputs)
    )


async def assert_untouched(store, rid):
    assert await store.load_input_states(rid) == []
    assert await store.load_session_snapshot(rid) is None
    assert await store.load_runtime_state(rid) is None


# -- ports of meerkat's store tests (SPEC §6) ---------------------------------------

async def test_atomic_apply_roundtrip(store):
    rid = LogicalRuntimeId("test-runtime")
    run_id, input_id = RunId.new(), InputId.new()
    await store.atomic_apply(rid, delta(), make_receipt(run_id, 0), [InputState.new_accepted(input_id)])
    states = await store.load_input_states(rid)
    assert [s.input_id for s in states] == [input_id]
    assert await store.load_boundary_receipt(rid, run_id, 0) == make_receipt(run_id, 0)


async def test_atomic_apply_rejects_non_session_snapshot(store):
    # meerkat's memory test stores b"session-data"; this contract follows
    # redb/sqlite: an invalid snapshot is WriteFailed and nothing is written.
    rid, run_id = "test-runtime", RunId.new()
    with pytest.raises(WriteFailed, match="not a meerkat Session"):
        await store.atomic_apply(
            rid, SessionDelta(b"session-data"), make_receipt(run_id, 0), [InputState.new_accepted(InputId.new())]
        )
    await assert_untouched(store, rid)
    assert await store.load_boundary_receipt(rid, run_id, 0) is None


async def test_persist_and_load_single_state(store):
    state = InputState.new_accepted(InputId.new())
    await store.persist_input_state("test", state)
    assert await store.load_input_state("test", state.input_id) == state


async def test_load_nonexistent_returns_none(store):
    rid = LogicalRuntimeId("test")
    assert await store.load_input_states(rid) == []
    assert await store.load_input_state(rid, InputId.new()) is None
    assert await store.load_boundary_receipt(rid, RunId.new(), 0) is None
    assert await store.load_session_snapshot(rid) is None
    assert await store.load_runtime_state(rid) is None


async def test_atomic_apply_updates_existing(store):
    rid, input_id = "test", InputId.new()
    await store.atomic_apply(rid, None, make_receipt(RunId.new(), 0), [InputState.new_accepted(input_id)])
    state2 = InputState.new_accepted(input_id)
    state2.current_state = InputLifecycleState.QUEUED
    await store.atomic_apply(rid, None, make_receipt(RunId.new(), 1), [state2])
    states = await store.load_input_states(rid)
    assert len(states) == 1
    assert states[0].current_state == InputLifecycleState.QUEUED


async def test_commit_session_boundary_returns_authoritative_receipt(store):
    rid, run_id, input_id = "test", RunId.new(), InputId.new()
    receipt = await store.commit_session_boundary(
        rid, delta(), run_id, RunApplyBoundary.IMMEDIATE, [input_id], [InputState.new_accepted(input_id)]
    )
    assert receipt.sequence == 0
    assert receipt.run_id == run_id
    assert receipt.conversation_digest == EMPTY_DIGEST
    assert receipt.message_count == 0
    assert receipt.contributing_input_ids == [input_id]
    assert await store.load_boundary_receipt(rid, receipt.run_id, receipt.sequence) == receipt


async def test_multiple_runtimes_isolated(store):
    await store.persist_input_state("runtime-1", InputState.new_accepted(InputId.new()))
    await store.persist_input_state("runtime-2", InputState.new_accepted(InputId.new()))
    await store.persist_input_state("runtime-2", InputState.new_accepted(InputId.new()))
    assert len(await store.load_input_states("runtime-1")) == 1
    assert len(await store.load_input_states("runtime-2")) == 2


async def test_load_session_snapshot_roundtrip(store):
    # Formatting is kept byte for byte: the store never re-serializes.
    snapshot = session_json(2).replace(b'"messages":', b'  "messages" :  ')
    await store.atomic_apply("runtime", SessionDelta(snapshot), make_receipt(RunId.new(), 0), [])
    assert await store.load_session_snapshot("runtime") == snapshot


async def test_atomic_apply_all_in_one_transaction(store):
    run_id = RunId.new()
    a, b = InputState.new_accepted(InputId.new()), InputState.new_accepted(InputId.new())
    await store.atomic_apply("rt", delta(1), make_receipt(run_id, 0), [a, b])
    assert await store.load_input_states("rt") == [a, b]
    assert await store.load_boundary_receipt("rt", run_id, 0) is not None
    assert await store.load_session_snapshot("rt") is not None


async def test_commit_session_boundary_roundtrip(store):
    receipt = await commit(store, "rt", RunId.new(), [InputState.new_accepted(InputId.new())])
    assert receipt.sequence == 0
    assert await store.load_session_snapshot("rt") is not None
    assert len(await store.load_input_states("rt")) == 1


async def test_atomic_apply_is_atomic_on_receipt_conflict(store):
    rid, run_id = "rt", RunId.new()
    first = InputState.new_accepted(InputId.new())
    await store.atomic_apply(rid, None, make_receipt(run_id, 0), [first])
    with pytest.raises(ReceiptConflict) as caught:
        await store.atomic_apply(
            rid, delta(), make_receipt(run_id, 0, message_count=9), [InputState.new_accepted(InputId.new())]
        )
    assert isinstance(caught.value, WriteFailed)
    assert (caught.value.run_id, caught.value.sequence) == (str(run_id), 0)
    assert await store.load_session_snapshot(rid) is None
    assert await store.load_input_states(rid) == [first]
    assert (await store.load_boundary_receipt(rid, run_id, 0)).message_count == 0


async def test_atomic_lifecycle_commit_persists_both_parts(store):
    state = InputState.new_accepted(InputId.new())
    await store.atomic_lifecycle_commit("rt", RuntimeState.STOPPED, [state])
    assert await store.load_runtime_state("rt") == RuntimeState.STOPPED
    assert await store.load_input_states("rt") == [state]


# SPEC §4.4's full example: every nested type, a 9-digit timestamp, an opaque persisted_input.
FULL_INPUT_STATE = (
    '{"input_id":"019a2b3c-0000-7000-8000-000000000001","current_state":"applied_pending_consumption","policy":{"version":1,"decision":{"apply_mode":"stage_run_start","wake_mode":"wake_if_idle","queue_mode":"fifo","consume_point":"on_run_complete","record_transcript":true,"emit_operator_content":true,"policy_version":1}},"durability":"durable","attempt_count":1,"recovery_count":0,"history":[{"timestamp":"2025-10-09T08:53:20.500Z","from":"accepted","to":"queued","reason":"policy resolved"}],"persisted_input":{"input_type":"prompt","header":{"id":"019a2b3c-0000-7000-8000-000000000001","timestamp":"2025-10-09T08:53:20.123456789Z","source":{"type":"operator"},"durability":"durable","visibility":{"transcript_eligible":true,"operator_eligible":true}},"text":"hi"},"last_run_id":"019a2b3c-0000-7000-8000-0000000000ff","last_boundary_sequence":0,"created_at":"2025-10-09T08:53:20.123456789Z","updated_at":"2025-10-09T08:53:21Z"}'
)


async def test_stored_input_state_keeps_its_exact_wire_form(store):
    state = InputState.from_json(FULL_INPUT_STATE)
    await store.atomic_lifecycle_commit("rt", RuntimeState.RUNNING, [state])
    (loaded,) = await store.load_input_states("rt")
    assert loaded == state
    assert loaded.to_json() == FULL_INPUT_STATE


# -- sequences ------------------------------------------------------------------------

async def test_sequences_count_from_zero_per_run(store):
    run_a, run_b = RunId.new(), RunId.new()
    assert [(await commit(store, "rt", run_a)).sequence for _ in range(3)] == [0, 1, 2]
    assert (await commit(store, "rt", run_b)).sequence == 0
    assert (await commit(store, "other", run_a)).sequence == 0
    assert (await commit(store, "rt", run_a)).sequence == 3


async def test_next_sequence_counts_applied_receipts_and_leaves_gaps(store):
    run_id = RunId.new()
    await store.atomic_apply("rt", None, make_receipt(run_id, 0), [])
    await store.atomic_apply("rt", None, make_receipt(run_id, 5), [])
    await store.atomic_apply("rt", None, make_receipt(run_id, 2), [])  # below the max: max stays 5
    assert (await commit(store, "rt", run_id)).sequence == 6


async def test_sequence_space_ends_at_2_pow_53(store):
    run_id = RunId.new()
    await store.atomic_apply("rt", None, make_receipt(run_id, MAX_SEQUENCE - 1), [])
    assert (await commit(store, "rt", run_id)).sequence == MAX_SEQUENCE
    assert (await store.load_boundary_receipt("rt", run_id, MAX_SEQUENCE)).sequence == MAX_SEQUENCE
    state = InputState.new_accepted(InputId.new())
    with pytest.raises(WriteFailed, match=f"run {run_id} has used every receipt sequence up to 2\\*\\*53"):
        await commit(store, "rt", run_id, [state])
    assert await store.load_input_state("rt", state.input_id) is None


# -- commit_session_boundary -----------------------------------------------------------

async def test_commit_stamps_inputs_and_changes_nothing_else(store):
    run_id = RunId.new()
    a = InputState.new_accepted(InputId.new())
    a.current_state, a.attempt_count = InputLifecycleState.APPLIED, 2
    original = msgspec.structs.replace(a)
    await commit(store, "rt", run_id)
    receipt = await commit(store, "rt", run_id, [a])
    stored = await store.load_input_state("rt", a.input_id)
    assert stored == msgspec.structs.replace(original, last_run_id=run_id, last_boundary_sequence=1)
    assert receipt.sequence == 1
    assert a == original  # the caller's object is not mutated


async def test_commit_digest_matches_session_digest(store):
    snapshot = session_json(3)
    receipt = await store.commit_session_boundary("rt", SessionDelta(snapshot), RunId.new(), RunApplyBoundary.RUN_START, [], [])
    assert (receipt.conversation_digest, receipt.message_count) == session_digest(snapshot)
    assert receipt.message_count == 13
    assert await store.load_session_snapshot("rt") == snapshot


async def test_commit_with_invalid_snapshot_writes_nothing(store):
    run_id = RunId.new()
    state = InputState.new_accepted(InputId.new())
    for bad in [b"", b"not json", b'{"id": "x"}', session_json(1)[:-1]]:
        with pytest.raises(WriteFailed, match="not a meerkat Session"):
            await store.commit_session_boundary("rt", SessionDelta(bad), run_id, RunApplyBoundary.RUN_START, [], [state])
    await assert_untouched(store, "rt")
    assert (await commit(store, "rt", run_id)).sequence == 0


async def test_commit_replaces_snapshot(store):
    first, second = session_json(1), session_json(2)
    for snapshot in (first, second):
        await store.commit_session_boundary("rt", SessionDelta(snapshot), RunId.new(), RunApplyBoundary.RUN_START, [], [])
    assert await store.load_session_snapshot("rt") == second


# -- atomic_apply -------------------------------------------------------------------

async def test_atomic_apply_stores_receipt_and_inputs_unchanged(store):
    run_id = RunId.new()
    receipt = make_receipt(run_id, 7, conversation_digest="ab" * 32, message_count=41,
                           contributing_input_ids=[InputId.new()], boundary=RunApplyBoundary.IMMEDIATE)
    state = InputState.new_accepted(InputId.new())
    await store.atomic_apply("rt", None, receipt, [state])
    assert await store.load_boundary_receipt("rt", run_id, 7) == receipt
    assert await store.load_input_state("rt", state.input_id) == state  # no stamping
    assert await store.load_session_snapshot("rt") is None  # None leaves the slot alone


async def test_session_store_key_must_match_the_snapshot(store):
    session_id = SessionId.new()
    with pytest.raises(SessionKeyMismatch) as caught:
        await store.atomic_apply("rt", delta(1, str(SessionId.new())), make_receipt(RunId.new(), 0),
                                 [InputState.new_accepted(InputId.new())], session_store_key=session_id)
    assert isinstance(caught.value, WriteFailed)
    assert caught.value.expected == str(session_id)
    await assert_untouched(store, "rt")
    run_id = RunId.new()
    await store.atomic_apply("rt", delta(1, str(session_id)), make_receipt(run_id, 0), [], session_store_key=session_id)
    assert await store.load_boundary_receipt("rt", run_id, 0) is not None


# -- input order --------------------------------------------------------------------------

async def test_inputs_load_in_first_stored_order_through_every_write(store):
    ids = [InputId.new() for _ in range(6)]
    states = {i: InputState.new_accepted(i) for i in ids}
    run_id = RunId.new()
    # Ids are deliberately stored out of their time order.
    await store.persist_input_state("rt", states[ids[3]])
    await commit(store, "rt", run_id, [states[ids[1]], states[ids[0]]])
    await store.atomic_apply("rt", None, make_receipt(RunId.new(), 0), [states[ids[5]]])
    await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, [states[ids[2]], states[ids[4]]])
    # Updates keep their place, whichever method writes them.
    updated = msgspec.structs.replace(states[ids[3]], current_state=InputLifecycleState.CONSUMED)
    await store.atomic_lifecycle_commit("rt", RuntimeState.RUNNING, [updated])
    await commit(store, "rt", run_id, [states[ids[5]]])
    loaded = await store.load_input_states("rt")
    assert [s.input_id for s in loaded] == [ids[3], ids[1], ids[0], ids[5], ids[2], ids[4]]
    assert loaded[0].current_state == InputLifecycleState.CONSUMED
    assert loaded[3].last_boundary_sequence == 1


async def test_same_input_twice_in_one_batch_is_refused(store):
    # meerkat lets the last one win; a batch naming an input twice is almost
    # always a caller's bug, so this contract refuses it (issue 5).
    a = InputState.new_accepted(InputId.new())
    b = msgspec.structs.replace(a, current_state=InputLifecycleState.QUEUED)
    for call in (
        lambda: store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, [a, b]),
        lambda: store.commit_session_boundary("rt", delta(1), RunId.new(), RunApplyBoundary.RUN_START, [], [a, b]),
        lambda: store.atomic_apply("rt", None, make_receipt(RunId.new(), 0), [a, b]),
    ):
        with pytest.raises(ValueError, match=f"names input {a.input_id} twice"):
            await call()
    await assert_untouched(store, "rt")


async def test_many_inputs_keep_order(store):
    states = [InputState.new_accepted(InputId.new()) for _ in range(2500)]
    await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, states[:1200])
    await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, states[1200:])
    assert await store.load_input_states("rt") == states


# -- runtime state ------------------------------------------------------------------------

async def test_runtime_state_is_one_slot_and_transitions_are_not_checked(store):
    await store.persist_runtime_state("rt", RuntimeState.DESTROYED)
    await store.persist_runtime_state("rt", RuntimeState.INITIALIZING)
    assert await store.load_runtime_state("rt") == RuntimeState.INITIALIZING
    assert await store.load_runtime_state("other") is None


# -- isolation ------------------------------------------------------------------------

TRICKY_IDS = ["a", "a:b", "{a}", "a}{b", "{", "}", "%7B", "%", "%25", "a/b", "a b", " ", "Zürich 🦜", "rt:{x}:inputs", "名前"]


async def test_runtime_ids_never_collide(store):
    for i, rid in enumerate(TRICKY_IDS):
        await store.persist_runtime_state(rid, list(RuntimeState)[i % 7])
        for _ in range(i + 1):
            await store.persist_input_state(rid, InputState.new_accepted(InputId.new()))
        await commit(store, rid, RunId.new(), turns=i)
    for i, rid in enumerate(TRICKY_IDS):
        assert await store.load_runtime_state(rid) == list(RuntimeState)[i % 7]
        assert len(await store.load_input_states(rid)) == i + 1
        assert session_digest(await store.load_session_snapshot(rid))[1] == (4 * i + 1 if i else 0)


async def test_logical_runtime_id_and_str_are_the_same_runtime(store):
    state = InputState.new_accepted(InputId.new())
    await store.persist_input_state(LogicalRuntimeId("same"), state)
    assert await store.load_input_states("same") == [state]


# -- bad arguments: TypeError/ValueError, nothing written ------------------------------

def _bad_calls(run_id, state):
    good_receipt = make_receipt(run_id, 0)
    return [
        (TypeError, lambda s: s.persist_input_state(123, state)),
        (ValueError, lambda s: s.persist_input_state("", state)),
        (ValueError, lambda s: s.persist_input_state("\ud800", state)),
        (TypeError, lambda s: s.persist_input_state("rt", {"input_id": "x"})),
        (TypeError, lambda s: s.persist_runtime_state("rt", "idle")),
        (TypeError, lambda s: s.load_boundary_receipt("rt", str(run_id), 0)),
        (ValueError, lambda s: s.load_boundary_receipt("rt", run_id, -1)),
        (ValueError, lambda s: s.load_boundary_receipt("rt", run_id, 2**53)),
        (TypeError, lambda s: s.load_boundary_receipt("rt", run_id, True)),
        (TypeError, lambda s: s.load_input_state("rt", str(state.input_id))),
        (ValueError, lambda s: s.atomic_apply("rt", None, make_receipt(run_id, -1), [state])),
        (ValueError, lambda s: s.atomic_apply("rt", None, make_receipt(run_id, 2**53), [state])),
        (TypeError, lambda s: s.atomic_apply("rt", None, make_receipt(run_id, 1.0), [state])),
        (TypeError, lambda s: s.atomic_apply("rt", b"{}", good_receipt, [state])),
        (TypeError, lambda s: s.atomic_apply("rt", None, good_receipt, [state], session_store_key="x")),
        (TypeError, lambda s: s.atomic_apply("rt", None, good_receipt, [state, None])),
        (TypeError, lambda s: s.atomic_apply("rt", None, good_receipt, state)),
        (ValueError, lambda s: s.atomic_apply("rt", None, good_receipt, [msgspec.structs.replace(state, attempt_count=-1)])),
        (TypeError, lambda s: s.commit_session_boundary("rt", b"{}", run_id, RunApplyBoundary.RUN_START, [], [])),
        (TypeError, lambda s: s.commit_session_boundary("rt", delta(), str(run_id), RunApplyBoundary.RUN_START, [], [])),
        (TypeError, lambda s: s.commit_session_boundary("rt", delta(), run_id, "run_start", [], [])),
        (TypeError, lambda s: s.commit_session_boundary("rt", delta(), run_id, RunApplyBoundary.RUN_START, ["x"], [])),
        (TypeError, lambda s: s.commit_session_boundary("rt", delta(), run_id, RunApplyBoundary.RUN_START, [], [state, 1])),
        (TypeError, lambda s: s.atomic_lifecycle_commit("rt", RuntimeState.IDLE, [state, "x"])),
        (TypeError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, current_state="queued"))),
        (TypeError, lambda s: s.atomic_apply("rt", None, msgspec.structs.replace(good_receipt, run_id=str(run_id)), [])),
        (TypeError, lambda s: s.atomic_apply("rt", None, msgspec.structs.replace(good_receipt, run_id=str(run_id).upper()), [])),
        (TypeError, lambda s: s.atomic_apply("rt", None, make_receipt(run_id, 0, contributing_input_ids=[str(state.input_id)]), [])),
        (TypeError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, input_id=str(state.input_id).upper()))),
        (TypeError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, last_run_id=f"urn:uuid:{run_id}"))),
        (TypeError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, created_at="2024-01-02T03:04:05+01:00"))),
        (ValueError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, persisted_input={"payload": {1: "a"}}))),
        (ValueError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, persisted_input={"a": b"bytes"}))),
        (ValueError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, persisted_input={"a": float("nan")}))),
        (ValueError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, persisted_input={"a": (1, 2)}))),
        (ValueError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, persisted_input={"a": 2**64}))),
        (TypeError, lambda s: s.atomic_apply("rt", None, make_receipt(run_id, 0, message_count="1"), [])),
        (ValueError, lambda s: s.atomic_apply("rt", None, make_receipt(run_id, 0, message_count=-1), [])),
        (ValueError, lambda s: s.persist_input_state("rt", msgspec.structs.replace(state, persisted_input={"a": "\ud800"}))),
    ]


async def test_bad_arguments_raise_before_anything_is_written(store):
    run_id, state = RunId.new(), InputState.new_accepted(InputId.new())
    for expected, call in _bad_calls(run_id, state):
        with pytest.raises(expected):
            await call(store)
    await assert_untouched(store, "rt")
    assert await store.load_boundary_receipt("rt", run_id, 0) is None


async def test_bad_arguments_name_what_is_wrong(store):
    """README, The contract: "bad arguments ... TypeError/ValueError": the
    message names the argument, so a caller can tell which one."""
    run_id, state = RunId.new(), InputState.new_accepted(InputId.new())
    receipt = make_receipt(run_id, 0)
    cases = [
        ("runtime_id must be a LogicalRuntimeId or str, got int", lambda s: s.persist_input_state(123, state)),
        ("runtime_id must not be empty", lambda s: s.persist_input_state("", state)),
        ("runtime_id is not valid Unicode", lambda s: s.persist_input_state("\ud800", state)),
        ("runtime_id is 4097 bytes of UTF-8; at most 4096", lambda s: s.persist_input_state("x" * 4097, state)),
        ("session_delta must be a SessionDelta, got bytes", lambda s: s.atomic_apply("rt", b"{}", receipt, [])),
        ("session_store_key must be a SessionId, got str", lambda s: s.atomic_apply("rt", None, receipt, [], session_store_key="x")),
        ("input_updates", lambda s: s.atomic_apply("rt", None, receipt, [state, None])),
        (r"input_states\[1\] must be a InputState, got str", lambda s: s.atomic_lifecycle_commit("rt", RuntimeState.IDLE, [state, "x"])),
        ("input_updates", lambda s: s.commit_session_boundary("rt", delta(), run_id, RunApplyBoundary.RUN_START, [], [state, 1])),
        ("session_delta must be a SessionDelta", lambda s: s.commit_session_boundary("rt", b"{}", run_id, RunApplyBoundary.RUN_START, [], [])),
        ("run_id must be a RunId, got str", lambda s: s.commit_session_boundary("rt", delta(), str(run_id), RunApplyBoundary.RUN_START, [], [])),
        ("boundary must be a RunApplyBoundary", lambda s: s.commit_session_boundary("rt", delta(), run_id, "run_start", [], [])),
        (r"contributing_input_ids\[0\] must be a InputId", lambda s: s.commit_session_boundary("rt", delta(), run_id, RunApplyBoundary.RUN_START, ["x"], [])),
        ("sequence", lambda s: s.load_boundary_receipt("rt", run_id, -1)),
        ("run_id must be a RunId", lambda s: s.load_boundary_receipt("rt", str(run_id), 0)),
        ("input_id must be a InputId", lambda s: s.load_input_state("rt", str(state.input_id))),
        ("state must be a RuntimeState", lambda s: s.persist_runtime_state("rt", "idle")),
    ]
    for message, call in cases:
        with pytest.raises((TypeError, ValueError), match=message):
            await call(store)
    await assert_untouched(store, "rt")


# -- lifetime -----------------------------------------------------------------------------

async def test_closed_store_refuses_calls(backend):
    store = backend.open()
    async with store as entered:
        assert entered is store
        await store.persist_runtime_state("rt", RuntimeState.IDLE)
    with pytest.raises(WriteFailed, match="closed"):
        await store.persist_runtime_state("rt", RuntimeState.IDLE)


# -- operating: listing and dumping runtimes ----------------------------------------

async def test_list_runtimes_pages_through_every_runtime(store):
    for rid in TRICKY_IDS:
        await store.persist_runtime_state(rid, RuntimeState.IDLE)
    with pytest.raises(WriteFailed):  # a refused write does not create a runtime
        await store.commit_session_boundary("ghost", SessionDelta(b"{}"), RunId.new(), RunApplyBoundary.RUN_START, [], [])
    seen, pages = await walk_runtimes(store, 4)
    assert set(seen) == set(TRICKY_IDS)
    assert pages > 1  # 15 runtimes at count=4 need several pages: the cursor really pages
    with pytest.raises(ValueError):
        await store.list_runtimes(-1)
    with pytest.raises(ValueError):
        await store.list_runtimes(0, count=0)


async def test_memory_pages_end_with_the_page_holding_the_last_id():
    from redis_store import InMemoryRuntimeStore

    store = InMemoryRuntimeStore()
    for rid in ("a", "b", "c"):
        await store.persist_runtime_state(rid, RuntimeState.IDLE)
    assert await store.list_runtimes(0, 3) == (0, ["a", "b", "c"])
    assert await store.list_runtimes(0, 2) == (2, ["a", "b"])
    assert await store.list_runtimes(2, 2) == (0, ["c"])


async def test_dump_runtime_shows_everything_stored(store):
    run_id = RunId.new()
    a, b = InputState.new_accepted(InputId.new()), InputState.new_accepted(InputId.new())
    await store.persist_input_state("rt", b)
    receipt = await commit(store, "rt", run_id, [a], turns=1)
    await store.atomic_apply("rt", None, make_receipt(run_id, 4), [])
    await store.persist_runtime_state("rt", RuntimeState.RUNNING)
    raw = await store.dump_runtime("rt")
    assert raw.input_order == [str(b.input_id), str(a.input_id)]
    assert set(raw.inputs) == set(raw.input_order)
    assert set(raw.receipts) == {f"{run_id}:0", f"{run_id}:4"}
    assert raw.run_seqs == {str(run_id): "4"}
    assert raw.meta == {"layout": "2", "snapshot_receipt": f"{run_id}:{receipt.sequence}"}
    assert raw.state is not None and raw.snapshot is not None
    await store.atomic_apply("rt", delta(2), make_receipt(run_id, 5), [])
    assert (await store.dump_runtime("rt")).meta == {"layout": "2", "snapshot_applied": f"{run_id}:5"}  # not minted
    empty = await store.dump_runtime("nothing-here")
    assert (empty.inputs, empty.receipts, empty.meta, empty.state) == ({}, {}, {}, None)


# -- commit_session_snapshot (meerkat 0.6.1): a snapshot without a receipt ----------------

def _check(raw):
    from redis_store.audit import examine

    report = examine("rt", raw)
    assert report.violations == []
    return report


async def test_snapshot_commit_stores_the_snapshot_and_mints_nothing(store):
    run_id = RunId.new()
    receipt = await commit(store, "rt", run_id, turns=1)
    before = await store.dump_runtime("rt")
    mid_run = session_json(2)
    assert await store.commit_session_snapshot("rt", SessionDelta(mid_run)) is None
    assert await store.load_session_snapshot("rt") == mid_run
    raw = await store.dump_runtime("rt")
    assert raw.receipts == before.receipts and raw.run_seqs == before.run_seqs  # no receipt minted
    assert raw.meta == {"layout": "2", "snapshot_without_receipt": "1"}
    report = _check(raw)
    assert (report.snapshot_owner, report.snapshot_digest_matches, report.snapshot_messages) == ("no receipt", None, 9)
    # The next boundary mints the next sequence and owns the snapshot again.
    after = await commit(store, "rt", run_id, turns=3)
    assert after.sequence == receipt.sequence + 1
    raw = await store.dump_runtime("rt")
    assert raw.meta == {"layout": "2", "snapshot_receipt": f"{run_id}:{after.sequence}"}
    assert _check(raw).snapshot_digest_matches is True
    await store.commit_session_snapshot("rt", SessionDelta(mid_run))
    await store.atomic_apply("rt", delta(1), make_receipt(run_id, 9), [])
    assert (await store.dump_runtime("rt")).meta == {"layout": "2", "snapshot_applied": f"{run_id}:9"}
    await store.commit_session_snapshot("rt", SessionDelta(mid_run))
    await store.atomic_apply("rt", None, make_receipt(run_id, 10), [])  # no snapshot: the snapshot stays receipt-less
    assert (await store.dump_runtime("rt")).meta == {"layout": "2", "snapshot_without_receipt": "1"}
    assert await store.load_session_snapshot("rt") == mid_run


async def test_snapshot_commit_on_a_fresh_runtime_and_pruning_keeps_no_receipt_for_it(store):
    fresh = delta(1)
    await store.commit_session_snapshot("fresh", fresh)
    from redis_store.audit import runtime_ids

    assert "fresh" in [rid async for rid in runtime_ids(store)]
    assert await store.load_session_snapshot("fresh") == fresh.session_snapshot
    old, new = RunId.new(), RunId.new()
    await commit(store, "rt", old, turns=1)
    await commit(store, "rt", new, turns=2)
    await store.atomic_apply("rt", delta(2), make_receipt(old, 5), [])  # the snapshot pins old:5
    await store.commit_session_snapshot("rt", delta(3))  # and no longer does
    report = await store.prune_runtime("rt", keep_runs=1)
    assert report.receipts_removed == 2
    assert await store.load_boundary_receipt("rt", old, 5) is None
    assert await store.load_boundary_receipt("rt", new, 0) is not None
    _check(await store.dump_runtime("rt"))


async def test_snapshot_commit_refuses_an_invalid_snapshot_and_bad_arguments(store):
    with pytest.raises(WriteFailed, match="not a meerkat Session"):
        await store.commit_session_snapshot("rt", SessionDelta(b"session-data"))
    for expected, call in [
        (TypeError, lambda: store.commit_session_snapshot("rt", b"{}")),
        (TypeError, lambda: store.commit_session_snapshot(1, delta())),
        (ValueError, lambda: store.commit_session_snapshot("", delta())),
        (ValueError, lambda: store.commit_session_snapshot("rt", delta(), commit_id="a b")),
        (TypeError, lambda: store.commit_session_snapshot("rt", delta(), commit_id=7)),
        (TypeError, lambda: store.commit_session_snapshot("rt", delta(), lease="token")),
    ]:
        with pytest.raises(expected):
            await call()
    await assert_untouched(store, "rt")
    assert (await store.dump_runtime("rt")).meta == {}


async def test_snapshot_commit_is_fenced_and_idempotent(store):
    lease = await store.acquire_lease("rt", "w1", ttl=30)
    first, second = delta(1), delta(2)
    await store.fenced(lease).commit_session_snapshot("rt", first, commit_id="snap-1")
    await store.commit_session_snapshot("rt", second, lease=lease, commit_id="snap-2")
    # A retry of snap-1 (its reply was lost) writes nothing: the newer snapshot stays.
    await store.commit_session_snapshot("rt", first, lease=lease, commit_id="snap-1")
    assert await store.load_session_snapshot("rt") == second.session_snapshot
    with pytest.raises(CommitIdReused, match="commit id snap-1 was used for a different commit"):
        await store.commit_session_snapshot("rt", delta(3), commit_id="snap-1")
    run_id = RunId.new()
    with pytest.raises(CommitIdReused):  # one commit-id space for every kind of commit
        await store.commit_session_boundary("rt", first, run_id, RunApplyBoundary.RUN_START, [], [], commit_id="snap-1")
    await store.steal_lease("rt", "w2", ttl=30)
    with pytest.raises(FencedOut):
        await store.commit_session_snapshot("rt", delta(4), lease=lease)
    assert await store.load_session_snapshot("rt") == second.session_snapshot


# -- load_input_states_by_ids -------------------------------------------------------------

async def test_inputs_load_by_ids_in_the_order_asked(store):
    a, b, c = (InputState.new_accepted(InputId.new()) for _ in range(3))
    await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, [a, b, c])
    ghost = InputId.new()
    got = await store.load_input_states_by_ids("rt", [c.input_id, ghost, a.input_id, c.input_id])
    assert got == [c, None, a, c]
    assert await store.load_input_states_by_ids("rt", []) == []
    assert await store.load_input_states_by_ids("elsewhere", (a.input_id,)) == [None]
    for expected, bad in [(TypeError, str(a.input_id)), (TypeError, [str(a.input_id)]), (TypeError, None), (TypeError, [a.input_id, 1])]:
        with pytest.raises(expected):
            await store.load_input_states_by_ids("rt", bad)
    with pytest.raises(ValueError):
        await store.load_input_states_by_ids("", [a.input_id])


# -- idempotency keys: an index kept by the same atomic writes ----------------------------

def keyed(key: str | None, input_id: InputId | None = None) -> InputState:
    return msgspec.structs.replace(InputState.new_accepted(input_id or InputId.new()), idempotency_key=key)


async def test_inputs_are_found_by_idempotency_key_through_every_write(store):
    a, b, c = keyed("hook-a"), keyed("hook-b"), keyed(None)
    await store.persist_input_state("rt", a)
    receipt = await commit(store, "rt", RunId.new(), [b])
    await store.atomic_apply("rt", None, make_receipt(RunId.new(), 0), [c])
    assert await store.load_input_state_by_idempotency_key("rt", "hook-a") == a
    found = await store.load_input_state_by_idempotency_key("rt", "hook-b")
    assert (found.input_id, found.last_boundary_sequence) == (b.input_id, receipt.sequence)  # as stored, stamped
    assert await store.load_input_state_by_idempotency_key("rt", "nobody") is None
    assert await store.load_input_state_by_idempotency_key("other", "hook-a") is None  # per runtime
    # A changed key moves in the same step; a cleared one is gone.
    moved = keyed("hook-a2", a.input_id)
    await store.atomic_lifecycle_commit("rt", RuntimeState.RUNNING, [moved, keyed(None, b.input_id)])
    assert await store.load_input_state_by_idempotency_key("rt", "hook-a") is None
    assert await store.load_input_state_by_idempotency_key("rt", "hook-a2") == moved
    assert await store.load_input_state_by_idempotency_key("rt", "hook-b") is None
    # Freed keys can be claimed by another input; any text is a key.
    for key in ("hook-a", "", "a b:{c}", "Zürich 🦜"):
        await store.persist_input_state("rt", keyed(key))
        assert (await store.load_input_state_by_idempotency_key("rt", key)).idempotency_key == key
    _check(await store.dump_runtime("rt"))
    with pytest.raises(TypeError):
        await store.load_input_state_by_idempotency_key("rt", b"hook-a")
    with pytest.raises(ValueError):
        await store.load_input_state_by_idempotency_key("", "hook-a")
    with pytest.raises(ValueError):
        await store.load_input_state_by_idempotency_key("rt", "\ud800")
    with pytest.raises(ValueError):  # nor can an input store it
        await store.persist_input_state("rt", keyed("\ud800"))


async def test_a_key_cleared_without_any_claim_leaves_the_index(store):
    # A batch that claims no key still drops the keys its inputs gave up.
    a, b = keyed("hook-a"), keyed("hook-b")
    await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, [a, b])
    await commit(store, "rt", RunId.new(), [keyed(None, a.input_id)])
    assert await store.load_input_state_by_idempotency_key("rt", "hook-a") is None
    assert (await store.load_input_state_by_idempotency_key("rt", "hook-b")).input_id == b.input_id
    assert (await store.dump_runtime("rt")).index == {"key:hook-b": str(b.input_id), f"input:{b.input_id}": "hook-b"}
    _check(await store.dump_runtime("rt"))


async def test_a_batch_longer_than_a_script_chunk_keeps_the_index(store):
    # The scripts read and write the index in chunks of 1000 values
    # (lib.lua CHUNK): keys past the first chunk move and clear as well.
    states = [keyed(f"k{i}") for i in range(1100)]
    await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, states)
    changed = [keyed(None if i >= 1050 else f"n{i}" if i >= 990 else f"k{i}", s.input_id) for i, s in enumerate(states)]
    await store.atomic_lifecycle_commit("rt", RuntimeState.RUNNING, changed)
    index = (await store.dump_runtime("rt")).index
    assert len(index) == 2 * 1050
    assert index["key:n1049"] == str(states[1049].input_id) and "key:k1049" not in index
    assert f"input:{states[1060].input_id}" not in index and "key:k1060" not in index
    assert index["key:k5"] == str(states[5].input_id)
    assert await store.load_input_states("rt") == changed
    _check(await store.dump_runtime("rt"))


async def test_a_runtime_holding_only_a_lease_is_listed(store):
    await store.acquire_lease("leased", "w", ttl=30)
    assert "leased" in (await walk_runtimes(store, 10))[0]
    await store.revoke_lease("leased")
    assert "leased" in (await walk_runtimes(store, 10))[0]


async def test_two_inputs_claiming_one_key_are_refused_naming_both(store):
    a = keyed("webhook-7")
    await store.persist_input_state("rt", a)
    before = await store.dump_runtime("rt")
    b = keyed("webhook-7")
    run_id = RunId.new()
    for call in [
        lambda: store.persist_input_state("rt", b),
        lambda: store.atomic_lifecycle_commit("rt", RuntimeState.RUNNING, [keyed(None), b]),
        lambda: store.commit_session_boundary("rt", delta(1), run_id, RunApplyBoundary.RUN_START, [], [b]),
        lambda: store.atomic_apply("rt", delta(1), make_receipt(run_id, 0), [b]),
    ]:
        with pytest.raises(IdempotencyKeyConflict) as caught:
            await call()
        error = caught.value
        assert (error.key, error.holder, error.claimant) == ("webhook-7", str(a.input_id), str(b.input_id))
        assert str(a.input_id) in str(error) and str(b.input_id) in str(error)
    with pytest.raises(IdempotencyKeyConflict):  # two in one batch: refused before anything is sent
        await store.atomic_lifecycle_commit("rt", RuntimeState.RUNNING, [keyed("k2"), keyed("k2")])
    assert await store.dump_runtime("rt") == before  # nothing of any of them was written
    assert await store.load_runtime_state("rt") is None
    # Handing a key over in one batch is no conflict: a gives it up as b takes it.
    await store.atomic_lifecycle_commit("rt", RuntimeState.RUNNING, [b, keyed("webhook-8", a.input_id)])
    assert (await store.load_input_state_by_idempotency_key("rt", "webhook-7")).input_id == b.input_id
    assert (await store.load_input_state_by_idempotency_key("rt", "webhook-8")).input_id == a.input_id
    await store.persist_input_state("rt", b)  # the holder writing itself again is fine
    _check(await store.dump_runtime("rt"))


async def test_delete_and_prune_know_the_index(store):
    a = keyed("hook")
    await commit(store, "rt", RunId.new(), [a])
    await commit(store, "rt", RunId.new(), [])
    await store.prune_runtime("rt", keep_runs=0)
    assert (await store.load_input_state_by_idempotency_key("rt", "hook")).input_id == a.input_id
    assert await store.delete_runtime("rt")
    assert await store.load_input_state_by_idempotency_key("rt", "hook") is None
    assert (await store.dump_runtime("rt")).index == {}
    await store.persist_input_state("rt", keyed("hook"))  # the key is free again


@pytest.mark.parametrize("key", ["", "a\nb", "a\r\nb", "x\x00y", "key:input:1", " spaced  out ", "名前 🦜"])
async def test_a_conflict_names_any_key_exactly(store, key):
    a, b = keyed(key), keyed(key)
    await store.persist_input_state("rt", a)
    with pytest.raises(IdempotencyKeyConflict) as caught:
        await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, [b])
    assert (caught.value.key, caught.value.holder, caught.value.claimant) == (key, str(a.input_id), str(b.input_id))
    assert await store.load_input_state_by_idempotency_key("rt", key) == a
    assert await store.load_input_states("rt") == [a]
