"""``open_store(url)``: one registry from URL schemes to store backends.

    memory://                  InMemoryRuntimeStore (this process only)
    redis://host:port/db       RedisRuntimeStore over TCP
    rediss://host:port/db      ... over TLS
    redis+unix:///path/sock    ... over a Unix socket (unix:// too)
    fakeredis://[name]         ... over an in-process fakeredis server;
                               stores opened with the same name share data

Every scheme takes ``?namespace=`` (default ``meerkat``); a ``namespace=``
keyword argument wins over the URL. Other keyword arguments go to the
backend (for Redis: to ``redis.asyncio.from_url``).
"""

from __future__ import annotations

from typing import Any, Callable

from .backend_memory import InMemoryRuntimeStore
from .backend_redis import RedisRuntimeStore
from .contract import RuntimeStore
from .keys import check_namespace
from .urls import pop_namespace, redact, scheme_of

DEFAULT_NAMESPACE = "meerkat"


def _memory(url: str, namespace: str, **options: Any) -> RuntimeStore:
    if options:
        raise TypeError(f"memory:// takes no options, got {', '.join(sorted(options))}")
    return InMemoryRuntimeStore()  # one memory store is one namespace


def _redis(url: str, namespace: str, **options: Any) -> RuntimeStore:
    return RedisRuntimeStore.from_url(url, namespace=namespace, **options)


def _redis_unix(url: str, namespace: str, **options: Any) -> RuntimeStore:
    return _redis("unix://" + url.split("://", 1)[1], namespace, **options)


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
    client = fakeredis.FakeAsyncRedis(server=server, **options)
    return RedisRuntimeStore(client, namespace, close_client=True)


#: URL scheme -> factory(url, namespace, **options).
BACKENDS: dict[str, Callable[..., RuntimeStore]] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
    "redis+unix": _redis_unix,
    "unix": _redis,
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
    url, url_namespace = pop_namespace(url)
    namespace = options.pop("namespace", None)
    if namespace is None:
        namespace = DEFAULT_NAMESPACE if url_namespace is None else url_namespace
    return factory(url, check_namespace(namespace), **options)
