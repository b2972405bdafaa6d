"""UTC instants with nanosecond precision, read and written like chrono's
``DateTime<Utc>`` (SPEC §4.6).

Python's ``datetime`` only holds microseconds, so a ``Timestamp`` keeps whole
epoch seconds plus nanoseconds and does its own calendar arithmetic; that also
covers the years chrono handles and ``datetime`` does not (0, negative, >9999).
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
import time
from typing import cast

from . import jsonwire

__all__ = ["Timestamp"]

_NANOS_PER_SEC = 1_000_000_000
_SECS_PER_DAY = 86_400

# chrono's NaiveDate range (MIN_YEAR = i32::MIN >> 13, MAX_YEAR = i32::MAX >> 13).
_MIN_YEAR = -262_144
_MAX_YEAR = 262_143


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Inverse of ``_days_from_civil``: (year, month, day)."""
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153  # March = 0
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + (3 if shifted_month < 10 else -9)
    return year_of_era + era * 400 + (month <= 2), month, day


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


_MIN_SECS = _days_from_civil(_MIN_YEAR, 1, 1) * _SECS_PER_DAY
_MAX_SECS = _days_from_civil(_MAX_YEAR, 12, 31) * _SECS_PER_DAY + _SECS_PER_DAY - 1

# What Rust's char::is_whitespace accepts (Unicode White_Space). Python's
# str.isspace() differs (it also accepts U+001C..U+001F).
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_ASCII_DIGITS = frozenset("0123456789")

# chrono's ParseError texts, reused so messages read the same as Rust's.
_INVALID = "input contains invalid characters"
_TOO_SHORT = "premature end of input"
_TOO_LONG = "trailing input"
_OUT_OF_RANGE = "input is out of range"

_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_new_timestamp = object.__new__
_set = object.__setattr__

# The form every Timestamp is written in, with a fraction of any length and
# fields out of range; parsed without the general scanner.
_CANONICAL = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z"
)

# What str() writes for years 1 to 9999 without a leap second, each digit
# as "0". A text of one of these shapes, with a fraction str() would not have
# written shorter and a date and time the C datetime accepts, is exactly
# str() of its value: ``_read_new`` checks that in a few C calls (a regex,
# or the fields' ints, cost several times as much), keeps only the text, and
# the value follows on first use. Stored timestamps are all of this form.
_WRITTEN_SHAPES = frozenset(
    b"0000-00-00T00:00:00" + fraction + b"Z" for fraction in (b"", b".000", b".000000", b".000000000")
)
_from_iso = _dt.datetime.fromisoformat


def _value_of_written(text: str) -> tuple[int, int]:
    """(seconds, nanos) of a text ``_read_new`` kept as it is."""
    moment = _from_iso(text[:19])
    days = moment.toordinal() - _EPOCH_ORDINAL
    seconds = days * _SECS_PER_DAY + moment.hour * 3600 + moment.minute * 60 + moment.second
    return seconds, int(text[20:-1].ljust(9, "0")) if len(text) > 20 else 0


