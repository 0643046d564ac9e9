"""Booking an appointment: one transaction for all it writes.

The officers' slots are checked free and held, the interview is created (the
application's status checked by the caller's rule), the appointment is stored with its
interview, and its messages are queued: all of it or none of it. A crash or a refusal part
way leaves no slot held that nothing frees, and no booked interview without its
invitation. A booking made by the no-show rule also records that the rule dealt with the
missed interview, in the same transaction, so the rule acts once.

Moving an appointment is one transaction too: its slots, its interview's window, and the
messages that tell the applicant (an update, the reminder re-timed) change together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..scheduling import Appointment
from ..types import ApplicationStatus, InterviewId
from .database import Database
from .interviews import InterviewStore
from .invitations import InvitationKind, InvitationStore
from .rosters import RosterStore, StoredAppointment


@dataclass(frozen=True)
class Booking:
    """What a booking writes besides its appointment."""

    appointment: Appointment
    origin: str
    """Who booked: ``schedule`` (from the queue) or ``re_invite`` (the no-show rule)."""
    token_hash: bytes
    window_end: datetime
    """The interview's window ends after the appointment, by the operator's grace."""
    actor: str
    rule: Callable[[ApplicationStatus], ApplicationStatus]
    """Which statuses the application may be booked from (`application_status`)."""
    recipient: str
    messages: Sequence[tuple[InvitationKind, datetime]]
    no_show: str | None = None
    """The missed interview this booking follows up, if the no-show rule made it."""


@dataclass(frozen=True)
class Move:
    """An applicant's move of their appointment, and what it tells them."""

    current: StoredAppointment
    """The appointment as read before the move: a move made since refuses this one."""
    to: Appointment
    recipient: str
    mail: bool
    """Whether e-mail is on: without it the move queues no message."""
    reminder_due: datetime | None
    """When the moved appointment's reminder goes; None for none."""


class BookingStore:
    def __init__(
        self,
        database: Database,
        rosters: RosterStore,
        interviews: InterviewStore,
        invitations: InvitationStore,
    ) -> None:
        self._database = database
        self._rosters = rosters
        self._interviews = interviews
        self._invitations = invitations

    async def book(self, booking: Booking) -> InterviewId | None:
        """The new interview's id; None, with nothing written, if a slot was taken since
        the plan was made or the no-show was dealt with already. The application's rule
        refuses (Conflict) with nothing written either."""
        appointment = booking.appointment
        async with self._database.transaction() as db:
            if booking.no_show is not None and not await self._rosters.follow_up(
                db, booking.no_show, "re_invited"
            ):
                return None
            if await self._rosters.taken(db, appointment.holds):
                return None
            interview_id = await self._interviews.create(
                db,
                appointment.application_id,
                appointment.mode,
                appointment.starts,
                booking.window_end,
                booking.token_hash,
                booking.actor,
                booking.rule,
            )
            await self._rosters.add_appointment(db, appointment, booking.origin, interview_id)
            for kind, due in booking.messages:
                await self._invitations.queue_in(db, interview_id, kind, booking.recipient, due)
        return interview_id

    async def move(self, move: Move) -> bool:
        """False, with nothing written, if the new slots were taken or the appointment
        moved since it was read; Conflict if its interview has begun."""
        async with self._database.transaction() as db:
            if not await self._rosters.move_in(db, move.current, move.to):
                return False
            if move.mail:
                await self._invitations.after_move_in(
                    db,
                    move.current.interview_id or "",
                    move.current.reschedules + 1,
                    move.recipient,
                    move.reminder_due,
                )
        return True
