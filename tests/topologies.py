"""Real multi-node Redis topologies for the tests: a Redis Cluster and a
Sentinel-managed primary/replicas set, every process on a free loopback port,
in its own temporary directory, stopped by its own process id.

Cluster::

    with start_cluster(masters=3, replicas_per_master=0) as cluster:
        cluster.startup_url                  # "redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        client = cluster.client()            # redis.cluster.RedisCluster, closed by stop()
        slot = keyslot("{tag}k")
        cluster.move_slot(slot, other_port)  # live resharding, as redis-cli --cluster reshard
        with cluster.move_slot_steps(slot, port) as migration:   # begin() ... finish()
            migration.migrate(1)             # the slot is now split: ASK / TRYAGAIN
            ...                              # run commits while half-migrated

Sentinel::

    with start_sentinel(replicas=1, sentinels=3) as setup:
        setup.url                            # "redis+sentinel://127.0.0.1:s1,.../mymaster"
        old = setup.primary_port()
        new = setup.failover()               # SENTINEL FAILOVER, waits until settled

API (ports identify nodes everywhere; host is always 127.0.0.1):

    start_cluster(masters=3, replicas_per_master=0, *, timeout=30.0,
                  node_timeout_ms=2000, binary=None, extra_args=()) -> Cluster
      .nodes: list[ClusterNodeProcess]   .ports   .startup_nodes   .startup_url
      .node(port)  .node_id(port)  .masters()  .replicas_of(port)
      .master_of(slot)  .slots_of(port)  .cluster_nodes(port=None)
      .move_slot(slot, to_port, *, batch=100) -> keys moved
      .move_slot_steps(slot, to_port, *, batch=100) -> SlotMigration
          .begin()  .migrate(count=None)  .migrate_keys(*keys)  .remaining()
          .finish()  (context manager: begin ... finish)  .state  .moved
      .wait_ok(timeout=None)  .wait_slot_owner(slot, port, timeout=None)
      .flush_all()  .client(**kwargs) -> RedisCluster  .logs()  .stop()

    start_sentinel(replicas=1, sentinels=3, service="mymaster", *, quorum=None,
                   down_after_ms=1000, failover_timeout_ms=5000,
                   timeout=30.0, binary=None) -> SentinelSetup
      .servers: list[NodeProcess] (original primary first)  .sentinels
      .server_ports  .sentinel_ports  .url  .service  .server(port)
      .primary_port()  .replica_ports()  .wait_stable(timeout=None) -> primary
      .failover(timeout=30.0, *, demote_old=True) -> new primary port
      .restart_server(port, timeout=None) -> primary port
      .sentinel(**kwargs) -> redis.sentinel.Sentinel
      .master_client(**kwargs) -> redis.Redis (master_for(service))
      .logs()  .stop()

    Each process (NodeProcess, a ServerProcess): .port .pid .dir .running
      .kill() (SIGKILL, keeps dir and port)  .pause()/.resume() (SIGSTOP/CONT)
      .restart()  .stop()  .log_tail()
    keyslot(key) -> int;  key_in_slot(slot, prefix="k") -> "{...}" key
    require_topology_binaries() -> (server, cli): skip, or fail under
      REDIS_STORE_REQUIRE_SERVERS=1.   TopologyError.

Everything here is synchronous (redis-py's sync clients, blocking waits). From
async tests call the slow parts (``start_*``, ``failover``, ``move_slot``)
through ``asyncio.to_thread`` if the event loop must keep running meanwhile.

Waits poll every 50 ms up to ``timeout`` (30 s by default) and raise
``TopologyError`` with the last observed state and the tail of every
process's log. ``stop()`` is idempotent and also runs at interpreter exit for
any topology still running.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import pytest
import redis
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from servers import REQUIRE_ENV, ServerProcess, free_port, redis_binary, servers_required

__all__ = [
    "Cluster",
    "ClusterNodeProcess",
    "NodeProcess",
    "SentinelProcess",
    "SentinelSetup",
    "SlotMigration",
    "TopologyError",
    "key_in_slot",
    "keyslot",
    "require_topology_binaries",
    "start_cluster",
    "start_sentinel",
]

HOST = "127.0.0.1"
SLOTS = 16384
DEFAULT_TIMEOUT = 30.0
POLL = 0.05

T = TypeVar("T")


class TopologyError(RuntimeError):
    """A topology did not start, settle or reconfigure in time."""


# --------------------------------------------------------------------------- helpers


def keyslot(key: str | bytes) -> int:
    """The cluster hash slot of ``key`` (honours ``{hash tags}``)."""
    return key_slot(key.encode() if isinstance(key, str) else key)


def key_in_slot(slot: int, prefix: str = "k") -> str:
    """A key ``"{<prefix><n>}"`` whose hash slot is ``slot``. Append anything
    after the closing brace to get more keys in the same slot."""
    if not 0 <= slot < SLOTS:
        raise ValueError(f"slot must be in [0, {SLOTS}), not {slot}")
    n = 0
    while True:
        key = f"{{{prefix}{n}}}"
        if keyslot(key) == slot:
            return key
        n += 1


def cli_binary(server_binary: str) -> str | None:
    """The ``redis-cli`` (or ``valkey-cli``) that goes with a server binary:
    next to it first, else from PATH."""
    path = Path(server_binary)
    sibling = path.with_name(path.name.replace("-server", "-cli"))
    if sibling != path and sibling.exists():
        return str(sibling)
    return shutil.which("redis-cli") or shutil.which("valkey-cli")


def require_topology_binaries() -> tuple[str, str]:
    """``(redis-server, redis-cli)`` paths, else skip the test (or fail it
    when ``REDIS_STORE_REQUIRE_SERVERS`` is set, as tests/servers.py does)."""
    server = redis_binary()
    cli = cli_binary(server) if server else None
    if server is None or cli is None:
        message = "needs redis-server and redis-cli on PATH (Debian: apt-get install redis-server)"
        if servers_required():
            pytest.fail(f"{message} ({REQUIRE_ENV} is set, so real-server tests may not skip)")
        pytest.skip(message)
    return server, cli


def _node_client(port: int, timeout: float = 5.0) -> redis.Redis:
    return redis.Redis(
        host=HOST,
        port=port,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2.0),
        retry=Retry(NoBackoff(), 0),  # the default retries with backoff: seconds per refused connection
    )


def _call(port: int, *args, timeout: float = 5.0):
    """One command on one node over a fresh connection (no pooling: nodes
    come and go in fault tests)."""
    client = _node_client(port, timeout)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def _info(port: int, section: str) -> dict[str, str]:
    text = _call(port, "INFO", section)
    if isinstance(text, dict):  # redis-py may have parsed it already
        return {k: str(v) for k, v in text.items()}
    result = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            result[key] = value
    return result


def _wait(what: str, check: Callable[[], T], timeout: float, logs: Callable[[], str] = lambda: "") -> T:
    """Poll ``check`` every 50 ms until it returns something truthy (returned).
    ``check`` may raise redis/OS errors or return a falsy value while not
    ready; a ``(False, detail)`` tuple reports ``detail`` if time runs out."""
    deadline = time.monotonic() + timeout
    last = "never checked"
    while True:
        try:
            result = check()
            if isinstance(result, tuple) and len(result) == 2 and result[0] is False:
                last = str(result[1])
            elif result:
                return result
            else:
                last = repr(result)
        except (redis.RedisError, OSError) as error:
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            tail = logs()
            raise TopologyError(
                f"{what}: not within {timeout:.0f} s; last seen: {last}" + (f"\n{tail}" if tail else "")
            )
        time.sleep(POLL)


def _logs(processes: Iterable["NodeProcess"], lines: int = 15) -> str:
    parts = []
    for process in processes:
        tail = process.log_tail(lines)
        state = "running" if process.running else f"exited {process.exit_code()}"
        parts.append(f"--- {process.kind} 127.0.0.1:{process.port} (pid {process.pid}, {state}), log ends:\n{tail}")
    return "\n".join(parts)


# --------------------------------------------------------------------------- processes

_claimed_ports: set[int] = set()  # ports of our own processes that are (or were just) launched
_live: "set[NodeProcess]" = set()  # strong: an unstopped topology is still stopped at exit


def _claim_port() -> int:
    for _ in range(100):
        port = free_port()
        if port not in _claimed_ports:
            _claimed_ports.add(port)
            return port
    raise TopologyError("no free loopback port")


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_live):
        try:
            process.stop()
        except Exception:
            pass


class NodeProcess(ServerProcess):
    """A ``ServerProcess`` (same defaults, temp dir, log and ``stop``) that

    * builds its command line per port (``argv()``), so cluster bus ports and
      sentinel config files can be derived from it;
    * is ready only when the server on its port reports *our* pid
      (``INFO server``), so a port stolen by some other server is detected;
    * can be launched without waiting (several start in parallel), killed,
      paused (SIGSTOP) and restarted on the same port with the same data dir.
    """

    kind = "redis-server"

    def __init__(self, binary: str, *extra_args: str) -> None:
        super().__init__(binary, *extra_args)
        self._last_pid: int | None = None
        self._last_exit: int | None = None
        _live.add(self)

    # -- command line
    def argv(self) -> list[str]:
        """ServerProcess's defaults, then ``own_args()``, then ``extra_args``
        (so the caller's arguments win)."""
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(self.dir / "server.log"),
            *self.own_args(),
            *self.extra_args,
        ]

    def own_args(self) -> list[str]:
        return []

    def _choose_ports(self) -> None:
        self.port = _claim_port()

    # -- state
    @property
    def pid(self) -> int | None:
        """The current (or last) process id."""
        return self.proc.pid if self.proc is not None else self._last_pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        """The exit status of the last run, None while running or never run."""
        return self.proc.poll() if self.proc is not None else self._last_exit

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server log, plus what the process printed itself
        (e.g. a config error, before the log file is opened)."""
        tail = super().log_tail(lines)
        output = self.dir / "output.log"
        if output.exists():
            printed = "\n".join(output.read_text(errors="replace").splitlines()[-lines:])
            if printed.strip():
                tail = f"{tail}\n[stdout/stderr]\n{printed}" if tail else printed
        return tail

    def is_ready(self) -> bool:
        if not self.running:
            return False
        try:
            return int(_info(self.port, "server").get("process_id", -1)) == self.proc.pid
        except (redis.RedisError, OSError, ValueError):
            return False

    # -- lifecycle
    def launch(self, *, same_port: bool = False) -> "NodeProcess":
        """Start the process without waiting for it (see ``wait_ready``).
        ``same_port`` keeps the current port(s) (a restart)."""
        if self.running:
            raise TopologyError(f"{self.kind} on port {self.port} is already running")
        if not same_port or not self.port:
            self._choose_ports()
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "output.log", "wb") as output:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=self.dir
            )
        _live.add(self)
        return self

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True once the server answers with our pid, False if it exited
        (e.g. its port was taken) or did not answer within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if self.is_ready():
                return True
            time.sleep(POLL)
        return False

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> "NodeProcess":
        _start_all([self], timeout)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash: the directory (and cluster config) stays, the
        port stays reserved for ``restart``."""
        if self.running:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the server hangs (its sockets stay open) until ``resume``."""
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self, timeout: float = DEFAULT_TIMEOUT) -> "NodeProcess":
        """Stop (SIGTERM) if running, then start again on the same port with
        the same directory (a cluster node rejoins with its node id)."""
        if self.running:
            self.stop(remove_dir=False)
        self.launch(same_port=True)
        if not self.wait_ready(timeout):
            tail = self.log_tail()
            self.stop(remove_dir=False)
            raise TopologyError(f"{self.kind} did not restart on port {self.port}; its log ends:\n{tail}")
        return self

    def stop(self, remove_dir: bool = True) -> None:
        """SIGTERM (SIGKILL after 10 s), then remove the directory. Idempotent."""
        proc = self.proc
        if self.running:
            self.resume()  # a paused process would not act on SIGTERM
        super().stop(remove_dir=remove_dir)
        if proc is not None:
            self._last_pid, self._last_exit = proc.pid, proc.returncode
        if remove_dir:
            self.release_ports()
            _live.discard(self)

    def release_ports(self) -> None:
        _claimed_ports.discard(self.port)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} 127.0.0.1:{self.port} pid={self.pid}>"


def _start_all(processes: list[NodeProcess], timeout: float) -> None:
    """Launch all, then wait for all; relaunch (on fresh ports) any that
    exited early, which is what a port taken between probe and bind looks
    like. Raises with the logs of the ones that never came up."""
    deadline = time.monotonic() + timeout
    pending = list(processes)
    attempts = 0
    while pending:
        attempts += 1
        for process in pending:
            if not process.running:
                process.launch()
        failed = []
        for process in pending:
            if not process.wait_ready(max(0.1, deadline - time.monotonic())):
                failed.append(process)
        if not failed:
            return
        for process in failed:
            process.stop(remove_dir=False)
            process.release_ports()
        if attempts >= 5 or time.monotonic() >= deadline:
            raise TopologyError(f"{len(failed)} server process(es) did not start:\n{_logs(failed, 25)}")
        pending = failed


class ClusterNodeProcess(NodeProcess):
    """``redis-server --cluster-enabled yes`` with an explicit bus port (so
    any client port works, not only those <= 55535) and its nodes file in its
    own directory."""

    kind = "cluster-node"

    def __init__(self, binary: str, *extra_args: str, node_timeout_ms: int = 2000) -> None:
        super().__init__(binary, *extra_args)
        self.node_timeout_ms = node_timeout_ms
        self.bus_port = 0

    def _choose_ports(self) -> None:
        self.port = _claim_port()
        self.bus_port = _claim_port()

    @property
    def config_file(self) -> Path:
        return self.dir / f"nodes-{self.port}.conf"

    def own_args(self) -> list[str]:
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.config_file),
            "--cluster-port", str(self.bus_port),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--appendonly", "no",
            "--save", "",
            "--repl-diskless-sync-delay", "0",
        ]

    def release_ports(self) -> None:
        super().release_ports()
        _claimed_ports.discard(self.bus_port)


class SentinelProcess(NodeProcess):
    """``redis-server <dir>/sentinel.conf --sentinel``. The config file is
    written at first launch (Sentinel rewrites it with what it learns, and a
    restart reads it back)."""

    kind = "sentinel"

    def __init__(
        self,
        binary: str,
        service: str,
        primary_port: int,
        *,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        super().__init__(binary)
        self.service = service
        self.primary_port = primary_port
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def config_file(self) -> Path:
        return self.dir / "sentinel.conf"

    def launch(self, *, same_port: bool = False) -> "NodeProcess":
        if not (same_port and self.port and self.config_file.exists()):
            self._choose_ports()
            s = self.service
            self.dir.mkdir(parents=True, exist_ok=True)
            self.config_file.write_text(
                "\n".join([
                    f"port {self.port}",
                    f"bind {HOST}",
                    "protected-mode no",
                    f"dir {self.dir}",
                    f"logfile {self.dir / 'server.log'}",
                    f"sentinel monitor {s} {HOST} {self.primary_port} {self.quorum}",
                    f"sentinel down-after-milliseconds {s} {self.down_after_ms}",
                    f"sentinel failover-timeout {s} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {s} 1",
                    "",
                ])
            )
        return super().launch(same_port=True)

    def argv(self) -> list[str]:
        return [self.binary, str(self.config_file), "--sentinel"]


# --------------------------------------------------------------------------- cluster


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "noaddr", "handshake"})


def _parse_cluster_nodes(text: str) -> list[ClusterNodeInfo]:
    nodes = []
    for line in text.strip().splitlines():
        fields = line.split()
        address = fields[1].split("@")[0]
        port = int(address.rsplit(":", 1)[1]) if ":" in address else 0
        slots = []
        for item in fields[8:]:
            if item.startswith("["):  # [slot->-id] / [slot-<-id]: migration in progress
                continue
            start, _, end = item.partition("-")
            slots.append((int(start), int(end or start)))
        nodes.append(
            ClusterNodeInfo(
                node_id=fields[0],
                port=port,
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                slots=tuple(slots),
            )
        )
    return nodes


def _slot_map(port: int) -> dict[tuple[int, int], int]:
    """``CLUSTER SLOTS`` of one node: {(first, last): master port}."""
    reply = _call(port, "CLUSTER", "SLOTS")
    if isinstance(reply, dict):  # parsed by redis-py: {(first, last): {"primary": (host, port), ...}}
        return {tuple(map(int, k)): int(v["primary"][1]) for k, v in reply.items()}
    return {(int(entry[0]), int(entry[1])): int(entry[2][1]) for entry in reply}


class SlotMigration:
    """A live resharding of one slot in explicit phases, as ``redis-cli
    --cluster reshard`` does it:

    * ``begin()``: ``CLUSTER SETSLOT slot IMPORTING <source id>`` on the
      target, then ``MIGRATING <target id>`` on the source;
    * ``migrate(count)`` / ``migrate_keys(*keys)``: ``MIGRATE`` keys in
      batches (``CLUSTER GETKEYSINSLOT``); between calls the slot is split:
      single-key commands for moved keys get ``-ASK``, multi-key commands
      (and scripts) over a mix of moved and unmoved keys get ``-TRYAGAIN``;
    * ``finish()``: moves the rest, then ``CLUSTER SETSLOT slot NODE <target
      id>`` on the target, the source and every other master, and waits until
      every running node (replicas too) maps the slot to the target.

    As a context manager: ``begin()`` on entry, ``finish()`` on exit (also
    on an exception, so the cluster is never left half-migrated).
    """

    def __init__(self, cluster: "Cluster", slot: int, to_port: int, *, batch: int = 100) -> None:
        if not 0 <= slot < SLOTS:
            raise ValueError(f"slot must be in [0, {SLOTS}), not {slot}")
        self.cluster = cluster
        self.slot = slot
        self.target = to_port
        self.source = cluster.master_of(slot)
        self.batch = batch
        self.moved = 0
        self.state = "new"  # -> "migrating" -> "finished"
        if self.source == self.target:
            raise ValueError(f"slot {slot} is already served by 127.0.0.1:{to_port}")
        if to_port not in cluster.masters():
            raise ValueError(f"127.0.0.1:{to_port} is not a master of this cluster")
        self.source_id = cluster.node_id(self.source)
        self.target_id = cluster.node_id(self.target)

    def begin(self) -> "SlotMigration":
        if self.state != "new":
            raise TopologyError(f"migration of slot {self.slot} already {self.state}")
        _call(self.target, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source_id)
        _call(self.source, "CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target_id)
        self.state = "migrating"
        return self

    def remaining(self) -> int:
        """Keys of the slot still on the source."""
        return int(_call(self.source, "CLUSTER", "COUNTKEYSINSLOT", self.slot))

    def keys_on_source(self, count: int = 1000) -> list[str]:
        return list(_call(self.source, "CLUSTER", "GETKEYSINSLOT", self.slot, count))

    def migrate_keys(self, *keys: str | bytes) -> int:
        """MIGRATE these keys (they must be on the source) to the target."""
        self._require("migrating")
        if not keys:
            return 0
        try:
            reply = _call(
                self.source, "MIGRATE", HOST, self.target, "", 0, 5000, "KEYS", *keys, timeout=10.0
            )
        except redis.ResponseError as error:
            raise TopologyError(
                f"MIGRATE of {len(keys)} key(s) in slot {self.slot} from 127.0.0.1:{self.source} "
                f"to 127.0.0.1:{self.target} failed: {error}"
            ) from error
        moved = 0 if reply == "NOKEY" else len(keys)
        self.moved += moved
        return moved

    def migrate(self, count: int | None = None) -> int:
        """Move up to ``count`` keys (all when None) in batches; the number moved."""
        self._require("migrating")
        moved = 0
        while count is None or moved < count:
            want = self.batch if count is None else min(self.batch, count - moved)
            keys = self.keys_on_source(want)
            if not keys:
                break
            moved += self.migrate_keys(*keys)
        return moved

    def finish(self, timeout: float | None = None) -> int:
        """Move what is left and hand the slot to the target everywhere;
        returns the number of keys moved by this migration in all."""
        if self.state == "finished":
            return self.moved
        if self.state == "new":
            self.begin()
        self.migrate()
        others = [p for p in self.cluster.masters() if p not in (self.source, self.target)]
        for port in [self.target, self.source, *others]:
            _call(port, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target_id)
        self.state = "finished"
        self.cluster.wait_slot_owner(self.slot, self.target, timeout)
        return self.moved

    def _require(self, state: str) -> None:
        if self.state != state:
            raise TopologyError(f"migration of slot {self.slot} is {self.state}, not {state}")

    def __enter__(self) -> "SlotMigration":
        if self.state == "new":
            self.begin()
        return self

    def __exit__(self, *exc_info) -> None:
        self.finish()

    def __repr__(self) -> str:
        return (
            f"<SlotMigration slot={self.slot} 127.0.0.1:{self.source} -> 127.0.0.1:{self.target} "
            f"{self.state}, {self.moved} moved>"
        )


class Cluster:
    """A running Redis Cluster of ``ClusterNodeProcess`` es. Use
    ``start_cluster`` to create one. Ports identify nodes everywhere."""

    def __init__(self, nodes: list[ClusterNodeProcess], *, cli: str, replicas_per_master: int, timeout: float) -> None:
        self.nodes = nodes
        self.cli = cli
        self.replicas_per_master = replicas_per_master
        self.timeout = timeout
        self._clients: list[redis.cluster.RedisCluster] = []
        self._ids: dict[int, str] = {}

    # -- addresses
    @property
    def ports(self) -> list[int]:
        """Client ports of all nodes, in creation order (masters first at creation)."""
        return [node.port for node in self.nodes]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, port) for port in self.ports]

    @property
    def startup_url(self) -> str:
        """``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...`` (all nodes)."""
        return "redis+cluster://" + ",".join(f"{HOST}:{port}" for port in self.ports)

    def node(self, port: int) -> ClusterNodeProcess:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(f"no node on port {port}")

    def logs(self, lines: int = 15) -> str:
        return _logs(self.nodes, lines)

    # -- views
    def _running_ports(self) -> list[int]:
        return [node.port for node in self.nodes if node.running]

    def _first_answer(self, call: Callable[[int], T]) -> T:
        last: Exception | None = None
        for port in self._running_ports():
            try:
                return call(port)
            except (redis.RedisError, OSError) as error:
                last = error
        raise TopologyError(f"no node of the cluster answers (last error: {last})\n{self.logs()}")

    def cluster_nodes(self, port: int | None = None) -> list[ClusterNodeInfo]:
        """``CLUSTER NODES`` as seen by ``port`` (default: the first node that answers)."""
        if port is not None:
            return _parse_cluster_nodes(_call(port, "CLUSTER", "NODES"))
        return self._first_answer(lambda p: _parse_cluster_nodes(_call(p, "CLUSTER", "NODES")))

    def node_id(self, port: int) -> str:
        """The 40-hex cluster node id of the node on ``port`` (cached)."""
        if port not in self._ids:
            self._ids[port] = _call(port, "CLUSTER", "MYID")
        return self._ids[port]

    def masters(self) -> list[int]:
        """Ports of the masters not flagged as failing, sorted."""
        return sorted(n.port for n in self.cluster_nodes() if n.is_master and not n.failed)

    def replicas_of(self, port: int) -> list[int]:
        master_id = self.node_id(port)
        return sorted(n.port for n in self.cluster_nodes() if n.master_id == master_id)

    def master_of(self, slot: int) -> int:
        """Port of the master serving ``slot`` (per the first node that answers)."""
        for (first, last), port in self._first_answer(_slot_map).items():
            if first <= slot <= last:
                return port
        raise TopologyError(f"slot {slot} is not served by any node")

    def slots_of(self, port: int) -> list[int]:
        """The slots the master on ``port`` serves."""
        return [
            slot
            for (first, last), owner in self._first_answer(_slot_map).items()
            if owner == port
            for slot in range(first, last + 1)
        ]

    # -- waits
    def _state(self) -> tuple[bool, str]:
        expected_nodes = len(self.nodes)
        maps, roles = {}, {}
        for port in self._running_ports():
            info = dict(
                line.split(":", 1) for line in _call(port, "CLUSTER", "INFO").splitlines() if ":" in line
            )
            if info.get("cluster_state") != "ok":
                return False, f"127.0.0.1:{port} cluster_state:{info.get('cluster_state')}"
            for field, want in (
                ("cluster_slots_assigned", SLOTS),
                ("cluster_slots_ok", SLOTS),
                ("cluster_known_nodes", expected_nodes),
            ):
                if int(info.get(field, -1)) != want:
                    return False, f"127.0.0.1:{port} {field}:{info.get(field)} (want {want})"
            replication = _info(port, "replication")
            if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                return False, f"replica 127.0.0.1:{port} master_link_status:{replication.get('master_link_status')}"
            maps[port] = _slot_map(port)
            roles[port] = tuple(sorted(
                (n.port, "master" if n.is_master else "replica", n.master_id or "", "fail" in n.flags)
                for n in _parse_cluster_nodes(_call(port, "CLUSTER", "NODES"))
            ))
        if len({tuple(sorted(m.items())) for m in maps.values()}) != 1:
            return False, f"nodes disagree on the slot map: {maps}"
        if len(set(roles.values())) != 1:
            return False, f"nodes disagree on who is master/replica/failed: {roles}"
        return True, "ok"

    def wait_ok(self, timeout: float | None = None) -> None:
        """Until every running node says ``cluster_state:ok``, all 16384 slots
        assigned and ok, knows every node, every replica's link is up, and
        all running nodes agree on the slot map and on which nodes are
        masters, replicas (of whom) and failed."""
        _wait("cluster ok on every node", self._state, timeout or self.timeout, self.logs)

    def wait_slot_owner(self, slot: int, port: int, timeout: float | None = None) -> None:
        """Until every running node maps ``slot`` to the master on ``port``."""

        def check():
            for node_port in self._running_ports():
                owners = [o for (first, last), o in _slot_map(node_port).items() if first <= slot <= last]
                if owners != [port]:
                    return False, f"127.0.0.1:{node_port} maps slot {slot} to {owners}"
            return True

        _wait(f"slot {slot} served by 127.0.0.1:{port}", check, timeout or self.timeout, self.logs)

    # -- operations
    def move_slot_steps(self, slot: int, to_port: int, *, batch: int = 100) -> SlotMigration:
        """A ``SlotMigration`` not yet begun: call ``begin()``, ``migrate(n)``
        and ``finish()`` yourself, or use it as a context manager."""
        return SlotMigration(self, slot, to_port, batch=batch)

    def move_slot(self, slot: int, to_port: int, *, batch: int = 100) -> int:
        """Live-reshard ``slot`` to the master on ``to_port``, keys included;
        returns the number of keys moved."""
        migration = self.move_slot_steps(slot, to_port, batch=batch).begin()
        return migration.finish()

    def flush_all(self) -> None:
        """FLUSHALL on every running master."""
        for port in self.masters():
            if self.node(port).running:
                _call(port, "FLUSHALL")

    def client(self, **kwargs) -> redis.cluster.RedisCluster:
        """A sync ``RedisCluster`` over all nodes (``kwargs`` go to it); closed by ``stop()``."""
        client = redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in self.startup_nodes],
            **kwargs,
        )
        self._clients.append(client)
        return client

    def stop(self) -> None:
        """Close the clients made by ``client()`` and stop every node. Idempotent."""
        for client in self._clients:
            try:
                client.close()
            except Exception:  # a client of a dead node: nothing to release
                pass
        self._clients.clear()
        errors = []
        for node in self.nodes:
            try:
                node.stop()
            except Exception as error:  # stop the others anyway
                errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Cluster {self.startup_url}>"


def start_cluster(
    masters: int = 3,
    replicas_per_master: int = 0,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    node_timeout_ms: int = 2000,
    binary: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> Cluster:
    """Start ``masters * (1 + replicas_per_master)`` cluster nodes, join them
    with ``redis-cli --cluster create ... --cluster-replicas R --cluster-yes``
    and wait until the cluster is ok everywhere (see ``Cluster.wait_ok``).
    On any failure everything started is stopped and ``TopologyError`` says why."""
    if masters < 3:
        raise ValueError("redis-cli --cluster create needs at least 3 masters")
    binary = binary or redis_binary()
    cli = cli_binary(binary) if binary else None
    if binary is None or cli is None:
        raise TopologyError("start_cluster needs redis-server and redis-cli (see require_topology_binaries)")
    count = masters * (1 + replicas_per_master)
    nodes = [ClusterNodeProcess(binary, *extra_args, node_timeout_ms=node_timeout_ms) for _ in range(count)]
    cluster = Cluster(nodes, cli=cli, replicas_per_master=replicas_per_master, timeout=timeout)
    try:
        _start_all(nodes, timeout)
        command = [
            cli, "--cluster", "create",
            *(f"{HOST}:{port}" for port in cluster.ports),
            "--cluster-replicas", str(replicas_per_master),
            "--cluster-yes",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as error:
            raise TopologyError(
                f"redis-cli --cluster create did not finish within {timeout:.0f} s; its output:\n"
                f"{error.stdout or ''}\n{cluster.logs()}"
            ) from None
        if done.returncode != 0:
            raise TopologyError(
                f"redis-cli --cluster create failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{cluster.logs()}"
            )
        cluster.wait_ok(timeout)
        return cluster
    except BaseException:
        cluster.stop()
        raise


# --------------------------------------------------------------------------- sentinel


# No 5 s pause before a full sync (Redis 7's diskless default) on every data
# node, as any of them can become the primary.
_FAST_SYNC = ("--repl-diskless-sync-delay", "0")


class SentinelSetup:
    """A primary, its replicas and the Sentinels that watch them. Use
    ``start_sentinel`` to create one. Data nodes are in ``servers`` (the
    original primary first); which one is the primary changes on failover."""

    def __init__(self, servers: list[NodeProcess], sentinels: list[SentinelProcess], service: str, timeout: float) -> None:
        self.servers = servers
        self.sentinels = sentinels
        self.service = service
        self.timeout = timeout
        self._clients: list[redis.sentinel.Sentinel] = []
        self._masters: list[redis.Redis] = []

    # -- addresses
    @property
    def sentinel_ports(self) -> list[int]:
        return [sentinel.port for sentinel in self.sentinels]

    @property
    def server_ports(self) -> list[int]:
        return [server.port for server in self.servers]

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,.../<service>``."""
        hosts = ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}"

    def server(self, port: int) -> NodeProcess:
        for process in [*self.servers, *self.sentinels]:
            if process.port == port:
                return process
        raise KeyError(f"no process on port {port}")

    def logs(self, lines: int = 15) -> str:
        return _logs([*self.servers, *self.sentinels], lines)

    # -- views
    def _running_sentinels(self) -> list[int]:
        return [s.port for s in self.sentinels if s.running]

    def _sentinel_primary(self, sentinel_port: int) -> int | None:
        reply = _call(sentinel_port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return int(reply[1]) if reply else None

    def primary_port(self) -> int:
        """The primary's port, per the first running Sentinel that answers."""
        last: Exception | None = None
        for port in self._running_sentinels():
            try:
                primary = self._sentinel_primary(port)
                if primary:
                    return primary
            except (redis.RedisError, OSError) as error:
                last = error
        raise TopologyError(f"no Sentinel names a primary for {self.service} (last error: {last})\n{self.logs()}")

    def replica_ports(self) -> list[int]:
        """Running data nodes other than the primary."""
        primary = self.primary_port()
        return [s.port for s in self.servers if s.running and s.port != primary]

    @staticmethod
    def _role(port: int) -> list:
        return _call(port, "ROLE")

    def _agreed_primary(self) -> tuple[bool, str] | int:
        primaries = {port: self._sentinel_primary(port) for port in self._running_sentinels()}
        if len(set(primaries.values())) != 1 or None in primaries.values():
            return False, f"Sentinels disagree on the primary: {primaries}"
        return next(iter(primaries.values()))

    def _state(self, not_primary: int | None = None, demoted: bool = True) -> tuple[bool, str] | int:
        primary = self._agreed_primary()
        if isinstance(primary, tuple):
            return primary
        if primary == not_primary:
            return False, f"Sentinels still name 127.0.0.1:{primary}"
        role = self._role(primary)
        if role[0] != "master":
            return False, f"the named primary 127.0.0.1:{primary} answers ROLE {role[0]}"
        if not demoted:
            return primary
        replicas = [s.port for s in self.servers if s.running and s.port != primary]
        for port in replicas:
            info = _info(port, "replication")
            if info.get("role") != "slave" or int(info.get("master_port", 0)) != primary:
                return False, f"127.0.0.1:{port} is {info.get('role')} of port {info.get('master_port')}, not of {primary}"
            if info.get("master_link_status") != "up":
                return False, f"replica 127.0.0.1:{port} master_link_status:{info.get('master_link_status')}"
        others = len(self.sentinels) - 1
        for port in self._running_sentinels():
            seen = {}
            for entry in _call(port, "SENTINEL", "REPLICAS", self.service):
                fields = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2]))
                seen[int(fields["port"])] = fields["flags"]
            for replica in replicas:
                flags = seen.get(replica)
                if flags is None or set(flags.split(",")) & {"s_down", "o_down", "disconnected"}:
                    return False, f"Sentinel {port} sees replica {replica} as {flags}"
            sentinels = _call(port, "SENTINEL", "SENTINELS", self.service)
            if len(sentinels) < others:
                return False, f"Sentinel {port} knows {len(sentinels)} other Sentinels, not {others}"
        return primary

    def wait_stable(self, timeout: float | None = None) -> int:
        """Until all running Sentinels name the same primary, it answers ROLE
        master, every other running data node replicates from it with its
        link up, and every Sentinel sees those replicas (not down) and all the
        other Sentinels. Returns the primary's port."""
        return _wait("Sentinel setup stable", self._state, timeout or self.timeout, self.logs)

    # -- operations
    def failover(self, timeout: float = DEFAULT_TIMEOUT, *, demote_old: bool = True) -> int:
        """``SENTINEL FAILOVER <service>`` (retried while a Sentinel answers
        NOGOODSLAVE/INPROG), then wait until the Sentinels all name a new
        primary that answers ROLE master. With ``demote_old`` (the default)
        also wait until the old primary (if still running) and every other
        data node replicate from the new one with their links up, and the
        Sentinels see them: the setup is then ready for the next failover.
        Sentinel itself demotes a still-running old primary only after ~10 s
        (its INFO period); to settle quickly this sends it the same
        ``REPLICAOF`` Sentinel would. Returns the new primary's port."""
        deadline = time.monotonic() + timeout
        old = _wait("Sentinels agree on the primary", self._agreed_primary, timeout, self.logs)

        def request():
            # Done already if the Sentinels moved on by themselves (an
            # automatic failover, e.g. after the primary was killed).
            named = self._agreed_primary()
            if isinstance(named, int) and named != old:
                return True
            last: Exception | None = None
            for port in self._running_sentinels():
                try:
                    _call(port, "SENTINEL", "FAILOVER", self.service)
                    return True
                except redis.ResponseError as error:  # NOGOODSLAVE, INPROG: retry
                    last = error
            return False, f"SENTINEL FAILOVER refused: {last}"

        _wait(f"SENTINEL FAILOVER {self.service} accepted", request, max(0.1, deadline - time.monotonic()), self.logs)
        new = _wait(
            f"Sentinels name a new primary instead of 127.0.0.1:{old}",
            lambda: self._state(not_primary=old, demoted=False),
            max(0.1, deadline - time.monotonic()),
            self.logs,
        )
        if not demote_old:
            return new
        old_process = self.server(old)
        if old_process.running:
            def demote():
                info = _info(old, "replication")
                if info.get("role") == "master":
                    _call(old, "REPLICAOF", HOST, new)
                    return False, f"old primary 127.0.0.1:{old} still master; sent REPLICAOF"
                return True

            _wait(f"old primary 127.0.0.1:{old} demoted", demote, max(0.1, deadline - time.monotonic()), self.logs)
        settled = _wait(
            f"Sentinel setup stable after failover to 127.0.0.1:{new}",
            lambda: self._state(not_primary=old),
            max(0.1, deadline - time.monotonic()),
            self.logs,
        )
        return settled

    def restart_server(self, port: int, timeout: float | None = None) -> int:
        """(Re)start the data node on ``port`` (stopped, killed or running)
        as a replica of the current primary, as Sentinel would reconfigure it
        ~10 s later anyway (without persistence a restarted old primary would
        otherwise come back as an *empty master*). Waits until stable;
        returns the primary's port."""
        process = self.server(port)
        if process in self.sentinels:
            raise ValueError(f"127.0.0.1:{port} is a Sentinel; use server(port).restart()")
        primary = _wait("Sentinels agree on the primary", self._agreed_primary, timeout or self.timeout, self.logs)
        if primary == port:
            raise TopologyError(f"127.0.0.1:{port} is still the primary; fail over first")
        process.extra_args = (*_FAST_SYNC, "--replicaof", HOST, str(primary))
        process.restart(timeout or self.timeout)
        return self.wait_stable(timeout)

    def sentinel(self, **kwargs) -> redis.sentinel.Sentinel:
        """A ``redis.sentinel.Sentinel`` over all the Sentinels (``kwargs``
        go to each connection, e.g. ``socket_timeout``); closed by ``stop()``."""
        client = redis.sentinel.Sentinel([(HOST, port) for port in self.sentinel_ports], **kwargs)
        self._clients.append(client)
        return client

    def master_client(self, **kwargs) -> redis.Redis:
        """``Sentinel(..., **kwargs).master_for(service)``: follows failovers
        (the first command after one fails with ``ConnectionError``, "The
        previous master is now a slave", unless you pass a ``retry``); closed
        by ``stop()``."""
        client = self.sentinel(**kwargs).master_for(self.service)
        self._masters.append(client)
        return client

    def stop(self) -> None:
        """Close clients, stop the Sentinels (first, so they do not react),
        then the data nodes. Idempotent."""
        for closable in [*self._masters, *(c for s in self._clients for c in s.sentinels)]:
            try:
                closable.close()
            except Exception:
                pass
        self._masters.clear()
        self._clients.clear()
        errors = []
        for process in [*self.sentinels, *self.servers]:
            try:
                process.stop()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self) -> "SentinelSetup":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SentinelSetup {self.url}>"


