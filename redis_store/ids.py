"""Identifier newtypes (SPEC §0, §4.7).

``LogicalRuntimeId`` wraps a string; ``RunId``, ``InputId`` and ``SessionId``
wrap a UUID. Each is immutable, hashable and ordered, and equal only to a
value of the same type: a ``RunId`` never equals an ``InputId`` with the same
UUID, as in Rust.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
import time
import uuid as _uuid
from typing import Any, TypeVar, cast

__all__ = ["LogicalRuntimeId", "RunId", "InputId", "SessionId", "uuid7"]


@functools.total_ordering
class _Newtype:
    """Immutable wrapper around one value (``_value``)."""

    __slots__ = ("_value",)
    _value: Any  # set through object.__setattr__: the wrapper is immutable

    def __init__(self, value: Any) -> None:
        object.__setattr__(self, "_value", value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._value == other._value

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._value < other._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[type, tuple[Any]]:
        return (type(self), (self._value,))


class LogicalRuntimeId(_Newtype):
    """The partition key of everything in the store: any non-empty string."""

    __slots__ = ()
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"LogicalRuntimeId must be a str, got {type(value).__name__}")
        if not value:
            raise ValueError("LogicalRuntimeId must not be empty")
        super().__init__(value)

    @property
    def value(self) -> str:
        return self._value

    def __str__(self) -> str:
        return self._value


# The forms Rust's uuid crate parses (Uuid::parse_str): hyphenated, simple,
# braced-hyphenated and urn:uuid:-hyphenated, hex digits in either case.
# Python's uuid.UUID() alone would also take braces or hyphens anywhere.
_HYPHENATED = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_TEXT = re.compile(rf"[0-9a-fA-F]{{32}}|{_HYPHENATED}|\{{{_HYPHENATED}\}}|urn:uuid:{_HYPHENATED}")

_U = TypeVar("_U", bound="_UuidId")


#: Most ids that are read were written by this process shortly before (the
#: store writes a value, then reads it back to check it): ``_UuidId._from_text``
#: looks them up here by their text. Bounded; cleared when full.
_CACHE_SIZE = 4096

# The form ids are written in (lowercase hyphenated), each hex digit as "0":
# one translate and compare, a fraction of a regex's cost. Non-ASCII text
# (surrogates too) becomes "?", which the form has not.
_HEX_AS_ZERO = bytes.maketrans(b"123456789abcdef", b"0" * 15)
_CANONICAL_SHAPE = b"00000000-0000-0000-0000-000000000000"


def _canonical(text: str) -> bool:
    """Whether ``text`` (a str) is a UUID as the store writes it."""
    return text.encode("ascii", "replace").translate(_HEX_AS_ZERO) == _CANONICAL_SHAPE


_new = object.__new__
_set = object.__setattr__


class _UuidId(_Newtype):
    """A UUID newtype, written lowercase hyphenated. Its value is the UUID's
    128-bit int, which compares and hashes as the UUID does (``uuid.UUID``
    compares and hashes its ``int``): an id read from canonical text needs no
    ``uuid.UUID``, whose Python constructor cost more than the rest of the
    read. The UUID is made when asked for (``uuid``), the text once
    (``_text``); an id ``_from_text`` reads keeps only its text until its int
    is asked for (``_int``), and two ids with their texts compare by them
    (the canonical text is one to one with the int)."""

    __slots__ = ("_text", "_as_uuid")
    _value: int
    _text: str | None  # str(self), once computed
    _as_uuid: _uuid.UUID  # self.uuid: the UUID given, or made on first use
    _by_text: dict[str, _UuidId] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._by_text = {}  # one per type: a RunId never stands for an InputId

    def __init__(self, value: _uuid.UUID | str) -> None:
        text = None
        if isinstance(value, str):
            if type(value) is str and _canonical(value):
                text = value  # then no parse_uuid, and the int is all it needs
                number = int(value.replace("-", ""), 16)
            else:
                number = parse_uuid(value, type(self).__name__).int
        elif isinstance(value, _uuid.UUID):
            number = value.int
            object.__setattr__(self, "_as_uuid", value)  # self.uuid is the UUID given
        else:
            raise TypeError(
                f"{type(self).__name__} takes a uuid.UUID or a str, got {type(value).__name__}"
            )
        super().__init__(number)
        object.__setattr__(self, "_text", text)

    @classmethod
    def _from_text(cls: type[_U], text: str) -> _U:
        """``cls(text)`` for a str ``text``, shared with earlier reads and
        writes of the same text (ids are immutable)."""
        found = cls._by_text.get(text)
        if found is None:
            if type(text) is str and _canonical(text):
                # The form the store writes (most reads): what cls(text)
                # makes, without __init__'s dispatch on the argument's type,
                # and its int left for later (_int).
                made = _new(cls)
                _set(made, "_text", text)
            else:
                made = cls(text)  # any other form is the constructor's to accept or refuse
            cache = cls._by_text
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[text] = made
            return made
        # Each class has its own _by_text (__init_subclass__): it holds cls's ids only.
        return cast(_U, found)

    @classmethod
    def new(cls: type[_U]) -> _U:
        """A fresh time-ordered id (UUIDv7), like Rust's ``Uuid::now_v7()``."""
        return cls(uuid7())

    @classmethod
    def parse(cls: type[_U], text: str) -> _U:
        if not isinstance(text, str):
            raise TypeError(f"{cls.__name__}.parse takes a str, got {type(text).__name__}")
        return cls(text)

    @property
    def uuid(self) -> _uuid.UUID:
        try:
            return self._as_uuid
        except AttributeError:  # read from text: made once, on first use
            value = _uuid.UUID(int=self._int())
            object.__setattr__(self, "_as_uuid", value)
            return value

    def _int(self) -> int:
        """``_value``, which an id ``_from_text`` made has unset until this
        first needs it (a __getattr__ would slow every attribute read of
        every id: Python then specializes none)."""
        try:
            return self._value
        except AttributeError:
            value = int(cast(str, self._text).replace("-", ""), 16)  # (set whenever _value is not)
            _set(self, "_value", value)
            return value

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self._text, other._text
        if mine is not None and theirs is not None:
            return mine == theirs  # without working out an int
        return self._int() == other._int()

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._int() < other._int()

    def __hash__(self) -> int:
        return hash(self._int())

    def __reduce__(self) -> tuple[type, tuple[Any]]:
        return (type(self), (self.uuid,))  # as pickled when the value was the UUID

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = str(self.uuid)
            object.__setattr__(self, "_text", text)
            cache = type(self)._by_text
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache.setdefault(text, self)
        return text


