"""Identifiers (SPEC §0, §4.7) and timestamps (SPEC §4.6)."""

from __future__ import annotations

import copy
import datetime as dt
import pickle
import time
import types
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_store import ids
from redis_store.ids import InputId, LogicalRuntimeId, RunId, SessionId, uuid7
from redis_store.timestamps import Timestamp

SAMPLE = "019a2b3c-0000-7000-8000-0000000000ff"

# -- LogicalRuntimeId -------------------------------------------------------------


def test_logical_runtime_id_wraps_a_string() -> None:
    rid = LogicalRuntimeId("test-runtime")
    assert rid.value == "test-runtime"
    assert str(rid) == "test-runtime"
    assert repr(rid) == "LogicalRuntimeId('test-runtime')"
    assert rid == LogicalRuntimeId("test-runtime")
    assert hash(rid) == hash(LogicalRuntimeId("test-runtime"))
    assert rid != "test-runtime"
    assert LogicalRuntimeId("a") < LogicalRuntimeId("b")
    assert str(LogicalRuntimeId("ünï cödé ✓")) == "ünï cödé ✓"


def test_logical_runtime_id_rejects_empty_and_non_strings() -> None:
    with pytest.raises(ValueError):
        LogicalRuntimeId("")
    with pytest.raises(TypeError):
        LogicalRuntimeId(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LogicalRuntimeId(None)  # type: ignore[arg-type]


# -- UUID newtypes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        SAMPLE,
        SAMPLE.upper(),
        "019A2b3C-0000-7000-8000-0000000000fF",
        SAMPLE.replace("-", ""),
        SAMPLE.replace("-", "").upper(),
        "{" + SAMPLE + "}",
        "{" + SAMPLE.upper() + "}",
        "urn:uuid:" + SAMPLE,
        "urn:uuid:" + SAMPLE.upper(),
    ],
)
def test_uuid_forms_rust_accepts(text: str) -> None:
    run_id = RunId.parse(text)
    assert str(run_id) == SAMPLE
    assert run_id.uuid == uuid.UUID(SAMPLE)
    assert RunId(text) == run_id


@pytest.mark.parametrize(
    "text",
    [
        "",
        SAMPLE[:-1],
        SAMPLE + "0",
        "019a2b3c0-000-7000-8000-0000000000ff",  # misplaced hyphen (invalid group count)
        "019a2b3c-0000-7000-80000000000000ff",
        "019a2b3c-0000-7000-8000-0000000000fg",
        " " + SAMPLE,
        SAMPLE + "\n",
        "{" + SAMPLE.replace("-", "") + "}",  # braces only around the hyphenated form
        "urn:uuid:" + SAMPLE.replace("-", ""),
        "URN:UUID:" + SAMPLE,
        "uuid:" + SAMPLE,
        "{" + SAMPLE,
        SAMPLE + "}",
        "{{" + SAMPLE + "}}",
        "019a2b3c-0000-7000-8000-0000000000f\u0661",  # a non-ASCII digit
    ],
)
def test_uuid_forms_rust_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid InputId"):
        InputId.parse(text)


