"""A media worker's recording kept by the control plane: a real recorder writing through
`ChannelOutputs`, every message encoded and decoded as on the channel, and
`ReceivedMedia` writing what arrives into the session record, which `verify_session`
then checks with the server's checkpoint key. Real age encryption, real files."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from common.frames import EncodedFrame
from common.names import Kind, RoomId, Seat
from media import protocol
from media.recording_outputs import (
    ChannelOutputs,
    progress_message,
    recording,
    sealed_message,
)
from recordings.age import AgeReader
from recordings.keys import Identity
from recordings.recorder import Recorder
from recordings.session_record import EVENTS, Verification, verify_session
from recordings.tlog import NoteVerifier
from server.received_media import ReceivedMedia
from server.session_records import SessionRecords
from server.settings import Settings

from .clips import clip

ROOM = RoomId("iv_00aa11bb22cc33dd")
CONSENT = {"seat": "applicant", "text_version": "2026-11-01", "language": "en"}
FIRST = "applicant-00001.webm.age"
Filter = Callable[[protocol.ToControl], protocol.ToControl | None]


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Worker:
    """A recorder on a worker's side of the channel: what it sends is encoded, decoded
    and handed to ``received`` as the control plane's link would; ``passing`` may drop
    or change a message on the way."""

    def __init__(
        self,
        received: ReceivedMedia,
        identity: Identity,
        passing: Filter = lambda message: message,
        next_segment: dict[Seat, int] | None = None,
        segment_seconds: float = 3600,
        use_recording: bool = False,
    ) -> None:
        self.received = received
        self.passing = passing
        self.sent: list[protocol.ToControl] = []
        self.clock = Clock()
        if use_recording:  # as the worker builds it
            self.recorder = recording(
                ROOM, self.send, [identity.recipient], next_segment, segment_seconds
            )
        else:  # the same, on a clock of the test's
            self.recorder = Recorder(
                ChannelOutputs(ROOM, self.send),
                [identity.recipient],
                next_segment=next_segment,
                segment_seconds=segment_seconds,
                on_segment=lambda info: self.send(sealed_message(ROOM, info)),
                on_progress=lambda progress: self.send(progress_message(ROOM, progress)),
                clock=self.clock,
            )
        self.video = clip()
        self.frames = 0

    def send(self, message: protocol.Message) -> None:
        decoded = protocol.decode_to_control(protocol.encode(message))
        self.sent.append(decoded)
        passed = self.passing(decoded)
        if isinstance(passed, protocol.SegmentBytes):
            self.received.bytes(passed)
        elif isinstance(passed, protocol.MediaProgress):
            self.received.progress(passed)
        elif isinstance(passed, protocol.SegmentSealed):
            self.received.sealed(passed)
        elif isinstance(passed, protocol.RecordingFailed):
            self.received.failed(passed)

    def play(self, seconds: float) -> None:
        """The applicant's video, 30 frames a second, a keyframe every second."""
        for _ in range(round(seconds * 30)):
            n = self.frames
            self.clock.now = 500.0 + n / 30
            packet = self.video[n % len(self.video)]
            frame = EncodedFrame(packet, n * 3000, Fraction(1, 90000), n % len(self.video) == 0)
            self.recorder.on_frame(Seat.APPLICANT, Kind.VIDEO, frame)
            self.frames += 1


@pytest.fixture
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture
async def records(settings: Settings, identity: Identity) -> SessionRecords:
    records = SessionRecords(settings.replace(cbsa_recipient=str(identity.recipient)))
    await records.append(ROOM, "consent", **CONSENT)
    return records


def events(records: SessionRecords) -> list[dict[str, object]]:
    path = records.directory / ROOM / EVENTS
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def verify(records: SessionRecords) -> Verification:
    verifier = NoteVerifier.parse(records.signer.verifier_key)
    return verify_session(records.directory / ROOM, [verifier])


def decrypted(path: Path, identity: Identity) -> bytes:
    with path.open("rb") as sealed:
        return b"".join(AgeReader(sealed, [identity]).recoverable())


async def test_a_recording_sent_by_a_worker_is_kept_in_a_record_that_verifies(
    records: SessionRecords, identity: Identity
) -> None:
    worker = Worker(ReceivedMedia(records), identity, segment_seconds=2.0)
    worker.play(5.5)
    worker.recorder.close()
    await records.close(ROOM, by="cbsa")

    directory = records.directory / ROOM
    sealed = [e for e in events(records) if e["kind"] == "segment"]
    assert [e["file"] for e in sealed] == [f"applicant-{n:05d}.webm.age" for n in (1, 2, 3)]
    assert sum(int(str(e["video_frames"])) for e in sealed) == worker.frames
    for event, info in zip(sealed, worker.recorder.segments, strict=True):
        held = (directory / info.file).read_bytes()
        assert (event["size"], event["sha256"]) == (len(held), hashlib.sha256(held).hexdigest())
        assert decrypted(directory / info.file, identity).startswith(b"\x1a\x45\xdf\xa3")  # EBML
    reported = {e["segment"] for e in events(records) if e["kind"] == "media"}
    assert reported == {e["file"] for e in sealed}
    result = verify(records)
    # a call's end: the interview has not closed, and nothing is wrong
    assert not result.failed and result.segments == 3, result.problems
    assert result.warnings == []


