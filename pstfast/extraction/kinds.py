"""``item_properties``: what an item of a kind other than mail carries, from its named properties.

One JSON object per row, ``null`` for mail; its ``kind`` says which keys follow:

* ``appointment`` (``IPM.Appointment*``, meeting requests and responses
  ``IPM.Schedule.Meeting.*``): ``start``, ``end`` (UTC ISO-8601), ``all_day``,
  ``location``, ``busy_status``, ``organizer`` {name, email}, ``attendees`` [{name, email,
  type, response}], ``is_recurring``, ``recurrence`` (RFC 5545 RRULE), ``exceptions``
  [{original_start, start, end, subject, location, deleted}], ``timezone``;
* ``contact`` (``IPM.Contact``): ``display_name``, ``given_name``, ``surname``, ``company``,
  ``job_title``, ``email_addresses`` [{email, display_name, type}], ``phone_numbers``
  {kind: number}, ``postal_addresses`` [{kind, text}], ``birthday``;
* ``distribution_list`` (``IPM.DistList``): ``name``, ``members`` [{name, email}];
* ``task`` (``IPM.Task*``): ``start``, ``due``, ``completed_at``, ``status``,
  ``percent_complete``, ``owner``;
* ``note`` (``IPM.StickyNote``): ``color``; ``journal`` (``IPM.Activity``): ``type``,
  ``start``, ``end``.

Named properties are looked up by this file's ids (:attr:`ItemReader.named`), resolved once
per file from the name-to-id map. Timestamps are naive UTC datetimes here; the JSON writer
gives them the ``...Z`` form of every other timestamp.
"""

from __future__ import annotations

import builtins
import datetime as dt
import struct
from typing import Any, Protocol

from ..pst import recurrence as rc
from ..pst.props import (
    PR_ASSISTANT_TELEPHONE_NUMBER,
    PR_BIRTHDAY,
    PR_BUSINESS2_TELEPHONE_NUMBER,
    PR_BUSINESS_ADDRESS_CITY,
    PR_BUSINESS_ADDRESS_COUNTRY,
    PR_BUSINESS_ADDRESS_POSTAL_CODE,
    PR_BUSINESS_ADDRESS_STATE_OR_PROVINCE,
    PR_BUSINESS_ADDRESS_STREET,
    PR_BUSINESS_FAX_NUMBER,
    PR_BUSINESS_TELEPHONE_NUMBER,
    PR_CAR_TELEPHONE_NUMBER,
    PR_COMPANY_NAME,
    PR_DISPLAY_NAME,
    PR_GIVEN_NAME,
    PR_HOME2_TELEPHONE_NUMBER,
    PR_HOME_ADDRESS_CITY,
    PR_HOME_ADDRESS_COUNTRY,
    PR_HOME_ADDRESS_POSTAL_CODE,
    PR_HOME_ADDRESS_STATE_OR_PROVINCE,
    PR_HOME_ADDRESS_STREET,
    PR_HOME_FAX_NUMBER,
    PR_HOME_TELEPHONE_NUMBER,
    PR_MOBILE_TELEPHONE_NUMBER,
    PR_OTHER_TELEPHONE_NUMBER,
    PR_PAGER_TELEPHONE_NUMBER,
    PR_PRIMARY_TELEPHONE_NUMBER,
    PR_SUBJECT,
    PR_SURNAME,
    PR_TITLE,
    PT_DOUBLE,
    PT_MV_BINARY,
    PT_MV_STRING8,
    PT_MV_UNICODE,
    PT_STRING8,
    PT_UNICODE,
)



class Props(Protocol):
    """What is used here of :class:`pstfast.extraction.items.Props` (not imported: items imports this module)."""

    values: dict[builtins.int, tuple[builtins.int, bytes | None]]
    codec: builtins.str

    def __contains__(self, tag: builtins.int) -> builtins.bool: ...
    def raw(self, tag: builtins.int) -> bytes | None: ...
    def int(self, tag: builtins.int) -> builtins.int | None: ...
    def bool(self, tag: builtins.int) -> builtins.bool: ...
    def time(self, tag: builtins.int) -> dt.datetime | None: ...
    def str(self, tag: builtins.int) -> builtins.str | None: ...

