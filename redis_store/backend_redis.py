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
import logging
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    RedisClusterException,
    NoScriptError,
    OutOfMemoryError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from .contract import CommitTag, EncodedInputs, RawRuntime, RuntimeStore, StoreOptions, sequence_exhausted
from .doctor import server_findings
from .errors import (
    CommitIdReused,
    FencedOut,
    InternalError,
    LeaseHeld,
    ReadFailed,
    ReceiptConflict,
    UnsafeServer,
    WriteFailed,
)
from .keys import KeyLayout, receipt_field
from .scripts import Scripts
from .urls import has_credentials, pop_store_options, redact


log = logging.getLogger("redis_store")

#: How long a refused command (TRYAGAIN, a demoted primary) is retried.
REFUSAL_RETRY_SECONDS = 10.0
#: redis-py's message when a Sentinel-managed primary answered READONLY.
_DEMOTED = "previous master is now a slave"

#: Cluster cursors of list_runtimes encode the node index below this.
_MAX_NODES = 1024


def _flat(inputs: EncodedInputs) -> list:
    return [part for pair in inputs for part in pair]


try:
    from redis.maint_notifications import MaintNotificationsConfig

    _NO_MAINT_NOTIFICATIONS = MaintNotificationsConfig(enabled=False)
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

    def __init__(
        self,
        client: Any,
        namespace: str = "meerkat",
        *,
        close_client: bool = False,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        guard: str = "warn",
        **options: Any,
    ) -> None:
        """``client``: a ``redis.asyncio.Redis`` (also from a Sentinel's
        ``master_for``), a ``redis.asyncio.RedisCluster``, or fakeredis's
        async client. ``wait_replicas=N`` makes every write wait (WAIT, on the
        write's own connection) until N replicas acknowledged it, for at most
        ``wait_timeout`` seconds, and fail with ``WriteFailed`` otherwise.
        ``guard``: on first use, check the server's version, persistence and
        ``maxmemory-policy``; "warn" logs what is unsafe, "refuse" raises
        ``UnsafeServer`` instead, "off" skips it. What the user may not read
        (CONFIG refused on managed services) is logged and let through.
        ``options``: the ``StoreOptions`` fields (commit_id_ttl, size limits)."""
        pool = getattr(client, "connection_pool", None)
        encoder = getattr(client, "encoder", None)
        if getattr(pool, "connection_kwargs", {}).get("decode_responses") or getattr(encoder, "decode_responses", False):
            raise ValueError(
                "RedisRuntimeStore needs a client created with decode_responses=False: "
                "stored values are binary msgpack"
            )
        self._cluster = isinstance(client, RedisCluster)
        if not isinstance(wait_replicas, int) or isinstance(wait_replicas, bool) or wait_replicas < 0:
            raise ValueError(f"wait_replicas must be a non-negative int, got {wait_replicas!r}")
        if wait_replicas and self._cluster:
            raise ValueError("wait_replicas needs the write's own connection; it is not supported on Redis Cluster")
        if not wait_timeout > 0:
            raise ValueError(f"wait_timeout must be positive, got {wait_timeout!r}")
        self._wait = (wait_replicas, max(1, int(wait_timeout * 1000)))
        if guard not in ("warn", "refuse", "off"):
            raise ValueError(f"guard must be 'warn', 'refuse' or 'off', got {guard!r}")
        self._guard = guard
        self._keys = KeyLayout(namespace)
        self.options = StoreOptions(**options)
        self._client = client
        self._scripts = Scripts(client)
        self._close_client = close_client
        self._where = _describe(client)

    @classmethod
    def from_url(
        cls,
        url: str,
        namespace: str = "meerkat",
        *,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        guard: str = "warn",
        commit_id_ttl: float = StoreOptions.commit_id_ttl,
        max_snapshot_bytes: int = StoreOptions.max_snapshot_bytes,
        max_inputs_per_call: int = StoreOptions.max_inputs_per_call,
        **client_options: Any,
    ) -> "RedisRuntimeStore":
        """Open a client for ``url`` (redis://, rediss://, unix://) that this
        store owns and closes in ``aclose``. Unless given, the client gets
        5 s socket timeouts (no call hangs) and a pool of at most 64
        connections that callers wait up to 10 s for (``max_connections``,
        ``pool_timeout``) instead of failing under heavy concurrency."""
        client_options["decode_responses"] = False
        client_options.setdefault("socket_timeout", 5.0)
        client_options.setdefault("socket_connect_timeout", 5.0)
        client_options.setdefault("max_connections", 64)
        # redis-py knows the pool's wait as ?timeout=; ours is ?pool_timeout=.
        url, in_url = pop_store_options(url, {"pool_timeout": float})
        client_options["timeout"] = client_options.pop("pool_timeout", in_url.get("pool_timeout", 10.0))
        client = client_from_url(url, client_options)
        store = cls(
            client, namespace, close_client=True, wait_replicas=wait_replicas, wait_timeout=wait_timeout, guard=guard,
            commit_id_ttl=commit_id_ttl, max_snapshot_bytes=max_snapshot_bytes, max_inputs_per_call=max_inputs_per_call,
        )
        store._where = redact(url)
        return store

    @property
    def namespace(self) -> str:
        return self._keys.namespace

    def __repr__(self) -> str:
        return f"RedisRuntimeStore({self._where!r}, namespace={self.namespace!r})"

    async def _close(self) -> None:
        if self._close_client:
            await self._client.aclose()

    # -- running commands, with errors mapped --

    async def _retrying_refusals(self, attempt):
        """``await attempt()``, again while the server refused it without
        running it: TRYAGAIN (a cluster slot half-way through resharding),
        NOSCRIPT again right after reloading (SCRIPT FLUSH racing us), or a
        Sentinel primary that just became a replica (READONLY)."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + REFUSAL_RETRY_SECONDS, 0.01
        while True:
            try:
                if not self._scripts.loaded:
                    await self._first_use()
                return await attempt()
            except (TryAgainError, NoScriptError, RedisConnectionError) as exc:
                refused = isinstance(exc, (TryAgainError, NoScriptError)) or _DEMOTED in str(exc)
                if not refused or loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)

    async def _first_use(self) -> None:
        """Check the server (``guard``), then load the scripts."""
        if self._guard != "off":
            unsafe = [f for f in await server_findings(self._client) if f.level != "ok"]
            for finding in unsafe:
                log.warning("redis-store: %s: %s: %s. %s", self._where, finding.topic, finding.found, finding.advice)
            failed = [f for f in unsafe if f.level == "fail" and f.topic != "connection"]
            if failed and self._guard == "refuse":
                raise UnsafeServer(
                    "; ".join(f"{f.topic}: {f.found} ({f.advice})" for f in failed)
                    + f". Fix the server, or open the store with guard='warn' to accept the risk"
                )
        await self._scripts.preload()

    async def check_server(self) -> list:
        """The server checks of ``guard`` (version, persistence, eviction) as
        ``doctor.Finding`` values, for a health check."""
        return await server_findings(self._client)

    async def _write(self, operation: str, script, keys: list, args: list, rid: str = ""):
        try:
            if self._wait[0]:
                return await self._retrying_refusals(lambda: self._write_and_wait(operation, script, keys, args))
            return await self._retrying_refusals(lambda: script(keys=keys, args=args, client=self._client))
        except ResponseError as exc:
            raise self._script_error(operation, exc, rid) from exc
        except AuthenticationError as exc:  # refused at connect: nothing was sent
            raise WriteFailed(f"{operation} on {self._where}: AuthenticationError: {exc}; nothing was written") from exc
        except RedisConnectionError as exc:
            # Even "could not connect" may follow a retry of a command that
            # already ran (the client retries after a dropped connection).
            raise self._unknown_outcome(operation, exc) from exc
        except RedisTimeoutError as exc:
            raise self._unknown_outcome(operation, exc) from exc
        except (RedisError, RedisClusterException) as exc:
            raise WriteFailed(f"{operation} on {self._where}: {type(exc).__name__}: {exc}") from exc

    def _unknown_outcome(self, operation: str, exc: Exception) -> WriteFailed:
        return WriteFailed(
            f"{operation} on {self._where}: {type(exc).__name__}: {exc}. The outcome is "
            "unknown: the script may have run before the connection failed; retry with "
            "the same commit_id, or load the state to check"
        )

    async def _write_and_wait(self, operation: str, script, keys: list, args: list):
        """The script, then WAIT, pipelined on one connection: WAIT counts
        the replicas that acknowledged this connection's writes."""
        replicas, timeout_ms = self._wait
        async with self._client.pipeline(transaction=False) as pipe:  # its connection goes back, whatever happens
            await script(keys=keys, args=args, client=pipe)  # queues EVALSHA on the pipeline
            pipe.execute_command("WAIT", replicas, timeout_ms)
            result, acknowledged = await pipe.execute(raise_on_error=False)
        if isinstance(result, Exception):
            raise result
        if isinstance(acknowledged, Exception) or acknowledged < replicas:
            raise WriteFailed(
                f"{operation} on {self._where}: applied on the primary, but only {acknowledged} of "
                f"{replicas} replicas acknowledged it within {timeout_ms} ms; a failover now could lose it"
            )
        return result

    def _script_error(self, operation: str, exc: ResponseError, rid: str) -> Exception:
        code, _, detail = str(exc).partition(" ")
        if code == "FENCED_OUT":
            return FencedOut(f"{operation}: {detail}; another worker may own the runtime now")
        if code == "COMMIT_ID_REUSED":
            return CommitIdReused(f"{operation}: commit id {detail}")
        if code == "LEASE_HELD":
            remaining, _, holder = detail.partition(" ")
            return LeaseHeld(rid, holder, int(remaining))
        if code == "RECEIPT_CONFLICT":
            run_id, _, sequence = detail.rpartition(":")
            return ReceiptConflict(run_id, int(sequence))
        if code == "SEQUENCE_EXHAUSTED":
            return sequence_exhausted(detail.split()[1])
        if code == "BAD_ARGS":  # the Python side built a malformed call: a bug
            return InternalError(f"{operation}: script refused its input: {exc}")
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

    async def _read(self, operation: str, command):
        """``await command()``, with errors mapped (a callable, so that nothing
        is left unawaited when preloading the scripts fails)."""
        try:
            return await self._retrying_refusals(command)
        except (RedisError, RedisClusterException) as exc:
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
        snapshot: bytes,
        receipt_prefix: bytes,
        inputs: EncodedInputs,
        fence: str,
        commit: CommitTag | None,
    ) -> int:
        k = self._keys.runtime(rid)
        sequence, _replayed = await self._write(
            "commit_session_boundary",
            self._scripts.commit_boundary,
            [k.snapshot, k.receipts, k.run_seqs, k.inputs, k.input_order, k.meta, k.lease, k.commits, k.commit_log, k.fence],
            [run_id, snapshot, receipt_prefix, *self._commit_args(fence, commit), *_flat(inputs)],
        )
        return sequence

    async def _apply(
        self,
        rid: str,
        run_id: str,
        sequence: int,
        snapshot: bytes | None,
        receipt: bytes,
        inputs: EncodedInputs,
        fence: str,
        commit: CommitTag | None,
    ) -> None:
        k = self._keys.runtime(rid)
        await self._write(
            "atomic_apply",
            self._scripts.apply_receipt,
            [k.snapshot, k.receipts, k.run_seqs, k.inputs, k.input_order, k.meta, k.lease, k.commits, k.commit_log, k.fence],
            [run_id, sequence, receipt, b"" if snapshot is None else snapshot, *self._commit_args(fence, commit), *_flat(inputs)],
        )

    async def _lifecycle_commit(self, rid: str, state: bytes | None, inputs: EncodedInputs, fence: str) -> None:
        k = self._keys.runtime(rid)
        await self._write(
            "lifecycle_commit",
            self._scripts.lifecycle_commit,
            [k.state, k.inputs, k.input_order, k.meta, k.lease, k.fence],
            [b"" if state is None else state, fence, *_flat(inputs)],
        )

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
        if not self._cluster:
            next_cursor, keys = await self._read(
                "list_runtimes", lambda: self._client.scan(cursor=cursor, match=match, count=count)
            )
        else:  # SCAN each primary in turn; the cursor carries (node cursor, node index)
            primaries = sorted(self._client.get_primaries(), key=lambda node: node.name)
            node_cursor, index = divmod(cursor, _MAX_NODES)
            if index >= len(primaries):
                return 0, []
            reply = await self._read(
                "list_runtimes",
                lambda: self._client.scan(cursor=node_cursor, match=match, count=count, target_nodes=primaries[index]),
            )
            node_next, keys = reply  # redis-py gives ({node name: cursor}, keys)
            node_next = int(next(iter(node_next.values())) if isinstance(node_next, dict) else node_next)
            if node_next:
                next_cursor = node_next * _MAX_NODES + index
            else:
                next_cursor = index + 1 if index + 1 < len(primaries) else 0
        runtimes = dict.fromkeys(self._keys.runtime_of_meta(key.decode()) for key in keys)
        return int(next_cursor), list(runtimes)

    async def _dump_runtime(self, rid: str) -> RawRuntime:
        k = self._keys.runtime(rid)
        state, snapshot, order, inputs, receipts, run_seqs, meta = await self._read(
            "dump_runtime",
            lambda: self._scripts.dump_runtime(
                keys=[k.state, k.snapshot, k.input_order, k.inputs, k.receipts, k.run_seqs, k.meta], args=[], client=self._client
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
            meta={key: value.decode() for key, value in pairs(meta).items()},
        )

    async def memory_usage(self, runtime_id) -> int:
        """Bytes Redis uses for everything of a runtime (MEMORY USAGE)."""
        from .contract import runtime_key

        k = self._keys.runtime(runtime_key(runtime_id))
        async with self._client.pipeline(transaction=False) as pipe:
            for key in k:
                pipe.memory_usage(key)
            sizes = await self._read("memory_usage", pipe.execute)
        return sum(size or 0 for size in sizes)
