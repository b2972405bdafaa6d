"""The receipt digest: a Session snapshot parsed as strictly as serde does, its
messages re-serialized canonically and hashed (SPEC §3, §5)."""

from __future__ import annotations

import hashlib
import json
import re

import msgspec
import pytest

from redis_store.digest import (
    SessionSummary,
    canonical_messages_json,
    inspect_session,
    session_digest,
)
from redis_store.errors import InvalidSessionSnapshot

SID = "019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b"
TIME = {"secs_since_epoch": 1760000000, "nanos_since_epoch": 0}
DROP = object()  # as a field value: leave the field out


def merged(base: dict, fields: dict) -> dict:
    return {key: value for key, value in {**base, **fields}.items() if value is not DROP}


def snapshot(messages=(), **fields) -> bytes:
    """A snapshot of ``messages``; ``fields`` override or (``DROP``) remove top-level fields."""
    if type(messages) is tuple:
        messages = list(messages)
    base = {"id": SID, "messages": messages, "created_at": TIME, "updated_at": TIME}
    return json.dumps(merged(base, fields), ensure_ascii=False).encode()


def raw_snapshot(messages: str = "[]", extra: str = "") -> bytes:
    """A snapshot written by hand, for what json.dumps cannot write (repeated keys, -0, NaN)."""
    time = json.dumps(TIME)
    return f'{{"id":"{SID}","messages":{messages},"created_at":{time},"updated_at":{time}{extra}}}'.encode()


def canonical(*messages) -> str:
    return canonical_messages_json(snapshot(messages)).decode()


# Message builders: valid by default, ``DROP`` removes a field.


def user(content) -> dict:
    return {"role": "user", "content": content}


def assistant(**fields) -> dict:
    usage = {"input_tokens": 1, "output_tokens": 1}
    return merged({"role": "assistant", "content": "", "stop_reason": "end_turn", "usage": usage}, fields)


def block(block_type: str, **data) -> dict:
    return {"block_type": block_type, "data": data}


def block_assistant(*blocks, stop_reason="end_turn") -> dict:
    return {"role": "block_assistant", "blocks": list(blocks), "stop_reason": stop_reason}


def tool_use(**fields) -> dict:
    return block_assistant(block("tool_use", **merged({"id": "t", "name": "n", "args": {}}, fields)))


def tool_results(*results) -> dict:
    return {"role": "tool_results", "results": list(results)}


def result(**fields) -> dict:
    return merged({"tool_use_id": "t", "content": "out"}, fields)


# -- SPEC examples ------------------------------------------------------------

EXAMPLE_A = (
    b'{"version":1,"id":"019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b","messages":[],"created_at":'
    b'{"secs_since_epoch":1760000000,"nanos_since_epoch":123456789},"updated_at":'
    b'{"secs_since_epoch":1760000000,"nanos_since_epoch":123456789},"metadata":{},"usage":'
    b'{"input_tokens":0,"output_tokens":0,"cache_creation_tokens":null,"cache_read_tokens":null}}'
)
EMPTY_DIGEST = "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"

# SPEC §5.4's input (only re-wrapped: JSON whitespace does not matter).
EXAMPLE_B = """
{
  "id": "019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b",
  "created_at": {"secs_since_epoch": 1760000000, "nanos_since_epoch": 0},
  "updated_at": {"secs_since_epoch": 1760000042, "nanos_since_epoch": 250000000},
  "metadata": {"session_metadata": {"model": "m"}},
  "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Wetter in Zürich?"}]},
    {"role": "block_assistant", "stop_reason": "tool_use",
     "blocks": [
       {"block_type": "reasoning", "data": {}},
       {"block_type": "tool_use", "data": {"name": "weather", "id": "tu_1",
                                           "args": {"units": "metric", "city": "Zürich", "days": 2}}}
     ]},
    {"role": "tool_results", "results": [{"tool_use_id": "tu_1", "content": "12°C\\nrain"}]},
    {"role": "assistant", "content": "12°C, rain.", "stop_reason": "end_turn",
     "usage": {"output_tokens": 7, "input_tokens": 31}}
  ]
}
""".encode()

EXAMPLE_B_HASHED = (
    '[{"role":"system","content":"Be brief."},{"role":"user","content":"Wetter in Zürich?"},'
    '{"role":"block_assistant","blocks":[{"block_type":"reasoning","data":{"text":""}},'
    '{"block_type":"tool_use","data":{"id":"tu_1","name":"weather",'
    '"args":{"city":"Zürich","days":2,"units":"metric"}}}],"stop_reason":"tool_use"},'
    '{"role":"tool_results","results":[{"tool_use_id":"tu_1","content":"12°C\\nrain","is_error":false}]},'
    '{"role":"assistant","content":"12°C, rain.","tool_calls":[],"stop_reason":"end_turn","usage":'
    '{"input_tokens":31,"output_tokens":7,"cache_creation_tokens":null,"cache_read_tokens":null}}]'
).encode()


def test_example_a_empty_session():
    assert canonical_messages_json(EXAMPLE_A) == b"[]"
    assert session_digest(EXAMPLE_A) == (EMPTY_DIGEST, 0)
    assert inspect_session(EXAMPLE_A) == SessionSummary(SID, EMPTY_DIGEST, 0)


def test_example_b_mixed_messages():
    assert len(EXAMPLE_B_HASHED) == 600
    assert canonical_messages_json(EXAMPLE_B) == EXAMPLE_B_HASHED
    assert session_digest(EXAMPLE_B) == (
        "f0b98e2f4888dd5e347988905fed380ce57ad0eb7d7742d15d3f7e7f3722d0db",
        5,
    )


def test_digest_is_sha256_of_the_canonical_bytes():
    data = snapshot([user("hi")])
    summary = inspect_session(data)
    assert summary.conversation_digest == hashlib.sha256(canonical_messages_json(data)).hexdigest()
    assert summary.message_count == 1
    assert session_digest(data) == (summary.conversation_digest, 1)


