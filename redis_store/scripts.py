"""The Lua scripts: read once from ``lua/``, registered once per client.

Installed, the scripts are package data at ``redis_store/lua`` (the wheel
maps the top-level ``lua/`` there); in a source checkout they are read from
``lua/`` beside the package. ``lib.lua`` is prepended to every script so the
helpers exist once, in Lua, rather than copied into each file.

``register_script`` gives redis-py ``Script`` objects: each call is an
EVALSHA, and a NOSCRIPT reply (after SCRIPT FLUSH, a restart or a failover)
loads the script and retries, transparently.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from pathlib import Path

from redis.exceptions import ResponseError

#: Every script the store runs, by name (file ``lua/<name>.lua``).
SCRIPT_NAMES = (
    "commit_boundary",
    "apply_receipt",
    "lifecycle_commit",
    "load_inputs",
    "dump_runtime",
    "lease_acquire",
    "lease_renew",
    "lease_release",
    "lease_revoke",
    "lease_read",
    "delete_runtime",
    "prune_commit_ids",
    "drop_receipts",
    "snapshot_commit",
    "input_by_key",
    "build_index",
)
_LIB = "lib"


def _script_dir():
    packaged = resources.files("redis_store").joinpath("lua")
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "lua"
    if checkout.is_dir():
        return checkout
    raise RuntimeError(
        "redis_store's Lua scripts are missing: neither redis_store/lua (installed) "
        "nor lua/ (source checkout) exists; reinstall the package"
    )


@functools.cache
def source(name: str) -> str:
    """Full text of a script as sent to Redis: lib.lua, then the script."""
    if name not in SCRIPT_NAMES:
        raise KeyError(f"unknown script {name!r}; known: {', '.join(SCRIPT_NAMES)}")
    folder = _script_dir()
    lib = folder.joinpath(f"{_LIB}.lua").read_text(encoding="utf-8")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return f"{lib}\n{body}"


def sha1(name: str) -> str:
    return hashlib.sha1(source(name).encode("utf-8")).hexdigest()


class Scripts:
    """The store's scripts registered on one client (``script.<name>``)."""

    def __init__(self, client) -> None:
        self._client = client
        self.loaded = False
        self.commit_boundary = client.register_script(source("commit_boundary"))
        self.apply_receipt = client.register_script(source("apply_receipt"))
        self.lifecycle_commit = client.register_script(source("lifecycle_commit"))
        self.load_inputs = client.register_script(source("load_inputs"))
        self.dump_runtime = client.register_script(source("dump_runtime"))
        self.lease_acquire = client.register_script(source("lease_acquire"))
        self.lease_renew = client.register_script(source("lease_renew"))
        self.lease_release = client.register_script(source("lease_release"))
        self.lease_revoke = client.register_script(source("lease_revoke"))
        self.lease_read = client.register_script(source("lease_read"))
        self.delete_runtime = client.register_script(source("delete_runtime"))
        self.prune_commit_ids = client.register_script(source("prune_commit_ids"))
        self.drop_receipts = client.register_script(source("drop_receipts"))
        self.snapshot_commit = client.register_script(source("snapshot_commit"))
        self.input_by_key = client.register_script(source("input_by_key"))
        self.build_index = client.register_script(source("build_index"))

    async def preload(self) -> None:
        """SCRIPT LOAD every script once (on Redis Cluster: on every primary),
        so that a burst of first calls does not all hit NOSCRIPT at once."""
        try:
            for name in SCRIPT_NAMES:
                await self._client.script_load(source(name))
        except ResponseError:
            pass  # e.g. no SCRIPT LOAD right: each call loads on NOSCRIPT instead
        self.loaded = True
