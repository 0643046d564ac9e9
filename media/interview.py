"""One interview room: up to three seats, each a `Participant`, wired so that every
published track reaches the other seats' slots; plus the room's event history.

A participant whose connection ends keeps their seat for a grace period; the others stay
connected and simply receive nothing from that seat. The end is a ``drop``, noticed by
whichever comes first:

- their media stopped: no frame on any published track for `MEDIA_SILENCE_SECONDS` after
  frames had been flowing. Browsers keep sending while the camera and microphone are
  switched off (black pictures, encoded silence), so only a lost connection stops them all;
- their socket closed without ``leave`` (a tab closed or reloaded) and their media stopped
  too, which then needs only `SOCKET_GONE_SILENCE_SECONDS` (at once if it never flowed);
  a socket closing while media still flows is not a drop by itself;
- aiortc reports the connection failed or closed; its consent checks fail only long after
  the media stopped, so this is the last resort.

A drop is dated when the media stopped, not when it was noticed. Media coming back on the
same connection, or a new connection for the seat (aiortc has no ICE restart), is a
``rejoin`` with the gap's length; a new connection that comes before the drop was noticed
logs the drop first. A drop not rejoined within the grace period, counted from the drop,
releases the seat with ``left``.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiortc import RTCIceServer

from common.names import Kind, ParticipantId, RoomId, Seat
from media.types import NullSink, RecordingSink

from .address_policy import ANY_UNICAST, AddressPolicy
from .participant import Participant
from .protocol import RoomEventKind

DEFAULT_GRACE_SECONDS = 30.0
MEDIA_SILENCE_SECONDS = 3.0
SOCKET_GONE_SILENCE_SECONDS = 0.5
WATCH_INTERVAL_SECONDS = 0.25  # how often the seats' media is looked at


class DropCause(StrEnum):
    """How a drop was noticed (the ``drop`` event's ``cause``)."""

    MEDIA = "media"
    SOCKET = "socket"
    CONNECTION = "connection"
    REPLACED = "replaced"  # a new connection came before the drop was noticed


@dataclass(frozen=True)
class InterviewEvent:
    """Something that happened in the room; ``detail`` never holds personal data."""

    kind: RoomEventKind
    seat: Seat | None
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeatState:
    participant: Participant
    info: dict[str, Any]
    dropped_at: float | None = None
    """When the seat's media stopped (the room's clock), once the drop is noticed."""
    drop_cause: DropCause | None = None
    frames_at_drop: int = 0
    socket_closed: bool = False
    grace: asyncio.TimerHandle | None = None

    @property
    def may_come_back(self) -> bool:
        """A drop that media arriving again on the same connection undoes: only one
        noticed by the media alone, while the page's socket is open (a page whose socket
        closed makes a new connection)."""
        return self.drop_cause is DropCause.MEDIA and not self.socket_closed


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
        self._watch: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
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
        """The seats whose participant is connected (not dropped)."""
        return [s for s in Seat if s in self._seats and self._seats[s].dropped_at is None]

    @property
    def seated(self) -> list[Seat]:
        """The seats held: connected, or dropped and within the grace period."""
        return [seat for seat in Seat if seat in self._seats]

    async def join(
        self,
        seat: Seat,
        offer_sdp: str,
        info: dict[str, Any] | None = None,
        relays: list[RTCIceServer] | None = None,
    ) -> str:
        """Seat a participant (replacing that seat's previous connection) and answer.
        ``relays``: TURN servers with credentials for this connection alone, besides the
        room's own ``ice_servers``."""
        async with self._lock:
            if self.closed:
                raise RuntimeError(f"interview room {self.id} is closed")
            previous = self._seats.pop(seat, None)
            participant = Participant(
                ParticipantId(f"{self.id}-{seat}-{next(self._ids)}-{secrets.token_hex(2)}"),
                seat,
                self._sink,
                on_failed=self._dropped,
                ice_servers=[*(self._ice_servers or []), *(relays or [])],
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
                if previous.dropped_at is None:
                    self._mark_dropped(previous, DropCause.REPLACED)
                assert previous.dropped_at is not None
                gap = self._clock() - previous.dropped_at
                self._record("rejoin", seat, gap_seconds=round(gap, 3), **(info or {}))
            self._keep_watching()
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

    def socket_closed(self, seat: Seat, participant_id: ParticipantId) -> None:
        """The socket that seated ``participant_id`` closed without ``leave``: a strong
        hint the page is gone. A socket that seated an earlier connection is ignored."""
        state = self._seats.get(seat)
        if self.closed or state is None or state.participant.id != participant_id:
            return
        state.socket_closed = True
        if state.dropped_at is None and state.participant.silence() is None:
            self._drop(state, DropCause.SOCKET)  # no media ever came: nothing to wait for

    def _dropped(self, participant: Participant) -> None:
        """aiortc: the connection failed or was closed by the other side."""
        state = self._seats.get(participant.seat)
        if self.closed or state is None or state.participant is not participant:
            return
        if state.dropped_at is None:
            self._drop(state, DropCause.CONNECTION)
        else:
            state.drop_cause = DropCause.CONNECTION  # nothing comes back on it now

    def _keep_watching(self) -> None:
        if self._watch is None and not self.closed and self._seats:
            loop = asyncio.get_running_loop()
            self._watch = loop.call_later(WATCH_INTERVAL_SECONDS, self._watch_media)

    def _watch_media(self) -> None:
        self._watch = None
        for state in list(self._seats.values()):
            self._check_media(state)
        self._keep_watching()

    def _check_media(self, state: SeatState) -> None:
        silence = state.participant.silence()
        if silence is None:
            return  # not flowing yet: the connection may still be being set up
        if state.dropped_at is None:
            if state.socket_closed and silence >= SOCKET_GONE_SILENCE_SECONDS:
                self._drop(state, DropCause.SOCKET)
            elif silence >= MEDIA_SILENCE_SECONDS:
                self._drop(state, DropCause.MEDIA)
        elif state.may_come_back and state.participant.frames_received > state.frames_at_drop:
            self._came_back(state, silence)

    def _mark_dropped(self, state: SeatState, cause: DropCause) -> None:
        """Record the drop, dated when the media stopped (now if it never flowed)."""
        silence = state.participant.silence()
        state.dropped_at = self._clock() - (silence or 0.0)
        state.drop_cause = cause
        state.frames_at_drop = state.participant.frames_received
        self._record("drop", state.participant.seat, cause=cause.value)

    def _drop(self, state: SeatState, cause: DropCause) -> None:
        self._mark_dropped(state, cause)
        assert state.dropped_at is not None
        participant = state.participant
        kept = self._grace_seconds - (self._clock() - state.dropped_at)
        state.grace = asyncio.get_running_loop().call_later(
            max(0.0, kept), lambda: self._spawn(self._expire(participant))
        )

    def _came_back(self, state: SeatState, silence: float) -> None:
        """Media flows again on the dropped connection: a rejoin, the gap ending at the
        latest frame."""
        assert state.dropped_at is not None
        gap = self._clock() - silence - state.dropped_at
        if state.grace is not None:
            state.grace.cancel()
            state.grace = None
        state.dropped_at = state.drop_cause = None
        seat = state.participant.seat
        self._record("rejoin", seat, gap_seconds=round(max(gap, 0.0), 3), **state.info)

    async def _expire(self, participant: Participant) -> None:
        async with self._lock:
            state = self._seats.get(participant.seat)
            if state is None or state.participant is not participant or state.dropped_at is None:
                return  # rejoined meanwhile
            del self._seats[participant.seat]
            self._record("left", participant.seat, after_drop=True)
            await self._release(state)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None
            states, self._seats = list(self._seats.values()), {}
            self._record("end", None, **detail)
            for state in states:
                await self._release(state)
        # A grace period that ran out as we closed: its task finds the room closed.
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _record(self, kind: RoomEventKind, seat: Seat | None, **detail: Any) -> None:
        event = InterviewEvent(kind, seat, self._clock(), detail)
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)
