"""Appointments: the shell around the booking core (`server.scheduling`). It reads roster
windows, held time and pending applications from the store, asks the core, and books each
appointment through `store.bookings`: its officers' slots, its interview (keeping the hash
of a fresh token) and its messages in one transaction. No token leaves this module: the
applicant's links are minted by the invitations that are sent to them.

Also here, as the one owner of each rule: what an applicant may change from their link
(move or cancel, within the operator's settings), what becomes of a no-show, and a day's
staffing for the operator's console."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TypedDict

from common.errors import Conflict, NexusError
from common.names import Agency
from common.secret import Secret
from signalling.waiting_room import priority

from . import scheduling
from .application_status import status_after_booking, status_after_invite
from .auth import new_invitation_token, token_hash
from .interview_state import Phase
from .invitations import email_enabled, planned_messages, reminder_due
from .scheduling import Appointment
from .settings import Settings
from .store import Store
from .store.bookings import Booking, Move
from .store.interviews import Interview
from .store.rosters import StoredAppointment
from .types import ApplicationStatus, InterviewMode

log = logging.getLogger(__name__)
Mint = Callable[[], Secret[str]]


@dataclass(frozen=True)
class ScheduleRun:
    """What `schedule` booked (or, for a dry run, would book)."""

    pending: int
    appointments: list[Appointment]
    skipped: int
    """Planned but not booked: the slot was taken meanwhile, or the application changed."""
    dry_run: bool

    def per_day(self) -> list[tuple[date, int]]:
        days = Counter(a.starts.date() for a in self.appointments)
        return sorted(days.items())


def slot_length(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.slot_minutes)


def visit_length(settings: Settings, mode: InterviewMode) -> timedelta:
    return slot_length(settings) * (1 if mode is InterviewMode.JOINT else 2)


def earliest(settings: Settings, now: datetime) -> datetime:
    """The first moment a new appointment may start: the applicant gets notice."""
    return now + timedelta(hours=settings.schedule_notice_hours)


async def _plan(
    store: Store,
    settings: Settings,
    applications: Sequence[str],
    mode: InterviewMode,
    starts: datetime,
    ends: datetime,
    besides: StoredAppointment | None = None,
) -> list[Appointment]:
    """The core's appointments for ``applications`` (in order) from what the store holds;
    ``besides``: an appointment whose own held time counts as free (it is being moved)."""
    length = slot_length(settings)
    windows = [w.window() for w in await store.rosters.windows(starts, ends)]
    held = await store.rosters.holds(starts, ends, besides=besides.id if besides else "")
    return scheduling.book(windows, held, applications, mode, length, starts, ends)


async def schedule(
    store: Store,
    settings: Settings,
    now: datetime,
    days: int,
    mode: InterviewMode,
    dry_run: bool = False,
    mint: Mint = new_invitation_token,
) -> ScheduleRun:
    """Give pending applications appointments in the next ``days`` days' free slots, in
    the waiting room's priority order. Running it again books nobody twice: those booked
    are no longer pending, and their slots are held."""
    pending = await store.applications.pending()
    ranked = sorted(pending, key=lambda row: (priority(row[1], row[2]), row[0]))
    order = [row[0] for row in ranked]
    plan = await _plan(
        store, settings, order, mode, earliest(settings, now), now + timedelta(days=days)
    )
    if dry_run:
        return ScheduleRun(len(pending), plan, 0, dry_run=True)
    booked = [a for a in plan if await book(store, settings, a, "schedule", mint) is not None]
    return ScheduleRun(len(pending), booked, len(plan) - len(booked), dry_run=False)


async def book(
    store: Store,
    settings: Settings,
    appointment: Appointment,
    origin: str,
    mint: Mint = new_invitation_token,
    no_show: str | None = None,
) -> str | None:
    """Book the appointment (`store.bookings`: its slots, its interview and its messages
    in one transaction): the interview's id, or None if the slots were taken meanwhile or
    the application may not be interviewed now. ``mint`` makes the token whose hash the
    interview keeps (a fresh random one, which nobody sees); ``no_show``: the missed
    interview this booking follows up."""
    application = await store.applications.get(appointment.application_id)
    now = store.invitations.now()
    booking = Booking(
        appointment,
        origin,
        token_hash(mint().reveal()),
        appointment.ends + timedelta(minutes=settings.appointment_grace_minutes),
        actor=f"operator:{origin}",
        # from the queue, only a pending application; a no-show's is still scheduled
        rule=status_after_booking if origin == "schedule" else status_after_invite,
        recipient=application.email,
        messages=planned_messages(settings, appointment.starts, now),
        no_show=no_show,
    )
    try:
        return await store.bookings.book(booking)
    except NexusError as exc:
        log.warning("not booked %s: %s", appointment.application_id, exc.message)
        return None


# --- the applicant's changes ---------------------------------------------------------------


@dataclass(frozen=True)
class ChangeOptions:
    appointment: StoredAppointment
    free: list[datetime]
    """When the appointment could move to, earliest first."""
    reschedules_left: int


async def change_options(
    store: Store, settings: Settings, interview: Interview, now: datetime
) -> ChangeOptions:
    """What the applicant may change now; Conflict saying why they may not."""
    appointment = await store.rosters.appointment_of(interview.id)
    if appointment is None:
        raise Conflict(
            "this interview has no booked appointment to change; contact the program office"
        )
    if interview.life.phase is not Phase.SCHEDULED or interview.life.checked_in:
        raise Conflict("this interview has begun; it can no longer be changed")
    hours = settings.change_until_hours
    if now > appointment.starts - timedelta(hours=hours):
        raise Conflict(
            "an appointment can be changed until {hours} hours before it",
            hours=hours,
        )
    left = max(0, settings.max_reschedules - appointment.reschedules)
    free: list[datetime] = []
    if left:
        starts = now + timedelta(hours=hours)
        ends = starts + timedelta(days=settings.reschedule_days)
        length = slot_length(settings)
        windows = [w.window() for w in await store.rosters.windows(starts, ends)]
        held = await store.rosters.holds(starts, ends, besides=appointment.id)
        free = [
            moment
            for moment in scheduling.free_visits(
                windows, held, appointment.mode, length, starts, ends
            )
            if moment != appointment.starts
        ]
    return ChangeOptions(appointment, free, left)


async def reschedule(
    store: Store, settings: Settings, interview: Interview, to: datetime, now: datetime
) -> StoredAppointment:
    """Move the applicant's appointment to start at ``to``. Asking again for the time it
    already has changes nothing."""
    appointment = await store.rosters.appointment_of(interview.id)
    if appointment is not None and appointment.starts == to:
        return appointment
    options = await change_options(store, settings, interview, now)
    if options.reschedules_left <= 0:
        raise Conflict(
            "this appointment was moved {count} times, the most allowed",
            count=options.appointment.reschedules,
        )
    if to not in options.free:
        raise Conflict("that time is not free (any more); choose another one")
    current = options.appointment
    ends = to + visit_length(settings, current.mode)
    moved = await _plan(store, settings, [current.application_id], current.mode, to, ends, current)
    taken = Conflict("that time is not free (any more); choose another one")
    if not moved:
        raise taken
    application = await store.applications.get(current.application_id)
    mail = email_enabled(settings)
    move = Move(current, moved[0], application.email, mail, reminder_due(settings, to, now))
    if not await store.bookings.move(move):
        raise taken
    return await store.rosters.appointment_of(interview.id) or current


def back_to_queue(current: ApplicationStatus) -> ApplicationStatus:
    """A scheduled application whose interview will not happen waits to be scheduled again."""
    return ApplicationStatus.PENDING if current is ApplicationStatus.SCHEDULED else current


async def return_to_queue(
    store: Store, application_id: str, reason: str, actor: str, no_show: str | None = None
) -> bool:
    """Pending again, unless another interview of the application is still open.
    ``no_show``: the missed interview the no-show rule returns, recorded as dealt with in
    the same transaction; False, with nothing changed, if it was dealt with already."""
    async with store.database.transaction() as db:
        if no_show is not None and not await store.rosters.follow_up(db, no_show, "returned"):
            return False
        rows = await db.execute_fetchall(
            "SELECT 1 FROM interviews WHERE application_id = ? AND phase IN (?, ?, ?, ?) LIMIT 1",
            (
                application_id,
                Phase.SCHEDULED,
                Phase.WAITING,
                Phase.IN_CALL,
                Phase.AWAITING_DECISIONS,
            ),
        )
        if not list(rows):
            await store.applications.change_status(db, application_id, back_to_queue, reason, actor)
    return True


# --- no-shows -------------------------------------------------------------------------------


async def follow_up_no_shows(store: Store, settings: Settings, now: datetime) -> Counter[str]:
    """The operator's rule for each missed interview not yet dealt with: a new appointment
    in the next free slot (``re-invite``, up to `Settings.no_show_re_invites` times) or
    back to the queue. What the rule did is recorded in the transaction that does it, so
    each is dealt with once, however often this runs and wherever it stops."""
    done: Counter[str] = Counter()
    for interview_id, application_id, mode in await store.rosters.unfollowed_no_shows():
        plan: list[Appointment] = []
        if (
            settings.no_show_rule == "re-invite"
            and await store.rosters.re_invites(application_id) < settings.no_show_re_invites
        ):
            starts = earliest(settings, now)
            ends = starts + timedelta(days=settings.reschedule_days)
            plan = await _plan(store, settings, [application_id], mode, starts, ends)
        if plan and await book(store, settings, plan[0], "re_invite", no_show=interview_id):
            done["re_invited"] += 1
        elif await return_to_queue(
            store, application_id, "missed the interview", "no-show rule", interview_id
        ):
            done["returned"] += 1
    return done


# --- staffing, for the operator's console ----------------------------------------------------


class SlotRow(TypedDict):
    starts: str
    agency: str
    rostered: int
    booked: int
    free: int


class DayStaffing(TypedDict):
    day: str
    time_zone: str
    slot_minutes: int
    slots: list[SlotRow]
    agencies: dict[str, dict[str, int]]
    """Per agency: officer slots rostered, booked and free over the day."""


async def day_staffing(store: Store, settings: Settings, day: date) -> DayStaffing:
    """One day (in the offices' time zone) of slots against staffing: per slot and agency
    officers rostered, booked and free, and the day's totals per agency. Plain data."""
    zone = settings.office_time_zone
    starts = datetime.combine(day, time(), zone)
    ends = datetime.combine(day + timedelta(days=1), time(), zone)
    windows = [w.window() for w in await store.rosters.windows(starts, ends)]
    held = await store.rosters.holds(starts, ends)
    rows = scheduling.staffing(windows, held, slot_length(settings), starts, ends)
    totals = {agency.value: {"slots": 0, "booked": 0, "free": 0} for agency in Agency}
    for row in rows:
        total = totals[row.agency.value]
        total["slots"] += row.rostered
        total["booked"] += row.booked
        total["free"] += row.free
    return {
        "day": day.isoformat(),
        "time_zone": zone.key,
        "slot_minutes": settings.slot_minutes,
        "slots": [
            {
                "starts": row.starts.astimezone(zone).isoformat(),
                "agency": row.agency.value,
                "rostered": row.rostered,
                "booked": row.booked,
                "free": row.free,
            }
            for row in rows
        ],
        "agencies": totals,
    }
