"""What ``RedisRuntimeStore`` says and keeps, pinned in-process (fakeredis
and small fakes): every primitive's error names its operation and the
server, each class of Redis error gets its own text, ``from_url`` hands its
options on, snapshot-delta bases are kept per runtime, and the cluster
``list_runtimes`` cursor walks every primary once, in slot order (the
surviving mutants of tests/mutmut/backend_redis.md)."""

from __future__ import annotations

from types import SimpleNamespace

import fakeredis
import pytest
from redis.exceptions import ConnectionError, MaxConnectionsError, NoPermissionError, OutOfMemoryError, ResponseError

from redis_store import (
    FencedOut,
    InputId,
    InputState,
    LeaseHeld,
    ReadFailed,
    RedisRuntimeStore,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RunId,
    RuntimeState,
    SessionDelta,
    UnsafeServer,
    WriteFailed,
)
from redis_store.codec import SnapshotEnvelope
from redis_store.backend_redis import _describe
from redis_store.server_checks import server_findings
from redis_store.contract import EncodedInput, RawRuntime
from sessions import session_json

pytestmark = pytest.mark.asyncio

WHERE = "fake-server:1/0"
SID = "5b0c4f5e-8f7e-4c1e-9a55-0d4ab1a1c0de"


def _store(server: fakeredis.FakeServer | None = None, **options) -> RedisRuntimeStore:
    client = fakeredis.FakeAsyncRedis(server=server or fakeredis.FakeServer())
    return RedisRuntimeStore(client, "t", guard="off", where=WHERE, **options)


def _text(exc: BaseException) -> str:
    """An error's detail, after its class's prefix ("Store write failed: ")."""
    prefix = f"{exc.prefix}: "  # type: ignore[attr-defined]
    assert str(exc).startswith(prefix)
    return str(exc)[len(prefix):]


def _raising(store: RedisRuntimeStore, make) -> None:
    """Every script the store runs raises ``make()`` instead."""

    async def failing(*args):
        raise make()

    store._run_script = failing  # type: ignore[method-assign]


# -- every primitive's error names its operation and the server --

RAW = RawRuntime(state=None, snapshot=None, input_order=[], inputs={}, receipts={}, run_seqs={}, meta={})

WRITES = {
    "commit_session_boundary": lambda s: s._commit_boundary("rt", "run", SnapshotEnvelope(b"snap"), b"r", [], "", None),
    "atomic_apply": lambda s: s._apply("rt", "run", 0, SnapshotEnvelope(b"snap"), b"r", [], "", None),
    "lifecycle_commit": lambda s: s._lifecycle_commit("rt", b"state", [], ""),
    "commit_session_snapshot": lambda s: s._commit_snapshot("rt", SnapshotEnvelope(b"snap"), "", None),
    "ensure_index": lambda s: s._build_index("rt", []),
    "acquire_lease": lambda s: s._lease_acquire("rt", "w", 1000, False),
    "renew_lease": lambda s: s._lease_renew("rt", "1", 1000),
    "release_lease": lambda s: s._lease_release("rt", "1"),
    "revoke_lease": lambda s: s._lease_revoke("rt"),
    "delete_runtime": lambda s: s._delete_runtime("rt", ""),
    "prune_runtime (commit ids)": lambda s: s._prune_commit_ids("rt", 10),
    "prune_runtime (receipts)": lambda s: s._drop_receipts("rt", ["run:0"]),
    "restore_runtime": lambda s: s._restore_runtime("rt", RAW, 0, False),
}

READS = {
    "current_lease": lambda s: s._lease_read("rt"),
    "load_input_states": lambda s: s._load_input_states("rt"),
    "load_input_state": lambda s: s._load_input_state("rt", "i"),
    "load_input_states_by_ids": lambda s: s._load_inputs_by_ids("rt", ["i"]),
    "load_input_state_by_idempotency_key": lambda s: s._load_by_idempotency_key("rt", "k"),
    "load_boundary_receipt": lambda s: s._load_receipt("rt", "run", 0),
    "load_session_snapshot": lambda s: s._load_snapshot("rt"),
    "load_runtime_state": lambda s: s._load_runtime_state("rt"),
    "list_runtimes": lambda s: s._list_runtimes(0, 10),
    "dump_runtime": lambda s: s._dump_runtime("rt"),
    "memory_usage": lambda s: s._memory_usage("rt"),
    "fencing_epoch": lambda s: s._fencing_epoch("rt"),
}


