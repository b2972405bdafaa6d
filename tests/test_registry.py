"""open_store: URL schemes, ?namespace=, and no password anywhere."""

from __future__ import annotations

import re

import pytest

from redis_store import InMemoryRuntimeStore, RedisRuntimeStore, RuntimeState, open_store
from redis_store.registry import BACKENDS
from servers import ServerProcess


async def test_memory_scheme():
    store = open_store("memory://")
    assert isinstance(store, InMemoryRuntimeStore)
    await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert await store.load_runtime_state("rt") == RuntimeState.IDLE


async def test_fakeredis_stores_with_one_name_share_data():
    a = open_store("fakeredis://shared-test?namespace=app")
    b = open_store("fakeredis://shared-test", namespace="app")
    c = open_store("fakeredis://shared-test?namespace=other")
    assert isinstance(a, RedisRuntimeStore) and a.namespace == "app"
    await a.persist_runtime_state("rt", RuntimeState.RUNNING)
    assert await b.load_runtime_state("rt") == RuntimeState.RUNNING
    assert await c.load_runtime_state("rt") is None
    for store in (a, b, c):
        await store.aclose()


async def test_redis_url_against_real_server(redis_server):
    async with open_store(redis_server.url + "?namespace=reg-test") as store:
        assert store.namespace == "reg-test"
        await store.persist_runtime_state("rt", RuntimeState.RETIRED)
        assert await store.load_runtime_state("rt") == RuntimeState.RETIRED


async def test_unix_socket_urls(redis_server, tmp_path):
    sock = tmp_path / "redis.sock"
    server = ServerProcess(redis_server.binary, "--unixsocket", str(sock)).start()
    try:
        for url in (f"redis+unix://{sock}?namespace=u", f"unix://{sock}?namespace=u"):
            async with open_store(url) as store:
                await store.persist_runtime_state("rt", RuntimeState.IDLE)
                assert await store.load_runtime_state("rt") == RuntimeState.IDLE
    finally:
        server.stop()


def test_unknown_scheme_lists_supported_ones_without_password():
    with pytest.raises(ValueError) as caught:
        open_store("mongodb://user:hunter2@host/db")
    message = str(caught.value)
    assert "hunter2" not in message
    for scheme in BACKENDS:
        assert f"{scheme}://" in message


def test_url_without_scheme():
    with pytest.raises(ValueError, match="no scheme"):
        open_store("localhost:6379")


async def test_password_never_in_repr_or_errors():
    store = open_store("redis://admin:hunter2@127.0.0.1:1/0?namespace=x")
    assert "hunter2" not in repr(store) and "hunter2" not in str(store)
    assert "***" in repr(store)
    with pytest.raises(Exception) as caught:
        await store.load_runtime_state("rt")
    chain, error = [], caught.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert all("hunter2" not in text for text in chain)
    await store.aclose()
    query_password = open_store("redis://127.0.0.1:1/0?password=hunter2")
    assert "hunter2" not in repr(query_password)


def test_bad_namespace_is_refused_for_every_scheme():
    for url in ("memory://?namespace=a{b}", "fakeredis://?namespace=a{b}"):
        with pytest.raises(ValueError, match="must not contain"):
            open_store(url)
    for url, options in [("fakeredis://x?namespace=", {}), ("memory://", {"namespace": ""})]:
        with pytest.raises(ValueError, match="must not be empty"):
            open_store(url, **options)  # never silently the shared default
    with pytest.raises(TypeError):
        open_store("memory://", namespace=0)


@pytest.mark.parametrize(
    "url, password",
    [
        ("redis://u:q7z#kx9@host:6379/0", "q7z#kx9"),
        ("redis://:s3cr/et9@host:6379/0", "s3cr/et9"),
        ("redis://user:wh4t?ev3r@host/0?namespace=n", "wh4t?ev3r"),
        ("rediss://:p%40zz9@host:6380/1", "p%40zz9"),
        ("redis://host:6379/0?password=p4ss&db=1", "p4ss"),
    ],
)
def test_passwords_with_special_characters_never_leak(url, password):
    pieces = [piece for piece in re.split(r"[#/?@%]", password) if len(piece) > 2]
    try:
        text = repr(open_store(url))
    except ValueError as exc:
        text = str(exc)
    assert "***" in text
    assert not any(piece in text for piece in pieces), text


# README, Usage and Operating it safely: "defaults: 5 s socket timeouts, 64
# connections, 10 s to wait for one"; "snapshots up to 32 MiB and 10 000
# input states per call by default"; commit ids kept "default a day".
async def test_defaults_of_a_store_opened_from_a_url():
    from redis_store.contract import StoreOptions

    store = open_store("redis://127.0.0.1:1/0")  # nothing is sent until the first call
    pool = store._client.connection_pool
    assert type(pool).__name__ == "BlockingConnectionPool"
    assert (pool.max_connections, pool.timeout) == (64, 10.0)
    assert (pool.connection_kwargs["socket_timeout"], pool.connection_kwargs["socket_connect_timeout"]) == (5.0, 5.0)
    assert store.options == StoreOptions()
    assert (StoreOptions().max_snapshot_bytes, StoreOptions().max_inputs_per_call) == (32 * 1024 * 1024, 10_000)
    assert StoreOptions().commit_id_ttl == 24 * 3600
    await store.aclose()
    tuned = open_store("redis://127.0.0.1:1/0?socket_timeout=1.5&socket_connect_timeout=2&max_connections=3&pool_timeout=4")
    pool = tuned._client.connection_pool
    assert (pool.max_connections, pool.timeout) == (3, 4.0)
    assert (pool.connection_kwargs["socket_timeout"], pool.connection_kwargs["socket_connect_timeout"]) == (1.5, 2.0)
    await tuned.aclose()


# README, Running a fleet / Operating it safely: "?commit_id_ttl=",
# "?max_snapshot_bytes=&max_inputs_per_call= in the URL".
@pytest.mark.parametrize("url", ["memory://", "fakeredis://url-options", "redis://127.0.0.1:1/0"])
async def test_store_options_in_the_url(url):
    from redis_store import InputId, InputState, RunApplyBoundary, RunId, SessionDelta
    from sessions import session_json

    store = open_store(f"{url}?commit_id_ttl=7.5&max_snapshot_bytes=1000&max_inputs_per_call=2")
    assert (store.options.commit_id_ttl, store.options.max_snapshot_bytes, store.options.max_inputs_per_call) == (7.5, 1000, 2)
    assert store.commit_id_ttl_ms == 7500
    run_id = RunId.new()
    with pytest.raises(ValueError, match="max_snapshot_bytes"):
        await store.commit_session_boundary("rt", SessionDelta(session_json(40)), run_id, RunApplyBoundary.RUN_START, [], [])
    states = [InputState.new_accepted(InputId.new()) for _ in range(3)]
    with pytest.raises(ValueError, match="max_inputs_per_call"):
        await store.atomic_lifecycle_commit("rt", RuntimeState.IDLE, states)
    keyword = open_store(f"{url}?max_inputs_per_call=2", max_inputs_per_call=5)  # keyword arguments win
    assert keyword.options.max_inputs_per_call == 5
    await store.aclose()
    await keyword.aclose()