def test_accepts_bytes_like_and_refuses_the_rest():
    for data in (bytearray(EXAMPLE_A), memoryview(EXAMPLE_A)):
        assert session_digest(data) == (EMPTY_DIGEST, 0)
    for data in (EXAMPLE_A.decode(), None, 42):
        with pytest.raises(TypeError):
            session_digest(data)


def test_invalid_snapshot_is_a_value_error():
    assert issubclass(InvalidSessionSnapshot, ValueError)


# -- normalization, one rule at a time ----------------------------------------


def test_tag_first_then_declared_field_order_and_unknown_keys_dropped():
    message = {"usage": {"output_tokens": 2, "extra": 1, "input_tokens": 1}, "stop_reason": "max_tokens",
               "x-trace": [1, 2], "content": "ok", "role": "assistant"}
    assert canonical(message) == (
        '[{"role":"assistant","content":"ok","tool_calls":[],"stop_reason":"max_tokens","usage":'
        '{"input_tokens":1,"output_tokens":2,"cache_creation_tokens":null,"cache_read_tokens":null}}]'
    )


def test_usage_cache_fields_are_kept_when_present():
    usage = {"cache_read_tokens": 4, "input_tokens": 1, "output_tokens": 2, "cache_creation_tokens": 3}
    assert canonical(assistant(usage=usage)).endswith(
        '"usage":{"input_tokens":1,"output_tokens":2,"cache_creation_tokens":3,"cache_read_tokens":4}}]'
    )


def test_single_text_block_collapses_to_a_string():
    text_block = [{"type": "text", "text": "hi", "extra": True}]
    assert canonical(user(text_block)) == '[{"role":"user","content":"hi"}]'
    assert canonical(tool_results(result(content=text_block))) == (
        '[{"role":"tool_results","results":[{"tool_use_id":"t","content":"hi","is_error":false}]}]'
    )


def test_two_blocks_or_none_stay_an_array():
    two = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert canonical(user(two)) == (
        '[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]'
    )
    assert canonical(user([])) == '[{"role":"user","content":[]}]'


def test_images_stay_an_array_and_never_write_source_path():
    image = {"data": "iVBOR", "source_path": "/tmp/cat.png", "type": "image", "media_type": "image/png"}
    assert canonical(user([image])) == (
        '[{"role":"user","content":[{"type":"image","media_type":"image/png","data":"iVBOR"}]}]'
    )
    image["source_path"] = None
    assert '"source_path"' not in canonical(user([{"type": "text", "text": "see"}, image]))


def test_reasoning_text_defaults_to_empty():
    assert canonical(block_assistant({"data": {}, "block_type": "reasoning"})) == (
        '[{"role":"block_assistant","blocks":[{"block_type":"reasoning","data":{"text":""}}],'
        '"stop_reason":"end_turn"}]'
    )


def test_text_block_keeps_its_text_and_omits_a_null_meta():
    written = canonical(block_assistant(block("text", text="hi", meta=None)))
    assert '"blocks":[{"block_type":"text","data":{"text":"hi"}}]' in written


def test_tool_args_are_sorted_recursively():
    args = {"b": [{"z": 1, "a": {"y": None, "x": []}}], "a": "é", "A": 1, "é": 2, "😀": 3, "\uffff": 4}
    assert canonical(tool_use(args=args)) == (
        '[{"role":"block_assistant","blocks":[{"block_type":"tool_use","data":{"id":"t","name":"n","args":'
        '{"A":1,"a":"é","b":[{"a":{"x":[],"y":null},"z":1}],"é":2,"\uffff":4,"😀":3}}}],'
        '"stop_reason":"end_turn"}]'
    )


@pytest.mark.parametrize(
    ("args", "written"),
    [
        ("null", "null"),
        ('"text"', '"text"'),
        ("[3, 1, 2]", "[3,1,2]"),
        ('{"k": 1, "k": 2}', '{"k":2}'),  # free-form map: the last duplicate wins
        ("[1.0, 1e-5, 1E-7, 1e16, 100]", "[1.0,0.00001,1e-7,1e+16,100]"),
        ("[-0, 18446744073709551616, -9223372036854775809]",
         "[-0.0,1.8446744073709552e+19,-9.223372036854776e+18]"),
    ],
)
def test_tool_args_are_re_encoded_like_serde_json_value(args, written):
    data = raw_snapshot('[{"role":"block_assistant","stop_reason":"tool_use","blocks":[{"block_type":'
                        f'"tool_use","data":{{"id":"t","name":"n","args":{args}}}}}]}}]')
    assert f'"args":{written}}}' in canonical_messages_json(data).decode()


@pytest.mark.parametrize(
    ("args", "written"),
    [
        ("-0", "-0.0"),  # the number right before the closing braces
        ("[-0]", "[-0.0]"),
        ("[-0 ,1]", "[-0.0,1]"),
        ("[-0\t]", "[-0.0]"),
        ("[-0\n]", "[-0.0]"),
        ("[-0\r]", "[-0.0]"),
        ('{"a":-0}', '{"a":-0.0}'),
        ("[-0.5, -0e1, -01]", None),  # not -0 (the last is not JSON at all)
        ('"-0"', '"-0"'),  # -0 inside a string is text
    ],
)
def test_negative_zero_wherever_it_stands_is_a_float(args, written):
    data = raw_snapshot('[{"role":"block_assistant","stop_reason":"tool_use","blocks":[{"block_type":'
                        f'"tool_use","data":{{"id":"t","name":"n","args":{args}}}}}]}}]')
    if written is None:
        with pytest.raises(InvalidSessionSnapshot):
            canonical_messages_json(data)
        assert not digest._negative_zero(b"[-0.5, -0e1]")
        return
    assert f'"args":{written}}}' in canonical_messages_json(data).decode()
    assert digest._negative_zero(data) is (written != '"-0"')


