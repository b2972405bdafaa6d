"""Port of meerkat-runtime 0.4.12 runtime_state.rs tests (SPEC §6, table §4.3)."""

from __future__ import annotations

import pytest

from redis_store.errors import RuntimeStateTransitionError
from redis_store.types import RuntimeState

S = RuntimeState
ALL = list(RuntimeState)


def assert_row(source: RuntimeState, allowed: set[RuntimeState]) -> None:
    """Every move out of ``source`` is allowed exactly when it is in ``allowed``
    (self-moves included, and never allowed)."""
    for target in ALL:
        assert source.can_transition_to(target) is (target in allowed), (source, target)


def test_terminal_states() -> None:
    assert {s for s in ALL if s.is_terminal()} == {S.STOPPED, S.DESTROYED}


def test_can_accept_input() -> None:
    assert {s for s in ALL if s.can_accept_input()} == {S.IDLE, S.RUNNING}


def test_can_process_queue() -> None:
    assert {s for s in ALL if s.can_process_queue()} == {S.IDLE, S.RETIRED}


def test_initializing_valid_transitions() -> None:
    assert_row(S.INITIALIZING, {S.IDLE, S.STOPPED, S.DESTROYED})


def test_idle_valid_transitions() -> None:
    assert_row(S.IDLE, {S.RUNNING, S.RECOVERING, S.RETIRED, S.STOPPED, S.DESTROYED})


def test_running_valid_transitions() -> None:
    assert_row(S.RUNNING, {S.IDLE, S.RECOVERING, S.RETIRED, S.STOPPED, S.DESTROYED})


def test_recovering_valid_transitions() -> None:
    assert_row(S.RECOVERING, {S.IDLE, S.RUNNING, S.STOPPED, S.DESTROYED})


def test_retired_valid_transitions() -> None:
    # Retired may only run again to drain its queue, then stop or be destroyed.
    assert_row(S.RETIRED, {S.RUNNING, S.STOPPED, S.DESTROYED})


def test_stopped_is_terminal() -> None:
    assert_row(S.STOPPED, set())


def test_destroyed_is_terminal() -> None:
    assert_row(S.DESTROYED, set())


def test_transition_success() -> None:
    state = S.INITIALIZING
    state = state.transition(S.IDLE)
    assert state is S.IDLE
    state = state.transition(S.RUNNING)
    assert state is S.RUNNING
    state = state.transition(S.IDLE)
    assert state is S.IDLE


def test_transition_failure() -> None:
    state = S.STOPPED
    with pytest.raises(RuntimeStateTransitionError) as caught:
        state = state.transition(S.IDLE)
    assert str(caught.value) == "Invalid runtime state transition: stopped -> idle"
    assert caught.value.from_state is S.STOPPED
    assert caught.value.to_state is S.IDLE
    assert state is S.STOPPED


def test_serde_roundtrip_all_states() -> None:
    for state in ALL:
        text = state.to_json()
        assert text == f'"{state.value}"'
        assert RuntimeState.from_json(text) is state
        assert RuntimeState.from_dict(state.to_dict()) is state
    assert [s.value for s in ALL] == [
        "initializing",
        "idle",
        "running",
        "recovering",
        "retired",
        "stopped",
        "destroyed",
    ]


def test_display() -> None:
    assert str(S.IDLE) == "idle"
    assert str(S.RUNNING) == "running"
    assert f"{S.DESTROYED}" == "destroyed"


# -- beyond the Rust tests ------------------------------------------------------


def test_transition_table_matches_spec_exactly() -> None:
    allowed = {(s, t) for s in ALL for t in ALL if s.can_transition_to(t)}
    assert len(allowed) == 3 + 5 + 5 + 4 + 3
    for source, target in allowed:
        assert source.transition(target) is target
    for source in ALL:
        for target in ALL:
            if (source, target) not in allowed:
                with pytest.raises(RuntimeStateTransitionError):
                    source.transition(target)


@pytest.mark.parametrize("bad", ['"Idle"', '"paused"', "1", "null", '["idle"]'])
def test_rejects_unknown_or_mistyped_state(bad: str) -> None:
    with pytest.raises((ValueError, TypeError), match="RuntimeState"):
        RuntimeState.from_json(bad)
