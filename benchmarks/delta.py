"""python -m benchmarks.delta: snapshot deltas on a growing session.

A session grows by one turn per commit (as a worker's does), from about
4 KB, 64 KB or 1 MB. Each size runs with deltas (the default) and with
``delta_cache_bytes=0`` (every snapshot whole), alternated on one private
redis-server with AOF (everysec), medians of 5. Per commit: commits/s,
bytes the server received (INFO total_net_input_bytes), AOF growth
(aof_current_size) and server CPU (used_cpu_user + used_cpu_sys).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from redis_store import RunApplyBoundary, RunId, SessionDelta, open_store  # noqa: E402
from redis_store.embedded import ServerProcess, any_server_binary  # noqa: E402
from sessions import session_json  # noqa: E402

COMMITS = 20
# Turns at the start (~560 bytes each), past the envelope header changes at
# 256 B and 64 KB (a commit crossing one is sent whole).
SIZES = {"4 KB": 6, "64 KB": 117, "1 MB": 1850}
SID = "3f0c4f5e-8f7e-4c1e-9a55-0d4ab1a1c0de"


def _server_counters(admin: redis.Redis) -> tuple[int, int, float]:
    stats, persistence, cpu = admin.info("stats"), admin.info("persistence"), admin.info("cpu")
    return (int(stats["total_net_input_bytes"]), int(persistence["aof_current_size"]),
            float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))


async def _run(url: str, admin: redis.Redis, turns: int, deltas: bool, rid: str) -> dict:
    snapshots = [session_json(turns + i, SID) for i in range(COMMITS + 1)]
    async with open_store(url, delta_cache_bytes=64 << 20 if deltas else 0) as store:
        run_id = RunId.new()
        await store.commit_session_boundary(rid, SessionDelta(snapshots[0]), run_id, RunApplyBoundary.RUN_START, [], [])
        net, aof, cpu = _server_counters(admin)
        started = time.perf_counter()
        for snapshot in snapshots[1:]:
            await store.commit_session_boundary(rid, SessionDelta(snapshot), run_id, RunApplyBoundary.RUN_CHECKPOINT, [], [])
        elapsed = time.perf_counter() - started
        net2, aof2, cpu2 = _server_counters(admin)
        assert await store.load_session_snapshot(rid) == snapshots[-1]
    return {"rate": COMMITS / elapsed, "sent": (net2 - net) / COMMITS, "aof": (aof2 - aof) / COMMITS,
            "cpu_us": (cpu2 - cpu) / COMMITS * 1e6, "size": len(snapshots[-1]),
            "turn": len(snapshots[-1]) - len(snapshots[-2])}


def main() -> None:
    binary = any_server_binary()
    if binary is None:
        raise SystemExit("no redis-server or valkey-server binary")
    # No automatic AOF rewrite: it would shrink the file in the middle of a measurement.
    server = ServerProcess(binary, "--appendonly", "yes", "--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0").start()
    admin = redis.Redis(port=server.port)
    url = f"{server.url}?namespace=bench&guard=off"
    try:
        print(f"{'session':>8} | {'mode':>6} | commits/s | bytes sent/commit | AOF bytes/commit | server CPU us/commit | new turn")
        rates = {}
        for label, turns in SIZES.items():
            results: dict[str, list[dict]] = {"delta": [], "whole": []}
            for n in range(5):
                for mode in ("delta", "whole"):  # alternated: both see the same machine
                    results[mode].append(asyncio.run(_run(url, admin, turns, mode == "delta", f"{label}-{mode}-{n}")))
            for mode, runs in results.items():
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rates[(label, mode)] = med["rate"]
                print(f"{label:>8} | {mode:>6} | {med['rate']:9,.0f} | {med['sent']:17,.0f} | {med['aof']:16,.0f} | "
                      f"{med['cpu_us']:20,.0f} | {med['turn']:,.0f} B of {med['size']:,.0f}")
        for mode in ("delta", "whole"):
            print(f"1 MB / 4 KB commit rate, {mode}: {rates[('1 MB', mode)] / rates[('4 KB', mode)]:.2f}x")
    finally:
        admin.close()
        server.stop()


if __name__ == "__main__":
    main()
