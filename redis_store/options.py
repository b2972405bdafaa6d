"""Every store option, declared once.

``StoreOptions`` (``contract``) holds what every backend takes;
``RedisOptions`` what only the Redis backend takes. Constructors,
``open_store`` keyword arguments and URL query parameters (``?name=value``)
are all read from these two dataclasses, so a new option is one field here.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from .contract import StoreOptions


@dataclasses.dataclass(frozen=True)
class RedisOptions:
    """``wait_replicas=N``: every write waits (WAIT, on the write's own
    connection) until N replicas acknowledged it, for at most
    ``wait_timeout`` seconds, and fails with ``WriteFailed`` otherwise.
    ``guard``: on first use, check the server's version, persistence and
    ``maxmemory-policy``; "warn" logs what is unsafe, "refuse" raises
    ``UnsafeServer``, "off" skips it. ``refusal_window``: seconds a command
    the server refused without running it (TRYAGAIN, MOVED/ASK, CLUSTERDOWN,
    a failover, a demoted primary) is retried, counted from the first
    refusal, before the call fails.
    ``delta_cache_bytes``: how many bytes of the snapshots it last wrote the
    store keeps (the snapshots given, not copies), so that the next snapshot
    of a runtime is sent as a delta (``snapshot_delta``); 0 sends every
    snapshot whole."""

    wait_replicas: int = 0
    wait_timeout: float = 1.0
    guard: str = "warn"
    refusal_window: float = 10.0
    delta_cache_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if not isinstance(self.wait_replicas, int) or isinstance(self.wait_replicas, bool) or self.wait_replicas < 0:
            raise ValueError(f"wait_replicas must be a non-negative int, got {self.wait_replicas!r}")
        for name in ("wait_timeout", "refusal_window"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.delta_cache_bytes, int) or isinstance(self.delta_cache_bytes, bool) or self.delta_cache_bytes < 0:
            raise ValueError(f"delta_cache_bytes must be a non-negative int, got {self.delta_cache_bytes!r}")
        if self.guard not in ("warn", "refuse", "off"):
            raise ValueError(f"guard must be 'warn', 'refuse' or 'off', got {self.guard!r}")

    @property
    def wait(self) -> tuple[int, int] | None:
        """WAIT's arguments (replicas, timeout in ms), or None when not waiting."""
        return (self.wait_replicas, max(1, int(self.wait_timeout * 1000))) if self.wait_replicas else None


def _fields(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


STORE_FIELDS = _fields(StoreOptions)
REDIS_FIELDS = _fields(RedisOptions)
#: What a store URL's query may carry, and each value's type.
URL_OPTIONS: dict[str, type] = {"namespace": str, **STORE_FIELDS, **REDIS_FIELDS}


def split(options: dict[str, Any]) -> tuple[dict, dict, dict]:
    """(StoreOptions fields, RedisOptions fields, the rest) of keyword arguments."""
    store = {k: v for k, v in options.items() if k in STORE_FIELDS}
    redis = {k: v for k, v in options.items() if k in REDIS_FIELDS}
    rest = {k: v for k, v in options.items() if k not in STORE_FIELDS and k not in REDIS_FIELDS}
    return store, redis, rest