@pytest.mark.parametrize("name", WRITES)
async def test_every_write_error_names_its_operation_and_the_server(name):
    store = _store()
    _raising(store, lambda: ConnectionError("boom"))
    with pytest.raises(WriteFailed) as info:
        await WRITES[name](store)
    operation = name.partition(" ")[0]
    assert _text(info.value) == (
        f"{operation} on {WHERE}: ConnectionError: boom. The outcome is unknown: the script may have run "
        "before the failure; retry with the same commit_id, or load the state to check"
    )


@pytest.mark.parametrize("name", READS)
async def test_every_read_error_names_its_operation_and_the_server(name):
    server = fakeredis.FakeServer()
    store = _store(server)
    await store.persist_runtime_state("rt", RuntimeState.IDLE)  # first use done: scripts loaded
    server.connected = False
    with pytest.raises(ReadFailed) as info:
        await READS[name](store)
    assert _text(info.value).startswith(f"{name} on {WHERE}: ConnectionError: ")
    assert isinstance(info.value.__cause__, ConnectionError)


async def test_the_cluster_scan_error_names_list_runtimes():
    store = _store()
    await store.persist_runtime_state("rt", RuntimeState.IDLE)

    async def unreachable():
        raise ConnectionError("boom")

    store._route = object()  # type: ignore[assignment]  # the cluster branch of _list_runtimes
    store._client.initialize = unreachable
    with pytest.raises(ReadFailed) as info:
        await store._list_runtimes(0, 10)
    assert _text(info.value) == f"list_runtimes on {WHERE}: ConnectionError: boom"


# -- each class of Redis error has its own text --

PERMISSION = f"acquire_lease on {WHERE}: the Redis user lacks a permission the store needs (see the README's ACL rule): "
OOM = (f"acquire_lease on {WHERE}: Redis is out of memory (maxmemory reached under maxmemory-policy noeviction); "
       "nothing was written. Free memory or raise maxmemory. ")
OOM_IN_SCRIPT = ("Error running script (call to f_1): @user_script:1: @user_script: 1: "
                 "-OOM command not allowed when used memory > 'maxmemory'.")
NOT_ALLOWED = "this user has no permissions to run the 'evalsha' command"

ERRORS = {
    "other ResponseError": (lambda: ResponseError("ERR something odd"), f"acquire_lease on {WHERE}: ERR something odd"),
    # redis-py strips the NOPERM code off a NoPermissionError's text
    "NoPermissionError": (lambda: NoPermissionError(NOT_ALLOWED), PERMISSION + NOT_ALLOWED),
    # an error reply that keeps its code (an older client, a script's error)
    "NOPERM code": (lambda: ResponseError("NOPERM " + NOT_ALLOWED), PERMISSION + "NOPERM " + NOT_ALLOWED),
    "OutOfMemoryError": (lambda: OutOfMemoryError("maxmemory"), OOM + "(maxmemory)"),
    "OOM inside a script (Redis 6)": (lambda: ResponseError(OOM_IN_SCRIPT), OOM + f"({OOM_IN_SCRIPT})"),
    "MaxConnectionsError": (lambda: MaxConnectionsError("Too many connections"),
                            f"acquire_lease on {WHERE}: MaxConnectionsError: Too many connections; nothing was written"),
}


@pytest.mark.parametrize("kind", ERRORS)
async def test_each_redis_error_has_its_own_text(kind):
    make, text = ERRORS[kind]
    store = _store()
    _raising(store, make)
    with pytest.raises(WriteFailed) as info:
        await store._lease_acquire("rt", "w", 1000, False)
    assert _text(info.value) == text
    assert isinstance(info.value.__cause__, type(make()))


async def test_a_refusal_past_the_window_says_so_in_full():
    from redis.exceptions import TryAgainError

    store = _store(refusal_window=0.05)
    _raising(store, lambda: TryAgainError("slot rehashing"))
    with pytest.raises(WriteFailed) as info:
        await store._lease_renew("rt", "1", 1000)
    assert _text(info.value) == (
        f"renew_lease on {WHERE}: TryAgainError: slot rehashing. The server kept refusing it for 0.05 s "
        "(refusal_window); nothing was written"
    )


