"""The reference digest: redis-store 0.1.0's strict Session reader (SPEC §3, §5),
kept unchanged as the oracle the msgspec model is tested against.

Original module doc:

The receipt digest of a session snapshot (SPEC §3, §5).

meerkat parses the snapshot as a ``meerkat_core::Session``, re-serializes only
its message list with serde_json and hashes those bytes. So the digest depends
on the typed model, not on the caller's formatting: this module reads the
snapshot as strictly as serde would, rebuilds every message in its declared
field order with serde's defaults and omissions, and hashes
``jsonwire.dumps_bytes`` of the result. (Fast paths, further down, reach the
same bytes sooner: a snapshot written by serde already holds them.)

Not replicated (no writer emits these; all are rejected here although serde
accepts them): any struct written as a JSON array of its fields (serde
derives accept sequences), variant tags given as integer indexes inside a
message, unit enum values written as ``{"end_turn": null}``, and the lax
skipping of unknown top-level fields (serde skips them without checking
depth, surrogates, number range or UTF-8). Floats in tool args: see
``jsonwire``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from redis_store.errors import InvalidSessionSnapshot
from redis_store.ids import parse_uuid

from . import jsonwire

__all__ = ["SessionSummary", "canonical_messages_json", "inspect_session", "session_digest"]

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_I64_MAX = 2**63 - 1
_NANOS_PER_SEC = 1_000_000_000

_ABSENT = object()

Reader = Callable[[Any], Any]


@dataclass(frozen=True)
class SessionSummary:
    """What a receipt needs from a snapshot."""

    session_id: str  # lowercase hyphenated
    conversation_digest: str  # lowercase hex SHA-256 of the canonical messages
    message_count: int


def inspect_session(snapshot: bytes) -> SessionSummary:
    """Parse ``snapshot`` as a meerkat Session and digest its messages.

    Raises TypeError if ``snapshot`` is not bytes-like and
    InvalidSessionSnapshot (saying what is wrong and where) if it is not a
    Session.
    """
    session_id, encoded, count = _canonical(snapshot)
    return SessionSummary(session_id, hashlib.sha256(encoded).hexdigest(), count)


def session_digest(snapshot: bytes) -> tuple[str, int]:
    """``(conversation_digest, message_count)`` of ``snapshot``."""
    summary = inspect_session(snapshot)
    return summary.conversation_digest, summary.message_count


def canonical_messages_json(snapshot: bytes) -> bytes:
    """The exact bytes that get hashed: the messages as serde_json writes them."""
    return _canonical(snapshot)[1]


def _canonical(snapshot: bytes) -> tuple[str, bytes, int]:
    if not isinstance(snapshot, (bytes, bytearray, memoryview)):
        raise TypeError(f"session snapshot must be bytes, not {type(snapshot).__name__}")
    return _strict_canonical(bytes(snapshot))


def _strict_canonical(snapshot: bytes) -> tuple[str, bytes, int]:
    """The reference reader: every object as key/value pairs, every field read
    by a generic reader that knows where it is. Slow, but it names the problem
    and its place; the fast path defers to it whenever it is unsure."""
    with jsonwire.paused_gc():
        try:
            document = jsonwire.loads_pairs(snapshot)
        except UnicodeDecodeError as exc:
            raise InvalidSessionSnapshot(
                f"snapshot is not valid UTF-8 at byte {exc.start} ({exc.reason})"
            ) from None
        except ValueError as exc:
            raise InvalidSessionSnapshot(f"snapshot is not valid JSON: {exc}") from None
        if type(document) is not tuple:
            raise InvalidSessionSnapshot(
                f"expected a JSON object at top level, found {_unexpected(document)}"
            )
        try:
            session_id, messages = _session(document)
        except _Invalid as exc:
            raise InvalidSessionSnapshot(exc.located()) from None
        return session_id, jsonwire.dumps_bytes(messages), len(messages)


# -- errors -------------------------------------------------------------------


class _Invalid(Exception):
    """A snapshot that is not a Session. Readers raise it where they are; the
    callers above add their field name or index while it unwinds, so the happy
    path never builds a path."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.trail: list[str | int] = []  # innermost first

    def located(self) -> str:
        path = "".join(f"[{k}]" if type(k) is int else f".{k}" for k in reversed(self.trail))
        return f"{path.lstrip('.')}: {self}" if path else str(self)