def test_legacy_tool_calls_default_and_sorted_args():
    assert '"tool_calls":[]' in canonical(assistant())
    call = {"name": "n", "args": {"b": 1, "a": 2}, "id": "c1", "extra": 0}
    written = canonical(assistant(tool_calls=[call]))
    assert '"tool_calls":[{"id":"c1","name":"n","args":{"a":2,"b":1}}]' in written


def test_is_error_defaults_to_false_and_true_is_kept():
    assert canonical(tool_results(result(tool_use_id="a"), result(is_error=True, tool_use_id="b"))) == (
        '[{"role":"tool_results","results":[{"tool_use_id":"a","content":"out","is_error":false},'
        '{"tool_use_id":"b","content":"out","is_error":true}]}]'
    )


@pytest.mark.parametrize(
    ("meta", "written"),
    [
        ({"signature": "s", "provider": "anthropic"}, '{"provider":"anthropic","signature":"s"}'),
        ({"provider": "anthropic_redacted", "data": "d"}, '{"provider":"anthropic_redacted","data":"d"}'),
        ({"content": "c", "provider": "anthropic_compaction"},
         '{"provider":"anthropic_compaction","content":"c"}'),
        ({"provider": "gemini", "thoughtSignature": "ts"}, '{"provider":"gemini","thoughtSignature":"ts"}'),
        ({"provider": "open_ai", "id": "rs_1"}, '{"provider":"open_ai","id":"rs_1"}'),
        ({"provider": "open_ai", "id": "rs_1", "encrypted_content": None},
         '{"provider":"open_ai","id":"rs_1"}'),
        ({"encrypted_content": "enc", "provider": "open_ai", "id": "rs_1", "phase": "x"},
         '{"provider":"open_ai","id":"rs_1","encrypted_content":"enc"}'),
    ],
)
def test_every_provider_meta_variant(meta, written):
    message = block_assistant(
        block("reasoning", meta=meta, text="r"),
        block("text", meta=meta, text="t"),
        block("tool_use", meta=meta, args={}, name="n", id="t"),
    )
    assert canonical(message) == (
        '[{"role":"block_assistant","blocks":['
        f'{{"block_type":"reasoning","data":{{"text":"r","meta":{written}}}}},'
        f'{{"block_type":"text","data":{{"text":"t","meta":{written}}}}},'
        f'{{"block_type":"tool_use","data":{{"id":"t","name":"n","args":{{}},"meta":{written}}}}}'
        '],"stop_reason":"end_turn"}]'
    )


def test_every_stop_reason():
    for reason in ("end_turn", "tool_use", "max_tokens", "stop_sequence", "content_filter", "cancelled"):
        assert f'"stop_reason":"{reason}"' in canonical(block_assistant(stop_reason=reason))


def test_strings_are_written_like_serde():
    text = "tab\there \x00\x1f\x7f \u2028 😀 \"q\" \\ /"
    expected = '"tab\\there \\u0000\\u001f\x7f \u2028 😀 \\"q\\" \\\\ /"'
    assert canonical({"role": "system", "content": text}) == f'[{{"role":"system","content":{expected}}}]'


# -- what the Session accepts -------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        "019A2B3C-4D5E-7F60-8A9B-0C1D2E3F4A5B",
        "019a2b3c4d5e7f608a9b0c1d2e3f4a5b",
        "{019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b}",
        "urn:uuid:019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b",
        "019a2B3C-4d5e-7F60-8a9b-0c1D2e3f4A5b",
    ],
)
def test_accepted_uuid_forms_give_the_lowercase_hyphenated_id(form):
    assert inspect_session(snapshot(id=form)).session_id == SID


@pytest.mark.parametrize(
    "time",
    [
        {"nanos_since_epoch": 5, "secs_since_epoch": 1},
        [1760000000, 999999999],
        [1, 1_500_000_000],  # nanos carry into the seconds
        {"secs_since_epoch": 2**63 - 2, "nanos_since_epoch": 1_999_999_999},
    ],
)
def test_system_time_forms(time):
    assert session_digest(snapshot(created_at=time, updated_at=time)) == (EMPTY_DIGEST, 0)


def test_defaults_and_unknown_top_level_fields():
    data = snapshot(version=DROP, metadata=DROP, usage=DROP, future_field={"x": [1, {"y": None}]})
    assert session_digest(data) == (EMPTY_DIGEST, 0)
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation_tokens": None, "cache_read_tokens": 9}
    explicit = snapshot(version=7, metadata={"b": 1, "a": {"c": []}}, usage=usage)
    assert session_digest(explicit) == (EMPTY_DIGEST, 0)


def test_nesting_limit_counts_from_the_top_of_the_snapshot():
    # session, messages, message, blocks, block, data: args start at level 7 of 127
    args = json.loads("[" * 121 + "]" * 121)
    assert session_digest(snapshot([tool_use(args=args)]))[1] == 1


def test_repeated_keys_that_are_not_struct_fields_are_fine():
    message = '{"role":"system","content":"x","extra":1,"extra":2}'
    assert canonical_messages_json(raw_snapshot(f"[{message}]")) == b'[{"role":"system","content":"x"}]'
    assert session_digest(raw_snapshot(extra=',"metadata":{"k":1,"k":2}')) == (EMPTY_DIGEST, 0)


# -- what it rejects ----------------------------------------------------------


def second(message: dict) -> bytes:
    """A snapshot whose second message is ``message``."""
    return snapshot([user("hi"), message])


def assistant_usage(**usage) -> bytes:
    return second(assistant(usage=merged({"input_tokens": 0, "output_tokens": 0}, usage)))


def image(**fields) -> dict:
    return merged({"type": "image", "media_type": "image/png", "data": "d"}, fields)


