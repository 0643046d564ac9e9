"""Applicants' e-mails: queued for each scheduled interview (its invitation and reminder),
for each move of its appointment (an update, the reminder re-timed: `store.bookings`) and
for its cancellation, then sent by the app's `Outbox` as `letters` writes them.

Whoever schedules an interview calls `queue_invitation`. Nothing stored can open an
interview: each message's link is minted as it is sent (only its hash is kept, in the
interview's links), then put into the message and forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

from common.errors import Conflict
from common.secret import Secret

from .auth import new_invitation_token, token_hash
from .interview_state import Phase
from .letters import Letters
from .mail import (
    SMTP_TIMEOUT_SECONDS,
    Delivery,
    MaildirPostman,
    NotDelivered,
    Postman,
    SmtpPostman,
)
from .settings import Settings
from .store import Store
from .store.invitations import Invitation, InvitationKind, InvitationStatus
from .types import Clock, utc_now

log = logging.getLogger(__name__)

INVITABLE = (Phase.SCHEDULED, Phase.WAITING)


def email_enabled(settings: Settings) -> bool:
    return bool(settings.mail_from)


def postman_for(settings: Settings) -> Postman:
    """The SMTP server if one is set, else the Maildir under the data directory."""
    if settings.smtp_host:
        return SmtpPostman(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_tls,
            settings.smtp_username,
            settings.smtp_password,
            settings.smtp_ca_file,
            settings.bounce_address,
        )
    return MaildirPostman(settings.data_dir / "mail")


async def queue_invitation(
    store: Store, settings: Settings, interview_id: str, now: datetime | None = None
) -> bool:
    """Queue the interview's invitation (and its reminder, if that falls after ``now``).
    False when e-mail is not configured or the interview had its invitation already;
    calling it again queues nothing twice."""
    if not email_enabled(settings):
        return False
    interview = await store.interviews.get(interview_id)
    if interview.life.phase not in INVITABLE:
        raise Conflict("interview {id} is no longer open to invite to", id=interview_id)
    application = await store.applications.get(interview.application_id)
    now = now or store.invitations.now()
    planned = planned_messages(settings, interview.window_start, now)
    queued = [
        await store.invitations.queue(interview.id, kind, application.email, due)
        for kind, due in planned
    ]
    return queued[0]


async def queue_cancellation(store: Store, settings: Settings, interview_id: str) -> bool:
    """Queue the cancelled interview's cancellation, if the applicant was sent anything
    about it (else there is nothing to withdraw); calling it again queues nothing twice."""
    if not email_enabled(settings):
        return False
    messages = await store.invitations.of_interview(interview_id)
    if not any(message.status is InvitationStatus.SENT for message in messages):
        return False
    interview = await store.interviews.get(interview_id)
    application = await store.applications.get(interview.application_id)
    return await store.invitations.queue(
        interview_id, InvitationKind.CANCELLATION, application.email, store.invitations.now()
    )


def planned_messages(
    settings: Settings, starts: datetime, now: datetime
) -> list[tuple[InvitationKind, datetime]]:
    """The messages an interview starting at ``starts`` gets and when: its invitation now,
    and a reminder ``reminder_hours`` before it unless that time is past. None when e-mail
    is off."""
    if not email_enabled(settings):
        return []
    planned = [(InvitationKind.INVITATION, now)]
    due = reminder_due(settings, starts, now)
    if due is not None:
        planned.append((InvitationKind.REMINDER, due))
    return planned


def reminder_due(settings: Settings, starts: datetime, now: datetime) -> datetime | None:
    """When the reminder of an appointment starting at ``starts`` goes: ``reminder_hours``
    before it; None when reminders are off or that time is past."""
    due = starts - timedelta(hours=settings.reminder_hours)
    return due if settings.reminder_hours and due > now else None


async def invitation_rows(
    store: Store, status: InvitationStatus | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, object]]:
    """The outbox for the operator, most recently changed first: plain data."""
    return [row.summary() for row in await store.invitations.listed(status, limit, offset)]


# --- sending -----------------------------------------------------------------------------


class Outbox:
    """Sends what is due, ``concurrency`` messages at a time, until closed. Its task
    wakes every ``poll_seconds`` (the CLI queues from another process) or on `wake`."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        letters: Letters,
        postman: Postman,
        clock: Clock = utc_now,
        *,
        concurrency: int = 4,
        poll_seconds: float = 5.0,
        backoff_seconds: float = 30.0,
    ) -> None:
        self._store = store
        self._settings = settings
        self._letters = letters
        self._postman = postman
        self._clock = clock
        self._concurrency = concurrency
        self._poll_seconds = poll_seconds
        self._backoff_seconds = backoff_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("this outbox is closed")
        unfinished = await self._store.invitations.requeue_unfinished()
        if unfinished:
            log.warning("%d e-mail(s) cut off by the last stop are sent again", unfinished)
        self._task = asyncio.ensure_future(self._run())

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        """Take no more; let messages being sent finish (an accepted one is marked sent),
        up to the SMTP timeout. Safe twice."""
        self._closed = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), SMTP_TIMEOUT_SECONDS + 5)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while not self._closed:
            try:
                while await self.drain() and not self._closed:
                    pass
            except Exception:
                log.exception("the e-mail outbox could not be read")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            self._wake.clear()

    async def drain(self) -> int:
        """Send one batch of due messages; how many were taken."""
        rows = await self._store.invitations.due(self._concurrency * 4)
        limit = asyncio.Semaphore(self._concurrency)

        async def one(row: Invitation) -> None:
            async with limit:
                if self._closed:
                    return
                try:
                    await self._send(row)
                except Exception:
                    log.exception("e-mail %d (interview %s) failed", row.id, row.interview_id)

        await asyncio.gather(*(one(row) for row in rows))
        return len(rows)

    async def _send(self, row: Invitation) -> None:
        store, settings = self._store, self._settings
        invitations = store.invitations
        interview = await store.interviews.get(row.interview_id)
        now = self._clock()
        if row.kind is InvitationKind.REMINDER and interview.life.phase in INVITABLE:
            due = interview.window_start - timedelta(hours=settings.reminder_hours)
            if due > now + timedelta(seconds=1):  # the appointment moved later
                await invitations.retry_at(row.id, due, "waiting for its time")
                return
        if not await invitations.claim(row.id):
            return
        if row.kind is InvitationKind.REMINDER and not settings.reminder_hours:
            await invitations.failed(row.id, InvitationStatus.DROPPED, "reminders are off")
            return
        cancellation = row.kind is InvitationKind.CANCELLATION
        if interview.life.phase not in ((Phase.CANCELLED,) if cancellation else INVITABLE):
            await invitations.failed(
                row.id, InvitationStatus.DROPPED, f"the interview is {interview.state}"
            )
            return
        application = await store.applications.get(interview.application_id)
        appointment = await store.rosters.appointment_of(interview.id)
        # the calendar entry's revision: one per move, and one more to withdraw it
        sequence = (appointment.reschedules if appointment else 0) + (1 if cancellation else 0)
        link = None if cancellation else await self._new_link(row, interview.id)
        if link is None and not cancellation:
            return
        message = self._letters.message(interview, application, row.kind, link, now, sequence)
        del link
        started = time.monotonic()
        try:
            await self._postman.deliver(message)
        except NotDelivered as exc:
            await self._not_delivered(row, exc)
            return
        await invitations.sent(row.id, message["Message-ID"])  # at once: nothing between
        log.info(
            "sent the %s of interview %s (e-mail %d) in %.1f s",
            row.kind,
            row.interview_id,
            row.id,
            time.monotonic() - started,
        )

    async def _new_link(self, row: Invitation, interview_id: str) -> Secret[str] | None:
        """A fresh link to the interview, its hash stored; None (the message dropped) if
        the interview no longer takes links."""
        token = new_invitation_token()
        try:
            await self._store.interviews.add_link(interview_id, token_hash(token.reveal()))
        except Conflict as exc:
            await self._store.invitations.failed(row.id, InvitationStatus.DROPPED, exc.message)
            return None
        return Secret(f"{self._settings.public_url}/i/{token.reveal()}")

    async def _not_delivered(self, row: Invitation, exc: NotDelivered) -> None:
        attempts = row.attempts + 1
        if exc.kind is Delivery.RETRY and attempts < self._settings.mail_attempts:
            wait = timedelta(seconds=self._backoff_seconds * 2 ** (attempts - 1))
            await self._store.invitations.retry_at(row.id, self._clock() + wait, exc.reason)
            log.info(
                "e-mail %d (interview %s) not sent, attempt %d, again in %s: %s",
                row.id,
                row.interview_id,
                attempts,
                wait,
                exc.reason,
            )
            return
        bounced = exc.kind is Delivery.BOUNCED
        status = InvitationStatus.BOUNCED if bounced else InvitationStatus.FAILED
        await self._store.invitations.failed(row.id, status, exc.reason)
        log.warning(
            "e-mail %d (interview %s) %s after %d attempt(s): %s",
            row.id,
            row.interview_id,
            status,
            attempts,
            exc.reason,
        )
