"""Realistic data for the benchmarks: meerkat Session snapshots of a given
size and input states as a runtime stores them. Deterministic: the same
size gives the same bytes (only ids differ where asked, and each input
state's timestamps, from a counter)."""

from __future__ import annotations

import itertools
import json
import uuid

from redis_store import InputId, InputState, Timestamp

_CITIES = ["Zürich", "São Paulo", "Kraków", "Reykjavík", "Osaka", "Nairobi", "Montréal"]


def _time(secs: int) -> dict:
    return {"secs_since_epoch": secs, "nanos_since_epoch": 123456789}


def _usage(i: int) -> dict:
    return {"input_tokens": 900 + 37 * i, "output_tokens": 120 + i, "cache_creation_tokens": None, "cache_read_tokens": 512}


def turn(i: int) -> list[dict]:
    """One agent turn: user, block_assistant with reasoning and tool_use,
    tool_results, assistant answer (about 1.3 KB of JSON)."""
    city = _CITIES[i % len(_CITIES)]
    return [
        {
            "role": "user",
            "content": (
                f"Turn {i}: I am travelling to {city} next week. Check the forecast for each day, "
                "tell me which two days are best for a long walk, and what I should pack."
            ),
        },
        {
            "role": "block_assistant",
            "blocks": [
                {"block_type": "reasoning", "data": {"text": f"The user wants a 7-day forecast for {city}; call the weather tool once, then rank the days by rain and wind."}},
                {"block_type": "tool_use", "data": {"id": f"toolu_{i:06d}", "name": "weather.forecast", "args": {"city": city, "days": 7, "fields": ["temp", "rain", "wind"], "units": "metric"}}},
            ],
            "stop_reason": "tool_use",
        },
        {
            "role": "tool_results",
            "results": [
                {
                    "tool_use_id": f"toolu_{i:06d}",
                    "content": json.dumps([{"day": d, "temp_c": 11 + d, "rain_mm": (d * 7) % 5, "wind_kmh": 9 + 2 * d} for d in range(7)]),
                    "is_error": False,
                }
            ],
        },
        {
            "role": "assistant",
            "content": (
                f"In {city} the best days for a long walk are day 2 and day 5: dry, light wind, about 14 °C. "
                "Pack a light rain jacket for day 3, layers for the mornings and comfortable shoes."
            ),
            "tool_calls": [],
            "stop_reason": "end_turn",
            "usage": _usage(i),
        },
    ]


def _document(messages: list[dict], session_id: str, turns: int) -> bytes:
    doc = {
        "version": 1,
        "id": session_id,
        "messages": messages,
        "created_at": _time(1760000000),
        "updated_at": _time(1760000000 + turns),
        "metadata": {},
        "usage": _usage(turns),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _json_len(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def session_messages(target_bytes: int) -> tuple[list[dict], int]:
    """Messages of a session whose JSON is about ``target_bytes`` long
    (whole turns; the last turn's user text is padded to get close). The
    length is tracked turn by turn: a 4 MB session is built in well under a second."""
    placeholder = str(uuid.UUID(int=0))
    messages: list[dict] = [
        {"role": "system", "content": "You are a concise travel assistant. Use tools for facts; never guess the weather."}
    ]
    size = len(_document(messages, placeholder, 0))
    turns = 0
    while True:
        added = turn(turns)
        grow = sum(_json_len(m) + 1 for m in added)  # each message and its comma
        if size + grow > target_bytes:
            break
        messages.extend(added)
        size += grow
        turns += 1
    size = len(_document(messages, placeholder, turns))  # exact (the usage numbers differ by turn)
    gap = target_bytes - size
    if gap > 40:
        messages.append({"role": "user", "content": "x" * (gap - 32)})
    return messages, turns


def session_snapshot(target_bytes: int, session_id: str | None = None) -> bytes:
    """A valid meerkat Session snapshot of about ``target_bytes``."""
    messages, turns = session_messages(target_bytes)
    return _document(messages, session_id or str(uuid.UUID(int=0x019A2B3C00007000800000000000ABCD)), turns)


# An input state as meerkat stores it mid-run (SPEC §4.4's full example).
_INPUT_TEMPLATE = json.loads(
    '{"input_id":"019a2b3c-0000-7000-8000-000000000001","current_state":"applied_pending_consumption",'
    '"policy":{"version":1,"decision":{"apply_mode":"stage_run_start","wake_mode":"wake_if_idle","queue_mode":"fifo",'
    '"consume_point":"on_run_complete","record_transcript":true,"emit_operator_content":true,"policy_version":1}},'
    '"durability":"durable","attempt_count":1,"recovery_count":0,'
    '"history":[{"timestamp":"2025-10-09T08:53:20.500Z","from":"accepted","to":"queued","reason":"policy resolved"},'
    '{"timestamp":"2025-10-09T08:53:20.900Z","from":"queued","to":"staged"}],'
    '"persisted_input":{"input_type":"prompt","header":{"id":"019a2b3c-0000-7000-8000-000000000001",'
    '"timestamp":"2025-10-09T08:53:20.123456789Z","source":{"type":"operator"},"durability":"durable",'
    '"visibility":{"transcript_eligible":true,"operator_eligible":true}},'
    '"text":"Check the forecast for Zürich and tell me which days are best for a walk."},'
    '"created_at":"2025-10-09T08:53:20.123456789Z","updated_at":"2025-10-09T08:53:21Z"}'
)


_STATES = itertools.count()


def _later(text: str, n: int) -> str:
    """A timestamp ``n`` seconds and ``n * 7919`` ns after ``text``."""
    stamp = Timestamp.parse(text)
    return str(Timestamp(stamp.seconds + n, (stamp.nanos + n * 7919) % 1_000_000_000))


def input_state(input_id: InputId | None = None) -> InputState:
    """A realistic input state (policy, history, persisted prompt). Each one
    made has timestamps of its own, as the states of a real runtime do (a
    reader cannot take them from a cache of texts it has seen)."""
    wire = json.loads(json.dumps(_INPUT_TEMPLATE))
    text = str(input_id or InputId.new())
    wire["input_id"] = text
    wire["persisted_input"]["header"]["id"] = text
    n = next(_STATES)
    wire["created_at"], wire["updated_at"] = _later(wire["created_at"], n), _later(wire["updated_at"], n)
    for entry in wire["history"]:
        entry["timestamp"] = _later(entry["timestamp"], n)
    return InputState.from_dict(wire)


def input_states(n: int) -> list[InputState]:
    return [input_state() for _ in range(n)]
