"""Session records commit in groups: events are written as they come, and the fsync and
signed checkpoint that make them durable run in a thread, each covering every event
written before it. A flood of events costs a few commits, a caller is answered only once
the checkpoint covering its event is on disk, and closing waits for every event."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from common.errors import Conflict
from common.names import RoomId
from recordings.session_record import CHECKPOINTS, LogCheck, check_log, verify_session
from recordings.tlog import NoteVerifier
from server.session_records import SessionRecords
from server.settings import Settings

from .media import wait_for

ROOM = RoomId("iv_0123456789abcdef")
CONSENT = {"seat": "applicant", "text_version": "2026-11-01", "language": "en"}


def instrument_fsync(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[], object] = lambda: None
) -> list[int]:
    """Record the thread of every fsync (after ``before``), as a real disk would be slow."""
    threads: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        threads.append(threading.get_ident())
        before()
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return threads


def session(records: SessionRecords) -> Path:
    return records.directory / ROOM


def notes(records: SessionRecords) -> list[Path]:
    return sorted((session(records) / CHECKPOINTS).glob("*.note"))


def checked(records: SessionRecords) -> LogCheck:
    verifier = NoteVerifier.parse(records.signer.verifier_key)
    return check_log(session(records), [verifier], lambda origin: origin.endswith(f"/{ROOM}"))


def join(records: SessionRecords, number: int, room: RoomId = ROOM) -> None:
    records.append_soon(room, "join", seat="cbsa", agency="CBSA", n=number)


async def test_a_flood_of_events_is_made_durable_in_a_few_commits(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    instrument_fsync(monkeypatch, lambda: time.sleep(0.002))
    records = SessionRecords(settings)
    for number in range(500):
        join(records, number)
        await asyncio.sleep(0)  # the room's events arrive over many turns of the loop
    await records.append(ROOM, "consent", **CONSENT)
    check = checked(records)
    assert not check.problems
    assert len(check.events) == 501
    assert check.last_checkpoint == 501  # the awaited commit covers the whole flood
    assert len(notes(records)) <= 25, len(notes(records))
    await records.close_all()


async def test_a_caller_is_answered_only_once_the_checkpoint_covering_its_event_is_on_disk(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = threading.Event()
    instrument_fsync(monkeypatch, lambda: disk.wait(10))
    records = SessionRecords(settings)
    answered = asyncio.ensure_future(records.append(ROOM, "consent", **CONSENT))
    ticks = 0
    for _ in range(20):  # the loop keeps turning while the disk is held up
        await asyncio.sleep(0.005)
        ticks += 1
    assert ticks == 20 and not answered.done()
    assert (session(records) / "events.jsonl").read_bytes().count(b"\n") == 1  # written...
    assert notes(records) == []  # ...but not yet covered by a checkpoint
    disk.set()
    await answered
    assert [path.name for path in notes(records)] == ["0000000001.note"]
    assert checked(records).complete
    await records.close_all()


async def test_fsync_and_signing_never_run_on_the_event_loop(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = SessionRecords(settings)  # its key made (and fsynced) once, at start
    threads = instrument_fsync(monkeypatch)
    await records.append(ROOM, "consent", **CONSENT)
    join(records, 1)
    await records.append(ROOM, "decision", agency="CBSA", verdict="approve", reason_codes=[])
    await records.close(ROOM, by="cbsa")
    await records.close_all()
    assert threads, "nothing was fsynced"
    assert threading.get_ident() not in threads
    result = verify_session(session(records), [NoteVerifier.parse(records.signer.verifier_key)])
    # a call's end, not the interview's close: unfinished, but every event signed
    assert not result.failed and result.events == result.last_checkpoint, result.problems


async def test_an_event_nobody_waits_for_is_committed_soon(settings: Settings) -> None:
    records = SessionRecords(settings)
    join(records, 1)
    await wait_for(lambda: checked(records).last_checkpoint == 1)
    join(records, 2)
    await wait_for(lambda: checked(records).last_checkpoint == 2)
    await records.close_all()


async def test_closing_commits_every_pending_event_and_then_refuses_more(
    settings: Settings,
) -> None:
    records = SessionRecords(settings)
    await records.append(ROOM, "consent", **CONSENT)
    for number in range(50):
        join(records, number)  # nobody waits for these
    await records.close(ROOM, by="cbsa")
    result = verify_session(session(records), [NoteVerifier.parse(records.signer.verifier_key)])
    assert not result.failed, result.problems  # a call's end: the interview has not closed
    assert result.events == result.last_checkpoint == 52

    other = RoomId("iv_fedcba9876543210")
    join(records, 1, other)
    await records.close_all()  # as the app shuts down: every session ends and is covered
    verifier = NoteVerifier.parse(records.signer.verifier_key)
    ended = check_log(records.directory / other, [verifier], lambda origin: True)
    assert ended.complete and [e["kind"] for e in ended.events] == ["join", "end"]
    with pytest.raises(Conflict, match="shutting down"):
        await records.append(other, "consent", **CONSENT)
    await records.close_all()  # safe twice
