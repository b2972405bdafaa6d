"""What every benchmark family shares: the server, timing, the concurrency
driver, percentiles and medians of runs, Redis's own counters, and tables.

A *measurement* is one timed window of one implementation (``drive``); a
*run* is one pass over every implementation of a family; families repeat
runs (``Settings.runs``) with the implementations in a rotated order each
time, and report medians over runs. A ratio of two implementations is the
median of their per-run ratios (each measured side by side in the same run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Sequence

import redis
import redis.asyncio

from redis_store.embedded import private_server, redis_binary


@dataclass(frozen=True)
class Settings:
    runs: int = 5
    duration: float = 1.0  # seconds measured per throughput window
    warmup: float = 0.2  # seconds run before each window, not measured
    quick: bool = False
    prefix: str = "rsbench"  # every key the benchmarks write starts with it

    @classmethod
    def make(cls, runs: int, quick: bool) -> "Settings":
        if quick:
            return cls(runs=runs, duration=0.2, warmup=0.05, quick=True)
        return cls(runs=runs)


def log(message: str) -> None:
    """Progress, on stderr so that stdout holds only the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the server ----------------------------------------------------------------

@contextlib.contextmanager
def server(url: str | None):
    """Yield (url, description): the given server, or a fresh private
    redis-server on a free loopback port, stopped afterwards."""
    if url:
        yield url, "given by --url"
        return
    missing = ("no redis-server on PATH (Debian: apt-get install redis-server); "
               "or pass --url redis://HOST:PORT/DB of a server you run")
    with private_server(redis_binary(), missing) as proc:
        yield proc.url, f"fresh {proc.binary}, no persistence"


def client_for(url: str) -> redis.asyncio.Redis:
    """The one client (and connection pool) a comparison shares."""
    return redis.asyncio.Redis.from_url(url, decode_responses=False)


class EvalshaRecorder:
    """Records every EVALSHA a client sends (its arguments and how long the
    call took, from sending to the parsed reply). Installed on a client of
    its own or removed before a comparison runs. This is how the benchmarks
    learn exactly what the store sends, without reaching into its internals."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.calls: list[tuple] = []
        self.seconds: list[float] = []
        original = client.execute_command

        async def recorded(*args: Any, **options: Any) -> Any:
            if not args or str(args[0]).upper() != "EVALSHA":
                return await original(*args, **options)
            t0 = time.perf_counter()
            result = await original(*args, **options)
            self.seconds.append(time.perf_counter() - t0)
            self.calls.append(args)
            return result

        client.execute_command = recorded  # type: ignore[method-assign]

    def remove(self) -> None:
        """Give the client back its own execute_command."""
        vars(self.client).pop("execute_command", None)

    def clear(self) -> None:
        self.calls.clear()
        self.seconds.clear()

    def last(self) -> tuple[list, list]:
        """(keys, args) of the last EVALSHA."""
        _, _sha, numkeys, *rest = self.calls[-1]
        return list(rest[:numkeys]), list(rest[numkeys:])


async def cleanup(client: redis.asyncio.Redis, prefix: str) -> None:
    """Remove every key under ``prefix`` (the benchmarks' own keys only)."""
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await client.unlink(*batch)
            batch.clear()
    if batch:
        await client.unlink(*batch)


async def info(client: redis.asyncio.Redis, section: str) -> dict[str, Any]:
    return await client.info(section)


async def reset_stats(client: redis.asyncio.Redis) -> None:
    await client.config_resetstat()


async def command_usec(client: redis.asyncio.Redis) -> dict[str, tuple[int, float]]:
    """``INFO commandstats`` as {command: (calls, usec_per_call)}. Commands
    run inside a script count both on their own line and in the script's time."""
    stats = await client.info("commandstats")
    out = {}
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_")
        out[name] = (int(value["calls"]), float(value["usec_per_call"]))
    return out


async def server_cpu_seconds(client: redis.asyncio.Redis) -> float:
    """The server process's CPU time (user + system) so far."""
    cpu = await client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def source_digest() -> str:
    """sha256 (12 hex) of the code measured: redis_store/*.py and lua/*.lua,
    so a result can be matched to the tree it came from."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("redis_store/*.py"), *root.glob("lua/*.lua")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis_py": redis.__version__,
    }


class MachineLoad:
    """How much of the machine other processes used while the benchmarks ran:
    busy CPU time of the whole machine (/proc/stat) minus this process and
    its children (the plainredis run) minus the server's own CPU. On a shared
    machine this says how noisy a run was."""

    def __init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.busy0 = self._busy()
        self.self0 = self._ours()

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat", encoding="utf-8") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def others_share(self, server_cpu_seconds: float) -> float | None:
        """Share of all cores used by other processes, in [0, 1]."""
        busy = self._busy()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.wall0
        others = (busy - self.busy0) - (self._ours() - self.self0) - server_cpu_seconds
        return max(0.0, others / (wall * (os.cpu_count() or 1)))


# -- timing ----------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(min(rank, len(ordered))) - 1]


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else float("nan")


@dataclass
class Sample:
    """One measured window."""

    ops: int
    seconds: float
    latencies: list[float] = field(repr=False, default_factory=list)
    retries: int = 0

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else float("nan")

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1e3

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1e3


Op = Callable[[], Awaitable[Any]]


async def drive(ops: Sequence[Op], duration: float, warmup: float, max_ops: int | None = None) -> Sample:
    """Run one asyncio task per op (the concurrency is ``len(ops)``), each
    calling its op back to back. Operations started in the ``duration``
    window after ``warmup`` are measured; throughput is their count over the
    time from the window's start to the last one's end. ``max_ops`` ends the
    window early once that many were measured."""
    loop_time = time.perf_counter
    start = loop_time()
    window = start + warmup
    end = window + duration
    latencies: list[float] = []
    last_done = window
    stop = False

    async def worker(op: Op) -> None:
        nonlocal last_done, stop
        while not stop:
            t0 = loop_time()
            if t0 >= end:
                return
            await op()
            t1 = loop_time()
            if t0 >= window:
                latencies.append(t1 - t0)
                last_done = max(last_done, t1)
                if max_ops is not None and len(latencies) >= max_ops:
                    stop = True

    await asyncio.gather(*(worker(op) for op in ops))
    return Sample(len(latencies), last_done - window, latencies)


async def time_calls(call: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` sequential awaits of ``call()``."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


def rotated(items: Sequence[Any], run: int) -> list[Any]:
    """The run-th rotation: each run measures implementations in another order."""
    k = run % len(items) if items else 0
    return list(items[k:]) + list(items[:k])


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of per-run ratios of two series measured side by side."""
    return median(n / d for n, d in zip(numerators, denominators) if d and d == d and n == n)


# -- output ------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table, numbers right-aligned."""
    text_rows = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str], header: bool = False) -> str:
        parts = []
        for i, cell in enumerate(cells):
            left = header or i == 0 or not _numeric(cell)
            parts.append(cell.ljust(widths[i]) if left else cell.rjust(widths[i]))
        return "  ".join(parts).rstrip()

    out = [line(headers, header=True), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in text_rows)
    return "\n".join(out)


def _numeric(cell: str) -> bool:
    return bool(cell) and (cell[0].isdigit() or cell[0] in "-+.") or cell in ("n/a", "nan")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def human_bytes(n: float) -> str:
    for unit, size in (("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"