def _unexpected(value: Any) -> str:
    """How serde names a value of the wrong type. Objects are pair tuples."""
    if value is None:
        return "null"
    if type(value) is bool:
        return f"boolean `{'true' if value else 'false'}`"
    if type(value) is int:
        return f"integer `{value}`"
    if type(value) is float:
        return f"floating point `{jsonwire.dumps(value)}`"
    if type(value) is str:
        return f"string {jsonwire.dumps(value if len(value) <= 40 else value[:40] + '…')}"
    return "a sequence" if type(value) is list else "a map"


def _wrong_type(value: Any, expected: str) -> _Invalid:
    return _Invalid(f"invalid type: {_unexpected(value)}, expected {expected}")


# -- generic readers ----------------------------------------------------------


def _object(value: Any, expected: str) -> dict:
    if type(value) is not tuple:
        raise _wrong_type(value, expected)
    return dict(value)


def _reject_duplicates(pairs: tuple, known: frozenset) -> None:
    """serde errors on a repeated struct field; repeated unknown keys are fine."""
    seen = set()
    for key, _ in pairs:
        if key in seen and key in known:
            raise _Invalid(f"duplicate field `{key}`")
        seen.add(key)


def _struct(value: Any, expected: str, known: frozenset) -> dict:
    fields = _object(value, expected)
    if len(fields) != len(value):
        _reject_duplicates(value, known)
    return fields


def _field(fields: dict, name: str, read: Reader, default: Any = _ABSENT) -> Any:
    """Read field ``name``; without ``default`` it is required. An explicit
    null goes to ``read`` (serde: only Option fields accept it)."""
    value = fields.get(name, _ABSENT)
    if value is _ABSENT:
        if default is _ABSENT:
            raise _Invalid(f"missing field `{name}`")
        return default
    try:
        return read(value)
    except _Invalid as exc:
        exc.trail.append(name)
        raise


def _str_field(fields: dict, name: str) -> str:
    """``_field(fields, name, _str)``, inlined: most fields are strings."""
    value = fields.get(name, _ABSENT)
    if type(value) is str:
        return value
    if value is _ABSENT:
        raise _Invalid(f"missing field `{name}`")
    exc = _wrong_type(value, "a string")
    exc.trail.append(name)
    raise exc


def _element(items: list, index: int, read: Reader) -> Any:
    try:
        return read(items[index])
    except _Invalid as exc:
        exc.trail.append(index)
        raise


def _array_of(read: Reader, expected: str = "a sequence") -> Reader:
    """A reader of JSON arrays whose elements ``read`` reads."""

    def read_array(value: Any) -> list:
        if type(value) is not list:
            raise _wrong_type(value, expected)
        items = []
        try:
            for index, item in enumerate(value):
                items.append(read(item))
        except _Invalid as exc:
            exc.trail.append(index)
            raise
        return items

    return read_array


def _optional(read: Reader) -> Reader:
    """An ``Option<T>`` field: null reads as None."""
    return lambda value: None if value is None else read(value)


def _tag(fields: dict, tag: str, variants: dict) -> Any:
    """The variant of an enum tagged by ``tag``: ``variants[name]``."""
    name = fields.get(tag, _ABSENT)
    if name is _ABSENT:
        raise _Invalid(f"missing field `{tag}`")
    if type(name) is not str:
        raise _Invalid(f"invalid type: {_unexpected(name)} for `{tag}`, expected a string")
    variant = variants.get(name)
    if variant is None:
        expected = ", ".join(f"`{v}`" for v in variants)
        raise _Invalid(f"unknown {tag} {name!r}, expected one of {expected}")
    return variant


