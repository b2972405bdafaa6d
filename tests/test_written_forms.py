"""The shortcuts for text in the form the store writes agree with the exact
readers.

``timestamps._read_new`` takes a timestamp's text as ``str()`` writes it (a
few C calls instead of the general parse) and leaves its value to be worked
out on first use; ``ids._canonical`` decides the same for a UUID,
whose int also waits. Each must accept only what the exact reader accepts,
read it to the same value, and refuse nothing but what the exact reader then
decides (a refusal only sends the text on to it); and a value made this way
must behave exactly as one made from numbers: equality, hashing, ordering,
pickling, str/repr.
"""

from __future__ import annotations

import copy
import datetime
import pickle
import re
import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from redis_store import codec, ids, timestamps
from redis_store.ids import InputId, RunId, SessionId
from redis_store.timestamps import Timestamp, _parse, _read_new
from redis_store.types import InputState, InputStateHistoryEntry, InputLifecycleState
from test_ids_timestamps import timestamps as stamps

# The years 1..9999 the shortcut covers.
YEAR_1 = Timestamp.parse("0001-01-01T00:00:00Z").seconds
YEAR_10000 = Timestamp.parse("+10000-01-01T00:00:00Z").seconds


def _two(top: int) -> st.SearchStrategy[str]:
    return st.integers(0, top).map(lambda n: f"{n:02d}")


# Texts of the written shape with every field drawn past its range now and
# then (month 13, day 32, Feb 29 of any year, hour 24, second 60, year 0),
# and fractions str() would have written shorter.
shaped = st.builds(
    lambda year, month, day, hour, minute, second, fraction: f"{year:04d}-{month}-{day}T{hour}:{minute}:{second}{fraction}Z",
    st.one_of(st.integers(0, 9999), st.sampled_from([0, 1, 1900, 2000, 2023, 2024, 2100, 9999])),
    _two(13), st.one_of(_two(32), st.just("29")), _two(24), _two(60), _two(61),
    st.one_of(st.just(""), st.sampled_from([3, 6, 9]).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n))
              .map(lambda digits: "." + digits), st.text("0123456789", max_size=11).map(lambda digits: "." + digits)),
)


def _mutated(text: str, position: int, char: str) -> str:
    position %= len(text) + 1
    return text[:position] + char + text[position + 1 :]


near_miss_chars = st.sampled_from("09Zzt .:-+T\u0661\uff10\ud800\x00")
timestamp_texts = st.one_of(
    stamps().map(str),
    shaped,
    st.builds(_mutated, stamps(YEAR_1, YEAR_10000 - 1).map(str), st.integers(0, 31), near_miss_chars),
    st.builds(lambda t, k: t[:k], stamps(YEAR_1, YEAR_10000 - 1).map(str), st.integers(0, 31)),  # truncated
)


@settings(max_examples=1500, deadline=None)
@given(timestamp_texts)
@example("2024-02-29T00:00:00Z")
@example("2023-02-29T00:00:00Z")
@example("0000-01-01T00:00:00Z")
@example("0001-01-01T00:00:00Z")
@example("9999-12-31T23:59:59.999999999Z")
@example("2016-12-31T23:59:60.500Z")
@example("2025-10-09T08:53:20.500000Z")
@example("2025-10-09T08:53:20.000Z")
@example("2025-10-09T08:53:20.000000001Z")
@example("2025-10-09T08:53:20.1Z")
@example("2025-10-09t08:53:20Z")
@example("2025-10-09T08:53:20z")
@example("2025-10-09T08:53:2\u0661Z")
@example("2025-10-09T08:53:20Z\ud800")
def test_written_timestamps_read_as_the_exact_parse_reads_them(text: str) -> None:
    timestamps._BY_TEXT.clear()
    try:
        exact = _parse(text)
    except ValueError as exc:
        try:
            _read_new(text)
        except ValueError as caught:  # refused too, in the same words
            assert str(caught) == str(exc)
        else:
            raise AssertionError(f"{text!r} read") from None
        return
    read = _read_new(text)
    assert timestamps._BY_TEXT[text] is read  # remembered
    written = str(Timestamp(exact.seconds, exact.nanos))
    covered = text == written and YEAR_1 <= exact.seconds < YEAR_10000 and exact.nanos < 1_000_000_000
    assert ("_seconds" not in _set_slots(read)) == covered  # the shortcut takes every written form, and nothing else
    assert type(read) is Timestamp
    assert (read.seconds, read.nanos) == (exact.seconds, exact.nanos)
    assert str(read) == written and read == exact and hash(read) == hash(exact)


def test_hour_24_is_refused_even_where_fromisoformat_reads_it(monkeypatch) -> None:
    """Python 3.14's fromisoformat reads "T24:00:00" as the next midnight
    (CPython gh-102450); chrono, and so the store, refuses it."""
    real = timestamps._from_iso

    def lenient(text: str):  # 3.14's reading, on any Python
        return real(text.replace("T24:", "T00:")) + datetime.timedelta(days=1) if "T24:" in text else real(text)

    monkeypatch.setattr(timestamps, "_from_iso", lenient)
    for text in ("2024-01-01T24:00:00Z", "2024-01-01T24:00:00.500Z"):
        timestamps._BY_TEXT.clear()
        with pytest.raises(ValueError) as refused:
            _parse(text)
        with pytest.raises(ValueError, match=re.escape(str(refused.value))):
            _read_new(text)


