"""``RedisRuntimeStore``: the contract on Redis (or Valkey), shared by every
worker that reaches the server.

Every write is one Lua script (``lua/``), so sequence minting and all of a
commit's writes are atomic on the server; each script checks everything
before its first write. Keys are laid out in ``keys``; values are encoded by
``codec``. Redis errors never escape bare: they surface as ``WriteFailed`` or
``ReadFailed`` with the redis-py exception as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoPermissionError, OutOfMemoryError, ResponseError

from . import failures
from .cluster_route import ClusterRoute
from .codec import SnapshotEnvelope, seq_suffix
from .contract import SNAPSHOT_RECEIPT_FIELDS, CommitTag, EncodedInputs, RawRuntime, RuntimeStore, StoreOptions
from .server_checks import server_findings
from .errors import (
    ReadFailed,
    RuntimeStoreError,
    UnsafeServer,
    WriteFailed,
)
from .keys import KeyLayout, receipt_field
from .options import RedisOptions, split
from . import snapshot_delta
from .script_errors import script_error
from .scripts import Scripts
from .clients import client_from_url
from .telemetry import note_refusal_retry, note_replay
from .urls import pop_store_options, redact


log = logging.getLogger("redis_store")

#: (server, topic, finding) the guard has logged in this process.
_WARNED: set[tuple[str, str, str]] = set()

#: Cluster cursors of list_runtimes encode the node index below this.
_MAX_NODES = 1024

#: ``write(value, tag, spec, head)``: a snapshot-storing script's call (``_with_snapshot``).
_SnapshotWrite = Callable[[bytes, str, str, bytes], Awaitable[Any]]


def _flat(inputs: EncodedInputs, stamp: bytes = b"") -> list:
    """The (input_id, value, claim) triples of the scripts' ARGV, each value
    followed by ``stamp``; a claim is "" without an idempotency key, else "="
    and the key (lib.lua)."""
    return [
        part
        for input_id, value, key in inputs
        for part in (input_id, value + stamp if stamp else value, "" if key is None else "=" + key)
    ]


class _LastSequences:
    """The sequence this store last minted per runtime, with its run (a
    bounded LRU). commit_boundary.lua stamps the sequence it mints on the
    receipt and on each input envelope; Python stamps the one it expects
    (the last + 1, or 0 for a run it has not seen), so that the script
    rebuilds those strings only when someone else minted in between: Redis's
    Lua hashes every byte of every string it makes, so rebuilding them would
    cost as much as receiving them again."""

    def __init__(self, limit: int = 16384) -> None:
        self.limit = limit
        self._last: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def expected(self, rid: str, run_id: str) -> int:
        last = self._last.get(rid)
        return last[1] + 1 if last is not None and last[0] == run_id else 0

    def minted(self, rid: str, run_id: str, sequence: int) -> None:
        self._last[rid] = (run_id, sequence)
        self._last.move_to_end(rid)
        if len(self._last) > self.limit:
            self._last.popitem(last=False)


def _describe(client: Any) -> str:
    """Where a client points, without credentials."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {}) or {}
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    if "host" in kwargs:
        return f"{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    return type(client).__name__