def _internally_tagged(value: Any, expected: str, tag: str, variants: dict) -> dict:
    """``#[serde(tag = ...)]``: ``variants[name] = (known_fields, read)``;
    ``read`` turns the object's fields into the canonical dict."""
    fields = _object(value, expected)
    known, read = _tag(fields, tag, variants)
    if len(fields) != len(value):
        _reject_duplicates(value, known)
    return read(fields)


# -- scalars ------------------------------------------------------------------


def _str(value: Any) -> str:
    if type(value) is str:
        return value
    raise _wrong_type(value, "a string")


def _bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _wrong_type(value, "a boolean")


def _unsigned(bits: int, maximum: int) -> Reader:
    def read(value: Any) -> int:
        if type(value) is not int:  # bools and floats are not integers to serde
            raise _wrong_type(value, f"u{bits}")
        if not 0 <= value <= maximum:
            raise _Invalid(f"invalid value: integer `{value}`, expected u{bits}")
        return value

    return read


_u32 = _unsigned(32, _U32_MAX)
_u64 = _unsigned(64, _U64_MAX)
_optional_u64 = _optional(_u64)
_optional_str = _optional(_str)

def _uuid(value: Any) -> str:
    if type(value) is not str:
        raise _wrong_type(value, "a UUID string")
    try:
        return str(parse_uuid(value))
    except ValueError:
        raise _Invalid(
            f"invalid UUID {value[:60]!r}: expected 32 hex digits, hyphenated 8-4-4-4-12, "
            "optionally {braced} or urn:uuid:-prefixed"
        ) from None


def _free_value(value: Any) -> Any:
    """A free-form JSON value as serde_json's ``Value`` writes it back: object
    keys sorted (a BTreeMap; str order is UTF-8 byte order), a repeated key
    keeps its last value."""
    if type(value) is tuple:
        fields = dict(value)
        return {key: _free_value(fields[key]) for key in sorted(fields)}
    if type(value) is list:
        return [_free_value(item) for item in value]
    return value


def _map(value: Any) -> Any:
    """A free-form map that is validated but not written (session metadata)."""
    if type(value) is not tuple:
        raise _wrong_type(value, "a map")
    return value


# -- the Session (SPEC §5.1) --------------------------------------------------

_SESSION_FIELDS = frozenset(
    {"version", "id", "messages", "created_at", "updated_at", "metadata", "usage"}
)
_TIME_FIELDS = frozenset({"secs_since_epoch", "nanos_since_epoch"})


def _session(document: tuple) -> tuple[str, list]:
    fields = _struct(document, "struct Session", _SESSION_FIELDS)
    _field(fields, "version", _u32, 1)
    session_id = _field(fields, "id", _uuid)
    messages = _field(fields, "messages", _messages)
    _field(fields, "created_at", _system_time)
    _field(fields, "updated_at", _system_time)
    _field(fields, "metadata", _map, None)
    _field(fields, "usage", _usage, None)
    return session_id, messages


def _system_time(value: Any) -> None:
    """serde's SystemTime: ``{secs_since_epoch, nanos_since_epoch}`` in any
    order (unknown keys are errors) or ``[secs, nanos]``; nanos carry into
    secs, and the sum must fit the platform's i64 seconds."""
    if type(value) is list:
        if len(value) != 2:
            raise _Invalid(
                f"expected [secs_since_epoch, nanos_since_epoch], found {len(value)} elements"
            )
        secs, nanos = _element(value, 0, _u64), _element(value, 1, _u32)
    else:
        fields = _struct(value, "struct SystemTime", _TIME_FIELDS)
        unknown = [key for key in fields if key not in _TIME_FIELDS]
        if unknown:
            raise _Invalid(
                f"unknown field `{unknown[0]}`, expected `secs_since_epoch` or `nanos_since_epoch`"
            )
        secs = _field(fields, "secs_since_epoch", _u64)
        nanos = _field(fields, "nanos_since_epoch", _u32)
    if secs + nanos // _NANOS_PER_SEC > _I64_MAX:
        raise _Invalid("overflow deserializing SystemTime")


