"""Security (issue 5, section 5), each against a real server configured for it:

* passwords and ACL users from the URL (``redis://user:pass@host``, the
  ``requirepass`` default user, ``?username=&password=``);
* TLS (``rediss://`` with a CA and a client certificate, generated here);
* least privilege: ``WORKER_ACL_RULE`` is all a worker needs, every command
  in it is needed, and it keeps a worker out of every other namespace;
* credentials never appear in ``repr``, ``str``, errors, logs or the CLI.

Servers are started here on free loopback ports and stopped by process id.
The tests at the end reproduce leaks and bugs this suite found (and that are
fixed): they stay as regression tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import subprocess
import traceback
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import msgspec
import pytest
import redis
import redis.asyncio
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from redis_store import (
    FencedOut,
    InputId,
    InputState,
    Lease,
    ReadFailed,
    ReceiptConflict,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RunId,
    RuntimeState,
    RuntimeStoreError,
    SessionDelta,
    WriteFailed,
    open_store,
)
from redis_store.cli import main as cli_main
from redis_store.keys import KeyLayout
from redis_store.urls import redact
from servers import REQUIRE_ENV, ServerProcess, servers_required
from sessions import session_json
from test_conformance import walk_runtimes
from tlskit import KEY_PASSPHRASE, PKI, TLSServer, make_pki, openssl_available

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"

# -- least privilege ------------------------------------------------------------------------

#: Commands a worker sends itself: scripts (EVALSHA; SCRIPT LOAD on a cold
#: cache or after NOSCRIPT), the two plain reads and list_runtimes' SCAN.
#: AUTH and HELLO need no grant.
WORKER_CLIENT_COMMANDS = ("evalsha", "script|load", "get", "hget", "scan", "info")

#: Commands the Lua scripts call. Redis checks the user's ACL for every
#: command (and key) a script calls, so the user needs these too.
WORKER_SCRIPT_COMMANDS = (
    "get", "set", "setrange", "strlen", "type", "incr", "del", "unlink", "pexpire", "pttl", "time",
    "hget", "hset", "hsetnx", "hdel", "hexists", "hgetall", "hmget",
    "rpush", "lrange",
    "zadd", "zrem", "zrangebyscore", "zscore",
)

WORKER_COMMANDS = tuple(dict.fromkeys(WORKER_CLIENT_COMMANDS + WORKER_SCRIPT_COMMANDS))

#: The exact rule a worker needs: its namespace's keys (every key is
#: ``<ns>:rt:{tag}:<kind>``, see redis_store/keys.py) and nothing else.
#: ``<ns>`` with the glob characters ``* ? [ ] \`` backslash-escaped.
#: The pattern ends in ``:rt:{*`` rather than ``:*``: namespaces may contain
#: colons but never braces, so ``~prod:*`` would also grant namespace
#: ``prod:eu`` while ``~prod:rt:{*`` grants exactly namespace ``prod``.
#: Add ``+select`` if the URL names a database other than 0; ``+wait
#: +script|exists`` with ``wait_replicas`` (the write and WAIT go in one
#: redis-py pipeline, which checks its scripts with SCRIPT EXISTS); ``+ping``
#: with ``?health_check_interval=``. On Redis 7.2+ and Valkey,
#: ``+client|setinfo`` keeps redis-py's CLIENT SETINFO (denied, and ignored
#: by redis-py) out of ACL LOG; Redis 7.0 rejects that rule.
#: The CLI's ``inspect`` also needs ``+memory|usage``; ``doctor`` is for admins.
WORKER_ACL_RULE = (
    "ACL SETUSER <user> reset on ><password> ~<ns>:rt:{* resetchannels -@all "
    + " ".join(f"+{command}" for command in WORKER_COMMANDS)
)

#: The obvious key pattern, too wide: see test_colon_pattern_would_grant_nested_namespaces.
WIDE_KEY_PATTERN = "~{ns}:*"

# Every secret is an alphanumeric core plus URL-special characters; the
# leak checks look for the whole secret, its encodings and its core.
ADMIN_PW = "AdminPw7Kq2ZrHq/:@?#% &+"
ALICE_PW = "AlicePw4Vn8TyWe@:/?#[]%"
WORKER_PW = "WorkerPw5Xc1NoPu"
WRONG_PW = "WrongPw9Hs3LmCd"
FAR_PW = "FarAwayPw6Rb1Ks"
MALFORMED_PW = "MalfPw3Jx8QwZt/tail"
SECRETS = (ADMIN_PW, ALICE_PW, WORKER_PW, WRONG_PW, FAR_PW)

PERMISSION_MARKERS = ("noperm", "no permission", "permission", "can't run this command", "can't access")


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def worker_acl_args(namespace: str, password: str, *extra: str, key_pattern: str | None = None) -> list[str]:
    """``WORKER_ACL_RULE`` as the arguments after ``ACL SETUSER <user>``."""
    args = WORKER_ACL_RULE.split(" ")[3:]  # after "ACL SETUSER <user>"
    args = [arg.replace("<password>", password).replace("<ns>", glob_escape(namespace)) for arg in args]
    if key_pattern is not None:
        args = [key_pattern if arg.startswith("~") else arg for arg in args]
    return args + list(extra)


def fragments(secret: str) -> set[str]:
    """What would betray a secret: itself, its URL encodings, its core."""
    found = {secret, quote(secret, safe=""), quote_plus(secret)}
    found.update(piece for piece in re.split(r"[^A-Za-z0-9]+", secret) if len(piece) >= 8)
    return found


def assert_no_secret(texts: list[str], secrets=SECRETS) -> None:
    for secret in secrets:
        for fragment in fragments(secret):
            for text in texts:
                assert fragment not in text, f"secret fragment {fragment!r} leaked in:\n{text}"


def error_chain(error: BaseException | None, *, displayed: bool) -> list[BaseException]:
    """The exception and its causes: as a traceback shows them
    (``displayed``, honouring ``raise ... from None``), or every
    ``__cause__``/``__context__`` object reachable."""
    chain: list[BaseException] = []
    while error is not None and all(error is not seen for seen in chain):
        chain.append(error)
        if error.__cause__ is not None:
            error = error.__cause__
        elif displayed and error.__suppress_context__:
            error = None
        else:
            error = error.__context__
    return chain


def error_texts(error: BaseException, *, displayed: bool = False) -> list[str]:
    texts = ["".join(traceback.format_exception(type(error), error, error.__traceback__))]
    for item in error_chain(error, displayed=displayed):
        texts += [str(item), repr(item), repr(item.args), repr(getattr(item, "__dict__", {}))]
    return texts


def log_texts(caplog) -> list[str]:
    return [caplog.text] + [record.getMessage() for record in caplog.records]


def permission_denied(error: BaseException) -> bool:
    text = " ".join(str(item) for item in error_chain(error, displayed=False)).lower()
    return any(marker in text for marker in PERMISSION_MARKERS)


def make_receipt(run_id: RunId, sequence: int) -> RunBoundaryReceipt:
    return RunBoundaryReceipt(
        run_id=run_id,
        boundary=RunApplyBoundary.RUN_START,
        contributing_input_ids=[],
        conversation_digest=None,
        message_count=0,
        sequence=sequence,
    )


async def roundtrip(store, rid: str = "rt-secure") -> None:
    """A commit, and everything of it loaded back."""
    state = InputState.new_accepted(InputId.new())
    delta = SessionDelta(session_json(2))
    receipt = await store.commit_session_boundary(
        rid, delta, RunId.new(), RunApplyBoundary.RUN_START, [state.input_id], [state]
    )
    assert await store.load_boundary_receipt(rid, receipt.run_id, receipt.sequence) == receipt
    assert await store.load_session_snapshot(rid) == delta.session_snapshot
    assert [s.input_id for s in await store.load_input_states(rid)][-1] == state.input_id


async def exercise_every_method(store, rid: str, expire_commit_id=None) -> None:
    """Every public method of RuntimeStore, each path the scripts have:
    leases (acquire, renew, fenced writes, release, steal, revoke, fenced
    out), commit ids (a retry; an expired id forgotten by prune_runtime),
    conflicts, loads, listing, dump, retention and delete.
    ``expire_commit_id(rid)`` plants an expired commit id for prune_runtime."""
    first = InputState.new_accepted(InputId.new())
    await store.persist_input_state(rid, first)
    await store.persist_runtime_state(rid, RuntimeState.RUNNING)
    lease = await store.acquire_lease(rid, "worker-1", 30)
    assert (await store.current_lease(rid)).owner == "worker-1"
    lease = await store.renew_lease(lease, 20)
    runtime = store.fenced(lease)
    if expire_commit_id is not None:
        expire_commit_id(rid)
    run, delta = RunId.new(), SessionDelta(session_json(2, "7c1f1f8e-5d84-4bd3-9d8f-2f0c59b2a7e1"))
    args = (rid, delta, run, RunApplyBoundary.RUN_START, [first.input_id], [first])
    receipt = await runtime.commit_session_boundary(*args, commit_id=f"{run}:0")
    assert await runtime.commit_session_boundary(*args, commit_id=f"{run}:0") == receipt  # a retry
    grown = SessionDelta(session_json(3, "7c1f1f8e-5d84-4bd3-9d8f-2f0c59b2a7e1"))  # sent as a delta
    await runtime.commit_session_boundary(rid, grown, run, RunApplyBoundary.RUN_CHECKPOINT, [], [], commit_id=f"{run}:1")
    assert getattr(store, "snapshot_deltas", {"sent": 1})["sent"] >= 1
    if expire_commit_id is not None:
        assert (await store.prune_runtime(rid, keep_runs=5)).commit_ids_forgotten == 1
    assert (await store.load_input_state(rid, first.input_id)).last_run_id == run
    applied = make_receipt(RunId.new(), 0)
    last_delta = SessionDelta(session_json(1))
    await runtime.atomic_apply(rid, last_delta, applied, [first], commit_id="apply-0")
    with pytest.raises(ReceiptConflict):
        await runtime.atomic_apply(rid, None, applied, [])
    await runtime.atomic_lifecycle_commit(rid, RuntimeState.IDLE, await store.load_input_states(rid))
    assert (await store.load_input_state(rid, first.input_id)).input_id == first.input_id
    keyed = msgspec.structs.replace(InputState.new_accepted(InputId.new()), idempotency_key=f"hook-{rid}")
    await runtime.persist_input_state(rid, keyed)
    assert await store.load_input_state_by_idempotency_key(rid, f"hook-{rid}") == keyed
    assert await store.load_input_states_by_ids(rid, [keyed.input_id, InputId.new()]) == [keyed, None]
    assert await store.ensure_index(rid) is False
    await runtime.commit_session_snapshot(rid, last_delta, commit_id="snapshot-0")
    assert await store.load_boundary_receipt(rid, run, receipt.sequence) == receipt
    assert await store.load_boundary_receipt(rid, applied.run_id, 0) == applied
    assert await store.load_session_snapshot(rid) == last_delta.session_snapshot
    assert await store.load_runtime_state(rid) == RuntimeState.IDLE
    listed, _ = await walk_runtimes(store, 10)
    assert rid in listed
    raw = await store.dump_runtime(rid)
    assert len(raw.receipts) == 3 and len(raw.inputs) == 2
    assert await store.release_lease(lease)
    stolen = await store.steal_lease(rid, "operator", 30)
    assert stolen.token > lease.token
    assert await store.revoke_lease(rid) > stolen.token
    with pytest.raises(FencedOut):
        await store.persist_runtime_state(rid, RuntimeState.STOPPED, lease=stolen)
    assert await store.delete_runtime(rid)
    assert await store.load_runtime_state(rid) is None


def _need(condition: bool, message: str) -> None:
    if condition:
        return
    if servers_required():
        pytest.fail(f"{message} ({REQUIRE_ENV} is set, so real-server tests may not skip)")
    pytest.skip(message)


# -- servers ----------------------------------------------------------------------------------

class Secured:
    """A redis-server whose default user needs ``ADMIN_PW``."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.port = server.port
        # ServerProcess waits for +PONG, so requirepass is set once it runs.
        with redis.Redis(host="127.0.0.1", port=self.port) as bootstrap:
            bootstrap.config_set("requirepass", ADMIN_PW)
        self.admin = redis.Redis(host="127.0.0.1", port=self.port, password=ADMIN_PW)

    def url(self, user: str = "", password: str | None = None, db: int = 0, **query) -> str:
        userinfo = ""
        if password is not None:
            userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        base = f"redis://{userinfo}127.0.0.1:{self.port}/{db}"
        return f"{base}?{urlencode(query)}" if query else base

    def admin_url(self, **query) -> str:
        return self.url("", ADMIN_PW, **query)

    def add_worker(self, user: str, namespace: str, *extra: str, key_pattern: str | None = None) -> None:
        self.admin.execute_command("ACL", "DELUSER", user)
        self.admin.execute_command("ACL", "SETUSER", user, *worker_acl_args(namespace, WORKER_PW, *extra, key_pattern=key_pattern))

    def worker_client(self, user: str) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, username=user, password=WORKER_PW)

    def expire_commit_id(self, namespace: str):
        """A function planting an expired commit id in a runtime."""

        def plant(rid: str) -> None:
            keys = KeyLayout(namespace).runtime(rid)
            self.admin.hset(keys.commits, "long-gone", "fingerprint 0")
            self.admin.zadd(keys.commit_log, {"long-gone": 0})  # at 1970-01-01: long expired

        return plant

    def denied_commands(self) -> list[str]:
        """Commands ACL LOG recorded as denied, but for redis-py's CLIENT
        SETINFO (sent and ignored on Redis 7.2+/Valkey) and the guard's CONFIG
        GET save (asked only when AOF is off; refused to workers on purpose:
        CONFIG GET can read secrets; the guard says so and carries on)."""
        denied = []
        for entry in self.admin.acl_log(count=128):
            obj = entry.get("object", entry.get(b"object"))
            obj = obj.decode() if isinstance(obj, bytes) else str(obj)
            if obj not in ("client|setinfo", "config|get"):
                denied.append(obj)
        return denied