def _fresh(stamp: Timestamp) -> Timestamp:
    """``stamp`` as the shortcut reads its text, value not yet worked out."""
    made = _read_new(str(Timestamp(stamp.seconds, stamp.nanos)))
    assert _set_slots(made) == {"_text"}
    return made


def _set_slots(stamp: Timestamp) -> set[str]:
    found = set()
    for name in Timestamp.__slots__:
        try:
            object.__getattribute__(stamp, name)
        except AttributeError:
            continue
        found.add(name)
    return found


written_stamps = stamps(YEAR_1, YEAR_10000 - 1).filter(lambda s: s.nanos < 1_000_000_000)


@settings(max_examples=400, deadline=None)
@given(written_stamps, stamps(), st.booleans())
def test_a_timestamp_read_from_text_behaves_as_one_made_from_numbers(stamp: Timestamp, other: Timestamp,
                                                                    other_read: bool) -> None:
    lazy = _fresh(stamp)
    eager = Timestamp(stamp.seconds, stamp.nanos)  # no text until str()
    if other_read and YEAR_1 <= other.seconds < YEAR_10000 and other.nanos < 1_000_000_000:
        other = _fresh(other)
    # each check on its own fresh copy: the first use works the value out
    assert _fresh(stamp) == eager and eager == _fresh(stamp) and not _fresh(stamp) != eager
    assert hash(_fresh(stamp)) == hash(eager)
    assert (_fresh(stamp) < other, _fresh(stamp) <= other, _fresh(stamp) > other, _fresh(stamp) >= other) == (
        eager < other, eager <= other, eager > other, eager >= other)
    assert (other < _fresh(stamp), other == _fresh(stamp)) == (other < eager, other == eager)
    assert (_fresh(stamp) == other) == (eager == other)
    assert not _fresh(stamp) < eager and not eager < _fresh(stamp) and _fresh(stamp) <= eager <= _fresh(stamp)
    assert str(lazy) == str(eager) and repr(_fresh(stamp)) == repr(eager)
    assert pickle.loads(pickle.dumps(_fresh(stamp))) == eager
    assert pickle.dumps(_fresh(stamp)) == pickle.dumps(eager)
    assert copy.copy(_fresh(stamp)) == eager and copy.deepcopy(_fresh(stamp)) == eager
    assert _fresh(stamp).unix_nanos == eager.unix_nanos
    assert _fresh(stamp).to_datetime() == eager.to_datetime()
    assert (lazy.seconds, lazy.nanos) == (eager.seconds, eager.nanos)
    assert _set_slots(lazy) == {"_seconds", "_nanos", "_text"}  # worked out once, kept


def test_a_timestamp_read_from_text_stays_immutable_and_names_missing_attributes() -> None:
    lazy = _fresh(Timestamp(1_760_000_000, 5))
    for name in ("_seconds", "_nanos", "_text", "other"):
        try:
            setattr(lazy, name, 0)
        except AttributeError as exc:
            assert str(exc) == "Timestamp is immutable"
        else:
            raise AssertionError(f"{name} was set")
    try:
        lazy.missing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert str(exc) == "'Timestamp' object has no attribute 'missing'"
    else:
        raise AssertionError("no AttributeError")
    assert not hasattr(lazy, "__deepcopy__")


def test_parse_and_decoding_take_the_shortcut_and_remember_it() -> None:
    stamp = Timestamp(1_760_000_000, 123_456_789)
    text = "2025-10-09T08:53:20.123456789Z"
    timestamps._BY_TEXT.clear()
    parsed = Timestamp.parse(text)
    assert "_seconds" not in _set_slots(parsed) and parsed == stamp
    assert Timestamp.parse(text) is parsed
    timestamps._BY_TEXT.clear()
    state = InputState(InputId.new(), InputLifecycleState.QUEUED, created_at=stamp, updated_at=stamp,
                       history=[InputStateHistoryEntry(stamp, InputLifecycleState.ACCEPTED, InputLifecycleState.QUEUED)])
    value = codec.encode_input_state(state)
    timestamps._BY_TEXT.clear()
    InputId._by_text.clear()
    read = codec.decode_input_state(value)
    assert read == state
    assert read.created_at is read.updated_at is read.history[0].timestamp  # one text, one object
    assert "_seconds" not in _set_slots(read.created_at)
    assert "_value" not in _id_slots(read.input_id)


# -- ids ---------------------------------------------------------------------------

CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
uuid_texts = st.one_of(
    st.uuids().map(str),
    st.builds(_mutated, st.uuids().map(str), st.integers(0, 36), st.sampled_from("0af-AFgxX_ {}\u0661\uff10\ud800\x00")),
    st.builds(lambda t, k: t[:k], st.uuids().map(str), st.integers(0, 36)),
    st.uuids().map(lambda u: u.hex),
    st.text(alphabet="0123456789abcdefABCDEF-", min_size=34, max_size=38),
)


@settings(max_examples=1000, deadline=None)
@given(uuid_texts)
@example("019a2b3c-0000-7000-8000-0000000000ff")
@example("019a2b3c-0000-7000-8000-0000000000fF")
@example("019a2b3c-0000-7000-8000-0000000000f\u0661")
@example("019a2b3c-0000-7000-8000-0000000000f\ud800")
@example("019a2b3c00000-7000-8000-0000000000ff")
def test_canonical_uuid_text_is_exactly_the_written_form(text: str) -> None:
    assert ids._canonical(text) == (CANONICAL_UUID.fullmatch(text) is not None)


def _id_slots(value: object) -> set[str]:
    found = set()
    for name in ("_value", "_text", "_as_uuid"):
        try:
            object.__getattribute__(value, name)
        except AttributeError:
            continue
        found.add(name)
    return found


@settings(max_examples=300, deadline=None)
@given(st.uuids(), st.uuids(), st.sampled_from([InputId, RunId, SessionId]), st.booleans())
def test_an_id_read_from_text_behaves_as_one_made_from_its_uuid(value: uuid.UUID, other_value: uuid.UUID,
                                                               cls: type, other_read: bool) -> None:
    def fresh(u: uuid.UUID):
        cls._by_text.clear()
        made = cls._from_text(str(u))
        assert _id_slots(made) == {"_text"}  # the int and the UUID come later
        return made

    eager = cls(value)
    other = fresh(other_value) if other_read else cls(other_value)
    assert fresh(value) == eager and eager == fresh(value) and not fresh(value) != eager
    assert hash(fresh(value)) == hash(eager) == hash(value)
    assert (fresh(value) < other, fresh(value) <= other, fresh(value) > other, fresh(value) >= other) == (
        eager < other, eager <= other, eager > other, eager >= other)
    assert (other < fresh(value), other == fresh(value)) == (other < eager, other == eager)
    assert (fresh(value) == other) == (eager == other) == (value == other_value)
    assert not fresh(value) < eager and not eager < fresh(value) and fresh(value) <= eager <= fresh(value)
    assert fresh(value).uuid == value and type(fresh(value).uuid) is uuid.UUID
    assert str(fresh(value)) == str(eager) and repr(fresh(value)) == repr(eager)
    assert pickle.dumps(fresh(value)) == pickle.dumps(eager)
    assert pickle.loads(pickle.dumps(fresh(value))) == eager
    assert copy.copy(fresh(value)) == eager and copy.deepcopy(fresh(value)) == eager
    assert fresh(value) != InputId(value) if cls is not InputId else fresh(value) != RunId(value)
    made = fresh(value)
    hash(made)
    assert _id_slots(made) == {"_value", "_text"} and made._value == value.int
    try:
        made.missing  # noqa: B018
    except AttributeError as exc:
        assert str(exc) == f"'{cls.__name__}' object has no attribute 'missing'"
    else:
        raise AssertionError("no AttributeError")


# -- stored values ---------------------------------------------------------------------

_STORED_STATE = InputState(
    InputId("019a2b3c-0000-7000-8000-0000000000ff"), InputLifecycleState.QUEUED,
    created_at=Timestamp(1_760_000_000, 0), updated_at=Timestamp(1_760_000_001, 0),
    history=[InputStateHistoryEntry(Timestamp(1_760_000_000, 5), InputLifecycleState.ACCEPTED,
                                    InputLifecycleState.QUEUED)],
).to_dict()


@settings(max_examples=600, deadline=None)
@given(timestamp_texts, st.sampled_from(["created_at", "updated_at", "history"]))
def test_a_stored_timestamp_is_read_or_refused_as_the_exact_parse_decides(text: str, field: str) -> None:
    """Whatever text a stored input state holds, decoding it gives the exact
    parse's value, or refuses it there and then, naming the same problem."""
    wire = pickle.loads(pickle.dumps(_STORED_STATE))  # a deep copy
    if field == "history":
        wire["history"][0]["timestamp"] = text
    else:
        wire[field] = text
    try:
        stored = codec.encode_input_state(wire)
    except UnicodeEncodeError:  # a lone surrogate: no stored value holds one
        return
    timestamps._BY_TEXT.clear()
    try:
        exact = _parse(text)
    except ValueError as exc:
        try:
            codec.decode_input_state(stored)
        except codec.DecodeError as caught:
            assert str(exc) in str(caught)
        else:
            raise AssertionError(f"{text!r} read") from None
        return
    timestamps._BY_TEXT.clear()
    state = codec.decode_input_state(stored)
    read = state.history[0].timestamp if field == "history" else getattr(state, field)
    assert (read.seconds, read.nanos) == (exact.seconds, exact.nanos) and str(read) == str(exact)
