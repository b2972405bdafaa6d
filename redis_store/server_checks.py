"""What a Redis store checks about its server on first use (its ``guard``),
and what ``redis-store doctor`` starts from: version, persistence, eviction.

Kept apart from ``doctor`` (the operator's tool) so that the backend does not
import the operator tool. Each finding has a level (ok, warn, fail), what
was found, and advice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoPermissionError, RedisError, ResponseError


@dataclass(frozen=True)
class Finding:
    level: str  # "ok" | "warn" | "fail"
    topic: str
    found: str
    advice: str = ""

    def to_json(self) -> dict[str, str]:
        return {"level": self.level, "topic": self.topic, "found": self.found, "advice": self.advice}


async def _config(client: Any, name: str) -> str | None:
    try:
        value = await client.config_get(name)
    except ResponseError:
        return None  # CONFIG is often denied to application users
    raw = value.get(name) if isinstance(value, dict) else None
    return raw.decode() if isinstance(raw, bytes) else raw


#: Oldest server the scripts run on (TIME inside scripts needs effect
#: replication, the default from Redis 5; UNLINK and multi-field HSET: 4.0).
MIN_MAJOR_VERSION = 5


def _one_node(info: dict) -> dict:
    """INFO of one node (Redis Cluster answers per node; they share settings)."""
    if info and all(isinstance(value, dict) for value in info.values()):
        return next(iter(info.values()))
    return info


async def server_findings(client: Any) -> list[Finding]:
    """Server version, persistence and eviction: what the store checks when
    it first connects (its ``guard``). What the user may not read (INFO or
    CONFIG refused, as on managed services) is a warning, never a failure."""
    try:
        server = await client.info("server")
    except NoPermissionError as exc:
        return [Finding("warn", "server", f"INFO is not allowed to this user ({exc}); the server was not checked",
                        "ask the operator to run redis-store doctor, or grant INFO and CONFIG GET")]
    except RedisError as exc:
        return [Finding("fail", "connection", f"{type(exc).__name__}: {exc}", "check the URL, credentials and that the server is up")]
    server = _one_node(server)
    version = server.get("valkey_version") or server.get("redis_version")
    product = "Valkey" if "valkey_version" in server else "Redis"
    major = int(str(version).split(".")[0]) if version else 0
    level = "ok" if major >= 6 else ("warn" if major >= MIN_MAJOR_VERSION else "fail")
    findings = [Finding(
        level, "server", f"{product} {version}, {server.get('redis_mode', 'standalone')} mode",
        {"ok": "", "warn": "Redis 6.2 or newer is recommended",
         "fail": f"the store's scripts need Redis {MIN_MAJOR_VERSION} or newer"}[level],
    )]
    for check in (_persistence, _eviction):
        try:
            findings.append(await check(client))
        except RedisError as exc:  # e.g. INFO persistence refused
            findings.append(Finding("warn", check.__name__.strip("_"), f"could not be read ({exc})", "check it by hand"))
    return findings


async def _persistence(client: Any) -> Finding:
    info = _one_node(await client.info("persistence"))
    aof = str(info.get("aof_enabled")) == "1"
    fsync = await _config(client, "appendfsync") if aof else None
    save = None if aof else await _config(client, "save")  # CONFIG only where INFO cannot tell
    if aof:
        if fsync == "no":
            return Finding("warn", "persistence", "AOF on with appendfsync no",
                           "set appendfsync everysec (or always): with 'no' the OS decides when commits reach disk")
        return Finding("ok", "persistence", f"AOF on, appendfsync {fsync or 'unknown'}"
                       + ("" if fsync else " (CONFIG GET denied)"))
    if save:
        return Finding("warn", "persistence", f"RDB snapshots only (save {save!r})",
                       "commits since the last snapshot are lost on restart: enable appendonly yes with appendfsync everysec")
    if save is None:
        return Finding("warn", "persistence", "AOF off; RDB settings unreadable (CONFIG GET denied)",
                       "ask the operator whether RDB snapshots are configured; appendonly yes is advised")
    return Finding("fail", "persistence", "no AOF and no RDB snapshots: nothing survives a restart",
                   "enable appendonly yes with appendfsync everysec")


async def _eviction(client: Any) -> Finding:
    policy = _one_node(await client.info("memory")).get("maxmemory_policy")  # INFO: no CONFIG right needed
    if policy is None:
        return Finding("warn", "eviction", "maxmemory-policy unreadable (CONFIG GET denied)",
                       "make sure it is noeviction: any other policy may silently delete runtime state")
    if policy != "noeviction":
        return Finding("fail", "eviction", f"maxmemory-policy {policy}",
                       "set maxmemory-policy noeviction: this policy may silently delete runtime state under memory pressure")
    return Finding("ok", "eviction", "maxmemory-policy noeviction")
