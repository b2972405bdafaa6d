"""The store on real multi-node topologies: a slot holding a live runtime
moves to another master while commits go on; a Sentinel failover with
wait_replicas=1 loses no acknowledged commit."""

from __future__ import annotations

import asyncio

import pytest
import redis

from redis_store import RunApplyBoundary, RunId, SessionDelta, WriteFailed, open_store
from redis_store.audit import check_store
from redis_store.keys import KeyLayout
from sessions import session_json
from topologies import keyslot, require_topology_binaries, start_sentinel

pytestmark = [pytest.mark.slow, pytest.mark.real_server]


async def _violations(store, runtimes):
    return [v async for report in check_store(store, runtimes) for v in report.violations]


async def test_resharding_a_live_runtime_loses_and_duplicates_nothing(cluster_server):
    cluster = cluster_server
    namespace = "reshard"
    async with open_store(cluster.startup_url, namespace=namespace) as store:
        rid, run_id = "live-runtime", RunId.new()
        snapshot = SessionDelta(session_json(2))
        await store.commit_session_boundary(rid, snapshot, run_id, RunApplyBoundary.RUN_START, [], [])
        slot = keyslot(KeyLayout(namespace).runtime(rid).receipts)
        source = cluster.master_of(slot)
        target = next(port for port in cluster.masters() if port != source)

        stop = asyncio.Event()
        receipts = []

        async def committer(worker: int) -> None:
            n = 0
            while not stop.is_set() or n < 5:
                receipt = await store.commit_session_boundary(
                    rid, snapshot, run_id, RunApplyBoundary.RUN_CHECKPOINT, [], [], commit_id=f"w{worker}-{n}")
                receipts.append(receipt)
                n += 1

        def reshard() -> None:
            with cluster.move_slot_steps(slot, target, batch=1) as migration:
                while migration.remaining():  # one key at a time: commits meet a split slot
                    migration.migrate(1)

        workers = [asyncio.create_task(committer(w)) for w in range(4)]
        await asyncio.sleep(0.2)
        await asyncio.to_thread(reshard)
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*workers)

        assert cluster.master_of(slot) == target
        # The commits did meet the split slot, and the store retried them itself.
        assert store.refusals_retried.keys() & {"TryAgainError", "AskError", "MovedError"}, store.refusals_retried
        sequences = sorted(r.sequence for r in receipts)
        assert sequences == list(range(1, len(receipts) + 1))  # dense, no duplicates, none lost
        for receipt in receipts:
            assert await store.load_boundary_receipt(rid, run_id, receipt.sequence) == receipt
        assert await store.load_boundary_receipt(rid, run_id, len(receipts) + 1) is None
        assert await _violations(store, [rid]) == []


@pytest.fixture
def sentinel_setup():
    require_topology_binaries()
    setup = start_sentinel(replicas=1, sentinels=3)
    yield setup
    setup.stop()


async def test_sentinel_failover_keeps_every_acknowledged_commit(sentinel_setup):
    setup = sentinel_setup
    url = f"{setup.url}?namespace=failover&wait_replicas=1&wait_timeout=2"
    async with open_store(url) as store:
        rid, run_id = "rt", RunId.new()
        acknowledged = []

        async def commit(n: int):  # no retry here: the store must ride out the failover itself
            return await store.commit_session_boundary(
                rid, SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], [], commit_id=f"c{n}")

        for n in range(20):
            acknowledged.append(await commit(n))
        old_primary = setup.primary_port()
        new_primary = await asyncio.to_thread(setup.failover)
        assert new_primary != old_primary
        for n in range(20, 40):
            acknowledged.append(await commit(n))
        # The first write after the failover met the demoted primary (READONLY) and was retried.
        assert store.refusals_retried["ReadOnlyError"] >= 1, store.refusals_retried

        assert [r.sequence for r in acknowledged] == list(range(40))
        for receipt in acknowledged:  # reads go to the new primary and see every acknowledged commit
            assert await store.load_boundary_receipt(rid, run_id, receipt.sequence) == receipt
        assert await _violations(store, [rid]) == []


async def test_wait_replicas_fails_clearly_without_replicas(redis_server):
    async with open_store(f"{redis_server.url}?namespace=wait&wait_replicas=1&wait_timeout=0.2") as store:
        run_id = RunId.new()
        with pytest.raises(WriteFailed, match="applied on the primary, but only 0 of 1 replicas acknowledged"):
            await store.commit_session_boundary("rt", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], [])
        # README: "applied on the primary": the receipt is there, on the primary.
        assert (await store.load_boundary_receipt("rt", run_id, 0)).sequence == 0


async def test_a_replica_refusing_writes_is_retried_until_promoted(redis_server):
    """READONLY (a primary demoted, or not yet promoted) is a refusal: the
    store retries it itself within refusal_window; the commit lands once the
    server takes writes."""
    from servers import ServerProcess

    replica = ServerProcess(redis_server.binary).start()
    admin = redis.Redis(host="127.0.0.1", port=replica.port)
    try:
        admin.execute_command("REPLICAOF", "127.0.0.1", str(redis_server.port))
        async with open_store(f"{replica.url}?namespace=readonly&refusal_window=30&guard=off") as store:
            commit = asyncio.create_task(store.commit_session_boundary(
                "rt", SessionDelta(session_json(1)), RunId.new(), RunApplyBoundary.RUN_START, [], []))
            while not store.refusals_retried["ReadOnlyError"]:
                assert not commit.done(), commit
                await asyncio.sleep(0.01)
            admin.execute_command("REPLICAOF", "NO", "ONE")
            assert (await commit).sequence == 0
    finally:
        admin.close()
        replica.stop()
