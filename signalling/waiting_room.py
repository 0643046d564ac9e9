"""The waiting room: applicants who finished check-in, officers who are free, and the
pairing that forms interviews from them. Pure: no I/O, no clocks, no network (the time,
where it matters, is given).

Order of the queue: scheduled time first; at the same time, renewals before new
applications, renewals by soonest card expiry and new applications by application date.
A joint interview needs one free CBSA and one free CBP officer at once; a two-step
interview waits first for a CBSA officer (step ``cbsa``) and later, once CBSA has decided,
for a CBP officer (step ``cbp``). Each need has its own sorted queue, so a pairing decision
looks at three queue heads whatever the queue's length. An applicant who checked in before
their scheduled time is paired from that time on, not before.

The estimated wait plays the pairing forward: officers free now are free at once, busy
ones once a typical interview (the median of recent ones) has run its course, and every
applicant in queue order takes the officers of their need as the pairing would.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sortedcontainers import SortedList

from common.names import Agency

DEFAULT_INTERVIEW_SECONDS = 15 * 60
"""An interview's length until there are recent ones to learn it from."""
RECENT_INTERVIEWS = 20
"""How many of the latest interviews' lengths the typical length is the median of."""
OVERRUN_SECONDS = 60.0
"""What is left of an interview already longer than the typical one: it should end soon."""
SHORTLY_SECONDS = 60.0
"""A wait under this is "shortly": the officers are free or nearly; a count of minutes
would be false precision."""


def typical_interview_seconds(recent: Iterable[float]) -> float:
    """The median of the latest interviews' lengths (``recent``: newest first), or the
    default when there is no history."""
    lengths = [float(seconds) for seconds in recent if seconds > 0][:RECENT_INTERVIEWS]
    return statistics.median(lengths) if lengths else DEFAULT_INTERVIEW_SECONDS


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

    def competes_with(self, other: Need) -> bool:
        """Both wait for officers of one agency at least."""
        return bool(set(self.agencies) & set(other.agencies))


Priority = tuple[int, date, date]
QueueKey = tuple[datetime, int, date, date, str]


def priority(applied_on: date, card_expiry: date | None) -> Priority:
    """Who goes first among applicants due at the same time (smaller first): renewals
    before new applications, renewals by soonest card expiry and new applications by
    application date. The scheduler books appointments in this order too."""
    if card_expiry is not None:
        return (0, card_expiry, applied_on)
    return (1, applied_on, applied_on)


@dataclass(frozen=True)
class WaitingApplicant:
    interview_id: str
    need: Need
    scheduled: datetime
    applied_on: date
    card_expiry: date | None = None

    @property
    def key(self) -> QueueKey:
        return (self.scheduled, *priority(self.applied_on, self.card_expiry), self.interview_id)


@dataclass(frozen=True)
class Pairing:
    interview_id: str
    need: Need
    officers: dict[Agency, int]


@dataclass(frozen=True)
class Estimate:
    """What a waiting applicant is told."""

    position: int
    """1 for the next to be served among those waiting for the same officers."""
    seconds: int | None
    """Until the applicant's officers should be free for them: 0 is "shortly" (free now
    or within `SHORTLY_SECONDS`); None when no officer of an agency they need is on duty,
    so that no number would mean anything."""

    @property
    def shortly(self) -> bool:
        return self.seconds == 0


