"""How values are stored: msgpack envelopes with a schema version (msgspec).

Every stored value is a msgpack array whose first element is the schema
version of that kind of value:

    runtime state   [1, "idle"]
    snapshot        [1, <snapshot bytes as given>]
    input state     [1, {wire fields but last_boundary_sequence}, last_boundary_sequence | nil]
    receipt         [1, {wire fields but sequence}, sequence]

The payload maps are meerkat's JSON wire form (``to_dict``), so a value
decodes to exactly the object that was stored. Sequences sit in the last
slot, outside the map, so a Lua script that mints a sequence can finish the
value by appending one msgpack uint64 (``seq_suffix``) to a prefix encoded
here: Redis's Lua has no msgpack encoder we may rely on (fakeredis has none).

Reading applies ``UPGRADES`` in order to values written by older schema
versions; a value from a newer version is refused rather than misread.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional

import msgspec

from .types import U64, InputState, RunBoundaryReceipt, RuntimeState, _dec_hook, _enc_hook

#: Current schema version of every kind of value.
SCHEMA_VERSION = 1

#: ``UPGRADES[kind][i]`` turns an envelope (the whole decoded list) of
#: version ``i + 1`` into one of version ``i + 2``, version element included.
#: Append here when a schema changes; never edit a released entry.
UPGRADES: dict[str, list[Callable[[Any], Any]]] = {
    "runtime_state": [],
    "snapshot": [],
    "input_state": [],
    "receipt": [],
}

_ARRAY3 = b"\x93"
_VERSION = msgspec.msgpack.encode(SCHEMA_VERSION)
_NIL = b"\xc0"


class DecodeError(ValueError):
    """A stored value is not a valid envelope of the expected kind."""


def seq_suffix(sequence: int) -> bytes:
    """msgpack uint64 of a sequence: what the Lua scripts append (lib.lua ``u64``)."""
    return b"\xcf" + sequence.to_bytes(8, "big")


#: msgspec writes msgpack as msgpack-python did (smallest int and str forms,
#: bin for bytes, maps in insertion order): tests/test_stored_fixtures.py
#: holds it to 0.1.0's bytes, so commit-id fingerprints stay the same.
_pack = msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode
_unpack = msgspec.msgpack.Decoder().decode
#: A current input state envelope read straight into the Struct; anything it
#: refuses (or an older version) takes the generic path, which names the problem.
_unpack_input_state = msgspec.msgpack.Decoder(
    tuple[Literal[1], InputState, Optional[U64]], dec_hook=_dec_hook  # noqa: UP045
).decode


# -- encoding -------------------------------------------------------------

def encode_runtime_state(state: RuntimeState) -> bytes:
    return _pack((SCHEMA_VERSION, state.value))


def encode_snapshot(snapshot: bytes) -> bytes:
    return SnapshotEnvelope(snapshot).encoded()


#: What msgpack writes before the bytes of a bin of a length: its smallest form.
_BIN_HEADERS = ((1 << 8, b"\xc4", 1), (1 << 16, b"\xc5", 2), (1 << 32, b"\xc6", 4))


class SnapshotEnvelope:
    """The envelope of a snapshot (``encode_snapshot``) as its header and the
    snapshot itself, uncopied: a long session's envelope is built whole
    (``encoded``) only where it is written whole; a delta
    (``snapshot_delta``) needs the header and the snapshot's new tail.
    ``shared``: ``(older, n)`` when the first ``n`` bytes of the snapshot are
    known to be those of the snapshot ``older`` (the digest cache compared
    them: ``DigestCache.shared_with``)."""

    __slots__ = ("header", "shared", "snapshot")

    def __init__(self, snapshot: bytes, shared: tuple[bytes, int] | None = None) -> None:
        self.snapshot = snapshot
        self.shared = shared
        for limit, kind, width in _BIN_HEADERS:
            if len(snapshot) < limit:
                self.header = b"\x92" + _VERSION + kind + len(snapshot).to_bytes(width, "big")
                return
        raise ValueError(f"a session snapshot of {len(snapshot):,} bytes is over msgpack's 4 GiB")

    def __len__(self) -> int:
        return len(self.header) + len(self.snapshot)

    def encoded(self) -> bytes:
        """The envelope's bytes: one copy of the snapshot."""
        return self.header + self.snapshot


