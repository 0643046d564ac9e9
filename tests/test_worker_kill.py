"""`kill -9` of one media worker while two interviews run on two workers: the other
interview's media never pauses; the killed interview's pages are told to reconnect, its
call is placed on the live worker within the reconnect grace and goes on with the outage
in its record; the dead worker is started again; both records verify at the end.

A real `nexus-interview serve --media-workers 2` (recipients configured) with six aiortc
participants over real HTTP and WebSocket on 127.0.0.1; nothing mocked."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from common.names import Kind, Seat
from recordings.export import export_session
from recordings.keys import read_identity_file
from recordings.session_record import verify_session

from .media import SyntheticParticipant, wait_for
from .served import (
    FRAMES_PER_SECOND,
    TEAMS,
    Browser,
    Scene,
    call_started,
    everyone_in_call,
    journal,
    make_scenes,
    serve,
    server_log,
    server_verifier,
    stop,
    up,
)

GRACE_SECONDS = 30
LOST_AT_MOST = int(2.5 * FRAMES_PER_SECOND)  # "at most 2 s", with scheduling slack


def delivered(people: dict[Seat, SyntheticParticipant]) -> dict[Seat, int]:
    """The video frames of each seat that reached the others so far."""
    return {
        seat: max(people[other].got(seat, Kind.VIDEO).frames for other in Seat if other != seat)
        for seat in Seat
    }


@pytest.fixture
async def scenes(tmp_path: Path) -> list[Scene]:
    """Two applications, each invited, with officers of their own (``one`` and ``two``)."""
    return await make_scenes(tmp_path, 2)


def placed_on(log: str, interview_id: str) -> str:
    found: list[str] = re.findall(rf"room {interview_id} placed on media worker (\S+)", log)
    assert found, log
    return found[-1]


def worker_pids(server_pid: int) -> dict[str, int]:
    """The server's media worker processes, by their ``--name``."""
    found = {}
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    for child in children:
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"media.worker_process" in argv:
            found[argv[argv.index(b"--name") + 1].decode()] = int(child)
    return found


async def closed_with(browser: Browser) -> int | None:
    """Read the socket until it closes; its close code."""
    assert browser.ws is not None
    while True:
        message = await browser.ws.receive(timeout=15)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return browser.ws.close_code