@pytest.fixture(scope="module")
def redis_binary_path(redis_server):
    return redis_server.binary


@pytest.fixture(scope="module")
def secured(redis_binary_path):
    server = ServerProcess(redis_binary_path).start()
    try:
        secured = Secured(server)
        yield secured
        secured.admin.close()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    _need(openssl_available(), "no openssl command to make test certificates")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(redis_binary_path, pki):
    server = TLSServer(redis_binary_path, pki)
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        _need(False, f"redis-server does not run with TLS (built without it?): {exc}")
    try:
        yield server
    finally:
        server.stop()


def tls_query(pki: PKI, **changes) -> dict:
    query = {"ssl_ca_certs": pki.ca_crt, "ssl_certfile": pki.client_crt, "ssl_keyfile": pki.client_key}
    query.update(changes)
    return {k: v for k, v in query.items() if v is not None}


# -- 1. passwords and ACL users from the URL --------------------------------------------------

@pytest.mark.real_server
async def test_requirepass_password_from_the_url(secured):
    urls = [
        secured.admin_url(namespace="pw-userinfo"),                      # redis://:pass@host
        secured.url() + "?" + urlencode({"password": ADMIN_PW, "namespace": "pw-query"}),  # ?password=
    ]
    for url in urls:
        async with open_store(url) as store:
            await roundtrip(store)
            assert_no_secret([repr(store), str(store)])