#: the (unnamed) properties read here, beside those items.py reads
READ_PROPERTIES = frozenset(value for name, value in list(globals().items()) if name.startswith("PR_"))
#: the message class of an exception of a recurring series, embedded in the series' item
EXCEPTION_CLASS = "ipm.ole.class.{00061055-0000-0000-c000-000000000046}"
BUSY_STATUS = {0: "free", 1: "tentative", 2: "busy", 3: "out_of_office", 4: "working_elsewhere"}
ATTENDEE_TYPES = {1: "required", 2: "optional", 3: "resource"}
RESPONSES = {0: "none", 1: "organized", 2: "tentative", 3: "accepted", 4: "declined", 5: "not_responded"}
TASK_STATUS = {0: "not_started", 1: "in_progress", 2: "complete", 3: "waiting", 4: "deferred"}
PHONES = (
    ("business", PR_BUSINESS_TELEPHONE_NUMBER), ("business2", PR_BUSINESS2_TELEPHONE_NUMBER),
    ("home", PR_HOME_TELEPHONE_NUMBER), ("home2", PR_HOME2_TELEPHONE_NUMBER),
    ("mobile", PR_MOBILE_TELEPHONE_NUMBER), ("primary", PR_PRIMARY_TELEPHONE_NUMBER),
    ("business_fax", PR_BUSINESS_FAX_NUMBER), ("home_fax", PR_HOME_FAX_NUMBER),
    ("car", PR_CAR_TELEPHONE_NUMBER), ("pager", PR_PAGER_TELEPHONE_NUMBER),
    ("assistant", PR_ASSISTANT_TELEPHONE_NUMBER), ("other", PR_OTHER_TELEPHONE_NUMBER),
)
_ADDRESS_PARTS = {
    "work": (PR_BUSINESS_ADDRESS_STREET, PR_BUSINESS_ADDRESS_CITY, PR_BUSINESS_ADDRESS_STATE_OR_PROVINCE,
             PR_BUSINESS_ADDRESS_POSTAL_CODE, PR_BUSINESS_ADDRESS_COUNTRY),
    "home": (PR_HOME_ADDRESS_STREET, PR_HOME_ADDRESS_CITY, PR_HOME_ADDRESS_STATE_OR_PROVINCE,
             PR_HOME_ADDRESS_POSTAL_CODE, PR_HOME_ADDRESS_COUNTRY),
}
_ONE_OFF_PROVIDER = bytes.fromhex("812b1fa4bea310199d6e00dd010f5402")  # MS-OXCDATA 2.2.5.1


def kind_of(message_class: str | None) -> str | None:
    """The ``item_properties`` kind of a message class (None: mail and everything else)."""
    cls = (message_class or "").lower()
    if cls == EXCEPTION_CLASS:
        return "exception"
    if cls.startswith(("ipm.appointment", "ipm.schedule.meeting")):
        return "appointment"
    if cls.startswith("ipm.contact"):
        return "contact"
    if cls.startswith("ipm.distlist"):
        return "distribution_list"
    if cls.startswith("ipm.task"):
        return "task"
    if cls.startswith("ipm.stickynote"):
        return "note"
    if cls.startswith("ipm.activity"):
        return "journal"
    return None


def is_exception(message_class: str | None) -> bool:
    """True for an exception of a recurring series (folded into the series, never a row)."""
    return (message_class or "").lower() == EXCEPTION_CLASS


def multi_strings(props: Props, pid: int) -> list[str]:
    """The strings of a multi-valued string property (PT_MV_UNICODE / PT_MV_STRING8)."""
    found = props.values.get(pid)
    if found is None or found[1] is None or found[0] not in (PT_MV_UNICODE, PT_MV_STRING8):
        return []
    out = []
    for raw in _multi(found[1]):
        if found[0] == PT_MV_UNICODE:
            text = raw.decode("utf-16-le", "replace").rstrip("\x00")
        else:
            text = raw.decode(props.codec, "replace").rstrip("\x00")
        out.append(text.replace("\x00", "\ufffd"))
    return out


def _multi(data: bytes) -> list[bytes]:
    """The values of a variable-size multi-valued property (MS-PST 2.3.3.4.2)."""
    if len(data) < 4:
        return []
    (count,) = struct.unpack_from("<I", data, 0)
    if count > (len(data) - 4) // 4:
        return []
    offsets = list(struct.unpack_from(f"<{count}I", data, 4)) + [len(data)]
    return [data[offsets[i]:offsets[i + 1]] for i in range(count) if offsets[i] <= offsets[i + 1] <= len(data)]


def _float(props: Props, pid: int) -> float | None:
    found = props.values.get(pid)
    if found is None or found[1] is None or found[0] != PT_DOUBLE or len(found[1]) < 8:
        return None
    value: float = struct.unpack_from("<d", found[1])[0]
    return value if value == value else None  # NaN: not a value JSON can hold