def test_uuid_newtype_constructors_and_types() -> None:
    raw = uuid.UUID(SAMPLE)
    assert str(RunId(raw)) == SAMPLE
    assert repr(RunId(raw)) == f"RunId('{SAMPLE}')"
    with pytest.raises(TypeError):
        RunId(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RunId.parse(raw)  # type: ignore[arg-type]


def test_uuid_newtypes_are_distinct_types() -> None:
    raw = uuid.UUID(SAMPLE)
    assert RunId(raw) == RunId(raw)
    assert RunId(raw) != InputId(raw)
    assert InputId(raw) != SessionId(raw)
    assert RunId(raw) != raw
    assert RunId(raw) != SAMPLE
    assert len({RunId(raw), RunId(SAMPLE), InputId(raw)}) == 2
    with pytest.raises(TypeError):
        _ = RunId(raw) < InputId(raw)  # type: ignore[operator]


def test_ids_are_immutable_and_copyable() -> None:
    run_id = RunId.new()
    with pytest.raises(AttributeError):
        run_id._value = uuid.uuid4()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        run_id.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        LogicalRuntimeId("x")._value = "y"  # type: ignore[misc]
    for value in (run_id, LogicalRuntimeId("rt"), SessionId.new()):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value


def test_new_ids_are_uuid_v7() -> None:
    before_ms = time.time_ns() // 1_000_000
    value = InputId.new().uuid
    after_ms = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before_ms <= value.int >> 80 <= after_ms


def test_uuid7_is_strictly_increasing_within_a_process() -> None:
    values = [uuid7() for _ in range(5000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    run_ids = [RunId.new() for _ in range(100)]
    assert run_ids == sorted(run_ids)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A settable clock for uuid7; the generator's state is restored afterwards
    so later ids are not stuck in this test's future."""
    monkeypatch.setattr(ids, "_v7_last_ms", ids._v7_last_ms)
    monkeypatch.setattr(ids, "_v7_counter", ids._v7_counter)
    clock = {"ns": time.time_ns()}
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: clock["ns"]))
    return clock


def test_uuid7_stays_monotonic_when_the_clock_steps_back(fake_clock: dict[str, int]) -> None:
    fake_clock["ns"] += 3_600 * 10**9  # an hour ahead, then back
    first = uuid7()
    fake_clock["ns"] -= 3_600 * 10**9
    second = uuid7()
    assert second > first
    assert second.int >> 80 >= first.int >> 80


def test_uuid7_borrows_a_millisecond_when_its_counter_runs_out(
    fake_clock: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = uuid7()
    monkeypatch.setattr(ids, "_v7_counter", (1 << 42) - 1)
    second = uuid7()
    assert second > first
    assert second.int >> 80 == (first.int >> 80) + 1
    assert second.version == 7


# -- Timestamp: formatting -----------------------------------------------------------

BASE = 1_760_000_000  # 2025-10-09T08:53:20Z


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "2025-10-09T08:53:20Z"),
        (500_000_000, "2025-10-09T08:53:20.500Z"),
        (123_000_000, "2025-10-09T08:53:20.123Z"),
        (123_456_000, "2025-10-09T08:53:20.123456Z"),
        (123_456_789, "2025-10-09T08:53:20.123456789Z"),
        (100, "2025-10-09T08:53:20.000000100Z"),
        (1_000, "2025-10-09T08:53:20.000001Z"),
        (1_000_000, "2025-10-09T08:53:20.001Z"),
        (999_999_999, "2025-10-09T08:53:20.999999999Z"),
    ],
)
def test_autosi_fraction(nanos: int, text: str) -> None:
    stamp = Timestamp(BASE, nanos)
    assert str(stamp) == text
    assert Timestamp.parse(text) == stamp
    assert repr(stamp) == f"Timestamp('{text}')"


@pytest.mark.parametrize(
    "text",
    [
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "+10000-01-01T00:00:00Z",
        "-0001-12-31T23:59:59Z",
        "-0100-02-28T12:00:00.500Z",
        "1969-12-31T23:59:59.999999999Z",
        "1970-01-01T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "2024-02-29T00:00:00Z",
        "+262143-12-31T23:59:59.999999999Z",
        "-262144-01-01T00:00:00Z",
    ],
)
def test_years_round_trip(text: str) -> None:
    assert str(Timestamp.parse(text)) == text


def test_year_sign_rules() -> None:
    assert str(Timestamp.parse("+0100-01-01T00:00:00Z")) == "0100-01-01T00:00:00Z"
    assert Timestamp.parse("0000-01-01T00:00:00Z").seconds == -62_167_219_200
    assert str(Timestamp.parse("+10000-01-01T00:00:00Z")).startswith("+10000-")


def test_leap_second() -> None:
    leap = Timestamp.parse("2016-12-31T23:59:60Z")
    assert leap.nanos == 1_000_000_000
    assert str(leap) == "2016-12-31T23:59:60Z"
    half = Timestamp.parse("2016-12-31T23:59:60.5Z")
    assert str(half) == "2016-12-31T23:59:60.500Z"
    before = Timestamp.parse("2016-12-31T23:59:59.999999999Z")
    after = Timestamp.parse("2017-01-01T00:00:00Z")
    assert before < leap < half < after
    # An offset moves the leap second with the minute it ends.
    assert str(Timestamp.parse("2017-01-01T00:59:60+01:00")) == "2016-12-31T23:59:60Z"