@pytest.mark.real_server
async def test_acl_user_from_the_url(secured):
    secured.admin.execute_command("ACL", "SETUSER", "alice", "reset", "on", f">{ALICE_PW}", "~*", "&*", "+@all")
    urls = [
        secured.url("alice", ALICE_PW, namespace="acl-userinfo"),        # percent-encoded user info
        secured.url() + "?" + urlencode({"username": "alice", "password": ALICE_PW, "namespace": "acl-query"}),
    ]
    for url in urls:
        async with open_store(url) as store:
            await roundtrip(store)
            assert_no_secret([repr(store), str(store)])


@pytest.mark.real_server
@pytest.mark.parametrize("who", ["default user", "acl user", "no password"])
async def test_wrong_password_fails_clearly_without_showing_it(secured, who):
    secured.admin.execute_command("ACL", "SETUSER", "alice", "reset", "on", f">{ALICE_PW}", "~*", "&*", "+@all")
    url = {
        "default user": secured.url("", WRONG_PW),
        "acl user": secured.url("alice", WRONG_PW),
        "no password": secured.url(),
    }[who]
    async with open_store(url + "?namespace=wrong") as store:
        with pytest.raises(WriteFailed) as write:
            await store.persist_runtime_state("rt", RuntimeState.IDLE)
        with pytest.raises(ReadFailed) as read:
            await store.load_runtime_state("rt")
    for caught in (write, read):
        error = caught.value
        assert isinstance(error.__cause__, AuthenticationError)
        assert "AuthenticationError" in str(error)
        assert "127.0.0.1" in str(error)  # says where
        assert_no_secret(error_texts(error))
    assert secured.admin.exists(*KeyLayout("wrong").runtime("rt")) == 0


@pytest.mark.real_server
async def test_wrong_password_error_does_not_claim_the_write_may_have_happened(secured):
    async with open_store(secured.url("", WRONG_PW)) as store:
        with pytest.raises(WriteFailed) as caught:
            await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert "outcome is unknown" not in str(caught.value)


# -- 2. TLS -------------------------------------------------------------------------------------

@pytest.mark.real_server
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_tls_with_ca_and_client_certificate(tls_server, pki, host):
    url = tls_server.url(host, **tls_query(pki), namespace=f"tls-{host}")
    async with open_store(url) as store:
        await roundtrip(store)
        assert repr(store).startswith("RedisRuntimeStore('rediss://")


