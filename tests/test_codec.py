"""The stored envelopes (redis_store/codec.py) byte for byte: stored data
outlives releases, so the format is pinned here, not derived from the code.
README, "How it is stored in Redis": msgpack [version, payload, sequence]."""

from __future__ import annotations

import msgspec
import pytest

from redis_store import InputId, InputState, RunApplyBoundary, RunBoundaryReceipt, RunId, RuntimeState
from redis_store import codec
from test_conformance import make_receipt


def test_sequences_are_msgpack_uint64_as_lua_writes_them():
    assert codec.seq_suffix(0) == b"\xcf" + bytes(8)
    assert codec.seq_suffix(2**53 - 1) == b"\xcf\x00\x1f\xff\xff\xff\xff\xff\xff"


def test_receipt_and_input_envelopes_carry_the_sequence_once_at_the_end():
    receipt = make_receipt(RunId.new(), 7)
    wire = receipt.to_dict()
    unpacked = msgspec.msgpack.decode(codec.encode_receipt(wire))
    assert unpacked == [1, {k: v for k, v in wire.items() if k != "sequence"}, 7]
    assert codec.receipt_prefix(wire) + codec.seq_suffix(7) == codec.encode_receipt(wire)
    assert codec.decode_receipt(codec.encode_receipt(wire)) == receipt
    state = InputState.new_accepted(InputId.new())
    state_wire = state.to_dict()
    prefix = codec.input_state_prefix(state_wire)
    assert msgspec.msgpack.decode(prefix + codec.seq_suffix(3)) == [
        1, {k: v for k, v in state_wire.items() if k != "last_boundary_sequence"}, 3]
    assert msgspec.msgpack.decode(codec.encode_input_state(state_wire))[2] is None  # never stamped: nil
    assert codec.decode_input_state(prefix + codec.seq_suffix(3)).last_boundary_sequence == 3



@pytest.mark.parametrize("digest", ["ab" * 32, None])
@pytest.mark.parametrize("inputs", [0, 2])
def test_a_receipt_struct_and_its_wire_dict_give_the_same_prefix(digest, inputs):
    """commit_session_boundary writes its receipt from the Struct, skipping
    to_dict; the stored bytes (and commit-id fingerprints) must not change."""
    receipt = RunBoundaryReceipt(run_id=RunId.new(), boundary=RunApplyBoundary.RUN_CHECKPOINT,
                                 contributing_input_ids=[InputId.new() for _ in range(inputs)],
                                 conversation_digest=digest, message_count=2**64 - 1, sequence=9)
    assert codec.receipt_prefix(receipt) == codec.receipt_prefix(receipt.to_dict())
    assert receipt.sequence == 9  # the caller's receipt is left as it was

def test_snapshot_and_state_envelopes():
    assert codec.encode_snapshot(b'{"a":1}') == b"\x92\x01\xc4\x07" + b'{"a":1}'  # bin 8, not a str
    # The smallest bin form at each size, as 0.1.0 wrote it; SnapshotEnvelope
    # makes the same header without copying the snapshot (snapshot deltas
    # rewrite it in place).
    for size, header in ((0, b"\xc4\x00"), (255, b"\xc4\xff"), (256, b"\xc5\x01\x00"), (65535, b"\xc5\xff\xff"),
                         (65536, b"\xc6\x00\x01\x00\x00")):
        snapshot = b"x" * size
        envelope = codec.SnapshotEnvelope(snapshot)
        assert codec.encode_snapshot(snapshot) == b"\x92\x01" + header + snapshot == envelope.encoded()
        assert envelope.header == b"\x92\x01" + header and envelope.snapshot is snapshot
        assert len(envelope) == len(envelope.encoded())
    assert codec.decode_snapshot(codec.encode_snapshot(b"\xff\x00")) == b"\xff\x00"
    assert codec.encode_runtime_state(RuntimeState.IDLE) == b"\x92\x01\xa4idle"
    assert codec.decode_runtime_state(b"\x92\x01\xa4idle") == RuntimeState.IDLE


@pytest.mark.parametrize("value, message", [
    (b"\xc1", "snapshot: not a msgpack value"),
    (msgspec.msgpack.encode([]), r"snapshot: not an envelope \(a non-empty array\)"),
    (msgspec.msgpack.encode({"v": 1}), r"snapshot: not an envelope"),
    (msgspec.msgpack.encode([0, b"x"]), "snapshot: bad schema version 0"),
    (msgspec.msgpack.encode(["1", b"x"]), "snapshot: bad schema version '1'"),
    (msgspec.msgpack.encode([2, b"x"]), "snapshot: written by schema version 2, this redis-store reads up to 1; upgrade"),
    (msgspec.msgpack.encode([1, b"x", 3]), "snapshot: expected a 2-element envelope"),
    (msgspec.msgpack.encode([1, "text"]), "snapshot: payload is not bytes"),
])
def test_bad_snapshot_envelopes_say_what_is_wrong(value, message):
    with pytest.raises(codec.DecodeError, match=f"^{message}"):  # the message starts with the kind
        codec.decode_snapshot(value)


def test_each_upgrade_step_runs_once_on_older_versions_only(monkeypatch):
    """``UPGRADES[kind][i]`` turns version i + 1 into i + 2: a value is taken
    through the steps from its own version on, a current one is read as is."""
    steps = [lambda env: [2, {"waiting": "idle"}[env[1]]], lambda env: [3, env[1].upper()]]
    monkeypatch.setitem(codec.UPGRADES, "runtime_state", steps)
    for stored in ([1, "waiting"], [2, "idle"], [3, "IDLE"]):
        assert codec._open("runtime_state", msgspec.msgpack.encode(stored), 2) == [3, "IDLE"]


def test_bad_wire_envelopes_say_what_is_wrong():
    with pytest.raises(codec.DecodeError, match="receipt: payload is not a map"):
        codec.decode_receipt(msgspec.msgpack.encode([1, [1], 0]))
    with pytest.raises(codec.DecodeError, match="receipt: .*run_id"):  # map keys must be strings: none is a field
        codec.decode_receipt(msgspec.msgpack.encode([1, {1: "x"}, 0]))
    with pytest.raises(codec.DecodeError, match="input_state: "):
        codec.decode_input_state(msgspec.msgpack.encode([1, {"input_id": "nope"}, None]))
    with pytest.raises(codec.DecodeError, match="runtime_state: 'sleepy' is not a valid RuntimeState"):
        codec.decode_runtime_state(msgspec.msgpack.encode([1, "sleepy"]))


# -- the typed envelope reader agrees with the generic one ----------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from test_types_wire import input_states, mutated, outcome  # noqa: E402


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), input_states, st.none() | st.integers(0, 2**64 - 1))
def test_typed_input_state_reading_agrees_with_the_generic_one(data, state, seq) -> None:
    """decode_input_state reads a current envelope straight into the Struct and
    falls back to the generic path (msgpack to dicts, from_dict) for anything
    it refuses: both must give the same state, or the same error."""
    wire = state.to_dict()
    for changed in (wire, data.draw(mutated(wire)), data.draw(mutated(wire))):
        try:
            stored = msgspec.msgpack.encode([1, changed, seq])
        except OverflowError:  # an int msgpack cannot hold (2**64): never stored
            continue
        typed = outcome(codec.decode_input_state, stored)
        generic = outcome(lambda v: codec._decode_wire("input_state", v, "last_boundary_sequence", InputState), stored)
        if isinstance(typed, tuple) or isinstance(generic, tuple):
            assert typed == generic
        else:
            assert typed == generic and typed.to_json() == generic.to_json()