class RedisRuntimeStore(RuntimeStore):
    """Over a ``redis.asyncio`` client (fakeredis's async client included).
    The client must not decode responses: stored values are binary."""

    def __init__(self, client: Any, namespace: str = "meerkat", *, close_client: bool = False,
                 where: str | None = None, **options: Any) -> None:
        """``client``: a ``redis.asyncio.Redis`` (also from a Sentinel's
        ``master_for``), a ``redis.asyncio.RedisCluster``, or fakeredis's
        async client. ``options``: the ``StoreOptions`` and ``RedisOptions``
        fields (``options`` module). ``where``: how errors and logs name the
        server (a redacted URL); by default its address. What the user may
        not read for the guard (CONFIG refused on managed services) is logged
        and let through."""
        pool = getattr(client, "connection_pool", None)
        encoder = getattr(client, "encoder", None)
        if getattr(pool, "connection_kwargs", {}).get("decode_responses") or getattr(encoder, "decode_responses", False):
            raise ValueError(
                "RedisRuntimeStore needs a client created with decode_responses=False: "
                "stored values are binary msgpack"
            )
        store_options, redis_options, unknown = split(options)
        if unknown:
            raise TypeError(f"RedisRuntimeStore got unknown options: {', '.join(sorted(unknown))}")
        self.options = StoreOptions(**store_options)
        self.redis_options = RedisOptions(**redis_options)
        self._keys = KeyLayout(namespace)
        self._client = client
        self._route = ClusterRoute(client) if isinstance(client, RedisCluster) else None
        self._scripts = Scripts(client)
        self._close_client = close_client
        self._where = where or _describe(client)
        self._bases = snapshot_delta.Bases(self.redis_options.delta_cache_bytes)
        self._sequences = _LastSequences()
        #: Snapshots written as a delta ("sent"), whole ("whole"), or whole
        #: after a delta met another writer's snapshot ("stale").
        self.snapshot_deltas: collections.Counter[str] = collections.Counter()
        #: Refused commands retried so far, by what refused them (``failures.refusal``).
        self.refusals_retried: collections.Counter[str] = collections.Counter()

    @classmethod
    def from_url(cls, url: str, namespace: str = "meerkat", **options: Any) -> "RedisRuntimeStore":
        """Open a client for ``url`` (redis://, rediss://, unix://) that this
        store owns and closes in ``aclose``. ``options``: the store's options
        (``options`` module); the rest go to the client. Unless given, the
        client gets 5 s socket timeouts (no call hangs) and a pool of at most
        64 connections that callers wait up to 10 s for (``max_connections``,
        ``pool_timeout``) instead of failing under heavy concurrency."""
        store_options, redis_options, client_options = split(options)
        client_options["decode_responses"] = False
        client_options.setdefault("socket_timeout", 5.0)
        client_options.setdefault("socket_connect_timeout", 5.0)
        client_options.setdefault("max_connections", 64)
        # redis-py knows the pool's wait as ?timeout=; ours is ?pool_timeout=.
        url, in_url = pop_store_options(url, {"pool_timeout": float})
        client_options["timeout"] = client_options.pop("pool_timeout", in_url.get("pool_timeout", 10.0))
        client = client_from_url(url, client_options)
        return cls(client, namespace, close_client=True, where=redact(url), **store_options, **redis_options)

    @property
    def namespace(self) -> str:
        return self._keys.namespace

    def __repr__(self) -> str:
        return f"RedisRuntimeStore({self._where!r}, namespace={self.namespace!r})"

    async def _close(self) -> None:
        if self._close_client:
            await self._client.aclose()

    # -- running commands, with errors mapped --

    async def _retrying_refusals(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """``await attempt()``, again while the server refused it without
        running it (``failures.refused``), for up to ``refusal_window``
        seconds from the first refusal; the last refusal is raised after
        that. The window starts at the refusal, not at the call, so a slow
        first attempt (a pool wait, first use, a loaded machine) still gets
        its retries."""
        loop = asyncio.get_running_loop()
        deadline, delay = None, 0.01
        while True:
            try:
                if not self._scripts.loaded:
                    await self._first_use()
                return await attempt()
            except Exception as exc:
                kind = failures.refusal(exc)
                if kind is None:
                    raise
                now = loop.time()
                if deadline is None:
                    deadline = now + self.redis_options.refusal_window
                if now + delay > deadline:
                    raise
                self.refusals_retried[kind] += 1
                note_refusal_retry()
                log.debug("redis-store: %s: retrying a refused command: %r", self._where, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)

    async def _first_use(self) -> None:
        """Check the server (``guard``), then load the scripts."""
        guard = self.redis_options.guard
        if guard != "off":
            unsafe = [f for f in await server_findings(self._client) if f.level != "ok"]
            for finding in unsafe:
                said = (self._where, finding.topic, finding.found)
                if said not in _WARNED:  # once per server per process, not once per store or worker
                    _WARNED.add(said)
                    log.warning("redis-store: %s: %s: %s. %s", self._where, finding.topic, finding.found, finding.advice)
            failed = [f for f in unsafe if f.level == "fail" and f.topic != "connection"]
            if failed and guard == "refuse":
                raise UnsafeServer(
                    "; ".join(f"{f.topic}: {f.found} ({f.advice})" for f in failed)
                    + ". Fix the server, or open the store with guard='warn' to accept the risk"
                )
        await self._scripts.preload()

    async def check_server(self) -> list:
        """The server checks of ``guard`` (version, persistence, eviction) as
        ``server_checks.Finding`` values, for a health check."""
        return await server_findings(self._client)

    async def _write(self, operation: str, script: Any, keys: list, args: list, rid: str = "") -> Any:
        """Run a write script, mapping whatever the client raises (the one
        place where write errors become ``WriteFailed``)."""
        try:
            return await self._retrying_refusals(lambda: self._run_script(operation, script, keys, args))
        except RuntimeStoreError:
            raise
        except Exception as exc:
            raise self._write_error(operation, exc, rid) from exc

    async def _run_script(self, operation: str, script: Any, keys: list, args: list) -> Any:
        wait = self.redis_options.wait
        if self._route is not None:
            result, acknowledged = await self._route.run(script, keys, args, wait)
        elif wait:
            async with self._client.pipeline(transaction=False) as pipe:  # its connection goes back, whatever happens
                await script(keys=keys, args=args, client=pipe)  # queues EVALSHA on the pipeline
                pipe.execute_command("WAIT", *wait)  # WAIT counts this connection's writes
                result, acknowledged = await pipe.execute(raise_on_error=False)
            if isinstance(result, Exception):
                raise result
        else:
            return await script(keys=keys, args=args, client=self._client)
        if wait and (not isinstance(acknowledged, int) or acknowledged < wait[0]):  # an error reply, or too few
            raise WriteFailed(
                f"{operation} on {self._where}: applied on the primary, but only {acknowledged} of "
                f"{wait[0]} replicas acknowledged it within {wait[1]} ms; a failover now could lose it"
            )
        return result

    def _write_error(self, operation: str, exc: Exception, rid: str) -> RuntimeStoreError:
        name = f"{operation} on {self._where}: {type(exc).__name__}: {exc}"
        if failures.refused(exc):
            return WriteFailed(
                f"{name}. The server kept refusing it for {self.redis_options.refusal_window:g} s "
                "(refusal_window); nothing was written"
            )
        if isinstance(exc, ResponseError):
            return self._script_error(operation, exc, rid)
        if failures.nothing_sent(exc):
            return WriteFailed(f"{name}; nothing was written")
        # A connection lost or timed out after the send, or anything else the
        # client raised mid-call; even "could not connect" may follow a retry
        # of a command that already ran (the client retries dropped connections).
        return WriteFailed(
            f"{name}. The outcome is unknown: the script may have run before the failure; "
            "retry with the same commit_id, or load the state to check"
        )

    def _script_error(self, operation: str, exc: ResponseError, rid: str) -> RuntimeStoreError:
        own = script_error(operation, self._where, rid, str(exc))
        if own is not None:
            return own
        code = str(exc).partition(" ")[0]
        # Redis refuses a script's first write when over maxmemory, and lets a
        # script that has written finish: an OOM never splits a commit.
        if isinstance(exc, OutOfMemoryError) or "command not allowed when used memory" in str(exc):
            return WriteFailed(
                f"{operation} on {self._where}: Redis is out of memory (maxmemory reached under "
                f"maxmemory-policy noeviction); nothing was written. Free memory or raise maxmemory. ({exc})"
            )
        if code == "NOPERM" or isinstance(exc, NoPermissionError):
            return WriteFailed(f"{operation} on {self._where}: the Redis user lacks a permission the store needs "
                               f"(see the README's ACL rule): {exc}")
        return WriteFailed(f"{operation} on {self._where}: {exc}")

    async def _read(self, operation: str, command: Callable[[], Awaitable[Any]]) -> Any:
        """``await command()``, with errors mapped (a callable, so that nothing
        is left unawaited when preloading the scripts fails)."""
        try:
            return await self._retrying_refusals(command)
        except RuntimeStoreError:
            raise
        except Exception as exc:
            raise ReadFailed(f"{operation} on {self._where}: {type(exc).__name__}: {exc}") from exc

    # -- primitives --

    def _commit_args(self, fence: str, commit: CommitTag | None) -> list:
        if commit is None:
            return [fence, "", "", self.commit_id_ttl_ms]
        return [fence, commit.commit_id, commit.fingerprint, self.commit_id_ttl_ms]

    async def _commit_boundary(
        self,
        rid: str,
        run_id: str,
        snapshot: SnapshotEnvelope,
        receipt_prefix: bytes,
        inputs: EncodedInputs,
        fence: str,
        commit: CommitTag | None,
    ) -> int:
        k = self._keys.runtime(rid)
        expected = self._sequences.expected(rid, run_id)
        stamp = seq_suffix(expected)
        receipt, flat = receipt_prefix + stamp, _flat(inputs, stamp)

        def write(value: bytes, tag: str, spec: str, head: bytes) -> Awaitable[Any]:
            return self._write(
                "commit_session_boundary",
                self._scripts.commit_boundary,
                [k.snapshot, k.receipts, k.run_seqs, k.inputs, k.input_order, k.meta, k.lease, k.commits, k.commit_log, k.fence, k.idempotency],
                [run_id, value, receipt, *self._commit_args(fence, commit), tag, spec, head, expected, *flat],
            )

        sequence, replayed = await self._with_snapshot(rid, snapshot, write, lambda seq: (f"{run_id}:{seq}", "-"))
        if not replayed:
            self._sequences.minted(rid, run_id, int(sequence))
        return sequence

    async def _apply(
        self,
        rid: str,
        run_id: str,
        sequence: int,
        snapshot: SnapshotEnvelope | None,
        receipt: bytes,
        inputs: EncodedInputs,
        fence: str,
        commit: CommitTag | None,
    ) -> None:
        k = self._keys.runtime(rid)

        def write(value: bytes, tag: str, spec: str, head: bytes) -> Awaitable[Any]:
            return self._write(
                "atomic_apply",
                self._scripts.apply_receipt,
                [k.snapshot, k.receipts, k.run_seqs, k.inputs, k.input_order, k.meta, k.lease, k.commits, k.commit_log, k.fence, k.idempotency],
                [run_id, sequence, receipt, value, *self._commit_args(fence, commit), tag, spec, head, *_flat(inputs)],
            )

        await self._with_snapshot(rid, snapshot, write, lambda seq: ("-", f"{run_id}:{seq}"))

    async def _with_snapshot(
        self,
        rid: str,
        envelope: SnapshotEnvelope | None,
        write: _SnapshotWrite,
        receipt_fields: Callable[[int], tuple[str, str]],
    ) -> Any:
        """``await write(value, tag, spec, head)`` for a script that stores
        ``envelope`` (None: leaves the snapshot alone): as a delta over this
        store's last snapshot of the runtime where that pays, else whole
        (``snapshot_delta``). Replies [sequence, replayed];
        ``receipt_fields(sequence)``: meta's (snapshot_receipt,
        snapshot_applied) after the write."""
        if envelope is None:
            reply = await write(b"", "", "", b"")
            if reply[1]:
                note_replay()
            return reply
        tag, base = snapshot_delta.new_tag(), self._bases.get(rid)
        delta = snapshot_delta.plan(base, envelope)
        envelope.shared = None  # spent: the base kept below must not keep the older snapshot alive
        self._bases.forget(rid)  # until the reply says what is stored
        reply, kind = None, "whole"
        if delta is not None:
            try:
                reply, kind = await write(delta.tail, tag, delta.spec, delta.head), "sent"
            except snapshot_delta.StaleBase:
                kind = "stale"  # another writer came in between: send it whole
        if reply is None:
            reply = await write(envelope.encoded(), tag, "", b"")
        if reply[1]:  # a replay: nothing was written, what is stored is as it was
            note_replay()
            if base is not None:
                self._bases.put(rid, base)
        else:
            self.snapshot_deltas[kind] += 1
            self._bases.put(rid, snapshot_delta.Base(tag, envelope, *receipt_fields(int(reply[0]))))
        return reply

    async def _lifecycle_commit(self, rid: str, state: bytes | None, inputs: EncodedInputs, fence: str) -> None:
        k = self._keys.runtime(rid)
        await self._write(
            "lifecycle_commit",
            self._scripts.lifecycle_commit,
            [k.state, k.inputs, k.input_order, k.meta, k.lease, k.fence, k.idempotency],
            [b"" if state is None else state, fence, *_flat(inputs)],
        )

    async def _commit_snapshot(self, rid: str, snapshot: SnapshotEnvelope, fence: str, commit: CommitTag | None) -> None:
        k = self._keys.runtime(rid)

        def write(value: bytes, tag: str, spec: str, head: bytes) -> Awaitable[Any]:
            return self._write(
                "commit_session_snapshot",
                self._scripts.snapshot_commit,
                [k.snapshot, k.meta, k.lease, k.commits, k.commit_log, k.fence],
                [value, *self._commit_args(fence, commit), tag, spec, head],
            )

        await self._with_snapshot(rid, snapshot, write, lambda _: ("-", "-"))

    async def _build_index(self, rid: str, entries: EncodedInputs) -> bool | None:
        k = self._keys.runtime(rid)
        built = int(await self._write(
            "ensure_index", self._scripts.build_index, [k.inputs, k.meta, k.idempotency], _flat(entries)
        ))
        return None if built < 0 else bool(built)

    async def _lease_acquire(self, rid: str, owner: str, ttl_ms: int, steal: bool) -> tuple[int, int]:
        k = self._keys.runtime(rid)
        token, granted = await self._write(
            "acquire_lease", self._scripts.lease_acquire, [k.lease, k.meta, k.fence], [owner, ttl_ms, "1" if steal else "0"], rid
        )
        return int(token), int(granted)

    async def _lease_renew(self, rid: str, token: str, ttl_ms: int) -> None:
        k = self._keys.runtime(rid)
        await self._write("renew_lease", self._scripts.lease_renew, [k.lease], [token, ttl_ms])

    async def _lease_release(self, rid: str, token: str) -> bool:
        k = self._keys.runtime(rid)
        return bool(await self._write("release_lease", self._scripts.lease_release, [k.lease], [token]))

    async def _lease_revoke(self, rid: str) -> int:
        k = self._keys.runtime(rid)
        return int(await self._write("revoke_lease", self._scripts.lease_revoke, [k.lease, k.meta, k.fence], []))

    async def _delete_runtime(self, rid: str, fence: str) -> bool:
        k = self._keys.runtime(rid)
        others = [key for key in k if key not in (k.fence, k.lease)]
        deleted = await self._write(
            "delete_runtime", self._scripts.delete_runtime, [k.fence, k.lease, *others], [fence]
        )
        return bool(deleted)

    async def _prune_commit_ids(self, rid: str, batch: int) -> int:
        k = self._keys.runtime(rid)
        return int(await self._write(
            "prune_runtime", self._scripts.prune_commit_ids, [k.commits, k.commit_log], [self.commit_id_ttl_ms, batch]
        ))

    async def _drop_receipts(self, rid: str, fields: list[str]) -> int:
        k = self._keys.runtime(rid)
        return int(await self._write("prune_runtime", self._scripts.drop_receipts, [k.receipts, k.meta], fields))

    async def _lease_read(self, rid: str) -> tuple[str, int, int] | None:
        k = self._keys.runtime(rid)
        owner, token, remaining = await self._read(
            "current_lease", lambda: self._scripts.lease_read(keys=[k.lease], args=[], client=self._client)
        )
        if not owner or not token or remaining < 0:
            return None
        return owner.decode(), int(token), int(remaining)

    async def _load_input_states(self, rid: str) -> list[tuple[str, bytes | None]]:
        k = self._keys.runtime(rid)
        ids, values = await self._read(
            "load_input_states",
            lambda: self._scripts.load_inputs(keys=[k.inputs, k.input_order], args=[], client=self._client),
        )
        return [(input_id.decode(), value) for input_id, value in zip(ids, values)]

    async def _load_input_state(self, rid: str, input_id: str) -> bytes | None:
        return await self._read(
            "load_input_state", lambda: self._client.hget(self._keys.runtime(rid).inputs, input_id)
        )

    async def _load_inputs_by_ids(self, rid: str, input_ids: list[str]) -> list[bytes | None]:
        return await self._read(
            "load_input_states_by_ids", lambda: self._client.hmget(self._keys.runtime(rid).inputs, input_ids)
        )

    async def _load_by_idempotency_key(self, rid: str, key: str) -> tuple[str | None, bytes | None] | None:
        k = self._keys.runtime(rid)
        reply = await self._read(
            "load_input_state_by_idempotency_key",
            lambda: self._scripts.input_by_key(keys=[k.idempotency, k.inputs, k.meta], args=[key], client=self._client),
        )
        if not reply[0]:
            return None
        _, input_id, value = reply
        return (input_id.decode() if input_id else None), (value or None)

    async def _load_receipt(self, rid: str, run_id: str, sequence: int) -> bytes | None:
        return await self._read(
            "load_boundary_receipt",
            lambda: self._client.hget(self._keys.runtime(rid).receipts, receipt_field(run_id, sequence)),
        )

    async def _load_snapshot(self, rid: str) -> bytes | None:
        return await self._read("load_session_snapshot", lambda: self._client.get(self._keys.runtime(rid).snapshot))

    async def _load_runtime_state(self, rid: str) -> bytes | None:
        return await self._read("load_runtime_state", lambda: self._client.get(self._keys.runtime(rid).state))

    async def _list_runtimes(self, cursor: int, count: int) -> tuple[int, list[str]]:
        match = self._keys.meta_pattern()
        if self._route is None:
            next_cursor, keys = await self._read(
                "list_runtimes", lambda: self._client.scan(cursor=cursor, match=match, count=count)
            )
        else:  # SCAN each primary in turn; the cursor carries (node cursor, node index)
            node_cursor, index = divmod(cursor, _MAX_NODES)
            primaries: list = []

            async def scan_one_primary() -> Any:
                await self._client.initialize()  # a no-op once the slot map is loaded
                primaries[:] = self._primaries_in_slot_order()
                if index >= len(primaries):
                    return None
                return await self._client.scan(cursor=node_cursor, match=match, count=count, target_nodes=primaries[index])

            reply = await self._read("list_runtimes", scan_one_primary)
            if reply is None:
                return 0, []
            node_next, keys = reply  # redis-py gives ({node name: cursor}, keys)
            node_next = int(next(iter(node_next.values())) if isinstance(node_next, dict) else node_next)
            if node_next:
                next_cursor = node_next * _MAX_NODES + index
            else:
                next_cursor = index + 1 if index + 1 < len(primaries) else 0
        runtimes = dict.fromkeys(self._keys.runtime_of_meta(key.decode()) for key in keys)
        return int(next_cursor), list(runtimes)

    def _primaries_in_slot_order(self) -> list:
        """Primaries ordered by the lowest slot each serves: a failover keeps
        a shard's place (its promoted replica serves the same slots), so a
        list_runtimes cursor stays valid across it."""
        lowest: dict[str, int] = {}
        for slot, nodes in self._client.nodes_manager.slots_cache.items():
            if nodes:
                lowest[nodes[0].name] = min(slot, lowest.get(nodes[0].name, slot))
        return sorted(self._client.get_primaries(), key=lambda node: (lowest.get(node.name, 1 << 14), node.name))

    async def _dump_runtime(self, rid: str) -> RawRuntime:
        k = self._keys.runtime(rid)
        state, snapshot, order, inputs, receipts, run_seqs, meta, index = await self._read(
            "dump_runtime",
            lambda: self._scripts.dump_runtime(
                keys=[k.state, k.snapshot, k.input_order, k.inputs, k.receipts, k.run_seqs, k.meta, k.idempotency],
                args=[],
                client=self._client,
            ),
        )

        def pairs(flat: list) -> dict[str, bytes]:
            return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}

        return RawRuntime(
            state=state or None,
            snapshot=snapshot or None,
            input_order=[i.decode() for i in order],
            inputs=pairs(inputs),
            receipts=pairs(receipts),
            run_seqs={run: value.decode() for run, value in pairs(run_seqs).items()},
            # snapshot_tag is the Redis backend's own bookkeeping (snapshot_delta).
            meta={key: value.decode() for key, value in pairs(meta).items() if key != "snapshot_tag"},
            index={key: value.decode() for key, value in pairs(index).items()},
        )

    async def _memory_usage(self, rid: str) -> int:
        """MEMORY USAGE of every key of the runtime; where the server refuses
        it (fakeredis, a user without ``+memory|usage``), the values' lengths."""
        k = self._keys.runtime(rid)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in k:
                    pipe.memory_usage(key)
                sizes = await self._read("memory_usage", pipe.execute)
        except ReadFailed as exc:
            if not isinstance(exc.__cause__, ResponseError):
                raise
            return await super()._memory_usage(rid)
        return sum(size or 0 for size in sizes)

    async def _fencing_epoch(self, rid: str) -> int:
        epoch = await self._read("fencing_epoch", lambda: self._client.get(self._keys.runtime(rid).fence))
        return int(epoch or 0)

    async def _restore_runtime(self, rid: str, raw: RawRuntime, epoch: int, replace: bool) -> bool:
        k = self._keys.runtime(rid)
        named = next(((name, raw.meta[name]) for name in SNAPSHOT_RECEIPT_FIELDS if name in raw.meta), ("", ""))
        pairs = [
            part
            for items in ([(i, raw.inputs[i]) for i in raw.input_order], raw.receipts.items(), raw.run_seqs.items(), raw.index.items())
            for pair in items
            for part in pair
        ]
        written = await self._write(
            "restore_runtime",
            self._scripts.restore_runtime,
            [k.state, k.snapshot, k.inputs, k.input_order, k.receipts, k.run_seqs, k.meta, k.commits, k.commit_log,
             k.lease, k.fence, k.idempotency],
            ["1" if replace else "0", epoch, raw.state or b"", raw.snapshot or b"", *named,
             len(raw.inputs), len(raw.receipts), len(raw.run_seqs), len(raw.index), *pairs],
            rid,
        )
        return bool(written)
