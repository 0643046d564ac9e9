"""The applicant's e-mails as they are written: the invitation, its reminder, the update
after a move and the cancellation, in the applicant's language (English and French when
it is not one of ours), with the appointment in their time zone and a calendar entry.

Every message about one interview carries the same calendar UID, and its SEQUENCE is the
appointment's move count, so a calendar replaces the entry it holds with the newest time
(RFC 5546: a higher sequence supersedes); the cancellation withdraws it (METHOD:CANCEL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from types import MappingProxyType
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from babel.dates import format_date, format_time

import web as web_assets
from common.secret import Secret

from .calendar_invites import interview_event, interview_uid
from .i18n import LANGUAGES, Catalogs, Translator
from .settings import Settings
from .store.applications import Application
from .store.interviews import Interview
from .store.invitations import InvitationKind

MAIL_TEMPLATES = web_assets.TEMPLATES / "mail"
_LOCALES = MappingProxyType({"en": "en_CA", "fr": "fr_CA"})
_SUBJECTS = MappingProxyType(
    {
        InvitationKind.INVITATION: "Your NEXUS interview",
        InvitationKind.REMINDER: "Reminder: your NEXUS interview",
        InvitationKind.UPDATE: "New time for your NEXUS interview",
        InvitationKind.CANCELLATION: "Your NEXUS interview is cancelled",
    }
)


def languages_for(language: str | None) -> tuple[str, ...]:
    """The applicant's language when it is one of ours; else every one, English first."""
    return (language,) if language in LANGUAGES else tuple(LANGUAGES)


def applicant_zone(application: Application, settings: Settings) -> ZoneInfo:
    if application.time_zone:
        try:
            return ZoneInfo(application.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # checked at import; a zone the system no longer knows: the default
    return settings.applicant_time_zone


def when_text(starts: datetime, ends: datetime, zone: ZoneInfo, translate: Translator) -> str:
    """'Monday, December 7, 2026, from 9:00 a.m. to 10:15 a.m.' in ``translate``'s
    language, in ``zone``."""
    locale = _LOCALES.get(translate.language, "en_CA")
    local_start, local_end = starts.astimezone(zone), ends.astimezone(zone)
    day = format_date(local_start, "full", locale=locale)
    start = format_time(local_start, "short", locale=locale)
    end = format_time(local_end, "short", locale=locale)
    if local_end.date() != local_start.date():
        end = f"{format_date(local_end, 'medium', locale=locale)} {end}"
    return f"{day}, {translate('from {starts} to {ends}', starts=start, ends=end)}"


@dataclass(frozen=True)
class _Part:
    language: str
    translate: Translator
    when: str


class Letters:
    """Renders messages from the templates in web/templates/mail."""

    def __init__(self, catalogs: Catalogs, settings: Settings) -> None:
        self._catalogs = catalogs
        self._settings = settings
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(MAIL_TEMPLATES),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def message(
        self,
        interview: Interview,
        application: Application,
        kind: InvitationKind,
        link: Secret[str] | None,
        now: datetime,
        sequence: int = 0,
    ) -> EmailMessage:
        """The message of ``kind``; ``link`` opens the interview (None in a cancellation,
        whose links no longer work); ``sequence``: the calendar entry's revision."""
        settings = self._settings
        zone = applicant_zone(application, settings)
        translators = [self._catalogs.translator(x) for x in languages_for(application.language)]
        parts = [
            _Part(t.language, t, when_text(interview.window_start, interview.window_end, zone, t))
            for t in translators
        ]
        subject = " / ".join(part.translate(_SUBJECTS[kind]) for part in parts)
        cancelled = kind is InvitationKind.CANCELLATION
        context = {
            "parts": parts,
            "subject": subject,
            "name": f"{application.given_names} {application.surname}",
            "zone": zone.key,
            "reminder": kind is InvitationKind.REMINDER,
            "moved": kind is InvitationKind.UPDATE,
            "check_in_minutes": settings.check_in_opens_minutes,
            "link": link.reveal() if link else "",
        }
        template = "cancellation" if cancelled else "invitation"
        host = urlsplit(settings.public_url).hostname or "localhost"
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = settings.mail_from
        message["To"] = application.email
        message["Date"] = format_datetime(now)
        message["Message-ID"] = make_msgid(domain=host)
        message["Content-Language"] = ", ".join(part.language for part in parts)
        message.set_content(self._templates.get_template(f"{template}.txt").render(context))
        message.add_alternative(
            self._templates.get_template(f"{template}.html").render(context), subtype="html"
        )
        summary = " / ".join(part.translate("Your NEXUS interview") for part in parts)
        ics = interview_event(
            uid=interview_uid(interview.id, host),
            starts=interview.window_start,
            ends=interview.window_end,
            summary=summary,
            description=f"{summary}\n{link.reveal()}" if link else summary,
            link=link.reveal() if link else None,
            stamp=now,
            organizer=parseaddr(settings.mail_from)[1],
            sequence=sequence,
            cancelled=cancelled,
        )
        method = "CANCEL" if cancelled else "PUBLISH"
        message.add_attachment(
            ics,
            maintype="text",
            subtype="calendar",
            filename="interview.ics",
            params={"method": method, "charset": "utf-8"},
        )
        return message
