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
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from redis.exceptions import ResponseError

_LIB = "lib"


def _script_dir() -> Traversable:
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


def _names() -> tuple[str, ...]:
    return tuple(sorted(
        entry.name[: -len(".lua")] for entry in _script_dir().iterdir()
        if entry.name.endswith(".lua") and entry.name != f"{_LIB}.lua"
    ))


#: Every script the store runs, by name: each file ``lua/<name>.lua`` but
#: lib.lua. A new script is registered by adding its file.
SCRIPT_NAMES = _names()


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
    """The store's scripts registered on one client: ``scripts.<name>`` for
    each file ``lua/<name>.lua``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.loaded = False
        for name in SCRIPT_NAMES:
            setattr(self, name, client.register_script(source(name)))

    def __getattr__(self, name: str) -> Any:  # (to mypy, any script name is an attribute)
        # Only reached for a name no file provides (attributes set above are found first).
        raise AttributeError(f"no Lua script {name!r}: there is no lua/{name}.lua")

    async def preload(self) -> None:
        """SCRIPT LOAD every script once (on Redis Cluster: on every primary),
        so that a burst of first calls does not all hit NOSCRIPT at once."""
        try:
            for name in SCRIPT_NAMES:
                await self._client.script_load(source(name))
        except ResponseError:
            pass  # e.g. no SCRIPT LOAD right: each call loads on NOSCRIPT instead
        self.loaded = True
