"""``redis-store doctor``: is this Redis fit to hold control-plane state?

The server checks the store runs itself (``server_checks``), then whether
the scripts load and what the connecting user may run. Each finding has a
level (ok, warn, fail), what was found, and advice.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError, ResponseError

from .keys import KeyLayout, glob_escape
from .scripts import SCRIPT_NAMES, sha1, source
from .server_checks import Finding, server_findings

__all__ = ["Finding", "acl_rule", "diagnose", "server_findings"]

#: Commands a worker sends itself (AUTH and HELLO need no grant).
CLIENT_COMMANDS = ("evalsha", "script|load", "get", "hget", "scan", "info")  # INFO: the guard's checks
#: Commands the Lua scripts call: Redis checks the user's ACL for each.
SCRIPT_COMMANDS = (
    "get", "set", "setrange", "strlen", "type", "incr", "del", "unlink", "pexpire", "pttl", "time",
    "hget", "hset", "hsetnx", "hdel", "hexists", "hgetall", "hmget",
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
        "hget": ["HGET", key, "f"], "hset": ["HSET", key, "f", "v"], "hsetnx": ["HSETNX", key, "f", "v"], "setrange": ["SETRANGE", key, "0", "v"],
        "hdel": ["HDEL", key, "f"], "hexists": ["HEXISTS", key, "f"], "hmget": ["HMGET", key, "f"],
        "rpush": ["RPUSH", key, "v"], "lrange": ["LRANGE", key, "0", "-1"],
        "zadd": ["ZADD", key, "1", "m"], "zrem": ["ZREM", key, "m"],
        "zrangebyscore": ["ZRANGEBYSCORE", key, "0", "1"], "zscore": ["ZSCORE", key, "m"],
    }
    return special.get(command, [command.upper(), key])


async def diagnose(client: Any, namespace: str = "meerkat") -> list[Finding]:
    """Everything ``redis-store doctor`` reports."""
    findings = await server_findings(client)
    if any(f.topic == "connection" for f in findings):
        return findings
    findings.extend(await _scripts(client))
    findings.append(await _permissions(client, namespace))
    return findings


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
