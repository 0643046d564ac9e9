"""A live interview in a process of its own: the three seats of one interview as synthetic
aiortc participants (tests/media.py), each on its own signalling socket, driven by JSON
lines on stdin and answering on stdout.

Browsers are not in the server's process, and three video encoders and six decoders in it
would starve the server of the interpreter they share; here they run beside it as real
clients do. Times are `time.monotonic`, the clock of both processes' event loops.

    -> {"url": ..., "interview_id": ..., "cookies": {seat: cookie}}
    <- {"ready": true}                       every forwarded video track is arriving
    -> {"garbage": seat, "frames": [...], "probe": interview_id}
    <- {"garbage": seat, "codes": [...], "open": bool}
                                             frames are {"text": str} or {"binary": hex};
                                             the probe is a join the server must refuse
    -> {"stop": since}
    <- {"tracks": {...}}                     per "seat<-other" video track: frames and
                                             the longest gap since ``since``
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientWebSocketResponse, DummyCookieJar, WSMsgType

from common.names import Kind, Seat
from signalling import messages as m

from .media import SyntheticParticipant, wait_for

LINE_LIMIT = 16 * 1024 * 1024  # a command carries frames of up to 256 KiB each
PAIRS = [(seat, other) for seat in Seat for other in Seat if other is not seat]


class LiveSeat:
    """One seat's socket: the call's signalling, then a reader that keeps every message
    (and so answers the server's pings) for the garbage rounds to look through."""

    def __init__(self, seat: Seat, ws: ClientWebSocketResponse) -> None:
        self.seat = seat
        self.ws = ws
        self.person = SyntheticParticipant(seat)
        self.received: list[dict[str, Any]] = []
        self.times: list[float] = []
        self._reader: asyncio.Task[None] | None = None

    async def call(self, interview_id: str) -> None:
        await self.ws.send_str(m.encode(m.Join(interview_id=interview_id)))
        await self._expect(m.Joined)

        async def offer(seat: Seat, sdp: str) -> str:
            await self.ws.send_str(m.encode(m.Offer(sdp=sdp)))
            answer = await self._expect(m.Answer)
            assert isinstance(answer, m.Answer)
            return answer.sdp

        await self.person.connect(offer)
        self._reader = asyncio.ensure_future(self._read())

    async def _expect(self, kind: type[m.Message]) -> m.Message:
        while True:
            message = m.decode_server(await self.ws.receive_str(timeout=20))
            if isinstance(message, m.Error):
                raise AssertionError(f"{self.seat} could not join the call: {message}")
            if isinstance(message, kind):
                return message

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type is WSMsgType.TEXT:
                self.received.append(json.loads(frame.data))
                self.times.append(time.monotonic())

    async def garbage(self, frames: list[dict[str, str]], probe: str) -> dict[str, Any]:
        """Send ``frames``, then the probe; the error codes answered up to the probe's."""
        seen = len(self.received)
        for frame in frames:
            if "binary" in frame:
                await self.ws.send_bytes(bytes.fromhex(frame["binary"]))
            else:
                await self.ws.send_frame(
                    frame["text"].encode("utf-8", "surrogatepass"), WSMsgType.TEXT
                )
        await self.ws.send_str(m.encode(m.Join(interview_id=probe)))

        def probe_answered() -> bool:
            return any(probe in msg.get("message", "") for msg in self.received[seen:])

        with contextlib.suppress(AssertionError):  # what came is reported
            await wait_for(lambda: probe_answered() or self.ws.closed, within=20)
        errors = [msg for msg in self.received[seen:] if msg.get("type") == "error"]
        return {"codes": [msg.get("code") for msg in errors], "open": not self.ws.closed}

    def heard(self, since: float) -> list[str]:
        """What the server said on this socket besides answers to garbage (peers' events,
        an error that was not one: a sign-in ended, say), with when (seconds since
        ``since``)."""
        return [
            f"{at - since:.1f}s {msg.get('type')} {msg.get('seat', '')}"
            f" {msg.get('event', msg.get('code', ''))}"
            for msg, at in zip(self.received, self.times, strict=True)
            if msg.get("type") != "error" or msg.get("code") in ("signed_out", "internal_error")
        ]

    async def close(self) -> None:
        await self.person.close()
        if self._reader is not None:
            self._reader.cancel()
        await self.ws.close()


class CallProcess:
    """The test's side: starts the process and speaks to it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls, url: str, interview_id: str, cookies: dict[str, str]) -> CallProcess:
        """The call between the three seats (``cookies``: each seat's session), once every
        forwarded video track is arriving."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            cwd=Path(__file__).parent.parent,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
        )
        call = cls(process)
        answer = await call._ask(
            {"url": url, "interview_id": interview_id, "cookies": cookies}, within=60
        )
        assert answer == {"ready": True}, answer
        return call

    async def _ask(self, command: dict[str, Any], within: float = 30) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(command).encode() + b"\n")
        await self._process.stdin.drain()
        line = await asyncio.wait_for(self._process.stdout.readline(), within)
        if not line:
            raise AssertionError(f"the call's process ended ({await self._process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def garbage(self, seat: str, frames: list[str | bytes], probe: str) -> dict[str, Any]:
        """Send ``frames`` on ``seat``'s own socket, then a join of ``probe``: the error
        codes answered, and whether the socket is still open."""
        sent = [{"binary": f.hex()} if isinstance(f, bytes) else {"text": f} for f in frames]
        return await self._ask({"garbage": seat, "frames": sent, "probe": probe})

    async def look(self, since: float) -> dict[str, Any]:
        """What `stop` answers, and the call goes on."""
        return await self._ask({"look": since})

    async def stop(self, since: float) -> dict[str, Any]:
        """Ends the call: per video track, what `video_since` saw ("tracks"), and per seat
        what `LiveSeat.heard` ("heard")."""
        answer = await self._ask({"stop": since})
        await self._process.wait()
        return answer

    async def close(self) -> None:
        if self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


async def video_since(
    people: dict[Seat, SyntheticParticipant], since: float
) -> dict[str, dict[str, Any]]:
    """Per "seat<-other" video track: frames since ``since``, and the longest time without
    one from ``since`` to the last, or to now if none came after now within 10 s."""
    now = time.monotonic()
    with contextlib.suppress(AssertionError):
        await wait_for(
            lambda: all(people[s].got(o, Kind.VIDEO).arrivals[-1] > now for s, o in PAIRS),
            within=10,
        )
    tracks = {}
    for seat, other in PAIRS:
        arrivals = [t for t in people[seat].got(other, Kind.VIDEO).arrivals if t > since]
        times = [since, *arrivals]
        if not arrivals or arrivals[-1] <= now:
            times.append(time.monotonic())
        gap, at = max((b - a, a - since) for a, b in itertools.pairwise(times))
        tracks[f"{seat}<-{other}"] = {
            "frames": len(arrivals),
            "longest_gap": round(gap, 3),
            "gap_began": round(at, 3),
        }
    return tracks


class LoopLag:
    """The longest this process's event loop was late to wake a sleeper, and when: a
    stalled loop stalls every call it carries."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.at = 0.0
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            late = time.monotonic() - before - 0.05
            if late > self.longest:
                self.longest, self.at = late, before

    def since(self, start: float) -> dict[str, float]:
        return {"longest": round(self.longest, 3), "at": round(self.at - start, 3)}

    def close(self) -> None:
        self._task.cancel()


def report(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main() -> None:
    loop = asyncio.get_running_loop()
    lines = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    setup = json.loads(await lines.readline())
    lag = LoopLag()
    async with ClientSession(cookie_jar=DummyCookieJar()) as http:
        seats = {}
        for seat in Seat:
            ws = await http.ws_connect(
                setup["url"] + "/ws",
                headers={"Cookie": f"nexus_session={setup['cookies'][seat.value]}"},
            )
            seats[seat] = LiveSeat(seat, ws)
        try:
            for seat in Seat:
                await seats[seat].call(setup["interview_id"])
            people = {seat: seats[seat].person for seat in Seat}
            await wait_for(
                lambda: all(people[s].got(o, Kind.VIDEO).frames >= 10 for s, o in PAIRS),
                within=30,
            )
            report({"ready": True})
            while line := await lines.readline():
                command = json.loads(line)
                if "garbage" in command:
                    seat = Seat(command["garbage"])
                    answer = await seats[seat].garbage(command["frames"], command["probe"])
                    report({"garbage": seat.value, **answer})
                else:
                    since = command.get("stop", command.get("look"))
                    report(
                        {
                            "tracks": await video_since(people, since),
                            "heard": {seat.value: seats[seat].heard(since) for seat in Seat},
                            "lag": lag.since(since),
                        }
                    )
                    if "stop" in command:
                        return
        finally:
            for live in seats.values():
                await live.close()


if __name__ == "__main__":
    asyncio.run(main())
