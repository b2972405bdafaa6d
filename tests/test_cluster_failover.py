"""Redis Cluster failing under load: 3 masters with a replica each, AOF
``always``, committers in two processes retrying failed commits with the
same commit id. Masters and replicas are SIGKILLed, a node is killed during
a slot migration, and failovers are run by hand (CLUSTER FAILOVER, and
TAKEOVER). With ``wait_replicas=1`` no acknowledged commit is lost, the
sequences of every run are dense, and ``check`` is clean; no committer ever
sees an exception other than ``RuntimeStoreError``. Without WAIT the loss is
measured and printed (README "Guarantees")."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from redis_store import FencedOut, WriteFailed, RunApplyBoundary, RunBoundaryReceipt, RunId, SessionDelta, open_store
from redis_store.audit import check_store
from redis_store.keys import KeyLayout
from sessions import session_json
from topologies import keyslot, require_topology_binaries, start_cluster

pytestmark = [pytest.mark.slow, pytest.mark.real_server]

NODE_TIMEOUT_MS = 2000
#: Long enough for a failover on a loaded 2-core machine: node timeout,
#: election, and the promoted replica's first sync.
REFUSAL_WINDOW = 30
KIT = Path(__file__).with_name("failoverkit.py")


@pytest.fixture(scope="module")
def cluster():
    require_topology_binaries()
    cluster = start_cluster(
        masters=3, replicas_per_master=1, node_timeout_ms=NODE_TIMEOUT_MS,
        extra_args=("--appendonly", "yes", "--appendfsync", "always"),
    )
    yield cluster
    cluster.stop()


def _runtimes(cluster, namespace: str, per_master: int) -> dict[int, list[str]]:
    """Runtime ids grouped by the master that owns their slot."""
    by_master: dict[int, list[str]] = {port: [] for port in cluster.masters()}
    n = 0
    while any(len(rids) < per_master for rids in by_master.values()):
        rid = f"rt-{n}"
        owner = cluster.master_of(keyslot(KeyLayout(namespace).runtime(rid).receipts))
        if len(by_master[owner]) < per_master:
            by_master[owner].append(rid)
        n += 1
    return by_master


class Committers:
    """Committer processes (``failoverkit.py``) and what they acknowledged."""

    def __init__(self, url: str, groups: list[list[str]], tmp: Path) -> None:
        self.stop_file = tmp / "stop"
        self.outputs = [tmp / f"worker-{i}.jsonl" for i in range(len(groups))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(KIT.parent), *sys.path])}
        self.procs = [
            subprocess.Popen([sys.executable, str(KIT), url, f"w{i}", str(out), str(self.stop_file), *rids],
                             env=env, stdin=subprocess.DEVNULL)
            for i, (out, rids) in enumerate(zip(self.outputs, groups))
        ]

    def records(self) -> list[dict]:
        return [json.loads(line) for out in self.outputs if out.exists()
                for line in out.read_text().splitlines() if line.strip()]

    def acknowledged(self) -> list[dict]:
        return [r for r in self.records() if "sequence" in r]

    def wait_for_progress(self, commits: int, timeout: float = 60.0) -> None:
        """Until ``commits`` more commits were acknowledged (the store carries on by itself)."""
        target, deadline = len(self.acknowledged()) + commits, time.monotonic() + timeout
        while len(self.acknowledged()) < target:
            assert all(p.poll() is None for p in self.procs), self._failed()
            assert time.monotonic() < deadline, f"no progress within {timeout} s\n{self._failed()}"
            time.sleep(0.05)

    def finish(self) -> None:
        self.stop_file.touch()
        for proc in self.procs:
            proc.wait(timeout=180)
        codes = [p.returncode for p in self.procs]
        assert codes == [0] * len(codes), f"committers exited {codes}\n{self._failed()}"

    def _failed(self) -> str:
        return "\n".join(json.dumps(r) for r in self.records() if "sequence" not in r)[-4000:]


def _longest_gap(acknowledged: list[dict], since: float, until: float) -> float:
    """The longest time any runtime went without an acknowledged commit."""
    longest = 0.0
    for rid in {r["runtime"] for r in acknowledged}:
        times = [since] + sorted(r["t"] for r in acknowledged if r["runtime"] == rid and since <= r["t"] <= until) + [until]
        longest = max(longest, *(b - a for a, b in zip(times, times[1:])))
    return longest


async def _lost(store, acknowledged: list[dict]) -> list[dict]:
    lost = []
    for record in acknowledged:
        stored = await store.load_boundary_receipt(record["runtime"], RunId(record["run"]), record["sequence"])
        if stored != RunBoundaryReceipt.from_json(record["receipt"]):
            lost.append(record)
    return lost


def _kill_and_restart(cluster, port: int) -> None:
    """SIGKILL a node. A master's replica takes over; then the node restarts
    and rejoins, a master as a replica of its successor."""
    successor = cluster.replicas_of(port)[0] if port in cluster.masters() else None
    slots = cluster.slots_of(port) if successor else []
    cluster.node(port).kill()
    if successor:
        cluster.wait_slot_owner(slots[0], successor, timeout=60)
    cluster.node(port).restart()
    cluster.wait_ok(timeout=60)
    if successor:
        assert port in cluster.replicas_of(successor)


def _manual_failover(cluster, master: int, *options: str) -> None:
    """CLUSTER FAILOVER [TAKEOVER] on the master's replica, as an operator runs it."""
    replica, slot = cluster.replicas_of(master)[0], cluster.slots_of(master)[0]
    with redis.Redis(host="127.0.0.1", port=replica) as client:
        client.execute_command("CLUSTER", "FAILOVER", *options)
    cluster.wait_slot_owner(slot, replica, timeout=60)
    cluster.wait_ok(timeout=60)
    assert master in cluster.replicas_of(replica)


