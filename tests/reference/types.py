"""The reference wire types: redis-store 0.1.0's hand-written readers and
writers, unchanged, kept as the oracle for differential tests.

The persisted runtime types and their exact serde JSON forms (SPEC §4).

Every persisted type has ``to_dict()`` (the wire form as plain JSON values,
keys in serde's field order, omissions as serde's ``skip_serializing_if``),
``from_dict()`` (as strict as serde: required fields, types, integer ranges,
enum words, uuid and timestamp forms; unknown keys ignored), and
``to_json()`` / ``from_json()`` on top of ``jsonwire``.

Decoding errors are ``ValueError`` (missing field, bad value) or ``TypeError``
(a JSON value of the wrong kind), and name the path, e.g.
``InputState.history[0].to: unknown InputLifecycleState 'foo'``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar, TypeVar

from redis_store.errors import RuntimeStateTransitionError
from redis_store.ids import InputId, RunId
from redis_store.timestamps import Timestamp

from . import jsonwire

__all__ = [
    "AbandonedOutcome",
    "ApplyMode",
    "CoalescedOutcome",
    "CoalescingSource",
    "ConsumePoint",
    "ConsumedOutcome",
    "InputAbandonReason",
    "InputDurability",
    "InputLifecycleState",
    "InputState",
    "InputStateEvent",
    "InputStateHistoryEntry",
    "InputTerminalOutcome",
    "PolicyDecision",
    "PolicySnapshot",
    "ProjectionSource",
    "QueueMode",
    "ReconstructionSource",
    "RunApplyBoundary",
    "RunBoundaryReceipt",
    "RuntimeState",
    "SessionDelta",
    "SupersededOutcome",
    "WakeMode",
]

_T = TypeVar("_T")
_W = TypeVar("_W", bound="_Wire")
_Reader = Callable[[Any, str], _T]


# -- reading JSON values the way serde does -------------------------------------


def _describe(value: object) -> str:
    """A JSON value as serde names it in "invalid type" errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a sequence"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


def _invalid_type(value: object, expected: str, path: str) -> TypeError:
    return TypeError(f"{path}: invalid type: {_describe(value)}, expected {expected}")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid_type(value, "an object", path)
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _invalid_type(value, "a string", path)
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid_type(value, "a boolean", path)
    return value


def _unsigned(bits: int) -> _Reader[int]:
    name, limit = f"u{bits}", 1 << bits

    def read(value: Any, path: str) -> int:
        # bool is an int in Python but never a JSON number; floats are rejected
        # as serde rejects `1.0` for an integer field.
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid_type(value, name, path)
        if not 0 <= value < limit:
            raise ValueError(f"{path}: invalid value: integer `{value}`, expected {name}")
        return value

    return read


_u32 = _unsigned(32)
_u64 = _unsigned(64)


def _parsed(parse: Callable[[str], _T]) -> _Reader[_T]:
    """A reader for a JSON string that ``parse`` turns into a value."""

    def read(value: Any, path: str) -> _T:
        try:
            return parse(_str(value, path))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    return read


_input_id = _parsed(InputId)
_run_id = _parsed(RunId)
_timestamp = _parsed(Timestamp.parse)


def _list_of(read_item: _Reader[_T]) -> _Reader[list[_T]]:
    def read(value: Any, path: str) -> list[_T]:
        if not isinstance(value, list):
            raise _invalid_type(value, "a sequence", path)
        return [read_item(item, f"{path}[{index}]") for index, item in enumerate(value)]

    return read


_input_ids = _list_of(_input_id)


def _required(obj: dict[str, Any], key: str, path: str, read: _Reader[_T]) -> _T:
    if key not in obj:
        raise ValueError(f"{path}: missing field `{key}`")
    return read(obj[key], f"{path}.{key}")


def _optional(obj: dict[str, Any], key: str, path: str, read: _Reader[_T]) -> _T | None:
    """An ``Option`` field: missing or null is None."""
    value = obj.get(key)
    return None if value is None else read(value, f"{path}.{key}")


