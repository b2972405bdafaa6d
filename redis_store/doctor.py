"""``redis-store doctor``: is this Redis fit to hold control-plane state?

Each finding has a level (ok, warn, fail), what was found, and advice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoPermissionError, RedisError, ResponseError

from .keys import KeyLayout, glob_escape
from .scripts import SCRIPT_NAMES, sha1, source

#: Commands a worker sends itself (AUTH and HELLO need no grant).
CLIENT_COMMANDS = ("evalsha", "script|load", "get", "hget", "scan", "info")  # INFO: the guard's checks
#: Commands the Lua scripts call: Redis checks the user's ACL for each.
SCRIPT_COMMANDS = (
    "get", "set", "setrange", "strlen", "type", "incr", "del", "unlink", "pexpire", "pttl", "time",
    "hget", "hset", "hdel", "hexists", "hgetall", "hmget",
    "rpush", "lrange", "zadd", "zrem", "zrangebyscore", "zscore",
)
STORE_COMMANDS = tuple(dict.fromkeys(CLIENT_COMMANDS + SCRIPT_COMMANDS))


def acl_rule(namespace: str, user: str = "worker") -> str:
    """The least-privilege ACL rule of a worker of ``namespace``: only its
    namespace's keys (``~<ns>:rt:{*``: a namespace may contain colons, so
    ``~<ns>:*`` would also grant ``<ns>:eu``), only the store's commands."""
    return (
        f"ACL SETUSER {user} reset on ><password> ~{glob_escape(namespace)}:rt:{{* resetchannels -@all "
        + " ".join(f"+{command}" for command in STORE_COMMANDS)
    )


def _dryrun_args(command: str, key: str) -> list[str]:
    """A well-formed call of ``command`` on ``key`` for ACL DRYRUN."""
    special = {
        "evalsha": ["EVALSHA", "0" * 40, "1", key],
        "script|load": ["SCRIPT", "LOAD", "return 1"],
        "scan": ["SCAN", "0"],
        "time": ["TIME"],
        "set": ["SET", key, "v"],
        "pexpire": ["PEXPIRE", key, "1000"],
        "hget": ["HGET", key, "f"], "hset": ["HSET", key, "f", "v"], "setrange": ["SETRANGE", key, "0", "v"],
        "hdel": ["HDEL", key, "f"], "hexists": ["HEXISTS", key, "f"], "hmget": ["HMGET", key, "f"],
        "rpush": ["RPUSH", key, "v"], "lrange": ["LRANGE", key, "0", "-1"],
        "zadd": ["ZADD", key, "1", "m"], "zrem": ["ZREM", key, "m"],
        "zrangebyscore": ["ZRANGEBYSCORE", key, "0", "1"], "zscore": ["ZSCORE", key, "m"],
    }
    return special.get(command, [command.upper(), key])


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


async def diagnose(client: Any, namespace: str = "meerkat") -> list[Finding]:
    """Everything ``redis-store doctor`` reports."""
    findings = await server_findings(client)
    if any(f.topic == "connection" for f in findings):
        return findings
    findings.extend(await _scripts(client))
    findings.append(await _permissions(client, namespace))
    return findings


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


async def _scripts(client: Any) -> list[Finding]:
    findings = []
    for name in SCRIPT_NAMES:
        try:
            loaded = await client.script_load(source(name))
        except RedisError as exc:
            findings.append(Finding("fail", "scripts", f"{name}.lua does not load: {exc}",
                                    "the user needs EVALSHA and SCRIPT LOAD, and scripting must be enabled"))
            continue
        loaded = loaded.decode() if isinstance(loaded, bytes) else loaded
        if loaded != sha1(name):
            findings.append(Finding("fail", "scripts", f"{name}.lua loaded as {loaded}, expected {sha1(name)}",
                                    "the server computed another SHA1: report this as a bug"))
    if not findings:
        findings.append(Finding("ok", "scripts", f"all {len(SCRIPT_NAMES)} scripts load"))
    return findings


async def _permissions(client: Any, namespace: str) -> Finding:
    try:
        user = await client.acl_whoami()
    except ResponseError:
        return Finding("ok", "permissions", "server without ACLs (before Redis 6): the connection may do everything")
    user = user.decode() if isinstance(user, bytes) else user
    key = KeyLayout(namespace).runtime("doctor-probe").inputs
    denied = []
    for command in STORE_COMMANDS:
        try:
            verdict = await client.execute_command("ACL", "DRYRUN", user, *_dryrun_args(command, key))
        except ResponseError:  # NOPERM for ACL DRYRUN itself
            return Finding("warn", "permissions", f"connected as {user!r}; ACL DRYRUN is not allowed, so the rights were not checked",
                           f"the rule a worker needs: {acl_rule(namespace)}")
        if (verdict.decode() if isinstance(verdict, bytes) else verdict) != "OK":  # a reply naming the denial
            denied.append(command.upper())
    if denied:
        return Finding("fail", "permissions", f"user {user!r} may not run on namespace {namespace!r}: {', '.join(denied)}",
                       f"the rule a worker needs: {acl_rule(namespace)}")
    return Finding("ok", "permissions", f"user {user!r} may run every command the store needs on namespace {namespace!r}")
