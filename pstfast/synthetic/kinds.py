"""The synthetic corpus's items other than mail: appointments (recurring ones with
exceptions, meeting requests), contacts, distribution lists, tasks, drafts, and review
metadata on a few mail messages; each with the ``item_properties`` the extract must give.

Everything here draws from a random stream of its own (``"<seed>:kinds"``), and the items
are added after the mail into folders of their own (Calendar, Contacts, Tasks, Drafts), so
the mail of a seed keeps its bytes and node ids except for the few messages that get
metadata (categories, unread, sensitivity).
"""

from __future__ import annotations

import datetime as _dt
import random
import struct
from dataclasses import dataclass
from typing import Any

from ..pst import recurrence as rc
from ..pst.props import (
    MAPI_BCC,
    MAPI_CC,
    MAPI_TO,
    PR_BIRTHDAY,
    PR_BUSINESS_FAX_NUMBER,
    PR_BUSINESS_TELEPHONE_NUMBER,
    PR_COMPANY_NAME,
    PR_DISPLAY_NAME,
    PR_GIVEN_NAME,
    PR_HOME_TELEPHONE_NUMBER,
    PR_MOBILE_TELEPHONE_NUMBER,
    PR_SURNAME,
    PR_TITLE,
    PT_BOOLEAN,
    PT_LONG,
    PT_SYSTIME,
    PT_UNICODE,
    tag,
)
from ..pst.write.messaging import Attachment, Message, Recipient, filetime

EXCEPTION_CLASS = "IPM.OLE.CLASS.{00061055-0000-0000-C000-000000000046}"
#: W. Europe Standard Time: UTC+1, daylight UTC+2 from the last Sunday of March 02:00 to
#: the last Sunday of October 03:00 (the blob's local times need the rule to become UTC)
ZONE = rc.TimeZone(-60, 0, -60, (0, 10, 0, 5, 3, 0, 0, 0), (0, 3, 0, 5, 2, 0, 0, 0))
ZONE_NAME = "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna"
KINDS = ("appointment", "recurring", "meeting", "contact", "task", "distribution_list", "draft")
_WEIGHTS = (30, 10, 10, 25, 10, 5, 10)
_TITLES = ("Engineer", "Counsel", "Director of Finance", "Analyst", "Paralegal")
_COMPANIES = ("Example Corp", "Müller & Söhne GmbH", "株式会社サンプル", "Acme Ltd")
_PLACES = ("Room 4.12", "Konferenzraum Süd", "Zoom", "Cafeteria", "会議室A")
_ONE_OFF_PROVIDER = bytes.fromhex("812b1fa4bea310199d6e00dd010f5402")
_ATTACH_EXCEPTION_START = tag(0x7FFB, PT_SYSTIME)  # PidTagExceptionStartTime
_ATTACH_EXCEPTION_END = tag(0x7FFC, PT_SYSTIME)  # PidTagExceptionEndTime
_ATTACHMENT_FLAGS = tag(0x7FFD, PT_LONG)  # PidTagAttachmentFlags (afException 0x2)
_ATTACHMENT_HIDDEN = tag(0x7FFE, PT_BOOLEAN)


