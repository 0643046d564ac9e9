"""Three real aiortc participants on loopback through one `InterviewRoom`: every seat
receives and decodes the other two, and the server never decodes or encodes."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aiortc import RTCPeerConnection, rtcrtpreceiver, rtcrtpsender
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket

from common.names import Kind, RoomId, Seat
from media.forwarding import (
    KEYFRAME_REQUEST_INTERVAL,
    EncodedFrameTap,
    ForwardedTrack,
    Publication,
    is_vp8_keyframe,
)
from media.frame_assembly import AudioPassThrough, VideoFrameAssembler
from media.interview import InterviewRoom
from media.rooms import Rooms
from media.slot_sender import SlotSender
from media.types import NullSink

from .media import TONE_HZ, MemorySink, SyntheticParticipant, wait_for


@dataclass
class CodecSpy:
    """Records who asked aiortc for a codec: the sender (encoders) or the decoder queue
    (decoders). Observation only; the real codecs are still created."""

    encoders: list[Any] = field(default_factory=list)
    decoders: list[Any] = field(default_factory=list)

    def wrap(self, real: Callable[..., Any], into: list[Any], local: str) -> Callable[..., Any]:
        def spy(*args: Any) -> Any:
            caller = inspect.currentframe()
            assert caller is not None and caller.f_back is not None
            into.append(caller.f_back.f_locals.get(local))
            return real(*args)

        return spy


@pytest.fixture
def codecs(monkeypatch: pytest.MonkeyPatch) -> CodecSpy:
    spy = CodecSpy()
    for module, name, into, local in (
        (rtcrtpsender, "get_encoder", spy.encoders, "self"),
        (rtcrtpreceiver, "get_decoder", spy.decoders, "input_q"),
    ):
        monkeypatch.setattr(module, name, spy.wrap(getattr(module, name), into, local))
    return spy


@dataclass
class Call:
    room: InterviewRoom
    sink: MemorySink
    people: dict[Seat, SyntheticParticipant]


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    sink = MemorySink()
    room = InterviewRoom(RoomId("iv_test"), sink=sink, grace_seconds=5)
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    yield Call(room, sink, people)
    for person in people.values():
        await person.close()
    await room.close()


def _others(seat: Seat) -> list[Seat]:
    return [other for other in Seat if other is not seat]


async def test_each_seat_receives_and_decodes_the_other_two(call: Call, codecs: CodecSpy) -> None:
    for person in call.people.values():
        await person.connect(call.room.join)

    def everyone_has_media() -> bool:
        return all(
            person.got(other, kind).frames >= 30
            for person in call.people.values()
            for other in _others(person.seat)
            for kind in Kind
        )

    await wait_for(everyone_has_media, within=30)
    for person in call.people.values():
        for other in _others(person.seat):
            video = person.got(other, Kind.VIDEO)
            assert video.wrong_seat == 0, f"{person.seat} saw the wrong picture from {other}"
            assert video.counters == sorted(video.counters), "frames arrived out of order"
            assert len(set(video.counters)) == len(video.counters), "a frame was repeated"
            audio = person.got(other, Kind.AUDIO)
            assert audio.pitch_hz is not None
            assert abs(audio.pitch_hz - TONE_HZ[other]) < TONE_HZ[other] * 0.1

    # The server asked aiortc for no codec: every encoder belongs to a client's sender and
    # every decoder to a client's receiver queue.
    server_senders = {
        id(sender)
        for seat in Seat
        for sender in (call.room.participant(seat).pc.getSenders())  # type: ignore[union-attr]
    }
    assert not [s for s in codecs.encoders if id(s) in server_senders]
    assert not [q for q in codecs.decoders if isinstance(q, EncodedFrameTap)]
    assert len(codecs.decoders) >= 12  # the clients did decode: 3 people x 2 seats x 2 kinds

    # The server's receivers hand frames on as soon as they are whole; those of its
    # send-only slots keep no bitrate estimator, and its audio senders no packet history.
    for seat in Seat:
        participant = call.room.participant(seat)
        assert participant is not None
        for transceiver in participant.pc.getTransceivers():
            receiver = transceiver.receiver
            if transceiver.direction == "recvonly":
                assembler = getattr(receiver, "_RTCRtpReceiver__jitter_buffer")  # noqa: B009
                wanted = VideoFrameAssembler if transceiver.kind == "video" else AudioPassThrough
                assert isinstance(assembler, wanted)
            else:
                assert getattr(receiver, "_RTCRtpReceiver__remote_bitrate_estimator") is None  # noqa: B009
                # Video keeps packets to answer NACKs with; Opus (no NACK) keeps none.
                history = getattr(transceiver.sender, "_RTCRtpSender__rtp_history")  # noqa: B009
                assert (len(history) > 0) is (transceiver.kind == "video")

    # The recording sink saw every published track.
    for seat in Seat:
        assert len(call.sink.frames[(seat, Kind.VIDEO)]) >= 30
        assert call.sink.frames[(seat, Kind.VIDEO)][0].keyframe
    assert [e.kind for e in call.room.events] == ["join", "join", "join"]


async def test_a_late_joiner_gets_a_keyframe_promptly(call: Call) -> None:
    first, second, late = (call.people[s] for s in Seat)
    await first.connect(call.room.join)
    await second.connect(call.room.join)
    await wait_for(lambda: first.got(second.seat, Kind.VIDEO).frames >= 45)
    joined = await late.connect(call.room.join)
    await wait_for(
        lambda: all(late.got(s, Kind.VIDEO).frames > 0 for s in (first.seat, second.seat))
    )
    for seat in (first.seat, second.seat):
        received = late.got(seat, Kind.VIDEO)
        assert received.first_at is not None
        assert received.first_at - joined < 2.0
        assert received.wrong_seat == 0
    publisher = call.room.participant(first.seat)
    assert publisher is not None
    assert publisher.publications[Kind.VIDEO].keyframe_requests >= 1


async def test_a_dropped_participant_rejoins_within_the_grace_period(call: Call) -> None:
    for person in call.people.values():
        await person.connect(call.room.join)
    applicant = call.people[Seat.APPLICANT]
    cbsa = call.people[Seat.CBSA]
    await wait_for(lambda: cbsa.got(Seat.APPLICANT, Kind.VIDEO).frames >= 15)
    # The applicant's connection ends without a leave message.
    await applicant.close()
    await wait_for(lambda: call.room.events[-1].kind == "drop")

    before = cbsa.got(Seat.APPLICANT, Kind.VIDEO).frames
    await applicant.connect(call.room.join)
    await wait_for(lambda: cbsa.got(Seat.APPLICANT, Kind.VIDEO).frames >= before + 15)
    await wait_for(lambda: applicant.got(Seat.CBP, Kind.VIDEO).frames >= 15)
    kinds = [e.kind for e in call.room.events]
    assert kinds[-2:] == ["drop", "rejoin"]
    assert call.room.events[-1].detail["gap_seconds"] >= 0
    # The officers stayed connected to each other throughout.
    assert call.room.participant(Seat.CBP).connection_state == "connected"  # type: ignore[union-attr]


async def test_a_seat_dropped_past_the_grace_period_is_released(call: Call) -> None:
    room = InterviewRoom(RoomId("iv_short"), grace_seconds=0.2)
    person = SyntheticParticipant(Seat.APPLICANT)
    try:
        await person.connect(room.join)
        await wait_for(lambda: room.participant(Seat.APPLICANT).connection_state == "connected")  # type: ignore[union-attr]
        await person.close()
        await wait_for(lambda: room.participant(Seat.APPLICANT) is None, within=5)
        assert [e.kind for e in room.events] == ["join", "drop", "left"]
    finally:
        await person.close()
        await room.close()


class SentLog:
    """Stands in for a slot's `SlotSender`: keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, bytes]] = []

    def send(self, marker: int, sequence: int, timestamp: int, payload: bytes, ntp: int) -> bool:
        self.sent.append((sequence, timestamp, payload))
        return True