async def test_a_scripts_own_errors_name_the_operation_where_and_runtime():
    store = _store()
    _raising(store, lambda: ResponseError("FENCED_OUT lease token 3 is not current (epoch 4)"))
    with pytest.raises(FencedOut) as fenced:
        await store._lease_renew("rt", "3", 1000)
    assert str(fenced.value).endswith("renew_lease: lease token 3 is not current (epoch 4); another worker may own the runtime now")
    _raising(store, lambda: ResponseError("WRONGTYPE t:{rt}:meta"))
    with pytest.raises(WriteFailed) as wrong:
        await store._lease_revoke("rt")
    assert _text(wrong.value) == f"revoke_lease on {WHERE}: WRONGTYPE t:{{rt}}:meta; nothing was written"

    real = _store()
    await real.acquire_lease("rt-held", "worker-a", 60)
    with pytest.raises(LeaseHeld) as held:
        await real.acquire_lease("rt-held", "worker-b", 60)
    assert (held.value.runtime_id, held.value.holder) == ("rt-held", "worker-a")
    assert "'rt-held'" in str(held.value)


# -- where a client points --

def _client(**kwargs):
    return SimpleNamespace(connection_pool=SimpleNamespace(connection_kwargs=kwargs))


async def test_describe_names_a_unix_socket_or_host_and_its_db_never_more():
    assert _describe(_client(path="/run/redis.sock", db=3, password="secret")) == "unix:///run/redis.sock?db=3"
    assert _describe(_client(path="/run/redis.sock")) == "unix:///run/redis.sock?db=0"
    assert _describe(_client(host="cache", port=7000, db=2, password="secret")) == "cache:7000/2"
    assert _describe(_client(host="cache")) == "cache:6379/0"
    assert _describe(SimpleNamespace(connection_pool=SimpleNamespace(connection_kwargs=None))) == "SimpleNamespace"
    assert _describe(object()) == "object"  # no pool at all


# -- from_url hands its options on and owns its client --

async def test_from_url_options_namespace_and_ownership():
    default = RedisRuntimeStore.from_url("redis://127.0.0.1:1/0")
    assert default.namespace == "meerkat"
    assert default._client.connection_pool.timeout == 10.0
    await default.aclose()

    store = RedisRuntimeStore.from_url(
        "redis://127.0.0.1:1/0", "ns", pool_timeout=2.5, refusal_window=3.0, decode_responses=True
    )
    assert store.namespace == "ns"
    assert store.redis_options.refusal_window == 3.0
    pool = store._client.connection_pool
    assert pool.timeout == 2.5
    assert "pool_timeout" not in pool.connection_kwargs
    assert not pool.connection_kwargs["decode_responses"]
    closed = []

    async def aclose():
        closed.append(True)

    store._client.aclose = aclose
    await store.aclose()
    assert closed == [True]


async def test_check_server_reports_the_guards_findings_of_its_own_client():
    store = _store()
    findings = await store.check_server()  # fakeredis has no INFO: a connection finding saying so
    assert findings == await server_findings(store._client)
    assert [(f.topic, f.found) for f in findings] == [("connection", findings[0].found)]
    assert "unknown command 'info'" in findings[0].found


# -- snapshot-delta bases are per runtime, and dropped while a write is in doubt --

RUNS: dict[str, RunId] = {}


async def _snapshots(store, rid: str, turns: int, how: str) -> None:
    snapshot = SessionDelta(session_json(turns, SID))
    run = RUNS.setdefault(rid, RunId.new())
    if how == "boundary":
        await store.commit_session_boundary(rid, snapshot, run, RunApplyBoundary.RUN_CHECKPOINT, [], [])
    elif how == "apply":
        receipt = RunBoundaryReceipt(run, RunApplyBoundary.RUN_CHECKPOINT, [], None, 0, turns)
        await store.atomic_apply(rid, snapshot, receipt, [])
    else:
        await store.commit_session_snapshot(rid, snapshot)


@pytest.mark.parametrize("how", ["boundary", "apply", "snapshot"])
async def test_each_runtime_keeps_its_own_delta_base(how):
    store = _store()
    for turns in range(3, 6):
        for rid in ("rt-a", "rt-b"):
            await _snapshots(store, rid, turns, how)
            assert await store.load_session_snapshot(rid) == session_json(turns, SID)
    assert store.snapshot_deltas == {"whole": 2, "sent": 4}


