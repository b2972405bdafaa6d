"""The receipt digest of a session snapshot (SPEC §3, §5).

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

import gc
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from . import jsonwire
from .errors import InvalidSessionSnapshot
from .ids import parse_uuid

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
    raw = snapshot if type(snapshot) is bytes else bytes(snapshot)
    collecting = gc.isenabled()  # paused as in jsonwire.paused_gc, without its overhead
    if collecting:
        gc.disable()
    try:
        try:
            return _fast_canonical(raw)
        except (_Fallback, ValueError, RecursionError, StopIteration):
            pass  # not decided here: the strict reader below decides, with its errors
        return _strict_canonical(raw)
    finally:
        if collecting:
            gc.enable()


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


# -- the fast path --------------------------------------------------------------
#
# The reader above is the reference. The fast path below gives the same
# result for every snapshot it accepts, and defers to the reference (raising
# ``_Fallback``, or a ValueError from the C decoder) for everything else:
# invalid snapshots, repeated keys, SystemTime arrays, numbers that the strict
# JSON reader would turn into floats or reject. It has two tiers:
#
# * Written by serde (``_serde_layout``, ``_serde_written``): the messages'
#   text is already canonical, so it is checked (a regular expression of the
#   canonical form; only tool args are parsed) and hashed as it is. That is
#   meerkat's own snapshots and most others.
# * Otherwise (``_fast_top_level``, ``_fast_session``): the C decoder parses
#   straight into dicts (no hooks per number or object), and what it does not
#   check is made up for: lone surrogate escapes and ``-0`` are looked for in
#   the bytes, numbers outside the messages' typed fields are range-checked by
#   a walk that also measures the nesting depth, and repeated keys are found by
#   comparing the number of keys in the text (colons outside strings) with the
#   number of entries in the parsed dicts. Each message is recognized as
#   canonical by the order of its keys, or read by a reader specialized for
#   its role; when all are canonical and the text is compact, with serde's
#   escapes and no floats, that text is hashed as it is, else the canonical
#   messages are written with ``jsonwire``.


class _Fallback(Exception):
    """The fast path cannot decide this snapshot; the reference reader will."""


_FAST_DECODER = json.JSONDecoder(parse_constant=jsonwire._reject_constant)
_scan_value = _FAST_DECODER.scan_once
_scan_string = json.decoder.scanstring
_skip_ws = json.decoder.WHITESPACE.match
_WHITESPACE = frozenset(" \t\n\r")


def _skip(text: str, index: int) -> int:
    """The index of the first character at or after ``index`` that is not JSON whitespace."""
    if text[index : index + 1] in _WHITESPACE:
        return _skip_ws(text, index).end()
    return index


_I64_MIN = -(2**63)
_MAX_DEPTH = jsonwire.MAX_DEPTH
_INF = float("inf")

# The number -0 (not -0.5, -0e1, nor the "-0" in a uuid): the strict reader
# makes it a float. Strings may match too; that only costs the fast path.
_NEGATIVE_ZERO = re.compile(rb"-0(?![^\]},\s])")
# A backslash (escaped backslashes removed) that does not start an escape
# serde writes: \\" \\b \\f \\n \\r \\t and \\u00xx (lowercase) for the other
# control characters.
_NONCANONICAL_ESCAPE = re.compile(rb'\\(?!["bfnrt]|u00(?:0[0-7bef]|1[0-9a-f]))')
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Keeps quotes, colons and JSON whitespace: what is left outside strings are
# the colons of object keys, and any whitespace between tokens.
_NOT_SKELETON = bytes(sorted(set(range(256)) - set(b'": \t\n\r')))


def _fast_canonical(raw: bytes) -> tuple[str, bytes, int]:
    # What the C decoder does not check (the reference reader does).
    unescaped = raw
    if b"\\" in raw:
        if b"\\\\" in raw:
            unescaped = raw.replace(b"\\\\", b"")
        if b"\\ud" in unescaped or b"\\uD" in unescaped:
            if jsonwire._LONE_SURROGATE_ESCAPE.search(unescaped):
                raise _Fallback
    if b"-0" in raw and _NEGATIVE_ZERO.search(raw):
        raise _Fallback
    text = raw.decode("utf-8")

    found = _serde_layout(text)
    if found is None:
        found = _serde_written(text)
    elif found is _NOT_CANONICAL:
        found = None
    if found is not None:
        session_id, start, end, count = found
        if len(text) != len(raw):  # not ASCII: character offsets are not byte offsets
            start = len(text[:start].encode())
            end = len(raw) - len(text[end:].encode())
        return session_id, raw[start:end], count

    if b'\\"' in unescaped:
        unescaped = unescaped.replace(b'\\"', b"")
    fields, start, end = _fast_top_level(text)
    keys, spaced = _skeleton(unescaped)

    acc = [len(fields), False]  # dict entries seen, a float seen in tool args
    session_id, messages, unchanged = _fast_session(fields, acc)
    if acc[0] != keys:
        raise _Fallback  # some object repeats a key

    if unchanged and not acc[1]:
        if len(text) != len(raw):
            start = len(text[:start].encode())
            end = len(raw) - len(text[end:].encode())
        encoded = raw[start:end]
        if _is_canonical_text(encoded, spaced):
            return session_id, encoded, len(messages)
    return session_id, jsonwire.dumps_bytes(messages), len(messages)


def _skeleton(unescaped: bytes) -> tuple[int, bool]:
    """(keys, spaced) of a valid JSON text without escaped backslashes and
    quotes: how many object keys it has (colons outside strings) and whether
    there is whitespace outside strings."""
    # Tabs and line breaks cannot be inside strings (they would be escaped).
    spaced = b"\n" in unescaped or b"\r" in unescaped or b"\t" in unescaped
    skeleton = unescaped.translate(None, _NOT_QUOTE_OR_COLON if spaced else _NOT_SKELETON)
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:  # strings holding colons or spaces remain: keep the outside
        skeleton = b"".join(skeleton.split(b'"')[::2])
    keys = skeleton.count(b":")
    return keys, spaced or len(skeleton) != keys


_NOT_QUOTE_OR_COLON = bytes(sorted(set(range(256)) - set(b'":')))


def _is_canonical_text(encoded: bytes, spaced: bool) -> bool:
    """Whether valid JSON ``encoded`` is compact and escapes strings as serde does."""
    if spaced and (b"\n" in encoded or b"\r" in encoded or b"\t" in encoded):
        return False
    if b"\\" in encoded:
        unescaped = encoded.replace(b"\\\\", b"") if b"\\\\" in encoded else encoded
        if _NONCANONICAL_ESCAPE.search(unescaped):
            return False
        if spaced and b'\\"' in unescaped:
            unescaped = unescaped.replace(b'\\"', b"")
    else:
        unescaped = encoded
    if spaced:  # somewhere in the snapshot: is it in the messages?
        keys, spaced = _skeleton(unescaped)
    return not spaced


def _fast_top_level(text: str) -> tuple[dict, int, int]:
    """The top-level object's fields, and where the messages' text starts and ends."""
    index = _skip(text, 0)
    if text[index : index + 1] != "{":
        raise _Fallback
    index = _skip(text, index + 1)
    fields: dict = {}
    start = end = -1
    if text[index : index + 1] == "}":
        index += 1
    else:
        while True:
            if text[index : index + 1] != '"':
                raise _Fallback
            key, index = _scan_string(text, index + 1, True)
            index = _skip(text, index)
            if text[index : index + 1] != ":":
                raise _Fallback
            index = _skip(text, index + 1)
            value_start = index
            value, index = _scan_value(text, index)
            if key in fields:
                raise _Fallback
            fields[key] = value
            if key == "messages":
                start, end = value_start, index
            index = _skip(text, index)
            char = text[index : index + 1]
            index += 1
            if char == ",":
                index = _skip(text, index)
            elif char == "}":
                break
            else:
                raise _Fallback
    if _skip(text, index) != len(text):
        raise _Fallback
    return fields, start, end


# Values the reference reader reads as free-form JSON (metadata, unknown
# fields, tool args) are checked for what the C decoder lets through: integers
# it keeps that the strict reader would make floats, infinite floats, and
# nesting deeper than MAX_DEPTH. ``level`` is the nesting level a container
# ``value`` opens (the top-level object is level 1).


def _scan(value: Any, level: int) -> int:
    """Check a value that is not written; return its number of dict entries."""
    kind = type(value)
    if kind is dict:
        if level > _MAX_DEPTH:
            raise _Fallback
        count = len(value)
        for item in value.values():
            if type(item) in _SCANNED:
                count += _scan(item, level + 1)
        return count
    if kind is list:
        if level > _MAX_DEPTH:
            raise _Fallback
        count = 0
        for item in value:
            if type(item) in _SCANNED:
                count += _scan(item, level + 1)
        return count
    if kind is int:
        if not _I64_MIN <= value <= _U64_MAX:
            raise _Fallback
    elif kind is float:
        if value == _INF or value == -_INF:
            raise _Fallback
    return 0


_SCANNED = frozenset({dict, list, int, float})


def _scan_extras(fields: dict, known: frozenset, level: int, acc: list) -> None:
    """Check the unknown fields of a struct (they are dropped)."""
    if fields.keys() <= known:
        return
    for key, value in fields.items():
        if key not in known and type(value) in _SCANNED:
            acc[0] += _scan(value, level)


def _canon(value: Any, level: int, acc: list) -> Any:
    """A tool's args as serde_json's ``Value`` writes them back (objects'
    keys sorted): ``value`` itself when it already is."""
    kind = type(value)
    if kind is dict:
        if level > _MAX_DEPTH:
            raise _Fallback
        acc[0] += len(value)
        replaced = None
        for key, item in value.items():
            kind = type(item)
            if kind is dict or kind is list:
                canonical = _canon(item, level + 1, acc)
                if canonical is not item:
                    if replaced is None:
                        replaced = dict(value)
                    replaced[key] = canonical
            elif kind is int:
                if not _I64_MIN <= item <= _U64_MAX:
                    raise _Fallback
            elif kind is float:
                _canon(item, level, acc)
        if replaced is None:
            if len(value) < 2:
                return value
            keys = list(value)
            if keys == sorted(keys):
                return value
            replaced = value
        return {key: replaced[key] for key in sorted(replaced)}
    if kind is list:
        if level > _MAX_DEPTH:
            raise _Fallback
        out = None
        for index, item in enumerate(value):
            if type(item) in _SCANNED:
                canonical = _canon(item, level + 1, acc)
                if canonical is not item:
                    if out is None:
                        out = value[:]
                    out[index] = canonical
        return value if out is None else out
    if kind is int:
        if not _I64_MIN <= value <= _U64_MAX:
            raise _Fallback
    elif kind is float:
        if value == _INF or value == -_INF:
            raise _Fallback
        acc[1] = True  # its text may not be the one serde writes
    return value


# -- the Session, fast --------------------------------------------------------


def _fast_u64(value: Any) -> Any:
    if type(value) is not int or not 0 <= value <= _U64_MAX:
        raise _Fallback
    return value


def _fast_session(fields: dict, acc: list) -> tuple[str, list, bool]:
    """(session id, canonical messages, whether they are the parsed ones)."""
    messages = None
    session_id = None
    times = 0
    for key, value in fields.items():
        if key == "messages":
            messages = value
        elif key == "id":
            if type(value) is not str:
                raise _Fallback
            if _CANONICAL_UUID.fullmatch(value):
                session_id = value
            else:
                session_id = str(parse_uuid(value))  # ValueError: fall back
        elif key == "created_at" or key == "updated_at":
            _fast_system_time(value, acc)
            times += 1
        elif key == "version":
            if type(value) is not int or not 0 <= value <= _U32_MAX:
                raise _Fallback
        elif key == "metadata":
            if type(value) is not dict:
                raise _Fallback
            acc[0] += _scan(value, 2)
        elif key == "usage":
            _fast_usage(value, 2, acc)
        elif type(value) in _SCANNED:
            acc[0] += _scan(value, 2)
    if type(messages) is not list or session_id is None or times != 2:
        raise _Fallback
    out = None
    count = 0
    for index, message in enumerate(messages):
        if type(message) is not dict:
            raise _Fallback
        check = _CANONICAL_MESSAGES.get(tuple(message))
        if check is not None:
            entries = check(message)
            if entries >= 0:
                count += entries
                continue
        role = message.get("role")
        if type(role) is not str:
            raise _Fallback
        read = _FAST_MESSAGES.get(role)
        if read is None:
            raise _Fallback
        canonical = read(message, acc)
        if canonical is not message:
            if out is None:
                out = messages[:]
            out[index] = canonical
    acc[0] += count
    if out is None:
        return session_id, messages, True
    return session_id, out, False


def _fast_system_time(value: Any, acc: list) -> None:
    if type(value) is dict:
        if len(value) != 2:
            raise _Fallback
        secs = value.get("secs_since_epoch")
        nanos = value.get("nanos_since_epoch")
        acc[0] += 2
    elif type(value) is list and len(value) == 2:
        secs, nanos = value
    else:
        raise _Fallback
    if type(secs) is not int or not 0 <= secs <= _U64_MAX:
        raise _Fallback
    if type(nanos) is not int or not 0 <= nanos <= _U32_MAX:
        raise _Fallback
    if secs + nanos // _NANOS_PER_SEC > _I64_MAX:
        raise _Fallback


_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


def _fast_usage(value: Any, level: int, acc: list) -> dict:
    if type(value) is not dict:
        raise _Fallback
    get = value.get
    input_tokens = _fast_u64(get("input_tokens"))
    output_tokens = _fast_u64(get("output_tokens"))
    cache_creation = get("cache_creation_tokens")
    if cache_creation is not None:
        _fast_u64(cache_creation)
    cache_read = get("cache_read_tokens")
    if cache_read is not None:
        _fast_u64(cache_read)
    count = len(value)
    acc[0] += count
    if count == 4 and tuple(value) == _USAGE_KEYS:
        return value
    _scan_extras(value, _USAGE_FIELDS, level + 1, acc)
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_tokens": cache_creation,
        "cache_read_tokens": cache_read,
    }


def _fast_str(value: Any) -> str:
    if type(value) is not str:
        raise _Fallback
    return value


# Content blocks: ``level`` is the level of the array.

_TEXT_BLOCK_KEYS = ("type", "text")
_IMAGE_BLOCK_KEYS = ("type", "media_type", "data")
_TEXT_BLOCK_FIELDS, _IMAGE_BLOCK_FIELDS = _CONTENT_BLOCKS["text"][0], _CONTENT_BLOCKS["image"][0]


def _fast_content(value: Any, level: int, acc: list) -> Any:
    if type(value) is str:
        return value
    if type(value) is not list:
        raise _Fallback
    out = None
    for index, block in enumerate(value):
        if type(block) is not dict:
            raise _Fallback
        kind = block.get("type")
        count = len(block)
        acc[0] += count
        if kind == "text" and type(kind) is str:
            text = _fast_str(block.get("text"))
            if count == 2 and tuple(block) == _TEXT_BLOCK_KEYS:
                continue
            _scan_extras(block, _TEXT_BLOCK_FIELDS, level + 2, acc)
            canonical = {"type": "text", "text": text}
        elif kind == "image" and type(kind) is str:
            source_path = block.get("source_path")
            if source_path is not None and type(source_path) is not str:
                raise _Fallback
            media_type = _fast_str(block.get("media_type"))
            data = _fast_str(block.get("data"))
            if count == 3 and tuple(block) == _IMAGE_BLOCK_KEYS:
                continue
            _scan_extras(block, _IMAGE_BLOCK_FIELDS, level + 2, acc)
            canonical = {"type": "image", "media_type": media_type, "data": data}
        else:
            raise _Fallback
        if out is None:
            out = value[:]
        out[index] = canonical
    if len(value) == 1:
        only = value[0] if out is None else out[0]
        if only["type"] == "text":  # one text block is written as a plain string
            return only["text"]
    return value if out is None else out


# Provider metadata: ``level`` is the level of the meta object.

_META_FIELDS = {name: known for name, (known, _) in _PROVIDER_META.items()}
_META_STRING_KEY = {
    "anthropic": "signature",
    "anthropic_redacted": "data",
    "anthropic_compaction": "content",
    "gemini": "thoughtSignature",
}


def _fast_meta(value: Any, level: int, acc: list) -> Any:
    if type(value) is not dict:
        raise _Fallback
    provider = value.get("provider")
    if type(provider) is not str:
        raise _Fallback
    count = len(value)
    acc[0] += count
    key = _META_STRING_KEY.get(provider)
    if key is not None:
        text = _fast_str(value.get(key))
        if count == 2 and tuple(value) == ("provider", key):
            return value
        canonical = {"provider": provider, key: text}
    elif provider == "open_ai":
        meta_id = _fast_str(value.get("id"))
        encrypted = value.get("encrypted_content")
        if encrypted is None:
            if count == 2 and tuple(value) == ("provider", "id"):
                return value
            canonical = {"provider": provider, "id": meta_id}
        else:
            _fast_str(encrypted)
            if count == 3 and tuple(value) == ("provider", "id", "encrypted_content"):
                return value
            canonical = {"provider": provider, "id": meta_id, "encrypted_content": encrypted}
    else:
        raise _Fallback
    _scan_extras(value, _META_FIELDS[provider], level + 1, acc)
    return canonical


# Assistant blocks: the block object is at level 5, its data at 6.

_BLOCK_KEYS = ("block_type", "data")


def _fast_block_data(data: dict, head: dict, same: bool, known: frozenset, acc: list) -> dict:
    """The canonical data: ``head`` (its leading fields, canonical) and the
    ``meta``. ``data`` itself when it is exactly that; ``same`` says whether
    ``head``'s values are ``data``'s own."""
    meta = data.get("meta")
    count = len(data)
    acc[0] += count
    if meta is None:
        if same and count == len(head) and tuple(data) == tuple(head):
            return data
    else:
        canonical_meta = _fast_meta(meta, 7, acc)
        if (
            same
            and canonical_meta is meta
            and count == len(head) + 1
            and tuple(data) == (*head, "meta")
        ):
            return data
        head["meta"] = canonical_meta
    _scan_extras(data, known, 7, acc)
    return head


_TEXT_DATA_FIELDS = frozenset({"text", "meta"})
_TOOL_USE_DATA_FIELDS = frozenset({"id", "name", "args", "meta"})


def _fast_text_data(data: Any, acc: list) -> dict:
    if type(data) is not dict:
        raise _Fallback
    head = {"text": _fast_str(data.get("text"))}
    return _fast_block_data(data, head, True, _TEXT_DATA_FIELDS, acc)


def _fast_reasoning_data(data: Any, acc: list) -> dict:
    if type(data) is not dict:
        raise _Fallback
    head = {"text": _fast_str(data.get("text", ""))}  # serde(default)
    return _fast_block_data(data, head, True, _TEXT_DATA_FIELDS, acc)


def _fast_tool_use_data(data: Any, acc: list) -> dict:
    if type(data) is not dict:
        raise _Fallback
    args = data.get("args", _ABSENT)
    if args is _ABSENT:
        raise _Fallback
    canonical_args = _canon(args, 7, acc)
    head = {
        "id": _fast_str(data.get("id")),
        "name": _fast_str(data.get("name")),
        "args": canonical_args,
    }
    return _fast_block_data(data, head, canonical_args is args, _TOOL_USE_DATA_FIELDS, acc)


_FAST_BLOCK_DATA = {
    "text": _fast_text_data,
    "reasoning": _fast_reasoning_data,
    "tool_use": _fast_tool_use_data,
}


def _fast_blocks(value: Any, acc: list) -> list:
    if type(value) is not list:
        raise _Fallback
    out = None
    for index, block in enumerate(value):
        if type(block) is not dict:
            raise _Fallback
        block_type = block.get("block_type")
        if type(block_type) is not str:
            raise _Fallback
        read = _FAST_BLOCK_DATA.get(block_type)
        data = block.get("data", _ABSENT)
        if read is None or data is _ABSENT:
            raise _Fallback
        canonical_data = read(data, acc)
        count = len(block)
        acc[0] += count
        if count == 2 and canonical_data is data and tuple(block) == _BLOCK_KEYS:
            continue
        _scan_extras(block, _ADJACENT_KEYS, 6, acc)
        if out is None:
            out = value[:]
        out[index] = {"block_type": block_type, "data": canonical_data}
    return value if out is None else out


# Messages: the message object is at level 3, its fields' values at 4.


def _fast_system(message: dict, acc: list) -> dict:
    content = _fast_str(message.get("content"))
    count = len(message)
    acc[0] += count
    if count == 2 and tuple(message) == _SYSTEM_KEYS:
        return message
    _scan_extras(message, _MESSAGES["system"][0], 4, acc)
    return {"role": "system", "content": content}


def _fast_user(message: dict, acc: list) -> dict:
    content = message.get("content", _ABSENT)
    if type(content) is not str:
        if content is _ABSENT:
            raise _Fallback
        content = _fast_content(content, 4, acc)
    count = len(message)
    acc[0] += count
    if count == 2 and content is message["content"] and tuple(message) == _USER_KEYS:
        return message
    _scan_extras(message, _MESSAGES["user"][0], 4, acc)
    return {"role": "user", "content": content}


def _fast_stop_reason(value: Any) -> str:
    if type(value) is not str or value not in _STOP_REASONS:
        raise _Fallback
    return value


_TOOL_CALL_KEYS = ("id", "name", "args")
_TOOL_CALL_FIELDS = frozenset(_TOOL_CALL_KEYS)


def _fast_tool_calls(value: Any, acc: list) -> list:
    if type(value) is not list:
        raise _Fallback
    out = None
    for index, call in enumerate(value):
        if type(call) is not dict:
            raise _Fallback
        call_id = _fast_str(call.get("id"))
        name = _fast_str(call.get("name"))
        args = call.get("args", _ABSENT)
        if args is _ABSENT:
            raise _Fallback
        canonical_args = _canon(args, 6, acc)
        count = len(call)
        acc[0] += count
        if count == 3 and canonical_args is args and tuple(call) == _TOOL_CALL_KEYS:
            continue
        _scan_extras(call, _TOOL_CALL_FIELDS, 6, acc)
        if out is None:
            out = value[:]
        out[index] = {"id": call_id, "name": name, "args": canonical_args}
    return value if out is None else out


def _fast_assistant(message: dict, acc: list) -> dict:
    get = message.get
    content = _fast_str(get("content"))
    tool_calls = get("tool_calls", _ABSENT)
    canonical_calls = () if tool_calls is _ABSENT else _fast_tool_calls(tool_calls, acc)
    stop_reason = _fast_stop_reason(get("stop_reason"))
    usage = get("usage", _ABSENT)
    if usage is _ABSENT:
        raise _Fallback
    canonical_usage = _fast_usage(usage, 4, acc)
    count = len(message)
    acc[0] += count
    if (
        count == 5
        and canonical_calls is tool_calls
        and canonical_usage is usage
        and tuple(message) == _ASSISTANT_KEYS
    ):
        return message
    _scan_extras(message, _MESSAGES["assistant"][0], 4, acc)
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": canonical_calls,
        "stop_reason": stop_reason,
        "usage": canonical_usage,
    }


def _fast_block_assistant(message: dict, acc: list) -> dict:
    blocks = message.get("blocks", _ABSENT)
    if blocks is _ABSENT:
        raise _Fallback
    canonical_blocks = _fast_blocks(blocks, acc)
    stop_reason = _fast_stop_reason(message.get("stop_reason"))
    count = len(message)
    acc[0] += count
    if count == 3 and canonical_blocks is blocks and tuple(message) == _BLOCK_ASSISTANT_KEYS:
        return message
    _scan_extras(message, _MESSAGES["block_assistant"][0], 4, acc)
    return {"role": "block_assistant", "blocks": canonical_blocks, "stop_reason": stop_reason}


_RESULT_KEYS = ("tool_use_id", "content", "is_error")
_RESULT_FIELDS = frozenset(_RESULT_KEYS)


def _fast_results(value: Any, acc: list) -> list:
    if type(value) is not list:
        raise _Fallback
    out = None
    for index, result in enumerate(value):
        if type(result) is not dict:
            raise _Fallback
        tool_use_id = _fast_str(result.get("tool_use_id"))
        content = result.get("content", _ABSENT)
        if type(content) is str:
            canonical_content = content
        elif content is _ABSENT:
            raise _Fallback
        else:
            canonical_content = _fast_content(content, 6, acc)
        is_error = result.get("is_error", False)  # serde(default)
        if type(is_error) is not bool:
            raise _Fallback
        count = len(result)
        acc[0] += count
        if count == 3 and canonical_content is content and tuple(result) == _RESULT_KEYS:
            continue
        _scan_extras(result, _RESULT_FIELDS, 6, acc)
        if out is None:
            out = value[:]
        out[index] = {
            "tool_use_id": tool_use_id,
            "content": canonical_content,
            "is_error": is_error,
        }
    return value if out is None else out


def _fast_tool_results(message: dict, acc: list) -> dict:
    results = message.get("results", _ABSENT)
    if results is _ABSENT:
        raise _Fallback
    canonical_results = _fast_results(results, acc)
    count = len(message)
    acc[0] += count
    if count == 2 and canonical_results is results and tuple(message) == _TOOL_RESULTS_KEYS:
        return message
    _scan_extras(message, _MESSAGES["tool_results"][0], 4, acc)
    return {"role": "tool_results", "results": canonical_results}


_SYSTEM_KEYS = ("role", "content")
_USER_KEYS = ("role", "content")
_ASSISTANT_KEYS = ("role", "content", "tool_calls", "stop_reason", "usage")
_BLOCK_ASSISTANT_KEYS = ("role", "blocks", "stop_reason")
_TOOL_RESULTS_KEYS = ("role", "results")

_FAST_MESSAGES = {
    "system": _fast_system,
    "user": _fast_user,
    "assistant": _fast_assistant,
    "block_assistant": _fast_block_assistant,
    "tool_results": _fast_tool_results,
}


# -- already canonical? ---------------------------------------------------------
#
# Most snapshots were written by serde, so their messages are canonical
# already. These checks recognize such a message by the exact order of its
# keys and return how many dict entries it holds, or -1 when it is anything
# else (not canonical, invalid, or holding a float): the readers above decide
# those.


def _args_entries(value: Any, level: int) -> int:
    kind = type(value)
    if kind is dict:
        if level > _MAX_DEPTH:
            return -1
        if len(value) > 1:
            keys = list(value)
            if keys != sorted(keys):
                return -1
        items, count = value.values(), len(value)
    elif kind is list:
        if level > _MAX_DEPTH:
            return -1
        items, count = value, 0
    elif kind is str or kind is bool or value is None:
        return 0
    elif kind is int and _I64_MIN <= value <= _U64_MAX:
        return 0
    else:
        return -1
    for item in items:
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not _I64_MIN <= item <= _U64_MAX:
                return -1
        elif kind is dict or kind is list:
            entries = _args_entries(item, level + 1)
            if entries < 0:
                return -1
            count += entries
        else:
            return -1
    return count


def _content_entries(blocks: list) -> int:
    count = 0
    for block in blocks:
        if type(block) is not dict:
            return -1
        shape = tuple(block)
        if shape == _TEXT_BLOCK_KEYS:
            kind, text = block.values()
            if kind != "text" or type(text) is not str:
                return -1
            count += 2
        elif shape == _IMAGE_BLOCK_KEYS:
            kind, media_type, data = block.values()
            if kind != "image" or type(media_type) is not str or type(data) is not str:
                return -1
            count += 3
        else:
            return -1
    if count == 2 and len(blocks) == 1:  # one text block is written as a string
        return -1
    return count


def _usage_entries(usage: Any) -> int:
    if type(usage) is not dict or tuple(usage) != _USAGE_KEYS:
        return -1
    for tokens in usage.values():
        if tokens is not None and (type(tokens) is not int or not 0 <= tokens <= _U64_MAX):
            return -1
    input_tokens, output_tokens, _, _ = usage.values()
    if input_tokens is None or output_tokens is None:
        return -1
    return 4


_META_SHAPES = {
    ("provider", "signature"): "anthropic",
    ("provider", "data"): "anthropic_redacted",
    ("provider", "content"): "anthropic_compaction",
    ("provider", "thoughtSignature"): "gemini",
    ("provider", "id"): "open_ai",
    ("provider", "id", "encrypted_content"): "open_ai",
}


def _meta_entries(meta: Any) -> int:
    if type(meta) is not dict:
        return -1
    shape = tuple(meta)
    provider = _META_SHAPES.get(shape)
    if provider is None:
        return -1
    values = iter(meta.values())
    if next(values) != provider:
        return -1
    for value in values:
        if type(value) is not str:
            return -1
    return len(shape)


def _text_message_entries(message: dict) -> int:
    role, content = message.values()
    if type(content) is str:
        return 2 if role == "system" or role == "user" else -1
    if role == "user" and type(content) is list:
        entries = _content_entries(content)
        return -1 if entries < 0 else 2 + entries
    return -1


def _assistant_entries(message: dict) -> int:
    role, content, tool_calls, stop_reason, usage = message.values()
    if (
        role != "assistant"
        or type(content) is not str
        or type(tool_calls) is not list
        or type(stop_reason) is not str
        or stop_reason not in _STOP_REASONS
        or _usage_entries(usage) < 0
    ):
        return -1
    count = 9
    for call in tool_calls:
        if type(call) is not dict or tuple(call) != _TOOL_CALL_KEYS:
            return -1
        call_id, name, args = call.values()
        if type(call_id) is not str or type(name) is not str:
            return -1
        entries = _args_entries(args, 6)
        if entries < 0:
            return -1
        count += 3 + entries
    return count


_DATA_TEXT_KEYS = ("text",)
_DATA_TEXT_META_KEYS = ("text", "meta")
_DATA_TOOL_USE_KEYS = ("id", "name", "args")
_DATA_TOOL_USE_META_KEYS = ("id", "name", "args", "meta")


def _block_assistant_entries(message: dict) -> int:
    role, blocks, stop_reason = message.values()
    if (
        role != "block_assistant"
        or type(blocks) is not list
        or type(stop_reason) is not str
        or stop_reason not in _STOP_REASONS
    ):
        return -1
    count = 3
    for block in blocks:
        if type(block) is not dict or tuple(block) != _BLOCK_KEYS:
            return -1
        block_type, data = block.values()
        if type(data) is not dict:
            return -1
        shape = tuple(data)
        if block_type == "tool_use":
            if shape == _DATA_TOOL_USE_KEYS:
                block_id, name, args = data.values()
            elif shape == _DATA_TOOL_USE_META_KEYS:
                block_id, name, args, meta = data.values()
            else:
                return -1
            if type(block_id) is not str or type(name) is not str:
                return -1
            entries = _args_entries(args, 7)
            if entries < 0:
                return -1
            count += entries
        elif block_type == "text" or block_type == "reasoning":
            if shape == _DATA_TEXT_KEYS:
                (text,) = data.values()
            elif shape == _DATA_TEXT_META_KEYS:
                text, meta = data.values()
            else:
                return -1
            if type(text) is not str:
                return -1
        else:
            return -1
        count += 2 + len(shape)
        if shape[-1] == "meta":  # present, so not null
            entries = _meta_entries(meta)
            if entries < 0:
                return -1
            count += entries
    return count


def _tool_results_entries(message: dict) -> int:
    role, results = message.values()
    if role != "tool_results" or type(results) is not list:
        return -1
    count = 2
    for result in results:
        if type(result) is not dict or tuple(result) != _RESULT_KEYS:
            return -1
        tool_use_id, content, is_error = result.values()
        if type(tool_use_id) is not str or type(is_error) is not bool:
            return -1
        if type(content) is not str:
            if type(content) is not list:
                return -1
            entries = _content_entries(content)
            if entries < 0:
                return -1
            count += entries
        count += 3
    return count


_CANONICAL_MESSAGES = {
    ("role", "content"): _text_message_entries,
    _ASSISTANT_KEYS: _assistant_entries,
    _BLOCK_ASSISTANT_KEYS: _block_assistant_entries,
    ("role", "results"): _tool_results_entries,
}


# -- written by serde -----------------------------------------------------------
#
# A snapshot that meerkat wrote holds its messages exactly as they are hashed:
# serde writes them the same way inside the Session as on their own. For such
# a snapshot the messages need not be parsed at all: a regular expression of
# the canonical form (every field in serde's order, serde's defaults written,
# compact, serde's string escapes, integers only) checks their text, and only
# the free-form tool args in it are parsed, to check that their objects' keys
# are sorted and unique. The args are cut out of the text first (they are the
# values of `"args":` keys, and such a key cannot occur inside a JSON string)
# so that the expression stays regular.

_S = r'"[^"\\\x00-\x1f]*+(?:\\(?:["\\bfnrt]|u00(?:0[0-7bef]|1[0-9a-f]))[^"\\\x00-\x1f]*+)*+"'
_N = r"(?:0|[1-9][0-9]{0,18})"  # a u64 (at most 19 digits, so below 2**64)
_STOP = r'"(?:end_turn|tool_use|max_tokens|stop_sequence|content_filter|cancelled)"'
_USAGE_RE = (
    rf'\{{"input_tokens":{_N},"output_tokens":{_N},'
    rf'"cache_creation_tokens":(?:null|{_N}),"cache_read_tokens":(?:null|{_N})\}}'
)
_TEXT_BLOCK = rf'\{{"type":"text","text":{_S}\}}'
_IMAGE_BLOCK = rf'\{{"type":"image","media_type":{_S},"data":{_S}\}}'
_ANY_BLOCK = rf"(?:{_TEXT_BLOCK}|{_IMAGE_BLOCK})"
# A string, or blocks other than one lone text block (that is written as a string).
_CONTENT_RE = rf"(?:{_S}|\[\]|\[{_IMAGE_BLOCK}\]|\[{_ANY_BLOCK}(?:,{_ANY_BLOCK})++\])"
_META_RE = (
    r'(?:,"meta":(?:\{"provider":"(?:anthropic","signature"|anthropic_redacted","data"'
    rf'|anthropic_compaction","content"|gemini","thoughtSignature")":{_S}\}}'
    rf'|\{{"provider":"open_ai","id":{_S}(?:,"encrypted_content":{_S})?\}}))?'
)
# `"args":` is followed by the cut-out args' place.
_BLOCK_RE = (
    rf'\{{"block_type":"(?:(?:text|reasoning)","data":\{{"text":{_S}{_META_RE}\}}'
    rf'|tool_use","data":\{{"id":{_S},"name":{_S},"args":{_META_RE}\}})\}}'
)
_CALL_RE = rf'\{{"id":{_S},"name":{_S},"args":\}}'
_RESULT_RE = rf'\{{"tool_use_id":{_S},"content":{_CONTENT_RE},"is_error":(?:true|false)\}}'
_MESSAGE_RE = (
    rf'\{{"role":"(?:(?:system|user)","content":{_S}'
    rf'|user","content":{_CONTENT_RE}'
    rf'|assistant","content":{_S},"tool_calls":\[(?:{_CALL_RE}(?:,{_CALL_RE})*+)?\],'
    rf'"stop_reason":{_STOP},"usage":{_USAGE_RE}'
    rf'|block_assistant","blocks":\[(?:{_BLOCK_RE}(?:,{_BLOCK_RE})*+)?\],"stop_reason":{_STOP}'
    rf'|tool_results","results":\[(?:{_RESULT_RE}(?:,{_RESULT_RE})*+)?\])\}}'
)
_CANONICAL_MESSAGES_RE = re.compile(rf"\[(?:{_MESSAGE_RE}(?:,{_MESSAGE_RE})*+)?\]")
# The text of valid JSON written compactly, with serde's escapes and integers only.
_COMPACT_JSON_RE = re.compile(rf"(?:{_S}|[\[\]{{}}:,]++|-?[0-9]++|true|false|null)*+")
# The rest of a Session as serde writes it: its fields in declaration order.
_UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TIME_RE = rf'\{{"secs_since_epoch":({_N}),"nanos_since_epoch":(0|[1-9][0-9]{{0,9}})\}}'
_SERDE_HEAD_RE = re.compile(rf'\{{"version":(0|[1-9][0-9]{{0,9}}),"id":"({_UUID_RE})","messages":')
_SERDE_TIMES_RE = re.compile(rf',"created_at":{_TIME_RE},"updated_at":{_TIME_RE},"metadata":')
_SERDE_TAIL_RE = re.compile(rf',"usage":{_USAGE_RE}\}}[ \t\n\r]*')
del _S, _N, _STOP, _USAGE_RE, _TEXT_BLOCK, _IMAGE_BLOCK, _ANY_BLOCK, _CONTENT_RE, _META_RE
del _BLOCK_RE, _CALL_RE, _RESULT_RE, _MESSAGE_RE, _UUID_RE, _TIME_RE

_ARGS_KEY = ',"args":'
_scan_pairs = json.JSONDecoder(
    object_pairs_hook=tuple, parse_constant=jsonwire._reject_constant
).scan_once


_NOT_CANONICAL = object()


def _serde_layout(text: str) -> Any:
    """``_serde_written`` for the layout serde writes (fields in declaration
    order, compact, metadata and usage present); None for another layout,
    ``_NOT_CANONICAL`` if the messages are not canonical."""
    head = _SERDE_HEAD_RE.match(text)
    if head is None or int(head.group(1)) > _U32_MAX:
        return None
    start = head.end()
    found = _serde_messages(text, start)
    if found is None:
        return _NOT_CANONICAL
    end, count = found
    times = _SERDE_TIMES_RE.match(text, end)
    if times is None:
        return None
    created_secs, created_nanos, updated_secs, updated_nanos = map(int, times.groups())
    if (
        created_nanos > _U32_MAX
        or updated_nanos > _U32_MAX
        or created_secs + created_nanos // _NANOS_PER_SEC > _I64_MAX
        or updated_secs + updated_nanos // _NANOS_PER_SEC > _I64_MAX
    ):
        return None
    index = times.end()
    if text.startswith("{}", index):
        index += 2
    else:
        metadata, index = _scan_value(text, index)
        if type(metadata) is not dict:
            return None
        _scan(metadata, 2)
    if _SERDE_TAIL_RE.fullmatch(text, index) is None:
        return None
    return head.group(2), start, end, count


def _serde_written(text: str) -> tuple[str, int, int, int] | None:
    """(session id, start, end, count) of the messages if their text at
    ``text[start:end]`` is canonical; None if the snapshot needs reading.
    Raises ``_Fallback`` (or ValueError) where the reference reader decides."""
    index = _skip(text, 0)
    if text[index : index + 1] != "{":
        return None
    index = _skip(text, index + 1)
    seen = set()
    session_id = None
    start = end = count = -1
    times = 0
    while True:
        if text[index : index + 1] != '"':
            return None
        key, index = _scan_string(text, index + 1, True)
        index = _skip(text, index)
        if text[index : index + 1] != ":" or key in seen:
            return None
        seen.add(key)
        index = _skip(text, index + 1)
        if key == "messages":
            found = _serde_messages(text, index)
            if found is None:
                return None
            start = index
            index, count = found
            end = index
        else:
            value_start = index
            value, index = _scan_value(text, index)
            if key == "id":
                if type(value) is not str:
                    return None
                session_id = value if _CANONICAL_UUID.fullmatch(value) else str(parse_uuid(value))
            elif key == "created_at" or key == "updated_at":
                if not _serde_time(value, text[value_start:index]):
                    return None
                times += 1
            elif key == "version":
                if type(value) is not int or not 0 <= value <= _U32_MAX:
                    return None
            elif key == "usage":
                if _usage_entries(value) < 0 or text[value_start:index] != _usage_text(value):
                    return None
            elif key == "metadata":
                if type(value) is not dict:
                    return None
                _scan(value, 2)
            elif type(value) in _SCANNED:
                _scan(value, 2)
        index = _skip(text, index)
        char = text[index : index + 1]
        index += 1
        if char == ",":
            index = _skip(text, index)
        elif char == "}":
            break
        else:
            return None
    if _skip(text, index) != len(text) or session_id is None or count < 0 or times != 2:
        return None
    return session_id, start, end, count


def _serde_time(value: Any, written: str) -> bool:
    """A SystemTime struct, written compactly (so its keys are not repeated)."""
    if type(value) is not dict or len(value) != 2:
        return False
    secs = value.get("secs_since_epoch")
    nanos = value.get("nanos_since_epoch")
    if type(secs) is not int or type(nanos) is not int:
        return False
    if not (0 <= secs <= _U64_MAX and 0 <= nanos <= _U32_MAX):
        return False
    if secs + nanos // _NANOS_PER_SEC > _I64_MAX:
        return False
    if next(iter(value)) == "secs_since_epoch":
        return written == f'{{"secs_since_epoch":{secs},"nanos_since_epoch":{nanos}}}'
    return written == f'{{"nanos_since_epoch":{nanos},"secs_since_epoch":{secs}}}'


def _usage_text(usage: dict) -> str:
    input_tokens, output_tokens, creation, read = usage.values()
    return (
        f'{{"input_tokens":{input_tokens},"output_tokens":{output_tokens},'
        f'"cache_creation_tokens":{"null" if creation is None else creation},'
        f'"cache_read_tokens":{"null" if read is None else read}}}'
    )


def _serde_messages(text: str, start: int) -> tuple[int, int] | None:
    """(end, count) of canonical messages starting at ``text[start]``, or None."""
    pieces = []
    cuts = []  # (offset in the cut text, length cut out, args)
    position = start
    kept = 0
    find = text.find
    while True:
        at = find(_ARGS_KEY, position)
        if at < 0:
            break
        at += len(_ARGS_KEY)
        args, after = _scan_pairs(text, at)
        pieces.append(text[position:at])
        kept += at - position
        cuts.append((kept, after - at, args))
        position = after
    if not cuts:
        return _serde_messages_without_args(text, start)
    pieces.append(text[position:])
    cut = "".join(pieces)
    match = _CANONICAL_MESSAGES_RE.match(cut)
    if match is None:
        return None
    stop = match.end()
    removed = 0
    for offset, length, args in cuts:
        if offset >= stop:
            break
        if not _args_ok(args, 7):
            return None
        at = start + offset + removed
        if not _COMPACT_JSON_RE.fullmatch(text, at, at + length):
            return None
        removed += length
    return start + stop + removed, cut.count('{"role":"', 0, stop)


def _serde_messages_without_args(text: str, start: int) -> tuple[int, int] | None:
    match = _CANONICAL_MESSAGES_RE.match(text, start)
    if match is None:
        return None
    end = match.end()
    return end, text.count('{"role":"', start, end)


def _args_ok(value: Any, level: int) -> bool:
    """Whether tool args (objects as key/value pairs) are written as serde
    writes a ``Value``: keys sorted and unique, integers only (a float's text
    may differ from serde's), and valid (not too deep, integers in range)."""
    kind = type(value)
    if kind is tuple:
        if level > _MAX_DEPTH:
            return False
        previous = None
        for key, item in value:
            if previous is not None and key <= previous:
                return False
            previous = key
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if not _I64_MIN <= item <= _U64_MAX:
                    return False
            elif kind is tuple or kind is list:
                if not _args_ok(item, level + 1):
                    return False
            else:
                return False
        return True
    if kind is list:
        if level > _MAX_DEPTH:
            return False
        for item in value:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if not _I64_MIN <= item <= _U64_MAX:
                    return False
            elif kind is tuple or kind is list:
                if not _args_ok(item, level + 1):
                    return False
            else:
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    return kind is int and _I64_MIN <= value <= _U64_MAX
