"""export / import / copy: round trips across every kind of backend (memory,
real Redis, a real Cluster, a file, real Valkey), re-imports, refusals,
truncated and corrupt files, and bounded memory."""

from __future__ import annotations

import dataclasses
import io
import json
import tracemalloc

import msgspec
import pytest

from conftest import Backend
from redis_store import (
    FencedOut,
    InputId,
    InputState,
    RunApplyBoundary,
    RunId,
    RuntimeState,
    SessionDelta,
    open_store,
)
from redis_store.audit import runtime_ids
from redis_store.backup import ImportStopped, NothingStored, copy_store, export_lines, import_lines
from redis_store.cli import main
from redis_store.dumpfile import FORMAT
from sessions import session_json

RUNTIMES = ["rt-plain", "rt-{braces}*?[glob]", "rt-ünïcødé-🦊", "rt-leased"]


async def populate(store) -> None:
    """Runtimes using every part of the store: minted and applied receipts,
    snapshots of all three kinds, idempotency keys, a pruned run, input stamps, leases (epochs)."""
    for n, rid in enumerate(RUNTIMES):
        first = msgspec.structs.replace(InputState.new_accepted(InputId.new()), idempotency_key=f"hook-{n}")
        first.persisted_input = {"input_type": "prompt", "text": f"hello {rid}", "nested": [1, 2.5, None, {"k": "v"}]}
        await store.persist_input_state(rid, first)
        old_run, run = RunId.new(), RunId.new()
        await store.commit_session_boundary(rid, SessionDelta(session_json(1)), old_run, RunApplyBoundary.RUN_START, [first.input_id], [])
        await store.commit_session_boundary(rid, SessionDelta(session_json(2)), old_run, RunApplyBoundary.RUN_CHECKPOINT, [], [])
        second = InputState.new_accepted(InputId.new())
        receipt = await store.commit_session_boundary(
            rid, SessionDelta(session_json(3 + n)), run, RunApplyBoundary.RUN_START, [second.input_id], [second, first],
            commit_id=f"c-{n}",
        )
        await store.atomic_lifecycle_commit(rid, RuntimeState.IDLE, [])
        if n == 2:  # a snapshot mid-run, belonging to no receipt
            await store.commit_session_snapshot(rid, SessionDelta(session_json(5)))
        if n % 2:  # a snapshot stored by atomic_apply, with a caller-minted receipt
            applied = msgspec.structs.replace(receipt, sequence=receipt.sequence + 5)
            await store.atomic_apply(rid, SessionDelta(session_json(4)), applied, [])
        await store.prune_runtime(rid, keep_runs=1)  # drops old_run's receipts, keeps its counter
    for _ in range(3):
        await store.acquire_lease("rt-leased", "worker-a", 30)
        await store.revoke_lease("rt-leased")
    await store.acquire_lease("rt-leased", "worker-b", 30)


async def values(store, rid: str) -> dict:
    """Every decoded value of a runtime, through the public reads."""
    raw = await store.dump_runtime(rid)
    receipts = {}
    for field in raw.receipts:
        run, _, seq = field.rpartition(":")
        receipts[field] = await store.load_boundary_receipt(rid, RunId.parse(run), int(seq))
    return {
        "state": await store.load_runtime_state(rid),
        "inputs": await store.load_input_states(rid),
        "snapshot": await store.load_session_snapshot(rid),
        "receipts": receipts,
        "by_key": await store.load_input_state_by_idempotency_key(rid, f"hook-{RUNTIMES.index(rid)}"),
    }


async def same_runtimes(a, b) -> None:
    for rid in RUNTIMES:
        assert await b.dump_runtime(rid) == await a.dump_runtime(rid), rid
        assert await values(b, rid) == await values(a, rid), rid
        assert (await values(b, rid))["by_key"] is not None  # the index came along
        assert await b.fencing_epoch(rid) >= await a.fencing_epoch(rid)
    assert sorted([rid async for rid in runtime_ids(b)]) == sorted(RUNTIMES)


async def dump_bytes(store, runtimes=None) -> bytes:
    return b"".join([line async for line in export_lines(store, runtimes)])


def lines_of(data: bytes) -> list[bytes]:
    return io.BytesIO(data).readlines()