def repeated_created_at() -> bytes:
    without = snapshot(created_at=DROP)
    return without[:-1] + b',"created_at":{"secs_since_epoch":1,"secs_since_epoch":1,"nanos_since_epoch":0}}'


def raw_blocks(blocks: str) -> bytes:
    return raw_snapshot(f'[{{"role":"block_assistant","stop_reason":"end_turn","blocks":[{blocks}]}}]')


INVALID = [
    # not a Session at all
    ("not JSON", b"session-data", "snapshot is not valid JSON"),
    ("empty", b"", "snapshot is not valid JSON"),
    ("invalid UTF-8", b'{"id":"\xff"}', "snapshot is not valid UTF-8 at byte 7"),
    ("BOM", b"\xef\xbb\xbf" + EXAMPLE_A, "byte order mark"),
    ("top-level array", b"[]", "Expected `object`"),
    ("top-level string", b'"x"', "Expected `object`"),
    ("lone surrogate", raw_snapshot('[{"role":"system","content":"\\ud800"}]'), "lone surrogate"),
    ("NaN", raw_snapshot(extra=',"metadata":{"x":NaN}'), "NaN is not valid JSON"),
    ("too deep", raw_snapshot(extra=',"metadata":' + "[" * 127 + "]" * 127), "recursion limit exceeded"),
    # top-level fields
    ("missing id", snapshot(id=DROP), "missing field `id`"),
    ("missing messages", snapshot(messages=DROP), "missing field `messages`"),
    ("missing created_at", snapshot(created_at=DROP), "missing field `created_at`"),
    ("missing updated_at", snapshot(updated_at=DROP), "missing field `updated_at`"),
    ("messages null", snapshot(messages=None), "messages: invalid type: null, expected a sequence"),
    ("messages object", snapshot(messages={}), "messages: invalid type: a map, expected a sequence"),
    ("version null", snapshot(version=None), "version: invalid type: null, expected u32"),
    ("version negative", snapshot(version=-1), "version: invalid value: integer `-1`, expected u32"),
    ("version above u32", snapshot(version=2**32), "version: invalid value: integer `4294967296`, expected u32"),
    ("version float", snapshot(version=1.0), "version: invalid type: floating point `1.0`, expected u32"),
    ("version bool", snapshot(version=True), "version: invalid type: boolean `true`, expected u32"),
    ("metadata null", snapshot(metadata=None), "metadata: invalid type: null, expected a map"),
    ("metadata array", snapshot(metadata=[]), "metadata: invalid type: a sequence, expected a map"),
    ("usage null", snapshot(usage=None), "usage: invalid type: null, expected struct Usage"),
    ("usage incomplete", snapshot(usage={"input_tokens": 0}), "usage: missing field `output_tokens`"),
    ("duplicate id", raw_snapshot(extra=f',"id":"{SID}"'), "duplicate field `id`"),
    # uuids (uuid.UUID() would take some of these)
    ("uuid hyphen misplaced", snapshot(id="019a2b3c4-d5e-7f60-8a9b-0c1d2e3f4a5b"), "invalid UUID"),
    ("uuid group missing", snapshot(id="019a2b3c-4d5e7f60-8a9b-0c1d2e3f4a5b"), "invalid UUID"),
    ("uuid braced simple", snapshot(id="{019a2b3c4d5e7f608a9b0c1d2e3f4a5b}"), "invalid UUID"),
    ("uuid URN in capitals", snapshot(id="URN:UUID:019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b"), "invalid UUID"),
    ("uuid not hex", snapshot(id="019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5g"), "invalid UUID"),
    ("uuid short", snapshot(id="019a2b3c4d5e7f608a9b0c1d2e3f4a5"), "invalid UUID"),
    ("uuid trailing newline", snapshot(id=SID + "\n"), "invalid UUID"),
    ("uuid empty", snapshot(id=""), "invalid UUID"),
    ("uuid number", snapshot(id=5), "id: invalid type: integer `5`, expected a UUID string"),
    # SystemTime
    ("time unknown key", snapshot(created_at={**TIME, "extra": 0}), "created_at: unknown field `extra`"),
    ("time missing nanos", snapshot(updated_at={"secs_since_epoch": 1}),
     "updated_at: missing field `nanos_since_epoch`"),
    ("time duplicate key", repeated_created_at(), "created_at: duplicate field `secs_since_epoch`"),
    ("time three elements", snapshot(created_at=[1, 2, 3]),
     "created_at: expected [secs_since_epoch, nanos_since_epoch], found 3 elements"),
    ("time null", snapshot(created_at=None), "created_at: invalid type: null, expected struct SystemTime"),
    ("time negative secs", snapshot(created_at={"secs_since_epoch": -1, "nanos_since_epoch": 0}),
     "created_at.secs_since_epoch: invalid value: integer `-1`, expected u64"),
    ("time float nanos", snapshot(created_at=[1, 0.5]),
     "created_at[1]: invalid type: floating point `0.5`, expected u32"),
    ("time nanos above u32", snapshot(created_at=[1, 2**32]),
     "created_at[1]: invalid value: integer `4294967296`"),
    ("time overflow", snapshot(created_at=[2**63 - 1, 1_000_000_000]), "overflow deserializing SystemTime"),
    # messages
    ("message not an object", snapshot(["hi"]),
     'messages[0]: invalid type: string "hi", expected internally tagged enum Message'),
    ("missing role", second({"content": "x"}), "messages[1]: missing field `role`"),
    ("role not a string", second({"role": 0}), "messages[1]: invalid type: integer `0` for `role`"),
    ("unknown role", second({"role": "robot", "content": "x"}), "messages[1]: unknown role 'robot'"),
    ("duplicate field", raw_snapshot('[{"role":"system","content":"a","content":"b"}]'),
     "messages[0]: duplicate field `content`"),
    ("duplicate role", raw_snapshot('[{"role":"system","role":"system","content":"a"}]'),
     "messages[0]: duplicate field `role`"),
    ("system content missing", second({"role": "system"}), "messages[1]: missing field `content`"),
    ("system content null", second({"role": "system", "content": None}),
     "messages[1].content: invalid type: null, expected a string"),
    ("user content object", second(user({})),
     "messages[1].content: invalid type: a map, expected a string or an array of content blocks"),
    ("unknown content type", second(user([{"type": "video"}])),
     "messages[1].content[0]: unknown type 'video'"),
    ("image without data", second(user([image(data=DROP)])), "messages[1].content[0]: missing field `data`"),
    ("source_path not a string", second(user([image(source_path=5)])),
     "messages[1].content[0].source_path: invalid type: integer `5`, expected a string"),
    ("assistant without usage", second(assistant(usage=DROP)), "messages[1]: missing field `usage`"),
    ("unknown stop_reason", second(assistant(stop_reason="done")),
     "messages[1].stop_reason: unknown stop_reason 'done'"),
    ("stop_reason missing", second(assistant(stop_reason=DROP)), "messages[1]: missing field `stop_reason`"),
    ("tool_calls null", second(assistant(tool_calls=None)),
     "messages[1].tool_calls: invalid type: null, expected a sequence"),
    ("tool call without args", second(assistant(tool_calls=[{"id": "c", "name": "n"}])),
     "messages[1].tool_calls[0]: missing field `args`"),
    ("negative u64", assistant_usage(input_tokens=-1),
     "messages[1].usage.input_tokens: invalid value: integer `-1`, expected u64"),
    ("float u64", assistant_usage(input_tokens=5.0),
     "messages[1].usage.input_tokens: invalid type: floating point `5.0`, expected u64"),
    ("u64 out of range", assistant_usage(output_tokens=2**64),
     "messages[1].usage.output_tokens: invalid type: floating point `1.8446744073709552e+19`, expected u64"),
    ("negative zero u64", raw_snapshot('[{"role":"assistant","content":"","stop_reason":"end_turn",'
                                       '"usage":{"input_tokens":-0,"output_tokens":0}}]'),
     "messages[0].usage.input_tokens: invalid type: floating point `-0.0`, expected u64"),
    ("bool as u64", assistant_usage(input_tokens=True),
     "messages[1].usage.input_tokens: invalid type: boolean `true`, expected u64"),
    ("cache tokens not u64", assistant_usage(cache_read_tokens="3"),
     'messages[1].usage.cache_read_tokens: invalid type: string "3", expected u64'),
    ("is_error as 0", second(tool_results(result(is_error=0))),
     "messages[1].results[0].is_error: invalid type: integer `0`, expected a boolean"),
    ("is_error as 1", second(tool_results(result(is_error=1))),
     "messages[1].results[0].is_error: invalid type: integer `1`, expected a boolean"),
    ("is_error null", second(tool_results(result(is_error=None))),
     "messages[1].results[0].is_error: invalid type: null, expected a boolean"),
    ("result without content", second(tool_results(result(content=DROP))),
     "messages[1].results[0]: missing field `content`"),
    # assistant blocks
    ("unknown block_type", second(block_assistant(block("text", text="a"), block("foo"))),
     "messages[1].blocks[1]: unknown block_type 'foo'"),
    ("block without data", second(block_assistant({"block_type": "reasoning"})),
     "messages[1].blocks[0]: missing field `data`"),
    ("block data null", second(block_assistant({"block_type": "reasoning", "data": None})),
     "messages[1].blocks[0].data: invalid type: null, expected struct variant AssistantBlock::Reasoning"),
    ("duplicate block_type", raw_blocks('{"block_type":"text","block_type":"text","data":{"text":""}}'),
     "messages[0].blocks[0]: duplicate field `block_type`"),
    ("duplicate field in block data", raw_blocks('{"block_type":"text","data":{"text":"a","text":"b"}}'),
     "messages[0].blocks[0].data: duplicate field `text`"),
    ("text block without text", second(block_assistant(block("text"))),
     "messages[1].blocks[0].data: missing field `text`"),
    ("tool_use without args", second(tool_use(args=DROP)),
     "messages[1].blocks[0].data: missing field `args`"),
    ("unknown provider", second(tool_use(meta={"provider": "mistral"})),
     "messages[1].blocks[0].data.meta: unknown provider 'mistral'"),
    ("gemini in snake_case", second(tool_use(meta={"provider": "gemini", "thought_signature": "s"})),
     "messages[1].blocks[0].data.meta: missing field `thoughtSignature`"),
    ("open_ai without id", second(tool_use(meta={"provider": "open_ai"})),
     "messages[1].blocks[0].data.meta: missing field `id`"),
    # session, messages, message, blocks, block, data: args start at level 7 of 127
    ("args too deep", second(tool_use(args=json.loads("[" * 122 + "]" * 122))), "recursion limit exceeded"),
    ("args out of range", raw_blocks('{"block_type":"tool_use","data":{"id":"t","name":"n","args":1e400}}'),
     "number out of range"),
]


