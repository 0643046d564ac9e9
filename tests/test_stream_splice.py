"""A slot's outgoing numbering across changes of publisher, and the VP8 payload descriptor
it reads and rewrites, checked against aiortc's own descriptor parser."""

from __future__ import annotations

from aiortc.codecs.vpx import VpxPayloadDescriptor
from hypothesis import given
from hypothesis import strategies as st

from media.stream_splice import NTP_ONE_SECOND, StreamSplice
from media.vp8_descriptor import picture_ids, shift_picture_ids, starts_keyframe

KEY, DELTA = b"\x10\x02\x00\x9d\x01\x2a", b"\x11\x02\x00"  # VP8 payload headers: P=0, P=1


def vp8(
    picture_id: int | None,
    tl0: int | None = None,
    start: bool = True,
    keyframe: bool = False,
    partition: int = 0,
) -> bytes:
    descriptor = VpxPayloadDescriptor(int(start), partition, picture_id, tl0, (0, 1), None)
    return bytes(descriptor) + (KEY if keyframe else DELTA)


def test_a_keyframe_starts_at_s1_partition_0_with_p_0() -> None:
    assert starts_keyframe(vp8(5, keyframe=True))
    assert starts_keyframe(bytes(VpxPayloadDescriptor(1, 0)) + KEY)  # no extension at all
    assert not starts_keyframe(vp8(5, keyframe=False))  # an interframe
    assert not starts_keyframe(vp8(5, start=False, keyframe=True))  # a later packet
    assert not starts_keyframe(vp8(5, partition=1, keyframe=True))  # another partition
    assert not starts_keyframe(b"\x90\x80")  # cut short
    assert not starts_keyframe(b"")


@given(
    st.one_of(st.none(), st.integers(0, 0x7FFF)),
    st.one_of(st.none(), st.integers(0, 255)),
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
)
def test_picture_ids_are_read_and_shifted_as_aiortc_parses_them(
    picture_id: int | None, tl0: int | None, shift: int, tl0_shift: int
) -> None:
    payload = vp8(picture_id, tl0, keyframe=True)
    ids = picture_ids(payload)
    assert (ids.picture_id, ids.tl0) == (picture_id, tl0)
    shifted = shift_picture_ids(payload, ids, shift, tl0_shift)
    descriptor, rest = VpxPayloadDescriptor.parse(shifted)
    assert rest == KEY and len(shifted) == len(payload)
    if picture_id is not None:
        assert descriptor.picture_id == (picture_id + shift) % 0x8000
    if tl0 is not None:
        assert descriptor.tl0picidx == (tl0 + tl0_shift) % 256


def test_a_short_picture_id_wraps_at_128() -> None:
    payload = bytes([0x90, 0x80, 0x7F]) + KEY  # M=0: a 7-bit picture id
    ids = picture_ids(payload)
    assert ids.picture_id == 127 and not ids.long_picture_id
    assert shift_picture_ids(payload, ids, 3, 0)[2] == 2


def test_a_video_slot_starts_at_a_keyframe_and_drops_what_came_before() -> None:
    splice = StreamSplice(video=True, clock_rate=90000, first_sequence=1000, first_timestamp=0)
    ssrc, ntp = 7, 100 * NTP_ONE_SECOND
    assert splice.map(ssrc, 50, 9000, vp8(3), ntp) is None  # an interframe: not yet
    started = splice.map(ssrc, 52, 12000, vp8(4, keyframe=True), ntp)
    assert started is not None and started[:2] == (1000, 0)
    assert splice.map(ssrc, 51, 9000, vp8(3, start=False), ntp) is None  # from before it
    following = splice.map(ssrc, 53, 15000, vp8(5), ntp)
    assert following is not None and following[:2] == (1001, 3000)
    assert splice.map(ssrc, 65535, 0, vp8(5), ntp) is None  # far behind the start


def test_a_new_source_carries_on_the_numbering_of_the_last() -> None:
    splice = StreamSplice(video=True, clock_rate=90000, first_sequence=65534, first_timestamp=5)
    ntp = 100 * NTP_ONE_SECOND
    sent = [
        splice.map(1, 300 + n, 3000 * n, vp8(0x7FFD + n, tl0=253 + n, keyframe=n == 0), ntp)
        for n in range(3)
    ]
    assert [s[:2] for s in sent if s is not None] == [(65534, 5), (65535, 3005), (0, 6005)]
    # The publisher comes back two seconds later with new random bases.
    splice.restart()
    later = ntp + 2 * NTP_ONE_SECOND
    assert splice.map(2, 9000, 77, vp8(40, tl0=9), later) is None  # waits for a keyframe
    resumed = splice.map(2, 9001, 3077, vp8(41, tl0=10, keyframe=True), later)
    assert resumed is not None
    sequence, timestamp, payload = resumed
    assert sequence == 1
    assert timestamp == 6005 + 2 * 90000
    ids = picture_ids(payload)
    assert (ids.picture_id, ids.tl0) == (0, 0)  # 0x7FFF + 1 and 255 + 1, wrapped
    assert payload[-len(KEY) :] == KEY
    after = splice.map(2, 9002, 6077, vp8(42, tl0=10), later)
    assert after is not None and after[:2] == (2, timestamp + 3000)
    assert picture_ids(after[2]).picture_id == 1
    assert splice.sources == 2


def test_a_source_that_changes_ssrc_mid_way_waits_for_a_keyframe_and_says_so() -> None:
    splice = StreamSplice(video=True, clock_rate=90000, first_sequence=10, first_timestamp=0)
    assert splice.map(1, 5, 0, vp8(1, keyframe=True), 0) is not None
    assert splice.map(2, 900, 0, vp8(1), 0) is None
    assert splice.interrupted


def test_an_audio_slot_starts_at_once_and_carries_on_across_sources() -> None:
    splice = StreamSplice(video=False, clock_rate=48000, first_sequence=10, first_timestamp=0)
    assert splice.map(1, 500, 960, b"opus", 0) == (10, 0, b"opus")
    splice.restart()
    half_second = NTP_ONE_SECOND // 2
    assert splice.map(3, 7, 123456, b"more", half_second) == (11, 24000, b"more")


def test_a_long_call_keeps_flowing_through_sequence_number_wraps() -> None:
    splice = StreamSplice(video=True, clock_rate=90000, first_sequence=0, first_timestamp=0)
    ssrc, start = 9, 60000
    assert splice.map(ssrc, start, 0, vp8(0, keyframe=True), 0) is not None
    forwarded = [
        splice.map(ssrc, (start + n) & 0xFFFF, 3000 * n, vp8(n % 0x8000), 0)
        for n in range(1, 200_000)
    ]
    assert all(packet is not None for packet in forwarded)
    assert forwarded[-1] is not None and forwarded[-1][0] == 199_999 & 0xFFFF
    # A straggler from a few hundred packets back still goes; one from before the wrap
    # of half the space ago does not.
    newest = (start + 199_999) & 0xFFFF
    assert splice.map(ssrc, (newest - 300) & 0xFFFF, 0, vp8(1), 0) is not None
    assert splice.map(ssrc, (newest - 0x6000) & 0xFFFF, 0, vp8(1), 0) is None
