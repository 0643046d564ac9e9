"""Names shared by the signalling and media layers, and the interfaces they use.

Media code never imports aiohttp: the WebSocket handler speaks to rooms through these
plain types and the message dataclasses in `messages.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import NewType, Protocol

from server.types import Agency

ParticipantId = NewType("ParticipantId", str)
RoomId = NewType("RoomId", str)


class Seat(StrEnum):
    """The three places in an interview; a forwarded stream is named after its seat."""

    APPLICANT = "applicant"
    CBSA = "cbsa"
    CBP = "cbp"

    @classmethod
    def of(cls, agency: Agency) -> Seat:
        """An officer's seat is their agency's."""
        return cls.CBSA if agency is Agency.CBSA else cls.CBP


class Kind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


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


class RecordingSink(Protocol):
    """Receives every encoded frame the forwarding layer handles (see `recordings/`)."""

    def on_frame(self, seat: Seat, kind: Kind, frame: EncodedFrame) -> None: ...

    def on_publisher_change(self, seat: Seat, kind: Kind, present: bool) -> None: ...

    def set_keyframe_requester(self, request: Callable[[Seat], None]) -> None:
        """The room hands over how to ask a seat for a keyframe (to start a segment)."""


class NullSink:
    """A recording sink that keeps nothing (interviews that are not recorded, tests)."""

    def on_frame(self, seat: Seat, kind: Kind, frame: EncodedFrame) -> None:
        return None

    def on_publisher_change(self, seat: Seat, kind: Kind, present: bool) -> None:
        return None

    def set_keyframe_requester(self, request: Callable[[Seat], None]) -> None:
        return None