@pytest.mark.parametrize(
    ("data", "fragment"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_snapshots(data, fragment):
    """Refused, saying where and what: the fragments are serde's wording; the
    messages are msgspec's (``... - at `$.messages[1].content```), so the test
    asks for the same place and the same field or value names."""
    with pytest.raises(InvalidSessionSnapshot) as caught:
        inspect_session(data)
    message = str(caught.value)
    located = re.match(r"^([a-z_]+(?:\[\d+\]|\.[a-zA-Z_]+)*): (.*)$", fragment)
    if located:
        assert f"`$.{located.group(1)}" in message
        fragment = located.group(2)
    names = re.findall(r"field `(\w+)`|'([\w-]+)'", fragment)
    for name in [a or b for a, b in names]:
        assert name in message
    if not located and not names:
        assert fragment.lower() in message.lower()


# -- the msgspec model agrees with the reference reader ----------------------
#
# tests/reference/digest.py is redis-store 0.1.0's strict reader, unchanged.
# Whatever path a snapshot takes here (msgspec's reading, a shim, the exact
# stdlib reading, the digest cache), the result must be the reference's: the
# same session id, canonical bytes and count, or a refusal where it refuses.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from reference import digest as reference_digest  # noqa: E402
from redis_store import digest  # noqa: E402


def reference(data: bytes):
    try:
        return reference_digest._canonical(data)
    except InvalidSessionSnapshot:
        return "invalid"


def public(data: bytes):
    try:
        read = digest._read(data)
    except InvalidSessionSnapshot:
        return "invalid"
    summary = inspect_session(data)
    assert summary.conversation_digest == hashlib.sha256(read.canonical).hexdigest()
    return read.session_id, read.canonical, read.count


def serde_written(messages: list, **fields) -> bytes:
    """A snapshot laid out as serde writes it, its messages in canonical form."""
    canonical_text = canonical_messages_json(snapshot(messages)).decode()
    head = f'{{"version":1,"id":"{SID}","messages":'
    tail = json.dumps(
        {"created_at": TIME, "updated_at": TIME, "metadata": fields.get("metadata", {}),
         "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_tokens": None,
                   "cache_read_tokens": None}},
        ensure_ascii=False, separators=(",", ":"),
    )
    return (head + canonical_text + "," + tail[1:]).encode()


TRICKY_TEXT = st.lists(
    st.sampled_from(['"', "\\", "/", ",", ":", "{", "}", "[", "]", " ", "\n", "\x00", "\x1f", "\x7f",
                     "é", "\u2028", "😀", "a", "-0", '"args":', ',"args":', '{"role":"']),
    max_size=6,
).map("".join)
ARGS = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63) - 1, 2**64) | st.floats(allow_nan=False)
    | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY_TEXT, inner, max_size=3),
    max_leaves=6,
)
META = st.sampled_from([
    None, {"provider": "anthropic", "signature": "s"}, {"provider": "gemini", "thoughtSignature": "t"},
    {"provider": "open_ai", "id": "r"}, {"provider": "open_ai", "id": "r", "encrypted_content": None},
    {"provider": "open_ai", "encrypted_content": "e", "id": "r"}, {"provider": "mistral"},
])
CONTENT = TRICKY_TEXT | st.lists(
    st.sampled_from([{"type": "text", "text": "t"}, {"text": "t", "type": "text"},
                     {"type": "image", "media_type": "m", "data": "d"},
                     {"type": "image", "media_type": "m", "data": "d", "source_path": None}]),
    max_size=3,
)


