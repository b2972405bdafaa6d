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
