"""N concurrent three-person interviews through the server, against stock aiortc.

    .venv/bin/python bench/interviews.py [--rooms 4 8 12] [--seconds 10] [--baseline-rooms 2]
        [--record-rooms 4 12] [--aiortc-buffer-rooms 12] [--split]

For each room count, a server process hosts the rooms and client processes play three
synthetic participants per room: each sends a 640x480 30 fps VP8 clip (~800 kbps,
encoded once and replayed as packets; a keyframe request makes the next frame an intra
frame) and Opus audio, and counts what it receives without decoding it. The servers
measured in the same run:

- ``forward``: this project's rooms (`media.interview.InterviewRoom`), no codec;
- ``record``: the same with the `Recorder` on (age-encrypted WebM per seat, to a
  temporary directory deleted afterwards);
- ``aiortc-jb``: ``forward`` with aiortc's own jitter buffers put back on the server's
  receivers (a frame goes on only with the next frame's first packet, audio after four
  more packets), to show what `media.frame_assembly` saves;
- ``relay``: stock aiortc, `MediaRelay` fan-out as in aiortc's examples, which decodes
  each published track and encodes it again for every subscriber (the baseline).

Prints, per server and room count: server CPU-seconds per second per room, delivered
fps per forwarded video track (min and median), join-to-first-remote-frame p50/p95, the
delay of each video frame and audio packet from its publisher to each subscriber p50/p95
(matched by content, so not for the relay, which re-encodes) and server memory per room.
Clients and server share this machine's two cores, so figures are for comparing the
servers in one run; never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import math
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

import aiohttp
import av
from aiohttp import web
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamTrack

from common.frames import EncodedFrame
from common.names import Kind, RoomId, Seat
from media.forwarding import EncodedFrameTap
from media.interview import InterviewRoom
from media.packers import use_packer
from media.peer_connections import negotiate
from media.receivers import idle_receiver
from recordings.keys import Identity
from recordings.recorder import FileOutputs, Recorder

WIDTH, HEIGHT, FPS, BITRATE, CLIP_FRAMES = 640, 480, 30, 800_000, 60
CLIENT_PROCESSES = 2


# --- the clip ------------------------------------------------------------------------


@dataclass
class Clip:
    video: list[bytes]
    intra: list[bytes]
    audio: list[bytes]


def encode_clip() -> Clip:
    """2 s of a moving picture with a patch of noise (about 800 kbps): normal (keyframe
    every 2 s) and all-intra; 1 s of Opus."""
    rng = random.Random(1)
    gradient = bytes((x // 3 + y // 2) % 256 for y in range(HEIGHT) for x in range(WIDTH))

    def frames() -> list[av.VideoFrame]:
        made = []
        for n in range(CLIP_FRAMES):
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            luma = bytearray(gradient[n * 8 :] + gradient[: n * 8])
            for row in range(200, 280):  # a noisy patch, like a face talking
                start = row * WIDTH + 260
                luma[start : start + 120] = rng.randbytes(120)
            frame.planes[0].update(bytes(luma))
            frame.planes[1].update(bytes([128]) * (WIDTH * HEIGHT // 4))
            frame.planes[2].update(bytes([128]) * (WIDTH * HEIGHT // 4))
            frame.pts = n
            made.append(frame)
        return made

    def encode(gop: int) -> list[bytes]:
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        codec.bit_rate, codec.time_base = BITRATE, Fraction(1, FPS)
        codec.framerate = Fraction(FPS)
        codec.gop_size = gop
        codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        packets = [bytes(p) for f in frames() for p in codec.encode(f)]
        return packets + [bytes(p) for p in codec.encode(None)]

    opus = av.CodecContext.create("libopus", "w")
    opus.sample_rate, opus.layout, opus.format, opus.bit_rate = 48000, "mono", "s16", 32000
    audio = []
    for n in range(50):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(rng.randbytes(1920))
        frame.sample_rate, frame.pts = 48000, n * 960
        audio += [bytes(p) for p in opus.encode(frame)]
    return Clip(encode(2 * FPS)[:CLIP_FRAMES], encode(1)[:CLIP_FRAMES], audio)


class ClipTrack(MediaStreamTrack):
    """Replays the clip in real time as encoded frames; a keyframe request makes the next
    frame an intra frame."""

    def __init__(self, kind: Kind, clip: Clip, sent: list[tuple[float, int]]) -> None:
        super().__init__()
        self.kind = kind.value
        self._sent = sent
        self._kind = kind
        self._clip = clip
        self._n = 0
        self._start: float | None = None
        self.want_keyframe = True

    def request_keyframe(self) -> None:
        self.want_keyframe = True

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        rate = FPS if self._kind is Kind.VIDEO else 50
        if self._start is None:
            self._start = loop.time()
        await asyncio.sleep(max(0.0, self._start + self._n / rate - loop.time()))
        n, self._n = self._n, self._n + 1
        if self._kind is Kind.AUDIO:
            data = self._clip.audio[n % len(self._clip.audio)]
            frame = EncodedFrame(data, n * 960, Fraction(1, 48000), True)
        else:
            index = n % CLIP_FRAMES
            keyframe = self.want_keyframe or index == 0
            self.want_keyframe = False
            data = (self._clip.intra if keyframe else self._clip.video)[index]
            frame = EncodedFrame(data, n * 3000, Fraction(1, 90000), keyframe)
        self._sent.append((time.time(), zlib.crc32(data)))
        return frame


# --- the servers ---------------------------------------------------------------------


class StockRoom:
    """The baseline: aiortc's MediaRelay, decoding and re-encoding for each subscriber."""

    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.pcs: dict[Seat, RTCPeerConnection] = {}
        self.published: dict[tuple[Seat, str], MediaStreamTrack] = {}
        self.slots: dict[tuple[Seat, Seat, str], Any] = {}

    async def join(self, seat: Seat, sdp: str) -> str:
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pcs[seat] = pc
        others = [s for s in Seat if s is not seat]
        pending = {"audio": list(others), "video": list(others)}
        offer = RTCSessionDescription(sdp, "offer")
        await negotiate(pc, pc.setRemoteDescription(offer))
        for transceiver in pc.getTransceivers():
            if transceiver._offerDirection == "recvonly":  # the client sends here
                published: MediaStreamTrack = transceiver.receiver.track
                self.published[(seat, transceiver.kind)] = published
                for other in others:
                    sender = self.slots.get((other, seat, transceiver.kind))
                    if sender is not None:
                        sender.replaceTrack(self.relay.subscribe(published))
            else:
                source = pending[transceiver.kind].pop(0)
                transceiver.direction = "sendonly"
                self.slots[(seat, source, transceiver.kind)] = transceiver.sender
                source_track = self.published.get((source, transceiver.kind))
                if source_track is not None:
                    transceiver.sender.replaceTrack(self.relay.subscribe(source_track))
        await negotiate(pc, pc.setLocalDescription(await pc.createAnswer()))
        return str(pc.localDescription.sdp)

    async def close(self) -> None:
        for pc in self.pcs.values():
            await pc.close()