class _RelaxedRfc3339:
    """A port of chrono 0.4.44's ``parse_rfc3339_relaxed`` (what
    ``"...".parse::<DateTime<Utc>>()`` and serde use): whitespace may precede
    any number, numbers may have fewer digits than usual, the date/time
    separator is ``T``, ``t`` or a space, the offset is ``Z``, ``UTC`` (any
    case) or ``±hh[:]mm``, and trailing whitespace is allowed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, reason: str) -> ValueError:
        return ValueError(f"invalid timestamp {self.text!r}: {reason}")

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def skip_whitespace(self) -> None:
        while self.peek() in _WHITESPACE:
            self.pos += 1

    def expect(self, literal: str) -> None:
        self.skip_whitespace()
        if not self.peek():
            raise self.fail(_TOO_SHORT)
        if self.peek() != literal:
            raise self.fail(_INVALID)
        self.pos += 1

    def digits(self, max_digits: int) -> str:
        """1..max_digits ASCII digits (chrono's ``scan::number``)."""
        start = self.pos
        while self.pos - start < max_digits and self.peek() in _ASCII_DIGITS:
            self.pos += 1
        if self.pos == start:
            raise self.fail(_INVALID if self.peek() else _TOO_SHORT)
        return self.text[start : self.pos]

    def number(self, max_digits: int) -> int:
        self.skip_whitespace()
        return int(self.digits(max_digits))

    def year(self) -> int:
        self.skip_whitespace()
        sign = self.peek()
        if sign not in ("+", "-"):
            return int(self.digits(4))
        self.pos += 1
        # A signed year may have any number of digits; beyond i64 chrono
        # reports out of range (and beyond 19 digits Python's int() limits
        # would get in the way).
        digits = self.digits(len(self.text))
        if len(digits) > 19:
            raise self.fail(_OUT_OF_RANGE)
        return -int(digits) if sign == "-" else int(digits)

    def fraction(self) -> int:
        """Nanoseconds from '.' and 1+ digits; digits past the 9th are dropped."""
        if self.peek() != ".":
            return 0
        self.pos += 1
        digits = self.digits(9)
        while self.peek() in _ASCII_DIGITS:
            self.pos += 1
        return int(digits.ljust(9, "0"))

    def offset_seconds(self) -> int:
        self.skip_whitespace()
        rest = self.text[self.pos :]
        if rest[:3].upper() == "UTC" and rest[:3].isascii():
            self.pos += 3
            return 0
        sign = self.peek()
        if sign in ("Z", "z"):
            self.pos += 1
            return 0
        if not sign:
            raise self.fail(_TOO_SHORT)
        if sign not in ("+", "-", "\u2212"):  # chrono also takes U+2212 MINUS SIGN
            raise self.fail(_INVALID)
        self.pos += 1
        hours = self.two_digits()
        while self.peek() == ":" or self.peek() in _WHITESPACE:
            self.pos += 1
        minutes_text = self.text[self.pos : self.pos + 2]
        if len(minutes_text) == 2 and minutes_text[0] in "6789" and minutes_text[1] in _ASCII_DIGITS:
            raise self.fail(_OUT_OF_RANGE)
        minutes = self.two_digits()
        seconds = hours * 3600 + minutes * 60
        return seconds if sign == "+" else -seconds

    def two_digits(self) -> int:
        pair = self.text[self.pos : self.pos + 2]
        if len(pair) < 2:
            raise self.fail(_TOO_SHORT)
        if not (pair[0] in _ASCII_DIGITS and pair[1] in _ASCII_DIGITS):
            raise self.fail(_INVALID)
        self.pos += 2
        return int(pair)

    def parse(self) -> Timestamp:
        year = self.year()
        self.expect("-")
        month = self.number(2)
        self.expect("-")
        day = self.number(2)
        separator = self.peek()
        if not separator:
            raise self.fail(_TOO_SHORT)
        if separator not in ("T", "t", " "):
            raise self.fail(_INVALID)
        self.pos += 1
        hour = self.number(2)
        self.expect(":")
        minute = self.number(2)
        self.expect(":")
        second = self.number(2)
        nanos = self.fraction()
        offset = self.offset_seconds()
        self.skip_whitespace()
        if self.pos != len(self.text):
            raise self.fail(_TOO_LONG)
        return _from_local_fields(self.text, year, month, day, hour, minute, second, nanos, offset)


def _from_local_fields(
    text: str,
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    nanos: int,
    offset: int,
) -> Timestamp:
    """Validate the fields as chrono does, then convert the local time to UTC."""
    valid = (
        _MIN_YEAR <= year <= _MAX_YEAR
        and 1 <= month <= 12
        and 1 <= day <= _days_in_month(year, month)
        and hour <= 23
        and minute <= 59
        and second <= 60
        and -_SECS_PER_DAY < offset < _SECS_PER_DAY
    )
    if not valid:
        raise ValueError(f"invalid timestamp {text!r}: {_OUT_OF_RANGE}")
    if second == 60:  # a leap second: chrono keeps second 59 and adds 1e9 ns
        second = 59
        nanos += _NANOS_PER_SEC
    local = _days_from_civil(year, month, day) * _SECS_PER_DAY + hour * 3600 + minute * 60 + second
    utc = local - offset
    if not _MIN_SECS <= utc <= _MAX_SECS:
        raise ValueError(f"invalid timestamp {text!r}: {_OUT_OF_RANGE}")
    return Timestamp(utc, nanos)


def _parse(text: str) -> Timestamp:
    """``Timestamp.parse`` without the shortcuts for text written lately or
    as str() writes it."""
    match = _CANONICAL.fullmatch(text)
    if match is None:
        return _RelaxedRfc3339(text).parse()
    year, month, day, hour, minute, second, fraction = match.groups()
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    hours, minutes, seconds = int(hour), int(minute), int(second)
    try:  # the C date checks year (1..9999), month and day, and counts the days
        days = _dt.date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        days = None
    if days is None or hours > 23 or minutes > 59 or seconds > 59:
        # year 0, a leap second or a field out of range: chrono's rules decide
        return _from_local_fields(text, int(year), int(month), int(day), hours, minutes, seconds, nanos, 0)
    stamp = _new_timestamp(Timestamp)  # years 1..9999, nanos < 1e9: within __init__'s checks
    _set(stamp, "_seconds", days * _SECS_PER_DAY + hours * 3600 + minutes * 60 + seconds)
    _set(stamp, "_nanos", nanos)
    _set(stamp, "_text", None)
    return stamp


def _check_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"Timestamp {name} must be an int, got {type(value).__name__}")
    return value