async def test_failovers_under_load_lose_no_acknowledged_commit_with_wait_replicas(cluster, tmp_path):
    namespace = "failover-wait"
    url = (f"{cluster.startup_url}?namespace={namespace}&wait_replicas=1&wait_timeout=2"
           f"&refusal_window={REFUSAL_WINDOW}&guard=off")
    by_master = _runtimes(cluster, namespace, per_master=2)
    groups = [[rids[0] for rids in by_master.values()], [rids[1] for rids in by_master.values()]]
    committers = Committers(url, groups, tmp_path)
    gaps = []
    try:
        committers.wait_for_progress(30)

        def event(name, action):
            started = time.time()
            action()
            committers.wait_for_progress(20)  # commits resume by themselves
            gaps.append((name, _longest_gap(committers.acknowledged(), started, time.time())))

        masters = cluster.masters()
        event("kill a master", lambda: _kill_and_restart(cluster, masters[0]))
        event("kill a replica", lambda: _kill_and_restart(cluster, cluster.replicas_of(cluster.masters()[1])[0]))
        busiest = cluster.master_of(keyslot(KeyLayout(namespace).runtime(groups[0][0]).receipts))
        event("kill the master owning w0's first runtime", lambda: _kill_and_restart(cluster, busiest))

        def kill_during_migration():
            rid = groups[1][1]
            slot = keyslot(KeyLayout(namespace).runtime(rid).receipts)
            source = cluster.master_of(slot)
            target, bystander = [p for p in cluster.masters() if p != source][:2]
            with cluster.move_slot_steps(slot, target, batch=1) as migration:
                migration.migrate(1)  # split: commits to rid meet ASK / TRYAGAIN
                _kill_and_restart(cluster, bystander)
            assert cluster.master_of(slot) == target

        event("kill a master during a slot migration", kill_during_migration)
        event("CLUSTER FAILOVER", lambda: _manual_failover(cluster, cluster.masters()[0]))
        event("CLUSTER FAILOVER TAKEOVER", lambda: _manual_failover(cluster, cluster.masters()[1], "TAKEOVER"))
        event("kill a master again", lambda: _kill_and_restart(cluster, cluster.masters()[2]))
        event("kill a replica again", lambda: _kill_and_restart(cluster, cluster.replicas_of(cluster.masters()[0])[0]))
        event("CLUSTER FAILOVER back", lambda: _manual_failover(cluster, cluster.masters()[2]))
        event("kill a master a last time", lambda: _kill_and_restart(cluster, cluster.masters()[1]))
    finally:
        committers.finish()

    records = committers.records()
    assert not [r for r in records if "escaped" in r]
    acknowledged = committers.acknowledged()
    print("\nfailover gaps (longest pause between acknowledged commits, s):",
          ", ".join(f"{name}: {gap:.2f}" for name, gap in gaps))
    print(f"{len(acknowledged)} commits acknowledged; {sum('failure' in r for r in records)} failed attempts retried")
    async with open_store(url) as store:
        assert await _lost(store, acknowledged) == []
        runs: dict[tuple[str, str], list[int]] = {}
        for record in acknowledged:
            runs.setdefault((record["runtime"], record["run"]), []).append(record["sequence"])
        for (rid, run), sequences in runs.items():
            assert sorted(sequences) == list(range(len(sequences))), (rid, run)  # dense, no duplicates
            assert await store.load_boundary_receipt(rid, RunId(run), len(sequences)) is None
        rids = [rid for group in groups for rid in group]
        listed, cursor = [], 0
        while True:  # paging by shard survives the failovers (primaries in slot order)
            cursor, page = await store.list_runtimes(cursor, 100)
            listed += page
            if cursor == 0:
                break
        assert sorted(listed) == sorted(rids)
        violations = [v async for report in check_store(store, rids) for v in report.violations]
        assert violations == []


