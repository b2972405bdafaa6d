"""Writes on Redis Cluster: each script runs on the node that owns the
runtime's slot, on one connection, followed there by WAIT when the store
waits for replicas (WAIT counts the replicas that acknowledged *that
connection's* writes, so both must share it).

One attempt per call; the store's refusal loop (``failures.refused``) retries.
A MOVED refreshes the slot map, an ASK sends ``ASKING`` first on the same
connection, and a node that cannot be connected to raises ``NotSent``
(nothing left the client) after asking for a fresh slot map, so commits
resume by themselves once a replica is promoted. Connecting is done before
anything is written to the socket, which is what makes "not sent" certain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .failures import NotSent


def _can_read(connection: Any) -> Awaitable[bool]:
    """Pending data or a closed socket (renamed in redis-py 8)."""
    check = getattr(connection, "can_read", None) or connection.can_read_destructive
    return check()


class ClusterRoute:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._asked: dict[int, tuple[str, int]] = {}  # slot -> ASK target, for the next attempt
        self._refresh = asyncio.Lock()
        self._generation = 0  # slot map refreshes done, so concurrent failures refresh once

    async def run(self, script: Any, keys: list, args: list, wait: tuple[int, int] | None) -> tuple[Any, int | None]:
        """(script reply, replicas acknowledged or None without WAIT)."""
        client = self._client
        if getattr(client, "_initialize", False):  # never used yet: load the slot map
            await client.initialize()
        slot = key_slot(client.encoder.encode(keys[0]))
        generation = self._generation
        asked = self._asked.pop(slot, None)
        node = client.nodes_manager.get_node(host=asked[0], port=asked[1]) if asked else None
        if node is None:
            node = client.nodes_manager.get_node_from_slot(slot)  # SlotNotCoveredError: refused
        commands: list[tuple] = [("ASKING",)] if asked else []
        commands.append(("EVALSHA", script.sha, len(keys), *keys, *args))
        if wait:
            commands.append(("WAIT", *wait))

        connection = node.acquire_connection()
        try:
            try:
                await connection.connect()  # a no-op when connected
                if await _can_read(connection):  # closed by the server while idle
                    await connection.disconnect()
                    await connection.connect()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                await connection.disconnect()
                await self._refresh_slots(generation)
                raise NotSent(f"cannot connect to {node.name}, the owner of slot {slot}: {exc}") from exc
            await connection.send_packed_command(connection.pack_commands(commands))
            replies = []
            for command in commands:
                try:
                    replies.append(await node.parse_response(connection, command[0]))
                except (RedisConnectionError, RedisTimeoutError):
                    raise
                except Exception as exc:  # a reply that is an error: the rest still follow
                    replies.append(exc)
        except BaseException:
            await connection.disconnect()  # never reuse a connection in an unknown state
            raise
        finally:
            node.release(connection)

        if asked:
            replies.pop(0)
        result = replies[0]
        if isinstance(result, NoScriptError):  # a promoted replica or a flushed cache
            await node.execute_command("SCRIPT", "LOAD", script.script)
        elif isinstance(result, MovedError):
            await self._refresh_slots(generation)
        elif isinstance(result, AskError):
            self._asked[slot] = (result.host, result.port)
        if isinstance(result, Exception):
            raise result
        acknowledged = replies[1] if wait else None
        if isinstance(acknowledged, Exception):
            raise acknowledged
        return result, acknowledged

    async def _refresh_slots(self, generation: int) -> None:
        """Reload the slot map once for all callers that failed on the same map."""
        async with self._refresh:
            if generation != self._generation:
                return
            try:
                await self._client.nodes_manager.initialize()
            finally:
                self._generation += 1
