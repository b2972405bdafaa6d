"""The persisted runtime types and their exact serde JSON forms (SPEC §4).

The schema is declared once, below, as msgspec Structs in serde's field order
(tags first, ``from``/``to`` renames, ``omit_defaults`` for the Options serde
skips when None); ids and timestamps go through ``_dec_hook``/``_enc_hook``.
Every type has ``to_dict()`` (the wire form as plain JSON values),
``from_dict()`` (as strict as serde: required fields, types, integer ranges,
enum words, uuid and timestamp forms; unknown keys ignored), and ``to_json()``
/ ``from_json()`` on top of ``jsonwire``.

Decoding errors are ``ValueError`` (missing field, bad value) or ``TypeError``
(a JSON value of the wrong kind), and name the path, e.g.
``InputState.history[0].to: unknown InputLifecycleState 'foo'`` (``_error``
words msgspec's errors as 0.1.0's hand-written reader did).

The Structs are not dataclasses: copy with ``msgspec.structs.replace``; a
frozen one raises AttributeError on assignment.

What msgspec decides otherwise than serde is made up for by small shims:
``_REQUIRED``/``_ZERO`` (fields read as defaulted or required but always
written), ``_check_u64`` (msgspec's bounds stop at int64), ``_struct_dicts``
(a repeated struct key is serde's error, in free-form JSON the last wins),
``_check_enums`` (0.1.0's ``to_dict`` refused a str where an enum belongs).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Optional, TypeVar, Union

import msgspec
from msgspec import Meta, Struct

from . import jsonwire
from .errors import RuntimeStateTransitionError
from .ids import InputId, RunId, SessionId, _UuidId
from .timestamps import _BY_TEXT as _TIMESTAMP_BY_TEXT
from .timestamps import Timestamp
from .timestamps import _read_new as _read_new_timestamp

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

_W = TypeVar("_W", bound="_Wire")
_V = TypeVar("_V", bound="_TaggedUnion")
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
U32 = Annotated[int, Meta(ge=0, le=_U32_MAX)]
U64 = Annotated[int, Meta(ge=0)]  # msgspec's bounds stop at int64: ``_check_u64`` checks the top


# -- ids and timestamps: JSON strings --------------------------------------------

_cached_timestamp = _TIMESTAMP_BY_TEXT.get
_JSON_KINDS = {type(None): "null", bool: "bool", int: "int", float: "float", list: "array", dict: "object"}


def _dec_hook(kind: Any, value: Any) -> Any:
    if type(value) is str:
        if kind is Timestamp:
            # Timestamp.parse(value) without its argument checks: a timestamp
            # read is often one written or read lately, and a Python call per
            # timestamp is much of a stored input state's decoding.
            found = _cached_timestamp(value)
            return _read_new_timestamp(value) if found is None else found
        return kind._from_text(value)
    raise TypeError(f"Expected `str`, got `{_JSON_KINDS.get(type(value), type(value).__name__)}`")


def _enc_hook(value: Any) -> Any:
    if type(value) in _WRITTEN_AS_TEXT:  # its text, once computed, without a call of __str__
        text = value._text
        return str(value) if text is None else text
    if isinstance(value, (_UuidId, Timestamp)):
        return str(value)
    raise TypeError(f"cannot write a {type(value).__name__}")


_WRITTEN_AS_TEXT = frozenset({RunId, InputId, SessionId, Timestamp})
_to_builtins = msgspec.to_builtins
_convert = msgspec.convert


# -- errors in serde's words ----------------------------------------------------

_EXPECTED = {"bool": "a boolean", "str": "a string", "array": "a sequence", "object": "an object"}
_U32_FIELDS = (".attempt_count", ".recovery_count")
_WRONG_KIND = re.compile(r"Expected `([^`|]*)(?: \| null)?`, got `[^`]*`")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


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
    return "a sequence" if isinstance(value, list) else "a map" if isinstance(value, dict) else type(value).__name__


def _at(value: Any, path: str) -> Any:
    """The value at msgspec's ``path`` (``...`` if it cannot be followed)."""
    try:
        for key, index in _STEP.findall(path):
            value = value[key] if key else value[int(index)]
    except (KeyError, IndexError, TypeError):
        return ...
    return value


