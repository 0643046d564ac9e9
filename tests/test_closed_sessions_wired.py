"""The interview server keeps the log of closed sessions as interviews end (`Lives` over a
real SQLite file and real signed session records): an interview's final event lists it,
once, with its final checkpoint; a session whose final event was journaled but not listed
(a crash between the two, or a record older than the log) is listed at the next start,
exactly once, and nothing is written to its record after its close."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from common.names import RoomId
from recordings.closed_sessions import CLOSED_SESSIONS, check_record, read_closed_sessions
from recordings.session_record import EVENTS
from recordings.tlog import NoteVerifier
from server import interview_actions
from server.appkeys import LIVES, RECORDS
from server.auth import token_hash
from server.interview_actions import Interrupt, NoShow
from server.interview_state import Phase
from server.lives import Lives
from server.session_records import SessionRecords
from server.settings import Settings
from server.store import Store
from server.types import InterviewId, InterviewMode

from .calls import applicant_in_call
from .fakes import FakeClock, World, add_applications, application


async def _no_call(room_id: RoomId, detail: Mapping[str, Any]) -> None:
    """No media here: the records are what is under test."""


class Server:
    """The parts of one run of the server that keep records."""

    def __init__(self, settings: Settings, clock: FakeClock) -> None:
        self.store = Store(settings.database_path, clock)
        self.records = SessionRecords(settings)
        self.witnessed: list[str] = []
        self.lives = Lives(self.store, self.records, clock, _no_call, witness=self.witnessed.append)

    async def start(self) -> Server:
        await self.store.open()
        await self.lives.resume()
        return self

    async def stop(self) -> None:
        await self.lives.drain()
        await self.records.close_all()
        await self.store.close()

    def verifiers(self) -> list[NoteVerifier]:
        return [NoteVerifier.parse(self.records.signer.verifier_key)]


async def scheduled(store: Store, clock: FakeClock, application_id: str) -> InterviewId:
    await add_applications(store, application(application_id))
    return await store.interviews.schedule(
        application_id,
        InterviewMode.JOINT,
        clock() - timedelta(hours=1),
        clock() + timedelta(hours=8),
        token_hash(application_id),
        "test",
    )


def closed_log_entries(records: Path) -> list[bytes]:
    path = records / CLOSED_SESSIONS / EVENTS
    return path.read_bytes().splitlines() if path.exists() else []


async def test_an_interviews_final_event_lists_it_once_and_the_closed_log_is_witnessed(
    settings: Settings, clock: FakeClock
) -> None:
    server = await Server(settings, clock).start()
    interview = await scheduled(server.store, clock, "NX-0001")
    await server.lives.act(interview, NoShow())
    record = server.records.directory / interview
    closed = read_closed_sessions(server.records.directory, server.verifiers())
    assert list(closed.entries) == [interview] and closed.problems == []
    assert check_record(closed, record, server.verifiers()) == []
    assert server.witnessed == [interview, CLOSED_SESSIONS]
    await server.stop()
    server = await Server(settings, clock).start()  # a restart lists nothing again
    await server.stop()
    assert len(closed_log_entries(server.records.directory)) == 1


async def test_a_final_session_a_crash_left_unlisted_is_listed_once_at_the_next_start(
    settings: Settings, clock: FakeClock
) -> None:
    server = await Server(settings, clock).start()
    interview = await scheduled(server.store, clock, "NX-0001")
    room = RoomId(interview)
    # The final event journaled and the record closed, then the crash: neither the
    # closed log nor SQLite heard of it.
    await server.records.append(room, "no-show", action=interview_actions.action_fields(NoShow()))
    await server.records.finish(room)
    await server.store.close()
    assert closed_log_entries(server.records.directory) == []
    for _ in range(2):  # the next start, and the one after
        server = await Server(settings, clock).start()
        await server.stop()
    records = server.records.directory
    assert len(closed_log_entries(records)) == 1
    closed = read_closed_sessions(records, server.verifiers())
    assert list(closed.entries) == [interview] and closed.problems == []
    # the journal won, and nothing was written to the record after its close
    assert (await _phase(settings, clock, interview)) is Phase.NO_SHOW
    assert check_record(closed, records / interview, server.verifiers()) == []


async def test_sessions_closed_before_the_log_existed_are_listed_at_the_next_start(
    settings: Settings, clock: FakeClock
) -> None:
    server = await Server(settings, clock).start()
    first = await scheduled(server.store, clock, "NX-0001")
    second = await scheduled(server.store, clock, "NX-0002")
    running = await scheduled(server.store, clock, "NX-0003")
    await server.lives.act(first, NoShow())
    await server.lives.act(second, NoShow())
    await server.records.append(RoomId(running), "check-in")  # not over: not listed
    await server.stop()
    shutil.rmtree(server.records.directory / CLOSED_SESSIONS)
    server = await Server(settings, clock).start()
    assert server.witnessed == [CLOSED_SESSIONS]
    await server.stop()
    closed = read_closed_sessions(server.records.directory, server.verifiers())
    assert sorted(closed.entries) == sorted([first, second]) and closed.problems == []


async def _phase(settings: Settings, clock: FakeClock, interview: str) -> Phase:
    store = await Store(settings.database_path, clock).open()
    try:
        return (await store.interviews.get(interview)).life.phase
    finally:
        await store.close()


async def test_an_interview_interrupted_while_recording_ends_its_record_with_the_final_event(
    recorded: tuple[World, dict[str, Path]],
) -> None:
    """Its open segments are sealed and listed before the final event: nothing but
    shredding may follow that event, and the closed log lists the record as it ends."""
    world, _ = recorded
    async with applicant_in_call(world) as call:
        await asyncio.sleep(0.5)  # media is being recorded
        await world.server.app[LIVES].act(call.interview_id, Interrupt())
        await asyncio.sleep(0.5)  # and goes on arriving a while
    await world.server.app[LIVES].drain()
    records = world.server.app[RECORDS]
    journal = records.journal(RoomId(call.interview_id))
    kinds = [event["kind"] for event in journal]
    assert "segment" in kinds and kinds[-1] == "interrupted", kinds[-6:]
    verifiers = [NoteVerifier.parse(records.signer.verifier_key)]
    closed = read_closed_sessions(records.directory, verifiers)
    assert closed.entries[call.interview_id].size == len(journal)
