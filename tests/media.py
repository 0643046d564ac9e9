"""Synthetic participants for media tests: real aiortc peer connections whose video
frames carry their seat (the picture's brightness) and a frame counter (16 blocks along
the top), and a recording sink that keeps what it is given."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

from common.frames import EncodedFrame
from common.names import Kind, Seat
from media.peer_connections import negotiate

WIDTH, HEIGHT, FPS = 320, 240, 30
BLOCK, BITS = 16, 16
LUMA = {Seat.APPLICANT: 60, Seat.CBSA: 110, Seat.CBP: 160}
TONE_HZ = {Seat.APPLICANT: 300, Seat.CBSA: 500, Seat.CBP: 800}
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


def picture(seat: Seat, counter: int) -> av.VideoFrame:
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma = bytearray([LUMA[seat]]) * (WIDTH * HEIGHT)
    for bit in range(BITS):
        value = 235 if counter >> bit & 1 else 16
        for row in range(BLOCK):
            start = row * WIDTH + bit * BLOCK + BLOCK  # one block of margin on the left
            luma[start : start + BLOCK] = bytes([value]) * BLOCK
    frame.planes[0].update(bytes(luma))
    frame.planes[1].update(bytes([128]) * (WIDTH * HEIGHT // 4))
    frame.planes[2].update(bytes([128]) * (WIDTH * HEIGHT // 4))
    return frame


def read_picture(frame: av.VideoFrame) -> tuple[Seat | None, int]:
    """(seat, counter) read back from a decoded picture."""
    plane = frame.planes[0]
    data, stride = bytes(plane), plane.line_size
    scale_x, scale_y = frame.width / WIDTH, frame.height / HEIGHT

    def luma(x: int, y: int) -> int:
        return data[int(y * scale_y) * stride + int(x * scale_x)]

    counter = 0
    for bit in range(BITS):
        if luma(bit * BLOCK + BLOCK + BLOCK // 2, BLOCK // 2) > 128:
            counter |= 1 << bit
    body = luma(WIDTH // 2, HEIGHT // 2)
    seat = min(LUMA, key=lambda s: abs(LUMA[s] - body))
    return (seat if abs(LUMA[seat] - body) < 20 else None), counter


class PacedTrack(MediaStreamTrack):
    """A synthetic track that hands out its frames in real time."""

    def __init__(self, seat: Seat) -> None:
        super().__init__()
        self.seat = seat
        self._start: float | None = None

    async def _wait_until(self, offset_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        await asyncio.sleep(max(0.0, self._start + offset_seconds - loop.time()))


class SyntheticVideo(PacedTrack):
    kind = "video"

    def __init__(self, seat: Seat) -> None:
        super().__init__(seat)
        self.counter = 0

    async def recv(self) -> av.VideoFrame:
        await self._wait_until(self.counter / FPS)
        frame = picture(self.seat, self.counter)
        frame.pts = self.counter * (90000 // FPS)
        frame.time_base = VIDEO_TIME_BASE
        self.counter += 1
        return frame


class SyntheticAudio(PacedTrack):
    """A tone whose pitch names the seat, in 20 ms frames."""

    kind = "audio"

    def __init__(self, seat: Seat) -> None:
        super().__init__(seat)
        self.samples = 0

    async def recv(self) -> av.AudioFrame:
        await self._wait_until(self.samples / 48000)
        count = 960
        tone = TONE_HZ[self.seat]
        values = b"".join(
            int(8000 * math.sin(2 * math.pi * tone * (self.samples + i) / 48000)).to_bytes(
                2, "little", signed=True
            )
            for i in range(count)
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=count)
        frame.planes[0].update(values)
        frame.sample_rate = 48000
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, 48000)
        self.samples += count
        return frame


@dataclass
class Received:
    frames: int = 0
    counters: list[int] = field(default_factory=list)
    wrong_seat: int = 0
    first_at: float | None = None
    pitch_hz: float | None = None
    arrivals: list[float] = field(default_factory=list)
    """When each frame arrived (the loop's clock), to look for gaps."""

    def longest_gap(self, since: float) -> float:
        """The longest time without a frame from ``since`` to the last arrival."""
        times = [since, *(t for t in self.arrivals if t > since)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


Join = Callable[[Seat, str], Awaitable[str]]


class PitchMeter:
    """Estimates a tone's pitch from zero crossings of the first channel."""

    def __init__(self) -> None:
        self.crossings = 0
        self.samples = 0
        self._previous = 0

    def add(self, frame: av.AudioFrame) -> float:
        channels = len(frame.layout.channels)
        data = bytes(frame.planes[0])[: frame.samples * channels * 2]
        for i in range(0, len(data) // 2, channels):
            value = int.from_bytes(data[2 * i : 2 * i + 2], "little", signed=True)
            self.crossings += (value >= 0) != (self._previous >= 0)
            self._previous = value
            self.samples += 1
        return self.crossings / 2 / (self.samples / frame.sample_rate)


class SyntheticParticipant:
    """A client with one real RTCPeerConnection: publishes its synthetic tracks and
    decodes what it receives from the other seats."""

    def __init__(self, seat: Seat) -> None:
        self.seat = seat
        self.video = SyntheticVideo(seat)
        self.audio = SyntheticAudio(seat)
        self.received: dict[tuple[Seat, Kind], Received] = defaultdict(Received)
        self.pc: RTCPeerConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self, join: Join) -> float:
        """Offer, get the answer through ``join``; returns the moment the offer was sent."""
        await self.close()
        self.pc = pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        pc.addTransceiver(self.audio, direction="sendonly")
        pc.addTransceiver(self.video, direction="sendonly")
        for _ in range(2):
            pc.addTransceiver("audio", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        started = asyncio.get_running_loop().time()
        answer = await join(self.seat, pc.localDescription.sdp)
        await negotiate(pc, pc.setRemoteDescription(RTCSessionDescription(answer, "answer")))
        streams = {
            m.rtp.muxId: m.msid.split()[0]
            for m in SessionDescription.parse(answer).media
            if m.msid and m.direction == "sendonly"
        }
        for transceiver in pc.getTransceivers():
            if transceiver.mid in streams:
                seat = Seat(streams[transceiver.mid])
                self._tasks.append(
                    asyncio.ensure_future(
                        self._consume(seat, Kind(transceiver.kind), transceiver.receiver.track)
                    )
                )
        return started

    async def _consume(self, seat: Seat, kind: Kind, track: MediaStreamTrack) -> None:
        received = self.received[(seat, kind)]
        pitch = PitchMeter()
        try:
            while True:
                frame = await track.recv()
                received.frames += 1
                received.arrivals.append(asyncio.get_running_loop().time())
                if received.first_at is None:
                    received.first_at = received.arrivals[-1]
                if isinstance(frame, av.VideoFrame):
                    shown, counter = read_picture(frame)
                    received.counters.append(counter)
                    received.wrong_seat += shown is not seat
                elif isinstance(frame, av.AudioFrame):
                    received.pitch_hz = pitch.add(frame)
        except MediaStreamError:
            return

    def got(self, seat: Seat, kind: Kind) -> Received:
        return self.received[(seat, kind)]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self.pc is not None:
            await self.pc.close()
            self.pc = None


class MemorySink:
    """A recording sink for tests: counts every frame per seat and kind."""

    def __init__(self) -> None:
        self.frames: dict[tuple[Seat, Kind], list[EncodedFrame]] = defaultdict(list)
        self.changes: list[tuple[Seat, Kind, bool]] = []

    def on_frame(self, seat: Seat, kind: Kind, frame: EncodedFrame) -> None:
        self.frames[(seat, kind)].append(frame)

    def on_publisher_change(self, seat: Seat, kind: Kind, present: bool) -> None:
        self.changes.append((seat, kind, present))

    def set_keyframe_requester(self, request: Callable[[Seat], None]) -> None:
        return None


async def wait_for(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the condition")
        await asyncio.sleep(0.05)