def _error(name: str, exc: msgspec.ValidationError, value: Any) -> Exception:
    """msgspec's "<what> - at `$.a[0]`" as 0.1.0 said it, "<name>.a[0]: <what>"
    in serde's words: a TypeError for a value of the wrong JSON kind, else a
    ValueError."""
    what, at, path = str(exc).partition(" - at `$")
    path = path[:-1] if at else ""
    if what.startswith("."):  # a __post_init__ check names its field: ".version: ..."
        field, _, what = what.partition(": ")
        path += field
    integer = "u32" if path.endswith(_U32_FIELDS) else "u64"
    wrong = _WRONG_KIND.fullmatch(what)
    if wrong:
        expected = integer if wrong.group(1) == "int" else _EXPECTED.get(wrong.group(1), wrong.group(1))
        return TypeError(f"{name}{path}: invalid type: {_describe(_at(value, path))}, expected {expected}")
    if what.startswith("Object missing required field"):
        what = "missing " + what[len("Object missing required "):]
    elif what.startswith("Invalid enum value "):
        enum_type = _ENUM_BY_KEY.get(path.rpartition(".")[2]) if path else None
        enum_name = enum_type.__name__ if enum_type else name
        what = f"unknown {enum_name} {what[len('Invalid enum value '):]}"
    elif what.startswith("Invalid value "):  # a tag
        what = f"unknown variant {what[len('Invalid value '):]}, expected one of {_TAGS.get(path.rpartition('.')[2])}"
    elif what.startswith("Expected `int` "):
        what = f"invalid value: integer `{_at(value, path)}`, expected {integer}"
    return ValueError(f"{name}{path}: {what}")


def _str_keyed(value: Any) -> Any:
    """``value`` without the non-str keys of its objects: serde reads them as
    unknown fields, msgspec refuses them."""
    if type(value) is dict:
        return {k: _str_keyed(v) for k, v in value.items() if type(k) is str}
    return [_str_keyed(v) for v in value] if type(value) is list else value


# The __post_init__s every read of an input state runs test the bound before
# calling this: a Python call per field was a measurable part of a read.
def _check_u64(name: str, value: Any) -> None:
    if type(value) is int and value > _U64_MAX:
        raise ValueError(f".{name}: Expected `int` <= {_U64_MAX}")