async def test_round_trip_memory_redis_cluster_file_valkey(redis_server, cluster_server, valkey_server, tmp_path):
    servers = [Backend("redis", redis_server), Backend("cluster", cluster_server), Backend("valkey", valkey_server)]
    try:
        memory = open_store("memory://")
        await populate(memory)
        redis_store, cluster_store, valkey_store = (b.open() for b in servers)
        report = await copy_store(memory, redis_store)
        assert (report.imported, report.unchanged) == (len(RUNTIMES), 0)
        await same_runtimes(memory, redis_store)
        await copy_store(redis_store, cluster_store)
        await same_runtimes(memory, cluster_store)
        path = tmp_path / "dump.jsonl"
        path.write_bytes(await dump_bytes(cluster_store))
        with open(path, "rb") as file:
            await import_lines(valkey_store, file)
        await same_runtimes(memory, valkey_store)
        assert await valkey_store.fencing_epoch("rt-leased") == await memory.fencing_epoch("rt-leased") == 7
        assert await valkey_store.current_lease("rt-leased") is None  # leases are not copied
        # The file is meerkat's wire form: an input state as to_dict writes it.
        line = json.loads(lines_of(path.read_bytes())[1])
        stored = (await memory.load_input_states(line["runtime_id"]))[0]
        assert line["inputs"][0] == stored.to_dict()
    finally:
        for backend in servers:
            await backend.close()


async def test_reimport_duplicates_nothing_and_commit_ids_are_not_copied(redis_server):
    backend = Backend("redis", redis_server)
    try:
        memory, target = open_store("memory://"), backend.open()
        await populate(memory)
        data = await dump_bytes(memory)
        await import_lines(target, lines_of(data))
        again = await import_lines(target, lines_of(data))
        assert (again.imported, again.unchanged) == (0, len(RUNTIMES))
        await same_runtimes(memory, target)
        # Commit-id memory stays behind: the same id commits anew on the target.
        state = InputState.new_accepted(InputId.new())
        receipt = await target.commit_session_boundary(
            "rt-plain", SessionDelta(session_json(9)), RunId.new(), RunApplyBoundary.RUN_START, [], [state], commit_id="c-0"
        )
        assert receipt.sequence == 0 and receipt.message_count > 0
    finally:
        await backend.close()


@pytest.fixture
async def target(backend):
    return backend.open()


async def test_a_runtime_holding_other_data_is_refused_unless_replace(target):
    memory = open_store("memory://")
    await populate(memory)
    other = InputState.new_accepted(InputId.new())
    await target.persist_input_state("rt-plain", other)
    before = await target.dump_runtime("rt-plain")
    with pytest.raises(ImportStopped, match=r"line 2: runtime 'rt-plain' already holds other data.*--replace"):
        await copy_store(memory, target, ["rt-plain"])
    assert await target.dump_runtime("rt-plain") == before

    lease = await target.acquire_lease("rt-plain", "holder", 30)
    report = await copy_store(memory, target, ["rt-plain"], replace=True)
    assert (report.imported, report.replaced) == (1, 1)
    assert await target.dump_runtime("rt-plain") == await memory.dump_runtime("rt-plain")
    with pytest.raises(FencedOut):  # the target's live lease was revoked
        await target.fenced(lease).persist_runtime_state("rt-plain", RuntimeState.STOPPED)
    assert await target.fencing_epoch("rt-plain") == lease.token + 1  # one step, as revoke_lease takes


async def test_a_snapshot_without_a_receipt_stays_so_through_a_copy(target):
    memory = open_store("memory://")
    run_id = RunId.new()
    await memory.commit_session_boundary("rt", SessionDelta(session_json(1)), run_id, RunApplyBoundary.RUN_START, [], [])
    await memory.commit_session_snapshot("rt", SessionDelta(session_json(2)))
    raw = await memory.dump_runtime("rt")
    assert raw.meta.get("snapshot_without_receipt") == "1"
    assert await target.restore_runtime("rt", raw) is True
    assert await target.dump_runtime("rt") == raw


