"""Many concurrent commits for one (runtime, run), from several clients:
sequences are exactly 0..N-1 and every receipt and stamped input is stored."""

from __future__ import annotations

import asyncio

from redis_store import InputId, InputState, RunApplyBoundary, RunId, SessionDelta
from sessions import session_json

COMMITS = 200
CLIENTS = 5


async def test_concurrent_commits_get_dense_unique_sequences(backend):
    stores = [backend.open() for _ in range(CLIENTS)]
    run_id = RunId.new()
    snapshot = SessionDelta(session_json(2))
    states = [InputState.new_accepted(InputId.new()) for _ in range(COMMITS)]

    async def one(i: int):
        store = stores[i % CLIENTS]
        return await store.commit_session_boundary(
            "shared-rt", snapshot, run_id, RunApplyBoundary.RUN_CHECKPOINT, [states[i].input_id], [states[i]]
        )

    receipts = await asyncio.gather(*(one(i) for i in range(COMMITS)))
    assert sorted(r.sequence for r in receipts) == list(range(COMMITS))

    reader = stores[0]
    for receipt in receipts:
        assert await reader.load_boundary_receipt("shared-rt", run_id, receipt.sequence) == receipt
    stored = {s.input_id: s for s in await reader.load_input_states("shared-rt")}
    assert len(stored) == COMMITS
    for i, receipt in enumerate(receipts):
        state = stored[states[i].input_id]
        assert (state.last_run_id, state.last_boundary_sequence) == (run_id, receipt.sequence)
        assert receipt.contributing_input_ids == [states[i].input_id]
