"""redis-py clients for store URLs: one place that knows how each kind of
URL becomes a ``redis.asyncio`` client (the backend takes any client)."""

from __future__ import annotations

from typing import Any

import redis.asyncio

from .urls import has_credentials, parse_host_list, redact

try:
    from redis.maint_notifications import MaintNotificationsConfig

    _NO_MAINT_NOTIFICATIONS: MaintNotificationsConfig | None = MaintNotificationsConfig(enabled=False)
except ImportError:  # redis-py before 7
    _NO_MAINT_NOTIFICATIONS = None


def client_from_url(url: str, client_options: dict) -> Any:
    """A redis.asyncio client for a redis://, rediss:// or unix:// URL; a
    malformed URL raises ValueError without any part of its password."""
    reason = None
    if _NO_MAINT_NOTIFICATIONS is not None:
        # redis-py 8 skips its check for a closed idle connection when these are
        # on, so the first call per pooled connection after a server restart failed.
        client_options.setdefault("maint_notifications_config", _NO_MAINT_NOTIFICATIONS)
    try:
        pool = redis.asyncio.BlockingConnectionPool.from_url(url, **client_options)
    except (ValueError, TypeError) as exc:
        # redis-py's message may quote part of a mis-encoded password: drop it,
        # and raise outside this block so it is not kept as __context__ either.
        reason = "check its form; percent-encode special characters in the password" if has_credentials(url) else str(exc)
    if reason is not None:
        raise ValueError(f"cannot use Redis URL {redact(url)!r}: {reason}")
    return redis.asyncio.Redis.from_pool(pool)  # the client owns (and closes) the pool


def cluster_client(url: str, client_options: dict) -> Any:
    """A ``RedisCluster`` for ``redis+cluster://[user:password@]host:port[,host:port...]``
    (the seed nodes)."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    seeds = parse_host_list(url, 6379)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds.hosts],
        username=seeds.username,
        password=seeds.password,
        decode_responses=False,
        **client_options,
    )


def sentinel_client(url: str, client_options: dict) -> Any:
    """A client of the primary that Sentinel names, for
    ``redis+sentinel://[user:password@]host:port[,host:port]/SERVICE``."""
    from redis.asyncio.sentinel import Sentinel

    parsed = parse_host_list(url, 26379)
    service = parsed.path.strip("/")
    if not service:
        raise ValueError(f"{redact(url)!r} names no service: use redis+sentinel://host:port[,host:port]/SERVICE")
    sentinel = Sentinel(parsed.hosts, socket_timeout=client_options.pop("sentinel_socket_timeout", 1.0))
    # Reads and writes both go to the primary: control-plane reads must never be stale.
    return sentinel.master_for(
        service, username=parsed.username, password=parsed.password, decode_responses=False, **client_options
    )
