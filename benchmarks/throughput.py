"""Commit throughput and latency (issue 3 §2, first item).

``commit_session_boundary`` of a 4 KB and a 64 KB snapshot with 3 input
updates, at concurrency 1, 8 and 64 (asyncio tasks sharing one
``redis.asyncio`` client and its pool), side by side with, on that same client:

* ``noop``  EVALSHA of ``return 1`` with the very KEYS and arguments a
            commit sends (recorded from one after the first: the same
            snapshot again, a delta): the client's practical ceiling;
* ``watch`` the same commit written by hand with WATCH/MULTI/EXEC (json
            values, retry on WatchError), digest included as the receipt needs it;
* ``plainredis`` (see ``plainredis.py``) LangGraph checkpoint put + put_writes.

Each task commits to its own runtime (one worker per runtime, as in a
fleet), so WATCH sees no contention; its retries are counted anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import redis.asyncio
from redis.exceptions import WatchError

from redis_store import RedisRuntimeStore, RunApplyBoundary, RunId, SessionDelta, session_digest

from . import workload
from .harness import EvalshaRecorder, Sample, Settings, cleanup, drive, log, median, paired_ratio, rotated, table

SIZES = (4096, 65536)
CONCURRENCY = (1, 8, 64)
INPUTS_PER_COMMIT = 3
NOOP = "return 1"


@dataclass
class Payload:
    """What one task commits, again and again."""

    snapshot: bytes
    states: list  # 3 InputState
    contributing: list  # their ids


class Context:
    """The shared client, the store over it, and the data of each size.
    Build it with ``await Context.create(...)``."""

    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.namespace = f"{settings.prefix}-store"
        self.store = RedisRuntimeStore(client, namespace=self.namespace)
        self.noop = client.register_script(NOOP)
        self.snapshots = {size: workload.session_snapshot(size) for size in SIZES}
        self.commit_calls: dict[int, tuple[list, list]] = {}  # a steady-state commit's (a delta)
        self.whole_calls: dict[int, tuple[list, list]] = {}  # the first commit's (the snapshot whole)
        self.retries = 0

    @classmethod
    async def create(cls, client: redis.asyncio.Redis, settings: Settings) -> "Context":
        """Also records, per size, the exact EVALSHA keys and arguments a
        commit sends: the first (the snapshot whole) and the next, as every
        later one (the same snapshot again: a delta over it). The no-op and
        the SET of the server-cost family replay the later one's."""
        ctx = cls(client, settings)
        recorder = EvalshaRecorder(client)
        try:
            for size in SIZES:
                commit = make_commit(ctx, size, -1)
                await commit()
                ctx.whole_calls[size] = recorder.last()
                await commit()
                ctx.commit_calls[size] = recorder.last()
        finally:
            recorder.remove()
        await cleanup(client, settings.prefix)
        return ctx

    def payload(self, size: int) -> Payload:
        states = workload.input_states(INPUTS_PER_COMMIT)
        return Payload(self.snapshots[size], states, [s.input_id for s in states])


def joined_arguments(args: list) -> bytes:
    """Every argument of an EVALSHA, concatenated: the bytes it sends."""
    return b"".join(a if isinstance(a, bytes) else str(a).encode() for a in args)


# -- the implementations: make(ctx, size, task) -> async op ---------------------

def make_commit(ctx: Context, size: int, task: int) -> Callable:
    p = ctx.payload(size)
    runtime, run_id, delta = f"commit-{task}", RunId.new(), SessionDelta(p.snapshot)
    store = ctx.store

    async def op() -> None:
        await store.commit_session_boundary(runtime, delta, run_id, RunApplyBoundary.RUN_CHECKPOINT, p.contributing, p.states)

    return op


def make_noop(ctx: Context, size: int, task: int) -> Callable:
    key_list, args = ctx.commit_calls[size]  # the very KEYS and ARGV a commit sends
    noop = ctx.noop

    async def op() -> None:
        await noop(keys=key_list, args=args)

    return op


