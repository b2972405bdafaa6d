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
and the ``StoreOptions`` fields (``?commit_id_ttl=`` seconds, size limits);
Redis schemes also the ``RedisOptions`` fields (``?wait_replicas=``,
``?wait_timeout=``, ``?guard=``, ``?refusal_window=``); see ``options``.
Keyword arguments win over the URL. Other keyword arguments and query
parameters go to the Redis client.
"""

from __future__ import annotations

from typing import Any, Callable

from .backend_memory import InMemoryRuntimeStore
from .backend_redis import RedisRuntimeStore
from .clients import cluster_client, sentinel_client
from .contract import RuntimeStore
from .keys import check_namespace
from .options import split
from .urls import pop_store_options, redact, scheme_of

DEFAULT_NAMESPACE = "meerkat"


def _memory(url: str, namespace: str, **options: Any) -> RuntimeStore:
    store_options, redis_options, rest = split(options)
    if rest or redis_options:
        raise TypeError(f"memory:// takes only the StoreOptions fields, got {', '.join(sorted({*rest, *redis_options}))}")
    return InMemoryRuntimeStore(**store_options)  # one memory store is one namespace


def _redis(url: str, namespace: str, **options: Any) -> RuntimeStore:
    return RedisRuntimeStore.from_url(url, namespace=namespace, **options)


def _redis_unix(url: str, namespace: str, **options: Any) -> RuntimeStore:
    return _redis("unix://" + url.split("://", 1)[1], namespace, **options)


def _split(options: dict) -> tuple[dict, dict]:
    """(store options, client options)."""
    store_options, redis_options, client_options = split(options)
    return {**store_options, **redis_options}, client_options


def _redis_cluster(url: str, namespace: str, **options: Any) -> RuntimeStore:
    store_options, client_options = _split(options)
    client = cluster_client(url, client_options)
    return RedisRuntimeStore(client, namespace, close_client=True, where=redact(url), **store_options)


def _redis_sentinel(url: str, namespace: str, **options: Any) -> RuntimeStore:
    store_options, client_options = _split(options)
    client = sentinel_client(url, client_options)
    return RedisRuntimeStore(client, namespace, close_client=True, where=redact(url), **store_options)


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
    return RedisRuntimeStore(client, namespace, close_client=True, where=f"fakeredis://{name}", **store_options)


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