class _Wire:
    """The JSON entry points shared by the Structs and the enums."""

    __slots__ = ()

    #: Fields holding free-form JSON, where a repeated key is not an error.
    _FREE_FORM: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> Any:
        _check_enums(self)
        return _to_builtins(self, enc_hook=_enc_hook)

    @classmethod
    def from_dict(cls: type[_W], value: Any) -> _W:
        try:
            return _convert(value, _decodes_as(cls), dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            if "`key` in `" in str(exc):
                return cls.from_dict(_str_keyed(value))
            raise _error(cls.__name__, exc, value) from None

    def to_json(self) -> str:
        return jsonwire.dumps(self.to_dict())

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


_DECODES_AS: dict[type, Any] = {}


def _decodes_as(cls: type) -> Any:
    """What ``cls.from_dict`` reads: the union of a tagged union's variants."""
    found = _DECODES_AS.get(cls)
    if found is None:
        variants = cls.__subclasses__() if issubclass(cls, _TaggedUnion) else []
        found = _DECODES_AS[cls] = Union[tuple(variants)] if variants else cls  # noqa: UP007
    return found


# -- enums: snake_case strings ----------------------------------------------------


class _WireEnum(_Wire, str, enum.Enum):
    """A unit-only serde enum: the member's value is its JSON string."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def to_dict(self) -> str:
        return self.value


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


_S = RuntimeState
_RUNTIME_TRANSITIONS: dict[RuntimeState, frozenset[RuntimeState]] = {
    _S.INITIALIZING: frozenset({_S.IDLE, _S.STOPPED, _S.DESTROYED}),
    _S.IDLE: frozenset({_S.RUNNING, _S.RECOVERING, _S.RETIRED, _S.STOPPED, _S.DESTROYED}),
    _S.RUNNING: frozenset({_S.IDLE, _S.RECOVERING, _S.RETIRED, _S.STOPPED, _S.DESTROYED}),
    _S.RECOVERING: frozenset({_S.IDLE, _S.RUNNING, _S.STOPPED, _S.DESTROYED}),
    # A retired runtime may run again only to drain its queue.
    _S.RETIRED: frozenset({_S.RUNNING, _S.STOPPED, _S.DESTROYED}),
    _S.STOPPED: frozenset(),
    _S.DESTROYED: frozenset(),
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
        return self in _TERMINAL


_L = InputLifecycleState
_TERMINAL = frozenset({_L.CONSUMED, _L.SUPERSEDED, _L.COALESCED, _L.ABANDONED})


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


# -- the Structs -------------------------------------------------------------------

# Defaults that are never a real value: a field read as required but declared
# after defaulted ones (``_REQUIRED``), and a defaulted count that is always
# written (``_ZERO``; ``omit_defaults`` would drop a real 0, which is the
# default's identical object). ``__post_init__`` replaces or refuses them.
_REQUIRED: Any = object()
_ZERO: Any = object()


def _required(name: str, value: Any) -> None:
    if value is _REQUIRED:
        raise TypeError(f"missing field `{name}`")


class _Struct(_Wire, Struct, omit_defaults=True, gc=False):
    """Base of the persisted Structs: acyclic, so kept out of the cyclic GC."""


# Every frozen class says ``frozen=True`` itself, though msgspec inherits it:
# type checkers read each class's own keywords (dataclass_transform).
class _Frozen(_Wire, Struct, omit_defaults=True, gc=False, frozen=True):
    """Base of the immutable persisted Structs (acyclic too)."""


class _TaggedUnion(_Frozen, frozen=True):
    """Base of an internally tagged serde enum; ``from_dict`` on the base reads
    any variant, on a variant only that one."""

    tag: ClassVar[str]

    @classmethod
    def from_dict(cls: type[_V], value: Any) -> _V:
        read = _Wire.from_dict.__func__(_root(cls), value)  # type: ignore[attr-defined]  # the unbound classmethod
        if not isinstance(read, cls):
            key = cls.__struct_config__.tag_field
            raise ValueError(f"{cls.__name__}.{key}: unknown variant {read.tag!r}, expected one of {[cls.tag]}")
        return read


def _root(cls: type) -> type:
    while cls.__base__ is not _TaggedUnion:
        cls = cls.__base__  # type: ignore[assignment]
    return cls


class InputTerminalOutcome(_TaggedUnion, tag_field="outcome_type", frozen=True):
    """How an input ended. One of ``ConsumedOutcome``, ``SupersededOutcome``,
    ``CoalescedOutcome``, ``AbandonedOutcome``; ``from_dict`` picks by tag."""


class ConsumedOutcome(InputTerminalOutcome, tag="consumed", frozen=True):
    pass


class SupersededOutcome(InputTerminalOutcome, tag="superseded", frozen=True):
    superseded_by: InputId


class CoalescedOutcome(InputTerminalOutcome, tag="coalesced", frozen=True):
    aggregate_id: InputId


class AbandonedOutcome(InputTerminalOutcome, tag="abandoned", frozen=True):
    reason: InputAbandonReason


class ReconstructionSource(_TaggedUnion, tag_field="source_type", frozen=True):
    """Where a reconstructed input came from: ``ProjectionSource`` or
    ``CoalescingSource``; ``from_dict`` picks by tag."""


class ProjectionSource(ReconstructionSource, tag="projection", frozen=True):
    rule_id: str
    source_event_id: str


class CoalescingSource(ReconstructionSource, tag="coalescing", frozen=True):
    source_input_ids: list[InputId]


# What a field of the union's type reads: any of its variants.
_AnyOutcome = Union[ConsumedOutcome, SupersededOutcome, CoalescedOutcome, AbandonedOutcome]  # noqa: UP007
_AnySource = Union[ProjectionSource, CoalescingSource]  # noqa: UP007

for _cls in (ConsumedOutcome, SupersededOutcome, CoalescedOutcome, AbandonedOutcome, ProjectionSource,
             CoalescingSource):
    _cls.tag = str(_cls.__struct_config__.tag)  # as a class attribute too


class RunBoundaryReceipt(_Struct):
    """Proof that a run boundary was committed (§4.1)."""

    run_id: RunId
    boundary: RunApplyBoundary
    contributing_input_ids: list[InputId]
    conversation_digest: Optional[str] = None  # noqa: UP045
    message_count: U64 = _REQUIRED
    sequence: U64 = _REQUIRED

    def __post_init__(self) -> None:
        _required("message_count", self.message_count)
        _required("sequence", self.sequence)
        _check_u64("message_count", self.message_count)
        _check_u64("sequence", self.sequence)


class _PolicyModes(_Frozen, frozen=True):
    apply_mode: ApplyMode
    wake_mode: WakeMode
    queue_mode: QueueMode
    consume_point: ConsumePoint


class PolicyDecision(_PolicyModes, kw_only=True, omit_defaults=False, frozen=True):  # every field is written
    record_transcript: bool = True
    emit_operator_content: bool = True
    policy_version: U64

    def __post_init__(self) -> None:
        if type(self.policy_version) is int and self.policy_version > _U64_MAX:
            _check_u64("policy_version", self.policy_version)


class PolicySnapshot(_Frozen, frozen=True):
    version: U64
    decision: PolicyDecision

    def __post_init__(self) -> None:
        if type(self.version) is int and self.version > _U64_MAX:
            _check_u64("version", self.version)


class InputStateHistoryEntry(_Frozen, frozen=True):
    """One lifecycle move; the wire keys are ``from`` and ``to``."""

    timestamp: Timestamp
    from_state: InputLifecycleState = msgspec.field(name="from")
    to_state: InputLifecycleState = msgspec.field(name="to")
    reason: Optional[str] = None  # noqa: UP045


class _InputStateHead(_Struct):
    input_id: InputId
    current_state: InputLifecycleState


class InputState(_InputStateHead, kw_only=True):
    """The per-input lifecycle record (§4.4). Mutable, as meerkat mutates it
    in place; ``persisted_input`` is the caller's ``Input`` JSON object, kept
    and written back as given."""

    _FREE_FORM: ClassVar[frozenset[str]] = frozenset({"persisted_input"})

    policy: Optional[PolicySnapshot] = None  # noqa: UP045
    terminal_outcome: Optional[_AnyOutcome] = None  # noqa: UP045
    durability: Optional[InputDurability] = None  # noqa: UP045
    idempotency_key: Optional[str] = None  # noqa: UP045
    attempt_count: U32 = _ZERO
    recovery_count: U32 = _ZERO
    history: list[InputStateHistoryEntry] = []
    reconstruction_source: Optional[_AnySource] = None  # noqa: UP045
    persisted_input: Optional[dict] = None  # noqa: UP045
    last_run_id: Optional[RunId] = None  # noqa: UP045
    last_boundary_sequence: Optional[U64] = None  # noqa: UP045
    created_at: Timestamp
    updated_at: Timestamp

    def __post_init__(self) -> None:
        if self.attempt_count is _ZERO:
            self.attempt_count = 0
        if self.recovery_count is _ZERO:
            self.recovery_count = 0
        if type(self.last_boundary_sequence) is int and self.last_boundary_sequence > _U64_MAX:
            _check_u64("last_boundary_sequence", self.last_boundary_sequence)

    @classmethod
    def new_accepted(cls, input_id: InputId) -> InputState:
        now = Timestamp.now()
        return cls(input_id, InputLifecycleState.ACCEPTED, created_at=now, updated_at=now)

    def is_terminal(self) -> bool:
        return self.current_state.is_terminal()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_dict()
        if self.persisted_input is not None:
            out["persisted_input"] = self.persisted_input  # as given, not a copy
        return out


class InputStateEvent(_Struct):
    """A lifecycle event (not persisted by the store, but it has a JSON form)."""

    timestamp: Timestamp
    state: InputLifecycleState
    detail: Optional[str] = None  # noqa: UP045


@dataclass(frozen=True)
class SessionDelta:
    """The caller's serialized session (opaque bytes; not itself persisted as
    JSON)."""

    session_snapshot: bytes

    def __post_init__(self) -> None:
        snapshot = self.session_snapshot
        if type(snapshot) is not bytes:  # bytearray, memoryview, a bytes subclass: plain bytes, once
            if not isinstance(snapshot, (bytes, bytearray, memoryview)):
                raise TypeError(f"session_snapshot must be bytes, got {type(snapshot).__name__}")
            object.__setattr__(self, "session_snapshot", bytes(snapshot))


def _enum_of(hint: Any) -> Any:
    for option in getattr(hint, "__args__", (hint,)):
        if isinstance(option, type) and issubclass(option, enum.Enum):
            return option
    return None



# The enum a field's key holds (no key names two enums), the tags a tag key picks from.
_ENUM_BY_KEY = {
    f.encode_name: enum_type
    for cls in (InputState, _InputStateHead, PolicyDecision, _PolicyModes, InputStateHistoryEntry, AbandonedOutcome,
                RunBoundaryReceipt, InputStateEvent)
    for f in msgspec.structs.fields(cls)
    if (enum_type := _enum_of(f.type)) is not None
}
_TAGS = {
    root.__struct_config__.tag_field: [v.tag for v in root.__subclasses__()]
    for root in (InputTerminalOutcome, ReconstructionSource)
}

# -- writing: 0.1.0's to_dict refused a non-enum where an enum belongs ----------------
#
# (it wrote ``member.value``). msgspec writes a str as it is, and a str equal
# to the enum's word compares equal after a round trip, so the check is here.

_ENUM_FIELDS: dict[type, tuple[tuple[str, type], ...]] = {}
_NESTED: dict[type, tuple[str, ...]]
_NESTED = {
    InputState: ("policy", "terminal_outcome", "history", "reconstruction_source"),
    PolicySnapshot: ("decision",),
}


def _check_enums(value: Any) -> None:
    kind = type(value)
    fields = _ENUM_FIELDS.get(kind)
    if fields is None:
        if not isinstance(value, Struct):
            return
        hints = {f.name: f.type for f in msgspec.structs.fields(kind)}
        fields = _ENUM_FIELDS[kind] = tuple(
            (name, hint) for name, hint in ((n, _enum_of(h)) for n, h in hints.items()) if hint is not None
        )
    for name, enum_type in fields:
        member = getattr(value, name)
        if member is not None and not isinstance(member, enum.Enum):
            raise TypeError(f"{kind.__name__}.{name}: {type(member).__name__} {member!r} is not a {enum_type.__name__}")
    for name in _NESTED.get(kind, ()):
        nested = getattr(value, name)
        for item in nested if type(nested) is list else (nested,):
            _check_enums(item)


# -- storability without a round trip ----------------------------------------------
#
# The store refuses a value unless it reads back equal (contract._storable:
# to_dict, from_dict, ==). These checks say, from exact types alone, that it
# does; anything they are unsure of (a subclass, a str-valued enum of another
# type, an odd JSON value) takes the round trip, which decides and names the
# problem. So they are sound, never stricter, and a few µs.


def _u(value: Any, limit: int) -> bool:
    return type(value) is int and 0 <= value <= limit


def _opt_str(value: Any) -> bool:
    return value is None or type(value) is str


def _ids(values: Any, cls: type) -> bool:
    return type(values) is list and all(type(v) is cls for v in values)


def _plain_json(value: Any) -> bool:
    """JSON a round trip surely keeps: msgspec's written and read back equal,
    and no deeper than serde reads."""
    try:
        text = _JSON_WRITE(value)
    except (TypeError, ValueError, OverflowError):
        return False
    if text.count(b"[") + text.count(b"{") > jsonwire.MAX_DEPTH:
        return False  # perhaps too deep: the round trip decides
    if b"0" * 19 in text.translate(jsonwire.DIGITS_AS_ZERO):
        return False  # perhaps an integer serde reads as a float
    return _JSON_READ(text) == value


def _policy_storable(policy: Any) -> bool:
    if type(policy) is not PolicySnapshot or not _u(policy.version, _U64_MAX):
        return False
    d = policy.decision
    return (
        type(d) is PolicyDecision
        and type(d.apply_mode) is ApplyMode
        and type(d.wake_mode) is WakeMode
        and type(d.queue_mode) is QueueMode
        and type(d.consume_point) is ConsumePoint
        and type(d.record_transcript) is bool
        and type(d.emit_operator_content) is bool
        and _u(d.policy_version, _U64_MAX)
    )


def _outcome_storable(outcome: Any) -> bool:
    kind = type(outcome)
    if kind is ConsumedOutcome:
        return True
    if kind is SupersededOutcome:
        return type(outcome.superseded_by) is InputId
    if kind is CoalescedOutcome:
        return type(outcome.aggregate_id) is InputId
    return kind is AbandonedOutcome and type(outcome.reason) is InputAbandonReason


def _source_storable(source: Any) -> bool:
    kind = type(source)
    if kind is ProjectionSource:
        return type(source.rule_id) is str and type(source.source_event_id) is str
    return kind is CoalescingSource and _ids(source.source_input_ids, InputId)


def _history_storable(history: list) -> bool:
    for entry in history:  # a loop, not all() over a generator: a few µs a state
        if not (
            type(entry) is InputStateHistoryEntry
            and type(entry.timestamp) is Timestamp
            and type(entry.from_state) is InputLifecycleState
            and type(entry.to_state) is InputLifecycleState
            and (entry.reason is None or type(entry.reason) is str)
        ):
            return False
    return True


def surely_storable(value: Any) -> bool:
    """Whether an ``InputState`` or ``RunBoundaryReceipt`` surely reads back
    equal from its wire form (False: perhaps not; the round trip decides)."""
    if type(value) is InputState:
        s = value
        return (
            type(s.input_id) is InputId
            and type(s.current_state) is InputLifecycleState
            and (s.policy is None or _policy_storable(s.policy))
            and (s.terminal_outcome is None or _outcome_storable(s.terminal_outcome))
            and (s.durability is None or type(s.durability) is InputDurability)
            and _opt_str(s.idempotency_key)
            and _u(s.attempt_count, _U32_MAX)
            and _u(s.recovery_count, _U32_MAX)
            and type(s.history) is list
            and _history_storable(s.history)
            and (s.reconstruction_source is None or _source_storable(s.reconstruction_source))
            and (s.persisted_input is None or type(s.persisted_input) is dict and _plain_json(s.persisted_input))
            and (s.last_run_id is None or type(s.last_run_id) is RunId)
            and (s.last_boundary_sequence is None or _u(s.last_boundary_sequence, _U64_MAX))
            and type(s.created_at) is Timestamp
            and type(s.updated_at) is Timestamp
        )
    if type(value) is RunBoundaryReceipt:
        r = value
        return (
            type(r.run_id) is RunId
            and type(r.boundary) is RunApplyBoundary
            and _ids(r.contributing_input_ids, InputId)
            and _opt_str(r.conversation_digest)
            and _u(r.message_count, _U64_MAX)
            and _u(r.sequence, _U64_MAX)
        )
    return False


_JSON_WRITE = msgspec.json.Encoder().encode
_JSON_READ = msgspec.json.Decoder().decode