async def test_a_write_in_doubt_drops_the_base():
    store = _store()
    await _snapshots(store, "rt", 3, "boundary")
    run = store._run_script

    async def applied_then_lost(*args):
        await run(*args)
        raise ConnectionError("lost after the send")

    store._run_script = applied_then_lost
    with pytest.raises(WriteFailed, match="outcome is unknown"):
        await _snapshots(store, "rt", 4, "boundary")
    store._run_script = run
    await _snapshots(store, "rt", 5, "boundary")  # whole: the stored snapshot is not known
    assert store.snapshot_deltas == {"whole": 2}  # not "stale": no delta over the old base was tried
    assert await store.load_session_snapshot("rt") == session_json(5, SID)


# -- small results --

async def test_build_index_says_false_for_an_indexed_runtime():
    store = _store()
    state = InputState.new_accepted(InputId.new())
    await store.persist_input_state("rt", state)
    assert await store._build_index("rt", [EncodedInput(str(state.input_id), b"x", None)]) is False


async def test_a_never_leased_runtime_has_epoch_0():
    store = _store()
    await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert await store.fencing_epoch("rt") == 0
    assert await store.fencing_epoch("never") == 0


@pytest.mark.parametrize("reply, held", [
    ([b"w", b"7", 0], ("w", 7, 0)),  # its last millisecond: still held
    ([b"w", b"7", 1500], ("w", 7, 1500)),
    ([None, None, -2], None),
    ([b"w", b"7", -1], None),
])
async def test_current_lease_reads_the_scripts_reply(reply, held):
    store = _store()
    await store.persist_runtime_state("rt", RuntimeState.IDLE)

    async def lease_read(**kwargs):
        return reply

    store._scripts.lease_read = lease_read
    assert await store._lease_read("rt") == held


async def test_a_runtime_without_a_snapshot_or_a_state_restores_as_it_was():
    source, target = _store(), _store()
    await source.persist_runtime_state("only-state", RuntimeState.IDLE)
    await source.persist_input_state("only-inputs", InputState.new_accepted(InputId.new()))
    for rid in ("only-state", "only-inputs"):
        raw = await source.dump_runtime(rid)
        assert await target.restore_runtime(rid, raw)
        assert await target.dump_runtime(rid) == raw


# -- the cluster list_runtimes cursor, over a fake cluster client --

class _Node(SimpleNamespace):
    pass


class _FakeCluster:
    """Three primaries serving slots in an order their names do not sort in
    (c: 0-99 and 300-399, a: 100-199, b: 200-299), each with a replica, and
    a primary serving none (z); each primary holds two pages of keys."""

    def __init__(self, layout) -> None:
        names = {"a": _Node(name="a"), "b": _Node(name="b"), "c": _Node(name="c"), "z": _Node(name="z")}
        replica = {name: _Node(name=f"{name}-replica") for name in names}
        owner = {**{s: "c" for s in range(0, 100)}, **{s: "a" for s in range(100, 200)},
                 **{s: "b" for s in range(200, 300)}, **{s: "c" for s in range(300, 400)}}
        self.nodes_manager = SimpleNamespace(
            slots_cache={slot: [names[n], replica[n]] for slot, n in sorted(owner.items())})  # c last seen at 399
        self.nodes_manager.slots_cache[400] = []
        self._primaries = list(names.values())
        self.keys = {name: [[layout.runtime(f"{name}{i}").meta.encode() for i in range(2)],
                            [layout.runtime(f"{name}{i}").meta.encode() for i in range(2, 4)]] for name in names}
        self.scanned: list[tuple[str, int]] = []

    async def initialize(self) -> None:
        pass

    def get_primaries(self):
        return list(self._primaries)

    async def scan(self, *, cursor, match, count, target_nodes):
        assert count == 7 and match.endswith("meta")
        self.scanned.append((target_nodes.name, cursor))
        page = self.keys[target_nodes.name][cursor]
        return {target_nodes.name: 0 if cursor else 1}, page