def pin(cpus: set[int] | None) -> None:
    """Keep this process on ``cpus`` (None: anywhere), to separate server and clients."""
    if cpus:
        os.sched_setaffinity(0, cpus)


def serve(kind: str, port: int, ready: Any, cpus: set[int] | None = None) -> None:
    pin(cpus)
    recordings = Path(tempfile.mkdtemp(prefix="bench-recordings-"))
    recipient = Identity.generate().recipient  # its identity is thrown away

    if kind == "aiortc-jb":
        import media.receivers

        def video_buffer() -> JitterBuffer:
            return JitterBuffer(capacity=512, is_video=True)  # as aiortc 1.16 makes them

        def audio_buffer() -> JitterBuffer:
            return JitterBuffer(capacity=16, prefetch=4)

        # For this server process only: prepare_receiver builds these instead of ours.
        patch.object(media.receivers, "VideoFrameAssembler", video_buffer).start()
        patch.object(media.receivers, "AudioPassThrough", audio_buffer).start()

    def make_room(name: str) -> Any:
        if kind == "relay":
            return StockRoom()
        sink = Recorder(FileOutputs(recordings / name), [recipient]) if kind == "record" else None
        return InterviewRoom(RoomId(name), sink=sink)

    async def main() -> None:
        rooms: dict[str, Any] = {}

        async def offer(request: web.Request) -> web.Response:
            body = await request.json()
            room = rooms.get(body["room"])
            if room is None:
                room = rooms[body["room"]] = make_room(body["room"])
            answer = await room.join(Seat(body["seat"]), body["sdp"])
            return web.json_response({"sdp": answer})

        app = web.Application()
        app.router.add_post("/offer", offer)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        gc.freeze()  # as the interview server does once started (server/app.py)
        ready.set()
        await asyncio.Event().wait()

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(recordings, ignore_errors=True)


