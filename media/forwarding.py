"""RTP forwarding: what makes the server an SFU on top of aiortc 1.16.0.

- `Publication` is one published track. aiortc's receiver keeps doing the transport work
  (SRTP, RTX unwrapping, NACK, REMB, receiver reports) and hands each packet to
  ``deliver`` (`receivers.tap_packets`); the publication passes it on, as it is, to every
  subscribed slot, and sends the publisher a keyframe request (PLI) when one is needed: at
  once for a new subscriber, otherwise at most once per `KEYFRAME_REQUEST_INTERVAL`. It
  notes when its last packet came, so a room can tell when a publisher's media stopped.
  When the interview is recorded, the receiver also assembles whole frames for the
  recording sink (`EncodedFrameTap`); when it is not, no frame is assembled at all.
- `ForwardedTrack` is one slot in a subscriber's connection: it renumbers each packet into
  the slot's own stream (`stream_splice`), starting a video source at a keyframe, and
  sends it on its sender's stream (`slot_sender`). The sender's own loop waits on the
  track and never sends; the sender still answers NACKs from its history and passes
  PLI/FIR on to the publisher.
- `EncodedFrameTap` stands in for a receiver's decoder queue: ``put`` hands complete frames
  to the recording sink instead of a decoder. The decoder thread aiortc starts for the
  receiver waits on the tap and never gets a frame, so it never creates a decoder.

These reach into aiortc internals (pinned; `tests/test_aiortc_pin.py` fails loudly if
they change): ``RTCRtpReceiver._RTCRtpReceiver__decoder_queue``,
``RTCRtpReceiver._send_rtcp_pli``, ``RTCRtpSender._send_keyframe`` and ``_stream_id``,
besides those `receivers` and `slot_sender` name.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import RtpPacket
from aiortc.utils import random32

from common.frames import EncodedFrame
from common.names import Kind, Seat
from media.types import RecordingSink

from .packers import use_packer as use_packer
from .receivers import prepare_receiver
from .slot_sender import SlotSender, ntp_now
from .stream_splice import StreamSplice
from .vp8_descriptor import starts_keyframe

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.25  # seconds between PLIs to one publisher, but for newcomers
KEYFRAME_LOST_AFTER = 1.0  # seconds after which a keyframe asked for is asked for again
VIDEO_TIME_BASE = Fraction(1, 90000)
CLOCK_RATE = {Kind.AUDIO: 48000, Kind.VIDEO: 90000}


def is_vp8_keyframe(data: bytes) -> bool:
    """RFC 6386 section 9.1: bit 0 of the frame tag is 0 for a key frame."""
    return bool(data) and not data[0] & 0x01


class EncodedFrameTap:
    """The receiver's decoder queue, replaced: ``put`` hands frames on, ``get`` only ever
    returns the stop signal."""

    def __init__(self, kind: Kind, on_frame: Callable[[EncodedFrame], None]) -> None:
        self._kind = kind
        self._on_frame = on_frame
        self._stopped = threading.Event()
        self.frames = 0

    @classmethod
    def install(
        cls,
        receiver: RTCRtpReceiver,
        kind: Kind,
        on_frame: Callable[[EncodedFrame], None],
        assemble: bool = True,
    ) -> EncodedFrameTap:
        """Must run before the receiver starts (before the connection is established).
        Without ``assemble`` the receiver assembles no frame and the tap gets none."""
        attribute = "_RTCRtpReceiver__decoder_queue"
        if not hasattr(receiver, attribute):
            raise RuntimeError("aiortc changed: RTCRtpReceiver has no decoder queue to tap")
        prepare_receiver(receiver, kind, assemble)
        tap = cls(kind, on_frame)
        setattr(receiver, attribute, tap)
        return tap

    def put(self, item: tuple[Any, Any] | None) -> None:
        """Called by the receiver on the event loop with (codec, JitterFrame), or None."""
        if item is None:
            self._stopped.set()
            return
        codec, jitter_frame = item
        data: bytes = jitter_frame.data
        if self._kind is Kind.VIDEO:
            frame = EncodedFrame(
                data, jitter_frame.timestamp, VIDEO_TIME_BASE, is_vp8_keyframe(data)
            )
        else:
            frame = EncodedFrame(data, jitter_frame.timestamp, Fraction(1, codec.clockRate), True)
        self.frames += 1
        self._on_frame(frame)

    def get(self) -> None:
        """Called by aiortc's decoder thread: block until the receiver stops."""
        self._stopped.wait()