def _defaulted(obj: dict[str, Any], key: str, path: str, read: _Reader[_T], default: _T) -> _T:
    """A ``#[serde(default)]`` non-Option field: missing is the default, null
    is an error (the reader rejects None)."""
    return read(obj[key], f"{path}.{key}") if key in obj else default


# -- fast readers: the common case only ---------------------------------------------


class _Slow(Exception):
    """Not a value the fast readers take as it is; the strict reader decides."""


def _fast_str(value: Any) -> str:
    if type(value) is str:
        return value
    raise _Slow


def _fast_u32(value: Any) -> int:
    if type(value) is int and 0 <= value <= 0xFFFF_FFFF:
        return value
    raise _Slow


def _fast_u64(value: Any) -> int:
    if type(value) is int and 0 <= value <= 0xFFFF_FFFF_FFFF_FFFF:
        return value
    raise _Slow


def _fast_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _Slow


def _fast_input_id(value: Any) -> InputId:
    if type(value) is str:
        try:
            return InputId._from_text(value)
        except ValueError:
            pass
    raise _Slow


def _fast_run_id(value: Any) -> RunId:
    if type(value) is str:
        try:
            return RunId._from_text(value)
        except ValueError:
            pass
    raise _Slow


def _fast_timestamp(value: Any) -> Timestamp:
    if type(value) is str:
        try:
            return Timestamp.parse(value)
        except ValueError:
            pass
    raise _Slow


def _fast_input_ids(value: Any) -> list[InputId]:
    if type(value) is not list:
        raise _Slow
    return [_fast_input_id(item) for item in value]


def _fast_member(members: dict[str, Any], value: Any) -> Any:
    """``members`` is an enum's ``_value2member_map_``."""
    if type(value) is str:
        member = members.get(value)
        if member is not None:
            return member
    raise _Slow


def _fast_object(value: Any) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise _Slow


class _Wire:
    """The JSON entry points shared by every persisted type. Subclasses give
    ``to_dict()`` and ``_read(value, path)``."""

    def to_dict(self) -> Any:
        raise NotImplementedError

    @classmethod
    def _read(cls: type[_W], value: Any, path: str) -> _W:
        raise NotImplementedError

    #: ``_fast_read(value)``: the common case, read with no error paths. It
    #: raises ``_Slow`` for anything it does not take as it is; ``_read``, the
    #: strict reader, then decides and names any problem. None: no fast reader.
    _fast_read: ClassVar[Callable[[Any], Any] | None] = None

    @classmethod
    def from_dict(cls: type[_W], value: Any) -> _W:
        fast = cls._fast_read
        if fast is not None:
            try:
                return fast(value)  # type: ignore[no-any-return]
            except _Slow:
                pass
        return cls._read(value, cls.__name__)

    def to_json(self) -> str:
        return jsonwire.dumps(self.to_dict())

    #: Fields holding free-form JSON, where a repeated key is not an error.
    _FREE_FORM: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_json(cls: type[_W], text: str | bytes) -> _W:
        return cls.from_dict(_struct_dicts(jsonwire.loads_pairs(text), cls._FREE_FORM, cls.__name__))


