"""Server cost (issue 3 §2, second item): Redis CPU microseconds per commit.

Per snapshot size, three phases, each after CONFIG RESETSTAT, sequential
(concurrency 1) on one client:

* ``commit``  commit_session_boundary: ``usec_per_call`` of evalsha in
              ``INFO commandstats``; the commands a script runs are counted
              inside the script's time;
* ``noop``    EVALSHA ``return 1`` with the same argument bytes: what
              getting the arguments into Lua costs by itself;
* ``set``     a plain SET of the same bytes (every argument of the commit,
              concatenated).

``usec_per_call`` is execution only (after the request was parsed). The
``process CPU`` column adds what commandstats leaves out: reading and
parsing the request, replying, the event loop: the server's user+system CPU
time over the phase (``INFO cpu``) divided by the calls.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio

from . import throughput
from .harness import Settings, cleanup, command_usec, log, median, reset_stats, server_cpu_seconds, table

PHASES = ("commit", "noop", "set")


async def _phase(client, settings: Settings, name: str, ops) -> tuple[float, float]:
    """(usec_per_call of the phase's command, process CPU us per call)."""
    command = "set" if name == "set" else "evalsha"
    await reset_stats(client)
    cpu0 = await server_cpu_seconds(client)
    for op in ops:
        await op()
    cpu1 = await server_cpu_seconds(client)
    calls, usec = (await command_usec(client)).get(command, (0, float("nan")))
    return usec, (cpu1 - cpu0) * 1e6 / max(calls, 1)


async def run(client: redis.asyncio.Redis, settings: Settings) -> dict[str, Any]:
    ctx = await throughput.Context.create(client, settings)
    n = 100 if settings.quick else 500
    out: dict[str, Any] = {"calls_per_phase": n, "results": {}}
    for size in throughput.SIZES:
        per: dict[str, dict[str, list[float]]] = {p: {"usec": [], "cpu": []} for p in PHASES}
        for run_index in range(settings.runs):
            commit = throughput.make_commit(ctx, size, 0)
            noop = throughput.make_noop(ctx, size, 0)
            value = ctx.argument_bytes(size)
            key = f"{settings.prefix}-set"

            async def set_op() -> None:
                await client.set(key, value)

            for name, op in (("commit", commit), ("noop", noop), ("set", set_op)):
                for _ in range(20):  # warm up: scripts loaded, allocator settled
                    await op()
                usec, cpu = await _phase(client, settings, name, [op] * n)
                per[name]["usec"].append(usec)
                per[name]["cpu"].append(cpu)
            await cleanup(client, settings.prefix)
        out["results"][str(size)] = {
            "set_bytes": len(value),
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
        for name, label in (("commit", "commit (evalsha)"), ("noop", "no-op evalsha, same args"), ("set", "SET of the same bytes")):
            rows.append([
                f"{int(size) // 1024} KB", label, r[name]["usec_per_call"], f"{r[name]['usec_per_call'] / base:.1f}x",
                r[name]["process_cpu_us"], f"{r[name]['process_cpu_us'] / base_cpu:.1f}x",
            ])
    return (
        f"{data['calls_per_phase']} sequential calls per phase, CONFIG RESETSTAT before each; SET value = all commit arguments concatenated\n"
        + table(["size", "what", "usec/call (commandstats)", "vs SET", "process CPU us/call", "vs SET"], rows)
    )