def _slot(seat: Seat) -> tuple[ForwardedTrack, SentLog]:
    track, log = ForwardedTrack(seat, Kind.VIDEO), SentLog()
    track.bind(cast(SlotSender, log))
    track.wire_ready()
    return track, log


def _packet(n: int, keyframe: bool) -> RtpPacket:
    """The only packet of picture ``n``, as aiortc's VP8 packetizer sends it."""
    header = b"\x10\x02\x00\x9d\x01\x2a" if keyframe else b"\x11\x02\x00"
    payload = bytes(VpxPayloadDescriptor(1, 0, picture_id=n)) + header
    return RtpPacket(96, 1, 1000 + n, 3000 * n, 1234, payload)


async def test_keyframe_requests_after_losses_are_spaced_out_but_never_lost() -> None:
    sent: list[float] = []
    loop = asyncio.get_running_loop()
    publication = Publication(Seat.CBSA, Kind.VIDEO, NullSink(), lambda: sent.append(loop.time()))
    publication.request_keyframe()
    publication.request_keyframe()  # before the keyframe came: it will serve both
    assert len(sent) == 1
    publication.deliver(_packet(0, keyframe=True))
    publication.request_keyframe()  # a subscriber's PLI just after it: deferred, not dropped
    publication.request_keyframe()  # and another: still one deferred request
    assert len(sent) == 1
    await asyncio.sleep(KEYFRAME_REQUEST_INTERVAL + 0.1)
    assert len(sent) == 2
    assert sent[1] - sent[0] >= KEYFRAME_REQUEST_INTERVAL - 0.01
    publication.close()


