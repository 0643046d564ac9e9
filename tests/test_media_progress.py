"""Media authenticated as it is written: while a segment is open the recorder reports its
sealed bytes and their SHA-256 (at least every second while media flows), the session log
signs each report as a ``media`` event, and verification holds a segment left open by a
crash to the last report it signed. Real recorders, real age, real files; the crash is a
real SIGKILL of a process recording through `SessionRecords`."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import pytest

from common.frames import EncodedFrame
from common.names import Kind, RoomId, Seat
from recordings.age import encrypt
from recordings.keys import Recipient
from recordings.recorder import REPORT_MS, FileOutputs, MediaProgress, Recorder
from recordings.session_record import EVENTS, Verification, verify_session
from recordings.tlog import NoteVerifier
from server.session_records import SessionRecords
from server.settings import Settings

from .clips import clip
from .conftest import with_recipients

ROOM = RoomId("iv_00112233445566aa")
CONSENT = {"seat": "applicant", "text_version": "2026-11-01", "language": "en"}
SEGMENT = "applicant-00001.webm.age"


@pytest.fixture
def recording(settings: Settings, tmp_path: Path) -> Settings:
    configured, _ = with_recipients(settings, tmp_path / "agency-keys")
    return configured


def events(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (directory / EVENTS).read_bytes().splitlines()]


def seconds(at: object) -> float:
    return datetime.fromisoformat(str(at)).timestamp()


def prefix_sha256(path: Path, size: int) -> str:
    return hashlib.sha256(path.read_bytes()[:size]).hexdigest()


def verify(records: SessionRecords, directory: Path) -> Verification:
    return verify_session(directory, [NoteVerifier.parse(records.signer.verifier_key)])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reports_come_at_most_a_second_apart_while_frames_flow_and_hash_what_is_on_disk(
    tmp_path: Path, recording: Settings
) -> None:
    clock = Clock()
    reports: list[tuple[float, MediaProgress]] = []
    media = tmp_path / "media"
    recorder = Recorder(
        FileOutputs(media),
        [Recipient.parse(recording.cbsa_recipient)],
        clock=clock,
        on_progress=lambda progress: reports.append((clock.now, progress)),
    )
    video = clip()
    for n in range(30 * 10):  # ten seconds at 30 frames a second
        clock.now = 1000.0 + n / 30
        packet = video[n % len(video)]
        frame = EncodedFrame(packet, n * 3000, Fraction(1, 90000), n % len(video) == 0)
        recorder.on_frame(Seat.APPLICANT, Kind.VIDEO, frame)
        if reports and reports[-1][0] == clock.now:  # the file as the report saw it
            progress = reports[-1][1]
            assert (media / progress.file).stat().st_size == progress.size
            assert prefix_sha256(media / progress.file, progress.size) == progress.sha256

    times = [1000.0] + [at for at, _ in reports]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(reports) >= 9 and max(gaps) <= REPORT_MS / 1000 + 1 / 30 + 1e-9, gaps
    sizes = [progress.size for _, progress in reports]
    assert sizes == sorted(set(sizes))  # each report holds new sealed bytes
    assert {(p.seat, p.file) for _, p in reports} == {(Seat.APPLICANT, SEGMENT)}
    recorder.close()
    (sealed,) = recorder.segments
    assert prefix_sha256(media / sealed.file, sizes[-1]) == reports[-1][1].sha256


def record_until_killed(settings: Settings, frames: int) -> float:
    """`SessionRecords` in a process of its own, recording the applicant's seat, killed
    with SIGKILL once ``frames`` frames are in: its segment is left open. Returns when
    (Unix time) it was killed."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.crash_session",
            str(settings.data_dir),
            ROOM,
            settings.cbsa_recipient,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "recording"
        while int(process.stdout.readline()) < frames:
            pass
        time.sleep(0.2)  # a report's checkpoint follows it within moments
    finally:
        killed = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait()
    return killed


async def crashed_session(settings: Settings) -> tuple[float, Path]:
    """A record whose server was killed after four seconds of the applicant's video; when
    it was killed."""
    before = SessionRecords(settings)
    await before.append(ROOM, "consent", **CONSENT)
    killed = await asyncio.to_thread(record_until_killed, settings, 30 * 4)
    return killed, before.directory / ROOM


async def restart_and_close(settings: Settings) -> tuple[SessionRecords, dict[str, object]]:
    """The server started again: the crashed record recovered, an outage, and nobody came
    back: the interview is interrupted (its final event)."""
    records = SessionRecords(settings)
    recovery = await records.recover(ROOM)
    assert SEGMENT in recovery.listed
    directory = records.directory / ROOM
    (listing,) = [e for e in events(directory) if e.get("recovered")]
    await records.append(ROOM, "outage", since=recovery.last_event_at)
    await records.append(ROOM, "interrupted")
    await records.finish(ROOM)
    return records, listing


