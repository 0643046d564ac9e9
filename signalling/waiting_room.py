"""The waiting room: applicants who finished check-in, officers who are free, and the
pairing that forms interviews from them. Pure: no I/O, no clocks, no network.

Order of the queue: scheduled time first; at the same time, renewals before new
applications, renewals by soonest card expiry and new applications by application date.
A joint interview needs one free CBSA and one free CBP officer at once; a two-step
interview waits first for a CBSA officer (step ``cbsa``) and later, once CBSA has decided,
for a CBP officer (step ``cbp``). Each need has its own sorted queue, so a pairing decision
looks at three queue heads whatever the queue's length.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sortedcontainers import SortedList

from server.types import Agency

DEFAULT_INTERVIEW_SECONDS = 15 * 60


class Need(StrEnum):
    """Which officers an applicant waits for now."""

    JOINT = "joint"
    CBSA = "cbsa"
    CBP = "cbp"

    @property
    def agencies(self) -> tuple[Agency, ...]:
        if self is Need.JOINT:
            return (Agency.CBSA, Agency.CBP)
        return (Agency.CBSA,) if self is Need.CBSA else (Agency.CBP,)


QueueKey = tuple[datetime, int, date, date, str]


@dataclass(frozen=True)
class WaitingApplicant:
    interview_id: str
    need: Need
    scheduled: datetime
    applied_on: date
    card_expiry: date | None = None

    @property
    def key(self) -> QueueKey:
        renewal = self.card_expiry is not None
        return (
            self.scheduled,
            0 if renewal else 1,
            self.card_expiry if self.card_expiry is not None else self.applied_on,
            self.applied_on,
            self.interview_id,
        )


@dataclass(frozen=True)
class Pairing:
    interview_id: str
    need: Need
    officers: dict[Agency, int]


class WaitingRoom:
    def __init__(self, interview_seconds: float = DEFAULT_INTERVIEW_SECONDS) -> None:
        self._queues: dict[Need, SortedList] = {need: SortedList() for need in Need}
        self._waiting: dict[str, WaitingApplicant] = {}
        # Free officers in the order they became free: the longest-waiting goes first.
        self._free: dict[Agency, OrderedDict[int, None]] = {a: OrderedDict() for a in Agency}
        self._busy: dict[Agency, set[int]] = {a: set() for a in Agency}
        self.interview_seconds = interview_seconds

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, interview_id: object) -> bool:
        return interview_id in self._waiting

    def add(self, applicant: WaitingApplicant) -> None:
        """Enter (or re-enter, keeping one place) the queue."""
        self.remove(applicant.interview_id)
        self._waiting[applicant.interview_id] = applicant
        self._queues[applicant.need].add(applicant.key)

    def remove(self, interview_id: str) -> None:
        applicant = self._waiting.pop(interview_id, None)
        if applicant is not None:
            self._queues[applicant.need].remove(applicant.key)

    def set_available(self, officer_id: int, agency: Agency, available: bool) -> None:
        """A free officer joins the back of the free list; an away one leaves it."""
        self._busy[agency].discard(officer_id)
        self._free[agency].pop(officer_id, None)
        if available:
            self._free[agency][officer_id] = None

    def finished(self, officer_id: int, agency: Agency) -> None:
        """An officer's interview ended: free again."""
        self.set_available(officer_id, agency, True)

    def pair(self) -> list[Pairing]:
        """Form every interview that can start now, earliest in the queue first."""
        pairings: list[Pairing] = []
        while True:
            heads = [
                (queue[0], need)
                for need, queue in self._queues.items()
                if queue and all(self._free[agency] for agency in need.agencies)
            ]
            if not heads:
                return pairings
            key, need = min(heads)
            applicant = self._waiting.pop(key[-1])
            self._queues[need].remove(key)
            officers = {}
            for agency in need.agencies:
                officer_id, _ = self._free[agency].popitem(last=False)
                self._busy[agency].add(officer_id)
                officers[agency] = officer_id
            pairings.append(Pairing(applicant.interview_id, need, officers))

    def position(self, interview_id: str) -> int:
        """1 for the next to be served (among those waiting for any officers)."""
        key = self._waiting[interview_id].key
        ahead: int = sum(queue.bisect_left(key) for queue in self._queues.values())
        return 1 + ahead

    def estimated_wait_seconds(self, interview_id: str) -> int:
        """Rounds of interviews ahead times an interview's length; the rounds depend on
        how many CBSA/CBP pairs are on duty (free or busy)."""
        on_duty = min(len(self._free[a]) + len(self._busy[a]) for a in Agency)
        rounds = math.ceil(self.position(interview_id) / max(1, on_duty))
        if on_duty and rounds == 1 and self._can_start_now(interview_id):
            return 0
        return int(rounds * self.interview_seconds)

    def _can_start_now(self, interview_id: str) -> bool:
        need = self._waiting[interview_id].need
        return all(self._free[agency] for agency in need.agencies)

    def waiting(self) -> list[str]:
        return list(self._waiting)