# -- Timestamp: relaxed RFC 3339 parsing (chrono's parse_rfc3339_relaxed) ------------


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2024-01-02T03:04:05.5+01:00", "2024-01-02T02:04:05.500Z"),
        ("2024-01-02t03:04:05Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02 03:04:05z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05UTC", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05 utc", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05-0130", "2024-01-02T04:34:05Z"),
        ("2024-01-02T03:04:05+00:00", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05-00:00", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05\u221201:00", "2024-01-02T04:04:05Z"),  # U+2212 MINUS SIGN
        ("2024-01-02T03:04:05+23:59", "2024-01-01T03:05:05Z"),
        ("2024-01-02T00:30:00+01:00", "2024-01-01T23:30:00Z"),
        ("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00Z"),
        ("0000-01-01T00:30:00+01:00", "-0001-12-31T23:30:00Z"),
        ("2024-01-02T03:04:05.000Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.1234567891234Z", "2024-01-02T03:04:05.123456789Z"),
        ("2024-01-02T03:04:05.000000000999Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.12Z", "2024-01-02T03:04:05.120Z"),
        ("2024-01-02T03:04:05.1234Z", "2024-01-02T03:04:05.123400Z"),
        ("2024-1-2T3:4:5Z", "2024-01-02T03:04:05Z"),
        ("  2024-01-02T03:04:05Z  ", "2024-01-02T03:04:05Z"),
        ("2024 - 01 - 02T 03 : 04 : 05 +01 : 00", "2024-01-02T02:04:05Z"),
        ("24-01-02T03:04:05Z", "0024-01-02T03:04:05Z"),
    ],
)
def test_relaxed_parsing(text: str, utc: str) -> None:
    assert str(Timestamp.parse(text)) == utc


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-01-02",
        "2024-01-02T",
        "2024-01-02T03:04:05",  # an offset is required
        "2024-01-02T03:04Z",
        "2024-01-02X03:04:05Z",
        "2024-01-02T03:04:05Zjunk",
        "2024-01-02T03:04:05.Z",
        "2024-01-02T03:04:05,5Z",
        "2024-01-02T03:04:05+01",
        "2024-01-02T03:04:05+1:00",
        "2024-01-02T03:04:05+24:00",
        "2024-01-02T03:04:05+01:60",
        "2024-01-02T03:04:05 GMT",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-02T24:00:00Z",
        "2024-01-02T03:60:00Z",
        "2024-01-02T03:04:61Z",
        "12345-01-01T00:00:00Z",  # 5-digit years need a sign
        "+262144-01-01T00:00:00Z",
        "-262144-01-01T00:00:00+00:01",  # local time fits, UTC does not
        "+99999999999999999999-01-01T00:00:00Z",
        "\uff12\uff10\uff12\uff14-01-02T03:04:05Z",  # full-width digits
        "2024-01-02T03:04:05.\u0661Z",
        "2024-01-02T03:04:05Z\x1c",  # not whitespace for Rust
    ],
)
def test_rejects_bad_timestamps(text: str) -> None:
    with pytest.raises(ValueError, match="invalid timestamp"):
        Timestamp.parse(text)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        Timestamp.parse(b"2024-01-02T03:04:05Z")  # type: ignore[arg-type]


# -- Timestamp: construction and conversions -----------------------------------------


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        Timestamp(0, -1)
    with pytest.raises(ValueError):
        Timestamp(0, 2_000_000_000)
    with pytest.raises(ValueError, match="leap second"):
        Timestamp(0, 1_000_000_000)  # 1970-01-01T00:00:00 is not second :59
    assert str(Timestamp(59, 1_000_000_000)) == "1970-01-01T00:00:60Z"
    with pytest.raises(TypeError):
        Timestamp(True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Timestamp(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="range"):
        Timestamp(10**13)


def test_unix_nanos() -> None:
    assert Timestamp.from_unix_nanos(-1) == Timestamp(-1, 999_999_999)
    assert str(Timestamp.from_unix_nanos(-1)) == "1969-12-31T23:59:59.999999999Z"
    stamp = Timestamp.from_unix_nanos(1_760_000_000_123_456_789)
    assert (stamp.seconds, stamp.nanos) == (1_760_000_000, 123_456_789)
    assert stamp.unix_nanos == 1_760_000_000_123_456_789


def test_now_has_nanosecond_resolution_and_is_current() -> None:
    before = time.time_ns()
    now = Timestamp.now()
    after = time.time_ns()
    assert before <= now.unix_nanos <= after


def test_datetime_conversions() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    aware = dt.datetime(2024, 1, 2, 5, 4, 5, 123456, tzinfo=plus_two)
    stamp = Timestamp.from_datetime(aware)
    assert str(stamp) == "2024-01-02T03:04:05.123456Z"
    assert stamp.to_datetime() == aware
    assert stamp.to_datetime().tzinfo == dt.timezone.utc
    # to_datetime truncates to microseconds
    assert Timestamp.parse("2024-01-02T03:04:05.123456789Z").to_datetime().microsecond == 123456
    with pytest.raises(ValueError, match="naive"):
        Timestamp.from_datetime(dt.datetime(2024, 1, 2))
    with pytest.raises(TypeError):
        Timestamp.from_datetime("2024-01-02T03:04:05Z")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        Timestamp.parse("+10000-01-01T00:00:00Z").to_datetime()


def test_value_semantics() -> None:
    a = Timestamp.parse("2024-01-02T03:04:05.5Z")
    b = Timestamp.parse("2024-01-02T04:04:05.500+01:00")
    assert a == b and hash(a) == hash(b)
    assert a < Timestamp.parse("2024-01-02T03:04:05.500000001Z")
    assert a != "2024-01-02T03:04:05.500Z"
    with pytest.raises(AttributeError):
        a._seconds = 0  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(a)) == a
    assert copy.copy(a) == a


