"""A flood of anonymous sign-in attempts, with real argon2 costs, beside a live interview
with real aiortc participants on the same server: the media keeps flowing, the server
keeps answering, and a real officer signing in meanwhile gets in or is told when to retry."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from common.names import Agency, Kind, Seat
from common.secret import Secret
from server.app import create_app
from server.auth import Passwords
from server.settings import Settings

from .calls import join_and_call, seated_interview
from .fakes import FakeClock, World
from .media import SyntheticParticipant, wait_for

FLOOD_SECONDS = 6.0
IN_FLIGHT = 40


class WatchedPasswords(Passwords):
    """The production argon2 costs; notes where each check ran, how nicely, and how many
    ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()
        self.niceness: set[int] = set()
        self.running = self.most_at_once = 0
        self._lock = threading.Lock()

    def verify(self, password_hash: Secret[str], password: Secret[str]) -> bool:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.add(threading.get_ident())
            self.niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        try:
            return super().verify(password_hash, password)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
async def costly_world(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    """The server with the production password costs, and an address allowance high
    enough for one test client to send what many addresses each within theirs would."""
    passwords = WatchedPasswords()
    flooded = settings.replace(login_attempts_per_minute=10_000)
    server = TestServer(create_app(flooded, clock, passwords), host="127.0.0.1")
    await server.start_server()
    world = World(server, flooded, clock, passwords)
    yield world
    for client in world.clients:
        await client.close()
    await server.close()


async def test_a_sign_in_flood_leaves_a_live_interview_and_the_server_responsive(
    costly_world: World, tmp_path: Path
) -> None:
    world = costly_world
    seated, interview_id = await seated_interview(world)
    late_officer = await world.add_officer("cbsa.late", Agency.CBSA)
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    pairs = [(seat, other) for seat in Seat for other in Seat if other is not seat]
    try:
        for seat in Seat:
            await join_and_call(seated[seat], interview_id, people[seat])
        await wait_for(
            lambda: all(people[s].got(o, Kind.VIDEO).frames >= 10 for s, o in pairs), within=30
        )
        loop = asyncio.get_running_loop()
        flood_start = loop.time()
        statuses: Counter[int] = Counter()
        flooder = await world.client()
        csrf = await world.csrf(flooder)

        async def attempt(n: int) -> None:
            form = {"csrf_token": csrf, "username": f"flood{n}", "password": "x" * 16, "code": "1"}
            response = await flooder.post("/login", data=form, allow_redirects=False)
            statuses[response.status] += 1

        async def flood() -> None:
            sent = 0
            while loop.time() - flood_start < FLOOD_SECONDS:
                await asyncio.gather(*(attempt(sent + i) for i in range(IN_FLIGHT)))
                sent += IN_FLIGHT

        flooding = asyncio.ensure_future(flood())
        await asyncio.sleep(1)
        health = [(await (await world.client()).get("/healthz")).status for _ in range(5)]
        legit = await world.client()
        signed_in = await world.sign_in(legit, late_officer)
        await flooding

        assert health == [200] * 5
        assert signed_in.status in (303, 429)
        if signed_in.status == 429:
            assert int(signed_in.headers["Retry-After"]) > 0
        assert statuses[429] > 0, "the flood never reached the cap on pending checks"
        assert set(statuses) <= {401, 429}, statuses
        flood_end = loop.time()
        await wait_for(
            lambda: all(people[s].got(o, Kind.VIDEO).arrivals[-1] > flood_end for s, o in pairs)
        )
        gaps = {(s, o): people[s].got(o, Kind.VIDEO).longest_gap(flood_start) for s, o in pairs}
        assert all(gap < 1.0 for gap in gaps.values()), gaps
        passwords = world.passwords
        assert isinstance(passwords, WatchedPasswords)
        assert threading.get_ident() not in passwords.threads  # never on the media's loop
        assert passwords.most_at_once == 1  # never more than one core
        assert min(passwords.niceness) > os.getpriority(os.PRIO_PROCESS, 0)  # below media
    finally:
        for person in people.values():
            await person.close()
