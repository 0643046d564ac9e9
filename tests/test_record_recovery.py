"""A session record after `kill -9` of the server, recovered at its next start: the events
no checkpoint signed are cut (a half-written one with them), the media segments open at
the crash are listed, and the log carries on so the record ends verified. Real files, a
real checkpoint key and real age encryption; the crash is a real SIGKILL of a recorder."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from common.frames import EncodedFrame
from common.names import Kind, RoomId, Seat
from recordings.errors import RecordingError
from recordings.session_record import (
    CHECKPOINTS,
    EVENTS,
    SessionLog,
    check_log,
    cut_to_last_checkpoint,
    session_origin,
    verify_session,
)
from recordings.tlog import NoteVerifier
from server.session_records import SessionRecords, checkpoint_signer
from server.settings import Settings

from .clips import clip
from .conftest import with_recipients

ROOM = RoomId("iv_0123456789abcdef")
CONSENT = {"seat": "applicant", "text_version": "2026-11-01", "language": "en"}
HALF_AN_EVENT = b'{"agency":"CBP","at":"2026-11-02T10:00:0'


@pytest.fixture
def recording(settings: Settings, tmp_path: Path) -> Settings:
    """Settings of a server that records to three recipients."""
    configured, _ = with_recipients(settings, tmp_path / "agency-keys")
    return configured


def verifier(records: SessionRecords) -> NoteVerifier:
    return NoteVerifier.parse(records.signer.verifier_key)


def events(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (directory / EVENTS).read_bytes().splitlines()]


def files(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory``: its bytes and modification time."""
    return {
        str(path.relative_to(directory)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def crashed_log(records: SessionRecords, settings: Settings) -> tuple[Path, bytes]:
    """A log as `kill -9` leaves it: consent and a join signed by a checkpoint, then two
    whole events no checkpoint covers and half of a third. Returns its directory and the
    bytes the checkpoint covers."""
    directory = records.directory / ROOM
    origin = session_origin(urlsplit(settings.public_url).netloc, ROOM)
    log = SessionLog(directory, origin, records.signer)
    log.append("consent", **CONSENT)
    log.append("join", seat="cbsa", agency="CBSA")
    assert log.checkpoint() == 2
    signed = (directory / EVENTS).read_bytes()
    log.append("join", seat="cbp", agency="CBP")
    log.append("leave", seat="cbp")
    log.close_file()
    with (directory / EVENTS).open("ab") as torn:
        torn.write(HALF_AN_EVENT)
    return directory, signed


def record_until_killed(directory: Path, recipient: str) -> None:
    """A recorder writing the applicant's seat into ``directory``, killed with SIGKILL
    after a second of video: its segment is left open, listed by no event."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_session", "--recorder", str(directory), recipient],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "recording"
        assert int(process.stdout.readline()) == 30
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_a_torn_tail_is_cut_back_exactly_to_the_last_checkpoint(
    settings: Settings,
) -> None:
    records = SessionRecords(settings)
    directory, signed = crashed_log(records, settings)
    notes = files(directory / CHECKPOINTS)

    assert cut_to_last_checkpoint(directory, [verifier(records)]) == 2

    assert (directory / EVENTS).read_bytes() == signed
    assert stat.S_IMODE(os.stat(directory / EVENTS).st_mode) == 0o600
    assert files(directory / CHECKPOINTS) == notes  # nothing else removed
    check = check_log(directory, [verifier(records)], lambda o: o.endswith(f"/{ROOM}"))
    assert check.complete and check.last_checkpoint == len(check.events) == 2, check.problems
    assert cut_to_last_checkpoint(directory, [verifier(records)]) == 2  # now a no-op
    assert (directory / EVENTS).read_bytes() == signed


def test_a_log_without_a_checkpoint_keeps_no_event(settings: Settings) -> None:
    records = SessionRecords(settings)
    directory = records.directory / ROOM
    origin = session_origin(urlsplit(settings.public_url).netloc, ROOM)
    log = SessionLog(directory, origin, records.signer)
    log.append("consent", **CONSENT)
    log.close_file()

    assert cut_to_last_checkpoint(directory, [verifier(records)]) == 0
    assert (directory / EVENTS).read_bytes() == b""


def test_a_log_whose_checkpoints_another_key_signed_is_refused_and_left_as_it_is(
    settings: Settings, tmp_path: Path
) -> None:
    records = SessionRecords(settings)
    directory, _ = crashed_log(records, settings)
    before = files(directory)
    other = NoteVerifier.parse(checkpoint_signer(tmp_path / "other.pem").verifier_key)

    with pytest.raises(RecordingError, match="do not match its events"):
        cut_to_last_checkpoint(directory, [other])
    assert files(directory) == before


async def test_recovering_a_torn_log_cuts_it_and_the_session_carries_on_to_a_verified_end(
    settings: Settings,
) -> None:
    crashed = SessionRecords(settings)
    directory, signed = crashed_log(crashed, settings)
    last_signed = json.loads(signed.splitlines()[-1])
    records = SessionRecords(settings)  # the server, started again

    recovery = await records.recover(ROOM)

    assert (recovery.events_kept, recovery.events_cut) == (2, 3)
    assert recovery.last_event_at == last_signed["at"]
    assert recovery.listed == () and not recovery.ended
    await records.append(ROOM, "outage", since=recovery.last_event_at)
    await records.close(ROOM, by="server")
    result = verify_session(directory, [verifier(records)])
    assert not result.failed, result.problems  # a call's end: the interview has not closed
    assert [event["kind"] for event in events(directory)] == ["consent", "join", "outage", "end"]


async def test_a_first_append_after_a_restart_refuses_a_torn_log_and_carries_on_a_recovered_one(
    settings: Settings,
) -> None:
    crashed = SessionRecords(settings)
    directory, _ = crashed_log(crashed, settings)
    torn = (directory / EVENTS).read_bytes()
    records = SessionRecords(settings)

    with pytest.raises(RecordingError, match="half-written event"):
        await records.append(ROOM, "outage")
    assert (directory / EVENTS).read_bytes() == torn  # nothing glued onto the torn event

    await records.recover(ROOM)
    await records.append(ROOM, "outage")
    await records.close(ROOM)
    # a call's end: the interview has not closed
    assert not verify_session(directory, [verifier(records)]).failed


async def test_a_segment_open_at_the_crash_is_listed_and_recording_carries_on_in_a_new_file(
    recording: Settings,
) -> None:
    crashed = SessionRecords(recording)
    await crashed.append(ROOM, "consent", **CONSENT)
    directory = crashed.directory / ROOM
    await asyncio.to_thread(record_until_killed, directory, recording.cbsa_recipient)
    orphan = directory / "applicant-00001.webm.age"
    sealed_at_crash = orphan.read_bytes()
    before = verify_session(directory, [verifier(crashed)])
    assert f"segment {orphan.name} is not listed in the log" in before.problems
    records = SessionRecords(recording)

    recovery = await records.recover(ROOM)

    assert recovery.listed == (orphan.name,)
    assert (recovery.events_kept, recovery.events_cut) == (1, 0)
    listed = events(directory)[-1]
    assert listed == {
        "seq": 1,
        "at": listed["at"],
        "kind": "segment",
        "seat": "applicant",
        "file": orphan.name,
        "sha256": hashlib.sha256(sealed_at_crash).hexdigest(),
        "size": len(sealed_at_crash),
        "recovered": True,
    }
    assert (directory / CHECKPOINTS / "0000000002.note").exists()  # durable on return
    after = verify_session(directory, [verifier(records)])
    assert not any("not listed" in problem for problem in after.problems), after.problems

    video = clip()
    sink = records.sink(ROOM)
    for n, packet in enumerate(video):
        frame = EncodedFrame(packet, n * 3000, Fraction(1, 90000), n == 0)
        sink.on_frame(Seat.APPLICANT, Kind.VIDEO, frame)
    await records.append(ROOM, "outage", since=recovery.last_event_at)
    await records.close(ROOM, by="server")

    assert orphan.read_bytes() == sealed_at_crash  # never written to again
    assert (directory / "applicant-00002.webm.age").exists()
    result = verify_session(directory, [verifier(records)])
    assert not result.failed, result.problems  # a call's end: the interview has not closed
    assert result.segments == 2


async def test_recovering_a_cleanly_closed_log_changes_nothing(recording: Settings) -> None:
    before_restart = SessionRecords(recording)
    await before_restart.append(ROOM, "consent", **CONSENT)
    await before_restart.close(ROOM, by="cbsa")
    directory = before_restart.directory / ROOM
    before = files(directory)
    records = SessionRecords(recording)

    recovery = await records.recover(ROOM)
    await records.close_all()  # the server stops: no session was left open to end again

    assert (recovery.events_kept, recovery.events_cut, recovery.listed) == (2, 0, ())
    assert recovery.ended and recovery.last_event_at == events(directory)[-1]["at"]
    assert files(directory) == before


async def test_a_sealed_file_whose_event_was_lost_is_listed_and_a_closed_log_stays_closed(
    recording: Settings,
) -> None:
    before_restart = SessionRecords(recording)
    await before_restart.append(ROOM, "consent", **CONSENT)
    await before_restart.close(ROOM, by="cbsa")
    directory = before_restart.directory / ROOM
    # notes sealed beside the log, and the server killed before their decision was written
    notes = directory / "notes-cbsa.txt.age"
    notes.write_bytes(b"age-encryption.org/v1\n-> X25519 sealed\n--- mac\nciphertext")
    records = SessionRecords(recording)

    recovery = await records.recover(ROOM)
    await records.close_all()

    assert recovery.listed == (notes.name,) and recovery.ended
    assert [event["kind"] for event in events(directory)] == ["consent", "end", "recovered_file"]
    result = verify_session(directory, [verifier(records)])
    assert not result.failed, result.problems  # a call's end: the interview has not closed