def iso(value: _dt.datetime | None) -> str | None:
    """A naive UTC datetime as the extract writes it."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def one_off_entry_id(name: str, email: str) -> bytes:
    """A one-off entry id (MS-OXCDATA 2.2.5.1), Unicode, as Outlook stores DL members."""
    return (b"\0\0\0\0" + _ONE_OFF_PROVIDER + struct.pack("<HH", 0, 0x8000 | 0x1000)  # MAPI_UNICODE, no TNEF
            + (name + "\0SMTP\0" + email + "\0").encode("utf-16-le"))


@dataclass
class Item:
    """One item of another kind: the message to write, its folder, what the row must say."""

    kind: str
    folder: str  # Calendar | Contacts | Tasks | Drafts
    message: Message
    expected: dict[str, Any] | None  # item_properties as JSON


class KindGenerator:
    """Draws the other items and the mail metadata from the ``<seed>:kinds`` stream."""

    def __init__(self, seed: int, people: list[tuple[str, str]]) -> None:
        self.rng = random.Random(f"{seed}:kinds")
        self.people = people

    def metadata(self, msg: Message) -> None:
        """Review metadata on about one mail message in ten (categories, unread, sensitivity)."""
        rng = self.rng
        if rng.random() < 0.04:
            msg.categories = rng.sample(["Red Category", "Privileged", "Follow up", "Projekt Ä", "重要"],
                                        rng.randint(1, 2))
        if rng.random() < 0.04:
            msg.read = False
        if rng.random() < 0.02:
            msg.sensitivity = rng.choice((1, 2, 3))

    def items(self, count: int) -> list[Item]:
        """*count* items: one of each kind first, then drawn by kind shares."""
        kinds = list(KINDS[:count]) + self.rng.choices(KINDS, _WEIGHTS, k=max(count - len(KINDS), 0))
        return [getattr(self, f"_{kind}")(i) for i, kind in enumerate(kinds)]

    # --- kinds ------------------------------------------------------------------------------

    def _when(self) -> _dt.datetime:
        base = _dt.datetime(2021, 1, 4, 8, 0)
        return base + _dt.timedelta(days=self.rng.randint(0, 700), minutes=30 * self.rng.randint(0, 18))

    def _person(self) -> tuple[str, str]:
        return self.rng.choice(self.people)

    def _base(self, cls: str, subject: str, when: _dt.datetime) -> Message:
        name, email = self.people[0]
        return Message(subject=subject, sender_name=name, sender_email=email, sent_at=None,
                       received_at=when, message_class=cls, body_text=f"{subject}\r\n", created_at=when,
                       modified_at=when + _dt.timedelta(minutes=5))

    def _appointment(self, i: int, *, recurring: bool = False, meeting: bool = False) -> Item:
        rng = self.rng
        local = self._when()
        minutes = rng.choice((30, 60, 90))
        start, end = ZONE.to_utc(local), ZONE.to_utc(local + _dt.timedelta(minutes=minutes))
        all_day = not recurring and not meeting and rng.random() < 0.2
        if all_day:
            local = local.replace(hour=0, minute=0)
            start, end = ZONE.to_utc(local), ZONE.to_utc(local + _dt.timedelta(days=1))
        location = rng.choice(_PLACES)
        subject = f"{'Weekly sync' if recurring else 'Meeting' if meeting else 'Appointment'} {i}"
        cls = "IPM.Schedule.Meeting.Request" if meeting else "IPM.Appointment"
        msg = self._base(cls, subject, start - _dt.timedelta(days=2))
        busy = rng.choice((0, 1, 2, 3))
        msg.named = {"appt_start": start, "appt_end": end, "common_start": start, "common_end": end,
                     "appt_location": location, "appt_busy_status": busy, "appt_all_day": all_day,
                     "appt_recurring": recurring, "appt_timezone": ZONE_NAME,
                     "appt_timezone_struct": ZONE.to_bytes()}
        organizer = self.people[0]
        attendees: list[dict[str, Any]] = []
        if meeting or recurring:
            msg.recipients.append(Recipient(organizer[0], organizer[1], MAPI_TO, flags=3, track_status=1))
            for n, (name, email) in enumerate(rng.sample(self.people[1:], rng.randint(1, 4))):
                kind = MAPI_TO if n == 0 else rng.choice((MAPI_TO, MAPI_CC, MAPI_BCC))
                track = rng.choice((0, 2, 3, 4, 5))
                msg.recipients.append(Recipient(name, email, kind, flags=1, track_status=track))
                attendees.append({"name": name, "email": email,
                                  "type": {MAPI_TO: "required", MAPI_CC: "optional", MAPI_BCC: "resource"}[kind],
                                  "response": {0: "none", 2: "tentative", 3: "accepted", 4: "declined",
                                               5: "not_responded"}[track]})
        expected: dict[str, Any] = {
            "kind": "appointment", "start": iso(start), "end": iso(end), "all_day": all_day, "location": location,
            "busy_status": ("free", "tentative", "busy", "out_of_office")[busy],
            "organizer": {"name": organizer[0], "email": organizer[1]}, "attendees": attendees,
            "is_recurring": recurring, "recurrence": None, "exceptions": [], "timezone": ZONE_NAME,
        }
        if recurring:
            self._recur(msg, local, minutes, expected)
        return Item("appointment", "Calendar", msg, expected)

    def _recurring(self, i: int) -> Item:
        return self._appointment(i, recurring=True)

    def _meeting(self, i: int) -> Item:
        return self._appointment(i, meeting=True)

    def _recur(self, msg: Message, local: _dt.datetime, minutes: int, expected: dict[str, Any]) -> None:
        """A weekly series on the start's weekday, 10 occurrences: one moved (with a new
        subject and place, an exception attachment as Outlook stores it), one deleted."""
        rng = self.rng
        interval = rng.choice((1, 2))
        day = (local.weekday() + 1) % 7  # the blob's days: bit 0 Sunday
        midnight = local.replace(hour=0, minute=0)
        offset = local.hour * 60 + local.minute
        count = 10
        occurrences = [midnight + _dt.timedelta(weeks=interval * k) for k in range(count)]
        moved, deleted = occurrences[2], occurrences[5]
        new_local = moved + _dt.timedelta(days=1, minutes=offset + 60)
        info = rc.ExceptionInfo(rc.to_minutes(new_local), rc.to_minutes(new_local) + minutes,
                                rc.to_minutes(moved) + offset, f"Moved: {msg.subject}", "Room 1.01")
        rec = rc.Recurrence(rc.FREQ_WEEKLY, rc.PATTERN_WEEK, interval, (1 << day,), rc.END_COUNT, count, 1,
                            [rc.to_minutes(moved), rc.to_minutes(deleted)], [rc.to_minutes(new_local.replace(
                                hour=0, minute=0))], rc.to_minutes(midnight), rc.to_minutes(occurrences[-1]),
                            offset, offset + minutes, [info])
        msg.named["appt_recur"] = rc.build(rec)
        msg.named["meeting_is_recurring"] = True
        new_start, new_end = ZONE.to_utc(new_local), ZONE.to_utc(new_local + _dt.timedelta(minutes=minutes))
        original = ZONE.to_utc(moved + _dt.timedelta(minutes=offset))
        exception = Message(subject=info.subject or "", sender_name=msg.sender_name, sender_email=msg.sender_email,
                            sent_at=None, received_at=msg.received_at, message_class=EXCEPTION_CLASS,
                            named={"appt_start": new_start, "appt_end": new_end,
                                   "appt_exception_replace_time": original, "appt_location": info.location})
        msg.attachments.append(Attachment("Untitled", message=exception, extra={
            _ATTACH_EXCEPTION_START: filetime(new_local), _ATTACH_EXCEPTION_END: filetime(
                new_local + _dt.timedelta(minutes=minutes)), _ATTACHMENT_FLAGS: 2, _ATTACHMENT_HIDDEN: True}))
        days = ",".join(("SU", "MO", "TU", "WE", "TH", "FR", "SA")[d] for d in range(7) if (1 << day) >> d & 1)
        expected["recurrence"] = f"FREQ=WEEKLY;INTERVAL={interval};BYDAY={days};COUNT={count}"
        expected["exceptions"] = [
            {"original_start": iso(original), "start": iso(new_start), "end": iso(new_end), "subject": info.subject,
             "location": info.location, "deleted": False},
            {"original_start": iso(ZONE.to_utc(deleted + _dt.timedelta(minutes=offset))), "start": None, "end": None,
             "subject": None, "location": None, "deleted": True},
        ]

    def _contact(self, i: int) -> Item:
        rng = self.rng
        given, surname = rng.choice(("Ada", "Jürgen", "Yuki", "Olu", "Marta")), rng.choice(
            ("Lovelace", "Groß", "Tanaka", "Adeyemi", "Núñez"))
        name = f"{given} {surname} {i}"
        email = f"{given.lower()}.{i}@contacts.example.com".replace("ü", "ue")
        company, title = rng.choice(_COMPANIES), rng.choice(_TITLES)
        phones = {"business": f"+49 30 {rng.randint(1000000, 9999999)}", "mobile": f"+1 555 {rng.randint(1000, 9999)}"}
        if rng.random() < 0.5:
            phones["home"] = f"+44 20 {rng.randint(10000000, 99999999)}"
        if rng.random() < 0.3:
            phones["business_fax"] = f"+49 30 {rng.randint(1000000, 9999999)}"
        birthday = _dt.datetime(rng.randint(1950, 2000), rng.randint(1, 12), rng.randint(1, 28), 0, 0)
        work = f"{rng.randint(1, 200)} Main Street\r\nSpringfield, IL 62701\r\nUSA"
        msg = self._base("IPM.Contact", name, self._when())
        msg.body_text = None
        second = rng.random() < 0.4
        msg.named = {"email1_address": email, "email1_address_type": "SMTP", "email1_display_name": f"{name} ({email})",
                     "work_address": work, "file_under": f"{surname} {i}, {given}"}
        if second:
            msg.named.update({"email2_address": f"private.{i}@home.example.org", "email2_address_type": "SMTP",
                              "email2_display_name": f"{name} (private)"})
        kinds = {"business": PR_BUSINESS_TELEPHONE_NUMBER, "mobile": PR_MOBILE_TELEPHONE_NUMBER,
                 "home": PR_HOME_TELEPHONE_NUMBER, "business_fax": PR_BUSINESS_FAX_NUMBER}
        msg.extra = {tag(PR_DISPLAY_NAME, PT_UNICODE): name, tag(PR_GIVEN_NAME, PT_UNICODE): given,
                     tag(PR_SURNAME, PT_UNICODE): f"{surname} {i}", tag(PR_COMPANY_NAME, PT_UNICODE): company,
                     tag(PR_TITLE, PT_UNICODE): title, tag(PR_BIRTHDAY, PT_SYSTIME): filetime(birthday),
                     **{tag(kinds[k], PT_UNICODE): v for k, v in phones.items()}}
        emails = [{"email": email, "display_name": f"{name} ({email})", "type": "SMTP"}]
        if second:
            emails.append({"email": f"private.{i}@home.example.org", "display_name": f"{name} (private)", "type": "SMTP"})
        order = ("business", "home", "mobile", "business_fax")
        expected = {"kind": "contact", "display_name": name, "given_name": given, "surname": f"{surname} {i}",
                    "company": company, "job_title": title, "email_addresses": emails,
                    "phone_numbers": {k: phones[k] for k in order if k in phones},
                    "postal_addresses": [{"kind": "work", "text": work}], "birthday": iso(birthday)}
        return Item("contact", "Contacts", msg, expected)

    def _distribution_list(self, i: int) -> Item:
        members = self.rng.sample(self.people, self.rng.randint(2, 5))
        name = f"Team list {i}"
        msg = self._base("IPM.DistList", name, self._when())
        msg.named = {"dl_name": name, "dl_one_off_members": [one_off_entry_id(n, e) for n, e in members]}
        msg.extra = {tag(PR_DISPLAY_NAME, PT_UNICODE): name}
        return Item("distribution_list", "Contacts", msg, {
            "kind": "distribution_list", "name": name, "members": [{"name": n, "email": e} for n, e in members]})

    def _task(self, i: int) -> Item:
        rng = self.rng
        start = self._when().replace(hour=0, minute=0)
        due = start + _dt.timedelta(days=rng.randint(1, 30))
        status = rng.choice((0, 1, 2, 3))
        percent = {0: 0.0, 1: 0.5, 2: 1.0, 3: 0.25}[status]
        completed = due if status == 2 else None
        owner = self.people[0][0]
        msg = self._base("IPM.Task", f"Task {i}: review batch", start)
        msg.named = {"task_start": start, "task_due": due, "task_status": status, "task_percent_complete": percent,
                     "task_complete": status == 2, "task_owner": owner, "task_completed_at": completed}
        return Item("task", "Tasks", msg, {
            "kind": "task", "start": iso(start), "due": iso(due), "completed_at": iso(completed),
            "status": ("not_started", "in_progress", "complete", "waiting")[status], "percent_complete": percent,
            "owner": owner})

    def _draft(self, i: int) -> Item:
        to = self._person()
        msg = self._base("IPM.Note", f"Draft {i}: not sent yet", self._when())
        msg.draft, msg.read = True, True
        msg.recipients = [Recipient(to[0], to[1], MAPI_TO)]
        msg.sent_at = None
        return Item("draft", "Drafts", msg, None)


__all__ = ["EXCEPTION_CLASS", "Item", "KindGenerator", "ZONE", "iso", "one_off_entry_id"]
