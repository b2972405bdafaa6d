"""Snapshot deltas: send Redis only what changed since this writer's last
snapshot of a runtime, not the whole session again.

A session grows by appended messages, so its next snapshot shares a long
prefix with the last one. The store remembers, per runtime, the snapshot
it last wrote, the random tag it wrote it under (``meta`` field
``snapshot_tag``) and the receipt meta named with it. When the next one is
at least as long and shares most of that prefix, the script gets only the
envelope's header (which holds the snapshot's length) and the bytes from
the shared prefix on, and checks — before any write — that the stored snapshot still carries
that tag, receipt and length; otherwise it refuses with ``STALE_BASE`` and
the store sends the whole snapshot. What is stored is byte for byte the
envelope of the snapshot given, either way.

A delta copies no snapshot: the envelope (``codec.SnapshotEnvelope``) is
a header beside the caller's bytes, which the digest cache keeps too; it
is built whole only to be sent whole.

Memory: the remembered snapshots are bounded by bytes (least recently used
runtimes are forgotten first); ``delta_cache_bytes=0`` turns deltas off.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import NamedTuple

from .codec import SnapshotEnvelope
from .errors import WriteFailed

#: Deltas are sent only when they save at least this much of the snapshot.
_WORTHWHILE = 0.5


class StaleBase(WriteFailed):
    """The stored snapshot is no longer the delta's base; nothing was written.
    The store then sends the snapshot whole: callers never see this."""


class Base(NamedTuple):
    """A stored snapshot: its tag, its envelope, and the meta fields written
    with it (snapshot_receipt, snapshot_applied; "-" for none)."""

    tag: str
    envelope: SnapshotEnvelope
    receipt: str = "-"
    applied: str = "-"


class Delta(NamedTuple):
    """Write ``head`` (the new envelope's header) at 0 and ``tail`` at
    ``offset`` over the stored ``base``."""

    base: Base
    offset: int
    head: bytes
    tail: bytes

    @property
    def spec(self) -> str:
        base = self.base
        return f"{base.tag} {len(base.envelope)} {self.offset} {base.receipt} {base.applied}"


def new_tag() -> str:
    return os.urandom(8).hex()


def shared_prefix(old: bytes, new: bytes, start: int = 0) -> int:
    """The largest n >= start with ``new[start:n] == old[start:n]``.

    Compares all but the last 512 bytes at once (where a growing session
    differs), then chunks that double in size (``startswith`` over a
    memoryview: a memcmp, no copies), then halves the first chunk that
    differs: O(n) bytes compared in O(log n) calls, wherever the two differ."""
    limit = min(len(old), len(new))
    view = memoryview(old)
    at, step = start, 256
    near = limit - 512  # a growing session differs just before the old one's tail:
    if near > at and new.startswith(view[at:near], at):
        at = near  # one compare takes all that comes before
    while at < limit:
        end = min(limit, at + step)
        if not new.startswith(view[at:end], at):
            while end - at > 1:  # the first difference lies in [at, end)
                middle = (at + end) // 2
                if new.startswith(view[at:middle], at):
                    at = middle
                else:
                    end = middle
            return at
        at, step = end, step * 2
    return limit


def plan(base: Base | None, envelope: SnapshotEnvelope) -> Delta | None:
    """The delta that turns ``base`` into ``envelope``, or None to send it whole."""
    if base is None:
        return None
    old = base.envelope
    if len(envelope) < len(old) or len(envelope.header) != len(old.header):
        return None  # SETRANGE cannot shorten a string; a longer header shifts every byte
    known = envelope.shared  # bytes the digest cache found equal, compared once, not twice
    start = min(known[1], len(old.snapshot)) if known is not None and known[0] is old.snapshot else 0
    shared = shared_prefix(old.snapshot, envelope.snapshot, start)
    offset = len(envelope.header) + shared
    if len(envelope) - offset > _WORTHWHILE * len(envelope):
        return None
    return Delta(base, offset, envelope.header, envelope.snapshot[shared:])


class Bases:
    """The last snapshot envelope written per runtime, bounded by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, Base] = OrderedDict()

    def get(self, rid: str) -> Base | None:
        base = self._entries.get(rid)
        if base is not None:
            self._entries.move_to_end(rid)
        return base

    def put(self, rid: str, base: Base) -> None:
        self.forget(rid)
        if len(base.envelope) > self.max_bytes:
            return
        self._entries[rid] = base
        self.bytes += len(base.envelope)
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= len(evicted.envelope)

    def forget(self, rid: str) -> None:
        base = self._entries.pop(rid, None)
        if base is not None:
            self.bytes -= len(base.envelope)