async def test_a_worker_lost_mid_segment_leaves_its_file_listed_as_recovered(
    records: SessionRecords, identity: Identity
) -> None:
    received = ReceivedMedia(records)
    worker = Worker(received, identity)
    worker.play(3.5)  # the recorder is never closed: its worker died

    assert received.lost(ROOM) == [FIRST]
    assert received.lost(ROOM) == []
    await records.close(ROOM, by="server")

    directory = records.directory / ROOM
    reports = [e for e in events(records) if e["kind"] == "media"]
    (listing,) = [e for e in events(records) if e["kind"] == "segment"]
    held = (directory / FIRST).read_bytes()
    assert listing["recovered"] is True and listing["seat"] == "applicant"
    assert (listing["size"], listing["sha256"]) == (len(held), hashlib.sha256(held).hexdigest())
    assert listing["authenticated_size"] == reports[-1]["size"]
    assert listing["authenticated_sha256"] == reports[-1]["sha256"]
    assert listing["started_at_ms"] == reports[-1]["started_at_ms"]
    result = verify(records)
    assert not result.failed, result.problems
    assert all(w.startswith("unauthenticated: ") for w in result.warnings), result.warnings
    assert received.next_segment(ROOM) == {Seat.APPLICANT: 2}


async def test_a_room_placed_again_numbers_its_segments_on(
    records: SessionRecords, identity: Identity
) -> None:
    received = ReceivedMedia(records)
    first = Worker(received, identity)
    first.play(1.5)
    first.recorder.close()
    assert received.next_segment(ROOM) == {Seat.APPLICANT: 2}

    following = received.next_segment(ROOM)
    again = Worker(received, identity, next_segment=following, use_recording=True)
    again.play(1.5)
    again.recorder.close()

    assert [s.file for s in again.recorder.segments] == ["applicant-00002.webm.age"]
    assert received.next_segment(ROOM) == {Seat.APPLICANT: 3}
    await records.close(ROOM, by="cbsa")
    result = verify(records)
    assert not result.failed and result.segments == 2, result.problems


async def test_bytes_that_do_not_follow_on_are_refused_with_an_event(
    records: SessionRecords, identity: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    count = {"bytes": 0}

    def misplace_the_third_run(message: protocol.ToControl) -> protocol.ToControl | None:
        if isinstance(message, protocol.SegmentBytes):
            count["bytes"] += 1
            if count["bytes"] == 3:
                message.offset += 7
        return message

    received = ReceivedMedia(records)
    worker = Worker(received, identity, passing=misplace_the_third_run)
    with caplog.at_level(logging.ERROR, logger="server.received_media"):
        worker.play(3.5)
        worker.recorder.close()
    await records.close(ROOM, by="cbsa")

    directory = records.directory / ROOM
    sent = [m for m in worker.sent if isinstance(m, protocol.SegmentBytes)]
    kept = sent[0].data + sent[1].data
    assert (directory / FIRST).read_bytes() == kept  # nothing after the gap was written
    (failed,) = [e for e in events(records) if e["kind"] == "recording_failed"]
    assert failed["seat"] == "applicant" and failed["segment"] == FIRST
    assert f"offset {len(kept) + 7} after {len(kept)} bytes" in str(failed["reason"])
    (listing,) = [e for e in events(records) if e["kind"] == "segment"]
    assert listing["recovered"] is True and listing["size"] == len(kept)
    logged = [r for r in caplog.records if r.name == "server.received_media"]
    assert [r.levelno for r in logged] == [logging.ERROR]
    result = verify(records)
    assert not result.failed, result.problems


async def test_a_sealed_segment_unlike_what_arrived_is_said_so(
    records: SessionRecords, identity: Identity
) -> None:
    def misreport(message: protocol.ToControl) -> protocol.ToControl | None:
        if isinstance(message, protocol.SegmentSealed):
            message.sha256 = "0" * 64
        return message

    worker = Worker(ReceivedMedia(records), identity, passing=misreport)
    worker.play(1.5)
    worker.recorder.close()
    await records.close(ROOM, by="cbsa")

    (failed,) = [e for e in events(records) if e["kind"] == "recording_failed"]
    assert f"SHA-256 {'0' * 64}" in str(failed["reason"])
    (listing,) = [e for e in events(records) if e["kind"] == "segment"]
    assert listing["recovered"] is True  # listed as what arrived, not as the worker said
    result = verify(records)
    assert not result.failed, result.problems


async def test_a_recording_that_failed_on_its_worker_is_written_and_still_verifies(
    records: SessionRecords, identity: Identity
) -> None:
    received = ReceivedMedia(records)
    worker = Worker(received, identity)
    worker.play(1.5)
    reason = "OSError: [Errno 28] No space left on device"
    worker.send(protocol.RecordingFailed(room=ROOM, seat=Seat.APPLICANT, reason=reason))
    await records.close(ROOM, by="cbsa")

    kinds = [e["kind"] for e in events(records)]
    assert kinds.index("segment") < kinds.index("recording_failed")  # what it left, listed
    (failed,) = [e for e in events(records) if e["kind"] == "recording_failed"]
    assert (failed["seat"], failed["reason"]) == ("applicant", reason)
    assert received.lost(ROOM) == []  # nothing of it is open any more
    result = verify(records)
    assert not result.failed, result.problems
