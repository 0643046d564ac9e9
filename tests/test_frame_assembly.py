"""Frame assembly on the server's receivers: frames go on as soon as they are whole, with
aiortc's own RTP packets, VP8 packetizer and rate counter to compare against."""

from __future__ import annotations

import random

from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import RateCounter
from aiortc.rtp import RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from media.bitrate import CompactRateCounter
from media.frame_assembly import AudioPassThrough, VideoFrameAssembler

VIDEO_CLOCK_STEP = 3000  # 30 fps at 90 kHz


def vp8_packets(frame: bytes, first_sequence: int, timestamp: int) -> list[RtpPacket]:
    """One frame as the sender puts it on the wire, with ``_data`` as the receiver sets it."""
    payloads = Vp8Encoder._packetize(frame, picture_id=timestamp // VIDEO_CLOCK_STEP)
    packets = []
    for n, payload in enumerate(payloads):
        packet = RtpPacket(
            payload_type=96,
            marker=int(n == len(payloads) - 1),
            sequence_number=(first_sequence + n) % 65536,
            timestamp=timestamp,
            payload=payload,
        )
        packet._data = vp8_depayload(payload)  # type: ignore[attr-defined]
        packets.append(packet)
    return packets


def frames_of(size: int, count: int) -> list[bytes]:
    rng = random.Random(size)
    return [bytes([0x10 if n == 0 else 0x11]) + rng.randbytes(size - 1) for n in range(count)]


def test_a_video_frame_goes_on_at_its_last_packet() -> None:
    frames = frames_of(5000, 3)  # about four packets each
    assembler, stock = VideoFrameAssembler(), JitterBuffer(capacity=512, is_video=True)
    sequence, ours, aiortcs = 65530, [], []  # across the sequence-number wrap
    for n, frame in enumerate(frames):
        packets = vp8_packets(frame, sequence, n * VIDEO_CLOCK_STEP)
        sequence += len(packets)
        assert len(packets) > 2
        for index, packet in enumerate(packets):
            _, got = assembler.add(packet)
            if got is not None:
                ours.append((n, index, got.data))
            _, got = stock.add(packet)
            if got is not None:
                aiortcs.append((n, index, got.data))
    last = len(vp8_packets(frames[0], 0, 0)) - 1
    assert ours == [(n, last, frame) for n, frame in enumerate(frames)]
    # aiortc's buffer hands each frame on only with the next frame's first packet.
    assert aiortcs == [(n + 1, 0, frame) for n, frame in enumerate(frames[:-1])]


def test_a_frame_missing_a_packet_waits_for_it_then_goes_on() -> None:
    assembler = VideoFrameAssembler()
    first = vp8_packets(frames_of(4000, 1)[0], 100, 0)
    second = vp8_packets(frames_of(4000, 2)[1], 100 + len(first), VIDEO_CLOCK_STEP)
    lost = first[1]
    handed_on = [assembler.add(p)[1] for p in first if p is not lost]
    handed_on += [assembler.add(p)[1] for p in second]
    assert handed_on == [None] * len(handed_on)  # nothing incomplete goes on
    _, retransmitted = assembler.add(lost)  # a NACK brings it
    assert retransmitted is not None
    assert retransmitted.data == b"".join(p._data for p in first)  # type: ignore[attr-defined]
    _, following = assembler.add(vp8_packets(b"\x11" * 10, 100 + len(first) + len(second), 6000)[0])
    assert following is not None and following.timestamp == VIDEO_CLOCK_STEP


def test_a_frame_whose_first_packet_never_came_is_dropped() -> None:
    assembler = VideoFrameAssembler()
    packets = vp8_packets(frames_of(4000, 1)[0], 7, 0)
    assert [assembler.add(p)[1] for p in packets[1:]] == [None] * (len(packets) - 1)
    frame = frames_of(300, 2)[1]
    (single,) = vp8_packets(frame, 7 + len(packets), VIDEO_CLOCK_STEP)
    _, got = assembler.add(single)
    assert got is not None and got.data == frame


def test_padding_between_frames_is_not_passed_on() -> None:
    assembler = VideoFrameAssembler()
    first, second = frames_of(3000, 2)
    packets = vp8_packets(first, 500, 0)
    padding = RtpPacket(payload_type=96, sequence_number=500 + len(packets), timestamp=0)
    padding._data = b""  # type: ignore[attr-defined]  # as the receiver sets it for padding
    following = vp8_packets(second, 501 + len(packets), VIDEO_CLOCK_STEP)
    handed_on = [assembler.add(p)[1] for p in [*packets, padding, *following]]
    frames = [frame.data for frame in handed_on if frame is not None]
    assert frames == [first, second]


def test_audio_packets_go_on_as_they_arrive_and_late_ones_are_dropped() -> None:
    passthrough = AudioPassThrough()

    def packet(sequence: int) -> RtpPacket:
        made = RtpPacket(payload_type=111, sequence_number=sequence, timestamp=sequence * 960)
        made._data = bytes([sequence % 256])  # type: ignore[attr-defined]
        return made

    arrivals = [65534, 65535, 1, 0, 2, 2, 3, 40000, 40001]
    handed_on = []
    for sequence in arrivals:
        _, frame = passthrough.add(packet(sequence))
        handed_on.append(None if frame is None else frame.timestamp // 960)
    # 0 came after 1 (dropped: the browser conceals it), 2 twice (a duplicate), and a
    # stream that jumped to 40000 (a restarted sender) carries on.
    assert handed_on == [65534, 65535, 1, None, 2, None, 3, 40000, 40001]


@given(
    st.lists(
        st.tuples(st.integers(0, 2500), st.integers(0, 1500), st.booleans()),
        min_size=1,
        max_size=60,
    )
)
def test_the_compact_rate_counter_counts_like_aiortcs(steps: list[tuple[int, int, bool]]) -> None:
    ours, theirs = CompactRateCounter(1000, 8000), RateCounter(1000, 8000)
    now = 10_000
    for gap_ms, size, add in steps:
        now += gap_ms
        if add:
            ours.add(size, now)
            theirs.add(size, now)
        assert ours.rate(now) == theirs.rate(now)
    ours.reset()
    theirs.reset()
    assert ours.rate(now) == theirs.rate(now) is None