def _struct_dicts(value: Any, free_form: frozenset[str], path: str) -> Any:
    """``jsonwire.loads_pairs`` output as dicts. A field given twice in a
    struct is serde's error "duplicate field"; inside free-form JSON (a serde
    ``Map``) the last value wins."""
    if isinstance(value, tuple):
        out: dict[str, Any] = {}
        for key, item in value:
            if key in out:
                raise ValueError(f"{path}: duplicate field `{key}`")
            out[key] = _last_wins(item) if key in free_form else _struct_dicts(item, frozenset(), f"{path}.{key}")
        return out
    if isinstance(value, list):
        return [_struct_dicts(item, frozenset(), f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def _last_wins(value: Any) -> Any:
    if isinstance(value, tuple):
        return {key: _last_wins(item) for key, item in value}
    if isinstance(value, list):
        return [_last_wins(item) for item in value]
    return value


# -- enums: snake_case strings ----------------------------------------------------


class _WireEnum(_Wire, str, enum.Enum):
    """A unit-only serde enum: the member's value is its JSON string."""

    def __str__(self) -> str:
        return self.value  # type: ignore[no-any-return]

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def to_dict(self) -> str:
        return self.value  # type: ignore[no-any-return]

    @classmethod
    def _read(cls, value: Any, path: str) -> Any:
        member = cls._value2member_map_.get(_str(value, path))
        if member is None:
            raise ValueError(f"{path}: unknown {cls.__name__} {value!r}")
        return member


class RunApplyBoundary(_WireEnum):
    IMMEDIATE = "immediate"
    RUN_START = "run_start"
    RUN_CHECKPOINT = "run_checkpoint"


class RuntimeState(_WireEnum):
    """A runtime's lifecycle state (§4.3). The store persists it but never
    enforces the transition table."""

    INITIALIZING = "initializing"
    IDLE = "idle"
    RUNNING = "running"
    RECOVERING = "recovering"
    RETIRED = "retired"
    STOPPED = "stopped"
    DESTROYED = "destroyed"

    def is_terminal(self) -> bool:
        return self in (RuntimeState.STOPPED, RuntimeState.DESTROYED)

    def can_accept_input(self) -> bool:
        return self in (RuntimeState.IDLE, RuntimeState.RUNNING)

    def can_process_queue(self) -> bool:
        # A retired runtime drains its queue but accepts nothing new.
        return self in (RuntimeState.IDLE, RuntimeState.RETIRED)

    def can_transition_to(self, target: RuntimeState) -> bool:
        return target in _RUNTIME_TRANSITIONS[self]

    def transition(self, target: RuntimeState) -> RuntimeState:
        """The state after moving to ``target``: ``target`` itself, or
        ``RuntimeStateTransitionError`` if the table forbids the move (an enum
        member cannot change, so callers assign the result)."""
        if not self.can_transition_to(target):
            raise RuntimeStateTransitionError(self, target)
        return target


_RUNTIME_TRANSITIONS: dict[RuntimeState, frozenset[RuntimeState]] = {
    RuntimeState.INITIALIZING: frozenset(
        {RuntimeState.IDLE, RuntimeState.STOPPED, RuntimeState.DESTROYED}
    ),
    RuntimeState.IDLE: frozenset(
        {
            RuntimeState.RUNNING,
            RuntimeState.RECOVERING,
            RuntimeState.RETIRED,
            RuntimeState.STOPPED,
            RuntimeState.DESTROYED,
        }
    ),
    RuntimeState.RUNNING: frozenset(
        {
            RuntimeState.IDLE,
            RuntimeState.RECOVERING,
            RuntimeState.RETIRED,
            RuntimeState.STOPPED,
            RuntimeState.DESTROYED,
        }
    ),
    RuntimeState.RECOVERING: frozenset(
        {RuntimeState.IDLE, RuntimeState.RUNNING, RuntimeState.STOPPED, RuntimeState.DESTROYED}
    ),
    # A retired runtime may run again only to drain its queue.
    RuntimeState.RETIRED: frozenset(
        {RuntimeState.RUNNING, RuntimeState.STOPPED, RuntimeState.DESTROYED}
    ),
    RuntimeState.STOPPED: frozenset(),
    RuntimeState.DESTROYED: frozenset(),
}


class InputLifecycleState(_WireEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    STAGED = "staged"
    APPLIED = "applied"
    APPLIED_PENDING_CONSUMPTION = "applied_pending_consumption"
    CONSUMED = "consumed"
    SUPERSEDED = "superseded"
    COALESCED = "coalesced"
    ABANDONED = "abandoned"

    def is_terminal(self) -> bool:
        return self in (
            InputLifecycleState.CONSUMED,
            InputLifecycleState.SUPERSEDED,
            InputLifecycleState.COALESCED,
            InputLifecycleState.ABANDONED,
        )


class InputAbandonReason(_WireEnum):
    RETIRED = "retired"
    RESET = "reset"
    DESTROYED = "destroyed"
    CANCELLED = "cancelled"


class InputDurability(_WireEnum):
    DURABLE = "durable"
    EPHEMERAL = "ephemeral"
    DERIVED = "derived"


class ApplyMode(_WireEnum):
    STAGE_RUN_START = "stage_run_start"
    STAGE_RUN_BOUNDARY = "stage_run_boundary"
    INJECT_NOW = "inject_now"
    IGNORE = "ignore"


class WakeMode(_WireEnum):
    WAKE_IF_IDLE = "wake_if_idle"
    INTERRUPT_YIELDING = "interrupt_yielding"
    NONE = "none"


class QueueMode(_WireEnum):
    NONE = "none"
    FIFO = "fifo"
    COALESCE = "coalesce"
    SUPERSEDE = "supersede"
    PRIORITY = "priority"


class ConsumePoint(_WireEnum):
    ON_ACCEPT = "on_accept"
    ON_APPLY = "on_apply"
    ON_RUN_START = "on_run_start"
    ON_RUN_COMPLETE = "on_run_complete"
    EXPLICIT_ACK = "explicit_ack"


# -- internally tagged enums: one dataclass per variant ---------------------------


class _TaggedUnion(_Wire):
    """Base of an internally tagged serde enum. The union's root class names
    the tag key (``class X(_TaggedUnion, tag_key="outcome_type")``); each
    variant subclass names its tag (``class V(X, tag="consumed")``), which is
    written first, before the variant's own fields."""

    _tag_key: ClassVar[str]
    _variants: ClassVar[dict[str, type[_TaggedUnion]]]
    tag: ClassVar[str]

    def __init_subclass__(cls, tag_key: str | None = None, tag: str | None = None) -> None:
        super().__init_subclass__()
        if tag_key is not None:
            cls._tag_key, cls._variants = tag_key, {}
        if tag is not None:
            cls.tag = tag
            cls._variants[tag] = cls

    def to_dict(self) -> dict[str, Any]:
        return {self._tag_key: self.tag, **self._fields_to_dict()}

    def _fields_to_dict(self) -> dict[str, Any]:
        return {}

    @classmethod
    def _read(cls, value: Any, path: str) -> Any:
        obj = _object(value, path)
        tag = _required(obj, cls._tag_key, path, _str)
        variant = cls._variants.get(tag)
        if variant is None or not issubclass(variant, cls):
            expected = [name for name, v in cls._variants.items() if issubclass(v, cls)]
            raise ValueError(
                f"{path}.{cls._tag_key}: unknown variant {tag!r}, expected one of {expected}"
            )
        return variant._read_fields(obj, path)

    @classmethod
    def _read_fields(cls, obj: dict[str, Any], path: str) -> Any:
        return cls()

    @classmethod
    def _fast_read(cls, value: Any) -> Any:
        if type(value) is not dict:
            raise _Slow
        tag = value.get(cls._tag_key)
        if type(tag) is not str:
            raise _Slow
        variant = cls._variants.get(tag)
        if variant is None or not issubclass(variant, cls):
            raise _Slow
        return variant._fast_fields(value)

    @classmethod
    def _fast_fields(cls, obj: dict[str, Any]) -> Any:
        return cls()


class InputTerminalOutcome(_TaggedUnion, tag_key="outcome_type"):
    """How an input ended. One of ``ConsumedOutcome``, ``SupersededOutcome``,
    ``CoalescedOutcome``, ``AbandonedOutcome``; ``from_dict`` picks by tag."""


@dataclass(frozen=True)
class ConsumedOutcome(InputTerminalOutcome, tag="consumed"):
    pass


@dataclass(frozen=True)
class SupersededOutcome(InputTerminalOutcome, tag="superseded"):
    superseded_by: InputId

    def _fields_to_dict(self) -> dict[str, Any]:
        return {"superseded_by": str(self.superseded_by)}

    @classmethod
    def _read_fields(cls, obj: dict[str, Any], path: str) -> SupersededOutcome:
        return cls(_required(obj, "superseded_by", path, _input_id))

    @classmethod
    def _fast_fields(cls, obj: dict[str, Any]) -> SupersededOutcome:
        return cls(_fast_input_id(obj.get("superseded_by")))


@dataclass(frozen=True)
class CoalescedOutcome(InputTerminalOutcome, tag="coalesced"):
    aggregate_id: InputId

    def _fields_to_dict(self) -> dict[str, Any]:
        return {"aggregate_id": str(self.aggregate_id)}

    @classmethod
    def _read_fields(cls, obj: dict[str, Any], path: str) -> CoalescedOutcome:
        return cls(_required(obj, "aggregate_id", path, _input_id))

    @classmethod
    def _fast_fields(cls, obj: dict[str, Any]) -> CoalescedOutcome:
        return cls(_fast_input_id(obj.get("aggregate_id")))


@dataclass(frozen=True)
class AbandonedOutcome(InputTerminalOutcome, tag="abandoned"):
    reason: InputAbandonReason

    def _fields_to_dict(self) -> dict[str, Any]:
        return {"reason": _value(self.reason)}

    @classmethod
    def _read_fields(cls, obj: dict[str, Any], path: str) -> AbandonedOutcome:
        return cls(_required(obj, "reason", path, InputAbandonReason._read))

    @classmethod
    def _fast_fields(cls, obj: dict[str, Any]) -> AbandonedOutcome:
        return cls(_fast_member(InputAbandonReason._value2member_map_, obj.get("reason")))


class ReconstructionSource(_TaggedUnion, tag_key="source_type"):
    """Where a reconstructed input came from: ``ProjectionSource`` or
    ``CoalescingSource``; ``from_dict`` picks by tag."""


@dataclass(frozen=True)
class ProjectionSource(ReconstructionSource, tag="projection"):
    rule_id: str
    source_event_id: str

    def _fields_to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "source_event_id": self.source_event_id}

    @classmethod
    def _read_fields(cls, obj: dict[str, Any], path: str) -> ProjectionSource:
        return cls(
            _required(obj, "rule_id", path, _str),
            _required(obj, "source_event_id", path, _str),
        )

    @classmethod
    def _fast_fields(cls, obj: dict[str, Any]) -> ProjectionSource:
        return cls(_fast_str(obj.get("rule_id")), _fast_str(obj.get("source_event_id")))


@dataclass(frozen=True)
class CoalescingSource(ReconstructionSource, tag="coalescing"):
    source_input_ids: list[InputId]

    def _fields_to_dict(self) -> dict[str, Any]:
        return {"source_input_ids": [str(input_id) for input_id in self.source_input_ids]}

    @classmethod
    def _read_fields(cls, obj: dict[str, Any], path: str) -> CoalescingSource:
        return cls(_required(obj, "source_input_ids", path, _input_ids))

    @classmethod
    def _fast_fields(cls, obj: dict[str, Any]) -> CoalescingSource:
        return cls(_fast_input_ids(obj.get("source_input_ids")))


# -- structs ------------------------------------------------------------------------


@dataclass
class RunBoundaryReceipt(_Wire):
    """Proof that a run boundary was committed (§4.1)."""

    run_id: RunId
    boundary: RunApplyBoundary
    contributing_input_ids: list[InputId]
    conversation_digest: str | None
    message_count: int
    sequence: int

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": str(self.run_id),
            "boundary": _value(self.boundary),
            "contributing_input_ids": [str(input_id) for input_id in self.contributing_input_ids],
        }
        if self.conversation_digest is not None:
            out["conversation_digest"] = self.conversation_digest
        out["message_count"] = self.message_count
        out["sequence"] = self.sequence
        return out

    @classmethod
    def _read(cls, value: Any, path: str) -> RunBoundaryReceipt:
        obj = _object(value, path)
        return cls(
            run_id=_required(obj, "run_id", path, _run_id),
            boundary=_required(obj, "boundary", path, RunApplyBoundary._read),
            contributing_input_ids=_required(obj, "contributing_input_ids", path, _input_ids),
            conversation_digest=_optional(obj, "conversation_digest", path, _str),
            message_count=_required(obj, "message_count", path, _u64),
            sequence=_required(obj, "sequence", path, _u64),
        )

    @classmethod
    def _fast_read(cls, value: Any) -> RunBoundaryReceipt:
        get = _fast_object(value).get
        digest = get("conversation_digest")
        if digest is not None and type(digest) is not str:
            raise _Slow
        return cls(
            _fast_run_id(get("run_id")),
            _fast_member(_BOUNDARIES, get("boundary")),
            _fast_input_ids(get("contributing_input_ids")),
            digest,
            _fast_u64(get("message_count")),
            _fast_u64(get("sequence")),
        )


@dataclass(frozen=True)
class PolicyDecision(_Wire):
    apply_mode: ApplyMode
    wake_mode: WakeMode
    queue_mode: QueueMode
    consume_point: ConsumePoint
    _: KW_ONLY
    record_transcript: bool = True
    emit_operator_content: bool = True
    policy_version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "apply_mode": _value(self.apply_mode),
            "wake_mode": _value(self.wake_mode),
            "queue_mode": _value(self.queue_mode),
            "consume_point": _value(self.consume_point),
            "record_transcript": self.record_transcript,
            "emit_operator_content": self.emit_operator_content,
            "policy_version": self.policy_version,
        }

    @classmethod
    def _read(cls, value: Any, path: str) -> PolicyDecision:
        obj = _object(value, path)
        return cls(
            _required(obj, "apply_mode", path, ApplyMode._read),
            _required(obj, "wake_mode", path, WakeMode._read),
            _required(obj, "queue_mode", path, QueueMode._read),
            _required(obj, "consume_point", path, ConsumePoint._read),
            record_transcript=_defaulted(obj, "record_transcript", path, _bool, True),
            emit_operator_content=_defaulted(obj, "emit_operator_content", path, _bool, True),
            policy_version=_required(obj, "policy_version", path, _u64),
        )

    @classmethod
    def _fast_read(cls, value: Any) -> PolicyDecision:
        get = _fast_object(value).get
        return cls(
            _fast_member(ApplyMode._value2member_map_, get("apply_mode")),
            _fast_member(WakeMode._value2member_map_, get("wake_mode")),
            _fast_member(QueueMode._value2member_map_, get("queue_mode")),
            _fast_member(ConsumePoint._value2member_map_, get("consume_point")),
            record_transcript=_fast_bool(get("record_transcript", True)),
            emit_operator_content=_fast_bool(get("emit_operator_content", True)),
            policy_version=_fast_u64(get("policy_version")),
        )