async def test_a_lease_survives_a_failover_and_the_next_token_is_larger(cluster):
    namespace = "failover-lease"
    url = f"{cluster.startup_url}?namespace={namespace}&wait_replicas=1&wait_timeout=2&refusal_window={REFUSAL_WINDOW}&guard=off"
    async with open_store(url) as store:
        rid = "leased"
        lease = await store.acquire_lease(rid, "worker-1", 120)
        await store.commit_session_boundary(rid, SessionDelta(session_json(1)), RunId.new(), RunApplyBoundary.RUN_START,
                                            [], [], lease=lease, commit_id="before")
        owner = cluster.master_of(keyslot(KeyLayout(namespace).runtime(rid).lease))
        await asyncio.to_thread(_kill_and_restart, cluster, owner)
        honoured = await store.current_lease(rid)
        assert (honoured.owner, honoured.token) == ("worker-1", lease.token)  # replicated before it was granted
        await store.commit_session_boundary(rid, SessionDelta(session_json(1)), RunId.new(), RunApplyBoundary.RUN_START,
                                            [], [], lease=lease, commit_id="after")
        stolen = await store.steal_lease(rid, "worker-2", 120)
        assert stolen.token > lease.token  # never handed out twice
        with pytest.raises(FencedOut):
            await store.commit_session_boundary(rid, SessionDelta(session_json(1)), RunId.new(),
                                                RunApplyBoundary.RUN_START, [], [], lease=lease)


async def test_wait_on_cluster_counts_the_writes_replicas(cluster):
    namespace = "failover-ack"
    url = f"{cluster.startup_url}?namespace={namespace}&wait_replicas=1&wait_timeout=0.3&guard=off"
    async with open_store(url) as store:
        rid, run_id, snapshot = "acked", RunId.new(), SessionDelta(session_json(1))
        first = await store.commit_session_boundary(rid, snapshot, run_id,
                                                    RunApplyBoundary.RUN_START, [], [], commit_id="c0")
        owner = cluster.master_of(keyslot(KeyLayout(namespace).runtime(rid).receipts))
        replica = cluster.node(cluster.replicas_of(owner)[0])
        replica.pause()  # connected, but acknowledges nothing
        try:
            with pytest.raises(WriteFailed) as info:
                await store.commit_session_boundary(rid, snapshot, run_id,
                                                    RunApplyBoundary.RUN_CHECKPOINT, [], [], commit_id="c1")
            assert "applied on the primary, but only 0 of 1 replicas acknowledged it" in str(info.value)
        finally:
            replica.resume()
        # Applied on the primary: the retry with the same commit id replays it.
        replayed = await store.commit_session_boundary(rid, snapshot, run_id,
                                                       RunApplyBoundary.RUN_CHECKPOINT, [], [], commit_id="c1")
        assert (first.sequence, replayed.sequence) == (0, 1)


async def test_without_wait_a_master_kill_loses_at_most_the_unreplicated_tail(cluster, tmp_path):
    """Measured, not promised: how many acknowledged commits a SIGKILLed
    master takes with it when nothing waits for its replica."""
    namespace = "failover-nowait"
    url = f"{cluster.startup_url}?namespace={namespace}&refusal_window={REFUSAL_WINDOW}&guard=off"
    by_master = _runtimes(cluster, namespace, per_master=2)
    groups = [[rids[0] for rids in by_master.values()], [rids[1] for rids in by_master.values()]]
    committers = Committers(url, groups, tmp_path)
    try:
        committers.wait_for_progress(100)
        _kill_and_restart(cluster, cluster.master_of(keyslot(KeyLayout(namespace).runtime(groups[0][0]).receipts)))
        committers.wait_for_progress(50)
    finally:
        committers.finish()
    acknowledged = committers.acknowledged()
    async with open_store(url) as store:
        lost = await _lost(store, acknowledged)
    print(f"\nwithout WAIT: {len(lost)} of {len(acknowledged)} acknowledged commits lost to one master kill")
    assert not [r for r in committers.records() if "escaped" in r]
    assert len(acknowledged) >= 150
