"""Invitation e-mails end to end: a real server (`create_app`) queues and sends them to a
real SMTP server in this process; what arrives is parsed (both languages, the link, the
calendar entry), its link opened on the server, and the outbox's statuses read back."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, time, timedelta
from pathlib import Path

import aiohttp
import icalendar
import pytest
from aiohttp.test_utils import TestServer

from common.names import Agency
from common.secret import Secret
from server import appointments, operator, rosters
from server.app import create_app
from server.appkeys import LIVES, OUTBOX, SETTINGS, STORE
from server.auth import token_hash
from server.interview_actions import Cancel
from server.invitations import queue_invitation
from server.settings import Settings, load_settings
from server.store import Store
from server.store.invitations import InvitationKind, InvitationStatus
from server.types import InterviewMode

from .fakes import FakeClock, add_applications, application, fast_passwords
from .mail_server import Inbox, calendar_of, html_of, smtp_server, text_of

LINK = re.compile(r"http://[^\s\"<>]+/i/([A-Za-z0-9_-]{43})")


def mail_settings(tmp_path: Path, port: int, **more: str) -> Settings:
    return load_settings(
        {},
        {
            "data_dir": str(tmp_path / "data"),
            "media_workers": "0",
            "mail_from": "nexus@cbsa.example",
            "smtp_host": "127.0.0.1",
            "smtp_port": str(port),
            "smtp_tls": "none",
            "reminder_hours": "24",
            **more,
        },
    )


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as running:
        yield running


@pytest.fixture
async def server(
    tmp_path: Path, smtp: tuple[Inbox, int], clock: FakeClock
) -> AsyncIterator[TestServer]:
    settings = mail_settings(tmp_path, smtp[1])
    running = TestServer(create_app(settings, clock, fast_passwords()), host="127.0.0.1")
    await running.start_server()
    await add_applications(
        running.app[STORE],
        application("NX-EN", email="emily@example.org", language="en"),
        application(
            "NX-FR", email="emilie@example.org", language="fr", time_zone="America/Montreal"
        ),
    )
    yield running
    await running.close()


async def arrived(inbox: Inbox, count: int) -> None:
    for _ in range(200):
        if len(inbox.messages) >= count:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{len(inbox.messages)} message(s) arrived, not {count}")


async def sent(store: Store, interview_id: str) -> None:
    """Wait until the interview's invitation is marked sent."""
    for _ in range(200):
        rows = await store.invitations.of_interview(interview_id)
        if rows[0].status is InvitationStatus.SENT:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"the invitation is {rows[0].status}, not sent")


async def invite(server: TestServer, clock: FakeClock, app_id: str, days: int = 3) -> str:
    invitation = await operator.invite(
        server.app[STORE],
        server.app[OUTBOX]._settings,
        app_id,
        InterviewMode.JOINT,
        clock() + timedelta(days=days),
        2,
    )
    assert invitation.emailed
    server.app[OUTBOX].wake()
    return invitation.interview_id


async def open_link(server: TestServer, token: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.make_url(f"/i/{token}"), headers={"Accept-Language": "en"}) as got,
    ):
        return got.status, await got.text()


async def test_french_applicant_gets_french_invitation_with_link_and_calendar_entry(
    server: TestServer, smtp: tuple[Inbox, int], clock: FakeClock
) -> None:
    inbox = smtp[0]
    interview_id = await invite(server, clock, "NX-FR")
    await arrived(inbox, 1)
    message = inbox.messages[0]
    assert message["To"] == "emilie@example.org"
    assert message["Subject"] == "Votre entrevue NEXUS"
    text = text_of(message)
    assert "Bonjour Émilie Tremblay," in text
    assert "Fuseau horaire : America/Montreal" in text
    assert "Your NEXUS interview" not in text
    tokens = LINK.findall(text)
    assert len(tokens) == 1
    assert tokens[0] in html_of(message)

    interview = await server.app[STORE].interviews.get(interview_id)
    local = interview.window_start.astimezone(interview.window_start.tzinfo)
    assert str(local.year) in text
    event = icalendar.Calendar.from_ical(calendar_of(message)).walk("VEVENT")[0]
    assert event.decoded("dtstart") == interview.window_start
    assert event.decoded("dtend") == interview.window_end
    assert str(event["uid"]).startswith(f"{interview_id}@")
    assert tokens[0] in str(event["url"])

    await sent(server.app[STORE], interview_id)
    status, page = await open_link(server, tokens[0])
    assert status == 200, page
    assert "Your NEXUS interview" in page
    rows = await server.app[STORE].invitations.of_interview(interview_id)
    assert [(r.kind, r.status) for r in rows] == [
        (InvitationKind.INVITATION, InvitationStatus.SENT),
        (InvitationKind.REMINDER, InvitationStatus.QUEUED),
    ]


