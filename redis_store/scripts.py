"""The Lua scripts: read once from ``lua/``, registered once per client.

Installed, the scripts are package data at ``redis_store/lua`` (the wheel
maps the top-level ``lua/`` there); in a source checkout they are read from
``lua/`` beside the package. The helpers exist once, in ``lib.lua``, rather
than copied into each file; each script is sent with only the definitions of
lib.lua it uses (directly or through another), in lib.lua's order: Redis runs
a script's whole text on every call, so each unused definition would cost
every call a closure (see ``_lib_blocks``).

``register_script`` gives redis-py ``Script`` objects: each call is an
EVALSHA, and a NOSCRIPT reply (after SCRIPT FLUSH, a restart or a failover)
loads the script and retries, transparently.
"""

from __future__ import annotations

import functools
import hashlib
import re
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


#: A top-level definition of lib.lua: ``local function name(`` or ``local name =``.
_DEFINITION = re.compile(r"^local (?:function )?(\w+)\b")
_WORD = re.compile(r"\w+")


def _code(text: str) -> str:
    """Lua text without its comments (lib.lua and the scripts put no ``--`` in strings)."""
    return "\n".join(line.split("--")[0] for line in text.splitlines())


@functools.cache
def _lib_blocks() -> tuple[tuple[str, str], ...]:
    """lib.lua cut into (name, text) per top-level definition, each with the
    comment lines right above it; the file's opening comment is left out."""
    lines = _script_dir().joinpath(f"{_LIB}.lua").read_text(encoding="utf-8").splitlines()
    starts: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        found = _DEFINITION.match(line)
        if found:
            first = number
            while first > 0 and lines[first - 1].startswith("--"):
                first -= 1
            starts.append((first, found.group(1)))
    ends = [start for start, _ in starts[1:]] + [len(lines)]
    return tuple((name, "\n".join(lines[start:end]).rstrip() + "\n") for (start, name), end in zip(starts, ends))


def _lib_for(body: str) -> str:
    """The definitions of lib.lua that ``body`` uses, and those they use, in lib.lua's order."""
    blocks = dict(_lib_blocks())
    uses = {name: set(_WORD.findall(_code(text))) & blocks.keys() - {name} for name, text in blocks.items()}
    wanted: set[str] = set()
    todo = set(_WORD.findall(_code(body))) & blocks.keys()
    while todo:
        name = todo.pop()
        wanted.add(name)
        todo |= uses[name] - wanted
    return "".join(text for name, text in _lib_blocks() if name in wanted)


@functools.cache
def source(name: str) -> str:
    """Full text of a script as sent to Redis: the lib.lua definitions it
    uses, then the script."""
    if name not in SCRIPT_NAMES:
        raise KeyError(f"unknown script {name!r}; known: {', '.join(SCRIPT_NAMES)}")
    body = _script_dir().joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return f"{_lib_for(body)}\n{body}"


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
