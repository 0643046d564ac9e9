"""The live side of the waiting room: who is connected, pairing as soon as it can, and
telling everyone waiting their position and estimated wait after each change."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from server.types import Agency

from . import messages as m
from .types import Seat
from .waiting_room import Pairing, WaitingApplicant, WaitingRoom

log = logging.getLogger(__name__)

Send = Callable[[m.Message], None]


class Lobby:
    def __init__(
        self,
        seat_officers: Callable[[Pairing], Awaitable[bool]],
        room: WaitingRoom | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._seat_officers = seat_officers
        self.room = room or WaitingRoom()
        self._clock = clock
        self._applicants: dict[str, Send] = {}
        self._ready_at: dict[str, float] = {}
        self._officers: dict[tuple[int, Agency], Send] = {}

    async def applicant_ready(self, applicant: WaitingApplicant, send: Send) -> None:
        self._applicants[applicant.interview_id] = send
        self._ready_at.setdefault(applicant.interview_id, self._clock())
        self.room.add(applicant)
        await self._match()

    def waiting_seconds(self, interview_id: str) -> int | None:
        """How long the applicant has been in the waiting room (None: not there)."""
        since = self._ready_at.get(interview_id)
        return None if since is None else int(self._clock() - since)

    async def applicant_gone(self, interview_id: str) -> None:
        self._ready_at.pop(interview_id, None)
        if self._applicants.pop(interview_id, None) is not None:
            self.room.remove(interview_id)
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
        for pairing in self.room.pair():
            if not await self._seat_officers(pairing):
                log.warning("could not seat officers for %s", pairing.interview_id)
                continue
            applicant = self._applicants.pop(pairing.interview_id, None)
            self._ready_at.pop(pairing.interview_id, None)
            if applicant is not None:
                applicant(m.Paired(interview_id=pairing.interview_id, seat=Seat.APPLICANT))
            for agency, officer_id in pairing.officers.items():
                officer = self._officers.get((officer_id, agency))
                if officer is not None:
                    officer(m.Paired(interview_id=pairing.interview_id, seat=Seat.of(agency)))
        self._tell_waiting()

    def _tell_waiting(self) -> None:
        for interview_id, send in self._applicants.items():
            if interview_id in self.room:
                send(
                    m.Waiting(
                        position=self.room.position(interview_id),
                        estimated_wait_seconds=self.room.estimated_wait_seconds(interview_id),
                    )
                )