_USAGE_FIELDS = frozenset(
    {"input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens"}
)


def _usage(value: Any) -> dict:
    fields = _struct(value, "struct Usage", _USAGE_FIELDS)
    return {
        "input_tokens": _field(fields, "input_tokens", _u64),
        "output_tokens": _field(fields, "output_tokens", _u64),
        # Option fields without skip_serializing_if: always written, null for None.
        "cache_creation_tokens": _field(fields, "cache_creation_tokens", _optional_u64, None),
        "cache_read_tokens": _field(fields, "cache_read_tokens", _optional_u64, None),
    }


# -- content blocks (user content, tool result content) -----------------------


def _text_content(fields: dict) -> dict:
    return {"type": "text", "text": _str_field(fields, "text")}


def _image_content(fields: dict) -> dict:
    _field(fields, "source_path", _optional_str, None)  # type-checked, never written
    return {
        "type": "image",
        "media_type": _str_field(fields, "media_type"),
        "data": _str_field(fields, "data"),
    }


_CONTENT_BLOCKS = {
    "text": (frozenset({"type", "text"}), _text_content),
    "image": (frozenset({"type", "media_type", "data", "source_path"}), _image_content),
}


def _content_block(value: Any) -> dict:
    return _internally_tagged(value, "internally tagged enum ContentBlock", "type", _CONTENT_BLOCKS)


_content_block_array = _array_of(_content_block, "a string or an array of content blocks")


def _content_blocks(value: Any) -> str | list:
    """A string reads as one text block, and one text block is written back
    as a plain string; anything else stays an array."""
    if type(value) is str:
        return value
    blocks = _content_block_array(value)
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return blocks[0]["text"]
    return blocks


# -- provider metadata (SPEC §5.2 ProviderMeta) -------------------------------


def _string_meta(provider: str, key: str) -> tuple[frozenset, Reader]:
    def read(fields: dict) -> dict:
        return {"provider": provider, key: _str_field(fields, key)}

    return frozenset({"provider", key}), read


def _open_ai_meta(fields: dict) -> dict:
    meta = {"provider": "open_ai", "id": _str_field(fields, "id")}
    encrypted = _field(fields, "encrypted_content", _optional_str, None)
    if encrypted is not None:
        meta["encrypted_content"] = encrypted
    return meta


_PROVIDER_META = {
    "anthropic": _string_meta("anthropic", "signature"),
    "anthropic_redacted": _string_meta("anthropic_redacted", "data"),
    "anthropic_compaction": _string_meta("anthropic_compaction", "content"),
    "gemini": _string_meta("gemini", "thoughtSignature"),
    "open_ai": (frozenset({"provider", "id", "encrypted_content"}), _open_ai_meta),
}


def _provider_meta(value: Any) -> dict | None:
    if value is None:
        return None
    return _internally_tagged(value, "internally tagged enum ProviderMeta", "provider", _PROVIDER_META)


# -- assistant blocks: adjacently tagged {"block_type": ..., "data": {...}} ----


def _with_meta(data: dict, fields: dict) -> dict:
    meta = _field(fields, "meta", _provider_meta, None)
    if meta is not None:  # skip_serializing_if = "Option::is_none"
        data["meta"] = meta
    return data


def _text_data(value: Any) -> dict:
    fields = _struct(value, "struct variant AssistantBlock::Text", frozenset({"text", "meta"}))
    return _with_meta({"text": _str_field(fields, "text")}, fields)


def _reasoning_data(value: Any) -> dict:
    fields = _struct(value, "struct variant AssistantBlock::Reasoning", frozenset({"text", "meta"}))
    return _with_meta({"text": _field(fields, "text", _str, "")}, fields)