def shuffled(draw, value: dict) -> dict:
    keys = draw(st.permutations(list(value)))
    return {key: value[key] for key in keys}


@st.composite
def messages(draw):
    role = draw(st.sampled_from(["system", "user", "assistant", "block_assistant", "tool_results"]))
    if role in ("system", "user"):
        message = {"role": role, "content": draw(CONTENT if role == "user" else TRICKY_TEXT)}
    elif role == "assistant":
        calls = [{"id": "c", "name": draw(TRICKY_TEXT), "args": draw(ARGS)}
                 for _ in range(draw(st.integers(0, 2)))]
        message = {"role": role, "content": draw(TRICKY_TEXT), "tool_calls": calls,
                   "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 2,
                                                        "cache_creation_tokens": None,
                                                        "cache_read_tokens": draw(st.none() | st.integers(0, 9))}}
    elif role == "block_assistant":
        blocks = []
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["text", "reasoning", "tool_use"]))
            data = {"text": draw(TRICKY_TEXT)} if kind != "tool_use" else {
                "id": "t", "name": draw(TRICKY_TEXT), "args": draw(ARGS)}
            meta = draw(META)
            if meta is not None or draw(st.booleans()):
                data["meta"] = meta
            blocks.append({"block_type": kind, "data": data})
        message = {"role": role, "blocks": blocks, "stop_reason": "tool_use"}
    else:
        results = [{"tool_use_id": "t", "content": draw(CONTENT), "is_error": draw(st.booleans())}
                   for _ in range(draw(st.integers(0, 2)))]
        message = {"role": role, "results": results}
    if draw(st.integers(0, 4)) == 0:
        message = shuffled(draw, message)
    if draw(st.integers(0, 9)) == 0:
        message["x-extra"] = draw(ARGS)
    return message


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(messages(), max_size=5), st.integers(0, 5))
def test_every_path_gives_the_reference_result(messages, layout):
    written = [
        snapshot(messages),  # json.dumps' layout, with spaces
        json.dumps({"id": SID, "messages": messages, "created_at": TIME, "updated_at": TIME},
                   ensure_ascii=layout % 2 == 0, separators=(",", ":")).encode(),
    ]
    if not isinstance(reference(written[0]), str):
        written.append(serde_written(messages))
        written.append(serde_written(messages, metadata={"k": [1, {"args": messages[:1]}]}))
    for data in written:
        assert public(data) == reference(data)


@pytest.mark.parametrize(
    "data",
    [EXAMPLE_A, EXAMPLE_B, *(case[1] for case in INVALID)]
    + [serde_written([tool_use(args={"b": 1, "a": 2})]),  # unsorted args
       serde_written([tool_use(args=[1.5])]).replace(b"1.5", b"1.50"),  # a float's text
       serde_written([tool_use(args={"k": 1})]).replace(b'"k":1', b'"k":1,"k":2'),
       serde_written([tool_use(args={"k": 1})]).replace(b'"k":1', b'"k":-0'),
       serde_written([tool_use(args={"k": [1]})]).replace(b"[1]", b"[1 ]"),
       serde_written([tool_use(args="\u00e9")]).replace("\u00e9".encode(), b"\\u00e9"),
       serde_written([user("a/b")]).replace(b"a/b", b"a\\/b"),
       serde_written([user("x")]).replace(b'"content":"x"', b'"content":"x","content":"y"'),
       serde_written([]).replace(b'"secs_since_epoch":1760000000,', b'"secs_since_epoch":1,' * 2)],
)
def test_fast_paths_agree_on_known_cases(data):
    assert public(data) == reference(data)


