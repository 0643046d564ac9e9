"""All open interview rooms of this server, and who listens to each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiortc import RTCIceServer

from common.names import RoomId, Seat
from media.types import NullSink, RecordingSink

from .address_policy import ANY_UNICAST, AddressPolicy
from .interview import DEFAULT_GRACE_SECONDS, InterviewEvent, InterviewRoom


@dataclass(frozen=True)
class SeatMediaState:
    """A participant switched their microphone or camera."""

    seat: Seat
    audio: bool
    video: bool


@dataclass(frozen=True)
class RecordUpdate:
    """The interview's record changed outside the call (a decision, an ID still): the
    officers' pages reload it. No seat: it concerns the interview."""

    what: Literal["decision", "still"]
    seat: None = None


RoomItem = InterviewEvent | SeatMediaState | RecordUpdate
Listener = Callable[[RoomItem], None]


class Rooms:
    def __init__(
        self,
        on_event: Callable[[RoomId, InterviewEvent], None] | None = None,
        sink_for: Callable[[RoomId], RecordingSink] | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        ice_servers: list[RTCIceServer] | None = None,
        address_policy: AddressPolicy = ANY_UNICAST,
    ) -> None:
        self._ice_servers = ice_servers or []
        self._address_policy = address_policy
        self._rooms: dict[RoomId, InterviewRoom] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._listeners: dict[RoomId, set[Listener]] = {}
        # Each seat's last microphone/camera switch, told to whoever joins later.
        self._states: dict[RoomId, dict[Seat, SeatMediaState]] = {}
        self._on_event = on_event
        self._sink_for = sink_for or (lambda room_id: NullSink())
        self._grace_seconds = grace_seconds

    def current(self, room_id: RoomId) -> InterviewRoom | None:
        """The room's call if one is on (never opens one)."""
        room = self._rooms.get(room_id)
        return room if room is not None and not room.closed else None

    async def end(self, room_id: RoomId, **detail: Any) -> None:
        """End the room's call for everyone (``detail``: who ended it, what comes next),
        telling every listener even if nobody was connected."""
        room = self._rooms.pop(room_id, None)
        if room is not None and not room.closed:
            await room.close(**detail)
        else:
            self._states.pop(room_id, None)
            self.tell_ended(room_id, **detail)

    def tell_ended(self, room_id: RoomId, **detail: Any) -> None:
        """Tell the room's listeners a step is over though no call was on (its officer
        decided after ending it)."""
        self._tell(room_id, InterviewEvent("end", None, time.time(), dict(detail)))

    def get(self, room_id: RoomId) -> InterviewRoom:
        """The room's call, opened if none is on: the caller has checked that the
        interview's life allows a call now."""
        room = self._rooms.get(room_id)
        if room is None or room.closed:
            room = InterviewRoom(
                room_id,
                sink=self._sink_for(room_id),
                on_event=lambda event: self._dispatch(room_id, event),
                grace_seconds=self._grace_seconds,
                ice_servers=self._ice_servers,
                address_policy=self._address_policy,
            )
            self._rooms[room_id] = room
        return room

    def listen(self, room_id: RoomId, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with the room's events; returns the function that stops it."""
        listeners = self._listeners.setdefault(room_id, set())
        listeners.add(listener)
        return lambda: listeners.discard(listener)

    def _dispatch(self, room_id: RoomId, event: InterviewEvent) -> None:
        if self._on_event is not None:
            self._on_event(room_id, event)
        self._tell(room_id, event)
        if event.seat is not None and event.kind in ("leave", "left"):
            self._states.get(room_id, {}).pop(event.seat, None)
        if event.kind == "end":
            self._states.pop(room_id, None)
        room = self._rooms.get(room_id)
        if event.kind in ("leave", "left") and room is not None and not room.seated:
            # Nobody left in the room: forget it (a later join opens a new one).
            del self._rooms[room_id]
            task = asyncio.ensure_future(room.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def broadcast_state(self, room_id: RoomId, state: SeatMediaState) -> None:
        self._states.setdefault(room_id, {})[state.seat] = state
        self._tell(room_id, state)

    def record_updated(self, room_id: RoomId, what: Literal["decision", "still"]) -> None:
        self._tell(room_id, RecordUpdate(what))

    def states(self, room_id: RoomId) -> list[SeatMediaState]:
        """The last switch of each seat that made one (for a newcomer's page)."""
        return list(self._states.get(room_id, {}).values())

    def _tell(self, room_id: RoomId, item: RoomItem) -> None:
        for listener in list(self._listeners.get(room_id, ())):
            listener(item)

    async def close(self) -> None:
        """Close every room; safe to call twice."""
        rooms, self._rooms = list(self._rooms.values()), {}
        for room in rooms:
            await room.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._rooms)