async def test_the_cluster_cursor_walks_each_primary_once_in_slot_order():
    store = _store()
    fake = _FakeCluster(store._keys)
    store._client, store._route = fake, object()  # type: ignore[assignment]
    assert [node.name for node in store._primaries_in_slot_order()] == ["c", "a", "b", "z"]
    cursor, pages = 0, []
    for _ in range(20):
        cursor, page = await store._list_runtimes(cursor, 7)
        pages.append(page)
        if cursor == 0:
            break
    assert cursor == 0 and len(pages) == 8  # two pages per primary, and no empty one after the last
    assert fake.scanned == [(name, c) for name in "cabz" for c in (0, 1)]
    assert [rid for page in pages for rid in page] == [f"{name}{i}" for name in "cabz" for i in range(4)]
    assert await store._list_runtimes(4, 7) == (0, [])  # a cursor past the last primary


# -- WAIT on a real primary with a replica (real server) --

@pytest.fixture
def primary_with_replica(redis_server):
    """A primary and one in-sync replica of it, started for the test."""
    import time

    import redis

    from servers import ServerProcess

    primary = ServerProcess(redis_server.binary).start()
    replica = ServerProcess(redis_server.binary).start()
    admin = redis.Redis(host="127.0.0.1", port=replica.port)
    try:
        admin.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        deadline = time.monotonic() + 60
        while admin.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.05)
        yield primary
    finally:
        admin.close()
        replica.stop()
        primary.stop()


@pytest.mark.real_server
async def test_wait_with_an_acknowledging_replica_succeeds_and_keeps_script_errors(primary_with_replica):
    from redis_store import open_store

    # wait_timeout well above anything a loaded machine needs: WAIT returns as soon as the replica acknowledges
    async with open_store(f"{primary_with_replica.url}?namespace=wait&wait_replicas=1&wait_timeout=30") as store:
        run_id = RunId.new()
        receipt = await store.commit_session_boundary(
            "rt", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], [])
        assert receipt.sequence == 0
        assert await store.load_boundary_receipt("rt", run_id, 0) == receipt
        old = await store.acquire_lease("rt", "worker-a", 60)
        await store.steal_lease("rt", "worker-b", 60)
        with pytest.raises(FencedOut, match="commit_session_boundary: lease token"):  # the script's own error, under WAIT too
            await store.fenced(old).commit_session_boundary(
                "rt", SessionDelta(session_json(2)), run_id, RunApplyBoundary.RUN_CHECKPOINT, [], [])


async def test_list_runtimes_pages_end_even_when_the_cursor_is_lost():
    # A bounded walk: a SCAN that restarts at 0 fails here instead of hanging the suite.
    store = _store()
    for i in range(30):
        await store.persist_runtime_state(f"rt-{i}", RuntimeState.IDLE)
    cursor, seen = 0, []
    for _ in range(100):
        cursor, page = await store.list_runtimes(cursor, 4)
        seen += page
        if cursor == 0:
            break
    assert cursor == 0 and sorted(seen) == sorted(f"rt-{i}" for i in range(30))


# -- the constructor --

async def test_the_constructor_defaults_and_refusals():
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    store = RedisRuntimeStore(client, guard="off")
    assert store.namespace == "meerkat" and store._route is None
    assert repr(store) == f"RedisRuntimeStore({_describe(client)!r}, namespace='meerkat')" != "RedisRuntimeStore('NoneType', namespace='meerkat')"
    closed = []

    async def aclose():
        closed.append(True)

    client.aclose = aclose
    await store.aclose()
    assert closed == []  # a client given to the store stays the caller's to close
    with pytest.raises(TypeError) as unknown:
        RedisRuntimeStore(client, bogus=1, other=2)
    assert str(unknown.value) == "RedisRuntimeStore got unknown options: bogus, other"
    decoding = [
        fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True),
        SimpleNamespace(encoder=SimpleNamespace(decode_responses=True)),  # a cluster client has no pool, but an encoder
    ]
    for client in decoding:
        with pytest.raises(ValueError) as refused:
            RedisRuntimeStore(client)
        assert str(refused.value) == (
            "RedisRuntimeStore needs a client created with decode_responses=False: stored values are binary msgpack")


async def test_a_cluster_client_gets_the_cluster_route():
    from redis.asyncio.cluster import RedisCluster

    from redis_store.cluster_route import ClusterRoute

    client = RedisCluster(host="127.0.0.1", port=1)  # never connected
    store = RedisRuntimeStore(client, guard="off")
    assert isinstance(store._route, ClusterRoute) and store._route._client is client


# -- the guard, on first use --

