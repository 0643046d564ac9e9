"""Senders that send encoded frames with no encoder: they only packetize.

The server forwards packets (`forwarding`), so it no longer needs these; the benchmark's
aiortc clients (`bench/interviews.py`) send a pre-encoded clip through them.

These reach into aiortc internals (pinned; `tests/test_aiortc_pin.py` fails loudly if they
change): ``RTCRtpSender._RTCRtpSender__encoder``, ``RTCRtpSender._RTCRtpSender__rtp_history``
and ``RTCRtpSender._send_keyframe``.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

from common.frames import EncodedFrame
from common.names import Kind

VIDEO_CLOCK = 90000


class Vp8Packer:
    """Packetizes encoded VP8 frames (RFC 7741) with a running picture id; no codec."""

    def __init__(self) -> None:
        self.picture_id = 0

    def pack(self, frame: EncodedFrame) -> tuple[list[bytes], int]:
        payloads: list[bytes] = Vp8Encoder._packetize(bytes(frame), self.picture_id)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        return payloads, int(frame.pts * frame.time_base * VIDEO_CLOCK)


class OpusPacker:
    """One Opus packet per RTP packet, timestamps at 48 kHz; no codec."""

    def pack(self, frame: EncodedFrame) -> tuple[list[bytes], int]:
        return [bytes(frame)], int(frame.pts * frame.time_base * 48000)


class NoRetransmissions(dict[int, RtpPacket]):
    """A sender's retransmission history that keeps nothing. Opus is negotiated without
    NACK, so an audio sender's kept packets are never read, yet the garbage collector
    walks them."""

    def __setitem__(self, sequence: int, packet: RtpPacket) -> None:
        return None


def use_packer(sender: RTCRtpSender, kind: Kind, on_keyframe_request: Callable[[], None]) -> None:
    """Let ``sender`` send encoded frames with no encoder; keyframe requests (PLI/FIR)
    from its receiver go to ``on_keyframe_request``; audio keeps no retransmission
    history."""
    for attribute in ("_RTCRtpSender__encoder", "_RTCRtpSender__rtp_history"):
        if not hasattr(sender, attribute):
            raise RuntimeError(f"aiortc changed: RTCRtpSender has no {attribute}")
    # setattr: private, name-mangled attributes and a method, none typed as assignable
    packer = Vp8Packer() if kind is Kind.VIDEO else OpusPacker()
    setattr(sender, "_RTCRtpSender__encoder", packer)  # noqa: B010
    setattr(sender, "_send_keyframe", on_keyframe_request)  # noqa: B010
    if kind is Kind.AUDIO:
        setattr(sender, "_RTCRtpSender__rtp_history", NoRetransmissions())  # noqa: B010
