"""Stock aiortc behind the WebSocket the native load generator speaks: the baseline it
measures beside this project's server and Janus.

    .venv/bin/python bench/relay_server.py --port P          # serve on 127.0.0.1:P
    .venv/bin/python bench/relay_server.py --rooms 1 2 [--seconds 20] [--loadgen PATH]

The server speaks the part of docs/signalling.md that bench/loadgen's participants use:
``GET /ws``; ``join`` (answered ``joined``), ``offer`` (answered ``answer``), trickled
``candidate`` and ``leave``, every message JSON with ``"v": 1``. Nobody signs in: the
session cookie names the participant, ``nexus_session=<room>.<seat>``. Fan-out is aiortc's
`MediaRelay` as in aiortc's examples, so every published track is decoded once and
encoded again for each subscriber. Each receiving section of the answer is named (its
msid's stream id) after the seat whose media it carries, as this project's server does.

With ``--rooms`` it starts the server, plays N three-party rooms with the generator
(``make loadgen``; ``"reencoded": true``, as the frames carry no content marker after
re-encoding) and prints the generator's report and the server's CPU-seconds per second
over the generator's measuring window. Never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay, RelayStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from av.frame import Frame
from av.packet import Packet

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generator_run
from generator_run import LOADGEN, ROOT, Measurement
from native_load import free_port, wait_until_listening

from common.names import Seat
from media.peer_connections import negotiate

COOKIE = "nexus_session"


class Slot(MediaStreamTrack):
    """What one seat receives from another, per kind: the publisher's relayed track while
    it publishes, and a wait while it does not. The sender keeps this one track for the
    connection's life, so a publisher who comes later, or again on a new connection, is
    delivered without renegotiating (a relayed track that ends would end the sender)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._source: RelayStreamTrack | None = None
        self._attached = asyncio.Event()

    def attach(self, source: RelayStreamTrack | None) -> None:
        """Deliver ``source`` from now on (None: nothing), ending the one before."""
        before, self._source = self._source, source
        if before is not None:
            # Wake a recv() waiting on it: MediaRelay ends its tracks with None.
            if before._queue is not None:
                before._queue.put_nowait(None)
            before.stop()
        if source is not None:
            self._attached.set()

    async def recv(self) -> Frame | Packet[Any]:
        while self.readyState == "live":
            source = self._source
            if source is None:
                self._attached.clear()
                await self._attached.wait()
                continue
            try:
                return await source.recv()
            except MediaStreamError:  # the publisher left, or attach() replaced it
                if self._source is source:
                    self._source = None
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self.attach(None)
        self._attached.set()


@dataclass
class RelayRoom:
    """One interview's peer connections, fanned out through one `MediaRelay`."""

    relay: MediaRelay = field(default_factory=MediaRelay)
    pcs: dict[Seat, RTCPeerConnection] = field(default_factory=dict)
    published: dict[tuple[Seat, str], MediaStreamTrack] = field(default_factory=dict)
    # (subscriber, publisher, kind) → what the subscriber's sender sends
    slots: dict[tuple[Seat, Seat, str], Slot] = field(default_factory=dict)
    sockets: int = 0  # open ones: the room goes with the last

    async def offer(self, seat: Seat, sdp: str) -> tuple[RTCPeerConnection, str]:
        """A new connection for ``seat`` (replacing its old one) and the answer to its
        offer: sendonly sections publish, recvonly ones take the other seats in order."""
        old = self.pcs.get(seat)
        if old is not None:
            await self.leave(seat, old)
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pcs[seat] = pc
        others = {kind: [s for s in Seat if s is not seat] for kind in ("audio", "video")}
        await negotiate(pc, pc.setRemoteDescription(RTCSessionDescription(sdp, "offer")))
        for transceiver in pc.getTransceivers():
            kind = transceiver.kind
            if transceiver._offerDirection == "recvonly":  # the client sends here
                track = transceiver.receiver.track
                self.published[(seat, kind)] = track
                for subscriber in Seat:
                    slot = self.slots.get((subscriber, seat, kind))
                    if slot is not None:
                        slot.attach(self.subscribe(track))
            elif others[kind]:
                publisher = others[kind].pop(0)
                slot = Slot(kind)
                transceiver.direction = "sendonly"
                name_stream(transceiver.sender, slot, publisher)
                self.slots[(seat, publisher, kind)] = slot
                source = self.published.get((publisher, kind))
                if source is not None:
                    slot.attach(self.subscribe(source))
        await negotiate(pc, pc.setLocalDescription(await pc.createAnswer()))
        return pc, str(pc.localDescription.sdp)

    def subscribe(self, track: MediaStreamTrack) -> RelayStreamTrack:
        """A subscription to ``track``, buffered as aiortc's examples take them."""
        relayed = self.relay.subscribe(track)
        assert isinstance(relayed, RelayStreamTrack)
        return relayed

    async def add_candidate(
        self, seat: Seat, candidate: str, sdp_mid: str | None, index: int | None
    ) -> None:
        pc = self.pcs.get(seat)
        if pc is None or not candidate:
            return
        parsed = candidate_from_sdp(candidate.removeprefix("candidate:"))
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = index
        await pc.addIceCandidate(parsed)

    def present(self) -> list[str]:
        return [seat.value for seat in self.pcs]

    async def leave(self, seat: Seat, pc: RTCPeerConnection) -> None:
        """Close ``seat``'s connection if ``pc`` is still it (a replaced socket closing
        late must not hang up its successor), and its slots in the others'."""
        if self.pcs.get(seat) is not pc:
            return
        del self.pcs[seat]
        for key in [k for k in self.published if k[0] is seat]:
            del self.published[key]
        for (subscriber, publisher, kind), slot in list(self.slots.items()):
            if subscriber is seat:
                del self.slots[(subscriber, publisher, kind)]
            elif publisher is seat:
                slot.attach(None)
        await pc.close()

    async def close(self) -> None:
        for seat, pc in list(self.pcs.items()):
            await self.leave(seat, pc)