# -- invalid snapshots: mutations of valid ones, through both readers -----------

WRONG = st.sampled_from([None, 0, -1, 1.5, True, "x", "", [], {}, [1, 2], 2**32, 2**64, -(2**63) - 1,
                         {"role": "system"}, {"type": "text"}, {"block_type": "text", "data": {}},
                         {"provider": "open_ai"}, "end_turn", "tool_use"])
RAW_EDITS = st.sampled_from([
    (b'"content":', b'"content":"dup","content":'), (b'"role":', b'"role":"user","role":'),
    (b'"args":', b'"args":{"a":1,"a":2},"args":'), (b'"text":', b'"x":-0,"text":'),
    (b'"text":', b'"x":123456789012345678901,"text":'), (b'"text":', b'"x":1e999,"text":'),
    (b'"text":', b'"x":"\\ud800","text":'), (b":", b" : "), (b",", b" ,\n"), (b"[", b"[ "),
    (b'"id":', b'"id":"{019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b}","id":'), (b"}", b",}"), (b"]", b",]"),
    (b'"messages":', b'"messages":[],"messages":'), (b'"secs_since_epoch":', b'"secs_since_epoch":1,"secs_since_epoch":'),
    (b'"args":', b'"args":' + b"[" * 125 + b"]" * 125 + b',"zz":'), (b'"text":', b'"x":"\xff","text":'),
])


@st.composite
def mutated_value(draw, value):
    """``value`` (JSON) with one value somewhere replaced, or a key removed."""
    value = json.loads(json.dumps(value))
    node = value
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return value
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and draw(st.integers(0, 3)) == 0:
            del node[key]
        else:
            node[key] = draw(WRONG)
        return value


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), st.lists(messages(), min_size=1, max_size=4))
def test_mutated_snapshots_give_the_reference_result(data, messages):
    doc = {"version": 1, "id": SID, "messages": messages, "created_at": TIME, "updated_at": TIME,
           "metadata": {}, "usage": {"input_tokens": 0, "output_tokens": 0,
                                     "cache_creation_tokens": None, "cache_read_tokens": None}}
    changed = json.dumps(data.draw(mutated_value(doc)), ensure_ascii=data.draw(st.booleans())).encode()
    assert public(changed) == reference(changed)
    assert_edit_agrees(data, json.dumps(doc, separators=(",", ":")).encode(), RAW_EDITS)


def assert_edit_agrees(data, text: bytes, edits) -> None:
    """One edit drawn from ``edits``, at one of the places it applies (if
    any), reads as the reference reads it."""
    old, new = data.draw(edits)
    at = [i for i in range(len(text)) if text.startswith(old, i)]
    if at:
        i = data.draw(st.sampled_from(at))
        edited = text[:i] + new + text[i + len(old):]
        assert public(edited) == reference(edited)


SERDE_EDITS = st.sampled_from([
    (b'"metadata":{}', b'"metadata":' + b'{"a":' * 126 + b"1" + b"}" * 126),  # deeper than serde reads
    (b'"metadata":{}', b'"metadata":' + b'{"a":' * 125 + b"1" + b"}" * 125),  # just within
    (b'"metadata":{}', b'"metadata":{"b":1,"a":[1.5,-0,1e16,18446744073709551616]}'),
    (b'"metadata":{}', b'"metadata":{"a":18446744073709551616}'),
    (b'"input_tokens":0', b'"input_tokens":18446744073709551616'),
    (b'"input_tokens":0', b'"input_tokens":18446744073709551615'),
    (b'"version":1', b'"version":-0'), (b'"version":1', b'"version":4294967296'),
    (b'"nanos_since_epoch":0', b'"nanos_since_epoch":-0'),
    (b'"messages":[', b'"messages":[ '), (b'"usage":', b'"x":1,"usage":'),
])


def test_serde_written_snapshots_take_the_byte_exact_reading():
    for messages in ([], [user("x")], [tool_use(args={"a": [1, 2.5, "-0"]})], [assistant(tool_calls=[])]):
        assert digest._read_serde(serde_written(messages)) is not None


@pytest.mark.parametrize("number", [1e16, -2.5e22, 1.5e300, 1e15, 1e-7])
def test_floats_in_another_writers_notation_get_serdes_digest(number):
    """msgspec and orjson write ``1e16`` where serde writes ``1e+16``: the same
    session in either notation, laid out as serde lays it out or not, cold or
    through the cache, has serde's digest."""
    def doc(messages: list) -> dict:
        return {"version": 1, "id": SID, "messages": messages, "created_at": TIME, "updated_at": TIME,
                "metadata": {}, "usage": {"input_tokens": 0, "output_tokens": 0,
                                          "cache_creation_tokens": None, "cache_read_tokens": None}}

    first, turn = [user("x")], [tool_use(args={"x": number, "y": [number, {"z": number}]})]
    expected = reference(serde_written(first + turn))
    assert expected != "invalid"
    for order in (list, lambda keys: list(reversed(keys))):
        def written(messages: list) -> bytes:
            whole = doc(messages)
            return msgspec.json.encode({key: whole[key] for key in order(list(whole))})

        text = written(first + turn)
        assert reference(text) == expected
        assert public(text) == expected
        cache = digest.DigestCache()
        inspect_session(written(first), cache)
        assert inspect_session(text, cache) == inspect_session(serde_written(first + turn))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), st.lists(messages(), max_size=4))
