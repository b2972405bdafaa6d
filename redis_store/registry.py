"""``open_store(url)``: one registry from URL schemes to store backends.

    memory://                  InMemoryRuntimeStore (this process only)
    redis://host:port/db       RedisRuntimeStore over TCP
    rediss://host:port/db      ... over TLS
    redis+unix:///path/sock    ... over a Unix socket (unix:// too)
    redis+cluster://h:p[,h:p]  ... on Redis Cluster (seed nodes)
    redis+sentinel://h:p[,h:p]/service
                               ... on the primary that Sentinel names for
                               the service (reads too: never stale)
    fakeredis://[name]         ... over an in-process fakeredis server;
                               stores opened with the same name share data

Every scheme takes the store options ``?namespace=`` (default ``meerkat``),
``?commit_id_ttl=`` (seconds); Redis schemes also ``?wait_replicas=`` and
``?wait_timeout=``. Keyword arguments win over the URL. Other keyword
arguments and query parameters go to the Redis client.
"""

from __future__ import annotations

from typing import Any, Callable

from .backend_memory import InMemoryRuntimeStore
from .backend_redis import RedisRuntimeStore
from .contract import RuntimeStore
from .keys import check_namespace
from .urls import parse_host_list, pop_store_options, redact, scheme_of

DEFAULT_NAMESPACE = "meerkat"


def _memory(url: str, namespace: str, **options: Any) -> RuntimeStore:
    store_options, rest = _split(options)
    if rest or {"wait_replicas", "wait_timeout", "guard"} & set(store_options):
        raise TypeError(f"memory:// takes only the StoreOptions fields, got {', '.join(sorted({*rest, *store_options}))}")
    return InMemoryRuntimeStore(**store_options)  # one memory store is one namespace


def _redis(url: str, namespace: str, **options: Any) -> RuntimeStore:
    return RedisRuntimeStore.from_url(url, namespace=namespace, **options)


def _redis_unix(url: str, namespace: str, **options: Any) -> RuntimeStore:
    return _redis("unix://" + url.split("://", 1)[1], namespace, **options)


_STORE_KWARGS = ("commit_id_ttl", "max_snapshot_bytes", "max_inputs_per_call", "wait_replicas", "wait_timeout", "guard")


def _split(options: dict) -> tuple[dict, dict]:
    """(store options, client options)."""
    store = {k: options.pop(k) for k in _STORE_KWARGS if k in options}
    return store, options


def _redis_cluster(url: str, namespace: str, **options: Any) -> RuntimeStore:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    seeds = parse_host_list(url, 6379)
    store_options, client_options = _split(options)
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds.hosts],
        username=seeds.username,
        password=seeds.password,
        decode_responses=False,
        **client_options,
    )
    store = RedisRuntimeStore(client, namespace, close_client=True, **store_options)
    store._where = redact(url)
    return store


def _redis_sentinel(url: str, namespace: str, **options: Any) -> RuntimeStore:
    from redis.asyncio.sentinel import Sentinel

    parsed = parse_host_list(url, 26379)
    service = parsed.path.strip("/")
    if not service:
        raise ValueError(f"{redact(url)!r} names no service: use redis+sentinel://host:port[,host:port]/SERVICE")
    store_options, client_options = _split(options)
    sentinel = Sentinel(parsed.hosts, socket_timeout=client_options.pop("sentinel_socket_timeout", 1.0))
    # Reads and writes both go to the primary: control-plane reads must never be stale.
    client = sentinel.master_for(
        service, username=parsed.username, password=parsed.password, decode_responses=False, **client_options
    )
    store = RedisRuntimeStore(client, namespace, close_client=True, **store_options)
    store._where = redact(url)
    return store


_FAKE_SERVERS: dict[str, Any] = {}


def _fakeredis(url: str, namespace: str, **options: Any) -> RuntimeStore:
    try:
        import fakeredis
    except ImportError:
        raise ValueError(
            "fakeredis:// needs the fakeredis package: pip install 'redis-store[fakeredis]'"
        ) from None
    name = url.split("://", 1)[1].split("?", 1)[0].strip("/") or "default"
    server = _FAKE_SERVERS.setdefault(name, fakeredis.FakeServer())
    store_options, client_options = _split(options)
    store_options.setdefault("guard", "off")  # an in-process fake: no server to check (and no INFO)
    client = fakeredis.FakeAsyncRedis(server=server, **client_options)
    store = RedisRuntimeStore(client, namespace, close_client=True, **store_options)
    store._where = f"fakeredis://{name}"
    return store


#: URL scheme -> factory(url, namespace, **options).
BACKENDS: dict[str, Callable[..., RuntimeStore]] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
    "redis+unix": _redis_unix,
    "unix": _redis,
    "redis+cluster": _redis_cluster,
    "redis+sentinel": _redis_sentinel,
    "fakeredis": _fakeredis,
}


def open_store(url: str, **options: Any) -> RuntimeStore:
    """The store a URL names (see module doc). Raises ``ValueError`` naming
    the supported schemes for an unknown one."""
    scheme = scheme_of(url)
    factory = BACKENDS.get(scheme)
    if factory is None:
        raise ValueError(
            f"unknown store URL scheme {scheme!r} in {redact(url)!r}; supported: "
            + ", ".join(f"{name}://" for name in BACKENDS)
        )
    url, url_options = pop_store_options(url)
    options = {**url_options, **options}
    namespace = options.pop("namespace", None)
    if namespace is None:
        namespace = DEFAULT_NAMESPACE
    return factory(url, check_namespace(namespace), **options)
