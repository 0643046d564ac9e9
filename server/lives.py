"""Where interviews' lives are lived: every action on an interview goes through `Lives.act`,
which applies it with `lifecycle.apply` under the interview's lock, writes the events it
yields to the session record (the journal, durable before anything else changes), then
stores the new life, the columns copied from it and the same events in SQLite in one
transaction, and only then tells the listeners (the lobby, the rooms, the pages).

A refused action changes nothing and raises `lifecycle.Refused`; a repeat (no events)
writes nothing. An interview's final event closes its record and lists the session in
the server-wide log of closed sessions; both go to the witnesses. If the server dies
between the journal and SQLite, the journal wins at the next start (`resume`).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from common.errors import NexusError
from common.names import Agency, RoomId
from media.interview import InterviewEvent
from recordings.closed_sessions import CLOSED_SESSIONS
from recordings.errors import RecordingError
from recordings.record_completeness import FINAL_EVENTS
from server.types import Clock, InterviewId
from signalling.waiting_room import Need

from . import interview_actions, lifecycle
from .interview_actions import Action, Drop, Interrupt, Join, Leave, NoShow, Outage
from .interview_state import Life, Party, Phase, Presence
from .lifecycle import Outcome
from .record_recovery import Recovery
from .session_records import SessionRecords
from .store import Store
from .store.events import insert_event
from .store.interviews import LIVE_PHASES

log = logging.getLogger(__name__)

Prepare = Callable[[], Awaitable[dict[str, Any]]]
"""Work done once the action is known to be allowed, before it is journaled (sealing an ID
still or the notes): its fields go into the action's event."""
Also = Callable[[aiosqlite.Connection], Awaitable[None]]
"""More SQL for the transaction that stores the new life (the decision row)."""
EndCall = Callable[[RoomId, Mapping[str, Any]], Awaitable[None]]
"""Disconnects a call's participants, before its end is journaled (its media sealed)."""
StopRecording = Callable[[RoomId], Awaitable[None]]
"""Seals a call's open segments, before its final event is journaled."""

WITNESSED_EVENTS = FINAL_EVENTS | {"end", "decision", "outage"}
"""After these, the record's checkpoint is taken to the witnesses at once: a rollback
past a step's end, a decision or the close is then provable."""

# What a room reports, as the lifecycle's actions on the party's presence.
_ROOM_ACTIONS: Mapping[str, Callable[[Party], Action]] = {
    "join": Join,
    "rejoin": Join,
    "drop": Drop,
    "leave": Leave,
    "left": Leave,
}


@dataclass(frozen=True)
class Change:
    """What one action did to an interview (told to listeners once it is stored)."""

    interview_id: InterviewId
    action: Action
    before: Life
    after: Life
    events: tuple[str, ...]
    detail: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[Change], None]