# --- the clients ---------------------------------------------------------------------


Log = list[tuple[float, int]]  # (wall-clock time, CRC-32 of the frame), in order


@dataclass
class ClientResult:
    started: dict[tuple[str, Seat], float] = field(default_factory=dict)
    # (room, subscriber, publisher, arrival of the first video frame)
    first_frames: list[tuple[str, Seat, Seat, float]] = field(default_factory=list)
    video_frames: list[int] = field(default_factory=list)  # per forwarded track, in window
    # Frames sent (room, publisher, kind) and received (room, subscriber, publisher, kind)
    # in the window, to match by content: a forwarding server passes them on unchanged.
    sent: dict[tuple[str, Seat, Kind], Log] = field(default_factory=dict)
    received: dict[tuple[str, Seat, Seat, Kind], Log] = field(default_factory=dict)


def _log(log: Log, frame: EncodedFrame) -> None:
    log.append((time.time(), zlib.crc32(bytes(frame))))


def in_window(log: Log, start: float, end: float) -> Log:
    return [entry for entry in log if start <= entry[0] < end]


async def participant(
    url: str, room: str, seat: Seat, clip: Clip
) -> tuple[RTCPeerConnection, float, dict[Kind, Log], dict[tuple[Seat, Kind], Log]]:
    """Joins; returns the connection, when the offer went out, the frames it sent and,
    per other seat and kind, the frames it received."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    sent: dict[Kind, Log] = {}
    for kind in (Kind.AUDIO, Kind.VIDEO):
        track = ClipTrack(kind, clip, sent.setdefault(kind, []))
        transceiver = pc.addTransceiver(track, direction="sendonly")
        use_packer(transceiver.sender, kind, track.request_keyframe)
        idle_receiver(transceiver.receiver, kind)
    received: dict[tuple[Seat, Kind], Log] = {}
    for other in (s for s in Seat if s is not seat):  # slot order: the server's answer
        for kind in (Kind.AUDIO, Kind.VIDEO):
            receiver = pc.addTransceiver(kind.value, direction="recvonly").receiver
            log = received.setdefault((other, kind), [])
            EncodedFrameTap.install(receiver, kind, partial(_log, log))
    await pc.setLocalDescription(await pc.createOffer())
    started = time.time()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/offer", json={"room": room, "seat": seat.value, "sdp": pc.localDescription.sdp}
        ) as response,
    ):
        answer = (await response.json())["sdp"]
    await negotiate(pc, pc.setRemoteDescription(RTCSessionDescription(answer, "answer")))
    return pc, started, sent, received


def clients(
    url: str,
    seats: list[tuple[str, Seat]],
    clip: Clip,
    joined: Any,
    window: Any,
    out: Any,
    cpus: set[int] | None = None,
) -> None:
    pin(cpus)
    gc.freeze()  # what is alive now lives as long as the process

    async def main() -> None:
        result, pcs = ClientResult(), []
        sent: dict[tuple[str, Seat, Kind], Log] = {}
        received: dict[tuple[str, Seat, Seat, Kind], Log] = {}
        for room, seat in seats:
            pc, started, own, got = await participant(url, room, seat, clip)
            pcs.append(pc)
            result.started[(room, seat)] = started
            sent |= {(room, seat, kind): log for kind, log in own.items()}
            received |= {(room, seat, other, kind): log for (other, kind), log in got.items()}
        joined.set()
        start, end = await asyncio.get_running_loop().run_in_executor(None, window.get)
        await asyncio.sleep(max(0.0, end - time.time()) + 0.2)
        for (room, seat, other, kind), log in received.items():
            result.received[(room, seat, other, kind)] = in_window(log, start, end + 1.0)
            if kind is Kind.VIDEO:
                if log:
                    result.first_frames.append((room, seat, other, log[0][0]))
                result.video_frames.append(len(in_window(log, start, end)))
        result.sent = {key: in_window(log, start - 1.0, end) for key, log in sent.items()}
        out.put(result)
        for pc in pcs:
            await pc.close()

    asyncio.run(main())


def delays(results: list[ClientResult], kind: Kind) -> list[float]:
    """Seconds from a frame leaving its publisher to reaching each subscriber, matched by
    content (the last send of the same frame before it arrived); none when the server
    re-encodes, as the stock relay does."""
    sent = {key: log for r in results for key, log in r.sent.items()}
    found = []
    for r in results:
        for (room, _, publisher, frame_kind), log in r.received.items():
            if frame_kind is not kind:
                continue
            times_by_crc: dict[int, list[float]] = {}
            for at, crc in sent.get((room, publisher, kind), []):
                times_by_crc.setdefault(crc, []).append(at)
            for arrived, crc in log:
                before = bisect.bisect_right(times_by_crc.get(crc, []), arrived)
                if before:
                    found.append(arrived - times_by_crc[crc][before - 1])
    return sorted(found)


# --- measuring -----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[int(fraction * (len(ordered) - 1))] if ordered else float("nan")


def run(kind: str, rooms: int, seconds: float, clip: Clip, split: bool = False) -> dict[str, float]:
    """``split``: the server on CPU 0 alone, the clients on the other CPUs."""
    context = multiprocessing.get_context("spawn")
    port, ready = free_port(), context.Event()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[0]} if split else None
    client_cpus = set(cpus[1:]) if split else None
    server = context.Process(target=serve, args=(kind, port, ready, server_cpus), daemon=True)
    server.start()
    ready.wait(30)
    assert server.pid is not None
    pid = server.pid
    idle_rss = rss_bytes(pid)
    seats = [(f"room-{n}", seat) for n in range(rooms) for seat in Seat]
    out, window = context.Queue(), context.Queue()
    joined = [context.Event() for _ in range(CLIENT_PROCESSES)]
    workers = [
        context.Process(
            target=clients,
            args=(
                f"http://127.0.0.1:{port}",
                seats[i::CLIENT_PROCESSES],
                clip,
                joined[i],
                window,
                out,
                client_cpus,
            ),
            daemon=True,
        )
        for i in range(CLIENT_PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for event in joined:
        event.wait(120)
    time.sleep(3.0)  # let every stream settle
    start = time.time()
    for _ in workers:
        window.put((start, start + seconds))
    client_pids = [worker.pid for worker in workers if worker.pid is not None]
    cpu_before = cpu_seconds(pid)
    clients_before = sum(cpu_seconds(p) for p in client_pids)
    time.sleep(seconds)
    cpu = cpu_seconds(pid) - cpu_before
    clients_cpu = sum(cpu_seconds(p) for p in client_pids) - clients_before
    rss = rss_bytes(pid)
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    server.kill()
    started = {key: t for r in results for key, t in r.started.items()}
    # From the moment both ends had joined to the first frame of one from the other.
    firsts = sorted(
        first - max(started[(room, subscriber)], started[(room, publisher)])
        for r in results
        for room, subscriber, publisher, first in r.first_frames
    )
    fps = sorted(n / seconds for r in results for n in r.video_frames)
    expected_tracks = rooms * 3 * 2
    video, audio = delays(results, Kind.VIDEO), delays(results, Kind.AUDIO)
    return {
        "video_p50": percentile(video, 0.5) * 1000,
        "video_p95": percentile(video, 0.95) * 1000,
        "audio_p50": percentile(audio, 0.5) * 1000,
        "audio_p95": percentile(audio, 0.95) * 1000,
        "cpu": cpu / seconds / rooms,
        "fps_min": fps[0] if len(fps) == expected_tracks else 0.0,
        "fps_median": statistics.median(fps) if fps else 0.0,
        "first_p50": percentile(firsts, 0.5) * 1000,
        "first_p95": percentile(firsts, 0.95) * 1000,
        "mem": (rss - idle_rss) / rooms / 1e6,
        "clients": clients_cpu / seconds,
        "tracks": len([f for f in fps if f > 0]),
        "expected": expected_tracks,
    }


def delay(p50: float, p95: float) -> str:
    """p50/p95 in ms; a dash when frames could not be matched (the relay re-encodes)."""
    return "-" if math.isnan(p50) else f"{p50:.0f}/{p95:.0f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, nargs="+", default=[4, 8, 12])
    parser.add_argument("--baseline-rooms", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--record-rooms",
        type=int,
        nargs="*",
        default=[4, 12],
        help="room counts to run again with the recorder on",
    )
    parser.add_argument(
        "--aiortc-buffer-rooms",
        type=int,
        nargs="*",
        default=[],
        help="room counts to run again with aiortc's own jitter buffers on the server",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="pin the server to one CPU and the clients to the others",
    )
    args = parser.parse_args()
    if args.split and len(os.sched_getaffinity(0)) < 2:
        parser.error("--split needs at least two CPUs")
    clip = encode_clip()
    kbps = sum(map(len, clip.video)) * 8 / (CLIP_FRAMES / FPS) / 1000
    print(f"clip: {WIDTH}x{HEIGHT} {FPS} fps VP8 at {kbps:.0f} kbps, Opus 20 ms packets")
    print(
        f"{'server':>9} {'rooms':>5} {'CPU-s/s/room':>12} {'fps min':>8} {'fps med':>8} "
        f"{'first p50':>10} {'first p95':>10} {'video delay':>12} {'audio delay':>12} "
        f"{'MB/room':>8} {'tracks':>8} {'clients CPU-s/s':>15}"
    )
    plan = (
        [("relay", n) for n in args.baseline_rooms]
        + [("forward", n) for n in args.rooms]
        + [("record", n) for n in args.record_rooms]
        + [("aiortc-jb", n) for n in args.aiortc_buffer_rooms]
    )
    for kind, rooms in plan:
        r = run(kind, rooms, args.seconds, clip, args.split)
        print(
            f"{kind:>9} {rooms:>5} {r['cpu']:>12.3f} {r['fps_min']:>8.1f} "
            f"{r['fps_median']:>8.1f} {r['first_p50']:>8.0f}ms {r['first_p95']:>8.0f}ms "
            f"{delay(r['video_p50'], r['video_p95']):>12} "
            f"{delay(r['audio_p50'], r['audio_p95']):>12} "
            f"{r['mem']:>8.1f} {int(r['tracks']):>3}/{int(r['expected'])} "
            f"{r['clients']:>15.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
