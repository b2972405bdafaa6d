"""The README's usage example runs as written (on fakeredis instead of a
Redis at localhost)."""

from __future__ import annotations

import re
from pathlib import Path

from sessions import session_json

README = Path(__file__).resolve().parent.parent / "README.md"


async def test_usage_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    for block in blocks:  # every example is at least valid Python
        compile(block, "README.md", "exec")
    (code,) = [block for block in blocks if "async def main" in block]
    assert "redis://localhost:6379/0?namespace=prod" in code
    code = code.replace("redis://localhost:6379/0?namespace=prod", "fakeredis://readme?namespace=prod")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    await namespace["main"](session_json(2))
    sequence, digest, count = capsys.readouterr().out.split()
    assert (sequence, len(digest), count) == ("0", 64, "9")


def test_sync_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (code,) = [block for block in blocks if "ThreadPoolExecutor" in block]
    code = code.replace("redis://localhost:6379/0?namespace=prod", "fakeredis://readme-sync?namespace=prod")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["main"](session_json(2)) == [0] * 32
    assert namespace["main"](session_json(3)) == [0] * 32  # the same webhooks again (new runs)
    with namespace["open_store"]("fakeredis://readme-sync?namespace=prod") as store:
        assert all(len(store.load_input_states(f"session-{n}")) == 1 for n in range(32))  # found, not stored twice
