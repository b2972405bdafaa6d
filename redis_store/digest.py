"""The receipt digest of a session snapshot (SPEC §3, §5).

meerkat parses the snapshot as a ``meerkat_core::Session``, re-serializes only
its message list with serde_json and hashes those bytes. The Session model is
declared once, below, as msgspec Structs in serde's field order with serde's
defaults and omissions; msgspec checks a snapshot against it and writes the
messages back in canonical form.

A snapshot that msgspec writes back byte for byte from what it read, as it
does serde's own output, is read in one typed pass (``_read_serde``); any
other text takes the careful reading (``_read_fast``), where what msgspec and
serde_json decide differently is made up for by small named
shims (``_negative_zero``, ``_args_unsure``: numbers serde turns into floats; ``_unsure_text``: skipped fields msgspec
does not check, nesting deeper than serde's limit; ``_dup_free``: repeated
struct keys, which serde refuses and msgspec lets the last win; ``_zmij``:
float notation). A snapshot a shim is unsure of is read by the stdlib JSON
tokenizer, as strict as serde_json, into the same Structs (``_exotic``).

Not replicated (no writer emits these; all are rejected here although serde
accepts them): any struct written as a JSON array of its fields, variant tags
given as integer indexes, unit enum values written as ``{"end_turn": null}``,
and the lax skipping of unknown top-level fields. Floats in tool args: see
``jsonwire``.

``DigestCache`` remembers, per session, the validated bytes of a snapshot's
message-array prefix and the hash state after it, so that the digest of a
session that grows by appended messages costs O(new messages).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import Annotated, Any, Generic, Literal, TypeVar, Union

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from . import jsonwire
from .errors import InvalidSessionSnapshot
from .ids import parse_uuid

__all__ = ["DigestCache", "SessionSummary", "canonical_messages_json", "inspect_session", "session_digest"]

U32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Meta(ge=0)]  # msgspec bounds stop at int64: ``_u64`` checks the top
_U64_MAX = 2**64 - 1
_I64_MAX = 2**63 - 1


class SessionSummary(Struct, frozen=True, gc=False):
    """What a receipt needs from a snapshot."""

    session_id: str  # lowercase hyphenated
    conversation_digest: str  # lowercase hex SHA-256 of the canonical messages
    message_count: int


# -- the Session (SPEC §5.1, §5.2), declared once ---------------------------------


def _skip_none(value: Any) -> Any:
    """An ``Option`` with ``skip_serializing_if = "Option::is_none"``: null reads as absent."""
    return UNSET if value is None else value


def _one_text_collapsed(content: Any) -> Any:
    """A single text block is written back as a plain string."""
    if type(content) is list and len(content) == 1 and type(content[0]) is TextBlock:
        return content[0].text
    return content


class _Model(Struct, gc=False):
    """Base of the model's Structs: acyclic, so kept out of the cyclic GC (a
    parsed session is thousands of them, and each GC pass would rescan them)."""


class TextBlock(_Model, tag_field="type", tag="text"):
    text: str


class ImageBlock(_Model, tag_field="type", tag="image"):
    media_type: str
    data: str
    source_path: Union[str, None, UnsetType] = UNSET

    def __post_init__(self) -> None:
        self.source_path = UNSET  # type-checked, never written


Content = Union[str, list[Union[TextBlock, ImageBlock]]]


class Anthropic(_Model, tag_field="provider", tag="anthropic"):
    signature: str


class AnthropicRedacted(_Model, tag_field="provider", tag="anthropic_redacted"):
    data: str


class AnthropicCompaction(_Model, tag_field="provider", tag="anthropic_compaction"):
    content: str


class Gemini(_Model, tag_field="provider", tag="gemini"):
    thoughtSignature: str  # noqa: N815 - the wire name


class OpenAi(_Model, tag_field="provider", tag="open_ai", omit_defaults=True):
    id: str
    encrypted_content: Union[str, None] = None  # skip_serializing_if = "Option::is_none"


ProviderMeta = Union[Anthropic, AnthropicRedacted, AnthropicCompaction, Gemini, OpenAi, None, UnsetType]


def _usage_unsure(usage: Any) -> bool:
    """A u64 above 2**64 - 1 (msgspec's bounds stop at int64): serde reads it
    as a float and refuses it; the exact reader says where."""
    return (
        usage.input_tokens > _U64_MAX
        or usage.output_tokens > _U64_MAX
        or (usage.cache_creation_tokens or 0) > _U64_MAX
        or (usage.cache_read_tokens or 0) > _U64_MAX
    )


# ``meta`` is an Option skipped when None: ``omit_defaults`` where nothing
# else has a default; ReasoningData's text is defaulted but always written.
class TextData(_Model, omit_defaults=True):
    text: str
    meta: ProviderMeta = None


class ReasoningData(_Model):
    text: str = ""
    meta: ProviderMeta = UNSET

    def __post_init__(self) -> None:
        self.meta = _skip_none(self.meta)


class ToolUseData(_Model, omit_defaults=True):
    id: str
    name: str
    args: Any  # free-form: serde_json's Value, written with sorted keys
    meta: ProviderMeta = None


# Adjacently tagged ``{"block_type": ..., "data": {...}}``: to msgspec, a tag and one field.
class TextAssistantBlock(_Model, tag_field="block_type", tag="text"):
    data: TextData


class ReasoningAssistantBlock(_Model, tag_field="block_type", tag="reasoning"):
    data: ReasoningData


class ToolUseAssistantBlock(_Model, tag_field="block_type", tag="tool_use"):
    data: ToolUseData


AssistantBlock = Union[TextAssistantBlock, ReasoningAssistantBlock, ToolUseAssistantBlock]


class Usage(_Model):
    input_tokens: U64
    output_tokens: U64
    cache_creation_tokens: Union[U64, None] = None  # Option without skip: null is written
    cache_read_tokens: Union[U64, None] = None


StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "content_filter", "cancelled"]


class ToolCall(_Model):
    id: str
    name: str
    args: Any


class ToolResult(_Model):
    tool_use_id: str
    content: Content
    is_error: bool = False  # defaulted, always written

    def __post_init__(self) -> None:
        self.content = _one_text_collapsed(self.content)


class SystemMessage(_Model, tag_field="role", tag="system"):
    content: str


class UserMessage(_Model, tag_field="role", tag="user"):
    content: Content

    def __post_init__(self) -> None:
        self.content = _one_text_collapsed(self.content)


class AssistantMessage(_Model, tag_field="role", tag="assistant", kw_only=True):
    content: str
    tool_calls: list[ToolCall] = []
    stop_reason: StopReason
    usage: Usage


class BlockAssistantMessage(_Model, tag_field="role", tag="block_assistant"):
    blocks: list[AssistantBlock]
    stop_reason: StopReason


class ToolResultsMessage(_Model, tag_field="role", tag="tool_results"):
    results: list[ToolResult]


Message = Union[SystemMessage, UserMessage, AssistantMessage, BlockAssistantMessage, ToolResultsMessage]


class SystemTime(_Model, forbid_unknown_fields=True):
    secs_since_epoch: U64
    nanos_since_epoch: U32


def _check_time(value: Any) -> None:
    secs, nanos = (value.secs_since_epoch, value.nanos_since_epoch) if type(value) is SystemTime else value
    if secs + nanos // 1_000_000_000 > _I64_MAX:  # the platform's i64 seconds
        raise ValueError("overflow deserializing SystemTime")


Time = Union[SystemTime, tuple[U64, U32]]


_M = TypeVar("_M")


class _Session(_Model, Generic[_M], kw_only=True):
    """The Session in serde's field order; its messages' type is a parameter:
    ``Session`` reads them all, ``_SessionShell`` leaves them raw (the digest
    cache reads only new messages)."""

    version: U32 = 1
    id: str
    messages: _M
    created_at: Time
    updated_at: Time
    metadata: dict[str, Any] = UNSET  # type: ignore[assignment]  # msgspec's "absent" marker
    usage: Usage = UNSET  # type: ignore[assignment]  # msgspec's "absent" marker

    def __post_init__(self) -> None:
        if not _CANONICAL_UUID.fullmatch(self.id):  # braced, urn:, uppercase, simple
            self.id = str(parse_uuid(self.id))
        _check_time(self.created_at)
        _check_time(self.updated_at)


_SessionShell = _Session[Raw]
Session = _Session[list[Message]]


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_read_shell = msgspec.json.Decoder(_SessionShell).decode
_read_messages = msgspec.json.Decoder(list[Message]).decode
_read_top = msgspec.json.Decoder(dict[str, Raw]).decode
_read_any = msgspec.json.Decoder().decode
_write = msgspec.json.Encoder(order="deterministic").encode


# -- the shims -------------------------------------------------------------------

# Where msgspec reads JSON text otherwise than serde_json:
# * ``-0``, an integer to msgspec, a float to serde (``_negative_zero``);
# * integers beyond i64/u64, floats to serde: only tool args keep them
#   (``_args_unsure``); typed fields refuse them either way;
# * repeated keys: msgspec keeps the last (``_dup_free``);
# * a skipped unknown field: msgspec checks neither its nesting depth nor its
#   numbers' range nor its UTF-8 (``_unsure_text``).
# What a shim is unsure of is read by ``_exotic``, exactly.
_MAX_DEPTH = jsonwire.MAX_DEPTH


# The number ``-0``: not -0.5, -0e1, nor the "-0" inside a uuid (a regex
# search scans for its literal "-0" in C: 3x faster than a find loop).
_NEGATIVE_ZERO = re.compile(rb"-0(?=[\]}, \t\n\r]|\Z)")


def _negative_zero(raw: bytes) -> bool:
    """Whether ``raw`` holds the number ``-0``."""
    return _NEGATIVE_ZERO.search(raw) is not None


# A float token as msgspec writes it with an exponent (``1e16``); serde's zmij writes ``1e+16``.
_STRING_OR_EXPONENT = re.compile(rb'"(?:[^"\\]|\\.)*"|(?<=[0-9])e(?=[0-9])', re.DOTALL)


def _zmij(encoded: bytes) -> bytes:
    """msgspec's float notation as serde_json 1.0.149 (zmij) writes it."""
    if b"0e0" not in encoded.translate(jsonwire.DIGITS_AS_ZERO):  # no digit-e-digit anywhere (a C pass; re's is 5x slower)
        return encoded
    return _STRING_OR_EXPONENT.sub(lambda m: m.group() if m.group() != b"e" else b"e+", encoded)


def _dup_free(raw: bytes) -> bool:
    """Whether no object in valid JSON ``raw`` repeats a key. msgspec keeps the
    last of repeated keys, so its generic reading written back loses at least
    the colon of each repeat, while strings keep theirs (unless a colon was
    escaped). The generic reading also checks every number's range."""
    if b"\\u003" in raw and (b"\\u003a" in raw or b"\\u003A" in raw):
        return False
    try:
        return raw.count(b":") == _write(_read_any(raw)).count(b":")
    except msgspec.ValidationError:  # e.g. 1e400
        return False


def _deep(raw: bytes, level: int) -> bool:
    """Nested deeper than serde_json's recursion limit, for a value that
    opens nesting level ``level`` (the top-level object is level 1)."""
    limit = _MAX_DEPTH - level + 1
    return raw.count(b"[") + raw.count(b"{") > limit and jsonwire._nesting_depth(
        raw.replace(b"\\\\", b"") if b"\\\\" in raw else raw) > limit


_UNSURE, _FLOATS = 2, 1


def _args_unsure(messages: list) -> int:
    """Whether any tool args hold what serde reads otherwise than msgspec:
    nesting deeper than its limit (args sit 6 levels down in tool calls, 7 in
    tool_use blocks) or integers beyond i64/u64 (serde: floats); or a usage
    count beyond u64 (``_UNSURE``). Else ``_FLOATS`` if args hold floats (only
    args can), whose notation ``_zmij`` fixes, or 0."""
    found = 0
    for message in messages:
        kind = type(message)
        if kind is AssistantMessage:
            if _usage_unsure(message.usage):
                return _UNSURE
            for call in message.tool_calls:
                found |= _scan_value(call.args, 6)
        elif kind is BlockAssistantMessage:
            for block in message.blocks:
                if type(block) is ToolUseAssistantBlock:
                    found |= _scan_value(block.data.args, 7)
        if found & _UNSURE:
            return _UNSURE
    return found


_I64_MIN = -(2**63)


def _scan_value(value: Any, level: int) -> int:
    kind = type(value)
    if kind is int:
        return 0 if _I64_MIN <= value <= _U64_MAX else _UNSURE
    if kind is float:
        return _FLOATS
    if kind is dict:
        values: Any = value.values()
    elif kind is list:
        values = value
    else:
        return 0
    if level > _MAX_DEPTH:
        return _UNSURE
    found = 0
    for item in values:
        kind = type(item)
        if kind is int:
            if not _I64_MIN <= item <= _U64_MAX:
                return _UNSURE
        elif kind is float:
            found = _FLOATS
        elif kind is dict or kind is list:
            found |= _scan_value(item, level + 1)
            if found & _UNSURE:
                return _UNSURE
    return found


class _Unsure(Exception):
    """The fast reading cannot decide; the exact one (``_exotic``) will."""


# -- reading a snapshot ------------------------------------------------------------

# A snapshot opening with its version and id, then the messages (serde's layout
# and json.dumps's of a dict in that order): where the message array starts.
_HEAD_RE = re.compile(
    rb'\{\s*(?:"(?:version|id)"\s*:\s*(?:[0-9]+|"[0-9a-fA-F-]+")\s*,\s*){0,2}"messages"\s*:\s*(?=\[)'
)


class _Read(Struct):
    session_id: str
    canonical: bytes  # the messages as serde_json writes them
    count: int
    start: int  # where the message array starts in the snapshot (-1: unknown)
    length: int  # its length in bytes


def _read_fast(raw: bytes) -> _Read:
    # UTF-8: msgspec checks every string it reads; the ones it skips (unknown
    # fields) are read generically by ``_dup_free`` in ``_unsure_text``.
    if _negative_zero(raw):
        raise _Unsure
    top = _read_top(raw)  # the whole text is JSON; the last of repeated keys
    if raw.count(b":") != _write(top).count(b":"):
        raise _Unsure  # a top-level key is repeated
    messages_field = top.get("messages")
    if messages_field is None:
        raise _Unsure
    messages_raw = bytes(messages_field)
    top["messages"] = _EMPTY
    for name, value in top.items():
        if name in _TYPED_TOP:  # small structs: a repeated key is refused
            if name != "version" and name != "id" and not _dup_free(bytes(value)):
                raise _Unsure
        elif name != "messages" and _unsure_text(bytes(value), 2):
            raise _Unsure  # metadata and unknown fields: free-form, msgspec skips them unchecked
    shell = _read_shell(_write(top))  # everything but the messages, small
    if shell.usage is not UNSET and _usage_unsure(shell.usage):
        raise _Unsure
    try:
        messages = _read_messages(messages_raw)
    except msgspec.ValidationError as exc:  # read on their own: say where they are
        text = str(exc)
        raise msgspec.ValidationError(
            text.replace(" - at `$", " - at `$.messages", 1) if " - at `$" in text else f"{text} - at `$.messages`"
        ) from None
    args = _args_unsure(messages)
    if args & _UNSURE:
        raise _Unsure
    canonical = _write(messages)
    if canonical != messages_raw and _unsure_text(messages_raw, 2):  # else no repeated keys, no unknown fields
        raise _Unsure
    if args & _FLOATS:  # msgspec's 1e16 (and another writer's, kept as it was) is serde's 1e+16
        canonical = _zmij(canonical)
    head = _HEAD_RE.match(raw)
    start = head.end() if head and raw.startswith(messages_raw, head.end()) else -1
    return _Read(shell.id, canonical, len(messages), start, len(messages_raw))


_SERDE_START = b'{"version":'
_MESSAGES_FIELD = b'"messages":'


def _read_serde(raw: bytes) -> _Read | None:
    """The reading of a snapshot as serde_json writes it (the common case),
    or None to leave it to the careful reading (``_read_fast``), which also
    words the errors. A text that msgspec writes back byte for byte from what
    it read holds no repeated key, unknown field, whitespace, ``-0`` or other
    number form that serde reads otherwise; what is left to check is what
    serde refuses and msgspec writes back: integers beyond 64 bits and nesting
    deeper than serde's limit; and serde writes a float msgspec (or orjson)
    writes as ``1e16`` as ``1e+16`` (``_zmij``)."""
    try:
        shell = _read_shell(raw)
        if _write(shell) != raw:
            return None
        messages = _read_messages(shell.messages)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if shell.usage is not UNSET and _usage_unsure(shell.usage):
        return None
    if shell.metadata and _deep(_write(shell.metadata), 2):
        return None
    canonical = _write(messages)
    start = raw.find(_MESSAGES_FIELD) + len(_MESSAGES_FIELD)  # the first: only version and id come before
    length = len(memoryview(shell.messages))
    if len(canonical) != length or not raw.startswith(canonical, start):
        return None
    args = _args_unsure(messages)
    if args & _UNSURE:
        return None
    if args & _FLOATS:
        canonical = _zmij(canonical)
    return _Read(shell.id, canonical, len(messages), start, length)


def _unsure_text(raw: bytes, level: int) -> bool:
    """JSON text (a value opening nesting ``level``) that msgspec may read or
    skip otherwise than serde_json."""
    return _deep(raw, level) or not _dup_free(raw)


_TYPED_TOP = frozenset({"version", "id", "created_at", "updated_at", "usage"})


_EMPTY = Raw(b"[]")


def _exotic(raw: bytes) -> _Read:
    """The exact reading: the stdlib tokenizer, as strict as serde_json
    (``jsonwire``), into the same Structs; repeated keys are refused where
    serde refuses them (in a struct) and kept last-wins in free-form JSON."""
    repeated: dict[int, tuple[dict, set]] = {}

    def pairs(items: list) -> dict:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set = set()
            twice: set = set()
            for k, _ in items:
                if k in seen:
                    twice.add(k)
                else:
                    seen.add(k)
            repeated[id(obj)] = (obj, twice)
        return obj

    try:
        document = jsonwire.loads_with(raw, pairs)
    except UnicodeDecodeError as exc:
        raise InvalidSessionSnapshot(f"snapshot is not valid UTF-8 at byte {exc.start} ({exc.reason})") from None
    except ValueError as exc:
        raise InvalidSessionSnapshot(f"snapshot is not valid JSON: {exc}") from None
    try:
        session = msgspec.convert(document, Session)
    except msgspec.ValidationError as exc:
        raise InvalidSessionSnapshot(str(exc)) from None
    if repeated:
        _refuse_repeated_struct_keys(document, session, repeated)
    canonical = jsonwire.dumps_bytes(msgspec.to_builtins(session.messages, order="deterministic"))
    return _Read(session.id, canonical, len(session.messages), -1, 0)


def _refuse_repeated_struct_keys(document: Any, session: Session, repeated: dict) -> None:
    """Find each object with a repeated key, follow its path through the typed
    Session: a repeated field of a Struct is serde's "duplicate field" error; in
    free-form JSON (tool args, metadata, unknown fields) the last value wins."""

    def walk(value: Any, path: list) -> None:
        if type(value) is dict:
            found = repeated.get(id(value))
            if found is not None:
                check(path, found[1])
            for key, item in value.items():
                walk(item, [*path, key])
        elif type(value) is list:
            for index, item in enumerate(value):
                walk(item, [*path, index])

    def check(path: list, keys: set) -> None:
        node: Any = session
        for step in path:
            if isinstance(node, Struct):
                names = {f.encode_name: f.name for f in msgspec.structs.fields(node)}
                if step not in names:
                    return  # an unknown field: free-form
                node = getattr(node, names[step])
            elif type(node) is list and type(step) is int:
                node = node[step]
            elif type(node) is str and step == 0:  # a lone text block, collapsed
                node = TextBlock(node)
            else:
                return  # free-form JSON
        if isinstance(node, Struct):
            config = node.__struct_config__
            known = {f.encode_name for f in msgspec.structs.fields(node)} | {config.tag_field}
            twice = sorted(keys & known)
            if twice:
                where = "".join(f"[{s}]" if type(s) is int else f".{s}" for s in path)
                raise InvalidSessionSnapshot(f"duplicate field `{twice[0]}` - at `${where}`")

    walk(document, [])


def _read(raw: bytes) -> _Read:
    if len(raw) < jsonwire.PAUSE_GC_FROM:  # few containers: pausing costs more than it saves
        return _read_paused(raw)
    with jsonwire.paused_gc():  # thousands of new containers: the GC would rescan them all
        return _read_paused(raw)


def _read_paused(raw: bytes) -> _Read:
    if raw.startswith(_SERDE_START):
        read = _read_serde(raw)
        if read is not None:
            return read
    try:
        return _read_fast(raw)
    except msgspec.ValidationError as exc:  # well-formed JSON that is not a Session
        raise InvalidSessionSnapshot(str(exc)) from None
    except (_Unsure, msgspec.DecodeError, RecursionError):
        return _exotic(raw)  # decides, with serde's strictness


def _bytes(snapshot: Any) -> bytes:
    if not isinstance(snapshot, (bytes, bytearray, memoryview)):
        raise TypeError(f"session snapshot must be bytes, not {type(snapshot).__name__}")
    return snapshot if type(snapshot) is bytes else bytes(snapshot)


def inspect_session(snapshot: bytes, cache: DigestCache | None = None) -> SessionSummary:
    """Parse ``snapshot`` as a meerkat Session and digest its messages.

    Raises TypeError if ``snapshot`` is not bytes-like and
    InvalidSessionSnapshot (saying what is wrong and where) if it is not a
    Session. With ``cache``, a snapshot that extends one seen before is read
    only past the part seen (same result, O(new messages)).
    """
    raw = _bytes(snapshot)
    if cache is not None and cache.max_bytes:
        return cache.inspect(raw)
    read = _read(raw)
    return SessionSummary(read.session_id, hashlib.sha256(read.canonical).hexdigest(), read.count)


def session_digest(snapshot: bytes) -> tuple[str, int]:
    """``(conversation_digest, message_count)`` of ``snapshot``."""
    summary = inspect_session(snapshot)
    return summary.conversation_digest, summary.message_count


def canonical_messages_json(snapshot: bytes) -> bytes:
    """The exact bytes that get hashed: the messages as serde_json writes them."""
    return _read(_bytes(snapshot)).canonical


# -- the incremental digest ----------------------------------------------------------

_WS = b" \t\n\r"


class _Prefix(Struct):
    """A validated snapshot's text up to the end of its last message, and what
    reading that far gave. The whole snapshot is kept, not a copy of its
    prefix: a commit of a long session would otherwise copy it all."""

    raw: bytes
    end: int  # the prefix is raw[:end]
    start: int  # where the message array starts
    count: int
    hashed: Any  # sha256 state after the canonical messages without the closing "]"


class DigestCache:
    """Per-session memory of validated message-array prefixes (LRU, bounded by
    the bytes it holds; ``max_bytes=0`` turns it off).

    A snapshot whose text starts with a remembered prefix, byte for byte, is
    read as the document with the remembered messages left out (its head, the
    new messages, its tail: the same reader, the same checks), and hashed on
    from the remembered state. The prefix's messages were read in the same
    context (the bytes before them are identical), so the result is the cold
    one. Safe to share between stores and threads: entries are a pure function
    of the bytes, and changes hold a lock.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an int >= 0, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, _Prefix] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        # (snapshot, older snapshot, n): the last inspect found the first n
        # bytes of both equal (``shared_with``).
        self._compared: tuple[bytes, bytes, int] | None = None

    @property
    def size(self) -> int:
        """Bytes held (the remembered snapshots and keys)."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def shared_with(self, raw: bytes) -> tuple[bytes, int] | None:
        """``(older, n)`` if the last ``inspect`` was of ``raw`` (this very
        object) and found its first ``n`` bytes equal to those of the
        snapshot ``older``: a snapshot delta over ``older`` compares from
        there (``snapshot_delta.plan``), not again from the start. Asked
        once: the cache then lets go of both snapshots."""
        compared, self._compared = self._compared, None
        return (compared[1], compared[2]) if compared is not None and compared[0] is raw else None

    def inspect(self, raw: bytes) -> SessionSummary:
        head = _HEAD_RE.match(raw)
        key = raw[: head.end()] if head else None
        entry = None
        with self._lock:
            if key is not None:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
        if entry is not None and raw.startswith(memoryview(entry.raw)[: entry.end]):
            self._compared = (raw, entry.raw, entry.end)
            found = self._extend(raw, entry)
            if found is not None:
                self.hits += 1
                return found
        self.misses += 1
        read = _read(raw)
        if read.start < 0 or key is None or read.start != len(key):
            return SessionSummary(read.session_id, hashlib.sha256(read.canonical).hexdigest(), read.count)
        hashed = hashlib.sha256(memoryview(read.canonical)[:-1])
        summary = SessionSummary(read.session_id, _finish(hashed, b"]"), read.count)
        self._remember(key, raw, read.start, read.start + read.length, read.count, hashed)
        return summary

    def _extend(self, raw: bytes, entry: _Prefix) -> SessionSummary | None:
        """The summary of ``raw`` from the remembered ``entry``, or None where
        the text past the prefix is not a continuation of the message array
        (then the cold reading decides)."""
        at = entry.end
        n = len(raw)
        while at < n and raw[at] in _WS:
            at += 1
        if entry.count:
            if raw[at : at + 1] == b",":
                at += 1
                while at < n and raw[at] in _WS:
                    at += 1
                if raw[at : at + 1] in (b"]", b","):
                    return None  # a trailing comma: not JSON
            elif raw[at : at + 1] != b"]":
                return None
        # The document with the remembered messages left out.
        rest = raw[: entry.start] + b"[" + raw[at:]
        try:
            read = _read(rest)
        except InvalidSessionSnapshot:
            return None  # the cold reading says where, counting every message
        if read.start != entry.start:
            return None
        hashed = entry.hashed.copy()
        if read.count and entry.count:
            hashed.update(b",")
        hashed.update(memoryview(read.canonical)[1:-1])  # past its "[", before its "]"
        count = entry.count + read.count
        summary = SessionSummary(read.session_id, _finish(hashed, b"]"), count)
        # The message array ends where it ends in ``rest``, shifted back.
        self._remember(raw[: entry.start], raw, entry.start, at + read.length - 1, count, hashed)
        return summary

    def _remember(self, key: bytes, raw: bytes, start: int, end: int, count: int, hashed: Any) -> None:
        """Remember ``raw``'s messages up to ``end``; ``hashed`` becomes the
        entry's own (callers do not update it after)."""
        cut = end - 1  # before the closing "]"
        while cut > start + 1 and raw[cut - 1] in _WS:
            cut -= 1
        cost = len(raw) + len(key) + 256  # and the entry's own overhead
        if cost > self.max_bytes:
            return
        entry = _Prefix(raw, cut, start, count, hashed)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old.raw) + len(key) + 256
            self._entries[key] = entry
            self._size += cost
            while self._size > self.max_bytes:
                dropped_key, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped.raw) + len(dropped_key) + 256

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0
            self._compared = None


def _finish(hashed: Any, tail: bytes) -> str:
    done = hashed.copy()
    done.update(tail)
    return done.hexdigest()

