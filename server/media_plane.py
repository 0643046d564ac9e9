"""The control plane's view of the media plane: which worker carries each room, what
happens in it, and who listens.

A room is placed on the least-loaded live worker that is not draining (`open`); its seat
events come back as the room's `InterviewEvent`s, for the lifecycle and the pages. A
worker that falls silent for `DEAD_AFTER_SECONDS`, or whose channel closes, is lost: the
files its rooms were writing are listed in their records as a crash leaves them
(`ReceivedMedia.lost`), the interviews are told (``on_lost``: the lifecycle records the
outage), and the pages in those rooms are told to reconnect (`MediaMoved`), which places
each room again on a live worker within the reconnect grace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from common.logs import interview_context
from common.names import RoomId, Seat
from media import protocol as p
from media.interview import InterviewEvent

from .received_media import ReceivedMedia
from .room_handles import RoomHandle as RoomHandle  # re-exported: the views name it from here
from .room_handles import ignore
from .worker_links import MediaUnavailable, WorkerLink

log = logging.getLogger(__name__)

LOAD_SECONDS = 2.0
DEAD_AFTER_SECONDS = 5.0
WORKER_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class SeatMediaState:
    """A participant switched their microphone or camera."""

    seat: Seat
    audio: bool
    video: bool


@dataclass(frozen=True)
class SeatPath:
    """How a participant's media reaches the media worker, as their page measured it:
    ``direct`` or ``relayed`` (through TURN, over ``protocol``)."""

    seat: Seat
    path: Literal["direct", "relayed"]
    protocol: Literal["udp", "tcp", "tls"] | None = None


SeatReport = SeatMediaState | SeatPath
"""What a seat's page says of itself, told to the others and to whoever joins later."""


@dataclass(frozen=True)
class RecordUpdate:
    """The interview's record changed outside the call (a decision, an ID still): the
    officers' pages reload it. No seat: it concerns the interview."""

    what: Literal["decision", "still"]
    seat: None = None


@dataclass(frozen=True)
class MediaMoved:
    """The worker carrying the room was lost: pages connect again, and the room is placed
    on a live worker."""

    seat: None = None


RoomItem = InterviewEvent | SeatReport | RecordUpdate | MediaMoved
Listener = Callable[[RoomItem], None]
OnLost = Callable[[RoomId, str, datetime, list[str]], None]
"""A room's worker was lost: (room, worker, when it was last heard from, files listed)."""