def _tool_use_data(value: Any) -> dict:
    fields = _struct(
        value, "struct variant AssistantBlock::ToolUse", frozenset({"id", "name", "args", "meta"})
    )
    data = {
        "id": _str_field(fields, "id"),
        "name": _str_field(fields, "name"),
        "args": _field(fields, "args", _free_value),
    }
    return _with_meta(data, fields)


_ASSISTANT_BLOCKS = {"text": _text_data, "reasoning": _reasoning_data, "tool_use": _tool_use_data}
_ADJACENT_KEYS = frozenset({"block_type", "data"})


def _assistant_block(value: Any) -> dict:
    fields = _struct(value, "adjacently tagged enum AssistantBlock", _ADJACENT_KEYS)
    read_data = _tag(fields, "block_type", _ASSISTANT_BLOCKS)
    return {"block_type": fields["block_type"], "data": _field(fields, "data", read_data)}


_assistant_blocks = _array_of(_assistant_block)


# -- messages (SPEC §5.2) -----------------------------------------------------

_STOP_REASONS = frozenset(
    {"end_turn", "tool_use", "max_tokens", "stop_sequence", "content_filter", "cancelled"}
)


def _stop_reason(value: Any) -> str:
    if type(value) is not str:
        raise _wrong_type(value, "a stop_reason string")
    if value not in _STOP_REASONS:
        expected = ", ".join(f"`{v}`" for v in sorted(_STOP_REASONS))
        raise _Invalid(f"unknown stop_reason {value!r}, expected one of {expected}")
    return value


def _tool_call(value: Any) -> dict:
    fields = _struct(value, "struct ToolCall", frozenset({"id", "name", "args"}))
    return {
        "id": _str_field(fields, "id"),
        "name": _str_field(fields, "name"),
        "args": _field(fields, "args", _free_value),
    }


_tool_calls = _array_of(_tool_call)


def _tool_result(value: Any) -> dict:
    fields = _struct(value, "struct ToolResult", frozenset({"tool_use_id", "content", "is_error"}))
    return {
        "tool_use_id": _str_field(fields, "tool_use_id"),
        "content": _field(fields, "content", _content_blocks),
        "is_error": _field(fields, "is_error", _bool, False),
    }


_tool_results = _array_of(_tool_result)


def _system_message(fields: dict) -> dict:
    return {"role": "system", "content": _str_field(fields, "content")}


def _user_message(fields: dict) -> dict:
    return {"role": "user", "content": _field(fields, "content", _content_blocks)}


def _assistant_message(fields: dict) -> dict:
    return {
        "role": "assistant",
        "content": _str_field(fields, "content"),
        "tool_calls": _field(fields, "tool_calls", _tool_calls, ()),
        "stop_reason": _field(fields, "stop_reason", _stop_reason),
        "usage": _field(fields, "usage", _usage),
    }


def _block_assistant_message(fields: dict) -> dict:
    return {
        "role": "block_assistant",
        "blocks": _field(fields, "blocks", _assistant_blocks),
        "stop_reason": _field(fields, "stop_reason", _stop_reason),
    }


def _tool_results_message(fields: dict) -> dict:
    return {"role": "tool_results", "results": _field(fields, "results", _tool_results)}


def _message_variant(read: Reader, *names: str) -> tuple[frozenset, Reader]:
    return frozenset({"role", *names}), read


_MESSAGES = {
    "system": _message_variant(_system_message, "content"),
    "user": _message_variant(_user_message, "content"),
    "assistant": _message_variant(_assistant_message, "content", "tool_calls", "stop_reason", "usage"),
    "block_assistant": _message_variant(_block_assistant_message, "blocks", "stop_reason"),
    "tool_results": _message_variant(_tool_results_message, "results"),
}


def _message(value: Any) -> dict:
    return _internally_tagged(value, "internally tagged enum Message", "role", _MESSAGES)


_messages = _array_of(_message)
