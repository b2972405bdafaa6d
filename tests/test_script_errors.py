"""Every error code a Lua script can reply with is in the one table that
maps codes to store errors (``redis_store.script_errors``)."""

from __future__ import annotations

import re

import pytest

from redis_store import CommitIdReused, FencedOut, InternalError, LeaseHeld, ReceiptConflict, WriteFailed
from redis_store.script_errors import SCRIPT_ERRORS, script_error
from redis_store.scripts import _script_dir

# An error string a script builds: a quoted upper-case code, then a space.
_CODE = re.compile(r"""['"]([A-Z][A-Z_]{3,}) """)


def _codes_in_lua() -> set[str]:
    found = set()
    for path in _script_dir().iterdir():
        if path.name.endswith(".lua"):
            found |= set(_CODE.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_code_a_script_raises_is_mapped():
    codes = _codes_in_lua()
    assert {"FENCED_OUT", "COMMIT_ID_REUSED", "RECEIPT_CONFLICT", "BAD_ARGS"} <= codes  # the scan finds them
    assert codes - SCRIPT_ERRORS.keys() == set()


@pytest.mark.parametrize(("reply", "expected"), [
    ("FENCED_OUT lease token 3 is not current (epoch 4)", FencedOut),
    ("COMMIT_ID_REUSED c-1 was used for a different commit", CommitIdReused),
    ("LEASE_HELD 2500 worker-1", LeaseHeld),
    ("RECEIPT_CONFLICT 0190-run:7", ReceiptConflict),
    ("SEQUENCE_EXHAUSTED run 0190-run has used every sequence below 2^53", WriteFailed),
    ("BAD_ARGS input ids and values must come in pairs", InternalError),
    ("WRONGTYPE ns:rt:{a}:meta holds a string, not a hash", WriteFailed),
    ("CORRUPT run_seqs entry of run r is not a sequence: x", WriteFailed),
])
def test_each_code_becomes_its_error(reply, expected):
    error = script_error("op", "here", "rt", reply)
    assert type(error) is expected or (expected is WriteFailed and isinstance(error, WriteFailed))
    if expected is LeaseHeld:
        assert (error.holder, error.remaining_ms) == ("worker-1", 2500)
    if expected is ReceiptConflict:
        assert (error.run_id, error.sequence) == ("0190-run", 7)


def test_a_reply_that_is_not_a_script_code_is_left_to_the_caller():
    assert script_error("op", "here", "rt", "OOM command not allowed when used memory > 'maxmemory'.") is None
