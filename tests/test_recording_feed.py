"""A room's recording off its forwarding path: `RecordingFeed` queues what the room hands
it and feeds a real recorder (real VP8 frames, real age) soon after; a recorder that
fails (its disk full) never reaches the call, is reported once and records no more."""

from __future__ import annotations

import asyncio
import errno
import logging
from fractions import Fraction

import pytest

from common.frames import EncodedFrame
from common.names import Kind, Seat
from media import protocol
from media.recording_feed import MAX_QUEUED, RecordingFeed
from media.recording_outputs import ChannelOutputs, recording
from recordings.keys import Identity
from recordings.recorder import Recorder, SegmentFile

from .clips import clip

ROOM = "iv_feed"
VIDEO = clip()


def frame(n: int) -> EncodedFrame:
    return EncodedFrame(VIDEO[n % len(VIDEO)], n * 3000, Fraction(1, 90000), n % len(VIDEO) == 0)


class FullDisk:
    """Segment files on a disk that fills up after ``room`` bytes."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.written = 0

    def open(self, name: str) -> SegmentFile:
        return self

    def write(self, data: bytes) -> int:
        if self.written + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return len(data)

    def close(self) -> None:
        return None


async def turns(count: int = 50) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_frames_are_recorded_after_on_frame_returns_not_during_it() -> None:
    sent: list[protocol.Message] = []
    feed = RecordingFeed(recording(ROOM, sent.append, [Identity.generate().recipient]))

    feed.on_frame(Seat.APPLICANT, Kind.VIDEO, frame(0))
    assert sent == []  # the forwarding path only queued it
    await turns()
    assert [type(m) for m in sent] == [protocol.SegmentBytes]  # the age header
    await feed.close()
    assert isinstance(sent[-1], protocol.SegmentSealed) and sent[-1].video_frames == 1


async def test_stop_seals_what_is_queued() -> None:
    sent: list[protocol.Message] = []
    recorder = recording(ROOM, sent.append, [Identity.generate().recipient])
    feed = RecordingFeed(recorder)
    for n in range(45):
        feed.on_frame(Seat.APPLICANT, Kind.VIDEO, frame(n))

    feed.stop()  # no turn of the loop in between

    (sealed,) = recorder.segments
    assert sealed.video_frames == 45
    feed.on_frame(Seat.APPLICANT, Kind.VIDEO, frame(45))
    await feed.close()
    await feed.close()
    assert recorder.segments == [sealed]  # a stopped feed records nothing more


async def test_a_recorder_that_cannot_keep_up_loses_frames_not_the_call() -> None:
    recorder = recording(ROOM, lambda message: None, [Identity.generate().recipient])
    feed = RecordingFeed(recorder)
    for n in range(MAX_QUEUED + 10):  # all in one turn of the loop: nothing fed yet
        feed.on_frame(Seat.APPLICANT, Kind.VIDEO, frame(n))

    assert feed.dropped == 10
    await feed.close()
    (sealed,) = recorder.segments
    assert sealed.video_frames == MAX_QUEUED


async def test_a_full_disk_never_reaches_the_call_is_reported_once_and_stops_recording(
    caplog: pytest.LogCaptureFixture,
) -> None:
    disk = FullDisk(room=100_000)
    recorder = Recorder(disk, [Identity.generate().recipient])
    failures: list[tuple[Seat | None, str]] = []
    feed = RecordingFeed(recorder, on_failure=lambda seat, reason: failures.append((seat, reason)))

    with caplog.at_level(logging.ERROR, logger="media.recording_feed"):
        for n in range(300):  # ten seconds of video: far more than the disk holds
            feed.on_frame(Seat.APPLICANT, Kind.VIDEO, frame(n))  # never raises
            if n % 10 == 0:
                await turns(2)
        await turns()
        await feed.close()
        await feed.close()

    assert feed.failures == 1 and not feed.recording
    assert failures == [(Seat.APPLICANT, "OSError: [Errno 28] No space left on device")]
    written = disk.written
    feed.on_frame(Seat.APPLICANT, Kind.VIDEO, frame(0))
    await turns()
    assert disk.written == written  # nothing more is recorded
    logged = [r for r in caplog.records if r.name == "media.recording_feed"]
    assert logged and all(r.levelno == logging.ERROR and r.exc_info is None for r in logged)
    assert "No space left on device" in logged[0].getMessage()


async def test_the_room_asks_the_recorder_for_keyframes_through_the_feed() -> None:
    recorder = Recorder(ChannelOutputs(ROOM, lambda message: None), [Identity.generate().recipient])
    feed = RecordingFeed(recorder)
    asked: list[Seat] = []
    feed.set_keyframe_requester(asked.append)

    feed.on_frame(Seat.CBSA, Kind.VIDEO, frame(1))  # no keyframe yet: the recorder asks
    await turns()

    assert asked == [Seat.CBSA]
    await feed.close()


async def test_a_frame_is_timed_when_it_arrived_not_when_the_recorder_gets_to_it() -> None:
    """The recorder runs a moment after the forwarding; a segment's start (and every
    frame's place in it) still follows arrival."""
    now = [100.0]
    sent: list[protocol.Message] = []
    recorder = Recorder(
        ChannelOutputs(ROOM, sent.append),
        [Identity.generate().recipient],
        clock=lambda: now[0],
        wall_clock=lambda: 1_000_000.0 + now[0],
    )
    feed = RecordingFeed(recorder, clock=lambda: now[0])
    feed.on_frame(Seat.CBSA, Kind.VIDEO, frame(0))  # arrives at 100.0
    now[0] += 5.0  # the recorder gets to it 5 s later
    await turns()
    feed.stop()
    [segment] = recorder.segments
    assert segment.started_at_ms == 1_000_100_000  # arrival, not 1_000_105_000
