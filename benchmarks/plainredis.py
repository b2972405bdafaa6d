"""(c) of the throughput family: ``langgraph-checkpoint-plainredis``'s
``AsyncRedisSaver.aput`` + ``aput_writes`` against ``commit_session_boundary``,
paired run by run on one client.

The checkpoint carries the same messages as the commit's snapshot (channel
``messages``) and the writes carry the same 3 input states, so both store
the same content. The package is not a dependency of redis-store; it lives
only in the benchmark's own environment:

    python3 -m venv benchmarks/.venv
    benchmarks/.venv/bin/pip install -e . langgraph-checkpoint-plainredis

``python -m benchmarks`` runs this module in-process when the package is
importable, else as ``benchmarks/.venv/bin/python -m benchmarks.plainredis``
against the same server, else skips (c) saying how to install it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from . import throughput, workload
from .harness import Settings, client_for, log

PACKAGE = "langgraph-checkpoint-plainredis"
BENCH_PYTHON = Path(__file__).resolve().parent / ".venv" / "bin" / "python"
INSTALL = f"python3 -m venv benchmarks/.venv && benchmarks/.venv/bin/pip install -e . {PACKAGE}"


def importable() -> bool:
    try:
        import langgraph_checkpoint_plainredis  # noqa: F401
    except ImportError:
        return False
    return True


def make_plainredis(ctx: throughput.Context, size: int, task: int) -> Callable:
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6
    from langgraph_checkpoint_plainredis import AsyncRedisSaver

    saver = AsyncRedisSaver(client=ctx.client, prefix=f"{ctx.settings.prefix}-lg")
    messages, _ = workload.session_messages(size)
    writes = [("inputs", state.to_dict()) for state in workload.input_states(throughput.INPUTS_PER_COMMIT)]
    thread = f"thread-{task}"
    step = 0
    parent: str | None = None

    async def op() -> None:
        nonlocal step, parent
        step += 1
        checkpoint = empty_checkpoint()
        checkpoint["id"] = str(uuid6(clock_seq=step))
        checkpoint["channel_values"] = {"messages": messages}
        checkpoint["channel_versions"] = {"messages": step}
        checkpoint["versions_seen"] = {"agent": {"messages": step}}
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": parent}}
        saved = await saver.aput(config, checkpoint, {"source": "loop", "step": step, "parents": {}}, {"messages": step})
        await saver.aput_writes(saved, writes, task_id=f"task-{step}")
        parent = checkpoint["id"]

    return op


async def measure_here(url: str, settings: Settings) -> dict[str, Any]:
    """Commit and plainredis, side by side on one client of this process."""
    from importlib.metadata import version

    import redis

    client = client_for(url)
    try:
        ctx = await throughput.Context.create(client, settings)
        names = ["commit", "plainredis"]
        implementations = {"commit": throughput.make_commit, "plainredis": make_plainredis}
        samples = await throughput.measure(ctx, names, implementations)
        return {
            "status": "measured",
            "package_version": version(PACKAGE),
            "redis_py": redis.__version__,
            "python": sys.executable,
            "results": throughput.summarize(samples, names),
        }
    finally:
        await client.aclose()


async def run(url: str, settings: Settings) -> dict[str, Any]:
    if importable():
        return await measure_here(url, settings)
    if not BENCH_PYTHON.exists():
        return {"status": "skipped", "reason": f"{PACKAGE} is not importable and benchmarks/.venv does not exist; install it with: {INSTALL}"}
    log(f"(c) plainredis: running {BENCH_PYTHON} -m benchmarks.plainredis")
    command = [str(BENCH_PYTHON), "-m", "benchmarks.plainredis", "--url", url, "--runs", str(settings.runs)]
    if settings.quick:
        command.append("--quick")
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True
    )
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        return {"status": "skipped", "reason": f"benchmarks/.venv run failed (exit {done.returncode}); install with: {INSTALL}"}
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description="commit vs plainredis put+put_writes (run by python -m benchmarks)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not importable():
        print(json.dumps({"status": "skipped", "reason": f"{PACKAGE} is not importable here; install with: {INSTALL}"}))
        return
    settings = Settings.make(args.runs, args.quick)
    print(json.dumps(asyncio.run(measure_here(args.url, settings))))


if __name__ == "__main__":
    main()
