"""The stock aiortc relay the load generator measures as a baseline: real aiortc
participants join it over its WebSocket as the generator does, each receiving the other
seats' media (decoded and encoded again by the relay) in slots named after them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from common.names import Kind, Seat

from .media import SyntheticParticipant, wait_for

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import relay_server  # noqa: E402  (bench/ is scripts, not a package)


@dataclass
class Seated:
    ws: aiohttp.ClientWebSocketResponse
    participant: SyntheticParticipant
    present: list[str]

    async def receive(self, kind: str) -> dict[str, Any]:
        while True:
            message = await self.ws.receive_json(timeout=10)
            assert message["v"] == 1
            if message["type"] == kind:
                return dict(message)
            assert message["type"] != "error", message


@dataclass
class Relay:
    server: TestServer
    session: aiohttp.ClientSession

    @property
    def rooms(self) -> dict[str, relay_server.RelayRoom]:
        return self.server.app[relay_server.ROOMS]

    async def seat(self, room: str, seat: Seat) -> Seated:
        """Join and offer as the generator does: cookie ``nexus_session=<room>.<seat>``."""
        ws = await self.session.ws_connect(
            self.server.make_url("/ws"), headers={"Cookie": f"nexus_session={room}.{seat}"}
        )
        seated = Seated(ws, SyntheticParticipant(seat), [])
        await ws.send_json({"v": 1, "type": "join", "interview_id": f"interview-{room}"})
        joined = await seated.receive("joined")
        assert (joined["interview_id"], joined["seat"]) == (f"interview-{room}", seat.value)
        seated.present = joined["present"]

        async def offer(_: Seat, sdp: str) -> str:
            await ws.send_json({"v": 1, "type": "offer", "sdp": sdp})
            return str((await seated.receive("answer"))["sdp"])

        await seated.participant.connect(offer)
        return seated


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    server = TestServer(relay_server.make_app(), host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    try:
        yield Relay(server, session)
    finally:
        await session.close()
        await server.close()


def frames(seated: Seated, seat: Seat, kind: Kind) -> int:
    return seated.participant.got(seat, kind).frames


async def test_each_seat_receives_the_others_in_slots_named_after_them(relay: Relay) -> None:
    # The applicant publishes last: the officers' slots for it exist before its media does.
    officers = [await relay.seat("0", Seat.CBSA), await relay.seat("0", Seat.CBP)]
    applicant = await relay.seat("0", Seat.APPLICANT)
    assert sorted(applicant.present) == ["cbp", "cbsa"]
    everyone = [*officers, applicant]
    try:
        await wait_for(
            lambda: all(
                frames(s, other, kind) >= 5
                for s in everyone
                for other in Seat
                if other is not s.participant.seat
                for kind in Kind
            ),
            within=30,
        )
        for seated in everyone:
            for other in Seat:
                if other is not seated.participant.seat:
                    video = seated.participant.got(other, Kind.VIDEO)
                    assert video.wrong_seat == 0, f"{seated.participant.seat} got another seat"
            assert set(seated.participant.received) == {
                (other, kind)
                for other in Seat
                if other is not seated.participant.seat
                for kind in Kind
            }
    finally:
        for seated in everyone:
            await seated.participant.close()


async def test_leaving_closes_the_seat_and_a_seat_that_returns_is_delivered_again(
    relay: Relay,
) -> None:
    cbsa = await relay.seat("0", Seat.CBSA)
    applicant = await relay.seat("0", Seat.APPLICANT)
    try:
        await wait_for(lambda: frames(cbsa, Seat.APPLICANT, Kind.VIDEO) >= 3, within=20)
        first = relay.rooms["0"].pcs[Seat.APPLICANT]

        await applicant.ws.send_json({"v": 1, "type": "leave"})
        await wait_for(lambda: first.connectionState == "closed")
        assert Seat.APPLICANT not in relay.rooms["0"].pcs
        await applicant.participant.close()

        returned = await relay.seat("0", Seat.APPLICANT)
        applicant = returned
        before = frames(cbsa, Seat.APPLICANT, Kind.VIDEO)
        await wait_for(lambda: frames(cbsa, Seat.APPLICANT, Kind.VIDEO) >= before + 3, within=20)
        assert cbsa.participant.got(Seat.APPLICANT, Kind.VIDEO).wrong_seat == 0
    finally:
        await cbsa.participant.close()
        await applicant.participant.close()

    # A socket that closes without `leave` gives its seat up too; the empty room goes.
    pcs = dict(relay.rooms["0"].pcs)
    await cbsa.ws.close()
    await applicant.ws.close()
    await wait_for(lambda: "0" not in relay.rooms)
    assert all(pc.connectionState == "closed" for pc in pcs.values())


async def test_a_socket_without_the_participants_cookie_is_refused(relay: Relay) -> None:
    async with relay.session.get(relay.server.make_url("/ws")) as response:
        assert response.status == 400
        assert "nexus_session=<room>.<seat>" in await response.text()


def test_the_relay_runs_as_a_process_of_its_own() -> None:
    with relay_server.start() as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert Path(f"/proc/{server.pid}").exists()

        async def probe() -> int:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{server.url}/ws") as response,
            ):
                return response.status

        assert asyncio.run(probe()) == 400
    assert server.process.poll() is not None