def start_sentinel(
    replicas: int = 1,
    sentinels: int = 3,
    service: str = "mymaster",
    *,
    quorum: int | None = None,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 5000,
    timeout: float = DEFAULT_TIMEOUT,
    binary: str | None = None,
) -> SentinelSetup:
    """Start a primary, ``replicas`` replicas (``--replicaof``, waited until
    their link is up) and ``sentinels`` Sentinels monitoring ``service``
    (quorum 2 unless fewer Sentinels), then wait until stable (see
    ``SentinelSetup.wait_stable``). On any failure everything started is
    stopped and ``TopologyError`` says why."""
    binary = binary or redis_binary()
    if binary is None:
        raise TopologyError("start_sentinel needs redis-server (see require_topology_binaries)")
    if sentinels < 1:
        raise ValueError("at least one Sentinel")
    quorum = quorum if quorum is not None else min(2, sentinels)
    fast_sync = _FAST_SYNC
    primary = NodeProcess(binary, *fast_sync)
    setup = SentinelSetup([primary], [], service, timeout)
    try:
        _start_all([primary], timeout)
        replica_processes = [NodeProcess(binary, *fast_sync, "--replicaof", HOST, str(primary.port)) for _ in range(replicas)]
        setup.servers.extend(replica_processes)
        _start_all(replica_processes, timeout)

        def linked():
            for replica in replica_processes:
                status = _info(replica.port, "replication").get("master_link_status")
                if status != "up":
                    return False, f"replica 127.0.0.1:{replica.port} master_link_status:{status}"
            return True

        _wait("replicas linked to the primary", linked, timeout, setup.logs)
        setup.sentinels.extend(
            SentinelProcess(
                binary,
                service,
                primary.port,
                quorum=quorum,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
            )
            for _ in range(sentinels)
        )
        _start_all(setup.sentinels, timeout)
        setup.wait_stable(timeout)
        return setup
    except BaseException:
        setup.stop()
        raise
