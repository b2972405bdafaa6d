"""JSON as serde_json 1.0.149 writes and reads it (SPEC §4, §5.6).

Writing (``dumps``, ``dumps_bytes``): compact, keys in the dict's insertion
order, non-ASCII written raw, and only ``"``, ``\\`` and U+0000..U+001F escaped
(short forms ``\\b \\f \\n \\r \\t``, else lowercase ``\\u00xx``). The stdlib
encoder already writes exactly that for strings, ints, bools and null. Floats
get zmij's notation: plain for decimal exponents -5..=15, else ``1e+16`` /
``1e-7`` style. NaN, infinities and lone surrogates are refused (ValueError).
Keys should be ``str``: other key types are coerced the way ``json.dumps``
does it, which serde_json has no equivalent for.

Reading (``loads``, ``loads_pairs``) accepts what serde_json accepts, and no
more:

* bytes must be UTF-8 (``UnicodeDecodeError``, a ValueError, names the byte);
  no BOM, no UTF-16 sniffing;
* no ``NaN`` / ``Infinity`` literals, no out-of-range numbers (``1e400``);
* no lone surrogate escapes (``"\\ud800"``);
* at most ``MAX_DEPTH`` (127) nested arrays/objects: serde_json's recursion
  limit of 128 fails on the 128th level;
* integers keep their value inside [-2**63, 2**64-1]; outside it, and ``-0``,
  they become floats, as in Rust.

Known divergence (a digest risk for floats inside tool args): serde_json
without ``float_roundtrip`` parses decimals with a fast algorithm that is not
always correctly rounded, so a float can land 1 ULP away from Python's
correctly rounded ``float()`` (SPEC §5.6). That is not replicated here.
"""

from __future__ import annotations

import gc
import json
import math
import re
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["MAX_DEPTH", "dumps", "dumps_bytes", "loads", "loads_pairs", "loads_with", "paused_gc"]

#: Deepest nesting of arrays/objects that serde_json parses.
MAX_DEPTH = 127

_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1

#: ``bytes.translate`` table writing every digit as "0": a number's shape, or
#: a run of digits, found by one ``in`` (digest, types, timestamps).
DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic GC while building a large acyclic tree.

    Every few hundred new containers CPython rescans the survivors, and a
    parsed multi-megabyte snapshot is all survivors: parsing one runs about 2x
    slower with the GC on. Nested uses are fine; only the outermost re-enables.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- writing ------------------------------------------------------------------

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _c_encode(value: Any) -> str:
    """``_ENCODER.encode(value)`` with the C encoder made directly (what
    ``JSONEncoder.encode`` does, without its Python-level detour)."""
    if isinstance(value, str):
        return _encode_string(value)
    # (markers, default, encoder, indent, key_separator, item_separator,
    #  sort_keys, skipkeys, allow_nan), as JSONEncoder.iterencode passes them
    encoder = _make_c_encoder(
        {}, _ENCODER.default, _encode_string, None, ":", ",", False, False, False
    )
    return "".join(encoder(value, 0))


_make_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # CPython's private C encoder, if any
_encode_string = json.encoder.encode_basestring
_encode_json: Callable[[Any], str] = _ENCODER.encode
if _make_c_encoder is not None:
    try:  # the C encoder's signature is CPython's business: check it on samples
        _SAMPLES = ("s\n\u00e9", {"a": [1, 2.5, None, "x\u2028"], "b": {}}, [-0.0, 1e-7, 10**20])
        if all(_c_encode(sample) == _ENCODER.encode(sample) for sample in _SAMPLES):
            _encode_json = _c_encode
    except Exception:  # pragma: no cover - a CPython without this encoder
        pass

# Python's float repr and zmij agree on the digits and on every notation but
# two: at exponent -5 repr writes 1e-05 where zmij writes 0.00001, and for
# -6..-9 repr pads the exponent (1e-07) where zmij does not (1e-7). Exactly
# those numbers contain "e-0". Strings are matched too, only to skip them.
_PADDED_EXPONENT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?)(\d)(?:\.(\d+))?e-0(\d)', re.DOTALL)
_PADDED_EXPONENT_HINT = re.compile(r"\de-0\d")


def _zmij_notation(match: re.Match) -> str:
    sign, lead, fraction, exponent = match.groups()
    if lead is None:  # a string
        return match.group()
    if exponent == "5":
        return f"{sign}0.0000{lead}{fraction or ''}"
    return f"{sign}{lead}{'.' + fraction if fraction else ''}e-{exponent}"