async def test_an_idempotency_key_holding_colons_is_found_after_a_copy(target):
    memory = open_store("memory://")
    state = msgspec.structs.replace(InputState.new_accepted(InputId.new()), idempotency_key="key:a:b")
    await memory.persist_input_state("rt", state)
    assert await target.restore_runtime("rt", await memory.dump_runtime("rt")) is True
    assert await target.load_input_state_by_idempotency_key("rt", "key:a:b") == state
    assert await target.dump_runtime("rt") == await memory.dump_runtime("rt")


async def test_restore_without_replace_leaves_a_runtime_holding_data_alone(target):
    """The store itself refuses, atomically (the script on Redis), whatever
    an importer checked before: a runtime that holds data stays as it was."""
    memory = open_store("memory://")
    await populate(memory)
    await target.persist_input_state("rt-plain", InputState.new_accepted(InputId.new()))
    before = await target.dump_runtime("rt-plain")
    assert await target.restore_runtime("rt-plain", await memory.dump_runtime("rt-plain")) is False
    assert await target.dump_runtime("rt-plain") == before


async def test_the_fencing_epoch_is_never_lowered(target):
    memory = open_store("memory://")
    await populate(memory)
    for _ in range(9):
        await target.revoke_lease("rt-leased")
    await target.delete_runtime("rt-leased")  # nothing stored, the epoch stays
    assert await target.fencing_epoch("rt-leased") == 9
    await copy_store(memory, target, ["rt-leased"])
    assert await target.fencing_epoch("rt-leased") == 9
    lease = await target.acquire_lease("rt-leased", "new-owner", 30)
    assert lease.token == 10


