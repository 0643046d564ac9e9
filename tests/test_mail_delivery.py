"""The outbox against a real SMTP server whose answers the test picks: 'try later' is
retried, a refusal fails (or bounces) with its reason, an unreachable server is tried the
set number of times; a message cut off by a crash is sent again; without an SMTP server
mail goes to a Maildir; the messages themselves (both languages, the calendar entry)."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import mailbox
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import icalendar
import pytest

import web
from common.errors import Conflict
from common.secret import Secret
from server import lifecycle
from server.cli import main
from server.i18n import Catalogs
from server.interview_actions import Cancel
from server.invitations import Outbox, postman_for, queue_invitation
from server.letters import Letters
from server.settings import Settings, load_settings
from server.store import Store
from server.store.invitations import InvitationKind, InvitationStatus
from server.types import InterviewMode

from .fakes import FakeClock, add_applications, application
from .mail_server import Inbox, calendar_of, smtp_server, text_of
from .served import free_port


def settings_for(tmp_path: Path, port: int | None, **more: str) -> Settings:
    smtp = {"smtp_host": "127.0.0.1", "smtp_port": str(port)} if port else {}
    return load_settings(
        {},
        {
            "data_dir": str(tmp_path / "data"),
            "mail_from": "nexus@cbsa.example",
            "smtp_tls": "none",
            "mail_attempts": "3",
            **smtp,
            **more,
        },
    )


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as running:
        yield running


async def scheduled(store: Store, settings: Settings, clock: FakeClock, app_id: str) -> str:
    await add_applications(store, application(app_id, email=f"{app_id.lower()}@example.org"))
    starts = clock() + timedelta(days=3)
    interview_id = await store.interviews.schedule(
        app_id, InterviewMode.JOINT, starts, starts + timedelta(hours=1), b"h" * 32, "test"
    )
    assert await queue_invitation(store, settings, interview_id)
    return interview_id


def outbox(store: Store, settings: Settings, clock: FakeClock) -> Outbox:
    letters = Letters(Catalogs(web.LOCALE), settings)
    return Outbox(store, settings, letters, postman_for(settings), clock, backoff_seconds=0)


async def invitation_of(store: Store, interview_id: str) -> tuple[InvitationStatus, int, str]:
    row = (await store.invitations.of_interview(interview_id))[0]
    assert row.kind is InvitationKind.INVITATION
    return row.status, row.attempts, row.reason or ""


async def test_queued_invitation_is_marked_sent_once_the_server_accepts_it(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    settings = settings_for(tmp_path, smtp[1])
    interview_id = await scheduled(store, settings, clock, "NX-1")
    assert (await invitation_of(store, interview_id))[0] is InvitationStatus.QUEUED
    assert await outbox(store, settings, clock).drain() == 1
    assert await invitation_of(store, interview_id) == (InvitationStatus.SENT, 1, "")
    assert len(smtp[0].messages) == 1
    assert await outbox(store, settings, clock).drain() == 0  # nothing sent twice
    assert len(smtp[0].messages) == 1


async def test_try_again_later_is_retried_then_sent(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    settings = settings_for(tmp_path, smtp[1])
    interview_id = await scheduled(store, settings, clock, "NX-1")
    smtp[0].data_answers.append("451 4.3.0 mailbox busy, try later")
    sender = outbox(store, settings, clock)
    await sender.drain()
    status, attempts, reason = await invitation_of(store, interview_id)
    assert (status, attempts) == (InvitationStatus.QUEUED, 1)
    assert reason.startswith("451")
    assert smtp[0].messages == []
    await sender.drain()
    assert (await invitation_of(store, interview_id))[:2] == (InvitationStatus.SENT, 2)
    assert len(smtp[0].messages) == 1


async def test_a_retry_waits_longer_after_each_try_again_later(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    settings = settings_for(tmp_path, smtp[1])
    interview_id = await scheduled(store, settings, clock, "NX-1")
    smtp[0].data_answers.extend(["451 4.3.0 busy", "451 4.3.0 still busy"])
    letters = Letters(Catalogs(web.LOCALE), settings)
    sender = Outbox(store, settings, letters, postman_for(settings), clock, backoff_seconds=30)

    await sender.drain()  # first try: 451, again in 30 s
    clock.advance(29)
    await sender.drain()
    assert (await invitation_of(store, interview_id))[:2] == (InvitationStatus.QUEUED, 1)
    clock.advance(1)
    await sender.drain()  # second try: 451, again in 60 s
    assert (await invitation_of(store, interview_id))[:2] == (InvitationStatus.QUEUED, 2)
    clock.advance(59)
    await sender.drain()
    assert (await invitation_of(store, interview_id))[:2] == (InvitationStatus.QUEUED, 2)
    assert smtp[0].messages == []
    clock.advance(1)
    await sender.drain()
    assert (await invitation_of(store, interview_id))[:2] == (InvitationStatus.SENT, 3)
    assert len(smtp[0].messages) == 1


async def test_a_refused_message_fails_with_the_servers_reason(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    settings = settings_for(tmp_path, smtp[1])
    interview_id = await scheduled(store, settings, clock, "NX-1")
    smtp[0].data_answers.append("550 5.7.1 message refused by policy")
    sender = outbox(store, settings, clock)
    await sender.drain()
    assert await invitation_of(store, interview_id) == (
        InvitationStatus.FAILED,
        1,
        "550 5.7.1 message refused by policy",
    )
    assert await sender.drain() == 0


async def test_an_unknown_recipient_bounces(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    settings = settings_for(tmp_path, smtp[1])
    interview_id = await scheduled(store, settings, clock, "NX-1")
    smtp[0].rcpt_answers.append("550 5.1.1 no such mailbox")
    await outbox(store, settings, clock).drain()
    status, _, reason = await invitation_of(store, interview_id)
    assert status is InvitationStatus.BOUNCED
    assert "no such mailbox" in reason


async def test_an_unreachable_server_is_tried_the_set_number_of_times_then_failed(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, free_port())  # nothing listens there
    interview_id = await scheduled(store, settings, clock, "NX-1")
    sender = outbox(store, settings, clock)
    for attempt in (1, 2):
        await sender.drain()
        status, attempts, reason = await invitation_of(store, interview_id)
        assert (status, attempts) == (InvitationStatus.QUEUED, attempt)
        assert "unreachable" in reason
    await sender.drain()
    assert (await invitation_of(store, interview_id))[:2] == (InvitationStatus.FAILED, 3)
    assert await sender.drain() == 0


async def test_retries_wait_longer_each_time(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, free_port())
    interview_id = await scheduled(store, settings, clock, "NX-1")
    letters = Letters(Catalogs(web.LOCALE), settings)
    sender = Outbox(store, settings, letters, postman_for(settings), clock, backoff_seconds=60)
    await sender.drain()
    first = (await store.invitations.of_interview(interview_id))[0].due_at
    assert first == clock() + timedelta(seconds=60)
    assert await sender.drain() == 0  # not due yet
    clock.advance(60)
    await sender.drain()
    second = (await store.invitations.of_interview(interview_id))[0].due_at
    assert second == clock() + timedelta(seconds=120)


async def test_a_message_cut_off_by_a_crash_is_sent_again_at_the_next_start(
    store: Store, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    settings = settings_for(tmp_path, smtp[1])
    interview_id = await scheduled(store, settings, clock, "NX-1")
    row = (await store.invitations.of_interview(interview_id))[0]
    assert await store.invitations.claim(row.id)  # the sender took it, then the process died
    sender = outbox(store, settings, clock)
    await sender.start()
    try:
        sender.wake()
        for _ in range(100):
            if (await invitation_of(store, interview_id))[0] is InvitationStatus.SENT:
                break
            await asyncio.sleep(0.02)
    finally:
        await sender.close()
        await sender.close()  # safe twice
    assert (await invitation_of(store, interview_id))[0] is InvitationStatus.SENT
    assert len(smtp[0].messages) == 1
    with pytest.raises(RuntimeError):
        await sender.start()  # a closed outbox refuses work


async def test_without_an_smtp_server_mail_goes_to_a_maildir_in_the_data_directory(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, None)
    interview_id = await scheduled(store, settings, clock, "NX-1")
    await outbox(store, settings, clock).drain()
    assert (await invitation_of(store, interview_id))[0] is InvitationStatus.SENT
    box = mailbox.Maildir(settings.data_dir / "mail", factory=None, create=False)
    messages = [m for _, m in box.items()]
    assert len(messages) == 1
    assert messages[0]["To"] == "nx-1@example.org"


async def test_an_applicant_of_no_known_language_gets_both_in_one_message(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, None)
    interview_id = await scheduled(store, settings, clock, "NX-1")
    interview = await store.interviews.get(interview_id)
    applicant = dataclasses.replace(
        await store.applications.get("NX-1"), language="", surname="O'Brien; Virgule, Ltée"
    )
    letters = Letters(Catalogs(web.LOCALE), settings)
    built = letters.message(
        interview,
        applicant,
        InvitationKind.INVITATION,
        Secret("https://x/i/t"),
        clock(),
    )
    parsed = email.message_from_bytes(built.as_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "Your NEXUS interview / Votre entrevue NEXUS"
    text = text_of(parsed)
    assert text.index("Hello") < text.index("Bonjour")
    ics = calendar_of(parsed)
    assert all(len(line) <= 75 for line in ics.split(b"\r\n"))
    event = icalendar.Calendar.from_ical(ics).walk("VEVENT")[0]
    assert event.decoded("dtstart") == interview.window_start
    assert b"METHOD:PUBLISH" in ics


async def test_invitations_list_shows_each_status_and_reason(
    store: Store, clock: FakeClock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, free_port(), mail_attempts="1")
    interview_id = await scheduled(store, settings, clock, "NX-1")
    await outbox(store, settings, clock).drain()
    command = ["invitations", "list", "--status", "failed", "--data-dir", str(settings.data_dir)]
    assert await asyncio.to_thread(main, command) == 0
    shown = capsys.readouterr().out
    assert interview_id in shown
    assert "unreachable" in shown
    assert "failed: 1" in shown


async def test_a_link_is_added_only_to_an_interview_still_open(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, None)
    interview_id = await scheduled(store, settings, clock, "NX-1")
    await store.interviews.add_link(interview_id, b"a" * 32)
    assert (await store.interviews.by_token_hash(b"a" * 32)) is not None
    assert (await store.interviews.by_token_hash(b"h" * 32)) is not None  # the first link
    interview = await store.interviews.get(interview_id)
    cancelled = lifecycle.apply(interview.life, Cancel()).life
    async with store.database.transaction() as db:
        await store.interviews.save_life(db, interview_id, cancelled)
    with pytest.raises(Conflict):
        await store.interviews.add_link(interview_id, b"b" * 32)
    assert (await store.interviews.by_token_hash(b"b" * 32)) is None


async def test_reminders_are_dropped_once_they_are_turned_off(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, None, reminder_hours="24")
    interview_id = await scheduled(store, settings, clock, "NX-1")
    clock.advance(3 * 24 * 3600)
    await outbox(store, settings.replace(reminder_hours=0), clock).drain()
    kinds = {r.kind: r.status for r in await store.invitations.of_interview(interview_id)}
    assert kinds == {
        InvitationKind.INVITATION: InvitationStatus.SENT,
        InvitationKind.REMINDER: InvitationStatus.DROPPED,
    }
