"""Server cost (issue 3 §2, second item): Redis CPU microseconds per commit.

Per snapshot size, these phases, each after CONFIG RESETSTAT, sequential
(concurrency 1) on one client:

* ``commit``  commit_session_boundary of a session grown by one turn (about
              1.4 KB) over the snapshot of about 4 KB or 64 KB stored before:
              the steady state, a delta of one turn. Each call commits to a
              runtime of its own, set up before the phase with a whole
              commit and one delta (a string Redis has grown once has room
              to grow: its first growth after a whole SET reallocates it,
              which a long-lived session pays once, not every turn; at
              64 KB that first growth costs 30 us). ``usec_per_call`` of evalsha in
              ``INFO commandstats``; the commands a script runs are counted
              inside the script's time;
* ``noop``    EVALSHA ``return 1`` with the KEYS and arguments of the
              phase's last commit: what getting the arguments into Lua costs
              by itself;
* ``calls``   the no-op plus as many ``redis.call()``s as the commit makes
              (counted in its commandstats), each the cheapest one there is
              (EXISTS of the first key): the floor of a script that makes
              that many calls, whatever they check or write;
* ``writes``  the no-op plus only the writes a commit must make, with no
              check at all (HMGET of meta, the receipt's HSET, the
              snapshot's two SETRANGEs, the run's sequence, one HSET of the
              inputs, one of meta), replaying the last commit on its own
              keys (so they write the bytes it wrote, again): the floor of
              any script that commits this;
* ``set``     a plain SET of the same bytes (every argument of that commit,
              concatenated);
* ``set_whole`` a SET of the bytes of a first commit, which sends the
              snapshot whole: what a store that SETs the snapshot on every
              commit pays (context, and issue 3's "SET 64 KB").

``usec_per_call`` is execution only (after the request was parsed). The
``process CPU`` column adds what commandstats leaves out: reading and
parsing the request, replying, the event loop: the server's user+system CPU
time over the phase (``INFO cpu``) divided by the calls.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

import redis.asyncio

from redis_store import RunApplyBoundary, RunId, SessionDelta

from . import throughput
from .harness import EvalshaRecorder, Settings, cleanup, command_usec, log, median, reset_stats, server_cpu_seconds, table
from .upgrade import Growing

PHASES = ("commit", "noop", "calls", "writes", "set", "set_whole")


async def _phase(client, settings: Settings, name: str, ops) -> tuple[float, float, float]:
    """(usec_per_call of the phase's command, process CPU us per call, commands
    a script ran per call)."""
    command = "set" if name.startswith("set") else "evalsha"
    await reset_stats(client)
    cpu0 = await server_cpu_seconds(client)
    for op in ops:
        await op()
    cpu1 = await server_cpu_seconds(client)
    stats = await command_usec(client)
    calls, usec = stats.get(command, (0, float("nan")))
    inner = sum(count for name, (count, _) in stats.items() if name != command and not name.startswith(("config", "info")))
    return usec, (cpu1 - cpu0) * 1e6 / max(calls, 1), inner / max(calls, 1)


def _make_calls(client: redis.asyncio.Redis, recorded: tuple[list, list], count: int):
    """The no-op with ``count`` EXISTS calls inside, on the commit's KEYS and args."""
    script = client.register_script(f"for _ = 1, {count} do redis.call('EXISTS', KEYS[1]) end return 1")
    keys, args = recorded

    async def op() -> None:
        await script(keys=keys, args=args)
    return op


def _make_noop(ctx: throughput.Context, recorded: tuple[list, list]):
    keys, args = recorded

    async def op() -> None:
        await ctx.noop(keys=keys, args=args)
    return op


#: commit_boundary.lua's writes alone, over its KEYS and ARGV (see its header):
#: a steady-state commit sends a delta and 3 stored input states, and no commit id.
_WRITES = """
local field = ARGV[1] .. ':' .. ARGV[11]
redis.call('HMGET', KEYS[6], 'layout', 'snapshot_tag', 'snapshot_receipt', 'snapshot_applied', 'snapshot_without_receipt')
redis.call('HSET', KEYS[2], field, ARGV[3])
redis.call('SETRANGE', KEYS[1], 0, ARGV[10])
redis.call('SETRANGE', KEYS[1], tonumber(string.match(ARGV[9], '^%x+ %d+ (%d+)')), ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[11])
redis.call('HSET', KEYS[4], ARGV[12], ARGV[13], ARGV[15], ARGV[16], ARGV[18], ARGV[19])
redis.call('HSET', KEYS[6], 'snapshot_receipt', field, 'snapshot_tag', ARGV[8])
return 1
"""


def _make_writes(client: redis.asyncio.Redis, recorded: tuple[list, list]):
    """The commit's writes alone, replaying the KEYS and arguments of the
    commit phase's last commit, after it: they write what it wrote (the same
    snapshot bytes again)."""
    script = client.register_script(_WRITES)
    keys, args = recorded
    assert args[8] and len(args) == 20, "a steady-state commit: a delta and 3 input states"

    async def op() -> None:
        await script(keys=keys, args=args)
    return op