async def test_a_truncated_file_names_its_line_and_imports_whole_runtimes_only(target):
    memory = open_store("memory://")
    await populate(memory)
    lines = lines_of(await dump_bytes(memory))
    cut = lines[:3] + [lines[3][: len(lines[3]) // 2]]  # header, two runtimes, half of the third
    with pytest.raises(ImportStopped, match="line 4: ends without a newline: the file is truncated") as stopped:
        await import_lines(target, cut)
    assert stopped.value.report.imported == 2
    done = [json.loads(line)["runtime_id"] for line in lines[1:3]]
    for rid in done:
        assert await target.dump_runtime(rid) == await memory.dump_runtime(rid)
    half = json.loads(lines[3])["runtime_id"]
    assert not (await target.dump_runtime(half)).meta  # none of it

    with pytest.raises(ImportStopped, match="ends after line 5 without its trailer line: it is truncated"):
        await import_lines(target, lines[:-1])  # cut at a line boundary
    assert (await target.dump_runtime(half)) == await memory.dump_runtime(half)


async def test_a_corrupt_line_is_named_and_nothing_of_it_is_written(target):
    memory = open_store("memory://")
    await populate(memory)
    lines = lines_of(await dump_bytes(memory))
    rid = json.loads(lines[2])["runtime_id"]

    def edited(change) -> list[bytes]:
        line = json.loads(lines[2])
        change(line)
        return [lines[0], lines[1], json.dumps(line).encode() + b"\n", *lines[3:]]

    cases = {
        "not valid JSON": [lines[0], lines[1], b'{"runtime_id": "x", \n', *lines[3:]],
        "breaks the store's invariants": edited(lambda line: line["receipts"][0].update(message_count=999)),
        "attempt_count: invalid type": edited(lambda line: line["inputs"][0].update(attempt_count="three")),
        "does not read back unchanged": edited(lambda line: line["inputs"][0].update(input_id=line["inputs"][0]["input_id"].upper())),
        "unknown fields": edited(lambda line: line.update(extra=1)),
        "run_counters": edited(lambda line: line["run_counters"].update({"x": -1})),
    }
    for message, bad in cases.items():
        with pytest.raises(ImportStopped, match=f"line 3.*{message}"):
            await import_lines(target, bad)
        assert not (await target.dump_runtime(rid)).meta, message
    with pytest.raises(ImportStopped, match="line 1: not a redis-store dump"):
        await import_lines(target, lines[1:])
    header = json.loads(lines[0])
    header["version"] = 99
    with pytest.raises(ImportStopped, match="line 1: dump format version 99"):
        await import_lines(target, [json.dumps(header).encode() + b"\n", *lines[1:]])


async def test_export_streams_with_bounded_memory():
    memory = open_store("memory://")
    session = SessionDelta(session_json(20))
    for i in range(1500):
        await memory.commit_session_boundary(f"rt-{i}", session, RunId.new(), RunApplyBoundary.RUN_START, [], [])
    total = peak = 0
    tracemalloc.start()
    try:
        async for line in export_lines(memory):
            total += len(line)
            peak = max(peak, tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    assert total > 1500 * 4000
    assert peak < total / 10, (peak, total)  # one line at a time (and the ids listed)


async def test_exporting_a_runtime_with_nothing_stored_is_refused():
    memory = open_store("memory://")
    with pytest.raises(NothingStored, match="'ghost': nothing is stored"):
        await dump_bytes(memory, ["ghost"])


def test_the_commands_and_their_exit_codes(redis_server, tmp_path, capsysbinary, monkeypatch):
    source = f"{redis_server.url}?namespace=bk-src-{tmp_path.name}"
    target = f"{redis_server.url}?namespace=bk-dst-{tmp_path.name}"

    async def seed():
        async with open_store(source) as store:
            await populate(store)

    import asyncio

    asyncio.run(seed())
    assert main(["export", source]) == 0
    data = capsysbinary.readouterr().out
    assert json.loads(data.splitlines()[0])["format"] == FORMAT
    path = tmp_path / "dump.jsonl"
    path.write_bytes(data)
    assert main(["import", target, str(path), "--json"]) == 0
    assert json.loads(capsysbinary.readouterr().out) == {"imported": 4, "replaced": 0, "unchanged": 0}
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["import", target]) == 0  # from stdin; all there already
    assert b"0 runtimes (0 replaced); 4 already there unchanged" in capsysbinary.readouterr().err
    assert main(["copy", source, target, "--json"]) == 0
    assert json.loads(capsysbinary.readouterr().out)["unchanged"] == 4

    path.write_bytes(data[: len(data) - 10])  # truncated
    assert main(["import", target, str(path)]) == 1
    assert b"truncated" in capsysbinary.readouterr().err
    assert main(["export", source, "--runtime", "ghost"]) == 1
    assert b"'ghost': nothing is stored" in capsysbinary.readouterr().err
    assert main(["import", target, str(tmp_path / "missing.jsonl")]) == 2
    assert main(["copy", source, "nosuch://x"]) == 2


async def test_restore_runtime_refuses_inconsistent_raw_values_writing_nothing(target):
    memory = open_store("memory://")
    await populate(memory)
    good = await memory.dump_runtime("rt-plain")
    some_input = good.input_order[0]
    bad = {
        "does not decode": dataclasses.replace(good, inputs={**good.inputs, some_input: b"\x93garbage"}),
        "input_order must name every input once": dataclasses.replace(good, input_order=good.input_order[:1]),
        "run counter": dataclasses.replace(good, run_seqs={"r": "-1"}),
        "is of run": dataclasses.replace(good, receipts={f"x:{field}": value for field, value in good.receipts.items()}),
        "is of run .*, sequence": dataclasses.replace(good, receipts={"garbage": value for value in good.receipts.values()}),
        "meta may name one snapshot receipt": dataclasses.replace(good, meta={**good.meta, "snapshot_applied": "x:1"}),
    }
    for message, raw in bad.items():
        with pytest.raises(ValueError, match=message):
            await target.restore_runtime("rt-plain", raw)
        assert not (await target.dump_runtime("rt-plain")).meta
    with pytest.raises(ValueError, match="epoch"):
        await target.restore_runtime("rt-plain", good, epoch=-1)
    assert await target.restore_runtime("rt-plain", good, epoch=3) is True
    assert await target.restore_runtime("rt-plain", good) is False  # holds data now
    assert await target.dump_runtime("rt-plain") == good


async def test_progress_shows_on_a_terminal_only(monkeypatch):
    from redis_store import backup

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    memory = open_store("memory://")
    await populate(memory)
    for stream, expected in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr("sys.stderr", stream)
        progress = backup.TerminalProgress("copied")
        progress.last = -1e9  # draw on the first step
        await copy_store(memory, open_store("memory://"), progress=progress)
        progress.close()
        assert ("\rcopied " in stream.getvalue()) is expected
        if expected:
            assert stream.getvalue().endswith(f"\rcopied {len(RUNTIMES)} runtimes\n")
