"""The live side of the waiting room: who is connected, pairing as soon as it can, and
telling everyone waiting their position and estimated wait after each change.

An applicant may have the page open in several tabs: they hold one place in the queue,
every tab hears the updates, and the place is given up only when the last tab goes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from common.names import Agency, Seat

from . import messages as m
from .waiting_room import Estimate, Need, Pairing, WaitingApplicant, WaitingRoom

log = logging.getLogger(__name__)

Send = Callable[[m.Message], None]


TELL_WAITING_EVERY = 0.5  # seconds


def waiting_message(estimate: Estimate) -> m.Waiting:
    return m.Waiting(position=estimate.position, estimated_wait_seconds=estimate.seconds)


class Lobby:
    def __init__(
        self,
        seat_officers: Callable[[Pairing], Awaitable[bool]],
        room: WaitingRoom | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._seat_officers = seat_officers
        self.room = room if room is not None else WaitingRoom()  # an empty room is falsy
        self._clock = clock
        # Each applicant's open tabs, the one that entered the waiting room last at the end.
        self._applicants: dict[str, list[Send]] = {}
        self._ready_at: dict[str, float] = {}
        self._officers: dict[tuple[int, Agency], Send] = {}
        # A pairing held back until an applicant's scheduled time: run then.
        self._wake: asyncio.TimerHandle | None = None
        self._matching: set[asyncio.Task[None]] = set()
        self._closed = False
        # Telling everyone their estimate replays the queue (milliseconds per hundred
        # waiting, on the loop that carries media): a burst of changes is told once.
        self._told_at = -TELL_WAITING_EVERY
        self._telling: asyncio.TimerHandle | None = None

    def learn_interview_lengths(self, recent: Iterable[float]) -> None:
        """The latest interviews' lengths in seconds, newest first (see `WaitingRoom`)."""
        self.room.learn_interview_lengths(recent)

    async def applicant_ready(self, applicant: WaitingApplicant, send: Send) -> None:
        tabs = self._applicants.setdefault(applicant.interview_id, [])
        if send in tabs:
            tabs.remove(send)
        tabs.append(send)
        self._ready_at.setdefault(applicant.interview_id, self._clock())
        self.room.add(applicant)
        await self._match()

    def waiting_seconds(self, interview_id: str) -> int | None:
        """How long the applicant has been in the waiting room (None: not there)."""
        since = self._ready_at.get(interview_id)
        return None if since is None else int(self._clock() - since)

    async def applicant_gone(self, interview_id: str, send: Send) -> None:
        """One of the applicant's tabs closed: the last one out gives up the place."""
        tabs = self._applicants.get(interview_id)
        if tabs is None or send not in tabs:
            return
        tabs.remove(send)
        if tabs:
            return
        del self._applicants[interview_id]
        self._ready_at.pop(interview_id, None)
        self.room.remove(interview_id)
        self._tell_waiting()

    def call_started(self, interview_id: str) -> None:
        """Officers were seated for the applicant's call (a take or a pairing): the
        applicant leaves the waiting room, and the tab used last takes the seat (two tabs
        joining would take the seat from each other in turn)."""
        self.room.remove(interview_id)
        self._ready_at.pop(interview_id, None)
        tabs = self._applicants.pop(interview_id, [])
        if tabs:
            tabs[-1](m.Paired(interview_id=interview_id, seat=Seat.APPLICANT))
        self._tell_waiting()

    def officer_seated(self, officer_id: int, agency: Agency) -> None:
        """An officer took an interview (from the queue or by pairing): not free now."""
        self.room.taken(officer_id, agency, self._clock())
        self._tell_waiting()

    def needs_now(self, interview_id: str, need: Need) -> None:
        """An officer took one of the places the applicant waits for: they wait for the
        other one only."""
        waiting = self.room.get(interview_id)
        if waiting is not None and waiting.need is not need:
            self.room.remove(interview_id)
            self.room.add(dataclasses.replace(waiting, need=need))
            self._tell_waiting()

    async def officer_available(
        self, officer_id: int, agency: Agency, available: bool, send: Send
    ) -> None:
        self._officers[(officer_id, agency)] = send
        self.room.set_available(officer_id, agency, available)
        await self._match()

    async def officer_gone(self, officer_id: int, agency: Agency) -> None:
        if self._officers.pop((officer_id, agency), None) is not None:
            self.room.set_available(officer_id, agency, False)
            self._tell_waiting()

    async def _match(self) -> None:
        now = self._clock()
        while pairings := self.room.pair(now):
            for pairing in pairings:
                await self._seat(pairing)
        self._wake_at_next_scheduled_time(now)
        self._tell_waiting()

    async def _seat(self, pairing: Pairing) -> None:
        if not await self._seat_officers(pairing):
            # The interview moved on meanwhile (taken, ended): it waits no more; the
            # officers are still free.
            log.warning("could not seat officers for %s", pairing.interview_id)
            self.room.remove(pairing.interview_id)
            for agency, officer_id in pairing.officers.items():
                self.room.set_available(officer_id, agency, True)
            return
        # Seating started the call, and the call's start told the applicant
        # (`call_started`); the officers are told here.
        for agency, officer_id in pairing.officers.items():
            officer = self._officers.get((officer_id, agency))
            if officer is not None:
                officer(m.Paired(interview_id=pairing.interview_id, seat=Seat.of(agency)))

    def _wake_at_next_scheduled_time(self, now: float) -> None:
        """Officers may be free for an applicant who came before their scheduled time:
        pair again when that time comes."""
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        due = self.room.next_scheduled_time(now)
        if due is not None and not self._closed:
            self._wake = asyncio.get_running_loop().call_later(due - now, self._match_soon)

    def _match_soon(self) -> None:
        self._wake = None
        task = asyncio.ensure_future(self._match_logged())
        self._matching.add(task)
        task.add_done_callback(self._matching.discard)

    async def _match_logged(self) -> None:
        try:
            await self._match()
        except Exception:
            log.exception("pairing at an applicant's scheduled time failed")

    def _tell_waiting(self) -> None:
        """Tell every waiting tab its place and wait: now, or at the end of the interval if
        they were told less than `TELL_WAITING_EVERY` ago."""
        if self._closed or self._telling is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._told_at + TELL_WAITING_EVERY - loop.time()
        if wait <= 0:
            self._tell_now()
        else:
            self._telling = loop.call_later(wait, self._tell_now)

    def _tell_now(self) -> None:
        self._telling = None
        self._told_at = asyncio.get_running_loop().time()
        estimates = self.room.estimates(self._clock())
        for interview_id, tabs in self._applicants.items():
            estimate = estimates.get(interview_id)
            if estimate is not None:
                for send in tabs:
                    send(waiting_message(estimate))

    async def close(self) -> None:
        """No more pairing at scheduled times; safe to call twice."""
        self._closed = True
        for timer in (self._wake, self._telling):
            if timer is not None:
                timer.cancel()
        self._wake = self._telling = None
        for task in list(self._matching):
            task.cancel()
        await asyncio.gather(*self._matching, return_exceptions=True)
