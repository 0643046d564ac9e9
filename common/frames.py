"""The unit of media that passes from the forwarding layer to the recorder."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One complete encoded frame (a VP8 picture or an Opus packet) as it arrived.

    `RTCRtpSender` packetizes anything its track returns that is not a decoded frame,
    reading only ``bytes(frame)``, ``pts`` and ``time_base``; so this passes through the
    server with no decoder, no encoder and no copy."""

    data: bytes
    pts: int
    time_base: Fraction
    keyframe: bool

    def __bytes__(self) -> bytes:
        return self.data