def _encode(value: Any) -> str:
    text = _encode_json(value)
    # Cheap tests first: the rewrite has to walk every string token.
    if "e-0" in text and _PADDED_EXPONENT_HINT.search(text):
        text = _PADDED_EXPONENT.sub(_zmij_notation, text)
    return text


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"lone surrogate {text[exc.start]!r} at character {exc.start}: JSON text must be Unicode"
        ) from None


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``, byte for byte what serde_json writes."""
    text = _encode(value)
    if not text.isascii():
        _utf8(text)  # refuses lone surrogates
    return text


def dumps_bytes(value: Any) -> bytes:
    """``dumps(value)`` encoded as UTF-8, in one pass."""
    return _utf8(_encode(value))


# -- reading ------------------------------------------------------------------


def _parse_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"number out of range: {literal}")
    return value


def _parse_int(literal: str) -> int | float:
    # 21+ characters cannot be in range; checking first also keeps int() away
    # from its 4300-digit limit.
    if len(literal) <= 20:
        value = int(literal)
        if _I64_MIN <= value <= _U64_MAX and literal != "-0":
            return value
    return _parse_float(literal)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _decoder(object_pairs_hook: Any) -> json.JSONDecoder:
    return json.JSONDecoder(
        parse_float=_parse_float,
        parse_int=_parse_int,
        parse_constant=_reject_constant,
        object_pairs_hook=object_pairs_hook,
    )


_DECODER = _decoder(None)
_PAIRS_DECODER = _decoder(tuple)

# In text where every escaped backslash has been removed, each backslash left
# starts an escape, so a surrogate escape is lone exactly when a high one is
# not followed by a low one, or a low one not preceded by a high one.
_LONE_SURROGATE_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)

_TOO_DEEP = f"recursion limit exceeded: more than {MAX_DEPTH} nested arrays/objects"
_BRACKETS_TO_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET_OR_QUOTE = bytes(sorted(set(range(256)) - set(b'[]{}"')))


def _source(data: str | bytes | bytearray | memoryview) -> tuple[str, bytes]:
    """The text to parse and its UTF-8 bytes (the checks below scan bytes)."""
    if isinstance(data, str):
        text, raw = data, _utf8(data)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        text = raw.decode("utf-8")
    else:
        raise TypeError(f"JSON must be str or bytes-like, not {type(data).__name__}")
    if text.startswith("\ufeff"):
        raise ValueError("unexpected byte order mark (U+FEFF) at line 1 column 1")
    return text, raw


def _nesting_depth(unescaped: bytes) -> int:
    """Nesting depth of a valid JSON document, counted up to MAX_DEPTH + 1.

    ``unescaped`` is the document without its escaped backslashes. Works on
    whole-buffer byte operations only, so it stays fast on large documents.
    """
    # Without escaped quotes every quote delimits a string; then keep only
    # quotes and brackets.
    skeleton = unescaped.replace(b'\\"', b"").translate(_BRACKETS_TO_SQUARE, _NOT_BRACKET_OR_QUOTE)
    # Two adjacent quotes enclose no bracket, and dropping them keeps the
    # parity of every later quote: what was inside a string stays inside.
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:  # brackets inside strings remain: keep the outside
        skeleton = b"".join(skeleton.split(b'"')[::2])
    depth = 0
    while skeleton and depth <= MAX_DEPTH:
        skeleton = skeleton.replace(b"[]", b"")  # peel the innermost level
        depth += 1
    return depth


#: Below this many bytes a document is parsed with the cyclic GC running:
#: pausing it costs more than it saves.
PAUSE_GC_FROM = 16384


def _loads(data: str | bytes | bytearray | memoryview, decoder: json.JSONDecoder) -> Any:
    text, raw = _source(data)
    unescaped = raw
    if b"\\" in raw:
        if b"\\\\" in raw:
            unescaped = raw.replace(b"\\\\", b"")
        if b"\\ud" in unescaped or b"\\uD" in unescaped:
            lone = _LONE_SURROGATE_ESCAPE.search(unescaped)
            if lone:
                raise ValueError(f"lone surrogate in hex escape {lone.group().decode()}")
    try:
        if len(raw) < PAUSE_GC_FROM:
            value = decoder.decode(text)
        else:
            with paused_gc():
                value = decoder.decode(text)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None
    # No deeper than its number of brackets: most documents need no count.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _nesting_depth(unescaped) > MAX_DEPTH:
        raise ValueError(_TOO_DEEP)
    return value


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON strictly, as serde_json would into a ``Value``.

    Objects become dicts (a repeated key: the last one wins). Raises
    ValueError (``json.JSONDecodeError`` for syntax errors, with the position;
    ``UnicodeDecodeError`` for bytes that are not UTF-8) and TypeError for
    input that is neither str nor bytes-like.
    """
    return _loads(data, _DECODER)


def loads_with(data: str | bytes | bytearray | memoryview, object_pairs_hook: Any) -> Any:
    """Like ``loads``, with every object made by ``object_pairs_hook(pairs)``."""
    return _loads(data, _decoder(object_pairs_hook))


def loads_pairs(data: str | bytes | bytearray | memoryview) -> Any:
    """Like ``loads``, but every object is a tuple of ``(key, value)`` pairs in
    document order, repeats included, and arrays are lists.

    For typed readers: serde rejects a repeated field of a struct ("duplicate
    field `x`") while a free-form map keeps the last value.
    """
    return _loads(data, _PAIRS_DECODER)
