"""Every Redis key the store uses, in one place.

Layout (``ns`` is the namespace, default ``meerkat``; ``{tag}`` is the
runtime's hash tag)::

    ns:rt:{tag}:state        STRING  runtime state            [v, "idle"]
    ns:rt:{tag}:snapshot     STRING  latest session snapshot  [v, <bytes>]
    ns:rt:{tag}:inputs       HASH    input_id -> input state  [v, {...}, last_boundary_sequence]
    ns:rt:{tag}:input_order  LIST    input ids in the order they were first stored
    ns:rt:{tag}:receipts     HASH    "<run_id>:<sequence>" -> receipt [v, {...}, sequence]
    ns:rt:{tag}:run_seqs     HASH    run_id -> largest receipt sequence of that run
    ns:rt:{tag}:lease        HASH    owner, token of the live lease; expires (PEXPIRE)
    ns:rt:{tag}:commits      HASH    commit_id -> "<fingerprint> <sequence>"; expires
    ns:rt:{tag}:commit_log   ZSET    commit_id by server time (ms); prunes commits
    ns:rt:{tag}:fence        STRING  fencing epoch = newest lease token; never
                                     deleted (delete_runtime keeps it), so tokens never repeat
    ns:rt:{tag}:meta         HASH    layout -> key layout version (2; 1: stored
                                     before the idempotency index existed);
                                     snapshot_receipt -> "<run_id>:<sequence>" of the
                                     receipt minted with the stored snapshot, or
                                     snapshot_applied -> that of the receipt
                                     atomic_apply stored it with, or
                                     snapshot_without_receipt -> "1" when
                                     commit_session_snapshot stored it;
                                     snapshot_tag -> random tag of the stored
                                     snapshot, the base of the next delta
                                     (snapshot_delta; left out of dump_runtime)
    ns:rt:{tag}:idempotency  HASH    the idempotency-key index: "key:<key>" -> input id,
                                     and "input:<input id>" -> its key

Every write that stores state touches ``meta``, so scanning
``ns:rt:{*}:meta`` lists runtimes.

Values are msgpack envelopes (see ``codec``). ``run_seqs`` makes minting the
next sequence O(1) however many receipts a run has.

The ``idempotency`` index is written by the same scripts that write input
states, in the same atomic step (they get each input's key from Python, as
Lua cannot read the msgpack values), so it is never stale; a lookup by key
is one HGET. Its two directions let a script clear the key an input held
before. A runtime stored with layout 1 has inputs but no index: scripts
that write inputs refuse it (INDEX_MISSING, before any write) until
``RuntimeStore.ensure_index`` built it (``build_index.lua``).

The hash tag is the runtime id with ``%``, ``{`` and ``}`` percent-encoded.
The encoding is injective and brace-free, so every key of one runtime hashes
to the same Redis Cluster slot, and no runtime id can produce another
runtime's keys. Namespaces may not contain braces for the same reason.

Every key of a runtime shares its tag, so a script can check the lease and
the commit ids before it writes, in one slot.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import unquote

from .ids import LogicalRuntimeId

#: Key layout version; lua/lib.lua has the same number (LAYOUT_VERSION).
LAYOUT_VERSION = 2

_TAG_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """``text`` with the glob characters of SCAN MATCH and ACL key patterns escaped."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def runtime_tag(runtime_id: str) -> str:
    """The runtime id, made safe to sit between ``{`` and ``}``."""
    return runtime_id.translate(_TAG_ESCAPES)


class RuntimeKeys(NamedTuple):
    state: str
    snapshot: str
    inputs: str
    input_order: str
    receipts: str
    run_seqs: str
    meta: str
    lease: str
    commits: str
    commit_log: str
    fence: str
    idempotency: str


def receipt_field(run_id: str, sequence: int) -> str:
    """Field of a receipt in the ``receipts`` hash. The Lua scripts build the
    same text with ``run_id .. ':' .. string.format('%.0f', seq)``."""
    return f"{run_id}:{sequence}"


def index_key_field(key: str) -> str:
    """Field of the ``idempotency`` hash naming the input that holds ``key``
    (lib.lua: ``'key:' .. key``)."""
    return f"key:{key}"


def index_input_field(input_id: str) -> str:
    """Field of the ``idempotency`` hash holding the key of an input
    (lib.lua: ``'input:' .. input_id``)."""
    return f"input:{input_id}"


def check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, got {type(namespace).__name__}")
    if not namespace:
        raise ValueError("namespace must not be empty")
    if "{" in namespace or "}" in namespace:
        raise ValueError(
            f"namespace {namespace!r} must not contain '{{' or '}}': "
            "braces would change the Redis Cluster hash tag of every key"
        )
    return namespace


class KeyLayout:
    """Key names of one namespace."""

    def __init__(self, namespace: str = "meerkat") -> None:
        self.namespace = check_namespace(namespace)
        self._runtime_prefix = f"{namespace}:rt:"
        # Every call of a store builds a runtime's 12 names: a worker's few
        # runtimes get them from here (bounded, per layout).
        self._runtime_keys = functools.lru_cache(maxsize=4096)(self._make_runtime_keys)

    def runtime(self, runtime_id: str | LogicalRuntimeId) -> RuntimeKeys:
        return self._runtime_keys(str(runtime_id))

    def _make_runtime_keys(self, runtime_id: str) -> RuntimeKeys:
        base = f"{self._runtime_prefix}{{{runtime_tag(runtime_id)}}}:"
        return RuntimeKeys(
            state=base + "state",
            snapshot=base + "snapshot",
            inputs=base + "inputs",
            input_order=base + "input_order",
            receipts=base + "receipts",
            run_seqs=base + "run_seqs",
            meta=base + "meta",
            lease=base + "lease",
            commits=base + "commits",
            commit_log=base + "commit_log",
            fence=base + "fence",
            idempotency=base + "idempotency",
        )

    def meta_pattern(self) -> str:
        """SCAN MATCH pattern of every runtime's meta key (glob characters in
        the namespace escaped)."""
        return f"{glob_escape(self._runtime_prefix)}{{*}}:meta"

    def runtime_of_meta(self, key: str) -> str:
        """The runtime id a meta key belongs to."""
        tag = key[len(self._runtime_prefix) + 1 : -len("}:meta")]
        return unquote(tag)
