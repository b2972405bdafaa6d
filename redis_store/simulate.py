"""``redis-store simulate``: a fleet of workers driving realistic meerkat
runtime lifecycles against a store, then verifying everything it wrote.

Each runtime belongs to one worker (runtime ``i`` to worker ``i % workers``)
and lives through, under that worker's lease (every write fenced, every
commit with an id): initializing -> idle; per turn, an input accepted,
queued and staged, a run with two boundary commits (run start with the
user's message and a tool call; checkpoint with the tool result and the
answer) on a growing Session snapshot, the input consumed, back to idle;
finally retired, then stopped. Workers run as asyncio tasks, spread over
processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import multiprocessing
import os
import random
import time
import uuid
from collections import defaultdict
from typing import Any, Awaitable, Callable, TypeVar

import msgspec

from .contract import RuntimeStore
from .ids import InputId, RunId, SessionId
from .lease import FencedStore, LeaseKeeper
from .registry import open_store
from .timestamps import Timestamp
from .types import (
    ConsumedOutcome,
    InputLifecycleState,
    InputState,
    InputStateHistoryEntry,
    RunApplyBoundary,
    RuntimeState,
    SessionDelta,
)

_T = TypeVar("_T")

#: Lease each worker holds on the runtime it drives, seconds (renewed every third).
LEASE_TTL = 10.0


@dataclasses.dataclass(frozen=True)
class Plan:
    url: str
    workers: int = 8
    processes: int = 1
    runtimes: int = 32
    turns: int = 8
    session_kb: int = 16
    seed: int = 0
    # Names this run's runtimes: a second run against the same server writes
    # (and checks) its own runtimes, never the first run's.
    run_tag: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])

    def runtime_id(self, index: int) -> str:
        return f"sim-{self.run_tag}-{self.seed}-{index:05d}"

    def runtimes_of(self, worker: int) -> list[int]:
        return list(range(worker, self.runtimes, self.workers))

    @property
    def commits(self) -> int:
        return self.runtimes * self.turns * 2


class Session:
    """A meerkat Session document that grows turn by turn (SPEC §5)."""

    def __init__(self, rng: random.Random, turn_bytes: int) -> None:
        self.id = str(SessionId(uuid.UUID(int=rng.getrandbits(128))))
        self.pad = max(0, turn_bytes - 600)  # a turn's JSON without padding is ~600 bytes
        self.messages: list[dict] = [{"role": "system", "content": "You are a careful operations agent."}]
        self.rng = rng

    def _text(self, what: str) -> str:
        return what + " " + "lorem ipsum " * (self.pad // 24)

    def ask(self, turn: int) -> None:
        call = f"call_{turn}"
        self.messages += [
            {"role": "user", "content": self._text(f"Turn {turn}: check the status of service {turn % 7}.")},
            {
                "role": "block_assistant",
                "blocks": [
                    {"block_type": "reasoning", "data": {"text": "I should look it up."}},
                    {"block_type": "tool_use", "data": {"id": call, "name": "status", "args": {"service": turn % 7, "verbose": True}}},
                ],
                "stop_reason": "tool_use",
            },
        ]

    def answer(self, turn: int) -> None:
        self.messages += [
            {"role": "tool_results", "results": [{"tool_use_id": f"call_{turn}", "content": self._text("ok"), "is_error": False}]},
            {
                "role": "assistant",
                "content": f"Service {turn % 7} is healthy.",
                "tool_calls": [],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 100 + turn, "output_tokens": 20, "cache_creation_tokens": None, "cache_read_tokens": None},
            },
        ]

    def snapshot(self, turn: int) -> SessionDelta:
        zero = {"input_tokens": 0, "output_tokens": 0, "cache_creation_tokens": None, "cache_read_tokens": None}
        doc = {
            "version": 1,
            "id": self.id,
            "messages": self.messages,
            "created_at": {"secs_since_epoch": 1760000000, "nanos_since_epoch": 0},
            "updated_at": {"secs_since_epoch": 1760000000 + turn, "nanos_since_epoch": 0},
            "metadata": {},
            "usage": zero,
        }
        return SessionDelta(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())


def _move(state: InputState, to: InputLifecycleState, reason: str) -> InputState:
    now = Timestamp.now()
    entry = InputStateHistoryEntry(now, state.current_state, to, reason)
    return msgspec.structs.replace(state, current_state=to, updated_at=now, history=[*state.history, entry])


class Worker:
    def __init__(self, store: RuntimeStore, plan: Plan, worker: int, progress: Callable[[int], None]) -> None:
        self.store = store
        self.plan = plan
        self.rng = random.Random(plan.seed * 1_000_003 + worker)
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.progress = progress
        self.owner = f"sim-worker-{os.getpid()}-{worker}"

    async def timed(self, operation: str, call: Awaitable[_T]) -> _T:
        started = time.perf_counter()
        result = await call
        self.latencies[operation].append(time.perf_counter() - started)
        return result

    async def run_runtime(self, index: int) -> None:
        """Own the runtime through a lease (renewed in the background) for
        the whole lifecycle: every write is fenced, every commit has an id."""
        rid = self.plan.runtime_id(index)
        lease = await self.timed("acquire_lease", self.store.acquire_lease(rid, self.owner, LEASE_TTL))
        async with LeaseKeeper(self.store, lease) as keeper:
            await self.lifecycle(rid, self.store.fenced(keeper.lease), keeper)

    async def lifecycle(self, rid: str, store: FencedStore, keeper: LeaseKeeper) -> None:
        plan = self.plan
        session = Session(self.rng, plan.session_kb * 1024 // max(1, plan.turns))
        await self.timed("persist_runtime_state", store.persist_runtime_state(rid, RuntimeState.INITIALIZING))
        await self.timed("atomic_lifecycle_commit", store.atomic_lifecycle_commit(rid, RuntimeState.IDLE, []))
        for turn in range(plan.turns):
            # Each turn's prompt arrives as a webhook, which its sender sometimes
            # delivers twice: the second delivery finds the input by its key.
            key = f"webhook-{turn}"
            for _delivery in range(2 if self.rng.random() < 0.25 else 1):
                found = await self.timed(
                    "load_input_state_by_idempotency_key", store.load_input_state_by_idempotency_key(rid, key)
                )
                if found is None:
                    state = InputState.new_accepted(InputId.new())
                    state.persisted_input = {"input_type": "prompt", "text": f"turn {turn}"}
                    state.idempotency_key = key
                    await self.timed("persist_input_state", store.persist_input_state(rid, state))
            state = _move(state, InputLifecycleState.QUEUED, "policy resolved")
            await self.timed("persist_input_state", store.persist_input_state(rid, state))
            state = _move(state, InputLifecycleState.STAGED, "run starting")
            state.attempt_count += 1
            await self.timed("atomic_lifecycle_commit", store.atomic_lifecycle_commit(rid, RuntimeState.RUNNING, [state]))
            run_id = RunId.new()
            session.ask(turn)
            state = _move(state, InputLifecycleState.APPLIED, "applied at run start")
            await self.timed("commit_session_boundary", store.commit_session_boundary(
                rid, session.snapshot(turn), run_id, RunApplyBoundary.RUN_START, [state.input_id], [state],
                commit_id=f"{run_id}:start"))
            session.answer(turn)
            await self.timed("commit_session_snapshot", store.commit_session_snapshot(  # mid-run, no receipt
                rid, session.snapshot(turn), commit_id=f"{run_id}:mid"))
            state = _move(state, InputLifecycleState.APPLIED_PENDING_CONSUMPTION, "run checkpoint")
            receipt = await self.timed("commit_session_boundary", store.commit_session_boundary(
                rid, session.snapshot(turn), run_id, RunApplyBoundary.RUN_CHECKPOINT, [state.input_id], [state],
                commit_id=f"{run_id}:checkpoint"))
            state = msgspec.structs.replace(
                _move(state, InputLifecycleState.CONSUMED, "run completed"),
                terminal_outcome=ConsumedOutcome(),
                last_run_id=receipt.run_id,
                last_boundary_sequence=receipt.sequence,
            )
            inputs = await self.timed("load_input_states", store.load_input_states(rid))
            inputs = [state if s.input_id == state.input_id else s for s in inputs]
            await self.timed("atomic_lifecycle_commit", store.atomic_lifecycle_commit(rid, RuntimeState.IDLE, inputs))
            keeper.check()
            self.progress(2)
        await self.timed("atomic_lifecycle_commit", store.atomic_lifecycle_commit(rid, RuntimeState.RETIRED, []))
        await self.timed("atomic_lifecycle_commit", store.atomic_lifecycle_commit(rid, RuntimeState.STOPPED, []))

    async def run(self, runtimes: list[int]) -> None:
        for index in runtimes:
            try:
                await self.run_runtime(index)
            except Exception as exc:  # reported in the summary; the run fails
                self.errors.append(f"{self.plan.runtime_id(index)}: {type(exc).__name__}: {exc}")


async def drive(plan: Plan, workers: list[int], progress: Callable[[int], None], store: RuntimeStore | None = None) -> dict:
    """Run the given workers in this process; returns latencies and errors."""
    own = store is None
    store = store or open_store(plan.url)
    try:
        fleet = [Worker(store, plan, w, progress) for w in workers]
        await asyncio.gather(*(worker.run(plan.runtimes_of(w)) for worker, w in zip(fleet, workers)))
    finally:
        if own:
            await store.aclose()
    latencies: dict[str, list[float]] = defaultdict(list)
    for worker in fleet:
        for operation, values in worker.latencies.items():
            latencies[operation].extend(values)
    return {"latencies": dict(latencies), "errors": [e for w in fleet for e in w.errors]}


def _process_main(plan: Plan, workers: list[int], counter: Any, results: Any) -> None:
    def progress(commits: int) -> None:
        with counter.get_lock():
            counter.value += commits

    try:
        results.put(asyncio.run(drive(plan, workers, progress)))
    except Exception as exc:
        results.put({"latencies": {}, "errors": [f"process {os.getpid()}: {type(exc).__name__}: {exc}"]})


async def run_fleet(plan: Plan, store: RuntimeStore, on_progress: Callable[[int], None]) -> dict:
    """Run the whole fleet; ``on_progress(commits_done)`` is called as it
    goes. With one process the workers share ``store``; otherwise each
    process opens its own store from ``plan.url``."""
    if plan.processes <= 1:
        done = 0

        def progress(commits: int) -> None:
            nonlocal done
            done += commits
            on_progress(done)

        return await drive(plan, list(range(plan.workers)), progress, store)

    ctx = multiprocessing.get_context("spawn")
    counter, results = ctx.Value("q", 0), ctx.Queue()
    shares = [list(range(p, plan.workers, plan.processes)) for p in range(plan.processes)]
    procs = [ctx.Process(target=_process_main, args=(plan, share, counter, results)) for share in shares if share]
    for proc in procs:
        proc.start()
    merged: dict[str, Any] = {"latencies": defaultdict(list), "errors": []}
    pending = len(procs)
    while pending:
        await asyncio.sleep(0.2)
        on_progress(counter.value)
        while not results.empty():
            part = results.get()
            pending -= 1
            for operation, values in part["latencies"].items():
                merged["latencies"][operation].extend(values)
            merged["errors"].extend(part["errors"])
        if pending and not any(p.is_alive() for p in procs) and results.empty():
            merged["errors"].append(f"{pending} worker process(es) died without reporting")
            break
    for proc in procs:
        proc.join()
    on_progress(counter.value)
    merged["latencies"] = dict(merged["latencies"])
    return merged


async def verify_expectations(store: RuntimeStore, plan: Plan) -> list[str]:
    """What the fleet must have left behind, beyond the store's invariants."""
    problems = []
    for index in range(plan.runtimes):
        rid = plan.runtime_id(index)
        state = await store.load_runtime_state(rid)
        if state != RuntimeState.STOPPED:
            problems.append(f"{rid}: runtime state {state}, expected stopped")
        inputs = await store.load_input_states(rid)
        if len(inputs) != plan.turns or any(s.current_state != InputLifecycleState.CONSUMED for s in inputs):
            problems.append(f"{rid}: expected {plan.turns} consumed inputs, found {[s.current_state.value for s in inputs]}")
        for entry in inputs:
            if entry.last_boundary_sequence != 1:
                problems.append(f"{rid}: input {entry.input_id} stamped with sequence {entry.last_boundary_sequence}, expected 1")
        by_key = await store.load_input_states_by_ids(rid, [s.input_id for s in inputs])
        for turn in range(plan.turns):
            found = await store.load_input_state_by_idempotency_key(rid, f"webhook-{turn}")
            if found is None or found not in by_key:
                problems.append(f"{rid}: no input holds idempotency key webhook-{turn}")
    return problems


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