def name_stream(sender: RTCRtpSender, track: MediaStreamTrack, publisher: Seat) -> None:
    """Send ``track`` under the publisher's seat as its stream id: the generator, like the
    interview pages, tells whose media a slot carries by it."""
    if not hasattr(sender, "_stream_id"):
        raise RuntimeError("aiortc changed: RTCRtpSender has no _stream_id")
    sender.replaceTrack(track)
    sender._stream_id = publisher.value


ROOMS = web.AppKey("rooms", dict[str, RelayRoom])


def participant(request: web.Request) -> tuple[str, Seat]:
    """The room and seat the session cookie names."""
    value = request.cookies.get(COOKIE, "")
    room, _, seat = value.rpartition(".")
    if not room or seat not in {s.value for s in Seat}:
        raise web.HTTPBadRequest(
            text=f"send the cookie {COOKIE}=<room>.<seat>, seat one of "
            + ", ".join(s.value for s in Seat)
        )
    return room, Seat(seat)


async def socket(request: web.Request) -> web.WebSocketResponse:
    room_name, seat = participant(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    rooms = request.app[ROOMS]
    room = rooms.setdefault(room_name, RelayRoom())
    room.sockets += 1
    pc: RTCPeerConnection | None = None

    async def send(message: dict[str, Any]) -> None:
        await ws.send_json({"v": 1, **message})

    try:
        async for raw in ws:
            if raw.type is not WSMsgType.TEXT:
                continue
            try:
                message = json.loads(raw.data)
                kind = message["type"]
                if kind == "join":
                    joined = {"interview_id": message["interview_id"], "seat": seat.value}
                    await send({"type": "joined", **joined, "present": room.present()})
                elif kind == "offer":
                    pc, answer = await room.offer(seat, message["sdp"])
                    await send({"type": "answer", "sdp": answer})
                elif kind == "candidate":
                    await room.add_candidate(
                        seat,
                        message["candidate"],
                        message.get("sdp_mid"),
                        message.get("sdp_mline_index"),
                    )
                elif kind == "leave":
                    break
                else:
                    raise ValueError(f"this relay does not handle {kind!r} messages")
            except Exception as exc:  # a baseline: say what was wrong and go on
                await send({"type": "error", "code": "bad_message", "message": repr(exc)})
    finally:
        # Shielded: a socket whose peer went away may cancel this handler, and the seat
        # must still be given up.
        await asyncio.shield(release(rooms, room_name, room, seat, pc))
        await ws.close()
    return ws


async def release(
    rooms: dict[str, RelayRoom],
    name: str,
    room: RelayRoom,
    seat: Seat,
    pc: RTCPeerConnection | None,
) -> None:
    """A socket closed: its seat's connection goes, and the room with its last socket."""
    room.sockets -= 1
    if pc is not None:
        await room.leave(seat, pc)
    if room.sockets == 0 and rooms.get(name) is room:
        del rooms[name]


async def close_rooms(app: web.Application) -> None:
    for room in list(app[ROOMS].values()):
        await room.close()


def make_app() -> web.Application:
    app = web.Application()
    app[ROOMS] = {}
    app.router.add_get("/ws", socket)
    app.on_shutdown.append(close_rooms)
    return app


@dataclass
class RelayServer:
    """The relay server running in a process of its own."""

    url: str
    pid: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RelayServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start(port: int | None = None) -> RelayServer:
    """Start the relay server on 127.0.0.1 (a free port unless ``port``), listening."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--port", str(port)], cwd=ROOT
    )
    try:
        wait_until_listening(port, process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return RelayServer(f"http://127.0.0.1:{port}", process.pid, process)


def config(url: str, rooms: int, seconds: float, warmup: float = 3) -> dict[str, Any]:
    """The generator's input for ``rooms`` three-party rooms on the relay server."""
    participants = [
        {
            "room": n,
            "seat": seat.value,
            "interview_id": f"relay-{n}",
            "cookie": f"{COOKIE}={n}.{seat.value}",
            "local_addr": "",
        }
        for n in range(rooms)
        for seat in Seat
    ]
    return {
        "server": url,
        "reencoded": True,
        "seconds": seconds,
        "warmup": warmup,
        "participants": participants,
    }


def measure(rooms: int, seconds: float, loadgen: Path = LOADGEN) -> Measurement:
    """Play ``rooms`` rooms on a fresh relay server through the generator."""
    with start() as server:
        return generator_run.run(config(server.url, rooms, seconds), server.pid, loadgen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="serve on 127.0.0.1:PORT until stopped")
    parser.add_argument("--rooms", type=int, nargs="+", help="measure N rooms (each N)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--loadgen", type=Path, default=LOADGEN, help="the built generator")
    args = parser.parse_args()
    if args.port is not None:
        logging.basicConfig(level=logging.WARNING)
        web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None)
        return
    if not args.rooms:
        parser.error("give --port to serve or --rooms to measure")
    if not args.loadgen.exists():
        parser.error(f"{args.loadgen} is missing: build it with `make loadgen`")
    for rooms in args.rooms:
        print(f"== {rooms} stock aiortc relay room(s), {args.seconds:.0f} s", flush=True)
        measure(rooms, args.seconds, args.loadgen)


if __name__ == "__main__":
    main()
