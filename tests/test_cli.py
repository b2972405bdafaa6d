"""The redis-store command: simulate (on memory, on a private server, across
processes), runtimes, inspect, check (each invariant) and doctor, against
real servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import msgspec
import pytest
import redis

from redis_store import InputId, InputState, RunId, open_store
from redis_store.cli import main
from redis_store.keys import KeyLayout
from redis_store.scripts import SCRIPT_NAMES
from servers import ServerProcess
from sessions import session_json
from test_conformance import commit


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_simulate_on_memory_reports_a_clean_check(capsys):
    code, out = run_cli(capsys, "simulate", "--url", "memory://", "--runtimes", "5", "--turns", "3", "--workers", "3", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["ok"]
    assert summary["commits"] == 5 * 3 * 2
    assert summary["violations"] == [] and summary["errors"] == []
    assert set(summary["operations"]) >= {"commit_session_boundary", "atomic_lifecycle_commit", "persist_input_state"}
    assert summary["operations"]["commit_session_boundary"]["p99_ms"] >= summary["operations"]["commit_session_boundary"]["p50_ms"]


def test_simulate_without_url_uses_a_private_server_and_several_processes(redis_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_STORE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "redis_store", "simulate", "--runtimes", "6", "--turns", "2", "--workers", "4", "--processes", "2"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "private server" in result.stderr
    assert "progress:" in result.stderr  # plain progress lines without a terminal
    assert "check: clean (6 runtimes verified)" in result.stdout
    assert "commits/s" in result.stdout
    assert "4 workers in 2 processes, 6 runtimes x 2 turns" in result.stderr
    # The private server runs durably (AOF), like a deployment: the guard has nothing to say.
    assert "redis-store:" not in result.stderr and "persistence" not in result.stderr


def test_simulate_refuses_memory_across_processes(capsys):
    assert main(["simulate", "--url", "memory://", "--processes", "2"]) == 2
    assert "one process" in capsys.readouterr().err


def test_simulate_twice_against_one_server_ends_clean_twice(capsys, redis_server):
    url = f"{redis_server.url}?namespace=twice{os.getpid()}"
    seen = []
    for _ in range(2):
        code, out = run_cli(capsys, "simulate", "--url", url, "--runtimes", "3", "--turns", "2", "--workers", "2", "--json")
        summary = json.loads(out)
        assert code == 0 and summary["ok"], summary
        seen.append(summary)
    code, out = run_cli(capsys, "runtimes", url, "--all", "--json")
    assert len(json.loads(out)["runtimes"]) == 6  # each run wrote (and checked) its own three


def test_simulate_exit_codes(capsys):
    # Every commit refused (a snapshot limit below the session size): the run fails, truthfully.
    code, out = run_cli(capsys, "simulate", "--url", "memory://?max_snapshot_bytes=100", "--runtimes", "2", "--turns", "1")
    assert code == 1 and "check: FAILED" in out and "errors: 2" in out
    assert main(["simulate", "--url", "memory://", "--turns", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    code = main(["simulate", "--url", "memory://", "--runtimes", "1", "--turns", "1", "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 0 and "check: clean (1 runtime verified)" in captured.out
    assert "1 worker in 1 process, 1 runtime x 1 turn" in captured.err


@pytest.fixture
def seeded(redis_server):
    """A namespace with two healthy runtimes on the real server."""
    url = f"{redis_server.url}?namespace=cli{os.getpid()}{id(redis_server) % 1000}"

    async def seed():
        async with open_store(url) as store:
            for rid in ("alpha", "beta{1}"):
                await store.persist_input_state(rid, InputState.new_accepted(InputId.new()))
                await commit(store, rid, RunId.new(), [InputState.new_accepted(InputId.new())], turns=2)
        return url

    url = asyncio.run(seed())
    yield url
    client = redis.Redis.from_url(url.split("?")[0])
    for key in client.scan_iter(match=KeyLayout(url.split("namespace=")[1]).meta_pattern()[: -len("{*}:meta")] + "*"):
        client.delete(key)
    client.close()


def test_runtimes_inspect_and_check_on_a_real_server(capsys, seeded):
    code, out = run_cli(capsys, "runtimes", seeded, "--all", "--json")
    assert code == 0 and sorted(json.loads(out)["runtimes"]) == ["alpha", "beta{1}"]
    code, out = run_cli(capsys, "inspect", seeded, "beta{1}")
    assert code == 0
    assert "digest matches" in out and "receipts (1 receipt in 1 run, oldest run first)" in out and "inputs (2 inputs)" in out
    assert "idempotency   0 keys indexed" in out
    code, out = run_cli(capsys, "inspect", seeded, "alpha", "--json")
    report = json.loads(out)
    assert report["snapshot_digest_matches"] is True and report["stored_bytes"] > 0
    assert report["snapshot_owner"].startswith("minted ") and report["idempotency_keys"] == 0
    assert [i["last_boundary_sequence"] for i in report["inputs"]] == [None, 0]
    code, out = run_cli(capsys, "check", seeded)
    assert code == 0 and "checked 2 runtimes: 0 violations" in out
    code, out = run_cli(capsys, "check", seeded, "--runtime", "alpha")
    assert code == 0 and "checked 1 runtime: 0 violations" in out


def test_a_runtime_with_nothing_stored_is_said_so_with_exit_1(capsys, seeded):
    assert main(["inspect", seeded, "no-such-runtime"]) == 1
    assert "runtime 'no-such-runtime': nothing is stored for it" in capsys.readouterr().err
    code, out = run_cli(capsys, "check", seeded, "--runtime", "no-such-runtime", "--runtime", "alpha")
    assert code == 1
    assert "NOTHING STORED runtime 'no-such-runtime'" in out
    assert "checked 1 runtime: 0 violations; 1 runtime named with nothing stored" in out
    code, out = run_cli(capsys, "check", seeded, "--runtime", "no-such-runtime", "--json")
    assert code == 1 and json.loads(out)["nothing_stored"] == ["no-such-runtime"]


def test_inspect_lists_runs_in_creation_order(capsys, redis_server):
    url = f"{redis_server.url}?namespace=order{os.getpid()}"
    runs = [RunId.new() for _ in range(200)]  # beyond a listpack: Redis hashes them in random order

    async def seed():
        async with open_store(url) as store:
            for run in runs:
                await commit(store, "many", run, turns=1)

    asyncio.run(seed())
    code, out = run_cli(capsys, "inspect", url, "many", "--json")
    assert code == 0
    assert list(json.loads(out)["receipts"]) == [str(run) for run in runs]
    code, out = run_cli(capsys, "inspect", url, "many")
    table = [line.split()[0] for line in out.split("oldest run first)")[1].splitlines()[3:] if line.strip()]
    assert table[: len(runs)] == [str(run) for run in runs]

def _corrupt(url: str, how) -> None:
    namespace = url.split("namespace=")[1]
    client = redis.Redis.from_url(url.split("?")[0])
    how(client, KeyLayout(namespace).runtime("alpha"))
    client.close()


@pytest.mark.parametrize(
    "invariant, damage",
    [
        ("decodes", lambda c, k: c.set(k.state, b"\xc1")),
        ("decodes", lambda c, k: c.set(k.snapshot, msgspec.msgpack.encode([7, b"{}"]))),
        ("sequence-counter", lambda c, k: c.hset(k.run_seqs, next(iter(c.hkeys(k.run_seqs))), b"not a number")),
        ("input-order", lambda c, k: c.rpush(k.input_order, b"019a2b3c-0000-7000-8000-000000000009")),
        ("input-stamp", lambda c, k: c.delete(k.receipts)),
        ("snapshot-digest", lambda c, k: c.set(k.snapshot, msgspec.msgpack.encode([1, session_json(3)]))),
        ("idempotency-index", lambda c, k: c.hset(k.idempotency, "key:ghost", b"019a2b3c-0000-7000-8000-000000000009")),
    ],
)
def test_check_reports_each_violation_precisely(capsys, seeded, invariant, damage):
    _corrupt(seeded, damage)
    code, out = run_cli(capsys, "check", seeded, "--json")
    report = json.loads(out)
    assert code == 1
    assert {v["runtime"] for v in report["violations"]} == {"alpha"}  # beta{1} stays clean
    assert invariant in {v["invariant"] for v in report["violations"]}
    code, out = run_cli(capsys, "check", seeded, "--runtime", "beta{1}")
    assert code == 0


def test_doctor_on_an_unsafe_and_a_safe_server(capsys, redis_server):
    code, out = run_cli(capsys, "doctor", redis_server.url)
    assert code == 1  # the test server keeps nothing on disk
    assert "[FAIL] persistence" in out and "appendonly yes" in out
    assert f"all {len(SCRIPT_NAMES)} scripts load" in out
    safe = ServerProcess(redis_server.binary, "--appendonly", "yes", "--maxmemory-policy", "noeviction").start()
    try:
        code, out = run_cli(capsys, "doctor", safe.url, "--json")
        findings = {f["topic"]: f for f in json.loads(out)["findings"]}
        assert code == 0, out
        assert findings["persistence"]["level"] == "ok" and findings["eviction"]["level"] == "ok"
        admin = redis.Redis(port=safe.port)
        admin.config_set("maxmemory-policy", "allkeys-lru")
        admin.acl_setuser("app", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-scan", "-script"])
        admin.acl_setuser("limited", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@read", "+info", "+acl|whoami", "+script|load", "+config|get"])
        admin.close()
        code, out = run_cli(capsys, "doctor", f"redis://app:pw@127.0.0.1:{safe.port}/0")
        assert code == 1 and "pw@" not in out
        assert "[FAIL] eviction: maxmemory-policy allkeys-lru" in out
        assert "may not run on namespace 'meerkat': SCRIPT|LOAD, SCAN" in out
        assert "the rule a worker needs: ACL SETUSER worker reset on" in out
        code, out = run_cli(capsys, "doctor", f"redis://limited:pw@127.0.0.1:{safe.port}/0")
        assert "ACL DRYRUN is not allowed" in out
    finally:
        safe.stop()


def test_unreachable_url_is_a_clean_error_with_exit_2_for_every_command(capsys, tmp_path):
    from servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=1"
    dump = tmp_path / "dump.jsonl"
    assert main(["export", "memory://"]) == 0
    dump.write_text(capsys.readouterr().out)
    commands = [
        ["runtimes", url], ["inspect", url, "rt"], ["check", url], ["check", url, "--runtime", "rt"], ["prune", url],
        ["doctor", url], ["export", url], ["import", url, str(dump)], ["copy", url, "memory://"], ["copy", "memory://", url],
        ["simulate", "--url", url, "--runtimes", "1", "--turns", "1", "--workers", "1"],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        assert f"redis-store {argv[0]}:" in capsys.readouterr().err or argv[0] == "doctor", argv


def test_usage_errors_exit_2(capsys):
    for argv in (["nosuch"], ["check"], ["inspect", "memory://"], ["prune", "memory://", "--keep-runs", "x"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2, argv
    assert main(["check", "mongodb://host/db"]) == 2
    assert "unknown store URL scheme" in capsys.readouterr().err
    assert main(["runtimes", "memory://"]) == 0
    assert main(["prune", "memory://", "--keep-runs", "1"]) == 0


def test_help_documents_every_commands_exit_status(capsys):
    from redis_store.cli import EXIT_STATUS, build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(EXIT_STATUS) == set(commands)
    text = parser.format_help()
    for name in commands:
        assert name in text.split("exit status:")[1]
        assert "exit status: 0" in " ".join(commands[name].format_help().split())


def test_prune_applies_the_retention_policy(capsys, seeded):
    async def more_runs():
        async with open_store(seeded) as store:
            for _ in range(3):
                await commit(store, "alpha", RunId.new(), turns=1)

    asyncio.run(more_runs())
    code, out = run_cli(capsys, "prune", seeded, "--keep-runs", "1", "--json")
    report = json.loads(out)
    # alpha: 4 runs, 1 kept, 1 pinned by an input's last_run_id; beta{1}: 1 run, pinned
    assert code == 0 and report == {"runtimes": 2, "commit_ids_forgotten": 0, "receipts_removed": 2}
    code, out = run_cli(capsys, "check", seeded)
    assert code == 0, out


async def test_memory_usage_is_on_every_backend(store):
    """What inspect and simulate report as stored bytes, without asking which backend it is."""
    assert await store.memory_usage("nothing-here") == 0
    await commit(store, "sized", RunId.new(), [InputState.new_accepted(InputId.new())], turns=3)
    assert await store.memory_usage("sized") > len(session_json(3))
