"""What redis-store 0.1.0 stored still reads back equal, and what is stored
now is byte for byte what 0.1.0 wrote (so a commit retried across the
upgrade with the same commit_id has the same fingerprint and is recognised).
The fixtures were written by tests/fixtures/make_stored_v1.py with 0.1.0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redis_store import codec, digest
from redis_store.types import InputState, RunBoundaryReceipt, RuntimeState

FIXTURES = json.loads(Path(__file__).with_name("fixtures").joinpath("stored_v1.json").read_text())


@pytest.mark.parametrize("case", FIXTURES["runtime_state"], ids=lambda c: c["value"])
def test_runtime_states(case: dict) -> None:
    stored = bytes.fromhex(case["stored"])
    assert codec.decode_runtime_state(stored) == RuntimeState(case["value"])
    assert codec.encode_runtime_state(RuntimeState(case["value"])) == stored


@pytest.mark.parametrize("case", FIXTURES["snapshot"], ids=lambda c: str(len(c["value"])))
def test_snapshots(case: dict) -> None:
    stored, value = bytes.fromhex(case["stored"]), bytes.fromhex(case["value"])
    assert codec.decode_snapshot(stored) == value
    assert codec.encode_snapshot(value) == stored


@pytest.mark.parametrize("case", FIXTURES["input_state"], ids=lambda c: json.loads(c["json"])["input_id"][-6:])
def test_input_states(case: dict) -> None:
    stored = bytes.fromhex(case["stored"])
    state = codec.decode_input_state(stored)
    assert state == InputState.from_json(case["json"])
    assert state.to_json() == case["json"]
    wire = state.to_dict()
    assert codec.encode_input_state(wire) == stored
    assert codec.input_state_prefix(wire) == bytes.fromhex(case["prefix"])


@pytest.mark.parametrize("case", FIXTURES["receipt"], ids=lambda c: json.loads(c["json"])["run_id"][-6:])
def test_receipts(case: dict) -> None:
    stored = bytes.fromhex(case["stored"])
    receipt = codec.decode_receipt(stored)
    assert receipt == RunBoundaryReceipt.from_json(case["json"])
    assert receipt.to_json() == case["json"]
    wire = receipt.to_dict()
    assert codec.encode_receipt(wire) == stored
    assert codec.receipt_prefix(wire) == bytes.fromhex(case["prefix"])


@pytest.mark.parametrize("case", FIXTURES["session"], ids=lambda c: str(c["count"]))
def test_session_digests(case: dict) -> None:
    summary = digest.inspect_session(case["snapshot"].encode())
    assert (summary.session_id, summary.conversation_digest, summary.message_count) == (
        case["session_id"], case["digest"], case["count"])


# -- the wire types against 0.1.0's (tests/reference/types.py) -----------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from reference import types as reference_types  # noqa: E402
from test_types_wire import input_states, mutated, outcome, receipts  # noqa: E402


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), input_states, receipts)
def test_wire_types_read_and_write_as_0_1_0_did(data, state, receipt) -> None:
    """Same bytes written, same values read, same accept/reject (and message)."""
    for value, ref in ((state, reference_types.InputState), (receipt, reference_types.RunBoundaryReceipt)):
        text = value.to_json()
        assert ref.from_json(text).to_json() == text
        wire = value.to_dict()
        for changed in (wire, data.draw(mutated(wire)), data.draw(mutated(wire))):
            ours, theirs = outcome(type(value).from_dict, changed), outcome(ref.from_dict, changed)
            if isinstance(ours, tuple):
                assert ours == theirs
            else:
                assert not isinstance(theirs, tuple) and ours.to_json() == theirs.to_json()
