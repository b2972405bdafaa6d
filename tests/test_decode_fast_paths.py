"""The decoding fast paths agree with the general ones.

``_UuidId._from_text`` builds an id from the canonical text the store writes
without going through the constructor's checks, and ``types._dec_hook`` looks
a timestamp up in ``Timestamp.parse``'s cache itself. Both must accept,
refuse and produce exactly what the general paths (``parse_uuid``,
``Timestamp.parse``) do, for every form.
"""

from __future__ import annotations

import copy
import pickle
import uuid

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from redis_store import timestamps
from redis_store.ids import InputId, RunId, SessionId, parse_uuid
from redis_store.timestamps import Timestamp
from redis_store.types import _dec_hook

SAMPLE = "019a2b3c-0000-7000-8000-0000000000ff"


def _forms(value: uuid.UUID) -> list[str]:
    text = str(value)
    return [
        text,
        text.upper(),
        text[:9] + text[9:].upper(),
        value.hex,
        value.hex.upper(),
        "{" + text + "}",
        "urn:uuid:" + text,
        "urn:uuid:" + text.upper(),
        " " + text,
        text + "\n",
        text[:-1],
        text + "0",
        "0x" + value.hex,
        text.replace("-", "_"),
        text[:8] + "-" + text[8:],
    ]


def _near_canonical(value: uuid.UUID, position: int, char: str) -> str:
    """Canonical text with one character replaced."""
    text = str(value)
    position %= len(text)
    return text[:position] + char + text[position + 1 :]


uuid_texts = st.one_of(
    st.uuids().flatmap(lambda u: st.sampled_from(_forms(u))),
    st.builds(_near_canonical, st.uuids(), st.integers(0, 35), st.sampled_from("0aAfFgGxX_-+ {}:\u0661\uff10")),
    st.text(alphabet="0123456789abcdefABCDEFxX_-+ {}:nru\u0661", min_size=30, max_size=46),
)


@given(uuid_texts, st.sampled_from([InputId, RunId, SessionId]))
@example(SAMPLE, InputId)
@example(SAMPLE.upper(), RunId)
@example("{" + SAMPLE + "}", RunId)
@example("urn:uuid:" + SAMPLE, RunId)
@example(SAMPLE.replace("-", ""), RunId)
@example("019a2b3c-0000-7000-8000-0000000000f\u0661", InputId)
def test_id_from_text_agrees_with_parse_uuid(text: str, cls: type) -> None:
    cls._by_text.clear()  # the fast path, not a cached id
    try:
        expected = parse_uuid(text, cls.__name__)
    except ValueError as exc:
        with pytest.raises(ValueError) as caught:
            cls._from_text(text)
        assert str(caught.value) == str(exc)
        return
    made = cls._from_text(text)
    reference = cls(expected)
    assert type(made) is cls
    assert type(made.uuid) is uuid.UUID
    assert made.uuid == expected and made.uuid.int == expected.int
    assert made.uuid.is_safe is expected.is_safe
    assert (made.uuid.version, made.uuid.variant, repr(made.uuid)) == (expected.version, expected.variant, repr(expected))
    assert made == reference and hash(made) == hash(reference) and not made < reference
    assert str(made) == str(reference) == str(expected) and repr(made) == repr(reference)
    assert pickle.loads(pickle.dumps(made)) == made and copy.deepcopy(made) == made
    assert pickle.loads(pickle.dumps(made.uuid)) == expected
    with pytest.raises(AttributeError):
        made._value = expected  # still immutable
    assert cls._from_text(text) is made  # and remembered


@given(st.uuids(), st.uuids())
def test_fast_ids_order_as_uuids(a: uuid.UUID, b: uuid.UUID) -> None:
    InputId._by_text.clear()
    x, y = InputId._from_text(str(a)), InputId._from_text(str(b))
    assert (x < y, x == y, x > y) == (a < b, a == b, a > b)


timestamp_texts = st.one_of(
    st.builds(lambda s, n: str(Timestamp(s, n)), st.integers(-(10**12), 10**12), st.integers(0, 999_999_999)),
    st.sampled_from([
        "2025-10-09T08:53:20.123456789Z",
        "2025-10-09t10:53:20.123456789+02:00",
        "2016-12-31T23:59:60.5Z",
        " 2024-01-02T03:04:05Z ",
        "2024-02-30T00:00:00Z",
        "2024-01-02T03:04:05",
        "",
    ]),
    st.text(alphabet="0123456789-T:.Z+ tz", max_size=32),
)


@given(timestamp_texts, st.booleans())
def test_dec_hook_timestamp_agrees_with_parse(text: str, cached: bool) -> None:
    timestamps._BY_TEXT.clear()
    try:
        expected = Timestamp.parse(text)
    except ValueError as exc:
        with pytest.raises(ValueError) as caught:
            _dec_hook(Timestamp, text)
        assert str(caught.value) == str(exc)
        return
    if not cached:
        timestamps._BY_TEXT.clear()
    stamp = _dec_hook(Timestamp, text)
    assert type(stamp) is Timestamp and stamp == expected and str(stamp) == str(expected)


@pytest.mark.parametrize("kind", [Timestamp, InputId, RunId])
@pytest.mark.parametrize("value", [5, None, b"x", [SAMPLE], {"a": 1}])
def test_dec_hook_refuses_non_strings(kind: type, value: object) -> None:
    with pytest.raises(TypeError, match="^Expected `str`, got `"):
        _dec_hook(kind, value)
