"""Encoded-frame passthrough: what makes the server an SFU on top of aiortc 1.16.0.

- `EncodedFrameTap` stands in for an `RTCRtpReceiver`'s decoder queue. aiortc's receiver
  keeps doing the transport work (frame assembly, NACK, REMB, RTCP; made leaner by
  `receivers.prepare_receiver`) and hands each complete encoded frame to ``put``; the tap
  passes it on instead of decoding it. The decoder thread aiortc starts for the receiver
  waits on the tap and never gets a frame, so it never creates a decoder.
- `Publication` is one published track: it fans frames out to its subscribers and to the
  recording sink, and sends the publisher a keyframe request (PLI) when one is needed:
  at once for a new subscriber, otherwise at most once per `KEYFRAME_REQUEST_INTERVAL`.
  It notes when its last frame came, so a room can tell when a publisher's media stopped.
- `ForwardedTrack` is one slot in a subscriber's connection. The sender reads it; it holds
  back delta frames until a keyframe whenever its source changes or its queue overflowed.
- `Vp8Packer` and `OpusPacker` replace the sender's encoder: they only packetize.

These reach into aiortc internals (pinned; `tests/test_aiortc_pin.py` fails loudly if
they change): ``RTCRtpReceiver._RTCRtpReceiver__decoder_queue``,
``RTCRtpReceiver._send_rtcp_pli``, ``RTCRtpSender._RTCRtpSender__encoder``,
``RTCRtpSender._RTCRtpSender__rtp_history`` and ``RTCRtpSender._send_keyframe``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from .receivers import prepare_receiver
from .types import EncodedFrame, Kind, RecordingSink, Seat

KEYFRAME_REQUEST_INTERVAL = 0.25  # seconds between PLIs to one publisher, but for newcomers
KEYFRAME_LOST_AFTER = 1.0  # seconds after which a keyframe asked for is asked for again
FORWARD_QUEUE_FRAMES = {Kind.VIDEO: 30, Kind.AUDIO: 50}  # about a second of media
VIDEO_TIME_BASE = Fraction(1, 90000)
VIDEO_CLOCK = 90000


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
        cls, receiver: RTCRtpReceiver, kind: Kind, on_frame: Callable[[EncodedFrame], None]
    ) -> EncodedFrameTap:
        """Must run before the receiver starts (before the connection is established)."""
        attribute = "_RTCRtpReceiver__decoder_queue"
        if not hasattr(receiver, attribute):
            raise RuntimeError("aiortc changed: RTCRtpReceiver has no decoder queue to tap")
        prepare_receiver(receiver, kind)
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
        self.frames = 0
        self.last_frame_at: float | None = None
        """When the last frame came (``clock``), None before the first."""

    def deliver(self, frame: EncodedFrame) -> None:
        self.frames += 1
        self.last_frame_at = self._clock()
        if frame.keyframe:
            self._awaiting_keyframe = False
        self._sink.on_frame(self.seat, self.kind, frame)
        for track in self._subscribers:
            track.push(frame)

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
    """A slot in a subscriber's connection that carries another seat's media."""

    def __init__(self, seat: Seat, kind: Kind) -> None:
        super().__init__()
        self.kind = kind.value
        self.seat = seat
        self._kind = kind
        self._queue: asyncio.Queue[EncodedFrame] = asyncio.Queue(FORWARD_QUEUE_FRAMES[kind])
        self._source: Publication | None = None
        self._need_keyframe = kind is Kind.VIDEO
        self.dropped = 0
        self.forwarded = 0

    @property
    def source(self) -> Publication | None:
        return self._source

    def attach(self, source: Publication) -> None:
        self._source = source
        self._need_keyframe = self._kind is Kind.VIDEO

    def detach(self, source: Publication) -> None:
        if self._source is source:
            self._source = None

    def request_keyframe(self) -> None:
        """The subscriber asked for one (PLI/FIR on our sender): ask the publisher."""
        if self._source is not None:
            self._source.request_keyframe()

    def push(self, frame: EncodedFrame) -> None:
        if self._need_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                return
            self._need_keyframe = False
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            # The subscriber fell behind: start again from the next keyframe.
            self.dropped += self._queue.qsize() + 1
            while not self._queue.empty():
                self._queue.get_nowait()
            if self._kind is Kind.VIDEO:
                self._need_keyframe = True
                self.request_keyframe()

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        self.forwarded += 1
        return frame


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


def prepare_sender(sender: RTCRtpSender, kind: Kind, track: ForwardedTrack, stream_id: str) -> None:
    """Make an aiortc sender forward ``track`` as it is: a packer instead of an encoder,
    keyframe requests passed on to the publisher, and the seat as the stream id."""
    if not hasattr(sender, "_stream_id"):
        raise RuntimeError("aiortc changed: RTCRtpSender has no _stream_id")
    sender.replaceTrack(track)
    use_packer(sender, kind, track.request_keyframe)
    sender._stream_id = stream_id


class NoRetransmissions(dict[int, RtpPacket]):
    """A sender's retransmission history that keeps nothing. Opus is negotiated without
    NACK, so an audio sender's 128 kept packets (with their header objects) are never
    read, yet the garbage collector walks them: 27,000 objects at 12 rooms."""

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


async def send_pli(receiver: RTCRtpReceiver) -> None:
    """Ask the publisher for a keyframe on every SSRC it sends from."""
    for source in receiver.getSynchronizationSources():
        await receiver._send_rtcp_pli(source.source)