def parse_uuid(text: str, type_name: str = "UUID") -> _uuid.UUID:
    """``text`` as a UUID, in exactly the forms Rust's uuid crate accepts."""
    if _UUID_TEXT.fullmatch(text) is None:
        raise ValueError(
            f"invalid {type_name} {text!r}: expected a UUID as 8-4-4-4-12 hex digits "
            "(either case), 32 hex digits, {braced} or urn:uuid: form"
        )
    return _uuid.UUID(text)  # it strips the braces / urn prefix the regex allowed


class RunId(_UuidId):
    """Identifies one run of a runtime."""

    __slots__ = ()


class InputId(_UuidId):
    """Identifies one input accepted by a runtime."""

    __slots__ = ()


class SessionId(_UuidId):
    """Identifies a meerkat-core session."""

    __slots__ = ()


# -- UUIDv7 (RFC 9562 §5.7) ---------------------------------------------------
#
# Layout: 48-bit unix ms | ver 7 | 12 bits | var 0b10 | 62 bits. The 12 bits and
# the top 30 of the 62 hold a 42-bit counter (RFC 9562 §6.2, method 1), seeded
# at random each millisecond with its top bit clear so it has room to count;
# the last 32 bits are fresh random. Ids from one process therefore strictly
# increase, even within a millisecond or if the clock steps back.

_COUNTER_BITS = 42
_COUNTER_LOW_BITS = 30
_RANDOM_TAIL_BITS = 32

_v7_lock = threading.Lock()
_v7_last_ms = -1
_v7_counter = 0


def uuid7() -> _uuid.UUID:
    """A new UUIDv7, strictly greater than every earlier one from this process."""
    global _v7_last_ms, _v7_counter
    with _v7_lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _v7_last_ms:
            _v7_last_ms, _v7_counter = now_ms, secrets.randbits(_COUNTER_BITS - 1)
        else:
            _v7_counter += 1
            if _v7_counter >> _COUNTER_BITS:  # counter exhausted: borrow the next ms
                _v7_last_ms, _v7_counter = _v7_last_ms + 1, secrets.randbits(_COUNTER_BITS - 1)
        ms, counter = _v7_last_ms, _v7_counter
    value = (
        (ms & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | (counter >> _COUNTER_LOW_BITS) << 64
        | 0b10 << 62
        | (counter & ((1 << _COUNTER_LOW_BITS) - 1)) << _RANDOM_TAIL_BITS
        | secrets.randbits(_RANDOM_TAIL_BITS)
    )
    return _uuid.UUID(int=value)
