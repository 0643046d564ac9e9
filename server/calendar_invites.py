"""The calendar entry attached to an invitation: an iCalendar object (RFC 5545).

The `icalendar` library writes it, escaping text and folding lines at 75 octets. Times
are in UTC (no VTIMEZONE to get wrong: calendars show them in the reader's own zone). The
UID is the interview's, so the reminder's copy updates the invitation's entry instead of
adding a second one, and SEQUENCE counts the appointment's moves, so a moved time replaces
the one a calendar holds. METHOD:PUBLISH: the entry informs, nobody is asked to reply;
METHOD:CANCEL with STATUS:CANCELLED withdraws it (RFC 5546 3.2.1 and 3.2.5, both naming
the ORGANIZER).
"""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event, vCalAddress

PRODUCT_ID = "-//NEXUS joint interviews//nexus-interview//EN"


def interview_uid(interview_id: str, host: str) -> str:
    """The same for every message about one interview (RFC 5545 3.8.4.7: globally unique)."""
    return f"{interview_id}@{host}"


def interview_event(
    *,
    uid: str,
    starts: datetime,
    ends: datetime,
    summary: str,
    description: str,
    link: str | None,
    stamp: datetime,
    organizer: str,
    sequence: int = 0,
    cancelled: bool = False,
) -> bytes:
    """The .ics bytes of one interview's appointment (``starts``..``ends``, aware times);
    ``organizer``: the e-mail address that sends it; ``sequence``: its revision;
    ``cancelled``: withdrawn."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", _utc(stamp))
    event.add("dtstart", _utc(starts))
    event.add("dtend", _utc(ends))
    event.add("summary", summary)
    event.add("description", description)
    if link:
        event.add("location", link)
        event.add("url", link)
    event.add("organizer", vCalAddress(f"mailto:{organizer}"))
    event.add("sequence", sequence)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    calendar.add_component(event)
    ics: bytes = calendar.to_ical()
    return ics


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("calendar times must carry their time zone")
    return moment.astimezone(UTC)