async def test_killing_one_worker_moves_its_call_and_leaves_the_other_untouched(
    scenes: list[Scene],
) -> None:
    settings = scenes[0].settings
    base = URL(settings.public_url)
    server = serve(settings, media_workers="2", reconnect_grace_seconds=str(GRACE_SECONDS))
    browsers: list[dict[Seat, Browser]] = []
    people = [{seat: SyntheticParticipant(seat) for seat in Seat} for _ in scenes]
    again = {seat: SyntheticParticipant(seat) for seat in Seat}
    try:
        await up(settings, server)
        await wait_for(lambda: len(worker_pids(server.pid)) == 2, within=20)
        for scene, team in zip(scenes, TEAMS, strict=False):
            browsers.append(await call_started(scene, base, team))
        for scene, its_browsers, its_people in zip(scenes, browsers, people, strict=True):
            await everyone_in_call(scene, its_browsers, its_people)
        log = server_log(settings).read_text()
        killed, untouched = (placed_on(log, scene.interview_id) for scene in scenes)
        assert killed != untouched  # each interview on a worker of its own
        pids = worker_pids(server.pid)

        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        os.kill(pids[killed], signal.SIGKILL)
        before = delivered(people[0])
        codes = await asyncio.gather(*(closed_with(browsers[0][seat]) for seat in Seat))
        assert codes == [1012] * 3  # told to reconnect, as after a server restart
        # The pages come back (a new socket, a join, a new offer): the call goes on.
        await everyone_in_call(scenes[0], browsers[0], again)
        assert loop.time() - killed_at < GRACE_SECONDS
        await asyncio.sleep(1)
        # The other interview never noticed.
        for seat in Seat:
            for other in Seat:
                if other is not seat:
                    gap = people[1][seat].got(other, Kind.VIDEO).longest_gap(killed_at)
                    assert gap < 1.0, (seat, other, gap)
        # The dead worker is started again, under its name.
        await wait_for(lambda: worker_pids(server.pid).get(killed) not in (None, pids[killed]))

        after = delivered(again)
        for scene, its_browsers in zip(scenes, browsers, strict=True):
            await its_browsers[Seat.CBSA].end()
            verdict = {"verdict": "approve", "reason_codes": [], "notes": ""}
            for seat in (Seat.CBSA, Seat.CBP):
                status, body = await its_browsers[seat].post(
                    f"/api/interviews/{scene.interview_id}/decision", verdict
                )
                assert status == 201, body
    finally:
        stop(server)
        for person in [*again.values(), *(p for group in people for p in group.values())]:
            await person.close()
        for group in browsers:
            for browser in group.values():
                await browser.close()

    log = server_log(settings).read_text()
    assert "Traceback" not in log, log
    for scene in scenes:
        session = settings.data_dir / "records" / scene.interview_id
        result = await asyncio.to_thread(verify_session, session, [server_verifier(settings)])
        assert result.closed and not result.failed, (scene.interview_id, result.problems)
    moved = journal(settings.data_dir / "records" / scenes[0].interview_id)
    outages = [event for event in moved if event["kind"] == "outage"]
    assert len(outages) == 1 and outages[0]["worker"] == killed, outages
    assert outages[0]["recovered_files"], outages  # what the worker was writing, listed
    stayed = journal(settings.data_dir / "records" / scenes[1].interview_id)
    assert "outage" not in {event["kind"] for event in stayed}

    # What the lost worker had sent reached the record: at most about two seconds lost.
    session = settings.data_dir / "records" / scenes[0].interview_id
    exported = await asyncio.to_thread(
        export_session,
        session,
        read_identity_file(scenes[0].keys["audit"]),
        session.parent / "out",
    )
    recorded = {Seat(item.seat): item.video_frames for item in exported}
    for seat in Seat:
        assert recorded[seat] >= before[seat] + after[seat] - LOST_AT_MOST, (
            seat,
            recorded[seat],
            before[seat],
            after[seat],
        )


async def test_a_worker_asked_to_stop_drains_its_calls_and_takes_no_new_ones(
    scenes: list[Scene],
) -> None:
    """SIGTERM to a worker, as a deploy sends it: its call goes on to its end, the next
    interview goes to the other worker, and the worker exits once its call is over."""
    settings = scenes[0].settings
    base = URL(settings.public_url)
    server = serve(settings, media_workers="2")
    browsers: list[dict[Seat, Browser]] = []
    people = [{seat: SyntheticParticipant(seat) for seat in Seat} for _ in scenes]
    try:
        await up(settings, server)
        await wait_for(lambda: len(worker_pids(server.pid)) == 2, within=20)
        browsers.append(await call_started(scenes[0], base))
        await everyone_in_call(scenes[0], browsers[0], people[0])
        draining = placed_on(server_log(settings).read_text(), scenes[0].interview_id)
        pid = worker_pids(server.pid)[draining]
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        os.kill(pid, signal.SIGTERM)
        await asyncio.sleep(2.5)  # its next load report says it is draining

        browsers.append(await call_started(scenes[1], base, "two"))
        await everyone_in_call(scenes[1], browsers[1], people[1])
        log = server_log(settings).read_text()
        assert f"media worker {draining} is draining" in log
        assert placed_on(log, scenes[1].interview_id) != draining
        for seat in Seat:
            for other in Seat:
                if other is not seat:
                    gap = people[0][seat].got(other, Kind.VIDEO).longest_gap(asked_at)
                    assert gap < 1.0, (seat, other, gap)
        assert worker_pids(server.pid).get(draining) == pid  # still serving its call

        await browsers[0][Seat.CBSA].end()
        await wait_for(lambda: worker_pids(server.pid).get(draining) != pid, within=15)
    finally:
        stop(server)
        for person in (p for group in people for p in group.values()):
            await person.close()
        for group in browsers:
            for browser in group.values():
                await browser.close()
    assert "Traceback" not in server_log(settings).read_text()
