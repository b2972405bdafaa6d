"""Issue 10: the commit path before and after, side by side in one process.

The baseline is the code before issue 10 (``--baseline REF``, default the
commit it started from), taken from git (``git archive``) into a temporary
directory and imported as a second package (``rs_base``), so both run in the
same process, against the same server, in alternating order, medians of runs.
Its codec needs ``msgpack`` (``pip install msgpack`` in the benchmark's
environment); without it, or without git, the family says so and stops.

Measured:

* client CPU paths, no server: the cold digest (MB/s) of 4 KB, 64 KB and
  1 MB snapshots as serde writes them and as ``json.dumps`` writes them
  (default separators, another key order); the digest of a session growing a
  turn per commit (the new code's per-store ``DigestCache``); validation and
  encoding per input state; decoding 10k stored input states; beside the
  cold digest, its floor: msgspec's typed decode, canonical encode and sha256
  alone, with none of the checks that make it exact;
* against the server: commits/s at c=8 and c=64 of sessions growing a turn
  per commit (4 KB and 64 KB at the start; 1 MB at c=8), of cold commits
  (new code with the cache off), and of a no-op EVALSHA with the very KEYS
  and arguments the new code sends for a commit of the same size (for a
  growing session a delta: the target's baseline), and, for context, with
  those of the same commit sent whole; client CPU per commit
  (``time.process_time`` of the whole process over the window / commits).
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from io import BytesIO
from pathlib import Path
from typing import Any, Callable

import msgspec
import redis.asyncio

import redis_store
from redis_store import digest as model
from redis_store import RedisRuntimeStore, RunApplyBoundary, RunId, SessionDelta, codec, contract
from redis_store.digest import DigestCache, inspect_session

from . import workload
from .harness import EvalshaRecorder, Settings, cleanup, drive, log, median, paired_ratio, rotated, table

#: The commit before issue 10's changes (redis-store 0.1.0's code).
DEFAULT_BASELINE = "df6e557"
ROOT = Path(__file__).resolve().parents[1]


def load_baseline(ref: str) -> Any:
    """The package as it was at ``ref``, imported as ``rs_base``."""
    if "rs_base" in sys.modules:
        return sys.modules["rs_base"]
    archive = subprocess.run(["git", "archive", ref, "redis_store", "lua"], cwd=ROOT, capture_output=True, check=True).stdout
    where = Path(tempfile.mkdtemp(prefix="rs-baseline-"))
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(where)
    package = where / "redis_store"
    (package / "lua").symlink_to(where / "lua")  # where its scripts.py looks in a wheel
    spec = importlib.util.spec_from_file_location("rs_base", package / "__init__.py", submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["rs_base"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


# -- data -------------------------------------------------------------------------

def _dumps_form(snapshot: bytes) -> bytes:
    """The same session as a Python worker writes it: json.dumps defaults, keys reordered."""
    doc = json.loads(snapshot)
    reordered = {k: doc[k] for k in ("id", "version", "created_at", "updated_at", "metadata", "usage", "messages")}
    reordered["messages"] = [dict(reversed(list(m.items()))) for m in doc["messages"]]
    return json.dumps(reordered).encode()


class Growing:
    """Successive snapshots of one session growing a turn per commit, from
    about ``start`` bytes, built by concatenation (as cheap as a worker's
    serializer); after ``turns`` commits it starts again (one cold commit)."""

    def __init__(self, start: int, turns: int, session_id: str) -> None:
        messages, first = workload.session_messages(start)
        compact = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode()  # noqa: E731
        self.head = f'{{"version":1,"id":"{session_id}","messages":['.encode()
        self.pieces = [compact(m) for m in messages]
        self.count0 = len(self.pieces)
        for i in range(first, first + turns):
            self.pieces += [compact(m) for m in workload.turn(i)]
        self.turns, self.first = turns, first
        self.i = 0
        self.built = [self.snapshot(k) for k in range(turns + 1)]  # built before any window

    def snapshot(self, k: int) -> bytes:
        n = self.count0 + 4 * k
        tail = {"created_at": {"secs_since_epoch": 1760000000, "nanos_since_epoch": 123456789},
                "updated_at": {"secs_since_epoch": 1760000000 + k, "nanos_since_epoch": 123456789},
                "metadata": {}, "usage": {"input_tokens": 900 + k, "output_tokens": 120, "cache_creation_tokens": None,
                                          "cache_read_tokens": 512}}
        return self.head + b",".join(self.pieces[:n]) + b"]," + json.dumps(tail, separators=(",", ":")).encode()[1:]

    def next(self) -> bytes:
        data = self.built[self.i]
        self.i = (self.i + 1) % (self.turns + 1)
        return data


# -- client CPU paths ---------------------------------------------------------------

def _best_per_call(fn: Callable[[], Any], min_seconds: float) -> float:
    """Seconds per call: the best of 3 batches of about ``min_seconds``."""
    fn()
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= min_seconds / 3:
            break
        n *= 2
    best = t / n
    for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


_SESSION = msgspec.json.Decoder(model.Session)


def _digest_floor(data: bytes) -> str:
    """What any exact digest built on msgspec pays at least: one typed decode
    of the whole Session, the canonical encode of its messages and sha256,
    without a single check of what msgspec and serde_json read differently."""
    return hashlib.sha256(model._write(_SESSION.decode(data).messages)).hexdigest()


def _same(a: Any, b: Any) -> bool:
    return (a.session_id, a.conversation_digest, a.message_count) == (b.session_id, b.conversation_digest, b.message_count)


def cpu_paths(base: Any, settings: Settings) -> dict[str, Any]:
    window = 0.05 if settings.quick else 0.3
    runs = settings.runs
    out: dict[str, Any] = {"digest": {}, "growing_digest": {}, "inputs": {}}
    sides = {"before": base, "after": redis_store}

    for size in (4096, 65536, 1 << 20):
        serde = workload.session_snapshot(size)
        for form, data in (("serde", serde), ("json.dumps", _dumps_form(serde))):
            assert _same(base.digest.inspect_session(data), inspect_session(data)), "before and after disagree"
            per: dict[str, list[float]] = {"before": [], "after": [], "floor": []}
            calls = {"before": lambda d=data: base.digest.inspect_session(d),
                     "after": lambda d=data: inspect_session(d),
                     "floor": lambda d=data: _digest_floor(d)}
            for run in range(runs):
                for side in rotated(list(calls), run):
                    per[side].append(_best_per_call(calls[side], window))
            out["digest"][f"{size}/{form}"] = {
                "bytes": len(data),
                **{side: {"us": median(v) * 1e6, "mb_s": len(data) / median(v) / 1e6} for side, v in per.items()},
                "speedup": paired_ratio(per["before"], per["after"]),
                "after_vs_floor": paired_ratio(per["floor"], per["after"]),
            }
        log(f"upgrade: cold digest {size // 1024} KB done")

    for size, turns in ((4096, 32), (65536, 32), (1 << 20, 16)):
        session = Growing(size, turns, str(uuid.uuid4()))
        snapshots = [session.snapshot(k) for k in range(turns + 1)]
        per = {"before": [], "after": []}
        for run in range(runs):
            for side in rotated(list(sides), run):
                cache = DigestCache()
                t0 = time.perf_counter()
                for data in snapshots[1:]:
                    if side == "before":
                        base.digest.inspect_session(data)
                    else:
                        inspect_session(data, cache)
                per[side].append((time.perf_counter() - t0) / turns)
        # the same results, from the cache
        cache = DigestCache()
        for data in snapshots:
            assert _same(inspect_session(data, cache), base.digest.inspect_session(data))
        out["growing_digest"][str(size)] = {
            "bytes": [len(snapshots[0]), len(snapshots[-1])],
            **{side: {"us": median(v) * 1e6} for side, v in per.items()},
            "speedup": paired_ratio(per["before"], per["after"]),
        }
        log(f"upgrade: growing digest {size // 1024} KB done")

    states = workload.input_states(3)
    own = {side: [m.InputState.from_dict(s.to_dict()) for s in states] for side, m in sides.items()}
    for side, m in sides.items():  # the same bytes on both sides
        assert [m.codec.input_state_prefix(w) for w in m.contract._input_wires("s", own[side])] == \
            [codec.input_state_prefix(w) for w in contract._input_wires("s", states)]

    def validate_encode(m: Any) -> Callable[[], Any]:
        mine = own["before" if m is base else "after"]
        return lambda: [m.codec.input_state_prefix(w) for w in m.contract._input_wires("s", mine)]

    stored = [codec.encode_input_state(s.to_dict()) for s in workload.input_states(10_000)]

    def decode(m: Any) -> Callable[[], Any]:
        def run() -> None:
            enabled = gc.isenabled()
            gc.disable()  # as load_input_states does
            try:
                for value in stored:
                    m.codec.decode_input_state(value)
            finally:
                if enabled:
                    gc.enable()
        return run

    for name, make, per_call in (("validate+encode", validate_encode, len(states)), ("decode 10k", decode, len(stored))):
        per = {"before": [], "after": []}
        for run in range(runs):
            for side in rotated(list(sides), run):
                per[side].append(_best_per_call(make(sides[side]), window) / per_call)
        out["inputs"][name] = {**{side: {"us": median(v) * 1e6} for side, v in per.items()},
                               "speedup": paired_ratio(per["before"], per["after"])}
    log("upgrade: input states done")
    return out


# -- against the server --------------------------------------------------------------

SERVER_CASES = [  # (label, start bytes, turns before it starts again (0: cold), concurrency)
    ("4 KB growing", 4096, 6, (8, 64)),
    # From 66 KiB: a snapshot that crosses 64 KiB gets a longer msgpack
    # header, which shifts every byte, so that one commit goes whole.
    ("64 KB growing", 66 * 1024, 24, (8, 64)),
    ("1 MB growing", 1 << 20, 24, (8,)),
    ("4 KB cold", 4096, 0, (8,)),
    ("64 KB cold", 65536, 0, (8,)),
]


async def server_paths(client: redis.asyncio.Redis, base: Any, settings: Settings) -> dict[str, Any]:
    prefix = settings.prefix
    after = RedisRuntimeStore(client, namespace=f"{prefix}-after")
    after_cold = RedisRuntimeStore(client, namespace=f"{prefix}-cold", digest_cache_bytes=0)
    before = base.RedisRuntimeStore(client, namespace=f"{prefix}-before")
    noop = client.register_script("return 1")
    out: dict[str, Any] = {}
    for label, size, turns, concurrencies in SERVER_CASES:
        growing = turns > 0
        for c in concurrencies:
            sessions = [Growing(size, turns, str(uuid.uuid4())) for _ in range(c)]
            states = workload.input_states(3)
            ids = [s.input_id for s in states]

            def commit_op(store: Any, mod: Any, task: int) -> Callable:
                runtime, run_id, session = f"{label}-{task}", (mod.RunId if mod else RunId).new(), sessions[task]
                delta_cls = mod.SessionDelta if mod else SessionDelta
                boundary = (mod.RunApplyBoundary if mod else RunApplyBoundary).RUN_CHECKPOINT
                my_states = [mod.InputState.from_dict(s.to_dict()) for s in states] if mod else states
                my_ids = [s.input_id for s in my_states]

                async def op() -> None:
                    data = session.next()
                    await store.commit_session_boundary(runtime, delta_cls(data), run_id, boundary, my_ids, my_states)
                return op

            # Two no-ops replay the KEYS and arguments of one commit of the
            # middle snapshot: "noop" those the new code sends (for a growing
            # session: a delta over the snapshot before, as in the steady
            # state), the target's baseline; "noop_whole" those of the same
            # commit sent whole, as before deltas (context only).
            mid_turn = turns // 2 if growing else 0
            mid = sessions[0].snapshot(mid_turn)
            recorder = EvalshaRecorder(client)
            try:
                probe_run = RunId.new()
                if growing:
                    await after.commit_session_boundary("probe", SessionDelta(sessions[0].snapshot(mid_turn - 1)), probe_run,
                                                        RunApplyBoundary.RUN_CHECKPOINT, ids, states)
                await (after if growing else after_cold).commit_session_boundary(
                    "probe", SessionDelta(mid), probe_run, RunApplyBoundary.RUN_CHECKPOINT, ids, states)
                own = recorder.last()
                await after_cold.commit_session_boundary("probe-whole", SessionDelta(mid), RunId.new(), RunApplyBoundary.RUN_CHECKPOINT, ids, states)
                whole = recorder.last()
            finally:
                recorder.remove()
            sent = {name: sum(len(a) if isinstance(a, bytes) else len(str(a)) for a in args) for name, (_, args) in
                    (("own", own), ("whole", whole))}

            def noop_op(recorded: tuple[list, list]) -> Callable[[int], Callable]:
                keys, args = recorded

                def make(task: int) -> Callable:
                    async def op() -> None:
                        await noop(keys=keys, args=args)
                    return op
                return make

            impls = {
                "before": lambda t: commit_op(before, base, t),
                "after": lambda t: commit_op(after_cold if not growing else after, None, t),
                "noop": noop_op(own),
                "noop_whole": noop_op(whole),
            }
            samples: dict[str, list] = {k: [] for k in impls}
            cpu: dict[str, list[float]] = {k: [] for k in impls}
            for run in range(settings.runs):
                for name in rotated(list(impls), run):
                    for s in sessions:
                        s.i = 0
                    ops = [impls[name](t) for t in range(c)]
                    p0 = time.process_time()
                    sample = await drive(ops, settings.duration, settings.warmup)
                    spent = time.process_time() - p0
                    total_ops = sample.ops * (settings.duration + settings.warmup) / settings.duration
                    samples[name].append(sample)
                    cpu[name].append(spent / max(total_ops, 1))
                    await cleanup(client, prefix)
            rate = {k: [x.ops_per_s for x in v] for k, v in samples.items()}
            out[f"{label} c={c}"] = {
                "snapshot_bytes": len(mid), "argv_bytes": sent["own"], "argv_bytes_whole": sent["whole"],
                **{k: {"ops_per_s": median(rate[k]), "p50_ms": median(x.p50_ms for x in samples[k]),
                       "client_cpu_us": median(cpu[k]) * 1e6} for k in impls},
                "before_vs_noop": paired_ratio(rate["before"], rate["noop_whole"]),  # what the old code sent: all of it
                "after_vs_noop": paired_ratio(rate["after"], rate["noop"]),
                "after_vs_noop_whole": paired_ratio(rate["after"], rate["noop_whole"]),
                "after_vs_before": paired_ratio(rate["after"], rate["before"]),
            }
            log(f"upgrade: {label} c={c}: before {median(rate['before']):,.0f}/s, after {median(rate['after']):,.0f}/s, "
                f"no-op {median(rate['noop']):,.0f}/s")
    return out


async def run(client: redis.asyncio.Redis, settings: Settings, baseline: str = DEFAULT_BASELINE) -> dict[str, Any]:
    try:
        base = load_baseline(baseline)
    except (OSError, subprocess.CalledProcessError, ImportError) as exc:
        return {"status": "skipped", "reason": f"baseline {baseline} not loadable ({exc}); "
                "it needs git and, for its codec, `pip install msgpack`"}
    out: dict[str, Any] = {"status": "measured", "baseline": baseline}
    out["cpu"] = cpu_paths(base, settings)
    out["server"] = await server_paths(client, base, settings)
    return out


def report(data: dict[str, Any]) -> str:
    if data.get("status") != "measured":
        return f"skipped: {data.get('reason')}"
    cpu = data["cpu"]
    rows = [[key.replace("/", " "), r["bytes"], r["before"]["us"], r["before"]["mb_s"], r["after"]["us"], r["after"]["mb_s"], f"{r['speedup']:.2f}x",
             r["floor"]["us"], r["floor"]["mb_s"], f"{r['after_vs_floor']:.2f}x"]
            for key, r in cpu["digest"].items()]
    part1 = table(["cold digest", "bytes", "before us", "MB/s", "after us", "MB/s", "speedup", "floor us", "MB/s", "after/floor"], rows)
    part1 += ("\nfloor = msgspec's typed decode of the whole Session + the canonical encode of its messages + sha256,"
              " no shim: what any exact digest on msgspec pays at least")
    rows = [[f"{int(k) // 1024} KB + a turn", f"{r['bytes'][0]:,}..{r['bytes'][1]:,}", r["before"]["us"], r["after"]["us"], f"{r['speedup']:.2f}x"]
            for k, r in cpu["growing_digest"].items()]
    part2 = table(["digest, growing session", "bytes", "before us/commit", "after us/commit", "speedup"], rows)
    rows = [[k, r["before"]["us"], r["after"]["us"], f"{r['speedup']:.2f}x"] for k, r in cpu["inputs"].items()]
    part3 = table(["per input state", "before us", "after us", "speedup"], rows)
    rows = []
    for key, r in data["server"].items():
        rows.append([key, r["snapshot_bytes"], r["argv_bytes"], r["before"]["ops_per_s"], r["after"]["ops_per_s"], r["noop"]["ops_per_s"],
                     f"{r['before_vs_noop']:.2f}x", f"{r['after_vs_noop']:.2f}x", r["before"]["client_cpu_us"], r["after"]["client_cpu_us"],
                     r["noop"]["client_cpu_us"], r["argv_bytes_whole"], r["noop_whole"]["ops_per_s"], f"{r['after_vs_noop_whole']:.2f}x",
                     r["noop_whole"]["client_cpu_us"]])
    part4 = table(["commits", "snapshot B", "ARGV B", "before/s", "after/s", "no-op/s", "before/no-op whole", "after/no-op",
                   "before CPU us", "after CPU us", "no-op CPU us", "whole ARGV B", "no-op whole/s", "after/no-op whole",
                   "no-op whole CPU us"], rows)
    return (f"baseline: {data['baseline']} (imported side by side as rs_base)\n" + part1 + "\n\n" + part2 + "\n\n" + part3
            + "\n\nclient CPU = the whole process's CPU time over the window / commits (redis-py and the event loop included)\n"
            + "no-op = EVALSHA 'return 1' with the KEYS and ARGV the new code sends for that commit (growing: a delta);"
            + " no-op whole = the same commit's arguments with the snapshot whole (what a commit sent before deltas)\n" + part4)

