"""One interview room: up to three seats, each a `Participant`, wired so that every
published track reaches the other seats' slots; plus the room's event history.

A participant whose connection fails keeps their seat for a grace period; the others stay
connected and simply receive nothing from that seat. Rejoining within the grace period
(a new connection: aiortc has no ICE restart) is a ``rejoin`` with the gap's length;
otherwise the seat is released with ``left``.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCIceServer

from .address_policy import ANY_UNICAST, AddressPolicy
from .participant import Participant
from .types import Kind, NullSink, ParticipantId, RecordingSink, RoomId, Seat

DEFAULT_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class InterviewEvent:
    """Something that happened in the room; ``detail`` never holds personal data."""

    kind: str  # join | drop | rejoin | leave | left | end
    seat: Seat | None
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeatState:
    participant: Participant
    info: dict[str, Any]
    dropped_at: float | None = None
    grace: asyncio.TimerHandle | None = None


class InterviewRoom:
    def __init__(
        self,
        room_id: RoomId,
        sink: RecordingSink | None = None,
        on_event: Callable[[InterviewEvent], None] | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
        ice_servers: list[RTCIceServer] | None = None,
        address_policy: AddressPolicy = ANY_UNICAST,
    ) -> None:
        self._ice_servers = ice_servers
        self._address_policy = address_policy
        self.id = room_id
        self._sink = sink or NullSink()
        self._on_event = on_event
        self._grace_seconds = grace_seconds
        self._clock = clock
        self._seats: dict[Seat, SeatState] = {}
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self.events: list[InterviewEvent] = []
        self.closed = False
        self._sink.set_keyframe_requester(self._request_keyframe)

    def _request_keyframe(self, seat: Seat) -> None:
        participant = self.participant(seat)
        if participant is not None:
            participant.publications[Kind.VIDEO].request_keyframe()

    def participant(self, seat: Seat) -> Participant | None:
        state = self._seats.get(seat)
        return state.participant if state else None

    @property
    def present(self) -> list[Seat]:
        return [seat for seat in Seat if seat in self._seats]

    async def join(self, seat: Seat, offer_sdp: str, info: dict[str, Any] | None = None) -> str:
        """Seat a participant (replacing that seat's previous connection) and answer."""
        async with self._lock:
            if self.closed:
                raise RuntimeError(f"interview room {self.id} is closed")
            previous = self._seats.pop(seat, None)
            participant = Participant(
                ParticipantId(f"{self.id}-{seat}-{next(self._ids)}-{secrets.token_hex(2)}"),
                seat,
                self._sink,
                on_failed=self._dropped,
                ice_servers=self._ice_servers,
                address_policy=self._address_policy,
            )
            others = [other for other in Seat if other is not seat]
            try:
                answer = await participant.accept_offer(offer_sdp, others)
            except BaseException:
                await participant.close()
                if previous is not None:
                    self._seats[seat] = previous
                raise
            if previous is not None:
                await self._release(previous)
            self._seats[seat] = SeatState(participant, info or {})
            self._wire(participant)
            if previous is None:
                self._record("join", seat, **(info or {}))
            else:
                gap = self._clock() - (previous.dropped_at or self._clock())
                self._record("rejoin", seat, gap_seconds=round(gap, 3), **(info or {}))
            return answer

    def _wire(self, newcomer: Participant) -> None:
        for seat, state in self._seats.items():
            if seat is newcomer.seat:
                continue
            other = state.participant
            for kind in Kind:
                other.publications[kind].subscribe(newcomer.slots[(seat, kind)])
                newcomer.publications[kind].subscribe(other.slots[(newcomer.seat, kind)])
        for kind in Kind:
            self._sink.on_publisher_change(newcomer.seat, kind, True)

    def _dropped(self, participant: Participant) -> None:
        state = self._seats.get(participant.seat)
        if state is None or state.participant is not participant or state.dropped_at:
            return
        state.dropped_at = self._clock()
        self._record("drop", participant.seat)
        loop = asyncio.get_running_loop()
        state.grace = loop.call_later(
            self._grace_seconds, lambda: asyncio.ensure_future(self._expire(participant))
        )

    async def _expire(self, participant: Participant) -> None:
        async with self._lock:
            state = self._seats.get(participant.seat)
            if state is None or state.participant is not participant:
                return  # rejoined meanwhile
            del self._seats[participant.seat]
            self._record("left", participant.seat, after_drop=True)
            await self._release(state)

    async def leave(self, seat: Seat) -> None:
        async with self._lock:
            state = self._seats.pop(seat, None)
            if state is not None:
                self._record("leave", seat)
                await self._release(state)

    async def _release(self, state: SeatState) -> None:
        if state.grace is not None:
            state.grace.cancel()
        for kind in Kind:
            self._sink.on_publisher_change(state.participant.seat, kind, False)
        await state.participant.close()

    async def close(self, **detail: Any) -> None:
        """Disconnect everyone (``detail``: who ended it and what comes next, for the
        ``end`` event); safe to call twice."""
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            states, self._seats = list(self._seats.values()), {}
            self._record("end", None, **detail)
            for state in states:
                await self._release(state)

    def _record(self, kind: str, seat: Seat | None, **detail: Any) -> None:
        event = InterviewEvent(kind, seat, self._clock(), detail)
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)
