"""The multi-node test topologies (tests/topologies.py) work: checked with
raw redis-py clients only, so a failure here is the harness, not the store."""

from __future__ import annotations

import re

import pytest
import redis
from redis.exceptions import AskError, MovedError, TryAgainError

from topologies import (
    TopologyError,
    key_in_slot,
    keyslot,
    require_topology_binaries,
    start_cluster,
    start_sentinel,
)

pytestmark = [pytest.mark.real_server, pytest.mark.slow]


def raw(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)


@pytest.fixture(scope="module")
def cluster():
    require_topology_binaries()
    topology = start_cluster(masters=3)
    try:
        yield topology
    finally:
        topology.stop()


@pytest.fixture
def clean_cluster(cluster):
    cluster.wait_ok()
    cluster.flush_all()
    return cluster


def other_master(cluster, port: int) -> int:
    return next(p for p in cluster.masters() if p != port)


# ------------------------------------------------------------------ cluster


def test_cluster_forms_with_three_masters(clean_cluster):
    cluster = clean_cluster
    assert sorted(cluster.masters()) == sorted(cluster.ports)
    assert len(cluster.nodes) == 3
    assert cluster.startup_url == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster.ports)
    ids = {cluster.node_id(p) for p in cluster.ports}
    assert len(ids) == 3 and all(re.fullmatch("[0-9a-f]{40}", i) for i in ids)
    slots = [slot for port in cluster.masters() for slot in cluster.slots_of(port)]
    assert sorted(slots) == list(range(16384))
    for port in cluster.ports:
        info = raw(port).cluster("INFO")
        assert info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == 16384
    assert cluster.master_of(0) in cluster.masters()


def test_keys_spread_over_all_masters(clean_cluster):
    cluster = clean_cluster
    client = cluster.client()
    keys = [f"spread:{i}" for i in range(300)]
    for key in keys:
        client.set(key, key)
    sizes = {port: raw(port).dbsize() for port in cluster.masters()}
    assert sum(sizes.values()) == 300 and all(size > 0 for size in sizes.values()), sizes
    for key in keys[:20]:
        assert raw(cluster.master_of(keyslot(key))).get(key) == key


def test_move_slot_moves_keys_and_clients_follow(clean_cluster):
    cluster = clean_cluster
    tag = key_in_slot(keyslot("move-me"), "move")
    slot = keyslot(tag)
    keys = [f"{tag}:{i}" for i in range(250)]  # more than one batch
    client = cluster.client()
    for key in keys:
        client.set(key, key)
    source = cluster.master_of(slot)
    target = other_master(cluster, source)

    assert cluster.move_slot(slot, target, batch=100) == 250

    assert cluster.master_of(slot) == target
    assert raw(source).cluster("COUNTKEYSINSLOT", slot) == 0
    assert raw(target).cluster("COUNTKEYSINSLOT", slot) == 250
    with pytest.raises(MovedError, match=f"{slot} 127.0.0.1:{target}"):
        raw(source).get(keys[0])
    assert client.mget(keys) == [k.encode() for k in keys]  # the old client follows MOVED
    assert cluster.client().get(keys[-1]) == keys[-1].encode()
    with pytest.raises(ValueError):
        cluster.move_slot(slot, target)  # already there


def test_half_migrated_slot_asks_and_tries_again(clean_cluster):
    cluster = clean_cluster
    tag = key_in_slot(keyslot("half"), "half")
    slot = keyslot(tag)
    moved, staying, new = f"{tag}:moved", f"{tag}:staying", f"{tag}:new"
    client = cluster.client()
    client.set(moved, "m")
    client.set(staying, "s")
    source = cluster.master_of(slot)
    target = other_master(cluster, source)

    with cluster.move_slot_steps(slot, target) as migration:
        assert migration.migrate_keys(moved) == 1
        assert migration.remaining() == 1

        with pytest.raises(AskError, match=f"{slot} 127.0.0.1:{target}"):
            raw(source).get(moved)
        with pytest.raises(TryAgainError):
            raw(source).mget(moved, staying)
        assert client.get(moved) == b"m"  # redis-py follows ASK
        assert client.get(staying) == b"s"
        client.set(new, "n")  # absent on the source: created on the target
        assert migration.remaining() == 1
        assert cluster.master_of(slot) == source

    assert migration.state == "finished" and migration.moved == 2
    assert cluster.master_of(slot) == target
    assert raw(target).cluster("COUNTKEYSINSLOT", slot) == 3
    assert client.mget(moved, staying, new) == [b"m", b"s", b"n"]


def test_cluster_with_replicas_survives_a_killed_master():
    require_topology_binaries()
    with start_cluster(masters=3, replicas_per_master=1) as cluster:
        assert len(cluster.nodes) == 6 and len(cluster.masters()) == 3
        for port in cluster.masters():
            assert len(cluster.replicas_of(port)) == 1
        client = cluster.client()
        key = "{survivor}"
        client.set(key, "v")
        victim = cluster.master_of(keyslot(key))
        (replica,) = cluster.replicas_of(victim)
        assert raw(victim).wait(1, 5000) == 1

        cluster.node(victim).kill()
        cluster.wait_slot_owner(keyslot(key), replica)
        cluster.wait_ok()
        assert client.get(key) == b"v"

        cluster.node(victim).restart()  # rejoins as a replica of the new master
        cluster.wait_ok()
        assert cluster.replicas_of(replica) == [victim]


# ------------------------------------------------------------------ sentinel


def test_sentinel_fails_over_and_clients_follow():
    require_topology_binaries()
    setup = start_sentinel(replicas=1, sentinels=3, service="mymaster")
    processes = [*setup.servers, *setup.sentinels]
    try:
        ports = ",".join(f"127.0.0.1:{p}" for p in setup.sentinel_ports)
        assert setup.url == f"redis+sentinel://{ports}/mymaster"
        old = setup.primary_port()
        assert old == setup.servers[0].port
        master = setup.master_client(socket_timeout=5)
        master.set("before", "1")

        new = setup.failover()

        assert new != old and new == setup.servers[1].port == setup.primary_port()
        assert raw(new).role()[0] == "master"
        assert raw(old).role()[0] == "slave"
        set_after_failover(master, "after", "2")
        assert raw(new).get("after") == "2" and raw(new).get("before") == "1"
        assert master.connection_pool.get_master_address() == ("127.0.0.1", new)

        assert setup.failover() == old  # and back: ready for the next one
        set_after_failover(master, "again", "3")
        assert raw(old).get("again") == "3"

        setup.server(old).kill()  # a crashed primary
        assert setup.failover() == new
        set_after_failover(master, "crash", "4")
        assert setup.restart_server(old) == new  # back as a replica, not as an empty master
        assert raw(old).role()[0] == "slave" and raw(old).get("crash") == "4"
    finally:
        setup.stop()
    assert all(not p.running and not p.dir.exists() for p in processes)
    setup.stop()  # idempotent


def set_after_failover(master: redis.Redis, key: str, value: str) -> None:
    """redis-py's Sentinel client, still connected to the old primary, fails
    the first command with a ConnectionError ("The previous master is now a
    slave", or the connection's own error if it crashed; it does not retry by
    default) and asks the Sentinels for the new primary on the next one."""
    try:
        master.set(key, value)
    except redis.ConnectionError:
        master.set(key, value)


def test_start_errors_are_clear():
    require_topology_binaries()
    with pytest.raises(ValueError):
        start_cluster(masters=2)
    with pytest.raises(TopologyError, match="(?s)did not start.*no-such-option"):  # the server's own words
        start_cluster(masters=3, extra_args=("--no-such-option", "x"), timeout=10)