class WaitingRoom:
    def __init__(self, interview_seconds: float = DEFAULT_INTERVIEW_SECONDS) -> None:
        self._queues: dict[Need, SortedList] = {need: SortedList() for need in Need}
        self._waiting: dict[str, WaitingApplicant] = {}
        # Free officers in the order they became free: the longest-waiting goes first.
        self._free: dict[Agency, OrderedDict[int, None]] = {a: OrderedDict() for a in Agency}
        # Busy officers, with when the pairing gave them their interview (None: unknown).
        self._busy: dict[Agency, dict[int, float | None]] = {a: {} for a in Agency}
        self.interview_seconds = interview_seconds

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, interview_id: object) -> bool:
        return interview_id in self._waiting

    def learn_interview_lengths(self, recent: Iterable[float]) -> None:
        """The latest interviews' lengths in seconds, newest first: estimates follow them."""
        self.interview_seconds = typical_interview_seconds(recent)

    def get(self, interview_id: str) -> WaitingApplicant | None:
        return self._waiting.get(interview_id)

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
        self._busy[agency].pop(officer_id, None)
        self._free[agency].pop(officer_id, None)
        if available:
            self._free[agency][officer_id] = None

    def taken(self, officer_id: int, agency: Agency, now: float | None = None) -> None:
        """A free officer took an interview themselves: busy with it from ``now``."""
        if self._free[agency].pop(officer_id, "away") is None:
            self._busy[agency][officer_id] = now

    def finished(self, officer_id: int, agency: Agency) -> None:
        """An officer's interview ended: free again."""
        self.set_available(officer_id, agency, True)

    def pair(self, now: float | None = None) -> list[Pairing]:
        """Form every interview that can start now, earliest in the queue first.

        ``now`` (seconds since the epoch): applicants scheduled later wait for their time.
        None: time plays no part (everyone is due; a busy officer's interview counts as
        just begun)."""
        pairings: list[Pairing] = []
        while True:
            heads = [
                (queue[0], need)
                for need, queue in self._queues.items()
                if queue
                and _due(queue[0], now)
                and all(self._free[agency] for agency in need.agencies)
            ]
            if not heads:
                return pairings
            key, need = min(heads)
            applicant = self._waiting.pop(key[-1])
            self._queues[need].remove(key)
            officers = {}
            for agency in need.agencies:
                officer_id, _ = self._free[agency].popitem(last=False)
                self._busy[agency][officer_id] = now
                officers[agency] = officer_id
            pairings.append(Pairing(applicant.interview_id, need, officers))

    def position(self, interview_id: str) -> int:
        """1 for the next to be served among those waiting for the same officers (an
        applicant waiting for CBSA only is not behind one waiting for CBP only)."""
        applicant = self._waiting[interview_id]
        ahead: int = sum(
            queue.bisect_left(applicant.key)
            for need, queue in self._queues.items()
            if need.competes_with(applicant.need)
        )
        return 1 + ahead

    def estimated_wait_seconds(self, interview_id: str, now: float | None = None) -> int | None:
        """See `Estimate.seconds`."""
        return _seconds(self._play_forward(now, until=interview_id).get(interview_id))

    def estimates(self, now: float | None = None) -> dict[str, Estimate]:
        """Every waiting applicant's position and estimated wait, from one play of the
        pairing forward in time (see the module's docstring)."""
        starts = self._play_forward(now)
        # Positions in one pass over everyone in queue order: how many of each need
        # came before.
        rivals = {need: [other for other in Need if need.competes_with(other)] for need in Need}
        before = dict.fromkeys(Need, 0)
        estimates = {}
        for key, need in heapq.merge(*([(k, n) for k in q] for n, q in self._queues.items())):
            ahead = sum(before[other] for other in rivals[need])
            estimates[key[-1]] = Estimate(1 + ahead, _seconds(starts.get(key[-1])))
            before[need] += 1
        return estimates

    def _play_forward(self, now: float | None, until: str | None = None) -> dict[str, float]:
        """When each applicant would be paired (up to ``until``), in seconds from ``now``,
        if every interview took the typical length; applicants whose need has an agency
        with no officer on duty are left out. Mirrors `pair`: at each moment the earliest
        queue head whose officers are free goes first."""
        length = self.interview_seconds
        free_at: dict[Agency, list[float]] = {}
        for agency in Agency:
            busy = [_left_of(length, since, now) for since in self._busy[agency].values()]
            free_at[agency] = [0.0] * len(self._free[agency]) + busy
            heapq.heapify(free_at[agency])
        # One line per need that someone on duty can serve (see `_Line`).
        lines = [
            _Line(list(queue), [free_at[agency] for agency in need.agencies], now)
            for need, queue in self._queues.items()
            if queue and all(free_at[agency] for agency in need.agencies)
        ]
        starts: dict[str, float] = {}
        clock = 0.0
        while lines:
            line, at = lines[0], math.inf
            for candidate in lines:
                ready = candidate.ready_at(clock)
                if ready < at or (ready == at and candidate.head() < line.head()):
                    line, at = candidate, ready
            clock = at
            interview_id = line.head()[-1]
            starts[interview_id] = clock
            for heap in line.heaps:
                heapq.heapreplace(heap, clock + length)
            line.index += 1
            if line.index == len(line.keys):
                lines.remove(line)
            if interview_id == until:
                break
        return starts

    def next_scheduled_time(self, now: float) -> float | None:
        """When the next applicant who came early becomes due (seconds since the epoch):
        only a queue's head can be paired next, so only heads scheduled later count."""
        later = [
            queue[0][0].timestamp()
            for queue in self._queues.values()
            if queue and not _due(queue[0], now)
        ]
        return min(later, default=None)

    def waiting(self) -> list[str]:
        return list(self._waiting)


class _Line:
    """One need's queue as `WaitingRoom._play_forward` works through it: its keys, its
    head's index and the heaps of when each of its agencies' officers is next free
    (shared with the other needs of those agencies)."""

    __slots__ = ("heaps", "index", "keys", "now")

    def __init__(self, keys: list[QueueKey], heaps: list[list[float]], now: float | None) -> None:
        self.keys = keys
        self.heaps = heaps
        self.now = now
        self.index = 0

    def head(self) -> QueueKey:
        return self.keys[self.index]

    def ready_at(self, clock: float) -> float:
        """The first moment from ``clock`` on when the head could be paired."""
        ready = max(clock, _due_in(self.head(), self.now))
        for heap in self.heaps:
            ready = max(ready, heap[0])
        return ready


def _seconds(start: float | None) -> int | None:
    if start is None:
        return None
    return 0 if start < SHORTLY_SECONDS else math.ceil(start)


def _due(key: QueueKey, now: float | None) -> bool:
    return now is None or key[0].timestamp() <= now


def _due_in(key: QueueKey, now: float | None) -> float:
    """Seconds until the applicant's scheduled time (0 if it has come)."""
    return 0.0 if now is None else max(0.0, key[0].timestamp() - now)


def _left_of(length: float, since: float | None, now: float | None) -> float:
    """Seconds left of a busy officer's interview begun at ``since``."""
    if since is None or now is None:
        return length
    return max(length - (now - since), OVERRUN_SECONDS)