class Publication:
    """One published track of one seat, forwarded to every subscribed slot."""

    def __init__(
        self,
        seat: Seat,
        kind: Kind,
        sink: RecordingSink,
        request_keyframe: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seat = seat
        self.kind = kind
        self._sink = sink
        self._request_keyframe = request_keyframe
        self._clock = clock
        self._subscribers: set[ForwardedTrack] = set()
        self._last_request = -KEYFRAME_REQUEST_INTERVAL
        self._deferred: asyncio.TimerHandle | None = None
        self._awaiting_keyframe = False
        self.keyframe_requests = 0
        self.packets = 0
        self.last_packet_at: float | None = None
        """When the last packet came (``clock``), None before the first."""

    def deliver(self, packet: RtpPacket) -> None:
        """A packet from the publisher, after RTX unwrapping: forward it."""
        self.packets += 1
        self.last_packet_at = self._clock()
        if self._awaiting_keyframe and starts_keyframe(packet.payload):
            self._awaiting_keyframe = False
        if self._subscribers:
            ntp = ntp_now()
            for track in self._subscribers:
                try:
                    track.forward(packet, ntp)
                except Exception:
                    # Raised into aiortc's receiver, it would end the publisher's
                    # connection: one slot's failure stays that slot's.
                    track.failed()

    def record(self, frame: EncodedFrame) -> None:
        """A whole frame the receiver assembled: for the recording sink."""
        self._sink.on_frame(self.seat, self.kind, frame)

    def subscribe(self, track: ForwardedTrack) -> None:
        self._subscribers.add(track)
        track.attach(self)
        self.request_keyframe(newcomer=True)

    def unsubscribe(self, track: ForwardedTrack) -> None:
        self._subscribers.discard(track)
        track.detach(self)

    def close(self) -> None:
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        for track in list(self._subscribers):
            self.unsubscribe(track)

    def request_keyframe(self, newcomer: bool = False) -> None:
        """Ask the publisher for a keyframe; not at all if one asked for is still on its
        way (it serves everyone). A new subscriber is never kept waiting: it asks at once
        even just after a keyframe it missed. Other requests (a subscriber's PLI after a
        loss, the recorder) go at most once per `KEYFRAME_REQUEST_INTERVAL`: one coming
        sooner is deferred until the interval has passed, never dropped."""
        if self.kind is not Kind.VIDEO:
            return
        if self._awaiting_keyframe and self._clock() - self._last_request < KEYFRAME_LOST_AFTER:
            return  # the keyframe already asked for will serve this subscriber too
        if self._deferred is not None:
            if not newcomer:
                return
            self._deferred.cancel()
            self._deferred = None
        wait = self._last_request + KEYFRAME_REQUEST_INTERVAL - self._clock()
        if wait > 0 and not newcomer:
            self._deferred = asyncio.get_running_loop().call_later(wait, self._send_deferred)
            return
        self._last_request = self._clock()
        self._awaiting_keyframe = True
        self.keyframe_requests += 1
        self._request_keyframe()

    def _send_deferred(self) -> None:
        self._deferred = None
        self.request_keyframe()


class ForwardedTrack(MediaStreamTrack):
    """A slot in a subscriber's connection that carries another seat's media. Its sender
    reads it and waits for ever: the packets go out through `forward`."""

    def __init__(self, seat: Seat, kind: Kind) -> None:
        super().__init__()
        self.kind = kind.value
        self.seat = seat
        self._kind = kind
        self._source: Publication | None = None
        self._splice = StreamSplice(
            kind is Kind.VIDEO, CLOCK_RATE[kind], random_sequence_number(), random32()
        )
        self._wire: SlotSender | None = None
        self._sending = False
        """Whether the wire can send: nothing is forwarded before (a keyframe sent too
        early would be lost, and the subscriber could not decode what follows)."""
        self._ended = asyncio.Event()
        self.dropped = 0
        self.forwarded = 0
        self.errors = 0

    @property
    def source(self) -> Publication | None:
        return self._source

    @property
    def wire(self) -> SlotSender | None:
        return self._wire

    def bind(self, wire: SlotSender) -> None:
        self._wire = wire

    def wire_ready(self) -> None:
        """The subscriber's connection can carry the slot now: start at a keyframe."""
        self._sending = True
        self._splice.restart()
        if self._source is not None:
            self._source.request_keyframe(newcomer=True)

    def attach(self, source: Publication) -> None:
        self._source = source
        self._splice.restart()

    def detach(self, source: Publication) -> None:
        if self._source is source:
            self._source = None

    def request_keyframe(self) -> None:
        """The subscriber asked for one (PLI/FIR on our sender): ask the publisher."""
        if self._source is not None:
            self._source.request_keyframe()

    def forward(self, packet: RtpPacket, ntp: int) -> None:
        if not self._sending:
            self.dropped += 1
            return
        spliced = self._splice.map(
            packet.ssrc, packet.sequence_number, packet.timestamp, packet.payload, ntp
        )
        if spliced is None:
            self.dropped += 1
            if self._splice.waiting:
                # Still no keyframe: ask again (the publication sends at most one request
                # a second while one is awaited). A request can go astray (sent before the
                # publisher's SSRC was known, or lost), and a browser sends no keyframe
                # unasked: without this the slot could wait for ever.
                self._splice.interrupted = False
                self.request_keyframe()
            return
        sequence, timestamp, payload = spliced
        self._wire.send(packet.marker, sequence, timestamp, payload, ntp)  # type: ignore[union-attr]
        self.forwarded += 1

    def failed(self) -> None:
        """Forwarding a packet raised (a bug): say so once, and carry on."""
        self.errors += 1
        if self.errors == 1:
            logger.exception("forwarding %s %s to a slot failed", self.seat, self.kind)

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._ended.set()


def prepare_sender(sender: RTCRtpSender, kind: Kind, track: ForwardedTrack, stream_id: str) -> None:
    """Make an aiortc sender carry ``track``'s forwarded packets: its loop waits on the
    track, `SlotSender` sends on its stream once the connection starts it, keyframe
    requests go to the publisher, and the seat is the stream id."""
    if not hasattr(sender, "_stream_id"):
        raise RuntimeError("aiortc changed: RTCRtpSender has no _stream_id")
    wire = SlotSender(sender, kind, on_ready=track.wire_ready)
    track.bind(wire)
    sender.replaceTrack(track)
    start = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        wire.configure(parameters)
        await start(parameters)

    # setattr: methods and a private attribute, none typed as assignable
    setattr(sender, "send", send)  # noqa: B010
    setattr(sender, "_send_keyframe", track.request_keyframe)  # noqa: B010
    sender._stream_id = stream_id


async def send_pli(receiver: RTCRtpReceiver) -> None:
    """Ask the publisher for a keyframe on every SSRC it sends from."""
    for source in receiver.getSynchronizationSources():
        await receiver._send_rtcp_pli(source.source)