def _text(props: Props, pid: int) -> str | None:
    found = props.values.get(pid)
    if found is None or found[0] not in (PT_UNICODE, PT_STRING8):
        return None
    return props.str(pid) or None


def item_properties(kind: str | None, props: Props, named: dict[str, int], recipients: list[dict[str, Any]],
                    organizer: dict[str, str | None], exceptions: list[Any]) -> dict[str, Any] | None:
    """The ``item_properties`` object of an item of *kind*; None for mail.

    *recipients*: the recipient rows ({name, email, type, flags, track}); *exceptions*: the
    embedded exception messages (ReadMessages whose item_properties :func:`exception_info`
    made) of a recurring series."""
    if kind == "exception":
        return exception_info(props, named)
    if kind == "appointment":
        return _appointment(props, named, recipients, organizer, exceptions)
    if kind == "contact":
        return _contact(props, named)
    if kind == "distribution_list":
        return _distribution_list(props, named)
    if kind == "task":
        return {"kind": "task", "start": props.time(named.get("task_start", -1)),
                "due": props.time(named.get("task_due", -1)),
                "completed_at": props.time(named.get("task_completed_at", -1)),
                "status": TASK_STATUS.get(props.int(named.get("task_status", -1)) or 0)
                if named.get("task_status", -1) in props else None,
                "percent_complete": _float(props, named.get("task_percent_complete", -1)),
                "owner": _text(props, named.get("task_owner", -1))}
    if kind == "note":
        return {"kind": "note", "color": props.int(named.get("note_color", -1))}
    if kind == "journal":
        return {"kind": "journal", "type": _text(props, named.get("log_type", -1)),
                "start": props.time(named.get("log_start", -1)), "end": props.time(named.get("log_end", -1))}
    return None


def exception_info(props: Props, named: dict[str, int]) -> dict[str, Any]:
    """What the series needs of one of its embedded exception messages (kind ``exception``:
    never a row's value, the series folds it into its ``exceptions``)."""
    return {"kind": "exception", "original_start": props.time(named.get("appt_exception_replace_time", -1)),
            "start": props.time(named.get("appt_start", -1)), "end": props.time(named.get("appt_end", -1)),
            "location": _text(props, named.get("appt_location", -1))}


def _appointment(props: Props, named: dict[str, int], recipients: list[dict[str, Any]],
                 organizer: dict[str, str | None], exceptions: list[Any]) -> dict[str, Any]:
    start = props.time(named.get("appt_start", -1)) or props.time(named.get("common_start", -1))
    end = props.time(named.get("appt_end", -1)) or props.time(named.get("common_end", -1))
    busy = props.int(named.get("appt_busy_status", -1))
    zone = rc.TimeZone.parse(props.raw(named.get("appt_timezone_struct", -1)))
    blob = rc.parse(props.raw(named.get("appt_recur", -1)))
    recurring_flag = named.get("appt_recurring", -1)
    is_recurring = props.bool(recurring_flag) if recurring_flag in props else blob is not None
    attendees = []
    for r in recipients:
        if r["flags"] & 0x0002:  # recipOrganizer: the organizer's own row
            continue
        attendees.append({"name": r["name"], "email": r["email"], "type": ATTENDEE_TYPES.get(r["type"], "required"),
                          "response": RESPONSES.get(r["track"] or 0, "none")})
    return {
        "kind": "appointment",
        "start": start,
        "end": end,
        "all_day": props.bool(named.get("appt_all_day", -1)),
        "location": _text(props, named.get("appt_location", -1)) or _text(props, named.get("meeting_where", -1)),
        "busy_status": BUSY_STATUS.get(busy) if busy is not None else None,
        "organizer": organizer if organizer.get("name") or organizer.get("email") else None,
        "attendees": attendees,
        "is_recurring": is_recurring,
        "recurrence": rc.rrule(blob, zone) if blob is not None else None,
        "exceptions": _exceptions(blob, zone, named, exceptions, props) if blob is not None else [],
        "timezone": _text(props, named.get("appt_timezone", -1)),
    }