def test_serde_written_snapshots_and_their_edits_give_the_reference_result(data, messages):
    """The reading of serde's own bytes (``digest._read_serde``), which most
    snapshots take: byte-exact texts, and edits of them that it must hand on."""
    if isinstance(reference(snapshot(messages)), str):
        return  # invalid messages: serde never writes them
    text = serde_written(messages)
    assert public(text) == reference(text)
    for edits in (SERDE_EDITS, RAW_EDITS):
        assert_edit_agrees(data, text, edits)


# -- the incremental digest agrees with the cold one -----------------------------

SIDS = [SID, "019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5c"]


def writer(messages: list, sid: str, form: int) -> bytes:
    doc = {"version": 1, "id": sid, "messages": messages, "created_at": TIME,
           "updated_at": {"secs_since_epoch": 1760000000 + len(messages), "nanos_since_epoch": 0},
           "metadata": {}, "usage": {"input_tokens": len(messages), "output_tokens": 0,
                                     "cache_creation_tokens": None, "cache_read_tokens": None}}
    if form == 0:  # serde's layout, canonical messages when they are valid
        canonical = reference(json.dumps(doc).encode())
        if not isinstance(canonical, str):
            head = json.dumps({"version": 1, "id": sid}, separators=(",", ":"))[:-1]
            rest = json.dumps({k: v for k, v in doc.items() if k not in ("version", "id", "messages")},
                              separators=(",", ":"), ensure_ascii=False)
            return f'{head},"messages":'.encode() + canonical[1] + b"," + rest[1:].encode()
    if form == 2:
        return json.dumps(doc, indent=1).encode()
    return json.dumps(doc).encode()


@st.composite
def histories(draw):
    """Successive snapshots of sessions: mostly one growing by appended
    messages, with edits inside old messages, truncation, reordering, another
    session id, another writer's layout, and invalid messages."""
    steps = []
    messages_so_far: list = []
    sid = SIDS[0]
    form = draw(st.integers(0, 2))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["grow", "grow", "grow", "same", "edit", "truncate", "reorder", "sid", "form"]))
        if action == "grow":
            messages_so_far = messages_so_far + draw(st.lists(messages(), min_size=1, max_size=3))
        elif action == "edit" and messages_so_far:
            i = draw(st.integers(0, len(messages_so_far) - 1))
            messages_so_far = messages_so_far[:i] + [draw(messages())] + messages_so_far[i + 1:]
        elif action == "truncate":
            messages_so_far = messages_so_far[: draw(st.integers(0, len(messages_so_far)))]
        elif action == "reorder" and len(messages_so_far) > 1:
            messages_so_far = draw(st.permutations(messages_so_far))
        elif action == "sid":
            sid = draw(st.sampled_from(SIDS))
        elif action == "form":
            form = draw(st.integers(0, 2))
        steps.append(writer(list(messages_so_far), sid, form))
    return steps


def summary_or_invalid(read, data):
    try:
        return read(data)
    except InvalidSessionSnapshot:
        return "invalid"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(histories(), st.sampled_from([0, 600, 1 << 20]))
def test_the_digest_cache_gives_the_cold_result(history, max_bytes):
    cache = digest.DigestCache(max_bytes)
    for snapshot_bytes in history:
        cold = summary_or_invalid(inspect_session, snapshot_bytes)
        assert summary_or_invalid(lambda d: inspect_session(d, cache), snapshot_bytes) == cold
        # What snapshot deltas then skip comparing is equal indeed, and said
        # of this very object only, once.
        assert cache.shared_with(bytes(bytearray(snapshot_bytes))) is None
        summary_or_invalid(lambda d: inspect_session(d, cache), snapshot_bytes)
        shared = cache.shared_with(snapshot_bytes)
        if shared is not None:
            older, n = shared
            assert 0 < n <= len(older) and snapshot_bytes[:n] == older[:n]
        assert cache.shared_with(snapshot_bytes) is None
        expected = reference(snapshot_bytes)
        if isinstance(expected, str):
            assert cold == "invalid"
        else:
            assert (cold.session_id, cold.conversation_digest, cold.message_count) == (
                expected[0], hashlib.sha256(expected[1]).hexdigest(), expected[2])
        assert cache.size <= max_bytes


def test_a_growing_session_is_read_from_the_cache():
    cache = digest.DigestCache()
    growing: list = []
    before = None
    for i in range(30):
        growing += [user(f"question {i}"), assistant(content=f"answer {i}")]
        data = writer(growing, SID, 0)
        assert inspect_session(data, cache) == inspect_session(data)
        if before is not None:  # all of the older one's messages were compared
            older, n = cache.shared_with(data)
            assert older is before and n > before.index(f"answer {i - 1}".encode())
        before = data
    assert cache.hits == 29 and cache.misses == 1
    inspect_session(before, cache)
    cache.clear()
    assert cache.shared_with(before) is None


def test_the_digest_cache_is_bounded_and_can_be_off():
    cache = digest.DigestCache(10_000)
    for i in range(200):
        sid = f"019a2b3c-4d5e-7f60-8a9b-{i:012x}"
        data = writer([user("x" * 500), assistant(content="y" * 500)], sid, 0)
        inspect_session(data, cache)
        assert cache.size <= 10_000
    assert 0 < len(cache) < 20
    off = digest.DigestCache(0)
    inspect_session(writer([user("x")], SID, 0), off)
    assert len(off) == 0 and off.size == 0
    with pytest.raises(ValueError):
        digest.DigestCache(-1)


@pytest.mark.parametrize("where", [b',"x":"\xff"', b',"metadata":{"k":"\xff"}', b',"x":["a","\xc3"]'])
def test_invalid_utf8_where_msgspec_skips_is_refused(where):
    data = serde_written([user("hi")])
    data = data[:-1] + where + b"}"
    assert public(data) == reference(data) == "invalid"
    inside = serde_written([user("hi")]).replace(b'"content":"hi"', b'"content":"hi","x":"\xff"')
    assert public(inside) == reference(inside) == "invalid"
