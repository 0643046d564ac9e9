"""N concurrent three-person interviews through the server, against stock aiortc.

    .venv/bin/python bench/interviews.py [--rooms 4 8 12] [--seconds 10] [--baseline-rooms 2]

For each room count, a server process hosts the rooms and client processes play three
synthetic participants per room: each sends a 640x480 30 fps VP8 clip (~800 kbps,
encoded once and replayed as packets; a keyframe request makes the next frame an intra
frame) and Opus audio, and counts what it receives without decoding it. Two servers are
measured in the same run:

- ``forward``: this project's rooms (`signalling.interview.InterviewRoom`), no codec;
- ``record``: the same with the `Recorder` on (age-encrypted WebM per seat, to a
  temporary directory deleted afterwards);
- ``relay``: stock aiortc, `MediaRelay` fan-out as in aiortc's examples, which decodes
  each published track and encodes it again for every subscriber (the baseline).

Prints, per server and room count: server CPU-seconds per second per room, delivered
fps per forwarded video track (min and median), join-to-first-remote-frame p50/p95 and
server memory per room. Clients and server share this machine's two cores, so figures
are for comparing the two servers in one run; never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

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
from aiortc.mediastreams import MediaStreamTrack

from recordings.keys import Identity
from recordings.recorder import Recorder
from signalling.forwarding import EncodedFrameTap, use_packer
from signalling.interview import InterviewRoom
from signalling.receivers import idle_receiver
from signalling.types import EncodedFrame, Kind, RoomId, Seat

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

    def __init__(self, kind: Kind, clip: Clip) -> None:
        super().__init__()
        self.kind = kind.value
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
            return EncodedFrame(data, n * 960, Fraction(1, 48000), True)
        index = n % CLIP_FRAMES
        keyframe = self.want_keyframe or index == 0
        self.want_keyframe = False
        data = (self._clip.intra if keyframe else self._clip.video)[index]
        return EncodedFrame(data, n * 3000, Fraction(1, 90000), keyframe)


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
        await pc.setRemoteDescription(offer)
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
        await pc.setLocalDescription(await pc.createAnswer())
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

    def make_room(name: str) -> Any:
        if kind == "relay":
            return StockRoom()
        sink = Recorder(recordings / name, [recipient]) if kind == "record" else None
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


@dataclass
class ClientResult:
    started: dict[tuple[str, Seat], float] = field(default_factory=dict)
    # (room, subscriber, publisher, arrival of the first video frame)
    first_frames: list[tuple[str, Seat, Seat, float]] = field(default_factory=list)
    video_frames: list[int] = field(default_factory=list)  # per forwarded track, in window


def _arrived(times: list[float], frame: EncodedFrame) -> None:
    times.append(time.time())


def _ignore(frame: EncodedFrame) -> None:
    return None


async def participant(
    url: str, room: str, seat: Seat, clip: Clip
) -> tuple[RTCPeerConnection, float, list[list[float]]]:
    """Joins; returns the connection, when the offer went out and, per received video
    track, the arrival times of its frames."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    for kind in (Kind.AUDIO, Kind.VIDEO):
        track = ClipTrack(kind, clip)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        use_packer(transceiver.sender, kind, track.request_keyframe)
        idle_receiver(transceiver.receiver, kind)
    counters: list[list[float]] = []
    for _ in range(2):
        for kind in (Kind.AUDIO, Kind.VIDEO):
            receiver = pc.addTransceiver(kind.value, direction="recvonly").receiver
            if kind is Kind.VIDEO:
                times: list[float] = []
                counters.append(times)
                EncodedFrameTap.install(receiver, kind, partial(_arrived, times))
            else:
                EncodedFrameTap.install(receiver, kind, _ignore)
    await pc.setLocalDescription(await pc.createOffer())
    started = time.time()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/offer", json={"room": room, "seat": seat.value, "sdp": pc.localDescription.sdp}
        ) as response,
    ):
        answer = (await response.json())["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pc, started, counters


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
        result, pcs, counters = ClientResult(), [], []
        for room, seat in seats:
            pc, started, tracks = await participant(url, room, seat, clip)
            pcs.append(pc)
            result.started[(room, seat)] = started
            others = [other for other in Seat if other is not seat]  # slot order
            counters += [
                (room, seat, other, times) for other, times in zip(others, tracks, strict=True)
            ]
        joined.set()
        start, end = await asyncio.get_running_loop().run_in_executor(None, window.get)
        await asyncio.sleep(max(0.0, end - time.time()) + 0.2)
        for room, seat, other, times in counters:
            if times:
                result.first_frames.append((room, seat, other, times[0]))
            result.video_frames.append(sum(1 for t in times if start <= t < end))
        out.put(result)
        for pc in pcs:
            await pc.close()

    asyncio.run(main())


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
    return {
        "cpu": cpu / seconds / rooms,
        "fps_min": fps[0] if len(fps) == expected_tracks else 0.0,
        "fps_median": statistics.median(fps) if fps else 0.0,
        "first_p50": statistics.median(firsts) * 1000 if firsts else float("nan"),
        "first_p95": firsts[int(0.95 * (len(firsts) - 1))] * 1000 if firsts else float("nan"),
        "mem": (rss - idle_rss) / rooms / 1e6,
        "clients": clients_cpu / seconds,
        "tracks": len([f for f in fps if f > 0]),
        "expected": expected_tracks,
    }


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
        f"{'server':>8} {'rooms':>5} {'CPU-s/s/room':>12} {'fps min':>8} {'fps med':>8} "
        f"{'first p50':>10} {'first p95':>10} {'MB/room':>8} {'tracks':>8} "
        f"{'clients CPU-s/s':>15}"
    )
    plan = (
        [("relay", n) for n in args.baseline_rooms]
        + [("forward", n) for n in args.rooms]
        + [("record", n) for n in args.record_rooms]
    )
    for kind, rooms in plan:
        r = run(kind, rooms, args.seconds, clip, args.split)
        print(
            f"{kind:>8} {rooms:>5} {r['cpu']:>12.3f} {r['fps_min']:>8.1f} "
            f"{r['fps_median']:>8.1f} {r['first_p50']:>8.0f}ms {r['first_p95']:>8.0f}ms "
            f"{r['mem']:>8.1f} {int(r['tracks']):>3}/{int(r['expected'])} "
            f"{r['clients']:>15.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
