"""Crash-test kit for tests/test_crash.py.

* ``DurableServer``: a redis-server that can be SIGKILLed and restarted from
  its own data directory on the same port (``ServerProcess`` picks a new port
  on every ``start``).
* A model of what each runtime must hold. Every runtime is driven by one
  worker at a time, so its writes form a sequence; each acknowledged write
  appends the ``Version`` it leads to. After a crash and restart, what is
  stored must equal one of the allowed versions (``exact``: the last
  acknowledged one, or that plus the one write whose outcome was unknown;
  ``prefix``: any version of the sequence, for persistence settings that may
  lose a tail). Equality covers everything a runtime holds (state, snapshot
  bytes, the receipt minted with the snapshot, input order, every input,
  every receipt, every run's sequence counter), so a commit that is there in
  part, a lost commit, a duplicate or a gap all show up as a difference.
* ``storm``: several asyncio workers, each over its own runtimes and one of
  several ``RedisRuntimeStore`` clients, committing until the server dies.
* What a lossy setting may lose is measured against when each write was
  acknowledged: ``verify(kept_before=t)`` fails if any write acknowledged
  before ``t`` (monotonic) is missing. For ``everysec`` that is the kill time
  minus Redis's documented window; for RDB, ``SaveWatcher`` finds the last
  save that completed before the kill and a time before it forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import msgspec
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from redis_store import (
    InputId,
    InputLifecycleState,
    InputState,
    InputStateHistoryEntry,
    ReceiptConflict,
    RedisRuntimeStore,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RunId,
    RuntimeState,
    SessionDelta,
    SessionId,
    Timestamp,
    WriteFailed,
    session_digest,
)
from redis_store import codec
from redis_store.audit import check_store
from redis_store.contract import RawRuntime
from redis_store.embedded import ServerProcess

from sessions import session_json

#: Marker of redis_store's "the script may have run" errors.
UNKNOWN = "outcome is unknown"


# -- a server that survives SIGKILL ------------------------------------------------


class ServerExited(RuntimeError):
    pass


class DurableServer(ServerProcess):
    """A ``ServerProcess`` with persistence args that ``kill()`` stops with
    SIGKILL (by its own pid) and ``start()`` brings back on the same port
    from the same ``--dir``."""

    def __init__(self, binary: str, *persistence: str) -> None:
        super().__init__(binary, *persistence)
        self.kills = 0

    def _argv(self) -> list[str]:
        # The same command line as ServerProcess.start: its defaults, then ours.
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(self.dir / "server.log"),
            *self.extra_args,
        ]

    def start(self, timeout: float = 30.0) -> "DurableServer":
        if not self.port:  # first start: ServerProcess finds a free port
            super().start(timeout)
            self.wait_ready(timeout)
            return self
        deadline = time.monotonic() + timeout
        while True:  # a restart: the same port and --dir, so the same data
            self.proc = subprocess.Popen(self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                self.wait_ready(max(1.0, deadline - time.monotonic()))
                return self
            except ServerExited:  # e.g. the port still held for an instant
                if self.proc.poll() is None:
                    self.proc.kill()  # ours, by its pid
                self.proc.wait()
                self.proc = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def wait_ready(self, timeout: float) -> None:
        """Until the server answers and has loaded its data set."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1) as client:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise ServerExited(f"redis-server on port {self.port} exited while starting:\n{self.log_tail()}")
                try:  # our process (not another on a reused port), done loading
                    if int(client.info("server")["process_id"]) != self.proc.pid:
                        raise ServerExited(f"port {self.port} is answered by another process")
                    if int(client.info("persistence")["loading"]) == 0:
                        return
                except redis.RedisError as exc:  # connection refused, LOADING
                    last = exc
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server and its fork children (an RDB save or AOF
        rewrite in progress), as a crash of its container or unit does: no
        shutdown, no final save. Each by its own pid, children found first.

        Killing only the parent is a different fault: an RDB save child
        outlives it and renames its snapshot over dump.rdb later, after the
        restart, so a second restart comes back in a state from before the
        first (writes acknowledged in between vanish, lost ones return)."""
        assert self.proc is not None and self.proc.poll() is None, "server is not running"
        children = _children(self.proc.pid)
        os.kill(self.proc.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        deadline = time.monotonic() + 5
        while any(_alive(child) for child in children) and time.monotonic() < deadline:
            time.sleep(0.005)
        self.kills += 1

    def stop(self, remove_dir: bool = True) -> None:
        if os.environ.get("REDIS_STORE_CRASH_KEEP") and remove_dir:
            remove_dir = False
            print(f"crash data kept in {self.dir}")
        super().stop(remove_dir)

    def sync_client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


def _children(pid: int) -> list[int]:
    """Pids of the processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    """Not yet gone (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def fail_fast_client(port: int) -> redis.asyncio.Redis:
    """A client whose calls fail at once when the server dies: short
    timeouts, no redis-py retries (a re-sent commit could commit twice).

    redis-py 8 enables "maintenance notifications" by default, and with them
    its pool stops checking an idle connection for EOF before reusing it: a
    connection pooled before a server restart then fails its first command
    ("Connection closed by server"), which without retries surfaces as a
    failed call although nothing reached the server. Turned off here, so
    the workers' first writes after a restart reach the restarted server."""
    options: dict = {}
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:  # redis-py < 7: no such feature
        pass
    else:
        options["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return redis.asyncio.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=2.0,
        socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


# -- what a runtime holds ------------------------------------------------------------


@dataclass
class Version:
    """Everything one runtime holds, decoded: what the model expects, or
    what was read back. Copy-on-write: ops build a new one with ``evolve``."""

    state: str | None = None
    snapshot: bytes | None = None
    snapshot_receipt: str | None = None  # "<run>:<seq>" minted with the snapshot
    order: tuple[str, ...] = ()
    inputs: dict[str, dict] = field(default_factory=dict)  # input id -> wire
    receipts: dict[str, dict] = field(default_factory=dict)  # "<run>:<seq>" -> wire
    run_seqs: dict[str, int] = field(default_factory=dict)
    #: The last acknowledged commit with a commit id (re-sent by "replay" ops).
    replayable: "Op | None" = dataclasses.field(default=None, compare=False)

    def evolve(self, **changes) -> "Version":
        return dataclasses.replace(self, **changes)

    def is_empty(self) -> bool:
        return self == Version()

    def upsert(self, wires: list[dict]) -> dict:
        """Inputs and order after upserting ``wires``."""
        inputs, order = dict(self.inputs), list(self.order)
        for wire in wires:
            if wire["input_id"] not in inputs:
                order.append(wire["input_id"])
            inputs[wire["input_id"]] = wire
        return {"inputs": inputs, "order": tuple(order)}


def diff(stored: Version, expected: Version, limit: int = 12) -> list[str]:
    """What differs, in words (for failure messages)."""
    out: list[str] = []
    if stored.state != expected.state:
        out.append(f"runtime state {stored.state!r}, expected {expected.state!r}")
    if stored.snapshot != expected.snapshot:
        size = lambda s: "none" if s is None else f"{len(s)} bytes, {session_digest(s)[1]} messages"  # noqa: E731
        out.append(f"snapshot {size(stored.snapshot)}, expected {size(expected.snapshot)}")
    if stored.snapshot_receipt != expected.snapshot_receipt:
        out.append(f"snapshot_receipt {stored.snapshot_receipt!r}, expected {expected.snapshot_receipt!r}")
    if stored.order != expected.order:
        out.append(f"input order differs: stored {len(stored.order)} ids, expected {len(expected.order)}")
    for what, got, want in (("receipt", stored.receipts, expected.receipts), ("input", stored.inputs, expected.inputs)):
        for key in sorted(want.keys() - got.keys()):
            out.append(f"{what} {key} missing (lost)")
        for key in sorted(got.keys() - want.keys()):
            out.append(f"{what} {key} stored but never committed")
        for key in sorted(got.keys() & want.keys()):
            if got[key] != want[key]:
                out.append(f"{what} {key} differs: stored {got[key]}, expected {want[key]}")
    for run in sorted(set(stored.run_seqs) | set(expected.run_seqs)):
        if stored.run_seqs.get(run) != expected.run_seqs.get(run):
            out.append(f"run {run} counter {stored.run_seqs.get(run)}, expected {expected.run_seqs.get(run)}")
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


class Decoder:
    """Decodes stored values, remembering each distinct value once (the
    same receipts are read back after every kill)."""

    def __init__(self) -> None:
        self._inputs: dict[bytes, dict] = {}
        self._receipts: dict[bytes, dict] = {}

    def input(self, value: bytes) -> dict:
        wire = self._inputs.get(value)
        if wire is None:
            wire = self._inputs[value] = codec.decode_input_state(value).to_dict()
        return wire

    def receipt(self, value: bytes) -> dict:
        wire = self._receipts.get(value)
        if wire is None:
            wire = self._receipts[value] = codec.decode_receipt(value).to_dict()
        return wire

    def version(self, raw: RawRuntime) -> Version:
        return Version(
            state=None if raw.state is None else codec.decode_runtime_state(raw.state).value,
            snapshot=None if raw.snapshot is None else codec.decode_snapshot(raw.snapshot),
            snapshot_receipt=raw.meta.get("snapshot_receipt"),
            order=tuple(raw.input_order),
            inputs={key: self.input(value) for key, value in raw.inputs.items()},
            receipts={key: self.receipt(value) for key, value in raw.receipts.items()},
            run_seqs={run: int(seq) for run, seq in raw.run_seqs.items()},
        )


# -- operations -------------------------------------------------------------------------


@dataclass
class Op:
    """One write: how to call it, the version it leads to, and what it must return."""

    kind: str
    call: Callable[[RedisRuntimeStore], Awaitable[Any]]
    after: Version
    result: Any = None  # the receipt commit_session_boundary must return
    receipt: RunBoundaryReceipt | None = None  # the receipt it stores (commit, apply)
    stamped: tuple[str, ...] = ()  # inputs commit_session_boundary stamps
    touched: tuple[str, ...] = ()  # every input it writes
    commit_id: str | None = None
    expect_error: type | None = None  # ReceiptConflict for "conflict" ops
    acked_at: float = 0.0

    @property
    def commits(self) -> bool:
        return self.kind in ("commit", "apply")


TERMINAL = {s.value for s in InputLifecycleState if s.is_terminal()}
_NEXT = {
    InputLifecycleState.ACCEPTED: InputLifecycleState.QUEUED,
    InputLifecycleState.QUEUED: InputLifecycleState.STAGED,
    InputLifecycleState.STAGED: InputLifecycleState.APPLIED,
    InputLifecycleState.APPLIED: InputLifecycleState.APPLIED_PENDING_CONSUMPTION,
    InputLifecycleState.APPLIED_PENDING_CONSUMPTION: InputLifecycleState.CONSUMED,
}


def _move(state: InputState, rng: random.Random) -> InputState:
    to = _NEXT.get(state.current_state, InputLifecycleState.CONSUMED)
    if rng.random() < 0.05:
        to = InputLifecycleState.ABANDONED if rng.random() < 0.5 else InputLifecycleState.SUPERSEDED
    now = Timestamp.now()
    entry = InputStateHistoryEntry(now, state.current_state, to, f"crash storm {to.value}")
    return msgspec.structs.replace(
        state,
        current_state=to,
        updated_at=now,
        attempt_count=state.attempt_count + (to == InputLifecycleState.STAGED),
        history=[*state.history[-6:], entry],  # keep records realistic but bounded
    )


class RuntimeModel:
    """One runtime: its verified version, the writes acknowledged since,
    and at most one write whose outcome is unknown (its worker stops there)."""

    def __init__(self, rid: str) -> None:
        self.rid = rid
        self.session_id = str(SessionId(uuid.uuid4()))
        self.base = Version()
        self.history: list[Op] = []
        self.pending: Op | None = None  # raised "outcome is unknown"
        self.failed: tuple[Op, Exception] | None = None  # raised a definite error: nothing written
        self.run_id = RunId.new()
        self.turns = 0
        self.ops = 0

    @property
    def current(self) -> Version:
        return self.history[-1].after if self.history else self.base

    def versions(self) -> list[Version]:
        return [self.base, *(op.after for op in self.history)]

    def rebase(self, version: Version) -> None:
        self.base, self.history, self.pending, self.failed = version, [], None, None

    # -- planning the next write (seeded; deterministic per worker) --

    def _live(self, v: Version, rng: random.Random, most: int) -> list[InputState]:
        live = [i for i in v.order if v.inputs[i]["current_state"] not in TERMINAL]
        chosen = rng.sample(live, min(len(live), rng.randint(0, most)))
        return [InputState.from_dict(v.inputs[i]) for i in chosen]

    def _new_input(self, rng: random.Random) -> InputState:
        state = InputState.new_accepted(InputId.new())
        state.persisted_input = {"input_type": "prompt", "text": f"turn {self.turns}: {rng.random():.6f}"}
        state.idempotency_key = f"idem-{rng.getrandbits(32):08x}"
        return state

    def _snapshot(self, rng: random.Random) -> bytes:
        self.turns += 1
        return session_json(1 + self.turns % 12, self.session_id)

    def plan(self, rng: random.Random) -> Op:
        v, rid = self.current, self.rid
        kinds = ["commit"] * 5 + ["persist"] * 3 + ["lifecycle"] * 2 + ["apply"] * 2
        if not v.is_empty() and rng.random() < 1 / 150:
            kinds = ["delete"]  # the runtime's end: bounds what the store holds
        elif v.receipts and rng.random() < 0.04:
            kinds = ["conflict"]
        elif v.replayable is not None and rng.random() < 0.04:
            kinds = ["replay"]
        kind = rng.choice(kinds)

        if kind == "delete":  # everything but the fencing epoch goes, at once
            self.run_id = RunId.new()
            return Op(kind, lambda s: s.delete_runtime(rid), Version(), result=True)

        if kind == "persist":
            live = self._live(v, rng, 1)
            state = _move(live[0], rng) if live and rng.random() < 0.6 else self._new_input(rng)
            wire = state.to_dict()
            return Op(kind, lambda s: s.persist_input_state(rid, state), v.evolve(**v.upsert([wire])),
                      touched=(wire["input_id"],))

        if kind == "lifecycle":
            states = [_move(s, rng) for s in self._live(v, rng, 3)]
            if rng.random() < 0.3:
                states.append(self._new_input(rng))
            runtime_state = rng.choice([RuntimeState.IDLE, RuntimeState.RUNNING, RuntimeState.RECOVERING, RuntimeState.RETIRED])
            wires = [s.to_dict() for s in states]
            return Op(kind, lambda s: s.atomic_lifecycle_commit(rid, runtime_state, states),
                      v.evolve(state=runtime_state.value, **v.upsert(wires)), touched=tuple(w["input_id"] for w in wires))

        if kind == "commit":
            if rng.random() < 0.2:
                self.run_id = RunId.new()
            run_id = self.run_id
            seq = v.run_seqs.get(str(run_id), -1) + 1
            boundary = (RunApplyBoundary.RUN_START if seq == 0 else
                        rng.choice([RunApplyBoundary.RUN_CHECKPOINT, RunApplyBoundary.RUN_CHECKPOINT, RunApplyBoundary.IMMEDIATE]))
            states = [_move(s, rng) for s in self._live(v, rng, 3)]
            if rng.random() < 0.3:
                states.append(self._new_input(rng))
            contributing = [s.input_id for s in states if rng.random() < 0.8]
            snapshot = self._snapshot(rng)
            digest, count = session_digest(snapshot)
            receipt = RunBoundaryReceipt(run_id, boundary, contributing, digest, count, seq)
            wires = []
            for s in states:
                wire = s.to_dict()
                wire["last_run_id"], wire["last_boundary_sequence"] = str(run_id), seq
                wires.append(wire)
            key = f"{run_id}:{seq}"
            commit_id = f"{run_id}:c{seq}:{rng.getrandbits(32):08x}" if rng.random() < 0.5 else None
            delta = SessionDelta(snapshot)
            op = Op(kind, lambda s: s.commit_session_boundary(rid, delta, run_id, boundary, contributing, states, commit_id=commit_id),
                    None, result=receipt, receipt=receipt, commit_id=commit_id,
                    stamped=tuple(w["input_id"] for w in wires), touched=tuple(w["input_id"] for w in wires))
            op.after = v.evolve(
                snapshot=snapshot, snapshot_receipt=key, receipts={**v.receipts, key: receipt.to_dict()},
                run_seqs={**v.run_seqs, str(run_id): seq}, replayable=op if commit_id else v.replayable, **v.upsert(wires))
            return op

        if kind == "apply":
            run_id = self.run_id if rng.random() < 0.7 else RunId.new()
            last = v.run_seqs.get(str(run_id), -1)
            seq = last + (1 if rng.random() < 0.8 else rng.randint(2, 4))  # caller-chosen; gaps are allowed
            states = [_move(s, rng) for s in self._live(v, rng, 2)]
            snapshot = self._snapshot(rng) if rng.random() < 0.6 else None
            digest, count = session_digest(snapshot) if snapshot is not None else (None, 0)
            receipt = RunBoundaryReceipt(run_id, RunApplyBoundary.RUN_CHECKPOINT, [s.input_id for s in states], digest, count, seq)
            key_arg = SessionId(self.session_id) if snapshot is not None and rng.random() < 0.5 else None
            delta = None if snapshot is None else SessionDelta(snapshot)
            commit_id = f"{run_id}:a{seq}:{rng.getrandbits(32):08x}" if rng.random() < 0.5 else None
            wires = [s.to_dict() for s in states]
            op = Op(kind, lambda s: s.atomic_apply(rid, delta, receipt, states, key_arg, commit_id=commit_id),
                    None, receipt=receipt, commit_id=commit_id, touched=tuple(w["input_id"] for w in wires))
            key = f"{run_id}:{seq}"
            changes: dict = {}
            if snapshot is not None:
                changes = {"snapshot": snapshot, "snapshot_receipt": None}
            op.after = v.evolve(
                receipts={**v.receipts, key: receipt.to_dict()}, run_seqs={**v.run_seqs, str(run_id): max(last, seq)},
                replayable=op if commit_id else v.replayable, **changes, **v.upsert(wires))
            return op

        if kind == "conflict":  # an existing receipt key: ReceiptConflict, nothing written
            key = rng.choice(sorted(v.receipts))
            existing = RunBoundaryReceipt.from_dict(v.receipts[key])
            clash = msgspec.structs.replace(existing, message_count=existing.message_count + 1)
            states = [_move(s, rng) for s in self._live(v, rng, 2)]
            delta = SessionDelta(self._snapshot(rng))
            return Op(kind, lambda s: s.atomic_apply(rid, delta, clash, states), v, expect_error=ReceiptConflict)

        # replay: the last commit with a commit id, re-sent; returns the first result, writes nothing
        first = v.replayable
        return Op(kind, first.call, v, result=first.result)

    def check_result(self, op: Op, result: Any) -> None:
        if op.result is not None:
            assert result == op.result, f"{self.rid}: {op.kind} returned {result}, expected {op.result}"


# -- the storm ------------------------------------------------------------------------------


@dataclass
class Stats:
    acknowledged: int = 0  # writes acknowledged
    commits: int = 0  # of which commits (commit_session_boundary, atomic_apply)
    unknown: int = 0
    definite: int = 0
    landed_unknown: int = 0  # unknown outcomes found committed after the restart
    retried: int = 0  # unknown commits retried with their commit id after the restart
    lost: int = 0  # acknowledged writes missing after a restart (prefix modes only)
    lost_commits: int = 0
    protected: int = 0  # acknowledged writes that had to survive (before ``kept_before``)
    during_rewrite: int = 0  # kills while an AOF rewrite ran
    during_bgsave: int = 0  # kills while an RDB save ran
    by_kind: dict = field(default_factory=dict)


async def _work(store: RedisRuntimeStore, runtimes: list[RuntimeModel], rng: random.Random, stats: Stats) -> None:
    """Write to the worker's runtimes until the first failure (the server died)."""
    while True:
        rt = rng.choice(runtimes)
        op = rt.plan(rng)
        try:
            result = await op.call(store)
        except WriteFailed as exc:
            if op.expect_error is not None and isinstance(exc, op.expect_error):
                continue
            if UNKNOWN in str(exc):
                rt.pending = op
                stats.unknown += 1
            else:
                rt.failed = (op, exc)
                stats.definite += 1
            return
        assert op.expect_error is None, f"{rt.rid}: {op.kind} succeeded, expected {op.expect_error.__name__}"
        rt.check_result(op, result)
        op.acked_at = time.monotonic()
        if op.kind in ("conflict", "replay"):
            continue  # nothing written
        rt.history.append(op)
        stats.acknowledged += 1
        stats.commits += op.commits
        stats.by_kind[op.kind] = stats.by_kind.get(op.kind, 0) + 1


async def storm(
    server: DurableServer,
    stores: list[RedisRuntimeStore],
    runtimes: list[RuntimeModel],
    workers: int,
    rng_seed: str,
    duration: float,
    stats: Stats,
    background: tuple[float, str] | None = None,
    watcher: "SaveWatcher | None" = None,
) -> float:
    """Workers write for ``duration`` seconds, then the server is SIGKILLed;
    returns the kill's monotonic time once every worker has stopped.
    ``background=(at, command)`` starts BGREWRITEAOF or BGSAVE ``at``
    seconds in, so that the kill can land while it runs. ``watcher`` polls
    the server's saves until just before the kill."""
    tasks = [
        asyncio.create_task(_work(stores[w % len(stores)], runtimes[w::workers], random.Random(f"{rng_seed}/w{w}"), stats))
        for w in range(workers)
    ]
    watching = asyncio.create_task(watcher.watch()) if watcher is not None else None
    if background is not None:
        at, command = background
        await asyncio.sleep(min(at, duration))
        if watcher is not None:  # count the server's own saves only, not the one started here
            watcher.stopping = True
        try:
            with server.sync_client() as admin:
                admin.execute_command(command)
        except redis.RedisError:
            pass  # e.g. one is already running
        await asyncio.sleep(max(0.0, duration - at))
    else:
        await asyncio.sleep(duration)
    early = [t for t in tasks if t.done()]
    try:  # what the server is doing in the background as it dies
        with server.sync_client() as admin:
            info = admin.info("persistence")
        if int(info.get("aof_rewrite_in_progress", 0)):
            stats.during_rewrite += 1
        if int(info.get("rdb_bgsave_in_progress", 0)):
            stats.during_bgsave += 1
    except redis.RedisError:
        pass
    if watching is not None:
        watcher.stopping = True
        await asyncio.wait_for(watching, timeout=10)
    server.kill()
    killed_at = time.monotonic()
    done, stuck = await asyncio.wait(tasks, timeout=15)
    assert not stuck, f"{len(stuck)} workers still blocked 15 s after the kill: a call hangs"
    for task in done:
        task.result()  # a worker's AssertionError or an unexpected exception type
    if len(early) == len(tasks):
        raise AssertionError("every worker had stopped before the kill")
    return killed_at


class SaveWatcher:
    """Polls ``INFO persistence`` during a storm to find a moment before
    which every acknowledged write is in an RDB file that was completely
    written before the kill.

    ``rdb_saves`` counts saves when they fork, so ``rdb_saves -
    rdb_bgsave_in_progress`` counts the finished ones. If a poll sent at
    ``t`` saw no save running, a save that finished after that poll forked
    after ``t``: every write acknowledged before ``t`` (its reply came back
    before the poll went out) is in that save's image."""

    def __init__(self, port: int, every: float = 0.02) -> None:
        self.port = port
        self.every = every
        self.polls: list[tuple[float, int, bool]] = []  # (sent at, saves finished, one running)
        self.failed_saves = 0
        self.stopping = False

    async def watch(self) -> None:
        """Polls until ``stopping`` is set (not cancelled: a command cut off
        half-way would leave the client to clean up as the server dies)."""
        client = fail_fast_client(self.port)
        try:
            while not self.stopping:
                sent = time.monotonic()
                try:
                    info = await client.info("persistence")
                except redis.RedisError:
                    return  # the server is going down
                running = bool(int(info["rdb_bgsave_in_progress"]))
                if info["rdb_last_bgsave_status"] != "ok":
                    self.failed_saves += 1
                self.polls.append((sent, int(info["rdb_saves"]) - running, running))
                await asyncio.sleep(self.every)
        finally:
            await client.aclose()

    def kept_before(self) -> float | None:
        """The latest moment whose acknowledged writes must all survive, or
        None if no save was seen to finish."""
        if not self.polls:
            return None
        finished = self.polls[-1][1]
        idle_before = [sent for sent, done, running in self.polls if done < finished and not running]
        return max(idle_before) if idle_before else None


# -- verification after a restart -----------------------------------------------------------


async def verify(
    store: RedisRuntimeStore,
    runtimes: list[RuntimeModel],
    decoder: Decoder,
    stats: Stats,
    *,
    mode: str,
    killed_at: float | None = None,
    kept_before: float | None = None,
) -> None:
    """Read every runtime back and check it against the model (``mode``
    ``exact`` or ``prefix``), then through the public API, then with
    ``check_store``. Adopts what is stored as each runtime's new base.
    ``kept_before``: every write acknowledged before this monotonic time
    must be there (a lossy setting may lose only later ones)."""
    for rt in runtimes:
        stored = decoder.version(await store.dump_runtime(rt.rid))
        versions = rt.versions()
        landed = False
        if rt.pending is not None and rt.pending.kind in ("conflict", "replay"):
            rt.pending = None  # writes nothing whether it ran or not
        if rt.pending is not None and stored == rt.pending.after:
            matched, landed = len(versions), True
        elif mode == "exact":
            matched = len(versions) - 1 if stored == versions[-1] else None
        else:
            matched = next((i for i in range(len(versions) - 1, -1, -1) if stored == versions[i]), None)
        if matched is None:
            problems = diff(stored, versions[-1])
            if rt.pending is not None:
                problems.append(f"(the write with an unknown outcome was a {rt.pending.kind}; "
                                f"against it: {diff(stored, rt.pending.after, 4)})")
            if rt.failed is not None:
                problems.append(f"(a {rt.failed[0].kind} failed with a definite error: {rt.failed[1]})")
            raise AssertionError(
                f"runtime {rt.rid}: what is stored is no acknowledged state ({len(rt.history)} writes "
                f"acknowledged since the last check): " + "; ".join(problems))
        applied = rt.history[:matched] + ([rt.pending] if landed else [])
        lost = rt.history[matched:] if not landed else []
        if kept_before is not None:
            stats.protected += sum(op.acked_at < kept_before for op in rt.history)
        if lost:
            stats.lost += len(lost)
            stats.lost_commits += sum(op.commits for op in lost)
            if kept_before is not None:
                assert lost[0].acked_at >= kept_before, (
                    f"runtime {rt.rid}: lost {len(lost)} acknowledged writes, the oldest acknowledged "
                    f"{killed_at - lost[0].acked_at:.2f} s before the kill; everything acknowledged "
                    f"before {killed_at - kept_before:.2f} s before the kill had to survive")
        stats.landed_unknown += landed
        await _check_through_api(store, rt, stored, applied)
        adopted = rt.pending.after if landed else versions[matched]  # equal to stored; keeps `replayable`
        if rt.pending is not None and not lost and rt.pending.commit_id is not None:
            await _retry_pending(store, rt, decoder, landed, stats)
            adopted = rt.pending.after
        rt.rebase(adopted)

    violations = [str(v) async for report in check_store(store) for v in report.violations]
    assert violations == [], f"check_store found {len(violations)} violations: {violations[:10]}"
    listed = {rid async for rid in _runtime_ids(store)}
    expected = {rt.rid for rt in runtimes if not rt.base.is_empty()}
    assert listed == expected, f"list_runtimes: {sorted(listed ^ expected)} differ from the model"


async def _runtime_ids(store):
    cursor = 0
    while True:
        cursor, page = await store.list_runtimes(cursor, 100)
        for rid in page:
            yield rid
        if cursor == 0:
            return


async def _check_through_api(store: RedisRuntimeStore, rt: RuntimeModel, stored: Version, applied: list[Op]) -> None:
    """Every commit that is there (acknowledged, or landed with an unknown
    outcome) loads through the public API: its receipt equal to the one
    returned/given, and each input it stamped stamped with it, unless a later
    write touched the input (then it holds that later write's value)."""
    deletes = [i for i, op in enumerate(applied) if op.kind == "delete"]
    if deletes:  # what came before the runtime was deleted is gone, rightly
        applied = applied[deletes[-1] + 1 :]
    last_touch: dict[str, int] = {}
    for index, op in enumerate(applied):
        for input_id in op.touched:
            last_touch[input_id] = index
    for index, op in enumerate(applied):
        if op.receipt is None:
            continue
        loaded = await store.load_boundary_receipt(rt.rid, op.receipt.run_id, op.receipt.sequence)
        assert loaded == op.receipt, f"runtime {rt.rid}: receipt {op.receipt.run_id}:{op.receipt.sequence} loads as {loaded}"
        for input_id in op.stamped:
            state = await store.load_input_state(rt.rid, InputId(input_id))
            assert state is not None, f"runtime {rt.rid}: input {input_id} stamped by a commit is missing"
            if last_touch[input_id] == index:
                assert (str(state.last_run_id), state.last_boundary_sequence) == (str(op.receipt.run_id), op.receipt.sequence), (
                    f"runtime {rt.rid}: input {input_id} stamped ({state.last_run_id}, {state.last_boundary_sequence}), "
                    f"expected ({op.receipt.run_id}, {op.receipt.sequence})")
            else:
                assert state.to_dict() == stored.inputs[input_id]
    states = await store.load_input_states(rt.rid)  # decodes every row
    assert [str(s.input_id) for s in states] == list(stored.order)
    assert [s.to_dict() for s in states] == [stored.inputs[i] for i in stored.order]
    assert await store.load_session_snapshot(rt.rid) == stored.snapshot
    state = await store.load_runtime_state(rt.rid)
    assert (None if state is None else state.value) == stored.state


async def _retry_pending(store, rt: RuntimeModel, decoder: Decoder, landed: bool, stats: Stats) -> None:
    """Retry the unknown-outcome commit with its commit id, as a caller
    would: it returns the first result if it had landed, or commits now."""
    op = rt.pending
    result = await op.call(store)
    rt.check_result(op, result)
    stats.retried += 1
    again = decoder.version(await store.dump_runtime(rt.rid))
    assert again == op.after, (
        f"runtime {rt.rid}: retrying the {op.kind} with commit id {op.commit_id} "
        f"(it had {'landed' if landed else 'not landed'}) left: {diff(again, op.after)}")
