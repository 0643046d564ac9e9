"""The e-mail outbox: one row per message to send (an interview's invitation, its
reminder, the update after a move, the cancellation) and what became of it.

A row never holds the message or its link: both are made when it is sent. Its status
moves queued → sending → sent | failed | bounced | dropped (the interview ended first),
and sent → bounced when the mail system returns it later (`bounced_late`);
a 'try again later' puts it back to queued with a later ``due_at``. `claim` and `sent`
are each one statement, so two senders never take the same row and a message the SMTP
server accepted is marked sent before anything else happens. A row left in ``sending``
by a crash is queued again at the next start (`requeue_unfinished`): if the server had
accepted it just before the crash, the applicant gets it twice (at least once, never
lost).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import aiosqlite

from ..types import Clock, InterviewId, iso, parse_iso
from .database import Database


class InvitationKind(StrEnum):
    INVITATION = "invitation"
    REMINDER = "reminder"
    UPDATE = "update"
    """The appointment moved: its new time."""
    CANCELLATION = "cancellation"
    """The interview was cancelled: its calendar entry is withdrawn."""


class InvitationStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    DROPPED = "dropped"


@dataclass(frozen=True)
class Invitation:
    """One message of the outbox, as the operator sees it."""

    id: int
    interview_id: InterviewId
    kind: InvitationKind
    revision: int
    """The appointment's move count when the message was queued (0 before any move)."""
    status: InvitationStatus
    recipient: str
    attempts: int
    due_at: datetime
    reason: str | None
    updated_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Invitation:
        return cls(
            id=row["id"],
            interview_id=InterviewId(row["interview_id"]),
            kind=InvitationKind(row["kind"]),
            revision=row["revision"],
            status=InvitationStatus(row["status"]),
            recipient=row["recipient"],
            attempts=row["attempts"],
            due_at=parse_iso(row["due_at"]),
            reason=row["reason"],
            updated_at=parse_iso(row["updated_at"]),
            sent_at=parse_iso(row["sent_at"]) if row["sent_at"] else None,
        )

    def summary(self) -> dict[str, object]:
        """Plain data for the CLI and the operator's console."""
        return {
            "id": self.id,
            "interview_id": self.interview_id,
            "kind": self.kind.value,
            "revision": self.revision,
            "status": self.status.value,
            "recipient": self.recipient,
            "attempts": self.attempts,
            "due_at": iso(self.due_at),
            "reason": self.reason or "",
            "updated_at": iso(self.updated_at),
            "sent_at": iso(self.sent_at) if self.sent_at else "",
        }


class InvitationStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    async def queue(
        self,
        interview_id: str,
        kind: InvitationKind,
        recipient: str,
        due: datetime,
        revision: int = 0,
    ) -> bool:
        """Queue the interview's message of ``kind`` for ``revision`` unless it has that one
        already (True if queued now): queueing again sends nothing twice."""
        async with self._database.transaction() as db:
            return await self.queue_in(db, interview_id, kind, recipient, due, revision)

    async def queue_in(
        self,
        db: aiosqlite.Connection,
        interview_id: str,
        kind: InvitationKind,
        recipient: str,
        due: datetime,
        revision: int = 0,
    ) -> bool:
        """`queue` inside the caller's transaction (the booking that made the interview)."""
        now = iso(self._clock())
        cursor = await db.execute(
            "INSERT INTO invitations (interview_id, kind, revision, status, recipient, due_at,"
            " created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)"
            " ON CONFLICT (interview_id, kind, revision) DO NOTHING",
            (interview_id, kind, revision, recipient, iso(due), now, now),
        )
        return cursor.rowcount == 1

    async def after_move_in(
        self,
        db: aiosqlite.Connection,
        interview_id: str,
        revision: int,
        recipient: str,
        reminder_due: datetime | None,
    ) -> None:
        """The messages of an interview whose appointment just moved (its ``revision``-th
        move), in the move's transaction. An invitation still queued will show the new
        time, so only one already on its way or sent calls for an update, and an update
        still queued from an earlier move is superseded by this one. A queued reminder is
        re-timed to ``reminder_due``, or dropped when that is None (e-mail or reminders
        off, or the time already past); one already sent is followed by a new one."""
        now = iso(self._clock())
        rows = await db.execute_fetchall(
            "SELECT kind, status FROM invitations WHERE interview_id = ?", (interview_id,)
        )
        if any(row[0] == InvitationKind.INVITATION and row[1] != "queued" for row in rows):
            await db.execute(
                "UPDATE invitations SET status = 'dropped', reason = ?, updated_at = ?"
                " WHERE interview_id = ? AND kind = 'update' AND status = 'queued'",
                ("a later move's update replaces it", now, interview_id),
            )
            await self.queue_in(
                db, interview_id, InvitationKind.UPDATE, recipient, self._clock(), revision
            )
        if reminder_due is None:
            await db.execute(
                "UPDATE invitations SET status = 'dropped', reason = ?, updated_at = ?"
                " WHERE interview_id = ? AND kind = 'reminder' AND status = 'queued'",
                ("the appointment moved too close for a reminder", now, interview_id),
            )
            return
        cursor = await db.execute(
            "UPDATE invitations SET due_at = ?, updated_at = ?"
            " WHERE interview_id = ? AND kind = 'reminder' AND status = 'queued'",
            (iso(reminder_due), now, interview_id),
        )
        if cursor.rowcount == 0:
            await self.queue_in(
                db, interview_id, InvitationKind.REMINDER, recipient, reminder_due, revision
            )

    async def due(self, limit: int) -> list[Invitation]:
        """Queued messages whose time has come, earliest first."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM invitations WHERE status = 'queued' AND due_at <= ?"
                " ORDER BY due_at, id LIMIT ?",
                (iso(self._clock()), limit),
            )
        return [Invitation.from_row(row) for row in rows]

    async def claim(self, invitation_id: int) -> bool:
        """Take a queued row for sending (one more attempt); False if another took it."""
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "UPDATE invitations SET status = 'sending', attempts = attempts + 1,"
                " updated_at = ? WHERE id = ? AND status = 'queued'",
                (iso(self._clock()), invitation_id),
            )
        return cursor.rowcount == 1

    async def sent(self, invitation_id: int, message_id: str) -> None:
        """The mail system accepted it; ``message_id``: its Message-ID, which a bounce
        returned later names."""
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE invitations SET status = 'sent', reason = NULL, sent_at = ?,"
                " updated_at = ?, message_id = ? WHERE id = ? AND status = 'sending'",
                (iso(self._clock()), iso(self._clock()), message_id, invitation_id),
            )

    async def bounced_late(self, message_id: str, reason: str) -> Invitation | None:
        """The sent message with ``message_id``, marked bounced with the returned
        ``reason``; None if no message sent has it (unknown, or marked already)."""
        async with self._database.transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "UPDATE invitations SET status = 'bounced', reason = ?, updated_at = ?"
                    " WHERE message_id = ? AND status = 'sent' RETURNING *",
                    (reason, iso(self._clock()), message_id),
                )
            )
        return Invitation.from_row(rows[0]) if rows else None

    async def failed(self, invitation_id: int, status: InvitationStatus, reason: str) -> None:
        await self._finish(invitation_id, status, reason)

    async def _finish(self, invitation_id: int, status: InvitationStatus, reason: str) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE invitations SET status = ?, reason = ?, updated_at = ?"
                " WHERE id = ? AND status = 'sending'",
                (status, reason, iso(self._clock()), invitation_id),
            )

    async def retry_at(self, invitation_id: int, due: datetime, reason: str) -> None:
        """Back to the queue until ``due``, with why the last attempt did not go."""
        async with self._database.transaction() as db:
            await db.execute(
                "UPDATE invitations SET status = 'queued', due_at = ?, reason = ?,"
                " updated_at = ? WHERE id = ? AND status IN ('sending', 'queued')",
                (iso(due), reason, iso(self._clock()), invitation_id),
            )

    async def requeue_unfinished(self) -> int:
        """Rows a stop or crash left in ``sending``, queued again; how many."""
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "UPDATE invitations SET status = 'queued', updated_at = ?,"
                " reason = 'the sender stopped while sending; sent again'"
                " WHERE status = 'sending'",
                (iso(self._clock()),),
            )
        return cursor.rowcount

    async def of_interview(self, interview_id: str) -> list[Invitation]:
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM invitations WHERE interview_id = ? ORDER BY id", (interview_id,)
            )
        return [Invitation.from_row(row) for row in rows]

    async def listed(
        self, status: InvitationStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Invitation]:
        """Messages, the most recently changed first (of one status if given)."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM invitations WHERE (? IS NULL OR status = ?)"
                " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
                (status, status, limit, offset),
            )
        return [Invitation.from_row(row) for row in rows]

    async def counts(self) -> dict[str, int]:
        """How many messages are in each status (every status named, zero or not)."""
        async with self._database.transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT status, count(*) FROM invitations GROUP BY status"
            )
        found = {row[0]: row[1] for row in rows}
        return {status.value: found.get(status.value, 0) for status in InvitationStatus}
