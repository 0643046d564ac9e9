"""A publisher's packets taken straight off the socket (`media.direct_receive`), seen
from real aiortc clients on loopback: the packets skip aiortc's receive coroutine, and
what the publisher must still get back (receiver reports, REMB, NACKs answered by RTX)
still comes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    unpack_remb_fci,
)

from common.names import Kind, RoomId, Seat
from media.direct_receive import ReceivedPacket, parse_header
from media.forwarding import Publication
from media.interview import InterviewRoom
from media.participant import Participant
from media.types import NullSink

from .media import SyntheticParticipant, wait_for

Call = tuple[InterviewRoom, SyntheticParticipant, SyntheticParticipant]


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    room = InterviewRoom(RoomId("iv_direct"), sink=NullSink(), grace_seconds=10)
    publisher, subscriber = SyntheticParticipant(Seat.APPLICANT), SyntheticParticipant(Seat.CBP)
    yield room, publisher, subscriber
    for person in (publisher, subscriber):
        await person.close()
    await room.close()


def server_receivers(participant: Participant | None) -> set[RTCRtpReceiver]:
    assert participant is not None
    return {t.receiver for t in participant.pc.getTransceivers() if t.direction == "recvonly"}


async def test_published_packets_skip_aiortcs_receive_coroutine(
    call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    room, publisher, subscriber = call
    slow: dict[int, int] = {}
    handle = RTCRtpReceiver._handle_rtp_packet

    async def counting(receiver: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
        slow[id(receiver)] = slow.get(id(receiver), 0) + 1
        await handle(receiver, packet, arrival_time_ms)

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", counting)
    await publisher.connect(room.join)
    await subscriber.connect(room.join)
    await wait_for(lambda: subscriber.got(Seat.APPLICANT, Kind.VIDEO).frames >= 30, within=20)
    server_side = room.participant(Seat.APPLICANT)
    receivers = server_receivers(server_side)
    assert len(receivers) == 2
    assert server_side is not None
    delivered = sum(p.packets for p in server_side.publications.values())
    assert delivered > 60
    # a packet or two may come before the connection's intake is in place, no more
    assert sum(slow.get(id(r), 0) for r in receivers) <= 5


async def test_the_publisher_still_gets_receiver_reports_and_remb(
    call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    room, publisher, subscriber = call
    feedback: list[tuple[RTCRtpSender, Any]] = []
    handle = RTCRtpSender._handle_rtcp_packet

    async def seen(sender: RTCRtpSender, packet: Any) -> None:
        feedback.append((sender, packet))
        await handle(sender, packet)

    monkeypatch.setattr(RTCRtpSender, "_handle_rtcp_packet", seen)
    await publisher.connect(room.join)
    await subscriber.connect(room.join)
    await wait_for(lambda: subscriber.got(Seat.APPLICANT, Kind.VIDEO).frames >= 20, within=20)
    assert publisher.pc is not None
    video = next(t.sender for t in publisher.pc.getTransceivers() if t.kind == "video")
    video_ssrc = video._ssrc

    def reported() -> list[Any]:
        return [
            r
            for sender, p in feedback
            if sender is video and isinstance(p, RtcpRrPacket)
            for r in p.reports
            if r.ssrc == video_ssrc
        ]

    def remb() -> list[int]:
        return [
            unpack_remb_fci(p.fci)[0]
            for sender, p in feedback
            if sender is video and isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP
        ]

    # aiortc's estimator sends one at its first packet, then about once a second while
    # it is fed: several mean the packets taken directly feed it
    await wait_for(lambda: len(reported()) >= 2 and len(remb()) >= 3, within=15)
    last = reported()[-1]
    assert last.packets_lost == 0
    assert last.highest_sequence > 0
    assert all(bitrate > 0 for bitrate in remb())
    server_side = room.participant(Seat.APPLICANT)
    received = 0
    for receiver in server_receivers(server_side):
        stats = await receiver.getStats()
        received += sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")
    assert server_side is not None
    assert received >= sum(p.packets for p in server_side.publications.values()) - 5


async def test_a_packet_lost_on_the_way_in_is_nacked_and_forwarded_from_its_rtx(
    call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    room, publisher, subscriber = call
    lost: list[int] = []
    nacked: set[int] = set()
    delivered: list[int] = []
    deliver = Publication.deliver

    def noting(publication: Publication, packet: Any) -> None:
        if publication.kind is Kind.VIDEO:
            delivered.append(packet.sequence_number)
        deliver(publication, packet)

    monkeypatch.setattr(Publication, "deliver", noting)
    handle_rtcp = RTCRtpSender._handle_rtcp_packet

    async def seen(sender: RTCRtpSender, packet: Any) -> None:
        if isinstance(packet, RtcpRtpfbPacket):
            nacked.update(packet.lost)
        await handle_rtcp(sender, packet)

    monkeypatch.setattr(RTCRtpSender, "_handle_rtcp_packet", seen)
    await publisher.connect(room.join)
    await subscriber.connect(room.join)
    await wait_for(lambda: len(delivered) >= 50, within=20)
    assert publisher.pc is not None
    video = next(t for t in publisher.pc.getTransceivers() if t.kind == "video")
    dtls: Any = video.sender.transport
    send = dtls._send_rtp

    async def dropping_one(data: bytes) -> None:
        packet = RtpPacket.parse(data) if 127 < data[0] < 192 and not 191 < data[1] < 209 else None
        if not lost and packet is not None and packet.ssrc == video.sender._ssrc:
            lost.append(packet.sequence_number)
            return
        await send(data)

    dtls._send_rtp = dropping_one
    await wait_for(lambda: bool(lost) and lost[0] in nacked, within=10)
    await wait_for(lambda: delivered.count(lost[0]) == 1, within=10)


def test_the_header_reads_as_aiortcs_parser_reads_it() -> None:
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap

    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    for padding in (0, 7):
        packet = RtpPacket(payload_type=96, marker=1, sequence_number=65530, timestamp=1 << 31)
        packet.ssrc = 0xDEADBEEF
        packet.csrc = [7]
        packet.payload = bytes(range(40))
        packet.padding_size = padding
        packet.extensions = HeaderExtensions(mid="1", abs_send_time=0x123456)
        data = packet.serialize(extensions)
        expected = RtpPacket.parse(data, extensions)
        parsed = parse_header(data, 3)
        assert parsed is not None
        ours, abs_send_time = parsed
        assert isinstance(ours, ReceivedPacket)
        assert abs_send_time == expected.extensions.abs_send_time == 0x123456
        for name in ("payload_type", "marker", "sequence_number", "timestamp", "ssrc"):
            assert getattr(ours, name) == getattr(expected, name)
        assert (ours.payload, ours.padding_size) == (expected.payload, expected.padding_size)
    assert parse_header(data[:11], 3) is None
    assert parse_header(bytes([0x40]) + data[1:], 3) is None  # version 1


async def test_packets_queued_before_the_direct_path_took_over_are_not_overtaken(
    call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the switch, packets already queued for aiortc's path go on first: a newer
    packet taken directly past them would reach subscribers out of order (a frame the
    browser must wait for, or one its jitter buffer counts as broken)."""
    room, publisher, subscriber = call
    delivered: dict[tuple[Seat, Kind], list[int]] = {
        (seat, kind): [] for seat in (Seat.APPLICANT, Seat.CBP) for kind in Kind
    }
    deliver = Publication.deliver

    def noting(publication: Publication, packet: Any) -> None:
        delivered[(publication.seat, publication.kind)].append(packet.sequence_number)
        deliver(publication, packet)

    monkeypatch.setattr(Publication, "deliver", noting)
    # Widen the window a loaded server has: the first packets wait in aioice's queue
    # while the DTLS transport's task is busy, and the receivers start only then.
    stalled: set[int] = set()
    recv_next, receive = RTCDtlsTransport._recv_next, RTCRtpReceiver.receive

    async def busy_at_first(dtls: RTCDtlsTransport) -> None:
        if dtls._rx_srtp is not None and id(dtls) not in stalled:
            stalled.add(id(dtls))
            await asyncio.sleep(0.4)
        await recv_next(dtls)

    async def late(receiver: RTCRtpReceiver, parameters: Any) -> None:
        await asyncio.sleep(0.2)
        await receive(receiver, parameters)

    monkeypatch.setattr(RTCDtlsTransport, "_recv_next", busy_at_first)
    monkeypatch.setattr(RTCRtpReceiver, "receive", late)
    await publisher.connect(room.join)
    await subscriber.connect(room.join)
    await wait_for(lambda: min(len(d) for d in delivered.values()) >= 60, within=20)
    for kind, numbers in delivered.items():
        steps = [(b - a) & 0xFFFF for a, b in itertools.pairwise(numbers[:60])]
        assert all(step == 1 for step in steps), (kind, numbers[:60])
