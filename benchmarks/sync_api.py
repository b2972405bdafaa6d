"""The blocking API's cost (issue 11): ``commit_session_boundary`` of a 4 KB
snapshot with 3 input updates through ``redis_store.sync`` from 1 and 8
threads, side by side with the async store at concurrency 1 and 8 (asyncio
tasks), on the same server.

Each sync store runs the async store on its own event-loop thread, so every
call is handed from the caller's thread to that loop and back. On Redis
that hop is part of a network round trip; on ``memory://`` the commit does
no I/O. Each thread or task commits to its own runtime, back to back, in the
windows of ``harness.drive``. The hop alone is measured as the median time
of ``load_runtime_state`` on an in-memory store (a dict lookup under a lock)
called blocking from one thread, minus the same call awaited on a loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

from redis_store import InMemoryRuntimeStore, RedisRuntimeStore, RunApplyBoundary, RunId, SessionDelta
from redis_store.sync import SyncRuntimeStore

from . import workload
from .harness import Sample, Settings, cleanup, client_for, drive, log, median, paired_ratio, rotated, table, time_calls

SIZE = 4096
CONCURRENCY = (1, 8)
INPUTS_PER_COMMIT = 3
BACKENDS = ("redis", "memory")


def _commit_args(task: int, snapshot: bytes) -> tuple:
    states = workload.input_states(INPUTS_PER_COMMIT)
    return (f"sync-bench-{task}", SessionDelta(snapshot), RunId.new(), RunApplyBoundary.RUN_CHECKPOINT,
            [s.input_id for s in states], states)


def drive_threads(calls: list[Callable[[], Any]], duration: float, warmup: float) -> Sample:
    """``harness.drive`` with one thread per call instead of one task."""
    start = time.perf_counter()
    window, end = start + warmup, start + warmup + duration
    latencies: list[float] = []
    done = [window]
    lock = threading.Lock()

    def worker(call: Callable[[], Any]) -> None:
        while (t0 := time.perf_counter()) < end:
            call()
            t1 = time.perf_counter()
            if t0 >= window:
                with lock:
                    latencies.append(t1 - t0)
                    done[0] = max(done[0], t1)

    threads = [threading.Thread(target=worker, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Sample(len(latencies), done[0] - window, latencies)


async def _measure_async(store, c: int, snapshot: bytes, s: Settings) -> Sample:
    def op(task: int):
        args = _commit_args(task, snapshot)
        return lambda: store.commit_session_boundary(*args)

    return await drive([op(task) for task in range(c)], s.duration, s.warmup)


async def _measure_sync(sync: SyncRuntimeStore, c: int, snapshot: bytes, s: Settings) -> Sample:
    def call(task: int):
        args = _commit_args(task, snapshot)
        return lambda: sync.commit_session_boundary(*args)

    calls = [call(task) for task in range(c)]
    return await asyncio.to_thread(drive_threads, calls, s.duration, s.warmup)  # blocking calls: off this loop


def _stores(backend: str, url: str, namespace: str):
    """(async store on this loop, sync store on its own loop thread), equally configured."""
    if backend == "memory":
        return InMemoryRuntimeStore(), SyncRuntimeStore(InMemoryRuntimeStore())
    return (RedisRuntimeStore.from_url(url, namespace=namespace),
            SyncRuntimeStore(lambda: RedisRuntimeStore.from_url(url, namespace=namespace)))


def _time_blocking(call: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


async def measure_hop(settings: Settings) -> dict[str, float]:
    """Median us of one near-free call, awaited and blocking, and their difference."""
    repeat = 500 if settings.quick else 3000
    store, sync = InMemoryRuntimeStore(), SyncRuntimeStore(InMemoryRuntimeStore())
    try:
        awaited, blocking = [], []
        for run_number in range(settings.runs):
            for api in rotated(["async", "sync"], run_number):
                if api == "async":
                    awaited.append(median(await time_calls(lambda: store.load_runtime_state("rt"), repeat)) * 1e6)
                else:
                    blocking.append(median(await asyncio.to_thread(_time_blocking, lambda: sync.load_runtime_state("rt"), repeat)) * 1e6)
    finally:
        await asyncio.to_thread(sync.close)
    return {"async_us": median(awaited), "sync_us": median(blocking),
            "hop_us": median(b - a for a, b in zip(awaited, blocking))}


async def run(url: str, settings: Settings) -> dict[str, Any]:
    s = settings
    snapshot = workload.session_snapshot(SIZE)
    client = client_for(url)
    results: dict = {}
    hop = await measure_hop(s)
    log(f"sync hop: {hop['hop_us']:.0f} us per call")
    try:
        for backend in BACKENDS:
            async_store, sync_store = _stores(backend, url, f"{s.prefix}-sync")
            try:
                for c in CONCURRENCY:
                    samples: dict[str, list[Sample]] = {"async": [], "sync": []}
                    for run_number in range(s.runs):
                        for api in rotated(["async", "sync"], run_number):
                            if api == "async":
                                sample = await _measure_async(async_store, c, snapshot, s)
                            else:
                                sample = await _measure_sync(sync_store, c, snapshot, s)
                            samples[api].append(sample)
                            await cleanup(client, s.prefix)
                    a, b = samples["async"], samples["sync"]
                    results.setdefault(backend, {})[str(c)] = {
                        api: {
                            "ops_per_s": median(x.ops_per_s for x in runs),
                            "p50_ms": median(x.p50_ms for x in runs),
                            "p99_ms": median(x.p99_ms for x in runs),
                        }
                        for api, runs in samples.items()
                    } | {
                        "sync_over_async_ops": paired_ratio([x.ops_per_s for x in b], [x.ops_per_s for x in a]),
                        "p50_diff_us": median((y.p50_ms - x.p50_ms) * 1e3 for x, y in zip(a, b)),
                    }
                    r = results[backend][str(c)]
                    log(f"sync {backend} c={c}: async {r['async']['ops_per_s']:,.0f}/s, sync {r['sync']['ops_per_s']:,.0f}/s, "
                        f"p50 {r['p50_diff_us']:+.0f} us")
            finally:
                await async_store.aclose()
                await asyncio.to_thread(sync_store.close)
    finally:
        await client.aclose()
    return {"snapshot_bytes": len(snapshot), "hop": hop, "results": results}


def report(data: dict[str, Any]) -> str:
    rows = []
    for backend, by_c in data["results"].items():
        for c, r in by_c.items():
            for api in ("async", "sync"):
                note = ""
                if api == "sync":
                    note = f"{r['sync_over_async_ops']:.2f}x ops/s, p50 {r['p50_diff_us']:+.0f} us"
                who = f"{c} task{'s' if c != '1' else ''}" if api == "async" else f"{c} thread{'s' if c != '1' else ''}"
                rows.append([backend, who, api, r[api]["ops_per_s"], r[api]["p50_ms"], r[api]["p99_ms"], note])
    return (
        f"commit_session_boundary, {data['snapshot_bytes']:,} B snapshot, {INPUTS_PER_COMMIT} input updates; "
        "sync = redis_store.sync from that many threads (one store, its loop thread), "
        "async = the same store API on asyncio tasks; memory:// does no I/O\n"
        + table(["backend", "callers", "api", "ops/s", "p50 ms", "p99 ms", "sync vs async"], rows)
        + f"\nthread hop alone: {data['hop']['hop_us']:.0f} us per call (memory load_runtime_state: "
        f"{data['hop']['sync_us']:.0f} us blocking from a thread vs {data['hop']['async_us']:.0f} us awaited)"
    )
