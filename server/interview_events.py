"""Writes the rooms' events to the store as they happen, without making rooms wait."""

from __future__ import annotations

import asyncio
import logging

from signalling.interview import InterviewEvent
from signalling.types import RoomId

from .store import Store

log = logging.getLogger(__name__)


class EventWriter:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: set[asyncio.Task[None]] = set()

    def record(self, room_id: RoomId, event: InterviewEvent) -> None:
        task = asyncio.ensure_future(self._write(room_id, event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, room_id: RoomId, event: InterviewEvent) -> None:
        try:
            await self._store.events.append(
                room_id,
                event.at,
                event.kind,
                event.seat.value if event.seat else None,
                event.detail,
            )
        except Exception:
            log.exception("could not store the %s event of %s", event.kind, room_id)

    async def drain(self) -> None:
        """Wait for every event already reported to be stored."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