class MediaPlane:
    def __init__(
        self,
        received: ReceivedMedia,
        on_event: Callable[[RoomId, InterviewEvent], None],
        on_lost: OnLost,
        record: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._received = received
        self._on_event = on_event
        self._on_lost = on_lost
        self._record = record
        self._clock = clock
        self.workers: dict[str, WorkerLink] = {}
        self._rooms: dict[RoomId, RoomHandle] = {}
        self._listeners: dict[RoomId, set[Listener]] = {}
        # Each seat's latest report of each kind (switches, path), for whoever joins later.
        self._states: dict[RoomId, dict[tuple[Seat, type], SeatReport]] = {}
        self.recording_failures = 0
        self.draining = False
        """Drain mode (a deploy): no new rooms; those on now finish."""
        self.on_joined: Callable[[float], None] = ignore
        """Seconds from a seat's offer to its answer (`server.metrics`)."""
        self.on_sealed: Callable[[float], None] = ignore
        """Seconds from a segment's last media to its seal's arrival here."""
        self._watch: asyncio.Task[None] | None = None
        self._joined = asyncio.Event()  # set when a worker joins
        self._closed = False

    # --- workers ------------------------------------------------------------------------

    def attach(self, link: WorkerLink) -> None:
        """A worker joined (or came back under the same name, replacing its old self)."""
        old = self.workers.get(link.name)
        if old is not None:
            self.lose(old)
        self.workers[link.name] = link
        self._joined.set()
        log.info("media worker %s joined (%d cores)", link.name, link.cores)
        if self._watch is None:
            self._watch = asyncio.ensure_future(self._watch_workers())

    def drain(self, name: str) -> None:
        """Give ``name`` no new rooms; those on it finish (a deploy)."""
        link = self.workers[name]
        link.draining = True
        if link.alive:
            link.tell(p.Drain())

    def live(self) -> list[WorkerLink]:
        return [link for link in self.workers.values() if link.alive]

    def handle(self, link: WorkerLink, message: p.ToControl) -> None:
        """One message from ``link``'s worker, in the order it sent them (what it logs
        carries the room's interview id)."""
        link.heard()
        room = getattr(message, "room", None)
        if room is None:
            self._handle(link, message)
            return
        with interview_context(room):
            self._handle(link, message)

    def _handle(self, link: WorkerLink, message: p.ToControl) -> None:
        match message:
            case p.Load():
                link.load = message
                if message.draining and not link.draining:
                    log.info("media worker %s is draining: it takes no new rooms", link.name)
                    link.draining = True
            case p.Answered() | p.Done() | p.Refused():
                link.answered(message)
            case p.SeatEvent(room=room):
                self._seat_event(RoomId(room), message)
            case p.RoomGone(room=room):
                handle = self._rooms.get(RoomId(room))
                if handle is not None and handle.link is link:
                    log.info("room %s emptied and closed on media worker %s", room, link.name)
                    self._forget(handle)
            case p.SegmentBytes():
                self._received.bytes(message)
            case p.MediaProgress():
                self._received.progress(message)
            case p.SegmentSealed():
                self._received.sealed(message)
                ended_ms = message.started_at_ms + message.duration_ms
                self.on_sealed(max(time.time() - ended_ms / 1000, 0.0))
            case p.RecordingFailed():
                self.recording_failures += 1
                self._received.failed(message)
            case _:
                log.warning("ignored a %s from media worker %s", type(message).__name__, link.name)

    def lose(self, link: WorkerLink) -> None:
        """``link``'s worker is gone (its channel closed, or it fell silent): its rooms
        are placed again when their participants come back."""
        if not link.alive:
            return
        link.lost()
        rooms = self._on(link)
        if self.workers.get(link.name) is link:
            del self.workers[link.name]
        if self._closed:
            log.info("media worker %s left", link.name)
        else:
            log.error("media worker %s lost; its %d rooms move", link.name, len(rooms))
        since = datetime.fromtimestamp(link.heard_wall, UTC)
        for handle in rooms:
            room_id = handle.id
            self._forget(handle)
            listed = self._received.lost(room_id)
            self._on_lost(room_id, link.name, since, listed)
            self._tell(room_id, MediaMoved())

    async def _watch_workers(self) -> None:
        while True:
            await asyncio.sleep(LOAD_SECONDS / 2)
            for link in list(self.workers.values()):
                if link.silent_for() > DEAD_AFTER_SECONDS:
                    self.lose(link)

    # --- rooms --------------------------------------------------------------------------

    def current(self, room_id: RoomId) -> RoomHandle | None:
        """The room's call if one is on (never opens one)."""
        handle = self._rooms.get(room_id)
        return handle if handle is not None and not handle.closed else None

    async def open(self, room_id: RoomId) -> RoomHandle:
        """The room's call, placed on a worker if none is on: the caller has checked that
        the interview's life allows a call now. With no worker to take it (the server is
        starting, a worker is being replaced) it waits up to `WORKER_WAIT_SECONDS`."""
        handle = self.current(room_id)
        if handle is not None:
            return handle
        if self.draining:
            raise MediaUnavailable(
                "this server is being restarted and starts no new calls; join again in a "
                "few minutes"
            )
        link = await self._least_loaded()
        handle = self.current(room_id)  # placed by someone else meanwhile
        if handle is not None:
            return handle
        next_segment = self._received.next_segment(room_id) if self._record else {}
        link.tell(p.PlaceRoom(room=room_id, record=self._record, next_segment=next_segment))
        handle = self._rooms[room_id] = RoomHandle(room_id, link, self.on_joined)
        with interview_context(room_id):
            log.info("room %s placed on media worker %s", room_id, link.name)
        return handle

    async def _least_loaded(self) -> WorkerLink:
        try:
            async with asyncio.timeout(WORKER_WAIT_SECONDS):
                while not (candidates := [w for w in self.live() if not w.draining]):
                    self._joined.clear()
                    await self._joined.wait()
        except TimeoutError:
            raise MediaUnavailable(
                "no media server is available right now; try again shortly"
            ) from None
        return min(candidates, key=self._busy)

    def rooms(self) -> list[RoomHandle]:
        """Every open room, in order of their ids (each knows its worker: `link`)."""
        return sorted(self._rooms.values(), key=lambda h: h.id)

    def _on(self, link: WorkerLink) -> list[RoomHandle]:
        """The rooms placed on ``link``'s worker, in order of their ids."""
        return sorted((h for h in self._rooms.values() if h.link is link), key=lambda h: h.id)

    def _busy(self, link: WorkerLink) -> tuple[float, float]:
        """How loaded a worker is, for placement: rooms per core, then measured CPU."""
        cpu = link.load.cpu if link.load is not None else 0.0
        return len(self._on(link)) / link.cores, cpu

    def _forget(self, handle: RoomHandle) -> None:
        handle.closed = True
        if self._rooms.get(handle.id) is handle:
            del self._rooms[handle.id]

    async def end(self, room_id: RoomId, **detail: Any) -> None:
        """End the room's call for everyone (``detail``: who ended it, what comes next),
        telling every listener even if nobody was connected; returns once its media is
        sealed."""
        handle = self._rooms.get(room_id)
        if handle is None or handle.closed or not handle.link.alive:
            self._states.pop(room_id, None)
            self.tell_ended(room_id, **detail)
            return
        await handle.link.ask(lambda n: p.EndRoom(request=n, room=room_id, detail=detail), p.Done)
        self._forget(handle)

    async def stop_recording(self, room_id: RoomId) -> None:
        """Seal the room's open segments now (their events come first) and record no more."""
        handle = self._rooms.get(room_id)
        if handle is not None and handle.link.alive:
            try:
                await handle.link.ask(lambda n: p.StopRecording(request=n, room=room_id), p.Done)
            except MediaUnavailable:
                log.warning("%s: its worker went before its recording was sealed", room_id)

    def _seat_event(self, room_id: RoomId, message: p.SeatEvent) -> None:
        event = InterviewEvent(message.kind, message.seat, message.at, dict(message.detail))
        handle = self._rooms.get(room_id)
        if handle is not None:
            handle.seen(event)
        self._on_event(room_id, event)
        self._tell(room_id, event)
        if event.seat is not None and event.kind in ("leave", "left"):
            reports = self._states.get(room_id, {})
            for key in [key for key in reports if key[0] is event.seat]:
                del reports[key]
        if event.kind == "end":
            self._states.pop(room_id, None)

    def tell_ended(self, room_id: RoomId, **detail: Any) -> None:
        """Tell the room's listeners a step is over though no call was on (its officer
        decided after ending it)."""
        self._tell(room_id, InterviewEvent("end", None, time.time(), dict(detail)))

    def listen(self, room_id: RoomId, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with the room's events; returns the function that stops it."""
        listeners = self._listeners.setdefault(room_id, set())
        listeners.add(listener)

        def stop() -> None:
            listeners.discard(listener)
            if not listeners and self._listeners.get(room_id) is listeners:
                del self._listeners[room_id]

        return stop

    def broadcast_state(self, room_id: RoomId, state: SeatReport) -> None:
        self._states.setdefault(room_id, {})[(state.seat, type(state))] = state
        self._tell(room_id, state)

    def record_updated(self, room_id: RoomId, what: Literal["decision", "still"]) -> None:
        self._tell(room_id, RecordUpdate(what))

    def states(self, room_id: RoomId) -> list[SeatReport]:
        """Each seat's latest reports, switches and path (for a newcomer's page)."""
        return list(self._states.get(room_id, {}).values())

    def _tell(self, room_id: RoomId, item: RoomItem) -> None:
        for listener in list(self._listeners.get(room_id, ())):
            listener(item)

    async def close(self) -> None:
        """End every call (their media sealed) and stop watching; safe to call twice."""
        self._closed = True
        handles = list(self._rooms.values())
        ended = await asyncio.gather(
            *(self.end(handle.id) for handle in handles), return_exceptions=True
        )
        for handle, result in zip(handles, ended, strict=True):
            if isinstance(result, BaseException):
                log.warning("%s did not end cleanly at shutdown: %s", handle.id, result)
                self._forget(handle)
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None

    def __len__(self) -> int:
        return len(self._rooms)