class Lives:
    def __init__(
        self,
        store: Store,
        records: SessionRecords,
        clock: Clock,
        end_call: EndCall,
        stop_recording: StopRecording | None = None,
        no_show_minutes: int = 15,
        outage_wait_seconds: float = 600.0,
        witness: Callable[[str], None] | None = None,
    ) -> None:
        """``witness``: takes the name of a log under the records directory (an
        interview's id, or `CLOSED_SESSIONS`) whose newest checkpoint is to go to the
        agencies' witnesses."""
        self._witness = witness
        self._no_show_minutes = no_show_minutes
        self._outage_wait_seconds = outage_wait_seconds
        self._timers: list[asyncio.TimerHandle] = []
        self._store = store
        self._records = records
        self._clock = clock
        self._end_call = end_call
        self._stop_recording = stop_recording
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._listeners: list[Listener] = []
        self._pending: set[asyncio.Task[None]] = set()  # room reports being acted on
        self._acting: set[asyncio.Task[Outcome]] = set()  # every action under way

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _lock(self, interview_id: str) -> asyncio.Lock:
        lock = self._locks.get(interview_id)
        if lock is None:
            lock = self._locks[interview_id] = asyncio.Lock()
        return lock

    async def settled(self, interview_id: str) -> bool:
        """Wait for an action under way on the interview to be stored; True if one was.
        A call's participants hear of its end before it is journaled and stored (their
        media is sealed first), so a page they open at once must wait to show the end."""
        lock = self._locks.get(interview_id)
        if lock is None or not lock.locked():
            return False
        async with lock:
            return True

    async def life(self, interview_id: str) -> Life:
        return (await self._store.interviews.get(interview_id)).life

    async def check(self, interview_id: str, action: Action) -> Life:
        """Raise `lifecycle.Refused` if ``action`` may not happen now; changes nothing."""
        life = await self.life(interview_id)
        lifecycle.apply(life, action)
        return life

    async def act(
        self,
        interview_id: str,
        action: Action,
        *,
        detail: Mapping[str, Any] | None = None,
        prepare: Prepare | None = None,
        also: Also | None = None,
        at: float | None = None,
        name: str | None = None,
    ) -> Outcome:
        """Apply ``action``: journal, store, tell. ``detail`` goes into its first event
        (``name``, when given, names that event: a room's ``left`` rather than ``leave``);
        ``at``: when it happened, if not now."""
        # Its own task, shielded: a caller that goes away (a closed socket, a dropped
        # request) must not stop a step between its journal and the store.
        acting = asyncio.ensure_future(
            self._act(interview_id, action, detail, prepare, also, at, name)
        )
        self._acting.add(acting)
        acting.add_done_callback(_settled)
        acting.add_done_callback(self._acting.discard)
        return await asyncio.shield(acting)

    async def _act(
        self,
        interview_id: str,
        action: Action,
        detail: Mapping[str, Any] | None,
        prepare: Prepare | None,
        also: Also | None,
        at: float | None,
        name: str | None,
    ) -> Outcome:
        async with self._lock(interview_id):
            interview = await self._store.interviews.get(interview_id)
            outcome = lifecycle.apply(interview.life, action)
            if not outcome.events:
                return outcome
            fields = {**(detail or {}), **(await prepare() if prepare is not None else {})}
            fields["action"] = interview_actions.action_fields(action)
            events = _named(outcome.events, name)
            await self._journal(RoomId(interview.id), action, events, fields)
            moment = at if at is not None else self._clock().timestamp()
            async with self._store.database.transaction() as db:
                await self._store.interviews.save_life(
                    db, interview.id, outcome.life, call_ended="end" in events
                )
                for number, event in enumerate(events):
                    await insert_event(
                        db,
                        interview.id,
                        moment,
                        event,
                        _seat_of(action),
                        fields if not number else {},
                    )
                if also is not None:
                    await also(db)
            change = Change(interview.id, action, interview.life, outcome.life, events, fields)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("a listener failed on %s of %s", events, interview.id)
        if events[-1] in FINAL_EVENTS:
            # Once the close's checkpoint is on disk; after the store and the pages, whom
            # it need not keep waiting (a stop before it is made good at the next start).
            await self._list_closed(RoomId(interview_id))
        return outcome

    async def _journal(
        self, room_id: RoomId, action: Action, events: tuple[str, ...], fields: dict[str, Any]
    ) -> None:
        """The events in the session record, durable before this returns. A call's end
        disconnects its participants first, so that its media is sealed before the end."""
        for number, event in enumerate(events):
            # Only the first event carries the action: a replay applies each action once.
            detail = fields if not number else {"after": fields["action"]["do"]}
            seat = _seat_of(action)
            if seat is not None:
                detail = {"seat": seat, **detail}
            if event == "end":
                await self._end_call(room_id, detail)
                await self._records.close(room_id, **detail)
            else:
                if event in FINAL_EVENTS:  # its media's last segments are listed before it
                    if self._stop_recording is not None:
                        await self._stop_recording(room_id)
                    self._records.stop_recording(room_id)
                await self._records.append(room_id, event, **detail)
        if events[-1] in FINAL_EVENTS:
            await self._records.finish(room_id)
        if self._witness is not None and WITNESSED_EVENTS.intersection(events):
            self._witness(room_id)  # the checkpoint now on disk goes to the agencies' witnesses

    async def _list_closed(self, room_id: RoomId) -> None:
        """The session, closed, into the server-wide log of closed sessions (which alone
        shows a session deleted whole), and that log to the witnesses. A failure here
        does not undo the interview's end: the session is listed at the next start."""
        try:
            await self._records.list_closed(room_id)
        except (RecordingError, NexusError, OSError):
            log.exception("%s could not be listed as closed; it will be at the next start", room_id)
            return
        if self._witness is not None:
            self._witness(CLOSED_SESSIONS)

    async def resume(self) -> None:
        """At start, after a stop or a crash: each interview not over whose session record
        exists is brought in line with its journal (the journal wins over SQLite: it is
        written first, and a torn tail is cut back to its last signed checkpoint, the
        media files it does not list listed); a call that was on gets an ``outage`` event
        with its length, and is marked interrupted if nobody comes back in time."""
        for interview in await self._store.interviews.in_phases(*LIVE_PHASES):
            room_id = RoomId(interview.id)
            if not self._records.has_log(room_id):
                continue
            try:
                recovery = await self._records.recover(room_id)
                journal = await asyncio.to_thread(self._records.journal, room_id)
            except (RecordingError, NexusError, OSError):
                log.exception("the session record of %s needs a person to look at it", room_id)
                continue
            actions = [
                action
                for event in journal
                if isinstance(event.get("action"), dict)
                and (action := interview_actions.action_from(event["action"])) is not None
            ]
            if journal and journal[-1].get("kind") in FINAL_EVENTS:
                await self._records.finish(room_id)  # ended before the stop: stays so
            if actions:
                await self._follow_journal(interview.id, lifecycle.replay(interview.mode, actions))
            await self._after_outage(interview.id, recovery)
        await self._list_unlisted_closed()

    async def _list_unlisted_closed(self) -> None:
        """Sessions over whose listing as closed a stop came (or that ended before the
        log of closed sessions existed) are listed now."""
        try:
            listed = await self._records.list_unlisted_closed()
        except (RecordingError, NexusError, OSError):
            log.exception("the log of closed sessions needs a person to look at it")
            return
        if listed and self._witness is not None:
            self._witness(CLOSED_SESSIONS)

    async def _follow_journal(self, interview_id: str, life: Life) -> None:
        async with self._lock(interview_id):
            stored = await self._store.interviews.get(interview_id)
            if stored.life == life:
                return
            log.warning("%s: the store lagged its journal; the journal wins", interview_id)
            async with self._store.database.transaction() as db:
                await self._store.interviews.save_life(db, interview_id, life)

    async def _after_outage(self, interview_id: str, recovery: Recovery) -> None:
        now = self._clock()
        since = datetime.fromisoformat(recovery.last_event_at) if recovery.last_event_at else now
        # Media went on being written after the last event: the outage began at the latest
        # write the crash left.
        written = await asyncio.to_thread(self._records.last_written, RoomId(interview_id))
        if written is not None and written > since:
            since = written
        detail = {
            "since": since.isoformat(timespec="milliseconds"),
            "seconds": round(max((now - since).total_seconds(), 0.0), 3),
            "recovered_files": list(recovery.listed),
        }
        await self._outage(interview_id, detail)

    def media_lost(
        self, room_id: RoomId, worker: str, since: datetime, recovered: list[str]
    ) -> None:
        """The media worker carrying the call was lost: an outage, as a restart is one
        (the participants reconnect to a live worker, or the interview is interrupted)."""
        detail = {
            "cause": "media worker lost",
            "worker": worker,
            "since": since.isoformat(timespec="milliseconds"),
            "recovered_files": recovered,
        }
        self.spawn(self._outage(room_id, detail))

    async def _outage(self, interview_id: str, detail: dict[str, Any]) -> None:
        outcome = await self.act(interview_id, Outage(), detail=detail)
        if "outage" in outcome.events:
            loop = asyncio.get_running_loop()
            self._timers.append(
                loop.call_later(self._outage_wait_seconds, self._interrupt_later, interview_id)
            )

    def _interrupt_later(self, interview_id: str) -> None:
        self.spawn(self._interrupt_if_gone(interview_id))

    async def _interrupt_if_gone(self, interview_id: str) -> None:
        """Nobody came back to the call the outage cut: it cannot go on."""
        life = await self.life(interview_id)
        if life.phase is Phase.IN_CALL and Presence.CONNECTED not in life.presence.values():
            await self.act(interview_id, Interrupt())

    async def sweep(self) -> None:
        """What time alone decides: an applicant who has not come (not even checked in) by
        the appointment plus the grace is a no-show."""
        late = self._clock() - timedelta(minutes=self._no_show_minutes)
        for interview in await self._store.interviews.in_phases(Phase.SCHEDULED):
            life = interview.life
            if interview.window_start <= late and not (life.checked_in or life.applicant_joined):
                try:
                    await self.act(interview.id, NoShow())
                except lifecycle.Refused:
                    continue  # came in meanwhile

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` soon, logged if it fails; `drain` waits for it."""
        task = asyncio.ensure_future(self._logged(work))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("an interview's timer failed")

    def close(self) -> None:
        """No more timers (shutdown); safe twice."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def room_event(self, room_id: RoomId, event: InterviewEvent) -> None:
        """A room's report (a join, a drop, a leave): acted on in order, without making
        the room wait. Its end is the lifecycle's own, not the room's."""
        make = _ROOM_ACTIONS.get(event.kind)
        if make is None or event.seat is None:
            return
        action = make(Party(event.seat.value))
        task = asyncio.ensure_future(self._room_act(room_id, action, event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _room_act(self, room_id: RoomId, action: Action, event: InterviewEvent) -> None:
        try:
            await self.act(room_id, action, detail=event.detail, at=event.at, name=event.kind)
        except lifecycle.Refused as refused:
            log.warning("%s in %s not recorded: %s", event.kind, room_id, refused.message)
        except Exception:
            log.exception("could not record the %s in %s", event.kind, room_id)

    async def drain(self) -> None:
        """Wait until every action under way and every room report already made is
        stored (shutdown, and tests that read the store after a call)."""
        while under_way := {*self._pending, *self._acting}:
            await asyncio.wait(under_way)


def _settled(task: asyncio.Task[Outcome]) -> None:
    """Whoever awaited it may have gone: its refusal or failure is still seen."""
    failure = None if task.cancelled() else task.exception()
    if failure is not None and not isinstance(failure, NexusError):
        log.error("an interview step failed", exc_info=failure)


def need_of(life: Life) -> Need | None:
    """The officers the applicant waits for now (None: every place of the step is
    taken)."""
    missing = [
        agency
        for agency in life.step_agencies(life.step or life.first_step())
        if agency not in life.officers
    ]
    if len(missing) == 2:
        return Need.JOINT
    if missing:
        return Need.CBSA if missing[0] is Agency.CBSA else Need.CBP
    return None


def _named(events: tuple[str, ...], name: str | None) -> tuple[str, ...]:
    """The room's own name for the first event where it says more: ``left`` (the grace
    period ran out) for the lifecycle's ``leave``. A ``rejoin`` stays a rejoin even if
    the room, new after a restart, took it for a first join."""
    if name is None or not events:
        return events
    first = events[0]
    if first == "leave" and name == "left":
        first = name
    return (first, *events[1:])


def _seat_of(action: Action) -> str | None:
    party = getattr(action, "party", None)
    return party.value if isinstance(party, Party) else None
