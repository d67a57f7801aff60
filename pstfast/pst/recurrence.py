"""Recurring appointments: the recurrence blob, its RFC 5545 RRULE, and time zones.

PidLidAppointmentRecur holds an AppointmentRecurrencePattern (MS-OXOCAL 2.2.1.44.2): a
RecurrencePattern (2.2.1.44.1: frequency, pattern type, period, pattern-specific days,
end type, occurrence count, deleted and modified instance dates, start and end date), then
the series' start/end time offsets and one ExceptionInfo per modified instance (with
ANSI subject/location overrides), then, from writer version 0x3009, one ExtendedException
each (the Unicode subject/location). Dates in the blob are minutes since 1601-01-01 in the
series' own time zone; PidLidTimeZoneStruct (2.2.1.39) converts them to UTC.

:func:`parse` never raises on damaged bytes: it returns what it could read, or None.
:func:`build` writes a blob (the writer's side; tested by reading it back and by readpst).
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field

EPOCH = dt.datetime(1601, 1, 1)

FREQ_DAILY, FREQ_WEEKLY, FREQ_MONTHLY, FREQ_YEARLY = 0x200A, 0x200B, 0x200C, 0x200D
PATTERN_DAY, PATTERN_WEEK, PATTERN_MONTH, PATTERN_MONTH_NTH, PATTERN_MONTH_END = 0, 1, 2, 3, 4
END_DATE, END_COUNT, END_NEVER, END_NEVER_OLD = 0x2021, 0x2022, 0x2023, 0xFFFFFFFF
ARO_SUBJECT, ARO_MEETINGTYPE, ARO_REMINDERDELTA, ARO_REMINDER = 0x01, 0x02, 0x04, 0x08
ARO_LOCATION, ARO_BUSYSTATUS, ARO_ATTACHMENT, ARO_SUBTYPE, ARO_APPTCOLOR = 0x10, 0x20, 0x40, 0x80, 0x100
_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")


@dataclass
class ExceptionInfo:
    """One modified instance, as the blob has it (local minutes)."""

    start: int
    end: int
    original_start: int
    subject: str | None = None
    location: str | None = None


@dataclass
class Recurrence:
    """The parts of an AppointmentRecurrencePattern pstfast reports."""

    frequency: int
    pattern_type: int
    period: int
    pattern_specific: tuple[int, ...]
    end_type: int
    occurrence_count: int
    first_dow: int
    deleted: list[int]
    modified: list[int]
    start_date: int
    end_date: int
    start_offset: int = 0
    end_offset: int = 0
    exceptions: list[ExceptionInfo] = field(default_factory=list)


def minutes_to_datetime(minutes: int) -> dt.datetime | None:
    """Minutes since 1601 as a naive datetime (None when out of range)."""
    try:
        return EPOCH + dt.timedelta(minutes=minutes)
    except OverflowError:
        return None


def parse(blob: bytes | None) -> Recurrence | None:
    """The recurrence in *blob* (PidLidAppointmentRecur), None when it is not one."""
    if not blob or len(blob) < 22:
        return None
    try:
        return _parse(blob)
    except (struct.error, IndexError, ValueError):
        return None


def _parse(blob: bytes) -> Recurrence | None:
    reader_version, writer_version, frequency, pattern_type, _calendar, _first, period, _sliding = \
        struct.unpack_from("<HHHHHIII", blob, 0)
    if reader_version != 0x3004 or frequency not in (FREQ_DAILY, FREQ_WEEKLY, FREQ_MONTHLY, FREQ_YEARLY):
        return None
    pos = 22
    if pattern_type in (PATTERN_WEEK, PATTERN_MONTH, PATTERN_MONTH_END, 0x0A, 0x0C):
        specific: tuple[int, ...] = struct.unpack_from("<I", blob, pos)
        pos += 4
    elif pattern_type in (PATTERN_MONTH_NTH, 0x0B):
        specific = struct.unpack_from("<II", blob, pos)
        pos += 8
    else:
        specific = ()
    end_type, count, first_dow, n_deleted = struct.unpack_from("<IIII", blob, pos)
    pos += 16
    deleted = list(struct.unpack_from(f"<{n_deleted}I", blob, pos))
    pos += 4 * n_deleted
    (n_modified,) = struct.unpack_from("<I", blob, pos)
    pos += 4
    modified = list(struct.unpack_from(f"<{n_modified}I", blob, pos))
    pos += 4 * n_modified
    start_date, end_date = struct.unpack_from("<II", blob, pos)
    pos += 8
    rec = Recurrence(frequency, pattern_type, period, specific, end_type, count, first_dow, deleted, modified,
                     start_date, end_date)
    if len(blob) < pos + 18:  # a bare RecurrencePattern (a task's): no appointment part
        return rec
    _reader2, writer2, rec.start_offset, rec.end_offset, n_exceptions = struct.unpack_from("<IIIIH", blob, pos)
    pos += 18
    flags: list[int] = []
    for _ in range(n_exceptions):
        start, end, original, override = struct.unpack_from("<IIIH", blob, pos)
        pos += 14
        info = ExceptionInfo(start, end, original)
        if override & ARO_SUBJECT:
            _, size = struct.unpack_from("<HH", blob, pos)
            info.subject = blob[pos + 4:pos + 4 + size].decode("cp1252", "replace")
            pos += 4 + size
        for bit in (ARO_MEETINGTYPE, ARO_REMINDERDELTA, ARO_REMINDER):
            if override & bit:
                pos += 4
        if override & ARO_LOCATION:
            _, size = struct.unpack_from("<HH", blob, pos)
            info.location = blob[pos + 4:pos + 4 + size].decode("cp1252", "replace")
            pos += 4 + size
        for bit in (ARO_BUSYSTATUS, ARO_ATTACHMENT, ARO_SUBTYPE, ARO_APPTCOLOR):
            if override & bit:
                pos += 4
        rec.exceptions.append(info)
        flags.append(override)
    (reserved1,) = struct.unpack_from("<I", blob, pos)
    pos += 4 + reserved1
    for info, override in zip(rec.exceptions, flags):  # ExtendedException: the Unicode texts
        if writer2 >= 0x3009:
            (size,) = struct.unpack_from("<I", blob, pos)
            pos += 4 + size
        (size,) = struct.unpack_from("<I", blob, pos)
        pos += 4 + size
        if override & (ARO_SUBJECT | ARO_LOCATION):
            pos += 12
            if override & ARO_SUBJECT:
                (chars,) = struct.unpack_from("<H", blob, pos)
                info.subject = blob[pos + 2:pos + 2 + 2 * chars].decode("utf-16-le", "replace")
                pos += 2 + 2 * chars
            if override & ARO_LOCATION:
                (chars,) = struct.unpack_from("<H", blob, pos)
                info.location = blob[pos + 2:pos + 2 + 2 * chars].decode("utf-16-le", "replace")
                pos += 2 + 2 * chars
            (size,) = struct.unpack_from("<I", blob, pos)
            pos += 4 + size
    return rec


# --- time zones (PidLidTimeZoneStruct, MS-OXOCAL 2.2.1.39) ------------------------------------


@dataclass(frozen=True)
class TimeZone:
    """A Windows time zone rule: UTC = local + bias (minutes), with an optional daylight rule."""

    bias: int
    standard_bias: int = 0
    daylight_bias: int = 0
    standard: tuple[int, ...] = ()  # SYSTEMTIME (year, month, dow, day, hour, minute, second, ms)
    daylight: tuple[int, ...] = ()

    @classmethod
    def parse(cls, blob: bytes | None) -> TimeZone | None:
        """The rule in a PidLidTimeZoneStruct value, None when absent or short."""
        if not blob or len(blob) < 48:
            return None
        bias, std_bias, dst_bias = struct.unpack_from("<iii", blob, 0)
        standard = struct.unpack_from("<8H", blob, 14)
        daylight = struct.unpack_from("<8H", blob, 32)
        return cls(bias, std_bias, dst_bias, standard, daylight)

    def _transition(self, rule: tuple[int, ...], year: int) -> dt.datetime:
        _, month, dow, week, hour, minute = rule[:6]
        first = dt.datetime(year, month, 1, hour, minute)
        day = first + dt.timedelta(days=(dow - (first.weekday() + 1) % 7) % 7 + 7 * (week - 1))
        while day.month != month:  # week 5: the last such day of the month
            day -= dt.timedelta(days=7)
        return day

    def to_utc(self, local: dt.datetime) -> dt.datetime:
        """*local* (naive, in this zone) as naive UTC."""
        bias = self.bias + self.standard_bias
        if self.standard and self.daylight and self.standard[1] and self.daylight[1]:
            try:
                dst_on = self._transition(self.daylight, local.year)
                dst_off = self._transition(self.standard, local.year)
            except ValueError:
                return local + dt.timedelta(minutes=bias)
            in_dst = dst_on <= local < dst_off if dst_on < dst_off else not (dst_off <= local < dst_on)
            if in_dst:
                bias = self.bias + self.daylight_bias
        return local + dt.timedelta(minutes=bias)

    def to_bytes(self) -> bytes:
        """The PidLidTimeZoneStruct bytes of this rule."""
        standard = self.standard or (0,) * 8
        daylight = self.daylight or (0,) * 8
        return (struct.pack("<iiiH", self.bias, self.standard_bias, self.daylight_bias, 0)
                + struct.pack("<8H", *standard) + struct.pack("<H", 0) + struct.pack("<8H", *daylight))


UTC = TimeZone(0)


def local_to_utc(minutes: int, zone: TimeZone | None) -> dt.datetime | None:
    """Blob minutes (local) as naive UTC."""
    value = minutes_to_datetime(minutes)
    if value is None:
        return None
    return (zone or UTC).to_utc(value)


# --- RRULE ------------------------------------------------------------------------------------


def _days(mask: int) -> str:
    return ",".join(day for bit, day in enumerate(_DAYS) if mask & (1 << bit))


def rrule(rec: Recurrence, zone: TimeZone | None = None) -> str | None:
    """The RFC 5545 RRULE of *rec* (without the ``RRULE:`` prefix), None for a pattern that
    has none (Hijri calendars)."""
    parts: list[str] = []
    if rec.pattern_type == PATTERN_DAY:
        parts += ["FREQ=DAILY", f"INTERVAL={max(rec.period // 1440, 1)}"]
    elif rec.pattern_type == PATTERN_WEEK:
        parts += ["FREQ=WEEKLY", f"INTERVAL={max(rec.period, 1)}", f"BYDAY={_days(rec.pattern_specific[0])}"]
    elif rec.pattern_type in (PATTERN_MONTH, PATTERN_MONTH_END, PATTERN_MONTH_NTH):
        yearly = rec.frequency == FREQ_YEARLY
        interval = max(rec.period // 12, 1) if yearly else max(rec.period, 1)
        parts += ["FREQ=YEARLY" if yearly else "FREQ=MONTHLY", f"INTERVAL={interval}"]
        if rec.pattern_type == PATTERN_MONTH_NTH:
            mask, nth = rec.pattern_specific
            parts += [f"BYDAY={_days(mask)}", f"BYSETPOS={-1 if nth == 5 else nth}"]
        else:
            day = -1 if rec.pattern_type == PATTERN_MONTH_END else rec.pattern_specific[0]
            parts.append(f"BYMONTHDAY={day}")
        if yearly:
            start = minutes_to_datetime(rec.start_date)
            if start is not None:
                parts.append(f"BYMONTH={start.month}")
    else:
        return None
    if rec.end_type == END_COUNT:
        parts.append(f"COUNT={rec.occurrence_count}")
    elif rec.end_type == END_DATE:
        until = local_to_utc(rec.end_date + rec.start_offset, zone)
        if until is not None:
            parts.append("UNTIL=" + until.strftime("%Y%m%dT%H%M%SZ"))
    if rec.first_dow != 1 and rec.pattern_type == PATTERN_WEEK and 0 <= rec.first_dow < 7:
        parts.append(f"WKST={_DAYS[rec.first_dow]}")
    return ";".join(parts)


# --- the writer's side ------------------------------------------------------------------------


def to_minutes(value: dt.datetime) -> int:
    """A naive datetime as minutes since 1601."""
    delta = value - EPOCH
    return delta.days * 1440 + delta.seconds // 60


def build(rec: Recurrence, *, first_datetime: int = 0) -> bytes:
    """The AppointmentRecurrencePattern bytes of *rec* (writer version 0x3009, Unicode texts)."""
    out = bytearray(struct.pack("<HHHHHIII", 0x3004, 0x3004, rec.frequency, rec.pattern_type, 0, first_datetime,
                                rec.period, 0))
    out += struct.pack(f"<{len(rec.pattern_specific)}I", *rec.pattern_specific)
    out += struct.pack("<IIII", rec.end_type, rec.occurrence_count, rec.first_dow, len(rec.deleted))
    out += struct.pack(f"<{len(rec.deleted)}I", *sorted(rec.deleted))
    out += struct.pack("<I", len(rec.modified)) + struct.pack(f"<{len(rec.modified)}I", *sorted(rec.modified))
    out += struct.pack("<II", rec.start_date, rec.end_date)
    out += struct.pack("<IIIIH", 0x3006, 0x3009, rec.start_offset, rec.end_offset, len(rec.exceptions))
    overrides = []
    for info in rec.exceptions:
        override = (ARO_SUBJECT if info.subject is not None else 0) | (ARO_LOCATION if info.location is not None else 0)
        overrides.append(override)
        out += struct.pack("<IIIH", info.start, info.end, info.original_start, override)
        if info.subject is not None:
            text = info.subject.encode("cp1252", "replace")
            out += struct.pack("<HH", len(text) + 1, len(text)) + text
        if info.location is not None:
            text = info.location.encode("cp1252", "replace")
            out += struct.pack("<HH", len(text) + 1, len(text)) + text
    out += struct.pack("<I", 0)  # ReservedBlock1
    for info, override in zip(rec.exceptions, overrides):
        out += struct.pack("<I", 0) + struct.pack("<I", 0)  # ChangeHighlight, ReservedBlockEE1
        if override:
            out += struct.pack("<III", info.start, info.end, info.original_start)
            if info.subject is not None:
                out += struct.pack("<H", len(info.subject)) + info.subject.encode("utf-16-le")
            if info.location is not None:
                out += struct.pack("<H", len(info.location)) + info.location.encode("utf-16-le")
            out += struct.pack("<I", 0)  # ReservedBlockEE2
    out += struct.pack("<I", 0)  # ReservedBlock2
    return bytes(out)


__all__ = ["ExceptionInfo", "Recurrence", "TimeZone", "UTC", "build", "local_to_utc", "minutes_to_datetime",
           "parse", "rrule", "to_minutes"]
