"""Valid meerkat Session snapshots for tests (SPEC §5)."""

from __future__ import annotations

import json
import uuid

EMPTY_DIGEST = "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"


def _system_time(secs: int) -> dict:
    return {"secs_since_epoch": secs, "nanos_since_epoch": 123456789}


def turn(i: int) -> list[dict]:
    """One realistic turn: user, assistant tool call, tool result, answer."""
    return [
        {"role": "user", "content": f"question {i}: what is the weather?"},
        {
            "role": "block_assistant",
            "blocks": [
                {"block_type": "reasoning", "data": {"text": "need the tool"}},
                {"block_type": "tool_use", "data": {"id": f"tu_{i}", "name": "weather", "args": {"city": "Zürich", "day": i}}},
            ],
            "stop_reason": "tool_use",
        },
        {"role": "tool_results", "results": [{"tool_use_id": f"tu_{i}", "content": "12°C", "is_error": False}]},
        {
            "role": "assistant",
            "content": f"answer {i}",
            "tool_calls": [],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_tokens": None, "cache_read_tokens": None},
        },
    ]


def session_json(turns: int = 0, session_id: str | None = None, *, system: bool = True) -> bytes:
    messages: list[dict] = [{"role": "system", "content": "Be brief."}] if system and turns else []
    for i in range(turns):
        messages.extend(turn(i))
    doc = {
        "version": 1,
        "id": session_id or str(uuid.uuid4()),
        "messages": messages,
        "created_at": _system_time(1760000000),
        "updated_at": _system_time(1760000000 + turns),
        "metadata": {},
        "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_tokens": None, "cache_read_tokens": None},
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