async def test_a_new_subscriber_just_after_a_keyframe_asks_for_one_at_once() -> None:
    sent: list[float] = []
    loop = asyncio.get_running_loop()
    publication = Publication(Seat.CBSA, Kind.VIDEO, NullSink(), lambda: sent.append(loop.time()))
    publication.subscribe(ForwardedTrack(Seat.CBSA, Kind.VIDEO))
    publication.subscribe(ForwardedTrack(Seat.CBSA, Kind.VIDEO))  # its keyframe is on its way
    assert len(sent) == 1
    publication.deliver(_packet(0, keyframe=True))
    publication.request_keyframe()  # a loss just after: deferred...
    late, log = _slot(Seat.CBSA)
    publication.subscribe(late)  # ...but a newcomer that missed the keyframe asks now
    assert len(sent) == 2
    await asyncio.sleep(KEYFRAME_REQUEST_INTERVAL + 0.1)
    assert len(sent) == 2  # and its keyframe serves the deferred request too
    publication.deliver(_packet(1, keyframe=True))
    assert [payload for _, _, payload in log.sent] == [_packet(1, keyframe=True).payload]
    publication.close()


async def test_a_new_subscriber_gets_nothing_until_a_keyframe() -> None:
    asked: list[int] = []
    publication = Publication(Seat.CBP, Kind.VIDEO, NullSink(), lambda: asked.append(1))
    track, log = _slot(Seat.CBP)
    publication.subscribe(track)
    assert asked == [1]  # attaching asks the publisher for a keyframe
    for n in range(3):
        publication.deliver(_packet(n, keyframe=False))
    publication.deliver(_packet(3, keyframe=True))
    publication.deliver(_packet(4, keyframe=False))
    assert [payload for _, _, payload in log.sent] == [
        _packet(3, keyframe=True).payload,
        _packet(4, keyframe=False).payload,
    ]
    assert [sequence for sequence, _, _ in log.sent][1] == (log.sent[0][0] + 1) & 0xFFFF
    assert track.dropped == 3
    assert publication.packets == 5


async def test_a_slot_waiting_for_a_keyframe_keeps_asking_once_a_second() -> None:
    """A keyframe request can go astray (sent before the publisher's SSRC was known, or
    lost), and a browser sends no keyframe unasked: the waiting slot asks again."""
    asked: list[float] = []
    now = [100.0]
    publication = Publication(
        Seat.CBP, Kind.VIDEO, NullSink(), lambda: asked.append(now[0]), clock=lambda: now[0]
    )
    track, log = _slot(Seat.CBP)
    publication.subscribe(track)
    assert asked == [100.0]  # the newcomer's request, which goes astray
    for n in range(90):  # three seconds of delta frames, still no keyframe
        now[0] += 1 / 30
        publication.deliver(_packet(n, keyframe=False))
    assert log.sent == []
    assert 3 <= len(asked) <= 4  # once a second, not once a packet
    publication.deliver(_packet(90, keyframe=True))
    asked.clear()
    for n in range(91, 181):
        now[0] += 1 / 30
        publication.deliver(_packet(n, keyframe=False))
    assert asked == []  # forwarding again: nothing more to ask
    assert len(log.sent) == 91