async def test_a_crashed_segment_is_reported_as_it_was_written(recording: Settings) -> None:
    killed, directory = await crashed_session(recording)
    reports = [e for e in events(directory) if e["kind"] == "media"]

    times = [seconds(e["at"]) for e in reports] + [killed]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(reports) >= 3 and max(gaps) <= 2.0, gaps  # to the kill, too
    path = directory / SEGMENT
    for report in reports:
        assert report["segment"] == SEGMENT and report["seat"] == "applicant"
        assert "file" not in report  # it does not list the file: only its seal or recovery do
        assert prefix_sha256(path, int(str(report["size"]))) == report["sha256"]


async def test_a_crashed_segment_whose_unreported_tail_was_replaced_verifies_with_a_warning(
    recording: Settings,
) -> None:
    _, directory = await crashed_session(recording)
    path = directory / SEGMENT
    last = [e for e in events(directory) if e["kind"] == "media"][-1]
    held = path.read_bytes()
    reported = int(str(last["size"]))
    # the bytes after the last report replaced, and the file extended
    path.write_bytes(held[:reported] + random.Random(3).randbytes(len(held) - reported + 5000))

    records, listing = await restart_and_close(recording)

    result = verify(records, directory)
    assert not result.failed, result.problems  # interrupted, but no witness key given
    tail = path.stat().st_size - int(str(listing["authenticated_size"]))
    assert tail >= 5000
    assert result.warnings == [
        f"unauthenticated: the last {tail} bytes of {SEGMENT} were written after the last "
        "signed report (≤ 2 s of media)"
    ]
    assert listing["authenticated_sha256"] == prefix_sha256(path, path.stat().st_size - tail)
    assert listing["size"] == path.stat().st_size  # the whole file, as verification checks
    assert listing["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_crashed_segment_replaced_by_a_forgery_to_the_same_recipients_fails(
    recording: Settings,
) -> None:
    _, directory = await crashed_session(recording)
    path = directory / SEGMENT
    recipients = [Recipient.parse(recording.cbsa_recipient)]
    path.write_bytes(encrypt(random.Random(4).randbytes(path.stat().st_size), recipients))

    records, _ = await restart_and_close(recording)

    result = verify(records, directory)
    assert result.failed and not result.ok
    (problem,) = result.problems
    assert problem.startswith(f"segment {SEGMENT} was altered or replaced: its first "), problem
    assert "do not match what the log signed at" in problem


async def test_a_clean_record_with_media_reports_verifies_without_warnings(
    recording: Settings,
) -> None:
    records = SessionRecords(recording)
    await records.append(ROOM, "consent", **CONSENT)
    sink = records.sink(ROOM)
    video = clip()
    started = time.monotonic()
    for n in range(75):  # two and a half seconds, in real time
        packet = video[n % len(video)]
        frame = EncodedFrame(packet, n * 3000, Fraction(1, 90000), n % len(video) == 0)
        sink.on_frame(Seat.APPLICANT, Kind.VIDEO, frame)
        await asyncio.sleep(max(0.0, started + (n + 1) / 30 - time.monotonic()))
    await records.close(ROOM, by="cbsa")

    directory = records.directory / ROOM
    kinds = [e["kind"] for e in events(directory)]
    assert kinds[0] == "consent" and kinds[-2:] == ["segment", "end"]
    assert kinds.count("media") >= 2
    result = verify(records, directory)
    # a call's end: the interview has not closed
    assert not result.failed and result.segments == 1, result.problems
    assert result.warnings == []


async def test_a_recovered_segment_altered_afterwards_is_one_fault(recording: Settings) -> None:
    _, directory = await crashed_session(recording)
    records, _ = await restart_and_close(recording)
    path = directory / SEGMENT
    held = path.read_bytes()
    path.write_bytes(held[:100] + bytes([held[100] ^ 1]) + held[101:])

    result = verify(records, directory)

    assert result.problems == [
        f"segment {SEGMENT} does not match its hash: it was altered or replaced"
    ]


async def test_a_recovered_segment_carries_the_start_its_reports_signed(
    recording: Settings,
) -> None:
    """A segment a crash cut short has no ``segment`` event of its own to say when it
    began: its recovery listing takes that from the reports, so export places it there."""
    launched = time.time()
    killed, directory = await crashed_session(recording)
    starts = {e.get("started_at_ms") for e in events(directory) if e["kind"] == "media"}
    (start,) = starts
    assert isinstance(start, int)
    # the first frame came after the process started, four seconds of video before the kill
    assert launched * 1000 <= start <= killed * 1000 - 3900, (launched, start, killed)

    _, listing = await restart_and_close(recording)

    assert listing["started_at_ms"] == start
