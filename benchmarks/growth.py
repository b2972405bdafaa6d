"""Growth (issue 3 §2, third item): how costs move as a runtime fills up.

* commit latency (4 KB, concurrency 1) with 0, 10k and 100k receipts already
  in the run; the receipts are written straight into the run's hash, the
  same encoded values a commit writes, pipelined 1,000 per HSET. The three
  runs are committed to in turn, one commit each, so that the machine's
  noise falls on all three alike; then the server's own time per commit;
* ``load_input_states`` for 10, 1k and 10k inputs, per call and per input;
  ``fetch`` is the EVALSHA alone (script, transfer, redis-py parsing of the
  reply), the rest is decoding;
* Redis memory per stored input state and per receipt (``MEMORY USAGE ...
  SAMPLES 0`` of the hash, plus the order list for inputs, over the count)
  against the encoded value's length;
* digest time (``session_digest``) of snapshots from 1 KB to 4 MB.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio

from redis_store import RunApplyBoundary, RunId, RuntimeState, SessionDelta, codec, session_digest
from redis_store.keys import KeyLayout

from . import throughput, workload
from .harness import (
    EvalshaRecorder, Sample, Settings, cleanup, command_usec, log, median, paired_ratio, reset_stats, rotated, table, time_calls,
)


def _sizes(settings: Settings) -> dict[str, tuple]:
    if settings.quick:
        return {"receipts": (0, 1_000, 10_000), "inputs": (10, 100, 1_000), "digest": (1 << 10, 16 << 10, 256 << 10, 1 << 20)}
    return {"receipts": (0, 10_000, 100_000), "inputs": (10, 1_000, 10_000), "digest": (1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20)}


# -- receipts ------------------------------------------------------------------------

async def fill_receipts(ctx: throughput.Context, runtime: str, run_id: RunId, count: int) -> int:
    """Store receipts 0..count-1 of ``run_id`` as commits would have; return
    the encoded length of one."""
    keys = KeyLayout(ctx.namespace).runtime(runtime)
    p = ctx.payload(4096)
    digest, messages = session_digest(p.snapshot)
    prefix = codec.receipt_prefix({
        "run_id": str(run_id), "boundary": RunApplyBoundary.RUN_CHECKPOINT.value,
        "contributing_input_ids": [str(i) for i in p.contributing],
        "conversation_digest": digest, "message_count": messages,
    })
    if count:
        pipe = ctx.client.pipeline(transaction=False)
        for first in range(0, count, 1000):
            pipe.hset(keys.receipts, mapping={
                f"{run_id}:{s}": prefix + codec.seq_suffix(s) for s in range(first, min(count, first + 1000))
            })
        pipe.hset(keys.run_seqs, str(run_id), count - 1)
        await pipe.execute()
        if await ctx.store.load_boundary_receipt(runtime, run_id, count - 1) is None:
            raise RuntimeError("the receipt fill does not match the store's key layout")
    return len(prefix) + len(codec.seq_suffix(0))


async def receipts(ctx: throughput.Context, counts: tuple) -> dict[str, Any]:
    s = ctx.settings
    samples: dict[int, list] = {n: [] for n in counts}
    memory: dict[int, dict] = {}
    fill_seconds: dict[int, float] = {}
    server_us: dict[int, list[float]] = {n: [] for n in counts}
    rounds = 200 if s.quick else 1000
    for run in range(s.runs):
        ops = {}
        for n in counts:
            runtime, run_id = f"grow-{n}-{run}", RunId.new()
            t0 = time.perf_counter()
            encoded = await fill_receipts(ctx, runtime, run_id, n)
            fill_seconds[n] = time.perf_counter() - t0
            if n and n not in memory:
                key = KeyLayout(ctx.namespace).runtime(runtime).receipts
                usage = await ctx.client.memory_usage(key, samples=0)
                memory[n] = {"redis_bytes_per_receipt": usage / n, "encoded_bytes": encoded, "field_bytes": len(f"{run_id}:{n // 2}")}
            p = ctx.payload(4096)
            delta = SessionDelta(p.snapshot)

            async def op(runtime=runtime, run_id=run_id, p=p, delta=delta, n=n) -> None:
                receipt = await ctx.store.commit_session_boundary(
                    runtime, delta, run_id, RunApplyBoundary.RUN_CHECKPOINT, p.contributing, p.states)
                if receipt.sequence < n:
                    raise RuntimeError(f"sequence {receipt.sequence} minted after {n} receipts")

            ops[n] = op
        # Interleaved, one commit to each runtime in turn: noise from the
        # machine falls on all of them alike.
        latencies: dict[int, list[float]] = {n: [] for n in counts}
        for i in range(rounds + 20):
            for n in rotated(counts, i):
                t0 = time.perf_counter()
                await ops[n]()
                if i >= 20:  # the first rounds warm up
                    latencies[n].append(time.perf_counter() - t0)
        for n in counts:
            samples[n].append(Sample(len(latencies[n]), sum(latencies[n]), latencies[n]))
        for n in rotated(counts, run):
            await reset_stats(ctx.client)  # the server's own time per commit, on its own
            for _ in range(200 if not s.quick else 50):
                await ops[n]()
            server_us[n].append((await command_usec(ctx.client)).get("evalsha", (0, float("nan")))[1])
        await cleanup(ctx.client, s.prefix)
    base = [x.p50_ms for x in samples[counts[0]]]
    out = {}
    for n in counts:
        p50 = [x.p50_ms for x in samples[n]]
        out[str(n)] = {
            "p50_ms": median(p50), "p99_ms": median(x.p99_ms for x in samples[n]),
            "server_us": median(server_us[n]),
            "p50_vs_empty": paired_ratio(p50, base), "fill_seconds": fill_seconds[n],
            **memory.get(n, {}),
        }
    log("growth receipts: " + ", ".join(f"{n}: p50 {out[str(n)]['p50_ms']:.3f} ms" for n in counts))
    return out


# -- inputs ------------------------------------------------------------------------

async def inputs(ctx: throughput.Context, counts: tuple) -> dict[str, Any]:
    s = ctx.settings
    store, client = ctx.store, ctx.client
    out = {}
    for n in counts:
        runtime = f"inputs-{n}"
        states = workload.input_states(n)
        for first in range(0, n, 500):
            await store.atomic_lifecycle_commit(runtime, RuntimeState.RUNNING, states[first:first + 500])
        loaded = await store.load_input_states(runtime)
        assert [x.input_id for x in loaded] == [x.input_id for x in states]
        keys = KeyLayout(ctx.namespace).runtime(runtime)
        usage = await client.memory_usage(keys.inputs, samples=0) + await client.memory_usage(keys.input_order, samples=0)
        encoded = sum(len(v) for v in await client.hvals(keys.inputs)) / n
        reps = max(3, min(200, 20_000 // n))
        full, fetch = [], []
        recorder = EvalshaRecorder(client)  # times the script call inside each load
        try:
            for _ in range(s.runs):
                recorder.clear()
                full.append(median(await time_calls(lambda: store.load_input_states(runtime), reps)))
                fetch.append(median(recorder.seconds))
        finally:
            recorder.remove()
        out[str(n)] = {
            "ms_per_call": median(full) * 1e3,
            "us_per_input": median(full) * 1e6 / n,
            "fetch_us_per_input": median(fetch) * 1e6 / n,
            "redis_bytes_per_input": usage / n,
            "encoded_bytes": encoded,
            "field_bytes": len(str(states[0].input_id)),
        }
        await cleanup(client, s.prefix)
    log("growth inputs: " + ", ".join(f"{n}: {out[str(n)]['us_per_input']:.1f} us/input" for n in counts))
    return out


# -- digest ------------------------------------------------------------------------

def digests(settings: Settings, sizes: tuple) -> dict[str, Any]:
    out = {}
    for size in sizes:
        snapshot = workload.session_snapshot(size)
        session_digest(snapshot)  # warm
        budget = (256 << 10) if settings.quick else (2 << 20)  # bytes digested per run
        reps = max(1, budget // size)
        per_run = []
        for _ in range(settings.runs):
            t0 = time.perf_counter()
            for _ in range(reps):
                session_digest(snapshot)
            per_run.append((time.perf_counter() - t0) / reps)
        t = median(per_run)
        out[str(size)] = {"bytes": len(snapshot), "ms": t * 1e3, "us_per_kb": t * 1e6 / (len(snapshot) / 1024), "mb_per_s": len(snapshot) / t / 2**20}
    log("digest: " + ", ".join(f"{int(k) >> 10} KB {v['ms']:.2f} ms" for k, v in out.items()))
    return out


async def run(client: redis.asyncio.Redis, settings: Settings) -> dict[str, Any]:
    ctx = await throughput.Context.create(client, settings)
    sizes = _sizes(settings)
    return {
        "receipts": await receipts(ctx, sizes["receipts"]),
        "inputs": await inputs(ctx, sizes["inputs"]),
        "digest": digests(settings, sizes["digest"]),
    }


def report(data: dict[str, Any]) -> str:
    r = data["receipts"]
    part1 = table(
        ["receipts in run", "fill s", "p50 ms", "p99 ms", "p50 vs empty", "server us/commit"],
        [[int(n), v["fill_seconds"], v["p50_ms"], v["p99_ms"], f"{v['p50_vs_empty']:.2f}x", v["server_us"]] for n, v in r.items()],
    )
    i = data["inputs"]
    part2 = table(
        ["inputs", "ms/call", "us/input", "fetch us/input", "decode us/input"],
        [[int(n), v["ms_per_call"], v["us_per_input"], v["fetch_us_per_input"], v["us_per_input"] - v["fetch_us_per_input"]] for n, v in i.items()],
    )
    mem_rows = [[f"input state ({int(n):,} stored)", v["redis_bytes_per_input"], v["encoded_bytes"], v["field_bytes"],
                 f"{v['redis_bytes_per_input'] / (v['encoded_bytes'] + v['field_bytes']):.2f}x"] for n, v in i.items()]
    mem_rows += [[f"receipt ({int(n):,} stored)", v["redis_bytes_per_receipt"], v["encoded_bytes"], v["field_bytes"],
                  f"{v['redis_bytes_per_receipt'] / (v['encoded_bytes'] + v['field_bytes']):.2f}x"] for n, v in r.items() if int(n)]
    part3 = table(["item", "Redis bytes/item", "encoded value B", "field B", "Redis / (value+field)"], mem_rows)
    d = data["digest"]
    part4 = table(
        ["snapshot", "bytes", "ms", "us/KB", "MB/s"],
        [[f"{int(k) >> 10} KB", v["bytes"], v["ms"], v["us_per_kb"], v["mb_per_s"]] for k, v in d.items()],
    )
    return (
        "commit latency (4 KB, concurrency 1, one commit to each run in turn) vs receipts already in the run;"
        " server us = evalsha usec_per_call (commandstats) of further commits to each\n" + part1
        + "\n\nload_input_states (fetch = the EVALSHA alone, decode = the rest)\n" + part2
        + "\n\nRedis memory (MEMORY USAGE SAMPLES 0; inputs include their input_order list entry)\n" + part3
        + "\n\nsession_digest time by snapshot size\n" + part4
    )
