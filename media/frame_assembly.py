"""Frame assembly that hands each frame on as soon as it is whole.

aiortc's `JitterBuffer` treats a frame as complete only when a packet of the *next* frame
arrives, and holds audio until four more packets are in (``prefetch=4``). That suits a
decoder feeding a screen, but on a forwarding server it only adds delay: a frame interval
(33 ms at 30 fps) to every video frame and 80 ms to every Opus packet, before the
browser's own jitter buffer adds its share. These replacements keep aiortc's buffer
(reordering, NACK-filled gaps, overflow handling and the PLI it asks for) and hand frames
on earlier:

- `VideoFrameAssembler`: a VP8 frame goes on at its last packet (RTP marker bit, RFC 7741
  section 4.1) once every packet from its first one is in;
- `AudioPassThrough`: every Opus packet is a frame and goes on as it arrives; a packet
  older than one already handed on is dropped (the browser conceals the gap, as it would
  a loss), nothing waits for a missing one.

`receivers.prepare_receiver` puts them in place of aiortc's.
"""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

VIDEO_CAPACITY = 512  # packets, as aiortc's own video buffer
MAX_MISORDER = 100  # packets; further back than this is a restarted stream, not a late one


def starts_vp8_frame(payload: bytes) -> bool:
    """RFC 7741 section 4.2: S=1 and partition index 0 in the payload descriptor."""
    return bool(payload) and payload[0] & 0x17 == 0x10


class VideoFrameAssembler(JitterBuffer):
    """aiortc's video jitter buffer, handing a frame on at its marker packet."""

    def __init__(self) -> None:
        super().__init__(capacity=VIDEO_CAPACITY, is_video=True)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli_flag, frame = super().add(packet)
        if frame is not None and not frame.data:
            frame = None  # padding only (a sender probing bandwidth): nothing to pass on
        if frame is None and packet.marker:
            frame = self._take_frame_ending_at(packet)
        return pli_flag, frame

    def _take_frame_ending_at(self, last: RtpPacket) -> JitterFrame | None:
        """The frame at the head of the buffer if ``last`` ends it and none of its packets
        is missing; a frame whose first packet never came is dropped, not handed on."""
        if self._origin is None:
            return None
        count = uint16_add(last.sequence_number, -self._origin) + 1
        if count > self.capacity:
            return None  # ``last`` came too late: its frame is gone already
        packets = [self._packets[(self._origin + n) % self.capacity] for n in range(count)]
        present = [p for p in packets if p is not None and p.timestamp == last.timestamp]
        if len(present) != count:
            return None  # still missing a packet: a NACK may bring it
        self.remove(count)
        if not starts_vp8_frame(present[0].payload):
            return None
        data = b"".join(p._data for p in present)  # type: ignore[attr-defined]
        return JitterFrame(data, last.timestamp)


class AudioPassThrough(JitterBuffer):
    """Hands every packet on as it arrives, in sequence order, dropping late ones."""

    def __init__(self) -> None:
        super().__init__(capacity=1)
        self._last: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        sequence = packet.sequence_number
        restarted = self._last is not None and uint16_add(self._last, -sequence) > MAX_MISORDER
        if self._last is not None and not uint16_gt(sequence, self._last) and not restarted:
            return False, None  # a duplicate, or later than one already handed on
        self._last = sequence
        return False, JitterFrame(packet._data, packet.timestamp)  # type: ignore[attr-defined]
