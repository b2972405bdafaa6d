"""python -m benchmarks.telemetry [--quick] [--url URL]

What the OpenTelemetry instrumentation costs per store call, measured side
by side in one process, in alternating rounds (medians of per-round ratios):

* ``bare``: the method as ``contract.py`` defines it, as when
  ``opentelemetry-api`` is not installed;
* ``api, no SDK``: the method ``RuntimeStore`` holds with the API installed
  but no SDK configured (the default for a library's user): the bare one
  again, since the wrappers are only put in place for an SDK, so this
  ratio measures only the noise of the machine;
* ``SDK``: with an SDK tracer and meter provider (spans to an in-memory
  exporter), for scale: what observing costs.

On memory:// (the cheapest calls, where any overhead shows most) and on a
private redis-server (or ``--url``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from redis_store import InputId, InputState, RunApplyBoundary, RunId, SessionDelta, open_store, telemetry
from redis_store.contract import RuntimeStore
from redis_store.embedded import any_server_binary, private_server

from .workload import session_snapshot


def _sdk() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    telemetry.configure(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))


async def _time(call, n: int) -> float:
    """Seconds per call of ``call()`` (a coroutine factory), over n calls."""
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - started) / n


async def measure(store: RuntimeStore, rounds: int, n: int) -> dict[str, dict[str, float]]:
    rid = "bench-telemetry"
    state = InputState.new_accepted(InputId.new())
    snapshot = SessionDelta(session_snapshot(4096))

    def commit(method):
        return lambda: method(store, rid, snapshot, RunId.new(), RunApplyBoundary.RUN_START, [state.input_id], [state])

    def read(method):
        return lambda: method(store, rid)

    operations = {"load_runtime_state": read, "commit_session_boundary": commit}
    results = {}
    for operation, make in operations.items():
        _sdk()
        bare = getattr(RuntimeStore, operation).__wrapped__  # the method as defined in contract.py
        telemetry.configure()
        await make(bare)()  # warm up: first use loads the scripts
        per_round: dict[str, list[float]] = {"bare": [], "api, no SDK": [], "SDK": []}
        for r in range(rounds):
            order = list(per_round)[r % 3:] + list(per_round)[: r % 3]  # rotate who goes first
            for name in order:
                if name == "SDK":
                    _sdk()
                # The method as the class holds it now: bare without an SDK, observed with one.
                method = bare if name == "bare" else getattr(RuntimeStore, operation)
                per_round[name].append(await _time(make(method), n))
                telemetry.configure()
        results[operation] = {
            "bare_us": statistics.median(per_round["bare"]) * 1e6,
            "no_sdk_us": statistics.median(per_round["api, no SDK"]) * 1e6,
            "sdk_us": statistics.median(per_round["SDK"]) * 1e6,
            "no_sdk_ratio": statistics.median(a / b for a, b in zip(per_round["api, no SDK"], per_round["bare"])),
            "sdk_ratio": statistics.median(a / b for a, b in zip(per_round["SDK"], per_round["bare"])),
        }
    return results


def _print(where: str, results: dict) -> None:
    print(f"\n{where}")
    print(f"{'operation':26} {'bare us':>9} {'api, no SDK us':>15} {'ratio':>7} {'SDK us':>9} {'ratio':>7}")
    for operation, r in results.items():
        print(f"{operation:26} {r['bare_us']:9.1f} {r['no_sdk_us']:15.1f} {r['no_sdk_ratio']:7.3f} "
              f"{r['sdk_us']:9.1f} {r['sdk_ratio']:7.3f}")


async def _run(url: str, rounds: int, n: int) -> dict:
    store = open_store(url, guard="off") if not url.startswith("memory") else open_store(url)
    async with store:
        return await measure(store, rounds, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.telemetry", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (numbers are rough)")
    parser.add_argument("--url", help="a Redis server to measure instead of a private one")
    args = parser.parse_args(argv)
    rounds, n = (5, 300) if args.quick else (15, 2000)
    _print("memory://", asyncio.run(_run("memory://", rounds, n)))
    if args.url:
        _print(args.url, asyncio.run(_run(args.url, rounds, n // 4)))
    else:
        with private_server(any_server_binary(), "no redis-server or valkey-server; pass --url") as server:
            _print(f"private {server.binary} (loopback)", asyncio.run(_run(server.url, rounds, n // 4)))
    print("\nratio: median over rounds of (time per call) / (bare time per call), measured side by side", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