async def test_a_slot_forwards_nothing_before_its_connection_can_carry_it() -> None:
    asked: list[int] = []
    publication = Publication(Seat.CBP, Kind.VIDEO, NullSink(), lambda: asked.append(1))
    track, log = ForwardedTrack(Seat.CBP, Kind.VIDEO), SentLog()
    track.bind(cast(SlotSender, log))
    publication.subscribe(track)
    publication.deliver(_packet(0, keyframe=True))  # lost on a connection not yet up
    assert log.sent == []
    publication.deliver(_packet(1, keyframe=True))  # a keyframe served the newcomer
    track.wire_ready()  # the connection is up: a keyframe is asked for at once
    assert len(asked) == 2
    publication.deliver(_packet(2, keyframe=False))
    publication.deliver(_packet(3, keyframe=True))
    assert [payload for _, _, payload in log.sent] == [_packet(3, keyframe=True).payload]


class BrokenWire(SentLog):
    def send(self, marker: int, sequence: int, timestamp: int, payload: bytes, ntp: int) -> bool:
        raise RuntimeError("a bug in one slot")


async def test_one_slot_failing_does_not_stop_the_publisher_or_the_others() -> None:
    publication = Publication(Seat.CBP, Kind.VIDEO, NullSink(), lambda: None)
    broken, healthy = ForwardedTrack(Seat.CBP, Kind.VIDEO), ForwardedTrack(Seat.CBP, Kind.VIDEO)
    log = SentLog()
    broken.bind(cast(SlotSender, BrokenWire()))
    healthy.bind(cast(SlotSender, log))
    for track in (broken, healthy):
        track.wire_ready()
        publication.subscribe(track)
    publication.deliver(_packet(0, keyframe=True))  # raising here would end its connection
    publication.deliver(_packet(1, keyframe=False))
    assert len(log.sent) == 2
    assert broken.errors == 2


def test_vp8_keyframes_are_recognised_from_the_frame_tag() -> None:
    assert is_vp8_keyframe(bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]))
    assert not is_vp8_keyframe(bytes([0x11, 0x02, 0x00]))
    assert not is_vp8_keyframe(b"")


async def test_an_empty_room_is_closed_and_forgotten() -> None:
    rooms = Rooms(grace_seconds=0.2)
    person = SyntheticParticipant(Seat.CBP)
    try:
        room = rooms.get(RoomId("iv_gone"))
        await person.connect(room.join)
        assert len(rooms) == 1
        await room.leave(Seat.CBP)
        await wait_for(lambda: room.closed)
        assert len(rooms) == 0
        assert rooms.get(RoomId("iv_gone")) is not room
    finally:
        await person.close()
        await rooms.close()


async def test_a_room_closing_as_a_grace_period_runs_out_awaits_the_release() -> None:
    """A dropped seat's grace ends in a task of the room's: closing the room then waits
    for it, so nothing the room started is still running once `close` returns."""
    room = InterviewRoom(RoomId("iv_closing"), grace_seconds=0.0)
    gone = RTCPeerConnection()  # a page that goes before its connection is made
    for direction, count in (("sendonly", 1), ("recvonly", 2)):
        for _ in range(count):
            gone.addTransceiver("audio", direction=direction)
            gone.addTransceiver("video", direction=direction)
    try:
        await gone.setLocalDescription(await gone.createOffer())
        await room.join(Seat.APPLICANT, gone.localDescription.sdp)
        participant = room.participant(Seat.APPLICANT)
        assert participant is not None
        room.socket_closed(Seat.APPLICANT, participant.id)  # no media ever: dropped at once

        def expiring() -> list[asyncio.Task[Any]]:
            return [
                task
                for task in asyncio.all_tasks()
                if getattr(task.get_coro(), "__qualname__", "").endswith("._expire")
            ]

        for _ in range(100):
            if expiring():
                break
            await asyncio.sleep(0)
        [expiry] = expiring()
        await room.close()
        assert expiry.done()
    finally:
        await gone.close()
        await room.close()