@dataclass(frozen=True)
class PolicySnapshot(_Wire):
    version: int
    decision: PolicyDecision

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "decision": self.decision.to_dict()}

    @classmethod
    def _read(cls, value: Any, path: str) -> PolicySnapshot:
        obj = _object(value, path)
        return cls(
            _required(obj, "version", path, _u64),
            _required(obj, "decision", path, PolicyDecision._read),
        )

    @classmethod
    def _fast_read(cls, value: Any) -> PolicySnapshot:
        get = _fast_object(value).get
        return cls(_fast_u64(get("version")), PolicyDecision._fast_read(get("decision")))


@dataclass(frozen=True)
class InputStateHistoryEntry(_Wire):
    """One lifecycle move; the wire keys are ``from`` and ``to``."""

    timestamp: Timestamp
    from_state: InputLifecycleState
    to_state: InputLifecycleState
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "timestamp": str(self.timestamp),
            "from": _value(self.from_state),
            "to": _value(self.to_state),
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def _read(cls, value: Any, path: str) -> InputStateHistoryEntry:
        obj = _object(value, path)
        return cls(
            _required(obj, "timestamp", path, _timestamp),
            _required(obj, "from", path, InputLifecycleState._read),
            _required(obj, "to", path, InputLifecycleState._read),
            _optional(obj, "reason", path, _str),
        )

    @classmethod
    def _fast_read(cls, value: Any) -> InputStateHistoryEntry:
        get = _fast_object(value).get
        reason = get("reason")
        if reason is not None and type(reason) is not str:
            raise _Slow
        return cls(
            _fast_timestamp(get("timestamp")),
            _fast_member(_LIFECYCLE, get("from")),
            _fast_member(_LIFECYCLE, get("to")),
            reason,
        )


