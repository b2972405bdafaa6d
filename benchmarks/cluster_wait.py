"""python -m benchmarks.cluster_wait: what ``wait_replicas=1`` costs a
commit on Redis Cluster (3 masters with a replica each, AOF everysec, on
loopback), side by side with the same commits without WAIT, medians of 5.

Separate from ``python -m benchmarks`` because it starts a six-node
cluster (the tests' harness, ``tests/topologies.py``).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from redis_store import RunApplyBoundary, RunId, SessionDelta, open_store  # noqa: E402
from sessions import session_json  # noqa: E402
from topologies import start_cluster  # noqa: E402

COMMITS = 300


async def _rate(url: str, workers: int) -> float:
    async with open_store(url) as store:
        snapshot = SessionDelta(session_json(2))

        async def worker(i: int) -> None:
            run_id = RunId.new()
            for _ in range(COMMITS):
                await store.commit_session_boundary(f"rt-{i}", snapshot, run_id, RunApplyBoundary.RUN_CHECKPOINT, [], [])

        await worker(-1)  # scripts loaded, connections open
        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(workers)))
        return COMMITS * workers / (time.perf_counter() - started)


def main() -> None:
    cluster = start_cluster(masters=3, replicas_per_master=1, extra_args=("--appendonly", "yes", "--appendfsync", "everysec"))
    try:
        print("concurrency | no WAIT commits/s | wait_replicas=1 commits/s | ratio | extra per commit")
        for workers in (1, 8):
            plain, waited = [], []
            for _ in range(5):  # alternated, so both see the same machine
                plain.append(asyncio.run(_rate(f"{cluster.startup_url}?namespace=plain&guard=off", workers)))
                waited.append(asyncio.run(_rate(f"{cluster.startup_url}?namespace=wait&guard=off&wait_replicas=1", workers)))
            a, b = statistics.median(plain), statistics.median(waited)
            print(f"c={workers} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x | {1e6 / b - 1e6 / a:,.0f} us")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
