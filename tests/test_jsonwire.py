"""jsonwire writes and reads JSON the way serde_json 1.0.149 does (SPEC §5.6)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redis_store import jsonwire

# -- writing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1.0"),
        (100.0, "100.0"),
        (0.5, "0.5"),
        (0.0001, "0.0001"),
        (0.00001, "0.00001"),  # Python: 1e-05
        (0.000015, "0.000015"),  # Python: 1.5e-05
        (-0.00001, "-0.00001"),
        (1e-6, "1e-6"),  # Python: 1e-06
        (1e-7, "1e-7"),
        (-2.5e-9, "-2.5e-9"),
        (1e-10, "1e-10"),
        (5e-324, "5e-324"),
        (1000000000000000.0, "1000000000000000.0"),
        (1e16, "1e+16"),
        (1.5e16, "1.5e+16"),
        (1.8446744073709552e19, "1.8446744073709552e+19"),
        (1e100, "1e+100"),
        (123.456, "123.456"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
    ],
)
def test_floats_are_written_like_zmij(value, expected):
    assert jsonwire.dumps(value) == expected
    assert jsonwire.dumps([value, {"k": value}]) == f'[{expected},{{"k":{expected}}}]'


def test_float_fixup_leaves_strings_alone():
    value = {"1e-05": ["1e-05", 'a"1e-07\\', 1e-05], "x": "type-0"}
    assert jsonwire.dumps(value) == '{"1e-05":["1e-05","a\\"1e-07\\\\",0.00001],"x":"type-0"}'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, {"a": math.nan}]])
def test_non_finite_floats_are_refused(value):
    with pytest.raises(ValueError):
        jsonwire.dumps(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x00\x01\x1f", '"\\u0000\\u0001\\u001f"'),  # lowercase hex
        ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
        ('"\\/', '"\\"\\\\/"'),  # solidus not escaped
        ("\x7f", '"\x7f"'),  # DEL raw
        ("\u2028\u2029", '"\u2028\u2029"'),
        ("Zürich 12°C", '"Zürich 12°C"'),
        ("😀", '"😀"'),  # astral raw, not a surrogate pair escape
    ],
)
def test_strings_are_escaped_like_serde(text, expected):
    assert jsonwire.dumps(text) == expected
    assert jsonwire.dumps_bytes({text: text}) == f"{{{expected}:{expected}}}".encode()


def test_keys_keep_insertion_order_and_output_is_compact():
    assert jsonwire.dumps({"b": 1, "a": [True, None, -3]}) == '{"b":1,"a":[true,null,-3]}'


@pytest.mark.parametrize("value", ["\ud800", ["ok", {"k\udc00": 1}]])
def test_lone_surrogates_are_refused_when_writing(value):
    with pytest.raises(ValueError, match="lone surrogate"):
        jsonwire.dumps(value)
    with pytest.raises(ValueError, match="lone surrogate"):
        jsonwire.dumps_bytes(value)


# -- reading ------------------------------------------------------------------


def test_accepts_str_bytes_bytearray_and_memoryview():
    for data in ('{"a":[1]}', b'{"a":[1]}', bytearray(b'{"a":[1]}'), memoryview(b'{"a":[1]}')):
        assert jsonwire.loads(data) == {"a": [1]}


def test_rejects_other_input_types():
    with pytest.raises(TypeError):
        jsonwire.loads(42)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xef\xbb\xbf{}", "byte order mark"),
        ("\ufeff{}", "byte order mark"),
        (b"\xff\xfe{\x00}\x00", "can't decode byte 0xff in position 0"),  # no UTF-16 sniffing
        (b'["ok", "\xc3"]', "position 8"),
        (b'"\xed\xa0\x80"', "can't decode"),  # UTF-8-encoded surrogate
        ("NaN", "NaN is not valid JSON"),
        ("[Infinity]", "Infinity is not valid JSON"),
        ("[-Infinity]", "-Infinity is not valid JSON"),
        ("1e400", "number out of range"),
        ("[-1e400]", "number out of range"),
        ("1" + "0" * 400, "number out of range"),
        ('"\\ud800"', "lone surrogate"),
        ('["\\udc00"]', "lone surrogate"),
        ('"\\ud800\\ud800\\udc00"', "lone surrogate"),
        ('"\\ud83d\\ude00\\ude00"', "lone surrogate"),
        ('"\\\\\\ud800"', "lone surrogate"),  # escaped backslash, then a real escape
        ('{"\\udbff": 1}', "lone surrogate"),
        ("\ud800", "lone surrogate"),  # str input that is not Unicode
        ("[1,]", "line 1 column 4"),
        ('{"a" 1}', "line 1 column 6"),
        ("[1] 2", "Extra data"),
        ('"a\nb"', "Invalid control character"),
        ("", "Expecting value"),
        ("01", "Extra data"),
    ],
)
def test_rejects_what_serde_rejects(data, fragment):
    with pytest.raises(ValueError, match=fragment):
        jsonwire.loads(data)


def test_utf8_errors_name_the_byte():
    with pytest.raises(UnicodeDecodeError) as caught:
        jsonwire.loads(b'{"a":"\xff"}')
    assert caught.value.start == 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"\\ud83d\\ude00"', "😀"),  # a valid pair
        ('"\\\\ud800"', "\\ud800"),  # an escaped backslash: no escape at all
        ('"\\u00e9\\/"', "é/"),
        ("1e-400", 0.0),  # underflow is fine
    ],
)
def test_accepts_what_serde_accepts(text, expected):
    assert jsonwire.loads(text) == expected


def test_nesting_limit_is_serde_s():
    ok = "[" * jsonwire.MAX_DEPTH + "]" * jsonwire.MAX_DEPTH
    assert jsonwire.MAX_DEPTH == 127
    assert jsonwire.loads(ok) is not None
    for depth in (128, 129, 5000):
        with pytest.raises(ValueError, match="recursion limit exceeded"):
            jsonwire.loads("[" * depth + "]" * depth)


def test_nesting_counts_objects_and_ignores_brackets_in_strings():
    deep_objects = '{"a":' * 128 + "1" + "}" * 128
    with pytest.raises(ValueError, match="recursion limit exceeded"):
        jsonwire.loads(deep_objects)
    # 126 levels of structure with bracket-laden strings at the bottom.
    strings = '["[[[[", "]]]]", "\\"[{", "\\\\", "{\\\\\\"[" ]'
    assert jsonwire.loads("[" * 126 + strings + "]" * 126) is not None
    with pytest.raises(ValueError, match="recursion limit exceeded"):
        jsonwire.loads("[" * 127 + strings + "]" * 127)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18446744073709551615", 18446744073709551615),  # u64::MAX stays an int
        ("-9223372036854775808", -9223372036854775808),  # i64::MIN stays an int
        ("9007199254740993", 9007199254740993),  # 2**53 + 1 exact
        ("18446744073709551616", 1.8446744073709552e19),
        ("-9223372036854775809", -9.223372036854776e18),
        ("123456789012345678901234567890", 1.2345678901234568e29),
    ],
)
def test_integers_outside_u64_and_i64_become_floats(text, expected):
    value = jsonwire.loads(text)
    assert value == expected and type(value) is type(expected)


def test_negative_zero_is_a_float():
    for text in ("-0", "-0.0"):
        value = jsonwire.loads(text)
        assert type(value) is float and math.copysign(1.0, value) == -1.0
    assert type(jsonwire.loads("0")) is int


def test_duplicate_keys_last_wins_and_loads_pairs_keeps_them():
    assert jsonwire.loads('{"a":1,"b":2,"a":3}') == {"a": 3, "b": 2}
    assert jsonwire.loads_pairs('{"a":1,"b":[{}],"a":3}') == (("a", 1), ("b", [()]), ("a", 3))


# -- round trips --------------------------------------------------------------

_json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text()
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(_json_values)
def test_without_floats_matches_the_stdlib_and_round_trips(value):
    text = jsonwire.dumps(value)
    assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert jsonwire.dumps_bytes(value) == text.encode("utf-8")
    assert jsonwire.loads(text) == value
    assert jsonwire.loads(text.encode("utf-8")) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(value):
    text = jsonwire.dumps(value)
    assert "e-0" not in text and "e+0" not in text
    parsed = jsonwire.loads(text)
    assert parsed == value and math.copysign(1.0, parsed) == math.copysign(1.0, value)


def test_encoder_errors_are_the_standard_library_ones() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonwire.dumps(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonwire.dumps({"a": loop})  # again: a failed call leaves nothing behind
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonwire.dumps({"a": object()})
    with pytest.raises(ValueError):
        jsonwire.dumps([float("nan")])
    shared = [1]
    assert jsonwire.dumps([shared, {"a": shared}, "\u2028\n"]) == '[[1],{"a":[1]},"\u2028\\n"]'