def _exceptions(blob: rc.Recurrence, zone: rc.TimeZone | None, named: dict[str, int],
                embedded: list[Any], series: Props) -> list[dict[str, Any]]:
    """Modified and deleted instances, in original-start order: the blob says which, the
    embedded exception messages (UTC times, full texts) say what, where they exist; a
    modified instance that overrides neither subject nor location has the series' (as
    Outlook shows it)."""
    by_original: dict[dt.datetime, Any] = {}
    for message in embedded:
        info = message.item_properties or {}
        if info.get("original_start") is not None:
            by_original[info["original_start"]] = message
    out: list[dict[str, Any]] = []
    # DeletedInstanceDates holds the original dates of the modified instances too
    modified_days = {info.original_start // 1440 for info in blob.exceptions}
    for info in blob.exceptions:
        original = rc.local_to_utc(info.original_start, zone)
        entry: dict[str, Any] = {"original_start": original, "start": rc.local_to_utc(info.start, zone),
                                 "end": rc.local_to_utc(info.end, zone), "subject": info.subject,
                                 "location": info.location, "deleted": False}
        message = by_original.get(original) if original is not None else None
        if message is not None:
            found = message.item_properties
            entry["start"] = found["start"] or entry["start"]
            entry["end"] = found["end"] or entry["end"]
            entry["subject"] = message.subject or entry["subject"]
            entry["location"] = found["location"] or entry["location"]
        subject = _text(series, PR_SUBJECT)
        if subject and subject[0] == "\x01":  # the 0x01 marker and the prefix length (as items.py strips)
            subject = subject[2:]
        entry["subject"] = entry["subject"] or subject
        entry["location"] = entry["location"] or _text(series, named.get("appt_location", -1))
        out.append(entry)
    for day in blob.deleted:
        if day // 1440 in modified_days:
            continue  # a modified instance is listed as deleted too (MS-OXOCAL 2.2.1.44.1)
        out.append({"original_start": rc.local_to_utc(day + blob.start_offset, zone), "start": None, "end": None,
                    "subject": None, "location": None, "deleted": True})
    out.sort(key=lambda e: e["original_start"] or dt.datetime.min)
    return out


def _contact(props: Props, named: dict[str, int]) -> dict[str, Any]:
    emails = []
    for n in (1, 2, 3):
        address = _text(props, named.get(f"email{n}_address", -1))
        if address:
            emails.append({"email": address, "display_name": _text(props, named.get(f"email{n}_display_name", -1)),
                           "type": _text(props, named.get(f"email{n}_address_type", -1))})
    phones = {kind: number for kind, pid in PHONES if (number := _text(props, pid))}
    addresses = []
    for kind in ("work", "home", "other"):
        text = _text(props, named.get(f"{kind}_address", -1))
        if not text and kind in _ADDRESS_PARTS:
            pieces = [_text(props, pid) for pid in _ADDRESS_PARTS[kind]]
            text = "\n".join(p for p in pieces if p) or None
        if text:
            addresses.append({"kind": kind, "text": text})
    return {
        "kind": "contact",
        "display_name": _text(props, PR_DISPLAY_NAME),
        "given_name": _text(props, PR_GIVEN_NAME),
        "surname": _text(props, PR_SURNAME),
        "company": _text(props, PR_COMPANY_NAME),
        "job_title": _text(props, PR_TITLE),
        "email_addresses": emails,
        "phone_numbers": phones,
        "postal_addresses": addresses,
        "birthday": props.time(PR_BIRTHDAY),
    }


def one_off(entry: bytes) -> dict[str, str | None] | None:
    """{name, email} of a one-off entry id (MS-OXCDATA 2.2.5.1), None when it is not one."""
    if len(entry) < 24 or entry[4:20] != _ONE_OFF_PROVIDER:
        return None
    (flags,) = struct.unpack_from("<H", entry, 22)
    body = entry[24:]
    if flags & 0x8000:  # MAPI_UNICODE
        fields = body.decode("utf-16-le", "replace").split("\x00")
    else:
        fields = body.decode("cp1252", "replace").split("\x00")
    if len(fields) < 3:
        return None
    name, addrtype, address = fields[0], fields[1], fields[2]
    return {"name": name or None, "email": address or None, "type": addrtype or None}


def _distribution_list(props: Props, named: dict[str, int]) -> dict[str, Any]:
    members = []
    found = props.values.get(named.get("dl_one_off_members", -1))
    if found is not None and found[1] is not None and found[0] == PT_MV_BINARY:
        for raw in _multi(found[1]):
            member = one_off(raw)
            if member is not None:
                members.append({"name": member["name"], "email": member["email"]})
    return {"kind": "distribution_list", "name": _text(props, named.get("dl_name", -1)) or _text(props, PR_DISPLAY_NAME),
            "members": members}


__all__ = ["EXCEPTION_CLASS", "is_exception", "item_properties", "kind_of", "multi_strings", "one_off"]