async def test_english_applicant_gets_english_invitation_in_the_default_time_zone(
    server: TestServer, smtp: tuple[Inbox, int], clock: FakeClock
) -> None:
    inbox = smtp[0]
    await invite(server, clock, "NX-EN")
    await arrived(inbox, 1)
    message = inbox.messages[0]
    assert message["Subject"] == "Your NEXUS interview"
    text = text_of(message)
    assert "Hello Émilie Tremblay," in text
    assert "Time zone: America/Toronto" in text
    assert "Bonjour" not in text


async def test_each_message_carries_its_own_link_and_all_work_until_cancelled(
    server: TestServer, smtp: tuple[Inbox, int], clock: FakeClock
) -> None:
    inbox = smtp[0]
    store: Store = server.app[STORE]
    interview_id = await invite(server, clock, "NX-EN", days=2)
    await arrived(inbox, 1)
    clock.advance(24 * 3600 + 60)  # the reminder's time (24 hours before) has come
    server.app[OUTBOX].wake()
    await arrived(inbox, 2)
    reminder = text_of(inbox.messages[1])
    assert "This is a reminder of your appointment." in reminder
    first, second = LINK.findall(text_of(inbox.messages[0]))[0], LINK.findall(reminder)[0]
    assert first != second
    for token in (first, second):
        assert (await open_link(server, token))[0] == 200

    async with store.database.transaction() as db:
        rows = await db.execute_fetchall(
            "SELECT token_hash FROM interview_links WHERE interview_id = ?", (interview_id,)
        )
    stored = {bytes(row[0]) for row in rows}
    assert {token_hash(first), token_hash(second)} <= stored

    await server.app[LIVES].act(interview_id, Cancel(), detail={"by": "test"})
    for token in (first, second):
        assert (await open_link(server, token))[0] == 404


async def test_a_cancelled_interview_gets_no_mail(
    server: TestServer, smtp: tuple[Inbox, int], clock: FakeClock
) -> None:
    store: Store = server.app[STORE]
    interview = await operator.invite(
        store, server.app[OUTBOX]._settings, "NX-EN", InterviewMode.JOINT, clock(), 2
    )
    await server.app[LIVES].act(interview.interview_id, Cancel(), detail={"by": "test"})
    server.app[OUTBOX].wake()
    for _ in range(100):
        rows = await store.invitations.of_interview(interview.interview_id)
        if rows[0].status is not InvitationStatus.QUEUED:
            break
        await asyncio.sleep(0.02)
    assert rows[0].status is InvitationStatus.DROPPED
    assert smtp[0].messages == []


async def test_queueing_twice_queues_one_invitation(
    server: TestServer, smtp: tuple[Inbox, int], clock: FakeClock
) -> None:
    store: Store = server.app[STORE]
    interview_id = await invite(server, clock, "NX-EN")
    settings = server.app[OUTBOX]._settings
    assert await queue_invitation(store, settings, interview_id) is False
    await arrived(smtp[0], 1)
    await asyncio.sleep(0.2)
    assert len(smtp[0].messages) == 1
    assert len(await store.invitations.of_interview(interview_id)) == 2  # and its reminder


async def test_the_token_is_in_neither_the_logs_nor_the_database_file(
    server: TestServer,
    smtp: tuple[Inbox, int],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store: Store = server.app[STORE]
    interview_id = await invite(server, clock, "NX-FR")
    await arrived(smtp[0], 1)
    token = LINK.findall(text_of(smtp[0].messages[0]))[0]
    await sent(store, interview_id)
    assert "sent the invitation" in caplog.text  # the sender's log was captured
    assert token not in caplog.text
    await store.database.close()  # everything written out of the WAL into the file
    database = store.database.path
    files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
    data = b"".join(p.read_bytes() for p in files)
    assert token_hash(token) in data  # the hash is there, so the file was read whole
    assert token.encode() not in data


async def test_each_appointment_schedule_books_is_e_mailed_in_its_applicants_language(
    server: TestServer, smtp: tuple[Inbox, int], clock: FakeClock
) -> None:
    store: Store = server.app[STORE]
    settings = server.app[SETTINGS]
    zone = settings.office_time_zone
    # the day after tomorrow: past the day's notice scheduling gives, whatever the hour now
    in_two_days = datetime.combine(
        clock().astimezone(zone).date() + timedelta(days=2), time(10), zone
    )
    for agency in Agency:
        username = f"{agency.lower()}.roster"
        await operator.add_officer(
            store, fast_passwords(), username, "Officer", agency, None, Secret("x" * 16)
        )
        await rosters.add_window(store, username, in_two_days, in_two_days + timedelta(hours=1))

    run = await appointments.schedule(store, settings, clock(), 3, InterviewMode.JOINT)
    server.app[OUTBOX].wake()
    await arrived(smtp[0], 2)

    assert len(run.appointments) == 2
    by_recipient = {message["To"]: message for message in smtp[0].messages}
    assert set(by_recipient) == {"emily@example.org", "emilie@example.org"}
    assert by_recipient["emilie@example.org"]["Subject"] == "Votre entrevue NEXUS"
    assert by_recipient["emily@example.org"]["Subject"] == "Your NEXUS interview"
