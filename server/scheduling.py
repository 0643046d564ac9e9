"""Booking appointments into officers' rostered time: a pure core (no I/O, no clock).

Time is cut into slots of one interview's length on one fixed grid (for a length that
divides an hour, on the hour), so every run and every officer sees the same slots. An
officer's slot is free when their roster windows cover it whole (windows that touch count
as one stretch) and no held time of theirs overlaps it: an officer's slot holds at most
one appointment. A joint appointment takes one slot in which a CBSA and a CBP officer
are both free; a two-step one a CBSA officer's slot and, right after it in the same visit,
a CBP officer's. Applications are given, already in the waiting room's priority order
(`signalling.waiting_room.priority`), and each takes the earliest appointment left.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from common.names import Agency
from server.types import InterviewMode

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RosterWindow:
    """When an officer has said they can interview."""

    officer_id: int
    agency: Agency
    starts: datetime
    ends: datetime


@dataclass(frozen=True)
class Hold:
    """One officer's time held by one appointment."""

    officer_id: int
    agency: Agency
    starts: datetime
    ends: datetime

    def overlaps(self, starts: datetime, ends: datetime) -> bool:
        return self.starts < ends and starts < self.ends


@dataclass(frozen=True)
class Appointment:
    application_id: str
    mode: InterviewMode
    starts: datetime
    ends: datetime
    holds: tuple[Hold, ...]


@dataclass(frozen=True)
class SlotStaffing:
    """One slot of one agency: officers rostered for it, and how many of them are booked."""

    starts: datetime
    agency: Agency
    rostered: int
    booked: int

    @property
    def free(self) -> int:
        return self.rostered - self.booked


def slot_starts(starts: datetime, ends: datetime, length: timedelta) -> Iterator[datetime]:
    """Every slot start from the first at or after ``starts`` whose slot ends by ``ends``."""
    steps = -((_EPOCH - starts) // length)  # ceiling: the first aligned start not before
    moment = _EPOCH + steps * length
    while moment + length <= ends:
        yield moment
        moment += length


Span = tuple[datetime, datetime]


def _union(spans: Iterable[Span]) -> list[Span]:
    """The same time as sorted spans that neither overlap nor touch."""
    merged: list[Span] = []
    for starts, ends in sorted(spans):
        if merged and starts <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ends))
        else:
            merged.append((starts, ends))
    return merged


class _Calendar:
    """Each officer's rostered and held time as sorted, disjoint spans, answering "is
    this officer free for this slot?" by bisection."""

    def __init__(self, windows: Iterable[RosterWindow], held: Iterable[Hold]) -> None:
        rostered: dict[int, list[Span]] = defaultdict(list)
        self.agency: dict[int, Agency] = {}
        for window in windows:
            rostered[window.officer_id].append((window.starts, window.ends))
            self.agency[window.officer_id] = window.agency
        self.rostered = {officer: _union(spans) for officer, spans in rostered.items()}
        self.officers = {
            agency: sorted(o for o, a in self.agency.items() if a is agency) for agency in Agency
        }
        taken: dict[int, list[Span]] = defaultdict(list)
        for hold in held:
            taken[hold.officer_id].append((hold.starts, hold.ends))
        self.held: dict[int, list[Span]] = defaultdict(list)
        self.held.update({officer: _union(spans) for officer, spans in taken.items()})

    def is_rostered(self, officer_id: int, starts: datetime, ends: datetime) -> bool:
        spans = self.rostered[officer_id]
        index = bisect.bisect_right(spans, (starts, _END_OF_TIME)) - 1
        return index >= 0 and ends <= spans[index][1]

    def is_held(self, officer_id: int, starts: datetime, ends: datetime) -> bool:
        spans = self.held[officer_id]
        index = bisect.bisect_left(spans, (ends,)) - 1  # the last span starting before ends
        return index >= 0 and spans[index][1] > starts

    def free(self, agency: Agency, starts: datetime, ends: datetime) -> list[int]:
        """The officers of ``agency`` free for the whole slot, lowest id first."""
        return [
            officer_id
            for officer_id in self.officers[agency]
            if self.is_rostered(officer_id, starts, ends)
            and not self.is_held(officer_id, starts, ends)
        ]

    def hold(self, officer_id: int, starts: datetime, ends: datetime) -> Hold:
        bisect.insort(self.held[officer_id], (starts, ends))
        return Hold(officer_id, self.agency[officer_id], starts, ends)


