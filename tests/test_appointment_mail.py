"""What the applicant is told when their appointment moves or is cancelled, through the real
server and a real SMTP server: an update with the new time whose calendar entry replaces
the one sent (same UID, higher SEQUENCE), the reminder re-timed, a cancellation that
withdraws the entry (METHOD:CANCEL), each once however often the applicant clicks."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import icalendar
import pytest
from aiohttp.test_utils import TestServer
from babel.dates import format_time

from server.app import create_app
from server.appkeys import OUTBOX
from server.settings import Settings
from server.store.invitations import Invitation, InvitationKind, InvitationStatus

from .fakes import FakeClock, World, fast_passwords
from .mail_server import Inbox, calendar_of, smtp_server, text_of
from .test_reschedule import Booked, booked, offered, post

APPLICANT = "nx-0001@example.org"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as running:
        yield running


async def mail_world(
    settings: Settings, clock: FakeClock, port: int, **more: object
) -> AsyncIterator[World]:
    configured = settings.replace(
        mail_from="nexus@cbsa.example",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        **more,
    )
    server = TestServer(create_app(configured, clock, fast_passwords()), host="127.0.0.1")
    await server.start_server()
    world = World(server, configured, clock, fast_passwords())
    yield world
    for client in world.clients:
        await client.close()
    await server.close()


@pytest.fixture
async def mailing(
    settings: Settings, clock: FakeClock, inbox: tuple[Inbox, int]
) -> AsyncIterator[World]:
    async for world in mail_world(settings, clock, inbox[1]):
        yield world


async def delivered(world: World, inbox: Inbox, count: int) -> list[EmailMessage]:
    """Send what is due (the app's own outbox) until the inbox holds ``count`` messages."""
    for _ in range(50):
        await world.server.app[OUTBOX].drain()
        if len(inbox.messages) >= count:
            break
    assert len(inbox.messages) == count, [m["Subject"] for m in inbox.messages]
    return inbox.messages


def event_of(message: EmailMessage) -> tuple[str, icalendar.cal.Component]:
    calendar = icalendar.Calendar.from_ical(calendar_of(message))
    [event] = calendar.walk("VEVENT")
    return str(calendar["METHOD"]), event


async def messages(world: World, booking: Booked) -> list[Invitation]:
    return await world.store.invitations.of_interview(booking.interview_id)


async def test_a_moved_appointment_sends_the_new_time_whose_entry_replaces_the_old_one(
    mailing: World, inbox: tuple[Inbox, int]
) -> None:
    world = mailing
    booking = await booked(world)
    [invitation] = await delivered(world, inbox[0], 1)
    _, first = event_of(invitation)
    assert first.decoded("sequence") == 0
    times = offered(await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text())
    new_time = datetime.fromisoformat(times[1])
    for _ in range(2):  # a double click moves it once and tells the applicant once
        status, _ = await post(world, booking, "appointment", {"starts": times[1]})
        assert status == 200
    queued = await messages(world, booking)
    assert [(m.kind, m.revision) for m in queued if m.kind is InvitationKind.UPDATE] == [
        (InvitationKind.UPDATE, 1)
    ]
    [reminder] = [m for m in queued if m.kind is InvitationKind.REMINDER]
    assert reminder.status is InvitationStatus.QUEUED
    assert reminder.due_at == new_time - timedelta(hours=world.settings.reminder_hours)

    update = (await delivered(world, inbox[0], 2))[1]
    assert update["Subject"] == "Nouvelle heure pour votre entrevue NEXUS"  # a French applicant
    text = text_of(update)
    assert "Votre rendez-vous a été déplacé" in text
    vancouver = new_time.astimezone(ZoneInfo("America/Vancouver"))  # the applicant's zone
    assert format_time(vancouver, "short", locale="fr_CA") in text
    method, event = event_of(update)
    assert method == "PUBLISH" and event["UID"] == first["UID"]
    assert event.decoded("sequence") == 1 and event.decoded("dtstart") == new_time
    assert str(event["ORGANIZER"]) == "mailto:nexus@cbsa.example"
    # the update's own link opens the interview, like every link sent
    link = re.search(r"/i/([A-Za-z0-9_-]+)", text)
    assert link is not None
    assert (await booking.applicant.get(f"/i/{link[1]}/appointment")).status == 200

    # The reminder goes at its new time and holds the new time too.
    world.clock.advance((reminder.due_at - world.clock()).total_seconds())
    reminded = (await delivered(world, inbox[0], 3))[2]
    assert reminded["Subject"].startswith("Rappel")
    _, event = event_of(reminded)
    assert event.decoded("sequence") == 1 and event.decoded("dtstart") == new_time


async def test_a_second_move_supersedes_an_update_not_yet_sent(
    mailing: World, inbox: tuple[Inbox, int]
) -> None:
    world = mailing
    booking = await booked(world)
    await delivered(world, inbox[0], 1)
    page = await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text()
    await post(world, booking, "appointment", {"starts": offered(page)[0]})
    page = await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text()
    last = offered(page)[-1]
    await post(world, booking, "appointment", {"starts": last})
    updates = [m for m in await messages(world, booking) if m.kind is InvitationKind.UPDATE]
    assert [(m.revision, m.status) for m in updates] == [
        (1, InvitationStatus.DROPPED),
        (2, InvitationStatus.QUEUED),
    ]
    update = (await delivered(world, inbox[0], 2))[1]
    _, event = event_of(update)
    assert event.decoded("sequence") == 2
    assert event.decoded("dtstart") == datetime.fromisoformat(last)


async def test_a_move_before_the_invitation_went_sends_only_the_invitation_at_the_new_time(
    mailing: World, inbox: tuple[Inbox, int]
) -> None:
    world = mailing
    booking = await booked(world)
    page = await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text()
    new_time = datetime.fromisoformat(offered(page)[1])
    await post(world, booking, "appointment", {"starts": offered(page)[1]})
    kinds = [m.kind for m in await messages(world, booking)]
    assert kinds == [InvitationKind.INVITATION, InvitationKind.REMINDER]
    [invitation] = await delivered(world, inbox[0], 1)
    assert invitation["Subject"] == "Votre entrevue NEXUS"
    _, event = event_of(invitation)
    assert event.decoded("dtstart") == new_time and event.decoded("sequence") == 1


async def test_a_move_after_the_reminder_went_sends_a_new_reminder(
    settings: Settings, clock: FakeClock, inbox: tuple[Inbox, int]
) -> None:
    # reminders two days ahead, moves allowed until a day before
    async for world in mail_world(settings, clock, inbox[1], reminder_hours=40):
        booking = await booked(world)  # about 48 hours ahead: the reminder is due in 8
        await delivered(world, inbox[0], 1)
        due = booking.first_slot - timedelta(hours=40)
        world.clock.advance((due - world.clock()).total_seconds())
        assert (await delivered(world, inbox[0], 2))[1]["Subject"].startswith("Rappel")
        page = await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text()
        new_time = datetime.fromisoformat(offered(page)[-1])
        assert (await post(world, booking, "appointment", {"starts": offered(page)[-1]}))[0] == 200
        reminders = [m for m in await messages(world, booking) if m.kind is InvitationKind.REMINDER]
        assert [(m.revision, m.status) for m in reminders] == [
            (0, InvitationStatus.SENT),
            (1, InvitationStatus.QUEUED),
        ]
        assert reminders[1].due_at == new_time - timedelta(hours=40)


async def test_a_move_too_close_for_a_reminder_drops_the_queued_one(
    settings: Settings, clock: FakeClock, inbox: tuple[Inbox, int]
) -> None:
    async for world in mail_world(settings, clock, inbox[1], reminder_hours=47):
        booking = await booked(world)  # 48 hours ahead: the reminder is due in 1
        page = await (await booking.applicant.get(f"/i/{booking.token}/appointment")).text()
        earlier = [t for t in offered(page) if datetime.fromisoformat(t) < booking.first_slot]
        later = offered(page)
        assert not earlier and later  # the first slot was the earliest: move within the hour
        world.clock.advance(2 * 3600)  # past the reminder's time, before it was sent
        await post(world, booking, "appointment", {"starts": later[0]})
        reminders = [m for m in await messages(world, booking) if m.kind is InvitationKind.REMINDER]
        assert [m.status for m in reminders] == [InvitationStatus.DROPPED]
        assert reminders[0].reason == "the appointment moved too close for a reminder"


async def test_cancelling_withdraws_the_calendar_entry_once(
    mailing: World, inbox: tuple[Inbox, int]
) -> None:
    world = mailing
    booking = await booked(world)
    [invitation] = await delivered(world, inbox[0], 1)
    _, first = event_of(invitation)
    for _ in range(2):  # a double click
        status, _ = await post(world, booking, "cancel", {"confirm": "yes"})
        assert status == 200
    cancellation = (await delivered(world, inbox[0], 2))[1]
    assert cancellation["Subject"] == "Votre entrevue NEXUS est annulée"
    text = text_of(cancellation)
    assert "/i/" not in text and "ne fonctionnent plus" in text
    method, event = event_of(cancellation)
    assert method == "CANCEL" and event["UID"] == first["UID"]
    assert event["STATUS"] == "CANCELLED" and event.decoded("sequence") == 1
    assert "URL" not in event
    by_kind = {m.kind: m.status for m in await messages(world, booking)}
    assert by_kind == {
        InvitationKind.INVITATION: InvitationStatus.SENT,
        InvitationKind.REMINDER: InvitationStatus.QUEUED,  # dropped when its time comes
        InvitationKind.CANCELLATION: InvitationStatus.SENT,
    }
    assert await world.server.app[OUTBOX].drain() == 0  # nothing more to send now


async def test_cancelling_before_anything_was_sent_sends_nothing(
    mailing: World, inbox: tuple[Inbox, int]
) -> None:
    world = mailing
    booking = await booked(world)
    status, _ = await post(world, booking, "cancel", {"confirm": "yes"})
    assert status == 200
    kinds = [m.kind for m in await messages(world, booking)]
    assert InvitationKind.CANCELLATION not in kinds
    assert await world.server.app[OUTBOX].drain() == 1  # the invitation, dropped
    assert inbox[0].messages == []