def _findings(monkeypatch, *findings):
    from redis_store import backend_redis

    async def fake(client):
        return list(findings)

    monkeypatch.setattr(backend_redis, "server_findings", fake)


def _finding(level: str, topic: str):
    from redis_store.server_checks import Finding

    return Finding(level, topic, f"{topic} is {level}", f"fix {topic}")


def _where() -> str:
    import uuid

    return f"guarded-{uuid.uuid4().hex[:8]}"  # the guard logs once per server per process


async def test_refuse_raises_on_a_failed_check_naming_each(monkeypatch):
    _findings(monkeypatch, _finding("fail", "persistence"), _finding("warn", "eviction"), _finding("fail", "version"))
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    store = RedisRuntimeStore(client, "t", guard="refuse", where=_where())
    with pytest.raises(UnsafeServer) as info:
        await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert _text(info.value) == (
        "persistence: persistence is fail (fix persistence); version: version is fail (fix version). "
        "Fix the server, or open the store with guard='warn' to accept the risk")
    assert await client.keys() == []  # nothing was written


@pytest.mark.parametrize("guard, findings", [
    ("refuse", [_finding("ok", "version"), _finding("warn", "eviction")]),  # warnings never refuse
    ("refuse", [_finding("fail", "connection")]),  # what could not be read is let through
    ("warn", [_finding("fail", "persistence")]),
])
async def test_what_the_guard_lets_through(monkeypatch, guard, findings):
    _findings(monkeypatch, *findings)
    store = RedisRuntimeStore(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), "t", guard=guard, where=_where())
    await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert await store.load_runtime_state("rt") == RuntimeState.IDLE


async def test_the_guard_warns_once_per_server_naming_it(monkeypatch, caplog):
    _findings(monkeypatch, _finding("ok", "version"), _finding("warn", "eviction"))
    where, server = _where(), fakeredis.FakeServer()
    with caplog.at_level("WARNING", logger="redis_store"):
        for _ in range(2):
            store = RedisRuntimeStore(fakeredis.FakeAsyncRedis(server=server), "t", guard="warn", where=where)
            await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert [r.getMessage() for r in caplog.records] == [f"redis-store: {where}: eviction: eviction is warn. fix eviction"]


# -- retrying refusals: the back-off and the window, on a fake clock --

class _Clock:
    """backend_redis's asyncio, with a clock that moves only when the store sleeps."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def get_running_loop(self):
        return self

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        self.now += delay


async def _refused_until(monkeypatch, window: float, *, tick=None):
    from redis.exceptions import TryAgainError

    from redis_store import backend_redis

    clock = _Clock()
    monkeypatch.setattr(backend_redis, "asyncio", clock)
    store = _store(refusal_window=window)
    store._scripts.loaded = True  # no first use: only the refused command

    async def refused():
        if tick is not None:
            clock.now = tick(clock)
        raise TryAgainError("slot rehashing")

    with pytest.raises(TryAgainError):
        await store._retrying_refusals(refused)
    return store, clock


async def test_refusals_back_off_doubling_up_to_a_quarter_second(monkeypatch):
    store, clock = await _refused_until(monkeypatch, 2.0)
    assert clock.slept == [0.01, 0.02, 0.04, 0.08, 0.16] + [0.25] * 6  # 1.81 s; 0.25 more would pass 2.0
    assert store.refusals_retried == {"TryAgainError": 11}


async def test_a_retry_that_would_end_exactly_at_the_window_is_still_made(monkeypatch):
    # The window is 1.0 s from the first refusal; the second refusal comes at 1.0 - 0.02, so
    # its retry after 0.02 s lands exactly at the window's end (allowed); the third's would pass it.
    def tick(clock):
        return {0: 0.0, 1: 1.0 - 0.02}.get(len(clock.slept), clock.now)

    store, clock = await _refused_until(monkeypatch, 1.0, tick=tick)
    assert clock.slept == [0.01, 0.02]
    assert store.refusals_retried == {"TryAgainError": 2}


async def test_each_retry_is_logged_naming_the_server(monkeypatch, caplog):
    from redis.exceptions import TryAgainError

    with caplog.at_level("DEBUG", logger="redis_store"):
        await _refused_until(monkeypatch, 0.02)
    assert [r.getMessage() for r in caplog.records] == [
        f"redis-store: {WHERE}: retrying a refused command: {TryAgainError('slot rehashing')!r}"]
