"""The one place where client failures become store errors
(``redis_store.failures`` and ``RedisRuntimeStore._write``/``_read``):
every way a command is refused without running is retried by the store
itself, inside its refusal window; anything that may have run is reported
as an unknown outcome; no client exception leaves a store call bare."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest
import redis
import redis.asyncio.connection
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    MasterDownError,
    MovedError,
    ReadOnlyError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from redis_store import ReadFailed, RedisRuntimeStore, RunApplyBoundary, RunId, SessionDelta, WriteFailed
from redis_store.failures import NotSent
from sessions import session_json

pytestmark = pytest.mark.asyncio


def _demoted() -> ConnectionError:
    """What redis-py's Sentinel client raises on a demoted primary: a
    ConnectionError raised while handling READONLY."""
    try:
        try:
            raise ReadOnlyError("You can't write against a read only replica.")
        except ReadOnlyError:
            raise ConnectionError("The previous master is now a slave")
    except ConnectionError as exc:
        return exc


def _ttl_exhausted() -> ClusterError:
    return ClusterError("TTL exhausted.")  # as redis-py raises it: no cause attached


# Each named by the README's "refused commands are retried" claim.
REFUSALS = {
    "TRYAGAIN": lambda: TryAgainError("Multiple keys request during rehashing of slot"),
    "MOVED": lambda: MovedError("3999 127.0.0.1:6381"),
    "ASK": lambda: AskError("3999 127.0.0.1:6381"),
    "TTL exhausted": _ttl_exhausted,
    "CLUSTERDOWN": lambda: ClusterDownError("The cluster is down"),
    "MASTERDOWN": lambda: MasterDownError("Link with MASTER is down"),
    "slot not covered": lambda: SlotNotCoveredError('Slot "3999" not covered by the cluster.'),
    "LOADING": lambda: BusyLoadingError("Redis is loading the dataset in memory"),
    "demoted primary": _demoted,
    "unreachable slot owner": lambda: NotSent("cannot connect to 127.0.0.1:6381"),
}

# Each may have run: never retried, reported as an unknown outcome.
AMBIGUOUS = {
    "connection lost": lambda: ConnectionError("Connection closed by server."),
    "timeout": lambda: TimeoutError("Timeout reading from socket"),
    "writer torn down (redis-py #3546)": lambda: AttributeError("'NoneType' object has no attribute 'writelines'"),
    "any other client bug": lambda: RuntimeError("unexpected"),
}


def _store(**options) -> RedisRuntimeStore:
    return RedisRuntimeStore(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), "t", guard="off", **options)


def _failing(store: RedisRuntimeStore, make, times: int) -> list:
    """Make the store's script runner raise ``make()`` ``times`` times, then run."""
    attempts = []
    run = store._run_script

    async def flaky(*args):
        attempts.append(1)
        if len(attempts) <= times:
            raise make()
        return await run(*args)

    store._run_script = flaky
    return attempts


async def _commit(store, rid="rt", run_id=None, commit_id=None):
    return await store.commit_session_boundary(
        rid, SessionDelta(session_json(1)), run_id or RunId.new(), RunApplyBoundary.RUN_START, [], [], commit_id=commit_id
    )


@pytest.mark.parametrize("kind", REFUSALS)
async def test_every_refusal_is_retried_by_the_store_itself(kind):
    store = _store()
    attempts = _failing(store, REFUSALS[kind], times=3)
    receipt = await _commit(store)
    assert receipt.sequence == 0
    assert len(attempts) == 4  # three refusals, then the commit ran once
    assert await store.load_boundary_receipt("rt", receipt.run_id, 0) == receipt


@pytest.mark.parametrize("kind", REFUSALS)
async def test_a_refusal_that_outlasts_the_window_says_nothing_was_written(kind):
    store = _store(refusal_window=0.05)
    attempts = _failing(store, REFUSALS[kind], times=10**6)
    with pytest.raises(WriteFailed, match="kept refusing it for 0.05 s.*nothing was written") as info:
        await _commit(store)
    assert 1 < len(attempts) < 20
    assert isinstance(info.value.__cause__, type(REFUSALS[kind]()))
    assert await store.list_runtimes(0, 10) == (0, [])


async def test_the_window_starts_at_the_first_refusal_not_at_the_call():
    # A first attempt slower than the whole window (a pool wait, first use, a
    # loaded machine) must still be retried: the window counts from the refusal.
    store = _store(refusal_window=0.05)
    attempts = []
    run = store._run_script

    async def slow_then_refused(*args):
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.sleep(0.2)
            raise TryAgainError("Multiple keys request during rehashing of slot")
        return await run(*args)

    store._run_script = slow_then_refused
    receipt = await _commit(store)
    assert len(attempts) == 2
    assert store.refusals_retried["TryAgainError"] == 1
    assert await store.load_boundary_receipt("rt", receipt.run_id, 0) == receipt


@pytest.mark.parametrize("kind", AMBIGUOUS)
async def test_what_may_have_run_is_an_unknown_outcome_and_not_retried(kind):
    store = _store()
    attempts = _failing(store, AMBIGUOUS[kind], times=1)
    with pytest.raises(WriteFailed, match="outcome is unknown.*same commit_id") as info:
        await _commit(store, commit_id="c-1")
    assert len(attempts) == 1
    assert isinstance(info.value.__cause__, type(AMBIGUOUS[kind]()))
    assert (await _commit(store, commit_id="c-2")).sequence == 0  # the store carries on


async def test_a_read_failing_inside_the_client_is_read_failed():
    store = _store()
    await _commit(store)

    async def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'writelines'")

    store._client.get = broken
    with pytest.raises(ReadFailed, match="AttributeError") as info:
        await store.load_session_snapshot("rt")
    assert isinstance(info.value.__cause__, AttributeError)


#: redis-py 8.2 checks the writer itself and raises ConnectionError; before,
#: the command's write failed on None (#3546, #4287).
_WRITER_CHECKED = tuple(int(part) for part in redis.__version__.split(".")[:2]) >= (8, 2)


@pytest.mark.real_server
async def test_a_writer_torn_down_while_in_use_is_mapped(redis_server, monkeypatch):
    """The exact redis-py failure (#3546, #4287): another task disconnects a
    connection after its connected check and before its write, so
    ``_writer`` is None when the command is written: an AttributeError up to
    redis-py 8.1, a ConnectionError from 8.2. Either way the outcome is
    unknown (the store cannot tell a write before the send from one after)."""
    cause = ConnectionError if _WRITER_CHECKED else AttributeError
    store = RedisRuntimeStore.from_url(redis_server.url, "torn", guard="off")
    async with store:
        run_id = RunId.new()
        await _commit(store, run_id=run_id, commit_id="c-0")
        check_health = redis.asyncio.connection.AbstractConnection.check_health
        torn = []

        async def check_then_tear_down(self):
            await check_health(self)
            if not torn:  # between the connected check and the write, as a concurrent disconnect() does
                torn.append(self)
                self._writer = None

        monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "check_health", check_then_tear_down)
        with pytest.raises(WriteFailed, match=f"{cause.__name__}.*outcome is unknown") as info:
            await store.commit_session_boundary(
                "rt", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_CHECKPOINT, [], [], commit_id="c-1")
        assert torn and type(info.value.__cause__) is cause
        monkeypatch.undo()
        retried = await store.commit_session_boundary(
            "rt", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_CHECKPOINT, [], [], commit_id="c-1")
        assert retried.sequence == 1
