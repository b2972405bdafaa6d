"""The store's argument checks without a round trip (types.surely_storable)
are sound: a value they pass is one the 0.1.0 round trip (to_dict, from_dict,
==, plain-JSON check) accepts, with the same wire form; whatever they are
unsure of goes through that round trip, so accept/reject stays the same."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_store import contract
from redis_store.ids import InputId, RunId
from redis_store.timestamps import Timestamp
from redis_store.types import InputState, QueueMode, RunBoundaryReceipt, WakeMode, surely_storable
from test_types_wire import input_states, receipts


class _Str(str):
    pass


class _OtherEnum(str, enum.Enum):
    FIFO = "fifo"


class _Stamp(Timestamp):
    __slots__ = ()


WRONG = st.sampled_from([
    None, "x", 1, -1, 2**32, 2**64, 2**70, 1.0, True, [], (), {}, _Str("s"), b"x",
    str(uuid.UUID(int=5)), InputId(uuid.UUID(int=5)), RunId(uuid.UUID(int=5)),
    datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc), _Stamp(5, 0), Timestamp(5, 0),
    WakeMode.NONE, QueueMode.FIFO, _OtherEnum.FIFO, "fifo", {"k": 2**70}, {"k": (1,)}, {1: 2},
    {"k": float("nan")}, {"k": "\ud800"}, {"k": [[[]]]}, [1, 2],
])


def reference(name: str, value: Any, cls: type) -> Any:
    """0.1.0's check: the round trip, whatever the value."""
    try:
        wire = value.to_dict()
        same = cls.from_dict(wire) == value
    except (AttributeError, TypeError, ValueError):
        return "refused"
    if not same:
        return "refused"
    free_form = wire.get("persisted_input")
    if free_form is not None:
        try:
            contract._check_plain_json("x", free_form)
        except ValueError:
            return "refused"
    return wire


def changed(draw: Any, value: Any) -> Any:
    """``value`` with one field, perhaps a nested one, set to a wrong value."""
    fields = [f.name for f in msgspec.structs.fields(value)]
    if not fields:
        return value
    name = draw(st.sampled_from(fields))
    current = getattr(value, name)
    if isinstance(current, msgspec.Struct) and draw(st.booleans()):
        new = changed(draw, current)
    elif type(current) is list and current and isinstance(current[0], msgspec.Struct) and draw(st.booleans()):
        new = [changed(draw, current[0]), *current[1:]]
    else:
        new = draw(WRONG)
    try:
        return msgspec.structs.replace(value, **{name: new})
    except (TypeError, ValueError):
        return value


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), input_states, receipts)
def test_the_checks_without_a_round_trip_are_sound(data: Any, state: InputState, receipt: RunBoundaryReceipt) -> None:
    for value, cls in ((state, InputState), (receipt, RunBoundaryReceipt)):
        for candidate in (value, changed(data.draw, value)):
            expected = reference("v", candidate, cls)
            if surely_storable(candidate):
                assert expected != "refused"
                assert candidate.to_dict() == expected
            try:
                got = contract._storable_wire("v", candidate, cls)
            except (TypeError, ValueError):
                got = "refused"
            assert got == expected


def test_exact_types_need_no_round_trip() -> None:
    state = InputState.new_accepted(InputId.new())
    state.persisted_input = {"input_type": "prompt", "text": "hi", "n": [1, 2.5, None, True]}
    assert surely_storable(state)
    assert not surely_storable(msgspec.structs.replace(state, last_run_id=str(RunId.new())))
    assert not surely_storable(msgspec.structs.replace(state, persisted_input={"n": 2**70}))
    with pytest.raises(ValueError, match="cannot be stored"):
        contract._storable_wire("state", msgspec.structs.replace(state, created_at=datetime.datetime.now()), InputState)
