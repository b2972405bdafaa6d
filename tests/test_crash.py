"""Crash consistency: a storm of commits against a real redis-server, killed
with SIGKILL at random moments and restarted from its own data directory.

After every restart every runtime must hold exactly what its acknowledged
writes produced (plus, or not, the one write per runtime whose call raised
"outcome is unknown"), read back raw and through the public API, and
``check_store`` must find nothing wrong (see tests/crashkit.py for the model).

* ``appendonly yes`` + ``appendfsync always``: nothing acknowledged is lost,
  nothing is there in part, at each of ``REDIS_STORE_CRASH_KILLS`` (default
  50) random kill points, some of them during an AOF rewrite.
* ``appendfsync everysec`` and RDB snapshots: a tail of acknowledged writes
  may be lost (counted), never part of one: each runtime holds the state
  after some prefix of its writes, and that prefix holds every write
  acknowledged more than ``EVERYSEC_WINDOW`` s before the kill (everysec) or
  before the last RDB save that completed (seen by polling the server). The
  storms last longer than these windows, so the same tests fail on a server
  without persistence (tests/mutations.toml breaks them so, in CI).
* no persistence: nothing survives a restart.

The kill points (storm lengths, background saves) and each worker's choices of
writes are drawn from a seed, printed at the start and in every failure;
``REDIS_STORE_CRASH_SEED=<seed>`` replays them. The interleaving of the
asyncio workers, the ids (uuids) and so how far each storm gets before its
kill still vary from run to run. ``REDIS_STORE_CRASH_KEEP=1`` keeps the
servers' data directories for a post-mortem.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time

import pytest

from redis_store import RedisRuntimeStore, RunApplyBoundary, RunId, SessionDelta
from redis_store.keys import KeyLayout

from crashkit import Decoder, DurableServer, RuntimeModel, SaveWatcher, Stats, fail_fast_client, storm, verify
from servers import redis_binary
from sessions import session_json

pytestmark = [pytest.mark.slow, pytest.mark.real_server]

KILLS = int(os.environ.get("REDIS_STORE_CRASH_KILLS", "50"))
RUNTIMES = 16  # each driven by one worker at a time
WORKERS = 8  # asyncio tasks
CLIENTS = 4  # RedisRuntimeStore instances, each with its own client

# rdb-key-save-delay (µs per key, in the fork child only) stretches RDB saves
# and AOF rewrites to tens of ms, so that kills land inside them.
SLOW_SAVES = ("--rdb-key-save-delay", "300")
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always", *SLOW_SAVES)
AOF_EVERYSEC = ("--appendonly", "yes", "--appendfsync", "everysec")
RDB_EVERY_SECOND = ("--appendonly", "no", "--save", "1 1", *SLOW_SAVES)
NO_PERSISTENCE = ("--appendonly", "no", "--save", "")
# Redis documents that everysec may lose up to about 2 s of writes (a write
# postponed behind a slow fsync); a SIGKILL keeps what was written, so 2.5 s
# is what may be missing at most. The storms last longer (4-5 s).
EVERYSEC_WINDOW = 2.5
LONG_STORMS = (4.0, 5.0)


def _seed() -> int:
    seed = int(os.environ.get("REDIS_STORE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"crash seed {seed} (REDIS_STORE_CRASH_SEED={seed} replays it)")
    return seed


@contextlib.contextmanager
def _reproducible(seed: int, where: list):
    """Every failure names the seed and the kill point."""
    try:
        yield
    except Exception as exc:
        raise AssertionError(
            f"[REDIS_STORE_CRASH_SEED={seed}, kill point {where[0]}] {type(exc).__name__}: {exc}"
        ) from exc


class Crashes:
    """A server with the given persistence, the workers' stores, a verifier
    store and the model, for one test."""

    def __init__(self, request, persistence: tuple[str, ...], seed: int) -> None:
        request.getfixturevalue("redis_server")  # skip (or fail) without a redis-server binary
        self.seed = seed
        self.rng = random.Random(seed)
        self.namespace = f"crash{seed}"
        self.server = DurableServer(redis_binary(), *persistence).start()
        self.stores: list[RedisRuntimeStore] = []
        self.runtimes = [RuntimeModel(f"crash-{seed}-rt{i}:{{tag}}/ü") for i in range(RUNTIMES)]
        self.decoder = Decoder()
        self.stats = Stats()
        self.timing = [0.0, 0.0, 0.0]  # storms, restarts, checks (s)

    def open(self) -> None:
        self.clients = [fail_fast_client(self.server.port) for _ in range(CLIENTS + 1)]
        *workers, checker = (RedisRuntimeStore(client, self.namespace) for client in self.clients)
        self.stores, self.verifier = workers, checker

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        self.server.stop()  # by its pid; removes its directory

    async def cycles(
        self,
        kills: int,
        durations: tuple[float, float],
        mode: str,
        background: tuple[str, float] | None = None,
        loss_window: float | None = None,
        watch_saves: bool = False,
    ) -> None:
        """``kills`` storms, each ``durations`` long (a uniform draw), then
        SIGKILL, restart, verify. ``background=(command, p)``: with
        probability p start BGREWRITEAOF/BGSAVE just before the kill.
        ``loss_window``: writes acknowledged longer ago than that before the
        kill must survive. ``watch_saves``: writes acknowledged before the
        last RDB save that completed must survive (and one must complete)."""
        where = [0]
        with _reproducible(self.seed, where):
            for kill in range(kills):
                where[0] = kill
                duration = self.rng.uniform(*durations)
                save = None
                if background is not None and self.rng.random() < background[1]:
                    save = (max(0.0, duration - self.rng.uniform(0, 0.05)), background[0])
                watcher = SaveWatcher(self.server.port) if watch_saves else None
                t0 = time.monotonic()
                killed_at = await storm(
                    self.server, self.stores, self.runtimes, WORKERS, f"{self.seed}/k{kill}", duration, self.stats, save,
                    watcher,
                )
                t1 = time.monotonic()
                kept_before = None if loss_window is None else killed_at - loss_window
                if watcher is not None:
                    kept_before = watcher.kept_before()
                    assert kept_before is not None, (
                        f"no RDB save completed during a {duration:.1f} s storm ({len(watcher.polls)} polls): "
                        "the server should save every second, or this kill point checks nothing")
                    assert watcher.failed_saves == 0, "an RDB save failed during the storm"
                self.server.start()  # same port, same --dir
                t2 = time.monotonic()
                await verify(self.verifier, self.runtimes, self.decoder, self.stats, mode=mode, killed_at=killed_at,
                             kept_before=kept_before)
                t3 = time.monotonic()
                self.timing[0] += t1 - t0
                self.timing[1] += t2 - t1
                self.timing[2] += t3 - t2

    def summary(self, kills: int, started: float) -> str:
        s = self.stats
        return (
            f"{kills} kill points in {time.monotonic() - started:.1f} s: {s.acknowledged} writes acknowledged "
            f"({s.commits} commits; {s.by_kind}), {s.unknown} unknown outcomes of which {s.landed_unknown} "
            f"had landed, {s.retried} retried by commit id, {s.definite} definite failures, "
            f"{s.lost} acknowledged writes lost ({s.lost_commits} commits), {s.protected} had to survive "
            f"and did; {s.during_rewrite} kills "
            f"during an AOF rewrite, {s.during_bgsave} during an RDB save; storms {self.timing[0]:.1f} s, "
            f"restarts {self.timing[1]:.1f} s, checks {self.timing[2]:.1f} s"
        )


@pytest.fixture
async def crashes(request):
    made: list[Crashes] = []

    def make(persistence: tuple[str, ...]) -> Crashes:
        crashes = Crashes(request, persistence, _seed())
        crashes.open()
        made.append(crashes)
        return crashes

    yield make
    for crashes in made:
        await crashes.close()


# README, Guarantees: "appendfsync always: all there, exactly as acknowledged".
async def test_sigkill_with_appendfsync_always_loses_and_splits_no_commit(crashes):
    started = time.monotonic()
    c = crashes(AOF_ALWAYS)
    await c.cycles(KILLS, durations=(0.05, 0.8), mode="exact", background=("BGREWRITEAOF", 0.3))
    print(c.summary(KILLS, started))
    assert c.server.kills == KILLS
    assert c.stats.lost == 0
    assert c.stats.commits >= 10 * KILLS, "the storms committed too little to mean anything"
    assert c.stats.unknown >= KILLS, "each kill should fail the workers' writes with an unknown outcome"


# README, Guarantees: "appendfsync everysec: at most the latest writes are lost".
async def test_sigkill_with_appendfsync_everysec_loses_at_most_a_tail_never_part(crashes):
    # Redis's documented worst case for everysec is about 2 s of writes.
    # A SIGKILL keeps what Redis already wrote to the file (the OS has it),
    # so this mostly loses nothing; a power cut is what everysec exposes.
    started = time.monotonic()
    kills = max(2, KILLS // 10)
    c = crashes(AOF_EVERYSEC)
    await c.cycles(kills, durations=LONG_STORMS, mode="prefix", loss_window=EVERYSEC_WINDOW)
    print(c.summary(kills, started))
    assert c.stats.commits >= 10 * kills
    # Without persistence all of these would be lost: the check has teeth.
    assert c.stats.protected >= 10 * kills, "too few writes were older than the window to check anything"


# README, Guarantees: "RDB snapshots only: everything since the last completed save is lost".
async def test_sigkill_with_rdb_snapshots_loses_a_tail_never_part(crashes):
    # An RDB file is a point-in-time image: each runtime comes back as it was
    # after some prefix of its writes; everything since the last save is gone,
    # and nothing acknowledged before that save forked.
    started = time.monotonic()
    kills = max(2, KILLS // 10)
    c = crashes(RDB_EVERY_SECOND)
    await c.cycles(kills, durations=LONG_STORMS, mode="prefix", background=("BGSAVE", 0.5), watch_saves=True)
    print(c.summary(kills, started))
    assert c.stats.commits >= 10 * kills
    assert c.stats.protected >= 10 * kills, "too few writes were acknowledged before a save to check anything"


# README, Guarantees: "no persistence: nothing survives a restart; ... sequences from 0".
async def test_without_persistence_nothing_survives_a_restart(crashes):
    c = crashes(NO_PERSISTENCE)
    store = c.verifier
    run_id = RunId.new()
    for n in range(20):
        receipt = await store.commit_session_boundary(
            "volatile", SessionDelta(session_json(1 + n)), run_id, RunApplyBoundary.RUN_CHECKPOINT, [], []
        )
        assert await store.load_boundary_receipt("volatile", run_id, receipt.sequence) == receipt
    c.server.kill()
    await asyncio.sleep(0.1)  # let the client see its connections close, as it would during a real restart
    c.server.start()
    with c.server.sync_client() as admin:
        assert admin.dbsize() == 0
    assert await store.list_runtimes() == (0, [])
    assert await store.load_boundary_receipt("volatile", run_id, 0) is None
    assert await store.load_session_snapshot("volatile") is None
    assert await store.load_input_states("volatile") == []
    # The store works again at once, starting over: sequence 0.
    again = await store.commit_session_boundary(
        "volatile", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], []
    )
    assert again.sequence == 0


async def test_the_check_notices_a_lost_a_partial_and_a_phantom_commit(crashes):
    """The verification above is not vacuous: tamper with what one kill
    left behind, and it fails; undo the tampering, and it passes."""
    c = crashes(AOF_ALWAYS)
    await c.cycles(1, durations=(0.3, 0.3), mode="exact")
    rt = next(rt for rt in c.runtimes if rt.base.snapshot_receipt is not None)
    k = KeyLayout(c.namespace).runtime(rt.rid)
    minted = rt.base.snapshot_receipt  # the latest commit_session_boundary of the runtime
    run, _, seq = minted.rpartition(":")
    with c.server.sync_client() as admin:
        # Past every receipt of the run (atomic_apply may have stored seq + 1 already).
        taken = [int(f.decode().rpartition(":")[2]) for f in admin.hkeys(k.receipts) if f.decode().startswith(f"{run}:")]
        phantom = f"{run}:{max(taken) + 1}"
        receipt, snapshot = admin.hget(k.receipts, minted), admin.get(k.snapshot)
        tampering = [
            # an acknowledged commit lost: its receipt is gone
            ("missing \\(lost\\)", lambda: admin.hdel(k.receipts, minted), lambda: admin.hset(k.receipts, minted, receipt)),
            # a commit there in part: its receipt without its snapshot
            ("snapshot", lambda: admin.set(k.snapshot, snapshot.replace(b'"answer 0"', b'"ANSWER 0"')),
             lambda: admin.set(k.snapshot, snapshot)),
            # a commit nobody made (a duplicate of the last one)
            ("never committed", lambda: admin.hset(k.receipts, phantom, receipt), lambda: admin.hdel(k.receipts, phantom)),
        ]
        for expected, tamper, undo in tampering:
            tamper()
            with pytest.raises(AssertionError, match=expected):
                await verify(c.verifier, c.runtimes, c.decoder, c.stats, mode="exact")
            undo()
            await verify(c.verifier, c.runtimes, c.decoder, c.stats, mode="exact")