async def _one_turn_commits(ctx: throughput.Context, size: int, count: int) -> list[Callable]:
    """``count`` commits, each to a runtime of its own that holds a session
    of about ``size`` bytes (committed here: whole, then grown by a turn), of
    that session grown by one more turn: a delta of one turn, as a worker
    commits in the steady state."""
    session = Growing(size, 3, str(uuid.uuid4()))
    # From turn 1, not 0: a snapshot crossing 64 KiB gets a longer msgpack
    # header, which shifts every byte: that one commit goes whole.
    first, before, after = SessionDelta(session.built[1]), SessionDelta(session.built[2]), SessionDelta(session.built[3])
    p = ctx.payload(size)
    store, ops = ctx.store, []
    for index in range(count):
        runtime, run_id = f"cost-{size}-{index}", RunId.new()
        await store.commit_session_boundary(runtime, first, run_id, RunApplyBoundary.RUN_CHECKPOINT, p.contributing, p.states)
        await store.commit_session_boundary(runtime, before, run_id, RunApplyBoundary.RUN_CHECKPOINT, p.contributing, p.states)

        async def op(runtime: str = runtime, run_id: RunId = run_id) -> None:
            await store.commit_session_boundary(runtime, after, run_id, RunApplyBoundary.RUN_CHECKPOINT, p.contributing, p.states)
        ops.append(op)
    return ops


async def run(client: redis.asyncio.Redis, settings: Settings) -> dict[str, Any]:
    ctx = await throughput.Context.create(client, settings)
    n, warm = (100, 20) if settings.quick else (500, 20)
    out: dict[str, Any] = {"calls_per_phase": n, "results": {}}
    for size in throughput.SIZES:
        per: dict[str, dict[str, list[float]]] = {p: {"usec": [], "cpu": []} for p in PHASES}
        per_inner: list[float] = []
        value = b""
        whole = throughput.joined_arguments(ctx.whole_calls[size][1])
        for run_index in range(settings.runs):
            commits = await _one_turn_commits(ctx, size, warm + n)
            for op in commits[:warm]:  # warm up: scripts loaded, allocator settled
                await op()
            recorder = EvalshaRecorder(client)  # the phase's last commit: what the others replay
            usec, cpu, ran = await _phase(client, settings, "commit", commits[warm:])
            recorder.remove()
            last = recorder.last()
            stored = await client.get(last[0][0])
            per_inner.append(ran)
            per["commit"]["usec"].append(usec)
            per["commit"]["cpu"].append(cpu)
            value = throughput.joined_arguments(last[1])
            key = f"{settings.prefix}-set"

            async def set_op() -> None:
                await client.set(key, value)

            async def set_whole_op() -> None:
                await client.set(key, whole)

            for name, make in (("noop", lambda: _make_noop(ctx, last)), ("calls", lambda: _make_calls(client, last, round(ran))),
                               ("writes", lambda: _make_writes(client, last)), ("set", lambda: set_op),
                               ("set_whole", lambda: set_whole_op)):
                op = make()
                for _ in range(warm):
                    await op()
                usec, cpu, _ = await _phase(client, settings, name, [op] * n)
                assert await client.get(last[0][0]) == stored, f"{name} changed the stored snapshot"
                per[name]["usec"].append(usec)
                per[name]["cpu"].append(cpu)
            await cleanup(client, settings.prefix)
        out["results"][str(size)] = {
            "set_bytes": len(value), "set_whole_bytes": len(whole),
            "calls_per_commit": median(per_inner),
            **{name: {"usec_per_call": median(v["usec"]), "process_cpu_us": median(v["cpu"])} for name, v in per.items()},
        }
        r = out["results"][str(size)]
        log(f"server cost {size // 1024} KB: commit {r['commit']['usec_per_call']:.1f} us, set {r['set']['usec_per_call']:.1f} us")
    return out


def report(data: dict[str, Any]) -> str:
    rows = []
    for size, r in data["results"].items():
        base = r["set"]["usec_per_call"]
        base_cpu = r["set"]["process_cpu_us"]
        calls = f"no-op + {r['calls_per_commit']:.0f} EXISTS calls"
        for name, label in (("commit", "commit (evalsha)"), ("noop", "no-op evalsha, same args"), ("calls", calls),
                            ("writes", "no-op + the commit's writes only"),
                            ("set", f"SET of the same bytes ({r['set_bytes']:,} B)"),
                            ("set_whole", f"SET of the first commit's ({r['set_whole_bytes']:,} B)")):
            rows.append([
                f"{int(size) // 1024} KB", label, r[name]["usec_per_call"], f"{r[name]['usec_per_call'] / base:.1f}x",
                r[name]["process_cpu_us"], f"{r[name]['process_cpu_us'] / base_cpu:.1f}x",
            ])
    return (
        f"{data['calls_per_phase']} sequential calls per phase, CONFIG RESETSTAT before each; a commit = a session grown by one"
        " turn over the one stored (a delta); SET value = all commit arguments concatenated (the first commit's: with the"
        " snapshot whole); vs SET = vs the SET of the same bytes\n"
        + table(["size", "what", "usec/call (commandstats)", "vs SET", "process CPU us/call", "vs SET"], rows)
        + "\nno-op + N calls: the floor of any script making as many redis.call()s as the commit does;"
        " no-op + writes: of any script that writes what the commit writes (no checks)"
    )
