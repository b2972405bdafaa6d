"""Guard rails on connect: the store checks the server's persistence,
eviction policy and version when first used; it warns, or refuses when asked
to, and carries on where a managed service hides CONFIG."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis

from redis_store import RuntimeState, UnsafeServer, open_store
from servers import ServerProcess

pytestmark = pytest.mark.real_server


async def test_refuse_mode_names_what_is_unsafe_and_sends_nothing(redis_server):
    raw = redis.Redis.from_url(redis_server.url)
    async with open_store(f"{redis_server.url}?namespace=guard1&guard=refuse") as store:
        with pytest.raises(UnsafeServer, match="persistence: no AOF and no RDB") as caught:
            await store.persist_runtime_state("rt", RuntimeState.IDLE)
        assert "guard='warn'" in str(caught.value)
    assert raw.keys("guard1:*") == []
    raw.close()


@pytest.fixture
def fresh_guard():
    """The guard's memory of what it has said in this process, emptied."""
    from redis_store import backend_redis

    saved = set(backend_redis._WARNED)
    backend_redis._WARNED.clear()
    yield
    backend_redis._WARNED.update(saved)


async def test_warn_mode_logs_and_carries_on(redis_server, caplog, fresh_guard):
    caplog.set_level(logging.WARNING, logger="redis_store")
    async with open_store(f"{redis_server.url}?namespace=guard2") as store:
        await store.persist_runtime_state("rt", RuntimeState.IDLE)
        await store.persist_runtime_state("rt", RuntimeState.IDLE)
        assert await store.load_runtime_state("rt") == RuntimeState.IDLE
    warnings = [r.getMessage() for r in caplog.records if r.name == "redis_store"]
    assert len(warnings) == 1 and "persistence" in warnings[0] and "appendonly yes" in warnings[0]
    caplog.clear()
    async with open_store(f"{redis_server.url}?namespace=guard3&guard=off") as store:
        await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert not [r for r in caplog.records if r.name == "redis_store"]


async def test_the_guard_warns_once_per_server_per_process(redis_server, caplog, fresh_guard):
    caplog.set_level(logging.WARNING, logger="redis_store")
    stores = [open_store(f"{redis_server.url}?namespace=guard-once-{i}") for i in range(3)]
    try:  # eight workers' first calls at once on each store, as in simulate
        await asyncio.gather(*(store.load_runtime_state(f"rt-{n}") for store in stores for n in range(8)))
    finally:
        for store in stores:
            await store.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.name == "redis_store"]
    assert len(warnings) == 1 and "persistence" in warnings[0], warnings


@pytest.mark.parametrize("url", ["fakeredis://guard-quiet", "memory://"])
async def test_the_guard_is_silent_for_in_process_stores(url, caplog, fresh_guard):
    caplog.set_level(logging.DEBUG, logger="redis_store")
    async with open_store(url) as store:
        await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert [r.getMessage() for r in caplog.records if r.name == "redis_store"] == []
    assert "<" not in repr(store) and ":6379" not in repr(store)  # named by its URL, not a made-up address


async def test_safe_server_passes_and_an_evicting_policy_is_refused(redis_server):
    safe = ServerProcess(redis_server.binary, "--appendonly", "yes", "--maxmemory-policy", "noeviction").start()
    try:
        async with open_store(f"{safe.url}?namespace=guard4&guard=refuse") as store:
            await store.persist_runtime_state("rt", RuntimeState.IDLE)
            assert {f.level for f in await store.check_server()} == {"ok"}
        redis.Redis(port=safe.port).config_set("maxmemory-policy", "volatile-lru")
        async with open_store(f"{safe.url}?namespace=guard5&guard=refuse") as store:
            with pytest.raises(UnsafeServer, match="eviction: maxmemory-policy volatile-lru"):
                await store.load_runtime_state("rt")
    finally:
        safe.stop()


async def test_managed_service_without_config_carries_on(redis_server, caplog, fresh_guard):
    admin = redis.Redis.from_url(redis_server.url)
    admin.acl_setuser("managed", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config"])
    caplog.set_level(logging.WARNING, logger="redis_store")
    url = f"redis://managed:pw@127.0.0.1:{redis_server.port}/0?namespace=guard6&guard=refuse"
    try:
        async with open_store(url) as store:  # AOF off is visible in INFO; whether RDB saves is not
            await store.persist_runtime_state("rt", RuntimeState.IDLE)
        assert any("CONFIG GET denied" in r.getMessage() for r in caplog.records)
    finally:
        admin.acl_deluser("managed")
        admin.close()


def test_guard_value_is_checked():
    with pytest.raises(ValueError, match="guard must be"):
        open_store("fakeredis://guard?guard=maybe")


# README, Guard rails: guard="refuse" raises "when a check fails outright
# (... a server too old)". No Redis 4 binary is at hand, so a real server's
# INFO is made to report one; everything else is the real server's.
async def test_refuse_mode_refuses_a_server_too_old_for_the_scripts(redis_server):
    import redis.asyncio

    from redis_store import RedisRuntimeStore

    client = redis.asyncio.Redis(port=redis_server.port)
    real_info = client.info

    async def info(section=None, *args, **kwargs):
        found = await real_info(section, *args, **kwargs)
        return {**found, "redis_version": "4.0.14"} if section == "server" else found

    client.info = info
    store = RedisRuntimeStore(client, "guard7", guard="refuse", close_client=True)
    with pytest.raises(UnsafeServer, match=r"Redis 4\.0\.14.*scripts need Redis 5 or newer"):
        await store.persist_runtime_state("rt", RuntimeState.IDLE)
    raw = redis.Redis(port=redis_server.port)
    assert raw.keys("guard7:*") == []
    raw.close()
    await store.aclose()
