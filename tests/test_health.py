"""Liveness, readiness and drain on the operations listener: /readyz answers 503 with a
reason when a media worker dies or stops reporting, and at once when the server drains;
a drain (POST /drain, or SIGTERM with a drain time) refuses a new call with an error a
person can act on while the call already on keeps its media, and SIGTERM stops the
server once that call has ended.

Real `nexus-interview serve` processes on 127.0.0.1 free ports, a real media worker
process, aiortc participants."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from common.errors import SettingError
from common.names import Kind, Seat
from server.settings import load_settings
from signalling import messages as m

from .media import SyntheticParticipant, wait_for
from .served import (
    Browser,
    call_started,
    everyone_in_call,
    free_port,
    make_scenes,
    serve,
    server_log,
    stop,
    up,
)


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def readiness_becomes(ops: str, status: int, within: float = 15.0) -> dict[str, str]:
    deadline = time.monotonic() + within
    while True:
        got, body = await get(f"{ops}/readyz")
        if got == status:
            return dict(body)
        assert time.monotonic() < deadline, (got, body)
        await asyncio.sleep(0.1)


def worker_pid(server: subprocess.Popen[bytes]) -> int:
    """The server's one media worker process."""
    for _ in range(100):
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        if children:
            (child,) = children
            return int(child)
        time.sleep(0.05)
    raise AssertionError("no media worker process")


async def test_readyz_fails_when_the_media_worker_dies_or_stops_reporting(
    tmp_path: Path,
) -> None:
    (scene,) = await make_scenes(tmp_path)
    settings, port = scene.settings, free_port()
    ops = f"http://127.0.0.1:{port}"
    server = serve(settings, media_workers="1", metrics_listen=f"127.0.0.1:{port}")
    try:
        await up(settings, server)
        assert (await readiness_becomes(ops, 200))["status"] == "ready"
        assert await get(f"{ops}/healthz") == (200, {"status": "alive"})
        os.kill(worker_pid(server), signal.SIGKILL)
        reason = (await readiness_becomes(ops, 503, within=5))["reason"]
        assert "media worker" in reason, reason
        await readiness_becomes(ops, 200)  # started again by the server
        stuck = worker_pid(server)
        os.kill(stuck, signal.SIGSTOP)  # alive, connected, silent
        try:
            reason = (await readiness_becomes(ops, 503, within=8))["reason"]
            assert "media worker" in reason, reason
            assert (await get(f"{ops}/healthz"))[0] == 200  # the server itself is alive
        finally:
            os.kill(stuck, signal.SIGKILL)
    finally:
        stop(server)


def frames(people: dict[Seat, SyntheticParticipant]) -> int:
    return people[Seat.CBSA].got(Seat.APPLICANT, Kind.VIDEO).frames


async def test_a_drain_refuses_a_new_call_while_the_call_on_keeps_its_media(
    tmp_path: Path,
) -> None:
    first, second = await make_scenes(tmp_path, count=2)
    settings, port = first.settings, free_port()
    ops = f"http://127.0.0.1:{port}"
    server = serve(settings, media_workers="1", metrics_listen=f"127.0.0.1:{port}")
    base = URL(settings.public_url)
    browsers: dict[Seat, Browser] = {}
    others: dict[Seat, Browser] = {}
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(settings, server)
        await readiness_becomes(ops, 200)
        browsers = await call_started(first, base)
        await everyone_in_call(first, browsers, people)
        async with aiohttp.ClientSession() as http:
            # a web page's form (any page open in a browser here) cannot start it
            async with http.post(f"{ops}/drain", data={"x": "1"}) as refused:
                assert refused.status == 415
            cross_site = {"Origin": "https://elsewhere.example"}
            async with http.post(f"{ops}/drain", json={}, headers=cross_site) as refused:
                assert refused.status == 403
            assert (await get(f"{ops}/readyz"))[0] == 200
        async with aiohttp.ClientSession() as http, http.post(f"{ops}/drain", json={}) as response:
            assert response.status == 200
            assert await response.json() == {"status": "draining", "calls": 1}
        assert (await get(f"{ops}/readyz"))[1]["reason"].startswith("draining")
        # the call on goes on
        seen = frames(people)
        await wait_for(lambda: frames(people) > seen + 30, within=10)
        # a new one is refused, saying what to do
        others = await call_started(second, base, team="two")
        ws = await others[Seat.APPLICANT].socket()
        await ws.send_str(m.encode(m.Join(interview_id=second.interview_id)))
        while True:
            message = m.decode_server(await ws.receive_str(timeout=10))
            if isinstance(message, m.Error):
                break
            assert not isinstance(message, m.Joined), message
        assert message.code == "media_unavailable"
        assert "restarted" in message.message and "again" in message.message
    finally:
        for person in people.values():
            await person.close()
        for browser in (*browsers.values(), *others.values()):
            await browser.close()
        stop(server)


async def test_sigterm_drains_until_the_call_on_ends_then_stops(tmp_path: Path) -> None:
    (scene,) = await make_scenes(tmp_path)
    settings, port = scene.settings, free_port()
    ops = f"http://127.0.0.1:{port}"
    server = serve(
        settings, media_workers="1", metrics_listen=f"127.0.0.1:{port}", drain_seconds="60"
    )
    browsers: dict[Seat, Browser] = {}
    people = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(settings, server)
        await readiness_becomes(ops, 200)
        browsers = await call_started(scene, URL(settings.public_url))
        await everyone_in_call(scene, browsers, people)
        server.send_signal(signal.SIGTERM)
        reason = (await readiness_becomes(ops, 503, within=2))["reason"]
        assert reason.startswith("draining"), reason
        seen = frames(people)
        await wait_for(lambda: frames(people) > seen + 30, within=10)
        assert server.poll() is None, server_log(settings).read_text()
        await browsers[Seat.CBSA].end()  # the officer ends the interview
        await asyncio.to_thread(server.wait, 15)
        assert server.returncode == 0, server_log(settings).read_text()
    finally:
        for person in people.values():
            await person.close()
        for browser in browsers.values():
            await browser.close()
        stop(server)


def test_the_operations_settings_say_what_they_expect() -> None:
    assert load_settings({"NEXUS_METRICS_LISTEN": "[::1]:9100"}).metrics_listen == ("::1", 9100)
    assert load_settings({}).metrics_listen is None
    for env, raw, expected in (
        ("NEXUS_METRICS_LISTEN", "9100", "host:port"),
        ("NEXUS_METRICS_LISTEN", "example.org:9100", "IP address"),
        ("NEXUS_METRICS_LISTEN", "127.0.0.1:http", "whole number"),
        ("NEXUS_LOG_FORMAT", "xml", "text, json"),
        ("NEXUS_DRAIN_SECONDS", "-1", "whole number"),
    ):
        with pytest.raises(SettingError, match=expected):
            load_settings({env: raw})