def make_watch(ctx: Context, size: int, task: int) -> Callable:
    p = ctx.payload(size)
    run_id = str(RunId.new())
    tag = f"{ctx.settings.prefix}-watch:{{w{task}}}"
    snapshot_key, receipts_key, seqs_key, inputs_key = (f"{tag}:{k}" for k in ("snapshot", "receipts", "run_seqs", "inputs"))
    client = ctx.client

    async def op() -> None:
        # What a user writes by hand: digest, then an optimistic transaction.
        digest, count = session_digest(p.snapshot)
        receipt = {
            "run_id": run_id, "boundary": "run_checkpoint",
            "contributing_input_ids": [str(i) for i in p.contributing],
            "conversation_digest": digest, "message_count": count,
        }
        async with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(seqs_key)
                    last = await pipe.hget(seqs_key, run_id)
                    seq = 0 if last is None else int(last) + 1
                    receipt["sequence"] = seq
                    inputs = {}
                    for state in p.states:
                        wire = state.to_dict()
                        wire["last_run_id"], wire["last_boundary_sequence"] = run_id, seq
                        inputs[wire["input_id"]] = json.dumps(wire)
                    pipe.multi()
                    pipe.set(snapshot_key, p.snapshot)
                    pipe.hset(receipts_key, f"{run_id}:{seq}", json.dumps(receipt))
                    pipe.hset(seqs_key, run_id, seq)
                    pipe.hset(inputs_key, mapping=inputs)
                    await pipe.execute()
                    return
                except WatchError:
                    ctx.retries += 1

    return op


IMPLEMENTATIONS: dict[str, Callable] = {"commit": make_commit, "noop": make_noop, "watch": make_watch}
LABELS = {
    "commit": "commit_session_boundary",
    "noop": "(a) no-op EVALSHA, same args",
    "watch": "(b) WATCH/MULTI/EXEC by hand",
    "plainredis": "(c) plainredis put+put_writes",
}


async def measure(ctx: Context, names: list[str], implementations: dict[str, Callable]) -> dict:
    """samples[size][concurrency][name] = [Sample per run]."""
    s = ctx.settings
    samples: dict = {size: {c: {n: [] for n in names} for c in CONCURRENCY} for size in SIZES}
    for size in SIZES:
        for c in CONCURRENCY:
            for run in range(s.runs):
                for name in rotated(names, run):
                    ops = [implementations[name](ctx, size, task) for task in range(c)]
                    ctx.retries = 0
                    sample = await drive(ops, s.duration, s.warmup)
                    sample.retries = ctx.retries
                    samples[size][c][name].append(sample)
                    await cleanup(ctx.client, s.prefix)
            log(f"throughput {size // 1024} KB c={c}: " + ", ".join(
                f"{n} {median(x.ops_per_s for x in samples[size][c][n]):,.0f}/s" for n in names))
    return samples


def summarize(samples: dict, names: list[str]) -> dict:
    """Medians over runs, and each implementation's ratio commit/it (paired per run)."""
    out: dict = {}
    for size, by_c in samples.items():
        for c, by_name in by_c.items():
            commit = [x.ops_per_s for x in by_name["commit"]]
            for name in names:
                runs: list[Sample] = by_name[name]
                ops = [x.ops_per_s for x in runs]
                out.setdefault(str(size), {}).setdefault(str(c), {})[name] = {
                    "ops_per_s": median(ops),
                    "p50_ms": median(x.p50_ms for x in runs),
                    "p99_ms": median(x.p99_ms for x in runs),
                    "commit_ratio": paired_ratio(commit, ops) if name != "commit" else 1.0,
                    "retries": sum(x.retries for x in runs),
                    "runs_ops_per_s": ops,
                }
    return out


async def run(client: redis.asyncio.Redis, settings: Settings) -> dict[str, Any]:
    ctx = await Context.create(client, settings)
    names = list(IMPLEMENTATIONS)
    samples = await measure(ctx, names, IMPLEMENTATIONS)
    return {"snapshot_bytes": {str(k): len(v) for k, v in ctx.snapshots.items()}, "results": summarize(samples, names)}


def report(data: dict[str, Any], plain: dict[str, Any] | None) -> str:
    """The throughput table; ``plain`` adds the plainredis rows."""
    rows = []
    for size, by_c in data["results"].items():
        for c, by_name in by_c.items():
            merged = dict(by_name)
            if plain and plain.get("results"):
                merged["plainredis"] = plain["results"][size][c]["plainredis"]
            for name, r in merged.items():
                ratio = "" if name == "commit" else f"{r['commit_ratio']:.2f}x"
                extra = f"{r['retries']} retries" if name == "watch" else ""
                rows.append([f"{int(size) // 1024} KB", c, LABELS[name], r["ops_per_s"], r["p50_ms"], r["p99_ms"], ratio, extra])
    sizes = ", ".join(f"{int(k) // 1024} KB = {v:,} B" for k, v in data["snapshot_bytes"].items())
    return (
        f"snapshots: {sizes} of realistic messages; {INPUTS_PER_COMMIT} input updates per commit\n"
        + table(["size", "conc", "implementation", "ops/s", "p50 ms", "p99 ms", "commit/it", "note"], rows)
    )
