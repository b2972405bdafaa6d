"""Client instructions per commit, counted by valgrind (callgrind).

``python -m benchmarks.instructions [--pieces]``

Instruction counts do not move with the machine's load, so this is the
measure to compare two versions of the commit path on a busy machine. Each
figure is a run of N iterations minus a run of none, both under
``valgrind --tool=callgrind`` (only this Python process is counted; the
redis-server is not, nor the kernel's side of a system call):

* ``no-op``  EVALSHA ``return 1`` with the KEYS and arguments of a 4 KB
             growing commit, on a private redis-server: redis-py and the
             event loop, what every commit pays;
* ``commit`` ``commit_session_boundary`` of a session growing a turn per
             commit from 4 KB (one cold commit in 25), same server;
* with ``--pieces``, the store's own Python by part, without a server:
  ``store`` (a whole commit with the script call replaced by a stub),
  ``inputs`` (checking and stamping the 3 input updates), ``encode`` (the
  msgpack envelopes), ``digest`` (``inspect_session`` with a DigestCache),
  ``delta`` (``snapshot_delta.plan``); ``floor``, the part of these that is
  msgspec's own work, with none of the store's Python around it (the typed
  read and canonical write of each commit's new messages, the JSON round
  trip of each persisted input, the msgpack of the states and the receipt)
  and sha256 of the new messages: ``store`` minus ``floor`` is the Python
  glue; ``sha256`` alone, because valgrind runs OpenSSL's software SHA-256
  (no SHA-NI under valgrind): about 28 instructions per byte, several times
  what the CPU itself spends.

Needs ``valgrind`` on PATH (Debian: ``apt-get install valgrind``) and,
for the first two, ``redis-server``. About a minute per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import shutil
import subprocess
import sys
from typing import Any

import msgspec

from redis_store import RedisRuntimeStore, RunApplyBoundary, RunBoundaryReceipt, RunId, SessionDelta, codec, contract
from redis_store import digest as digests
from redis_store import snapshot_delta as deltas
from redis_store.embedded import private_server, redis_binary

from . import breakdown, workload
from .upgrade import Growing

N = 300
SIZE = 4096
TURNS = 24
SERVED = ("no-op", "commit")
PIECES = ("store", "inputs", "encode", "digest", "delta", "floor", "sha256")


def _setting() -> tuple[Growing, list, list, RunId]:
    states = workload.input_states(3)
    return Growing(SIZE, TURNS, "0190a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b"), states, [s.input_id for s in states], RunId.new()


async def _served(what: str, n: int, url: str) -> None:
    import redis.asyncio

    session, states, ids, run_id = _setting()
    client = redis.asyncio.Redis.from_url(url)
    store = RedisRuntimeStore(client, namespace=f"instructions-{what}", guard="off")

    async def commit() -> None:
        await store.commit_session_boundary("rt", SessionDelta(session.next()), run_id, RunApplyBoundary.RUN_CHECKPOINT, ids, states)

    for _ in range(TURNS + 1):
        await commit()
    if what == "commit":
        for _ in range(n):
            await commit()
    else:
        sent: list = []
        real = client.evalsha

        async def record(*args: Any) -> Any:
            sent[:] = args
            return await real(*args)
        client.evalsha = record  # type: ignore[method-assign]
        await commit()
        client.evalsha = real  # type: ignore[method-assign]
        noop = client.register_script("return 1")
        keys = sent[2:2 + int(sent[1])]
        args = sent[2 + int(sent[1]):]
        for _ in range(n):
            await noop(keys=keys, args=args)
    await client.delete(*[key async for key in client.scan_iter(match="instructions-*")] or ["-"])
    await client.aclose()


async def _store(n: int) -> None:
    import fakeredis

    session, states, ids, run_id = _setting()
    store = RedisRuntimeStore(fakeredis.FakeAsyncRedis(), namespace="instructions", guard="off")
    for _ in range(TURNS + 1):
        await store.commit_session_boundary("rt", SessionDelta(session.next()), run_id, RunApplyBoundary.RUN_CHECKPOINT, ids, states)
    sequence = iter(range(10**9))

    async def stub(operation: str, script: Any, keys: list, args: list) -> list:
        return [next(sequence), 0]
    store._run_script = stub  # type: ignore[method-assign]
    for _ in range(n):
        await store.commit_session_boundary("rt", SessionDelta(session.next()), run_id, RunApplyBoundary.RUN_CHECKPOINT, ids, states)


def _piece(what: str, n: int) -> None:
    session, states, ids, run_id = _setting()
    snapshots = session.built
    if what == "inputs":
        for _ in range(n):
            breakdown._stamped(states, run_id)
    elif what == "encode":
        stamped = [msgspec.structs.replace(s, last_run_id=run_id, last_boundary_sequence=None) for s in states]
        for i in range(n):
            receipt = RunBoundaryReceipt(run_id=run_id, boundary=RunApplyBoundary.RUN_CHECKPOINT, contributing_input_ids=ids,
                                         conversation_digest="ab" * 32, message_count=10, sequence=0)
            codec.SnapshotEnvelope(snapshots[i % len(snapshots)])
            codec.receipt_prefix(receipt)
            contract._encode_inputs("input_updates", stamped, codec.input_state_prefix)
    elif what == "digest":
        cache = digests.DigestCache()
        for i in range(n):
            digests.inspect_session(snapshots[i % len(snapshots)], cache)
    elif what in ("floor", "sha256"):
        new = _new_messages(session)
        stamped = breakdown._stamped(states, run_id)
        receipt = RunBoundaryReceipt(run_id=run_id, boundary=RunApplyBoundary.RUN_CHECKPOINT, contributing_input_ids=ids,
                                     conversation_digest="ab" * 32, message_count=10, sequence=0)
        for i in range(n):
            text = new[i % len(new)]
            if what == "sha256":
                hashlib.sha256(text)
                continue
            hashlib.sha256(digests._write(digests._read_messages(text)))
            for state in stamped:
                msgspec.json.decode(msgspec.json.encode(state.persisted_input))
                codec._pack(state)
            codec._pack(receipt)
    elif what == "delta":
        cache = digests.DigestCache()  # what the store's digest cache tells the delta (shared_with)
        envelopes = []
        for snapshot in snapshots:
            digests.inspect_session(snapshot, cache)
            envelopes.append(codec.SnapshotEnvelope(snapshot, cache.shared_with(snapshot)))
        for i in range(n):
            deltas.plan(deltas.Base("ab", envelopes[i % len(envelopes)]), envelopes[(i + 1) % len(envelopes)])


def _new_messages(session: Growing) -> list[bytes]:
    """Per snapshot, the message array a digest must read at least: the
    whole one for the first, the turn's new messages for the others."""
    counts = [session.count0 + 4 * k for k in range(session.turns + 1)]
    return [b"[" + b",".join(session.pieces[start:end]) + b"]" for start, end in zip([0, *counts[:-1]], counts)]


def _count(what: str, n: int, url: str) -> int:
    """Instructions of a child process running ``n`` iterations of ``what``."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m", "benchmarks.instructions",
         "--child", what, str(n), url],
        capture_output=True, text=True, check=True,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count for {what}:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", action="store_true", help="also count the store's own Python by part")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        what, n, url = args.child[0], int(args.child[1]), args.child[2]
        if what in SERVED:
            asyncio.run(_served(what, n, url))
        elif what == "store":
            asyncio.run(_store(n))
        else:
            _piece(what, n)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    counts: dict[str, float] = {}
    with private_server(redis_binary(), "no redis-server on PATH (Debian: apt-get install redis-server)") as server:
        for what in SERVED + (PIECES if args.pieces else ()):
            counts[what] = (_count(what, N, server.url) - _count(what, 0, server.url)) / N
            print(f"{what:8s} {counts[what]:>12,.0f} instructions per iteration", flush=True)
    print(f"commit / no-op: {counts['commit'] / counts['no-op']:.2f}x the no-op's client instructions "
          f"(its throughput ceiling where the client is the bottleneck: {counts['no-op'] / counts['commit']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
