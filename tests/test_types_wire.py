"""Wire forms of the persisted types (SPEC §4), with the input_state.rs and
run_receipt.rs tests of meerkat 0.4.12 (SPEC §6)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redis_store.ids import InputId, RunId
from redis_store.timestamps import Timestamp
from redis_store.types import (
    AbandonedOutcome,
    ApplyMode,
    CoalescedOutcome,
    CoalescingSource,
    ConsumedOutcome,
    ConsumePoint,
    InputAbandonReason,
    InputDurability,
    InputLifecycleState,
    InputState,
    InputStateEvent,
    InputStateHistoryEntry,
    InputTerminalOutcome,
    PolicyDecision,
    PolicySnapshot,
    ProjectionSource,
    QueueMode,
    ReconstructionSource,
    RunApplyBoundary,
    RunBoundaryReceipt,
    SessionDelta,
    SupersededOutcome,
    WakeMode,
)

L = InputLifecycleState
INPUT = "019a2b3c-0000-7000-8000-000000000001"
RUN = "019a2b3c-0000-7000-8000-0000000000ff"
T0 = "2025-10-09T08:53:20.123456789Z"

FULL_INPUT_STATE = (
    '{"input_id":"019a2b3c-0000-7000-8000-000000000001","current_state":"applied_pending_consumption",'
    '"policy":{"version":1,"decision":{"apply_mode":"stage_run_start","wake_mode":"wake_if_idle",'
    '"queue_mode":"fifo","consume_point":"on_run_complete","record_transcript":true,'
    '"emit_operator_content":true,"policy_version":1}},"durability":"durable","attempt_count":1,'
    '"recovery_count":0,"history":[{"timestamp":"2025-10-09T08:53:20.500Z","from":"accepted",'
    '"to":"queued","reason":"policy resolved"}],"persisted_input":{"input_type":"prompt","header":'
    '{"id":"019a2b3c-0000-7000-8000-000000000001","timestamp":"2025-10-09T08:53:20.123456789Z",'
    '"source":{"type":"operator"},"durability":"durable","visibility":{"transcript_eligible":true,'
    '"operator_eligible":true}},"text":"hi"},"last_run_id":"019a2b3c-0000-7000-8000-0000000000ff",'
    '"last_boundary_sequence":0,"created_at":"2025-10-09T08:53:20.123456789Z",'
    '"updated_at":"2025-10-09T08:53:21Z"}'
)
RECEIPT = (
    '{"run_id":"019a2b3c-0000-7000-8000-0000000000ff","boundary":"run_start",'
    '"contributing_input_ids":["019a2b3c-0000-7000-8000-000000000001"],'
    '"conversation_digest":"f0b98e2f4888dd5e347988905fed380ce57ad0eb7d7742d15d3f7e7f3722d0db",'
    '"message_count":5,"sequence":0}'
)
MINIMAL_INPUT_STATE = (
    f'{{"input_id":"{INPUT}","current_state":"accepted","attempt_count":0,"recovery_count":0,'
    f'"created_at":"{T0}","updated_at":"{T0}"}}'
)


def decision() -> PolicyDecision:
    return PolicyDecision(
        ApplyMode.STAGE_RUN_START,
        WakeMode.WAKE_IF_IDLE,
        QueueMode.FIFO,
        ConsumePoint.ON_RUN_COMPLETE,
        policy_version=1,
    )


def minimal(**changes: Any) -> dict[str, Any]:
    """The minimal InputState wire dict, with some keys changed (None removes)."""
    wire: dict[str, Any] = json.loads(MINIMAL_INPUT_STATE)
    for key, value in changes.items():
        if value is None:
            wire.pop(key, None)
        else:
            wire[key] = value
    return wire


# -- input_state.rs --------------------------------------------------------------------


def test_lifecycle_state_terminal() -> None:
    terminal = {s for s in L if s.is_terminal()}
    assert terminal == {L.CONSUMED, L.SUPERSEDED, L.COALESCED, L.ABANDONED}


def test_lifecycle_state_serde() -> None:
    assert len(L) == 9
    for state in L:
        text = state.to_json()
        assert json.loads(text) == state.value
        assert L.from_json(text) is state


def test_input_state_new_accepted() -> None:
    state = InputState.new_accepted(InputId.new())
    assert state.current_state is L.ACCEPTED
    assert not state.is_terminal()
    assert state.history == []
    assert state.terminal_outcome is None
    assert state.policy is None
    assert (state.attempt_count, state.recovery_count) == (0, 0)
    assert state.created_at == state.updated_at


def test_input_state_serde_roundtrip() -> None:
    state = InputState.new_accepted(InputId.new())
    state.policy = PolicySnapshot(1, decision())
    state.history.append(
        InputStateHistoryEntry(Timestamp.now(), L.ACCEPTED, L.QUEUED, "policy resolved")
    )
    state.current_state = L.QUEUED
    parsed = InputState.from_json(state.to_json())
    assert parsed.input_id == state.input_id
    assert parsed.current_state is L.QUEUED
    assert len(parsed.history) == 1
    assert parsed == state


def test_abandon_reason_serde() -> None:
    assert [r.value for r in InputAbandonReason] == ["retired", "reset", "destroyed", "cancelled"]
    for reason in InputAbandonReason:
        assert InputAbandonReason.from_json(reason.to_json()) is reason


def test_terminal_outcome_consumed_serde() -> None:
    outcome = ConsumedOutcome()
    assert json.loads(outcome.to_json())["outcome_type"] == "consumed"
    assert InputTerminalOutcome.from_json(outcome.to_json()) == outcome


def test_terminal_outcome_superseded_serde() -> None:
    outcome = SupersededOutcome(InputId.new())
    assert json.loads(outcome.to_json())["outcome_type"] == "superseded"
    assert InputTerminalOutcome.from_json(outcome.to_json()) == outcome


def test_terminal_outcome_abandoned_serde() -> None:
    outcome = AbandonedOutcome(InputAbandonReason.RETIRED)
    parsed = InputTerminalOutcome.from_json(outcome.to_json())
    assert parsed == outcome
    assert isinstance(parsed, AbandonedOutcome) and parsed.reason is InputAbandonReason.RETIRED


def test_reconstruction_source_serde() -> None:
    for source in (
        ProjectionSource("rule-1", "event-1"),
        CoalescingSource([InputId.new(), InputId.new()]),
    ):
        wire = json.loads(source.to_json())
        assert isinstance(wire["source_type"], str)
        assert ReconstructionSource.from_json(source.to_json()) == source


def test_input_state_event_serde() -> None:
    event = InputStateEvent(Timestamp.now(), L.STAGED, "staged for run")
    assert InputStateEvent.from_json(event.to_json()) == event


# -- run_receipt.rs -----------------------------------------------------------------------


def receipt(digest: str | None = "abc123", ids: list[InputId] | None = None) -> RunBoundaryReceipt:
    return RunBoundaryReceipt(RunId.new(), RunApplyBoundary.RUN_START, ids or [], digest, 5, 0)


def test_receipt_serde_roundtrip() -> None:
    original = receipt()
    assert RunBoundaryReceipt.from_json(original.to_json()) == original


def test_receipt_without_digest() -> None:
    original = receipt(digest=None)
    assert "conversation_digest" not in original.to_json()
    assert RunBoundaryReceipt.from_json(original.to_json()) == original


def test_receipt_preserves_contributing_input_ids() -> None:
    ids = [InputId.new(), InputId.new(), InputId.new()]
    parsed = RunBoundaryReceipt.from_json(receipt(ids=ids).to_json())
    assert parsed.contributing_input_ids == ids


# -- byte-exact examples and shapes -------------------------------------------------------


def test_full_input_state_example_is_byte_exact() -> None:
    state = InputState.from_json(FULL_INPUT_STATE)
    assert state.to_json() == FULL_INPUT_STATE
    assert InputState.from_json(FULL_INPUT_STATE.encode()) == state
    assert state.policy == PolicySnapshot(1, decision())
    assert state.history[0].timestamp == Timestamp(1_760_000_000, 500_000_000)
    assert str(state.created_at) == "2025-10-09T08:53:20.123456789Z"
    assert state.last_run_id == RunId(RUN)
    assert state.persisted_input is not None and state.persisted_input["text"] == "hi"


def test_receipt_example_is_byte_exact() -> None:
    parsed = RunBoundaryReceipt.from_json(RECEIPT)
    assert parsed.to_json() == RECEIPT
    assert parsed == RunBoundaryReceipt(
        RunId(RUN),
        RunApplyBoundary.RUN_START,
        [InputId(INPUT)],
        "f0b98e2f4888dd5e347988905fed380ce57ad0eb7d7742d15d3f7e7f3722d0db",
        5,
        0,
    )


def test_minimal_input_state_form() -> None:
    stamp = Timestamp.parse(T0)
    state = InputState(InputId(INPUT), L.ACCEPTED, created_at=stamp, updated_at=stamp)
    assert state.to_json() == MINIMAL_INPUT_STATE
    assert InputState.from_json(MINIMAL_INPUT_STATE) == state
    fresh = InputState.new_accepted(InputId(INPUT)).to_dict()
    assert list(fresh) == ["input_id", "current_state", "attempt_count", "recovery_count",
                           "created_at", "updated_at"]


def test_every_input_state_field_in_wire_order() -> None:
    stamp = Timestamp.parse(T0)
    state = InputState(
        InputId(INPUT),
        L.ABANDONED,
        policy=PolicySnapshot(2, decision()),
        terminal_outcome=AbandonedOutcome(InputAbandonReason.CANCELLED),
        durability=InputDurability.EPHEMERAL,
        idempotency_key="key-1",
        attempt_count=3,
        recovery_count=4,
        history=[InputStateHistoryEntry(stamp, L.ACCEPTED, L.ABANDONED)],
        reconstruction_source=CoalescingSource([InputId(INPUT)]),
        persisted_input={"input_type": "external_event", "payload": {"b": 1, "a": [1.5, None]}},
        last_run_id=RunId(RUN),
        last_boundary_sequence=2**64 - 1,
        created_at=stamp,
        updated_at=stamp,
    )
    wire = state.to_dict()
    assert list(wire) == [
        "input_id", "current_state", "policy", "terminal_outcome", "durability",
        "idempotency_key", "attempt_count", "recovery_count", "history",
        "reconstruction_source", "persisted_input", "last_run_id", "last_boundary_sequence",
        "created_at", "updated_at",
    ]
    assert wire["terminal_outcome"] == {"outcome_type": "abandoned", "reason": "cancelled"}
    assert wire["history"] == [{"timestamp": T0, "from": "accepted", "to": "abandoned"}]
    assert InputState.from_json(state.to_json()) == state
    assert InputState.from_json(state.to_json()).to_json() == state.to_json()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (ConsumedOutcome(), '{"outcome_type":"consumed"}'),
        (SupersededOutcome(InputId(INPUT)), f'{{"outcome_type":"superseded","superseded_by":"{INPUT}"}}'),
        (CoalescedOutcome(InputId(INPUT)), f'{{"outcome_type":"coalesced","aggregate_id":"{INPUT}"}}'),
        (AbandonedOutcome(InputAbandonReason.RESET), '{"outcome_type":"abandoned","reason":"reset"}'),
        (ProjectionSource("r", "e"), '{"source_type":"projection","rule_id":"r","source_event_id":"e"}'),
        (CoalescingSource([InputId(INPUT)]), f'{{"source_type":"coalescing","source_input_ids":["{INPUT}"]}}'),
        (CoalescingSource([]), '{"source_type":"coalescing","source_input_ids":[]}'),
        (
            PolicyDecision(ApplyMode.IGNORE, WakeMode.NONE, QueueMode.NONE, ConsumePoint.EXPLICIT_ACK,
                           record_transcript=False, emit_operator_content=False, policy_version=7),
            '{"apply_mode":"ignore","wake_mode":"none","queue_mode":"none","consume_point":"explicit_ack",'
            '"record_transcript":false,"emit_operator_content":false,"policy_version":7}',
        ),
        (InputStateHistoryEntry(Timestamp.parse(T0), L.QUEUED, L.STAGED),
         f'{{"timestamp":"{T0}","from":"queued","to":"staged"}}'),
        (InputStateEvent(Timestamp.parse(T0), L.QUEUED), f'{{"timestamp":"{T0}","state":"queued"}}'),
        (InputStateEvent(Timestamp.parse(T0), L.QUEUED, "d"),
         f'{{"timestamp":"{T0}","state":"queued","detail":"d"}}'),
        (RunApplyBoundary.RUN_CHECKPOINT, '"run_checkpoint"'),
        (InputDurability.DERIVED, '"derived"'),
    ],
)
def test_nested_shapes(value: Any, text: str) -> None:
    assert value.to_json() == text
    assert type(value).from_json(text) == value


def test_tagged_unions_dispatch_and_check_their_tag() -> None:
    assert isinstance(InputTerminalOutcome.from_dict({"outcome_type": "consumed"}), ConsumedOutcome)
    assert ConsumedOutcome().tag == "consumed"
    assert SupersededOutcome.from_dict({"outcome_type": "superseded", "superseded_by": INPUT}) == (
        SupersededOutcome(InputId(INPUT))
    )
    with pytest.raises(ValueError, match="unknown variant 'consumed'"):
        SupersededOutcome.from_dict({"outcome_type": "consumed"})
    with pytest.raises(ValueError, match=r"InputTerminalOutcome\.outcome_type: unknown variant 'done'"):
        InputTerminalOutcome.from_dict({"outcome_type": "done"})
    with pytest.raises(ValueError, match="missing field `outcome_type`"):
        InputTerminalOutcome.from_dict({"reason": "retired"})
    with pytest.raises(ValueError, match="unknown variant 'projection'"):
        InputTerminalOutcome.from_dict({"outcome_type": "projection"})


def test_enums_are_their_wire_strings() -> None:
    assert str(L.APPLIED_PENDING_CONSUMPTION) == "applied_pending_consumption"
    assert f"{ConsumePoint.ON_RUN_START}" == "on_run_start"
    assert L.QUEUED.value == "queued" and L("queued") is L.QUEUED
    assert [m.value for m in ApplyMode] == ["stage_run_start", "stage_run_boundary", "inject_now", "ignore"]
    assert [m.value for m in WakeMode] == ["wake_if_idle", "interrupt_yielding", "none"]
    assert [m.value for m in QueueMode] == ["none", "fifo", "coalesce", "supersede", "priority"]
    assert [m.value for m in ConsumePoint] == [
        "on_accept", "on_apply", "on_run_start", "on_run_complete", "explicit_ack",
    ]
    assert [m.value for m in InputDurability] == ["durable", "ephemeral", "derived"]
    assert [m.value for m in RunApplyBoundary] == ["immediate", "run_start", "run_checkpoint"]


# -- reading: missing vs null, defaults, unknown keys ----------------------------------------


def test_defaulted_fields_missing_vs_null() -> None:
    state = InputState.from_dict(minimal(attempt_count=None, recovery_count=None))
    assert (state.attempt_count, state.recovery_count, state.history) == (0, 0, [])
    for key in ("attempt_count", "recovery_count", "history"):
        wire = minimal()
        wire[key] = None
        with pytest.raises(TypeError, match=rf"InputState\.{key}: invalid type: null"):
            InputState.from_dict(wire)


def test_option_fields_missing_or_null_are_none() -> None:
    keys = ["policy", "terminal_outcome", "durability", "idempotency_key", "reconstruction_source",
            "persisted_input", "last_run_id", "last_boundary_sequence"]
    wire = minimal()
    wire.update(dict.fromkeys(keys))
    state = InputState.from_dict(wire)
    assert all(getattr(state, key) is None for key in keys)
    assert state.to_json() == MINIMAL_INPUT_STATE
    assert RunBoundaryReceipt.from_dict({**json.loads(RECEIPT), "conversation_digest": None}) == (
        RunBoundaryReceipt.from_dict({k: v for k, v in json.loads(RECEIPT).items()
                                      if k != "conversation_digest"})
    )
    entry = {"timestamp": T0, "from": "queued", "to": "staged", "reason": None}
    assert InputStateHistoryEntry.from_dict(entry).reason is None


def test_empty_history_is_omitted_but_read_back() -> None:
    assert "history" not in InputState.from_dict(minimal(history=[])).to_dict()


def test_policy_decision_bool_defaults() -> None:
    wire = decision().to_dict()
    del wire["record_transcript"], wire["emit_operator_content"]
    parsed = PolicyDecision.from_dict(wire)
    assert parsed.record_transcript is True and parsed.emit_operator_content is True
    with pytest.raises(TypeError, match=r"PolicyDecision\.record_transcript: invalid type: null"):
        PolicyDecision.from_dict({**wire, "record_transcript": None})
    with pytest.raises(TypeError, match="expected a boolean"):
        PolicyDecision.from_dict({**wire, "emit_operator_content": 1})
    with pytest.raises(ValueError, match="missing field `policy_version`"):
        PolicyDecision.from_dict({k: v for k, v in wire.items() if k != "policy_version"})


@pytest.mark.parametrize(
    "key", ["input_id", "current_state", "created_at", "updated_at"]
)
def test_input_state_required_fields(key: str) -> None:
    with pytest.raises(ValueError, match=f"InputState: missing field `{key}`"):
        InputState.from_dict(minimal(**{key: None}))


@pytest.mark.parametrize(
    "key", ["run_id", "boundary", "contributing_input_ids", "message_count", "sequence"]
)
def test_receipt_required_fields(key: str) -> None:
    wire = json.loads(RECEIPT)
    del wire[key]
    with pytest.raises(ValueError, match=f"RunBoundaryReceipt: missing field `{key}`"):
        RunBoundaryReceipt.from_dict(wire)


def test_unknown_keys_are_ignored() -> None:
    wire = json.loads(FULL_INPUT_STATE)
    wire["future_field"] = {"x": 1}
    wire["policy"]["extra"] = True
    wire["policy"]["decision"]["extra"] = []
    wire["history"][0]["extra"] = "y"
    wire["terminal_outcome"] = {"outcome_type": "consumed", "extra": 1}
    state = InputState.from_dict(wire)
    assert state.terminal_outcome == ConsumedOutcome()
    assert "future_field" not in state.to_json()
    assert RunBoundaryReceipt.from_dict({**json.loads(RECEIPT), "x": 1}).to_json() == RECEIPT


# -- reading: errors name the path -------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"history": [{"timestamp": T0, "from": "accepted", "to": "foo"}]}, ValueError,
         r"^InputState\.history\[0\]\.to: unknown InputLifecycleState 'foo'$"),
        ({"current_state": "Accepted"}, ValueError, r"InputState\.current_state: unknown"),
        ({"current_state": 1}, TypeError, r"InputState\.current_state: invalid type: integer `1`"),
        ({"attempt_count": -1}, ValueError, r"attempt_count: invalid value: integer `-1`, expected u32"),
        ({"attempt_count": 2**32}, ValueError, "expected u32"),
        ({"attempt_count": 1.0}, TypeError, r"attempt_count: invalid type: floating point"),
        ({"recovery_count": True}, TypeError, r"recovery_count: invalid type: boolean `true`"),
        ({"last_boundary_sequence": 2**64}, ValueError, "expected u64"),
        ({"last_boundary_sequence": "1"}, TypeError, "expected u64"),
        ({"input_id": "not-a-uuid"}, ValueError, r"InputState\.input_id: invalid InputId"),
        ({"input_id": INPUT.replace("-", "")[:31]}, ValueError, "invalid InputId"),
        ({"last_run_id": 5}, TypeError, r"last_run_id: invalid type: integer"),
        ({"created_at": "2025-10-09T08:53:20"}, ValueError, r"InputState\.created_at: invalid timestamp"),
        ({"updated_at": 0}, TypeError, r"updated_at: invalid type"),
        ({"durability": "forever"}, ValueError, "unknown InputDurability 'forever'"),
        ({"idempotency_key": 5}, TypeError, r"idempotency_key: invalid type"),
        ({"persisted_input": "prompt"}, TypeError, r"persisted_input: invalid type: string"),
        ({"persisted_input": []}, TypeError, r"persisted_input: invalid type: a sequence"),
        ({"history": {}}, TypeError, r"history: invalid type: a map, expected a sequence"),
        ({"history": [{"timestamp": T0, "from": "queued"}]}, ValueError,
         r"InputState\.history\[0\]: missing field `to`"),
        ({"policy": {"version": 1}}, ValueError, r"InputState\.policy: missing field `decision`"),
        ({"policy": {"version": 1, "decision": {**decision().to_dict(), "queue_mode": "lifo"}}},
         ValueError, r"InputState\.policy\.decision\.queue_mode: unknown QueueMode 'lifo'"),
        ({"terminal_outcome": {"outcome_type": "abandoned", "reason": "bored"}}, ValueError,
         r"terminal_outcome\.reason: unknown InputAbandonReason 'bored'"),
        ({"terminal_outcome": {"outcome_type": "superseded"}}, ValueError,
         r"terminal_outcome: missing field `superseded_by`"),
        ({"terminal_outcome": "consumed"}, TypeError, r"terminal_outcome: invalid type: string"),
        ({"reconstruction_source": {"source_type": "coalescing", "source_input_ids": ["x"]}},
         ValueError, r"reconstruction_source\.source_input_ids\[0\]: invalid InputId 'x'"),
        ({"reconstruction_source": {"source_type": "projection", "rule_id": "r"}}, ValueError,
         "missing field `source_event_id`"),
    ],
)
def test_errors_name_the_field(changes: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        InputState.from_dict(minimal(**changes))


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(TypeError, match="InputState: invalid type: a sequence, expected an object"):
        InputState.from_json("[]")
    with pytest.raises(TypeError, match="RunBoundaryReceipt: invalid type: null"):
        RunBoundaryReceipt.from_json("null")


def test_receipt_errors() -> None:
    wire = json.loads(RECEIPT)
    with pytest.raises(ValueError, match=r"RunBoundaryReceipt\.boundary: unknown RunApplyBoundary"):
        RunBoundaryReceipt.from_dict({**wire, "boundary": "RunStart"})
    with pytest.raises(TypeError, match=r"contributing_input_ids: invalid type: null"):
        RunBoundaryReceipt.from_dict({**wire, "contributing_input_ids": None})
    with pytest.raises(ValueError, match=r"contributing_input_ids\[1\]: invalid InputId"):
        RunBoundaryReceipt.from_dict({**wire, "contributing_input_ids": [INPUT, "{" + INPUT]})
    with pytest.raises(ValueError, match=r"sequence: invalid value: integer `-1`"):
        RunBoundaryReceipt.from_dict({**wire, "sequence": -1})
    with pytest.raises(TypeError, match=r"conversation_digest: invalid type"):
        RunBoundaryReceipt.from_dict({**wire, "conversation_digest": 7})


def test_non_canonical_ids_and_timestamps_are_read_and_rewritten_canonically() -> None:
    wire = minimal(input_id="{" + INPUT.upper() + "}", created_at="2025-10-09t10:53:20.123456789+02:00")
    assert InputState.from_dict(wire).to_json() == MINIMAL_INPUT_STATE


# -- records ------------------------------------------------------------------------------------


def test_input_state_is_mutable_and_compares_by_value() -> None:
    state = InputState.from_json(MINIMAL_INPUT_STATE)
    other = InputState.from_json(MINIMAL_INPUT_STATE)
    assert state == other
    state.current_state = L.QUEUED
    state.attempt_count += 1
    assert state != other
    assert json.loads(state.to_json())["current_state"] == "queued"
    with pytest.raises(TypeError):
        InputState(InputId(INPUT), L.ACCEPTED)  # type: ignore[call-arg]  # timestamps required


def test_value_types_are_frozen() -> None:
    # msgspec's frozen Structs raise AttributeError (dataclasses' FrozenInstanceError is one too).
    with pytest.raises(AttributeError):
        decision().policy_version = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        AbandonedOutcome(InputAbandonReason.RESET).reason = InputAbandonReason.RETIRED  # type: ignore[misc]


def test_session_delta() -> None:
    assert SessionDelta(b"session-data").session_snapshot == b"session-data"
    assert SessionDelta(bytearray(b"ab")).session_snapshot == b"ab"
    assert type(SessionDelta(memoryview(b"ab")).session_snapshot) is bytes
    assert SessionDelta(b"x") == SessionDelta(bytearray(b"x"))

    class Subclass(bytes):
        pass
    assert type(SessionDelta(Subclass(b"ab")).session_snapshot) is bytes  # immutable plain bytes, as stored
    with pytest.raises(TypeError):
        SessionDelta("text")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        SessionDelta(b"x").session_snapshot = b"y"  # type: ignore[misc]


# -- properties -----------------------------------------------------------------------------------

MIN_SECS = Timestamp.parse("-262144-01-01T00:00:00Z").seconds
MAX_SECS = Timestamp.parse("+262143-12-31T23:59:59Z").seconds

input_ids = st.uuids().map(InputId)
run_ids = st.uuids().map(RunId)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
timestamps = st.builds(Timestamp, st.integers(MIN_SECS, MAX_SECS), st.integers(0, 999_999_999))
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
policies = st.builds(
    PolicySnapshot,
    u64,
    st.builds(
        PolicyDecision,
        st.sampled_from(ApplyMode),
        st.sampled_from(WakeMode),
        st.sampled_from(QueueMode),
        st.sampled_from(ConsumePoint),
        record_transcript=st.booleans(),
        emit_operator_content=st.booleans(),
        policy_version=u64,
    ),
)
outcomes = st.one_of(
    st.just(ConsumedOutcome()),
    st.builds(SupersededOutcome, input_ids),
    st.builds(CoalescedOutcome, input_ids),
    st.builds(AbandonedOutcome, st.sampled_from(InputAbandonReason)),
)
sources = st.builds(ProjectionSource, st.text(), st.text()) | st.builds(
    CoalescingSource, st.lists(input_ids, max_size=3)
)
history_entries = st.builds(
    InputStateHistoryEntry,
    timestamps,
    st.sampled_from(L),
    st.sampled_from(L),
    st.none() | st.text(),
)
input_states = st.builds(
    InputState,
    input_ids,
    st.sampled_from(L),
    policy=st.none() | policies,
    terminal_outcome=st.none() | outcomes,
    durability=st.none() | st.sampled_from(InputDurability),
    idempotency_key=st.none() | st.text(),
    attempt_count=u32,
    recovery_count=u32,
    history=st.lists(history_entries, max_size=3),
    reconstruction_source=st.none() | sources,
    persisted_input=st.none() | st.dictionaries(st.text(), json_values, max_size=4),
    last_run_id=st.none() | run_ids,
    last_boundary_sequence=st.none() | u64,
    created_at=timestamps,
    updated_at=timestamps,
)
receipts = st.builds(
    RunBoundaryReceipt,
    run_ids,
    st.sampled_from(RunApplyBoundary),
    st.lists(input_ids, max_size=4),
    st.none() | st.text(),
    u64,
    u64,
)


@given(input_states)
def test_input_state_round_trips(state: InputState) -> None:
    text = state.to_json()
    parsed = InputState.from_json(text)
    assert parsed == state
    assert parsed.to_json() == text
    assert InputState.from_dict(state.to_dict()) == state


@given(receipts)
def test_receipt_round_trips(original: RunBoundaryReceipt) -> None:
    text = original.to_json()
    parsed = RunBoundaryReceipt.from_json(text)
    assert parsed == original
    assert parsed.to_json() == text


def test_a_field_given_twice_is_an_error_as_in_serde():
    receipt = '{"run_id":"019a2b3c-0000-7000-8000-0000000000ff","boundary":"run_start","contributing_input_ids":[],"message_count":5,"sequence":0,"sequence":7}'
    with pytest.raises(ValueError, match="duplicate field `sequence`"):
        RunBoundaryReceipt.from_json(receipt)
    state = InputState.new_accepted(InputId.new())
    twice = state.to_json()[:-1] + ',"input_id":"019a2b3c-0000-7000-8000-000000000001"}'
    with pytest.raises(ValueError, match="duplicate field `input_id`"):
        InputState.from_json(twice)
    nested = state.to_json()[:-1] + ',"history":[{"timestamp":"2025-10-09T08:53:20Z","from":"accepted","from":"queued","to":"queued"}]}'
    with pytest.raises(ValueError, match=r"history\[0\]: duplicate field `from`"):
        InputState.from_json(nested)


def test_free_form_persisted_input_keeps_the_last_repeated_key():
    state = InputState.new_accepted(InputId.new())
    text = state.to_json()[:-1] + ',"persisted_input":{"input_type":"x","payload":{"k":1,"k":2}}}'
    assert InputState.from_json(text).persisted_input == {"input_type": "x", "payload": {"k": 2}}


# -- the msgspec readers agree with 0.1.0's strict ones -----------------------------
#
# from_dict reads with msgspec; 0.1.0's hand-written strict reader (kept in
# tests/reference/types.py) is the oracle: the same value, or the same error.

WRONG_VALUES = st.sampled_from(
    [None, 0, -1, 1.0, True, "x", "", [], {}, [1], 2**32, 2**64, INPUT, INPUT.upper(), "{" + INPUT + "}",
     "2025-10-09T08:53:20Z", "2025-10-09 08:53:20+01:00", "2025-10-09T08:53:60.5Z", "accepted",
     {"outcome_type": "consumed"}, {"outcome_type": "abandoned", "reason": "nope"},
     {"source_type": "coalescing", "source_input_ids": [INPUT, "x"]},
     [{"timestamp": T0, "from": "accepted", "to": "queued", "reason": 5}]]
)


def outcome(read: Any, wire: Any) -> Any:
    try:
        return read(wire)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)


@st.composite
def mutated(draw: Any, wire: Any) -> Any:
    """``wire`` with one field somewhere replaced by a wrong value or removed."""
    wire = json.loads(json.dumps(wire))
    node = wire
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return wire
        key = draw(st.sampled_from(keys + (["extra"] if isinstance(node, dict) else [])))
        child = node[key] if key != "extra" else None
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and draw(st.integers(0, 3)) == 0:
            node.pop(key, None)
        else:
            node[key] = draw(WRONG_VALUES)
        return wire


@given(st.data(), input_states, receipts)
def test_readers_agree_with_the_strict_ones(data: Any, state: InputState, receipt: RunBoundaryReceipt) -> None:
    from reference import types as reference_types

    for value, cls in ((state, InputState), (receipt, RunBoundaryReceipt)):
        ref = getattr(reference_types, cls.__name__)
        wire = value.to_dict()
        assert cls.from_dict(wire) == value
        for changed in (wire, data.draw(mutated(wire)), data.draw(mutated(wire))):
            ours = outcome(cls.from_dict, changed)
            strict = outcome(lambda w: ref._read(w, cls.__name__), changed)
            if isinstance(ours, tuple) or isinstance(strict, tuple):
                assert ours == strict
            else:
                assert ours.to_json() == strict.to_json()
            if not isinstance(changed, dict) or not changed:
                continue
            # and from JSON text, with a key given twice (serde: "duplicate field")
            text = json.dumps(changed)
            key = data.draw(st.sampled_from(sorted(changed)))
            for doc in (text, text[:-1] + f", {json.dumps(key)}: {json.dumps(changed[key])}}}"):
                ours, theirs = outcome(cls.from_json, doc), outcome(ref.from_json, doc)
                if isinstance(ours, tuple) or isinstance(theirs, tuple):
                    assert ours == theirs
                else:
                    assert ours.to_json() == theirs.to_json()