# -- Timestamp: properties -------------------------------------------------------------

MIN_SECS = Timestamp.parse("-262144-01-01T00:00:00Z").seconds
MAX_SECS = Timestamp.parse("+262143-12-31T23:59:59Z").seconds
autosi_nanos = st.one_of(
    st.just(0),
    st.integers(0, 999).map(lambda ms: ms * 1_000_000),
    st.integers(0, 999_999).map(lambda us: us * 1_000),
    st.integers(0, 999_999_999),
)


@st.composite
def timestamps(draw: st.DrawFn, low: int = MIN_SECS, high: int = MAX_SECS) -> Timestamp:
    seconds = draw(st.integers(low, high))
    nanos = draw(autosi_nanos)
    if draw(st.integers(0, 20)) == 0:  # now and then a leap second
        seconds = seconds - seconds % 60 + 59
        nanos += 1_000_000_000
    return Timestamp(seconds, nanos)


@given(timestamps())
def test_format_parse_round_trip(stamp: Timestamp) -> None:
    text = str(stamp)
    assert Timestamp.parse(text) == stamp
    assert str(Timestamp.parse(text)) == text


@given(st.datetimes(timezones=st.just(dt.timezone.utc)))
def test_calendar_agrees_with_datetime(value: dt.datetime) -> None:
    stamp = Timestamp.from_datetime(value)
    assert str(stamp)[:19] == value.isoformat()[:19]
    assert Timestamp.parse(value.isoformat()) == stamp
    assert stamp.to_datetime() == value


# -- text caches (ids and timestamps remember their text) ----------------------------


def test_text_caches_change_no_value() -> None:
    stamp = Timestamp(BASE, 123_456_789)
    text = str(stamp)
    assert str(stamp) is text  # written once
    assert Timestamp.parse(text) == stamp and str(Timestamp.parse(text)) == text
    for form in ("2025-10-09T08:53:20.123456789Z", "2025-10-09t10:53:20.123456789+02:00"):
        assert Timestamp.parse(form) == Timestamp.parse(form) == stamp
    assert pickle.loads(pickle.dumps(stamp)) == stamp and str(copy.deepcopy(stamp)) == text
    leap = Timestamp.parse("2016-12-31T23:59:60.5Z")
    assert str(leap) == "2016-12-31T23:59:60.500Z"
    assert str(Timestamp(-1, 5)) == "1969-12-31T23:59:59.000000005Z"

    for text in (SAMPLE, SAMPLE.upper(), "{" + SAMPLE + "}"):
        assert RunId._from_text(text) == RunId(text) == RunId._from_text(text)
        assert str(RunId._from_text(text)) == SAMPLE
    assert InputId._from_text(SAMPLE) != RunId._from_text(SAMPLE)
    assert type(InputId._from_text(SAMPLE)) is InputId
    with pytest.raises(ValueError, match="invalid RunId"):
        RunId._from_text("nope")
    fresh = RunId(uuid.UUID(SAMPLE))
    assert str(fresh) == SAMPLE and str(fresh) is str(fresh)
    assert pickle.loads(pickle.dumps(fresh)) == fresh


def _field(top: int):
    """Two digits, mostly in range, now and then just past it."""
    return st.integers(0, top).map(lambda n: f"{n:02d}")


@settings(max_examples=800, deadline=None)
@given(st.one_of(st.integers(0, 9999), st.sampled_from([0, 1, 1969, 1970, 2000, 2016, 9999])).map(lambda n: f"{n:04d}"),
       _field(13), _field(32), _field(24), _field(60), _field(61),
       st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9).map(lambda f: "." + f)))
def test_the_canonical_form_reads_as_the_general_scanner_reads_it(year, month, day, hour, minute, second, fraction):
    """Timestamp.parse reads the form the store writes on a shortcut (the C
    date counts the days); chrono's general scanner must agree on every value
    and every refusal, out-of-range fields, year 0 and leap seconds included."""
    from redis_store.timestamps import _BY_TEXT, _RelaxedRfc3339

    text = f"{year}-{month}-{day}T{hour}:{minute}:{second}{fraction}Z"
    _BY_TEXT.pop(text, None)

    def read(parse):
        try:
            stamp = parse(text)
        except ValueError as exc:
            return str(exc)
        return stamp.seconds, stamp.nanos

    assert read(Timestamp.parse) == read(lambda t: _RelaxedRfc3339(t).parse())