_history = _list_of(InputStateHistoryEntry._read)


@dataclass
class InputState(_Wire):
    """The per-input lifecycle record (§4.4). Mutable, as meerkat mutates it
    in place; ``persisted_input`` is the caller's ``Input`` JSON object, kept
    and written back as given."""

    _FREE_FORM: ClassVar[frozenset[str]] = frozenset({"persisted_input"})

    input_id: InputId
    current_state: InputLifecycleState
    _: KW_ONLY
    policy: PolicySnapshot | None = None
    terminal_outcome: InputTerminalOutcome | None = None
    durability: InputDurability | None = None
    idempotency_key: str | None = None
    attempt_count: int = 0
    recovery_count: int = 0
    history: list[InputStateHistoryEntry] = field(default_factory=list)
    reconstruction_source: ReconstructionSource | None = None
    persisted_input: dict[str, Any] | None = None
    last_run_id: RunId | None = None
    last_boundary_sequence: int | None = None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def new_accepted(cls, input_id: InputId) -> InputState:
        now = Timestamp.now()
        return cls(input_id, InputLifecycleState.ACCEPTED, created_at=now, updated_at=now)

    def is_terminal(self) -> bool:
        return self.current_state.is_terminal()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_id": str(self.input_id),
            "current_state": _value(self.current_state),
        }
        if self.policy is not None:
            out["policy"] = self.policy.to_dict()
        if self.terminal_outcome is not None:
            out["terminal_outcome"] = self.terminal_outcome.to_dict()
        if self.durability is not None:
            out["durability"] = _value(self.durability)
        if self.idempotency_key is not None:
            out["idempotency_key"] = self.idempotency_key
        out["attempt_count"] = self.attempt_count
        out["recovery_count"] = self.recovery_count
        if self.history:
            out["history"] = [entry.to_dict() for entry in self.history]
        if self.reconstruction_source is not None:
            out["reconstruction_source"] = self.reconstruction_source.to_dict()
        if self.persisted_input is not None:
            out["persisted_input"] = self.persisted_input
        if self.last_run_id is not None:
            out["last_run_id"] = str(self.last_run_id)
        if self.last_boundary_sequence is not None:
            out["last_boundary_sequence"] = self.last_boundary_sequence
        out["created_at"] = str(self.created_at)
        out["updated_at"] = str(self.updated_at)
        return out

    @classmethod
    def _read(cls, value: Any, path: str) -> InputState:
        obj = _object(value, path)
        return cls(
            _required(obj, "input_id", path, _input_id),
            _required(obj, "current_state", path, InputLifecycleState._read),
            policy=_optional(obj, "policy", path, PolicySnapshot._read),
            terminal_outcome=_optional(obj, "terminal_outcome", path, InputTerminalOutcome._read),
            durability=_optional(obj, "durability", path, InputDurability._read),
            idempotency_key=_optional(obj, "idempotency_key", path, _str),
            attempt_count=_defaulted(obj, "attempt_count", path, _u32, 0),
            recovery_count=_defaulted(obj, "recovery_count", path, _u32, 0),
            history=_defaulted(obj, "history", path, _history, []),
            reconstruction_source=_optional(
                obj, "reconstruction_source", path, ReconstructionSource._read
            ),
            # Kept opaque; an `Input` is an internally tagged enum, so an object.
            persisted_input=_optional(obj, "persisted_input", path, _object),
            last_run_id=_optional(obj, "last_run_id", path, _run_id),
            last_boundary_sequence=_optional(obj, "last_boundary_sequence", path, _u64),
            created_at=_required(obj, "created_at", path, _timestamp),
            updated_at=_required(obj, "updated_at", path, _timestamp),
        )

    @classmethod
    def _fast_read(cls, value: Any) -> InputState:
        get = _fast_object(value).get
        if len(value) == 6:  # perhaps only the fields that are always written
            attempt_count = get("attempt_count")
            recovery_count = get("recovery_count")
            if attempt_count is not None and recovery_count is not None:
                # Then the other four are the required ones (or it is not read here).
                return cls(
                    _fast_input_id(get("input_id")),
                    _fast_member(_LIFECYCLE, get("current_state")),
                    attempt_count=_fast_u32(attempt_count),
                    recovery_count=_fast_u32(recovery_count),
                    created_at=_fast_timestamp(get("created_at")),
                    updated_at=_fast_timestamp(get("updated_at")),
                )
        policy = get("policy")
        if policy is not None:
            policy = PolicySnapshot._fast_read(policy)
        outcome = get("terminal_outcome")
        if outcome is not None:
            outcome = InputTerminalOutcome._fast_read(outcome)
        durability = get("durability")
        if durability is not None:
            durability = _fast_member(_DURABILITIES, durability)
        idempotency_key = get("idempotency_key")
        if idempotency_key is not None and type(idempotency_key) is not str:
            raise _Slow
        history = get("history", _ABSENT)
        if history is _ABSENT:
            history = []
        elif type(history) is list:
            fast_entry = InputStateHistoryEntry._fast_read
            history = [fast_entry(entry) for entry in history]
        else:
            raise _Slow
        source = get("reconstruction_source")
        if source is not None:
            source = ReconstructionSource._fast_read(source)
        persisted_input = get("persisted_input")
        if persisted_input is not None and type(persisted_input) is not dict:
            raise _Slow
        last_run_id = get("last_run_id")
        if last_run_id is not None:
            last_run_id = _fast_run_id(last_run_id)
        sequence = get("last_boundary_sequence")
        if sequence is not None:
            _fast_u64(sequence)
        return cls(
            _fast_input_id(get("input_id")),
            _fast_member(_LIFECYCLE, get("current_state")),
            policy=policy,
            terminal_outcome=outcome,
            durability=durability,
            idempotency_key=idempotency_key,
            attempt_count=_fast_u32(get("attempt_count", 0)),
            recovery_count=_fast_u32(get("recovery_count", 0)),
            history=history,
            reconstruction_source=source,
            persisted_input=persisted_input,
            last_run_id=last_run_id,
            last_boundary_sequence=sequence,
            created_at=_fast_timestamp(get("created_at")),
            updated_at=_fast_timestamp(get("updated_at")),
        )