@pytest.mark.real_server
async def test_tls_with_an_acl_user(tls_server, pki):
    admin = redis.Redis(host="127.0.0.1", port=tls_server.port, ssl=True, **tls_query(pki))
    admin.execute_command("ACL", "SETUSER", "tls-worker", *worker_acl_args("tls-acl", WORKER_PW))
    url = tls_server.url(userinfo=f"tls-worker:{quote(WORKER_PW, safe='')}", **tls_query(pki), namespace="tls-acl")
    async with open_store(url) as store:
        await exercise_every_method(store, "rt-tls")
        assert_no_secret([repr(store)])
    admin.close()


#: A server's TLS refusal reaches the client as its alert, or (rarely: the
#: server may close first) as a reset connection; the server's log says why.
RESET = "connection reset by peer"


async def logged_times(server: TLSServer, text: str, more_than: int, timeout: float = 5.0) -> int:
    """How often the server has logged ``text``, once that is more than
    ``more_than`` (the server may log just after the client saw the refusal)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (count := server.log_text().count(text)) <= more_than and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return count


@pytest.mark.real_server
async def test_tls_without_client_certificate_fails_clearly(tls_server, pki):
    url = tls_server.url(**tls_query(pki, ssl_certfile=None, ssl_keyfile=None))
    refusals = tls_server.log_text().count("peer did not return a certificate")
    async with open_store(url) as store:
        with pytest.raises(WriteFailed) as write:
            await store.persist_runtime_state("rt", RuntimeState.IDLE)
        with pytest.raises(ReadFailed) as read:
            await store.load_runtime_state("rt")
    for caught in (write, read):
        assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
        message = str(caught.value).lower()
        assert "certificate required" in message or RESET in message, message
    assert await logged_times(tls_server, "peer did not return a certificate", refusals + 1) >= refusals + 2


@pytest.mark.real_server
@pytest.mark.parametrize("wrong", ["server CA", "client certificate"])
async def test_tls_with_the_wrong_ca_fails_clearly(tls_server, pki, wrong):
    refusals = tls_server.log_text().count("certificate verify failed")
    if wrong == "server CA":  # we do not trust the server
        query, expected = tls_query(pki, ssl_ca_certs=pki.other_ca_crt), ("certificate verify failed",)
    else:  # the server does not trust us: our certificate is from a CA it does not know
        query, expected = tls_query(pki, ssl_certfile=pki.other_ca_crt, ssl_keyfile=pki.other_ca_key), ("unknown ca", RESET)
    async with open_store(tls_server.url(**query)) as store:
        with pytest.raises(ReadFailed) as caught:
            await store.load_runtime_state("rt")
    error = caught.value
    assert isinstance(error.__cause__, redis.exceptions.ConnectionError)
    assert any(text in str(error).lower() for text in expected), str(error)
    if wrong == "server CA":
        assert any(isinstance(e, ssl.SSLCertVerificationError) for e in error_chain(error, displayed=False))
    else:
        assert await logged_times(tls_server, "certificate verify failed", refusals) > refusals


@pytest.mark.real_server
async def test_plain_scheme_against_a_tls_port_fails_clearly(tls_server):
    async with open_store(f"redis://127.0.0.1:{tls_server.port}/0?socket_timeout=5") as store:
        with pytest.raises(ReadFailed) as caught:
            await store.load_runtime_state("rt")
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)


def _rehashed_ca_dir(pki: PKI) -> str:
    folder = pki.folder / "ca-dir"
    if not folder.exists():
        folder.mkdir()
        (folder / "ca.pem").write_bytes(Path(pki.ca_crt).read_bytes())
        subprocess.run(["openssl", "rehash", str(folder)], check=True, capture_output=True)
    return str(folder)


#: TLS options that work in the URL's query (redis-py's from_url passes
#: unknown query parameters on as strings; it parses ssl_check_hostname,
#: ssl_min_version and the verify flags itself).
TLS_URL_VARIANTS = {
    "ca+cert+key": lambda pki: tls_query(pki),
    "ssl_cert_reqs=required": lambda pki: tls_query(pki, ssl_cert_reqs="required"),
    "ssl_cert_reqs=none (no CA: encrypted, not verified)": lambda pki: tls_query(pki, ssl_ca_certs=None, ssl_cert_reqs="none"),
    "ssl_check_hostname=false": lambda pki: tls_query(pki, ssl_check_hostname="false"),
    "ssl_min_version=771 (TLS 1.2)": lambda pki: tls_query(pki, ssl_min_version="771"),
    "ssl_ciphers": lambda pki: tls_query(pki, ssl_ciphers="ECDHE+AESGCM"),
    "ssl_include_verify_flags=VERIFY_X509_STRICT": lambda pki: tls_query(pki, ssl_include_verify_flags="VERIFY_X509_STRICT"),
    "ssl_ca_path (openssl rehash dir)": lambda pki: tls_query(pki, ssl_ca_certs=None, ssl_ca_path=_rehashed_ca_dir(pki)),
    "ssl_ca_data (PEM in the URL)": lambda pki: tls_query(pki, ssl_ca_certs=None, ssl_ca_data=Path(pki.ca_crt).read_text()),
    "ssl_password (encrypted key)": lambda pki: tls_query(pki, ssl_keyfile=pki.client_enc_key, ssl_password=KEY_PASSPHRASE),
}


@pytest.mark.real_server
@pytest.mark.parametrize("variant", list(TLS_URL_VARIANTS))
async def test_tls_url_parameters(tls_server, pki, variant):
    url = tls_server.url(**TLS_URL_VARIANTS[variant](pki), namespace="tls-params")
    async with open_store(url) as store:
        await roundtrip(store, f"rt-{len(variant)}")


@pytest.mark.real_server
async def test_tls_options_as_keyword_arguments(tls_server, pki):
    """Everything the query can carry can also go to open_store, which
    hands it to redis.asyncio.from_url (ssl_ca_data as PEM text, say)."""
    options = tls_query(pki, ssl_ca_certs=None)
    async with open_store(tls_server.url(namespace="tls-kw"), ssl_ca_data=Path(pki.ca_crt).read_text(), **options) as store:
        await roundtrip(store)


def test_tls_min_version_needs_a_number_in_the_url():
    with pytest.raises(ValueError, match="ssl_min_version"):
        open_store("rediss://127.0.0.1:1/0?ssl_min_version=TLSv1_2")


def test_tls_key_passphrase_is_masked():
    url = f"rediss://127.0.0.1:1/0?ssl_keyfile=/k.pem&ssl_password={KEY_PASSPHRASE}"
    store = open_store(url)
    texts = [repr(store), str(store), redact(url), redact(f"redis://127.0.0.1:1/0?pass%77ord={KEY_PASSPHRASE}")]
    asyncio.run(store.aclose())
    assert_no_secret(texts, [KEY_PASSPHRASE])


# -- 3. least privilege -------------------------------------------------------------------------

def lua_commands() -> set[str]:
    """Every command any script calls (redis.call / redis.pcall)."""
    found = set()
    for path in LUA_DIR.glob("*.lua"):
        for name in re.findall(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]", path.read_text()):
            found.add(name.lower())
    return found


def test_worker_rule_grants_exactly_what_the_scripts_and_client_use():
    """Tied to lua/: a script calling a new command (or no longer calling
    one) must update WORKER_ACL_RULE, and the README with it."""
    assert lua_commands() == set(WORKER_SCRIPT_COMMANDS)
    assert set(WORKER_COMMANDS) == set(WORKER_CLIENT_COMMANDS) | lua_commands()
    assert "~<ns>:rt:{*" in WORKER_ACL_RULE and "-@all" in WORKER_ACL_RULE
    assert not any(c.startswith("@") or c in ("eval", "keys", "flushall", "flushdb", "config") for c in WORKER_COMMANDS)


@pytest.mark.real_server
async def test_every_public_method_works_with_exactly_the_worker_rule(secured):
    namespace = "tenant-a"
    secured.add_worker("worker-a", namespace)
    secured.admin.script_flush()  # the worker loads the scripts itself (SCRIPT LOAD)
    secured.admin.acl_log_reset()
    async with open_store(secured.url("worker-a", WORKER_PW, namespace=namespace)) as store:
        await exercise_every_method(store, "rt-worker", secured.expire_commit_id(namespace))
        await roundtrip(store, "rt-more")
    assert not secured.admin.hexists(KeyLayout(namespace).runtime("rt-worker").commits, "long-gone")
    assert secured.denied_commands() == []  # not one command was refused on the way


@pytest.mark.real_server
async def test_every_command_in_the_worker_rule_is_needed(secured):
    namespace = "tenant-min"
    for command in WORKER_COMMANDS:
        if command == "info":  # the guard's server check: without it the store warns and goes on
            continue
        secured.admin.flushall()
        secured.admin.script_flush()
        secured.add_worker("worker-min", namespace)
        secured.admin.execute_command("ACL", "SETUSER", "worker-min", f"-{command}")
        async with open_store(secured.url("worker-min", WORKER_PW, namespace=namespace)) as store:
            with pytest.raises(RuntimeStoreError) as caught:
                await exercise_every_method(store, "rt-min", secured.expire_commit_id(namespace))
        assert permission_denied(caught.value), f"without {command}: {caught.value}"
        assert command in secured.denied_commands() or command.split("|")[0] in secured.denied_commands()
        secured.admin.acl_log_reset()


async def _seed(url: str, rid: str) -> None:
    async with open_store(url) as store:
        await roundtrip(store, rid)
        await store.persist_runtime_state(rid, RuntimeState.RUNNING)


async def _every_call_fails(store, rid: str) -> None:
    """Each method on another namespace: RuntimeStoreError, permission denied."""
    state = InputState.new_accepted(InputId.new())
    calls = {
        "persist_input_state": lambda: store.persist_input_state(rid, state),
        "persist_runtime_state": lambda: store.persist_runtime_state(rid, RuntimeState.STOPPED),
        "atomic_lifecycle_commit": lambda: store.atomic_lifecycle_commit(rid, RuntimeState.IDLE, [state]),
        "commit_session_boundary": lambda: store.commit_session_boundary(
            rid, SessionDelta(session_json(1)), RunId.new(), RunApplyBoundary.RUN_START, [], []),
        "atomic_apply": lambda: store.atomic_apply(rid, None, make_receipt(RunId.new(), 0), []),
        "acquire_lease": lambda: store.acquire_lease(rid, "intruder", 30),
        "steal_lease": lambda: store.steal_lease(rid, "intruder", 30),
        "renew_lease": lambda: store.renew_lease(Lease(rid, "intruder", 1, 30_000)),
        "release_lease": lambda: store.release_lease(Lease(rid, "intruder", 1, 30_000)),
        "revoke_lease": lambda: store.revoke_lease(rid),
        "current_lease": lambda: store.current_lease(rid),
        "load_input_states": lambda: store.load_input_states(rid),
        "load_input_state": lambda: store.load_input_state(rid, state.input_id),
        "load_boundary_receipt": lambda: store.load_boundary_receipt(rid, RunId.new(), 0),
        "load_session_snapshot": lambda: store.load_session_snapshot(rid),
        "load_runtime_state": lambda: store.load_runtime_state(rid),
        "dump_runtime": lambda: store.dump_runtime(rid),
        "delete_runtime": lambda: store.delete_runtime(rid),
        "commit_session_snapshot": lambda: store.commit_session_snapshot(rid, SessionDelta(session_json(1))),
        "load_input_states_by_ids": lambda: store.load_input_states_by_ids(rid, [state.input_id]),
        "load_input_state_by_idempotency_key": lambda: store.load_input_state_by_idempotency_key(rid, "hook"),
        "ensure_index": lambda: store.ensure_index(rid),
    }
    for name, call in calls.items():
        with pytest.raises(RuntimeStoreError) as caught:
            await call()
        assert isinstance(caught.value, (WriteFailed, ReadFailed)), name
        assert permission_denied(caught.value), f"{name}: {caught.value}"


@pytest.mark.real_server
@pytest.mark.parametrize("other", ["tenant-b", "tenant-a:eu", "tenant-ab", "tenant-"])
async def test_worker_cannot_read_or_write_another_namespace(secured, other):
    """A worker of tenant-a, through the store and raw commands, on
    another namespace (nested ones and common prefixes included)."""
    secured.add_worker("worker-a", "tenant-a")
    rid = "shared-runtime-id"
    await _seed(secured.admin_url(namespace=other), rid)
    keys = KeyLayout(other).runtime(rid)
    before = {key: secured.admin.dump(key) for key in keys}

    async with open_store(secured.url("worker-a", WORKER_PW, namespace=other)) as intruder:
        await _every_call_fails(intruder, rid)

    raw = secured.worker_client("worker-a")
    attempts = [
        ("GET", keys.snapshot), ("GET", keys.state), ("HGET", keys.inputs, "x"), ("HGETALL", keys.receipts),
        ("SET", keys.state, "x"), ("DEL", keys.snapshot), ("UNLINK", keys.meta), ("HSET", keys.meta, "k", "v"),
        ("TYPE", keys.snapshot), ("PTTL", keys.lease), ("INCR", keys.fence),
    ]
    for command in attempts:
        with pytest.raises(NoPermissionError):
            raw.execute_command(*command)
    # A script the worker loads itself may not launder access: Redis checks
    # the ACL of every command and key inside it, declared or not.
    sha = raw.script_load("return redis.call('GET', KEYS[1] or ARGV[1])")
    with pytest.raises(ResponseError):
        raw.evalsha(sha, 1, keys.snapshot)
    with pytest.raises(ResponseError, match="(?i)permission|can't run|can't access|noperm"):
        raw.evalsha(sha, 0, keys.snapshot)
    raw.close()
    assert {key: secured.admin.dump(key) for key in keys} == before  # untouched


@pytest.mark.real_server
async def test_worker_may_run_nothing_else(secured):
    secured.add_worker("worker-a", "tenant-a")
    raw = secured.worker_client("worker-a")
    for command in [
        ("FLUSHALL",), ("FLUSHDB",), ("KEYS", "*"), ("CONFIG", "GET", "requirepass"), ("EVAL", "return 1", 0),
        ("SCRIPT", "FLUSH"), ("ACL", "LIST"), ("ACL", "SETUSER", "worker-a", "+@all"),
        ("SHUTDOWN", "NOSAVE"), ("MONITOR",), ("CLIENT", "LIST"), ("SELECT", "1"), ("PUBLISH", "c", "m"),
        ("MIGRATE", "127.0.0.1", "1", "k", "0", "1"), ("RENAME", "tenant-a:rt:{x}:state", "elsewhere"),
    ]:
        with pytest.raises(NoPermissionError):
            raw.execute_command(*command)
    raw.close()


@pytest.mark.real_server
async def test_glob_characters_in_the_namespace_are_escaped_in_the_rule(secured):
    secured.add_worker("worker-glob", "t*[1]")
    await _seed(secured.admin_url(namespace="tx1"), "rt")  # what an unescaped t*[1] would match
    async with open_store(secured.url("worker-glob", WORKER_PW, namespace="t*[1]")) as store:
        await roundtrip(store)
        assert (await store.list_runtimes())[1] == ["rt-secure"]
    async with open_store(secured.url("worker-glob", WORKER_PW, namespace="tx1")) as intruder:
        with pytest.raises(ReadFailed):
            await intruder.load_runtime_state("rt")


@pytest.mark.real_server
async def test_colon_pattern_would_grant_nested_namespaces(secured):
    """Why the rule's key pattern is ``~<ns>:rt:{*``: the wider ``~<ns>:*``
    lets a worker of ``tenant-a`` read and write namespace ``tenant-a:eu``."""
    secured.add_worker("worker-wide", "tenant-a", key_pattern=WIDE_KEY_PATTERN.format(ns="tenant-a"))
    await _seed(secured.admin_url(namespace="tenant-a:eu"), "rt-eu")
    async with open_store(secured.url("worker-wide", WORKER_PW, namespace="tenant-a:eu")) as store:
        assert await store.load_runtime_state("rt-eu") == RuntimeState.RUNNING


@pytest.mark.real_server
async def test_key_names_of_other_namespaces_are_visible_through_scan(secured):
    """A limit of Redis ACLs, documented: SCAN is not filtered by key
    patterns, so a worker can list other namespaces' runtime ids (never
    their values). Separate databases or servers hide names too."""
    secured.add_worker("worker-a", "tenant-a")
    await _seed(secured.admin_url(namespace="tenant-c"), "visible-id")
    async with open_store(secured.url("worker-a", WORKER_PW, namespace="tenant-c")) as store:
        assert "visible-id" in (await store.list_runtimes(0, 1000))[1]
        with pytest.raises(ReadFailed):
            await store.load_runtime_state("visible-id")


@pytest.mark.real_server
async def test_database_other_than_0_needs_select(secured):
    secured.add_worker("worker-db", "tenant-db")
    url = secured.url("worker-db", WORKER_PW, db=3, namespace="tenant-db")
    async with open_store(url) as store:
        with pytest.raises(ReadFailed):
            await store.load_runtime_state("rt")
    secured.add_worker("worker-db", "tenant-db", "+select")
    async with open_store(url) as store:
        await roundtrip(store)
    assert secured.admin.execute_command("SELECT", 0) and secured.admin.exists(*KeyLayout("tenant-db").runtime("rt-secure")) == 0


@pytest.mark.real_server
async def test_wait_replicas_needs_wait_and_script_exists(secured):
    for missing in ("+wait", "+script|exists"):
        secured.add_worker("worker-wait", "tenant-wait", *{"+wait", "+script|exists"} - {missing})
        url = secured.url("worker-wait", WORKER_PW, namespace="tenant-wait", wait_replicas=1, wait_timeout=0.05)
        async with open_store(url) as store:
            with pytest.raises(WriteFailed) as refused:
                await store.persist_runtime_state("rt", RuntimeState.IDLE)
        # Not the missing replica (which fails every write here too): the missing right.
        assert permission_denied(refused.value), (missing, refused.value)
    secured.add_worker("worker-wait", "tenant-wait", "+wait", "+script|exists")
    url = secured.url("worker-wait", WORKER_PW, namespace="tenant-wait", wait_replicas=1, wait_timeout=0.05)
    async with open_store(url) as store:
        with pytest.raises(WriteFailed, match="replicas acknowledged") as caught:  # no replica here: WAIT ran
            await store.persist_runtime_state("rt", RuntimeState.IDLE)
    assert not permission_denied(caught.value)


@pytest.mark.real_server
async def test_failed_wait_writes_give_their_connection_back(secured):
    secured.add_worker("worker-leak", "tenant-leak", "+wait")  # no +script|exists: the pipeline's check fails
    url = secured.url("worker-leak", WORKER_PW, namespace="tenant-leak", wait_replicas=1, wait_timeout=0.05)
    async with open_store(url, max_connections=2, pool_timeout=0.5) as store:
        for _ in range(3):
            with pytest.raises(WriteFailed):
                await store.persist_runtime_state("rt", RuntimeState.IDLE)
        assert await store.load_runtime_state("rt") is None  # a connection is still to be had


# -- 4. credentials never shown -------------------------------------------------------------

def _capture_all_logs(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="redis")
    caplog.set_level(logging.DEBUG, logger="redis_store")


@pytest.mark.real_server
async def test_no_secret_in_repr_errors_or_logs(secured, caplog):
    _capture_all_logs(caplog)
    secured.admin.execute_command("ACL", "SETUSER", "alice", "reset", "on", f">{ALICE_PW}", "~*", "&*", "+@all")
    texts: list[str] = []
    working = [
        secured.admin_url(namespace="leak"),
        secured.url() + "?" + urlencode({"password": ADMIN_PW, "namespace": "leak"}),
        secured.url("alice", ALICE_PW, namespace="leak"),
        secured.url() + "?" + urlencode({"username": "alice", "password": ALICE_PW}),
    ]
    for url in working:
        async with open_store(url) as store:
            await roundtrip(store)
            texts += [repr(store), str(store), repr(store.fenced(await store.acquire_lease("rt-l", "w", 5)))]
            await store.delete_runtime("rt-l")

    failing = [
        secured.url("", WRONG_PW),                                           # wrong password
        secured.url("alice", WRONG_PW) + "?namespace=x",                     # wrong password of an ACL user
        secured.url() + "?" + urlencode({"password": WRONG_PW}),             # wrong ?password=
        f"redis://u:{quote(FAR_PW, safe='')}@127.0.0.1:1/0",                 # unreachable
        f"rediss://u:{quote(FAR_PW, safe='')}@127.0.0.1:1/0",                # unreachable, TLS
        f"redis+cluster://u:{quote(FAR_PW, safe='')}@127.0.0.1:1,127.0.0.1:2",  # unreachable cluster seeds
    ]
    for url in failing:
        store = open_store(url)
        texts += [repr(store), str(store)]
        for call in (lambda: store.load_runtime_state("rt"), lambda: store.persist_runtime_state("rt", RuntimeState.IDLE)):
            with pytest.raises(Exception) as caught:
                await call()
            texts += error_texts(caught.value)
        await store.aclose()

    sentinel = open_store(f"redis+sentinel://u:{quote(FAR_PW, safe='')}@127.0.0.1:1/svc")  # not connected: slow to fail
    texts += [repr(sentinel), str(sentinel)]
    await sentinel.aclose()

    refused = [
        f"mongodb://u:{FAR_PW}@host/db",                                     # unknown scheme
        f"redis://u:{MALFORMED_PW}@127.0.0.1:1/0",                           # unencoded '/' in the password
        f"redis://u:{quote(FAR_PW, safe='')}@127.0.0.1:1/0?commit_id_ttl=soon",  # bad store option
        f"redis://u:{quote(FAR_PW, safe='')}@127.0.0.1:notaport/0",          # bad port
        f"redis+cluster://u:{quote(FAR_PW, safe='')}@127.0.0.1:x",           # bad seed
    ]
    for url in refused:
        with pytest.raises(ValueError) as caught:
            open_store(url)
        texts += error_texts(caught.value, displayed=True)  # the raw chain, as displayed

    texts += log_texts(caplog)
    assert_no_secret(texts, SECRETS + (MALFORMED_PW,))


def test_malformed_url_error_chain_holds_no_part_of_the_password():
    with pytest.raises(ValueError) as caught:
        open_store(f"redis://u:{MALFORMED_PW}@127.0.0.1:1/0")
    assert_no_secret(error_texts(caught.value, displayed=False), [MALFORMED_PW])


def test_unencoded_at_sign_in_the_password_is_masked():
    password = "first@" + FAR_PW
    store = open_store(f"redis://u:{password}@127.0.0.1:1/0")
    texts = [repr(store), redact(f"redis://u:{password}@127.0.0.1:1/0")]
    asyncio.run(store.aclose())
    assert_no_secret(texts, [FAR_PW])


def test_url_without_scheme_error_hides_the_password():
    with pytest.raises(ValueError, match="no scheme") as caught:
        open_store(f"u:{FAR_PW}@127.0.0.1:1")
    assert_no_secret(error_texts(caught.value), [FAR_PW])


async def test_unreachable_cluster_fails_with_a_store_error():
    async with open_store("redis+cluster://127.0.0.1:1") as store:
        with pytest.raises(RuntimeStoreError):
            await store.load_runtime_state("rt")


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.real_server
def test_doctor_accepts_a_worker_with_exactly_the_worker_rule(secured, capsys):
    secured.add_worker("worker-doc", "meerkat", "+info", "+config|get", "+acl|whoami", "+acl|dryrun")
    cli_main(["doctor", secured.url("worker-doc", WORKER_PW), "--json"])
    findings = {f["topic"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert findings["permissions"]["level"] == "ok", findings["permissions"]


@pytest.mark.real_server
def test_cli_never_prints_credentials(secured, capsys, caplog, monkeypatch):
    """check, inspect, runtimes, doctor and simulate, with a password in the
    user info and in ?password=, right and wrong, and with bad URLs."""
    _capture_all_logs(caplog)
    monkeypatch.delenv("REDIS_STORE_URL", raising=False)

    def query_url(namespace: str | None = None, password: str = ADMIN_PW) -> str:
        query = {"password": password, **({"namespace": namespace} if namespace else {})}
        return f"{secured.url()}?{urlencode(query)}"

    url, wrong = secured.admin_url(namespace="cli"), secured.url("", WRONG_PW, namespace="cli")
    asyncio.run(_seed(url, "cli-runtime"))
    simulate = ["--workers", "2", "--runtimes", "2", "--turns", "1"]
    runs = [
        (0, ["check", url]), (0, ["check", query_url("cli"), "--json"]), (0, ["check", url, "--runtime", "cli-runtime"]),
        (0, ["inspect", url, "cli-runtime"]), (0, ["inspect", query_url("cli"), "cli-runtime", "--json"]),
        (0, ["runtimes", url, "--all"]), (0, ["runtimes", query_url("cli"), "--json"]),
        (1, ["doctor", secured.admin_url()]),  # 1: persistence is off on this test server
        (1, ["doctor", query_url(), "--json"]),
        (0, ["simulate", "--url", secured.admin_url(namespace="cli-sim"), *simulate]),
        (0, ["simulate", "--url", query_url("cli-sim-q"), *simulate, "--json"]),
        (2, ["check", wrong]), (2, ["inspect", wrong, "cli-runtime"]), (2, ["runtimes", query_url("cli", WRONG_PW)]),
        (2, ["doctor", secured.url("", WRONG_PW)]), (2, ["doctor", query_url(None, WRONG_PW), "--json"]),  # not reached
        (2, ["simulate", "--url", wrong, "--workers", "1", "--runtimes", "1", "--turns", "1"]),
        (2, ["check", f"redis://u:{quote(FAR_PW, safe='')}@127.0.0.1:1/0"]),  # unreachable
        (2, ["check", f"mongodb://u:{FAR_PW}@host/db"]),                       # unknown scheme
        (2, ["check", f"redis://u:{MALFORMED_PW}@127.0.0.1:1/0"]),             # malformed
    ]
    outputs = {}
    for code, argv in runs:
        got, output = _cli(capsys, *argv)
        assert got == code, f"{argv[0]} exited {got}, expected {code}:\n{output}"
        outputs[" ".join(argv)] = output
    assert "cli-runtime" in outputs[f"runtimes {url} --all"]
    assert "checked 1 runtime: 0 violations" in outputs[f"check {url}"]
    assert "***" in outputs[f"doctor {secured.admin_url()}"]  # it names the server, masked
    assert_no_secret(list(outputs.values()) + log_texts(caplog), SECRETS + (MALFORMED_PW,))


def test_doctor_never_prints_part_of_a_malformed_password(capsys):
    code, output = _cli(capsys, "doctor", f"redis://u:{MALFORMED_PW}@127.0.0.1:1/0")
    assert code == 2
    assert_no_secret([output], [MALFORMED_PW])


@pytest.mark.real_server
def test_doctor_takes_the_same_url_as_the_other_commands(secured, capsys):
    code, output = _cli(capsys, "doctor", secured.admin_url(namespace="cli"), "--json")
    findings = {f["topic"]: f for f in json.loads(output)["findings"]}
    # It connected and read the server (this test server runs without
    # persistence, hence exit 1), rather than failing on the URL.
    assert findings["server"]["level"] == "ok" and findings["persistence"]["level"] == "fail"
    assert "connection" not in findings
    assert code == 1


# README, Least privilege: "+memory|usage for inspect" (Redis's own figure).
@pytest.mark.real_server
def test_inspect_uses_memory_usage_where_granted_and_value_lengths_otherwise(secured, capsys):
    namespace = "tenant-inspect"
    asyncio.run(_seed(secured.admin_url(namespace=namespace), "rt"))

    def stored_bytes(output: str) -> int:
        return int(re.search(r"stored bytes\s+(\d+)", output).group(1))

    secured.add_worker("worker-inspect", namespace)
    url = secured.url("worker-inspect", WORKER_PW, namespace=namespace)
    code, output = _cli(capsys, "inspect", url, "rt")
    assert code == 0, output
    lengths = stored_bytes(output)  # MEMORY USAGE refused: the values' lengths
    secured.add_worker("worker-inspect", namespace, "+memory|usage")
    code, output = _cli(capsys, "inspect", url, "rt")
    assert code == 0, output
    assert stored_bytes(output) > lengths  # Redis's figure counts its own overhead too


def test_doctor_recommends_exactly_the_tested_worker_rule():
    from redis_store.doctor import STORE_COMMANDS, acl_rule

    assert set(STORE_COMMANDS) == set(WORKER_COMMANDS)
    assert acl_rule("prod*", "worker").startswith("ACL SETUSER worker reset on ><password> ~prod\\*:rt:{* resetchannels -@all +")


@pytest.mark.real_server
async def test_without_info_the_guard_warns_and_the_worker_goes_on(secured, caplog):
    namespace = "tenant-noinfo"
    secured.add_worker("worker-noinfo", namespace)
    secured.admin.execute_command("ACL", "SETUSER", "worker-noinfo", "-info")
    caplog.set_level(logging.WARNING, logger="redis_store")
    async with open_store(secured.url("worker-noinfo", WORKER_PW, namespace=namespace)) as store:
        await roundtrip(store, "rt")
    assert any("INFO is not allowed" in r.getMessage() for r in caplog.records)
