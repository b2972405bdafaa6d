"""Where the time of one commit goes (issue 3 §2, fourth item).

A 4 KB commit with 3 input updates at concurrency 1, cut into the steps
``RuntimeStore.commit_session_boundary`` takes. Each iteration runs every
step once on its own, then one whole commit, timing each (perf_counter;
means over the iterations, medians of runs):

* checks + validation  argument checks and the to_dict/from_dict round trip
                       that proves each input state can be stored
                       (``contract._input_wires``);
* digest               ``digest.inspect_session`` of the snapshot;
* encoding             the msgpack envelopes (``codec``);
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
from typing import Any

import redis.asyncio

from redis_store import InputState, RunApplyBoundary, RunBoundaryReceipt, RunId, SessionDelta, codec, contract, jsonwire
from redis_store.digest import inspect_session

from . import throughput
from .harness import EvalshaRecorder, Settings, cleanup, command_usec, log, median, reset_stats, table


def _validate(states: list[InputState]) -> list[dict]:
    """What the contract does to prove input states storable."""
    check = getattr(contract, "_input_wires", None)
    if check is not None:
        return check("input_updates", states)
    wires = []
    for state in states:  # the same work, if the helper moved
        wire = state.to_dict()
        assert InputState.from_dict(wire) == state
        if wire.get("persisted_input") is not None:
            jsonwire.loads(jsonwire.dumps(wire["persisted_input"]))
        wires.append(wire)
    return wires


async def _aloop(n: int, fn) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - t0) / n


async def run(client: redis.asyncio.Redis, settings: Settings) -> dict[str, Any]:
    ctx = await throughput.Context.create(client, settings)
    store = ctx.store
    n = 100 if settings.quick else 500
    p = ctx.payload(4096)
    delta = SessionDelta(p.snapshot)
    runtime = "breakdown"
    steps: dict[str, list[float]] = {k: [] for k in ("checks", "digest", "encoding", "round_trip", "server", "noop_round_trip", "total")}

    for _ in range(settings.runs):
        run_id = RunId.new()

        def checks() -> None:
            for wire in _validate(p.states):
                wire["last_run_id"] = str(run_id)

        summary = inspect_session(p.snapshot)
        wires = _validate(p.states)
        for wire in wires:
            wire["last_run_id"] = str(run_id)

        def encoding() -> None:
            receipt = RunBoundaryReceipt(run_id, RunApplyBoundary.RUN_CHECKPOINT, p.contributing, summary.conversation_digest, summary.message_count, 0)
            codec.encode_snapshot(p.snapshot)
            codec.receipt_prefix(receipt.to_dict())
            [(w["input_id"], codec.input_state_prefix(w)) for w in wires]

        async def total() -> None:
            await store.commit_session_boundary(runtime, delta, run_id, RunApplyBoundary.RUN_CHECKPOINT, p.contributing, p.states)

        await total()
        # One iteration times every step once, then a whole commit, so the
        # machine's noise falls on the steps and the total alike.
        spent = dict.fromkeys(("checks", "digest", "encoding", "total"), 0.0)
        clock = time.perf_counter
        recorder = EvalshaRecorder(client)  # times the EVALSHA inside each real commit
        await reset_stats(client)
        try:
            for _ in range(n):
                t0 = clock()
                checks()
                t1 = clock()
                inspect_session(p.snapshot)
                t2 = clock()
                encoding()
                t3 = clock()
                await total()
                t4 = clock()
                spent["checks"] += t1 - t0
                spent["digest"] += t2 - t1
                spent["encoding"] += t3 - t2
                spent["total"] += t4 - t3
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
    """cProfile of n commits: the top functions by own time."""
    op = throughput.make_commit(ctx, 4096, 0)
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
        ["digest (inspect_session)", us["digest"]],
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
        f" a no-op EVALSHA of the same KEYS and args: {us['noop_round_trip']:.0f} us\n" + part1
        + f"\n\nhottest functions under cProfile ({prof['wall_us_profiled']:.0f} us per commit while profiled)\n" + part2
    )