@dataclass
class InputStateEvent(_Wire):
    """A lifecycle event (not persisted by the store, but it has a JSON form)."""

    timestamp: Timestamp
    state: InputLifecycleState
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"timestamp": str(self.timestamp), "state": _value(self.state)}
        if self.detail is not None:
            out["detail"] = self.detail
        return out

    @classmethod
    def _read(cls, value: Any, path: str) -> InputStateEvent:
        obj = _object(value, path)
        return cls(
            _required(obj, "timestamp", path, _timestamp),
            _required(obj, "state", path, InputLifecycleState._read),
            _optional(obj, "detail", path, _str),
        )


@dataclass(frozen=True)
class SessionDelta:
    """The caller's serialized session (opaque bytes; not itself persisted as
    JSON)."""

    session_snapshot: bytes

    def __post_init__(self) -> None:
        snapshot = self.session_snapshot
        if isinstance(snapshot, (bytearray, memoryview)):
            object.__setattr__(self, "session_snapshot", bytes(snapshot))
        elif not isinstance(snapshot, bytes):
            raise TypeError(f"session_snapshot must be bytes, got {type(snapshot).__name__}")


def _value(member: Any) -> Any:
    """``member.value``, without the enum property's overhead for our enums."""
    if isinstance(member, _WireEnum):
        return member._value_
    return member.value


_ABSENT: Any = object()
_LIFECYCLE = InputLifecycleState._value2member_map_
_DURABILITIES = InputDurability._value2member_map_
_BOUNDARIES = RunApplyBoundary._value2member_map_
