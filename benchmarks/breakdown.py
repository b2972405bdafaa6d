"""Where the time of one commit goes (issue 3 §2, fourth item).

A 4 KB session growing a turn per commit (the steady state), with 3 input
updates, at concurrency 1, cut into the steps
``RuntimeStore.commit_session_boundary`` takes. Each iteration runs every
step once on its own, then one whole commit, timing each (perf_counter;
means over the iterations, medians of runs):

* checks + validation  argument checks of the input updates and stamping
                       them (``contract._input_wires``, ``_check_batch``);
* digest               ``digest.inspect_session`` of the next snapshot with
                       the store's DigestCache (a hit: the new turn only);
* digest, cold         the same snapshot without a cache, for comparison
                       (not part of the total);
* encoding             the msgpack envelopes (``codec``) as a commit without
                       a commit id makes them (no fingerprint);
* round trip           the EVALSHA inside real commits (timed around the
                       client's execute_command), of which
  server               evalsha ``usec_per_call`` from INFO commandstats, and
  client + wire        the rest: redis-py packing/parsing, the socket, the loop;

then the whole call, and what the steps leave unexplained. A cProfile of
the same commits lists the functions that take the time (profiled times are
inflated by the profiler; read the shares).
"""

from __future__ import annotations

import cProfile
import pstats
import time
import uuid
from typing import Any

import msgspec
import redis.asyncio

from redis_store import InMemoryRuntimeStore, RunApplyBoundary, RunBoundaryReceipt, RunId, SessionDelta, codec, contract
from redis_store.digest import DigestCache, inspect_session

from . import throughput, workload
from .harness import EvalshaRecorder, Settings, cleanup, command_usec, log, median, reset_stats, table
from .upgrade import Growing

TURNS = 24  # commits before the session starts again (one cold commit in 25)


_CHECKER = InMemoryRuntimeStore()  # its _check_batch: the contract's, with default options


def _stamped(states: list, run_id: RunId) -> list:
    """What the contract does to the input updates before encoding them."""
    checked = contract._input_wires("input_updates", states)
    _CHECKER._check_batch("input_updates", checked)
    return [msgspec.structs.replace(s, last_run_id=run_id, last_boundary_sequence=None) for s in checked]


async def _aloop(n: int, fn) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - t0) / n


async def run(client: redis.asyncio.Redis, settings: Settings) -> dict[str, Any]:
    ctx = await throughput.Context.create(client, settings)
    store = ctx.store
    n = 100 if settings.quick else 500
    states = workload.input_states(throughput.INPUTS_PER_COMMIT)
    contributing = [s.input_id for s in states]
    runtime = "breakdown"
    steps: dict[str, list[float]] = {
        k: [] for k in ("checks", "digest", "digest_cold", "encoding", "round_trip", "server", "noop_round_trip", "total")
    }

    for _ in range(settings.runs):
        run_id = RunId.new()
        session = Growing(4096, TURNS, str(uuid.uuid4()))
        cache = DigestCache()
        for snapshot in session.built:  # the step's cache has seen what the store has
            inspect_session(snapshot, cache)
        session.i = 0

        def encoding(snapshot: bytes, summary: Any, wires: list) -> None:
            # What commit_session_boundary encodes (without a commit id: no fingerprint).
            receipt = RunBoundaryReceipt(run_id, RunApplyBoundary.RUN_CHECKPOINT, contributing,
                                         summary.conversation_digest, summary.message_count, 0)
            codec.SnapshotEnvelope(snapshot, cache.shared_with(snapshot))
            codec.receipt_prefix(receipt)
            contract._encode_inputs("input_updates", wires, codec.input_state_prefix)

        async def total(snapshot: bytes) -> None:
            await store.commit_session_boundary(runtime, SessionDelta(snapshot), run_id,
                                                RunApplyBoundary.RUN_CHECKPOINT, contributing, states)

        for _ in range(TURNS + 1):  # the store's cache and delta base, as in the steady state
            await total(session.next())
        # One iteration times every step once, then a whole commit, so the
        # machine's noise falls on the steps and the total alike.
        spent = dict.fromkeys(("checks", "digest", "digest_cold", "encoding", "total"), 0.0)
        clock = time.perf_counter
        recorder = EvalshaRecorder(client)  # times the EVALSHA inside each real commit
        await reset_stats(client)
        try:
            for _ in range(n):
                snapshot = session.next()
                t0 = clock()
                wires = _stamped(states, run_id)
                t1 = clock()
                summary = inspect_session(snapshot, cache)
                t2 = clock()
                inspect_session(snapshot)
                t3 = clock()
                encoding(snapshot, summary, wires)
                t4 = clock()
                await total(snapshot)
                t5 = clock()
                spent["checks"] += t1 - t0
                spent["digest"] += t2 - t1
                spent["digest_cold"] += t3 - t2
                spent["encoding"] += t4 - t3
                spent["total"] += t5 - t4
        finally:
            recorder.remove()
        for name, seconds in spent.items():
            steps[name].append(seconds / n)
        steps["round_trip"].append(sum(recorder.seconds) / n)
        steps["server"].append((await command_usec(client)).get("evalsha", (0, float("nan")))[1] * 1e-6)
        steps["noop_round_trip"].append(await _aloop(n, throughput.make_noop(ctx, 4096, 0)))
        await cleanup(client, settings.prefix)

    med = {k: median(v) * 1e6 for k, v in steps.items()}
    profile = await _profile(ctx, n)
    log(f"breakdown: total {med['total']:.0f} us, digest {med['digest']:.0f} us, round trip {med['round_trip']:.0f} us")
    return {"calls": n, "us": med, "profile": profile}


