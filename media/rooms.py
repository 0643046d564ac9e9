"""The interview rooms open on this media worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc import RTCIceServer

from common.names import RoomId

from .address_policy import ANY_UNICAST, AddressPolicy
from .interview import DEFAULT_GRACE_SECONDS, InterviewEvent, InterviewRoom
from .types import NullSink, RecordingSink


class Rooms:
    def __init__(
        self,
        on_event: Callable[[RoomId, InterviewEvent], None] | None = None,
        sink_for: Callable[[RoomId], RecordingSink] | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        ice_servers: list[RTCIceServer] | None = None,
        address_policy: AddressPolicy = ANY_UNICAST,
        on_gone: Callable[[RoomId], None] | None = None,
    ) -> None:
        """``on_gone``: a room emptied and was closed (a later join opens a new one)."""
        self._ice_servers = ice_servers or []
        self._address_policy = address_policy
        self._rooms: dict[RoomId, InterviewRoom] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._on_event = on_event
        self._on_gone = on_gone
        self._sink_for = sink_for or (lambda room_id: NullSink())
        self._grace_seconds = grace_seconds

    def current(self, room_id: RoomId) -> InterviewRoom | None:
        """The room's call if one is on (never opens one)."""
        room = self._rooms.get(room_id)
        return room if room is not None and not room.closed else None

    async def end(self, room_id: RoomId, **detail: Any) -> None:
        """End the room's call for everyone (``detail``: who ended it, what comes next)."""
        room = self._rooms.pop(room_id, None)
        if room is not None and not room.closed:
            await room.close(**detail)

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

    def _dispatch(self, room_id: RoomId, event: InterviewEvent) -> None:
        if self._on_event is not None:
            self._on_event(room_id, event)
        room = self._rooms.get(room_id)
        if event.kind in ("leave", "left") and room is not None and not room.seated:
            # Nobody left in the room: forget it (a later join opens a new one).
            del self._rooms[room_id]
            task = asyncio.ensure_future(self._close_emptied(room_id, room))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _close_emptied(self, room_id: RoomId, room: InterviewRoom) -> None:
        await room.close()
        if self._on_gone is not None:
            self._on_gone(room_id)

    @property
    def participants(self) -> int:
        """Seats held in every room (connected, or dropped within their grace)."""
        return sum(len(room.seated) for room in self._rooms.values())

    async def close(self) -> None:
        """Close every room; safe to call twice."""
        rooms, self._rooms = list(self._rooms.values()), {}
        for room in rooms:
            await room.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._rooms)
