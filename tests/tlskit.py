"""Throwaway TLS material and a TLS-only redis-server for the security tests.

``make_pki(folder)`` writes, with the ``openssl`` command and EC P-256 keys
(a few milliseconds each):

    ca.crt / ca.key                the test CA
    server.crt / server.key        signed by it, SAN IP:127.0.0.1, DNS:localhost
    client.crt / client.key        signed by it, for clientAuth
    client-enc.key                 client.key encrypted with ``KEY_PASSPHRASE``
    other-ca.crt / other-ca.key    a CA nobody's certificate chains to

``TLSServer`` runs ``redis-server --port 0 --tls-port N`` (plain TCP off),
waits until it answers over TLS, and is stopped by its own process id.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from redis_store.embedded import free_port

#: Passphrase of ``client-enc.key`` (a secret: it must never be displayed).
KEY_PASSPHRASE = "tls-key-passphrase-8c1f"

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_CA_EXT = [
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-addext", "subjectKeyIdentifier=hash",
]


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{done.stderr}")


@dataclass(frozen=True)
class PKI:
    folder: Path

    def __getattr__(self, name: str) -> str:  # pki.ca_crt -> ".../ca.crt"
        if name.startswith("_"):
            raise AttributeError(name)
        stem, _, ext = name.rpartition("_")
        return str(self.folder / f"{stem.replace('_', '-')}.{ext}")


def _ca(folder: Path, name: str) -> None:
    _openssl("req", "-x509", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.crt",
             "-days", "2", "-subj", f"/CN=redis-store test {name}", *_CA_EXT, cwd=folder)


def _leaf(folder: Path, name: str, ca: str, extensions: list[str]) -> None:
    (folder / f"{name}.ext").write_text("\n".join([
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid,issuer",
        *extensions,
    ]) + "\n")
    _openssl("req", "-new", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN=redis-store test {name}", cwd=folder)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=folder)


def make_pki(folder: Path) -> PKI:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _ca(folder, "ca")
    _ca(folder, "other-ca")
    _leaf(folder, "server", "ca", ["extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    _leaf(folder, "client", "ca", ["extendedKeyUsage=clientAuth"])
    _openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "client.key", "-out", "client-enc.key",
             "-passout", f"pass:{KEY_PASSPHRASE}", cwd=folder)
    return PKI(folder)


def client_context(pki: PKI, *, cert: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca_crt)
    if cert:
        context.load_cert_chain(pki.client_crt, pki.client_key)
    return context


class TLSServer:
    """redis-server speaking only TLS on a free loopback port.

    ``auth_clients``: ``yes`` (a client certificate is required), ``optional``
    or ``no``. ``extra_args`` come last, so they can override the defaults."""

    def __init__(self, binary: str, pki: PKI, *extra_args: str, auth_clients: str = "yes") -> None:
        self.binary, self.pki, self.extra_args, self.auth_clients = binary, pki, extra_args, auth_clients
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-store-tls-"))

    def url(self, host: str = "127.0.0.1", userinfo: str = "", **query: str) -> str:
        base = f"rediss://{userinfo + '@' if userinfo else ''}{host}:{self.port}/0"
        return f"{base}?{urlencode(query)}" if query else base

    def _answers(self) -> bool:
        """A RESP reply to PING over TLS (+PONG, or -NOAUTH with requirepass)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                with client_context(self.pki).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(64)[:1] in (b"+", b"-")
        except (OSError, ssl.SSLError):
            return False

    def start(self, timeout: float = 15.0) -> "TLSServer":
        for _ in range(5):  # a free port can be taken between probe and bind
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port", "0",
                    "--tls-port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--dir", str(self.dir),
                    "--save", "",
                    "--appendonly", "no",
                    "--logfile", str(self.dir / "server.log"),
                    "--tls-cert-file", self.pki.server_crt,
                    "--tls-key-file", self.pki.server_key,
                    "--tls-ca-cert-file", self.pki.ca_crt,
                    "--tls-auth-clients", self.auth_clients,
                    *self.extra_args,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self._answers():
                    return self
                time.sleep(0.05)
            self.stop(remove_dir=False)
        raise RuntimeError(f"{self.binary} did not start with TLS; its log ends:\n{self.log_tail()}")

    def log_text(self) -> str:
        log = self.dir / "server.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

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

    def __enter__(self) -> "TLSServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