def _pairs(
    calendar: _Calendar, mode: InterviewMode, starts: datetime, length: timedelta
) -> Iterator[tuple[Hold, Hold]]:
    """The visits that can start at ``starts``, each holding a CBSA officer's slot and a
    CBP officer's (at once, or right after for two-step), taken as they are yielded."""
    cbp_starts = starts if mode is InterviewMode.JOINT else starts + length
    cbsa = calendar.free(Agency.CBSA, starts, starts + length)
    cbp = calendar.free(Agency.CBP, cbp_starts, cbp_starts + length)
    for cbsa_officer, cbp_officer in zip(cbsa, cbp, strict=False):
        yield (
            calendar.hold(cbsa_officer, starts, starts + length),
            calendar.hold(cbp_officer, cbp_starts, cbp_starts + length),
        )


def book(
    windows: Iterable[RosterWindow],
    held: Iterable[Hold],
    applications: Sequence[str],
    mode: InterviewMode,
    length: timedelta,
    starts: datetime,
    ends: datetime,
) -> list[Appointment]:
    """Appointments between ``starts`` and ``ends`` for ``applications`` (ids, in priority
    order; each booked once at most), in officers' free slots given the roster ``windows``
    and the time already ``held``. Those who find no slot are left out."""
    calendar = _Calendar(windows, held)
    waiting = iter(dict.fromkeys(applications))
    appointments: list[Appointment] = []
    visit = length if mode is InterviewMode.JOINT else 2 * length
    for moment in slot_starts(starts, ends - (visit - length), length):
        for holds in _pairs(calendar, mode, moment, length):
            application_id = next(waiting, None)
            if application_id is None:
                return appointments
            appointments.append(Appointment(application_id, mode, moment, moment + visit, holds))
    return appointments


def free_visits(
    windows: Iterable[RosterWindow],
    held: Iterable[Hold],
    mode: InterviewMode,
    length: timedelta,
    starts: datetime,
    ends: datetime,
) -> list[datetime]:
    """When an appointment could start (one per slot that has room), earliest first: what
    an applicant may reschedule to."""
    calendar = _Calendar(windows, held)
    visit = length if mode is InterviewMode.JOINT else 2 * length
    cbp_after = timedelta() if mode is InterviewMode.JOINT else length
    return [
        moment
        for moment in slot_starts(starts, ends - (visit - length), length)
        if calendar.free(Agency.CBSA, moment, moment + length)
        and calendar.free(Agency.CBP, moment + cbp_after, moment + cbp_after + length)
    ]


def staffing(
    windows: Iterable[RosterWindow],
    held: Iterable[Hold],
    length: timedelta,
    starts: datetime,
    ends: datetime,
) -> list[SlotStaffing]:
    """Per slot and agency between ``starts`` and ``ends``: officers rostered and booked
    (only slots someone is rostered for)."""
    calendar = _Calendar(windows, held)
    rows = []
    for moment in slot_starts(starts, ends, length):
        slot_end = moment + length
        for agency in Agency:
            rostered = [
                officer
                for officer in calendar.officers[agency]
                if calendar.is_rostered(officer, moment, slot_end)
            ]
            booked = sum(calendar.is_held(officer, moment, slot_end) for officer in rostered)
            if rostered:
                rows.append(SlotStaffing(moment, agency, len(rostered), booked))
    return rows