@functools.total_ordering
class Timestamp:
    """An immutable UTC instant: ``seconds`` since the Unix epoch (may be
    negative) plus ``nanos`` in 0..1_999_999_999, where values of 1e9 and more
    mark a leap second (chrono's representation, only at second :59).

    ``str()`` gives chrono's RFC 3339 output (fraction by the AutoSi rule, ``Z``
    suffix, signed year outside 0..=9999); ``parse()`` reads chrono's relaxed
    RFC 3339. Ordering and equality follow the instant (leap second included).
    """

    __slots__ = ("_seconds", "_nanos", "_text")
    # The slots' types (set through object.__setattr__: the class is immutable).
    _seconds: int
    _nanos: int
    _text: str | None

    def __init__(self, seconds: int, nanos: int = 0) -> None:
        _check_int(seconds, "seconds")
        _check_int(nanos, "nanos")
        if not 0 <= nanos < 2 * _NANOS_PER_SEC:
            raise ValueError(f"Timestamp nanos must be in 0..2e9, got {nanos}")
        if nanos >= _NANOS_PER_SEC and seconds % 60 != 59:
            raise ValueError("a leap second (nanos >= 1e9) can only follow second :59")
        if not _MIN_SECS <= seconds <= _MAX_SECS:
            raise ValueError(
                f"Timestamp seconds {seconds} outside chrono's range (years {_MIN_YEAR}..={_MAX_YEAR})"
            )
        object.__setattr__(self, "_seconds", seconds)
        object.__setattr__(self, "_nanos", nanos)
        object.__setattr__(self, "_text", None)  # str(self), once computed

    # -- constructors ------------------------------------------------------

    @classmethod
    def now(cls) -> Timestamp:
        return cls.from_unix_nanos(time.time_ns())

    @classmethod
    def from_unix_nanos(cls, unix_nanos: int) -> Timestamp:
        seconds, nanos = divmod(_check_int(unix_nanos, "unix_nanos"), _NANOS_PER_SEC)
        return cls(seconds, nanos)

    @classmethod
    def from_datetime(cls, value: _dt.datetime) -> Timestamp:
        """An aware ``datetime`` (any zone) as a UTC instant."""
        if not isinstance(value, _dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.utcoffset() is None:
            raise ValueError("a naive datetime has no instant: give it a tzinfo")
        delta = value - _UNIX_EPOCH  # exact: timedelta holds days, seconds, microseconds
        return cls(delta.days * _SECS_PER_DAY + delta.seconds, delta.microseconds * 1000)

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Read relaxed RFC 3339 as chrono does; an offset is required."""
        if not isinstance(text, str):
            raise TypeError(f"expected a str, got {type(text).__name__}")
        if cls is Timestamp and type(text) is str:
            found = _BY_TEXT.get(text)
            return _read_new(text) if found is None else found
        return _parse(text)

    # -- accessors ---------------------------------------------------------

    @property
    def seconds(self) -> int:
        return self._key()[0]

    @property
    def nanos(self) -> int:
        return self._key()[1]

    @property
    def unix_nanos(self) -> int:
        """Nanoseconds since the epoch (like chrono's ``timestamp_nanos``; a
        leap second overlaps the next second's values)."""
        seconds, nanos = self._key()
        return seconds * _NANOS_PER_SEC + nanos

    def to_datetime(self) -> _dt.datetime:
        """An aware UTC ``datetime``, truncated to microseconds. A leap second
        rolls into the next second (as chrono's conversion to SystemTime does).
        Raises OverflowError for years ``datetime`` cannot hold (outside 1..9999)."""
        seconds, nanos = self._key()
        return _UNIX_EPOCH + _dt.timedelta(seconds=seconds, microseconds=nanos // 1000)

    # -- formatting --------------------------------------------------------

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._format()
            object.__setattr__(self, "_text", text)
            _remember(text, self)
        return text

    def _format(self) -> str:  # (only for a Timestamp without its text: made from numbers)
        seconds, nanos = self._seconds, self._nanos
        if 0 <= seconds < _GMTIME_LIMIT and nanos < _NANOS_PER_SEC:
            # 1970 to 2999 and no leap second: the C library's calendar.
            if nanos == 0:
                fraction = ""
            elif nanos % 1_000_000 == 0:
                fraction = ".%03d" % (nanos // 1_000_000)
            elif nanos % 1000 == 0:
                fraction = ".%06d" % (nanos // 1000)
            else:
                fraction = ".%09d" % nanos
            return "%04d-%02d-%02dT%02d:%02d:%02d%sZ" % (*_gmtime(seconds)[:6], fraction)
        days, second_of_day = divmod(self._seconds, _SECS_PER_DAY)
        year, month, day = _civil_from_days(days)
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        nanos = self._nanos
        if nanos >= _NANOS_PER_SEC:  # leap second is written as :60
            second += 1
            nanos -= _NANOS_PER_SEC
        year_text = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
        if nanos == 0:
            fraction = ""
        elif nanos % 1_000_000 == 0:
            fraction = f".{nanos // 1_000_000:03d}"
        elif nanos % 1000 == 0:
            fraction = f".{nanos // 1000:06d}"
        else:
            fraction = f".{nanos:09d}"
        return f"{year_text}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}Z"

    def __repr__(self) -> str:
        return f"Timestamp({str(self)!r})"

    # -- value semantics ---------------------------------------------------

    def _key(self) -> tuple[int, int]:
        """(seconds, nanos). A Timestamp ``_read_new`` made from its text has
        them unset until this first needs them (a __getattr__ would slow every
        attribute read of every Timestamp: Python then specializes none)."""
        try:
            return (self._seconds, self._nanos)
        except AttributeError:
            seconds, nanos = _value_of_written(cast(str, self._text))  # (set whenever those are not)
            _set(self, "_seconds", seconds)
            _set(self, "_nanos", nanos)
            return seconds, nanos

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if not isinstance(other, Timestamp):
            return NotImplemented
        mine, theirs = self._text, other._text
        if mine is not None and theirs is not None:
            return mine == theirs  # each is str() of its value, and str() is one to one
        return self._key() == other._key()

    def __lt__(self, other: Timestamp) -> bool:
        if not isinstance(other, Timestamp):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Timestamp is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Timestamp is immutable")

    def __reduce__(self) -> tuple[type[Timestamp], tuple[int, int]]:
        return (Timestamp, self._key())


_UNIX_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_gmtime = time.gmtime
_GMTIME_LIMIT = _days_from_civil(3000, 1, 1) * _SECS_PER_DAY  # gmtime() takes these everywhere

#: Timestamps by a text they were parsed from or written as: most timestamps
#: that are read were written by this process shortly before (the store writes
#: a value, then reads it back to check it). Bounded; cleared when full.
_BY_TEXT: dict[str, Timestamp] = {}
_CACHE_SIZE = 4096


def _remember(text: str, stamp: Timestamp) -> None:
    if len(_BY_TEXT) >= _CACHE_SIZE:
        _BY_TEXT.clear()
    _BY_TEXT[text] = stamp


def _read_new(text: str) -> Timestamp:
    """``Timestamp.parse(text)`` for an exact str ``text`` not in
    ``_BY_TEXT``, remembered there: what decoding a stored value calls for a
    timestamp it has not seen lately (one Python call: it is a good part of
    a stored input state's decoding)."""
    # Non-ASCII (surrogates too) becomes "?", which no shape has. In a text
    # of a written shape "000Z" can only end a fraction, which str() would
    # have written without that 000.
    # Hour 24 goes to the exact parse, not to fromisoformat: Python 3.14 reads
    # "24:00:00" as the next midnight (CPython gh-102450), chrono refuses it.
    if (
        text.encode("ascii", "replace").translate(jsonwire.DIGITS_AS_ZERO) in _WRITTEN_SHAPES
        and "000Z" not in text
        and text[11:13] < "24"
    ):
        try:
            # Month, day (leap years included), hour, minute and second in
            # range, year not 0: as chrono checks them. A leap second (:60)
            # and year 0 are chrono's, and the general parse's.
            _from_iso(text[:19])
        except ValueError:
            stamp = _parse(text)
        else:
            stamp = _new_timestamp(Timestamp)
            _set(stamp, "_text", text)  # _seconds and _nanos: Timestamp._key
    else:
        stamp = _parse(text)
    _remember(text, stamp)
    return stamp