def input_state_prefix(wire: dict | InputState) -> bytes:
    """Envelope of an input state (its wire dict, or the InputState itself
    once checked storable), missing only its last slot."""
    if isinstance(wire, InputState):
        if wire.last_boundary_sequence is not None:
            wire = msgspec.structs.replace(wire, last_boundary_sequence=None)
        return _ARRAY3 + _VERSION + _pack(wire)  # the same bytes as its to_dict()'s
    wire = dict(wire)
    wire.pop("last_boundary_sequence", None)
    return _ARRAY3 + _VERSION + _pack(wire)


def encode_input_state(wire: dict | InputState) -> bytes:
    seq = wire.last_boundary_sequence if isinstance(wire, InputState) else wire.get("last_boundary_sequence")
    return input_state_prefix(wire) + (_NIL if seq is None else seq_suffix(seq))


def receipt_prefix(wire: dict | RunBoundaryReceipt) -> bytes:
    """Envelope of a receipt (its wire dict, or the receipt itself once
    checked storable), missing only its sequence."""
    if isinstance(wire, RunBoundaryReceipt):  # an UNSET field is not written: the same bytes as its to_dict()'s
        return _ARRAY3 + _VERSION + _pack(msgspec.structs.replace(wire, sequence=msgspec.UNSET))
    wire = dict(wire)
    wire.pop("sequence", None)
    return _ARRAY3 + _VERSION + _pack(wire)


def encode_receipt(wire: dict) -> bytes:
    return receipt_prefix(wire) + seq_suffix(wire["sequence"])


# -- decoding -------------------------------------------------------------

def _open(kind: str, value: bytes, length: int) -> list:
    try:
        envelope = _unpack(value)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"{kind}: not a msgpack value ({exc})") from exc
    if not isinstance(envelope, list) or not envelope:
        raise DecodeError(f"{kind}: not an envelope (a non-empty array)")
    version = envelope[0]
    upgrades = UPGRADES[kind]
    current = 1 + len(upgrades)
    if not isinstance(version, int) or version < 1:
        raise DecodeError(f"{kind}: bad schema version {version!r}")
    if version > current:
        raise DecodeError(
            f"{kind}: written by schema version {version}, this redis-store reads "
            f"up to {current}; upgrade redis-store"
        )
    for upgrade in upgrades[version - 1 :]:
        envelope = upgrade(envelope)
    if len(envelope) != length:  # checked after upgrading: a shape may change
        raise DecodeError(f"{kind}: expected a {length}-element envelope")
    return envelope


def decode_runtime_state(value: bytes) -> RuntimeState:
    _, text = _open("runtime_state", value, 2)
    try:
        return RuntimeState(text)
    except ValueError as exc:
        raise DecodeError(f"runtime_state: {exc}") from exc


def decode_snapshot(value: bytes) -> bytes:
    _, snapshot = _open("snapshot", value, 2)
    if not isinstance(snapshot, bytes):
        raise DecodeError("snapshot: payload is not bytes")
    return snapshot


def _decode_wire(kind: str, value: bytes, seq_field: str, cls):
    _, wire, seq = _open(kind, value, 3)
    if not isinstance(wire, dict):
        raise DecodeError(f"{kind}: payload is not a map")
    if seq is not None:
        wire[seq_field] = seq
    try:
        return cls.from_dict(wire)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{kind}: {exc}") from exc


def decode_input_state(value: bytes) -> InputState:
    if not UPGRADES["input_state"]:
        try:
            _, state, seq = _unpack_input_state(value)
        except msgspec.MsgspecError:
            pass
        else:
            if seq is not None:
                state.last_boundary_sequence = seq
            return state
    return _decode_wire("input_state", value, "last_boundary_sequence", InputState)


def decode_receipt(value: bytes) -> RunBoundaryReceipt:
    return _decode_wire("receipt", value, "sequence", RunBoundaryReceipt)
