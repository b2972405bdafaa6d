"""python -m benchmarks [--quick] [--url URL] [--json] [--runs N]

Runs every benchmark family against one server (a fresh private
redis-server by default), prints a header (machine, Python, redis-py,
server), each family's table, and the issue 3 §3 targets as PASS/MISS,
computed from medians of runs. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timezone
from typing import Any

from . import breakdown, growth, plainredis, server_cost, sync_api, throughput, upgrade
from .harness import MachineLoad, Settings, cleanup, client_for, log, machine, server, server_cpu_seconds, source_digest

FAMILIES = ("throughput", "plainredis", "server_cost", "growth", "breakdown", "sync", "upgrade")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="redis-store benchmarks: commit throughput against its ceiling and its peers, "
        "server cost, growth, and where a commit's time goes, all against one server.",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (under a minute; numbers are rough)")
    parser.add_argument("--url", help="use this server (redis://HOST:PORT/DB) instead of starting a fresh one; "
                        "the benchmarks write keys under 'rsbench*', delete them, and CONFIG RESETSTAT it")
    parser.add_argument("--json", action="store_true", help="print machine-readable results instead of tables")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement, medians reported (default 5; 1 with --quick)")
    parser.add_argument("--baseline", default=upgrade.DEFAULT_BASELINE,
                        help=f"git ref of the code the upgrade family compares with (default {upgrade.DEFAULT_BASELINE}, before issue 10)")
    parser.add_argument("--only", default=",".join(FAMILIES), help=f"comma-separated families (default all: {','.join(FAMILIES)})")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 5
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.only = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(args.only) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown families: {', '.join(sorted(unknown))}")
    return args


async def run_all(url: str, where: str, settings: Settings, only: list[str], baseline: str = upgrade.DEFAULT_BASELINE) -> dict[str, Any]:
    client = client_for(url)
    try:
        server_info = await client.info("server")
        out: dict[str, Any] = {
            "header": {
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                **machine(),
                "server": f"{server_info.get('server_name', 'redis')} {server_info['redis_version']}",
                "server_source": where,
                "source_digest": source_digest(),
                "runs": settings.runs,
                "window_s": settings.duration,
                "quick": settings.quick,
            }
        }
        await cleanup(client, settings.prefix)
        load, cpu0 = MachineLoad(), await server_cpu_seconds(client)
        families = {
            "throughput": lambda: throughput.run(client, settings),
            "plainredis": lambda: plainredis.run(url, settings),
            "server_cost": lambda: server_cost.run(client, settings),
            "growth": lambda: growth.run(client, settings),
            "breakdown": lambda: breakdown.run(client, settings),
            "sync": lambda: sync_api.run(url, settings),
            "upgrade": lambda: upgrade.run(client, settings, baseline),
        }
        for name in FAMILIES:
            if name in only:
                t0 = time.perf_counter()
                log(f"{name} ...")
                out[name] = await families[name]()
                out[name]["seconds"] = round(time.perf_counter() - t0, 1)
        out["header"]["plainredis"] = _plain_version(out.get("plainredis"))
        out["header"]["others_cpu_share"] = load.others_share(await server_cpu_seconds(client) - cpu0)
        out["targets"] = targets(out)
        await cleanup(client, settings.prefix)
        return out
    finally:
        await client.aclose()


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _plain_version(plain: dict | None) -> str:
    if not plain:
        return "not run"
    if plain.get("status") != "measured":
        return "skipped"
    return f"langgraph-checkpoint-plainredis {plain['package_version']} (redis-py {plain['redis_py']}, {plain['python']})"


# -- targets (issue 3 §3; issue 10 §6, the server side) ---------------------------------

def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(name: str, measured: float | None, goal: str, ok: bool | None, detail: str = "") -> None:
        verdict = "SKIP" if ok is None else ("PASS" if ok else "MISS")
        found.append({"target": name, "measured": measured, "goal": goal, "verdict": verdict, "detail": detail})

    t = out.get("throughput", {}).get("results", {}).get("4096")
    if t:
        for c in ("8", "64"):
            ratio = t[c]["noop"]["commit_ratio"]
            add(f"commit 4 KB / no-op EVALSHA, c={c}", ratio, ">= 0.5x", ratio >= 0.5)
        for c in throughput.CONCURRENCY:
            ratio = t[str(c)]["watch"]["commit_ratio"]
            add(f"commit 4 KB / WATCH-MULTI-EXEC, c={c}", ratio, ">= 3x", ratio >= 3)
    plain = out.get("plainredis")
    if plain is not None:
        for c in throughput.CONCURRENCY:
            if plain.get("status") == "measured":
                ratio = plain["results"]["4096"][str(c)]["plainredis"]["commit_ratio"]
                add(f"commit 4 KB / plainredis put+put_writes, c={c}", ratio, ">= 4x", ratio >= 4)
            else:
                add(f"commit 4 KB / plainredis put+put_writes, c={c}", None, ">= 4x", None, plain.get("reason", ""))
    cost = out.get("server_cost", {}).get("results", {}).get("65536")
    if cost:
        ratio = cost["commit"]["usec_per_call"] / cost["set_whole"]["usec_per_call"]
        cpu = cost["commit"]["process_cpu_us"] / cost["set_whole"]["process_cpu_us"]
        add("Redis CPU per 64 KB commit / SET 64 KB", ratio, "<= 2x", ratio <= 2,
            f"commandstats {cost['commit']['usec_per_call']:.1f} vs {cost['set_whole']['usec_per_call']:.1f} us;"
            f" whole process CPU {cost['commit']['process_cpu_us']:.0f} vs {cost['set_whole']['process_cpu_us']:.0f} us = {cpu:.1f}x")
        cpu = cost["commit"]["process_cpu_us"] / cost["set"]["process_cpu_us"]
        add("issue 10: Redis CPU per 64 KB commit / SET of the same bytes (process)", cpu, "<= 2x", cpu <= 2,
            f"{cost['commit']['process_cpu_us']:.0f} vs {cost['set']['process_cpu_us']:.0f} us ({cost['set_bytes']:,} B);"
            f" floor, the commit's writes alone: {cost['writes']['process_cpu_us'] / cost['set']['process_cpu_us']:.1f}x;"
            f" vs a SET of the snapshot whole ({cost['set_whole_bytes']:,} B): {cost['commit']['process_cpu_us'] / cost['set_whole']['process_cpu_us']:.1f}x")
    cost = out.get("server_cost", {}).get("results", {}).get("4096")
    if cost:
        ratio = cost["commit"]["usec_per_call"] / cost["noop"]["usec_per_call"]
        add("issue 10: Redis CPU per 4 KB commit / no-op with the same arguments (commandstats)", ratio, "<= 2x", ratio <= 2,
            f"{cost['commit']['usec_per_call']:.1f} vs {cost['noop']['usec_per_call']:.1f} us; floors: the no-op making as many"
            f" EXISTS calls {cost['calls']['usec_per_call'] / cost['noop']['usec_per_call']:.1f}x,"
            f" the commit's writes alone {cost['writes']['usec_per_call'] / cost['noop']['usec_per_call']:.2f}x")
    g = out.get("growth")
    if g:
        counts = list(g["receipts"])
        ratio = g["receipts"][counts[-1]]["p50_vs_empty"]
        add(f"commit p50 with {int(counts[-1]):,} receipts / empty run", ratio, "<= 1.1x", ratio <= 1.1)
        sizes = list(g["inputs"])
        a, b = g["inputs"][sizes[-2]]["us_per_input"], g["inputs"][sizes[-1]]["us_per_input"]
        add(f"load_input_states linear: us/input at {int(sizes[-1]):,} / at {int(sizes[-2]):,}", b / a, "<= 1.5x", b / a <= 1.5,
            f"{a:.1f} -> {b:.1f} us/input")
    return found


# -- text report ----------------------------------------------------------------------

def render(out: dict[str, Any]) -> str:
    h = out["header"]
    lines = [
        "redis-store benchmarks" + ("  (--quick: rough numbers)" if h["quick"] else ""),
        f"date:     {h['date']}",
        f"machine:  {h['cpu']}, {h['cores']} cores, {h['memory']}, {h['os']}",
        f"python:   {h['python']}   redis-py: {h['redis_py']}   code measured: sha256 {h['source_digest']} of redis_store/*.py + lua/*.lua",
        f"server:   {h['server']} ({h['server_source']})",
        f"peer:     {h['plainredis']}",
        f"noise:    other processes used {_share(h['others_cpu_share'])} of the machine's CPU during the run",
        f"method:   {h['runs']} run(s), medians; throughput windows of {h['window_s']} s; ratios = median of per-run ratios measured side by side",
    ]
    sections = [
        ("1. Commit throughput and latency (one redis.asyncio client and pool per comparison)", "throughput"),
        ("2. Server cost", "server_cost"),
        ("3. Growth", "growth"),
        ("4. Where one commit's time goes", "breakdown"),
        ("5. The blocking API (redis_store.sync) against the async one", "sync"),
        ("6. Issue 10: before and after, side by side", "upgrade"),
    ]
    for title, key in sections:
        if key not in out:
            continue
        lines += ["", f"== {title} ({out[key]['seconds']} s) =="]
        if key == "throughput":
            lines.append(throughput.report(out[key], out.get("plainredis")))
            plain = out.get("plainredis")
            if plain and plain.get("status") != "measured":
                lines.append(f"(c) plainredis skipped: {plain['reason']}")
            elif plain:
                lines.append("(c) commit/it for plainredis pairs it with commits re-measured in the same runs on "
                             f"plainredis's client ({plain['python']})")
        else:
            reports = {"server_cost": server_cost.report, "growth": growth.report, "breakdown": breakdown.report,
                       "sync": sync_api.report, "upgrade": upgrade.report}
            lines.append(reports[key](out[key]))
    lines += ["", "== Targets (issue 3 §3; issue 10 §6, the server side) =="]
    for t in out["targets"]:
        measured = "n/a" if t["measured"] is None else f"{t['measured']:.2f}x"
        detail = f"  ({t['detail']})" if t["detail"] else ""
        lines.append(f"{t['verdict']:4}  {t['target']}: {measured} (goal {t['goal']}){detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings.make(args.runs, args.quick)
    started = time.perf_counter()
    with server(args.url) as (url, where):
        out = asyncio.run(run_all(url, where, settings, args.only, args.baseline))
    out["header"]["total_seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print(render(out))
        print(f"\ntotal time: {out['header']['total_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