async def _profile(ctx: throughput.Context, n: int) -> dict[str, Any]:
    """cProfile of n commits of a growing session: the top functions by own time."""
    states = workload.input_states(throughput.INPUTS_PER_COMMIT)
    session, run_id = Growing(4096, TURNS, str(uuid.uuid4())), RunId.new()

    async def op() -> None:
        await ctx.store.commit_session_boundary("breakdown-profile", SessionDelta(session.next()), run_id,
                                                RunApplyBoundary.RUN_CHECKPOINT, [s.input_id for s in states], states)
    for _ in range(TURNS + 1):
        await op()
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    for _ in range(n):
        await op()
    profiler.disable()
    wall = (time.perf_counter() - t0) / n
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{_short(filename)}:{line}({name})", "calls_per_commit": nc / n, "own_us": tt * 1e6 / n, "cum_us": ct * 1e6 / n})
    rows.sort(key=lambda r: -r["own_us"])
    await cleanup(ctx.client, ctx.settings.prefix)
    return {"wall_us_profiled": wall * 1e6, "top": rows[:15]}


def _short(filename: str) -> str:
    for marker in ("redis_store/", "redis/", "asyncio/", "msgpack/", "json/"):
        if marker in filename:
            return marker + filename.split(marker, 1)[1]
    return filename.rsplit("/", 1)[-1]


def report(data: dict[str, Any]) -> str:
    us = data["us"]
    total = us["total"]
    client_wire = us["round_trip"] - us["server"]
    accounted = us["checks"] + us["digest"] + us["encoding"] + us["round_trip"]
    rows = [
        ["checks + input validation", us["checks"]],
        ["digest (inspect_session, cache hit)", us["digest"]],
        ["encoding (msgpack envelopes)", us["encoding"]],
        ["round trip (EVALSHA commit_boundary)", us["round_trip"]],
        ["  of which server (commandstats)", us["server"]],
        ["  of which client + wire", client_wire],
        ["other (key names, script call, plumbing)", total - accounted],
        ["total commit_session_boundary", total],
    ]
    part1 = table(["step of one 4 KB commit", "us", "% of total"], [[name, v, f"{100 * v / total:.0f}%"] for name, v in rows])
    prof = data["profile"]
    part2 = table(
        ["function (cProfile, by own time)", "calls/commit", "own us", "cum us"],
        [[r["function"], r["calls_per_commit"], r["own_us"], r["cum_us"]] for r in prof["top"]],
    )
    return (
        f"{data['calls']} iterations per run, each timing every step once and then a whole commit; means;"
        " round trip = the EVALSHA inside those commits;"
        f" a no-op EVALSHA of the same KEYS and args: {us['noop_round_trip']:.0f} us;"
        f" the same digest without a cache (not in the total): {us['digest_cold']:.0f} us\n" + part1
        + f"\n\nhottest functions under cProfile ({prof['wall_us_profiled']:.0f} us per commit while profiled)\n" + part2
    )
